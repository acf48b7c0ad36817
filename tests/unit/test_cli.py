"""CLI behaviour without training: anchors through `inspect --json`, listings, bad input (one line, exit 2,
nothing stored), a crash in training recorded as a failed row. Runs end to end: tests/integration/test_cli_runs.py."""

from __future__ import annotations

import json

import pytest
import torch

from petlbench.results.store import read_rows

from ..checks import one_line_error

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]


@pytest.mark.heavy
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
        (["inspect", "vpt", "--model", "resnet18"], ["needs blocks, tokens, which cnn backbones do not offer"]),
        (["compare", "NOSTORE"], ["no results"]),
        (["suite", "mini-vtabb"], ["unknown suite"]),
        (["pretrain", "--data", "imagenet"], ["unknown pretraining recipe 'imagenet'", "petlbench list recipes"]),
        (["pretrain", "--steps", "0"], ["invalid pretraining recipe config: steps must be >= 1"]),
        (["pretrain", "--data", "vl-scenes", "--set", "wpa=-1"], ["wpa must be >= 0", "default is --set wpa=0.0"]),
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
    one_line_error(code, err, *words)
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
