"""One declaration per fact: every run option round-trips through `suite --print-commands`, and every key of
every registered method config is validated the same way on every path (suite, --set, Python API)."""

from __future__ import annotations

import dataclasses
import shlex
import typing
from dataclasses import replace

import pytest

from petlbench.config.method_config import field_types, ranges
from petlbench.config.options import SUITE_KEYS, RunConfig, options
from petlbench.engine import build, runner
from petlbench.errors import UserError
from petlbench.registry import METHODS

# A non-default value for every declared run option (a new option without one fails the first test).
EXAMPLES = {
    "model": "test_vit", "img_size": 32, "weights": "WEIGHTS", "pretrained": False, "device": "cpu", "precision": "bf16",
    "deterministic": True, "limit": 24, "frozen_backbone_mode": "train", "num_workers": 1, "compile": True,
    "trainval": True, "label": "a b", "protocol": "noah",
}
VL_EXAMPLES = {"modality": "text"}  # options of VL runs only: round-tripped on a VL dataset below
STRUCTURAL = {"method": "methods", "dataset": "datasets", "seed": "seeds", "suite": "name",
              "selection": "tune", "tune": "tune"}  # set by the suite's structure, not as keys


def test_every_option_has_an_example_or_is_suite_structure():
    assert {f.name for f in options()} == set(EXAMPLES) | set(VL_EXAMPLES) | set(STRUCTURAL)
    assert set(EXAMPLES) | set(VL_EXAMPLES) <= SUITE_KEYS


def _toml(v) -> str:
    return str(v).lower() if isinstance(v, bool) else f'"{v}"' if isinstance(v, str) else repr(v)


def _capture_jobs(cli, monkeypatch, *args) -> list[RunConfig]:
    """Run the CLI with the store/training replaced by a recorder of the jobs it would run."""
    seen: list[RunConfig] = []
    monkeypatch.setattr(runner, "execute", lambda jobs, *a, **k: seen.extend(jobs) or [])
    code, _, err = cli(*args)
    assert code == 0, err
    return seen


