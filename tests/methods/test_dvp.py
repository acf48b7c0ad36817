"""DVP (methods/dvp.py): the forward (text-only layers before K, one prompt token from K), the exact BERT-base
anchors, measured GMACs against the all-visual-tokens baseline, the KAB-APP bandit, and that the search only
reads training and held-out data."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import types

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from petlbench.data.types import Splits
from petlbench.engine.build import make_method
from petlbench.engine.loop import Reporter, Runtime, _Loop, train_and_evaluate
from petlbench.errors import UserError
from petlbench.methods import dvp as dvp_mod
from petlbench.methods.base import SearchContext
from petlbench.methods.dvp import DVP, DVPConfig, dvp_state, preference_update, score_percent
from petlbench.models import measure
from petlbench.models.family import Built
from petlbench.tracks import apply_method
from petlbench.vl.models.bert import create_vl_backbone, vl_gmacs

from ..vl_models import CLASSES, IMG, T, batch, hand_macs, tiny_vl

DEPTH = 4  # tiny_vl's language model


def dvp(model=None, **overrides):
    method = DVP(DVPConfig(**overrides))
    return method, apply_method(method, model if model is not None else tiny_vl())


def ctx_for(train, val, steps: int, log=lambda s: None) -> SearchContext:
    return SearchContext(
        train_batches=train, val_batches=val, device=torch.device("cpu"), loss_fn=F.cross_entropy,
        autocast=contextlib.nullcontext,
        make_optimizer=lambda ps, model=None, lr=None: torch.optim.AdamW(list(ps), lr=lr or 1e-3),
        steps_per_epoch=steps, log=log,
    )


def synthetic_ctx(steps: int = 3) -> SearchContext:
    return ctx_for(lambda: (batch(s) for s in range(steps)), lambda: (batch(100 + s) for s in itertools.count()),
                   steps)


# ----------------------------------------------------------------------------- the forward


@pytest.mark.parametrize(("recipe", "variant", "lr", "search_lr"), [
    ("vqav2", "full", 1e-4, 1e-4), ("vqav2", "adp", 1e-3, 1e-4), ("gqa", "adp", 5e-4, 1e-4),
    ("snli-ve", "adp", 5e-4, 1e-4), ("snli-ve", "full", 1e-4, 1e-4)])
def test_lr_follows_the_official_config_of_the_task_and_variant_unless_set(recipe, variant, lr, search_lr):
    """dvp/config.py dvp_adaption_bert_* / dvp_search_bert_* learning_rate, README DVP_adp learning_rate."""
    method, _ = dvp(recipe=recipe, variant=variant)
    assert (method.cfg.lr, method.cfg.search_lr) == (lr, search_lr)
    method, _ = dvp(recipe=recipe, variant=variant, lr=0.05, search_lr=0.02)
    assert (method.cfg.lr, method.cfg.search_lr) == (0.05, 0.02)
    cfg = make_method("dvp", {"variant": variant}).cfg
    assert cfg.lr is None  # resolved by apply, where the language model is known
    assert (cfg.weight_decay, cfg.search_arms, cfg.pref_lr, cfg.attn_dropout, cfg.max_text_len) == (
        0.01, 5, 0.005, 0.1, 16)


def test_the_official_head_and_text_length():
    _, model = dvp()
    head = model.get_classifier()
    assert [type(m).__name__ for m in head] == ["Linear", "LayerNorm", "GELU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (32, 64, CLASSES)
    assert float(head[0].bias.detach().abs().sum()) == 0 and abs(float(head[0].weight.detach().std()) - 0.02) < 0.005
    assert model.data_config()["max_text_len"] == 16
    _, plain = dvp(head="linear", max_text_len=None)
    assert isinstance(plain.get_classifier(), torch.nn.Linear) and "max_text_len" not in plain.data_config()


@pytest.mark.parametrize("k", range(DEPTH))
def test_layers_before_k_see_text_only_and_the_rest_one_more_token(k):
    _, model = dvp(insert_layer=k)
    seen = []
    for i, layer in enumerate(model.text.encoder.layer):
        layer.register_forward_pre_hook(lambda mod, args, i=i: seen.append((i, args[0].shape[1])))
    x, _ = batch()
    with torch.no_grad():
        assert model.eval()(x).shape == (4, CLASSES)
    assert seen == [(i, T if i < k else T + 1) for i in range(DEPTH)]


def _prepended_reference(model, x):
    """The official layout: [prompt ; text], mask [1 ; text mask], classifier on index 1."""
    state = dvp_state(model)
    k, prompt = state.active, state.prompts[str(state.active)]
    h, mask = model.text_embeddings(x)
    h = model.encode(h, mask, 0, k)
    p = prompt.cross_attn(h[:, :1], model.visual_features(x["pixel_values"])) + prompt.token_type.weight[1]
    h = torch.cat([p, h + prompt.token_type.weight[0]], 1)
    mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], 1)
    return model.head(model.encode(h, mask, k)[:, 1])


@pytest.mark.parametrize("k", [0, 2])
def test_appending_the_prompt_equals_the_official_prepending(k):
    _, model = dvp(insert_layer=k)
    x, _ = batch()
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), _prepended_reference(model, x), rtol=1e-5, atol=1e-5)


def test_the_prompt_depends_on_the_image_and_padding_is_masked():
    _, model = dvp(insert_layer=1)
    model.eval()
    x, _ = batch()
    other = dict(x, pixel_values=torch.randn_like(x["pixel_values"]))
    padded = dict(x, input_ids=F.pad(x["input_ids"], (0, 3)), attention_mask=F.pad(x["attention_mask"], (0, 3)))
    with torch.no_grad():
        assert not torch.allclose(model(x), model(other))
        torch.testing.assert_close(model(padded), model(x))


def test_fusion_layers_are_removed_and_variants_train_what_they_should():
    _, full = dvp()
    assert full.vis_proj is None and full.vis_type is None
    trainable = {n for n, p in full.named_parameters() if p.requires_grad}
    assert all(p.requires_grad for p in full.text.parameters())
    assert not any(p.requires_grad for p in full.vision.parameters())
    head = {f"head.{i}.{w}" for i in (0, 1, 3) for w in ("weight", "bias")}
    assert {n for n in trainable if not n.startswith("text.")} == {
        *head, *(f"dvp.prompts.0.cross_attn.{m}.{w}" for m in ("query", "key", "value", "merge")
                                      for w in ("weight", "bias")), "dvp.prompts.0.token_type.weight"}
    _, adp = dvp(variant="adp")
    text = {n for n, p in adp.text.named_parameters() if p.requires_grad}
    assert text and all("seq_adapter" in n or ".LayerNorm." in n for n in text)
    assert not any(n.startswith("embeddings.") for n in text)  # embeddings (and their LayerNorm) frozen
    assert sum("seq_adapter.down.weight" in n for n in text) == 2 * DEPTH


def test_vl_model_without_vision_and_bad_keys_fail_with_one_line_errors():
    with pytest.raises(UserError, match="visual encoder"):
        dvp(tiny_vl("text"))
    with pytest.raises(UserError, match="insert_layer=4 out of range"):
        dvp(insert_layer=DEPTH)
    with pytest.raises(UserError, match="heads=3"):
        dvp(heads=3)


# ----------------------------------------------------------------------------- anchors on BERT-base


@pytest.fixture(scope="module")
def bert_base_clip():
    """bert-base-uncased (BertConfig() defaults) + CLIP ViT-B/16 (dv = 768, 197 tokens), on the meta device."""
    with torch.device("meta"):
        model, _ = create_vl_backbone("bert-base-uncased+vit_base_patch16_clip_224.openai", 10, pretrained=False)
    return model


def _n(params) -> int:
    return sum(p.numel() for p in params)


def test_bert_base_anchors_dvp_adp(bert_base_clip):
    total = _n(bert_base_clip.parameters())
    _, model = dvp(copy.deepcopy(bert_base_clip), variant="adp")
    prompt = dvp_state(model).prompts["0"]
    assert _n(prompt.cross_attn.parameters()) == 2_362_368  # 4 × (768² + 768)
    assert _n(prompt.token_type.parameters()) == 1_536
    named = dict(model.text.named_parameters())
    assert _n(p for n, p in named.items() if "seq_adapter" in n) == 3_559_680  # 24 × 148,320
    assert _n(p for n, p in named.items() if p.requires_grad and "LayerNorm" in n) == 36_864
    assert measure.param_counts(model, total)["params_trainable_excl_head"] == 5_960_448


def test_bert_base_full_dvp_trains_the_whole_language_model(bert_base_clip):
    total = _n(bert_base_clip.parameters())
    _, model = dvp(copy.deepcopy(bert_base_clip), head="linear")
    counts = measure.param_counts(model, total)
    assert counts["params_trainable_excl_head"] == 108_891_648 + 2_362_368 + 1_536
    fusion = 768 * 768 + 768 + 768  # vis_proj + vis_type, removed
    assert counts["params_added"] == 2_362_368 + 1_536 - fusion


# ----------------------------------------------------------------------------- GMACs


def _hand_dvp_text_macs(k: int, t: int, nv: int, d: int, dv: int, ff: int, layers: int, classes: int) -> int:
    """Layers before K over t tokens, from K over t + 1; cross-attention q, merge (d²), k, v (nv·dv·d each),
    scores and AV (2·nv·d); head."""
    lm = hand_macs(t, d, ff, k) + hand_macs(t + 1, d, ff, layers - k)
    return lm + 2 * d * d + 2 * nv * dv * d + 2 * nv * d + d * 2 * d + 2 * d * classes  # official head


@pytest.mark.parametrize("k", [0, DEPTH - 1])
def test_gmacs_match_a_hand_count(k):
    _, model = dvp(insert_layer=k)
    nv, dv = 1 + (IMG // 16) ** 2, model.vision.embed_dim
    g = vl_gmacs(model, text_len=T)
    assert g["gmacs_text"] * 1e9 == pytest.approx(_hand_dvp_text_macs(k, T, nv, 32, dv, 64, DEPTH, CLASSES), rel=1e-9)
    assert g["tokens"] == T + 1


@pytest.mark.heavy
@pytest.mark.parametrize("text_len", [16, 40])
def test_dvp_costs_less_at_later_layers_and_both_less_than_all_visual_tokens(bert_base_clip, text_len):
    base = vl_gmacs(bert_base_clip, text_len)["gmacs_text"]
    first = vl_gmacs(dvp(copy.deepcopy(bert_base_clip), insert_layer=0)[1], text_len)["gmacs_text"]
    last = vl_gmacs(dvp(copy.deepcopy(bert_base_clip), insert_layer=11)[1], text_len)["gmacs_text"]
    assert last < first < base
    assert first < 0.2 * base  # 16 + 1 tokens instead of 16 + 197 (measured: 8.8% at 16, 17.6% at 40 tokens)


# ----------------------------------------------------------------------------- KAB-APP


def test_score_is_accuracy_or_the_vqa_score_of_the_argmax_answer():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert score_percent(logits, torch.tensor([0, 2])) == 50.0
    soft = torch.tensor([[0.3, 1.0, 0.0], [0.0, 0.6, 1.0]])  # min(#humans/3, 1) per answer
    assert score_percent(logits, soft) == pytest.approx(100 * (0.3 + 0.6) / 2)


def test_preference_update_is_the_official_rule():
    alpha = torch.tensor([0.0, 0.5, 0.0])
    pi = torch.softmax(alpha, 0)
    new = preference_update(alpha, [1, 1, 2], [80.0, 60.0, 40.0], lr=0.005)
    w = pi * (1 - pi)
    expected = alpha + torch.tensor([0.0, 0.005 * (20 + 0) * w[1], 0.005 * -20 * w[2]])
    torch.testing.assert_close(new, expected)


def test_bandit_concentrates_on_the_clearly_better_layer(monkeypatch):
    """Fake reward: inserting at layer 2 scores 100, elsewhere 0. 24 updates: 2 passes over 12 training batches."""
    monkeypatch.setattr(dvp_mod, "score_arm", lambda model, k, *a: 100.0 if k == 2 else 0.0)
    torch.manual_seed(0)
    method, model = dvp(search_updates=24)
    method.search(model, synthetic_ctx(12))
    stats = method.stats(model)
    assert stats["dvp_updates"] == 24 and stats["dvp_searched"] and stats["dvp_insert_layer"] == 2
    assert stats["dvp_pi"][2] > 0.5 and max(stats["dvp_pi"][:2] + stats["dvp_pi"][3:]) < 0.2
    assert list(dvp_state(model).prompts) == ["2"] and dvp_state(model).active == 2
    assert len(stats["dvp_reward_trace"]) == 24 and stats["dvp_reward_trace"][-1][0] == 24


def test_search_restores_what_it_trained_and_builds_a_fresh_module():
    torch.manual_seed(0)
    method, model = dvp(search_updates=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "dvp." not in n}
    logs = []
    ctx = ctx_for(lambda: (batch(s) for s in range(3)), lambda: (batch(100 + s) for s in itertools.count()), 3,
                  log=logs.append)
    method.search(model, ctx)
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], p) for n, p in before.items())
    state = dvp_state(model)
    assert len(state.prompts) == 1 and int(state.insert_layer) == state.active
    assert any(a != 0 for a in method.stats(model)["dvp_alpha"])  # the preferences moved (real rewards)
    assert "dvp: inserting the visual prompt at layer" in logs[-1]
    x, _ = batch()
    with torch.no_grad():
        assert model.eval()(x).shape == (4, CLASSES)


def test_insert_layer_skips_the_search():
    method, model = dvp(insert_layer=3)
    ctx = ctx_for(lambda: pytest.fail("no training batch expected"), lambda: pytest.fail("no reward batch"), 3)
    method.search(model, ctx)
    stats = method.stats(model)
    assert stats["dvp_insert_layer"] == 3 and not stats["dvp_searched"] and stats["dvp_updates"] == 0


@pytest.mark.heavy
@pytest.mark.parametrize("fixed", [None, 1])
def test_search_training_draws_k_uniformly_unless_search_train_layer_fixes_it(fixed):
    """Official: each search training step inserts at a uniformly drawn layer; ``search_train_layer`` (our
    diagnostic) trains one layer's module only. The arms are still scored at layers drawn from π."""
    torch.manual_seed(0)
    method, model = dvp(search_updates=12, search_train_layer=fixed)
    ks = {"train": [], "reward": []}
    model.register_forward_pre_hook(lambda mod, args: ks["train" if torch.is_grad_enabled() else "reward"].append(
        mod.dvp.active))
    method.search(model, synthetic_ctx(12))
    assert len(ks["train"]) == 12 and len(set(ks["reward"])) > 1
    assert set(ks["train"]) == ({1} if fixed is not None else set(range(DEPTH)))


