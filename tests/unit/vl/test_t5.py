"""The T5 VL model (petlbench.vl.models.t5, backbone kind ``t5``): routing of ``TEXT+VISION`` names whose text side is a
T5, the offline t5-base / t5-small configs, the official per-block encoder and one-token decoder, the all-visual-
tokens baseline forward, data from a T5 tokenizer (no token_type_ids), and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from petlbench.datasets import load_data
from petlbench.errors import UserError
from petlbench.tracks import apply_method
from petlbench.vl.data.raw import prepare_vl
from petlbench.vl.models.bert import create_vl_backbone, vl_gmacs
from petlbench.vl.models.family import VL_PAIRS
from petlbench.vl.models.t5 import VLT5Model
from petlbench.vl.models.text import T5_PAIR, load_text_encoder

from ...checks import one_line_error
from ...text_models import T5_CLASSES, T5_IMG, T5_LEN, t5_batch, t5_tokenizer, tiny_t5_vl

# ----------------------------------------------------------------------------- routing and offline configs


def test_a_t5_text_side_builds_the_t5_pair_of_kind_t5():
    model, info = create_vl_backbone("t5-small+test_vit", T5_CLASSES, pretrained=False, img_size=T5_IMG)
    assert isinstance(model, VLT5Model) and VL_PAIRS.kind(model) == "t5" and "t5" in VL_PAIRS.kinds
    assert info["model"] == "t5-small+test_vit" and model.tokenizer_name == "t5-small"
    cfg = model.text.config  # t5-small's config.json
    assert (cfg.d_model, cfg.d_ff, cfg.num_heads, cfg.num_layers, cfg.num_decoder_layers) == (512, 2048, 8, 6, 6)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias", "vis_proj.weight", "vis_proj.bias", "vis_type"}
    assert model.data_config()["tokenizer"] == "t5-small" and model.data_config()["input_size"] == (3, T5_IMG, T5_IMG)


def test_t5_base_config_is_its_config_json_and_t5model_has_222_903_552_parameters():
    """t5-base: shared embedding 32128·768 = 24,674,304; an encoder block 4·768² (self-attention) + 2·768·3072 (FFN)
    + 2·768 (LayerNorms) = 7,079,424, a decoder block 9,439,488 (+ cross-attention 4·768² + its LayerNorm); each
    stack's block 0 a 32×12 relative-attention table (384) and a final LayerNorm (768):
    24,674,304 + 12·7,079,424 + 1,152 + 12·9,439,488 + 1,152 = 222,903,552."""
    with torch.device("meta"):
        model, _ = create_vl_backbone(T5_PAIR, 10, pretrained=False)
    cfg = model.text.config
    assert (cfg.vocab_size, cfg.d_model, cfg.d_ff, cfg.d_kv, cfg.num_heads, cfg.num_layers, cfg.num_decoder_layers,
            cfg.relative_attention_num_buckets, cfg.decoder_start_token_id) == (32128, 768, 3072, 64, 12, 12, 12, 32, 0)
    assert sum(p.numel() for p in model.text.parameters()) == 222_903_552
    assert model.vision.embed_dim == 768 and sum(p.numel() for p in model.fusion_parameters()) == 768 * 768 + 2 * 768


@pytest.mark.heavy
def test_hub_t5_fails_fast_offline_and_single_modality_is_refused_in_one_line():
    with pytest.raises(UserError, match="Hugging Face hub") as e:  # HF_HUB_OFFLINE=1 (conftest)
        load_text_encoder("t5-base", pretrained=True)
    assert "\n" not in str(e.value) and "t5-base" in str(e.value)
    for modality in ("text", "image"):
        with pytest.raises(UserError, match="modality 'both' only") as e:
            create_vl_backbone("t5-small+test_vit", 3, pretrained=False, img_size=T5_IMG, modality=modality)
        assert "\n" not in str(e.value)


def test_list_models_shows_the_t5_pair(cli, monkeypatch):
    from petlbench import progress

    monkeypatch.setattr(progress.console, "width", 300)  # names whole (narrow consoles wrap them)
    code, out, _ = cli("list", "models")
    assert code == 0 and T5_PAIR in out and "DVP on T5" in out


# ----------------------------------------------------------------------------- the forward


def test_baseline_forward_reads_the_last_decoder_token():
    model = tiny_t5_vl().eval()
    x, _ = t5_batch()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (4, 1, 32) and model(x).shape == (4, T5_CLASSES)
        torch.testing.assert_close(model(x), model.head(feats[:, -1]))
        other = dict(x, pixel_values=torch.randn_like(x["pixel_values"]))
        assert not torch.allclose(model(x), model(other))  # the visual tokens reach the decoder


def test_padding_changes_nothing_and_sdpa_equals_eager():
    """Visual tokens come first: extra right padding (masked) moves no relative position."""
    x, _ = t5_batch()
    padded = dict(x, input_ids=torch.nn.functional.pad(x["input_ids"], (0, 5)),
                  attention_mask=torch.nn.functional.pad(x["attention_mask"], (0, 5)))
    sdpa, eager = tiny_t5_vl().eval(), tiny_t5_vl(attn="eager").eval()
    with torch.no_grad():
        torch.testing.assert_close(sdpa(padded), sdpa(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sdpa(x), eager(x), rtol=1e-5, atol=1e-5)


def test_only_block_0_of_each_stack_has_relative_positions():
    """The official per-block calls with position_bias=None: later blocks get a zero bias (a T5Stack would share
    block 0's bias with every block)."""
    model = tiny_t5_vl().eval()
    biases = {}
    for stack in ("encoder", "decoder"):
        for i, block in enumerate(getattr(model.text, stack).block):
            block.layer[0].SelfAttention.register_forward_hook(
                lambda mod, args, out, key=(stack, i): biases.__setitem__(key, out[1]))
    with torch.no_grad():
        model(t5_batch()[0])
    assert len(biases) == 6
    for (_, i), bias in biases.items():
        assert (bias.abs().sum() > 0) == (i == 0)


def test_the_official_decoder_mask_is_not_causal():
    """Blocks get an explicit all-ones self-attention mask (the official merge mask), never SDPA's causal default."""
    model = tiny_t5_vl().eval()
    memory = torch.randn(2, 5, 32)
    y = torch.randn(2, 3, 32)
    with torch.no_grad():
        out = model.decode(y, memory, torch.ones(2, 5))
        later = model.decode(torch.cat([y[:, :1], torch.randn(2, 2, 32)], 1), memory, torch.ones(2, 5))
    assert not torch.allclose(out[:, 0], later[:, 0])  # token 0 sees the tokens after it


def test_vision_stays_frozen_in_eval_and_gmacs_count_the_decoder_tokens():
    model = tiny_t5_vl().train()
    assert model.text.training and not model.vision.training
    assert not any(p.requires_grad for p in model.vision.parameters())
    g = vl_gmacs(model, text_len=T5_LEN)
    assert g["tokens"] == 1 and 0 < g["gmacs_vision"] < g["gmacs"]
    assert model.example_inputs(T5_LEN)["input_ids"].shape == (1, T5_LEN)


def test_data_from_a_t5_tokenizer_without_token_type_ids_trains_the_t5_pair():
    """prepare_vl with a real T5 (Unigram) tokenizer: input_ids + attention_mask only, ``</s>`` appended."""
    raw = load_data("shapes-vqa", limit=8)
    tok = t5_tokenizer(raw.splits["train"].texts)
    model = tiny_t5_vl()
    splits = prepare_vl(raw, model.data_config(),
                        tokenize=lambda t: dict(tok(list(t), padding=True, truncation=True, return_tensors="pt")))
    x, y = next(iter(splits.train.batches(4)))
    assert set(x) == {"input_ids", "attention_mask", "pixel_values"} and (x["input_ids"] == 1).sum() == 4
    model.head = torch.nn.Linear(32, splits.num_classes)
    splits.task.loss(model(x), y).backward()
    assert model.head.weight.grad is not None and model.vis_proj.weight.grad is not None


def test_a_t5_pair_is_refused_by_methods_without_the_t5_kind_in_one_line(cli, tmp_path):
    code, _, err = cli("run", "lora", "--model", "t5-small+test_vit", "--img-size", str(T5_IMG), "--no-pretrained",
                       "--dataset", "shapes-vqa", "--limit", "8", "--out", tmp_path / "s")
    one_line_error(code, err, "which t5 backbones do not offer")
    assert not (tmp_path / "s" / "results.csv").exists()


@pytest.mark.heavy
def test_inspect_linear_on_the_t5_pair_counts_head_and_fusion(cli):
    code, out, err = cli("inspect", "linear", "--model", "t5-small+test_vit", "--img-size", str(T5_IMG),
                         "--num-classes", "3", "--json", "--text-len", "8")
    assert code == 0, err
    info = json.loads(out)
    assert info["params_trainable_excl_head"] == 64 * 512 + 512 + 512  # vis_proj + vis_type
    assert info["gmacs_vision"] > 0 and info["gmacs_text"] == pytest.approx(info["gmacs"] - info["gmacs_vision"])


def test_full_fine_tuning_on_the_t5_pair_trains_the_whole_t5_and_never_the_visual_encoder():
    from petlbench.engine.build import make_method

    model = apply_method(make_method("full"), tiny_t5_vl())
    assert all(p.requires_grad for p in model.text.parameters())
    assert not any(p.requires_grad for p in model.vision.parameters())
    assert model.head.weight.requires_grad and model.vis_proj.weight.requires_grad
