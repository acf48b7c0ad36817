"""Typed --set parsing, config validation and suite files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from petlbench.config.method_config import parse_sets
from petlbench.config.suites import load_suite
from petlbench.errors import UserError


@dataclass
class Cfg:
    rank: int = 8
    alpha: float = 8.0
    deep: bool = False
    targets: tuple[str, ...] = ("qkv",)
    style: Literal["houlsby", "pfeiffer"] = "houlsby"
    maybe: int | None = None


def test_parse_sets_types():
    got = parse_sets(["rank=4", "alpha=0.5", "deep=true", "targets=q,v", "style=pfeiffer", "maybe=none"], Cfg, "x")
    assert got == {"rank": 4, "alpha": 0.5, "deep": True, "targets": ("q", "v"), "style": "pfeiffer", "maybe": None}
    assert parse_sets(["maybe=3"], Cfg, "x") == {"maybe": 3}


@pytest.mark.parametrize("pair, msg", [("rnk=4", "did you mean 'rank'"), ("rank=4.5", "integer"),
                                       ("deep=maybe", "true or false"), ("style=other", "houlsby"),
                                       ("alpha=x", "number"), ("rank", "key=value")])
def test_parse_sets_errors(pair, msg):
    with pytest.raises(UserError, match=msg):
        parse_sets([pair], Cfg, "x")


def test_shipped_suites_parse_and_name_real_methods_and_datasets():
    from importlib import resources

    from petlbench.datasets import DATASETS
    from petlbench.registry import METHODS

    shipped = [f.name[:-5] for f in resources.files("petlbench.benchmarks").iterdir() if f.name.endswith(".toml")]
    assert shipped, "no suite shipped as package data"
    for name in shipped:
        _, _, runs = load_suite(name)
        assert runs
        for r in runs:
            assert r.method in METHODS
            assert r.dataset is None or r.dataset in DATASETS or r.dataset.startswith("{root}/")  # paper suites


def test_suite_groups_override_and_unknown_keys(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nmethods = ["linear", "full"]\ndatasets = ["a"]\nseeds = [0, 1]\nepochs = 3\n'
                 '[set.full]\nlr = 0.5\n[[group]]\nlabel = "random"\nmethods = ["linear"]\npretrained = false\n')
    name, _, runs = load_suite(str(p))
    assert name == "s" and len(runs) == 3
    assert runs[1].overrides == {"epochs": 3, "lr": 0.5} and runs[1].seeds == [0, 1]
    assert runs[2].label == "random" and runs[2].run == {"pretrained": False}
    # a group's [group.set.<method>] adds to the suite's [set.<method>], key by key
    p.write_text('methods = ["full"]\n[set.full]\nlr = 0.5\nweight_decay = 0.1\n[[group]]\nlabel = "g"\n'
                 'methods = ["full"]\n[group.set.full]\nlr = 0.2\n')
    assert [r.overrides for r in load_suite(str(p))[2]] == [{"lr": 0.5, "weight_decay": 0.1},
                                                            {"lr": 0.2, "weight_decay": 0.1}]
    p.write_text('methods = ["linear"]\nepoch = 3\n')
    with pytest.raises(UserError, match="unknown key 'epoch'"):
        load_suite(str(p))


def test_neutral_recipe_keys_stay_out_of_the_run_identity():
    from petlbench.config.method_config import identity_config
    from petlbench.registry import METHODS

    get = METHODS.get
    linear, lion = get("linear").Config(), get("lion").Config()
    assert "grad_clip" not in identity_config(linear)  # off: hashes of older stored results still match
    assert identity_config(get("linear").Config(grad_clip=0.5))["grad_clip"] == 0.5
    # LION clips its own tensors (layer_grad_clip), not the global norm: grad_clip is off and stays out of its identity
    assert lion.grad_clip == 0.0 and "grad_clip" not in identity_config(lion)
    assert identity_config(lion)["layer_grad_clip"] == 1.0
    # the optimizer keys DVP publishes differently are neutral elsewhere (no stored hash moved) and in DVP's identity
    assert not {"adam_beta2", "decay", "head_lr_mult", "wd_bias_norm"} & set(identity_config(linear))
    dvp = identity_config(get("dvp").Config())
    assert (dvp["adam_beta2"], dvp["decay"], dvp["head_lr_mult"], dvp["wd_bias_norm"]) == (0.98, "linear", None, False)


@pytest.mark.parametrize("pair", ["lr=0", "lr=-1", "epochs=0", "batch_size=0", "grad_clip=-1", "weight_decay=-0.1"])
def test_bad_recipe_values_are_user_errors(pair):
    from petlbench.config.method_config import build_method_config, parse_sets
    from petlbench.registry import METHODS

    cls = METHODS.get("lora").Config
    with pytest.raises(UserError, match=pair.split("=")[0]):
        build_method_config(cls, parse_sets([pair], cls, "lora"))
