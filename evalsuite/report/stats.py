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
# Below this many items in a subset, resampling it says too little (a subset of one item never
# varies; of a few, in a handful of steps): score intervals instead (evalsuite.report.item_stats).
MIN_SUBSET_ITEMS = 10


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


def wilson_effective(proportion: float, n_eff: float, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for a proportion estimated with an effective sample size `n_eff`.

    With proportion k/n and n_eff = n it is `wilson_interval`. For a weighted mean of independent
    subset accuracies, sum_s w_s k_s/n_s, the effective size n_eff = 1 / sum_s(w_s^2 / n_s) makes
    p(1-p)/n_eff its exact variance when the subsets' accuracies are equal (the case where every
    item is right, or every item wrong, and a bootstrap has nothing to resample); the same
    effective size is Korn and Graubard's (1998) for Clopper-Pearson intervals under stratified
    sampling.
    """
    if not n_eff > 0 or not 0.0 <= proportion <= 1.0:
        raise ValueError("a proportion in [0, 1] and a positive effective n are needed")
    z2 = float(stats.norm.ppf(0.5 + confidence / 2.0)) ** 2
    denominator = 1.0 + z2 / n_eff
    center = (proportion + z2 / (2.0 * n_eff)) / denominator
    half = math.sqrt(z2 * proportion * (1.0 - proportion) / n_eff + z2**2 / (4.0 * n_eff**2)) / denominator
    return Interval(max(0.0, center - half), min(1.0, center + half), f"wilson, effective n {n_eff:.4g}")


def score_test_p(successes: int, n: int, p0: float) -> float:
    """Two-sided score test of H0: p = p0; the test the Wilson interval inverts.

    Using it (rather than the exact binomial test) makes "p0 inside the 95% Wilson interval"
    and "p >= 0.05" the same statement.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    return score_test_p_effective(successes / n, n, p0)


def score_test_p_effective(proportion: float, n_eff: float, p0: float) -> float:
    """The score test that `wilson_effective` inverts: p0 inside its interval exactly when p >= 0.05."""
    if p0 <= 0.0 or p0 >= 1.0:
        return 1.0 if abs(proportion - p0) < 1e-12 else 0.0
    z = (proportion - p0) / math.sqrt(p0 * (1.0 - p0) / n_eff)
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


NO_INTERVAL = "n too small"  # the method of an interval that could not be computed (low = high = NaN)


def no_interval(why: str = "") -> Interval:
    """No interval (NaN bounds): the tables print "n too small"."""
    return Interval(math.nan, math.nan, NO_INTERVAL + (f" ({why})" if why else ""))


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Percentile bootstrap interval; replicates that never vary give none (`no_interval`).

    Resamples of two items that were both right are all 100%: [100, 100] would be printed as a
    95% interval although it says nothing about sampling error.
    """
    if np.ptp(replicates) == 0.0:
        return no_interval("every resample the same")
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
    if se == 0.0 or sizes.min() < MIN_SUBSET_ITEMS:
        return _paired_score_bounds(float(np.mean(p10)), float(np.mean(p01)), sizes, confidence)
    return normal_interval(diff, se, "paired normal (closed-form bootstrap variance)", confidence)


def _paired_score_bounds(p10: float, p01: float, sizes: np.ndarray, confidence: float) -> Interval:
    """[L10 - U01, U10 - L01] from Wilson intervals of the two discordant proportions.

    Each at 1 - (1 - confidence) / 2 (Bonferroni), so the pair holds with at least `confidence`
    at any n; used where the normal interval's variance is zero (no discordant pairs, or all one
    way) or subsets are too small for it.
    """
    n_eff = sizes.size**2 / float(np.sum(1.0 / sizes))  # effective n of a mean over strata
    level = 1.0 - (1.0 - confidence) / 2.0
    a, b = wilson_effective(p10, n_eff, level), wilson_effective(p01, n_eff, level)
    low, high = max(-1.0, a.low - b.high), min(1.0, a.high - b.low)
    return Interval(low, high, "paired Wilson bounds (Bonferroni; few or no discordant items)")


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
    if se == 0.0 or n < MIN_SUBSET_ITEMS:
        return no_interval("no or too few items that differ")
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
    points. rho and p are NaN when x or y does not vary. A NaN point is refused (ValueError
    naming it): ranks of NaN are undefined and would give p = 0; callers exclude such points
    and say so.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError("x and y need the same length")
    bad = np.flatnonzero(~(np.isfinite(xa) & np.isfinite(ya)))
    if bad.size:
        raise ValueError(f"Spearman needs finite points: NaN or infinite value at position(s) {bad.tolist()}")
    rx, ry = stats.rankdata(xa), stats.rankdata(ya)
    n = int(rx.size)
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
