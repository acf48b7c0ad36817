"""Published reference numbers (``benchmarks/reference/published.csv``) and ``compare --published``.

A published number matches one of our configurations when the method, the task and the backbone
*family* agree, and every ``key=value`` in the row's ``config`` column equals our method config
(e.g. ``deep=true`` tells VPT-deep from VPT-shallow). Our cell then shows ``ours − published``.
The backbone family comes from the model name (``backbone_family``); runs on a random-init backbone,
on the bundled micro ViT or on the built-in offline tasks have no published counterpart and say so.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from petlbench.errors import UserError
from petlbench.results.aggregate import check_sort
from petlbench.results.schema import METRICS
from petlbench.results.tables import Col, fitted, fmt

COLUMNS = ["method", "config", "task", "backbone", "backbone_family", "metric", "value", "params", "source", "notes"]

# Model name -> backbone family. Only checkpoints whose provenance is known are listed: the VTAB-1k papers
# (VPT, NOAH, FacT, SSF...) use Google's original IN-21k ViT-B/16, timm's `.orig_in21k`; `augreg_in21k`
# (and its alias `vit_base_patch16_224_in21k`) is a different checkpoint.
FAMILIES: dict[str, str] = {
    "vit_base_patch16_224.orig_in21k": "ViT-B/16 IN-21k",
    "vit_base_patch16_224.augreg_in21k": "ViT-B/16 IN-21k AugReg",
    "vit_base_patch16_224_in21k": "ViT-B/16 IN-21k AugReg",
    # the VL papers' backbones as the paper suites name them (a METER run's weights are the official checkpoint)
    "vilt": "ViLT-B/32",
    "vilt:dandelin/vilt-b32-mlm": "ViLT-B/32",
    "meter": "METER",
    "bert-base-uncased+vit_base_patch16_clip_224.openai": "BERT-base + CLIP ViT-B/16",
    "t5-base+vit_base_patch16_clip_224.openai": "T5-base + CLIP ViT-B/16",
}

# Vision-language tasks of published.csv, by their names there (some have no petlbench dataset: nlvr2, scienceqa,
# the Flickr30K retrieval tasks and the APT README's average over its four tasks).
VL_TASKS: dict[str, str] = {
    "vqav2": "VQAv2 test-dev, VQA score %",
    "gqa": "GQA test-dev accuracy %",
    "snli-ve": "SNLI-VE test accuracy %",
    "nlvr2": "NLVR2 test-P accuracy %",
    "scienceqa": "ScienceQA test average accuracy %",
    "flickr30k-ir": "Flickr30K image retrieval R@1 %",
    "flickr30k-tr": "Flickr30K text retrieval R@1 %",
    "apt-avg": "the APT README's Avg.: mean of VQAv2 test-dev, NLVR2 test-P, Flickr30K IR and TR R@1 %",
}

# Methods a published table compares with that petlbench does not implement: their rows stay published-only.
PUBLISHED_ONLY: dict[str, str] = {
    "deep-prompt": "deep prompt tuning on a VLP model (the APT repository's *_module_prompt.py baselines)",
    "scaled-pa": "scaled parallel adapter (He et al. ICLR 2022)",
}

# What a published number measures: a score petlbench's runs report (``top1_pct`` holds top-1 or the VQA score),
# a retrieval recall, additional compute in GFLOPs, or a relative claim (``RELATIVE_METRICS``).
SCORE_METRICS = ("top1_pct", "vqa_score_pct", "accuracy_pct")
METRIC_RANGES: dict[str, tuple[float, float]] = {**{m: (0.0, 100.0) for m in (*SCORE_METRICS, "recall_at_1_pct",
                                                                                 "mean_pct")},
                                                 "gflops_extra": (0.0, 1e4)}


# Relative claims (a paper's "−80% FLOPs"): the metric names a ratio ``inspect`` measures, in % change against the
# method's baseline, the plain backbone of the same model (``engine.build.inspect``); value = the claimed change.
RELATIVE_METRICS: dict[str, str] = {
    "gmacs_change_pct": "GMACs of the whole model (frozen visual encoder included) vs the plain backbone, % change",
    "gmacs_extra_vs_counterpart_pct": "additional GMACs (over the plain backbone) vs those of the conventional method "
                                      "it makes cheaper (APT: conventional prompt tuning), % change",
}
# The backbone kind each published backbone family is (``BackboneFamily.kind``): a relative claim is shown by
# ``inspect`` beside a measurement on a model of the same kind only.
FAMILY_KINDS: dict[str, str] = {"BERT-base + CLIP ViT-B/16": "vl", "METER": "meter", "ViLT-B/32": "vilt"}


def published_path() -> Path:
    return Path(str(resources.files("petlbench.benchmarks").joinpath("reference/published.csv")))


def backbone_family(model: str, weights_source: str = "") -> str | None:
    """Published-backbone family of a run's model; None for random init or a model of unknown provenance."""
    if weights_source == "random-init":
        return None
    return FAMILIES.get(model)


def known_tasks() -> set[str]:
    from petlbench.datasets import DATASETS

    return set(DATASETS.names()) | set(VL_TASKS)


