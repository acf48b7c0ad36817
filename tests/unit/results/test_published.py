"""Published reference numbers: the file's schema and names, family matching, ours − published."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from petlbench.data.hub import HUB
from petlbench.errors import UserError
from petlbench.registry import METHODS
from petlbench.results.aggregate import aggregate
from petlbench.results.published import (
    COLUMNS,
    PUBLISHED_ONLY,
    RELATIVE_METRICS,
    VL_TASKS,
    backbone_family,
    check,
    known_methods,
    load_published,
    published_deltas,
    published_path,
    relative_claims,
)
from petlbench.tracks import supported_kinds

from ...runs_table import frame, paired_rows

VIT = "vit_base_patch16_224.orig_in21k"
REF = Path(__file__).resolve().parents[3] / "benchmarks" / "reference"


def test_published_file_schema_and_names():
    raw = pd.read_csv(published_path(), dtype=str, keep_default_na=False)
    assert list(raw.columns) == COLUMNS
    assert check(raw) == []
    pub = load_published()
    relative = pub["metric"].isin(list(RELATIVE_METRICS))
    percent = pub["metric"].str.endswith("_pct") & ~relative
    assert pub["value"].dtype == float and pub.loc[percent, "value"].between(0, 100).all()
    assert pub.loc[relative, "value"].between(-100, 1000).all() and relative.any()
    assert set(pub.loc[~percent & ~relative, "metric"]) == {"gflops_extra"} and (pub["value"] >= -100).all()
    assert (pub["source"].str.len() > 10).all() and (pub["notes"].str.len() > 0).all()
    names = set(known_methods())
    for r in pub.itertuples():
        assert r.method in names, r.method
        assert r.task in HUB or r.task in VL_TASKS, r.task
        assert r.method in PUBLISHED_ONLY or r.task in VL_TASKS or "vit" in supported_kinds(
            METHODS.get(r.method).supports)  # VL-only methods: VL tasks
    vtab = pub[pub["task"].str.startswith("vtab-")]
    assert set(vtab["backbone_family"]) == {"ViT-B/16 IN-21k"} and set(vtab["metric"]) == {"top1_pct"}
    # every VTAB method the issue lists is present, VPT in both variants
    got = set(zip(vtab["method"], vtab["config"], strict=True))
    assert got >= {("full", ""), ("linear", ""), ("vpt", "deep=false"), ("vpt", "deep=true"), ("bitfit", ""),
                   ("adapter", ""), ("lora", ""), ("adaptformer", "")}


def test_check_reports_bad_rows():
    bad = pd.DataFrame([
        {"method": "lora", "config": "", "task": "vtab-cifar", "backbone": "b", "backbone_family": "f",
         "metric": "top1_pct", "value": "150", "params": "", "source": "", "notes": ""},
        {"method": "nosuch", "config": "deep", "task": "imagenet", "backbone": "b", "backbone_family": "f",
         "metric": "top1_pct", "value": "x", "params": "", "source": "s", "notes": ""},
    ])[COLUMNS]
    problems = " | ".join(check(bad))
    for text in ("line 2: value '150'", "line 2: empty source", "line 3: unknown task 'imagenet'",
                 "line 3: unknown method 'nosuch'", "line 3: config 'deep'", "line 3: value 'x'"):
        assert text in problems
    assert check(bad.drop(columns=["notes"])) and "expected" in check(bad.drop(columns=["notes"]))[0]


def test_relative_claims_are_changes_in_percent_matched_by_method_config_and_backbone_kind(tmp_path):
    row = {"method": "dvp", "config": "variant=adp", "task": "vqav2", "backbone": "b", "backbone_family": "METER",
           "metric": "gmacs_change_pct", "value": "-80", "params": "", "source": "paper", "notes": "n"}
    pub = pd.DataFrame([row, {**row, "config": "", "value": "-120"}])[COLUMNS]
    assert check(pub) == ["line 3: value '-120' is not a percentage change"]
    path = tmp_path / "p.csv"
    pub.iloc[:1].to_csv(path, index=False)
    assert relative_claims("dvp", {"variant": "adp"}, "meter", path)[0]["value"] == -80
    assert relative_claims("dvp", {"variant": "full"}, "meter", path) == [] == relative_claims("das", {}, "meter", path)
    assert relative_claims("dvp", {"variant": "adp"}, "vit", path) == []  # a claim about another backbone kind


def test_load_published_rejects_a_malformed_file(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(",".join(COLUMNS) + "\nlora,,vtab-cifar,b,f,top1_pct,75,,,\n")
    with pytest.raises(UserError, match="empty source"):
        load_published(path)


def test_backbone_family():
    assert backbone_family(VIT) == "ViT-B/16 IN-21k"
    assert backbone_family("vit_base_patch16_224_in21k") == "ViT-B/16 IN-21k AugReg"  # a different checkpoint
    assert backbone_family("petl_vit_micro") is None
    assert backbone_family(VIT, weights_source="random-init") is None


def _deltas(tmp_path, rows):
    df = frame(tmp_path, rows)
    d = published_deltas(df, aggregate(df), load_published())
    return {(r.dataset, r.method, r.label, r.model): r for r in d.itertuples()}


def test_ours_minus_published(tmp_path):
    hub = {"model": VIT, "weights_source": f"hub:timm/{VIT}"}
    rows = paired_rows("vpt", "vtab-cifar", [80.0, 81.0], config={"deep": True}, **hub)
    rows += paired_rows("vpt", "vtab-dtd", [60.0, 61.0], config={"deep": False}, **hub)
    rows += paired_rows("lion", "vtab-cifar", [70.0], **hub)
    rows += paired_rows("linear", "vtab-cifar", [10.0], label="random-init", model=VIT, weights_source="random-init")
    rows += paired_rows("lora", "vtab-cifar", [50.0])  # bundled micro ViT
    rows += paired_rows("lora", "cells", [30.0])  # built-in offline task
    d = _deltas(tmp_path, rows)
    deep = d[("vtab-cifar", "vpt", "", VIT)]
    assert deep.published == 78.8 and deep.delta == pytest.approx(80.5 - 78.8) and "2203.12119" in deep.source
    shallow = d[("vtab-dtd", "vpt", "", VIT)]
    assert shallow.published == 62.6 and shallow.delta == pytest.approx(60.5 - 62.6)
    assert d[("vtab-cifar", "lion", "", VIT)].status == "no published number"
    assert d[("vtab-cifar", "linear", "random-init", VIT)].status.startswith("random-init backbone")
    assert "no published backbone family" in d[("vtab-cifar", "lora", "", "petl_vit_micro")].status
    offline = d[("cells", "lora", "", "petl_vit_micro")]
    assert offline.status == "offline task: no published number" and math.isnan(offline.delta)


def test_compare_published_cli(cli, tmp_path):
    code, out, err = cli("compare", str(REF / "mini-vtab.csv"), "--published", "--dataset", "cells")
    assert code == 0, err
    assert "offline tasks (cells): no published numbers" in out


def test_published_table_prints_labels_as_text(cli, tmp_path):
    """A label in brackets is text, not Rich markup: 'linear [random-init]' prints whole."""
    rows = paired_rows("linear", "vtab-cifar", [10.0, 11.0], label="random-init", model=VIT, weights_source="random-init")
    rows += paired_rows("vpt", "vtab-cifar", [80.0, 81.0], config={"deep": True}, model=VIT,
                        weights_source=f"hub:timm/{VIT}")
    frame(tmp_path, rows)
    code, out, err = cli("compare", tmp_path, "--published")
    assert code == 0, err
    published = out[out.index("ours − published"):]
    assert "linear [random-init]" in " ".join(published.split()) and "+1.70" in published


def test_every_row_of_the_apt_readme_tables_is_published():
    """github.com/DoubtedSteam/APT README, 'Experiment Result': 7 methods x (VQA, NLVR2, F30K IR, F30K TR, Avg.,
    additional FLOPs) on ViLT and on METER."""
    pub = load_published()
    apt = pub[pub["source"].str.contains("DoubtedSteam/APT") & pub["backbone_family"].isin(["ViLT-B/32", "METER"])
              & ~pub["metric"].isin(list(RELATIVE_METRICS))]
    for family in ("ViLT-B/32", "METER"):
        rows = apt[apt["backbone_family"] == family]
        assert set(rows["method"]) == {"full", "linear", "deep-prompt", "lora", "scaled-pa", "adapter", "apt"}
        assert len(rows) == 7 * 6 and not rows.duplicated(["method", "task", "metric"]).any()
    row = lambda m, f, t, k: apt[(apt.method == m) & (apt.backbone_family == f) & (apt.task == t)  # noqa: E731
                                 & (apt.metric == k)].iloc[0]
    assert row("deep-prompt", "METER", "vqav2", "gflops_extra").value == 13.05
    assert row("scaled-pa", "ViLT-B/32", "flickr30k-tr", "recall_at_1_pct").value == 79.00
    assert row("full", "METER", "vqav2", "vqa_score_pct").params == "323.31M"


def test_averages_line_up_over_the_tasks_both_have(tmp_path):
    hub = {"model": VIT, "weights_source": f"hub:timm/{VIT}"}
    rows = paired_rows("lora", "vtab-cifar", [70.0], data_group="natural", **hub)
    rows += paired_rows("lora", "vtab-eurosat", [90.0], data_group="specialized", **hub)
    rows += paired_rows("lora", "vtab-kitti", [80.0], data_group="structured", **hub)
    rows += paired_rows("lion", "vtab-cifar", [70.0], **hub) + paired_rows("lion", "vtab-kitti", [60.0], **hub)
    df = frame(tmp_path, rows)
    from petlbench.results.published import published_averages

    avg = published_averages(published_deltas(df, aggregate(df), load_published()))
    lora = avg[avg["name"] == "lora"].set_index("average")
    # published LoRA (NOAH's table): cifar 67.1, eurosat 95.3, kitti 78.5
    assert lora.loc["mean over tasks", "published"] == pytest.approx((67.1 + 95.3 + 78.5) / 3)
    assert lora.loc["mean over tasks", "ours"] == pytest.approx(80.0) and lora.loc["mean over tasks", "over"] == "3 of 3 tasks"
    assert "mean of the 3 VTAB group means" in lora.index
    lion = avg[avg["name"] == "lion"].iloc[0]
    assert math.isnan(lion.published) and lion.over == "no published number for any of its 2 tasks"