def test_print_commands_round_trip_every_option(cli, tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file(timm.create_model("test_vit", num_classes=3).state_dict(), str(weights))
    values = {k: (str(weights) if v == "WEIGHTS" else v) for k, v in EXAMPLES.items()}
    suite = tmp_path / "all.toml"
    suite.write_text('name = "all"\nmethods = ["linear", "lora"]\ndatasets = ["shapes-loc"]\nseeds = [3]\n'
                     'epochs = 2\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) +
                     "[set.lora]\nrank = 4\ntargets = \"q,v\"\n")
    from petlbench.config.suites import suite_jobs

    _, in_process, _ = suite_jobs(str(suite))
    code, printed, err = cli("suite", suite, "--print-commands", "--out", tmp_path / "store")
    assert code == 0, err
    commands = [line for line in printed.splitlines() if line.startswith("petlbench run")]
    assert len(commands) == len(in_process) == 2
    from petlbench.datasets import load_data

    raw = load_data("shapes-loc", limit=24)
    for job, command in zip(in_process, commands, strict=True):
        (parsed,) = _capture_jobs(cli, monkeypatch, *shlex.split(command)[1:])
        assert parsed == job  # every option, the seed, the suite name and the method overrides
        assert build.prepare_run(parsed, raw).config_hash == build.prepare_run(job, raw).config_hash
    assert all(getattr(in_process[0], k) == values[k] for k in values)


@pytest.mark.integration  # prints and re-parses the commands of VL runs through the CLI
def test_print_commands_round_trip_vl_options(cli, tmp_path, monkeypatch):
    from petlbench.config.suites import suite_jobs
    from petlbench.datasets import load_data

    suite = tmp_path / "vl.toml"
    suite.write_text('name = "vl"\nmethods = ["adapter"]\ndatasets = ["shapes-vqa"]\nseeds = [1]\nepochs = 1\n'
                     'pretrained = false\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in VL_EXAMPLES.items()))
    _, (job,), _ = suite_jobs(str(suite))
    code, printed, err = cli("suite", suite, "--print-commands", "--out", tmp_path / "store")
    assert code == 0, err
    (command,) = [line for line in printed.splitlines() if line.startswith("petlbench run")]
    (parsed,) = _capture_jobs(cli, monkeypatch, *shlex.split(command)[1:])
    assert parsed == job and all(getattr(job, k) == v for k, v in VL_EXAMPLES.items())
    raw = load_data("shapes-vqa", limit=8)
    both = build.prepare_run(replace(job, modality="both"), raw)
    assert build.prepare_run(parsed, raw).config_hash == build.prepare_run(job, raw).config_hash != both.config_hash
    assert "modality" not in both.identity  # neutral at its default: rows stored before the option keep their hash


# ----------------------------------------------------------------------------- generated validation checks


def _bad_values(cfg_cls: type, key: str) -> list[object]:
    """A wrongly typed value and, where the field declares a range, an out-of-range one."""
    tp = field_types(cfg_cls)[key]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if typing.get_origin(tp) in (typing.Union, type(int | None)) and args else tp
    origin = typing.get_origin(base)
    wrong = {int: 2.5, float: "x", bool: 1, str: 3}.get(base, 3 if origin is typing.Literal else "x")
    out = [wrong]
    for r in ranges(cfg_cls, key):
        if r.ge is not None:
            out.append(r.ge - 1)
        elif r.gt is not None:
            out.append(r.gt)
        elif r.lt is not None:
            out.append(r.lt)
        elif r.le is not None:
            out.append(r.le + 1)
        if base is float:
            out.append(float("nan"))
    return out


CASES = [(name, key, bad) for name, cls in METHODS.all().items() for key in field_types(cls.Config)
         for bad in _bad_values(cls.Config, key)]


def test_every_key_of_every_method_is_covered():
    covered = {(n, k) for n, k, _ in CASES}
    assert covered == {(n, f.name) for n, c in METHODS.all().items() for f in dataclasses.fields(c.Config)}


@pytest.mark.heavy
@pytest.mark.parametrize(("method", "key", "bad"), CASES, ids=[f"{m}-{k}-{b!r}" for m, k, b in CASES])
def test_bad_value_is_one_line_exit_2_on_every_path(cli, tmp_path, method, key, bad):
    if isinstance(bad, float) and bad != bad:  # NaN: TOML spells it nan
        toml_value = "nan"
    else:
        toml_value = _toml(bad)
    suite = tmp_path / "s.toml"
    suite.write_text(f'methods = ["{method}"]\n[set.{method}]\n{key} = {toml_value}\n')
    code, _, err = cli("suite", suite, "--out", tmp_path / "store")
    assert code == 2 and len(err.strip().splitlines()) == 1 and key in err, err
    assert not (tmp_path / "store").exists()
    with pytest.raises(UserError, match=key):  # the Python API: the same path
        build.make_method(method, {key: bad})


@pytest.mark.parametrize("line", ["rank = 4.0", "epochs = 2.5"])
def test_suite_rejects_a_float_for_an_integer_key(cli, tmp_path, line):
    suite = tmp_path / "s.toml"
    suite.write_text(f'methods = ["lora"]\n{line}\n' if line.startswith("epochs") else
                     f'methods = ["lora"]\n[set.lora]\n{line}\n')
    code, _, err = cli("suite", suite, "--out", tmp_path / "store")
    assert code == 2 and "expected an integer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


# ----------------------------------------------------------------------------- the tuned protocol


def test_compare_leaves_selection_runs_out(tmp_path):
    from petlbench.results.aggregate import aggregate
    from petlbench.results.schema import RunResult
    from petlbench.results.store import Store, load_frame

    store = Store(tmp_path)
    for i, selection in enumerate([True, False]):
        store.append(RunResult(run_id=f"r{i}", config_hash=f"h{i}", method="linear", dataset="d", top1_pct=50.0,
                               selection=selection, status="ok"))
    assert list(aggregate(load_frame([tmp_path]))["n"]) == [1]
