"""Tiny text models saved as users keep them (transformers ``save_pretrained``: config + weights, and a
WordPiece or T5 tokenizer over the words of given texts), built offline from architecture configs; a tiny T5 VL
model (``petlbench.vl.models.t5``) and batches for it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WIDTHS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=64)
T5_IMG, T5_CLASSES, T5_LEN = 32, 5, 7  # tiny_t5_vl's image size and classes, t5_batch's text length


def tiny_t5_config(vocab_size: int = 100, layers: int = 2):
    """A 32-wide T5 encoder-decoder config (4 heads of 8, FFN 64, ``layers`` + ``layers`` blocks); pad id and
    decoder start id 0 (``<pad>``, as t5-base)."""
    from transformers import T5Config

    return T5Config(vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=layers,
                    decoder_start_token_id=0, pad_token_id=0)


def wordpiece_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Special tokens, then every lower-cased word and punctuation mark of ``texts`` (BERT's basic split)."""
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    return {w: i for i, w in enumerate([*SPECIALS, *words])}


def t5_tokenizer(texts: Iterable[str]):
    """A T5 (SentencePiece-Unigram) fast tokenizer whose pieces are ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, then
    "▁word" for every word of ``texts`` (case kept) and every punctuation mark: like t5-base's, it appends
    ``</s>`` and returns no ``token_type_ids``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"\w+", t)})
    marks = sorted({m for t in texts for m in re.findall(r"[^\w\s]", t)})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *((f"\u2581{w}", -1.0) for w in words),
              *((m, -1.0) for m in marks)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5TokenizerFast(tokenizer_object=tok, extra_ids=0)


def save_text_model(path: Path, kind: str = "bert", texts: Iterable[str] = ("what is it ?",),
                    tokenizer: bool = True, seed: int = 0) -> Path:
    """A randomly initialised ``kind`` model (bert | electra: 16-wide embeddings projected to 32-wide layers |
    distilbert: not BERT-shaped | t5: a 2 + 2-block, 32-wide T5 encoder-decoder with a T5 tokenizer,
    ``t5_tokenizer``) with a vocabulary of ``texts``' words, saved to ``path``."""
    import torch
    from transformers import AutoModel, BertConfig, BertTokenizer, DistilBertConfig, ElectraConfig
    from transformers.utils import logging as hf_logging

    texts = list(texts)
    vocab = t5_tokenizer(texts).get_vocab() if kind == "t5" else wordpiece_vocab(texts)
    configs = {
        "bert": lambda: BertConfig(vocab_size=len(vocab), **WIDTHS),
        "electra": lambda: ElectraConfig(vocab_size=len(vocab), embedding_size=16, **WIDTHS),
        "distilbert": lambda: DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=4, hidden_dim=64),
        "t5": lambda: tiny_t5_config(len(vocab)),
    }
    torch.manual_seed(seed)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Writing model shards" would land in the CLI tests' captured stderr
    try:
        AutoModel.from_config(configs[kind]()).save_pretrained(path)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if tokenizer:
        (t5_tokenizer(texts) if kind == "t5" else BertTokenizer(vocab=vocab)).save_pretrained(path)
    return path


def tiny_t5_vl(seed: int = 0, layers: int = 3, attn: str = "sdpa"):
    """A 32-wide T5 (``layers`` + ``layers`` blocks) + test_vit (64 wide, ``T5_IMG`` px), frozen as ``build``
    makes it."""
    import torch

    from petlbench.vl.models.bert import load_vision_encoder
    from petlbench.vl.models.t5 import VLT5Model
    from petlbench.vl.models.text import text_encoder_from_config

    torch.manual_seed(seed)
    text = text_encoder_from_config(tiny_t5_config(100, layers))
    text.config._attn_implementation = attn
    model = VLT5Model(text, load_vision_encoder("test_vit", pretrained=False, img_size=T5_IMG)[0], T5_CLASSES)
    model.freeze()
    return model


def t5_batch(seed: int = 0, n: int = 4):
    """(inputs, labels): right-padded ids of lengths 3..T5_LEN ending in ``</s>`` = 1 (pad 0), images."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids, mask = torch.zeros(n, T5_LEN, dtype=torch.long), torch.zeros(n, T5_LEN, dtype=torch.long)
    for i in range(n):
        length = 3 + i % (T5_LEN - 2)
        ids[i, :length] = torch.cat([torch.randint(3, 100, (length - 1,), generator=g), torch.tensor([1])])
        mask[i, :length] = 1
    x = {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(n, 3, T5_IMG, T5_IMG, generator=g)}
    return x, torch.randint(0, T5_CLASSES, (n,), generator=g)
