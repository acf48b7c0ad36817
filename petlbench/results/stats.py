"""Paired statistics for ``petlbench compare --vs BASELINE``.

A seed fixes the Python, NumPy and torch RNGs and the data order the same way for every method, so two
configurations run on the same (dataset, model, seed) form a *pair*. Differences are taken per pair, which
removes the seed-to-seed variation both share (e.g. a lucky data order).

Per task: the mean of the per-seed differences with a 95% CI from the paired t-test over seeds.
Over tasks: the mean of the per-task mean differences with a 95% t CI over tasks, the sign count
("better on k of n tasks") and a two-sided Wilcoxon signed-rank p-value over the per-task means.
A difference is marked significant only where its 95% CI excludes 0 (the Wilcoxon p is reported next
to it, not used for the mark).

No SciPy: the Student-t quantile is computed exactly from the regularised incomplete beta function, and
the Wilcoxon null distribution is enumerated exactly (see ``wilcoxon_signed_rank``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# a configuration is results.CONFIG (method, label, model, variant); rows pair on (dataset, model, seed)
LEVEL = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Abramowitz & Stegun 26.5.8)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast here; else use the symmetry
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t cumulative distribution function."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Student-t quantile (inverse CDF) by bisection on ``t_cdf``; exact to ~1e-12."""
    if not 0.0 < q < 1.0 or df <= 0:
        raise ValueError(f"t_ppf needs 0 < q < 1 and df > 0, got q={q}, df={df}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


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


def _midranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


EXACT_MAX_N = 50  # exact enumeration up to here (at most ~2.6k sums x 50 ranks); normal approximation above


def wilcoxon_signed_rank(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``diffs`` against 0.

    Zero differences are dropped (Wilcoxon's convention). Ties among |d| get mid-ranks, and the null
    distribution is enumerated exactly *for those ranks* (every sign pattern equally likely) for up to
    ``EXACT_MAX_N`` non-zero differences: p = 2·min(P(W⁺ ≤ w), P(W⁺ ≥ w)), capped at 1. Above that, the
    normal approximation with the tie-corrected variance. NaN when no non-zero difference is left.
    """
    d = [x for x in diffs if x != 0 and not math.isnan(x)]
    n = len(d)
    if n == 0:
        return math.nan
    ranks2 = [round(2 * r) for r in _midranks([abs(x) for x in d])]  # doubled mid-ranks are integers
    w2 = sum(r for r, x in zip(ranks2, d, strict=True) if x > 0)
    if n > EXACT_MAX_N:
        mean = sum(ranks2) / 2.0
        sd = math.sqrt(sum(r * r for r in ranks2) / 4.0)
        z = (abs(w2 - mean) - 0.5) / sd  # continuity correction of 1 in doubled units
        return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0)))
    counts = [1] + [0] * sum(ranks2)  # counts[s] = number of sign patterns with doubled W+ = s
    for r in ranks2:
        for s in range(len(counts) - 1, r - 1, -1):
            counts[s] += counts[s - r]
    total = 2 ** n
    low = sum(counts[: w2 + 1]) / total
    high = sum(counts[w2:]) / total
    return min(1.0, 2.0 * min(low, high))
