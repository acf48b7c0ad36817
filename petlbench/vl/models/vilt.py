"""ViLT (Kim et al., ICML 2021, arXiv 2102.03334): a vision-language PRETRAINED single-stream transformer,
backbone kind ``"vilt"``, the model APT and DAS were published on.

The structure is the official ViLT code's (``vilt/modules/vilt_module.py``, kept by the official APT and DAS code,
``ViLTransformerSS``), with its attribute names, so an official checkpoint loads without a key map::

    t = text_embeddings(input_ids) + token_type_embeddings(0)     # BertEmbeddings: word + position (max_text_len)
                                                                  # + segment, LayerNorm, dropout
    v = transformer._pos_embed(transformer.patch_embed(image))    # ViT patches + [class] token + position, dropout
    v = v + token_type_embeddings(1)                              # modality embedding
    h = transformer.blocks([t ; v], mask [text mask ; 1])         # pre-norm timm ViT blocks (ViLT-B/32: 12 of d=768)
    logits = head(pooler(transformer.norm(h)[:, 0]))              # pooler: Linear + tanh on the text [CLS]

``transformer`` is a timm ``VisionTransformer`` whose blocks are the official ViLT's (pre-norm, qkv bias, GELU
MLP; ViLT builds them from timm's ViT-B/32). ``model.blocks`` is ``transformer.blocks``, so every method with a
ViT path finds its insertion points where the official APT/DAS ViLT code puts them (APT on each block's attention
output, DAS skipping whole blocks, adapters / LoRA / BitFit as on a ViT). The head is ViLT's VQA classifier
(``models.heads.vilt_head``), also used for entailment (ViLT has no SNLI-VE head; METER's ``snli_classifier`` has
this structure).

What trains with every method (``ViLT.freeze``): the head, the pooler and the modality (token-type) embedding,
the official APT and DAS ViLT code's ``trainable = ["classifier", "pooler", "token_type_embeddings", ...]``.
Dropout: 0.1 on the text embeddings, the position-embedded patches, the attention projection and the MLP, none on
attention probabilities (official ``config.py`` ``drop_rate = 0.1``; its ViT's ``attn_drop_rate`` 0), trained as
the official LightningModule trains (``frozen_mode = "train"``). transformers' ``ViltConfig`` defaults to 0.0
(inference); a model built from it gets the official 0.1.

Input (deviation): images are resized to a fixed square (``image_size``, 384 for ViLT-B/32: 12×12 = 144 patches);
the official VQA pipeline resizes the shorter side to 384 (longer ≤ 640) and masks padding, up to 240 patches.
Texts are cut at and padded to ``max_text_len`` (40) as the official collate does.

Tokenizer: a hub or directory checkpoint's own; otherwise (random, ``--weights``) bert-base-uncased's WordPiece
vocabulary as ViLT uses it, read offline from the packaged all-MiniLM-L6-v2 tokenizer (the same 30,522 ids).

Model names: ``vilt`` = ViLT-B/32 (``ViltConfig()`` defaults; pretrained weights: the hub checkpoint
``dandelin/vilt-b32-mlm``, the official ``vilt_200k_mlm_itm.ckpt`` converted by transformers);
``vilt:SOURCE`` = another transformers ViLT checkpoint (hub id or local directory). ``--weights FILE`` loads the
official ViLT ``.ckpt`` (its ``state_dict`` has this module's keys) or a state dict saved from this module.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.heads import freeze_backbone, vilt_head
from petlbench.models.layout import Layout, fused_qkv
from petlbench.vl.models.pair import example_batch
from petlbench.vl.models.text import OFFLINE_VLP as MICRO  # the bundled micro VL-pretrained ViLT

VILT_HUB = "dandelin/vilt-b32-mlm"  # transformers' conversion of the official vilt_200k_mlm_itm.ckpt
VILT_MEAN = VILT_STD = (0.5, 0.5, 0.5)  # official ViLT transforms: inception_normalize (x - 0.5) / 0.5
TRAIN_DROPOUT = 0.1  # official ViLT config.py: drop_rate = 0.1 (text embeddings, patches, projection, MLP)
# + the head: the official APT / DAS ViLT ``trainable`` substrings "pooler" and "token_type_embeddings", which also
# match the text embeddings' segment embedding (vilt_module_*.py: ``trainable=["classifier", "pooler",
# "token_type_embeddings", "rank_output"] + [...]``)
TRAINS_WITH_EVERY_METHOD = ("pooler", "token_type_embeddings", "text_embeddings.token_type_embeddings")
CLS_ID = 101  # [CLS] of bert-base-uncased's vocabulary (ViLT's, and the micro ViLT's all-MiniLM-L6-v2)
ROWS = "text_embeddings.word_embeddings.rows"  # its file keeps only these rows of the word embeddings


@dataclass(frozen=True)
class ViLTSpec:
    """The architecture of a ViLT; the defaults are ViLT-B/32 (transformers ``ViltConfig()``)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 384
    patch_size: int = 32
    max_text_len: int = 40
    layer_norm_eps: float = 1e-6  # the transformer's LayerNorms: official vision_transformer.py, eps=1e-6
    drop_rate: float = TRAIN_DROPOUT
    text_layer_norm_eps: float = 1e-12  # the text embeddings' LayerNorm: official BertEmbeddings(BertConfig(...))

    @classmethod
    def from_hf(cls, config: Any) -> ViLTSpec:
        """The spec of a transformers ``ViltConfig`` (dropout: the official training value, see the docstring)."""
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        patch = config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0]
        return cls(config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.intermediate_size, size, patch, config.max_position_embeddings,
                   text_layer_norm_eps=config.layer_norm_eps)  # transformers' ViltConfig: 1e-12 in every LayerNorm


