"""DVP on T5 (methods/dvp.py on a ``VLT5Model``, plumbing in methods/_t5.py): the forward equals the official
``DVP_T5.infer`` (``dvp/modules/t5_module.py``) written out step by step, what each block sees, what each variant
trains, the exact T5-base anchors, and whole runs through the CLI (search included)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from petlbench.data.types import Splits
from petlbench.datasets import load_data
from petlbench.engine.build import make_method
from petlbench.engine.loop import Runtime, train_and_evaluate
from petlbench.errors import UserError
from petlbench.methods._t5 import layer_norms
from petlbench.methods.dvp import dvp_state
from petlbench.models import measure
from petlbench.models.family import Built
from petlbench.results.store import read_rows
from petlbench.tracks import apply_method
from petlbench.vl.models.bert import create_vl_backbone
from petlbench.vl.models.text import T5_PAIR

from ..text_models import T5_CLASSES, T5_LEN, save_text_model, t5_batch, tiny_t5_vl

LAYERS = 3  # tiny_t5_vl's encoder and decoder blocks


def dvp(model=None, **overrides):
    method = make_method("dvp", overrides)
    return method, apply_method(method, model if model is not None else tiny_t5_vl(layers=LAYERS))


# ----------------------------------------------------------------------------- the official forward, written out


def _inverted(mask: torch.Tensor) -> torch.Tensor:
    """``invert_attention_mask`` / ``get_extended_attention_mask`` of the (non-decoder) T5Model: B×1×1×N."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _official_adapter(a, y):
    """The official ``Adapter.forward``: ``x + up(relu(down(x)))``."""
    return y + a.up(F.relu(a.down(y)))


