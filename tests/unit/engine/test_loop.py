"""The shared loop: schedule, frozen-backbone mode policy, the cached linear-probe path, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from petlbench.data.images import RawData
from petlbench.engine.build import build, make_method
from petlbench.engine.loop import Reporter, Runtime, set_train_mode, train_and_evaluate
from petlbench.engine.optim import head_lr_mult, make_optimizer, warmup_then_decay
from petlbench.engine.runner import seed_everything
from petlbench.methods.base import MethodModule
from petlbench.models.backbones import data_config


class _Log(Reporter):
    def __init__(self, log):
        self.log = log


def _raw(n=48, classes=3, size=16, seed=0) -> RawData:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 50, (n, size, size, 3), dtype=np.uint8)
    for c in range(classes):
        x[y == c, ..., c] += 150
    split = {"train": (x[:24], y[:24]), "val": (x[24:36], y[24:36]), "test": (x[36:], y[36:])}
    return RawData("toy", split, ["a", "b", "c"], "generated:toy", epochs=2, batch_size=8)


def test_warmup_then_decay_shape():
    f = warmup_then_decay(total_steps=10, warmup_steps=2)
    assert [round(f(s), 3) for s in range(3)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)
    lin = warmup_then_decay(total_steps=10, warmup_steps=2, decay="linear")
    assert [lin(s) for s in (1, 2, 4, 10)] == pytest.approx([1.0, 1.0, 0.75, 0.0])
    assert lin(5) < f(5)  # past the warm-up, linear is below cosine in the first half


def test_optimizer_groups_follow_the_recipe():
    from petlbench.data.types import CLASSIFICATION
    from petlbench.methods.base import MethodConfig
    from petlbench.vl.data.raw import entailment_task, vqa_task

    body, head = nn.Linear(4, 4), nn.Linear(4, 2)
    params = [*body.parameters(), *head.parameters()]
    ids = {id(p) for p in head.parameters()}
    shared = make_optimizer(params, MethodConfig(lr=0.1, weight_decay=0.5), ids)
    assert len(shared.param_groups) == 1 and shared.param_groups[0]["betas"] == (0.9, 0.999)  # neutral: one group

    cfg = MethodConfig(lr=0.1, weight_decay=0.5, adam_beta2=0.98, head_lr_mult=None, wd_bias_norm=False)
    opt = make_optimizer(params, cfg, ids, head_lr_mult(cfg, vqa_task("q", ["a", "b"])))
    got = {(g["lr"], g["weight_decay"]): {tuple(p.shape) for p in g["params"]} for g in opt.param_groups}
    assert got == {(0.1, 0.5): {(4, 4)}, (0.1, 0.0): {(4,)}, (1.0, 0.5): {(2, 4)}, (1.0, 0.0): {(2,)}}
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    # None = by task, as the official ViLT/DVP configs: ×10 on VQA, ×1 on entailment and classification
    assert head_lr_mult(cfg, entailment_task("e")) == 1.0 and head_lr_mult(cfg, CLASSIFICATION) == 1.0
    assert head_lr_mult(MethodConfig(head_lr_mult=3.0), CLASSIFICATION) == 3.0


def test_frozen_modules_go_to_eval_method_modules_stay_in_train():
    class Added(MethodModule):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)
            self.w = nn.Parameter(torch.zeros(1))

    model = nn.Sequential(nn.Dropout(0.1), nn.Linear(2, 2), Added())
    model[1].requires_grad_(False)
    set_train_mode(model, "eval")
    assert not model[0].training and not model[1].training
    assert model[2].training and model[2].drop.training
    set_train_mode(model, "train")
    assert model[0].training


def _fit(method_name: str, mode: str = "eval", seed: int = 0, log=lambda m: None, readback_every=None, **recipe):
    """Build test_vit (random init, 32 px), train ``method_name`` on the toy task -> (model, outcome).
    Also returns the head's initial weights, for tests that measure how far it moved."""
    seed_everything(seed)
    method = make_method(method_name, {"epochs": 2, "batch_size": 8, "warmup_epochs": 0, **recipe})
    built = build(method, "test_vit", 3, pretrained=False, img_size=32)
    model = built.model
    head_init = model.head.weight.detach().clone()
    splits = _raw().prepare(data_config(model))
    rt = Runtime(frozen_backbone_mode=mode, seed=seed, readback_every=readback_every)
    out = train_and_evaluate(built, method, splits, rt, _Log(log))
    return model, head_init, out


def test_cached_linear_probe_equals_the_full_forward_path():
    messages = []
    _, _, cached = _fit("linear", log=messages.append)
    assert any("cached" in m for m in messages)
    _, _, full = _fit("linear", "train")  # 'train' mode disables the cache; test_vit has no dropout
    assert cached.metrics["top1"] == pytest.approx(full.metrics["top1"])
    assert cached.metrics["loss_train"] == pytest.approx(full.metrics["loss_train"], rel=1e-4)
    assert cached.metrics["loss_test"] == pytest.approx(full.metrics["loss_test"], rel=1e-4)


def test_training_is_deterministic_and_learns():
    (_, _, a), (_, _, b) = _fit("bitfit"), _fit("bitfit")
    assert a.metrics["loss_train"] == b.metrics["loss_train"] and a.metrics["top1"] == b.metrics["top1"]
    assert a.metrics["steps"] == 2 * 3
    assert a.metrics["counts"]["params_trainable"] > a.metrics["counts"]["params_trainable_excl_head"] > 0
    assert a.status == "ok" and a.metrics["gmacs"] > 0 and a.metrics["time_search_s"] == 0.0


