"""Training-step speed: petlbench's step against a bare hand-written PyTorch loop on the same model and batch.

For each method the same model (method applied, same seed) is stepped three ways, interleaved pass by pass:
- ``petl``: petlbench's real training step, ``loop._Loop.step`` (autocast, extra_loss, on_step, the loss
  read-back, the step clock) plus the lr scheduler step of ``_Loop.train``;
- ``bare``: ``loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()`` with the
  same optimizer and hyper-parameters;
- ``peft`` (LoRA only, when Hugging Face peft is installed): peft's LoRA (same rank, alpha and fused ``qkv``
  target) on the plain timm model, in the bare loop;
- ``plain+10`` (VPT only): the frozen plain ViT with 10 extra learnable tokens at the input of the first block
  (what VPT-deep p=10 costs at least), in the bare loop: VPT's step should be within 1.1x of it.
Every step's FLOPs are counted once (``FlopCounterMode``, forward + backward, SDPA math backend) and divided by
the median step time: achieved GFLOP/s, against a GEMM ceiling (a ``d x 4d`` matmul on the model's token
count) measured in the same passes. fp32 and bf16 autocast. The linear probe is left out: petlbench trains
it as the head on features computed once (its step is one small matmul).

    python benchmarks/perf/step_bench.py [--model vit_base_patch16_224 | petl_vit_micro | ...] [--batch 8] [--passes 3] [--steps 3]
        [--methods full,lora,...] [--precisions fp32,bf16] [--no-flush] [--out results.json]

Reads: medians over passes of the mean step time within a pass; ratios to ``bare``. The machine is shared
and noisy: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from petlbench.data.types import Splits
from petlbench.engine import numerics
from petlbench.engine.build import build, make_method
from petlbench.engine.loop import Reporter, Runtime, _Loop, set_train_mode
from petlbench.engine.optim import make_optimizer, warmup_then_decay
from petlbench.models.backbones import create_backbone, input_size

METHODS = ("full", "bitfit", "vpt", "adapter", "adaptformer", "lora", "lion", "apt", "das")
NUM_CLASSES = 100
Step = Callable[[], None]


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def batch(model_name: str, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = input_size(create_backbone(model_name, NUM_CLASSES, pretrained=False)[0])  # bundled: 32 px
    return torch.randn(bs, *size, generator=g), torch.randint(0, NUM_CLASSES, (bs,), generator=g)


def method_model(method_name: str, model_name: str):
    torch.manual_seed(0)
    method = make_method(method_name)
    return method, build(method, model_name, NUM_CLASSES, pretrained=False)


def petl_step(method_name: str, model_name: str, x, y, bf16: bool) -> tuple[Step, nn.Module]:
    """petlbench's ``_Loop.step`` (and the scheduler step of ``_Loop.train``) on the method's model."""
    method, built = method_model(method_name, model_name)
    loop = _Loop(built, method, Splits(TensorDataset(x, y), None, None, NUM_CLASSES), Runtime(precision="bf16" if bf16 else "fp32"), Reporter())
    net = loop.model
    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(params, method.cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_decay(10**6, 10))
    set_train_mode(net, "eval")

    def step() -> None:
        assert loop.step(net, params, opt, x, y, 10**6)
        sched.step()

    return step, net


def bare_loop(model: nn.Module, make_opt: Callable, x, y, bf16: bool) -> Step:
    """The hand-written loop: forward, cross-entropy, zero_grad, backward, optimizer step."""
    model.train()
    opt = make_opt([p for p in model.parameters() if p.requires_grad])

    def step() -> None:
        with autocast(bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def recipe_optimizer(method_name: str) -> Callable:
    cfg = make_method(method_name).cfg
    if cfg.optimizer == "adamw":
        return lambda ps: torch.optim.AdamW(ps, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return lambda ps: torch.optim.SGD(ps, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def peft_lora(model_name: str) -> nn.Module:
    """Hugging Face peft LoRA with petlbench's LoRA settings (rank, alpha, fused qkv), head trainable."""
    import peft

    cfg = make_method("lora").cfg
    torch.manual_seed(0)
    base, _ = create_backbone(model_name, NUM_CLASSES, pretrained=False)
    model = peft.get_peft_model(base, peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=["qkv"],
                                                       lora_dropout=0.0))
    for p in model.base_model.model.head.parameters():
        p.requires_grad_(True)
    return model


