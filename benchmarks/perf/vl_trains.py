"""Does the VL model train? A few hundred steps of ``linear`` and ``adapter`` on a two-modality toy task.

Task (generated, balanced): a 32×32 image holds one filled square of one of four colours on a dark noisy
background; the question is "what colour is the square?" or "what colour is the square, in french?" (a BERT
tokenizer's text); the answer is the colour's name in the asked language (8 answers: red ... jaune). Neither
modality alone carries the answer (text-only: 25%, it knows the language but not the colour; image-only: 50%,
it knows the colour but not the language), so held-out accuracy above 50% means the [CLS] the classifier reads
carries the question and the projected visual tokens together. (A harder binding task, "what colour is the
left/right square?" with two squares, did not get past the image-only level within 300 steps: frozen-LM
fusion of that kind needs longer training than a check like this affords.)

Each method trains from the same frozen VL backbone (default: the offline default VL pair) with AdamW at
a constant lr (the loop's ``fit``), under the loop's default frozen-backbone policy (frozen modules in eval
mode); we print the mean loss of the first and last 20 steps, the accuracy on 256 held-out samples, and the
forward time per batch (inference, eval mode).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/vl_trains.py [--model NAME --steps 300 --batch 32]``.
Prints one row per method and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
ANSWERS = [*COLOURS, "rouge", "vert", "bleu", "jaune"]  # answer vocabulary: English names, then French


def make_task(n: int, seed: int, tokenizer, data_cfg: dict, max_length: int = 16):
    """(inputs dict, labels) of ``n`` samples: images normalised with ``data_cfg``, questions tokenised.
    Label = colour + 4 · (1 if the question asks for French)."""
    rng = np.random.default_rng(seed)
    _, h, w = data_cfg["input_size"]
    imgs = rng.integers(0, 40, (n, h, w, 3)).astype(np.float32)
    colour = rng.integers(0, len(COLOURS), n)
    french = rng.integers(0, 2, n)
    for i in range(n):
        s = int(rng.integers(8, 16))
        y0, x0 = rng.integers(0, h - s), rng.integers(0, w - s)
        imgs[i, y0:y0 + s, x0:x0 + s] = list(COLOURS.values())[colour[i]]
    mean, std = np.array(data_cfg["mean"]) * 255, np.array(data_cfg["std"]) * 255
    px = torch.from_numpy(((imgs - mean) / std).transpose(0, 3, 1, 2).astype(np.float32))
    questions = ["what colour is the square" + (", in french?" if f else "?") for f in french]
    enc = tokenizer(questions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "pixel_values": px}
    return inputs, torch.from_numpy(colour + len(COLOURS) * french)


def _slice(inputs: dict, idx) -> dict:
    return {k: v[idx] for k, v in inputs.items()}


def train_method(name: str, model_name: str | None, steps: int, batch: int, lr: float, seed: int = 0,
                 modality: str = "both") -> dict:
    """Build (``modality``: both, or a text-/image-only baseline), apply ``name``, train ``steps`` AdamW steps;
    losses, held-out accuracy, timing."""
    from timm.data import resolve_data_config

    from petlbench.engine.loop import fit
    from petlbench.engine.optim import constant
    from petlbench.methods.base import MethodConfig
    from petlbench.registry import METHODS
    from petlbench.vl.models.bert import create_vl_backbone
    from petlbench.vl.models.text import vl_tokenizer

    torch.manual_seed(seed)
    model, _ = create_vl_backbone(model_name, len(ANSWERS), modality=modality)
    method = METHODS.get(name)(METHODS.get(name).Config())
    model = method.apply(model)
    data_cfg = resolve_data_config({}, model=create_vl_backbone(model_name, 1, pretrained=False)[0])
    tok = vl_tokenizer(model_name)
    train_x, train_y = make_task(steps * batch, seed + 1, tok, data_cfg)
    val_x, val_y = make_task(256, seed + 2, tok, data_cfg)
    def loss(step: int) -> torch.Tensor:
        idx = slice(step * batch, (step + 1) * batch)
        return torch.nn.functional.cross_entropy(model(_slice(train_x, idx)), train_y[idx])

    t0 = time.perf_counter()
    # constant lr, torch's default AdamW weight decay (0.01); the loop's default policy: frozen modules in eval mode
    losses = fit(model, loss, steps, MethodConfig(lr=lr, weight_decay=1e-2), schedule=constant)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        t1 = time.perf_counter()
        logits = torch.cat([model(_slice(val_x, slice(i, i + batch))) for i in range(0, 256, batch)])
        fwd_s = (time.perf_counter() - t1) / (256 / batch)
    return {"method": name, "modality": modality, "loss_first20": float(np.mean(losses[:20])), "loss_last20": float(np.mean(losses[-20:])),
            "val_acc": 100.0 * float((logits.argmax(-1) == val_y).float().mean()), "steps": steps, "batch": batch,
            "train_s_per_step": train_s / steps, "forward_s_per_batch": fwd_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="TEXT+VISION (default: the offline default VL pair)")
    ap.add_argument("--methods", nargs="+", default=["linear", "adapter"])
    ap.add_argument("--modalities", nargs="+", default=["both"], help="both / text / image (baselines)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [train_method(m, args.model, args.steps, args.batch, args.lr, modality=mod)
            for mod in args.modalities for m in args.methods]
    for r in rows:
        print(f"{r['method']:8s} {r['modality']:5s} loss {r['loss_first20']:.3f} -> {r['loss_last20']:.3f}  val acc {r['val_acc']:.1f}%  "
              f"{r['train_s_per_step']:.3f} s/step  forward {r['forward_s_per_batch']:.3f} s/batch of {r['batch']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
