"""CLI behaviour: anchors through `inspect --json`, end-to-end runs, the store, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from petlbench.results.store import read_rows

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in err.lower(), err


def test_inspect_linear_and_full_anchors(cli):
    code, out, _ = cli("inspect", "linear", "--model", "vit_base_patch16_224", "--num-classes", "100", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params_total"] == 85_875_556
    assert info["params_trainable"] == 76_900
    assert info["params_trainable_excl_head"] == 0
    assert info["params_added"] == 0
    assert info["gmacs"] == pytest.approx(17.563, abs=0.001)  # whatever SDPA kernel this CPU would pick
    code, out, _ = cli("inspect", "full", "--model", "vit_base_patch16_224", "--num-classes", "100", "--json")
    assert json.loads(out)["params_trainable"] == 85_875_556


def test_run_stores_row_and_json_then_skips_and_forces(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    args = ["run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", out]
    code, stdout, err = cli(*args)
    assert code == 0, err
    rows = read_rows(out / "results.csv")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok" and row["method"] == "linear" and row["model"] == "test_vit"
    assert 0.0 <= float(row["top1_pct"]) <= 100.0
    assert int(row["params_trainable"]) == 64 * 3 + 3  # test_vit head (d=64) for 3 classes
    assert int(row["n_train"]) + int(row["n_val"]) + int(row["n_test"]) == 36
    assert float(row["gmacs"]) > 0 and float(row["infer_img_s"]) > 0 and float(row["train_img_s"]) > 0
    assert row["peak_mem_kind"] in ("cpu_peak_rss_run", "cpu_peak_rss_process", "cuda_max_allocated")
    assert json.loads(row["data_fingerprint"]).keys() >= {"train", "test"}
    record = json.loads((out / "runs" / f"{row['run_id']}.json").read_text())
    assert record["config_hash"] == row["config_hash"] and record["method_config"]["epochs"] == 1
    assert "top-1" in stdout or "top1" in stdout.lower()

    code, stdout, _ = cli(*args)  # same config: skipped
    assert code == 0 and "skipped" in stdout
    assert len(read_rows(out / "results.csv")) == 1
    code, _, _ = cli(*args, "--force")
    assert code == 0 and len(read_rows(out / "results.csv")) == 1  # --force replaces the stored row (issue 12)


def test_seeds_and_compare(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    for method in ("linear", "bitfit"):
        code, _, err = cli("run", method, "--dataset", image_folder, *TINY_RUN, "--seeds", "0,1", "--out", out)
        assert code == 0, err
    rows = read_rows(out / "results.csv")
    assert sorted((r["method"], r["seed"]) for r in rows) == [("bitfit", "0"), ("bitfit", "1"),
                                                               ("linear", "0"), ("linear", "1")]
    agg_csv = tmp_path / "agg.csv"
    code, stdout, err = cli("compare", out, "--csv", agg_csv)
    assert code == 0, err
    assert "±" in stdout and "linear" in stdout and "bitfit" in stdout
    import pandas as pd

    agg = pd.read_csv(agg_csv)
    lin = agg[agg["method"] == "linear"].iloc[0]
    vals = [float(r["top1_pct"]) for r in rows if r["method"] == "linear"]
    assert lin["n"] == 2 and lin["top1_pct"] == pytest.approx(sum(vals) / 2)
    # gating against itself passes; against an inflated reference it fails with exit 1
    assert cli("compare", out, "--baseline", out / "results.csv")[0] == 0
    ref = tmp_path / "ref.csv"
    text = (out / "results.csv").read_text().splitlines()
    header = text[0].split(",")
    i = header.index("top1_pct")
    bumped = [text[0]] + [",".join(c if j != i else "100.0" for j, c in enumerate(line.split(",")))
                          for line in text[1:]]
    ref.write_text("\n".join(bumped) + "\n")
    code, _, err = cli("compare", out, "--baseline", ref, "--max-drop", "1")
    assert code == 1 and "regression" in err


def test_list_commands(cli):
    code, out, _ = cli("list", "methods")
    assert code == 0 and "linear" in out and "full" in out
    code, out, _ = cli("list", "datasets")
    assert code == 0 and "cifar100" in out and "(default)" in out
    code, out, _ = cli("list", "models")
    assert code == 0 and "petl_vit_micro" in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "lineer"], ["unknown method", "linear"]),
        (["run", "linear", "--dataset", "cifar1000"], ["unknown dataset", "cifar100"]),
        (["run", "linear", "--model", "vit_tiny_patch16_2244", "--dataset", "IMG"], ["unknown model", "did you mean"]),
        (["run", "linear", "--set", "lrr=0.1"], ["no config key 'lrr'", "lr"]),
        (["run", "linear", "--set", "epochs=ten"], ["epochs", "integer"]),
        (["run", "linear", "--set", "epochs"], ["key=value"]),
        (["run", "linear", "--lr", "-1", "--dataset", "IMG"], ["lr must be > 0"]),
        (["run", "lion", "--set", "grad_clip=-1", "--dataset", "IMG"], ["grad_clip must be >= 0"]),
        (["run", "linear", "--seeds", "a,b"], ["--seeds"]),
        (["run", "linear", "--dataset", "cifar100"], ["uoft-cs/cifar100", "built-in"]),
        (["run", "linear", "--model", "vit_tiny_patch16_224", "--dataset", "IMG"], ["hub", "--weights"]),
        (["run", "linear", "--model", "test_vit", "--weights", "MISSING", "--dataset", "IMG"], ["not found"]),
        (["run", "linear", "--model", "test_vit", "--weights", "CORRUPT", "--dataset", "IMG"], ["cannot read"]),
        (["run", "linear", "--dataset", "EMPTY", "--model", "test_vit", "--no-pretrained"], ["empty"]),
        (["run", "linear", "--dataset", "NOLABEL", "--model", "test_vit", "--no-pretrained"], ["label column"]),
        (["list", "method"], ["methods"]),
        (["inspect", "vpt", "--model", "resnet18"], ["does not support"]),
        (["compare", "NOSTORE"], ["no results"]),
        (["suite", "mini-vtabb"], ["unknown suite"]),
        (["pretrain", "--data", "imagenet"], ["unknown pretraining data", "fashion-mnist, scenes"]),
        (["pretrain", "--steps", "0"], ["pretrain needs steps >= 1"]),
    ],
)
def test_bad_input_one_line_exit_2_nothing_stored(cli, tmp_path, image_folder, args, words):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    nolabel = tmp_path / "nolabel.parquet"
    import datasets as hfds
    from PIL import Image

    img = Image.new("RGB", (8, 8))
    hfds.Dataset.from_dict({"image": [img], "caption": ["x"]}).cast_column("image", hfds.Image()).to_parquet(
        str(nolabel))
    subst = {"IMG": str(image_folder), "MISSING": str(tmp_path / "nope.pt"), "CORRUPT": str(corrupt),
             "EMPTY": str(empty), "NOLABEL": str(nolabel), "NOSTORE": str(tmp_path / "nostore")}
    store = tmp_path / "store"
    args = [subst.get(a, a) for a in args]
    if args[0] == "run":
        args += ["--out", str(store)]
    code, _, err = cli(*args)
    _one_line_error(code, err, *words)
    assert not (store / "results.csv").exists()


def test_failed_run_is_recorded_not_raised(cli, tmp_path, image_folder, monkeypatch):
    """A crash inside training (not bad input) becomes a row with status 'failed' and exit 1."""
    from petlbench.engine import runner

    def boom(*a, **k):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(runner, "train_and_evaluate", boom)
    out = tmp_path / "store"
    code, _, _ = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", out)
    assert code == 1
    (row,) = read_rows(out / "results.csv")
    assert row["status"] == "failed" and "simulated out of memory" in row["error"]


def test_weights_file_round_trip(cli, tmp_path, image_folder):
    """--weights PATH loads a state dict saved from a timm model (head of another size dropped)."""
    import timm
    from safetensors.torch import save_file

    from petlbench.models.backbones import create_backbone

    src = timm.create_model("test_vit", num_classes=7)
    path = tmp_path / "w.safetensors"
    save_file(src.state_dict(), str(path))
    model, info = create_backbone("test_vit", 3, weights=str(path))
    assert torch.equal(model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    assert model.get_classifier().out_features == 3 and info["weights_source"] == "file:w.safetensors"
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.startswith("head"))
