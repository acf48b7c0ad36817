"""Vision backbones: any timm model (hub weights, a local file, or random init) plus the bundled ones, and the
vision family (``VISION``) through which the engine builds and measures them.

``create_backbone`` returns a model whose every parameter is frozen except the classifier head, which is
freshly sized to the dataset. Methods then add their own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.hub import offline_if_unreachable, unreachable
from petlbench.models.family import BackboneFamily
from petlbench.models.heads import freeze_backbone
from petlbench.models.layout import Layout, fused_qkv
from petlbench.models.weights import (
    _load_into,
    bundled_path,
    file_sha256,
    load_state_dict_file,
    weights_or_bundled,
)
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
    # (`petlbench pretrain --data scenes`; see petlbench.engine.pretrain)
    "petl_vit_micro_scenes": BundledModel(**MICRO, file="petl_vit_micro_scenes.safetensors",
                                          description=f"{MICRO_TEXT} shape scenes (object labels per patch)"),
}


DEFAULT_MODEL = "petl_vit_micro"


MODELS: Registry[BundledModel] = Registry(
    "model", "run 'petlbench list models' (any timm architecture name works too)")


for _name, _spec in BUNDLED.items():
    MODELS.add(_name, _spec)


def bundled_weights_path(name: str) -> Path:
    return bundled_path(MODELS.get(name).file)


def data_config(model: nn.Module) -> dict[str, Any]:
    """timm's data config (input size, mean, std); a ViT built with another ``img_size`` than its pretrained
    config takes its real input size."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    patch_embed = getattr(model, "patch_embed", None)  # timm ViTs: the size they were built for
    if patch_embed is not None and getattr(patch_embed, "img_size", None) is not None:
        cfg["input_size"] = (cfg["input_size"][0], *patch_embed.img_size)
    return cfg


def input_size(model: nn.Module) -> tuple[int, int, int]:
    return tuple(data_config(model)["input_size"])


def backbone_kind(model: nn.Module) -> str:
    """'vit' for timm ViT-like models (patch_embed + blocks + position embedding), else 'cnn'."""
    if hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model, "_pos_embed"):
        return "vit"
    return "cnn"


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

    ``name`` is a bundled model or a timm architecture (None: the bundled default). Returns the model and
    provenance ``{"model", "weights_source", "weights_sha256"}``. Weights come from ``weights`` (a file) if
    given, else the bundled file for bundled models, else the hub when ``pretrained``, else nowhere.
    """
    if modality != "both":
        raise UserError(f"--modality {modality} applies to vision-language models (on VL datasets), "
                        f"not '{name or DEFAULT_MODEL}'; drop --modality")
    name = name or DEFAULT_MODEL
    info: dict[str, Any] = {"model": name, "weights_source": "random-init", "weights_sha256": ""}
    spec = MODELS.find(name)
    if spec is not None:
        # the caller's kwargs (e.g. --img-size) override the bundled architecture's
        model = timm.create_model(spec.arch, pretrained=False, num_classes=num_classes,
                                  **{**spec.kwargs, **timm_kwargs})
        if weights is None and pretrained:
            weights = str(weights_or_bundled(None, spec.file, name))
    else:
        model, info["weights_source"] = _timm_model(name, num_classes, pretrained and weights is None, timm_kwargs)
    if weights is not None and pretrained:
        _load_into(model, load_state_dict_file(weights), source=f"'{weights}'")
        info["weights_source"] = f"file:{Path(weights).name}"
        info["weights_sha256"] = file_sha256(weights)
    freeze_backbone(model)
    return model, info


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


class VisionFamily(BackboneFamily):
    """Bundled and timm image classifiers: kinds 'vit' and 'cnn', the vision track; owns every name no other
    family owns (``tracks.family``)."""

    name, track, default_model = "vision", "vision", None
    layouts = {"vit": Layout("vit", layer="vit", blocks=lambda m: m.blocks, width=lambda m: int(m.embed_dim),
                             attention_outputs=lambda b: [b.attn], ffn_outputs=lambda b: [b.mlp],
                             projections=lambda b: fused_qkv(b.attn), tokens=True, image=True),
               "cnn": Layout("cnn", image=True)}
    model_hint = "a vision model (not TEXT+VISION)"

    def owns(self, model: str | None) -> bool:
        return True

    def create(self, name, num_classes, *, weights=None, pretrained=True, modality="both", **kwargs):
        return create_backbone(name, num_classes, weights=weights, pretrained=pretrained, modality=modality, **kwargs)

    def kind(self, model: nn.Module) -> str:
        return backbone_kind(model)

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        return data_config(model)

    def count_size(self, model: nn.Module, data_cfg: dict[str, Any], train: Any = None,
                   text_len: int = 16) -> tuple[int, ...]:
        return tuple(data_cfg["input_size"])

    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> torch.Tensor:
        return torch.randn(1, *(size or input_size(model)), generator=torch.Generator().manual_seed(0))

    def list_models(self) -> list[tuple[str, str, bool]]:
        """The bundled models, then one row for the timm architectures."""
        rows = [(name, b.description, name == DEFAULT_MODEL) for name, b in MODELS.all().items()]
        n = len(timm.list_models())
        return [*rows, (f"... and {n} timm architectures", "e.g. vit_base_patch16_224, resnet50 (hub weights online, "
                        "--weights PATH offline, --no-pretrained)", False)]


VISION = VisionFamily()