def _official_cross_attention(ca, q_in, kv):
    """The official ``Cross_Attention.forward(v=kv, k=kv, q=q_in, mask=None)`` with our module's weights."""
    b, d, heads = q_in.shape[0], ca.query.out_features, ca.heads

    def split(t):
        return t.view(b, -1, heads, d // heads).transpose(1, 2)

    q, k, v = split(ca.query(q_in)), split(ca.key(kv)), split(ca.value(kv))
    att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // heads), -1)
    return ca.merge((att @ v).transpose(1, 2).contiguous().view(b, -1, d))


def _official_encoder(t5, ids, mask, adapters: bool):
    """``compute_encoder_output`` (blocks called with position_bias=None) or, with adapters,
    ``compute_adapter_encoder_output`` (sublayers called one by one, adapter 2i / 2i + 1)."""
    enc, ext = t5.encoder, _inverted(mask)
    h = enc.dropout(enc.embed_tokens(ids))
    for block in enc.block:
        if not adapters:
            h = block(h, attention_mask=ext, position_bias=None, encoder_hidden_states=None,
                      encoder_attention_mask=None, encoder_decoder_position_bias=None)[0]
            continue
        sa, ff = block.layer[0], block.layer[-1]
        y = sa.SelfAttention(sa.layer_norm(h), mask=ext, position_bias=None)[0]
        h = h + sa.dropout(_official_adapter(sa.seq_adapter, y))
        f = ff.DenseReluDense(ff.layer_norm(h))
        h = h + ff.dropout(_official_adapter(ff.seq_adapter, f))
    return enc.dropout(enc.final_layer_norm(h))


def _official_decoder_block(block, y, self_mask, memory, cross_mask, adapters: bool):
    """``compute_layer`` or ``compute_adapter_layer`` (adapters 3i, 3i + 1, 3i + 2)."""
    if not adapters:
        return block(y, attention_mask=self_mask, position_bias=None, encoder_hidden_states=memory,
                     encoder_attention_mask=cross_mask, encoder_decoder_position_bias=None)[0]
    sa, ca, ff = block.layer
    out = sa.SelfAttention(sa.layer_norm(y), mask=self_mask, position_bias=None)[0]
    y = y + sa.dropout(_official_adapter(sa.seq_adapter, out))
    out = ca.EncDecAttention(ca.layer_norm(y), mask=cross_mask, key_value_states=memory, position_bias=None)[0]
    y = y + ca.dropout(_official_adapter(ca.seq_adapter, out))
    f = ff.DenseReluDense(ff.layer_norm(y))
    return y + ff.dropout(_official_adapter(ff.seq_adapter, f))


def official_logits(model, x, adapters: bool):
    """``DVP_T5.infer`` + the classifier, step by step (module docstring of methods/_t5.py)."""
    state = dvp_state(model)
    k, prompt = state.active, state.prompts[str(state.active)]
    t5, b = model.text, x["input_ids"].shape[0]
    pad = max(0, (model.max_text_len or 0) - x["input_ids"].shape[1])  # official collate: padding="max_length"
    ids, mask = F.pad(x["input_ids"], (0, pad)), F.pad(x["attention_mask"], (0, pad))
    image = model.vision.forward_features(x["pixel_values"])  # transformer output, before ln_post
    memory = _official_encoder(t5, ids, mask, adapters)
    start = torch.full((b, 1), t5.config.decoder_start_token_id)  # get_decoder_input
    y = t5.decoder.dropout(t5.decoder.embed_tokens(start))
    one, two, cross = torch.zeros(b, 1, 1, 1), torch.zeros(b, 1, 1, 2), _inverted(mask)  # not causal
    for i, block in enumerate(t5.decoder.block):
        if i == k:
            pooled = torch.nn.AdaptiveAvgPool1d(1)(memory.permute(0, 2, 1)).permute(0, 2, 1)
            visual_prompt = _official_cross_attention(prompt.cross_attn, pooled, image)
            y = y + prompt.token_type(torch.zeros(b, 1, dtype=torch.long))
            visual_prompt = visual_prompt + prompt.token_type(torch.ones(b, 1, dtype=torch.long))
            y = torch.cat([visual_prompt, y], 1)
        y = _official_decoder_block(block, y, one if i < k else two, memory, cross, adapters)
    y = t5.decoder.dropout(t5.decoder.final_layer_norm(y))
    return model.head(y.view(b, -1, t5.config.d_model)[:, -1])


@pytest.mark.parametrize("variant", ["full", "adp"])
@pytest.mark.parametrize("k", range(LAYERS))
def test_the_forward_is_the_official_dvp_t5_infer(k, variant):
    _, model = dvp(insert_layer=k, variant=variant)
    model.max_text_len = 16  # the official max_text_len (DVP's recipe sets it): texts padded to 16 tokens
    with torch.no_grad():  # move every tensor the placement could confuse away from its init
        for ln in layer_norms(model):
            ln.weight.uniform_(0.5, 1.5)
        for name, p in model.named_parameters():
            if "seq_adapter" in name:
                p.normal_(0, 0.2)
    x, _ = t5_batch()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), official_logits(model, x, variant == "adp"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", range(LAYERS))
def test_the_encoder_sees_the_padded_text_only_and_the_decoder_one_token_then_two(k):
    _, model = dvp(insert_layer=k)
    seen = {"encoder": [], "decoder": []}
    for stack in seen:
        for block in getattr(model.text, stack).block:
            block.register_forward_pre_hook(lambda mod, args, s=stack: seen[s].append(args[0].shape[1]))
    model.max_text_len = 16  # the official max_text_len (DVP's recipe sets it)
    with torch.no_grad():
        assert model.eval()(t5_batch()[0]).shape == (4, T5_CLASSES)
    assert seen == {"encoder": [16] * LAYERS, "decoder": [1 if i < k else 2 for i in range(LAYERS)]}
    model.max_text_len = None  # no fixed length: the text as it comes (T5_LEN tokens)
    seen["encoder"].clear()
    with torch.no_grad():
        model(t5_batch()[0])
    assert seen["encoder"] == [T5_LEN] * LAYERS


def test_the_prompt_depends_on_the_image_and_the_answer_is_read_from_the_decoder_token():
    _, model = dvp(insert_layer=1)
    model.eval()
    x, _ = t5_batch()
    other = dict(x, pixel_values=torch.randn_like(x["pixel_values"]))
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (4, 2, 32) and not torch.allclose(model(x), model(other))
        torch.testing.assert_close(model(x), model.head(feats[:, -1]))


# ----------------------------------------------------------------------------- what trains


def test_full_trains_the_whole_t5_and_the_dvp_module_without_the_fusion_layers():
    _, model = dvp()
    assert model.vis_proj is None and model.vis_type is None and model.fusion_parameters() == []
    assert all(p.requires_grad for p in model.text.parameters())
    assert not any(p.requires_grad for p in model.vision.parameters())
    rest = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad and not n.startswith("text.")}
    assert rest == {"head", "dvp"} and len(dvp_state(model).prompts) == 1


