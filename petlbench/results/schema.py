"""The one results schema: ``RunResult`` (one stored row; every CSV column and JSON field is derived from it), the
metrics a view can rank by, and how memory kinds are named."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class RunResult:
    """One run. Units are in the field names: ``_pct`` %, ``_s`` seconds, ``_mb`` MiB,
    ``gmacs`` GMAC per image, ``_img_s`` images per second; params are counts."""

    # identity
    run_id: str = ""
    timestamp: str = ""  # UTC ISO-8601
    method: str = ""
    dataset: str = ""
    model: str = ""
    seed: int = 0
    label: str = ""  # suite group label (e.g. "random-init"), empty otherwise
    track: str = "vision"  # vision | vl: the dataset's kind (petlbench.tracks); compare never mixes tracks
    metric: str = "top1"  # what top1_pct holds: top1 (accuracy) | vqa_score (soft VQA score, VQAv2's metric)
    modality: str = "both"  # VL: both, or a single-modality baseline (text | image)
    selection: bool = False  # a tune selection run (train -> val; no test score): not a result
    method_note: str = ""  # the method's own label, e.g. "re-implementation (no official code)"
    suite: str = ""
    config_hash: str = ""  # identity of the run (incl. seed): re-runs are skipped unless --force
    group_hash: str = ""  # the same without the seed: rows that aggregate together
    status: str = "ok"  # ok | diverged | failed
    error: str = ""
    # quality
    top1_pct: float = math.nan  # test split, evaluated once after training
    top1_val_pct: float = math.nan  # val split after the last epoch (not used for selection)
    loss_train: float = math.nan
    # efficiency
    params_total: int = 0
    params_trainable: int = 0
    params_trainable_excl_head: int = 0
    params_added: int = 0
    gmacs: float = math.nan  # inference model after finalize
    gmacs_backbone: float = math.nan
    gmacs_vision: float = math.nan  # VL: the frozen visual encoder alone (included in gmacs)
    train_img_s: float = math.nan
    infer_img_s: float = math.nan
    peak_mem_train_mb: float = math.nan
    peak_mem_kind: str = ""  # cuda_max_allocated | cpu_peak_rss_run | cpu_peak_rss_process (measure.PeakMemory)
    time_search_s: float = 0.0
    time_train_s: float = math.nan
    time_total_s: float = math.nan
    # recipe (resolved)
    optimizer: str = ""
    lr: float = math.nan
    weight_decay: float = math.nan
    epochs: int = 0
    warmup_epochs: int = 0
    batch_size: int = 0
    steps: int = 0
    precision: str = ""  # fp32 | bf16 (autocast), resolved from --precision; empty in rows stored before it
    amp: bool = False  # precision == "bf16" (the column before --precision)
    precision_reason: str = ""  # why: "asked", or auto's evidence (numerics.resolve_precision)
    deterministic: bool = False  # torch.use_deterministic_algorithms (+ cuBLAS workspace) was on
    compile: bool = False  # the model was trained through torch.compile
    flush_denormal: bool = False  # CPU: denormals flushed to zero on every compute thread (numerics.py)
    # head-only methods: "on" (frozen features computed once, the head trained on them) or "off: <why>"; "" = n/a
    feature_cache: str = ""
    device: str = ""
    processes: int = 1  # processes that trained the run together (torchrun DDP); batch_size is the global batch
    frozen_backbone_mode: str = ""
    limit: int = 0
    trainval: bool = False
    # provenance
    weights_source: str = ""
    weights_sha256: str = ""
    data_source: str = ""
    data_group: str = ""  # VTAB group: natural | specialized | structured
    data_fingerprint: str = ""  # JSON {split: sha256[:16]}
    preprocessing: str = ""  # how images became model inputs (data.Preprocess.describe)
    protocol: str = ""  # the preprocessing protocol asked for (data.protocols); empty in rows stored before it
    num_classes: int = 0
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    git_commit: str = ""
    petlbench_version: str = ""
    torch_version: str = ""
    timm_version: str = ""
    python_version: str = ""
    device_name: str = ""
    # the load the run started under, to judge its img/s by (provenance.machine_load): the 1-minute load average
    # (runnable processes, all of this machine's) and the cores this process may use; empty in rows stored before
    load_avg_1m: float = math.nan
    cpu_cores: int = 0
    hostname: str = ""
    schema_version: int = SCHEMA_VERSION
    method_config: str = ""  # JSON
    method_stats: str = ""  # JSON, method-specific numbers
    tune: str = ""  # JSON, final runs of `petlbench tune`: the grid, each point's val score, the choice

    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # JSON record only

    def summary(self) -> str:
        """One line for progress output: the test top-1 (a selection run has none: its val top-1), time."""
        if self.status != "ok":
            return f"{self.status}: {self.error}"
        metric = METRIC_NAMES[self.metric]
        score = f"{metric} {self.top1_pct:.2f}%" if not math.isnan(self.top1_pct) else \
            f"val {metric} {self.top1_val_pct:.2f}% (selection run, no test split)"
        return f"{score}  ({self.time_total_s:.1f} s)"


COLUMNS = [f.name for f in dataclasses.fields(RunResult) if f.name != "extra"]


METRIC_NAMES = {"top1": "top-1", "vqa_score": "VQA score"}  # how each ``metric`` value is shown (in %)


# how each ``peak_mem_kind`` is shown; cpu_peak_rss: rows stored before the run/process split (whole process)
PEAK_MEM_KINDS = {"cuda_max_allocated": "CUDA max allocated", "cpu_peak_rss_run": "CPU peak RSS during the run",
                  "cpu_peak_rss_process": "CPU peak RSS of the whole process",
                  "cpu_peak_rss": "CPU peak RSS of the whole process (before 0.2)"}


def mem_kind_name(kind: str) -> str:
    """The readable name of a ``peak_mem_kind`` ('not recorded' when empty)."""
    return PEAK_MEM_KINDS.get(kind, kind) if kind else "not recorded"


_TYPES = {f.name: f.type for f in dataclasses.fields(RunResult)}


# metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "top1_pct": ("top-1 %", True),
    "params_trainable": ("trainable", False),
    "params_trainable_excl_head": ("trainable excl. head", False),
    "gmacs": ("GMACs", False),
    "train_img_s": ("train img/s", True),
    "infer_img_s": ("infer img/s", True),
    "peak_mem_train_mb": ("peak mem MiB", False),
    "time_train_s": ("train s", False),
}
