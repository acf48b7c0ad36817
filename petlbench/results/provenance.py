"""Where a result came from: the code (git commit), the software versions and the machine."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _installed_commit() -> str:
    """Commit of a non-editable install from git (``pip install git+...``), per PEP 610 direct_url.json."""
    from importlib import metadata

    try:
        info = json.loads(metadata.distribution("petlbench").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, json.JSONDecodeError):
        return ""
    return str(info.get("vcs_info", {}).get("commit_id", ""))[:12]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The source checkout's ``HEAD`` (``-dirty`` if tracked files changed), else the PEP 610 commit."""
    root = Path(__file__).resolve().parents[2]  # petlbench/results/provenance.py -> the checkout
    if not (root / "pyproject.toml").is_file():  # installed into site-packages, not a source checkout
        return _installed_commit()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return _installed_commit()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip()[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(device: torch.device) -> dict[str, str]:
    """The provenance columns of a result row (torch imported here: the CLI reads ``cores`` without it)."""
    import timm
    import torch

    from petlbench import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "git_commit": git_commit(), "petlbench_version": __version__, "torch_version": torch.__version__,
        "timm_version": timm.__version__, "python_version": platform.python_version(),
        "device_name": f"{name} ({torch.get_num_threads()} threads)" if device.type == "cpu" else name,
        "hostname": socket.gethostname(),
    }


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_load() -> dict[str, Any]:
    """The load a run starts under (stored with its row): the 1-minute load average and the usable cores. A load
    above the cores means the run shared them, and its img/s are lower than the machine's."""
    return {"load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan, "cpu_cores": cores()}
