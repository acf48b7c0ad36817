"""Aggregation of stored runs: configurations named by what tells them apart (their identity), mean / std / 95% CI
over seeds per configuration and task, the VTAB-style summaries per track, and the notes and captions views show."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from petlbench.errors import UserError
from petlbench.results.schema import COLUMNS, METRICS, RunResult

KEYS = ["dataset", "method", "label", "model", "group_hash"]
FAMILY = ["track", "method", "label", "model"]  # configurations of one method that need telling apart by identity
CONFIG = ["method", "label", "model", "variant"]  # one configuration across tasks (summaries, --vs, report)


def display_name(method: str, label: str, note: str = "", variant: str = "") -> str:
    """``method [label] (variant)``, with a † when the method carries a note (see ``notes_caption``)."""
    return f"{method}{'†' if note else ''}" + (f" [{label}]" if label else "") + (f" ({variant})" if variant else "")


def aggregate(df):
    """Mean / std / n / 95% CI half-width per configuration (``group_hash``) over seeds (status ok only; a tune's
    selection runs, scored on val and never on test, are not results and are left out). Each row is named by
    what tells it apart from the other configurations of its method (``variant``, ``name``; see ``_name``);
    ``tasks`` of ``tasks_total``: how many of its track's tasks the configuration ran on (fewer: a partial one,
    never ranked among the complete ones)."""
    import pandas as pd

    keep = df["status"] == "ok"
    if "selection" in df:
        keep &= ~df["selection"].astype(bool)
    ok = df[keep].copy()
    if "config_hash" in ok:  # one configuration counts once, whatever the store holds (the latest row wins)
        hashed = ok["config_hash"].fillna("").astype(str) != ""
        ok = pd.concat([ok[~hashed], ok[hashed].drop_duplicates("config_hash", keep="last")])
    for k in KEYS:
        ok[k] = ok[k].fillna("") if k in ok else ""
    rows = [_aggregate_one(dict(zip(KEYS, key, strict=True)), g) for key, g in ok.groupby(KEYS, sort=False)]
    if not rows:
        return pd.DataFrame(rows)
    agg = _name(pd.DataFrame(rows))
    return agg.assign(tasks=agg.groupby(["track", *CONFIG])["dataset"].transform("nunique"),
                      tasks_total=agg.groupby("track")["dataset"].transform("nunique"))


def named_rows(df, agg=None):
    """The rows that count (status ok, not a selection run, one per stored configuration and seed), each with its
    configuration's ``variant`` and ``name`` as ``results.aggregate`` gives them (``agg``: that aggregate, when
    the caller has it)."""
    agg = aggregate(df) if agg is None else agg
    ok = df[df["status"] == "ok"].copy()
    for k in ["dataset", *KEYS]:
        ok[k] = ok[k].fillna("").astype(str) if k in ok else ""
    ok["data_group"] = ok["data_group"].fillna("").astype(str) if "data_group" in ok else ""
    names = {tuple(r[k] for k in KEYS): (r["variant"], r["name"]) for r in agg.to_dict("records")} if len(agg) else {}
    found = [names.get(key) for key in zip(*(ok[k] for k in KEYS), strict=True)]
    keep = [f is not None for f in found]  # selection runs are not results
    ok = ok[keep].assign(variant=[f[0] for f in found if f], name=[f[1] for f in found if f])
    if "config_hash" in ok:
        ok = ok.drop_duplicates("config_hash", keep="last") if (ok["config_hash"].fillna("") != "").all() else ok
    return ok


def _first(g, col: str, default: Any = "") -> Any:
    return g[col].iloc[0] if col in g else default


def _aggregate_one(row: dict[str, Any], g) -> dict[str, Any]:
    """One configuration's aggregate row from its rows ``g`` (one per seed)."""
    row["n"] = len(g)
    row["seeds"] = ",".join(str(int(s)) for s in sorted(g["seed"]))
    row["first_run"] = str(g["timestamp"].min()) if "timestamp" in g else ""
    for col in ("data_group", "peak_mem_kind", "data_fingerprint", "weights_source"):
        row[col] = _first(g, col) if isinstance(_first(g, col), str) else ""
    for col in ("track", "metric", "modality"):
        row[col] = _first(g, col, RunResult.__dataclass_fields__[col].default)
    row["gmacs_vision"] = g["gmacs_vision"].astype(float).mean() if "gmacs_vision" in g else math.nan
    row["method_note"] = _note(g)
    row["precision"] = _precision(g)
    row["batch_size"] = int(g["batch_size"].iloc[0]) if "batch_size" in g and len(g) else 0
    row["identity"] = json.dumps(stored_identity(g))  # declaration order: names list keys in that order
    for m in METRICS:
        vals = g[m].astype(float)
        row[m] = vals.mean()
        row[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
    row["top1_pct_ci95"] = _t975(len(g) - 1) * row["top1_pct_std"] / math.sqrt(len(g)) if len(g) > 1 else math.nan
    row["ppt"] = ppt(row["top1_pct"], row["params_trainable"])
    return row


def _t975(df: int) -> float:
    """The Student-t 0.975 quantile (a 95% two-sided interval) for ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def _plain(value: Any) -> Any:
    """A stored value as plain JSON: numpy scalars unwrapped, NaN and empty as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if value == "" or (isinstance(value, float) and math.isnan(value)) else value


def _run_option_keys() -> list[str]:
    """The run options of the identity that are stored as columns (``options.IDENTITY_KEYS``), less the seed
    (aggregated over), those that name a row already (dataset, model, label) and selection runs (never
    aggregated)."""
    from petlbench.config.options import IDENTITY_KEYS

    return [k for k in IDENTITY_KEYS if k in COLUMNS and k not in ("seed", "dataset", "model", "label", "selection")]


def stored_identity(g) -> dict[str, Any]:
    """A configuration's identity as its stored rows ``g`` hold it, the task and seed left out: the run options
    (precision resolved as the hash resolves it), the weights and the resolved method config (``method_config``)."""
    r = g.iloc[0]
    out = {k: _plain(r[k]) for k in _run_option_keys() if k in g}
    out["precision"] = _precision(g)
    out["weights"] = _plain(r.get("weights_sha256", ""))
    try:
        out.update(json.loads(r["method_config"]) if isinstance(r.get("method_config"), str) and r["method_config"]
                   else {})
    except json.JSONDecodeError:
        pass
    return out


def _drop_neutral(idents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Identities comparable across rows stored before and after a recipe key existed: where their keys differ,
    a key at its neutral value (``MethodConfig.NEUTRAL``, left out of the hash too) is dropped."""
    if len({frozenset(i) for i in idents}) <= 1:
        return idents
    from petlbench.methods.recipe import MethodConfig

    neutral = MethodConfig.NEUTRAL
    return [{k: v for k, v in i.items() if not (k in neutral and v == neutral[k])} for i in idents]


def _value_text(key: str, value: Any) -> str:
    """How one identity value names a configuration: a boolean that is on by its key ('trainval'), the precision
    by itself ('bf16'), others as 'key value' ('lr 0.05'); an off value (False, 0, none) names nothing."""
    if not value:
        return ""
    if value is True:
        return key
    if key == "precision":
        return str(value)
    return f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"


def _setting(value: Any) -> str:
    """One identity value as compared between configurations: every off value (False, 0, None, '') is one."""
    return json.dumps(value, sort_keys=True) if value else "off"


def _naming_keys(agg, idents: list[dict[str, Any]], idx) -> list[str]:
    """The identity keys that tell configurations of one family (``FAMILY``: the model included) apart: those
    with two settings on one task. A key whose setting differs only from task to task (a recipe resolved per task,
    like DVP's lr, METER's per-task recipe or a task's budget) is a default: it names nothing."""
    by_task: dict[tuple[str, str], set[str]] = {}
    datasets = agg["dataset"].to_numpy()
    for i in idx:
        for k in idents[i]:
            by_task.setdefault((k, datasets[i]), set()).add(_setting(idents[i].get(k)))
    return [k for k in dict.fromkeys(k for i in idx for k in idents[i])
            if any(len(v) > 1 for (key, _), v in by_task.items() if key == k)]


def weights_text(source: str) -> str:
    """Weights as a name shows them: the files or packages of ``weights_source``, never their hash
    ('text=pkg:a==1;vision=file:dir/b.safetensors' -> 'a==1+b.safetensors')."""
    parts = [p.rpartition("=")[2] if p.startswith(("text=", "vision=")) else p for p in source.split(";")]
    return "+".join(Path(p.split(":", 1)[-1]).name for p in parts if p)


def _variant(key: str, ident: dict[str, Any], weights_source: str) -> str:
    return f"weights {weights_text(weights_source)}" if key == "weights" and ident.get(key) else \
        _value_text(key, ident.get(key))


def _name(agg):
    """``variant``: what tells a configuration apart from the other configurations of its method, label and
    model (``_naming_keys``), from the stored identity (e.g. 'trainval', 'bf16', 'lr 0.05', 'limit 64'); '' when
    nothing does. ``name``: the display name (method† [label] (variant)), never the model (a column or a
    section of every view) nor a hash. The same configuration gets the same name on every task, so a summary over
    tasks holds each configuration once, over all of its tasks."""
    idents = _drop_neutral([json.loads(s) for s in agg["identity"]])
    variants = [""] * len(agg)
    for _, idx in agg.groupby(FAMILY, sort=False).indices.items():
        keys = _naming_keys(agg, idents, idx)
        for i in idx:
            variants[i] = ", ".join(t for k in keys if (t := _variant(k, idents[i], agg["weights_source"].iat[i])))
    agg = agg.assign(variant=variants)
    same = agg.duplicated(["dataset", *CONFIG], keep=False) & (agg["group_hash"] != "")
    if same.any():  # configurations the stored columns cannot tell apart (e.g. another img_size): by first run
        order = agg[same].groupby(["dataset", *CONFIG])["first_run"].rank(method="first").astype(int)
        agg.loc[same, "variant"] = [", ".join(filter(None, [v, f"run set {n}"]))
                                    for v, n in zip(agg.loc[same, "variant"], order, strict=True)]
    names = [display_name(r.method, r.label, r.method_note, r.variant) for r in agg.itertuples()]
    return agg.assign(name=names)


def _precision(rows) -> str:
    """fp32 | bf16 of a configuration's rows (rows stored before --precision: from their ``amp`` column)."""
    stored = rows["precision"].iloc[0] if "precision" in rows else ""
    if isinstance(stored, str) and stored:
        return stored
    return "bf16" if "amp" in rows and str(rows["amp"].iloc[0]).lower() == "true" else "fp32"


def _note(rows) -> str:
    """The method's own label (e.g. LION's re-implementation note): from the rows, or, for rows stored before
    the column existed, from the registered method."""
    if "method_note" in rows:  # stored (empty for a method without a note): no need to import the methods
        return next((n for n in rows["method_note"] if isinstance(n, str) and n), "")
    from petlbench.registry import METHODS

    try:
        return METHODS.get(str(rows["method"].iloc[0])).note
    except UserError:  # a method this install does not know (a plug-in that is gone)
        return ""


def notes_caption(agg) -> str:
    """'† lion: re-implementation ...' for every configuration with a method note ('' if none)."""
    pairs = sorted({(r.method, r.method_note) for r in agg.itertuples() if getattr(r, "method_note", "")})
    return "; ".join(f"† {m}: {n}" for m, n in pairs)


def ppt(top1: float, params: float) -> float:
    """V-PETL Bench trade-off score: top1 · exp(−log10(P/1e7 + 1))."""
    return top1 * math.exp(-math.log10(params / 1e7 + 1))


def tracks_of(agg) -> list[str]:
    """The tracks present in aggregated rows, vision first (rows without the column are vision)."""
    present = set(agg["track"]) if "track" in agg else {"vision"}
    return [t for t in ("vision", "vl") if t in present] + sorted(present - {"vision", "vl"})


def on_track(agg, track: str):
    """The aggregated rows of one track: summaries never average over tracks."""
    return agg[agg["track"] == track] if "track" in agg else agg


def check_sort(sort: str) -> tuple[str, bool]:
    """(label, higher is better) of a ``--sort`` metric; a one-line UserError for an unknown one."""
    if sort not in METRICS:
        raise UserError(f"unknown --sort metric '{sort}'; choose one of {', '.join(METRICS)}")
    return METRICS[sort]


def vtab_summary(agg, track: str = "vision", sort: str = "top1_pct"):
    """Per configuration over the datasets of one track that it ran on: mean of task means and mean of group
    means (both VTAB conventions on the vision track; on the VL track the groups are the task kinds, vqa /
    entailment), and the mean over those tasks of every metric. The complete configurations (on every task of
    the track: ``complete``) come first, ranked by ``sort`` (top-1: the mean of group means); the partial ones
    (``tasks`` of ``tasks_total``) follow apart, never ranked among them (their means are over fewer tasks)."""
    import pandas as pd

    rows, agg = [], on_track(agg, track)
    for (method, label, model, variant), g in agg.groupby(CONFIG, sort=False):
        groups = g.groupby(g["data_group"].replace("", "ungrouped"))["top1_pct"].mean()
        total = int(g["tasks_total"].iloc[0]) if "tasks_total" in g else agg["dataset"].nunique()
        rows.append({
            "method": method, "label": label, "model": model, "variant": variant, "name": g["name"].iloc[0],
            "tasks": len(g), "tasks_total": total, "complete": len(g) == total, "mean_of_tasks": g["top1_pct"].mean(),
            "mean_of_groups": groups.mean(), **{f"group_{k}": v for k, v in groups.items()},
            **{m: g[m].mean() for m in METRICS if m != "top1_pct"}, "method_note": _first(g, "method_note"),
        })
    if not rows:
        return pd.DataFrame(rows)
    higher = check_sort(sort)[1]
    by = "mean_of_groups" if sort == "top1_pct" else sort
    out = pd.DataFrame(rows).sort_values(by, ascending=not higher, kind="stable")
    return out.sort_values("complete", ascending=False, kind="stable", ignore_index=True)


def partial_caption(summary) -> str:
    """The configurations that did not run on every task of the summary, apart ('' when all did)."""
    part = [f"{r.name}{f' on {r.model}' if r.model and summary['model'].nunique() > 1 else ''}: {r.tasks} of "
            f"{r.tasks_total} tasks" for r in summary.itertuples() if not r.complete]
    return ("not ranked, run on fewer tasks than the others: " + "; ".join(part)) if part else ""


def by_model(agg) -> list[tuple[str, Any]]:
    """(model, its rows) per model, for views with a section per model; [('', agg)] when there is one model (the
    model is then no section of its own)."""
    models = sorted(set(agg["model"]))
    return [("", agg)] if len(models) <= 1 else [(m, agg[agg["model"] == m]) for m in models]


def sorted_aggregate(agg, sort: str = "top1_pct"):
    """The aggregate as ``compare --csv`` writes it: per dataset, ranked by ``sort``; the stored identity's run
    options (trainval, limit, precision, ...) as columns of their own next to the full ``identity`` JSON."""
    higher = check_sort(sort)[1]
    idents = [json.loads(s) for s in agg["identity"]]
    extra = {k: [i.get(k) for i in idents] for k in _run_option_keys() if k not in agg}
    return agg.assign(**extra).sort_values(["dataset", sort], ascending=[True, not higher], kind="stable")
