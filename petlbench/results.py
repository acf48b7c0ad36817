"""One results schema (``RunResult``), a crash- and concurrency-safe store, compare and tables.

Store layout (``--out DIR``, default ``results/``)::

    DIR/results.csv          one row per run, header = RunResult fields (units in the names)
    DIR/runs/<run_id>.json   the same record with nested method_config / method_stats / provenance

Appends take an exclusive ``flock`` on ``DIR/.lock``; a row is written with one ``write`` and
fsynced. A crash mid-write can leave at most a trailing partial line without newline: the next
append cuts it before writing, and readers ignore it, so a complete row is never lost or mixed.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petlbench.errors import UserError

SCHEMA_VERSION = 1


@dataclass
class RunResult:
    """One run. Units are in the field names: ``_pct`` %, ``_s`` seconds, ``_mb`` MiB,
    ``gmacs`` GMAC per image, ``_img_s`` images per second; params are counts."""

    # identity
    run_id: str = ""
    timestamp: str = ""  # UTC ISO-8601
    method: str = ""
    dataset: str = ""
    model: str = ""
    seed: int = 0
    label: str = ""  # suite group label (e.g. "random-init"), empty otherwise
    track: str = "vision"  # vision | vl: the dataset's kind (petlbench.tracks); compare never mixes tracks
    metric: str = "top1"  # what top1_pct holds: top1 (accuracy) | vqa_score (soft VQA score, VQAv2's metric)
    modality: str = "both"  # VL: both, or a single-modality baseline (text | image)
    selection: bool = False  # a tune selection run (train -> val; no test score): not a result
    method_note: str = ""  # the method's own label, e.g. "re-implementation (no official code)"
    suite: str = ""
    config_hash: str = ""  # identity of the run (incl. seed): re-runs are skipped unless --force
    group_hash: str = ""  # the same without the seed: rows that aggregate together
    status: str = "ok"  # ok | diverged | failed
    error: str = ""
    # quality
    top1_pct: float = math.nan  # test split, evaluated once after training
    top1_val_pct: float = math.nan  # val split after the last epoch (not used for selection)
    loss_train: float = math.nan
    # efficiency
    params_total: int = 0
    params_trainable: int = 0
    params_trainable_excl_head: int = 0
    params_added: int = 0
    gmacs: float = math.nan  # inference model after finalize
    gmacs_backbone: float = math.nan
    gmacs_vision: float = math.nan  # VL: the frozen visual encoder alone (included in gmacs)
    train_img_s: float = math.nan
    infer_img_s: float = math.nan
    peak_mem_train_mb: float = math.nan
    peak_mem_kind: str = ""  # cuda_max_allocated | cpu_peak_rss_run | cpu_peak_rss_process (measure.PeakMemory)
    time_search_s: float = 0.0
    time_train_s: float = math.nan
    time_total_s: float = math.nan
    # recipe (resolved)
    optimizer: str = ""
    lr: float = math.nan
    weight_decay: float = math.nan
    epochs: int = 0
    warmup_epochs: int = 0
    batch_size: int = 0
    steps: int = 0
    precision: str = ""  # fp32 | bf16 (autocast), resolved from --precision; empty in rows stored before it
    amp: bool = False  # precision == "bf16" (the column before --precision)
    precision_reason: str = ""  # why: "asked", or auto's evidence (numerics.resolve_precision)
    deterministic: bool = False  # torch.use_deterministic_algorithms (+ cuBLAS workspace) was on
    compile: bool = False  # the model was trained through torch.compile
    flush_denormal: bool = False  # CPU: denormals flushed to zero on every compute thread (numerics.py)
    # head-only methods: "on" (frozen features computed once, the head trained on them) or "off: <why>"; "" = n/a
    feature_cache: str = ""
    device: str = ""
    processes: int = 1  # processes that trained the run together (torchrun DDP); batch_size is the global batch
    frozen_backbone_mode: str = ""
    limit: int = 0
    trainval: bool = False
    # provenance
    weights_source: str = ""
    weights_sha256: str = ""
    data_source: str = ""
    data_group: str = ""  # VTAB group: natural | specialized | structured
    data_fingerprint: str = ""  # JSON {split: sha256[:16]}
    preprocessing: str = ""  # how images became model inputs (data.Preprocess.describe)
    num_classes: int = 0
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    git_commit: str = ""
    petlbench_version: str = ""
    torch_version: str = ""
    timm_version: str = ""
    python_version: str = ""
    device_name: str = ""
    # the load the run started under, to judge its img/s by (executors.machine_load): the 1-minute load average
    # (runnable processes, all of this machine's) and the cores this process may use; empty in rows stored before
    load_avg_1m: float = math.nan
    cpu_cores: int = 0
    hostname: str = ""
    schema_version: int = SCHEMA_VERSION
    method_config: str = ""  # JSON
    method_stats: str = ""  # JSON, method-specific numbers
    tune: str = ""  # JSON, final runs of `petlbench tune`: the grid, each point's val score, the choice

    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # JSON record only

    def summary(self) -> str:
        """One line for progress output: the test top-1 (a selection run has none: its val top-1), time."""
        if self.status != "ok":
            return f"{self.status}: {self.error}"
        metric = METRIC_NAMES[self.metric]
        score = f"{metric} {self.top1_pct:.2f}%" if not math.isnan(self.top1_pct) else \
            f"val {metric} {self.top1_val_pct:.2f}% (selection run, no test split)"
        return f"{score}  ({self.time_total_s:.1f} s)"


COLUMNS = [f.name for f in dataclasses.fields(RunResult) if f.name != "extra"]
METRIC_NAMES = {"top1": "top-1", "vqa_score": "VQA score"}  # how each ``metric`` value is shown (in %)
# how each ``peak_mem_kind`` is shown; cpu_peak_rss: rows stored before the run/process split (whole process)
PEAK_MEM_KINDS = {"cuda_max_allocated": "CUDA max allocated", "cpu_peak_rss_run": "CPU peak RSS during the run",
                  "cpu_peak_rss_process": "CPU peak RSS of the whole process",
                  "cpu_peak_rss": "CPU peak RSS of the whole process (before 0.2)"}


def mem_kind_name(kind: str) -> str:
    """The readable name of a ``peak_mem_kind`` ('not recorded' when empty)."""
    return PEAK_MEM_KINDS.get(kind, kind) if kind else "not recorded"
_TYPES = {f.name: f.type for f in dataclasses.fields(RunResult)}

# metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "top1_pct": ("top-1 %", True),
    "params_trainable": ("trainable", False),
    "params_trainable_excl_head": ("trainable excl. head", False),
    "gmacs": ("GMACs", False),
    "train_img_s": ("train img/s", True),
    "infer_img_s": ("infer img/s", True),
    "peak_mem_train_mb": ("peak mem MiB", False),
    "time_train_s": ("train s", False),
}


def _row_text(res: RunResult) -> str:
    buf = io.StringIO()
    d = dataclasses.asdict(res)
    csv.writer(buf, lineterminator="\n").writerow(["" if isinstance(d[c], float) and math.isnan(d[c]) else d[c]
                                                   for c in COLUMNS])
    return buf.getvalue()


class Store:
    """The results store in one directory (CSV + per-run JSON)."""

    def __init__(self, root: str | Path = "results") -> None:
        self.root = Path(root)
        self.csv = self.root / "results.csv"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _repair_tail(self) -> None:
        """Cut a trailing partial line (a crash mid-write) so the next row starts clean."""
        if not self.csv.exists() or self.csv.stat().st_size == 0:
            return
        with open(self.csv, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = f.seek(0) or f.read()
            f.truncate(data.rfind(b"\n") + 1)

    def check_writable(self) -> None:
        """A one-line UserError, before any work and without writing anything, when the store cannot be
        written: ``--out`` is a file, or it (or the folder it would be created in) is not writable."""
        where = self.root if self.root.exists() else next(p for p in self.root.absolute().parents if p.exists())
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out '{self.root}' is a file, not a results directory; pass a directory")
        if not where.is_dir() or not os.access(where, os.W_OK | os.X_OK):
            raise UserError(f"cannot write the results store '{self.root}' ('{where}' is not writable); "
                            "pass a writable --out")
        for path in (self.csv, self.root / ".lock"):
            if path.exists() and not os.access(path, os.W_OK):
                raise UserError(f"cannot write '{path}' (read-only); pass a writable --out or fix its permissions")

    def _rewrite(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        """Replace the CSV atomically (temp file + rename): a crash leaves the old or the new file, whole."""
        tmp = self.csv.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv)

    def _ensure_header(self) -> None:
        if not self.csv.exists() or self.csv.stat().st_size == 0:
            with open(self.csv, "w") as f:
                f.write(",".join(COLUMNS) + "\n")
            return
        with open(self.csv) as f:
            header = f.readline().strip().split(",")
        if header != COLUMNS:  # older schema: rewrite atomically with the union of columns
            self._rewrite(read_rows(self.csv), COLUMNS + [c for c in header if c not in COLUMNS])

    def _write_record(self, res: RunResult) -> None:
        runs = self.root / "runs"
        runs.mkdir(exist_ok=True)
        tmp = runs / f".{res.run_id}.json.tmp"
        with open(tmp, "w") as f:  # strict JSON: NaN / inf become null
            json.dump(_finite(_expand_json(dataclasses.asdict(res))), f, indent=2, default=str, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, runs / f"{res.run_id}.json")

    def append(self, res: RunResult, replace: bool = False) -> bool:
        """Store one run: its JSON record and one CSV row; safe against concurrency and crashes.

        Under the lock, a configuration already stored (same config hash, status ok) is a duplicate: with
        ``replace`` (``--force``) the new row replaces the earlier ones (whose JSON records stay in ``runs/`` as
        history, named in the new record's ``extra.replaces``); without it (another process finished the same
        configuration first) no row is added and the record is kept as history only. Returns whether a row
        was written."""
        with self._locked():
            self._repair_tail()
            self._ensure_header()
            rows = read_rows(self.csv)
            earlier = [r["run_id"] for r in rows if r.get("config_hash") == res.config_hash and r.get("status") == "ok"]
            if earlier and not replace:
                res.extra["duplicate_of"] = earlier[-1]
                self._write_record(res)
                return False
            if replace and earlier:
                res.extra["replaces"] = earlier
            self._write_record(res)
            if replace and any(r.get("config_hash") == res.config_hash for r in rows):
                kept = [r for r in rows if r.get("config_hash") != res.config_hash]
                with open(self.csv) as f:
                    header = f.readline().strip().split(",")
                self._rewrite(kept, header)
            fd = os.open(self.csv, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, _row_text(res).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return True

    def hashes(self, status: str = "ok") -> set[str]:
        """Config hashes of stored runs with ``status``."""
        if not self.csv.exists():
            return set()
        return {r["config_hash"] for r in read_rows(self.csv) if r.get("status") == status}


def _finite(value: Any) -> Any:
    """NaN / inf -> None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _expand_json(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in ("method_config", "method_stats", "data_fingerprint"):
        try:
            out[key] = json.loads(out[key]) if out[key] else {}
        except (TypeError, json.JSONDecodeError):
            pass
    return out


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Complete rows of a results CSV (a trailing partial line is ignored)."""
    text = Path(path).read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def load_frame(paths: list[str | Path]):
    """Results CSVs -> one pandas DataFrame with typed columns."""
    import pandas as pd

    frames = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            p = p / "results.csv"
        if not p.exists():
            raise UserError(f"no results at '{p}'; run 'petlbench run ...' first or pass a results CSV")
        frames.append(pd.DataFrame(read_rows(p)))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if df.empty:
        raise UserError("the results store is empty; run 'petlbench run METHOD' first")
    for col in ("track", "metric", "modality"):  # rows stored before the VL track: vision, top-1, both
        default = RunResult.__dataclass_fields__[col].default
        df[col] = df[col].replace("", default).fillna(default) if col in df else default
    for col in df.columns:
        tp = _TYPES.get(col)
        if tp in ("float", float, "int", int):
            df[col] = pd.to_numeric(df[col], errors="coerce")
        elif tp in ("bool", bool):
            df[col] = df[col].astype(str).str.lower().eq("true")
    return df


# ----------------------------------------------------------------------------- aggregation

_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045]


def t975(n: int) -> float:
    """Two-sided 95% Student-t quantile for n samples (df = n - 1)."""
    return _T975[n - 2] if 2 <= n <= len(_T975) + 1 else 1.96


KEYS = ["dataset", "method", "label", "model", "group_hash"]
FAMILY = ["track", "method", "label"]  # configurations of one method that need telling apart by their identity
CONFIG = ["method", "label", "model", "variant"]  # one configuration across tasks (summaries, --vs, report)


def display_name(method: str, label: str, note: str = "", variant: str = "") -> str:
    """``method [label] (variant)``, with a † when the method carries a note (see ``notes_caption``)."""
    return f"{method}{'†' if note else ''}" + (f" [{label}]" if label else "") + (f" ({variant})" if variant else "")


def aggregate(df):
    """Mean / std / n / 95% CI half-width per configuration (``group_hash``) over seeds (status ok only; a tune's
    selection runs, scored on val and never on test, are not results and are left out). Each row is named by
    what tells it apart from the other configurations of its method (``variant``, ``name``; see ``_name``)."""
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
    return _name(pd.DataFrame(rows)) if rows else pd.DataFrame(rows)


def _first(g, col: str, default: Any = "") -> Any:
    return g[col].iloc[0] if col in g else default


def _aggregate_one(row: dict[str, Any], g) -> dict[str, Any]:
    """One configuration's aggregate row from its rows ``g`` (one per seed)."""
    row["n"] = len(g)
    row["seeds"] = ",".join(str(int(s)) for s in sorted(g["seed"]))
    for col in ("data_group", "peak_mem_kind", "data_fingerprint"):
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
    row["top1_pct_ci95"] = t975(len(g)) * row["top1_pct_std"] / math.sqrt(len(g)) if len(g) > 1 else math.nan
    row["ppt"] = ppt(row["top1_pct"], row["params_trainable"])
    return row


def _plain(value: Any) -> Any:
    """A stored value as plain JSON: numpy scalars unwrapped, NaN and empty as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if value == "" or (isinstance(value, float) and math.isnan(value)) else value


def _run_option_keys() -> list[str]:
    """The run options of the identity that are stored as columns (``options.IDENTITY_KEYS``), less the seed
    (aggregated over), those that name a row already (dataset, model, label) and selection runs (never
    aggregated)."""
    from petlbench.options import IDENTITY_KEYS

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


def _task_keys(agg, idents: list[dict[str, Any]]) -> set[str]:
    """Method-config keys that every configuration on a task shares (a task's budget, e.g. its epochs): they
    describe the task, not a configuration. Run options are never the task's."""
    seen: dict[str, dict[tuple[str, str], set[str]]] = {}
    for track, dataset, ident in zip(agg["track"], agg["dataset"], idents, strict=True):
        for k, v in ident.items():
            seen.setdefault(k, {}).setdefault((track, dataset), set()).add(json.dumps(v, sort_keys=True))
    options = set(_run_option_keys()) | {"precision", "weights"}
    return {k for k, by in seen.items() if k not in options and all(len(v) == 1 for v in by.values())}


def _setting(value: Any) -> str:
    """One identity value as compared between configurations: every off value (False, 0, None, '') is one."""
    return json.dumps(value, sort_keys=True) if value else "off"


def _name(agg):
    """``variant``: what tells a configuration apart from the other configurations of its method (and label) in
    these rows, from the stored identity (e.g. 'trainval', 'bf16', 'lr 0.05', 'limit 64'); '' when nothing
    does. ``name``: the display name (method† [label] (variant)), with the model where a track has several.
    The same configuration gets the same name on every task, so summaries over tasks never merge two."""
    idents = _drop_neutral([json.loads(s) for s in agg["identity"]])
    task_keys = _task_keys(agg, idents)
    variants = [""] * len(agg)
    for _, idx in agg.groupby(FAMILY, sort=False).indices.items():
        keys = [k for k in dict.fromkeys(k for i in idx for k in idents[i])
                if k not in task_keys and len({_setting(idents[i].get(k)) for i in idx}) > 1]
        for i in idx:
            variants[i] = ", ".join(t for k in keys if (t := _value_text(k, idents[i].get(k))))
    agg = agg.assign(variant=variants)
    same = agg.duplicated(["dataset", *CONFIG], keep=False) & (agg["group_hash"] != "")
    if same.any():  # configurations the stored columns cannot tell apart (e.g. another img_size): by hash
        agg.loc[same, "variant"] = [", ".join(filter(None, [v, f"config {h[:8]}"]))
                                    for v, h in zip(agg.loc[same, "variant"], agg.loc[same, "group_hash"], strict=True)]
    many = agg.groupby("track")["model"].transform("nunique") > 1
    names = [display_name(r.method, r.label, r.method_note, r.variant) + (f" ({r.model})" if m else "")
             for r, m in zip(agg.itertuples(), many, strict=True)]
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
    entailment), and the mean over those tasks of every metric. ``tasks`` of ``tasks_total`` says how many of the
    track's tasks a configuration covers: its means are over those only. Ranked by ``sort`` (top-1: the mean of
    group means)."""
    import pandas as pd

    rows, agg = [], on_track(agg, track)
    total = agg["dataset"].nunique()
    for (method, label, model, variant), g in agg.groupby(CONFIG, sort=False):
        groups = g.groupby(g["data_group"].replace("", "ungrouped"))["top1_pct"].mean()
        rows.append({
            "method": method, "label": label, "model": model, "variant": variant, "name": g["name"].iloc[0],
            "tasks": len(g), "tasks_total": total, "mean_of_tasks": g["top1_pct"].mean(),
            "mean_of_groups": groups.mean(), **{f"group_{k}": v for k, v in groups.items()},
            **{m: g[m].mean() for m in METRICS if m != "top1_pct"}, "method_note": _first(g, "method_note"),
        })
    if not rows:
        return pd.DataFrame(rows)
    higher = check_sort(sort)[1]
    return pd.DataFrame(rows).sort_values("mean_of_groups" if sort == "top1_pct" else sort, ascending=not higher,
                                          kind="stable", ignore_index=True)


def coverage_caption(summary) -> str:
    """Which configurations did not run on every task of the summary ('' when all did)."""
    part = [f"{r.name}: {r.tasks} of {r.tasks_total}" for r in summary.itertuples() if r.tasks < r.tasks_total]
    return ("not on every task (means over the tasks each ran on): " + "; ".join(part)) if part else ""


def identity_diff(cur: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """'key value (reference value)' for each identity key whose values differ (off values count as equal)."""
    def text(v: Any) -> str:
        return str(v) if v or v is False else "none"

    keys = [k for k in dict.fromkeys([*cur, *ref]) if (cur.get(k) or None) != (ref.get(k) or None)]
    return [f"{k} {text(cur.get(k))} (reference {text(ref.get(k))})" if k != "data" else "data fingerprint"
            for k in keys]


def _gate_identity(r) -> dict[str, Any]:
    return {**json.loads(r.identity), "data": r.data_fingerprint or None}


def _differs(c, refs) -> str:
    """How ``c`` differs from the closest reference configuration of its method on its task."""
    diffs = sorted((identity_diff(*_drop_neutral([_gate_identity(c), _gate_identity(r)])) for r in refs), key=len)
    keys = diffs[0] if diffs and diffs[0] else [f"config hash {c.group_hash} (reference {refs[0].group_hash})"]
    return "; ".join(keys)


def gate(current, reference, max_drop: float, max_rise: float | None = None) -> list[str]:
    """What keeps ``current`` from passing against ``reference`` (aggregates), one line each, prefixed by its kind.

    Configurations are matched by identity (``group_hash``: the config hash without the seed, which holds the
    method config, data fingerprint and weights), whatever the order of the rows. A matched configuration is a
    ``regression`` when its mean top-1 is below the reference by more than ``max_drop`` points (with
    ``max_rise``, above it by more than that: the numbers changed), or its trainable-parameter or GMAC count
    changed (properties of the model, equal on every machine). A current configuration of a method (and label,
    model) whose reference on the task is another configuration is ``configuration differs`` (with the keys),
    never a regression; one with no reference configuration at all is ``not in the reference``; a reference
    configuration that nothing current matches or differs from is ``missing``.
    """
    def fam(r):
        return r.dataset, r.method, r.label, r.model

    refs = {(r.dataset, r.group_hash): r for r in reference.itertuples()}
    family: dict[tuple, list] = {}
    for r in sorted(reference.itertuples(), key=lambda r: r.group_hash):
        family.setdefault(fam(r), []).append(r)
    problems, covered = [], set()
    for c in sorted(current.itertuples(), key=lambda r: (r.dataset, r.name, r.group_hash)):
        where = f"{c.name} on {c.dataset}"
        r = refs.get((c.dataset, c.group_hash))
        if r is not None:
            covered.add((r.dataset, r.group_hash))
            problems += [f"regression: {where}: {p}" for p in _regressions(c, r, max_drop, max_rise)]
        elif fam(c) in family:
            covered |= {(r.dataset, r.group_hash) for r in family[fam(c)]}
            problems.append(f"configuration differs: {where}: {_differs(c, family[fam(c)])}")
        else:
            problems.append(f"not in the reference: {where} (no reference run of {c.method} on {c.dataset})")
    return problems + [f"missing: {r.name} on {r.dataset}: missing from the current results"
                       for r in sorted(reference.itertuples(), key=lambda r: (r.dataset, r.name))
                       if (r.dataset, r.group_hash) not in covered]


def _regressions(c, r, max_drop: float, max_rise: float | None) -> list[str]:
    """A matched configuration's changes beyond the tolerance."""
    out = []
    if c.top1_pct < r.top1_pct - max_drop:
        out.append(f"top-1 {c.top1_pct:.2f}% < reference {r.top1_pct:.2f}% - {max_drop}")
    if max_rise is not None and c.top1_pct > r.top1_pct + max_rise:
        out.append(f"top-1 {c.top1_pct:.2f}% > reference {r.top1_pct:.2f}% + {max_rise}")
    if int(c.params_trainable) != int(r.params_trainable):
        out.append(f"trainable params {int(c.params_trainable)} != reference {int(r.params_trainable)}")
    if f"{c.gmacs:.9f}" != f"{r.gmacs:.9f}":  # MAC resolution; nan (not measured) equals nan
        out.append(f"GMACs {c.gmacs:.9f} != reference {r.gmacs:.9f}")
    return out


