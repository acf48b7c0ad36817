"""DVP's compute saving, measured: GMACs of the all-visual-tokens VL baseline vs DVP inserted at K = 0 and
K = L-1, on the same text length (``petlbench.vl.vl_gmacs``: FlopCounterMode under the math SDPA path, one
sample, no padding). Models are built on the meta device (shapes only, no weights, no download).

``gmacs_text`` is everything but the frozen visual encoder: baseline = visual projection + the language model
over T + Nv tokens + head; DVP = the cross-attention prompt module + the language model over T tokens before K
and T + 1 from K + head. ``gmacs_vision`` (the frozen encoder) is the same for all rows.

Usage: ``python benchmarks/perf/dvp_gmacs.py [--models minilm+petl_vit_micro_scenes ...] [--text-lens 16 40]``.
Prints one row per (model, text length, setting) and a JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

DEFAULT_MODELS = ("minilm+petl_vit_micro_scenes", "bert-base-uncased+vit_base_patch16_clip_224.openai")


def measure(model_name: str, text_len: int) -> list[dict]:
    """Rows: the baseline and DVP at the first and the last layer, for one model and text length."""
    from petlbench.methods.dvp import DVP, DVPConfig
    from petlbench.vl.models.bert import create_vl_backbone, vl_gmacs

    with torch.device("meta"):
        base, _ = create_vl_backbone(model_name, 10, pretrained=False)
    depth = len(base.text.encoder.layer)
    rows = [{"model": model_name, "text_len": text_len, "setting": "all visual tokens", **vl_gmacs(base, text_len)}]
    for k in (0, depth - 1):
        dvp = DVP(DVPConfig(insert_layer=k)).apply(copy.deepcopy(base))
        rows.append({"model": model_name, "text_len": text_len, "setting": f"dvp K={k}", **vl_gmacs(dvp, text_len)})
    for r in rows:
        r["text_vs_baseline"] = r["gmacs_text"] / rows[0]["gmacs_text"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--text-lens", nargs="+", type=int, default=[16, 40])
    args = ap.parse_args()
    rows = [r for m in args.models for t in args.text_lens for r in measure(m, t)]
    for r in rows:
        print(f"{r['model']:52s} T={r['text_len']:3d} {r['setting']:18s} tokens {r['tokens']:4d}  "
              f"GMACs text {r['gmacs_text']:8.4f} ({100 * r['text_vs_baseline']:5.1f}%)  vision {r['gmacs_vision']:8.4f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
