"""Own data, own checkpoints, long runs: bad input caught early (one line, exit 2, nothing stored), local
formats as users keep them, duplicates, interruption and the hub probe."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ...checks import one_line_error
from ...conftest import make_image_folder

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]


# ----------------------------------------------------------------------------- 1. the store is checked first


def _never_trains(monkeypatch):
    from petlbench.engine import runner

    monkeypatch.setattr(runner, "run_one", lambda *a, **k: pytest.fail("trained although the store is unusable"))


def _set_immutable(path: Path, on: bool) -> bool:
    """Set or clear the immutable attribute (what ``chattr +i`` does) of ``path``; False where the file system or
    this process's capabilities do not allow it. An immutable directory refuses new entries even to root."""
    import fcntl
    import struct

    get_flags, set_flags, immutable = 0x80086601, 0x40086602, 0x10  # FS_IOC_GETFLAGS / SETFLAGS, FS_IMMUTABLE_FL
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, get_flags, struct.pack("l", 0)))[0]
        fcntl.ioctl(fd, set_flags, struct.pack("l", flags | immutable if on else flags & ~immutable))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def unwritable_dir(tmp_path, monkeypatch):
    """(a directory this process cannot create anything in, how). A normal user: mode 0o500 ("permissions"). Root
    ignores permission bits: the immutable attribute where allowed ("immutable"), else the kernel's answer to a
    normal user is simulated ("simulated": ``os.access`` says W_OK is denied under it)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    how = "permissions"
    if os.access(ro, os.W_OK):
        how = "immutable" if _set_immutable(ro, True) else "simulated"
    if how == "simulated":
        real = os.access

        def access(path, mode, *args, **kwargs):
            inside = Path(path).absolute() == ro or ro in Path(path).absolute().parents
            return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    try:
        yield ro, how
    finally:
        if how == "immutable":
            _set_immutable(ro, False)
        ro.chmod(0o700)


def test_out_that_is_a_file_fails_before_any_work(cli, tmp_path, image_folder, monkeypatch):
    _never_trains(monkeypatch)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", a_file)
    one_line_error(code, err, "is a file")
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", a_file / "store")
    one_line_error(code, err, "not writable")
    assert a_file.read_text() == "x"


def test_store_refuses_an_unwritable_directory_with_one_line(unwritable_dir):
    """The store's half: no write is attempted, a one-line error names the store and the folder it cannot write."""
    from petlbench.errors import UserError
    from petlbench.results.store import Store

    ro, how = unwritable_dir
    if how != "simulated":  # the directory really refuses writes, to this user as to root
        with pytest.raises(PermissionError):
            (ro / "probe").write_text("x")
    for root in (ro / "store", ro / "deeper" / "store"):
        with pytest.raises(UserError) as e:
            Store(root).check_writable()
        msg = str(e.value)
        assert "\n" not in msg and f"'{ro}' is not writable" in msg and str(root) in msg and "--out" in msg
    assert not any(ro.iterdir())


def test_run_into_an_unwritable_directory_exits_2_and_stores_nothing(cli, image_folder, monkeypatch, unwritable_dir):
    """The CLI's half: exit 2 with the store's one line, before any training, and nothing written anywhere in it."""
    ro, _ = unwritable_dir
    _never_trains(monkeypatch)
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", ro / "store")
    one_line_error(code, err, "not writable", str(ro))
    assert not any(ro.iterdir())


# ----------------------------------------------------------------------------- 2. checkpoints


def test_weights_with_matching_keys_but_other_shapes(cli, tmp_path, image_folder):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file(timm.create_model("test_vit", num_classes=3, embed_dim=32, num_heads=2).state_dict(), str(path))
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    one_line_error(code, err, "other shapes", "--model")
    assert not (tmp_path / "store" / "results.csv").exists()


def test_torchvision_style_keys_get_a_hint(cli, tmp_path, image_folder):
    import torch

    path = tmp_path / "tv.pt"
    torch.save({"features.0.0.weight": torch.zeros(3), "classifier.1.weight": torch.zeros(3)}, path)
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    one_line_error(code, err, "torchvision", "timm")


def test_timm_cnn_weights_on_a_vit_are_not_called_torchvision(cli, tmp_path, image_folder):
    """timm's MobileNets name their head ``classifier.`` too: only torchvision's own key layout gets the hint."""
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "mnv2.safetensors"
    save_file(timm.create_model("test_efficientnet", num_classes=3).state_dict(), str(path))
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    one_line_error(code, err, "do not fit model", "--model")
    assert "torchvision" not in err


# ----------------------------------------------------------------------------- 3. classes


def test_one_class_folder_is_an_error(cli, tmp_path):
    root = make_image_folder(tmp_path / "one", classes=1)
    code, _, err = cli("run", "linear", "--dataset", root, *TINY_RUN, "--out", tmp_path / "store")
    one_line_error(code, err, "at least two")
    assert not (tmp_path / "store" / "results.csv").exists()


