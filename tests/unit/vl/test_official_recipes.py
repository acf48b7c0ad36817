"""APT, DAS and their baselines on ViLT and METER as the official code trains them: the learnable classifier token,
what trains with every method, where adapters and APT sit relative to the dropout, the learning-rate groups, METER's
position-embedding resize, RandAugment and DAS's search schedule (docs/methods.md, the deviations table)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from petlbench.engine.build import make_method
from petlbench.errors import UserError
from petlbench.tracks import apply_method

from ...vl_models import tiny_meter, tiny_vilt


def _inputs(vocab: int = 60, t: int = 8, img: int = 32, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(3, vocab, (n, t), generator=g), "attention_mask": torch.ones(n, t, dtype=torch.long),
            "pixel_values": torch.randn(n, 3, img, img, generator=g)}


def test_the_classifier_token_trains_with_every_apt_repo_method_and_changes_meter_at_init():
    """meter_module_apt.py: 129 (token4classifier replaces the text stream's first state entering the co-attention
    layers); DAS on ViLT has none (the DAS repo's ViLT modules)."""
    for method in ("linear", "adapter", "lora", "apt", "full", "bitfit"):
        assert make_method(method, kind="vilt").cfg.classifier_token and make_method(method, kind="meter").cfg.classifier_token
    assert not make_method("das", kind="vilt").cfg.classifier_token and make_method("das", kind="meter").cfg.classifier_token
    assert not make_method("adapter").cfg.classifier_token  # vision kinds: none
    x = _inputs()
    plain, tokened = tiny_meter().eval(), apply_method(make_method("linear", kind="meter"), tiny_meter().eval())
    assert tokened.token4classifier.shape == (1, 1, 32) and tokened.token4classifier.requires_grad
    with torch.no_grad():
        assert not torch.allclose(plain(x), tokened(x))  # the function changes at initialisation
        tokened.token4classifier.copy_(plain.cross_modal_text_transform(plain.text_transformer(
            input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state)[:1, :1])
        same = plain(x)[0], tokened(x)[0]
    torch.testing.assert_close(*same)  # it only replaces the first state


def test_vilt_trains_its_segment_embedding_and_refuses_a_token_on_a_kind_without_one():
    model = tiny_vilt()
    assert model.text_embeddings.token_type_embeddings.weight.requires_grad  # official substring "token_type_embeddings"
    assert not model.text_embeddings.word_embeddings.weight.requires_grad
    from ...vl_models import tiny_vl

    with pytest.raises(UserError, match="classifier_token=true needs a kind") as e:
        apply_method(make_method("linear", {"classifier_token": True}), tiny_vl())
    assert "\n" not in str(e.value)


def test_apt_on_vilt_adds_its_term_before_the_attention_dropout():
    """vision_transformer_apt.py: 411-414 (proj, APT, proj_drop)."""
    model = apply_method(make_method("apt", {"num_prompts": 4, "classifier_token": False}, kind="vilt"), tiny_vilt())
    attn = model.blocks[0].attn
    assert isinstance(attn.proj_drop, nn.Identity) and isinstance(attn.apt_drop, nn.Dropout) and attn.apt_drop.p == 0.1
    model.train()
    torch.manual_seed(0)
    h = torch.randn(2, 5, 32)
    out = attn(h)
    zeros = (out == 0).float().mean().item()
    assert 0.02 < zeros < 0.25  # dropout after APT zeroes whole entries of the sum


def test_meter_adapters_sit_before_the_dropout_and_das_skip_adapters_take_the_base_lr():
    """bert_model_adapter.py: 386-392 (dense, adapter, dropout); meter_module_train.py: 179-189 (skip adapters outside
    the cross-modal layers: the base lr of meter_utils.set_schedule)."""
    model = apply_method(make_method("adapter", {"bottleneck": 4}, kind="meter"), tiny_meter())
    out = model.cross_modal_text_layers[0].crossattention.output
    assert out.pre_drop_adapter is not None and out.seq_adapter is None
    from petlbench.vl.models.family import VLP

    das = apply_method(make_method("das", {"skip": 1, "skip_bottleneck": 4, "bottleneck": 4}, kind="meter"),
                       tiny_meter())
    fusion = {id(p) for p in VLP.fusion_parameters(das)}
    skips = [p for n, p in das.named_parameters() if ".das_skip." in n]
    parallel = [p for n, p in das.named_parameters() if "par_adapter" in n]
    assert skips and parallel and not any(id(p) in fusion for p in skips) and all(id(p) in fusion for p in parallel)


def test_apt_scale_trains_on_vilt_but_not_on_meter():
    """vilt_module_apt.py: 13 (trainable 'APT') and meter_module_apt.py: 17 (trainable 'mm': the scale stays 0)."""
    vilt = apply_method(make_method("apt", {"num_prompts": 4, "classifier_token": False}, kind="vilt"), tiny_vilt())
    meter = apply_method(make_method("apt", {"num_prompts": 4}, kind="meter"), tiny_meter())
    assert all(p.requires_grad for n, p in vilt.named_parameters() if n.endswith("apt.log_scale"))
    scales = [p for n, p in meter.named_parameters() if n.endswith("apt.log_scale")]
    assert len(scales) == 8 and not any(p.requires_grad for p in scales)


def test_meter_resizes_position_embeddings_as_meter_does():
    """clip_model.py adapt_position_encoding: F.interpolate(bicubic) on the patch grid, the class position kept; timm's
    antialiased resample differs."""
    import torch.nn.functional as F
    from timm.layers import resample_abs_pos_embed

    from petlbench.vl.models.meter import adapt_position_encoding

    pos = torch.randn(1, 1 + 18 * 18, 8, generator=torch.Generator().manual_seed(0))  # 288 px, patch 16
    ours = adapt_position_encoding(pos, 24)  # -> 384 px
    grid = pos[0, 1:].reshape(18, 18, 8).permute(2, 0, 1)[None]
    want = torch.cat([pos[0, :1], F.interpolate(grid, size=(24, 24), mode="bicubic")[0].permute(1, 2, 0).reshape(-1, 8)])
    torch.testing.assert_close(ours[0], want)
    timm = resample_abs_pos_embed(pos, (24, 24), num_prefix_tokens=1, interpolation="bicubic", antialias=True)
    assert (timm - ours).abs().max() > 1e-3


def test_randaugment_is_the_official_list_and_repeats_from_its_seed():
    from petlbench.data.randaugment import OPS, augment_array

    assert [o[0] for o in OPS] == ["AutoContrast", "Equalize", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
                                   "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXabs",
                                   "TranslateYabs"]
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    a = augment_array(images, np.random.default_rng(1))
    assert a.shape == images.shape and a.dtype == np.uint8 and not np.array_equal(a, images)
    assert np.array_equal(a, augment_array(images, np.random.default_rng(1)))


def test_vl_training_images_are_augmented_per_epoch_and_the_others_never(cli, tmp_path):
    from petlbench.datasets import load_data

    raw = load_data("shapes-vqa", limit=8)
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "tokenizer": "minilm",
           "augment": "randaugment"}
    splits = raw.prepare(cfg)
    g = torch.Generator().manual_seed(0)
    first, second = (next(iter(splits.train.batches(8, shuffle=True, generator=g)))[0]["pixel_values"] for _ in range(2))
    plain = raw.prepare({k: v for k, v in cfg.items() if k != "augment"})
    test_a, test_b = (next(iter(s.test.batches(8)))[0]["pixel_values"] for s in (splits, plain))
    assert not torch.equal(first, second) and torch.equal(test_a, test_b)
    code, _, err = cli("run", "linear", "--set", "randaugment=true", "--model", "test_vit", "--no-pretrained",
                       "--img-size", "32", "--out", tmp_path)
    assert code == 2 and "randaugment" in err and not (tmp_path / "results.csv").exists()


def test_das_searches_with_the_official_schedule_and_train_mode_rewards_on_vilt_and_meter():
    for kind in ("vilt", "meter"):
        cfg = make_method("das", kind=kind).cfg
        assert cfg.search_schedule and not cfg.reward_eval_mode
    vision = make_method("das").cfg
    assert not vision.search_schedule and vision.reward_eval_mode  # ours on the vision kinds (mini-vtab rows)
    assert "search: " in make_method("das", kind="vilt").search_cost()
    assert "--set search_updates=N" in make_method("dvp").search_cost()


def test_inspect_lists_what_trains_by_name(cli):
    import json

    code, out, err = cli("inspect", "apt", "--model", "petl_vilt_micro_scenes", "--num-classes", "3", "--json")
    assert code == 0, err
    groups = json.loads(out)["trainable_groups"]
    assert groups["token4classifier"] == 128 and groups["pooler.dense.weight"] == 128 * 128
    assert groups["text_embeddings.token_type_embeddings.weight"] == 2 * 128  # ViLT's segment embedding trains
    assert groups["transformer.blocks.*.attn.apt.prompt"] == 6 * 200 * 128  # the layer index folded
