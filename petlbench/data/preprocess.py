"""Preprocessing of images for a model, the same for in-memory and lazily decoded data (``Preprocess``), by a
preprocessing protocol (``data.protocols``: ``--protocol``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from petlbench.data.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from petlbench.data.types import ImageSource


class Preprocess:
    """uint8 images -> normalised float tensors at the model's input size, by a ``Protocol`` (default: squash to
    (H, W), bilinear with antialiasing, the model's mean/std). In-memory and lazily decoded data go through this one
    function, so the same image gives the same tensor on both paths."""

    def __init__(self, input_size: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...],
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        self.input_size, self.mean, self.std = tuple(input_size), tuple(mean), tuple(std)
        self.protocol = PROTOCOLS[protocol]

    @classmethod
    def of(cls, data_cfg: dict[str, Any]) -> Preprocess:
        """The preprocessing a data config asks for (``with_protocol``)."""
        return cls(data_cfg["input_size"], data_cfg["mean"], data_cfg["std"], data_cfg.get("protocol", DEFAULT_PROTOCOL))

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W(×C) -> float N×C×H×W."""
        c, h, w = self.input_size
        x = self._resized(np.ascontiguousarray(images), c, h, w)
        mean_t = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((x - mean_t) / std_t).contiguous()

    def _resized(self, images: np.ndarray, c: int, h: int, w: int) -> torch.Tensor:
        """float N×C×H×W in [0, 1] at (h, w)."""
        if self.protocol.interpolation == "pil-bicubic":
            images = _pil_resize(images, h, w)
        x = torch.from_numpy(images)
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        if x.shape[1] != c:
            x = x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x[:, :c]
        if self.protocol.crop:  # torchvision's Resize(short) then CenterCrop((h, w)), rounded as torchvision rounds
            short = round(max(h, w) / self.protocol.crop)
            ih, iw = x.shape[-2:]
            size = (short, int(short * iw / ih)) if ih <= iw else (int(short * ih / iw), short)
            x = _interpolate(x, size, self.protocol.interpolation)
            top, left = int(round((size[0] - h) / 2)), int(round((size[1] - w) / 2))
            return x[..., top:top + h, left:left + w]
        return _interpolate(x, (h, w), self.protocol.interpolation) if x.shape[-2:] != (h, w) else x

    def describe(self) -> str:
        """One line for the run's provenance."""
        c, h, w = self.input_size
        mean, std = (",".join(f"{v:.4g}" for v in t) for t in (self.mean, self.std))
        p = self.protocol
        how = {"bilinear-aa": "bilinear, antialias", "bilinear": "bilinear, no antialias",
               "pil-bicubic": "PIL bicubic"}[p.interpolation]
        size = (f"resize the shorter side to {round(max(h, w) / p.crop)}, centre crop {h}x{w}" if p.crop
                else f"resize to {h}x{w} (squash, no crop")
        head = "" if p.name == DEFAULT_PROTOCOL else f"protocol {p.name}: "
        return f"{head}{size}{'; ' if not p.crop else ' ('}{how}), {c} channels, mean ({mean}), std ({std})"


def _interpolate(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    if x.shape[-2:] == size or interpolation == "pil-bicubic":  # PIL resized before
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=interpolation == "bilinear-aa", align_corners=False)


def _pil_resize(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 N×H×W(×C) resized by PIL's bicubic (what torchvision's Resize does to a PIL image)."""
    from PIL import Image

    if images.shape[1:3] == (h, w):
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BICUBIC)) for im in images])


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