# ----------------------------------------------------------------------------- rendering


def fmt_int(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = int(v)
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:,}"


def fmt(v: float, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def runs_table(results: list[RunResult], title: str = "petlbench runs"):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col, just in [("method", "left"), ("dataset", "left"), ("seed", "right"), ("top-1 % ↑", "right"),
                      ("val % ↑", "right"), ("trainable ↓", "right"), ("excl. head ↓", "right"),
                      ("GMACs ↓", "right"), ("train img/s ↑", "right"), ("infer img/s ↑", "right"),
                      ("peak MiB ↓", "right"), ("time s", "right"), ("recipe", "left"), ("status", "left")]:
        t.add_column(col, justify=just)
    for r in results:
        t.add_row(escape(display_name(r.method, r.label, r.method_note)), r.dataset, str(r.seed), fmt(r.top1_pct), fmt(r.top1_val_pct),
                  fmt_int(r.params_trainable), fmt_int(r.params_trainable_excl_head), fmt(r.gmacs, 4),
                  fmt(r.train_img_s, 0), fmt(r.infer_img_s, 0), fmt(r.peak_mem_train_mb, 0), fmt(r.time_total_s, 1),
                  f"{r.optimizer} lr={r.lr:g} ep={r.epochs} bs={r.batch_size} {r.precision}", r.status if r.status == "ok" else f"[red]{r.status}[/]: {r.error[:60]}")
    if results:
        r = results[-1]
        notes = sorted({f"† {x.method}: {x.method_note}" for x in results if x.method_note})
        t.caption = escape(f"model {r.model} ({r.weights_source}); data {r.data_source}; device {r.device}; "
                           f"peak mem = {mem_kind_name(r.peak_mem_kind)}; img/s at the run's batch size (bs); top-1 on test, "
                           f"evaluated once after the last epoch" + "".join(f"\n{n}" for n in notes))
        t.caption_justify = "left"
    return t


def compare_tables(agg, by: str = "dataset", sort: str = "top1_pct"):
    """One Rich table per dataset (``by='dataset'``) or per method (``by='method'``), ranked by ``sort``."""
    from rich.markup import escape
    from rich.table import Table

    higher = check_sort(sort)[1]
    tables = []
    outer = "dataset" if by == "dataset" else "method"
    for key, g in agg.groupby(outer, sort=True):
        g = g.sort_values(sort, ascending=not higher, kind="stable")
        metric = METRIC_NAMES[g["metric"].iloc[0]] if outer == "dataset" else METRIC_NAMES["top1"]
        t = Table(title=f"{outer} {key}" + (f" ({g['data_group'].iloc[0]})" if outer == "dataset" and
                                            g["data_group"].iloc[0] else ""), title_justify="left")
        t.add_column("rank", justify="right")
        t.add_column("method" if outer == "dataset" else "dataset (configuration)")
        t.add_column("n", justify="right")
        t.add_column(f"{metric} % ↑ (mean ± std)", justify="right")
        t.add_column("95% CI", justify="right")
        for m in ("params_trainable", "gmacs", "train_img_s", "infer_img_s", "peak_mem_train_mb"):
            label, hi = METRICS[m]
            t.add_column(f"{label} {'↑' if hi else '↓'}", justify="right")
        t.add_column("PPT ↑", justify="right")
        for rank, r in enumerate(g.itertuples(), 1):
            name = escape(r.name if outer == "dataset" else f"{r.dataset} ({r.name})" if r.name != r.method
                          else r.dataset)
            std = fmt(r.top1_pct_std) if r.n > 1 else "–"
            t.add_row(str(rank), name, str(r.n), f"{fmt(r.top1_pct)} ± {std}",
                      f"±{fmt(r.top1_pct_ci95)}", fmt_int(r.params_trainable), fmt(r.gmacs, 4), fmt(r.train_img_s, 0),
                      fmt(r.infer_img_s, 0), fmt(r.peak_mem_train_mb, 0), fmt(r.ppt))
        t.caption = escape(_table_caption(g, sort))
        t.caption_justify = "left"
        tables.append(t)
    return tables


def _table_caption(g, sort: str) -> str:
    sizes, notes = ", ".join(str(b) for b in sorted(set(g["batch_size"]))), notes_caption(g)
    precisions = ", ".join(sorted(set(g["precision"])))
    kinds = ", ".join(mem_kind_name(k) for k in sorted(set(g["peak_mem_kind"])))
    return (f"ranked by {METRICS[sort][0]}; img/s at batch size {sizes}; precision {precisions}; peak mem = {kinds}"
            + (f"; {notes}" if notes else ""))


def summary_table(summary, track: str = "vision"):
    from rich.markup import escape
    from rich.table import Table

    title = ("VTAB-style summary over datasets (top-1 %)" if track == "vision" else
             f"{track} track: summary over its datasets (top-1 % / VQA score)")
    t = Table(title=title, title_justify="left")
    group_cols = [c for c in summary.columns if c.startswith("group_")]
    for col in ["method", "tasks", "mean of group means ↑", "mean of tasks ↑", *[c[6:] for c in group_cols],
                "trainable ↓"]:
        t.add_column(col, justify="left" if col == "method" else "right")
    for r in summary.to_dict("records"):
        tasks = str(r["tasks"]) if r["tasks"] == r["tasks_total"] else f"{r['tasks']} of {r['tasks_total']}"
        t.add_row(escape(r["name"]), tasks, fmt(r["mean_of_groups"]), fmt(r["mean_of_tasks"]),
                  *[fmt(r[c]) for c in group_cols], fmt_int(r["params_trainable"]))
    if coverage_caption(summary):
        t.caption, t.caption_justify = escape(coverage_caption(summary)), "left"
    return t


def _cell(m) -> str:
    if m.empty:
        return "–"
    std = f" ± {m['top1_pct_std'].iloc[0]:.1f}" if m["n"].iloc[0] > 1 else ""
    return f"{m['top1_pct'].iloc[0]:.1f}{std}"


def markdown_pivot(agg, track: str | None = None, sort: str = "top1_pct") -> str:
    """One Markdown table per track (vision first): configurations × datasets (top-1 / VQA score mean ± std
    over seeds), both summaries over the track's datasets, trainable parameters (excl. head, mean over datasets)
    and GMACs; rows ranked by ``sort``."""
    present = tracks_of(agg)
    if track is None and len(present) > 1:
        return "\n\n".join(markdown_pivot(agg, t, sort) for t in present)
    agg = on_track(agg, track or present[0])
    summary = vtab_summary(agg, track or present[0], sort)
    datasets = sorted(agg["dataset"].unique(), key=lambda d: (agg[agg["dataset"] == d]["data_group"].iloc[0], d))
    groups = {d: agg[agg["dataset"] == d]["data_group"].iloc[0] for d in datasets}
    short = {"natural": "nat.", "specialized": "spec.", "structured": "str."}
    head = ["method", *[f"{d} ({short.get(groups[d], groups[d])})" if groups[d] else d for d in datasets],
            "mean of groups", "mean of tasks", "trainable excl. head", "GMACs", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.itertuples():
        rows = agg[(agg[CONFIG] == [r.method, r.label, r.model, r.variant]).all(axis=1)]
        cells = [_cell(rows[rows["dataset"] == d]) for d in datasets]
        n = f"{rows['n'].min()}" if rows["n"].min() == rows["n"].max() else f"{rows['n'].min()}–{rows['n'].max()}"
        lines.append("| " + " | ".join([r.name, *cells, fmt(r.mean_of_groups, 1), fmt(r.mean_of_tasks, 1),
                                         fmt_int(rows["params_trainable_excl_head"].mean()),
                                         fmt(rows["gmacs"].mean(), 4), n]) + " |")
    notes = "\n\n".join(filter(None, [coverage_caption(summary), notes_caption(agg)]))
    return "\n".join(lines) + (f"\n\n{notes}" if notes else "")


def sorted_aggregate(agg, sort: str = "top1_pct"):
    """The aggregate as ``compare --csv`` writes it: per dataset, ranked by ``sort``; the stored identity's run
    options (trainval, limit, precision, ...) as columns of their own next to the full ``identity`` JSON."""
    higher = check_sort(sort)[1]
    idents = [json.loads(s) for s in agg["identity"]]
    extra = {k: [i.get(k) for i in idents] for k in _run_option_keys() if k not in agg}
    return agg.assign(**extra).sort_values(["dataset", sort], ascending=[True, not higher], kind="stable")
