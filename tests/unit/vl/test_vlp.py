"""The VL-pretrained backbones (``petlbench.vl.vilt``, ``vl.meter``): ViLT computes what transformers' ``ViltModel``
computes; the official ViLT and METER checkpoint layouts load; the published APT / DAS parameter anchors on a random
ViLT-B/32 and METER; the dropout policy; offline failure; every supporting method trains only what it declares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from petlbench.engine.build import build, frozen_mode, make_method
from petlbench.engine.loop import set_train_mode
from petlbench.errors import UserError
from petlbench.vl.vilt import ViLT, ViLTSpec, create_vilt, hf_to_vilt, load_backbone_state
from petlbench.vl.vlp import VLP

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=64,
            patch_size=32, max_position_embeddings=12, vocab_size=100)


def tiny_config(**kw):
    from transformers import ViltConfig

    return ViltConfig(**{**TINY, **kw})


def inputs(seed: int = 0, n: int = 3, t: int = 12, img: int = 64, vocab: int = 100) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 3:] = 0  # padded texts: masked out of the attention, as ViLT does
    return {"input_ids": torch.randint(0, vocab, (n, t), generator=g), "attention_mask": mask,
            "pixel_values": torch.randn(n, 3, img, img, generator=g)}


def hf_outputs(hf, x):
    with torch.no_grad():
        return hf(**x, pixel_mask=torch.ones(x["pixel_values"].shape[0], *x["pixel_values"].shape[2:],
                                             dtype=torch.long))


def test_vilt_computes_what_transformers_vilt_model_computes():
    from transformers import ViltModel

    torch.manual_seed(0)
    hf = ViltModel(tiny_config()).eval()
    ours = ViLT(ViLTSpec.from_hf(hf.config), 5).eval()
    mapped = hf_to_vilt(hf.state_dict())
    assert set(mapped) == {k for k in ours.state_dict() if not k.startswith("head.")}  # every backbone tensor
    load_backbone_state(ours, mapped, "test")
    x = inputs()
    ref = hf_outputs(hf, x)
    with torch.no_grad():
        torch.testing.assert_close(ours.pooled(x), ref.pooler_output, rtol=0, atol=1e-5)
        # text tokens come first in both; the image tokens' order may differ (transformers samples patches)
        torch.testing.assert_close(ours.forward_features(x)[:, :12], ref.last_hidden_state[:, :12], rtol=0, atol=1e-5)


def test_a_local_transformers_vilt_directory_loads_pretrained(tmp_path):
    from transformers import ViltModel

    torch.manual_seed(1)
    hf = ViltModel(tiny_config()).eval()
    hf.save_pretrained(tmp_path)
    model, info = create_vilt(f"vilt:{tmp_path}", 4)
    assert info["weights_source"].startswith("dir:") and model.tokenizer_name == str(tmp_path)
    x = inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().pooled(x), hf_outputs(hf, x).pooler_output, rtol=0, atol=1e-5)


def test_an_official_vilt_checkpoint_loads_exactly_and_a_foreign_one_is_refused(tmp_path):
    tiny_config().save_pretrained(tmp_path / "cfg")
    torch.manual_seed(2)
    src = ViLT(ViLTSpec.from_hf(tiny_config()), 7)
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("head.")}
    # the official Lightning checkpoint: ViLTransformerSS's state dict, with its pretraining heads
    ckpt = {"state_dict": {**state, "mlm_score.bias": torch.zeros(100), "itm_score.fc.weight": torch.zeros(2, 32)}}
    torch.save(ckpt, tmp_path / "vilt_200k_mlm_itm.ckpt")
    model, info = create_vilt(f"vilt:{tmp_path / 'cfg'}", 3, weights=str(tmp_path / "vilt_200k_mlm_itm.ckpt"))
    assert info["weights_source"] == "file:vilt_200k_mlm_itm.ckpt" and len(info["weights_sha256"]) > 0
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.tokenizer_name == "minilm"  # bert-base-uncased's vocabulary, offline
    torch.save({"state_dict": {"transformer.cls_token": torch.zeros(1, 1, 8)}}, tmp_path / "other.ckpt")
    with pytest.raises(UserError, match="not a checkpoint of this model"):
        create_vilt(f"vilt:{tmp_path / 'cfg'}", 3, weights=str(tmp_path / "other.ckpt"))


def official_adapter(d: int, bottleneck: int) -> int:
    """The official DAS ``Adapter_Layer`` (``vision_transformer_PA.py``, layernorm option "in"): LayerNorm(d) +
    Linear(d, b) + Linear(b, d)."""
    return 2 * d + (d * bottleneck + bottleneck) + (bottleneck * d + d)


@pytest.fixture(scope="module")
def vilt_b32():
    return {m: build(make_method(m), "vilt", 3129, pretrained=False) for m in ("apt", "das", "linear")}


def test_published_anchors_on_a_random_vilt_b32(vilt_b32):
    d, layers = 768, 12
    # APT README, ViLT row: 1.92M = 12 × (p·d + 2·d·r + 1), p = 200 prompts, r = 4
    apt = vilt_b32["apt"]
    assert apt.model.spec == ViLTSpec() and layers * (200 * d + 2 * d * 4 + 1) == 1_916_940
    assert sum(p.numel() for p in apt.model.parameters()) - apt.backbone_total == 1_916_940
    # DAS, official ViLT code (vilt_module_train.py) at the VQA search setting skip_num = 1: every block has two
    # parallel adapters (bottleneck 96) and adapter_list holds 12 skip adapters (96 * 2); all of them require grad
    official = 2 * layers * official_adapter(d, 96) + layers * official_adapter(d, 192)
    assert official == 7_165_440
    # what runs at skip 1, and what petlbench counts: 11 kept blocks × 2 parallel adapters + 1 skip adapter
    das = vilt_b32["das"]
    runs = 2 * (layers - 1) * official_adapter(d, 96) + official_adapter(d, 192)
    assert runs == 3_594_240
    assert sum(p.numel() for p in das.model.parameters()) - das.backbone_total == runs
    # trained with every method besides the head (official trainable list): pooler + modality embedding
    lin = vilt_b32["linear"].model
    head = sum(p.numel() for p in lin.head.parameters())
    assert sum(p.numel() for p in lin.parameters() if p.requires_grad) - head == (d * d + d) + 2 * d


def test_vilt_trains_with_the_official_dropout(vilt_b32):
    built = vilt_b32["apt"]
    assert frozen_mode("auto", built) == "train"
    set_train_mode(built.model, "train")
    active = [m for m in built.model.modules() if isinstance(m, nn.Dropout) and m.p > 0 and m.training]
    # text embeddings + position-embedded patches + per block: attention projection and the MLP's two dropouts
    assert len(active) == 2 + 3 * 12 and {m.p for m in active} == {0.1}


def test_family_owns_vilt_names_only():
    assert VLP.owns("vilt") and VLP.owns("vilt:dandelin/vilt-b32-mlm")
    assert not VLP.owns("minilm+petl_vit_micro_scenes") and not VLP.owns("vit_base_patch16_224")
    with pytest.raises(UserError, match="names no checkpoint"):
        create_vilt("vilt:", 3, pretrained=False)
    with pytest.raises(UserError, match="both modalities"):
        VLP.create("vilt", 3, pretrained=False, modality="text")


def test_the_hub_checkpoint_fails_fast_and_clearly_offline():
    with pytest.raises(UserError, match="Hugging Face hub") as e:  # HF_HUB_OFFLINE=1 (conftest)
        create_vilt("vilt", 3)
    assert "--no-pretrained" in str(e.value) and "\n" not in str(e.value)


def test_a_hub_tokenizer_offline_names_the_models_that_need_no_download():
    from petlbench.vl.text import text_tokenizer

    with pytest.raises(UserError, match="tokenizer 'roberta-base'") as e:  # METER's, needed with --no-pretrained too
        text_tokenizer("roberta-base")
    assert "--model petl_vilt_micro_scenes" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("method", ["apt", "das", "adapter", "lora", "bitfit", "linear", "full"])
def test_every_vilt_method_trains_only_what_it_declares(method):
    torch.manual_seed(0)
    model = ViLT(ViLTSpec.from_hf(tiny_config(max_position_embeddings=12)), 5)
    from petlbench.vl.vilt import freeze_vilt

    freeze_vilt(model)
    m = make_method(method, {"num_prompts": 4} if method == "apt" else {})
    model = m.apply(model).train()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(inputs()), torch.tensor([0, 1, 2]))
    loss.backward()
    opt.step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    trainable = {k for k, v in model.named_parameters() if v.requires_grad}
    assert changed and changed <= trainable
    assert any(k.startswith("head.") for k in changed)
    frozen_backbone = {k for k in before if k.startswith("transformer.blocks.0.attn.qkv.weight")}
    assert (frozen_backbone <= changed) == (method == "full")


# ------------------------------------------------------------------------------------------ METER


def tiny_meter(image_size: int = 32, seed: int = 0):
    from ...vl_models import tiny_meter as make

    return make(5, image_size, seed=seed)


def test_an_official_meter_checkpoint_loads_through_the_key_map(tmp_path):
    from petlbench.vl.meter import from_official, to_official

    src = tiny_meter(seed=3)
    official = to_official(src)
    # the official names of the CLIP image encoder (clip_model.VisualTransformer), CLIP's (d) / (N, d) shapes
    assert official["vit_model.visual.class_embedding"].shape == (32,)
    assert official["vit_model.visual.positional_embedding"].shape == (5, 32)
    assert "vit_model.visual.transformer.resblocks.1.attn.in_proj_weight" in official
    assert "cross_modal_text_layers.1.crossattention.self.key.weight" in official
    dst = tiny_meter(seed=4)
    mapped = from_official({**official, "mlm_score.bias": torch.zeros(60)}, dst)
    load_backbone_state(dst, mapped, "test")
    for k, v in src.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(dst.state_dict()[k], v), k
    x = {"input_ids": torch.randint(3, 60, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long),
         "pixel_values": torch.randn(2, 3, 32, 32)}
    dst.head.load_state_dict(src.head.state_dict())
    torch.testing.assert_close(dst.eval()(x), src.eval()(x), rtol=0, atol=0)
    # a checkpoint pretrained at another resolution: the position embedding is resized (METER's
    # adapt_position_encoding: 288 -> 384 for the VQA setting)
    big = tiny_meter(image_size=64, seed=5)
    assert from_official(official, big)["vit_model.pos_embed"].shape == (1, 17, 32)


def test_meter_anchors_on_a_random_meter():
    from petlbench.vl.meter import METER

    apt = build(make_method("apt"), "meter", 3129, pretrained=False)
    assert isinstance(apt.model, METER)
    # APT README, METER row 3.83M: a core in the self- and the cross-attention output of each co-attention layer
    assert sum(p.numel() for p in apt.model.parameters()) - apt.backbone_total == 24 * 159_745 == 3_833_880
    stats = make_method("apt").stats(apt.model)
    assert len(stats["apt_layers"]) == 24 and not any("text_transformer" in n and "apt" in n
                                                      for n, _ in apt.model.named_parameters())
    d = 768
    # DAS, official METER code (meter_module_train.py) at the VQA search setting skip_num = 4: 3 parallel adapters
    # (bottleneck 96) in each of the 12 co-attention layers, 12 skip adapters of 96 * 3; all require grad
    assert 36 * official_adapter(d, 96) + 12 * official_adapter(d, 288) == 10_734_336
    das = build(make_method("das", {"skip": 4}), "meter", 3129, pretrained=False)
    runs = (12 - 4) * 3 * official_adapter(d, 96) + 4 * official_adapter(d, 288)
    assert sum(p.numel() for p in das.model.parameters()) - das.backbone_total == runs == 5_376_384
    assert VLP.kind(das.model) == "meter" and frozen_mode("auto", das) == "train"


def test_meter_without_its_checkpoint_file_says_how_to_get_it():
    with pytest.raises(UserError, match="--weights meter_clip16_288_roberta_pretrain.ckpt"):
        VLP.create("meter", 3)


@pytest.mark.parametrize("method", ["apt", "das", "adapter", "lora", "bitfit", "linear", "full"])
def test_every_meter_method_trains_only_what_it_declares(method):
    model = make_method(method, {"num_prompts": 4} if method == "apt" else {}).apply(tiny_meter()).train()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    x = {"input_ids": torch.randint(3, 60, (3, 6)), "attention_mask": torch.ones(3, 6, dtype=torch.long),
         "pixel_values": torch.randn(3, 3, 32, 32)}
    x["attention_mask"][2, 3:] = 0
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2])).backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and changed <= {k for k, v in model.named_parameters() if v.requires_grad}
    assert any(k.startswith("text_transformer.") for k in changed) == (method in ("full", "bitfit"))
    added = {k for k in changed if "lora_" in k or "adapter" in k}
    if method in ("adapter", "lora"):  # in the co-attention layers only: 2 per layer (q and v; after attention, FFN)
        layers = len(model.co_layers())
        assert added and all(k.startswith("cross_modal_") for k in added)
        assert len({k.rsplit(".", 2)[0] for k in added}) == 2 * layers


def test_conventional_prompting_is_the_official_meter_prompt_baseline():
    model = tiny_meter()
    apt = make_method("apt", {"prompting": "conventional", "num_prompts": 3})
    model = apt.apply(model)
    prompts = [n for n, p in model.named_parameters() if n.endswith("context_prompt")]
    # one prompt set per co-attention layer's cross-attention (official meter_module_prompt.py: 2 × num_top_layer)
    assert len(prompts) == 4 and all(".crossattention." in n for n in prompts)
    assert apt.stats(model) == {"prompt_layers": [0, 1, 2, 3]}
    x = {"input_ids": torch.randint(3, 60, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long),
         "pixel_values": torch.randn(2, 3, 32, 32)}
    assert model.eval()(x).shape == (2, 5)
    with pytest.raises(UserError, match="vpt"):
        make_method("apt", {"prompting": "conventional"}).apply(ViLT(ViLTSpec.from_hf(tiny_config()), 5))


def test_inspect_shows_the_apt_and_das_compute_claims_on_meter_beside_the_measurement():
    from petlbench.engine.build import inspect

    info = inspect("apt", "meter", 10, text_len=50)
    (claim,) = info["published_claims"]
    assert (claim["metric"], claim["value"]) == ("gmacs_extra_vs_counterpart_pct", -82.30)
    # APT: 2 · N · p · d MACs per core (scores and diffusion), 12 cores on 50 text and 12 on 577 image tokens
    assert info["gmacs_extra"] == pytest.approx(12 * 2 * (50 + 577) * 200 * 768 / 1e9, rel=0.02)
    # conventional: the keys / values of 200 prompts (2 p d²) and the scores over them (2 N p d), 12 cross-attentions
    conventional = (12 * 2 * 200 * 768**2 + 6 * 2 * (50 + 577) * 200 * 768) / 1e9
    assert info["gmacs_extra_counterpart"] == pytest.approx(conventional, rel=0.01)
    assert claim["measured"] == info["gmacs_extra_vs_counterpart_pct"] == pytest.approx(
        100 * (info["gmacs_extra"] / info["gmacs_extra_counterpart"] - 1))
    das = inspect("das", "meter", 10, overrides={"skip": 4, "skip_blocks": (4, 5, 10, 11)}, text_len=50)
    (claim,) = das["published_claims"]
    assert claim["value"] == -11.97 and claim["measured"] == das["gmacs_change_pct"] < 0
    from petlbench.results.published import relative_claims

    assert relative_claims("das", {"skip": 1}, "meter") == [] == relative_claims("das", {"skip": 4}, "vit")


@pytest.mark.parametrize("method, kind, data, want", [
    ("apt", "vilt", "shapes-vqa", {"lr": 5e-4, "head_lr_mult": None}),  # APT repo ViLT config (VQA)
    ("das", "vilt", "shapes-vqa", {"lr": 1e-4, "head_lr_mult": None}),  # DAS repo ViLT config
    ("full", "vilt", "shapes-ve", {"lr": 1e-4, "head_lr_mult": None}),  # ViLT's own; entailment: VQA recipe
    ("apt", "meter", "shapes-vqa", {"lr": 2.5e-5, "head_lr_mult": 50.0, "fusion_lr_mult": 5.0}),
    ("das", "meter", "shapes-ve", {"lr": 2e-6, "head_lr_mult": 10.0, "fusion_lr_mult": 5.0, "warmup_epochs": 1}),
])
def test_vlp_backbones_train_with_their_official_recipe(method, kind, data, want):
    from petlbench.datasets import load_data
    from petlbench.engine.build import resolve_overrides
    from petlbench.registry import METHODS

    cfg_cls, raw = METHODS.get(method).Config, load_data(data)
    got = resolve_overrides({}, cfg_cls, raw, kind)
    shared = {"weight_decay": 0.01, "adam_beta2": 0.98, "decay": "linear", "wd_bias_norm": False}
    assert {k: got[k] for k in {**shared, **want}} == {**shared, **want}
    assert got["epochs"] == raw.epochs and got["batch_size"] == raw.batch_size  # a built-in task's compact budget
    assert resolve_overrides({"lr": 3e-3}, cfg_cls, raw, kind)["lr"] == 3e-3  # --set wins
    assert resolve_overrides({}, cfg_cls, raw, None) == resolve_overrides({}, cfg_cls, raw, "vit")  # others: unchanged


def test_meter_cross_modal_parameters_train_at_their_lr_multiplier():
    from petlbench.engine.optim import make_optimizer
    from petlbench.methods.recipe import MethodConfig

    model = make_method("apt", {"num_prompts": 4}).apply(tiny_meter())
    params = [p for p in model.parameters() if p.requires_grad]
    head = {id(p) for p in model.head.parameters()}
    fusion = {id(p) for p in VLP.fusion_parameters(model)}
    cfg = MethodConfig(lr=1e-3, head_lr_mult=50.0, fusion_lr_mult=5.0, wd_bias_norm=False)
    lrs = {id(p): g["lr"] for g in make_optimizer(params, cfg, head, 50.0, fusion=fusion).param_groups
           for p in g["params"]}
    for n, p in model.named_parameters():
        if p.requires_grad:  # official METER set_schedule: heads × lr_mult_head, names with cross_modal × 5
            want = 5e-2 if n.startswith("head.") else 5e-3 if "cross_modal" in n else 1e-3
            assert lrs[id(p)] == pytest.approx(want), n
    assert any(".apt." in n and "cross_modal" in n for n, _ in model.named_parameters())  # APT: × 5, as officially


# ------------------------------------------------------------------------------------------ the micro VLP model


def test_scene_captions_carry_the_patch_labels_of_their_images():
    from petlbench.vl.tasks import COLOURS, LABEL_HEADS
    from petlbench.vl.vlp_pretrain import scene_captions

    images, _, labels, _ = scene_captions(40, seed=0)
    assert labels.shape == (40, len(LABEL_HEADS), 8, 8) and (labels[:, 0] > 0).any(axis=(1, 2)).all()
    assert np.array_equal((labels[:, 0] > 0), (labels[:, 1] > 0))  # an object patch has a shape and a colour
    means = images.reshape(40, 8, 4, 8, 4, 3).mean(axis=(2, 4))  # per patch RGB
    palette = np.asarray(list(COLOURS.values()), dtype=float)
    nearest = 1 + np.linalg.norm(means[..., None, :] - palette, axis=-1).argmin(-1)
    obj, other = labels[:, 1] > 0, np.roll(labels[:, 1], 1, axis=0)  # another image's labels at the same patches
    # the colour label is the colour in the image there (a patch an object covers 25% of is mostly background)
    assert (nearest[obj] == labels[:, 1][obj]).mean() > 0.75 > 0.5 > (nearest[obj] == other[obj]).mean()


def test_scene_captions_describe_the_scene_and_state_one_true_fact():
    import re

    from petlbench.vl.tasks import PLURAL, _relation, render, sample_scene
    from petlbench.vl.vlp_pretrain import NUMBERS, caption, scene_captions

    images, texts, labels, truths = scene_captions(30, seed=0)
    again = scene_captions(30, seed=0)
    assert images.shape == (30, 32, 32, 3) and texts == again[1] and np.array_equal(images, again[0])
    assert np.array_equal(labels, again[2]) and truths == again[3] and not any(t in truths[i] for i, t in enumerate(texts))
    assert texts != scene_captions(30, seed=1)[1]
    rng, checked = np.random.default_rng(5), {"list": 0, "count": 0, "colour": 0, "shape": 0, "relation": 0}

    def the(name: str, scene) -> object:
        (obj,) = [o for o in scene if name in (o.shape, f"{o.colour} {o.shape}")] if " " in name else \
            [o for o in scene if o.shape == name]  # a caption names an object only when the name is unique
        return obj

    for _ in range(300):
        scene = sample_scene(rng)
        render(scene, rng)
        first, *facts = caption(scene, rng).removesuffix(".").split(". ")
        if first.startswith("there "):
            counts = {s: sum(o.shape == s for o in scene) for s in {o.shape for o in scene}}
            want = {f"{NUMBERS[n]} {s if n == 1 else PLURAL[s]}" for s, n in counts.items()}
            assert sorted(re.split(", | and ", first.split(" ", 2)[2])) == sorted(want)
            checked["count"] += 1
        else:
            assert sorted(re.split(", | and ", first)) == sorted(f"a {o.colour} {o.shape}" for o in scene)
            checked["list"] += 1
        assert len(facts) <= 1
        for fact in facts:
            if m := re.fullmatch(r"the (.+) is (left of|right of|above|below) the (.+)", fact):
                assert _relation(the(m[1], scene), the(m[3], scene), m[2])
                checked["relation"] += 1
            elif m := re.fullmatch(r"the (\w+) object is a (\w+)", fact):
                (obj,) = [o for o in scene if o.colour == m[1]]
                assert obj.shape == m[2]
                checked["shape"] += 1
            else:
                m = re.fullmatch(r"the (\w+) is (\w+)", fact)
                assert m and the(m[1], scene).colour == m[2]
                checked["colour"] += 1
    assert min(checked.values()) > 30, checked


def test_region_captions_are_true_of_their_scene_and_their_itm_negatives_are_not(monkeypatch):
    """``REGION_CAPTIONS`` (ours, off in the bundled recipe): Visual Genome-like phrases about part of the scene; an ITM
    negative that happens to be true of the image is redrawn; with the option off no caption is one."""
    import re

    from petlbench.vl import vlp_pretrain as vlp
    from petlbench.vl.tasks import PLURAL, _relation

    assert not any(t in tr for tr in vlp.scene_captions(200, seed=0)[3] for t in vlp.scene_captions(200, seed=1)[1])
    monkeypatch.setattr(vlp, "REGION_CAPTIONS", 0.5)
    _, texts, _, truths = vlp.scene_captions(400, seed=0)
    regions = [i for i, t in enumerate(texts) if t in truths[i]]
    assert 150 < len(regions) < 250 and all(t.count(".") == 1 for t in (texts[i] for i in regions))
    kinds = {"object": 0, "count": 0, "relation": 0}
    for i in regions:
        kind = "relation" if re.search("left|right|above|below", texts[i]) else "object" if texts[i][:2] == "a " \
            else "count"
        kinds[kind] += 1
    assert min(kinds.values()) > 30, kinds
    rng = np.random.default_rng(0)
    from petlbench.vl.tasks import sample_scene

    for _ in range(200):  # a positive is true by the scene's geometry, not just by membership in true_regions
        scene = sample_scene(rng)
        phrase = vlp.region(scene, rng).removesuffix(".")
        if m := re.fullmatch(r"a (\w+) (\w+) (left of|right of|above|below) a (\w+) (\w+)", phrase):
            assert any(_relation(a, b, m[3]) for a in scene for b in scene
                       if (a.colour, a.shape) == (m[1], m[2]) and (b.colour, b.shape) == (m[4], m[5]))
        elif m := re.fullmatch(r"a (\w+) (\w+)", phrase):
            assert any((o.colour, o.shape) == (m[1], m[2]) for o in scene)
        else:
            n, shape = phrase.split()
            s = next(k for k, v in PLURAL.items() if v == shape)
            assert vlp.NUMBERS.index(n) == sum(o.shape == s for o in scene) >= 2
    idx = np.arange(400)
    other = vlp._others(400, idx, np.random.default_rng(1), texts, truths)
    assert (other != idx).all() and not any(texts[j] in truths[i] for i, j in zip(idx, other, strict=True))
    assert sum(texts[j] in truths[i] for i, j in zip(idx, (idx + 1) % 400, strict=True)) > 10  # redrawing is needed


def test_word_patch_alignment_is_an_optimal_transport_distance_between_words_and_patches():
    """``WPA`` (ViLT's ITM adds 0.1 x this, objectives.compute_itm_wpa; off in the bundled recipe): IPOT's plan has
    the uniform marginals over the words (no [CLS], no final [SEP], no padding) and the patches (no image [class]),
    and words that copy patches are nearer than words that do not."""
    import torch.nn.functional as F

    from petlbench.vl import vlp_pretrain as vlp

    torch.manual_seed(0)
    t, n, d = 6, 8, 16
    states = torch.randn(3, t + 1 + n, d)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
    words = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    aligned = states.clone()
    for i, w in enumerate(words):  # every patch a copy of a word, each word copied equally often: a zero-cost plan
        ids = w.nonzero().flatten()
        aligned[i, t + 1:] = aligned[i, ids[torch.arange(n) % len(ids)]]
    cost = 1 - F.normalize(states[:, :t], dim=-1) @ F.normalize(states[:, t + 1:], dim=-1).transpose(1, 2)
    plan = vlp._ipot(cost, words)
    assert torch.allclose(plan.sum(2), words / words.sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(plan.sum(1), torch.full((3, n), 1 / n), atol=1e-3)
    assert vlp._ipot(cost, torch.zeros_like(words)).abs().sum() == 0  # a caption of special tokens only: no NaN
    assert (vlp.alignment_distance(aligned, mask) < 0.05).all() and (vlp.alignment_distance(states, mask) > 0.5).all()
    states.requires_grad_(True)
    vlp.alignment_distance(states, mask).sum().backward()
    assert states.grad[:, 0].abs().sum() == 0 == states.grad[:, t].abs().sum()  # the image's [class] token: none
    assert states.grad[0, 1:5].abs().sum() > 0 and states.grad[1, 3:t].abs().sum() == 0  # padding: none


def test_the_mlm_head_scores_only_the_caption_words_so_other_rows_keep_their_init():
    from petlbench.vl.text import OFFLINE_TEXT, text_tokenizer
    from petlbench.vl.vilt import MICRO_SPEC, ViLT
    from petlbench.vl.vlp_pretrain import PretrainHeads, caption_vocabulary, mask_tokens

    tok = text_tokenizer(OFFLINE_TEXT)
    texts = ["there are two circles and a square. the square is red.", "a red circle and a blue cross."]
    vocab = caption_vocabulary(texts, tok)
    assert set(tok.convert_ids_to_tokens(vocab.tolist())) == set(
        "there are two circles and a square . the is red circle blue cross".split())
    torch.manual_seed(0)
    model = ViLT(MICRO_SPEC, 2)
    heads = PretrainHeads(model, vocab)
    ids = torch.tensor([tok(texts[0])["input_ids"]] * 50)
    masked, labels = mask_tokens(ids, torch.ones_like(ids), tok, np.random.default_rng(0), vocab)
    assert set(masked[(masked != ids) & (masked != tok.mask_token_id)].tolist()) <= set(vocab.tolist())
    logits = heads.mlm(torch.randn(7, MICRO_SPEC.hidden_size))
    assert logits.shape == (7, len(vocab))
    logits.sum().backward()
    grad = model.text_embeddings.word_embeddings.weight.grad
    touched = grad.abs().sum(1).nonzero().flatten()
    assert torch.equal(touched, vocab)  # "what", "how", "?" get no push-down: they keep their initialisation
    assert torch.equal(heads.index[vocab], torch.arange(len(vocab))) and int(heads.index[tok.mask_token_id]) == -100
    assert int(labels.ne(-100).sum()) > 0


def test_vl_pretraining_can_keep_the_patch_labels_and_give_itm_its_own_pooler(monkeypatch):
    """The two pretraining options (ours, off in the bundled recipe; docs/vl.md): the scene encoder's patch labels as
    a third loss, and ITM reading [CLS] through a pooler of its own, so the model's pooler (what the task heads
    read) gets no gradient in pretraining."""
    from petlbench.data.preprocess import Preprocess
    from petlbench.vl import vlp_pretrain as vlp
    from petlbench.vl.data import tokenizer_for
    from petlbench.vl.text import OFFLINE_TEXT, text_tokenizer
    from petlbench.vl.vilt import MICRO_SPEC

    monkeypatch.setattr(vlp, "PATCH_LOSS", 1.0)
    monkeypatch.setattr(vlp, "ITM_OWN_POOLER", True)
    images, texts, labels, _ = vlp.scene_captions(8, seed=3)
    model, tok = vlp.build_model(0).eval(), text_tokenizer(OFFLINE_TEXT)  # eval: no dropout, comparable losses
    heads = vlp.PretrainHeads(model, vlp.caption_vocabulary(texts, tok))
    cfg = model.data_config()
    args = (images, texts, texts[1:] + texts[:1], tokenizer_for(OFFLINE_TEXT, MICRO_SPEC.max_text_len), tok,
            Preprocess(cfg["input_size"], cfg["mean"], cfg["std"]))
    loss, acc = vlp._losses(model, heads, *args, np.random.default_rng(0), labels)
    loss.backward()
    assert set(acc) == {"mlm", "itm", "patch_shape"} and all(0 <= v <= 100 for v in acc.values())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.patches.parameters())
    assert all(p.grad is not None for p in heads.itm.parameters())
    assert all(p.grad is None for p in model.pooler.parameters())
    without, _ = vlp._losses(model, heads, *args, np.random.default_rng(0))  # the same batch, no patch labels
    assert without.item() < loss.item()
    monkeypatch.setattr(vlp, "WPA", 0.1)  # + ViLT's word-patch alignment: (mean positive - mean negative distance) / 10
    with_wpa, _ = vlp._losses(model, heads, *args, np.random.default_rng(0))
    assert with_wpa.item() != without.item() and abs(with_wpa.item() - without.item()) < 0.2


def test_pretraining_on_another_device_is_for_vl_scenes_and_needs_that_device(tmp_path):
    from petlbench.engine.pretrain import pretrain

    with pytest.raises(UserError, match="vl-scenes / vl-scenes-meter only"):
        pretrain(out=tmp_path / "m.safetensors", steps=1, data="scenes", device="cuda")
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        pretrain(out=tmp_path / "m.safetensors", steps=1, data="vl-scenes", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            pretrain(out=tmp_path / "m.safetensors", steps=1, data="vl-scenes", device="cuda")
    assert not list(tmp_path.iterdir())  # nothing written


def test_pretraining_the_micro_vlp_model_saves_a_small_file_that_loads_back(tmp_path):
    from safetensors.torch import load_file

    from petlbench.engine.pretrain import pretrain
    from petlbench.vl.vilt import MICRO, ROWS, create_vilt
    from petlbench.vl.vlp_pretrain import build_model

    out = tmp_path / "m.safetensors"
    info = pretrain(out=out, steps=2, batch_size=4, data="vl-scenes", n_scenes=40, eval_images=8)
    assert info["model"] == MICRO and 0 <= info["eval_itm_acc"] <= 100 and info["lr"] == 5e-4
    pretrain(out=tmp_path / "again.safetensors", steps=2, batch_size=4, data="vl-scenes", n_scenes=40, eval_images=8)
    assert (tmp_path / "again.safetensors").read_bytes() == out.read_bytes()  # the recipe is bit-for-bit repeatable
    saved = load_file(str(out))
    rows = saved[ROWS]
    assert 20 < len(rows) < 1000  # the generated vocabulary (captions and task texts), not 30,522 rows
    model, meta = create_vilt(MICRO, 3, weights=str(out))
    assert meta["weights_source"] == "file:m.safetensors" and model.tokenizer_name == "minilm"
    words = model.text_embeddings.word_embeddings.weight
    assert torch.equal(words[rows], saved["text_embeddings.word_embeddings.weight"])
    unseen = torch.ones(len(words), dtype=torch.bool)
    unseen[rows] = False
    assert not words[unseen].any()  # words the micro model never saw embed to zero
    assert torch.equal(model.state_dict()["transformer.blocks.5.mlp.fc2.weight"], saved["transformer.blocks.5.mlp.fc2.weight"])
    from petlbench.models.backbones import create_backbone

    vit = create_backbone("petl_vit_micro_scenes", 1)[0]  # ViLT starts from a pretrained ViT: the micro one
    assert torch.equal(build_model(0).transformer.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    with pytest.raises(UserError, match="vl-scenes"):
        create_vilt(MICRO, 3, weights=str(tmp_path / "missing.safetensors"))


def test_pretraining_the_micro_meter_trains_only_its_fusion_and_saves_only_that(tmp_path):
    from safetensors.torch import load_file

    from petlbench.engine.pretrain import pretrain
    from petlbench.vl.meter import ENCODERS, MICRO, create_meter, micro_meter

    out = tmp_path / "m.safetensors"
    info = pretrain(out=out, steps=2, batch_size=4, data="vl-scenes-meter", n_scenes=40, eval_images=8)
    assert info["model"] == MICRO and info["arch"] == "METER" and 0 <= info["eval_itm_acc"] <= 100
    pretrain(out=tmp_path / "again.safetensors", steps=2, batch_size=4, data="vl-scenes-meter", n_scenes=40,
             eval_images=8)
    assert (tmp_path / "again.safetensors").read_bytes() == out.read_bytes()  # the recipe is bit-for-bit repeatable
    saved = load_file(str(out))
    fresh, _ = micro_meter(3)  # the encoders as packaged / bundled, the rest at random
    fusion = {k for k in fresh.state_dict() if not k.startswith((*ENCODERS, "head."))}
    assert set(saved) == fusion  # neither encoder nor a task head is saved
    model, meta = create_meter(MICRO, 3, weights=str(out))
    assert meta["weights_source"].startswith("file:m.safetensors;text=pkg:") and model.tokenizer_name == "minilm"
    state = model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    for key in ("text_transformer.encoder.layer.5.output.dense.weight", "vit_model.blocks.5.mlp.fc2.weight"):
        assert torch.equal(state[key], fresh.state_dict()[key])  # frozen in pretraining: the encoders as they were
    assert not torch.equal(state["cross_modal_text_layers.0.output.dense.weight"],
                           fresh.state_dict()["cross_modal_text_layers.0.output.dense.weight"])
    assert [n for n, p in model.named_parameters() if p.requires_grad and n.startswith(ENCODERS)] == []
    with pytest.raises(UserError, match="vl-scenes-meter"):
        create_meter(MICRO, 3, weights=str(tmp_path / "missing.safetensors"))


@pytest.mark.parametrize("model", ["vilt", "test_vit"])
def test_apt_has_a_conventional_counterpart_only_on_meter(model):
    from petlbench.engine.build import inspect

    info = inspect("apt", model, 10, text_len=8)
    assert "gmacs_extra_vs_counterpart_pct" not in info and info["params_added"] > 0


def test_the_bundled_micro_vlp_model_is_vl_pretrained():
    import json
    from importlib import resources

    from petlbench.vl.vilt import MICRO, create_vilt

    path = Path(str(resources.files("petlbench.assets").joinpath(f"{MICRO}.json")))
    meta = json.loads(path.read_text())
    # measured once when the weights were made, on 1,000 held-out scene-caption pairs: image-text matching against
    # another scene's caption (chance 50; a caption of counts alone may fit both scenes) and masked words (chance 1
    # in the captions' 29 words)
    assert meta["model"] == MICRO and meta["eval_itm_acc"] > 70 and meta["eval_mlm_acc"] > 50
    model, info = create_vilt(MICRO, 3)
    assert info["weights_source"] == f"file:{MICRO}.safetensors" and info["weights_sha256"] == meta["sha256"]
    random, _ = create_vilt(MICRO, 3, pretrained=False)
    assert not torch.equal(model.blocks[5].mlp.fc2.weight, random.blocks[5].mlp.fc2.weight)


def test_the_bundled_micro_meter_is_vl_pretrained():
    import json
    from importlib import resources

    from petlbench.vl.meter import MICRO, create_meter

    meta = json.loads(Path(str(resources.files("petlbench.assets").joinpath(f"{MICRO}.json"))).read_text())
    # measured once when the fusion was made, on 1,000 held-out scene-caption pairs (chance: ITM 50, MLM 1 in 29;
    # the micro ViLT: 78.3 / 76.9)
    assert meta["model"] == MICRO and meta["eval_itm_acc"] > 90 and meta["eval_mlm_acc"] > 70
    model, info = create_meter(MICRO, 3)
    assert info["weights_source"].startswith(f"file:{MICRO}.safetensors;") and info["weights_sha256"] == meta["sha256"]
    random, _ = create_meter(MICRO, 3, pretrained=False)
    layer = "cross_modal_text_layers.5.output.dense.weight"
    assert not torch.equal(model.state_dict()[layer], random.state_dict()[layer])


def test_the_micro_meter_refuses_another_image_size_in_one_line(cli, tmp_path):
    """Its image encoder is the 32x32 micro ViT: --img-size would be recorded but not applied, so it is refused."""
    from petlbench.vl.meter import MICRO

    code, _, err = cli("run", "linear", "--dataset", "shapes-vqa", "--model", MICRO, "--img-size", "64",
                       "--out", tmp_path / "s")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "omit --img-size" in err, err
    assert not (tmp_path / "s").exists()


def test_the_recipe_warm_up_share_survives_an_epoch_override():
    """ViLT's 10% warm-up of 10 epochs stays 10% when a suite sets 12 epochs (not 1 of the class default's 100)."""
    from petlbench.datasets import load_data
    from petlbench.engine.build import resolve_overrides
    from petlbench.methods.full import FullConfig

    got = resolve_overrides({"epochs": 12, "batch_size": 32}, FullConfig, load_data("shapes-vqa"), "vilt")
    assert (got["epochs"], got["warmup_epochs"]) == (12, 1)
