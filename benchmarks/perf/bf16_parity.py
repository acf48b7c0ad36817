"""The bf16 parity table: fp32 against bf16 autocast per (method, task) from a store of the ``bf16-parity``
suite (``petlbench suite bf16-parity --out DIR``).

    python benchmarks/perf/bf16_parity.py DIR

Per method and task: mean ± std (over seeds) of top-1 in fp32 and bf16, their difference, the seed spread
(the larger of the two stds) and whether |difference| <= spread; the bf16/fp32 ratio of training img/s.
Markdown on stdout; the last line is the verdict over all (method, task) pairs.
"""

from __future__ import annotations

import sys

import pandas as pd

from petlbench.results.store import load_frame


def precision_of(df: pd.DataFrame) -> pd.Series:
    """fp32 | bf16 per row (rows stored before --precision carry only the amp column)."""
    amp = df["amp"].astype(str).str.lower() == "true"
    if "precision" in df:
        stored = df["precision"].fillna("").astype(str)
        return stored.where(stored != "", amp.map({True: "bf16", False: "fp32"}))
    return amp.map({True: "bf16", False: "fp32"})


def parity(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["status"] == "ok"].drop_duplicates("config_hash", keep="last").assign(precision=precision_of)
    rows = []
    for (method, dataset), g in df.groupby(["method", "dataset"], sort=False):
        by = {p: h for p, h in g.groupby("precision")}
        if set(by) != {"fp32", "bf16"}:
            continue
        a, b = by["fp32"], by["bf16"]
        spread = max(a["top1_pct"].std(ddof=1), b["top1_pct"].std(ddof=1))
        diff = b["top1_pct"].mean() - a["top1_pct"].mean()
        rows.append({"method": method, "dataset": dataset, "n": f"{len(a)}/{len(b)}",
                     "fp32": f"{a['top1_pct'].mean():.2f} ± {a['top1_pct'].std(ddof=1):.2f}",
                     "bf16": f"{b['top1_pct'].mean():.2f} ± {b['top1_pct'].std(ddof=1):.2f}",
                     "diff": diff, "spread": spread, "agree": abs(diff) <= spread,
                     "speed bf16/fp32": b["train_img_s"].median() / a["train_img_s"].median()})
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame) -> str:
    out = ["| method | task | n fp32/bf16 | top-1 fp32 | top-1 bf16 | bf16 − fp32 | seed spread | within | "
           "train img/s bf16/fp32 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in t.itertuples():
        out.append(f"| {r.method} | {r.dataset} | {r.n} | {r.fp32} | {r.bf16} | {r.diff:+.2f} | {r.spread:.2f} | "
                   f"{'yes' if r.agree else '**no**'} | {r._9:.2f} |")
    return "\n".join(out)


def main() -> None:
    t = parity(load_frame([sys.argv[1] if len(sys.argv) > 1 else "results/bf16-parity"]))
    if t.empty:
        sys.exit("no (method, task) with both fp32 and bf16 runs in the store yet")
    print(markdown(t))
    print(f"\n{int(t['agree'].sum())}/{len(t)} (method, task) pairs agree within the seed spread; "
          f"mean |bf16 − fp32| {t['diff'].abs().mean():.2f} pt vs mean spread {t['spread'].mean():.2f} pt; "
          f"mean signed difference {t['diff'].mean():+.2f} pt")


if __name__ == "__main__":
    main()
