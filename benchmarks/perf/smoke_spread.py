"""How much do the CI sweep's numbers move with the CPU's kernels? Runs the `smoke` suite once per kernel
variant, each in a fresh process with its own store, and prints per-method top-1 / trainable / GMACs spread.

The variants emulate what differs between the CPUs CI and developers use (Intel AMX / AVX-512, AMD Zen,
AVX2-only): PyTorch's vectorised CPU kernels (ATEN_CPU_CAPABILITY), oneDNN's instruction set
(ONEDNN_MAX_CPU_ISA) and the thread count (reduction order). The tolerance the regression test uses (tests/sweeps.py) is
derived from the largest top-1 spread measured here (see docs/results.md, "CI regression sweeps").

    python benchmarks/perf/smoke_spread.py --out /tmp/spread [--suite smoke]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "native-2t": {"OMP_NUM_THREADS": "2"},
    "native-1t": {"OMP_NUM_THREADS": "1"},
    "avx2-1t": {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default-isa-1t": {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def _name(row: dict[str, str]) -> str:
    return f"{row['method']} [{row['label']}]" if row["label"] else row["method"]


def run(suite: str, out: Path, variants: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    rows: dict[str, dict[str, dict[str, str]]] = {}
    for name in variants:
        store = out / name
        env = {**os.environ, **VARIANTS[name], "PETLBENCH_PROGRESS": "off"}
        subprocess.run([sys.executable, "-m", "petlbench", "suite", suite, "--out", str(store), "--device", "cpu"],
                       env=env, check=False)
        rows[name] = {_name(r): r for r in csv.DictReader(open(store / "results.csv"))}
    return rows


def report(rows: dict[str, dict[str, dict[str, str]]]) -> float:
    """Print the table; return the largest top-1 spread (max - min over variants) of any method."""
    methods = sorted({m for r in rows.values() for m in r})
    print("method | " + " | ".join(rows) + " | top-1 spread | trainable equal | GMACs equal")
    worst = 0.0
    for m in methods:
        got = [rows[v].get(m) for v in rows]
        top1 = [float(r["top1_pct"]) for r in got if r and r["top1_pct"]]
        spread = max(top1) - min(top1) if top1 else float("nan")
        worst = max(worst, spread)
        same = {k: len({r[k] for r in got if r}) == 1 for k in ("params_trainable", "gmacs")}
        print(f"{m} | " + " | ".join(f"{float(r['top1_pct']):.2f}" if r and r["top1_pct"] else "-" for r in got)
              + f" | {spread:.2f} | {same['params_trainable']} | {same['gmacs']}")
    print(f"largest top-1 spread: {worst:.2f} points")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    report(run(args.suite, args.out, args.variants))


if __name__ == "__main__":
    main()
