"""RandAugment as the official ViLT code trains with it (``pixelbert_transform_randaug``: ``RandAugment(2, 9)``
before the resize; dandelin/ViLT vilt/transforms/randaug.py, used by every ``*_randaug`` config that APT, DAS and
METER's VQA recipes cite).

Each image gets ``n`` operations drawn uniformly WITH replacement from ``OPS`` (the official list: TensorFlow's
AutoAugment operations without Invert and Cutout); an operation's value is ``m / 30 × (max - min) + min``, and the
geometric ones and Rotate flip their sign with probability 0.5. PIL does the pixel work, as the official code.
Ours: the draws come from a seeded ``numpy`` generator (the official code uses Python's global ``random``), and the
absolute translations (up to 100 px of a full-size COCO image, which the official pipeline then resizes to a shorter
side of 384) are scaled by the image's shorter side / 384, so a 32 px image moves by its share, not by 30 px.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

REFERENCE_SIDE = 384  # the official shorter side after the resize: what the absolute translations are relative to


def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, coeffs)


def _solarize_add(img: Image.Image, add: float, threshold: int = 128) -> Image.Image:
    """Add ``add`` to the pixels below ``threshold`` (clipped to 255), as the official ``SolarizeAdd``."""
    a = np.asarray(img).astype(np.int64)
    out = np.where(a < threshold, np.clip(a + int(add), 0, 255), a)
    return Image.fromarray(out.astype(np.uint8))


def _translate(img: Image.Image, v: float, axis: int) -> Image.Image:
    v *= min(img.size) / REFERENCE_SIDE
    return _affine(img, (1, 0, v, 0, 1, 0) if axis == 0 else (1, 0, 0, 0, 1, v))


# (name, operation(img, value), min, max, signed): the official list, in its order
OPS: tuple[tuple[str, Callable[[Image.Image, float], Image.Image], float, float, bool], ...] = (
    ("AutoContrast", lambda img, _: ImageOps.autocontrast(img), 0, 1, False),
    ("Equalize", lambda img, _: ImageOps.equalize(img), 0, 1, False),
    ("Rotate", lambda img, v: img.rotate(v), 0, 30, True),
    ("Posterize", lambda img, v: ImageOps.posterize(img, max(1, int(v))), 0, 4, False),
    ("Solarize", lambda img, v: ImageOps.solarize(img, v), 0, 256, False),
    ("SolarizeAdd", _solarize_add, 0, 110, False),
    ("Color", lambda img, v: ImageEnhance.Color(img).enhance(v), 0.1, 1.9, False),
    ("Contrast", lambda img, v: ImageEnhance.Contrast(img).enhance(v), 0.1, 1.9, False),
    ("Brightness", lambda img, v: ImageEnhance.Brightness(img).enhance(v), 0.1, 1.9, False),
    ("Sharpness", lambda img, v: ImageEnhance.Sharpness(img).enhance(v), 0.1, 1.9, False),
    ("ShearX", lambda img, v: _affine(img, (1, v, 0, 0, 1, 0)), 0.0, 0.3, True),
    ("ShearY", lambda img, v: _affine(img, (1, 0, 0, v, 1, 0)), 0.0, 0.3, True),
    ("TranslateXabs", lambda img, v: _translate(img, v, 0), 0.0, 100, True),
    ("TranslateYabs", lambda img, v: _translate(img, v, 1), 0.0, 100, True),
)


class RandAugment:
    """``RandAugment(n, m)`` of the official ViLT code (see the module docstring); ``__call__(img, rng)``."""

    def __init__(self, n: int = 2, m: int = 9) -> None:
        self.n, self.m = n, m

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        for k in rng.integers(0, len(OPS), self.n):
            _, op, lo, hi, signed = OPS[k]
            v = self.m / 30 * (hi - lo) + lo
            if signed and rng.random() > 0.5:
                v = -v
            img = op(img, v)
        return img


def augment_array(images: np.ndarray, rng: np.random.Generator, n: int = 2, m: int = 9) -> np.ndarray:
    """``RandAugment(n, m)`` on each of a batch of uint8 images (N×H×W or N×H×W×3)."""
    aug = RandAugment(n, m)
    return np.stack([np.asarray(aug(Image.fromarray(x), rng)) for x in images])
