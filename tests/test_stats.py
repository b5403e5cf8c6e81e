"""The statistics against known cases: published Wilson intervals, McNemar and Holm by hand,
bootstrap coverage and permutation size on simulated data with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import item_stats, stats


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (score interval without correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    ci = stats.wilson_interval(k, n)
    assert ci.low == pytest.approx(low, abs=5e-5)
    assert ci.high == pytest.approx(high, abs=5e-5)


def test_score_test_agrees_with_the_wilson_interval() -> None:
    # 81/263: p0 just inside the interval gives p > 0.05, just outside p < 0.05
    ci = stats.wilson_interval(81, 263)
    assert stats.score_test_p(81, 263, ci.low + 1e-4) > 0.05
    assert stats.score_test_p(81, 263, ci.low - 1e-4) < 0.05
    assert stats.score_test_p(81, 263, ci.high - 1e-4) > 0.05
    assert stats.score_test_p(81, 263, ci.high + 1e-4) < 0.05
    # z = (0.5 - 0.4) / sqrt(0.4 * 0.6 / 100) = 2.0412 -> p = 0.04123 (normal tables)
    assert stats.score_test_p(50, 100, 0.4) == pytest.approx(0.04123, abs=5e-5)


def test_exact_mcnemar_by_hand() -> None:
    # 10 vs 2 discordant: 2 * P(X <= 2 | Bin(12, 1/2)) = 2 * (1 + 12 + 66) / 4096
    assert stats.mcnemar_exact_p(10, 2) == pytest.approx(158 / 4096, rel=1e-12)
    assert stats.mcnemar_exact_p(2, 10) == pytest.approx(158 / 4096, rel=1e-12)
    # 3 vs 3: the two tails overlap, p capped at 1
    assert stats.mcnemar_exact_p(3, 3) == 1.0
    assert stats.mcnemar_exact_p(0, 0) == 1.0
    # 0 vs 6: 2 / 64
    assert stats.mcnemar_exact_p(0, 6) == pytest.approx(2 / 64, rel=1e-12)


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 0.04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_bootstrap_p_inverts_the_percentile_interval() -> None:
    reps = np.arange(10_000, dtype=float)
    assert stats.bootstrap_p(reps, 5000.0) == pytest.approx(1.0, abs=1e-3)
    assert stats.bootstrap_p(reps, -1.0) == pytest.approx(2 / 10_001)
    ci = stats.percentile_interval(reps)
    assert stats.bootstrap_p(reps, ci.low + 5) > 0.05
    assert stats.bootstrap_p(reps, ci.low - 5) < 0.05


def _coverage(truth: float, draws: list[tuple[float, float]]) -> float:
    return float(np.mean([lo <= truth <= hi for lo, hi in draws]))


def test_stratified_bootstrap_covers_the_true_subtask_mean() -> None:
    """400 simulated BBH-like benchmarks with known subtask accuracies: 95% intervals cover ~95%."""
    rng = np.random.default_rng(1)
    sizes = np.array([250] * 10 + [146, 187])
    truth_p = rng.uniform(0.2, 0.8, size=sizes.size)
    truth = float(truth_p.mean())
    cis = []
    for _ in range(400):
        correct = rng.binomial(sizes, truth_p)
        reps = stats.stratified_accuracy_bootstrap(correct, sizes, 2000, rng).mean(axis=1)
        ci = stats.percentile_interval(reps)
        cis.append((ci.low, ci.high))
    assert 0.92 <= _coverage(truth, cis) <= 0.98


def _ifeval_data(rng: np.random.Generator, p_inst: float, n: int = 541) -> item_stats.ItemData:
    totals = 1 + rng.binomial(2, 0.3, size=n)
    followed = rng.binomial(totals, p_inst)
    prompt = (followed == totals).astype(np.int64)
    return item_stats.ItemData(
        benchmark="ifeval", ids=[str(i) for i in range(n)], subtask_names=["ifeval"],
        subtask=np.zeros(n, dtype=np.int64), score=prompt.astype(np.int8), headline=float("nan"),
        if_prompt=prompt, if_total=totals, if_followed=followed,
    )  # fmt: skip


def test_ifeval_bootstrap_covers_the_true_average() -> None:
    """IFEval's (prompt + instruction)/2 with instruction counts 1-3: coverage near 95%."""
    rng = np.random.default_rng(2)
    p_inst = 0.75
    # truth by direct enumeration of the simulation's law
    p_tot = {1 + k: math.comb(2, k) * 0.3**k * 0.7 ** (2 - k) for k in range(3)}
    prompt_truth = sum(w * p_inst**t for t, w in p_tot.items())
    truth = 100 * (prompt_truth + p_inst) / 2
    cis = []
    for _ in range(300):
        reps = item_stats.bootstrap(_ifeval_data(rng, p_inst), 2000, rng)
        ci = stats.percentile_interval(reps)
        cis.append((ci.low, ci.high))
    assert 0.92 <= _coverage(truth, cis) <= 0.98