def known_methods() -> set[str]:
    from petlbench.registry import METHODS

    return set(METHODS.names()) | set(PUBLISHED_ONLY)


def backbone_family_of(model: str, weights_source: str = "") -> str | None:
    """``backbone_family``, also for a ViLT named by its checkpoint (``vilt:SOURCE``)."""
    return backbone_family(model.split(":")[0] if model.startswith("vilt:") else model, weights_source)


def check(pub) -> list[str]:
    """Problems with a published table: columns, types, empty sources, unknown names, duplicate keys."""
    if list(pub.columns) != COLUMNS:
        return [f"columns are {list(pub.columns)}, expected {COLUMNS}"]
    problems = []
    tasks, methods = known_tasks(), known_methods()
    for i, r in enumerate(pub.to_dict("records"), start=2):  # line numbers of the CSV (header = 1)
        value, relative = _float(r["value"]), r["metric"] in RELATIVE_METRICS
        lo, hi = (-100, 1000) if relative else METRIC_RANGES.get(r["metric"], (0, 100))
        if value is None or not lo <= value <= hi:
            what = "percentage change" if relative else "percentage" if hi == 100 else f"value in {lo:g}..{hi:g}"
            problems.append(f"line {i}: value '{r['value']}' is not a {what}")
        if not relative and r["metric"] not in METRIC_RANGES:
            problems.append(f"line {i}: unknown metric '{r['metric']}'")
        for col in ("method", "task", "backbone", "backbone_family", "metric", "source"):
            if not str(r[col] or "").strip():
                problems.append(f"line {i}: empty {col}")
        if r["task"] not in tasks:
            problems.append(f"line {i}: unknown task '{r['task']}'")
        if r["method"] not in methods:
            problems.append(f"line {i}: unknown method '{r['method']}'")
        if any("=" not in kv for kv in str(r["config"] or "").split()):
            problems.append(f"line {i}: config '{r['config']}' is not space-separated key=value pairs")
    dup = pub.duplicated(["method", "config", "task", "backbone_family", "metric"])
    problems += [f"line {i + 2}: duplicate (method, config, task, backbone_family, metric)" for i in dup[dup].index]
    return problems


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def load_published(path: str | Path | None = None):
    """The published table as a DataFrame (all columns text except ``value``); UserError if malformed."""
    import pandas as pd

    path = Path(path) if path else published_path()
    pub = pd.read_csv(path, dtype=str, keep_default_na=False)
    problems = check(pub)
    if problems:
        raise UserError(f"{path}: {problems[0]} ({len(problems)} problem(s)); fix the file")
    return pub.assign(value=pub["value"].astype(float))


def _config_matches(constraints: str, method_config: dict[str, Any]) -> bool:
    for kv in constraints.split():
        key, _, want = kv.partition("=")
        have = method_config.get(key)
        if str(have).lower() != want.lower():
            return False
    return True


def _run_info(df) -> dict[tuple[str, ...], tuple[str, dict[str, Any]]]:
    """(dataset, method, label, model, group_hash) -> (weights_source, method config) of its first successful row."""
    out = {}
    ok = df[df["status"] == "ok"].fillna({"label": "", "weights_source": "", "method_config": "", "group_hash": ""})
    if "group_hash" not in ok:
        ok = ok.assign(group_hash="")
    for key, g in ok.groupby(["dataset", "method", "label", "model", "group_hash"], sort=False):
        text = g["method_config"].iloc[0]
        out[key] = (g["weights_source"].iloc[0], json.loads(text) if text else {})
    return out


def published_deltas(df, agg, pub):
    """One row per aggregated configuration: our mean, the matching published value and ours − published,
    or the reason there is none (``status``)."""
    import pandas as pd

    from petlbench.data.builtin import BY_NAME

    offline, info, rows = set(BY_NAME), _run_info(df), []
    pub = pub[pub["metric"].isin(SCORE_METRICS)]  # what our runs score; relative claims: shown by `inspect`
    for r in agg.itertuples():
        weights, config = info.get((r.dataset, r.method, r.label, r.model, r.group_hash), ("", {}))
        family = backbone_family_of(r.model, weights)
        row = {"dataset": r.dataset, "method": r.method, "label": r.label, "model": r.model, "name": r.name,
               "data_group": getattr(r, "data_group", ""), "track": getattr(r, "track", ""),
               **{m: getattr(r, m) for m in METRICS}, "family": family or "",
               "ours": r.top1_pct, "ours_std": r.top1_pct_std, "n": r.n, "published": math.nan,
               "delta": math.nan, "source": "", "status": ""}
        if r.dataset in offline:
            row["status"] = "offline task: no published number"
        elif family is None:
            row["status"] = ("random-init backbone" if weights == "random-init" else
                             f"model '{r.model}' has no published backbone family") + ": no published number"
        else:
            hits = pub[(pub["method"] == r.method) & (pub["task"] == r.dataset) & (pub["backbone_family"] == family)]
            hits = hits[[_config_matches(c, config) for c in hits["config"]]]
            if hits.empty:
                row["status"] = "no published number"
            else:
                h = hits.iloc[0]
                row.update(published=h["value"], delta=r.top1_pct - h["value"], source=h["source"], status="match")
        rows.append(row)
    return pd.DataFrame(rows)