def test_search_train_layer_out_of_range_is_a_one_line_error():
    with pytest.raises(UserError, match=f"search_train_layer={DEPTH} out of range .* use 0..{DEPTH - 1}"):
        dvp(search_train_layer=DEPTH)


def test_token_type_init_is_the_official_n01_unless_token_type_std_is_set():
    """Official: nn.Embedding's default N(0, 1); ``token_type_std`` (our option) re-draws it N(0, std). Both late keys
    stay out of the run identity at their neutral None (stored DVP rows keep their config hash)."""
    from petlbench.config.method_config import identity_config

    torch.manual_seed(0)
    official = dvp_state(dvp()[1]).prompts["0"].token_type.weight.detach()
    small = dvp_state(dvp(token_type_std=0.02)[1]).prompts["0"].token_type.weight.detach()
    assert 0.8 < float(official.std()) < 1.2 and 0.01 < float(small.std()) < 0.03
    assert not {"token_type_std", "search_train_layer"} & set(identity_config(DVPConfig()))
    assert identity_config(DVPConfig(token_type_std=0.02))["token_type_std"] == 0.02


class _Tagged(Dataset):
    """VL samples whose first real token is the sample's id (a token id < 100); ``forbidden`` raises on any read."""

    def __init__(self, ids: range, forbidden: bool = False) -> None:
        self.ids, self.forbidden = list(ids), forbidden

    def __len__(self) -> int:
        if self.forbidden:
            raise AssertionError("the search read the test split")
        return len(self.ids)

    def __getitem__(self, i: int):
        if self.forbidden:
            raise AssertionError("the search read the test split")
        g = torch.Generator().manual_seed(self.ids[i])
        ids = torch.tensor([1, self.ids[i], *torch.randint(5, 100, (T - 3,), generator=g).tolist(), 2])
        x = {"input_ids": ids, "attention_mask": torch.ones(T, dtype=torch.long),
             "pixel_values": torch.randn(3, IMG, IMG, generator=g)}
        return x, self.ids[i] % CLASSES


