"""Tiny text encoders saved as users keep them (transformers ``save_pretrained``: config + weights, and a
WordPiece tokenizer over the words of given texts), built offline from architecture configs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WIDTHS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=64)


def wordpiece_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Special tokens, then every lower-cased word and punctuation mark of ``texts`` (BERT's basic split)."""
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    return {w: i for i, w in enumerate([*SPECIALS, *words])}


def save_text_model(path: Path, kind: str = "bert", texts: Iterable[str] = ("what is it ?",),
                    tokenizer: bool = True, seed: int = 0) -> Path:
    """A randomly initialised ``kind`` encoder (bert | electra: 16-wide embeddings projected to 32-wide layers |
    distilbert: not BERT-shaped) with a vocabulary of ``texts``' words, saved to ``path``."""
    import torch
    from transformers import AutoModel, BertConfig, BertTokenizer, DistilBertConfig, ElectraConfig
    from transformers.utils import logging as hf_logging

    vocab = wordpiece_vocab(texts)
    configs = {
        "bert": lambda: BertConfig(vocab_size=len(vocab), **WIDTHS),
        "electra": lambda: ElectraConfig(vocab_size=len(vocab), embedding_size=16, **WIDTHS),
        "distilbert": lambda: DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=4, hidden_dim=64),
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
        BertTokenizer(vocab=vocab).save_pretrained(path)
    return path
