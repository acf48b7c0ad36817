"""Shared plumbing for methods on post-LN BERT layers (not a method): the layers of kinds whose table says
``layer="bert"`` (the VL pair's language model, METER's co-attention layers; ``models.layout``).

A transformers ``BertLayer`` is post-LN. With ``x`` the layer input (B×N×d)::

    a = LN1(x + Drop(Dense_o(SelfAttn(x))))           # layer.attention.output: BertSelfOutput(ctx, x)
    y = LN2(a + Drop(Dense_2(act(Dense_1 a))))         # layer.output:           BertOutput(ffn_hidden, a)

Both "output" modules get the same input pair (sublayer result ``z``, residual ``r``) and end the sublayer, so
they are where methods attach. ``add_output_branches`` patches one instance so its forward becomes::

    h = Dense(z)
    h = APT(r, h)              # apt:          APT after the attention output dense (official APT BertSelfOutput)
    h = h + Pre(h)             # pre_drop_adapter: an adapter before the dropout (the APT repo's METER adapter)
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

OUTPUT_SLOTS = ("apt", "pre_drop_adapter", "seq_adapter", "par_adapter", "post_adapter")


def _output_forward(self: nn.Module, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
    """Forward of a patched BertSelfOutput / BertOutput (see the module docstring)."""
    h = self.dense(hidden_states)
    if self.apt is not None:
        h = self.apt(input_tensor, h)
    if self.pre_drop_adapter is not None:
        h = h + self.pre_drop_adapter(h)
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
    """Attach modules to the slots ``apt``, ``pre_drop_adapter``, ``seq_adapter``, ``par_adapter``, ``post_adapter`` of a BERT output
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
