"""Run options, declared once.

Every option of one run is a field of ``RunConfig`` with an ``Opt`` in its metadata. From that one
declaration petlbench derives the ``petlbench run`` command-line options (``typer_parameters``), the keys a
suite TOML may set (``SUITE_KEYS``), the command ``suite --print-commands`` prints (``as_command``), the run
identity that is hashed into ``config_hash`` (``identity``) and the stored row (``results.schema.RunResult`` keeps
the recorded ones under the same names). Adding an option = adding one field here.

Method-config keys (the training recipe and each method's own keys) are declared in the method's config
dataclass instead (``methods/base.py``); the shared recipe keys that also have a flag (``--lr``, ...) say so
with ``flag=True`` in their own metadata.
"""

from __future__ import annotations

import dataclasses
import inspect
import shlex
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import typer

from petlbench.config.method_config import stable_hash, to_dict
from petlbench.data.protocols import DEFAULT_PROTOCOL, PROTOCOLS

# the default of --precision: see docs/results.md "bf16 parity" and docs/speed.md for the evidence that decided it
DEFAULT_PRECISION = "auto"


@dataclass(frozen=True)
class Opt:
    """How a run option appears: help text, whether it is part of the run identity, on the command line
    (``cli``) and in suites (``suite``); ``flag`` overrides the derived ``--name`` (e.g. a bool's
    ``--no-pretrained`` form)."""

    help: str
    identity: bool = True
    neutral: bool = False  # in the identity only when it differs from its default (added after results existed)
    cli: bool = True
    suite: bool = True
    flag: str | None = None
    hidden: bool = False


def opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"opt": Opt(help, **kw)})


@dataclass
class RunConfig:
    """One run: a method on a dataset with a model and a seed, plus how to run it."""

    method: str = opt("", "method name", cli=False, suite=False)  # the command's argument / suite 'methods'
    dataset: str | None = opt(None, "built-in name, hub name or local path (default: the offline default task)",
                              suite=False)  # suites list 'datasets'
    model: str | None = opt(None, "timm model name, VL pair TEXT+VISION, or bundled model (default: bundled)")
    img_size: int | None = opt(None, "ViT input resolution (default: the model's)")
    # how images become inputs, as the paper a result is compared with does it (data.protocols); neutral: rows stored
    # before it keep their config hashes
    protocol: Literal[tuple(PROTOCOLS)] = opt(  # type: ignore[valid-type]
        DEFAULT_PROTOCOL, f"image preprocessing: {' | '.join(PROTOCOLS)} (model: squash, bilinear, the model's "
        "mean/std; the others: the papers' loaders, docs/protocol.md); recorded", neutral=True)
    # the VL track's single-modality baselines (vl.VLModel): rows apart from the both-modality ones
    modality: Literal["both", "text", "image"] = opt(
        "both", "VL models: both modalities, or a baseline that sees only the text (no image) or only the image "
                "(text cut to [CLS] [SEP])", neutral=True)
    # weights/pretrained are identified by what they resolve to (weights_source, weights_sha256), not the path
    weights: str | None = opt(None, "local .safetensors / torch state dict", identity=False)
    pretrained: bool = opt(True, "pretrained weights (--no-pretrained: random init)", identity=False,
                           flag="--pretrained/--no-pretrained")
    seed: int = opt(0, "seed", cli=False, suite=False)  # `run --seeds 0,1,2` / suite 'seeds'
    device: str = opt("auto", "auto | cpu | cuda[:N]", identity=False)
    # the run identity holds the resolved fp32 | bf16 (engine.build.prepare_run), hashed as the former bool 'amp'
    precision: Literal["auto", "fp32", "bf16"] = opt(
        DEFAULT_PRECISION, "auto (bf16 on a CUDA GPU with bf16 and on a CPU with AMX or AVX512-BF16, else fp32) | "
        "fp32 | bf16 (autocast; losses and reductions stay fp32)")
    deterministic: bool = opt(False, "deterministic kernels only (torch.use_deterministic_algorithms + cuBLAS "
                                     "workspace; GPU reproducibility)", identity=False,
                              flag="--deterministic/--no-deterministic")
    limit: int | None = opt(None, "cap images per split (quick runs, CI)")
    # resolved per backbone family before the run (engine.build.prepare_run; the resolved value is recorded and
    # hashed, so vision runs keep the identity they had when 'eval' was the default)
    frozen_backbone_mode: Literal["auto", "eval", "train"] = opt(
        "auto", "dropout/drop-path of frozen backbone modules: auto (the backbone family's policy: eval on vision "
                "backbones, train on VL backbones as their official code), eval (off) or train (on); recorded")
    num_workers: int = opt(0, "DataLoader workers for lazily decoded data", identity=False)
    compile: bool = opt(False, "torch.compile the model for training (same numbers up to float noise; "
                               "the first steps compile)", identity=False, flag="--compile/--no-compile")
    trainval: bool = opt(False, "train on train+val, test once (the final VTAB-1k run)",
                         flag="--trainval/--no-trainval")
    label: str = opt("", "tag stored with the run (part of its identity), e.g. a suite group")
    # a hyper-parameter selection run of `petlbench tune`: trains on train, is scored on val, never sees test
    selection: bool = opt(False, "selection run (train -> val only; used by tune)", neutral=True, hidden=True,
                          suite=False, flag="--selection/--no-selection")
    # a tune's final run: how its hyper-parameters were chosen (JSON; provenance, not identity)
    tune: str = opt("", "the tune record of a final run (JSON)", identity=False, hidden=True, suite=False)
    suite: str = opt("", "suite the run belongs to", identity=False, hidden=True)
    overrides: dict[str, Any] = field(default_factory=dict)  # method-config keys (recipe included)