def test_search_trains_on_train_rewards_on_held_out_and_never_reads_test():
    torch.manual_seed(0)
    method = make_method("dvp", {"search_updates": 3, "batch_size": 4, "epochs": 1})
    model = apply_method(method, tiny_vl())
    seen = {"train": set(), "reward": set()}
    model.register_forward_pre_hook(lambda mod, args: seen["train" if torch.is_grad_enabled() else "reward"].update(
        args[0]["input_ids"][:, 1].tolist()))
    splits = Splits(_Tagged(range(50, 62)), _Tagged(range(70, 78)), _Tagged(range(90, 94), forbidden=True),
                    CLASSES, search_train=_Tagged(range(50, 62)), search_val=_Tagged(range(70, 78)))
    _Loop(Built(model, {}, 0), method, splits, Runtime(), Reporter()).search()
    assert seen["train"] == set(range(50, 62)) and seen["reward"] <= set(range(70, 78)) and seen["reward"]
    assert method.stats(model)["dvp_updates"] == 3  # one per optimizer step (12 samples / batch 4)


@pytest.mark.heavy
@pytest.mark.parametrize("variant", ["full", "adp"])
def test_the_loop_runs_dvp_end_to_end_with_its_search(variant):
    torch.manual_seed(0)
    method = make_method("dvp", {"variant": variant, "search_updates": 3, "batch_size": 4, "epochs": 2,
                                 "warmup_epochs": 0})
    model = apply_method(method, tiny_vl())
    total = sum(p.numel() for p in tiny_vl().parameters())
    train, val = _Tagged(range(50, 62)), _Tagged(range(70, 78))
    splits = Splits(train, val, _Tagged(range(90, 94)), CLASSES, search_train=train, search_val=val)
    out = train_and_evaluate(Built(model, {}, total), method, splits, Runtime())
    m, stats = out.metrics, out.method_stats
    assert out.status == "ok" and m["steps"] == 2 * 3 and m["time_search_s"] > 0 and 0 <= m["top1"] <= 100
    assert stats["dvp_searched"] and stats["dvp_updates"] == 3 and stats["dvp_variant"] == variant
    assert len(stats["dvp_pi"]) == DEPTH and stats["dvp_pi"].index(max(stats["dvp_pi"])) == stats["dvp_insert_layer"]
    # counted after the search: one DVP module, the fusion layers gone
    d, dv = 32, model.vision.embed_dim
    module = 2 * (d * d + d) + 2 * (dv * d + d) + 2 * d
    head = _n(model.get_classifier().parameters()) - (d * CLASSES + CLASSES)  # official head vs the plain Linear
    assert m["counts"]["params_added"] == module - (dv * d + 2 * d) + head + (
        0 if variant == "full" else 2 * DEPTH * (2 * d * 4 + 4 + d))