def test_paired_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(3)
    sizes = np.array([300, 200, 150])
    p10, p01 = np.array([0.15, 0.10, 0.05]), np.array([0.05, 0.10, 0.12])
    truth = float(np.mean(p10 - p01))
    cis = []
    for _ in range(500):
        a = rng.binomial(sizes, p10)
        b = rng.binomial(sizes - a, p01 / (1 - p10))
        ci = stats.paired_mean_interval(a, b, sizes)
        cis.append((ci.low, ci.high))
    assert 0.92 <= _coverage(truth, cis) <= 0.98


def test_paired_ifeval_interval_covers_the_true_difference() -> None:
    """Two models following each instruction with probability 0.75 and 0.65 on the same prompts."""
    rng = np.random.default_rng(6)
    pa, pb = 0.75, 0.65
    p_tot = {1 + k: math.comb(2, k) * 0.3**k * 0.7 ** (2 - k) for k in range(3)}
    prompt_diff = sum(w * (pa**t - pb**t) for t, w in p_tot.items())
    truth = (prompt_diff + (pa - pb)) / 2
    cis = []
    for _ in range(500):
        totals = 1 + rng.binomial(2, 0.3, size=541)
        fa, fb = rng.binomial(totals, pa), rng.binomial(totals, pb)
        d_prompt = (fa == totals).astype(float) - (fb == totals)
        ci = stats.paired_ratio_interval(d_prompt, fa - fb, totals)
        cis.append((ci.low, ci.high))
    assert 0.92 <= _coverage(truth, cis) <= 0.98


def test_sign_flip_matches_exact_mcnemar_on_one_accuracy() -> None:
    rng = np.random.default_rng(4)
    contributions = np.array([1.0] * 30 + [-1.0] * 15 + [0.0] * 200)
    p, _ = stats.sign_flip_test(contributions, 20_000, rng)
    assert p == pytest.approx(stats.mcnemar_exact_p(30, 15), abs=0.01)


def test_permutation_test_holds_its_size_under_the_null() -> None:
    """Two models with the same accuracy per subtask: about 5% of p-values fall below 0.05."""
    rng = np.random.default_rng(5)
    rejections = 0
    runs = 400
    sizes = np.array([120, 80, 60])
    groups = np.repeat(np.arange(3), sizes)
    acc = np.array([0.3, 0.6, 0.8])[groups]
    for _ in range(runs):
        a, b = rng.random(groups.size) < acc, rng.random(groups.size) < acc
        contributions = (a.astype(int) - b.astype(int)) / (sizes[groups] * sizes.size)
        p, _ = stats.sign_flip_test(contributions, 1000, rng)
        rejections += p < 0.05
    assert 0.02 <= rejections / runs <= 0.08


def test_spearman_sign_and_p() -> None:
    rho, p = stats.spearman([1, 2, 3, 4, 5, 6], [10, 20, 25, 30, 41, 50])
    assert rho == pytest.approx(1.0)
    assert p < 0.01
    rho, _ = stats.spearman([1, 2, 3, 4], [4, 3, 2, 1])
    assert rho == pytest.approx(-1.0)


def _records(scores: dict[str, list[int]]) -> list[dict]:
    return [
        {"id": f"{sub}/{i}", "subtask": sub, "score": s}
        for sub, values in scores.items()
        for i, s in enumerate(values)
    ]


