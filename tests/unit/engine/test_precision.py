"""--precision auto|fp32|bf16: ``auto`` by the run's own measured step, resolved before the identity, recorded
with its reason; every method x backbone kind trains and evaluates in bf16 (the cached-feature probe included)."""

import json
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from petlbench.config.options import RunConfig, identity
from petlbench.data.types import Splits
from petlbench.datasets import load_data
from petlbench.engine import build, numerics
from petlbench.engine.build import make_method
from petlbench.engine.loop import Runtime, train_and_evaluate
from petlbench.engine.numerics import cached_timing as real_cached_timing
from petlbench.registry import METHODS
from petlbench.tracks import apply_method, supported_kinds

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- auto: the rule


def test_asked_precisions_are_kept_and_no_native_bf16_is_fp32(monkeypatch):
    never = lambda: pytest.fail("timed without native bf16")  # noqa: E731
    assert numerics.resolve_precision("bf16", CPU, never) == numerics.PrecisionChoice("bf16", "asked")
    assert numerics.resolve_precision("fp32", CPU, never).precision == "fp32"
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: False)
    choice = numerics.resolve_precision("auto", CPU, never)
    assert choice.precision == "fp32" and "no native bf16" in choice.reason
    assert numerics.resolve_precision("auto", torch.device("meta"), never).precision == "fp32"


@pytest.mark.parametrize("bf16_s, want", [(0.50, "bf16"), (0.89, "bf16"), (0.91, "fp32"), (1.31, "fp32")])
def test_auto_picks_bf16_only_when_measured_faster_by_the_margin(monkeypatch, bf16_s, want):
    """fp32 step 1.0 s: bf16 must be at least BF16_MARGIN (10%) faster (a timing within noise keeps fp32)."""
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    choice = numerics.resolve_precision("auto", CPU, lambda: (1.0, bf16_s, "measured now"))
    assert choice.precision == want
    assert choice.reason == f"auto: bf16 step {bf16_s:.2f}x fp32 ({bf16_s:.4g} s vs 1 s, measured now)"


def test_time_precisions_interleaves_repeats_short_steps_and_takes_the_fastest():
    """A fake clock: an fp32 step costs 0.1 s, a bf16 one 0.04 s, both twice that in the second pass (the machine
    busy); each sample repeats the step to last 0.2 s; the fastest sample of each precision is kept."""
    now, calls = [0.0], []

    def step(precision: str) -> None:
        calls.append(precision)
        busy = 2.0 if 9 < len(calls) <= 16 else 1.0  # calls 10-16: the second pass
        now[0] += (0.04 if precision == "bf16" else 0.1) * busy

    fp32_s, bf16_s = numerics.time_precisions(step, CPU, passes=2, min_sample_s=0.2, clock=lambda: now[0])
    assert (fp32_s, bf16_s) == (pytest.approx(0.1), pytest.approx(0.04))  # medians would be 0.15 and 0.06
    # warm-up one each, then passes in alternating order: fp32 x2, bf16 x5 | bf16 x5, fp32 x2
    assert calls == ["fp32", "bf16"] + ["fp32"] * 2 + ["bf16"] * 5 + ["bf16"] * 5 + ["fp32"] * 2


def test_cached_timing_measures_once_per_key_and_survives_a_corrupt_file(tmp_path):
    path, measured = tmp_path / "precision.json", []

    def measure():
        measured.append(1)
        return 2.0, 1.0

    assert real_cached_timing(path, "k", measure) == (2.0, 1.0, "measured now")
    fp32_s, bf16_s, source = real_cached_timing(path, "k", measure)
    assert (fp32_s, bf16_s) == (2.0, 1.0) and source.startswith("measured ") and "cached in precision.json" in source
    assert str(tmp_path) not in source  # the reason is stored with the row: no path of this machine
    assert len(measured) == 1 and set(json.loads(path.read_text())) == {"k"}
    real_cached_timing(path, "other", measure)
    assert len(measured) == 2 and set(json.loads(path.read_text())) == {"k", "other"}
    path.write_text("{not json")
    assert real_cached_timing(path, "k", measure)[2] == "measured now" and len(measured) == 3
    assert real_cached_timing(None, "k", measure)[2] == "measured now"  # PETLBENCH_CACHE=0: no file


@pytest.mark.heavy
def test_auto_times_this_run_step_keyed_by_machine_model_method_and_batch(monkeypatch):
    """prepare_run hands numerics the run's own training step (model untouched) and a key naming what the
    timing depends on; the choice and its reason reach the identity and the row."""
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    seen = {}

    def fake(path, key, measure):
        seen["key"] = key
        seen["times"] = measure()  # really times the tiny model's step
        return 1.0, 0.5, "measured now"

    monkeypatch.setattr(numerics, "cached_timing", fake)
    raw = load_data("shapes-loc", limit=16)
    cfg = RunConfig(method="lora", dataset="shapes-loc", model="test_vit", img_size=32, pretrained=False, limit=16,
                    device="cpu", overrides={"batch_size": 8})
    p = build.prepare_run(cfg, raw)
    before = {k: v.clone() for k, v in p.built.model.state_dict().items()}
    assert p.cfg.precision == "bf16" and p.identity["amp"] is True
    assert p.precision_reason.startswith("auto: bf16 step 0.50x fp32")
    key = seen["key"]
    assert numerics.cpu_model_name() in key and torch.__version__ in key and "|test_vit|lora|" in key
    assert "((8, 3, 32, 32),)" in key  # the run's batch at the model's input size
    assert all(t > 0 for t in seen["times"])
    build.prepare_run(cfg, raw)  # building again gives the same model: the timing copy changed nothing
    assert all(torch.equal(v, p.built.model.state_dict()[k]) for k, v in before.items())


