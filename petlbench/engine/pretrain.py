"""Pretrain the bundled micro ViTs: ``petl_vit_micro`` on Fashion-MNIST, ``petl_vit_micro_scenes`` on shape scenes.

No package ships ViT weights, so the embedded offline benchmark brings its own backbones, both the
``petl_vit_micro`` architecture (see ``petlbench.models.backbones.BUNDLED``), saved without their heads as safetensors
next to a JSON provenance file:

* ``--data fashion-mnist`` (``petl_vit_micro``, the vision track's default): a 10-class head on the Fashion-MNIST
  train split (60k grey 28×28 images, MIT licence, Debian package ``dataset-fashion-mnist``).
* ``--data scenes`` (``petl_vit_micro_scenes``, the VL track's visual encoder): dense object/attribute labels on
  40,000 generated scenes of the VL tasks' scene prior (``vl.tasks.pretraining_scenes``: a seed stream disjoint
  from every task split; no questions, no task image). Per patch token of the last block (before the final norm:
  the tokens the VL model reads), three heads (LayerNorm + linear, dropped after) predict the shape and the
  colour of the object covering the patch (or background) and whether an object's centre is in it; the loss is
  the sum of the three cross-entropies. This is the role of the object/attribute detector features of
  bottom-up-attention VQA models (Anderson et al. 2018, trained on Visual Genome): a visual encoder that
  already names objects, as CLIP or a detector does for real images. Horizontal flips (labels flipped too);
  1,000 further scenes report the held-out per-head accuracy on object patches. Same optimizer and schedule.

Recipe (our choice; documented in the JSON): images are preprocessed exactly like the
downstream tasks (``petlbench.data.Preprocess``: antialiased bilinear resize to the model
input, grey→3 channels, normalise with the model's mean/std). Light augmentation on the uint8
28×28 images: random translation by up to ±``shift`` pixels (zero padding, like a random crop
with padding) and a horizontal flip with p=0.5. AdamW (β=0.9/0.999, weight decay 0.05, not on
biases/norms/embeddings), linear warm-up over the first 5% of steps, then cosine decay to 0;
label smoothing 0.1 (Fashion-MNIST only). The Fashion-MNIST test split is only used to report accuracy once.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.errors import UserError

FASHION_DIR = Path(os.environ.get("PETLBENCH_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MODEL = "petl_vit_micro"  # the architecture both recipes train
# --data -> the bundled model it makes (vl-scenes: the micro VL-pretrained ViLT, ``petlbench.vl.vlp_pretrain``)
DATA = {"fashion-mnist": "petl_vit_micro", "scenes": "petl_vit_micro_scenes", "vl-scenes": "petl_vilt_micro_scenes",
        "vl-scenes-meter": "petl_meter_micro_scenes"}
VL_ARCH = {"vl-scenes": "vilt", "vl-scenes-meter": "meter"}  # the scene-caption pretrainings: the micro model's arch
SCENES, SCENE_EVAL = 40_000, 1_000  # generated pretraining scenes (train / held-out report)

# defaults of `petlbench pretrain` (the committed weights were made with these; see the JSON file)
STEPS = 3000
BATCH_SIZE = 64
LR = 1e-3
# the scene-caption pretrainings (one recipe): the micro ViLT starts from a pretrained transformer, so half the step
# (ours; the micro METER's fusion takes the same); two passes (MLM, ITM) per step: 1,500 steps of 64 = 2.4 epochs
# of 40,000 pairs
DEFAULT_LR = dict.fromkeys(VL_ARCH, 5e-4)
DEFAULT_STEPS = dict.fromkeys(VL_ARCH, 1500)
WEIGHT_DECAY = 0.05
WARMUP_FRAC = 0.05
LABEL_SMOOTHING = 0.1
SHIFT = 2  # random translation in pixels (28×28 images)
EMA_WEIGHT = 0.02  # of the newest step in the reported loss / accuracy EMAs


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (ubyte images N×H×W or labels N)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion_mnist(split: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ('train' 60k | 'test' 10k) as (uint8 N×28×28, int64 N)."""
    root = Path(root) if root is not None else FASHION_DIR
    img_file, lab_file = FASHION_FILES[split]
    if not (root / img_file).is_file() or not (root / lab_file).is_file():
        raise UserError(
            f"Fashion-MNIST not found in {root}; install it with 'apt-get install dataset-fashion-mnist' "
            "(or set PETLBENCH_FASHION_MNIST to a folder with the IDX .gz files)"
        )
    return _read_idx(root / img_file), _read_idx(root / lab_file).astype(np.int64)


