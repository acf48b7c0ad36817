"""GPU numbers in one run (under 10 minutes on one H100 at the defaults): on ViT-B/16 at 224 px, per method,

1. train img/s and model-FLOPs utilisation (MFU) of petlbench's real step (``loop._Loop.step`` + the scheduler step)
   against a bare hand-written loop (forward, cross-entropy, zero_grad, backward, optimizer step) on the same model
   and batch, interleaved pass by pass, in bf16 autocast, in fp32 with TF32 matmuls (``tf32``: PyTorch's usual GPU
   fp32) and in strict fp32 (``fp32``: what ``--precision fp32`` runs); peak memory of each step;
2. the ``--compile`` speed-up (``torch.compile``, bf16, two methods) and the compile time;
3. the data pipeline: img/s of decoding + preprocessing JPEGs at 224 px (petlbench's ``LazyImages`` through a
   DataLoader at several worker counts) against the img/s the fastest step consumes (petlbench decodes lazily
   decoded train / val once per run, ``data.cache``: the pipeline feeds the first epoch only);
4. a ViLT-B/32 VQA step (random init, 3,129 answers, 40 text tokens, 384 x 384 images), APT and full fine-tuning.

MFU = FLOPs of a step (``FlopCounterMode``, forward + backward, SDPA math backend: the count does not depend on the
kernel picked) / step time / the device's dense peak in that precision (``engine.plan.DEVICES``, by device name).

    python benchmarks/perf/gpu_bench.py [--device cuda] [--batch 64] [--steps 10] [--passes 3] [--methods ...]
        [--out benchmarks/perf/results-gpu-<device>.json]
    python benchmarks/perf/gpu_bench.py --tiny --device cpu     # the wiring, in seconds, on a tiny model

``--tiny`` runs every section on a 32 px test ViT, the micro ViLT and tiny images: its numbers mean nothing.
The JSON (``--out``) keeps ``machine.device`` and rows with ``impl``, ``precision`` and ``gflop_s``: ``suite --plan``
uses them as measured throughput on a device of that name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from petlbench.data.types import Splits
from petlbench.engine.build import build, make_method
from petlbench.engine.loop import Reporter, Runtime, _Loop, set_train_mode
from petlbench.engine.optim import make_optimizer, warmup_then_decay
from petlbench.engine.plan import DEVICES

METHODS = ("full", "linear", "bitfit", "vpt", "adapter", "adaptformer", "lora", "lion", "apt", "das")
PRECISIONS = ("bf16", "tf32", "fp32")
CLASSES = 100
Step = Callable[[], None]


@contextmanager
def tf32(enabled: bool):
    """TF32 matmuls and convolutions on or off inside the block (petlbench's runs switch them off for fp32)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Step, n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - t0) / n


def peak_mb(step: Step, device: torch.device) -> float | None:
    """Peak memory of one step: CUDA max allocated (None on the CPU: process RSS would count everything else)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


# ----------------------------------------------------------------------------- 1. ViT steps


def vit_model(method_name: str, model: str, img: int | None):
    torch.manual_seed(0)
    method = make_method(method_name, kind="vit")
    return method, build(method, model, CLASSES, pretrained=False, **({"img_size": img} if img else {}))


def petl_step(method_name: str, args, x, y, precision: str) -> tuple[Step, nn.Module]:
    """petlbench's ``_Loop.step`` and the scheduler step of ``_Loop.train``."""
    method, built = vit_model(method_name, args.model, args.img)
    rt = Runtime(device=args.device, precision="bf16" if precision == "bf16" else "fp32")
    loop = _Loop(built, method, Splits(TensorDataset(x, y), None, None, CLASSES), rt, Reporter())
    params = [p for p in loop.model.parameters() if p.requires_grad]
    opt = make_optimizer(params, method.cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_decay(10**6, 10))
    set_train_mode(loop.model, "eval")

    def step() -> None:
        loop.step(loop.model, params, opt, x, y, 10**6)
        sched.step()

    return step, loop.model


def bare_step(model: nn.Module, method_name: str, x, y, precision: str, device: torch.device) -> Step:
    """The hand-written loop with the method's recipe optimizer."""
    cfg = make_method(method_name, kind="vit").cfg
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.optimizer == "adamw"
           else torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay))
    model.train()

    def step() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_flops(model: nn.Module, x, loss: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """FLOPs of one forward + backward (math SDPA, so the count is the kernel's, not the machine's)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        loss(model(x).float()).backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak in ``precision`` (TF32: half the bf16 peak on H100 / A100), None when unknown."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    kind = next((k for k in DEVICES if k in name), None)
    if kind is None:
        return None
    peak = DEVICES[kind].peak
    return peak["bf16"] / 2 if precision == "tf32" else peak[precision]


def bench_vit(method_name: str, precision: str, args, x, y) -> list[dict]:
    """petlbench's step and the bare loop of one method in one precision, interleaved over passes."""
    with tf32(precision == "tf32"):
        petl, net = petl_step(method_name, args, x, y, precision)
        bare_model = vit_model(method_name, args.model, args.img)[1].model.to(args.device)
        steps = {"petl": petl, "bare": bare_step(bare_model, method_name, x, y, precision, args.device)}
        flops = step_flops(bare_model, x, lambda out: F.cross_entropy(out, y))
        for s in steps.values():
            for _ in range(args.warmup):
                s()
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.passes):
            for k, s in steps.items():
                times[k].append(timed(s, args.steps, args.device))
        mem = {k: peak_mb(s, args.device) for k, s in steps.items()}
    peak, bare = peak_flops(args.device, precision), statistics.median(times["bare"])
    rows = []
    for k, ts in times.items():
        med = statistics.median(ts)
        rows.append({"section": "vit", "method": method_name, "precision": precision, "impl": k, "step_s": med,
                     "passes_s": ts, "img_s": x.shape[0] / med, "ratio_to_bare": med / bare,
                     "gflop": flops / 1e9, "gflop_s": flops / med / 1e9, "mfu": flops / med / peak if peak else None,
                     "peak_mem_mb": mem[k]})
    del net, bare_model
    return rows