def test_identity_holds_the_resolved_precision(monkeypatch):
    raw = load_data("shapes-loc", limit=16)
    hashes = {}
    for bf16_s in (0.5, 2.0):
        monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
        monkeypatch.setattr(numerics, "cached_timing", lambda path, key, measure, s=bf16_s: (1.0, s, "stub"))
        p = build.prepare_run(RunConfig(method="linear", dataset="shapes-loc", limit=16, device="cpu"), raw)
        hashes[bf16_s] = p.config_hash
        assert p.cfg.precision == ("bf16" if bf16_s < 1 else "fp32")
    pinned = build.prepare_run(RunConfig(method="linear", dataset="shapes-loc", limit=16, precision="bf16"), raw)
    assert pinned.config_hash == hashes[0.5] != hashes[2.0]
    with pytest.raises(ValueError, match="unresolved"):
        identity(RunConfig(method="linear", precision="auto"), pinned.method.cfg, {})


def test_old_amp_key_in_a_suite_says_what_replaced_it(cli, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nmethods = ["linear"]\ndatasets = ["shapes-loc"]\namp = true\n')
    code, _, err = cli("suite", str(suite), "--out", str(tmp_path / "o"), "--print-commands")
    assert code == 2 and 'precision = "bf16"' in err


# ----------------------------------------------------------------------------- every method x kind, both precisions

KIND_MODELS = {"vit": "test_vit", "cnn": "test_resnet", "vl": "vl"}
CASES = [(name, kind) for name, cls in sorted(METHODS.all().items()) for kind in supported_kinds(cls.supports)]


def _tiny_vl_backbone(method, classes: int):
    """A 2-layer BERT + test_vit VL model (random, no files), as ``build`` makes one, with the method applied."""
    from transformers import BertConfig

    from petlbench.models.family import Built
    from petlbench.vl.models.bert import VLModel, load_vision_encoder
    from petlbench.vl.models.text import text_encoder_from_config

    text = text_encoder_from_config(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                               intermediate_size=64, max_position_embeddings=16))
    model = VLModel(text, load_vision_encoder("test_vit", pretrained=False, img_size=32)[0], classes, "both")
    model.freeze()
    total = sum(p.numel() for p in model.parameters())
    return Built(apply_method(method, model), {}, total)


def _tiny_t5_backbone(method, classes: int):
    """A 2 + 2-block, 32-wide T5 + test_vit VL model (random, no files), frozen as ``build`` makes it, with the
    method applied."""
    from petlbench.models.family import Built

    from ...text_models import tiny_t5_vl

    model = tiny_t5_vl(layers=2)
    model.head = torch.nn.Linear(32, classes)  # trainable, as build's fresh head
    total = sum(p.numel() for p in model.parameters())
    return Built(apply_method(method, model), {}, total)


def _tiny_vlp_backbone(method, kind: str, classes: int):
    """A tiny ViLT or METER (random, no files), frozen as ``build`` makes it, with the method applied."""
    from petlbench.models.family import Built
    from petlbench.vl.models.family import VLP

    from ...vl_models import tiny_meter, tiny_vilt

    model = (tiny_vilt if kind == "vilt" else tiny_meter)(classes)
    total = sum(p.numel() for p in model.parameters())
    return Built(apply_method(method, model), {}, total, VLP)


