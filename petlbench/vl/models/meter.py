"""METER (Dou et al., CVPR 2022, arXiv 2111.02387): a vision-language PRETRAINED two-stream model with
co-attention, backbone kind ``"meter"``, the second model APT and DAS were published on.

The structure is the official METER code's (github zdou0830/METER, ``meter/modules/meter_module.py``,
``METERTransformerSS``), with its attribute names, so the official checkpoint
(``meter_clip16_288_roberta_pretrain.ckpt``) loads through ``OFFICIAL_KEYS`` only where the CLIP image encoder's
names differ from timm's::

    t = text_transformer(input_ids)                        # RoBERTa-base, all 12 layers (frozen)
    v = vit_model(image)                                   # CLIP ViT-B/16 without its last block (METER's
                                                           # clip_model.Transformer builds layers - 1 = 11 blocks),
                                                           # ln_pre, all tokens after ln_post (frozen)
    x = cross_modal_text_transform(t)  + token_type_embeddings(0)
    y = cross_modal_image_transform(v) + token_type_embeddings(1)
    for l in 0..5:  x, y = cross_modal_text_layers[l](x, y), cross_modal_image_layers[l](y, x)
    logits = head([cross_modal_text_pooler(x) ; cross_modal_image_pooler(y)])

Each co-attention layer (``CrossLayer``, official ``BertCrossLayer``) is post-LN BERT: self-attention, cross-attention
to the other stream, feed-forward, each ``LN(x + Drop(Dense(.)))``; dropout 0.1 (official ``drop_rate``). The head is
METER's ``vqa_classifier`` / ``snli_classifier``: Linear(2d, 2d) - LayerNorm - GELU - Linear(2d, C).

What trains with every method (``TRAINS_WITH_EVERY_METHOD``): the head, both poolers and the modality embedding, the
official APT / DAS METER code's ``trainable = ["classifier", "pooler", "token_type_embeddings", ...]`` (which also
excludes anything inside ``text_transformer`` and ``vit_model``).

Input: the APT and DAS VQA scripts' setting, images 384×384 (``image_size=384``; 24×24 = 576 patches + [class]),
texts cut at and padded to 50 tokens (``task_finetune_vqa_clip_bert``: ``max_text_len = 50``), CLIP's mean / std.
Pretrained weights come only from the official checkpoint file (``--weights``); METER has no hub checkpoint.
``--no-pretrained`` builds it at random (``inspect``). Its tokenizer is RoBERTa-base's (hub ``roberta-base``).

The micro METER ``petl_meter_micro_scenes`` (offline; ``MICRO_SPEC``) is this structure on the offline pair's two
encoders: the packaged all-MiniLM-L6-v2 (d 384, its tokenizer, texts padded to the batch's longest) and the bundled
scene-pretrained micro ViT (32×32, patch 4, d 128, 6 blocks; all tokens of its last block, without its final norm, as
the pair reads them), with 6 + 6 co-attention layers of width 128 (4 heads). METER starts from pretrained unimodal
encoders (CLIP, RoBERTa) and learns the co-attention layers in VL pretraining; ``petlbench pretrain --data
vl-scenes-meter`` does that here (``vl.vlp_pretrain``) with both encoders frozen (ours: METER also trains them, at a
fifth of the fusion's lr), so its file holds only the rest (co-attention layers, transforms, poolers, modality
embedding) and the encoders come from where the pair's come from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.heads import freeze_backbone, vilt_head
from petlbench.models.layout import Layout, separate_qkv
from petlbench.vl.models.pair import example_batch

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
TRAINS_WITH_EVERY_METHOD = ("cross_modal_text_pooler", "cross_modal_image_pooler", "token_type_embeddings")
TEXT_MODEL = "roberta-base"  # official named config text_roberta: tokenizer = "roberta-base"
# RoBERTa-base's architecture (hub config of roberta-base), to build it offline at random
ROBERTA_BASE = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2)
# (official name, our name) of the CLIP image encoder's tensors, ``{i}`` = block index: one declaration, both ways
OFFICIAL_KEYS = (
    ("vit_model.visual.conv1.weight", "vit_model.patch_embed.proj.weight"),
    ("vit_model.visual.class_embedding", "vit_model.cls_token"),
    ("vit_model.visual.positional_embedding", "vit_model.pos_embed"),
    ("vit_model.visual.ln_pre.", "vit_model.norm_pre."),
    ("vit_model.visual.ln_post.", "vit_model.norm."),
    ("vit_model.visual.transformer.resblocks.{i}.ln_1.", "vit_model.blocks.{i}.norm1."),
    ("vit_model.visual.transformer.resblocks.{i}.ln_2.", "vit_model.blocks.{i}.norm2."),
    ("vit_model.visual.transformer.resblocks.{i}.attn.in_proj_", "vit_model.blocks.{i}.attn.qkv."),
    ("vit_model.visual.transformer.resblocks.{i}.attn.out_proj.", "vit_model.blocks.{i}.attn.proj."),
    ("vit_model.visual.transformer.resblocks.{i}.mlp.c_fc.", "vit_model.blocks.{i}.mlp.fc1."),
    ("vit_model.visual.transformer.resblocks.{i}.mlp.c_proj.", "vit_model.blocks.{i}.mlp.fc2."),
)


@dataclass(frozen=True)
class MeterSpec:
    """METER-CLIP16-RoBERTa at the APT / DAS VQA setting (official config.py + the scripts' overrides)."""

    hidden_size: int = 768
    num_top_layer: int = 6  # co-attention layers per stream
    num_heads: int = 12
    mlp_ratio: int = 4
    image_size: int = 384  # APT / DAS vqa scripts: image_size=384
    patch_size: int = 16
    vision_layers: int = 11  # CLIP ViT-B/16's 12 blocks minus the last (clip_model.Transformer: layers - 1)
    max_text_len: int | None = 50  # task_finetune_vqa_clip_bert (None: padded to the batch's longest text)
    drop_rate: float = 0.1  # config.py drop_rate
    layer_norm_eps: float = 1e-12  # official bert_config: BertConfig's default
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


class _Attention(nn.Module):
    """BERT attention with the official key names: ``self.query/key/value`` + ``output`` (BertSelfOutput:
    dense, dropout, LayerNorm). Reads keys / values from ``context`` (itself for self-attention)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers.models.bert.modeling_bert import BertSelfOutput

        d, self.heads = config.hidden_size, config.num_attention_heads
        self.self = nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.self, name, nn.Linear(d, d))
        self.self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.output = BertSelfOutput(config)
        # p×d tokens a method prepends to the keys / values (conventional prompt tuning, ``apt`` prompting=conventional)
        self.register_parameter("context_prompt", None)

    def forward(self, h: torch.Tensor, context: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        s, (b, n, d) = self.self, h.shape
        if self.context_prompt is not None:  # official meter_module_prompt.py: cat([prompts, other stream])
            prompt = self.context_prompt.to(context.dtype).expand(b, -1, -1)
            context = torch.cat([prompt, context], 1)
            keep = torch.cat([keep.new_ones(b, 1, 1, prompt.shape[1]), keep], -1)
        split = lambda x: x.view(b, x.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(s.query(h)), split(s.key(context)), split(s.value(context))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        probs = s.dropout(scores.masked_fill(~keep, torch.finfo(scores.dtype).min).softmax(-1))
        return self.output((probs @ v).transpose(1, 2).reshape(b, n, d), h)


class CrossLayer(nn.Module):
    """Official ``BertCrossLayer``: ``a = SelfAttn(x)``, ``c = CrossAttn(a, other)``, ``out = FFN(c)``, each post-LN."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers.models.bert.modeling_bert import BertIntermediate, BertOutput

        self.attention, self.crossattention = _Attention(config), _Attention(config)
        self.intermediate, self.output = BertIntermediate(config), BertOutput(config)

    def forward(self, x: torch.Tensor, other: torch.Tensor, keep: torch.Tensor, other_keep: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, x, keep)
        c = self.crossattention(a, other, other_keep)
        return self.output(self.intermediate(c), c)


class CoLayers:
    """The 2 × ``num_top_layer`` co-attention layers as one sequence (text stream first, then image), indexable and
    assignable in place: what methods treat as METER's blocks (DAS's official candidates: 0-5 text, 6-11 image)."""

    def __init__(self, model: METER) -> None:
        self.lists = (model.cross_modal_text_layers, model.cross_modal_image_layers)

    def _at(self, i: int) -> tuple[nn.ModuleList, int]:
        n = len(self.lists[0])
        return (self.lists[0], i) if i < n else (self.lists[1], i - n)

    def __len__(self) -> int:
        return sum(len(x) for x in self.lists)

    def __getitem__(self, i: int) -> nn.Module:
        lst, j = self._at(i)
        return lst[j]

    def __setitem__(self, i: int, module: nn.Module) -> None:
        lst, j = self._at(i)
        lst[j] = module

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class METER(nn.Module):
    """METER with a classification head (see the module docstring); ``forward(inputs) -> logits``."""

    kind = "meter"

    def __init__(self, spec: MeterSpec, num_classes: int, text: nn.Module, vision: nn.Module | None = None) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer
        from transformers import BertConfig

        from petlbench.vl.models.vilt import Pooler, _init_weights

        d, self.spec = spec.hidden_size, spec
        self.text_transformer = text
        self.vit_model = vision if vision is not None else VisionTransformer(
            img_size=spec.image_size, patch_size=spec.patch_size, embed_dim=d, depth=spec.vision_layers,
            num_heads=spec.num_heads, num_classes=0, global_pool="", pre_norm=True, act_layer="quick_gelu",
            norm_layer=nn.LayerNorm)  # CLIP: bias-free patch conv (pre_norm), ln_pre, QuickGELU, LayerNorm eps 1e-5
        cross = BertConfig(hidden_size=d, num_attention_heads=spec.num_heads, intermediate_size=d * spec.mlp_ratio,
                           hidden_dropout_prob=spec.drop_rate, attention_probs_dropout_prob=spec.drop_rate,
                           layer_norm_eps=spec.layer_norm_eps)
        self.cross_modal_text_transform = nn.Linear(int(text.config.hidden_size), d)
        self.cross_modal_image_transform = nn.Linear(self.vit_model.embed_dim, d)
        self.token_type_embeddings = nn.Embedding(2, d)
        self.cross_modal_text_layers = nn.ModuleList(CrossLayer(cross) for _ in range(spec.num_top_layer))
        self.cross_modal_image_layers = nn.ModuleList(CrossLayer(cross) for _ in range(spec.num_top_layer))
        self.cross_modal_text_pooler, self.cross_modal_image_pooler = Pooler(d), Pooler(d)
        for name, m in self.named_children():
            if name not in ("text_transformer", "vit_model"):
                m.apply(_init_weights)  # official objectives.init_weights
        self.head = vilt_head(2 * d, num_classes, hidden=2 * d)  # official vqa_classifier: Linear(2d, 2d) first
        self.tokenizer_name, self.max_text_len = TEXT_MODEL, spec.max_text_len
        self.register_parameter("token4classifier", None)  # ``add_classifier_token``

    @property
    def embed_dim(self) -> int:
        return self.spec.hidden_size

    def co_layers(self) -> CoLayers:
        return CoLayers(self)

    def get_classifier(self) -> nn.Module:
        return self.head

    def freeze(self) -> METER:
        """Frozen but for the head and ``TRAINS_WITH_EVERY_METHOD``."""
        return freeze_backbone(self, also=[getattr(self, n) for n in TRAINS_WITH_EVERY_METHOD])

    def add_classifier_token(self) -> None:
        """The official learnable classifier token (``token4classifier``, meter_module_apt.py and the DAS repo's
        meter_module_train.py): the text encoder's embedding of its first token (RoBERTa's <s>, id 0; the micro
        METER's MiniLM: [CLS], 101), which replaces the text stream's first state entering the co-attention layers.
        On METER-B both are 768 wide; on the micro METER the embedding (384) passes the text transform first (ours)."""
        emb = self.text_transformer.embeddings
        first = self.text_transformer.config.bos_token_id
        ids = torch.tensor([[101 if first is None else first]], device=emb.word_embeddings.weight.device)
        with torch.no_grad():
            token = emb(input_ids=ids)  # the encoder as loaded (from_pretrained: eval mode, no dropout)
            if token.shape[-1] != self.spec.hidden_size:
                token = self.cross_modal_text_transform(token)
        self.token4classifier = nn.Parameter(token)

    def streams(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(text tokens, image tokens, their B×1×1×N keep masks) entering the co-attention layers."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        t = self.text_transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        v = self.vit_model.forward_features(inputs["pixel_values"])
        x = self.cross_modal_text_transform(t)
        if self.token4classifier is not None:  # official infer: after the transform, before the token types
            x = torch.cat([self.token4classifier.to(x.dtype).expand(len(x), -1, -1), x[:, 1:]], 1)
        x = x + self.token_type_embeddings(torch.zeros_like(ids))
        y = self.cross_modal_image_transform(v) + self.token_type_embeddings.weight[1]
        keep_y = torch.ones(y.shape[0], 1, 1, y.shape[1], dtype=torch.bool, device=y.device)
        return x, y, mask.bool()[:, None, None, :], keep_y

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """B×(T+1+N)×d: both streams after the co-attention layers, text first, in ViLT's layout."""
        x, y, kx, ky = self.streams(inputs)
        for text_layer, image_layer in zip(self.cross_modal_text_layers, self.cross_modal_image_layers, strict=True):
            x, y = text_layer(x, y, kx, ky), image_layer(y, x, ky, kx)
        return torch.cat([x, y], 1)

    def pool(self, states: torch.Tensor, text_len: int) -> torch.Tensor:
        """METER's ``cls_feats``: the text pooler on [CLS] beside the image pooler on the image's [class] token."""
        return torch.cat([self.cross_modal_text_pooler(states[:, 0]), self.cross_modal_image_pooler(states[:, text_len])], -1)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.pool(self.forward_features(inputs), inputs["input_ids"].shape[1]))

    def train(self, mode: bool = True) -> METER:
        super().train(mode)
        self.vit_model.eval()  # CLIP has no dropout; frozen (its parameters never train but under ``full``)
        return self

    def data_config(self) -> dict[str, Any]:
        s = self.spec.image_size
        fixed = {"max_text_len": self.max_text_len} if self.max_text_len else {}
        return {"input_size": (3, s, s), "mean": self.spec.mean, "std": self.spec.std, "interpolation": "bicubic",
                "crop_pct": 1.0, "tokenizer": self.tokenizer_name, "modality": "both", **fixed}

    def example_inputs(self, text_len: int | None = None, batch_size: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
        """A random full-length batch (no padding; no special token ids): ``text_len`` tokens (default
        ``max_text_len``, else 16), one image."""
        s = self.spec.image_size
        return example_batch(int(self.text_transformer.config.vocab_size), text_len or self.max_text_len or 16,
                             (3, s, s), batch_size, seed, next(self.parameters()).device, first_id=3)


# ------------------------------------------------------------------------------------------ weights


def _key_pairs(depth: int) -> list[tuple[str, str]]:
    out = []
    for official, ours in OFFICIAL_KEYS:
        out += [(official.format(i=i), ours.format(i=i)) for i in range(depth)] if "{i}" in official \
            else [(official, ours)]
    return out


def _rename(key: str, pairs: list[tuple[str, str]], reverse: bool = False) -> str | None:
    for official, ours in pairs:
        src, dst = (ours, official) if reverse else (official, ours)
        if key == src or (src.endswith((".", "_")) and key.startswith(src)):
            return dst + key[len(src):]
    return None


def _shape(key: str, value: torch.Tensor, ours: bool) -> torch.Tensor:
    """CLIP keeps the class embedding as (d) and the position embedding as (N, d); timm as (1, 1, d), (1, N, d)."""
    if key.endswith(("cls_token", "class_embedding")):
        return value.reshape(1, 1, -1) if ours else value.reshape(-1)
    if key.endswith(("pos_embed", "positional_embedding")):
        return value.reshape(1, *value.shape[-2:]) if ours else value.reshape(value.shape[-2:])
    return value


def from_official(state: Mapping[str, torch.Tensor], model: METER) -> dict[str, torch.Tensor]:
    """An official METER state dict in this module's keys: the CLIP image encoder renamed (``OFFICIAL_KEYS``), its
    position embedding resized to the model's grid (bicubic, as METER's ``adapt_position_encoding``); every other
    module keeps its name. Keys of unused parts (CLIP's text tower, pretraining heads) are dropped."""
    pairs = _key_pairs(model.spec.vision_layers)
    own = model.state_dict()
    out = {}
    for k, v in state.items():
        name = _rename(k, pairs) if k.startswith("vit_model.") else k
        if name is None or name not in own:
            continue
        v = _shape(name, v, ours=True)
        if name.endswith("pos_embed") and v.shape != own[name].shape:
            v = adapt_position_encoding(v, model.spec.image_size // model.spec.patch_size)
        out[name] = v
    return out


def adapt_position_encoding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """A 1×(1+G²)×d position embedding resized to ``grid``², as METER's ``clip_model.adapt_position_encoding``: the
    class position kept, the patch grid through ``F.interpolate(mode="bicubic")`` (align_corners False, no
    antialiasing; timm's ``resample_abs_pos_embed`` antialiases, which differs by up to 0.015 on the official 288 ->
    384 px resize)."""
    import torch.nn.functional as F

    before, d = int(math.isqrt(pos_embed.shape[1] - 1)), pos_embed.shape[-1]
    patches = pos_embed[0, 1:].reshape(before, before, d).permute(2, 0, 1)[None]
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic")[0].permute(1, 2, 0).reshape(-1, d)
    return torch.cat([pos_embed[0, :1], patches])[None]


def to_official(model: METER) -> dict[str, torch.Tensor]:
    """The model's backbone in the official checkpoint's keys (what ``from_official`` reads back)."""
    pairs = _key_pairs(model.spec.vision_layers)
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            continue
        name = _rename(k, pairs, reverse=True) if k.startswith("vit_model.") else k
        if name is not None:
            out[name] = _shape(k, v, ours=False)
    return out


def roberta() -> nn.Module:
    """RoBERTa-base's architecture at random (METER's checkpoint holds its trained text encoder)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("roberta", **ROBERTA_BASE)
    return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation="eager")


def create_meter(name: str, num_classes: int, *, pretrained: bool = True, weights: str | None = None,
                 img_size: int | None = None) -> tuple[METER, dict[str, Any]]:
    """METER (see the module docstring), frozen but for what trains with every method."""
    from petlbench.models.weights import file_sha256, load_state_dict_file
    from petlbench.vl.models.vilt import load_backbone_state

    if name == MICRO:
        if img_size is not None:
            raise UserError(f"{MICRO} takes no img_size (its image encoder is {MICRO_VISION}, {MICRO_SPEC.image_size}"
                            f"x{MICRO_SPEC.image_size}); omit --img-size")
        model, src, sha = _create_micro(num_classes, pretrained, weights)
        return model.freeze(), {"model": name, "weights_source": src, "weights_sha256": sha}
    if name != "meter":
        raise UserError(f"unknown METER model '{name}'; use --model meter (pretrained weights: --weights FILE)")
    if pretrained and weights is None:
        raise UserError("METER's pretrained weights are the official checkpoint file; pass --weights "
                        "meter_clip16_288_roberta_pretrain.ckpt (github.com/zdou0830/METER) or --no-pretrained")
    spec = MeterSpec(image_size=img_size or MeterSpec.image_size)
    model = METER(spec, num_classes, roberta())
    src, sha = "random-init", ""
    if weights is not None:
        state = from_official(load_state_dict_file(weights), model)
        load_backbone_state(model, state, f"weights file '{weights}'")
        src, sha = f"file:{Path(weights).name}", file_sha256(Path(weights))
    return model.freeze(), {"model": name, "weights_source": src, "weights_sha256": sha}


MICRO = "petl_meter_micro_scenes"
MICRO_VISION = "petl_vit_micro_scenes"
# METER's structure at micro size on the offline pair's encoders: all-MiniLM-L6-v2 (d 384) and the scene-pretrained
# micro ViT (32x32, patch 4, d 128, 6 blocks); 6 + 6 co-attention layers of width 128 (4 heads) (ours)
MICRO_SPEC = MeterSpec(hidden_size=128, num_heads=4, image_size=32, patch_size=4, vision_layers=6, max_text_len=None,
                       mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def micro_meter(num_classes: int, pretrained: bool = True) -> tuple[METER, str]:
    """The micro METER with both encoders as the offline pair's (pretrained, or at random) and the rest random;
    and the encoders' provenance."""
    from petlbench.vl.models.bert import load_vision_encoder
    from petlbench.vl.models.text import OFFLINE_TEXT, load_text_encoder

    text, text_src, _ = load_text_encoder(OFFLINE_TEXT, pretrained)
    vision, info = load_vision_encoder(MICRO_VISION, pretrained=pretrained)
    model = METER(MICRO_SPEC, num_classes, text, vision)
    model.tokenizer_name = OFFLINE_TEXT
    return model, f"text={text_src};vision={info['weights_source']}"


ENCODERS = ("text_transformer.", "vit_model.")


def _create_micro(num_classes: int, pretrained: bool, weights: str | None) -> tuple[METER, str, str]:
    """The micro METER (``micro_meter``) with its fusion from the bundled file under ``petlbench/assets`` or
    ``weights`` (a file of the non-encoder tensors, as ``petlbench pretrain`` saves them), or at random."""
    from petlbench.models.weights import file_sha256, load_state_dict_file, weights_or_bundled
    from petlbench.vl.models.vilt import load_backbone_state

    model, encoders = micro_meter(num_classes, pretrained)
    if not (pretrained or weights):
        return model, f"random-init;{encoders}", ""
    path = weights_or_bundled(weights, f"{MICRO}.safetensors", MICRO)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODERS)}
    load_backbone_state(model, {**load_state_dict_file(path), **own}, f"weights file '{path}'")
    return model, f"file:{path.name};{encoders}", file_sha256(path)


# kind "meter": its 12 co-attention layers (text stream 0-5, image stream 6-11), each a post-LN BERT layer with a
# self-attention, a cross-attention and a feed-forward sublayer
LAYOUT = Layout("meter", layer="bert", blocks=lambda m: m.co_layers(), width=lambda m: m.spec.hidden_size,
                attention_outputs=lambda layer: [layer.attention.output, layer.crossattention.output],
                ffn_outputs=lambda layer: [layer.output],
                projections=lambda layer: separate_qkv(layer.attention, layer.crossattention),
                cross_attentions=lambda layer: [layer.crossattention],
                classifier_token=lambda m: m.add_classifier_token())
