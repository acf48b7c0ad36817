"""Shared plumbing for methods on the T5 VL model (``petlbench.vl.models.t5.VLT5Model``, the kind whose table says
``layer="t5"``; not a method): where its blocks are, DVP's T5 forward, and adapters on the T5 sublayers.

A transformers ``T5Block`` is pre-norm (RMS LayerNorm without bias). Its sublayers, ``block.layer[j]``::

    h = h + Drop(SelfAttention(LN h))                 # layer[0]: T5LayerSelfAttention
    h = h + Drop(EncDecAttention(LN h, memory))       # layer[1]: T5LayerCrossAttention (decoder blocks only)
    h = h + Drop(DenseReluDense(LN h))                # layer[-1]: T5LayerFF

``add_sublayer_adapters`` patches each of them (per instance, ``fill_slots``) so that its forward becomes
``h = h + Drop(y + Seq(y))`` with ``y`` the sublayer's output: the official DVP-adp placement
(``dvp/modules/t5_module.py``: ``compute_adapter_encoder_output`` applies ``encoder_adapter[2i]`` to the
self-attention output and ``encoder_adapter[2i + 1]`` to the ``DenseReluDense`` output; ``compute_adapter_layer``
applies ``decoder_adapter[3i]``, ``[3i + 1]``, ``[3i + 2]`` to the self-attention, cross-attention and FFN outputs;
each ``Adapter`` returns ``y + Up(ReLU(Down y))`` and the block adds ``dropout`` of that to its input). Backbone
parameter names do not change; the new ones are e.g. ``text.decoder.block.3.layer.1.seq_adapter.down.weight``.

``dvp_features`` is the official ``DVP_T5.infer`` (see its docstring). DVP's insertion candidates K are the decoder
blocks (``decoder_blocks``; official ``layer_alphas = zeros(12)``, one ``Cross_Attention`` / ``token_type_embeddings``
option per block of t5-base's 12-block decoder).

Trainable parameters on t5-base + CLIP ViT-B/16 without the classifier (tests/methods/test_dvp_t5.py):
- DVP module: ``Cross_Attention`` q/k/v/merge 4·(768² + 768) = 2,362,368 + ``token_type_embeddings`` 2·768 = 1,536
  -> 2,363,904 (k/v read the 768-wide CLIP tokens);
- full (no ``use_adapter``): the whole ``T5Model``, 222,903,552 (shared embedding 32128·768 = 24,674,304,
  encoder 84,954,240, decoder 113,275,008) -> 225,267,456;
- adp (``use_adapter``): 60 adapters (2·12 encoder + 3·12 decoder) of 2·768·96 + 96 + 768 = 148,320 -> 8,899,200,
  plus every parameter whose name contains 'layer_norm' (``layer_norms``: 2·12 + 1 encoder and 3·12 + 1 decoder RMS
  norms of 768 -> 47,616), plus the DVP module -> 11,310,720.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.methods._modules import fill_slots
from petlbench.methods.base import MethodModule

SLOTS = ("seq_adapter",)


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a T5 VL model, in order (DVP's insertion candidates K; the t5 kind's ``blocks``)."""
    return model.text.decoder.block


def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    return model.text.encoder.block


def sublayers(model: nn.Module) -> Iterator[nn.Module]:
    """Every sublayer of every block: 2 per encoder block, then 3 per decoder block."""
    for block in [*encoder_blocks(model), *decoder_blocks(model)]:
        yield from block.layer


def layer_norms(model: nn.Module) -> list[nn.Module]:
    """Every LayerNorm of the T5's encoder and decoder: one per sublayer and each stack's ``final_layer_norm``
    (what the official adapter variant leaves trainable: parameter names containing 'layer_norm')."""
    text = model.text
    return [*(s.layer_norm for s in sublayers(model)), text.encoder.final_layer_norm, text.decoder.final_layer_norm]


# ------------------------------------------------------------------------------------------ adapters


def _adapt(self: nn.Module, y: torch.Tensor) -> torch.Tensor:
    return y if self.seq_adapter is None else y + self.seq_adapter(y)


def _self_attention_forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask=None, position_bias=None,
                            cache=None, **kwargs: Any):
    """``T5LayerSelfAttention.forward`` with the adapter slot (module docstring)."""
    out, bias, weights = self.SelfAttention(self.layer_norm(hidden_states), mask=attention_mask,
                                            position_bias=position_bias, cache=cache, **kwargs)
    return hidden_states + self.dropout(_adapt(self, out)), bias, weights


