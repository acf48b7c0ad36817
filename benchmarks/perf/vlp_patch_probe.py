"""How much of each patch's object (shape, colour) the micro ViLT's patch tokens still say, layer by layer.

The micro VL-pretrained model ``petl_vilt_micro_scenes`` starts its transformer from the scene-pretrained micro ViT,
whose last-block patch tokens name the shape and colour of the object they cover (its pretraining labels). This
probe renders held-out scenes (``pretrain.scenes.pretraining_scenes``, seed 7: neither a task split nor a pretraining
pool), runs the model on each with one fixed text ("what shape is it?"), and trains a LayerNorm + linear probe
(Adam, 300 full-batch steps) per layer on the patch tokens an object covers of 1,000 scenes; it reports the
accuracy on those of the other 500. ``init`` is the model before VL pretraining (the ``vl-scenes`` recipe's ``build``),
``bundled`` the bundled file, any other argument a weights file made by ``petlbench pretrain --data vl-scenes``.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/vlp_patch_probe.py init bundled /tmp/m.safetensors``.
Prints one JSON line per model: ``{"model": ..., "shape": [per layer %], "colour": [...]}``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.data.preprocess import Preprocess
from petlbench.pretrain.base import RECIPES
from petlbench.pretrain.scenes import LABEL_HEADS, pretraining_scenes
from petlbench.pretrain.vlp import VLPConfig
from petlbench.vl.data.raw import tokenizer_for
from petlbench.vl.models.text import OFFLINE_TEXT
from petlbench.vl.models.vilt import MICRO, MICRO_SPEC, ViLT, create_vilt

TRAIN, TEST, TEXT = 1000, 500, "what shape is it?"


def load(name: str) -> ViLT:
    if name == "init":
        torch.manual_seed(0)
        return RECIPES.get("vl-scenes").build(VLPConfig(), torch.device("cpu"))[0]
    return create_vilt(MICRO, 1, weights=None if name == "bundled" else name)[0]


@torch.no_grad()
def patch_states(model: ViLT, images: np.ndarray) -> torch.Tensor:
    """layers × scenes × patches × d: each block's output at the patch tokens (after the image's [class])."""
    cfg = model.data_config()
    prep, tokenize = Preprocess(cfg["input_size"], cfg["mean"], cfg["std"]), tokenizer_for(OFFLINE_TEXT, MICRO_SPEC.max_text_len)
    model.eval()
    out = []
    for s in range(0, len(images), 250):
        x = {**tokenize([TEXT] * len(images[s:s + 250])), "pixel_values": prep(images[s:s + 250])}
        h, keep = model.embed(x)
        t, layers = x["input_ids"].shape[1], []
        for block in model.transformer.blocks:
            h = block(h, attn_mask=keep)
            layers.append(h[:, t + 1:])
        out.append(torch.stack(layers))
    return torch.cat(out, 1)


def probe(states: torch.Tensor, y: torch.Tensor, obj: torch.Tensor) -> float:
    """Held-out accuracy % of a LayerNorm + linear probe on the object patches."""
    torch.manual_seed(0)
    x_tr, y_tr = states[:TRAIN][obj[:TRAIN]], y[:TRAIN][obj[:TRAIN]]
    x_te, y_te = states[TRAIN:][obj[TRAIN:]], y[TRAIN:][obj[TRAIN:]]
    head = nn.Sequential(nn.LayerNorm(states.shape[-1]), nn.Linear(states.shape[-1], int(y.max()) + 1))
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(head(x_tr), y_tr).backward()
        opt.step()
    with torch.no_grad():
        return round(100.0 * (head(x_te).argmax(-1) == y_te).float().mean().item(), 1)


def main() -> None:
    torch.set_num_threads(1)
    images, labels = pretraining_scenes(TRAIN + TEST, 7, MICRO_SPEC.patch_size)
    labels = torch.from_numpy(labels).flatten(2)  # scenes × heads × patches
    obj = labels[:, 0] > 0
    kinds = {k: i for i, k in enumerate(LABEL_HEADS) if k in ("shape", "colour")}
    for name in sys.argv[1:] or ["init", "bundled"]:
        states = patch_states(load(name), images)
        print(json.dumps({"model": name, **{k: [probe(s, labels[:, i], obj) for s in states]
                                            for k, i in kinds.items()}}), flush=True)


if __name__ == "__main__":
    main()
