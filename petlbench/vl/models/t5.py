"""The T5 vision-language model: a transformers ``T5Model`` (encoder + decoder) reading a frozen timm ViT's tokens.

``VLT5Model`` (backbone kind ``"t5"``) is the model of DVP's T5 experiments (Huang et al. 2023, arXiv 2306.00409;
official ``dvp/modules/t5_module.py``, class ``DVP_T5``). Its plain forward, for every method other than DVP, is
the "all visual tokens" baseline in the shape of the official T5 forward::

    v   = ViT(pixel_values)                     # B×Nv×dv: all tokens of the last block, before the final norm
                                                # (CLIP: after ln_pre, before ln_post; frozen, eval mode, no grad)
    e   = Drop_enc([vis_proj(v) + vis_type ; embed_tokens(input_ids)])   # B×(Nv+T)×d, visual tokens FIRST
    m   = Drop_enc(LN_enc(enc.block[0..L-1](e, mask [1 ; attention_mask])))
    y   = Drop_dec(embed_tokens(decoder_start_token_id))                # B×1×d: ONE decoder token
    y   = Drop_dec(LN_dec(dec.block[0..L-1](y, cross-attending to m with mask [1 ; attention_mask])))
    logits = head(y[:, -1])                     # the last decoder token (official ``infer``: ``[:, -1]``)

Official facts re-implemented (``t5_module.py``):
- ``compute_encoder_output``: token embeddings + encoder dropout, then every encoder block called ON ITS OWN with
  ``position_bias=None`` and the extended (non-causal) text mask, then ``final_layer_norm`` + dropout. A block with
  no relative-attention table then gets a zero bias, so only block 0 has relative positions. This differs from a
  standard ``T5Stack``, which computes block 0's bias once and adds it in every block; the official model trained
  this way, so ``encode`` / ``decode`` do the same.
- ``get_decoder_input``: the decoder reads one token, ``decoder_start_token_id`` embedded by the decoder's
  ``embed_tokens`` (the shared embedding) + decoder dropout; ``infer`` builds its self-attention mask with
  ``get_extended_attention_mask`` of the (non-decoder) ``T5Model``: all ones, NOT causal; the cross-attention mask
  is ``invert_attention_mask`` of the text mask. Decoder blocks are also called one by one with
  ``position_bias=None`` and ``encoder_decoder_position_bias=None`` (``compute_layer``).
- After the decoder blocks: ``final_layer_norm``, decoder dropout, the LAST token ``[:, -1]`` to the classifier.

Masks are additive floats (0 = attend, the dtype's minimum = masked), the official ``invert_attention_mask``
form, which both the eager and the SDPA attention of transformers' T5 add to the scores (with the position bias).

Our choices for the baseline (the official code has no T5 baseline): the fusion layers ``vis_proj`` (dv→d) and
``vis_type`` (d) are new and trainable for every method, as ``VLModel``'s (``petlbench.vl.models.bert``), with BERT's init
N(0, 0.02); T5 has no embedding LayerNorm, so visual tokens get the encoder's embedding dropout only (every T5 block
is pre-norm: its RMS LayerNorm normalises them). Visual tokens come FIRST: T5's relative positions would otherwise
put them at distances that depend on how far the batch's texts are right-padded, and a sample's prediction would
change with the batch it is in; in front, every distance is fixed and padding (masked) only trails.
Only modality ``"both"``. ``forward_features`` returns the decoder's B×N×d final states (N = 1 here; 2 under DVP),
so ``vl_gmacs``'s ``tokens`` is the decoder's length for this kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.layout import Layout
from petlbench.vl.models.pair import VLPair
from petlbench.vl.models.text import T5_TEXT, check_t5_model

INIT_STD = 0.02  # BERT's initializer_range, as VLModel's fusion layers and head (T5 configs have no such key)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """B×N (1 = attend) -> B×1×1×N additive mask: 0 where attended, the dtype's minimum where masked
    (``ModuleUtilsMixin.invert_attention_mask``, as the official code builds its masks)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _hidden(out: Any) -> torch.Tensor:
    """A ``T5Block``'s hidden states (it returns a tuple with its position biases)."""
    return out[0] if isinstance(out, tuple) else out


