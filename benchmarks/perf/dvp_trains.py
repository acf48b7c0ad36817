"""Does DVP train through the loop, and how far does KAB-APP move? One run of ``dvp`` (search + training) on
the two-modality toy task of ``vl_trains.py`` (colour of a square, asked in English or French: text-only 25%,
image-only 50%), through ``loop.train_and_evaluate`` with held-out rewards.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/dvp_trains.py [--variant adp --epochs 8 --train 256 --batch 32]``.
Prints the search log, then one JSON line: test/val accuracy, timings, counts and the search's statistics.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).parent))
from vl_trains import ANSWERS, make_task  # noqa: E402


class Samples(Dataset):
    """(inputs dict, label) samples from ``make_task``'s batched tensors."""

    def __init__(self, inputs: dict, labels: torch.Tensor) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return {k: v[i] for k, v in self.inputs.items()}, int(self.labels[i])


def main() -> None:
    from timm.data import resolve_data_config

    from petlbench.data.types import Splits
    from petlbench.engine.build import make_method
    from petlbench.engine.loop import Reporter, Runtime, train_and_evaluate
    from petlbench.engine.runner import seed_everything
    from petlbench.models.family import Built
    from petlbench.vl.models.bert import create_vl_backbone
    from petlbench.vl.models.text import vl_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="adp", choices=["full", "adp"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--search-epochs", type=int, default=2)
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    class Log(Reporter):
        def log(self, message: str) -> None:
            print(message, flush=True)

    seed_everything(0)
    method = make_method("dvp", {"variant": args.variant, "epochs": args.epochs, "batch_size": args.batch,
                                 "warmup_epochs": args.epochs // 10, "search_epochs": args.search_epochs})
    model, info = create_vl_backbone(None, len(ANSWERS))
    total = sum(p.numel() for p in model.parameters())
    model = method.apply(model)
    data_cfg, tok = resolve_data_config({}, model=model), vl_tokenizer()
    train, val, test = (Samples(*make_task(n, seed, tok, data_cfg))
                        for n, seed in ((args.train, 1), (160, 2), (320, 3)))
    splits = Splits(train, val, test, len(ANSWERS), search_train=train, search_val=val)
    out = train_and_evaluate(Built(model, info, total), method, splits, Runtime(), Log())
    keep = ("top1", "top1_val", "time_search_s", "time_train_s", "gmacs", "counts")
    print(json.dumps({"variant": args.variant, **{k: out.metrics.get(k) for k in keep}, **out.method_stats}))


if __name__ == "__main__":
    main()
