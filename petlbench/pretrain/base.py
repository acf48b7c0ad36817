"""The pretraining recipes' contract and the one driver behind ``petlbench pretrain --data NAME``.

A recipe (``Recipe``, registered with ``@register``) is one bundled weights file's whole story: its ``--data`` name,
the bundled model it makes, its config (a ``RecipeConfig`` subclass: the committed file's defaults and the recipe's
research options, each field citing its source), what it ``build``s, its ``objective`` (what one step trains and
how the result is scored on held-out data) and the ``state`` it saves. ``pretrain`` runs any recipe the same way:
check the config, seed, build, the engine's ``fit`` (AdamW with weight decay 0.05, none on biases, norm weights,
position embeddings and class tokens; linear warm-up over 5% of the steps, then cosine to 0), score, save the
state as safetensors with the recipe's facts beside it (``.json``).

A repeat of a recipe writes the same bytes: the safetensors metadata holds the recipe's facts without the run's
time and date, and its research options only where they differ from the recipe's defaults (the JSON lists them
all).
"""

from __future__ import annotations

import json
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from torch import nn

from petlbench.config.method_config import Range, build_method_config, parse_sets, to_dict
from petlbench.errors import UserError
from petlbench.registry import Registry, discover_modules

DEFAULT = "fashion-mnist"  # the default backbone's recipe: `petlbench pretrain` without --data
WEIGHT_DECAY = 0.05
WARMUP_FRAC = 0.05
EMA_WEIGHT = 0.02  # of the newest step in the reported loss / accuracy EMAs


@dataclass(frozen=True)
class RecipeConfig:
    """What every recipe takes (``petlbench pretrain`` flags); a recipe's subclass re-declares the defaults of its
    committed file and adds its research options (``--set key=value``)."""

    steps: Annotated[int, Range(ge=1)] = 3000  # optimizer steps
    batch_size: Annotated[int, Range(ge=1)] = 64
    lr: Annotated[float, Range(gt=0)] = 1e-3
    seed: int = 0
    device: str = "cpu"  # where it trains; only recipes with ``Recipe.devices`` leave the CPU
    held_out: Annotated[int | None, Range(ge=1)] = None  # held-out samples scored after training (None: the recipe's)

    # flags of `pretrain` and sizes the facts state (the pool of training samples), not research options
    COMMON = ("steps", "batch_size", "lr", "seed", "device", "held_out", "pool")

    def options(self) -> dict[str, Any]:
        """The recipe's research options (everything but ``COMMON``), with their values."""
        return {k: v for k, v in to_dict(self).items() if k not in self.COMMON}


Step = Callable[[np.random.Generator], tuple[torch.Tensor, float]]  # one batch drawn with the rng -> (loss, acc %)


@dataclass
class Objective:
    """What a recipe trains and how it is scored: ``modules`` (the model and its pretraining heads: everything
    whose trainable parameters ``fit`` steps), ``step``, ``evaluate`` (held-out scores after training), the size of
    the training pool (for the epochs), the name of the accuracy ``step`` reports, and the recipe's facts about its
    data, objective and augmentation (the provenance)."""

    modules: nn.Module
    step: Step
    evaluate: Callable[[], dict[str, Any]]
    pool: int
    accuracy: str
    facts: dict[str, Any]
    corpus: list[str] | None = None  # the training texts, where there are any (what a saved vocabulary keeps)


class Recipe(ABC):
    """One ``--data`` recipe (see the module docstring)."""

    name: str = ""  # --data
    model: str = ""  # the bundled model it makes (the default output: <model>.safetensors)
    description: str = ""  # one line for `petlbench list recipes` and `pretrain --help`
    Config: type[RecipeConfig] = RecipeConfig
    devices: bool = False  # whether it may train on another device than the CPU (--device)

    @abstractmethod
    def build(self, cfg: RecipeConfig, device: torch.device) -> tuple[nn.Module, Any]:
        """The model to pretrain (on ``device``) and its image preprocessing (``data.preprocess.Preprocess``)."""

    @abstractmethod
    def objective(self, model: nn.Module, prep: Any, cfg: RecipeConfig, rng: np.random.Generator) -> Objective:
        """What one step trains, and how the result is scored."""

    def state(self, model: nn.Module, objective: Objective) -> dict[str, torch.Tensor]:
        """What is saved: by default the model's state without its head."""
        from petlbench.models.weights import backbone_state

        return backbone_state(model)

    def config(self, values: dict[str, Any], sets: list[str] = ()) -> RecipeConfig:
        """``Config`` from flag values and ``--set key=value`` strings, checked as method configs are."""
        parsed = parse_sets(list(sets), self.Config, self.name, "pretraining recipe")
        return build_method_config(self.Config, {**values, **parsed}, self.name, "pretraining recipe")


def _discover() -> None:
    import petlbench.pretrain as pkg

    discover_modules(pkg, skip={"base"})


RECIPES: Registry[Recipe] = Registry("pretraining recipe", "run 'petlbench list recipes' to see them",
                                     discover=_discover)


