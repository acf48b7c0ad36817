"""Hand-made results stores for the statistics, published-number and report tests (no training)."""

from __future__ import annotations

import json
from pathlib import Path

from petlbench.results.schema import RunResult
from petlbench.results.store import Store, load_frame


def write_runs(root: Path, rows: list[dict]) -> Path:
    """Append one ``RunResult`` per dict (fields override defaults); returns the store's CSV path."""
    store = Store(root)
    for i, fields in enumerate(rows):
        f = dict(fields)
        f.setdefault("label", "")
        f.setdefault("model", "petl_vit_micro")
        f.setdefault("dataset", "d1")
        f["method_config"] = json.dumps(f.pop("config", {}))
        key = f"{f['method']}-{f['label']}-{f['model']}-{f['dataset']}"
        defaults = {"status": "ok", "params_trainable": 1000, "gmacs": 1.0, "peak_mem_train_mb": 100.0,
                    "peak_mem_kind": "cpu_peak_rss", "device": "cpu", "weights_source": "file:petl_vit_micro.safetensors"}
        group = f.pop("group_hash", f"g-{key}")  # another identity of the same method, label, model and task
        store.append(RunResult(run_id=f"r{i}", config_hash=f"h{i}", group_hash=group, **{**defaults, **f}))
    return store.csv


def frame(root: Path, rows: list[dict]):
    """``write_runs`` then ``load_frame``: the DataFrame ``petlbench compare`` would see."""
    return load_frame([write_runs(root, rows)])


def paired_rows(method: str, dataset: str, values: list[float], **extra) -> list[dict]:
    """One row per seed 0, 1, ... with top-1 ``values``."""
    return [{"method": method, "dataset": dataset, "seed": s, "top1_pct": v, **extra} for s, v in enumerate(values)]
