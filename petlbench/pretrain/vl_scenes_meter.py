"""``petlbench pretrain --data vl-scenes-meter``: ``petl_meter_micro_scenes``, the micro VL-pretrained METER.

METER's structure on the offline pair's encoders (``vl.models.meter.micro_meter``: all-MiniLM-L6-v2 and
``petl_vit_micro_scenes``) with 6 + 6 co-attention layers of width 128. It pretrains as the micro ViLT does
(``pretrain.vlp``: captions, masking, ITM negatives, loop and recipe) with METER's heads: MLM through a transform and
a decoder of its own (METER's ``MLMHead`` is not tied), ITM as Linear(2d, 2) on both poolers (``ITMHead(hidden * 2)``).
Its two encoders are frozen (ours; METER also trains them, at a lower lr), so only the co-attention layers,
transforms, poolers and modality embedding learn, and only they are saved.
"""

from __future__ import annotations

from torch import nn

from petlbench.pretrain.base import preprocessing, register
from petlbench.pretrain.vlp import VLPRecipe
from petlbench.vl.models.meter import ENCODERS, MICRO, MICRO_VISION, micro_meter


@register
class VLScenesMeter(VLPRecipe):
    name, model = "vl-scenes-meter", MICRO
    description = "a micro VL-pretrained METER: ITM + MLM on generated scene captions, encoders frozen"
    init = (f"text encoder all-MiniLM-L6-v2 (packaged) and image encoder {MICRO_VISION}, frozen and not saved; "
            "co-attention layers, transforms, poolers and heads random")

    def build(self, cfg, device):
        model, _ = micro_meter(1)
        for part in (model.text_transformer, model.vit_model, model.head):  # the encoders frozen; no task head
            part.requires_grad_(False)
        model = model.to(device)
        return model, preprocessing(model.data_config())

    def vocab_size(self, model: nn.Module) -> int:
        return int(model.text_transformer.config.vocab_size)

    def state(self, model, objective):
        """All but the (frozen, packaged) encoders and the head."""
        from petlbench.models.weights import backbone_state

        return backbone_state(model, drop=(*ENCODERS, "head."))
