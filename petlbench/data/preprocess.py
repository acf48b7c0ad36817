"""Preprocessing of images for a model, the same for in-memory and lazily decoded data (``Preprocess``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from petlbench.data.types import ImageSource


class Preprocess:
    """uint8 images -> normalised float tensors at the model's input size, as VTAB-1k protocols do:
    resized straight to (H, W) (squash, no centre crop: VPT and NOAH resize to 224×224; timm's eval
    transform would crop 87.5% and lose the borders structured tasks depend on), bilinear with
    antialiasing (our choice; NOAH's loader uses PIL bicubic), the model's mean/std. In-memory and lazily
    decoded data go through this one function, so the same image gives the same tensor on both paths."""

    def __init__(self, input_size: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.input_size, self.mean, self.std = tuple(input_size), tuple(mean), tuple(std)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W(×C) -> float N×C×H×W."""
        x = torch.from_numpy(np.ascontiguousarray(images))
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        c, h, w = self.input_size
        if x.shape[1] != c:
            x = x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x[:, :c]
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        mean_t = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((x - mean_t) / std_t).contiguous()

    def describe(self) -> str:
        """One line for the run's provenance."""
        c, h, w = self.input_size
        mean, std = (",".join(f"{v:.4g}" for v in t) for t in (self.mean, self.std))
        return f"resize to {h}x{w} (squash, no crop; bilinear, antialias), {c} channels, mean ({mean}), std ({std})"


class LazyImages(Dataset):
    """Images decoded on access (hub / local files), through the same ``Preprocess`` as in-memory data."""

    def __init__(self, images: ImageSource, labels: np.ndarray, preprocess: Preprocess) -> None:
        self.images, self.labels, self.preprocess = images, labels, preprocess

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.array(self.images.load(i), dtype=np.uint8)  # a writable copy
        return self.preprocess(img[None])[0], int(self.labels[i])


def preprocess_array(images: np.ndarray, input_size: tuple[int, int, int], mean, std) -> torch.Tensor:
    """uint8 N×H×W(×C) -> float N×C×H×W resized to ``input_size`` and normalised (see ``Preprocess``)."""
    return Preprocess(input_size, mean, std)(images)
