"""Peak memory of one LION training step (forward + backward) versus solver depth.

Claim under test (LION / DEQ): with implicit differentiation the training memory does not grow
with the number of solver iterations, whereas backpropagating through the unrolled solver grows
linearly. Every configuration runs exactly ``max_iter`` iterations (``tol=0``) in both the forward
and the adjoint solve, each in a fresh subprocess:

- CPU: peak resident set size of the step above the RSS just before it. The kernel's peak counter
  (VmHWM) is reset through ``/proc/self/clear_refs`` right before the step, and glibc is told to
  serve every block above 64 KiB with mmap so freed tensors leave the RSS at once;
- CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` above the allocation before the step.

Usage: ``python benchmarks/perf/lion_memory.py [--model test_vit --img 128 --batch 8 --device cpu]``.
Prints a table of MiB and of ratios relative to the smallest ``max_iter``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """One configuration: build, warm up at batch 1, measure one step at ``--batch``."""
    import torch

    from petlbench.engine.build import build, make_method

    torch.set_num_threads(1)
    torch.manual_seed(0)
    device = torch.device(args.device)
    overrides = {"grad": args.grad, "solver": args.solver, "max_iter": args.iters, "tol": 0.0, "keep_ratio": 1.0}
    method = make_method("lion", overrides)
    kwargs = {"img_size": args.img} if "vit" in args.model else {}
    model = build(method, args.model, 10, pretrained=False, **kwargs).model
    model.to(device).train()
    with torch.no_grad():  # leave the identity-at-init point so every LION weight gets a gradient
        model.lion.out.scale.fill_(0.5)
        model.lion.inp.proj.weight.normal_(std=0.01)

    def step(batch: int) -> None:
        model.zero_grad(set_to_none=True)
        x = torch.randn(batch, 3, args.img, args.img, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        torch.nn.functional.cross_entropy(model(x), y).backward()

    step(1)  # lazy initialisation (kernels, autograd engine) at a small peak
    model.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(args.batch)
        torch.cuda.synchronize()
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter VmHWM
        base = _rss_kib("VmRSS")
        step(args.batch)
        peak_mib = (_rss_kib("VmHWM") - base) / 1024
    stats = method.stats(model)
    print(json.dumps({"peak_mib": peak_mib, "fwd_iters": stats["input"]["train"]["iters_max"],
                      "bwd_iters": stats["input"]["backward"]["iters_max"]}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="test_vit")
    p.add_argument("--img", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", default="5,10,20,40")
    p.add_argument("--solvers", default="anderson,iter")
    p.add_argument("--grads", default="implicit,unrolled")
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--grad", help=argparse.SUPPRESS)
    p.add_argument("--solver", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.iters = int(args.iters)
        child(args)
        return
    iters = [int(i) for i in args.iters.split(",")]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    print(f"LION training-step peak memory: {args.model} img {args.img} batch {args.batch} on {args.device}, "
          f"tol=0 (exactly max_iter forward and adjoint iterations)")
    header = f"{'grad':<10}{'solver':<10}" + "".join(f"{f'it={i} MiB':>13}" for i in iters)
    header += "".join(f"{f'x{i}/x{iters[0]}':>10}" for i in iters[1:])
    print(header)
    for grad in args.grads.split(","):
        for solver in args.solvers.split(","):
            mibs = []
            for n in iters:
                cmd = [sys.executable, __file__, "--child", "--model", args.model, "--img", str(args.img),
                       "--batch", str(args.batch), "--device", args.device, "--grad", grad, "--solver", solver,
                       "--iters", str(n)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                res = json.loads(out.strip().splitlines()[-1])
                assert res["fwd_iters"] == n, res
                mibs.append(res["peak_mib"])
            row = f"{grad:<10}{solver:<10}" + "".join(f"{m:>13.1f}" for m in mibs)
            row += "".join(f"{m / mibs[0]:>10.2f}" for m in mibs[1:])
            print(row, flush=True)


if __name__ == "__main__":
    main()