def _data(kind: str, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    pixels = torch.randn(n, 3, 32, 32, generator=g) + y.view(-1, 1, 1, 1).float()  # learnable by class
    if kind not in ("vl", "t5", "vilt", "meter"):
        return TensorDataset(pixels, y)
    ids = torch.randint(5, 50, (n, 6), generator=g)
    return [({"input_ids": ids[i], "attention_mask": torch.ones(6, dtype=torch.long), "pixel_values": pixels[i]}, y[i])
            for i in range(n)]


@pytest.mark.integration  # every (method, backbone kind) × 2 precisions, whole runs through the loop (~25 s): `make test` runs them, `make test-fast` not
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name, kind", CASES)
def test_every_method_and_backbone_kind_trains_and_evaluates(name, kind, precision):
    """Through the one loop (search, training, finalize, test, measurements) in both precisions: no crash, finite
    loss and score; head-only methods take the cached-feature shortcut on vision backbones in both precisions."""
    overrides = {"epochs": 1, "batch_size": 4, "warmup_epochs": 0}
    if name in ("das", "dvp"):
        overrides.update(search_epochs=2, search_warmup_epochs=1) if name == "das" else overrides.update(search_updates=3)
    method = make_method(name, overrides)
    torch.manual_seed(0)
    if kind in ("vl", "t5"):
        built = (_tiny_vl_backbone if kind == "vl" else _tiny_t5_backbone)(method, 3)
    elif kind in ("vilt", "meter"):
        built = _tiny_vlp_backbone(method, kind, 3)
    else:
        built = build.build(method, KIND_MODELS[kind], 3, pretrained=False, **({"img_size": 32} if kind == "vit" else {}))
    splits = Splits(_data(kind, 12, 0), _data(kind, 8, 1), _data(kind, 8, 2), 3)
    out = train_and_evaluate(built, method, splits, Runtime(CPU, precision=precision))
    m = out.metrics
    assert out.status == "ok", out.error
    assert math.isfinite(m["loss_train"]) and 0.0 <= m["top1"] <= 100.0 and math.isfinite(m["loss_test"])
    if name == "linear" and kind not in ("vl", "t5", "vilt", "meter"):  # VL probes also train fusion layers
        assert m["feature_cache"] == "on"
    else:
        assert "feature_cache" not in m


def test_cached_probe_says_why_it_is_off(monkeypatch):
    method = make_method("linear", {"epochs": 1, "batch_size": 4})
    built = build.build(method, "test_vit", 3, pretrained=False, img_size=32)
    splits = Splits(_data("vit", 8, 0), None, _data("vit", 4, 2), 3)
    out = train_and_evaluate(built, method, splits, Runtime(CPU, frozen_backbone_mode="train"))
    assert out.metrics["feature_cache"].startswith("off: --frozen-backbone-mode train")


# ----------------------------------------------------------------------------- auto: one answer, what a run does


def test_a_probe_at_lions_ratio_gives_one_answer_under_noise(monkeypatch):
    """LION's probe sits near 0.97x: with the probe's spread (about ±8% on a shared machine) every draw keeps fp32."""
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    draws = [0.97 * (1 + e) for e in (-0.06, -0.03, 0.0, 0.03, 0.06)]
    assert {numerics.resolve_precision("auto", CPU, lambda r=r: (1.0, r, "stub")).precision for r in draws} == {"fp32"}


def test_a_long_timing_says_that_it_is_timing():
    now, told = [0.0], []

    def step(precision: str) -> None:
        now[0] += 3.0  # a large model's step: 3 s in either precision

    numerics.time_precisions(step, CPU, passes=5, clock=lambda: now[0], announce=told.append)
    assert len(told) == 1 and told[0] > numerics.LONG_S
    numerics.time_precisions(lambda p: None, CPU, passes=2, announce=told.append)  # short: nothing said
    assert len(told) == 1


def test_the_probe_times_the_runs_own_batches_and_its_evaluation(monkeypatch):
    """probe_inputs: a batch of the run's training images as the run prepares them (``--limit``'s seeded draw);
    eval_share: val each epoch and test once per trained sample; probe_timing adds that share of evaluation forwards
    to the training step."""
    raw = load_data("shapes-loc", limit=20)
    method = make_method("linear", {"epochs": 2, "batch_size": 8})
    built = build.build(method, "test_vit", raw.num_classes, pretrained=False, img_size=32)
    x = build.probe_inputs(raw, built, 8)
    first = raw.limited(8).prepare(built.family.data_config(built.model)).train
    torch.testing.assert_close(x, torch.stack([first[i][0] for i in range(8)]))
    sizes = {s: raw.size(s) for s in raw.splits}
    share = build.eval_share(raw, method.cfg, trainval=False)
    assert share == pytest.approx((sizes["val"] * 2 + sizes["test"]) / (sizes["train"] * 2))
    assert build.eval_share(raw, method.cfg, trainval=True) == pytest.approx(
        sizes["test"] / ((sizes["train"] + sizes["val"]) * 2))
    timed = iter([(1.0, 2.0), (0.5, 0.1)])  # training step, then evaluation forward (fp32 s, bf16 s)
    monkeypatch.setattr(numerics, "time_precisions", lambda step, device, announce=None: next(timed))
    assert build.probe_timing(built, method, x, CPU, "eval", 0.5) == (1.25, 2.05)


def test_auto_precision_reason_names_no_path(monkeypatch, tmp_path):
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(numerics, "cached_timing", real_cached_timing)
    monkeypatch.setattr(numerics, "time_precisions", lambda *a, **k: (1.0, 2.0))
    monkeypatch.setenv("PETLBENCH_CACHE", str(tmp_path / "cache"))
    raw = load_data("shapes-loc", limit=16)
    cfg = RunConfig(method="linear", dataset="shapes-loc", model="test_vit", img_size=32, pretrained=False, limit=16,
                    device="cpu")
    for _ in range(2):  # measured, then cached
        reason = build.prepare_run(cfg, raw).precision_reason
        assert reason.startswith("auto: bf16 step 2.00x fp32") and str(tmp_path) not in reason
    assert "cached in precision.json" in reason
