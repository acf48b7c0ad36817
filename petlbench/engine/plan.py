"""What a suite will cost before anything runs (``petlbench suite NAME --plan``), offline: per job its training steps,
GMACs, training compute, estimated device time and peak memory; for the suite the device-hours and the downloads.

* Steps: the recipe the run would resolve (``build.resolve_overrides``: the method's published recipe for the task
  and backbone kind, the suite's keys over it) on the data's sizes (``datasets.planned``: a paper task's full release,
  else the data itself): ``ceil(samples / batch) * epochs``, ``samples`` = train (+ val under ``trainval``).
* GMACs: inference multiply-accumulates per sample as ``inspect`` counts them (``models.measure.gmacs``), on a model
  built on the ``meta`` device (shapes only); a method whose forward reads values (an equilibrium solver, a search)
  or a backbone whose masks do, is built at random on the CPU once; both cached in the petlbench cache.
* Training compute per sample and step: forward + backward = ``TRAIN_MULT`` x 2 x MACs (full fine-tuning also forms
  the weight gradients: 3; a PETL method propagates through the frozen backbone: 2; a head-only method: 1), plus one
  forward per val sample each epoch and per test sample once. A search stage (DAS, DVP) is not counted.
* Throughput: the device's peak FLOP/s in the run's precision times a model-FLOPs utilisation: measured on this kind
  of device when a committed measurement exists (``benchmarks/perf/results-*.json``, rows of the same method where
  there are), else the documented assumption of ``DEVICES``.
* Peak memory: weights (4 B per parameter) + gradients and AdamW's two moments (12 B per trainable parameter) + the
  activations every block keeps for the backward pass, Korthikanti et al. 2022 (eq. 1): ``s*b*h*(34 + 5*a*s/h)``
  bytes per layer in 16-bit activations (twice that in fp32), ``s`` tokens, ``h`` width, ``a = h / 64`` heads; none for
  a head-only method. An estimate: the allocator, the workspace and what a method keeps besides are not in it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from petlbench.config.method_config import build_method_config
from petlbench.config.options import RunConfig
from petlbench.datasets import Planned, planned
from petlbench.engine.build import resolve_overrides
from petlbench.registry import METHODS

TRAIN_MULT = {"full": 3.0, "head": 1.0, "petl": 2.0}  # forward + backward in forward units (Kaplan et al. 2020, 2.1)
HEAD_ONLY = frozenset({"linear"})  # methods that train the head alone: no backward through the backbone


@dataclass(frozen=True)
class Device:
    """A device kind: peak dense FLOP/s and the assumed model-FLOPs utilisation, by precision; its memory."""

    name: str
    peak: dict[str, float]  # precision -> FLOP/s
    mfu: dict[str, float]  # precision -> the share of ``peak`` a training step reaches (assumed)
    memory_gb: float
    source: str


_GPU_MFU = {"bf16": 0.35, "fp32": 0.35}  # our assumption for ViT-B/16-sized training steps, until gpu_bench.py measures
DEVICES = {  # GPU peaks: NVIDIA datasheets (SXM, dense; fp32 without TF32, as --precision fp32 runs)
    "H100": Device("NVIDIA H100", {"bf16": 989e12, "fp32": 67e12}, _GPU_MFU, 80,
                   "H100 SXM datasheet: 989 TFLOP/s bf16 dense, 67 fp32; MFU 35%: our assumption"),
    "H200": Device("NVIDIA H200", {"bf16": 989e12, "fp32": 67e12}, _GPU_MFU, 141,
                   "H200 SXM datasheet: the H100's compute, 141 GB; MFU 35%: our assumption"),
    "A100": Device("NVIDIA A100", {"bf16": 312e12, "fp32": 19.5e12}, _GPU_MFU, 80,
                   "A100 SXM datasheet: 312 TFLOP/s bf16 dense, 19.5 fp32; MFU 35%: our assumption"),
    "cpu": Device("CPU", {"bf16": 2875e9, "fp32": 385e9}, {"bf16": 0.24, "fp32": 0.75}, 128,
                  "GEMM ceilings measured on a 2-thread Xeon with AMX (docs/speed.md: 364-406 GFLOP/s fp32, "
                  "2,700-3,050 bf16) and the share ViT-B/16 training steps reached there (73-78% fp32, 23-26% bf16)"),
}


@dataclass
class Counted:
    """A built model's counts at ``classes``: GMACs per sample, parameters, (tokens, width) of each block's input,
    and the width of its (linear) head, to count another number of classes (``at``)."""

    gmacs: float
    params: int
    trainable: int
    blocks: list[tuple[int, int]] = field(default_factory=list)
    classes: int = 0
    head_in: int = 0

    def at(self, classes: int) -> Counted:
        """The same model with a head of ``classes`` outputs (a linear head's MACs and weights are in_features x
        classes, plus a bias)."""
        if not self.head_in:  # no linear head found: the count stands
            return self
        extra = (classes - self.classes) * self.head_in
        weights = extra + classes - self.classes  # + the bias
        return Counted(self.gmacs + extra / 1e9, self.params + weights, self.trainable + weights, self.blocks, classes,
                       self.head_in)


@dataclass
class JobPlan:
    """One (method, label, dataset, model) of a suite and what each of its seeds costs."""

    method: str
    label: str
    dataset: str
    model: str
    seeds: int
    precision: str
    samples: int  # per epoch
    batch: int
    epochs: int
    steps: int
    gmacs: float
    train_flop: float  # one seed: training + evaluation
    hours: float  # one seed
    peak_gb: float
    throughput_source: str = ""


# ----------------------------------------------------------------------------- counting a model


def _key(cfg: RunConfig, overrides: dict[str, Any]) -> str:
    return json.dumps([cfg.method, cfg.model, cfg.img_size, sorted(overrides.items())], default=str)


def _cache_file() -> Path | None:
    from petlbench.data import diskcache

    folder = diskcache.cache_dir()
    return folder / "plan-counts.json" if folder else None


def count(cfg: RunConfig, overrides: dict[str, Any], classes: int) -> Counted:
    """GMACs, parameters and block shapes of ``cfg``'s model with its method applied and a head of ``classes``
    (counted once per configuration, at the first number of classes asked; cached in the petlbench cache)."""
    path, key = _cache_file(), _key(cfg, overrides)
    table = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    if key not in table:
        try:
            counted = _count(cfg, overrides, classes, torch.device("meta"))
        except (RuntimeError, NotImplementedError):  # a value read on meta (a solver, a search, a mask): count a random CPU build
            counted = _count(cfg, overrides, classes, torch.device("cpu"))
        table[key] = {**vars(counted), "blocks": [list(b) for b in counted.blocks]}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(table))
    c = table[key]
    return Counted(c["gmacs"], c["params"], c["trainable"], [tuple(b) for b in c["blocks"]], c["classes"],
                   c["head_in"]).at(classes)


def _count(cfg: RunConfig, overrides: dict[str, Any], classes: int, device: torch.device) -> Counted:
    from petlbench import tracks
    from petlbench.models import measure

    cls = METHODS.get(cfg.method)
    method = cls(build_method_config(cls.Config, overrides, cfg.method))
    kwargs = {"img_size": cfg.img_size} if cfg.img_size else {}
    with torch.device(device), torch.no_grad():
        model, _, fam = tracks.create_backbone(cfg.model, classes, pretrained=False, **kwargs)
        model = tracks.apply_method(method, model, fam)
        params, trainable = (sum(p.numel() for p in model.parameters() if keep(p))
                             for keep in (lambda p: True, lambda p: p.requires_grad))
        model = method.finalize(model)
        size = fam.count_size(model, fam.data_config(model))
        blocks = _block_shapes(model, fam)
        gmacs = measure.gmacs(model, fam.example(model, size))
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_in = head.in_features if isinstance(head, torch.nn.Linear) else 0
    return Counted(gmacs, params, trainable, blocks, classes, head_in)


def _block_shapes(model: torch.nn.Module, fam: Any) -> list[tuple[int, int]]:
    """(tokens, width) of each block's input in one forward: what the activation estimate needs (hooks, then the
    forward of the GMAC count runs them)."""
    shapes: list[tuple[int, int]] = []
    layout = fam.layout(model)
    blocks = list(layout.blocks(model)) if layout.blocks is not None else []

    def hook(_module, args, kwargs):
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.ndim == 3), None)
        if x is not None:
            shapes.append((int(x.shape[1]), int(x.shape[2])))

    for b in blocks:
        b.register_forward_pre_hook(hook, with_kwargs=True)
    return shapes


# ----------------------------------------------------------------------------- throughput and memory


def perf_dir() -> Path:
    """Where the committed speed measurements lie (``benchmarks/perf/results-*.json``)."""
    from importlib import resources

    return Path(str(resources.files("petlbench.benchmarks").joinpath("perf")))


def throughput(device: Device, device_name: str, method: str, precision: str,
               perf: Path | None = None) -> tuple[float, str]:
    """Training FLOP/s of ``method`` in ``precision``: measured on a device named ``device_name`` with as many
    threads (``perf``'s ``results-*.json``, as step_bench.py / gpu_bench.py write them: rows of petlbench's step,
    ``gflop_s``; this method's, else the median of the file's), else the device's peak times its assumed
    utilisation."""
    for f in sorted((perf or perf_dir()).glob("results-*.json")):
        data = json.loads(f.read_text())
        machine = data.get("machine", {})
        same = device_name in (machine.get("cpu"), machine.get("device")) and machine.get(
            "threads", torch.get_num_threads()) == torch.get_num_threads()
        rows = [r for r in data.get("rows", []) if r.get("impl") == "petl" and r.get("precision") == precision]
        mine = [r for r in rows if r.get("method") == method]
        if same and (mine or rows):
            use = mine or rows
            flops = sorted(r["gflop_s"] for r in use)[len(use) // 2] * 1e9
            return flops, f"measured: {f.name} ({'this method' if mine else 'the median of its methods'})"
    return device.peak[precision] * device.mfu[precision], (
        f"assumed: {device.mfu[precision]:.0%} of {device.name}'s {device.peak[precision] / 1e12:g} TFLOP/s")


def activation_bytes(blocks: list[tuple[int, int]], batch: int, precision: str) -> float:
    """Korthikanti et al. 2022 eq. 1 summed over the blocks: s*b*h*(34 + 5*a*s/h) bytes (16-bit), x2 in fp32."""
    per = sum(s * batch * h * (34 + 5 * (h / 64) * s / h) for s, h in blocks)
    return per * (1 if precision == "bf16" else 2)


def peak_gb(counted: Counted, method: str, batch: int, precision: str) -> float:
    acts = 0.0 if method in HEAD_ONLY else activation_bytes(counted.blocks, batch, precision)
    return (4 * counted.params + 12 * counted.trainable + acts) / 1e9


# ----------------------------------------------------------------------------- jobs


def plan_job(cfg: RunConfig, data: Planned, seeds: int, device: Device, device_name: str) -> JobPlan:
    """The cost of one (method, dataset) of a suite on ``device``."""
    cls = METHODS.get(cfg.method)
    kind = _kind(cfg.model)
    overrides = resolve_overrides(cfg.overrides, cls.Config, data, kind)
    mcfg = build_method_config(cls.Config, overrides, cfg.method)
    samples = data.sizes["train"] + (data.sizes.get("val", 0) if cfg.trainval else 0)
    steps = math.ceil(samples / mcfg.batch_size) * mcfg.epochs
    counted = count(cfg, overrides, data.classes)
    mult = TRAIN_MULT["head" if cfg.method in HEAD_ONLY else "full" if cfg.method == "full" else "petl"]
    evals = (0 if cfg.trainval else data.sizes.get("val", 0) * mcfg.epochs) + data.sizes.get("test", 0)
    flop = 2 * counted.gmacs * 1e9 * (mult * steps * mcfg.batch_size + evals)
    precision = cfg.precision if cfg.precision != "auto" else "bf16" if device.name != "CPU" else "fp32"
    flop_s, source = throughput(device, device_name, cfg.method, precision)
    hours = flop / flop_s / 3600
    return JobPlan(cfg.method, cfg.label, data.name, cfg.model or "", seeds, precision, samples, mcfg.batch_size,
                   mcfg.epochs, steps, counted.gmacs, flop, hours, peak_gb(counted, cfg.method, mcfg.batch_size,
                                                                            precision), source)


def _kind(model: str | None) -> str | None:
    from petlbench import tracks

    return tracks.family(model).kind_of_name(model)


def this_device() -> tuple[str, str]:
    """(kind, name) of this machine's device: a GPU of ``DEVICES`` by its name, else the CPU."""
    from petlbench.engine import numerics

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        return next((k for k in DEVICES if k in name), "H100"), name
    return "cpu", numerics.cpu_model_name()


