"""Backbones: any timm model (hub weights, a local file, or random init) plus the bundled one.

``create_backbone`` returns a model whose every parameter is frozen except the classifier
head, which is freshly sized to the dataset. Methods then add their own parameters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.hub import offline_if_unreachable, unreachable
from petlbench.registry import Registry

OFFLINE_HINT = (
    "offline, use the bundled backbone (omit --model), a local file (--weights PATH) "
    "or random init (--no-pretrained)"
)


@dataclass(frozen=True)
class BundledModel:
    """A backbone whose weights ship inside the package (see ``petlbench pretrain``)."""

    arch: str  # timm architecture the weights fit
    kwargs: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # under petlbench/assets
    description: str = ""


# The bundled micro ViT architecture (32x32 input, patch 4 -> 64 tokens + CLS), and its two pretrained weights:
MICRO = dict(arch="vit_tiny_patch16_224",
             kwargs=dict(img_size=32, patch_size=4, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0))
MICRO_TEXT = "micro ViT (32x32, patch 4, d=128, 6 blocks) pretrained here on"
BUNDLED: dict[str, BundledModel] = {
    # the embedded offline default backbone, pretrained by `petlbench pretrain` on Fashion-MNIST (Debian package
    # dataset-fashion-mnist)
    "petl_vit_micro": BundledModel(**MICRO, file="petl_vit_micro.safetensors",
                                   description=f"{MICRO_TEXT} Fashion-MNIST"),
    # the VL track's offline visual encoder: pretrained on generated shape scenes with per-patch object labels
    # (`petlbench pretrain --data scenes`; see petlbench.pretrain)
    "petl_vit_micro_scenes": BundledModel(**MICRO, file="petl_vit_micro_scenes.safetensors",
                                          description=f"{MICRO_TEXT} shape scenes (object labels per patch)"),
}
DEFAULT_MODEL = "petl_vit_micro"


MODELS: Registry[BundledModel] = Registry(
    "model", "run 'petlbench list models' (any timm architecture name works too)")
for _name, _spec in BUNDLED.items():
    MODELS.add(_name, _spec)


def bundled_weights_path(name: str) -> Path:
    return Path(str(resources.files("petlbench.assets").joinpath(MODELS.get(name).file)))


def list_models() -> list[tuple[str, str]]:
    """(name, note) rows: bundled models first, then timm architectures (no weights needed)."""
    rows = [(n, b.description) for n, b in MODELS.all().items()]
    rows += [(n, "timm") for n in timm.list_models()]
    return rows


@dataclass
class Built:
    """A backbone with a method applied: the model, its weights' provenance, and the parameter count of the
    backbone (with its head) before ``apply`` (so ``params_added`` can be counted)."""

    model: nn.Module
    weights_info: dict[str, Any]
    backbone_total: int


def build(method: Any, model_name: str | None, num_classes: int, *, weights: str | None = None,
          pretrained: bool = True, modality: str = "both", **timm_kwargs: Any) -> Built:
    """Backbone + ``method.apply``; refuses a backbone kind the method does not support."""
    model, info = create_backbone(model_name, num_classes, weights=weights, pretrained=pretrained, modality=modality,
                                  **timm_kwargs)
    kind = backbone_kind(model)
    if kind not in method.supports:
        raise UserError(
            f"method '{method.name}' does not support {kind} backbones (supports: {', '.join(sorted(method.supports))}); "
            "pick another --model"
        )
    backbone_total = sum(p.numel() for p in model.parameters())
    return Built(method.apply(model), info, backbone_total)


def data_config(model: nn.Module) -> dict[str, Any]:
    """timm's data config (input size, mean, std); a ViT built with another ``img_size`` than its
    pretrained config takes its real input size. A model with its own ``data_config`` (``vl.VLModel``: the
    visual encoder's config plus its tokenizer) gives it."""
    from timm.data import resolve_data_config

    if hasattr(model, "data_config"):
        return model.data_config()
    cfg = resolve_data_config({}, model=model)
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        cfg["input_size"] = (cfg["input_size"][0], *img_size)
    return cfg


def input_size(model: nn.Module) -> tuple[int, int, int]:
    return tuple(data_config(model)["input_size"])


def backbone_kind(model: nn.Module) -> str:
    """A model's own ``petl_kind`` ('vl' for ``petlbench.vl.VLModel``), else 'vit' for timm ViT-like models
    (patch_embed + blocks), else 'cnn'."""
    if getattr(model, "petl_kind", None):
        return model.petl_kind
    if hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model, "_pos_embed"):
        return "vit"
    return "cnn"


