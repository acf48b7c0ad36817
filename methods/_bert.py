"""Shared plumbing for methods on the VL model's BERT-style language model (not a method).

A transformers ``BertLayer`` is post-LN. With ``x`` the layer input (B×N×d)::

    a = LN1(x + Drop(Dense_o(SelfAttn(x))))           # layer.attention.output: BertSelfOutput(ctx, x)
    y = LN2(a + Drop(Dense_2(act(Dense_1 a))))         # layer.output:           BertOutput(ffn_hidden, a)

Both "output" modules get the same input pair (sublayer result ``z``, residual ``r``) and end the sublayer, so
they are where methods attach. ``add_output_branches`` patches one instance so its forward becomes::

    h = Dense(z)
    h = APT(r, h)              # apt:          APT after the attention output dense (official APT BertSelfOutput)
    h = Drop(h)
    h = h + Seq(h)             # seq_adapter:  Houlsby adapter on the sublayer output, before residual + LN
    o = LN(h + r + Par(r))     # par_adapter:  parallel adapter inside the LN (official DAS BertSelfOutput, A0)
    o = o + Post(r)            # post_adapter: parallel adapter after the LN (official DAS feed_forward_chunk, A1)

Unused slots are None and cost nothing. APT's ``x_norm`` is ``r``: a post-LN layer's attention reads the layer
input itself (already normalised by the previous layer's LN2, or the embedding LN), so ``r`` is exactly what
the attention saw, the counterpart of ``LN1(x)`` in a pre-norm ViT. Backbone parameter names do not change; the
new ones are e.g. ``text.encoder.layer.3.attention.output.seq_adapter.down.weight``.
"""

from __future__ import annotations

import torch
from torch import nn

from petlbench.methods._modules import fill_slots
from petlbench.methods.base import MethodModule
from petlbench.vl.models.bert import VLModel
from petlbench.vl.models.meter import METER

OUTPUT_SLOTS = ("apt", "seq_adapter", "par_adapter", "post_adapter")


def is_vl(model: nn.Module) -> bool:
    """True for the VL pair (backbone kind ``vl``): methods dispatch on this in ``apply``."""
    return isinstance(model, VLModel)


def is_meter(model: nn.Module) -> bool:
    """True for METER (backbone kind ``meter``): its co-attention layers are BERT layers."""
    return isinstance(model, METER)


def has_bert_layers(model: nn.Module) -> bool:
    """True when the layers methods adapt are BERT layers (``bert_layers``): the VL pair and METER."""
    return is_vl(model) or is_meter(model)


def language_model(model: nn.Module) -> nn.Module:
    """The transformers encoder of a VL model (``model.text``)."""
    text = getattr(model, "text", None)
    if text is None or not is_vl(model):
        raise ValueError(f"{type(model).__name__} is not a VL model with a language model 'text'")
    return text


def bert_layers(model: nn.Module) -> nn.ModuleList:
    """The layers methods adapt, in order, replaceable in place: a VL pair's language-model layers (the ModuleList
    itself); METER's 12 co-attention layers (text stream 0-5, image stream 6-11; ``vl.models.meter.CoLayers``)."""
    return model.co_layers() if is_meter(model) else language_model(model).encoder.layer


def text_dim(model: nn.Module) -> int:
    """Hidden width d of those layers."""
    return model.embed_dim if is_meter(model) else int(language_model(model).config.hidden_size)


def attention_outputs(layer: nn.Module) -> list[nn.Module]:
    """The attention output modules of a layer: its self-attention's, and a co-attention layer's cross-attention's."""
    cross = getattr(layer, "crossattention", None)
    return [layer.attention.output] + ([] if cross is None else [cross.output])


def attn_output(layer: nn.Module) -> nn.Module:
    """The attention sublayer's output module (``attention.output``: dense, dropout, LayerNorm)."""
    return layer.attention.output


def ffn_output(layer: nn.Module) -> nn.Module:
    """The feed-forward sublayer's output module (``output``: dense, dropout, LayerNorm)."""
    return layer.output


def attention_projection(layer: nn.Module, name: str) -> nn.Linear:
    """``query`` / ``key`` / ``value`` Linear of a layer's self-attention."""
    if name not in ("query", "key", "value"):
        raise ValueError(f"unknown projection {name!r}; use query, key or value")
    return getattr(layer.attention.self, name)


def set_attention_projection(layer: nn.Module, name: str, module: nn.Module) -> None:
    attention_projection(layer, name)  # validates the name
    setattr(layer.attention.self, name, module)


def _output_forward(self: nn.Module, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
    """Forward of a patched BertSelfOutput / BertOutput (see the module docstring)."""
    h = self.dense(hidden_states)
    if self.apt is not None:
        h = self.apt(input_tensor, h)
    h = self.dropout(h)
    if self.seq_adapter is not None:
        h = h + self.seq_adapter(h)
    out = h + input_tensor
    if self.par_adapter is not None:
        out = out + self.par_adapter(input_tensor)
    out = self.LayerNorm(out)
    if self.post_adapter is not None:
        out = out + self.post_adapter(input_tensor)
    return out


def add_output_branches(out: nn.Module, **branches: MethodModule | None) -> None:
    """Attach modules to the slots ``apt``, ``seq_adapter``, ``par_adapter``, ``post_adapter`` of a BERT output
    module and patch its forward (per instance; deep copies rebind it). ``apt`` is called ``apt(r, h)``, the
    adapters ``adapter(t) -> branch output`` (B×N×d; the residual is added here). A slot already filled
    cannot be filled again; passing None empties it."""
    missing = [k for k in ("dense", "dropout", "LayerNorm") if not hasattr(out, k)]
    if missing:
        raise ValueError(f"{type(out).__name__} lacks {', '.join(missing)}: not a BERT sublayer output module")
    fill_slots(out, OUTPUT_SLOTS, branches, _output_forward)


def output_branch(out: nn.Module, slot: str) -> nn.Module | None:
    """The module in ``slot`` of a BERT output module, or None."""
    return getattr(out, slot, None)