def test_the_search_budget_is_preference_updates_reusing_the_training_batches():
    torch.manual_seed(0)
    method, model = dvp(search_updates=7)
    passes = []
    ctx = ctx_for(lambda: passes.append(1) or (batch(s) for s in range(3)),
                  lambda: (batch(100 + s) for s in itertools.count()), 3)
    method.search(model, ctx)
    stats = method.stats(model)
    assert stats["dvp_updates"] == 7 and len(passes) == 3  # 3 + 3 + 1 batches
    assert 0 < stats["dvp_pi_entropy"] <= math.log(DEPTH) + 1e-9


def test_rewards_come_from_half_a_held_out_batch(monkeypatch):
    """The official KAB-APP loader's batch is batch_size // 2."""
    sizes = []
    monkeypatch.setattr(dvp_mod, "score_arm", lambda model, k, x, y, ctx: sizes.append(len(y)) or 0.0)
    method, model = dvp(search_updates=2)
    method.search(model, synthetic_ctx(2))
    assert sizes == [2] * (2 * 5)  # batch() holds 4 samples; 5 arms per update


@pytest.mark.parametrize("trains", ["lm", "variant"])
def test_dvp_adp_searches_with_the_whole_language_model_on_a_copy(trains):
    """Official: the search configs never set use_adapter (the whole LM fine-tunes, no adapters); the adapters then
    train at the chosen K from their initial values."""
    torch.manual_seed(0)
    method, model = dvp(variant="adp", search_updates=3, search_trains=trains)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained = []
    ctx = ctx_for(lambda: (batch(s) for s in range(3)), lambda: (batch(100 + s) for s in itertools.count()), 3)
    ctx.make_optimizer = lambda ps, model=None, lr=None: (trained.append((list(ps), model, lr)),
                                                          torch.optim.AdamW(trained[-1][0], lr=lr))[1]
    method.search(model, ctx)
    params, searched, lr = trained[0]
    names = {id(p): n for n, p in searched.named_parameters()}
    adapters = [n for n in map(names.get, map(id, params)) if "seq_adapter" in n]
    assert searched is not model and lr == (1e-4 if trains == "lm" else 1e-3)
    assert (not adapters and all(p.requires_grad for p in searched.text.parameters())) if trains == "lm" else adapters
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], p) for n, p in before.items() if "dvp." not in n)  # the model itself untouched
    assert sum("seq_adapter.down.weight" in n for n in now) == 2 * DEPTH


