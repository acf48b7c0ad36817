"""How much of the question DVP's prompt query can see at each insertion layer K, on the offline language model.

DVP's visual prompt is a cross-attention whose query is the text [CLS] state entering layer K (``methods/dvp.py``).
At K = 0 that state is the [CLS] embedding, the same for every question; this script measures, for K = 0..L-1,
how far the [CLS] state of the ``shapes-bind`` questions ("What color is the <shape>?", four shapes) spreads
around its mean, relative to the mean's norm (0 = the query cannot depend on the question). The pre-trained
weights as loaded (no training, eval mode, 16 padded tokens as DVP's ``max_text_len``).

Usage: ``python benchmarks/perf/dvp_cls_query.py [--text minilm]``. Prints one row per layer and a JSON line.
"""

from __future__ import annotations

import argparse
import json

import torch


def cls_spread(text_name: str, questions: list[str], max_len: int = 16) -> list[float]:
    """Relative spread of the [CLS] state over ``questions`` at the input of every layer."""
    from petlbench.vl.models.text import load_text_encoder, text_tokenizer

    model, _, _ = load_text_encoder(text_name)
    batch = text_tokenizer(text_name)(questions, padding="max_length", max_length=max_len, truncation=True,
                                      return_tensors="pt")
    with torch.no_grad():
        states = model.eval()(**batch, output_hidden_states=True).hidden_states[:-1]  # inputs of layers 0..L-1
    out = []
    for h in states:
        cls = h[:, 0]
        mean = cls.mean(0)
        out.append(float((cls - mean).norm(dim=1).mean() / mean.norm()))
    return out


def main() -> None:
    from petlbench.data.render import SHAPES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", default="minilm", help="an offline text model name (petlbench list models)")
    args = ap.parse_args()
    spread = cls_spread(args.text, [f"What color is the {s}?" for s in SHAPES])
    for k, s in enumerate(spread):
        print(f"K = {k}: [CLS] spread over the questions {100 * s:.3f}% of its norm")
    print(json.dumps({"text": args.text, "cls_spread_pct": [round(100 * s, 4) for s in spread]}))


if __name__ == "__main__":
    main()
