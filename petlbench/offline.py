"""Built-in offline datasets (the embedded default). Placeholder: the mini-VTAB suite lands here.

Every entry is a zero-argument function returning ``RawData`` with deterministic
train / val / test splits of uint8 images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from petlbench.data import RawData


def _shapes_loc(n_train: int = 800, n_val: int = 200, n_test: int = 1000, size: int = 32) -> RawData:
    """dSprites-like location task: which of 3×3 cells holds a bright square (9 classes)."""
    rng = np.random.default_rng(1234)
    total = n_train + n_val + n_test
    labels = np.arange(total) % 9
    rng.shuffle(labels)
    imgs = np.zeros((total, size, size), dtype=np.uint8)
    cell = size // 3
    for i, lab in enumerate(labels):
        s = int(rng.integers(3, 7))
        r0 = (lab // 3) * cell + int(rng.integers(0, cell - s + 1))
        c0 = (lab % 3) * cell + int(rng.integers(0, cell - s + 1))
        imgs[i, r0:r0 + s, c0:c0 + s] = 255
    imgs = np.clip(imgs.astype(np.int16) + rng.integers(0, 40, imgs.shape), 0, 255).astype(np.uint8)
    cut = np.cumsum([n_train, n_val])
    splits = {
        "train": (imgs[: cut[0]], labels[: cut[0]]),
        "val": (imgs[cut[0]: cut[1]], labels[cut[0]: cut[1]]),
        "test": (imgs[cut[1]:], labels[cut[1]:]),
    }
    return RawData("shapes-loc", splits, [f"cell{i}" for i in range(9)], "generated:shapes-loc:v1",
                   group="structured", epochs=10, batch_size=64)


BUILTIN: dict[str, Callable[[], RawData]] = {"shapes-loc": _shapes_loc}
DESCRIPTIONS = {"shapes-loc": "generated square location, 9 classes (structured)"}
DEFAULT = "shapes-loc"


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name, "")