# ----------------------------------------------------------------------------- 2. --compile


def bench_compile(method_name: str, args, x, y) -> dict:
    """Eager vs ``torch.compile`` bf16 step time of the bare loop on the method's model; the first compiled step."""
    rows = {}
    for mode in ("eager", "compiled"):
        model = vit_model(method_name, args.model, args.img)[1].model.to(args.device)
        if mode == "compiled":
            model = torch.compile(model, backend=args.compile_backend)
        step = bare_step(model, method_name, x, y, "bf16", args.device)
        first = timed(step, 1, args.device)
        for _ in range(args.warmup):
            step()
        rows[mode] = (statistics.median(timed(step, args.steps, args.device) for _ in range(args.passes)), first)
    return {"section": "compile", "method": method_name, "precision": "bf16", "eager_step_s": rows["eager"][0],
            "compiled_step_s": rows["compiled"][0], "speedup": rows["eager"][0] / rows["compiled"][0],
            "first_compiled_step_s": rows["compiled"][1], "backend": args.compile_backend}


# ----------------------------------------------------------------------------- 3. the data pipeline


def bench_data(args, consumed_img_s: float) -> list[dict]:
    """Decode + preprocess img/s of JPEGs (``args.jpeg_size``) to the model's input through a DataLoader, per worker
    count, against what the fastest step consumes."""
    import numpy as np
    from PIL import Image

    from petlbench.data.preprocess import LazyImages, Preprocess
    from petlbench.data.protocols import IMAGENET_MEAN, IMAGENET_STD
    from petlbench.data.types import ImageSource

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rng, paths = np.random.default_rng(0), []
        w, h = args.jpeg_size
        for i in range(args.images):
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
            paths.append(str(path))
        size = args.img or 224
        ds = LazyImages(ImageSource(paths, "bench"), np.zeros(len(paths), dtype=np.int64),
                        Preprocess((3, size, size), IMAGENET_MEAN, IMAGENET_STD))
        for workers in args.workers:
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=workers,
                                                 pin_memory=args.device.type == "cuda")
            t0 = time.perf_counter()
            n = sum(xb.shape[0] for xb, _ in loader)
            img_s = n / (time.perf_counter() - t0)
            rows.append({"section": "data", "workers": workers, "img_s": img_s, "step_consumes_img_s": consumed_img_s,
                         "feeds_the_step": img_s >= consumed_img_s, "jpeg_size": [w, h], "images": n})
    return rows


