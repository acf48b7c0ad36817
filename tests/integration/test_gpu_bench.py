"""benchmarks/perf/gpu_bench.py's wiring on the CPU with a tiny model (no GPU in tests; the numbers mean nothing and
are not asserted): every section writes its rows, and ``suite --plan`` takes a result file of a device as that
device's measured throughput."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "gpu_bench.py"


def _gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_runs_every_section_on_a_tiny_model(tmp_path):
    bench = _gpu_bench()
    args = bench.options(["--tiny", "--device", "cpu", "--methods", "lora,full", "--precisions", "bf16,fp32"])
    result = bench.run(args)
    rows = result["rows"]
    vit = {(r["method"], r["precision"], r["impl"]) for r in rows if r["section"] == "vit"}
    assert vit == {(m, p, i) for m in ("lora", "full") for p in ("bf16", "fp32") for i in ("petl", "bare")}
    assert all(r["img_s"] > 0 and r["gflop"] > 0 and r["mfu"] is None for r in rows if r["section"] == "vit")
    assert all(r["ratio_to_bare"] == 1.0 for r in rows if r.get("impl") == "bare" and r["section"] == "vit")
    (compiled,) = [r for r in rows if r["section"] == "compile"]
    assert compiled["method"] == "lora" and compiled["speedup"] > 0 and compiled["backend"] == "eager"
    (data,) = [r for r in rows if r["section"] == "data"]
    assert data["images"] == 8 and data["step_consumes_img_s"] > 0 and isinstance(data["feeds_the_step"], bool)
    assert {r["method"] for r in rows if r["section"] == "vilt"} == {"apt", "full"}
    assert result["machine"]["tiny"] and result["machine"]["device_type"] == "cpu"
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN in the file the plan reads


def test_a_gpu_bench_file_is_the_measured_throughput_of_its_device(tmp_path):
    from petlbench.engine.plan import DEVICES, throughput

    rows = [{"section": "vit", "method": "lora", "precision": "bf16", "impl": "petl", "gflop_s": 300_000.0},
            {"section": "vit", "method": "full", "precision": "bf16", "impl": "petl", "gflop_s": 400_000.0},
            {"section": "vit", "method": "lora", "precision": "bf16", "impl": "bare", "gflop_s": 1.0}]
    (tmp_path / "results-gpu-h100.json").write_text(json.dumps({"machine": {"device": "NVIDIA H100 80GB HBM3"},
                                                                 "rows": rows}))
    h100 = DEVICES["H100"]
    flops, source = throughput(h100, "NVIDIA H100 80GB HBM3", "lora", "bf16", tmp_path)
    assert flops == 300_000e9 and source == "measured: results-gpu-h100.json (this method)"
    assert throughput(h100, "NVIDIA H100 80GB HBM3", "vpt", "bf16", tmp_path)[1].endswith("(the median of its methods)")
    flops, source = throughput(h100, "NVIDIA H100 PCIe", "lora", "bf16", tmp_path)  # another device: assumed
    assert flops == pytest.approx(989e12 * 0.35) and source.startswith("assumed")
