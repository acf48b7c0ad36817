"""The published papers' image preprocessing protocols (``--protocol``; applied by ``data.preprocess.Preprocess``):
what each official loader does to an image before the model sees it (read in its code, not copied). Published
VTAB-1k and FGVC numbers depend on it by up to a few points, so the protocol is a recorded choice, part of the run
identity, and each paper suite uses its paper's. Plain data (no torch): the run options name the protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm IMAGENET_DEFAULT_MEAN / _STD


@dataclass(frozen=True)
class Protocol:
    """How a paper's loader turns an image into the model's input (read in its official code): the resize
    (``squash`` to the input size, or the shorter side to ``input / crop`` then a centre crop), its interpolation
    (``bilinear-aa``: torch bilinear with antialiasing; ``bilinear``: without, as TF's ``tf.image.resize``;
    ``pil-bicubic``: PIL's bicubic, as torchvision's ``Resize(interpolation=3)`` on PIL images) and the mean/std
    (None: the model's own data config)."""

    name: str
    interpolation: str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    crop: float | None  # None: squash to the input size
    source: str


PROTOCOLS = {p.name: p for p in (
    Protocol("model", "bilinear-aa", None, None, None,
             "petlbench's default: squash (VTAB-1k protocols resize to 224x224; timm's eval crop would cut the "
             "borders structured tasks depend on), bilinear with antialiasing, the model's mean/std"),
    Protocol("vpt-vtab", "bilinear", IMAGENET_MEAN, IMAGENET_STD, None,
             "VPT src/data/datasets/tf_dataset.py: preprocess_fn tf.image.resize to 224x224 (bilinear, no "
             "antialias), /255; to_torch_imgs subtracts ImageNet mean and divides by its std"),
    Protocol("vpt-fgvc", "bilinear-aa", IMAGENET_MEAN, IMAGENET_STD, 0.875,
             "VPT src/data/transforms.py (test): Resize(256) on the shorter side, CenterCrop(224), ImageNet "
             "mean/std (training adds RandomCrop + flip: petlbench does not augment vision data)"),
    Protocol("noah", "pil-bicubic", IMAGENET_MEAN, IMAGENET_STD, None,
             "NOAH lib/datasets.py build_transform with --direct_resize --no_aug (its VTAB scripts): "
             "Resize((224, 224), interpolation=3) = PIL bicubic, ToTensor, Normalize(IMAGENET_DEFAULT_MEAN, "
             "IMAGENET_DEFAULT_STD)"),
)}
DEFAULT_PROTOCOL = "model"


def with_protocol(data_cfg: dict[str, Any], protocol: str) -> dict[str, Any]:
    """A model's data config under ``protocol`` (the model's own for ``model``)."""
    if protocol == DEFAULT_PROTOCOL:
        return data_cfg
    p = PROTOCOLS[protocol]
    return {**data_cfg, "protocol": protocol, "mean": p.mean or data_cfg["mean"], "std": p.std or data_cfg["std"]}
