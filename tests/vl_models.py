"""A tiny VL model (4-layer, 32-wide BERT or ELECTRA-style text encoder + test_vit) and batches for it, built
offline from architecture configs; a hand count of transformer MACs."""

from __future__ import annotations

import torch

from petlbench.vl.models.bert import VLModel, load_vision_encoder
from petlbench.vl.models.text import text_encoder_from_config

IMG, CLASSES, T = 32, 5, 8


def tiny_text(attn: str = "sdpa", arch: str = "bert"):
    """A 4-layer, 32-wide BERT, or an ELECTRA-style encoder (16-wide embeddings, ``embeddings_project``)."""
    from transformers import BertConfig, ElectraConfig

    widths = dict(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=32)
    cfg = ElectraConfig(embedding_size=16, **widths) if arch == "electra" else BertConfig(**widths)
    text = text_encoder_from_config(cfg)
    if attn == "eager":
        text.config._attn_implementation = "eager"
    return text


def tiny_vl(modality: str = "both", seed: int = 0, attn: str = "sdpa", arch: str = "bert") -> VLModel:
    torch.manual_seed(seed)
    vision = None if modality == "text" else load_vision_encoder("test_vit", pretrained=False, img_size=IMG)[0]
    model = VLModel(tiny_text(attn, arch), vision, CLASSES, modality)
    model.freeze()
    return model


def batch(seed: int = 0, n: int = 4) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Right-padded token ids ([CLS]=1 ... [SEP]=2, pad 0) of lengths 3..T, images, labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, T, dtype=torch.long)
    mask = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        length = 3 + i % (T - 2)
        ids[i, :length] = torch.cat([torch.tensor([1]), torch.randint(5, 100, (length - 2,), generator=g),
                                     torch.tensor([2])])
        mask[i, :length] = 1
    x = {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(n, 3, IMG, IMG, generator=g)}
    return x, torch.randint(0, CLASSES, (n,), generator=g)


def hand_macs(n: int, d: int, ff: int, layers: int) -> int:
    """Transformer layers over n tokens: q,k,v,o (4·n·d²) + FFN (2·n·d·ff) + scores and AV (2·n²·d)."""
    return layers * (4 * n * d * d + 2 * n * d * ff + 2 * n * n * d)


def tiny_vilt(classes: int = CLASSES, img: int = IMG, vocab: int = 100, text_len: int = 12, seed: int = 0):
    """A 2-layer, 32-wide ViLT (patch 16) at random, frozen as ``build`` makes it."""
    from transformers import ViltConfig

    from petlbench.vl.models.vilt import ViLT, ViLTSpec

    torch.manual_seed(seed)
    config = ViltConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        image_size=img, patch_size=16, max_position_embeddings=text_len, vocab_size=vocab)
    model = ViLT(ViLTSpec.from_hf(config), classes)
    model.freeze()
    return model


def tiny_meter(classes: int = CLASSES, img: int = IMG, vocab: int = 60, seed: int = 0):
    """A METER of 1-layer RoBERTa + 2-block CLIP-style ViT (patch 16) + 2+2 co-attention layers, 32 wide, at random,
    frozen as ``build`` makes it."""
    from transformers import AutoConfig, AutoModel

    from petlbench.vl.models.meter import METER, MeterSpec

    torch.manual_seed(seed)
    text = AutoModel.from_config(AutoConfig.for_model("roberta", vocab_size=vocab, hidden_size=32, num_hidden_layers=1,
                                                      num_attention_heads=4, intermediate_size=64,
                                                      max_position_embeddings=40), add_pooling_layer=False)
    spec = MeterSpec(hidden_size=32, num_top_layer=2, num_heads=4, image_size=img, patch_size=16, vision_layers=2,
                     max_text_len=12)
    return METER(spec, classes, text).freeze()