@pytest.mark.parametrize(("published", "builtin", "want"), [
    ("vqav2", False, {"epochs": 10, "warmup_epochs": 1, "search_updates": 5100}),
    ("gqa", False, {"epochs": 10, "warmup_epochs": 1, "search_updates": 7368}),
    ("snli-ve", False, {"epochs": 5, "warmup_epochs": 1, "search_updates": 2069}),
    ("snli-ve", True, {"epochs": 5, "warmup_epochs": 1, "search_updates": dvp_mod.BUILTIN_SEARCH_UPDATES}),
])
def test_the_recipe_follows_the_published_task(published, builtin, want):
    """dvp/config.py: dvp_adaption_*_{vqa,gqa} 10 epochs, 10% warm-up; *_snli_ve 5 epochs, 20%; search 2 / 2 / 1
    epochs of batch 256 (module TASK_RECIPE)."""
    from petlbench.engine.build import resolve_overrides
    from petlbench.vl.data.raw import entailment_task, vqa_task

    task = entailment_task(published) if published == "snli-ve" else vqa_task(published, ["a", "b"])
    raw = types.SimpleNamespace(task=task, epochs=None, batch_size=None)
    got = resolve_overrides({"search_updates": 9} if builtin else {}, DVPConfig, raw)
    assert got == {"recipe": published, **want, **({"search_updates": 9} if builtin else {})}
    raw = types.SimpleNamespace(task=task, epochs=5 if builtin else None, batch_size=16 if builtin else None)
    cfg = DVPConfig(**resolve_overrides({}, DVPConfig, raw))
    assert (cfg.recipe, cfg.epochs, cfg.warmup_epochs, cfg.search_updates) == (published, *want.values())
    local = vqa_task("my-vqa", ["a"]) if published != "snli-ve" else entailment_task("my-ve")
    assert local.published == ("snli-ve" if published == "snli-ve" else "vqav2")


