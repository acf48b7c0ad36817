"""The family of vision-language PRETRAINED backbones (``vl.models.vilt``: kind ``vilt``; ``vl.models.meter``: kind ``meter``),
the models APT and DAS were published on. Unlike a ``TEXT+VISION`` pair (``vl.models.bert``), their fusion of image and
text is learned in pretraining; methods adapt it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.family import BackboneFamily
from petlbench.vl.models.meter import MICRO as METER_MICRO
from petlbench.vl.models.meter import create_meter
from petlbench.vl.models.vilt import MICRO, VILT_HUB, create_vilt

METER_NAMES = ("meter", METER_MICRO)  # the names of kind 'meter'; every other name this family owns is a ViLT


class VLPFamily(BackboneFamily):
    """``vilt`` / ``vilt:SOURCE`` / the micro ViLT (kind 'vilt') and ``meter`` / the micro METER (kind 'meter') on
    the VL track."""

    name, track, kinds = "vlp", "vl", frozenset({"vilt", "meter"})
    model_hint = f"{MICRO} or {METER_MICRO} (offline), vilt, vilt:SOURCE or meter"
    frozen_mode = "train"  # dropout trains as in the official ViLT / METER LightningModules

    def owns(self, model: str | None) -> bool:
        return model is not None and "+" not in model and (model in ("vilt", MICRO, *METER_NAMES)
                                                          or model.startswith("vilt:"))

    def create(self, name, num_classes, *, weights=None, pretrained=True, modality="both", **kwargs):
        if modality != "both":
            raise UserError(f"modality={modality!r} baselines are built for TEXT+VISION pairs; {name} runs with both "
                            "modalities (omit --modality)")
        if name in METER_NAMES:
            extra = sorted(set(kwargs) - {"img_size"})
            if not extra:
                return create_meter(name, num_classes, pretrained=pretrained, weights=weights, **kwargs)
        elif not kwargs:
            return create_vilt(name, num_classes, pretrained=pretrained, weights=weights)
        raise UserError(f"{name} takes no {', '.join(sorted(kwargs))} here; omit those options")

    def kind(self, model: nn.Module) -> str:
        return model.kind

    def kind_of_name(self, name: str | None) -> str | None:
        return "meter" if name in METER_NAMES else "vilt"

    def fusion_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """METER's cross-modal parameters (official ``cross_modal_names``: every name containing ``cross_modal``:
        co-attention layers with what methods add there, transforms, poolers); ViLT has none apart."""
        return [p for n, p in model.named_parameters() if "cross_modal" in n]

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        return model.data_config()

    def count_size(self, model: nn.Module, data_cfg: dict[str, Any], train: Any = None,
                   text_len: int = 16) -> tuple[int, ...]:
        """The padded text length of the prepared split (``max_text_len``), else ``text_len``."""
        return (train.text_len,) if train is not None else (text_len,)

    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        return model.example_inputs(*(size or ()))

    def list_models(self) -> list[tuple[str, str, bool]]:
        return [("vilt", f"VL-pretrained: ViLT-B/32 (hub {VILT_HUB}; --weights an official ViLT .ckpt; "
                         "--no-pretrained: random, no download)", False),
                ("vilt:SOURCE", "VL-pretrained: another transformers ViLT checkpoint (hub id or local directory)",
                 False),
                (MICRO, "VL-pretrained, offline: micro ViLT (32x32, patch 4, d=128, 6 blocks) pretrained here with "
                        "ITM + MLM on generated scene captions (petlbench pretrain --data vl-scenes)", False),
                (METER_MICRO, "VL-pretrained, offline: micro METER (the offline pair's encoders, all-MiniLM-L6-v2 and "
                              "petl_vit_micro_scenes, + 6+6 co-attention layers, d=128) pretrained here with ITM + MLM "
                              "on generated scene captions (petlbench pretrain --data vl-scenes-meter)", False),
                ("meter", "VL-pretrained: METER (CLIP ViT-B/16 + RoBERTa-base + 6+6 co-attention layers); --weights "
                          "meter_clip16_288_roberta_pretrain.ckpt, or --no-pretrained", False)]


VLP = VLPFamily()