def fashion_available(root: Path | None = None) -> bool:
    root = Path(root) if root is not None else FASHION_DIR
    return all((root / f).is_file() for pair in FASHION_FILES.values() for f in pair)


def _augment(images: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random translation by up to ±shift px (zero fill) and horizontal flip, on uint8 N×H×W."""
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i]: dy[i] + h, dx[i]: dx[i] + w]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def build_model(num_classes: int = 10) -> torch.nn.Module:
    """The bundled architecture, random init, ``num_classes`` head (all parameters trainable)."""
    import timm

    from petlbench.models.backbones import MODELS

    spec = MODELS.get(MODEL)
    return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes, **spec.kwargs)


# An objective draws one batch with the rng and returns (loss, accuracy %) on it; ``modules`` are all it trains.
Objective = Callable[[np.random.Generator], tuple[torch.Tensor, float]]


def _fashion_objective(model: torch.nn.Module, train: tuple[np.ndarray, np.ndarray], prep, batch_size: int,
                       rng: np.random.Generator) -> Objective:
    """Classification on augmented Fashion-MNIST, epoch by epoch (a fresh permutation per epoch)."""
    train_x, train_y = train
    state = {"order": rng.permutation(len(train_y)), "pos": 0}

    def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        if state["pos"] + batch_size > len(state["order"]):  # new epoch
            state["order"], state["pos"] = rng.permutation(len(train_y)), 0
        idx = state["order"][state["pos"]:state["pos"] + batch_size]
        state["pos"] += batch_size
        x, y = prep(_augment(train_x[idx], rng, SHIFT)), torch.from_numpy(train_y[idx])
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING), 100.0 * (logits.argmax(-1) == y).float().mean().item()

    return step


class PatchHeads(nn.Module):
    """One LayerNorm + linear head per label kind (``vl.tasks.LABEL_HEADS``) on every patch token."""

    def __init__(self, dim: int) -> None:
        from petlbench.vl.tasks import LABEL_HEADS

        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, k)) for k in LABEL_HEADS.values())

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        tokens = model.forward_features(x)[:, model.num_prefix_tokens:]  # B×G²×D, before the final norm
        return [h(tokens) for h in self.heads]


def _patch_scores(logits: list[torch.Tensor], labels: torch.Tensor) -> list[float]:
    """Per head, accuracy % on the patches an object covers (background patches are most of the image)."""
    obj = labels[:, 0].flatten(1) > 0
    return [100.0 * (lg.argmax(-1)[obj] == labels[:, i].flatten(1)[obj]).float().mean().item()
            for i, lg in enumerate(logits)]


def _scene_objective(model: torch.nn.Module, heads: PatchHeads, scenes: tuple[np.ndarray, np.ndarray], prep,
                     batch_size: int) -> Objective:
    """Dense object labels on random scenes, half of them mirrored (labels too); accuracy = the shape head's."""
    images, labels = scenes

    def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        idx = rng.integers(0, len(images), batch_size)
        x, y = images[idx], labels[idx]
        flip = rng.random(batch_size) < 0.5
        x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, :, ::-1]
        y = torch.from_numpy(y)
        logits = heads(model, prep(x))
        loss = sum(F.cross_entropy(lg.flatten(0, 1), y[:, i].flatten()) for i, lg in enumerate(logits))
        return loss, _patch_scores(logits, y)[0]

    return step


def _train(modules: nn.Module, objective: Objective, steps: int, lr: float, rng: np.random.Generator,
           reporter, batch_size: int) -> tuple[float, float]:
    """The loop's ``fit``: AdamW (weight decay 0.05, none on biases, norm weights, the position embedding and
    the class token), linear warm-up then cosine to 0; returns (loss EMA, accuracy EMA)."""
    from petlbench.engine.loop import fit
    from petlbench.methods.base import MethodConfig

    recipe = MethodConfig(optimizer="adamw", lr=lr, weight_decay=WEIGHT_DECAY, wd_bias_norm=False)
    embeddings = {id(p) for name, p in modules.named_parameters() if name.endswith(("pos_embed", "cls_token"))}
    accs: list[float] = []

    def loss(rng: np.random.Generator) -> torch.Tensor:
        value, acc = objective(rng)
        accs.append(acc)
        return value

    losses = fit(modules, loss, [rng] * steps, recipe, warmup_steps=max(1, int(WARMUP_FRAC * steps)),
                 no_decay=embeddings, frozen_backbone_mode="train", reporter=reporter, description="pretrain",
                 ema_weight=EMA_WEIGHT, images_per_step=batch_size)
    return _ema(losses), _ema(accs)