# the micro ViLT: the bundled micro ViT's transformer (32×32, patch 4, d = 128, 6 blocks, timm's LayerNorm eps) with 32
# text positions; bert-base-uncased's vocabulary (vl.vlp_pretrain)
MICRO_SPEC = ViLTSpec(hidden_size=128, num_layers=6, num_heads=4, intermediate_size=512, image_size=32, patch_size=4,
                      max_text_len=32, layer_norm_eps=1e-6, text_layer_norm_eps=1e-6)


class ViLT(nn.Module):
    """ViLT with a classification head (see the module docstring). ``forward(inputs) -> logits (B×C)``;
    ``inputs``: ``input_ids`` / ``attention_mask`` (B×T, right-padded), ``pixel_values`` (B×3×S×S), optionally
    ``token_type_ids``."""

    kind = "vilt"

    def __init__(self, spec: ViLTSpec, num_classes: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertEmbeddings

        d, self.spec = spec.hidden_size, spec
        bert = BertConfig(vocab_size=spec.vocab_size, hidden_size=d, max_position_embeddings=spec.max_text_len,
                          type_vocab_size=2, hidden_dropout_prob=spec.drop_rate, layer_norm_eps=spec.text_layer_norm_eps)
        self.text_embeddings = BertEmbeddings(bert)
        self.token_type_embeddings = nn.Embedding(2, d)  # modality: 0 text, 1 image
        self.transformer = VisionTransformer(
            img_size=spec.image_size, patch_size=spec.patch_size, embed_dim=d, depth=spec.num_layers,
            num_heads=spec.num_heads, mlp_ratio=spec.intermediate_size / d, qkv_bias=True, num_classes=0,
            global_pool="", pos_drop_rate=spec.drop_rate, proj_drop_rate=spec.drop_rate, dynamic_img_size=True,
            norm_layer=functools.partial(nn.LayerNorm, eps=spec.layer_norm_eps))
        self.pooler = Pooler(d)
        self.head = vilt_head(d, num_classes)
        for m in (self.text_embeddings, self.token_type_embeddings, self.pooler):
            m.apply(_init_weights)
        self.tokenizer_name = VILT_HUB
        self.max_text_len = spec.max_text_len
        self.register_parameter("token4classifier", None)  # ``add_classifier_token``

    @property
    def blocks(self) -> nn.ModuleList:
        """The transformer blocks (``transformer.blocks``): where methods insert, as on a timm ViT."""
        return self.transformer.blocks

    @property
    def embed_dim(self) -> int:
        return self.spec.hidden_size

    def get_classifier(self) -> nn.Module:
        return self.head

    def freeze(self) -> ViLT:
        """Frozen but for the head, the pooler and both token-type embeddings (``TRAINS_WITH_EVERY_METHOD``)."""
        return freeze_backbone(self, also=[self.get_submodule(n) for n in TRAINS_WITH_EVERY_METHOD])

    def add_classifier_token(self) -> None:
        """The official learnable classifier token (``token4classifier``): it replaces the first text embedding. Made
        as the official ``__init__`` makes it, ``text_embeddings([[101]])`` with the module in training mode (its
        dropout included), from the torch RNG."""
        was, emb = self.text_embeddings.training, self.text_embeddings
        emb.train()
        with torch.no_grad():
            token = emb(input_ids=torch.tensor([[CLS_ID]], device=emb.word_embeddings.weight.device))
        emb.train(was)
        self.token4classifier = nn.Parameter(token)

    def embed(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B×(T+1+Nv)×d tokens: text, then [class] + patches; B×1×1×N bool attention mask, True = attend)."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        t = self.text_embeddings(input_ids=ids, token_type_ids=inputs.get("token_type_ids"))
        if self.token4classifier is not None:  # official infer: cat([token4classifiers, text_embeds[:, 1:]])
            t = torch.cat([self.token4classifier.to(t.dtype).expand(len(t), -1, -1), t[:, 1:]], 1)
        t = t + self.token_type_embeddings(torch.zeros_like(ids))
        vit = self.transformer
        v = vit._pos_embed(vit.patch_embed(inputs["pixel_values"]))
        v = v + self.token_type_embeddings.weight[1]
        keep = torch.cat([mask.bool(), mask.new_ones(v.shape[:2], dtype=torch.bool)], 1)
        return torch.cat([t, v.to(t.dtype)], 1), keep[:, None, None, :]

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """B×N×d final hidden states (after the final LayerNorm)."""
        h, keep = self.embed(inputs)
        for block in self.transformer.blocks:
            h = block(h, attn_mask=keep)
        return self.transformer.norm(h)

    def pool(self, states: torch.Tensor, text_len: int) -> torch.Tensor:
        """What the task heads read: the pooler on the text [CLS] (``text_len``: as ``METER.pool``)."""
        return self.pooler(states[:, 0])

    def pooled(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.pool(self.forward_features(inputs), inputs["input_ids"].shape[1])

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.pooled(inputs))

    def data_config(self) -> dict[str, Any]:
        s = self.spec.image_size
        return {"input_size": (3, s, s), "mean": VILT_MEAN, "std": VILT_STD, "interpolation": "bicubic",
                "crop_pct": 1.0, "tokenizer": self.tokenizer_name, "modality": "both",
                "max_text_len": self.max_text_len}

    def example_inputs(self, text_len: int | None = None, batch_size: int = 1, seed: int = 0,
                       image: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """A random full-length batch (no padding): ``text_len`` tokens (default ``max_text_len``), one image of the
        model's size or ``image`` (H, W: the position embeddings are resampled to its patch grid)."""
        s = self.spec.image_size
        return example_batch(self.spec.vocab_size, text_len or self.max_text_len, (3, *(image or (s, s))), batch_size,
                             seed, next(self.parameters()).device)


class Pooler(nn.Module):
    """Official ViLT / METER ``heads.Pooler``: ``tanh(dense(h[:, 0]))`` (its key names: ``dense.weight``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.activation = nn.Tanh()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(h))


def _init_weights(module: nn.Module) -> None:
    """Official ViLT ``objectives.init_weights``: Linear / Embedding N(0, 0.02), LayerNorm 1 / 0, biases 0."""
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


# ------------------------------------------------------------------------------------------ weights


def hf_to_vilt(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``ViltModel`` state dict (prefix ``vilt.`` allowed) in this module's (the official) keys:
    separate query / key / value -> one ``qkv``, ``layernorm_before/after`` -> ``norm1/2``, ``intermediate`` /
    ``output`` -> ``mlp.fc1/fc2``. Keys outside the backbone (MLM / ITM heads) are dropped."""
    s = {k.removeprefix("vilt."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    simple = {"embeddings.patch_embeddings.projection.": "transformer.patch_embed.proj.",
              "embeddings.token_type_embeddings.": "token_type_embeddings.",
              "layernorm.": "transformer.norm.", "pooler.dense.": "pooler.dense."}
    for k, v in s.items():
        if k.startswith("embeddings.text_embeddings.") and not k.endswith("_ids"):
            out[k.replace("embeddings.text_embeddings.", "text_embeddings.")] = v
        elif k in ("embeddings.cls_token", "embeddings.position_embeddings"):
            out["transformer." + ("cls_token" if k.endswith("cls_token") else "pos_embed")] = v
        elif any(k.startswith(a) for a in simple):
            a = next(a for a in simple if k.startswith(a))
            out[simple[a] + k[len(a):]] = v
    layer = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
    i = 0
    while f"encoder.layer.{i}.layernorm_before.weight" in s:
        src, dst = f"encoder.layer.{i}.", f"transformer.blocks.{i}."
        for a, b in layer.items():
            for p in ("weight", "bias"):
                out[f"{dst}{b}.{p}"] = s[f"{src}{a}.{p}"]
        for p in ("weight", "bias"):
            out[f"{dst}attn.qkv.{p}"] = torch.cat([s[f"{src}attention.attention.{n}.{p}"]
                                                   for n in ("query", "key", "value")])
        i += 1
    return out


def load_backbone_state(model: ViLT, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every backbone tensor of ``model`` (all but the head) from ``state``; keys of other heads (MLM, ITM,
    a task classifier) are ignored. UserError naming what is missing or mis-shaped."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    missing = [k for k in own if k not in state and not k.endswith("position_ids")]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or shapes:
        bad = missing[:3] + [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:3]]
        raise UserError(f"{source} is not a checkpoint of this model ({len(missing)} keys missing, {len(shapes)} "
                        f"mis-shaped, e.g. {'; '.join(bad)}); pass the model's official checkpoint (.ckpt)")
    model.load_state_dict({k: state[k] for k in own if k in state}, strict=False)


def expand_state(state: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """A file saved with only some rows of the word embeddings (``ROWS``: their ids) as a full state dict: the saved
    rows in place, every other row zero (a word the micro model never saw)."""
    if ROWS not in state:
        return state
    key = "text_embeddings.word_embeddings.weight"
    out = {k: v for k, v in state.items() if k != ROWS}
    full = torch.zeros(vocab_size, state[key].shape[1], dtype=state[key].dtype)
    full[state[ROWS]] = state[key]
    out[key] = full
    return out


# ------------------------------------------------------------------------------------------ family


def _create_micro(num_classes: int, pretrained: bool, weights: str | None) -> tuple[ViLT, dict[str, Any]]:
    """The bundled micro VL-pretrained ViLT (its file under ``petlbench/assets``), or ``weights``, or random."""
    from petlbench.models.weights import file_sha256, load_state_dict_file, weights_or_bundled
    from petlbench.vl.models.text import OFFLINE_TEXT

    model = ViLT(MICRO_SPEC, num_classes)
    model.tokenizer_name = OFFLINE_TEXT
    src, sha = "random-init", ""
    if pretrained or weights:
        path = weights_or_bundled(weights, f"{MICRO}.safetensors", MICRO)
        state = expand_state(load_state_dict_file(path), MICRO_SPEC.vocab_size)
        load_backbone_state(model, state, f"weights file '{path}'")
        src, sha = f"file:{path.name}", file_sha256(path)
    model.freeze()
    return model, {"model": MICRO, "weights_source": src, "weights_sha256": sha}


def split_name(name: str) -> str:
    """``vilt`` -> the default hub checkpoint; ``vilt:SOURCE`` -> SOURCE."""
    src = name.partition(":")[2].strip() if ":" in name else VILT_HUB
    if not src:
        raise UserError(f"model '{name}' names no checkpoint; use vilt or vilt:HUB_ID_OR_DIR (e.g. vilt:{VILT_HUB})")
    return src


def _hf_vilt(source: str, pretrained: bool) -> tuple[Any, str]:
    """(transformers ViltModel or None, provenance) of a checkpoint; its config only when not ``pretrained``."""
    from transformers import ViltConfig, ViltModel

    from petlbench.vl.models.text import hub_errors, quiet_transformers

    hint = "--model vilt --no-pretrained (random ViLT-B/32) or a local ViLT directory as vilt:DIR"
    with hub_errors(source, "ViLT checkpoint", hint), quiet_transformers():
        if not pretrained:
            return ViltConfig() if source == VILT_HUB else ViltConfig.from_pretrained(source), "random-init"
        hf = ViltModel.from_pretrained(source)
    commit = getattr(hf.config, "_commit_hash", None)
    where = f"dir:{Path(source).resolve().name}" if Path(source).is_dir() else f"hub:{source}"
    return hf, where + (f"@{commit}" if commit else "")


def create_vilt(name: str, num_classes: int, *, pretrained: bool = True, weights: str | None = None
                ) -> tuple[ViLT, dict[str, Any]]:
    """A ViLT (see the module docstring) with a ``num_classes`` head, frozen but for what ``ViLT.freeze`` trains."""
    from transformers import ViltConfig

    from petlbench.models.weights import file_sha256, load_state_dict_file
    from petlbench.vl.models.text import OFFLINE_TEXT

    if name == MICRO:
        return _create_micro(num_classes, pretrained, weights)
    source = split_name(name)
    hf, src = _hf_vilt(source, pretrained and weights is None)
    config = hf.config if hasattr(hf, "config") else hf
    model = ViLT(ViLTSpec.from_hf(config if isinstance(config, ViltConfig) else ViltConfig()), num_classes)
    # a hub / directory checkpoint brings its tokenizer; otherwise ViLT's bert-base-uncased WordPiece vocabulary,
    # which the packaged all-MiniLM-L6-v2 tokenizer shares (same 30,522 ids): offline, no download
    model.tokenizer_name = source if hasattr(hf, "state_dict") else OFFLINE_TEXT
    sha = ""
    if weights is not None:
        load_backbone_state(model, load_state_dict_file(weights), f"weights file '{weights}'")
        src, sha = f"file:{Path(weights).name}", file_sha256(Path(weights))
    elif hasattr(hf, "state_dict"):
        load_backbone_state(model, hf_to_vilt(hf.state_dict()), f"checkpoint '{source}'")
    model.freeze()
    return model, {"model": name, "weights_source": src, "weights_sha256": sha}


# kind "vilt": one transformer of timm blocks over [text ; patches]
LAYOUT = Layout("vilt", layer="vit", blocks=lambda m: m.transformer.blocks, width=lambda m: m.spec.hidden_size,
                attention_outputs=lambda b: [b.attn], ffn_outputs=lambda b: [b.mlp],
                projections=lambda b: fused_qkv(b.attn), classifier_token=lambda m: m.add_classifier_token(),
                # the official configuration's sequence (vilt/config.py: max_text_len = 40; max_image_len = 200, as a
                # 10 x 20 patch grid, + the image's [class] token: 241 tokens): what compute claims are stated at;
                # ViLT-B/32's shapes only (the micro ViLT has 32 text positions)
                official_input=lambda m: (40, 320, 640) if (m.spec.max_text_len, m.spec.patch_size) == (40, 32) else None)