def file_sha256(path: str | Path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file or a torch state dict; UserError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' not found; pass an existing .safetensors or .pt file to --weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
            for key in ("state_dict", "model", "module"):
                if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
                    sd = sd[key]
    except Exception as e:  # corrupt or foreign file
        raise UserError(
            f"cannot read weights file '{path}' ({type(e).__name__}); it must be a safetensors file or a torch state dict"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"weights file '{path}' holds no state dict of tensors; save one with torch.save(model.state_dict())")
    return sd


def _load_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load backbone weights, dropping a classifier of another size and resampling pos-embeds."""
    sd = dict(sd)
    own = model.state_dict()
    head_names = {n for n, _ in _head(model).named_parameters(prefix=_head_prefix(model))}
    if "pos_embed" in sd and "pos_embed" in own and sd["pos_embed"].shape != own["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        npt = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        grid = model.patch_embed.grid_size
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=list(grid), num_prefix_tokens=npt)
    for k in list(sd):
        if k in head_names and (k not in own or sd[k].shape != own[k].shape):
            del sd[k]  # a head for another number of classes: keep the fresh one
    arch = model.default_cfg.get("architecture", "?")
    bad = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if bad:  # checked before load_state_dict, which would raise a long size-mismatch traceback
        k = bad[0]
        raise UserError(f"weights in {source} have the keys of model '{arch}' but other shapes ({len(bad)} tensors, "
                        f"e.g. '{k}': {tuple(sd[k].shape)} in the file vs {tuple(own[k].shape)} in the model); "
                        "they belong to another size of this architecture: pass the matching --model")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in head_names]
    if missing or unexpected:
        sample = (missing or unexpected)[:3]
        raise UserError(f"weights in {source} do not fit model '{arch}' ({len(missing)} missing, {len(unexpected)} "
                        f"unexpected keys, e.g. {sample}); {_foreign_hint(unexpected)}pass the matching --model")


# key prefixes only torchvision's layout has (timm names these layers otherwise): mobilenet/efficientnet/vgg/convnext
# ``features.``, vit ``encoder.layers.encoder_layer_`` / ``conv_proj.`` / ``heads.head.``, regnet ``trunk_output.``.
# Not ``classifier.`` or ``stem.``: timm's MobileNets, EfficientNets and RegNets use those names too.
TORCHVISION_PREFIXES = ("features.", "encoder.layers.encoder_layer_", "conv_proj.", "heads.head.", "trunk_output.")


def _foreign_hint(unexpected: list[str]) -> str:
    """A hint when the unexpected keys are in torchvision's layout (timm names layers differently)."""
    if not any(k.startswith(TORCHVISION_PREFIXES) for k in unexpected):
        return ""
    return ("the keys look like a torchvision checkpoint (torchvision and timm name layers differently, except "
            "ResNets, whose torchvision weights load into timm's resnet* models as they are): save the weights "
            "from the matching timm model instead, e.g. timm.create_model('mobilenetv2_100', pretrained=True) "
            "for torchvision's mobilenet_v2, or convert the keys to timm's names; ")


def get_classifier(model: nn.Module) -> nn.Module:
    """The classifier head module (timm ``get_classifier``; ``model.head`` otherwise)."""
    return _head(model)


def _head(model: nn.Module) -> nn.Module:
    head = model.get_classifier() if hasattr(model, "get_classifier") else model.head
    return head if isinstance(head, nn.Module) else nn.Identity()


def _head_prefix(model: nn.Module) -> str:
    head = _head(model)
    for name, mod in model.named_modules():
        if mod is head:
            return name
    return "head"


def create_backbone(
    name: str | None,
    num_classes: int,
    *,
    weights: str | None = None,
    pretrained: bool = True,
    modality: str = "both",
    **timm_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``name`` with a ``num_classes`` head; freeze everything but the head.

    ``name`` is a bundled model, a timm architecture, or a vision-language pair ``TEXT+VISION``
    (``petlbench.vl``; ``modality`` selects its text-only / image-only baselines). Returns the model and
    provenance ``{"model", "weights_source", "weights_sha256"}``. Weights come from ``weights`` (a file) if
    given, else the bundled file for bundled models, else the hub when ``pretrained``, else nowhere.
    """
    from petlbench import vl

    if vl.is_vl_model_name(name):
        return vl.create_vl_backbone(name, num_classes, pretrained=pretrained, weights=weights, modality=modality,
                                     **timm_kwargs)
    if modality != "both":
        raise UserError(f"--modality {modality} applies to vision-language models (TEXT+VISION, on VL datasets), "
                        f"not '{name or DEFAULT_MODEL}'; drop --modality")
    name = name or DEFAULT_MODEL
    info: dict[str, Any] = {"model": name, "weights_source": "random-init", "weights_sha256": ""}
    spec = MODELS.find(name)
    if spec is not None:
        # the caller's kwargs (e.g. --img-size) override the bundled architecture's
        model = timm.create_model(spec.arch, pretrained=False, num_classes=num_classes,
                                  **{**spec.kwargs, **timm_kwargs})
        if weights is None and pretrained:
            weights = _bundled_file(name)
    else:
        model, info["weights_source"] = _timm_model(name, num_classes, pretrained and weights is None, timm_kwargs)
    if weights is not None and pretrained:
        _load_into(model, load_state_dict_file(weights), source=f"'{weights}'")
        info["weights_source"] = f"file:{Path(weights).name}"
        info["weights_sha256"] = file_sha256(weights)
    freeze_backbone(model)
    return model, info


def _bundled_file(name: str) -> str:
    path = bundled_weights_path(name)
    if not path.is_file():
        raise UserError(f"bundled weights for '{name}' are missing ({path}); rebuild them with 'petlbench pretrain' "
                        "or use --no-pretrained")
    return str(path)


def _timm_model(name: str, num_classes: int, hub: bool, timm_kwargs: dict[str, Any]) -> tuple[nn.Module, str]:
    """A timm architecture, with hub weights when ``hub`` (one short probe first, one line when unreachable)."""
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        MODELS.get(name, also=timm.list_models())  # raises: unknown model, did you mean ...
    if hub:
        offline_if_unreachable()
    try:
        model = timm.create_model(name, pretrained=hub, num_classes=num_classes, **timm_kwargs)
    except unreachable() as e:
        if not hub:
            raise
        raise UserError(f"cannot download weights for '{name}' from the Hugging Face hub "
                        f"({type(e).__name__}); {OFFLINE_HINT}") from None
    return model, (f"hub:{model.pretrained_cfg.get('hf_hub_id') or name}" if hub else "random-init")


def freeze_backbone(model: nn.Module) -> None:
    """Freeze every parameter, then make the classifier head trainable."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in _head(model).parameters():
        p.requires_grad_(True)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(_head(model).parameters())