def test_a_class_missing_from_train_is_an_error(cli, tmp_path):
    make_image_folder(tmp_path / "d" / "train", classes=2, per_class=3)
    make_image_folder(tmp_path / "d" / "test", classes=3, per_class=3)
    code, _, err = cli("run", "linear", "--dataset", tmp_path / "d", *TINY_RUN, "--out", tmp_path / "store")
    one_line_error(code, err, "class2", "not in train")


# ----------------------------------------------------------------------------- 4. parquet as users write it


def _png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _pyarrow_parquet(path, n=30, string_labels=False, records=False, label=True):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [_png(40 * (i % 3)) for i in range(n)]
    cols = {"image": [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)] if records else images}
    if label:
        cols["label"] = [["cat", "dog", "emu"][i % 3] if string_labels else i % 3 for i in range(n)]
    pq.write_table(pa.table(cols), path)


@pytest.mark.parametrize(("string_labels", "records"), [(False, False), (True, True)], ids=["int-bytes", "str-records"])
def test_plain_pyarrow_parquet_single_file_is_split_with_a_fixed_seed(tmp_path, string_labels, records):

    from petlbench.datasets import load_data

    path = tmp_path / "mine.parquet"
    _pyarrow_parquet(path, string_labels=string_labels, records=records)
    a, b = load_data(str(path)), load_data(str(path))
    assert set(a.splits) == {"train", "val", "test"} and sum(len(y) for _, y in a.splits.values()) == 30
    assert a.fingerprint() == b.fingerprint() and "70/10/20" in a.note
    assert a.classes == (["cat", "dog", "emu"] if string_labels else ["0", "1", "2"])
    x, y = a.prepare({"input_size": (3, 8, 8), "mean": (0, 0, 0), "std": (1, 1, 1)}).train[0]
    assert x.shape == (3, 8, 8) and abs(float(x.mean()) - 40 * y / 255) < 1e-6


def test_parquet_without_a_label_column_says_so(cli, tmp_path):
    path = tmp_path / "nolabel.parquet"
    _pyarrow_parquet(path, label=False)
    code, _, err = cli("run", "linear", "--dataset", path, *TINY_RUN, "--out", tmp_path / "store")
    one_line_error(code, err, "no label column", "columns: image")


def test_parquet_split_files_by_name(tmp_path):
    from petlbench.datasets import load_data

    for split in ("train", "validation", "test"):
        _pyarrow_parquet(tmp_path / f"{split}-00000-of-00001.parquet", n=9)
    raw = load_data(str(tmp_path))
    assert {s: len(y) for s, (_, y) in raw.splits.items()} == {"train": 9, "val": 9, "test": 9} and not raw.note


# ----------------------------------------------------------------------------- 5. folders


def test_validation_split_names_and_hidden_folders(tmp_path):
    from petlbench.datasets import load_data

    for split in ("train", "validation", "test"):
        make_image_folder(tmp_path / split, classes=2, per_class=3)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    make_image_folder(tmp_path / "train" / ".ipynb_checkpoints", classes=1, per_class=1)
    raw = load_data(str(tmp_path))
    assert set(raw.splits) == {"train", "val", "test"} and raw.classes == ["class0", "class1"]
    flat = make_image_folder(tmp_path / "flat", classes=2, per_class=5)
    (flat / ".hidden").mkdir()
    assert load_data(str(flat)).classes == ["class0", "class1"]


# ----------------------------------------------------------------------------- 6. small things


def test_img_size_with_the_bundled_model_and_nan_lr(cli, tmp_path):
    code, out, err = cli("inspect", "linear", "--img-size", "48", "--json")
    assert code == 0, err and json.loads(out)["input_size"] == [3, 48, 48]
    code, _, err = cli("run", "linear", "--lr", "nan", "--out", tmp_path / "store")
    one_line_error(code, err, "lr")
    assert not (tmp_path / "store").exists()


# ----------------------------------------------------------------------------- 7. duplicates


# ----------------------------------------------------------------------------- 8. Ctrl-C


# ----------------------------------------------------------------------------- 9. an unreachable hub


def test_unreachable_hub_fails_fast_with_one_line(cli, tmp_path, monkeypatch):
    from petlbench import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the probe fails at once
    hub.reachable.cache_clear()
    try:
        code, _, err = cli("run", "linear", "--model", "vit_tiny_patch16_224", "--dataset", "shapes-loc",
                           "--out", tmp_path / "store")
        one_line_error(code, err, "hugging face hub", "--weights")
        assert hub.reachable() is False and os.environ["HF_HUB_OFFLINE"] == "1"  # probed once, went offline
    finally:
        hub.reachable.cache_clear()


