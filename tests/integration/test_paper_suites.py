"""The paper path on every CI run: a scaled-down replica of each paper suite (vtab-1k, apt-vilt, apt-meter, dvp) runs
end to end offline through the CLI (``suite REPLICA --root FIXTURES``, then ``compare --published``), on tiny fixtures
written in the official formats (NOAH's VTAB-1k layout, ViLT's / METER's / DVP's arrow files, the official VQAv2 JSON
+ COCO folders) and stand-in models (random init, or the bundled micro VL-pretrained ones). A replica is the committed
suite with its model, budget and seeds replaced; the default run trains one job per data format and suite block kind,
the slow one every job of every suite."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import write_vtab_root
from ..text_models import save_text_model
from ..vl_files import (
    write_dvp_gqa,
    write_dvp_snli,
    write_meter_snli,
    write_vilt_vqa,
    write_vqa_json,
)

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
BUDGET = {"epochs": 1, "batch_size": 4, "limit": 8, "seeds": [0], "precision": "fp32"}
VL_BUDGET = {**BUDGET, "randaugment": False}  # fewer PIL operations; the recipe's RandAugment: the test below
SEARCH = {"das": {"search_epochs": 0}, "dvp": {"search_updates": 2}}  # the searches' official budgets are hours


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _dump(block: dict, prefix: str = "") -> list[str]:
    """One suite block as TOML lines (scalars, then its [set.<method>] tables)."""
    lines = [f"{k} = {_toml(v)}" for k, v in block.items() if k not in ("set", "group")]
    for method, keys in block.get("set", {}).items():
        lines += [f"[{prefix}set.{method}]", *(f"{k} = {_toml(v)}" for k, v in keys.items())]
    return lines


Pick = Callable[[dict, str, str], bool]  # (block, method, dataset folder) -> keep


def replica(suite: str, out: Path, model: dict[str, dict], pick: Pick = lambda block, method, dataset: True) -> Path:
    """The committed ``suite`` with each block's model replaced (``model``: committed model -> stand-in run keys),
    a tiny budget and the searches cut; a block keeps the methods and datasets (folder names under the root) that
    ``pick`` keeps with some of the other, and goes when none is left."""
    data = tomllib.loads((BENCH / f"{suite}.toml").read_text())
    top = {k: v for k, v in data.items() if k != "group"}
    blocks = [top] + [{**top, **g, "set": {**top.get("set", {}), **g.get("set", {})}} for g in data.get("group", [])]
    kept = []
    for b in blocks:
        b = {k: v for k, v in b.items() if k not in ("weights", "name", "description", "root", "group")}
        b.update(model[b["model"]], **(VL_BUDGET if b.get("track") == "vl" else BUDGET))
        pairs = [(m, d) for m in b["methods"] for d in b["datasets"] if pick(b, m, Path(d).name)]
        b["methods"] = list(dict.fromkeys(m for m, _ in pairs))
        b["datasets"] = list(dict.fromkeys(d for _, d in pairs))
        b["set"] = {m: {**b.get("set", {}).get(m, {}), **SEARCH.get(m, {})} for m in b["methods"]}
        if pairs:
            kept.append(b)
    lines = [f'name = "{suite}-replica"', *_dump(kept[0])]
    for g in kept[1:]:
        lines += ["", "[[group]]", *_dump(g, "group.")]
    out.write_text("\n".join(lines) + "\n")
    return out


def _roots(tmp_path: Path) -> dict[str, Path]:
    """The fixtures of every suite, as `petlbench fetch` lays them out (one root per suite)."""
    vtab = write_vtab_root(tmp_path / "vtab-1k")  # all 19 task folders, 6 images per split
    vilt = tmp_path / "vilt"
    write_vilt_vqa(vilt / "vqav2")
    meter = tmp_path / "meter"
    write_vqa_json(meter / "vqav2")
    write_meter_snli(meter / "snli-ve")
    dvp = tmp_path / "dvp"
    write_vilt_vqa(dvp / "vqav2")
    write_dvp_gqa(dvp / "gqa")
    write_dvp_snli(dvp / "snli-ve")
    return {"vtab-1k": vtab, "apt-vilt": vilt, "apt-meter": meter, "dvp": dvp}


def _models(tmp_path: Path) -> dict[str, dict[str, dict]]:
    texts = [f"what colour is it {k} ?" for k in range(3)] + ["it is red", "a picture", "what colour is picture ?"]
    t5 = save_text_model(tmp_path / "tiny-t5", "t5", texts)
    vit = {"img_size": 32, "pretrained": False}
    return {"vtab-1k": {"vit_base_patch16_224.orig_in21k": {"model": "test_vit", **vit}},
            "apt-vilt": {"vilt": {"model": "petl_vilt_micro_scenes"}},
            "apt-meter": {"meter": {"model": "petl_meter_micro_scenes"}},
            "dvp": {"bert-base-uncased+vit_base_patch16_clip_224.openai": {"model": "minilm+test_vit", **vit},
                    "t5-base+vit_base_patch16_clip_224.openai": {"model": f"{t5}+test_vit", **vit}}}


# one job per data format and kind of block: what each fast replica keeps
FAST: dict[str, Pick] = {
    # the NOAH protocol (top block) and the VPT protocol in a labelled group, one task
    "vtab-1k": lambda b, m, d: d == "kitti" and (m == "lora" or b.get("label") == "shallow"),
    "apt-vilt": lambda b, m, d: m == "apt",  # ViLT's vqav2 arrow files
    "apt-meter": lambda b, m, d: m == "lora",  # the official VQAv2 JSON + COCO folders, METER's snli arrow files
    # DVP's gqa files on BERT, its snli_ve files on T5
    "dvp": lambda b, m, d: not b.get("label") and d == ("snli-ve" if "t5" in b["model"] else "gqa"),
}


def _run(cli, tmp_path, suite: str, replica_toml: Path, root: Path) -> pd.DataFrame:
    store = tmp_path / f"store-{suite}"
    code, out, err = cli("suite", replica_toml, "--root", root, "--out", store)
    assert code == 0, out + err
    df = pd.read_csv(store / "results.csv")
    assert (df["status"] == "ok").all(), df[["method", "dataset", "error"]].to_dict("records")
    code, out, err = cli("compare", store, "--published")
    assert code == 0, err
    assert "ours − published" in out and "no published" in out  # stand-in models: no published counterpart
    return df


@pytest.mark.parametrize("suite", list(FAST))
def test_a_replica_of_each_paper_suite_runs_end_to_end(cli, tmp_path, suite):
    roots, models = _roots(tmp_path), _models(tmp_path)
    df = _run(cli, tmp_path, suite, replica(suite, tmp_path / f"{suite}.toml", models[suite], FAST[suite]),
              roots[suite])
    expected = {"vtab-1k": {("lora", "", "vtab-kitti", "noah"), ("vpt", "shallow", "vtab-kitti", "vpt-vtab")},
                "apt-vilt": {("apt", "", "vqav2", "model")},
                "apt-meter": {("lora", "", "vqav2", "model"), ("lora", "", "snli-ve", "model")},
                "dvp": {("dvp", "", "gqa", "model"), ("dvp", "", "snli-ve", "model")}}[suite]
    got = {(r.method, "" if pd.isna(r.label) else r.label, r.dataset, r.protocol) for r in df.itertuples()}
    assert got == expected
    assert df["trainval"].all() and df["data_source"].str.contains(str(roots[suite])).all()
    if suite == "dvp":
        assert set(zip(df["dataset"], df["model"].str.split("/").str[-1], strict=True)) == {
            ("gqa", "minilm+test_vit"), ("snli-ve", "tiny-t5+test_vit")}


@pytest.mark.slow  # every job of every suite: ~70 tiny runs, many minutes on 2 cores
@pytest.mark.parametrize("suite", ["vtab-1k", "apt-vilt", "apt-meter", "dvp"])
def test_the_whole_replica_of_each_paper_suite_runs(cli, tmp_path, suite):
    roots, models = _roots(tmp_path), _models(tmp_path)
    df = _run(cli, tmp_path, suite, replica(suite, tmp_path / f"{suite}.toml", models[suite]), roots[suite])
    committed = tomllib.loads((BENCH / f"{suite}.toml").read_text())
    blocks = [committed, *committed.get("group", [])]
    assert set(df["method"]) == {m for b in blocks for m in b.get("methods", [])}


def test_official_vilt_recipe_with_randaugment_trains_on_the_papers_files(cli, tmp_path):
    data = write_vilt_vqa(tmp_path / "vqa")
    code, out, err = cli("run", "apt", "--dataset", data, "--model", "petl_vilt_micro_scenes", "--limit", "8",
                         "--epochs", "1", "--batch-size", "4", "--precision", "fp32", "--out", tmp_path / "s")
    df = pd.read_csv(tmp_path / "s" / "results.csv")
    assert code == 0 and (df["status"] == "ok").all(), out + err
