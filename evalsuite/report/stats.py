"""Generic statistics for the tables: intervals, tests and resampling primitives (numpy/scipy).

Nothing here knows about benchmarks; `evalsuite.report.item_stats` maps per-item records onto these.
Bootstraps and permutations work on *item types* (distinct rows with their counts): resampling
n items with replacement is the same as drawing multinomial counts over the distinct rows, and
a random sign flip of a group of m identical paired items is a Binomial(m, 1/2). That gives the
exact resampling distributions in O(resamples x types) instead of O(resamples x items).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "wilson" | "bootstrap-percentile" | ...

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for a binomial proportion (as a fraction)."""
    if n <= 0:
        raise ValueError("n must be positive")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high), "wilson")


def score_test_p(successes: int, n: int, p0: float) -> float:
    """Two-sided score test of H0: p = p0; the test the Wilson interval inverts.

    Using it (rather than the exact binomial test) makes "p0 inside the 95% Wilson interval"
    and "p >= 0.05" the same statement.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if p0 <= 0.0 or p0 >= 1.0:
        return 1.0 if successes == round(p0 * n) else 0.0
    z = (successes / n - p0) / math.sqrt(p0 * (1.0 - p0) / n)
    return float(2.0 * stats.norm.sf(abs(z)))


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: discordant pairs split Binomial(b + c, 1/2) under H0."""
    discordant = int(only_a) + int(only_b)
    if discordant == 0:
        return 1.0
    # Binomial(d, 1/2) is symmetric, so binomtest's two-sided p is twice the smaller tail;
    # one cdf call is much cheaper than binomtest, which matters over hundreds of pairs.
    return float(min(1.0, 2.0 * stats.binom.cdf(min(int(only_a), int(only_b)), discordant, 0.5)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    Hand-written: scipy offers only FDR control (false_discovery_control), and statsmodels
    is not a dependency.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return Interval(float(low), float(high), "bootstrap-percentile")


def bootstrap_p(replicates: np.ndarray, value: float) -> float:
    """Two-sided p-value of H0: statistic = value, by inverting the percentile interval.

    `value` lies inside the (1 - a) percentile interval exactly when this p exceeds about a,
    so the test and the interval agree; +1 terms keep p above zero with finite resamples.
    """
    b = replicates.size
    below = (np.count_nonzero(replicates <= value) + 1) / (b + 1)
    above = (np.count_nonzero(replicates >= value) + 1) / (b + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def item_types(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a 2-D array and how often each occurs."""
    rows = np.asarray(rows, dtype=float)
    if rows.ndim == 1:
        rows = rows[:, None]
    types, counts = np.unique(rows, axis=0, return_counts=True)
    return types, counts


def multinomial_counts(counts: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, types) counts of each item type in bootstrap resamples of all the items."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=resamples)


def stratified_accuracy_bootstrap(
    correct: np.ndarray, sizes: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(resamples, strata) accuracies when each stratum's items are resampled on their own.

    The number correct in a resample of a 0/1 stratum is Binomial(n_s, k_s / n_s) exactly.
    """
    correct = np.asarray(correct, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    draws = rng.binomial(sizes, correct / sizes, size=(resamples, sizes.size))
    return draws / sizes


def normal_interval(center: float, se: float, method: str, confidence: float = CONFIDENCE) -> Interval:
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return Interval(center - z * se, center + z * se, method)


def paired_mean_interval(
    only_a: np.ndarray, only_b: np.ndarray, sizes: np.ndarray, confidence: float = CONFIDENCE
) -> Interval:
    """Interval for the unweighted mean over strata of paired accuracy differences (fractions).

    The paired bootstrap's variance has a closed form here (multinomial over the outcome pairs
    of each stratum): Var = sum_s (p10 + p01 - (p10 - p01)^2) / (S^2 n_s); the normal interval
    on it stands in for 10k resamples of every stratum, which would dominate the run time.
    """
    only_a, only_b, sizes = (np.asarray(x, dtype=float) for x in (only_a, only_b, sizes))
    p10, p01 = only_a / sizes, only_b / sizes
    strata = sizes.size
    diff = float(np.mean(p10 - p01))
    se = math.sqrt(float(np.sum((p10 + p01 - (p10 - p01) ** 2) / sizes)) / strata**2)
    return normal_interval(diff, se, "paired normal (closed-form bootstrap variance)", confidence)


def paired_ratio_interval(
    d_num: np.ndarray, d_ratio: np.ndarray, denominator: np.ndarray, confidence: float = CONFIDENCE
) -> Interval:
    """Interval for mean(d_num) / 2 + sum(d_ratio) / (2 sum(denominator)), items resampled in pairs.

    IFEval's paired difference: d_num the prompt-level differences, d_ratio the differences in
    instructions followed, denominator the instructions per prompt. Delta-method variance
    (the item bootstrap's, to first order) from the influence of each item.
    """
    d_num, d_ratio, denominator = (np.asarray(x, dtype=float) for x in (d_num, d_ratio, denominator))
    n = d_num.size
    mean_den = denominator.mean()
    ratio = d_ratio.sum() / denominator.sum()
    influence = 0.5 * (d_num - d_num.mean()) + 0.5 * (d_ratio - ratio * denominator) / mean_den
    se = math.sqrt(float(np.sum(influence**2))) / n
    return normal_interval(
        0.5 * float(d_num.mean()) + 0.5 * ratio,
        se,
        "paired normal (delta-method bootstrap variance)",
        confidence,
    )


def sign_flip_test(
    contributions: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Paired permutation test of a statistic that is a sum of per-item contributions.

    Swapping the two models' outcomes on an item flips the sign of its contribution; returns
    the two-sided p-value and the permutation replicates. Zero contributions never matter.
    """
    c = np.asarray(contributions, dtype=float)
    observed = float(c.sum())
    # Items with contribution +v or -v pool: after random flips, how many show +v is Binomial(m, 1/2).
    values, counts = np.unique(np.abs(c[c != 0.0]), return_counts=True)
    if values.size == 0:
        return 1.0, np.zeros(resamples)
    positive = rng.binomial(counts, 0.5, size=(resamples, values.size))
    replicates = ((2 * positive - counts) * values).sum(axis=1)
    # Tolerance: replicates equal to the observed value up to float rounding count as extreme.
    extreme = np.count_nonzero(np.abs(replicates) >= abs(observed) - 1e-12 * max(1.0, abs(observed)))
    return float((extreme + 1) / (resamples + 1)), replicates


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman rank correlation and its two-sided p-value (scipy)."""
    res = stats.spearmanr(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return float(res.statistic), float(res.pvalue)


EXACT_PERMUTATION_MAX_N = 8  # 8! = 40,320 orderings: enumerated; beyond, a seeded Monte Carlo


@dataclass(frozen=True)
class RankTrend:
    """Spearman's rho with a permutation p-value (see `spearman_permutation`)."""

    rho: float
    p_value: float
    method: str  # "exact permutation (all 24 orderings)" | "Monte Carlo permutation (...)"
    smallest_p: float  # the smallest p-value this test can give for these points
    n: int


def spearman_permutation(
    x: Sequence[float],
    y: Sequence[float],
    *,
    exact_max_n: int = EXACT_PERMUTATION_MAX_N,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RankTrend:
    """Spearman's rho of x and y and its two-sided permutation p-value, valid at any n.

    rho is scipy's statistic: the Pearson correlation of average ranks (ties share their
    mean rank). Under H0 every assignment of the y values to the x values is equally likely,
    so p = P(|rho*| >= |rho|) over the permutations of y: all n! of them when
    n <= exact_max_n (an exact p; with 4 points the smallest is 2/24 = 1/12), else `resamples`
    seeded random ones with the +1 correction, p = (hits + 1) / (resamples + 1).
    scipy's `spearmanr` p-value is asymptotic (a t approximation) and reaches p ~ 0 with four
    points. rho and p are NaN when x or y does not vary.
    """
    rx = stats.rankdata(np.asarray(x, dtype=float))
    ry = stats.rankdata(np.asarray(y, dtype=float))
    n = int(rx.size)
    if n != ry.size:
        raise ValueError("x and y need the same length")
    cx, cy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(cx @ cx) * float(cy @ cy))
    if n < 2 or denominator == 0.0:
        return RankTrend(math.nan, math.nan, "not computed: no variation", math.nan, n)
    rho = float(np.clip(cx @ cy / denominator, -1.0, 1.0))
    exact = n <= exact_max_n
    if exact:
        orderings = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
        null = cy[orderings] @ cx / denominator
        method = f"exact permutation (all {orderings.shape[0]} orderings)"
    else:
        rng = np.random.default_rng(seed)
        null = rng.permuted(np.tile(cy, (resamples, 1)), axis=1) @ cx / denominator
        method = f"Monte Carlo permutation ({resamples} resamples, seed {seed})"
    # rho takes discrete values; equal ones may differ by float rounding, and count as extreme
    tol = 1e-9
    hits = int(np.count_nonzero(np.abs(null) >= abs(rho) - tol))
    if exact:
        p = hits / null.size
        smallest = int(np.count_nonzero(np.abs(null) >= float(np.abs(null).max()) - tol)) / null.size
    else:
        p = (hits + 1) / (resamples + 1)
        smallest = 1 / (resamples + 1)
    return RankTrend(rho, float(min(1.0, p)), method, float(smallest), n)