class PlainExtraTokens(nn.Module):
    """A frozen timm ViT with ``n`` learnable tokens after the prefix at the input of block 1 (and dropped after
    the last block): the least a p=n prompt method can cost."""

    def __init__(self, vit: nn.Module, n: int = 10) -> None:
        super().__init__()
        self.vit, self.tokens = vit, nn.Parameter(torch.zeros(1, n, vit.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, n0, n = self.vit, self.vit.num_prefix_tokens, self.tokens.shape[1]
        x = v.norm_pre(v._pos_embed(v.patch_embed(x)))
        x = torch.cat([x[:, :n0], self.tokens.expand(x.shape[0], -1, -1).to(x.dtype), x[:, n0:]], dim=1)
        x = v.blocks(x)
        x = v.norm(torch.cat([x[:, :n0], x[:, n0 + n:]], dim=1))
        return v.forward_head(x)


def competitors(method_name: str, model_name: str, x, y, bf16: bool) -> dict[str, tuple[Step, nn.Module]]:
    """name -> (step, model) for one method."""
    petl, net = petl_step(method_name, model_name, x, y, bf16)
    make_opt = recipe_optimizer(method_name)
    bare_model = method_model(method_name, model_name)[1].model
    out = {"petl": (petl, net), "bare": (bare_loop(bare_model, make_opt, x, y, bf16), bare_model)}
    if method_name == "lora":
        try:
            m = peft_lora(model_name)
            out["peft"] = (bare_loop(m, make_opt, x, y, bf16), m)
        except ImportError:
            pass
    if method_name == "vpt":
        torch.manual_seed(0)
        m = PlainExtraTokens(create_backbone(model_name, NUM_CLASSES, pretrained=False)[0])
        out["plain+10"] = (bare_loop(m, make_opt, x, y, bf16), m)
    return out


def step_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward (math SDPA: the count does not depend on the kernel picked)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x).float(), torch.zeros(x.shape[0], dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def gemm_step(tokens: int, dim: int, bf16: bool) -> tuple[Step, float]:
    """A (tokens x d) @ (d x 4d) matmul, the MLP's shape: (step, FLOPs)."""
    dt = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(tokens, dim, dtype=dt), torch.randn(dim, 4 * dim, dtype=dt)
    return (lambda: torch.mm(a, b)), 2.0 * tokens * dim * 4 * dim


def timed(step: Step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def bench_method(method_name: str, args, x, y, bf16: bool) -> list[dict]:
    """Interleaved passes over the competitors (and the GEMM ceiling) of one method and precision."""
    comps = competitors(method_name, args.model, x, y, bf16)
    flops = {k: step_flops(m, x) for k, (_, m) in comps.items()}
    vit = comps["bare"][1]
    gemm, gemm_flops = gemm_step(x.shape[0] * vit.patch_embed.num_patches, vit.embed_dim, bf16)
    for step, _ in comps.values():
        step()  # warm-up: allocator, autocast weight casts, optimizer state
    times: dict[str, list[float]] = {k: [] for k in comps}
    ceiling = []
    for _ in range(args.passes):
        ceiling.append(gemm_flops / timed(gemm, 20) / 1e9)
        for k, (step, _) in comps.items():
            times[k].append(timed(step, args.steps))
    gemm_gflops = statistics.median(ceiling)
    bare = statistics.median(times["bare"])
    rows = []
    for k, ts in times.items():
        med = statistics.median(ts)
        rows.append({"method": method_name, "precision": "bf16" if bf16 else "fp32", "impl": k,
                     "step_s": med, "passes_s": ts, "ratio_to_bare": med / bare, "gflop": flops[k] / 1e9,
                     "gflop_s": flops[k] / med / 1e9, "gemm_gflop_s": gemm_gflops,
                     "of_ceiling": flops[k] / med / 1e9 / gemm_gflops})
    return rows


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    flags = open("/proc/cpuinfo").read().split() if platform.system() == "Linux" else []
    return {"cpu": cpu or platform.processor(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags}


def table(rows: list[dict]) -> str:
    out = ["| method | precision | impl | s/step (median) | / bare | GFLOP/step | GFLOP/s | of GEMM ceiling |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['method']} | {r['precision']} | {r['impl']} | {r['step_s']:.3f} | {r['ratio_to_bare']:.2f} "
                   f"| {r['gflop']:.1f} | {r['gflop_s']:.0f} | {100 * r['of_ceiling']:.0f}% "
                   f"(of {r['gemm_gflop_s']:.0f}) |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="steps per pass (timed together)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--no-flush", action="store_true", help="keep denormals (shows the cliff flushing removes)")
    ap.add_argument("--out", default="", help="write the rows and the machine as JSON here")
    args = ap.parse_args()
    x, y = batch(args.model, args.batch)
    rows = []
    with numerics.flush_denormal(not args.no_flush) as flushing:
        for prec in args.precisions.split(","):
            for m in args.methods.split(","):
                new = bench_method(m, args, x, y, prec == "bf16")
                rows += new
                print(table(new).split("\n", 2)[-1], flush=True)
    info = {**machine(), "model": args.model, "batch": args.batch, "passes": args.passes, "steps": args.steps,
            "flush_denormal": flushing}
    print(json.dumps(info))
    print(table(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
