"""``petlbench pretrain --data fashion-mnist``: ``petl_vit_micro``, the vision track's default backbone.

No package ships ViT weights, so the embedded offline benchmark brings its own: the micro ViT
(``models.backbones.MICRO``) trained with a 10-class head on the Fashion-MNIST train split (60k grey 28×28 images,
MIT licence, Debian package ``dataset-fashion-mnist``), saved without its head. Images are preprocessed exactly like
the downstream tasks (``data.preprocess.Preprocess``: antialiased bilinear resize to the model input, grey→3
channels, the model's mean/std). Light augmentation on the uint8 28×28 images (ours): a random translation by up to
±``shift`` pixels (zero fill, like a random crop with padding) and a horizontal flip with p=0.5; label smoothing 0.1
(ours). The test split only reports accuracy, once.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F

from petlbench.config.method_config import Range
from petlbench.errors import UserError
from petlbench.pretrain.base import MicroViTRecipe, Objective, RecipeConfig, register

FASHION_DIR = Path(os.environ.get("PETLBENCH_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class FashionConfig(RecipeConfig):
    data_dir: str | None = None  # the IDX .gz files (None: $PETLBENCH_FASHION_MNIST or the Debian package's folder)
    shift: Annotated[int, Range(ge=0)] = 2  # random translation in pixels (ours)
    label_smoothing: Annotated[float, Range(ge=0, lt=1)] = 0.1  # (ours)


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (ubyte images N×H×W or labels N)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion_mnist(split: str, root: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def augment(images: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
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


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, prep, bs: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(labels), bs):
        correct += int((model(prep(images[i:i + bs])).argmax(-1).numpy() == labels[i:i + bs]).sum())
    return 100.0 * correct / len(labels)


@register
class FashionMNIST(MicroViTRecipe):
    name, model, Config, head = "fashion-mnist", "petl_vit_micro", FashionConfig, 10
    description = "the vision track's default backbone: classification on Fashion-MNIST"

    def objective(self, model, prep, cfg, rng):
        """Classification on augmented Fashion-MNIST, epoch by epoch (a fresh permutation per epoch)."""
        (train_x, train_y), test = load_fashion_mnist("train", cfg.data_dir), load_fashion_mnist("test", cfg.data_dir)
        state = {"order": rng.permutation(len(train_y)), "pos": 0}
        bs = cfg.batch_size

        def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
            if state["pos"] + bs > len(state["order"]):  # new epoch
                state["order"], state["pos"] = rng.permutation(len(train_y)), 0
            idx = state["order"][state["pos"]:state["pos"] + bs]
            state["pos"] += bs
            x, y = prep(augment(train_x[idx], rng, cfg.shift)), torch.from_numpy(train_y[idx])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            return loss, 100.0 * (logits.argmax(-1) == y).float().mean().item()

        images, labels = test[0][:cfg.held_out], test[1][:cfg.held_out]
        facts = {"label_smoothing": cfg.label_smoothing,
                 "augmentation": f"random translation ±{cfg.shift}px (zero fill) + horizontal flip p=0.5",
                 "data": f"Fashion-MNIST train (60000 images, MIT licence) from {cfg.data_dir or FASHION_DIR}"}
        return Objective(model, step, lambda: {"fashion_mnist_test_acc": round(accuracy(model, images, labels, prep), 2),
                                               "fashion_mnist_test_images": len(labels)}, len(train_y), "acc", facts)
