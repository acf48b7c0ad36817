"""What do the offline visual encoder's tokens say about the objects of the VL scenes?

The offline VL pair reads all 65 last-block tokens of a frozen micro ViT (32×32, patch 4): ``petl_vit_micro_scenes``
(pretrained on generated scenes with object labels per patch, the VL default) or ``petl_vit_micro`` (pretrained on
grey Fashion-MNIST, the vision default). This probe renders scenes from the shapes-vqa scene prior (``vl_tasks``;
its own seed, so neither the task splits nor the encoder's pretraining scenes), takes for every object the token
of the patch under its centre, and asks how well a classifier trained on 70% of the objects predicts the
object's colour and shape on the other 30%:

* ``linear``: logistic regression on that one token (what a single attention read + linear map can use);
* ``mlp-3x3``: a one-hidden-layer MLP on the 3×3 token neighbourhood (what a few layers of mixing could use);
* ``pixels``: the same MLP on the raw 10×10 RGB crop around the centre (the information in the image).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/vl_feature_probe.py [--model petl_vit_micro] [--scenes 3000]
[--random-init]``.
Prints one row per (probe, attribute) and a JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.vl.data import tasks as vl_tasks
from petlbench.vl.models.bert import load_vision_encoder

PATCH, GRID = 4, 8


def _fit(x: torch.Tensor, y: torch.Tensor, hidden: int, steps: int = 400) -> float:
    """Test accuracy of a classifier fit on the first 70% of (x, y), scored on the rest."""
    torch.manual_seed(0)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    cut = int(0.7 * len(x))
    net = nn.Linear(x.shape[1], 4) if not hidden else nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-2 if not hidden else 1e-3, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x[:cut]), y[:cut]).backward()
        opt.step()
    with torch.no_grad():
        return float((net(x[cut:]).argmax(1) == y[cut:]).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="petl_vit_micro_scenes", help="bundled micro ViT (or a timm ViT for 32x32)")
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--random-init", action="store_true", help="the same architecture without pretrained weights")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    scenes = [vl_tasks.sample_scene(rng) for _ in range(args.scenes)]
    images = np.stack([vl_tasks.render(s, rng) for s in scenes])
    vision, _ = load_vision_encoder(args.model, pretrained=not args.random_init)
    cfg = vision.pretrained_cfg
    mean, std = (torch.tensor(cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    pixels = torch.tensor(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        tokens = torch.cat([vision.forward_features((pixels[i:i + 500] - mean) / std)
                            for i in range(0, len(pixels), 500)])
    grid = F.pad(tokens[:, 1:].reshape(-1, GRID, GRID, tokens.shape[-1]).permute(0, 3, 1, 2), (1, 1, 1, 1))
    padded = F.pad(pixels, (6, 6, 6, 6))

    feats: dict[str, list[torch.Tensor]] = {"linear": [], "mlp-3x3": [], "pixels": []}
    colour, shape = [], []
    for i, scene in enumerate(scenes):
        for o in scene:
            r, c = min(int(o.y // PATCH), GRID - 1), min(int(o.x // PATCH), GRID - 1)
            feats["linear"].append(tokens[i, 1 + r * GRID + c])
            feats["mlp-3x3"].append(grid[i, :, r:r + 3, c:c + 3].flatten())
            cy, cx = int(o.y) + 6, int(o.x) + 6
            feats["pixels"].append(padded[i, :, cy - 5:cy + 5, cx - 5:cx + 5].flatten())
            colour.append(list(vl_tasks.COLOURS).index(o.colour))
            shape.append(vl_tasks.SHAPES.index(o.shape))
    targets = {"colour": torch.tensor(colour), "shape": torch.tensor(shape)}
    out = {}
    for probe, rows in feats.items():
        x = torch.stack(rows)
        for attr, y in targets.items():
            out[f"{probe}/{attr}"] = acc = _fit(x, y, hidden=0 if probe == "linear" else 256)
            print(f"{probe:8s} {attr:6s} {100 * acc:5.1f}%  (chance 25%, {len(y) - int(0.7 * len(y))} test objects)")
    print(json.dumps({"encoder": args.model, "random_init": args.random_init, "scenes": args.scenes, **out}))


if __name__ == "__main__":
    main()