def plan_suite(name: str, device_kind: str | None = None) -> list[JobPlan]:
    """One ``JobPlan`` per (method, label, dataset, model) of suite ``name`` (its seeds counted) on ``device_kind``
    (default: this machine's; a measurement is used only for the device it was made on)."""
    here, device_name = this_device()
    device_kind = device_kind or here
    device_name = device_name if device_kind == here else ""
    from petlbench import tracks
    from petlbench.config.suites import suite_jobs

    _, jobs, _ = suite_jobs(name, need_root=False)  # a tune block's grid is not planned
    groups: dict[tuple, list[RunConfig]] = {}
    data: dict[str | None, Planned] = {}
    for job in jobs:
        d = data[job.dataset] if job.dataset in data else data.setdefault(job.dataset, planned(job.dataset))
        job = replace(job, model=tracks.resolve_model(d.track, job.model, job.method, METHODS.get(job.method).supports))
        groups.setdefault((job.method, job.label, job.dataset, job.model), []).append(job)
    device = DEVICES[device_kind]
    return [plan_job(g[0], data[g[0].dataset], len(g), device, device_name) for g in groups.values()]


def downloads(name: str) -> dict[str, float]:
    """GB to download for suite ``name`` (``fetch.ASSETS``): data and weights (models, checkpoints, tokenizers)."""
    from petlbench.fetch import assets

    out = {"data": 0.0, "weights": 0.0}
    for a in assets(name):
        out["weights" if a.kind == "hub-model" or a.dest.endswith(".ckpt") else "data"] += a.gb
    return out