def test_item_arrays_reproduce_the_registry_headlines() -> None:
    # ARC by hand: Easy 2/4, Challenge 1/3 -> (50 + 33.33) / 2
    arc = item_stats.from_records("arc", _records({"easy": [1, 1, 0, 0], "chal": [1, 0, 0]}), "t")
    assert arc.headline == pytest.approx((50 + 100 / 3) / 2)
    assert item_stats.estimate(arc) == pytest.approx(arc.headline)
    gsm = item_stats.from_records("gsm8k", _records({"gsm8k": [1, 0, 1, 1]}), "t")
    assert item_stats.estimate(gsm) == pytest.approx(75.0)
    ifeval = [
        {"id": "a", "subtask": "ifeval", "score": 1,
         "metrics": {"prompt_strict": 1, "prompt_loose": 1, "inst_strict": [1, 1], "inst_loose": [1, 1]}},
        {"id": "b", "subtask": "ifeval", "score": 0,
         "metrics": {"prompt_strict": 0, "prompt_loose": 0, "inst_strict": [0], "inst_loose": [0]}},
    ]  # fmt: skip
    # loose: prompt 1/2, instructions 2/3 -> (50 + 66.67) / 2
    data = item_stats.from_records("ifeval", ifeval, "t")
    assert data.headline == pytest.approx((50 + 200 / 3) / 2)
    assert item_stats.estimate(data) == pytest.approx(data.headline)