def _ema(values: list[float]) -> float:
    """The EMA pretraining reports."""
    from petlbench.engine.loop import ema

    avg = None
    for v in values:
        avg = ema(avg, v, EMA_WEIGHT)
    return float(avg)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, prep, bs: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(labels), bs):
        correct += int((model(prep(images[i:i + bs])).argmax(-1).numpy() == labels[i:i + bs]).sum())
    return 100.0 * correct / len(labels)


@torch.no_grad()
def _evaluate_scenes(model: torch.nn.Module, heads: PatchHeads, scenes: tuple[np.ndarray, np.ndarray],
                     prep) -> dict[str, float]:
    from petlbench.vl.tasks import LABEL_HEADS

    model.eval()
    heads.eval()
    scores = _patch_scores(heads(model, prep(scenes[0])), torch.from_numpy(scenes[1]))
    return {f"scenes_eval_{name}_acc": round(v, 2) for name, v in zip(LABEL_HEADS, scores, strict=True)}


def _fashion_run(model, prep, steps, batch_size, lr, rng, reporter, data_dir, eval_images) -> dict[str, Any]:
    train, test = load_fashion_mnist("train", data_dir), load_fashion_mnist("test", data_dir)
    loss, acc = _train(model, _fashion_objective(model, train, prep, batch_size, rng), steps, lr, rng, reporter,
                       batch_size)
    test_acc = _evaluate(model, test[0][:eval_images], test[1][:eval_images], prep)
    return {"epochs": round(steps * batch_size / len(train[1]), 2), "final_train_loss_ema": round(loss, 4),
            "final_train_acc_ema": round(acc, 2), "fashion_mnist_test_acc": round(test_acc, 2),
            "fashion_mnist_test_images": len(test[1][:eval_images]),
            "label_smoothing": LABEL_SMOOTHING,
            "augmentation": f"random translation ±{SHIFT}px (zero fill) + horizontal flip p=0.5",
            "data": "Fashion-MNIST train (60000 images, MIT licence) from "
                    f"{FASHION_DIR if data_dir is None else data_dir}"}


def _scenes_run(model, prep, steps, batch_size, lr, rng, reporter, seed, n_scenes, eval_scenes) -> dict[str, Any]:
    from petlbench.vl.tasks import COVER_MIN, pretraining_scenes

    patch = model.patch_embed.patch_size[0]
    train, held_out = pretraining_scenes(n_scenes, seed, patch), pretraining_scenes(eval_scenes, seed + 1, patch)
    heads = PatchHeads(model.embed_dim)
    final_norm, model.norm = model.norm, nn.Identity()  # train the tokens the VL model reads (before the norm)
    try:
        loss, acc = _train(nn.ModuleList([model, heads]), _scene_objective(model, heads, train, prep, batch_size),
                           steps, lr, rng, reporter, batch_size)
        scores = _evaluate_scenes(model, heads, held_out, prep)
    finally:
        model.norm = final_norm  # saved untrained (weight 1, bias 0): the VL track strips it anyway
    return {"epochs": round(steps * batch_size / n_scenes, 2), "final_train_loss_ema": round(loss, 4),
            "final_train_shape_acc_ema": round(acc, 2), **scores, "scenes_eval_images": eval_scenes,
            "augmentation": "horizontal flip p=0.5 (labels mirrored)",
            "data": f"{n_scenes} generated shape scenes (vl.tasks.pretraining_scenes, seed {seed}; disjoint from the "
                    "VL task splits), dense labels per patch: shape and colour of the object covering >= "
                    f"{COVER_MIN:.0%} of it (and of its most-covered patch), object centre"}


