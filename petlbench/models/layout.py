"""Where methods may act on a backbone kind: one ``Layout`` table per kind, declared by the family that builds it.

peft maps each architecture to its target modules (``"bert": ["query", "value"]``); here each backbone kind states
its insertion points as accessors, and methods read them instead of asking which class a model is. A method states
what it needs (``Method.supports``: names of ``POINTS``), and a kind offers the points its table fills; the engine
refuses a pair whose needs the kind does not offer, and gives ``apply`` the kind's table.

The points:

* ``blocks``: the layers methods adapt, in order (a list-like container, replaced in place by methods that remove
  a layer); ``width``: their hidden size. ``layer`` says how a layer is built, which decides how a branch attaches:
  ``"vit"`` = a timm pre-norm block (``x + attn(LN1 x)``, ``x + mlp(LN2 x)``; methods patch the block, its ``attn``
  and its fused ``qkv``), ``"bert"`` = a post-LN BERT layer whose sublayers end in output modules (``dense``,
  ``dropout``, ``LayerNorm``; methods attach to those).
* ``attention_outputs`` / ``ffn_outputs``: per layer, the modules where its attention sublayers (self-attention,
  and a co-attention layer's cross-attention) and its feed-forward sublayer end (``"bert"``: the output modules;
  ``"vit"``: ``attn`` and ``mlp``).
* ``projections``: per layer, the attention's query / value projections as (owner, attribute, rows) so a method can
  replace them: a separate Linear (rows None) or rows of a fused qkv Linear.
* ``cross_attentions``: per layer, the cross-attention modules whose key/value context a prompt may join.
* ``tokens``: an image token sequence methods may prepend prompts to (a timm ViT's ``_pos_embed`` stream).
* ``image``: an image classifier whose input is a tensor and whose pooled features feed the head (LION).
* ``language_model``: a VL pair's language model reading visual tokens (DVP).
* ``biases``: the adaptable part has bias terms (BitFit; T5 has none).
* ``classifier_token``: adds the kind's learnable classifier token (the official ViLT / METER ``token4classifier``, a
  first text token that trains with every method whose recipe says ``classifier_token``).
* ``layers:<style>``: offered with ``blocks``, for a method whose branches know one layer style only.
* ``adaptable``: the part of the model that full fine-tuning trains and BitFit takes biases from (a VL pair: its
  language model; the frozen visual encoder never trains).

What trains with every method (``trains``: the official ``trainable`` lists beyond the head) and the learning-rate
groups (``fusion``: what trains at ``fusion_lr_mult``) are the family's (``BackboneFamily.freeze``,
``fusion_parameters``), also one place per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from torch import nn

POINTS = ("blocks", "attention_outputs", "ffn_outputs", "projections", "cross_attentions", "tokens", "image",
          "language_model", "biases")
LAYERS = ("vit", "bert", "t5")  # layer styles; a kind with blocks also offers "layers:<style>"

Projection = tuple[nn.Module, str, tuple[int, int] | None]  # (owner, attribute, rows of a fused Linear or None)


def _model(model: nn.Module) -> nn.Module:
    return model


@dataclass(frozen=True)
class Layout:
    """One backbone kind's insertion points (see the module docstring); a point left None is not offered."""

    kind: str
    layer: Literal["vit", "bert", "t5", "none"] = "none"
    blocks: Callable[[nn.Module], Sequence[nn.Module]] | None = None
    width: Callable[[nn.Module], int] | None = None
    attention_outputs: Callable[[nn.Module], list[nn.Module]] | None = None
    ffn_outputs: Callable[[nn.Module], list[nn.Module]] | None = None
    projections: Callable[[nn.Module], dict[str, list[Projection]]] | None = None
    cross_attentions: Callable[[nn.Module], list[nn.Module]] | None = None
    tokens: bool = False
    image: bool = False
    language_model: Callable[[nn.Module], nn.Module] | None = None
    biases: bool = True
    classifier_token: Callable[[nn.Module], None] | None = None  # adds the kind's official learnable classifier token
    # the input size (``BackboneFamily.example``'s) of the kind's official configuration: what published compute
    # claims about it are measured at (``inspect``), when it differs from what runs count at (None: none for this model)
    official_input: Callable[[nn.Module], tuple[int, ...] | None] | None = None
    adaptable: Callable[[nn.Module], nn.Module] = field(default=_model)

    def offers(self) -> frozenset[str]:
        """The points this kind fills."""
        names = {f.name for f in fields(self)} & set(POINTS)
        found = {n for n in names if getattr(self, n) not in (None, False)}
        return frozenset(found | ({f"layers:{self.layer}"} if "blocks" in found else set()))

    def missing(self, needs: frozenset[str]) -> list[str]:
        """The needs of a method this kind does not offer (sorted)."""
        unknown = needs - set(POINTS) - {f"layers:{s}" for s in LAYERS}
        if unknown:
            raise ValueError(f"unknown insertion points {sorted(unknown)}; known: {', '.join(POINTS)}")
        return sorted(needs - self.offers())


def fused_qkv(attn: nn.Module) -> dict[str, list[Projection]]:
    """query / key / value as the row thirds of a fused ``attn.qkv`` Linear (timm's order [q; k; v])."""
    d = attn.qkv.out_features // 3
    return {name: [(attn, "qkv", (i * d, (i + 1) * d))] for i, name in enumerate(("query", "key", "value"))}


def separate_qkv(*attentions: nn.Module) -> dict[str, list[Projection]]:
    """query / key / value as the separate Linears ``self.query`` ... of BERT-style attention modules."""
    return {name: [(a.self, name, None) for a in attentions] for name in ("query", "key", "value")}