def options() -> list[dataclasses.Field]:
    """The declared run options (fields with an ``Opt``), in declaration order."""
    return [f for f in dataclasses.fields(RunConfig) if "opt" in f.metadata]


def _meta(f: dataclasses.Field) -> Opt:
    return f.metadata["opt"]


SUITE_KEYS = frozenset(f.name for f in options() if _meta(f).suite)
IDENTITY_KEYS = tuple(f.name for f in options() if _meta(f).identity)


def flag_of(f: dataclasses.Field) -> str:
    """The option's command-line form (for bools the positive half of ``--x/--no-x``)."""
    m = _meta(f)
    return (m.flag or f"--{f.name.replace('_', '-')}").split("/")[0]


def recipe_flags() -> dict[str, tuple[Any, str]]:
    """Shared recipe keys with their own flag (``--lr``): name -> (type, help), from ``MethodConfig``."""
    from petlbench.config.method_config import Flag, field_meta, field_types
    from petlbench.methods.recipe import MethodConfig

    types_ = field_types(MethodConfig)
    out = {}
    for f in dataclasses.fields(MethodConfig):
        flag = next((m for m in field_meta(MethodConfig, f.name) if isinstance(m, Flag)), None)
        if flag is not None:
            out[f.name] = (types_[f.name], flag.help)
    return out


def option_parameters(cls: type) -> list[inspect.Parameter]:
    """Typer parameters for the command-line fields (with an ``Opt``) of dataclass ``cls``, typed from it."""
    hints, params = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        m = f.metadata.get("opt")
        if m is None or not m.cli:
            continue
        decls = [m.flag] if m.flag else [f"--{f.name.replace('_', '-')}"]
        ann = Annotated[hints[f.name], typer.Option(*decls, help=m.help, hidden=m.hidden)]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=ann))
    return params


def typer_parameters() -> list[inspect.Parameter]:
    """``petlbench run`` parameters for every command-line option and recipe flag, typed from the declaration."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=Annotated[tp | None, typer.Option(help=f"{help} (default: the recipe's)")])
              for name, (tp, help) in recipe_flags().items()]
    return params + option_parameters(RunConfig)


def with_parameters(fn, params: list[inspect.Parameter]):
    """Give ``fn(**kw)`` ``params`` as extra Typer parameters (``fn`` gets them as kwargs)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = sig.replace(parameters=own + params)
    fn.__annotations__ = {**getattr(fn, "__annotations__", {}), **{p.name: p.annotation for p in params}}
    return fn


def with_run_options(fn):
    """Give ``fn(**kw)`` the declared run options as extra Typer parameters (``fn`` gets them as kwargs)."""
    return with_parameters(fn, typer_parameters())


def as_command(cfg: RunConfig, out: str) -> str:
    """The ``petlbench run`` command that reproduces ``cfg`` (every option that differs from its default)."""
    parts = ["petlbench", "run", cfg.method, "--seeds", str(cfg.seed), "--out", out]
    for f in options():
        value, m = getattr(cfg, f.name), _meta(f)
        if not m.cli or value == f.default:
            continue
        if isinstance(value, bool):
            pos, _, neg = (m.flag or f"--{f.name.replace('_', '-')}").partition("/")
            parts.append(pos if value else neg)
        else:
            parts += [flag_of(f), str(value)]
    for k, v in cfg.overrides.items():
        v = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v).lower() if isinstance(v, bool) else v
        parts += ["--set", f"{k}={v}"]
    return " ".join(shlex.quote(str(p)) for p in parts)


def identity(cfg: RunConfig, method_config: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """What determines a run's outcome: the identity options of the *resolved* config (dataset and model
    names filled in), the method config (``config.identity_config``) and resolved facts (data
    fingerprint, weights source and hash)."""
    from petlbench.config.method_config import identity_config

    neutral = {f.name: f.default for f in options() if _meta(f).neutral}
    opts = {k: getattr(cfg, k) for k in IDENTITY_KEYS if not (k in neutral and getattr(cfg, k) == neutral[k])}
    if "precision" in opts:  # resolved fp32 | bf16, hashed as the bool it replaced: stored hashes stay valid
        if opts["precision"] not in ("fp32", "bf16"):
            raise ValueError(f"identity of an unresolved precision '{opts['precision']}'")
        opts["amp"] = opts.pop("precision") == "bf16"
    if opts.get("frozen_backbone_mode") == "auto":
        raise ValueError("identity of an unresolved frozen_backbone_mode 'auto'")
    return {**opts, "method_config": identity_config(method_config), **facts}


def config_hash(ident: dict[str, Any]) -> str:
    return stable_hash(ident)


def group_hash(ident: dict[str, Any]) -> str:
    """The identity without the seed: rows that aggregate together."""
    return stable_hash({k: v for k, v in ident.items() if k != "seed"})


__all__ = ["RunConfig", "Opt", "options", "SUITE_KEYS", "IDENTITY_KEYS", "typer_parameters", "with_run_options",
           "option_parameters", "with_parameters", "as_command", "identity", "config_hash", "group_hash", "to_dict"]