def _cross_attention_forward(self: nn.Module, hidden_states: torch.Tensor, key_value_states: torch.Tensor,
                             attention_mask=None, position_bias=None, cache=None, **kwargs: Any):
    """``T5LayerCrossAttention.forward`` with the adapter slot."""
    out, bias, weights = self.EncDecAttention(self.layer_norm(hidden_states), mask=attention_mask,
                                              key_value_states=key_value_states, position_bias=position_bias,
                                              cache=cache, **kwargs)
    return hidden_states + self.dropout(_adapt(self, out)), bias, weights


def _ff_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """``T5LayerFF.forward`` with the adapter slot."""
    return hidden_states + self.dropout(_adapt(self, self.DenseReluDense(self.layer_norm(hidden_states))))


def _forward_of(sublayer: nn.Module) -> Callable:
    for attr, forward in (("SelfAttention", _self_attention_forward), ("EncDecAttention", _cross_attention_forward),
                          ("DenseReluDense", _ff_forward)):
        if hasattr(sublayer, attr):
            return forward
    raise ValueError(f"{type(sublayer).__name__} is not a T5 sublayer (SelfAttention, EncDecAttention, DenseReluDense)")


def add_sublayer_adapters(model: nn.Module, make: Callable[[], MethodModule | None]) -> None:
    """One adapter ``make()`` on the output of every T5 sublayer: 2 per encoder block, 3 per decoder block (the
    official DVP-adp placement, module docstring); ``make`` returning None empties the slots."""
    for sub in sublayers(model):
        fill_slots(sub, SLOTS, {"seq_adapter": make()}, _forward_of(sub))


def remove_sublayer_adapters(model: nn.Module) -> None:
    """Empty every sublayer's adapter slot (the model then computes what it did before the adapters)."""
    add_sublayer_adapters(model, lambda: None)


# ------------------------------------------------------------------------------------------ DVP


def pad_text(ids: torch.Tensor, mask: torch.Tensor, length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad B×T ids (with ``pad_id``) and mask (with 0) to at least ``length`` tokens."""
    extra = max(0, length - ids.shape[1])
    return F.pad(ids, (0, extra), value=pad_id), F.pad(mask, (0, extra), value=0)


def dvp_features(model: nn.Module, inputs: Mapping[str, torch.Tensor], k: int, prompt: nn.Module) -> torch.Tensor:
    """DVP on a T5 VL model, inserting at decoder block ``k`` with ``prompt`` (``methods.dvp.VisualPrompt``: its
    ``cross_attn(query, tokens)`` and 2-entry ``token_type``) -> B×2×d final decoder states, prompt first.

    The official ``DVP_T5.infer`` (``t5_module.py``), step by step:
    - texts right-padded to ``model.max_text_len`` tokens when a recipe set it (DVP's ``max_text_len``: the
      official 16, ``base_dataset.get_text`` pads to it; the data already comes cut and padded to it, this pads
      shorter inputs, e.g. ``inspect --text-len 8``, as the run would);
    - the encoder runs over the text only, all blocks (``compute_encoder_output``; with adapters
      ``compute_adapter_encoder_output``); no visual token and no fusion layer enters the T5;
    - the decoder reads one token, the embedded ``decoder_start_token_id`` + dropout (``get_decoder_input``), through
      blocks 0..K-1, cross-attending to the encoder output under the text mask;
    - at block K: query = the mean of the encoder output over ALL text positions, padding included
      (``self.pooling``, an ``AdaptiveAvgPool1d(1)``); prompt = CrossAttn(query, visual tokens) + E_type[1]; the
      decoder state + E_type[0]; ``cat([prompt, decoder state])``; blocks K.. run on these 2 tokens with an all-ones
      self-attention mask (``merge_attention_mask``);
    - the decoder's final LayerNorm and dropout; the classifier reads the last token (``[:, -1]``: the decoder
      token, not the prompt).
    """
    pad_id = int(model.text.config.pad_token_id or 0)
    ids, mask = pad_text(inputs["input_ids"], inputs["attention_mask"], model.max_text_len or 0, pad_id)
    memory = model.encode(model.embed(ids), mask)
    y = model.decode(model.decoder_start(ids.shape[0]), memory, mask, 0, k)
    query = memory.mean(1, keepdim=True)  # B×1×d
    p = prompt.cross_attn(query, model.visual_features(inputs["pixel_values"])) + prompt.token_type.weight[1]
    y = torch.cat([p, y + prompt.token_type.weight[0]], 1)
    return model.decoder_output(model.decode(y, memory, mask, k))