class VLT5Model(VLPair):
    """T5 VL classifier (see the module docstring). ``forward(inputs) -> logits (B×C)``.

    ``inputs``: ``input_ids`` (B×T long), ``attention_mask`` (B×T, 1 = token, right-padded), ``pixel_values``
    (B×3×H×W, normalised for the ViT); a ``token_type_ids`` entry (BERT-style tokenizers) is ignored.
    """

    kind = "t5"

    def __init__(self, text: nn.Module, vision: nn.Module | None, num_classes: int, modality: str = "both") -> None:
        super().__init__()
        if modality != "both" or vision is None:
            raise UserError(f"T5 pairs run with modality 'both' only (got {modality!r}); drop --modality, or use a "
                            "BERT-family text model for the single-modality baselines")
        check_t5_model(text)
        self.modality = modality
        self.text = text
        self.vision = vision
        self.tokenizer_name = T5_TEXT  # the text side's name (set by ``create_vl_backbone``)
        self.max_text_len: int | None = None  # set by a method whose recipe fixes it (DVP): texts cut and padded to it
        d = int(text.config.d_model)
        self.vis_proj = nn.Linear(vision.embed_dim, d)
        self.vis_type = nn.Parameter(torch.randn(d) * INIT_STD)
        self.head = nn.Linear(d, num_classes)
        for lin in (self.vis_proj, self.head):
            nn.init.normal_(lin.weight, std=INIT_STD)
            nn.init.zeros_(lin.bias)

    # -- pieces of the forward (DVP reuses them: petlbench.methods._t5; the shared surface: VLPair)
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """B×T×d text token embeddings (the shared embedding; no dropout yet)."""
        return self.text.encoder.embed_tokens(input_ids)

    def encode(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The official encoder over B×N×d embeddings with the B×N mask: dropout, every block called on its own
        (``position_bias=None``), final LayerNorm, dropout (``compute_encoder_output``)."""
        enc, bias = self.text.encoder, additive_mask(mask, h.dtype)
        h = enc.dropout(h)
        for block in enc.block:
            h = _hidden(block(h, attention_mask=bias, position_bias=None))
        return enc.dropout(enc.final_layer_norm(h))

    def decoder_start(self, batch_size: int) -> torch.Tensor:
        """B×1×d: the embedded ``decoder_start_token_id`` (T5 convention: the pad id) + decoder dropout
        (``get_decoder_input``)."""
        cfg, dec = self.text.config, self.text.decoder
        start = cfg.decoder_start_token_id if getattr(cfg, "decoder_start_token_id", None) is not None \
            else cfg.pad_token_id
        ids = torch.full((batch_size, 1), int(start), dtype=torch.long, device=dec.embed_tokens.weight.device)
        return dec.dropout(dec.embed_tokens(ids))

    def decode(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor, start: int = 0,
               stop: int | None = None) -> torch.Tensor:
        """Decoder blocks ``start..stop-1`` on B×n×d decoder states, self-attention over all n (all-ones mask, not
        causal), cross-attention to B×M×d ``memory`` under its B×M mask; each block called on its own with no
        position bias passed (``compute_layer``)."""
        self_bias = additive_mask(y.new_ones(y.shape[:2]), y.dtype)
        cross_bias = additive_mask(memory_mask, y.dtype)
        for block in self.text.decoder.block[start:stop]:
            y = _hidden(block(y, attention_mask=self_bias, position_bias=None, encoder_hidden_states=memory,
                              encoder_attention_mask=cross_bias, encoder_decoder_position_bias=None))
        return y

    def decoder_output(self, y: torch.Tensor) -> torch.Tensor:
        """The decoder's final LayerNorm + dropout (``infer``, after the blocks)."""
        dec = self.text.decoder
        return dec.dropout(dec.final_layer_norm(y))

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """B×1×d final decoder states of the all-visual-tokens baseline (module docstring)."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        v = self.vis_proj(self.visual_features(inputs["pixel_values"])) + self.vis_type
        mask = torch.cat([mask.new_ones(v.shape[:2]), mask], 1)
        memory = self.encode(torch.cat([v, self.embed(ids)], 1), mask)
        return self.decoder_output(self.decode(self.decoder_start(ids.shape[0]), memory, mask))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.forward_features(inputs)[:, -1])  # the last decoder token


# kind "t5": DVP's T5 pairs; the blocks are the decoder's (DVP's insertion candidates; its plumbing, ``methods._t5``,
# knows the T5 sublayers); full fine-tuning adapts the T5 model; T5 has no bias terms
LAYOUT = Layout("t5", layer="t5", blocks=lambda m: m.text.decoder.block, width=lambda m: int(m.text.config.d_model),
                language_model=lambda m: m.text, biases=False, adaptable=lambda m: m.text)
