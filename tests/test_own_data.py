"""Own data, own checkpoints, long runs: bad input caught early (one line, exit 2, nothing stored), local
formats as users keep them, duplicates, interruption and the hub probe."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest

from petlbench.results.store import read_rows

from .conftest import make_image_folder

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert len([ln for ln in err.strip().splitlines() if ln.strip()]) == 1, err
    for w in words:
        assert w.lower() in err.lower(), err


# ----------------------------------------------------------------------------- 1. the store is checked first


def test_out_that_is_a_file_or_read_only_fails_before_any_work(cli, tmp_path, image_folder, monkeypatch):
    from petlbench.engine import runner

    monkeypatch.setattr(runner, "run_one", lambda *a, **k: pytest.fail("trained although the store is unusable"))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", a_file)
    _one_line_error(code, err, "is a file")
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", a_file / "store")
    _one_line_error(code, err, "not writable")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: a read-only directory is still writable")
        code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", ro / "store")
        _one_line_error(code, err, "not writable")
    finally:
        ro.chmod(0o700)


# ----------------------------------------------------------------------------- 2. checkpoints


def test_weights_with_matching_keys_but_other_shapes(cli, tmp_path, image_folder):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file(timm.create_model("test_vit", num_classes=3, embed_dim=32, num_heads=2).state_dict(), str(path))
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    _one_line_error(code, err, "other shapes", "--model")
    assert not (tmp_path / "store" / "results.csv").exists()


def test_torchvision_style_keys_get_a_hint(cli, tmp_path, image_folder):
    import torch

    path = tmp_path / "tv.pt"
    torch.save({"features.0.0.weight": torch.zeros(3), "classifier.1.weight": torch.zeros(3)}, path)
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    _one_line_error(code, err, "torchvision", "timm")


def test_timm_cnn_weights_on_a_vit_are_not_called_torchvision(cli, tmp_path, image_folder):
    """timm's MobileNets name their head ``classifier.`` too: only torchvision's own key layout gets the hint."""
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "mnv2.safetensors"
    save_file(timm.create_model("test_efficientnet", num_classes=3).state_dict(), str(path))
    code, _, err = cli("run", "linear", "--dataset", image_folder, "--model", "test_vit", "--weights", path,
                       "--out", tmp_path / "store")
    _one_line_error(code, err, "do not fit model", "--model")
    assert "torchvision" not in err


# ----------------------------------------------------------------------------- 3. classes


def test_one_class_folder_is_an_error(cli, tmp_path):
    root = make_image_folder(tmp_path / "one", classes=1)
    code, _, err = cli("run", "linear", "--dataset", root, *TINY_RUN, "--out", tmp_path / "store")
    _one_line_error(code, err, "at least two")
    assert not (tmp_path / "store" / "results.csv").exists()


def test_a_class_missing_from_train_is_an_error(cli, tmp_path):
    make_image_folder(tmp_path / "d" / "train", classes=2, per_class=3)
    make_image_folder(tmp_path / "d" / "test", classes=3, per_class=3)
    code, _, err = cli("run", "linear", "--dataset", tmp_path / "d", *TINY_RUN, "--out", tmp_path / "store")
    _one_line_error(code, err, "class2", "not in train")


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
    _one_line_error(code, err, "no label column", "columns: image")


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
    _one_line_error(code, err, "lr")
    assert not (tmp_path / "store").exists()


def test_truncated_image_names_the_file(cli, tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=6)
    bad = sorted((root / "class0").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:40])
    code, _, _ = cli("run", "bitfit", "--dataset", root, *TINY_RUN, "--out", tmp_path / "store")
    assert code == 1
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    assert row["status"] == "failed" and bad.name in row["error"]


def test_json_record_is_strict_json_without_val(cli, tmp_path):
    for split in ("train", "test"):
        make_image_folder(tmp_path / "d" / split, classes=2, per_class=4)
    code, _, err = cli("run", "linear", "--dataset", tmp_path / "d", *TINY_RUN, "--out", tmp_path / "store")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    text = (tmp_path / "store" / "runs" / f"{row['run_id']}.json").read_text()
    assert "NaN" not in text
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert record["top1_val_pct"] is None


# ----------------------------------------------------------------------------- 7. duplicates


def test_forced_rerun_replaces_and_concurrent_duplicate_is_not_stored(cli, tmp_path, image_folder):
    from petlbench.results.aggregate import aggregate
    from petlbench.results.schema import RunResult
    from petlbench.results.store import Store, load_frame

    store = tmp_path / "store"
    args = ["run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", store]
    assert cli(*args)[0] == 0
    (first,) = read_rows(store / "results.csv")
    assert cli(*args, "--force")[0] == 0
    (second,) = read_rows(store / "results.csv")  # one row: the rerun replaced the first
    assert second["run_id"] != first["run_id"]
    record = json.loads((store / "runs" / f"{second['run_id']}.json").read_text())
    assert record["extra"]["replaces"] == [first["run_id"]]
    assert (store / "runs" / f"{first['run_id']}.json").exists()  # history kept
    # a second process finishing the same configuration later: no second row
    dup = RunResult(run_id="dup", config_hash=second["config_hash"], method="linear", dataset="d", status="ok")
    assert Store(store).append(dup) is False
    assert len(read_rows(store / "results.csv")) == 1
    assert json.loads((store / "runs" / "dup.json").read_text())["extra"]["duplicate_of"] == second["run_id"]
    # compare counts a configuration once even in a store that holds it twice (written by older versions)
    text = (store / "results.csv").read_text().splitlines()
    (store / "results.csv").write_text("\n".join(text + text[1:]) + "\n")
    agg = aggregate(load_frame([store]))
    assert list(agg["n"]) == [1]


# ----------------------------------------------------------------------------- 8. Ctrl-C


def test_interrupt_says_what_was_kept_and_how_to_resume(cli, tmp_path, image_folder, monkeypatch):
    from petlbench.engine import runner

    real, calls = runner.run_one, []

    def run_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "run_one", run_then_interrupt)
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--seeds", "0,1,2",
                       "--out", tmp_path / "store")
    assert code == 130
    assert "1 of 3 runs finished" in err and "again to resume" in err
    assert len(read_rows(tmp_path / "store" / "results.csv")) == 1


# ----------------------------------------------------------------------------- 9. an unreachable hub


def test_unreachable_hub_fails_fast_with_one_line(cli, tmp_path, monkeypatch):
    from petlbench import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the probe fails at once
    hub.reachable.cache_clear()
    try:
        code, _, err = cli("run", "linear", "--model", "vit_tiny_patch16_224", "--dataset", "shapes-loc",
                           "--out", tmp_path / "store")
        _one_line_error(code, err, "hugging face hub", "--weights")
        assert hub.reachable() is False and os.environ["HF_HUB_OFFLINE"] == "1"  # probed once, went offline
    finally:
        hub.reachable.cache_clear()


def test_plain_progress_lines_when_not_a_terminal(cli, tmp_path, image_folder, monkeypatch):
    monkeypatch.setenv("PETLBENCH_PROGRESS", "plain")
    monkeypatch.setenv("PETLBENCH_PROGRESS_INTERVAL", "0")
    code, out, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--set", "epochs=2",
                         "--out", tmp_path / "store")
    assert code == 0, err
    assert "recipe: adamw" in out and "steps" in out
    assert any(line.strip().startswith("linear step 1/") and "ETA" in line for line in out.splitlines())
    rows = list(csv.DictReader(open(tmp_path / "store" / "results.csv")))
    assert rows and rows[0]["status"] == "ok"