def register(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: ``@register`` on a ``Recipe`` subclass with a unique ``name``."""
    RECIPES.add(cls.name, cls())
    return cls


def pretrain(data: str = DEFAULT, out: Path | None = None, *, threads: int | None = None, reporter=None,
             sets: list[str] = (), **values: Any) -> dict[str, Any]:
    """Run recipe ``data`` with flag ``values`` (``steps``, ``lr``, ...; the recipe's defaults otherwise) and
    ``--set`` strings; save to ``out`` (None: ``<model>.safetensors`` here) and return the provenance written
    beside it (``.json``)."""
    from petlbench.engine.build import resolve_device
    from petlbench.engine.loop import Reporter

    recipe = RECIPES.get(data)
    cfg = recipe.config(values, sets)
    if cfg.device != "cpu" and not recipe.devices:
        raise UserError(f"--device {cfg.device} is for --data {' / '.join(n for n, r in RECIPES.all().items() if r.devices)}"
                        f" only; drop --device for {data}")
    device = resolve_device(cfg.device)
    out = Path(out) if out is not None else Path(f"{recipe.model}.safetensors")
    if out.suffix != ".safetensors":
        raise UserError(f"output '{out}' must end in .safetensors")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng, t0 = np.random.default_rng(cfg.seed), time.time()
    model, prep = recipe.build(cfg, device)
    objective = recipe.objective(model, prep, cfg, rng)
    loss, acc = train(objective.modules, objective.step, cfg, rng, reporter or Reporter())
    facts = {"epochs": round(cfg.steps * cfg.batch_size / objective.pool, 2), "final_train_loss_ema": round(loss, 4),
             f"final_train_{objective.accuracy}_ema": round(acc, 2), **objective.evaluate(), **objective.facts}
    run = {"model": recipe.model, "arch": type(model).__name__, **facts, "seed": cfg.seed,
           "train_time_s": round(time.time() - t0, 1), **({"device": cfg.device} if cfg.device != "cpu" else {})}
    return save(recipe.state(model, objective), out, prep, cfg, run)


def train(modules: nn.Module, step: Step, cfg: RecipeConfig, rng: np.random.Generator,
          reporter) -> tuple[float, float]:
    """The engine's ``fit`` with the pretraining recipe (see the module docstring); (loss EMA, accuracy EMA)."""
    from petlbench.engine.loop import fit
    from petlbench.methods.base import MethodConfig

    recipe = MethodConfig(optimizer="adamw", lr=cfg.lr, weight_decay=WEIGHT_DECAY, wd_bias_norm=False)
    embeddings = {id(p) for name, p in modules.named_parameters() if name.endswith(("pos_embed", "cls_token"))}
    accs: list[float] = []

    def loss(rng: np.random.Generator) -> torch.Tensor:
        value, acc = step(rng)
        accs.append(acc)
        return value

    losses = fit(modules, loss, [rng] * cfg.steps, recipe, warmup_steps=warmup_steps(cfg.steps), no_decay=embeddings,
                 frozen_backbone_mode="train", reporter=reporter, description="pretrain", ema_weight=EMA_WEIGHT,
                 images_per_step=cfg.batch_size)
    return _ema(losses), _ema(accs)


def warmup_steps(steps: int) -> int:
    return max(1, int(WARMUP_FRAC * steps))


def _ema(values: list[float]) -> float:
    from petlbench.engine.loop import ema

    avg = None
    for v in values:
        avg = ema(avg, v, EMA_WEIGHT)
    return float(avg)


def save(state: dict[str, torch.Tensor], out: Path, prep, cfg: RecipeConfig, run: dict[str, Any]) -> dict[str, Any]:
    """``state`` as safetensors at ``out`` + the provenance JSON next to it (``run``: the recipe's facts and
    scores); returns the provenance."""
    import timm
    from safetensors.torch import save_file

    from petlbench.models.weights import file_sha256

    defaults = cfg.__class__().options()
    changed = {k: v for k, v in cfg.options().items() if v != defaults[k]}
    meta = {
        **{k: run.pop(k) for k in ("model", "arch")}, "steps": cfg.steps, "batch_size": cfg.batch_size,
        "epochs": run.pop("epochs"), "lr": cfg.lr, "weight_decay": WEIGHT_DECAY,
        "schedule": f"linear warm-up {warmup_steps(cfg.steps)} steps, cosine to 0",
        **run, **({"options": changed} if changed else {}), "threads": torch.get_num_threads(),
        "input_size": list(prep.input_size), "mean": list(prep.mean), "std": list(prep.std),
        "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # one metadata key (safetensors writes several in hash order) without the run's time and date (in the JSON
    # only): a repeat of the recipe writes the same bytes
    recipe = {k: v for k, v in meta.items() if k not in ("train_time_s", "date")}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"petlbench": json.dumps(recipe, sort_keys=True)})
    meta = {**meta, "options": cfg.options(), "sha256": file_sha256(out)}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class MicroViTRecipe(Recipe):
    """A recipe that pretrains the bundled micro ViT's architecture with a ``head`` of that many classes (0: none)."""

    head: int = 0

    def build(self, cfg: RecipeConfig, device: torch.device) -> tuple[nn.Module, Any]:
        return micro_vit(self.head)


def micro_vit(num_classes: int) -> tuple[nn.Module, Any]:
    """The bundled micro ViT's architecture at random with a ``num_classes`` head, every parameter trainable, and its
    preprocessing."""
    from petlbench.models.backbones import create_backbone, data_config

    model = create_backbone("petl_vit_micro", num_classes, pretrained=False)[0].requires_grad_(True)
    return model, preprocessing(data_config(model))


def preprocessing(data_cfg: dict[str, Any]):
    """The image preprocessing downstream data gets with this data config (input size, mean, std)."""
    from petlbench.data.preprocess import Preprocess

    return Preprocess(data_cfg["input_size"], data_cfg["mean"], data_cfg["std"])


def list_recipes() -> list[tuple[str, str, str, str]]:
    """(name, the model it makes, its research options with their defaults, description) per recipe."""
    return [(name + (" (default)" if name == DEFAULT else ""), r.model,
             ", ".join(f"{k}={v}" for k, v in r.Config().options().items()), r.description)
            for name, r in RECIPES.all().items()]
