"""Data once: the data time of an epoch on a generated local image folder, decoded every epoch (before) and
decoded once into ``petlbench.datacache`` (after).

Writes ``<dir>/{train,val,test}/class<k>/<i>.jpg`` (``--images`` training images of ``--size`` px, JPEG
quality 90, 10 classes), loads it as ``petlbench run --dataset <dir>`` would (``sources.load_data`` ->
``data.prepare`` for a 224 px model), and times ``--epochs`` shuffled passes over train through
``data.batches`` (no model: data time only), the lazy split against the decoded-once one.

    python benchmarks/perf/data_once.py [--images 1000] [--size 224] [--epochs 3] [--batch 32] [--workers 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from petlbench.data import cache as datacache
from petlbench.data.batching import batches
from petlbench.datasets import load_data

DATA_CFG = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def make_folder(root: Path, images: int, size: int, classes: int = 10) -> None:
    """Smooth random images (JPEG-compressible like photos, unlike white noise), class-coloured."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", images), ("val", max(classes, images // 10)), ("test", max(classes, images // 10))):
        for i in range(n):
            c = i % classes
            low = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
            img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i}.jpg", quality=90)


def epoch_times(ds, epochs: int, batch: int, workers: int) -> list[float]:
    gen, out = torch.Generator().manual_seed(0), []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _x, _y in batches(ds, batch, shuffle=True, generator=gen, num_workers=workers):
            pass
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        make_folder(root, args.images, args.size)
        raw = load_data(str(root))
        lazy = raw.prepare(DATA_CFG)
        before = epoch_times(lazy.train, args.epochs, args.batch, args.workers)
        t0 = time.perf_counter()
        cached = datacache.cache_splits(raw.prepare(DATA_CFG), raw.fingerprint(), Path(tmp) / "cache", args.workers)
        decode = time.perf_counter() - t0
        after = epoch_times(cached.train, args.epochs, args.batch, args.workers)
    n = len(lazy.train)
    print(f"{n} train images of {args.size} px -> 224 px, batch {args.batch}, num_workers {args.workers}, "
          f"{torch.get_num_threads()} threads")
    print("before (decoded every epoch): epochs " + ", ".join(f"{t:.2f}" for t in before) + " s")
    print(f"after (decoded once): first decode (train + val) {decode:.2f} s, epochs "
          + ", ".join(f"{t:.3f}" for t in after) + " s")
    b, a = np.median(before[1:]), np.median(after[1:])
    print(f"epoch 2+ data time: {b:.2f} s -> {a:.3f} s ({b / a:.0f}x less)")


if __name__ == "__main__":
    main()