# ----------------------------------------------------------------------------- 4. a ViLT-B/32 VQA step


def bench_vilt(args) -> list[dict]:
    """APT and full fine-tuning steps of ViLT-B/32 on VQA (random init), bf16, the bare loop with BCE on soft
    targets (ViLT's objective)."""
    return [bench_vilt_method(m, args) for m in ("apt", "full")]


def bench_vilt_method(method_name: str, args) -> dict:
    from petlbench import tracks

    torch.manual_seed(0)
    method = make_method(method_name, kind="vilt")
    model, _, fam = tracks.create_backbone(args.vilt, args.answers, pretrained=False)
    model = tracks.apply_method(method, model, fam).to(args.device)
    inputs = {k: v.to(args.device) for k, v in model.example_inputs(args.text_len, args.vilt_batch).items()}
    target = torch.zeros(args.vilt_batch, args.answers, device=args.device)
    target[:, 0] = 1.0
    loss = lambda out: F.binary_cross_entropy_with_logits(out, target) * args.answers  # noqa: E731
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step() -> None:
        with autocast(args.device, "bf16"):
            value = loss(model(inputs).float())
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    flops = step_flops(model, inputs, loss)
    for _ in range(args.warmup):
        step()
    med = statistics.median(timed(step, args.steps, args.device) for _ in range(args.passes))
    peak = peak_flops(args.device, "bf16")
    return {"section": "vilt", "method": method_name, "precision": "bf16", "impl": "bare", "step_s": med,
            "img_s": args.vilt_batch / med, "gflop_s": flops / med / 1e9, "mfu": flops / med / peak if peak else None,
            "peak_mem_mb": peak_mb(step, args.device), "model": args.vilt, "text_len": args.text_len}


# ----------------------------------------------------------------------------- the run


def machine(device: torch.device) -> dict:
    from petlbench.engine import numerics

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else numerics.cpu_model_name()
    return {"device": name, "device_type": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.version.cuda}


def options(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--img", type=int, default=None, help="input size (default: the model's)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="steps per pass (timed together)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--compile-methods", default="lora,full")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--images", type=int, default=512, help="JPEGs the data pipeline decodes")
    ap.add_argument("--workers", default="0,4,8")
    ap.add_argument("--vilt", default="vilt")
    ap.add_argument("--vilt-batch", type=int, default=32)
    ap.add_argument("--text-len", type=int, default=40)
    ap.add_argument("--answers", type=int, default=3129)
    ap.add_argument("--tiny", action="store_true", help="a 32 px test ViT, the micro ViLT, tiny images: the wiring")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.tiny:
        args.model, args.img, args.batch, args.steps, args.passes, args.warmup = "test_vit", 32, 4, 1, 1, 1
        args.images, args.workers, args.vilt, args.vilt_batch, args.text_len = 8, "0", "petl_vilt_micro_scenes", 2, 8
        args.compile_backend, args.compile_methods = "eager", "lora"
    args.device, args.workers = torch.device(args.device), [int(w) for w in args.workers.split(",")]
    args.jpeg_size = (48, 40) if args.tiny else (500, 375)  # VTAB-1k / FGVC photos are about this size
    return args


def run(args: argparse.Namespace) -> dict:
    g = torch.Generator().manual_seed(0)
    size = args.img or 224
    x = torch.randn(args.batch, 3, size, size, generator=g).to(args.device)
    y = torch.randint(0, CLASSES, (args.batch,), generator=g).to(args.device)
    rows = []
    for precision in args.precisions.split(","):
        for m in args.methods.split(","):
            rows += bench_vit(m, precision, args, x, y)
            print(json.dumps(rows[-2]), flush=True)
    rows += [bench_compile(m, args, x, y) for m in args.compile_methods.split(",") if m]
    fastest = max((r["img_s"] for r in rows if r["section"] == "vit" and r["impl"] == "petl"), default=0.0)
    rows += bench_data(args, fastest)
    rows += bench_vilt(args)
    return {"machine": {**machine(args.device), "model": args.model, "batch": args.batch, "steps": args.steps,
                        "passes": args.passes, "tiny": args.tiny}, "rows": rows}


def main() -> None:
    args = options()
    result = run(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
