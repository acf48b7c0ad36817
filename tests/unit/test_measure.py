"""Measurements that must not depend on the machine: GMACs under every SDPA kernel, per-run peak memory,
one preprocessing for in-memory and lazily decoded images."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch.nn.attention import SDPBackend

from petlbench.data.images import RawData
from petlbench.data.preprocess import LazyImages, Preprocess
from petlbench.data.types import ImageSource
from petlbench.models import measure


def _cpu_backends() -> list[SDPBackend]:
    """The SDPA backends this CPU can run (math always; the CPU flash kernel where torch has it)."""
    q = torch.randn(1, 2, 5, 8)
    ok = []
    for b in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        try:
            with torch.nn.attention.sdpa_kernel(b):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            ok.append(b)
        except RuntimeError:
            pass
    return ok


@pytest.mark.parametrize("backend", _cpu_backends(), ids=lambda b: b.name)
def test_flop_count_is_the_same_under_every_available_sdpa_kernel(backend):
    torch.manual_seed(0)
    model = timm.create_model("test_vit", num_classes=5, img_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    reference = measure.count_flops(model, x, SDPBackend.MATH)
    assert measure.count_flops(model, x, backend) == reference
    # and the attention matmuls are in it: 2·N²·d MACs per block (q·kᵀ and attn·v), N = 1 + (32/16)² tokens
    n, d = 1 + (32 // 16) ** 2, model.embed_dim
    no_attn = sum(2 * m.in_features * m.out_features * n for m in model.modules() if isinstance(m, torch.nn.Linear)
                  and m is not model.head)
    assert reference > no_attn + len(model.blocks) * 2 * 2 * n * n * d - 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gmacs_of_a_cuda_model_equal_the_cpu_count():
    model = timm.create_model("test_vit", num_classes=5, img_size=32)
    cpu = measure.gmacs(model, (3, 32, 32))
    assert measure.gmacs(model.cuda(), (3, 32, 32)) == cpu
    x = torch.randn(1, 3, 32, 32, device="cuda")
    for b in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        try:
            assert measure.count_flops(model, x, b) / 2e9 == pytest.approx(cpu, rel=0, abs=0)
        except RuntimeError:  # kernel not available for this GPU / dtype
            pass


def test_peak_memory_is_per_run():
    mem = measure.PeakMemory(torch.device("cpu"))
    mem.start()
    if mem.kind != "cpu_peak_rss_run":
        pytest.skip("no resettable peak RSS on this platform (not Linux)")
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB
    big.add_(1)
    large, _ = mem.read()
    del big
    mem.start()
    small = torch.ones(2**20 // 4)
    small.add_(1)
    after, kind = mem.read()
    assert kind == "cpu_peak_rss_run"
    assert after < large - 40  # the second run does not inherit the first one's peak


def _lazy_source(tmp_path, images: np.ndarray) -> ImageSource:
    from PIL import Image

    files = []
    for i, img in enumerate(images):
        f = tmp_path / f"{i}.png"
        Image.fromarray(img).save(f)
        files.append(str(f))
    return ImageSource(files, "files:test")


@pytest.mark.parametrize("shape", [(4, 20, 28), (4, 20, 28, 3), (4, 32, 32, 3)], ids=["grey", "rgb", "same-size"])
def test_in_memory_and_lazy_paths_give_the_same_tensors(tmp_path, shape):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = np.arange(4) % 2
    pre = Preprocess((3, 32, 32), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    eager = pre(images)
    lazy = LazyImages(_lazy_source(tmp_path, images), labels, pre)
    assert torch.equal(torch.stack([lazy[i][0] for i in range(4)]), eager)


def test_lazy_images_are_squashed_not_cropped(tmp_path):
    # a 16×64 image whose left and right quarters are white: a centre crop would lose them
    img = np.zeros((1, 16, 64, 3), dtype=np.uint8)
    img[:, :, :16] = img[:, :, 48:] = 255
    raw = RawData("t", {"train": (_lazy_source(tmp_path, img), np.zeros(1, np.int64)),
                        "test": (_lazy_source(tmp_path, img), np.zeros(1, np.int64))}, ["a"], "folder:t")
    cfg = {"input_size": (3, 16, 16), "mean": (0, 0, 0), "std": (1, 1, 1)}
    splits = raw.prepare(cfg)
    x = splits.train[0][0]
    assert x.shape == (3, 16, 16)
    assert x[:, :, 0].min() > 0.9 and x[:, :, -1].min() > 0.9 and x[:, :, 8].max() < 0.1
    assert "squash, no crop" in splits.preprocessing


def _resettable_peak() -> bool:
    mem = measure.PeakMemory(torch.device("cpu"))
    mem.start()
    return mem.kind == "cpu_peak_rss_run"
