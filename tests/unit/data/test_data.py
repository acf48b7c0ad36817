"""Local dataset sources, limits, fingerprints and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petlbench.data.batching import batches
from petlbench.data.preprocess import preprocess_array
from petlbench.datasets import load_data
from petlbench.errors import UserError

from ...conftest import make_image_folder

CFG = {"input_size": (3, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear",
       "crop_pct": 1.0, "crop_mode": "center"}


def test_image_folder_split_is_deterministic_and_complete(image_folder):
    a, b = load_data(str(image_folder)), load_data(str(image_folder))
    assert a.classes == ["class0", "class1", "class2"]
    assert sum(len(lab) for _, lab in a.splits.values()) == 36
    assert set(a.splits) == {"train", "val", "test"}
    assert a.fingerprint() == b.fingerprint()
    splits = a.prepare(CFG)
    x, y = splits.train[0]
    assert x.shape == (3, 16, 16) and 0 <= y < 3


def test_image_folder_with_split_dirs(tmp_path):
    for split in ("train", "test"):
        make_image_folder(tmp_path / split, per_class=4)
    raw = load_data(str(tmp_path))
    assert set(raw.splits) == {"train", "test"} and len(raw.splits["train"][1]) == 12


def _hf_dataset(n=12, with_label=True):
    import datasets as hfds
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)) for _ in range(n)]
    cols = {"image": imgs}
    if with_label:
        cols["label"] = [i % 2 for i in range(n)]
    ds = hfds.Dataset.from_dict(cols).cast_column("image", hfds.Image())
    if with_label:
        ds = ds.cast_column("label", hfds.ClassLabel(names=["cat", "dog"]))
    return ds


def test_save_to_disk_and_parquet_sources(tmp_path):
    import datasets as hfds

    ds = _hf_dataset()
    hfds.DatasetDict({"train": ds, "test": ds.select(range(4))}).save_to_disk(str(tmp_path / "disk"))
    raw = load_data(str(tmp_path / "disk"))
    assert raw.classes == ["cat", "dog"] and len(raw.splits["test"][1]) == 4
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    ds.to_parquet(str(pq_dir / "train.parquet"))
    ds.select(range(6)).to_parquet(str(pq_dir / "test.parquet"))
    raw = load_data(str(pq_dir))
    assert len(raw.splits["train"][1]) == 12 and len(raw.splits["test"][1]) == 6
    x, y = raw.prepare(CFG).test[1]
    assert x.shape == (3, 16, 16) and y == 1


def test_noah_layout(tmp_path):
    from PIL import Image

    task = tmp_path / "dtd"
    (task / "images").mkdir(parents=True)
    lines = []
    for i in range(6):
        Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(task / "images" / f"{i}.jpg")
        lines.append(f"images/{i}.jpg {i % 3}")
    (task / "train800.txt").write_text("\n".join(lines[:4]))
    (task / "val200.txt").write_text("\n".join(lines[4:]))
    (task / "train800val200.txt").write_text("\n".join(lines))
    (task / "test.txt").write_text("\n".join(lines[2:]))
    raw = load_data(str(task))
    assert {s: len(lab) for s, (_, lab) in raw.splits.items()} == {"train": 4, "val": 2, "test": 4}
    assert raw.num_classes == 3
    merged = raw.prepare(CFG, trainval=True)
    assert len(merged.train) == 6 and merged.val is None


def test_limit_caps_every_split_deterministically(image_folder):
    a, b = load_data(str(image_folder), limit=5), load_data(str(image_folder), limit=5)
    assert all(len(lab) <= 5 for _, lab in a.splits.values())
    assert a.fingerprint() == b.fingerprint()


def test_builtin_default_loads():
    raw = load_data(None)
    assert len(raw.splits["train"][1]) > 0 and raw.num_classes >= 2


def test_preprocess_array_grey_to_rgb_and_resize():
    imgs = np.full((2, 8, 8), 255, dtype=np.uint8)
    x = preprocess_array(imgs, (3, 16, 16), (0.5,) * 3, (0.5,) * 3)
    assert x.shape == (2, 3, 16, 16) and torch.allclose(x, torch.ones_like(x))


def test_batches_cover_the_dataset_once():
    ds = torch.utils.data.TensorDataset(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    seen = torch.cat([y for _, y in batches(ds, 3, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


def test_missing_label_column_is_a_user_error(tmp_path):
    import datasets as hfds

    hfds.DatasetDict({"train": _hf_dataset(with_label=False), "test": _hf_dataset(4, False)}).save_to_disk(
        str(tmp_path / "d"))
    with pytest.raises(UserError, match="no label column"):
        load_data(str(tmp_path / "d"))
