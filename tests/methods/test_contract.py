"""Contract tests over every registered method (new methods are covered with no edit here)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from petlbench.config.method_config import parse_sets, to_dict
from petlbench.engine.build import build, make_method
from petlbench.engine.runner import seed_everything
from petlbench.methods.base import Method, MethodConfig
from petlbench.registry import METHODS
from petlbench.tracks import supported_kinds

from ..conftest import TINY
from ..training import train_steps

METHOD_NAMES = sorted(METHODS.all())


def _build(name: str, seed: int = 0):
    if "vit" not in supported_kinds(METHODS.get(name).supports):
        pytest.skip(f"{name} is VL-only: its contract runs on the VL model (tests/test_vl.py)")
    seed_everything(seed)
    method = make_method(name)
    built = build(method, TINY["model"], TINY["num_classes"], pretrained=False, img_size=TINY["img_size"])
    model, total = built.model, built.backbone_total
    return method, model, total


def _batch(seed: int = 0, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, TINY["img_size"], TINY["img_size"], generator=g), torch.randint(0, 5, (n,), generator=g)


def test_registry_has_the_baselines():
    assert {"linear", "full"} <= set(METHOD_NAMES)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_declares_its_contract(name):
    cls = METHODS.get(name)
    assert issubclass(cls, Method) and cls.name == name
    assert cls.description and len(cls.description.splitlines()) == 1
    assert issubclass(cls.Config, MethodConfig)
    from petlbench.models.layout import LAYERS, POINTS
    from petlbench.tracks import supported_kinds

    # what it needs is named by insertion points (never by kind), and some registered kind offers them
    assert cls.supports <= {*POINTS, *(f"layers:{s}" for s in LAYERS)} and supported_kinds(cls.supports)


def test_no_method_checks_a_backbone_class():
    """Methods find their insertion points through the kind's table (``models.layout``), never by the model's class."""
    import re
    from pathlib import Path

    sources = {p.name: p.read_text() for p in (Path(__file__).resolve().parents[2] / "methods").glob("*.py")}
    assert len(sources) > 10
    pattern = re.compile(r"isinstance\(model\b|\bis_(vl|meter|t5|vilt)\(|has_bert_layers|^(from|import) petlbench\.vl\b", re.M)
    assert [name for name, text in sources.items() if pattern.search(text)] == []


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_logits_shape_before_and_after_finalize(name):
    method, model, _ = _build(name)
    x, _ = _batch()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, TINY["num_classes"])
        model = method.finalize(model)
        model.eval()
        assert model(x).shape == (4, TINY["num_classes"])


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_only_trainable_parameters_change(name):
    method, model, _ = _build(name)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "a method must leave something trainable"
    train_steps(method, model, _batch)
    now = dict(model.named_parameters())
    for n, before in frozen.items():
        assert torch.equal(now[n], before), f"frozen parameter {n} changed"
    changed = [n for n, before in trainable.items() if not torch.equal(now[n], before)]
    assert changed, "no trainable parameter changed"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_config_round_trip(name):
    cls = METHODS.get(name)
    cfg = cls.Config()
    assert cls.Config(**to_dict(cfg)) == cfg
    # every key can be set from the command line with its own printed value
    pairs = []
    for k, v in to_dict(cfg).items():
        if v is None:
            continue
        text = ",".join(map(str, v)) if isinstance(v, list) else str(v)
        pairs.append(f"{k}={text}")
    parsed = parse_sets(pairs, cls.Config, name)
    assert dataclasses.replace(cfg, **parsed) == cfg


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_deterministic_loss_under_a_seed(name):
    runs = []
    for _ in range(2):
        method, model, _ = _build(name, seed=123)
        torch.manual_seed(7)
        runs.append(train_steps(method, model, _batch, steps=2))
    assert runs[0] == runs[1]
