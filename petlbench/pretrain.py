"""Pretrain the bundled micro ViT (``petl_vit_micro``) on Fashion-MNIST.

No package ships ViT weights, so the embedded offline benchmark brings its own backbone:
the ``petl_vit_micro`` architecture (see ``petlbench.backbones.BUNDLED``) trained with a
10-class head on the Fashion-MNIST train split (60k grey 28×28 images, MIT licence, Debian
package ``dataset-fashion-mnist``). The head is dropped and the backbone is saved as
safetensors next to a JSON provenance file.

Recipe (our choice; documented in the JSON): images are preprocessed exactly like the
downstream tasks (``petlbench.data.Preprocess``: antialiased bilinear resize to the model
input, grey→3 channels, normalise with the model's mean/std). Light augmentation on the uint8
28×28 images: random translation by up to ±``shift`` pixels (zero padding, like a random crop
with padding) and a horizontal flip with p=0.5. AdamW (β=0.9/0.999, weight decay 0.05, not on
biases/norms/embeddings), linear warm-up over the first 5% of steps, then cosine decay to 0;
label smoothing 0.1. The Fashion-MNIST test split is only used to report accuracy once.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from petlbench.errors import UserError

FASHION_DIR = Path(os.environ.get("PETLBENCH_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MODEL = "petl_vit_micro"

# defaults of `petlbench pretrain` (the committed weights were made with these; see the JSON file)
STEPS = 3000
BATCH_SIZE = 64
LR = 1e-3
WEIGHT_DECAY = 0.05
WARMUP_FRAC = 0.05
LABEL_SMOOTHING = 0.1
SHIFT = 2  # random translation in pixels (28×28 images)


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (ubyte images N×H×W or labels N)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion_mnist(split: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ('train' 60k | 'test' 10k) as (uint8 N×28×28, int64 N)."""
    root = Path(root) if root is not None else FASHION_DIR
    img_file, lab_file = FASHION_FILES[split]
    if not (root / img_file).is_file() or not (root / lab_file).is_file():
        raise UserError(
            f"Fashion-MNIST not found in {root}; install it with 'apt-get install dataset-fashion-mnist' "
            "(or set PETLBENCH_FASHION_MNIST to a folder with the IDX .gz files)"
        )
    return _read_idx(root / img_file), _read_idx(root / lab_file).astype(np.int64)


def fashion_available(root: Path | None = None) -> bool:
    root = Path(root) if root is not None else FASHION_DIR
    return all((root / f).is_file() for pair in FASHION_FILES.values() for f in pair)


