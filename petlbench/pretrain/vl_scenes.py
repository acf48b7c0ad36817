"""``petlbench pretrain --data vl-scenes``: ``petl_vilt_micro_scenes``, the micro VL-pretrained ViLT.

ViLT's architecture at micro size (``vl.models.vilt.MICRO_SPEC``): one transformer over [text ; patches], so at micro
size it is the bundled micro ViT (``petl_vit_micro_scenes``: 32×32, patch 4, d = 128, 6 blocks) with text embeddings.
ViLT starts its transformer from a pretrained ViT (Kim et al. 2021, Sec. 3.3: ViT-B/32 from ImageNet); here from the
scene-pretrained micro ViT, so the VL pretraining (``pretrain.vlp``: ITM + MLM on scene captions, the MLM decoder
tied to the word embeddings as ViLT's) only has to learn language and its binding to the image.

Saved: the backbone without its head; of the word embeddings only the rows of the generated vocabulary (the
pretraining captions' and the built-in VL tasks' texts, ``pretrain.captions.vocabulary_rows``; the others are zero
when loaded), so the file stays small.
"""

from __future__ import annotations

from torch import nn

from petlbench.pretrain.base import preprocessing, register
from petlbench.pretrain.captions import vocabulary_rows
from petlbench.pretrain.vlp import VLPRecipe
from petlbench.vl.models.vilt import MICRO, MICRO_SPEC, ROWS, ViLT


@register
class VLScenes(VLPRecipe):
    name, model = "vl-scenes", MICRO
    description = "a micro VL-pretrained ViLT: ITM + MLM on generated scene captions"
    init = "transformer from petl_vit_micro_scenes; text embeddings, pooler and heads random"

    def build(self, cfg, device):
        from petlbench.models.backbones import create_backbone

        model = ViLT(MICRO_SPEC, 1)
        vit, _ = create_backbone("petl_vit_micro_scenes", 1)
        own = model.transformer.state_dict()
        model.transformer.load_state_dict({k: v for k, v in vit.state_dict().items() if k in own and
                                           not k.startswith("head")}, strict=False)
        model = model.to(device)
        return model, preprocessing(model.data_config())

    def words(self, model: nn.Module) -> nn.Embedding:
        return model.text_embeddings.word_embeddings

    def vocab_size(self, model: nn.Module) -> int:
        return model.spec.vocab_size

    def state(self, model, objective):
        """The backbone's state (no head) with only the vocabulary's rows of the word embeddings (+ their ids under
        ``ROWS``)."""
        from petlbench.models.weights import backbone_state
        from petlbench.vl.models.text import OFFLINE_TEXT, text_tokenizer

        rows = vocabulary_rows(objective.corpus, text_tokenizer(OFFLINE_TEXT))
        key = "text_embeddings.word_embeddings.weight"
        state = backbone_state(model)
        state[key], state[ROWS] = state[key][rows].contiguous(), rows
        return state
