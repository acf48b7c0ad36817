"""What ``--precision auto`` chooses on this machine, and whether the choice holds up.

For each model the project ships or benchmarks, at the batch its runs use, and each method:
1. ``auto``: exactly what a run does (``build.choose_precision``: ``loop.training_step`` timed by
   ``numerics.time_precisions``, no cache) -> its bf16/fp32 step ratio and choice;
2. ``check``: an independent measurement afterwards with petlbench's real training step (``loop._Loop.step``
   plus the scheduler step) in fp32 and bf16 on fresh builds, ``--passes`` interleaved passes;
   ``chosen / fp32`` is the step time of the precision auto chose over fp32's (the goal: never above ~1.03).

    python benchmarks/perf/auto_precision.py [--cases micro,scenes,vl,vitb] [--passes 5] [--out F.json]

The machine is shared and noisy: run it idle; read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from petlbench.config.options import RunConfig
from petlbench.data.batching import map_tensors
from petlbench.data.types import Splits
from petlbench.datasets import load_data
from petlbench.engine import build, numerics
from petlbench.engine.loop import Reporter, Runtime, _Loop, set_train_mode
from petlbench.engine.optim import make_optimizer, warmup_then_decay

QUICK = ["linear", "lion", "vpt", "lora", "adaptformer", "full"]  # make run's methods, and full fine-tuning
# name -> (dataset, model, methods, batch override or None for the task's own)
CASES = {
    "micro": ("animal-mnist", None, QUICK, None),  # make run: the bundled micro ViT on the default task
    "scenes": ("shapes-loc", "petl_vit_micro_scenes", ["linear", "lora", "full"], None),
    "vl": ("shapes-vqa", None, ["linear", "lora", "dvp", "full"], None),  # the default VL pair
    "vitb": ("animal-mnist", "vit_base_patch16_224", ["linear", "lora", "full"], 8),
}


def loop_step(p: build.Prepared, example, batch: int, amp: bool):
    """petlbench's real training step (``_Loop.step`` + the scheduler step) on the run's model."""
    y = torch.zeros(batch, dtype=torch.long)
    loop = _Loop(p.built, p.method, Splits([], None, None, 2), Runtime(precision="bf16" if amp else "fp32"), Reporter())
    params = [q for q in loop.model.parameters() if q.requires_grad]
    opt = make_optimizer(params, p.method.cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_decay(10**6, 10))
    set_train_mode(loop.model, "eval")

    def step() -> None:
        assert loop.step(loop.model, params, opt, example, y, 10**6)
        sched.step()

    return step


def check(p: build.Prepared, example, batch: int, passes: int) -> tuple[float, float]:
    """Seconds per real step in fp32 and bf16, on freshly built copies of the run's model, timed as auto times."""
    fresh = {amp: build.prepare_run(replace(p.cfg, precision="fp32"), _RAW[p.cfg.dataset]) for amp in (False, True)}
    fns = {amp: loop_step(q, example, batch, amp) for amp, q in fresh.items()}
    return numerics.time_precisions(lambda precision: fns[precision == "bf16"](), torch.device("cpu"), passes=passes)


_RAW: dict = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    timings: list[tuple[float, float]] = []  # (fp32 s, bf16 s) of each run's own timing, as a first run makes it

    def measured(path, key, measure):
        timings.append(measure())
        return (*timings[-1], "measured now")

    numerics.cached_timing = measured
    rows = []
    print("| model | batch | method | auto: bf16/fp32 | auto chose | check: bf16/fp32 | chosen / fp32 |")
    print("|---|---|---|---|---|---|---|")
    with numerics.flush_denormal(True):
        for case in args.cases.split(","):
            dataset, model, methods, batch = CASES[case]
            raw = _RAW.setdefault(dataset, load_data(dataset, limit=64))
            for method in methods:
                overrides = {"batch_size": batch} if batch else {}
                timings.clear()
                hub = model is not None and model.startswith("vit_")  # timings need no weights: random init
                p = build.prepare_run(RunConfig(method=method, dataset=dataset, model=model, device="cpu",
                                                 pretrained=not hub, overrides=overrides), raw)
                ratio = timings[-1][1] / timings[-1][0] if timings else float("nan")  # nan: no native bf16
                bs = p.method.cfg.batch_size
                example = map_tensors(build.example_batch(p.built.model),
                                      lambda t, n=bs: t.expand(n, *t.shape[1:]).contiguous())
                fp32_s, bf16_s = check(p, example, bs, args.passes)
                chosen = (bf16_s if p.cfg.precision == "bf16" else fp32_s) / fp32_s
                row = {"model": p.cfg.model, "batch": bs, "method": method, "auto_ratio": ratio,
                       "auto": p.cfg.precision, "reason": p.precision_reason, "check_fp32_s": fp32_s,
                       "check_bf16_s": bf16_s, "check_ratio": bf16_s / fp32_s, "chosen_over_fp32": chosen}
                rows.append(row)
                print(f"| {row['model']} | {bs} | {method} | {ratio:.2f} | {row['auto']} | {bf16_s / fp32_s:.2f} "
                      f"| {chosen:.2f} |", flush=True)
    info = {"cpu": numerics.cpu_model_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "native_bf16": numerics.cpu_has_bf16(), "passes": args.passes}
    print(json.dumps(info))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