def test_adp_trains_layer_norms_and_2_plus_3_adapters_per_block_and_keeps_backbone_names():
    base = tiny_t5_vl(layers=LAYERS)
    names = set(base.text.state_dict())
    _, model = dvp(copy.deepcopy(base), variant="adp")
    text = {n for n, p in model.text.named_parameters() if p.requires_grad}
    assert text == {n for n in text if "seq_adapter" in n or "layer_norm" in n}
    assert {n for n in text if "layer_norm" in n} == {n for n in names if "layer_norm" in n}  # incl. final_layer_norm
    assert sum(n.endswith("seq_adapter.down.weight") for n in text) == 2 * LAYERS + 3 * LAYERS
    assert {n for n in model.text.state_dict() if "seq_adapter" not in n} == names
    assert not any(p.requires_grad for n, p in model.text.named_parameters() if "relative_attention_bias" in n)


def test_insert_layer_out_of_range_names_the_t5_decoder():
    with pytest.raises(UserError, match=f"insert_layer={LAYERS} out of range for a {LAYERS}-block T5 decoder"):
        dvp(insert_layer=LAYERS)


# ----------------------------------------------------------------------------- anchors on T5-base + CLIP ViT-B/16


@pytest.fixture(scope="module")
def t5_base_clip():
    """t5-base (its config.json) + CLIP ViT-B/16 (dv = 768), on the meta device."""
    with torch.device("meta"):
        model, _ = create_vl_backbone(T5_PAIR, 10, pretrained=False)
    return model


def _n(params) -> int:
    return sum(p.numel() for p in params)


def test_t5_base_anchor_full(t5_base_clip):
    """Official DVP_T5 without ``use_adapter``: the whole T5Model trains (222,903,552: tests/unit/vl/test_t5.py) +
    the DVP module, ``Cross_Attention`` 4·(768² + 768) = 2,362,368 + ``token_type_embeddings`` 2·768 = 1,536,
    i.e. 2,363,904: 225,267,456 trainable parameters without the classifier (the fusion layers are removed)."""
    total = _n(t5_base_clip.parameters())
    _, model = dvp(copy.deepcopy(t5_base_clip))
    prompt = dvp_state(model).prompts["0"]
    assert _n(prompt.parameters()) == 2_363_904
    assert measure.param_counts(model, total)["params_trainable_excl_head"] == 225_267_456


def test_t5_base_anchor_adp(t5_base_clip):
    """Official ``use_adapter``: ``encoder_adapter`` 2·12 + ``decoder_adapter`` 3·12 = 60 ``Adapter(768)``s of
    768·96 + 96 + 96·768 + 768 = 148,320 -> 8,899,200; trainable T5 parameters = names containing 'layer_norm':
    encoder 12·2 + 1 and decoder 12·3 + 1 LayerNorms of 768 -> 62·768 = 47,616; + the DVP module 2,363,904:
    11,310,720 without the classifier."""
    total = _n(t5_base_clip.parameters())
    _, model = dvp(copy.deepcopy(t5_base_clip), variant="adp")
    named = dict(model.text.named_parameters())
    assert _n(p for n, p in named.items() if "seq_adapter" in n) == 60 * 148_320 == 8_899_200
    assert _n(p for n, p in named.items() if p.requires_grad and "layer_norm" in n) == 62 * 768 == 47_616
    assert measure.param_counts(model, total)["params_trainable_excl_head"] == 11_310_720