PUBLISHED_COLS = [Col("dataset", 0, "left", True), Col("method", 0, "left", True), Col("model", 2, "left", True),
                  Col("backbone family", 3, "left", True), Col("ours (mean ± std)"), Col("published"),
                  Col("ours − published"), Col("source / why none", 1, "left", True)]


def published_tables(deltas, sort: str = "top1_pct", width: int | None = None) -> list:
    """Rich output: one table of the rows on tasks that have published numbers (per dataset, ranked by ``sort``;
    a model column where there are several models), one line for offline tasks."""
    from rich.markup import escape

    offline = deltas["status"].str.startswith("offline")
    out: list[Any] = []
    rest = deltas[~offline]
    if len(rest):
        higher = check_sort(sort)[1]
        rows = []
        for r in rest.sort_values(["dataset", sort], ascending=[True, not higher], kind="stable").itertuples():
            match = r.status == "match"
            rows.append([escape(r.dataset), escape(r.name), escape(r.model), escape(r.family or "–"),
                         f"{fmt(r.ours)} ± {fmt(r.ours_std)}", fmt(r.published, 1) if match else "–",
                         f"{r.delta:+.2f}" if match else "–", escape(r.source if match else r.status)])
        cols = PUBLISHED_COLS if rest["model"].nunique() > 1 else [c for c in PUBLISHED_COLS if c.header != "model"]
        keep = [i for i, c in enumerate(PUBLISHED_COLS) if c in cols]
        out.append(fitted("ours − published (top-1 %, same method, task and backbone family)", cols,
                          [[row[i] for i in keep] for row in rows], width))
    averages = published_averages(rest)
    if len(averages):
        out.append(fitted("averages: ours − published over the tasks both have (same configuration and backbone "
                          "family)", AVERAGE_COLS, [_average_row(a) for a in averages.itertuples()], width))
    if offline.any():
        names = ", ".join(sorted(deltas.loc[offline, "dataset"].unique()))
        out.append(escape(f"offline tasks ({names}): no published numbers exist for the built-in tasks"))
    return out


AVERAGE_COLS = [Col("configuration", 0, "left", True), Col("model", 2, "left", True), Col("average", 0, "left", True),
                Col("ours"), Col("published"), Col("ours − published"), Col("over", 1, "left", True)]
VTAB_GROUPS = ("natural", "specialized", "structured")  # the data_group values of VTAB-1k rows


def published_averages(deltas):
    """Per configuration (name, model) on several tasks: the mean over the tasks that have a published number, ours
    and published, and for VTAB-1k (all three groups matched) the mean of the group means; the reason otherwise."""
    import pandas as pd

    rows = []
    for (name, model), g in deltas.groupby(["name", "model"], sort=False):
        if g["dataset"].nunique() < 2:
            continue
        hit = g[g["status"] == "match"]
        over = f"{len(hit)} of {len(g)} tasks" + ("" if len(hit) == len(g) else " (the others: no published number)")
        if hit.empty:
            rows.append({"name": name, "model": model, "average": "mean over tasks", "ours": g["ours"].mean(),
                         "published": math.nan, "over": f"no published number for any of its {len(g)} tasks"})
            continue
        rows.append({"name": name, "model": model, "average": "mean over tasks", "ours": hit["ours"].mean(),
                     "published": hit["published"].mean(), "over": over})
        if set(hit["data_group"]) == set(VTAB_GROUPS):  # VPT / NOAH's convention: the mean of the group means
            by = hit.groupby("data_group")[["ours", "published"]].mean().mean()
            rows.append({"name": name, "model": model, "average": "mean of the 3 VTAB group means",
                         "ours": by["ours"], "published": by["published"], "over": over})
    return pd.DataFrame(rows, columns=["name", "model", "average", "ours", "published", "over"])


def _average_row(a) -> list[str]:
    from rich.markup import escape

    has = not math.isnan(a.published)
    return [escape(a.name), escape(a.model), a.average, fmt(a.ours), fmt(a.published) if has else "–",
            f"{a.ours - a.published:+.2f}" if has else "–", escape(a.over)]


def relative_claims(method: str, method_config: dict[str, Any], kind: str,
                    path: str | Path | None = None) -> list[dict]:
    """The published relative claims (``RELATIVE_METRICS``) about ``method`` on a backbone of ``kind``
    (``FAMILY_KINDS``) whose ``config`` matches ``method_config``: metric, claimed change, task, backbone, source and
    notes."""
    pub = load_published(path)
    rows = pub[(pub["method"] == method) & pub["metric"].isin(list(RELATIVE_METRICS))
               & (pub["backbone_family"].map(FAMILY_KINDS) == kind)]
    return [{k: r[k] for k in ("metric", "value", "task", "backbone", "source", "notes")}
            for r in rows.to_dict("records") if _config_matches(r["config"], method_config)]
