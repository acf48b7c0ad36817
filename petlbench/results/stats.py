"""Paired statistics for ``petlbench compare --vs BASELINE``.

A seed fixes the Python, NumPy and torch RNGs and the data order the same way for every method, so two
configurations run on the same (dataset, model, seed) form a *pair*. Differences are taken per pair, which
removes the seed-to-seed variation both share (e.g. a lucky data order).

Per task: the mean of the per-seed differences with a 95% CI from the paired t-test over seeds.
Over tasks: the mean of the per-task mean differences with a 95% t CI over tasks, the sign count
("better on k of n tasks") and a two-sided Wilcoxon signed-rank p-value over the per-task means.
A difference is marked significant only where its 95% CI excludes 0 (the Wilcoxon p is reported next
to it, not used for the mark). The distributions are scipy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LEVEL = 0.95
EXACT_MAX_N = 16  # Wilcoxon: every sign pattern enumerated up to here (2^16), the normal approximation above


def t_ppf(q: float, df: float) -> float:
    """Student-t quantile (inverse CDF)."""
    from scipy.stats import t

    if not 0.0 < q < 1.0 or df <= 0:
        raise ValueError(f"t_ppf needs 0 < q < 1 and df > 0, got q={q}, df={df}")
    return float(t.ppf(q, df))


def t_cdf(x: float, df: float) -> float:
    """Student-t cumulative distribution function."""
    from scipy.stats import t

    return float(t.cdf(x, df))


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): two-sided t interval of the mean; bounds are NaN for fewer than 2 values.

    Zero spread gives a zero-width interval at the mean (every pair moved by the same amount).
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_ppf(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def excludes_zero(low: float, high: float) -> bool:
    """True when a CI lies entirely above or below 0 (NaN bounds never do)."""
    return (low > 0 or high < 0) and not (math.isnan(low) or math.isnan(high))


def wilcoxon_signed_rank(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``diffs`` against 0 (``scipy.stats.wilcoxon``).

    Zero differences are dropped (Wilcoxon's convention). Up to ``EXACT_MAX_N`` non-zero differences the null
    distribution is every sign pattern of the observed mid-ranks (exact, ties included); above, the normal
    approximation with the tie-corrected variance and a continuity correction. NaN when no non-zero difference is
    left.
    """
    import numpy as np
    from scipy.stats import PermutationMethod, wilcoxon

    d = [x for x in diffs if x != 0 and not math.isnan(x)]
    if not d:
        return math.nan
    if len(d) == 1:  # two sign patterns, as extreme as each other (scipy's permutation needs two values)
        return 1.0
    method = PermutationMethod(n_resamples=np.inf) if len(d) <= EXACT_MAX_N else "approx"
    return float(wilcoxon(d, zero_method="wilcox", correction=True, method=method).pvalue)
