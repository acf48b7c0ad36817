"""The crash- and concurrency-safe results store, and loading stores into pandas for the views.

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
from pathlib import Path
from typing import Any

from petlbench.errors import UserError
from petlbench.results.schema import _TYPES, COLUMNS, RunResult


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
