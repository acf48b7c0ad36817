"""A new kind of data and a new family of backbones plug in from outside the package: each is one class plus its
registration (``datasets.DATASETS``, ``tracks.FAMILIES``), and the engine, the contract (methods refuse kinds they
do not support) and the store take them with no edit of their own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from petlbench import datasets, tracks
from petlbench.data.types import CLASSIFICATION, Data, DatasetSpec, Splits, limit_rows, make_splits
from petlbench.models.family import BackboneFamily
from petlbench.models.layout import Layout


@dataclass
class PointClouds(Data):
    """Toy data that are not images: per split N×8 float vectors whose class is the sign pattern of two features."""

    name: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    source: str = "toy generator"
    group: str | None = None
    note: str = ""
    epochs: int | None = 2
    batch_size: int | None = 8
    task = CLASSIFICATION

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def fingerprint(self) -> dict[str, str]:
        return {s: hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()[:16] for s, (x, y) in self.splits.items()}

    def prepare(self, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False) -> Splits:
        parts = {s: TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) for s, (x, y) in self.splits.items()
                 if not (selection and s == "test")}
        return make_splits(parts, self.num_classes, f"raw {data_cfg['input_size']} vectors", trainval=trainval)

    def limited(self, limit: int | None, seed: int = 0) -> PointClouds:
        cut = {s: (x, y) if (r := limit_rows(len(y), limit, seed)) is None else (x[r], y[r])
               for s, (x, y) in self.splits.items()}
        return replace(self, splits=cut)


class PointSpec(DatasetSpec):
    def load(self, name: str) -> PointClouds:
        rng = np.random.default_rng(0)
        splits = {}
        for split, n in (("train", 64), ("val", 16), ("test", 32)):
            x = rng.normal(size=(n, 8)).astype(np.float32)
            splits[split] = (x, ((x[:, 0] > 0) * 2 + (x[:, 1] > 0)).astype(np.int64))
        return PointClouds(name, splits, ["--", "-+", "+-", "++"])

    def row(self) -> tuple[str, str]:
        return "toy", "sign patterns of 8-d vectors"


class MLP(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.GELU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class MLPFamily(BackboneFamily):
    """Backbones named ``mlp:*``: a frozen random body and a trainable head, kind 'cnn' (any non-ViT net)."""

    name, track, default_model, model_hint = "toy-mlp", "vision", None, "mlp:NAME"
    layouts = {"cnn": Layout("cnn", image=True)}  # its insertion points: an image-like classifier, no blocks

    def owns(self, model: str | None) -> bool:
        return bool(model) and model.startswith("mlp:")

    def create(self, name, num_classes, *, weights=None, pretrained=True, modality="both", **kwargs):
        model = MLP(num_classes)
        for p in model.body.parameters():
            p.requires_grad_(False)
        return model, {"model": name, "weights_source": "random-init", "weights_sha256": ""}

    def kind(self, model: nn.Module) -> str:
        return "cnn"

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        return {"input_size": (8,), "mean": (0.0,), "std": (1.0,)}

    def count_size(self, model, data_cfg, train=None, text_len=16) -> tuple[int, ...]:
        return (8,)

    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> torch.Tensor:
        return torch.randn(1, *(size or (8,)), generator=torch.Generator().manual_seed(0))

    def list_models(self) -> list[tuple[str, str, bool]]:
        return [("mlp:NAME", "toy MLP on 8-d vectors", False)]


@pytest.fixture
def registered():
    datasets.DATASETS.add("toy-points", PointSpec())
    tracks.FAMILIES.add(MLPFamily.name, MLPFamily())
    yield
    datasets.DATASETS._entries.pop("toy-points")
    tracks.FAMILIES._entries.pop(MLPFamily.name)


def test_a_toy_dataset_kind_and_backbone_family_run_through_the_engine(registered, cli, tmp_path):
    code, out, err = cli("list", "models")
    assert code == 0 and "mlp:NAME" in out
    code, out, err = cli("list", "datasets")
    assert code == 0 and "toy-points" in out
    code, out, err = cli("run", "linear", "--dataset", "toy-points", "--model", "mlp:tiny", "--out", tmp_path / "s",
                         "--precision", "fp32")
    assert code == 0, err
    from petlbench.results.store import read_rows

    (row,) = read_rows(tmp_path / "s" / "results.csv")
    assert row["status"] == "ok" and row["model"] == "mlp:tiny" and row["dataset"] == "toy-points"
    assert int(row["params_trainable"]) == 16 * 4 + 4 and float(row["gmacs"]) > 0 and row["n_train"] == "64"
    # the contract holds for the new family: a ViT-only method is refused in one line before any work
    code, out, err = cli("run", "vpt", "--dataset", "toy-points", "--model", "mlp:tiny", "--out", tmp_path / "s")
    assert code == 2 and "needs blocks, tokens, which cnn backbones do not offer" in err
    assert len(err.strip().splitlines()) == 1
