"""A hand-made store where one method has several configurations (no training): a normal and a ``--trainval``
linear probe, LoRA in fp32 and bf16 and at another lr, VPT with and without ``--limit``, and one adapter. Two
tasks, seeds 0 and 1. Every expected number in the tests that use it is computed by hand from ``CONFIGS``."""

from __future__ import annotations

import json
from pathlib import Path

from petlbench.results.schema import RunResult
from petlbench.results.store import Store

# name -> (method, run options, method config, trainable params, {dataset: [top-1 of seed 0, seed 1]})
CONFIGS = {
    "linear": ("linear", {}, {"lr": 0.1}, 1_000, {"a": [30.0, 32.0], "b": [26.0, 28.0]}),
    "linear (trainval)": ("linear", {"trainval": True}, {"lr": 0.1}, 1_000, {"a": [46.0, 48.0]}),
    "adapter": ("adapter", {}, {"lr": 0.001}, 20_000, {"a": [44.0, 46.0], "b": [38.0, 40.0]}),
    "lora (fp32, lr 0.001)": ("lora", {}, {"lr": 0.001}, 24_000, {"a": [50.0, 52.0], "b": [40.0, 42.0]}),
    "lora (bf16, lr 0.001)": ("lora", {"precision": "bf16", "amp": True}, {"lr": 0.001}, 24_000,
                              {"a": [49.0, 51.0], "b": [41.0, 43.0]}),
    "lora (fp32, lr 0.05)": ("lora", {}, {"lr": 0.05}, 24_000, {"a": [20.0, 22.0]}),
    "vpt": ("vpt", {}, {"lr": 0.01}, 8_000, {"a": [44.0, 46.0], "b": [34.0, 36.0]}),
    "vpt (limit 64)": ("vpt", {"limit": 64}, {"lr": 0.01}, 8_000, {"a": [38.0, 40.0], "b": [30.0, 32.0]}),
}
GROUPS = {"a": "natural", "b": "structured"}


def write_mixed(root: Path) -> Path:
    """The store at ``root``; returns its CSV."""
    store = Store(root)
    for name, (method, opts, mcfg, params, scores) in CONFIGS.items():
        for dataset, values in scores.items():
            for seed, top1 in enumerate(values):
                tag = f"{name}-{dataset}"
                store.append(RunResult(
                    run_id=f"{tag}-{seed}", method=method, dataset=dataset, model="petl_vit_micro", seed=seed,
                    config_hash=f"h-{tag}-{seed}", group_hash=f"g-{tag}", top1_pct=top1, params_trainable=params,
                    params_trainable_excl_head=params - 1_000, gmacs=1.0, peak_mem_train_mb=100.0,
                    peak_mem_kind="cpu_peak_rss_run", data_group=GROUPS[dataset], device="cpu",
                    weights_sha256="w", data_fingerprint=json.dumps({"test": dataset + str(opts.get("limit", 0))}),
                    method_config=json.dumps({**mcfg, "epochs": 5}), epochs=5, batch_size=16, lr=mcfg["lr"],
                    **{"precision": "fp32", **opts}))
    return store.csv