@pytest.mark.integration  # T5-base + ViT-B/16 on the CPU: built once for both cases
@pytest.mark.parametrize("variant, expected", [("full", 225_267_456), ("adp", 11_310_720)])
def test_t5_base_anchors_through_inspect(cli, backbones_built_once, variant, expected):
    code, out, err = cli("inspect", "dvp", "--model", T5_PAIR, "--img-size", "32", "--num-classes", "10", "--json",
                         "--set", f"variant={variant}")
    assert code == 0, err
    info = json.loads(out)
    assert info["params_trainable_excl_head"] == expected and info["dvp_variant"] == variant
    assert info["gmacs_text"] < info["gmacs_text_backbone"]  # 16 text tokens in the encoder, not 16 + visual


# ----------------------------------------------------------------------------- whole runs


def _samples(seed: int, n: int):
    x, y = t5_batch(seed, n)
    return [({k: v[i] for k, v in x.items()}, y[i]) for i in range(n)]


# adp searches train the whole T5 without adapters by default (search_trains="lm", the official search configs;
# dvp.remove_adapters empties the T5 sublayers' slots on the search's copy), or the adapters ("variant")
LOOP_CASES = [("full", {}), ("adp", {"search_trains": "variant"}), ("adp", {})]


@pytest.mark.heavy
@pytest.mark.parametrize("variant, extra", LOOP_CASES)
def test_the_loop_runs_dvp_on_t5_with_its_search(variant, extra):
    torch.manual_seed(0)
    method = make_method("dvp", {"variant": variant, "search_updates": 3, "batch_size": 4, "epochs": 1,
                                 "warmup_epochs": 0, **extra})
    model = apply_method(method, tiny_t5_vl(layers=LAYERS))
    train, val = _samples(1, 12), _samples(2, 8)
    splits = Splits(train, val, _samples(3, 4), T5_CLASSES, search_train=train, search_val=val)
    out = train_and_evaluate(Built(model, {}, 0), method, splits, Runtime())
    stats = out.method_stats
    assert out.status == "ok", out.error
    assert stats["dvp_searched"] and stats["dvp_updates"] == 3 and len(stats["dvp_pi"]) == LAYERS
    assert list(dvp_state(model).prompts) == [str(stats["dvp_insert_layer"])]
    adapters = sum(n.endswith("seq_adapter.down.weight") for n, _ in model.named_parameters())
    assert adapters == (0 if variant == "full" else 5 * LAYERS)


# ----------------------------------------------------------------------------- whole runs through the CLI


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    """A tiny T5 + T5 tokenizer over the shapes-vqa questions, saved as a local model directory."""
    raw = load_data("shapes-vqa", limit=32)
    texts = [t for split in raw.splits.values() for t in split.texts]
    return save_text_model(tmp_path_factory.mktemp("models") / "tiny-t5", "t5", texts)


@pytest.mark.integration  # whole CLI runs (~10-20 s each)
@pytest.mark.parametrize("variant, extra", LOOP_CASES)
def test_dvp_runs_on_a_local_t5_pair_with_its_search(cli, tmp_path, t5_dir, variant, extra):
    sets = [a for k, v in {"variant": variant, "search_updates": 3, **extra}.items() for a in ("--set", f"{k}={v}")]
    code, out, err = cli("run", "dvp", "--dataset", "shapes-vqa", "--model", f"{t5_dir}+test_vit", "--img-size", "32",
                         "--no-pretrained", "--limit", "32", "--epochs", "1", "--batch-size", "16", *sets,
                         "--out", tmp_path / "store")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    assert row["status"] == "ok" and row["method"] == "dvp" and row["track"] == "vl", row["error"]
    assert row["model"] == f"{t5_dir}+test_vit" and row["weights_source"] == "text=random-init;vision=random-init"
    stats = json.loads(row["method_stats"])
    assert stats["dvp_variant"] == variant and stats["dvp_searched"] and stats["dvp_updates"] == 3
    assert len(stats["dvp_pi"]) == 2  # the tiny T5's 2 decoder blocks
