"""The VL-pretrained backbones (``petlbench.vl.models.vilt``, ``vl.models.meter``): ViLT computes what transformers' ``ViltModel``
computes; the official ViLT and METER checkpoint layouts load; the published APT / DAS parameter anchors on a random
ViLT-B/32 and METER; the dropout policy; offline failure; every supporting method trains only what it declares."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from petlbench.engine.build import build, frozen_mode, make_method
from petlbench.engine.loop import set_train_mode
from petlbench.errors import UserError
from petlbench.tracks import apply_method
from petlbench.vl.models.family import VLP
from petlbench.vl.models.vilt import ViLT, ViLTSpec, create_vilt, hf_to_vilt, load_backbone_state

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


@pytest.mark.heavy
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
    # trained with every method besides the head (official trainable substrings "pooler", "token_type_embeddings"):
    # the pooler, the modality embedding and the text embeddings' segment embedding
    lin = vilt_b32["linear"].model
    head = sum(p.numel() for p in lin.head.parameters())
    assert sum(p.numel() for p in lin.parameters() if p.requires_grad) - head == (d * d + d) + 2 * d + 2 * d


@pytest.mark.heavy
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
    from petlbench.vl.models.text import text_tokenizer

    with pytest.raises(UserError, match="tokenizer 'roberta-base'") as e:  # METER's, needed with --no-pretrained too
        text_tokenizer("roberta-base")
    assert "--model petl_vilt_micro_scenes" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("method", ["apt", "das", "adapter", "lora", "bitfit", "linear", "full"])
def test_every_vilt_method_trains_only_what_it_declares(method):
    torch.manual_seed(0)
    model = ViLT(ViLTSpec.from_hf(tiny_config(max_position_embeddings=12)), 5).freeze()
    m = make_method(method, {"num_prompts": 4} if method == "apt" else {})
    model = apply_method(m, model).train()
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
    from petlbench.vl.models.meter import from_official, to_official

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


@pytest.mark.heavy
def test_meter_anchors_on_a_random_meter(backbones_built_once):
    from petlbench.vl.models.meter import METER

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
    das = build(make_method("das", {"skip": 4}, kind="meter"), "meter", 3129, pretrained=False)
    runs = (12 - 4) * 3 * official_adapter(d, 96) + 4 * official_adapter(d, 288)
    token = d  # METER's recipe adds the official learnable classifier token (token4classifier)
    assert sum(p.numel() for p in das.model.parameters()) - das.backbone_total - token == runs == 5_376_384
    assert VLP.kind(das.model) == "meter" and frozen_mode("auto", das) == "train"


@pytest.mark.heavy
@pytest.mark.parametrize("model, method, want", [
    ("vilt", "adapter", 3_559_680), ("meter", "adapter", 5_339_520), ("vilt", "lora", 147_456), ("meter", "lora", 294_912),
    ("vilt", "apt", 1_916_940), ("meter", "apt", 3_833_856)])
def test_the_apt_papers_baselines_are_the_defaults_on_vilt_and_meter(model, method, want):
    """APT README rows (adapter 3.56M / 5.34M, LoRA 0.15M / 0.29M, APT 1.92M / 3.83M), counted on the shapes alone
    (meta tensors): each method with its defaults on the kind (the APT repository's), the classifier token apart. On
    METER APT's scale does not train (official trainable 'mm'): 24 x 159,744."""
    from petlbench.models.measure import trainable_groups

    with torch.device("meta"):
        built = build(make_method(method, kind=model), model, 3129, pretrained=False)
    groups = trainable_groups(built.model)
    own = {k: n for k, n in groups.items() if any(s in k for s in (".attn_seq.", ".mlp_seq.", "pre_drop_adapter",
                                                                   "lora_", ".apt."))}
    assert sum(own.values()) == want and groups["token4classifier"] == 768
    assert any(k.endswith("apt.log_scale") for k in own) == (method == "apt" and model == "vilt")


def test_meter_without_its_checkpoint_file_says_how_to_get_it():
    with pytest.raises(UserError, match="--weights meter_clip16_288_roberta_pretrain.ckpt"):
        VLP.create("meter", 3)


@pytest.mark.parametrize("method", ["apt", "das", "adapter", "lora", "bitfit", "linear", "full"])
def test_every_meter_method_trains_only_what_it_declares(method):
    model = apply_method(make_method(method, {"num_prompts": 4} if method == "apt" else {}), tiny_meter()).train()
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
    if method in ("adapter", "lora"):  # in the co-attention layers only (METER's table: self- and cross-attention)
        layers, per_layer = len(model.co_layers()), {"adapter": 3, "lora": 4}[method]  # outputs + FFN / q, v twice
        assert added and all(k.startswith("cross_modal_") for k in added)
        assert len({k.rsplit(".", 2)[0] for k in added}) == per_layer * layers


def test_conventional_prompting_is_the_official_meter_prompt_baseline():
    model = tiny_meter()
    apt = make_method("apt", {"prompting": "conventional", "num_prompts": 3})
    model = apply_method(apt, model)
    prompts = [n for n, p in model.named_parameters() if n.endswith("context_prompt")]
    # one prompt set per co-attention layer's cross-attention (official meter_module_prompt.py: 2 × num_top_layer)
    assert len(prompts) == 4 and all(".crossattention." in n for n in prompts)
    assert apt.stats(model) == {"prompt_layers": [0, 1, 2, 3]}
    x = {"input_ids": torch.randint(3, 60, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long),
         "pixel_values": torch.randn(2, 3, 32, 32)}
    assert model.eval()(x).shape == (2, 5)
    with pytest.raises(UserError, match="vpt"):  # a vision ViT's conventional deep prompts: the vpt method
        apply_method(make_method("apt", {"prompting": "conventional"}), timm.create_model(
            "vit_tiny_patch16_224", img_size=32, num_classes=3).requires_grad_(False))


def test_conventional_prompting_on_vilt_is_the_official_deep_prompt_baseline():
    """vilt_module_deep_prompt.py: 214-215, vision_transformer_deep_prompt.py: 325, 380 (the prompts join the normed
    sequence as keys and values, queries and the MLP for the sequence only)."""
    vilt = ViLT(ViLTSpec.from_hf(tiny_config()), 5).freeze()
    model = apply_method(make_method("apt", {"prompting": "conventional", "num_prompts": 3}), vilt)
    block = model.blocks[0]
    assert block.context_prompt.shape == (3, 32) and block.context_prompt.requires_grad
    model.eval()
    with torch.no_grad():
        assert model(inputs(t=12)).shape == (3, 5)
        xt = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(1))
        h = block.norm1(torch.cat([xt, block.context_prompt.expand(2, -1, -1)], 1))
        q, k, v = block.attn.qkv(h).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q[:, :, :4] @ k.transpose(-1, -2)) * 8 ** -0.5).softmax(-1) @ v  # 4 queries over 4 + 3 keys / values
        y = xt + block.attn.proj(a.transpose(1, 2).reshape(2, 4, 32))
        want = y + block.mlp(block.norm2(y))
        torch.testing.assert_close(block(xt), want, rtol=1e-5, atol=1e-5)


