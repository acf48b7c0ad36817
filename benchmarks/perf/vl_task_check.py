"""Do the offline VL tasks need both modalities? Text-only vs image-only vs both, with one small model.

Claim under test (``petlbench.vl_tasks``): answers are balanced per question type and the text is drawn
independently of the answer, so a model that sees only the text is at chance within each type, and a model that
sees only the image cannot tell which object is asked about; a model that sees both learns the task.

The model (written for this check only; not a petlbench backbone): a 3-layer CNN on the 32×32 RGB image
(+ x/y coordinate channels), a GRU over the words of the text, fused by FiLM (the text scales and shifts the
CNN's feature maps, as in FiLM on CLEVR), global max-pool, MLP head. Ablations keep the architecture and
remove one input: ``text`` feeds an all-zero image, ``image`` feeds an empty text. Each mode trains from scratch
with the task's own loss (BCE×answers for shapes-vqa, CE for shapes-ve) and reports the task metric on test.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/vl_task_check.py [--task shapes-vqa] [--train-size 800]
[--epochs 30]``. ``--train-size`` above 800 adds samples from an extra generated split ("check-train", same
generator and balance) to ask whether the task is learnable from more data; 800 is the task's train split.
Prints one row per (task, mode) with per-type scores, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import torch
import torch.nn as nn

from petlbench.datasets import load_data as load_vl
from petlbench.vl.data import tasks as vl_tasks
from petlbench.vl.data.raw import VLSplit, VLTask

MODES = ("text", "image", "both")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class FiLMNet(nn.Module):
    def __init__(self, vocab: int, answers: int, width: int = 48, text_dim: int = 64, head: str = "max") -> None:
        super().__init__()
        self.pool = head
        self.embed = nn.Embedding(vocab, 32, padding_idx=0)
        self.gru = nn.GRU(32, text_dim, batch_first=True)
        self.conv1 = nn.Conv2d(5, width, 3, padding=1)  # RGB + x/y coordinates
        self.conv2 = nn.Conv2d(width + 2, width, 3, stride=2, padding=1)  # 16×16; coordinates at every layer
        self.conv3 = nn.Conv2d(width + 2, width, 3, padding=1)
        self.film = nn.Linear(text_dim, 4 * width)  # (gamma, beta) for conv2 and conv3
        # "max": global max-pool; "flat": a stride-2 conv to 8×8 then flatten (keeps where things are)
        self.down = nn.Conv2d(width, 16, 3, stride=2, padding=1) if head == "flat" else None
        # spatial softmax: 4 text-modulated attention maps over the 16×16 grid -> their expected (x, y)
        self.attn = nn.Conv2d(width, 4, 1)
        feat = 16 * 64 if head == "flat" else width + 8
        self.head = nn.Sequential(nn.Linear(feat, 128), nn.ReLU(), nn.Linear(128, answers))
        for size in (32, 16):
            yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
            self.register_buffer(f"coords{size}", torch.stack([xx, yy])[None])

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens > 0).sum(1).clamp(min=1)
        out, _ = self.gru(self.embed(tokens))  # B×T×D; the last real word's state is the text vector
        q = out[torch.arange(len(tokens)), lengths - 1] * (tokens[:, :1] > 0)  # empty text -> zero vector
        g2, b2, g3, b3 = self.film(q)[:, :, None, None].chunk(4, dim=1)
        c32, c16 = self.coords32.expand(len(x), -1, -1, -1), self.coords16.expand(len(x), -1, -1, -1)
        h = torch.relu(self.conv1(torch.cat([x, c32], 1)))
        h = torch.relu(self.conv2(torch.cat([h, c32], 1)) * (1 + g2) + b2)
        h = torch.relu(self.conv3(torch.cat([h, c16], 1)) * (1 + g3) + b3)
        if self.down is not None:
            return self.head(torch.relu(self.down(h)).flatten(1))
        where = torch.softmax(self.attn(h).flatten(2), dim=-1)  # B×4×256
        xy = torch.einsum("bkn,cn->bkc", where, self.coords16[0].flatten(1)).flatten(1)  # B×8
        return self.head(torch.cat([h.amax(dim=(2, 3)), xy], 1))


class TinyFusion(nn.Module):
    """Single-stream fusion like the VL track's model, at toy scale: a CNN stem turns the image into 8×8 tokens,
    words are embedded, [CLS] + words + image tokens (with position and type embeddings) go through a small
    transformer encoder, the head reads [CLS]."""

    def __init__(self, vocab: int, answers: int, d: int = 64, layers: int = 3, max_len: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, d // 2, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(d // 2, d, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(d, d, 3, stride=2, padding=1))  # B×d×8×8
        self.words = nn.Embedding(vocab, d, padding_idx=0)
        self.pos_img = nn.Parameter(torch.randn(1, 64, d) * 0.02)
        self.pos_txt = nn.Parameter(torch.randn(1, max_len + 1, d) * 0.02)
        self.types = nn.Embedding(2, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, answers))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape
        img = self.stem(x).flatten(2).transpose(1, 2) + self.pos_img + self.types.weight[1]
        txt = torch.cat([self.cls.expand(b, -1, -1), self.words(tokens)], 1) + self.pos_txt[:, : t + 1]
        txt = txt + self.types.weight[0]
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool), tokens == 0, torch.zeros(b, 64, dtype=torch.bool)], 1)
        h = self.encoder(torch.cat([txt, img], 1), src_key_padding_mask=pad)
        return self.head(h[:, 0])


MODELS = {"film": FiLMNet, "tf": TinyFusion}


def _tensors(split: VLSplit, task: VLTask, index: dict[str, int], max_len: int) -> tuple:
    x = torch.from_numpy(split.images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25)
    tok = torch.zeros(len(split), max_len, dtype=torch.long)
    for i, t in enumerate(split.texts):
        ids = [index.get(w, 1) for w in _words(t)][:max_len]
        tok[i, : len(ids)] = torch.tensor(ids)
    return x, tok, task.targets(split, np.arange(len(split)))


def _ablate(x: torch.Tensor, tok: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.zeros_like(x) if mode == "text" else x), (torch.zeros_like(tok) if mode == "image" else tok)


def _evaluate(model: nn.Module, task: VLTask, data: tuple, mode: str) -> np.ndarray:
    """Per-sample metric (VQA score or 0/1 correct)."""
    x, tok, y = data
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(*_ablate(x[i:i + 256], tok[i:i + 256], mode)) for i in range(0, len(x), 256)])
    pred = logits.argmax(1)
    return (y[torch.arange(len(y)), pred] if task.soft else (pred == y).float()).numpy()


def train_eval(task: VLTask, train: tuple, test: tuple, vocab: int, mode: str, epochs: int, seed: int,
               head: str = "max", batch: int = 64, arch: str = "film") -> np.ndarray:
    torch.manual_seed(seed)
    model = FiLMNet(vocab, task.num_answers, head=head) if arch == "film" else TinyFusion(vocab, task.num_answers)
    lr = 2e-3 if arch == "film" else 1e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(train[0]) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(train[0]), generator=gen).split(batch):
            x, tok = _ablate(train[0][idx], train[1][idx], mode)
            loss = task.loss(model(x, tok), train[2][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return _evaluate(model, task, test, mode)


def _train_split(name: str, size: int) -> VLSplit:
    base = load_vl(name).splits["train"]
    if size <= len(base):
        return base.subset(np.arange(size))
    x, t, y = vl_tasks.generate(name, "check-train", size - len(base))
    return VLSplit(np.concatenate([base.images, x]), base.texts + t, np.concatenate([base.labels, y]))


def _prior_baselines(labels: np.ndarray, types: np.ndarray) -> dict[str, float]:
    """Best constant answers on test: per question type (what a text-only model can reach from answer priors)
    and overall (what an image-only model reaches without knowing the question)."""
    per_type = sum(np.bincount(labels[types == t]).max() for t in set(types)) / len(labels)
    return {"text_prior": round(100 * float(per_type), 1),
            "image_prior": round(100 * float(np.bincount(labels).max()) / len(labels), 1)}


def check(name: str, train_size: int = 800, epochs: int = 30, seed: int = 0, modes=MODES, head: str = "max",
          batch: int = 64, arch: str = "film") -> dict:
    """{mode: {"all": test metric %, <type>: %...}} for one task."""
    raw = load_vl(name)
    train_split, test_split = _train_split(name, train_size), raw.splits["test"]
    words = sorted({w for t in train_split.texts for w in _words(t)})
    index = {w: i + 2 for i, w in enumerate(words)}  # 0 = padding, 1 = unknown
    max_len = max(len(_words(t)) for t in train_split.texts)
    train = _tensors(train_split, raw.task, index, max_len)
    test = _tensors(test_split, raw.task, index, max_len)
    types = np.asarray([vl_tasks.question_type(t) for t in test_split.texts])
    out = {"prior": _prior_baselines(test_split.labels, types)}
    for mode in modes:
        per = train_eval(raw.task, train, test, len(index) + 2, mode, epochs, seed, head, batch, arch)
        out[mode] = {"all": round(100 * float(per.mean()), 1),
                     **{t: round(100 * float(per[types == t].mean()), 1) for t in sorted(set(types))}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", nargs="+", default=list(vl_tasks.BY_NAME))
    ap.add_argument("--train-size", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--head", default="max", choices=("max", "flat"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--arch", default="film", choices=tuple(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name in args.task:
        t0 = time.time()
        results[name] = check(name, args.train_size, args.epochs, args.seed, args.modes, args.head, args.batch,
                              args.arch)
        for mode, scores in results[name].items():
            cells = "  ".join(f"{k} {v:5.1f}" for k, v in scores.items())
            print(f"{name:11s} {mode:6s} {cells}")
        if set(MODES) - set(args.modes):
            continue
        best_single = max(results[name]["text"]["all"], results[name]["image"]["all"])
        print(f"{name:11s} gap both - best single = {results[name]['both']['all'] - best_single:+.1f} points "
              f"({time.time() - t0:.0f}s)")
    print(json.dumps({"train_size": args.train_size, "epochs": args.epochs, "seed": args.seed, "results": results}))


if __name__ == "__main__":
    main()