def _augment(images: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random translation by up to ±shift px (zero fill) and horizontal flip, on uint8 N×H×W."""
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i]: dy[i] + h, dx[i]: dx[i] + w]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_model(num_classes: int = 10) -> torch.nn.Module:
    """The bundled architecture, random init, ``num_classes`` head (all parameters trainable)."""
    import timm

    from petlbench.backbones import MODELS

    spec = MODELS.get(MODEL)
    return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes, **spec.kwargs)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, prep, bs: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(labels), bs):
        correct += int((model(prep(images[i:i + bs])).argmax(-1).numpy() == labels[i:i + bs]).sum())
    return 100.0 * correct / len(labels)


def _train(model: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], prep, steps: int, batch_size: int, lr: float,
           rng: np.random.Generator, reporter) -> tuple[float, float]:
    """AdamW steps with the loop's schedule (linear warm-up, cosine to 0); returns (loss EMA, accuracy EMA)."""
    from petlbench.loop import warmup_then_decay

    train_x, train_y = data
    opt = torch.optim.AdamW(_param_groups(model, WEIGHT_DECAY), lr=lr, betas=(0.9, 0.999))
    schedule = warmup_then_decay(steps, max(1, int(WARMUP_FRAC * steps)))
    order, pos, ema_loss, ema_acc = rng.permutation(len(train_y)), 0, None, None
    model.train()
    reporter.start(steps, "pretrain")
    try:
        for step in range(steps):
            if pos + batch_size > len(order):  # new epoch
                order, pos = rng.permutation(len(train_y)), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size
            x, y = prep(_augment(train_x[idx], rng, SHIFT)), torch.from_numpy(train_y[idx])
            for g in opt.param_groups:
                g["lr"] = lr * schedule(step)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc = 100.0 * (logits.argmax(-1) == y).float().mean().item()
            ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
            ema_acc = acc if ema_acc is None else 0.98 * ema_acc + 0.02 * acc
            reporter.step(ema_loss, 0.0)
    finally:
        reporter.stop()
    return float(ema_loss), float(ema_acc)


def pretrain(
    out: Path,
    steps: int = STEPS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    seed: int = 0,
    threads: int | None = None,
    reporter=None,
    data_dir: Path | None = None,
    eval_images: int | None = None,
) -> dict[str, Any]:
    """Train ``petl_vit_micro`` on Fashion-MNIST; save the backbone (no head) to ``out`` (+ ``.json``).

    Images go through the same ``Preprocess`` as downstream data (the model's input size and mean/std).
    ``data_dir`` overrides where the IDX files are; ``eval_images`` caps the test images used for the
    reported accuracy (None = all 10,000; tests use a few); ``reporter`` shows progress (the loop's
    ``Reporter`` interface; None = silent). Returns the provenance dict also written to ``out.with_suffix('.json')``.
    """
    from petlbench.backbones import data_config
    from petlbench.data import Preprocess
    from petlbench.loop import Reporter

    if steps < 1 or batch_size < 1 or lr <= 0:
        raise UserError("pretrain needs steps >= 1, batch size >= 1 and lr > 0")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"output '{out}' must end in .safetensors")
    train, test = load_fashion_mnist("train", data_dir), load_fashion_mnist("test", data_dir)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build_model(10)
    cfg = data_config(model)
    prep = Preprocess(cfg["input_size"], cfg["mean"], cfg["std"])
    t0 = time.time()
    loss, acc = _train(model, train, prep, steps, batch_size, lr, np.random.default_rng(seed), reporter or Reporter())
    train_time = time.time() - t0
    test_acc = _evaluate(model, test[0][:eval_images], test[1][:eval_images], prep)
    run = {"steps": steps, "batch_size": batch_size, "epochs": round(steps * batch_size / len(train[1]), 2), "lr": lr,
           "seed": seed, "data_dir": data_dir, "train_time_s": round(train_time, 1), "final_train_loss_ema":
           round(loss, 4), "final_train_acc_ema": round(acc, 2), "fashion_mnist_test_acc": round(test_acc, 2),
           "fashion_mnist_test_images": len(test[1][:eval_images])}
    return _save(model, out, prep, run)


def _save(model: torch.nn.Module, out: Path, prep, run: dict[str, Any]) -> dict[str, Any]:
    """The backbone without its head as safetensors + the provenance JSON next to it."""
    import timm
    from safetensors.torch import save_file

    from petlbench.backbones import file_sha256

    head = {n for n, _ in model.get_classifier().named_parameters(prefix="head")}
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k not in head}
    out.parent.mkdir(parents=True, exist_ok=True)
    data_dir = run.pop("data_dir")
    meta = {
        "model": MODEL, "arch": type(model).__name__, **{k: run[k] for k in ("steps", "batch_size", "epochs", "lr")},
        "weight_decay": WEIGHT_DECAY,
        "schedule": f"linear warm-up {max(1, int(WARMUP_FRAC * run['steps']))} steps, cosine to 0",
        "label_smoothing": LABEL_SMOOTHING,
        "augmentation": f"random translation ±{SHIFT}px (zero fill) + horizontal flip p=0.5",
        "seed": run["seed"], "threads": torch.get_num_threads(),
        "data": f"Fashion-MNIST train (60000 images, MIT licence) from {FASHION_DIR if data_dir is None else data_dir}",
        "input_size": list(prep.input_size), "mean": list(prep.mean), "std": list(prep.std),
        **{k: run[k] for k in ("train_time_s", "final_train_loss_ema", "final_train_acc_ema",
                               "fashion_mnist_test_acc", "fashion_mnist_test_images")},
        "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_file(state, str(out), metadata={k: str(v) for k, v in meta.items()})
    meta["sha256"] = file_sha256(out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