def pretrain(
    out: Path | None = None,
    steps: int | None = None,
    batch_size: int = BATCH_SIZE,
    lr: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    reporter=None,
    data_dir: Path | None = None,
    eval_images: int | None = None,
    data: str = "fashion-mnist",
    n_scenes: int = SCENES,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train ``petl_vit_micro``'s architecture on ``data`` (see the module doc); save the backbone (no head) to
    ``out`` (+ ``.json``; None = ``<the bundled model it makes>.safetensors`` here).

    Images go through the same ``Preprocess`` as downstream data (the model's input size and mean/std).
    ``data_dir`` overrides where the Fashion-MNIST IDX files are; ``eval_images`` caps the held-out images used
    for the reported accuracy (None = all; tests use a few); ``n_scenes`` sizes the scene pool; ``reporter``
    shows progress (the loop's ``Reporter`` interface; None = silent); ``device``: where ``vl-scenes`` trains (the
    bundled files were made on the CPU; another device gives other bytes). Returns the provenance dict also written
    to ``out.with_suffix('.json')``.
    """
    from petlbench.data.preprocess import Preprocess
    from petlbench.engine.loop import Reporter
    from petlbench.models.backbones import data_config

    if data not in DATA:
        raise UserError(f"unknown pretraining data {data!r}; pick one of {', '.join(DATA)}")
    lr = lr if lr is not None else DEFAULT_LR.get(data, LR)
    steps = steps if steps is not None else DEFAULT_STEPS.get(data, STEPS)
    from petlbench.engine.build import resolve_device

    if device != "cpu" and data not in VL_ARCH:
        raise UserError(f"--device {device} is for --data {' / '.join(VL_ARCH)} only; drop --device for {data}")
    dev = resolve_device(device)
    if steps < 1 or batch_size < 1 or lr <= 0 or n_scenes < 1:
        raise UserError("pretrain needs steps >= 1, batch size >= 1, lr > 0 and at least one scene")
    out = Path(out) if out is not None else Path(f"{DATA[data]}.safetensors")
    if out.suffix != ".safetensors":
        raise UserError(f"output '{out}' must end in .safetensors")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng, reporter, t0 = np.random.default_rng(seed), reporter or Reporter(), time.time()
    state = None
    if data in VL_ARCH:
        from petlbench.vl import vlp_pretrain as vlp

        model, prep, run, state = vlp.run(steps, batch_size, lr, rng, reporter, seed, n_scenes,
                                          eval_images or vlp.PAIRS_EVAL, _train, dev, VL_ARCH[data])
        # the device only when not the CPU: the CPU recipe's file keeps its bytes (its metadata is the recipe's)
        run.update(model=DATA[data], steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                   train_time_s=round(time.time() - t0, 1), **({"device": device} if device != "cpu" else {}))
        return _save(model, out, prep, run, state)
    model = build_model(10 if data == "fashion-mnist" else 0)
    cfg = data_config(model)
    prep = Preprocess(cfg["input_size"], cfg["mean"], cfg["std"])
    if data == "fashion-mnist":
        run = _fashion_run(model, prep, steps, batch_size, lr, rng, reporter, data_dir, eval_images)
    else:
        run = _scenes_run(model, prep, steps, batch_size, lr, rng, reporter, seed, n_scenes, eval_images or SCENE_EVAL)
    run.update(model=DATA[data], steps=steps, batch_size=batch_size, lr=lr, seed=seed,
               train_time_s=round(time.time() - t0, 1))
    return _save(model, out, prep, run)


def _save(model: torch.nn.Module, out: Path, prep, run: dict[str, Any],
          state: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """The backbone without its head (or ``state``) as safetensors + the provenance JSON next to it (``run``: the
    recipe's facts and scores)."""
    import timm
    from safetensors.torch import save_file

    from petlbench.models.weights import file_sha256

    if state is None:
        head = {n for n, _ in model.get_classifier().named_parameters(prefix="head")}
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k not in head}
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = run["steps"]
    meta = {
        "model": run.pop("model"), "arch": type(model).__name__,
        **{k: run.pop(k) for k in ("steps", "batch_size", "epochs", "lr")}, "weight_decay": WEIGHT_DECAY,
        "schedule": f"linear warm-up {max(1, int(WARMUP_FRAC * steps))} steps, cosine to 0",
        **run, "threads": torch.get_num_threads(),
        "input_size": list(prep.input_size), "mean": list(prep.mean), "std": list(prep.std),
        "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # one metadata key (safetensors writes several in hash order) without the run's time and date (in the JSON
    # only): a repeat of the recipe writes the same bytes
    recipe = {k: v for k, v in meta.items() if k not in ("train_time_s", "date")}
    save_file(state, str(out), metadata={"petlbench": json.dumps(recipe, sort_keys=True)})
    meta["sha256"] = file_sha256(out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
