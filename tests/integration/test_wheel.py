"""The built wheel, installed into a fresh virtual environment, runs `petlbench list methods`; it is built
from a copy of the source tree, so the test writes nothing (build/, *.egg-info) into the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


SOURCES = ("pyproject.toml", "README.md", "petlbench", "methods", "benchmarks")


def test_wheel_installs_and_lists_methods(tmp_path):
    before = sorted(p.name for p in ROOT.iterdir())
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing written into the checkout
    (wheel,) = (tmp_path / "dist").glob("petlbench-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # dependencies (torch, timm, ...) come from the dev environment through a .pth line
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    names = zipfile.ZipFile(wheel).namelist()
    assert "petlbench/methods/linear.py" in names and not any(n.startswith("methods/") for n in names)
    assert any(n.startswith("petlbench/benchmarks/") and n.endswith(".toml") for n in names)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(py), "-c", "import petlbench; print(petlbench.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # the wheel, not the source tree
    out = subprocess.run([str(env_dir / "bin" / "petlbench"), "list", "methods"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "linear" in out.stdout and "full" in out.stdout