def test_non_finite_loss_stops_with_status_diverged():
    _, _, out = _fit("full", epochs=1, lr=1e30)
    assert out.status == "diverged" and "non-finite" in out.error
    assert "top1" not in out.metrics


def test_a_diverged_search_ends_the_run_diverged_before_training():
    _, _, out = _fit("das", lr=1e30)  # DAS's search trains at the recipe's lr
    assert out.status == "diverged" and out.error.startswith("non-finite loss in the DAS search")
    assert out.metrics["steps"] == 0 and "top1" not in out.metrics


def test_losses_read_back_every_few_steps_give_the_same_run():
    # the GPU path (a host synchronisation every N steps, not every step), exercised on the CPU
    (_, _, every), (_, _, late) = _fit("bitfit"), _fit("bitfit", readback_every=4)
    for key in ("loss_train", "top1", "steps"):
        assert every.metrics[key] == late.metrics[key]
    assert late.metrics["train_img_s"] > 0


def test_a_late_read_back_still_stops_a_diverged_run():
    _, _, out = _fit("full", epochs=2, lr=1e30, readback_every=100)  # read back only at the epoch's end
    assert out.status == "diverged" and "non-finite loss at step" in out.error
    assert out.metrics["steps"] == 3 and "top1" not in out.metrics  # one epoch of 3 steps, then stopped


def test_step_clock_times_steps_after_warm_up():
    from petlbench.models.measure import StepClock

    clock = StepClock(torch.device("cpu"), warmup=2)
    for _ in range(5):
        clock.start()
        clock.stop(8)
    seconds, images = clock.read()
    assert images == 40 and clock.timed_images == 24 and 0 <= clock.timed_s <= seconds
    assert clock.read() == (0.0, 0)  # the window restarts after each read


def _head_shift(grad_clip: float) -> float:
    """Distance the linear head moves in one epoch of SGD (lr 1, no weight decay)."""
    model, head_init, _ = _fit("linear", epochs=1, optimizer="sgd", lr=1.0, weight_decay=0.0, grad_clip=grad_clip)
    return float((model.head.weight.detach() - head_init).norm())


def test_grad_clip_bounds_every_update():
    # 3 SGD steps with momentum 0.9: the summed update is at most lr·clip·(1 + 1.9 + 2.71) = 5.61·clip
    clipped, free = _head_shift(1e-3), _head_shift(0.0)
    assert 0 < clipped <= 5.61e-3 + 1e-9
    assert free > 20 * clipped


def test_installed_commit_comes_from_pep610_direct_url(monkeypatch):
    import json
    from importlib import metadata

    from petlbench.results import provenance

    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    info = {"url": "git+https://example.org/petlbench", "vcs_info": {"vcs": "git", "commit_id": "0123456789abcdef0"}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(info)))
    assert provenance._installed_commit() == "0123456789ab"
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(None))  # wheel / sdist install: unknown
    assert provenance._installed_commit() == ""


def test_source_checkout_records_its_head_commit():
    """A source checkout (this repository under git) records its HEAD, not the installed-package fallback."""
    import subprocess
    from pathlib import Path

    from petlbench.results import provenance

    root = Path(provenance.__file__).resolve().parents[2]
    assert (root / "pyproject.toml").is_file()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout (sdist)")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit().removesuffix("-dirty") == head.stdout.strip()[:12]


class _RecordingSearch:
    """Mixin for a test method whose ``search`` records which images it trained on and was rewarded on
    (each image carries its own id as its constant pixel value)."""

    def search(self, model, ctx):
        ids = lambda x: {round(float(v), 3) for v in x.mean(dim=(1, 2, 3))}  # noqa: E731
        model.seen = {"train": set(), "val": set()}
        for x, _ in ctx.train_batches():
            model.seen["train"] |= ids(x)
        val = ctx.val_batches()
        for _ in range(20):
            model.seen["val"] |= ids(next(val)[0])


def _id_raw(with_val: bool) -> RawData:
    """Every image is constant with its own value (its id); train 24, val 12, test 12."""
    n = 48
    x = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None] * 5, 16, 1).repeat(16, 2).repeat(3, 3)
    y = np.arange(n) % 3
    split = {"train": (x[:24], y[:24]), "test": (x[36:], y[36:])}
    if with_val:
        split["val"] = (x[24:36], y[24:36])
    return RawData("ids", split, ["a", "b", "c"], "generated:ids")


@pytest.mark.heavy
@pytest.mark.parametrize(("with_val", "trainval"), [(True, True), (True, False), (False, False)])
def test_search_never_rewards_on_data_it_trains_on(with_val, trainval):
    from petlbench.registry import METHODS

    cls = type("Recorder", (_RecordingSearch, METHODS.get("bitfit")), {"name": "recorder"})
    method = cls(cls.Config(epochs=1, batch_size=4, warmup_epochs=0))
    seed_everything(0)
    built = build(method, "test_vit", 3, pretrained=False, img_size=32)
    model = built.model
    data_cfg = {**data_config(model), "mean": (0, 0, 0), "std": (1, 1, 1)}
    splits = _id_raw(with_val).prepare(data_cfg, trainval=trainval)
    out = train_and_evaluate(built, method, splits, Runtime())
    seen = model.seen
    assert seen["train"] and seen["val"] and not seen["train"] & seen["val"]
    train_ids = {round(5 * i / 255, 3) for i in range(24)}
    val_ids = {round(5 * i / 255, 3) for i in range(24, 36)}
    if with_val:
        assert seen["train"] == train_ids and seen["val"] == val_ids
    else:  # 10% of train held out for the rewards
        assert seen["train"] | seen["val"] == train_ids and len(seen["val"]) == 2
    # and the training after the search uses train+val under --trainval
    assert out.metrics["steps"] == (36 if trainval else 24) // 4