@pytest.mark.heavy
def test_inspect_shows_the_apt_and_das_compute_claims_on_meter_beside_the_measurement(backbones_built_once):
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

    model = apply_method(make_method("apt", {"num_prompts": 4}), tiny_meter())
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


def test_apt_has_no_conventional_counterpart_of_its_own_on_a_vision_vit():
    from petlbench.engine.build import inspect

    info = inspect("apt", "test_vit", 10, text_len=8)  # a ViT's conventional deep prompts are the vpt method
    assert "gmacs_extra_vs_counterpart_pct" not in info and info["params_added"] > 0


@pytest.mark.slow  # builds and counts ViLT-B/32 eight times (~20 s on 2 cores); the claim's arithmetic, deliberately
def test_apts_claim_is_reproduced_on_vilt_at_its_official_sequence():
    """APT README, ViLT table: Deep Prompt 5.14G, APT 0.91G additional FLOPs, -82.30%; measured against the official
    deep prompts (prompting=conventional on ViLT's blocks) at 40 text tokens + 200 patches + [class] (shapes only)."""
    from petlbench.engine.build import inspect

    with torch.device("meta"):
        info = inspect("apt", "vilt", 3129, text_len=40)
    assert info["official_input"] == [40, 320, 640] and info["counterpart"] == {"prompting": "conventional"}
    assert abs(info["gmacs_extra_official"] - 0.91) < 0.01 and abs(info["gmacs_extra_counterpart_official"] - 5.14) < 0.01
    (claim,) = [c for c in info["published_claims"] if c["metric"] == "gmacs_extra_vs_counterpart_pct"]
    assert claim["value"] == -82.30 and abs(claim["measured"] - claim["value"]) < 0.2
    assert info["gmacs_extra_vs_counterpart_pct"] < -85  # at the fixed 384² square runs use, not the claim's sequence


def test_the_bundled_micro_vlp_model_is_vl_pretrained():
    import json
    from importlib import resources

    from petlbench.vl.models.vilt import MICRO, create_vilt

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

    from petlbench.vl.models.meter import MICRO, create_meter

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
    from petlbench.vl.models.meter import MICRO

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
