"""Does flushing denormals to zero change results? Every vision method, the same runs with and without
``numerics.flush_denormal`` (which ``runner.run_one`` turns on for every CPU run), same machine, same threads.

    python benchmarks/perf/flush_check.py [--dataset animal-mnist] [--limit 128] [--epochs 5] [--seed 0]

Prints per method: top-1 and the final training-loss EMA with and without flushing, and the differences.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from unittest import mock

from petlbench.config.options import RunConfig
from petlbench.datasets import load_data
from petlbench.engine import numerics, runner

METHODS = ("linear", "full", "bitfit", "vpt", "adapter", "adaptformer", "lora", "lion", "apt", "das")


@contextmanager
def _no_flush(enabled: bool = True):
    yield False


def one(method: str, raw, args, flush: bool):
    cfg = RunConfig(method=method, dataset=args.dataset, limit=args.limit, seed=args.seed, device="cpu",
                    precision="fp32", overrides={"epochs": args.epochs})
    with mock.patch.object(numerics, "flush_denormal", numerics.flush_denormal if flush else _no_flush):
        res = runner.run_one(cfg, raw)
    assert res.status == "ok", res.error
    assert res.flush_denormal is flush
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="animal-mnist")
    ap.add_argument("--limit", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    raw = load_data(args.dataset, limit=args.limit)
    print("| method | top-1 flush | top-1 no flush | diff | loss flush | loss no flush | rel. diff | s flush | s no flush |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in args.methods.split(","):
        on, off = one(m, raw, args, True), one(m, raw, args, False)
        rel = abs(on.loss_train - off.loss_train) / max(abs(off.loss_train), 1e-12)
        print(f"| {m} | {on.top1_pct:.2f} | {off.top1_pct:.2f} | {on.top1_pct - off.top1_pct:+.2f} | "
              f"{on.loss_train:.6f} | {off.loss_train:.6f} | {rel:.1e} | {on.time_train_s:.1f} | "
              f"{off.time_train_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
