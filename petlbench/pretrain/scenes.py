"""``petlbench pretrain --data scenes``: ``petl_vit_micro_scenes``, the VL track's visual encoder.

Dense object labels on generated scenes of the VL tasks' prior (``vl.data.scenes``), drawn from a seed stream
disjoint from every task split's (``STREAM``; no questions, no task image). Per patch token of the last block (before
the final norm: the tokens the VL model reads), three heads (LayerNorm + linear, dropped after) predict the shape and
the colour of the object covering the patch (or background) and whether an object's centre is in it; the loss is
the sum of the three cross-entropies. This is the role of the object/attribute detector features of
bottom-up-attention VQA models (Anderson et al. 2018, trained on Visual Genome): a visual encoder that already names
objects, as CLIP or a detector does for real images. Horizontal flips (labels mirrored too); 1,000 further scenes
report the held-out per-head accuracy on the patches an object covers.

An object covers a patch when it covers at least ``COVER_MIN`` of its area, and always covers its most-covered patch.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.pretrain.base import MicroViTRecipe, Objective, RecipeConfig, register
from petlbench.vl.data.scenes import COLOURS, IMG, SHAPES, draw_scenes

COVER_MIN = 0.25
LABEL_HEADS = {"shape": 1 + len(SHAPES), "colour": 1 + len(COLOURS), "centre": 2}  # name -> classes
# how the provenance names ``pretraining_scenes``: the committed file's label (module since renamed), kept so that the
# recipe rebuilds the committed bytes
LABEL = "vl_tasks.pretraining_scenes"
STREAM = 13  # the scenes' seed stream; the task splits use 11 (vl.data.tasks.generate_scenes): disjoint pools


def patch_labels(scene: list, covers: list[np.ndarray], patch: int) -> np.ndarray:
    """int64 3×G×G (G = IMG // patch): shape, colour, centre per patch, in LABEL_HEADS order."""
    g = IMG // patch
    out = np.zeros((len(LABEL_HEADS), g, g), dtype=np.int64)
    if not scene:
        return out
    cover = np.stack([c.reshape(g, patch, g, patch).mean(axis=(1, 3)) for c in covers])  # objects × G × G
    owner, covered = cover.argmax(0), cover.max(0) >= COVER_MIN
    for k in range(len(scene)):  # a small object across a patch corner covers < COVER_MIN of every patch:
        covered.flat[cover[k].argmax()] = True  # it still names the patch it covers most
    for k, o in enumerate(scene):
        mine = covered & (owner == k)
        out[0][mine], out[1][mine] = 1 + SHAPES.index(o.shape), 1 + list(COLOURS).index(o.colour)
        out[2][min(int(o.y // patch), g - 1), min(int(o.x // patch), g - 1)] = 1
    return out


def pretraining_scenes(n: int, seed: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 n×IMG×IMG×3, labels int64 n×3×G×G) from the scenes' own seed stream."""
    rng = np.random.default_rng([zlib.crc32(b"pretrain-scenes"), seed, STREAM])
    images, labels = [], []
    for scene, image, covers in draw_scenes(n, rng):
        images.append(image)
        labels.append(patch_labels(scene, covers, patch))
    return np.stack(images), np.stack(labels)


def patch_scores(logits: list[torch.Tensor], labels: torch.Tensor) -> list[float]:
    """Per head, accuracy % on the patches an object covers (background patches are most of the image)."""
    obj = labels[:, 0].flatten(1) > 0
    return [100.0 * (lg.argmax(-1)[obj] == labels[:, i].flatten(1)[obj]).float().mean().item()
            for i, lg in enumerate(logits)]


class PatchHeads(nn.Module):
    """One LayerNorm + linear head per label kind (``LABEL_HEADS``) on every patch token of the last block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, k)) for k in LABEL_HEADS.values())

    def forward(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        tokens = last_block_tokens(model, x)[:, model.num_prefix_tokens:]  # B×G²×D
        return [h(tokens) for h in self.heads]


def last_block_tokens(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A timm ViT's tokens after its last block, before its final norm (``forward_features`` without the norm: the
    tokens the VL models read)."""
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    return vit.blocks(x)


@dataclass(frozen=True)
class ScenesConfig(RecipeConfig):
    pool: Annotated[int, Range(ge=1)] = 40_000  # generated training scenes
    held_out: Annotated[int | None, Range(ge=1)] = 1_000  # held-out scenes scored


@register
class Scenes(MicroViTRecipe):
    name, model, Config = "scenes", "petl_vit_micro_scenes", ScenesConfig
    description = "the VL track's visual encoder: object labels per patch on generated scenes"

    def objective(self, model, prep, cfg, rng):
        """Dense object labels on random scenes, half of them mirrored (labels too); accuracy = the shape head's."""
        patch = model.patch_embed.patch_size[0]
        images, labels = pretraining_scenes(cfg.pool, cfg.seed, patch)
        heads = PatchHeads(model.embed_dim)

        def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
            idx = rng.integers(0, len(images), cfg.batch_size)
            x, y = images[idx], labels[idx]
            flip = rng.random(cfg.batch_size) < 0.5
            x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, :, ::-1]
            y = torch.from_numpy(y)
            logits = heads(model, prep(x))
            loss = sum(F.cross_entropy(lg.flatten(0, 1), y[:, i].flatten()) for i, lg in enumerate(logits))
            return loss, patch_scores(logits, y)[0]

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            x, y = pretraining_scenes(cfg.held_out, cfg.seed + 1, patch)
            scores = patch_scores(heads.eval()(model.eval(), prep(x)), torch.from_numpy(y))
            return {**{f"scenes_eval_{k}_acc": round(v, 2) for k, v in zip(LABEL_HEADS, scores, strict=True)},
                    "scenes_eval_images": cfg.held_out}

        facts = {"augmentation": "horizontal flip p=0.5 (labels mirrored)",
                 "data": f"{cfg.pool} generated shape scenes ({LABEL}, seed {cfg.seed}; "
                         "disjoint from the VL task splits), dense labels per patch: shape and colour of the object "
                         f"covering >= {COVER_MIN:.0%} of it (and of its most-covered patch), object centre"}
        return Objective(nn.ModuleList([model, heads]), step, evaluate, cfg.pool, "shape_acc", facts)