def test_inspect_shows_the_published_compute_claim_beside_the_measured_change():
    """published.csv: DVP's '-80% FLOPs on VQA2.0' (a relative claim); inspect measures the change of the whole
    model and of the text side (the frozen visual encoder apart) against the all-visual-tokens backbone."""
    from petlbench.engine.build import inspect

    info = inspect("dvp", None, 14)
    (claim,) = info["published_claims"]
    assert (claim["metric"], claim["value"], claim["task"]) == ("gmacs_change_pct", -80.0, "vqav2")
    assert claim["measured"] == info["gmacs_change_pct"] == pytest.approx(100 * (info["gmacs_ratio"] - 1))
    text = 100 * (info["gmacs_text"] / info["gmacs_text_backbone"] - 1)
    assert info["gmacs_text_change_pct"] == pytest.approx(text) and text < info["gmacs_change_pct"] < 0


def test_a_non_finite_search_loss_stops_the_search_and_non_finite_logits_score_nan():
    from petlbench.methods.base import SearchDiverged
    from petlbench.methods.dvp import score_arm

    method, model = dvp(search_updates=4)
    ctx = synthetic_ctx()
    ctx.loss_fn = lambda logits, y: F.cross_entropy(logits, y) * float("nan")
    with pytest.raises(SearchDiverged, match="DVP search"):
        method.search(model, ctx)
    x, y = batch(0)
    assert score_arm(model, 0, x, y, synthetic_ctx()) == score_arm(model, 0, x, y, synthetic_ctx())  # finite
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad and p.dim() == 2).fill_(float("nan"))
    assert math.isnan(score_arm(model, 0, x, y, synthetic_ctx()))