def test_every_registry_benchmark_has_a_resampling_rule() -> None:
    for name in registry.BENCHMARKS:
        assert item_stats.rule_for(name) in ("accuracy", "subtask_mean", "ifeval_loose")


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ([{"id": "a", "subtask": "x", "score": 2}], "0 or 1"),
        ([{"id": "a", "subtask": "x", "score": "yes"}], "0 or 1"),
        ([{"subtask": "x", "score": 1}], "'id'"),
        ([{"id": "a", "subtask": "x", "score": 1}, {"id": "a", "subtask": "x", "score": 0}], "duplicate"),
    ],
)
def test_bad_item_records_are_refused(records: list[dict], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        item_stats.from_records("gsm8k", records, "t")


def test_paired_comparison_by_hand_and_mismatched_items() -> None:
    a = item_stats.from_records("gsm8k", _records({"g": [1] * 10 + [0] * 2 + [1] * 5}), "a")
    b = item_stats.from_records("gsm8k", _records({"g": [0] * 10 + [1] * 2 + [1] * 5}), "b")
    found = item_stats.paired(a, b, 1000, np.random.default_rng(0))
    assert not isinstance(found, str)
    assert (found.only_a, found.only_b) == (10, 2)
    assert found.difference == pytest.approx(100 * 8 / 17)
    assert found.p_value == pytest.approx(158 / 4096)
    c = item_stats.from_records("gsm8k", _records({"other": [1] * 17}), "c")
    reason = item_stats.paired(a, c, 1000, np.random.default_rng(0))
    assert isinstance(reason, str) and "item sets differ" in reason


def test_malformed_ifeval_records_are_refused() -> None:
    flags = {"prompt_strict": 1, "prompt_loose": 1, "inst_strict": [], "inst_loose": []}
    for metrics in ({}, {"prompt_loose": 1, "inst_loose": [1]}, flags):
        with pytest.raises(UsageError, match="IFEval"):
            item_stats.from_records(
                "ifeval", [{"id": "a", "subtask": "i", "score": 1, "metrics": metrics}], "t"
            )


# --------------------------------------------------------------------------- small n


def test_effective_wilson_is_wilson_at_the_item_count_and_agrees_with_its_score_test() -> None:
    for k, n in ((81, 263), (0, 20), (2, 2)):
        plain, eff = stats.wilson_interval(k, n), stats.wilson_effective(k / n, n)
        assert (eff.low, eff.high) == pytest.approx((plain.low, plain.high), abs=1e-12)
    ci = stats.wilson_effective(0.4, 37.5)
    assert stats.score_test_p_effective(0.4, 37.5, ci.high - 1e-4) > 0.05
    assert stats.score_test_p_effective(0.4, 37.5, ci.high + 1e-4) < 0.05


@pytest.mark.parametrize(
    ("subsets", "low_below", "high_above"),
    [
        ({"easy": [1], "chal": [1]}, 100.0, 99.0),  # n = 2, both right: a bootstrap gives [100, 100]
        ({"easy": [0] * 5, "chal": [0] * 5}, 1.0, 0.0),  # every item wrong: a bootstrap gives [0, 0]
        ({"easy": [1, 0] * 3, "chal": [1, 1, 0]}, 100.0, 0.0),  # subsets of 6 and 3 items
    ],
)
def test_small_or_uniform_subset_means_get_a_score_interval(
    subsets: dict[str, list[int]], low_below: float, high_above: float
) -> None:
    data = item_stats.from_records("arc", _records(subsets), "t")
    ci, replicates = item_stats.interval(data, 2000, np.random.default_rng(0))
    assert replicates is None and ci.method.startswith("wilson, effective n")
    assert ci.low < low_below and ci.high > high_above and ci.low <= data.headline <= ci.high
    # the test inverts the same interval: its bounds are where p crosses 0.05
    assert item_stats.vs_value(data, ci.low + 0.01, None)[0] > 0.05
    assert item_stats.vs_value(data, max(ci.low - 0.01, 1e-6), None)[0] < 0.05 or ci.low < 0.01


def test_full_subsets_keep_the_bootstrap() -> None:
    rng = np.random.default_rng(3)
    data = item_stats.from_records(
        "arc", _records({"easy": list(rng.integers(0, 2, 40)), "chal": list(rng.integers(0, 2, 30))}), "t"
    )
    ci, replicates = item_stats.interval(data, 2000, np.random.default_rng(0))
    assert replicates is not None and ci.method == "bootstrap-percentile"


def test_ifeval_with_too_few_prompts_has_no_interval() -> None:
    metrics = {"prompt_strict": 1, "prompt_loose": 1, "inst_strict": [1, 1], "inst_loose": [1, 1]}
    records = [{"id": f"p{i}", "subtask": "ifeval", "score": 1, "metrics": metrics} for i in range(2)]
    data = item_stats.from_records("ifeval", records, "t")
    ci, replicates = item_stats.interval(data, 1000, np.random.default_rng(0))
    assert replicates is None and math.isnan(ci.low) and ci.method.startswith(stats.NO_INTERVAL)
    p, test = item_stats.vs_value(data, 50.0, replicates)
    assert math.isnan(p) and stats.NO_INTERVAL in test


def test_replicates_that_never_vary_are_no_interval() -> None:
    ci = stats.percentile_interval(np.full(1000, 100.0))
    assert math.isnan(ci.low) and math.isnan(ci.high) and ci.method.startswith(stats.NO_INTERVAL)


def test_rewardbench_sections_at_small_n_get_a_score_interval() -> None:
    from evalsuite import reward_sections as sections

    subsets = {s: [1] for s in sections.table().subsets}  # one row per subset, every one right
    data = item_stats.from_records("rewardbench", _records(subsets), "t")
    point, reps = item_stats.section_bootstrap(data, 1000, np.random.default_rng(0))
    for key in ("chat", "chat_hard", "safety", "reasoning"):
        ci, used = item_stats.section_interval(data, key, reps[key])
        assert used is None and ci.high == pytest.approx(100.0) and ci.low < 80.0, key
        assert item_stats.section_vs_value(data, key, point[key], used)[0] == 1.0
    # chat's weights 100, 95, 95, 28, 40 over 5 single rows: n_eff = 1 / sum(w^2)
    w = np.array([100, 95, 95, 28, 40]) / 358
    ci, _ = item_stats.section_interval(data, "chat", reps["chat"])
    assert ci.method == f"wilson, effective n {1 / float(np.sum(w**2)):.4g}"


@pytest.mark.parametrize(("a", "b"), [([1, 1], [1, 1]), ([1] * 30, [1] * 30), ([1, 1], [0, 0])])
def test_paired_interval_without_discordant_spread_is_not_a_point(a: list[int], b: list[int]) -> None:
    da = item_stats.from_records("gsm8k", _records({"g": a}), "a")
    db = item_stats.from_records("gsm8k", _records({"g": b}), "b")
    found = item_stats.paired(da, db, 1000, np.random.default_rng(0))
    assert not isinstance(found, str)
    ci = found.interval
    assert ci.low < found.difference <= ci.high or ci.low <= found.difference < ci.high
    assert ci.high - ci.low > 5.0 and ci.low >= -100.0 and ci.high <= 100.0 and "Wilson" in ci.method


def test_spearman_permutation_refuses_nan() -> None:
    with pytest.raises(ValueError, match=r"NaN.*position\(s\) \[2\]"):
        stats.spearman_permutation([1.0, 2.0, float("nan"), 4.0], [1.0, 2.0, 3.0, 4.0])
    assert stats.spearman_permutation([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]).p_value == pytest.approx(
        2 / 24
    )
