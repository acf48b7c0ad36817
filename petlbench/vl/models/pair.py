"""What every TEXT+VISION model (``vl.models.bert.VLModel``, ``vl.models.t5.VLT5Model``) offers the engine and the methods,
written once: the head, the new fusion layers, a frozen visual encoder kept in eval, the data config, example
inputs and the visual tokens. Subclasses set ``text``, ``vision`` (None: text only), ``head``, ``vis_proj`` /
``vis_type`` (None once a method removed them), ``modality``, ``tokenizer_name`` and ``max_text_len``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class VLPair(nn.Module):
    """Base of the VL models: the shared surface (see the module docstring)."""

    text: nn.Module
    vision: nn.Module | None
    head: nn.Module
    vis_proj: nn.Module | None
    vis_type: nn.Parameter | None
    modality: str
    tokenizer_name: str
    max_text_len: int | None  # set by a method whose recipe fixes it (DVP): texts cut and padded to it

    def get_classifier(self) -> nn.Module:
        return self.head

    def freeze(self) -> VLPair:
        """Frozen but for the head and the new fusion layers (what every method trains on a pair)."""
        from petlbench.models.heads import freeze_backbone

        return freeze_backbone(self, also=self.fusion_parameters())

    def fusion_parameters(self) -> list[nn.Parameter]:
        """The new task-specific fusion layers (``vis_proj``, ``vis_type``); empty for text-only or once a method
        removed them."""
        return [] if self.vis_proj is None else [*self.vis_proj.parameters(), self.vis_type]

    def train(self, mode: bool = True) -> VLPair:
        super().train(mode)
        if self.vision is not None:
            self.vision.eval()  # frozen visual encoder: never dropout / drop-path
        return self

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The visual encoder's timm config with its real input size, so ``timm.data.resolve_data_config``
        gives the image preprocessing (mean, std, size) of this model."""
        if self.vision is None:
            return {}
        return {**self.vision.pretrained_cfg, "input_size": (3, *self.vision.patch_embed.img_size)}

    def data_config(self) -> dict[str, Any]:
        """How data becomes this model's inputs: the visual encoder's timm data config (input size, mean, std;
        none for text-only), the name whose tokenizer encodes the texts and, when a method fixes it, the text
        length (``VLPairFamily.data_config``)."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=self) if self.vision is not None else {}
        fixed = {"max_text_len": self.max_text_len} if self.max_text_len else {}
        return {**cfg, "tokenizer": self.tokenizer_name, "modality": self.modality, **fixed}

    def example_inputs(self, text_len: int = 16) -> dict[str, torch.Tensor]:
        """A batch of one for counting (``engine.build.inspect``): ``text_len`` text tokens, a random image."""
        return example_inputs(self, 1, text_len, device=next(self.parameters()).device)

    def vision_gmacs(self, data_cfg: dict[str, Any]) -> float:
        """The frozen visual encoder's GMACs (included in the model's), NaN for a text-only model."""
        from petlbench.models.measure import gmacs

        if self.vision is None or "input_size" not in data_cfg:
            return math.nan
        return gmacs(self.vision, tuple(data_cfg["input_size"]))

    def visual_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """B×Nv×dv: all tokens of the ViT's last block, before its final norm (frozen: no graph unless a
        visual parameter was made trainable)."""
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(grad):
            return self.vision.forward_features(pixel_values)  # its norm is Identity (see vl.models.bert.strip_vision)


def example_inputs(model: VLPair, batch_size: int = 1, text_len: int = 16, seed: int = 0,
                   device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A random full-length batch (no padding) in the pair's input format."""
    size = model.pretrained_cfg["input_size"] if model.vision is not None else None
    return example_batch(int(model.text.config.vocab_size), text_len, size, batch_size, seed, device)


def example_batch(vocab_size: int, text_len: int, image_size: tuple[int, ...] | None, batch_size: int = 1,
                  seed: int = 0, device: torch.device | str = "cpu", first_id: int = 0) -> dict[str, torch.Tensor]:
    """A random full-length batch (no padding) of every VL model: ``text_len`` token ids drawn from
    ``first_id``..``vocab_size``-1, an all-ones attention mask and (with an ``image_size``) random pixels."""
    g = torch.Generator().manual_seed(seed)
    inputs = {"input_ids": torch.randint(first_id, vocab_size, (batch_size, text_len), generator=g),
              "attention_mask": torch.ones(batch_size, text_len, dtype=torch.long)}
    if image_size is not None:
        inputs["pixel_values"] = torch.randn(batch_size, *image_size, generator=g)
    return {k: v.to(device) for k, v in inputs.items()}
