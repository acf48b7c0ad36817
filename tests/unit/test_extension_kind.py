"""A new backbone kind plugs in from outside the package: a toy VL model whose layers have their own layout (a mixer
and a feed-forward cell at their own paths) declares its insertion points in one table (``models.layout.Layout``), and
linear, full, BitFit, adapters, LoRA, APT and DAS run on it through the CLI with no edit of ``methods/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertSelfOutput

from petlbench import tracks
from petlbench.models.family import BackboneFamily
from petlbench.models.layout import Layout
from petlbench.results.store import read_rows
from petlbench.vl.models.text import OFFLINE_TEXT

D, VOCAB, IMAGE = 16, 30522, 16  # the offline text model's tokenizer: 30,522 ids


class Mixer(nn.Module):
    """Single-head self-attention with separate q / k / v Linears; ``out`` ends the sublayer (dense, dropout, LN)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(D, D) for _ in range(3))
        self.out = BertSelfOutput(config)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        scores = (self.q(x) @ self.k(x).transpose(1, 2)) / D ** 0.5
        attn = scores.masked_fill(~keep[:, None, :], -1e4).softmax(-1)
        return self.out(attn @ self.v(x), x)


class Cell(nn.Module):
    """A post-LN layer of its own: ``mix`` then ``ff`` (its ``up`` Linear, GELU, and ``out``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.mix, self.up, self.out = Mixer(config), nn.Linear(D, 2 * D), BertSelfOutput(
            BertConfig(hidden_size=D, hidden_dropout_prob=0.1))
        self.out.dense = nn.Linear(2 * D, D)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        a = self.mix(x, keep)
        return self.out(nn.functional.gelu(self.up(a)), a)


class ToyVL(nn.Module):
    """Word embeddings + 4×4 patches of a 16×16 image, two cells over [text ; patches], a head on the first token."""

    kind = "toyvl"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        config = BertConfig(hidden_size=D, hidden_dropout_prob=0.1)
        self.words, self.patches = nn.Embedding(VOCAB, D), nn.Conv2d(3, D, 4, 4)
        self.stack = nn.Module()
        self.stack.cells = nn.ModuleList(Cell(config) for _ in range(2))
        self.head = nn.Linear(D, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        t = self.words(inputs["input_ids"])
        v = self.patches(inputs["pixel_values"]).flatten(2).transpose(1, 2)
        x = torch.cat([t, v], 1)
        keep = torch.cat([inputs["attention_mask"].bool(), torch.ones(v.shape[:2], dtype=torch.bool)], 1)
        for cell in self.stack.cells:
            x = cell(x, keep)
        return self.head(x[:, 0])


TABLE = Layout("toyvl", layer="bert", blocks=lambda m: m.stack.cells, width=lambda m: D,
               attention_outputs=lambda cell: [cell.mix.out], ffn_outputs=lambda cell: [cell.out],
               projections=lambda cell: {n: [(cell.mix, a, None)] for n, a in (("query", "q"), ("key", "k"),
                                                                                ("value", "v"))})


class ToyVLFamily(BackboneFamily):
    name, track, default_model, model_hint, frozen_mode = "toy-vl", "vl", None, "toyvl:NAME", "train"
    layouts = {"toyvl": TABLE}

    def owns(self, model: str | None) -> bool:
        return bool(model) and model.startswith("toyvl:")

    def create(self, name, num_classes, *, weights=None, pretrained=True, modality="both", **kwargs):
        from petlbench.models.heads import freeze_backbone

        torch.manual_seed(0)
        return freeze_backbone(ToyVL(num_classes)), {"model": name, "weights_source": "random-init",
                                                     "weights_sha256": ""}

    def kind(self, model: nn.Module) -> str:
        return model.kind

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        return {"input_size": (3, IMAGE, IMAGE), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
                "crop_pct": 1.0, "tokenizer": OFFLINE_TEXT, "modality": "both"}

    def count_size(self, model, data_cfg, train=None, text_len=16) -> tuple[int, ...]:
        return (train.text_len,) if train is not None else (text_len,)

    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        t = (size or (16,))[0]
        return {"input_ids": torch.randint(0, VOCAB, (1, t)), "attention_mask": torch.ones(1, t, dtype=torch.long),
                "pixel_values": torch.randn(1, 3, IMAGE, IMAGE)}


@pytest.fixture
def toy_kind():
    tracks.FAMILIES.add(ToyVLFamily.name, ToyVLFamily())
    yield
    tracks.FAMILIES._entries.pop(ToyVLFamily.name)


METHODS = {"linear": [], "full": [], "bitfit": [], "adapter": ["--set", "bottleneck=4"], "lora": ["--set", "rank=2"],
           "apt": ["--set", "num_prompts=4"], "das": ["--set", "search_epochs=2", "--set", "gate_updates_per_epoch=1"]}


@pytest.mark.heavy
def test_a_toy_vl_kind_runs_every_method_that_needs_what_it_offers(toy_kind, cli, tmp_path):
    store = tmp_path / "store"
    for method, extra in METHODS.items():
        code, _, err = cli("run", method, "--dataset", "shapes-vqa", "--model", "toyvl:tiny", "--limit", "32",
                           "--epochs", "1", "--batch-size", "8", "--precision", "fp32", "--out", store, *extra)
        assert code == 0, (method, err)
    rows = {r["method"]: r for r in read_rows(store / "results.csv")}
    assert set(rows) == set(METHODS) and all(r["status"] == "ok" for r in rows.values())
    head = D * 14 + 14  # shapes-vqa: 14 answers
    trainable = {m: int(r["params_trainable"]) - head for m, r in rows.items()}
    cell_biases = 9 * D  # q, k, v, mix.out.dense, mix.out.LayerNorm (d each); up (2d); out.dense, out.LayerNorm
    assert trainable["linear"] == 0
    assert trainable["bitfit"] == 2 * cell_biases + D  # + the patch conv's bias (the model is what full trains)
    assert trainable["adapter"] == 2 * 2 * (2 * D * 4 + 4 + D)  # two cells x (mixer and ff outputs) x bottleneck 4
    assert trainable["lora"] == 2 * 2 * 2 * D * 2  # two cells x (q, v) x rank 2 (A 2x16, B 16x2)
    assert trainable["apt"] == 2 * (4 * D + 2 * D * 4 + 1)  # two mixers: p x d + 2 x d x r + the scale
    assert 0 < trainable["das"] < trainable["full"]
    assert rows["das"]["method_stats"] and "das_skipped_blocks" in rows["das"]["method_stats"]


def test_a_method_needing_what_the_kind_lacks_is_refused_in_one_line(toy_kind, cli, tmp_path):
    code, _, err = cli("run", "dvp", "--dataset", "shapes-vqa", "--model", "toyvl:tiny", "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "needs" in err and "toyvl" in err and not (tmp_path / "results.csv").exists()
