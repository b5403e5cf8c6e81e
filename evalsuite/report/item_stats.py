"""Per-item records as arrays, and the benchmark-aware intervals and paired tests built on them.

The aggregation rule of each benchmark is `Benchmark.headline` in evalsuite.benchmarks; the
vectorised forms here are chosen by which registry function a benchmark uses, and every
estimate is checked against `headline(records)` so the two can never silently disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import stats
from evalsuite.report.stats import Interval

# Which vectorised rule reproduces each registry headline function.
RULES: dict[Callable[..., float], str] = {
    registry.accuracy: "accuracy",
    registry.subtask_mean: "subtask_mean",
    registry.ifeval_average_loose: "ifeval_loose",
}
RB_SECTIONS = ("chat", "chat_hard", "safety", "reasoning")


def rule_for(benchmark: str) -> str:
    bench = registry.get(benchmark)
    try:
        return RULES[bench.headline]
    except KeyError:
        raise UsageError(
            f"benchmark {benchmark!r} aggregates with {bench.headline.__name__}, which has no "
            "resampling rule; add one to evalsuite/report/item_stats.py"
        ) from None


@dataclass
class ItemData:
    """One model's records on one benchmark, in file order."""

    benchmark: str
    ids: list[str]
    subtask_names: list[str]  # in order of first appearance
    subtask: np.ndarray  # int codes into subtask_names
    score: np.ndarray  # int8, 0/1
    headline: float  # percent, from Benchmark.headline(records): the registry's truth
    prompt_sha: list[str] | None = None  # None when the records carry no prompt hashes
    # IFEval (loose variant, the headline's): prompt flag, instructions, instructions followed
    if_prompt: np.ndarray | None = None
    if_total: np.ndarray | None = None
    if_followed: np.ndarray | None = None
    extra: dict[str, float] = field(default_factory=dict)  # IFEval: all four scores, both averages

    @property
    def n(self) -> int:
        return int(self.score.size)

    def strata(self) -> tuple[np.ndarray, np.ndarray]:
        """Correct count and size of each subtask (in subtask_names order)."""
        sizes = np.bincount(self.subtask, minlength=len(self.subtask_names))
        correct = np.bincount(self.subtask, weights=self.score, minlength=len(self.subtask_names))
        return correct.astype(np.int64), sizes


def _flags(values: list[Any], where: str, what: str) -> np.ndarray:
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {what} must be 0 or 1") from None
    if arr.ndim != 1 or not np.all((arr == 0.0) | (arr == 1.0)):
        raise UsageError(f"{where}: {what} must be 0 or 1")
    return arr.astype(np.int8)


def _ifeval_arrays(data: ItemData, records: Sequence[dict[str, Any]], where: str) -> None:
    try:
        metrics = [r["metrics"] for r in records]
        flags = [m["inst_loose"] for m in metrics]
        prompt = _flags([m["prompt_loose"] for m in metrics], where, "prompt_loose")
        data.if_total = np.array([len(f) for f in flags], dtype=np.int64)
        followed = _flags([x for f in flags for x in f], where, "inst_loose flags").astype(np.int64)
        if np.any(data.if_total == 0):
            raise UsageError(f"{where}: an IFEval record lists no instructions")
        data.extra = registry.ifeval_scores(records)
    except (KeyError, TypeError):
        raise UsageError(f"{where}: IFEval records need metrics.prompt_* and inst_* flags") from None
    data.if_prompt = prompt.astype(np.int64)
    data.if_followed = np.add.reduceat(followed, np.r_[0, np.cumsum(data.if_total)[:-1]])


def from_records(benchmark: str, records: Sequence[dict[str, Any]], where: str) -> ItemData:
    """Arrays from per-item records; refuses records without ids, duplicate ids or non-0/1 scores."""
    if not records:
        raise UsageError(f"{where}: no item records")
    rule = rule_for(benchmark)
    try:
        ids = [r["id"] for r in records]
        names = [r["subtask"] for r in records]
        raw_scores = [r["score"] for r in records]
    except (KeyError, TypeError):
        raise UsageError(
            f"{where}: every item record needs 'id' (items are matched by id), 'subtask' and 'score'"
        ) from None
    if set(map(type, ids)) != {str}:
        ids = [str(x) for x in ids]
    if set(map(type, names)) != {str}:
        names = [str(x) for x in names]
    if len(set(ids)) != len(ids):
        raise UsageError(f"{where}: duplicate item ids; each item must appear once")
    codes = {name: i for i, name in enumerate(dict.fromkeys(names))}
    subtask = np.array([codes[name] for name in names], dtype=np.int64)
    shas = [r.get("prompt_sha256") for r in records]
    data = ItemData(
        benchmark=benchmark,
        ids=ids,
        subtask_names=list(codes),
        subtask=subtask,
        score=_flags(raw_scores, where, "item scores"),
        headline=float("nan"),
        prompt_sha=shas if set(map(type, shas)) == {str} else None,
    )
    if rule == "ifeval_loose":
        _ifeval_arrays(data, records, where)
    try:  # after the checks above, so a malformed record is named rather than crashing here
        data.headline = registry.get(benchmark).headline(records)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise UsageError(f"{where}: item records do not fit the {benchmark} scorer ({exc!r})") from None
    est = estimate(data)
    if abs(est - data.headline) > 1e-9:  # a registry rule changed without this module
        raise RuntimeError(f"{benchmark}: vectorised estimate {est} != registry headline {data.headline}")
    return data


def estimate(data: ItemData) -> float:
    rule = rule_for(data.benchmark)
    if rule == "accuracy":
        return 100.0 * float(data.score.mean())
    if rule == "subtask_mean":
        correct, sizes = data.strata()
        return 100.0 * float(np.mean(correct / sizes))
    assert data.if_prompt is not None and data.if_total is not None and data.if_followed is not None
    prompt = data.if_prompt.sum() / data.n
    inst = data.if_followed.sum() / data.if_total.sum()
    return 100.0 * float(prompt + inst) / 2.0


def uses_wilson(benchmark: str) -> bool:
    return registry.get(benchmark).interval == "wilson"


def bootstrap(data: ItemData, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates (percent) of the headline, resampling items (within subtasks for means)."""
    rule = rule_for(data.benchmark)
    if rule in ("accuracy", "subtask_mean"):
        if rule == "accuracy":
            correct, sizes = np.array([int(data.score.sum())]), np.array([data.n])
        else:
            correct, sizes = data.strata()
        return 100.0 * stats.stratified_accuracy_bootstrap(correct, sizes, resamples, rng).mean(axis=1)
    assert data.if_prompt is not None and data.if_total is not None and data.if_followed is not None
    types, counts = stats.item_types(np.column_stack([data.if_prompt, data.if_total, data.if_followed]))
    m = stats.multinomial_counts(counts, resamples, rng)
    prompt = m @ types[:, 0] / data.n
    inst = (m @ types[:, 2]) / (m @ types[:, 1])
    return 100.0 * (prompt + inst) / 2.0


def interval(data: ItemData, resamples: int, rng: np.random.Generator) -> tuple[Interval, np.ndarray | None]:
    """The headline's 95% interval (percent) and the bootstrap replicates behind it (None if none).

    The rule, so that no interval claims more than the items can say:
    - one accuracy (GSM8K, PIQA, UFB, ...): the Wilson score interval on the count, at any n;
    - a mean of subset accuracies (ARC, BBH): the percentile bootstrap over items within
      subsets when every subset has at least stats.MIN_SUBSET_ITEMS items and the resamples
      vary; otherwise the Wilson score interval at the effective sample size
      (stats.wilson_effective) - never a bootstrap's [100, 100] from two right answers or
      [0, 0] from items that are all wrong;
    - IFEval (a ratio, not one proportion): the bootstrap under the same conditions, else none
      ("n too small", NaN bounds).
    `vs_value` tests with the same rule, so "value inside the interval" and "p >= 0.05" agree.
    """
    if uses_wilson(data.benchmark) and rule_for(data.benchmark) == "accuracy":
        ci = stats.wilson_interval(int(data.score.sum()), data.n)
        return Interval(100 * ci.low, 100 * ci.high, ci.method), None
    if _resampling_fits(data):
        reps = bootstrap(data, resamples, rng)
        if np.ptp(reps) > 0.0:
            return stats.percentile_interval(reps), reps
    return _score_interval(_as_proportion(data)), None


def vs_value(data: ItemData, value: float, replicates: np.ndarray | None) -> tuple[float, str]:
    """Two-sided p-value of "the headline's true value is `value`" (percent), and the test's name.

    `replicates`: what `interval` returned; None means its score interval (or none) was used.
    """
    if replicates is not None:
        return stats.bootstrap_p(replicates, value), "bootstrap percentile inversion"
    return _score_test(_as_proportion(data), value)


def _resampling_fits(data: ItemData) -> bool:
    """Every subset (IFEval: the prompts) holds enough items for a percentile bootstrap."""
    if rule_for(data.benchmark) == "ifeval_loose":
        return data.n >= stats.MIN_SUBSET_ITEMS
    return int(data.strata()[1].min()) >= stats.MIN_SUBSET_ITEMS


def _as_proportion(data: ItemData) -> tuple[float, float] | None:
    """(headline as a fraction, effective n) where the headline is a mean of subset accuracies."""
    rule = rule_for(data.benchmark)
    if rule == "ifeval_loose":
        return None
    correct, sizes = (
        data.strata() if rule == "subtask_mean" else (np.array([data.score.sum()]), np.array([data.n]))
    )
    weights = np.full(sizes.size, 1.0 / sizes.size)
    return _weighted_proportion(correct, sizes, weights)


def _weighted_proportion(correct: np.ndarray, sizes: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """sum_s w_s k_s/n_s and its effective n, 1 / sum_s(w_s^2 / n_s) (stats.wilson_effective)."""
    used = weights > 0
    share = weights[used] / weights[used].sum()
    value = float(np.sum(share * correct[used] / sizes[used]))
    return min(1.0, max(0.0, value)), 1.0 / float(np.sum(share**2 / sizes[used]))


def _score_interval(proportion: tuple[float, float] | None) -> Interval:
    if proportion is None:
        return stats.no_interval("too few items, or every item the same")
    ci = stats.wilson_effective(*proportion)
    return Interval(100 * ci.low, 100 * ci.high, ci.method)


def _score_test(proportion: tuple[float, float] | None, value: float) -> tuple[float, str]:
    if proportion is None:
        return float("nan"), f"not computed: {stats.NO_INTERVAL}"
    return stats.score_test_p_effective(proportion[0], proportion[1], value / 100.0), "score test (Wilson)"


# --- RewardBench sections -------------------------------------------------------------------


def section_bootstrap(
    data: ItemData, resamples: int, rng: np.random.Generator
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point values and bootstrap replicates (percent) of the four RewardBench sections.

    Items are resampled within their subset; the section weights stay in evalsuite.reward
    (its arithmetic is linear and takes arrays of replicates as they are).
    """
    from evalsuite.reward_sections import section_scores

    point = section_point(data)
    correct, sizes = data.strata()
    accs = 100.0 * stats.stratified_accuracy_bootstrap(correct, sizes, resamples, rng)
    reps = section_scores({s: accs[:, j] for j, s in enumerate(data.subtask_names)})
    return point, {k: np.asarray(reps[k], dtype=float) for k in point}


def section_interval(
    data: ItemData, section: str, replicates: np.ndarray
) -> tuple[Interval, np.ndarray | None]:
    """A RewardBench section's 95% interval (percent), by `interval`'s rule.

    `replicates`: the section's from `section_bootstrap`; returned when the percentile interval
    is used, else None (then the Wilson score interval at the section's effective n).
    """
    weights = _section_weights(data, section)
    correct, sizes = data.strata()
    if int(sizes[weights > 0].min()) >= stats.MIN_SUBSET_ITEMS and np.ptp(replicates) > 0.0:
        return stats.percentile_interval(replicates), replicates
    return _score_interval(_weighted_proportion(correct, sizes, weights)), None


def section_vs_value(
    data: ItemData, section: str, value: float, replicates: np.ndarray | None
) -> tuple[float, str]:
    """`vs_value` for a RewardBench section; `replicates` as `section_interval` returned them."""
    if replicates is not None:
        return stats.bootstrap_p(replicates, value), "bootstrap percentile inversion"
    correct, sizes = data.strata()
    return _score_test(_weighted_proportion(correct, sizes, _section_weights(data, section)), value)


def _section_weights(data: ItemData, section: str) -> np.ndarray:
    """Each subset's weight in a section (subset order of data): its scores are linear in them."""
    from evalsuite.reward_sections import section_scores

    unit = np.eye(len(data.subtask_names))
    return np.asarray(section_scores(dict(zip(data.subtask_names, unit, strict=True)))[section], dtype=float)


def section_point(data: ItemData) -> dict[str, float]:
    """The four RewardBench section scores (percent) of one run's items."""
    from evalsuite.reward_sections import section_scores

    correct, sizes = data.strata()
    try:
        point = section_scores(
            {s: 100.0 * c / n for s, c, n in zip(data.subtask_names, correct, sizes, strict=True)}
        )
    except ValueError as exc:
        raise UsageError(f"rewardbench items: {exc}") from None
    return {k: float(point[k]) for k in RB_SECTIONS if k in point}


# --- paired comparisons -----------------------------------------------------------------------


@dataclass
class Paired:
    difference: float  # percent points, a - b
    interval: Interval  # paired bootstrap
    p_value: float
    test: str
    n: int
    only_a: int | None = None  # McNemar's discordant counts, for single accuracies
    only_b: int | None = None
    prompt_mismatches: int | None = None  # matched items whose prompt hashes differ


def align(a: ItemData, b: ItemData) -> tuple[np.ndarray | None, str | None]:
    """Index into b matching a's item order (None: same order), or why the item sets differ."""
    if a.ids == b.ids:
        return None, None
    position = {k: i for i, k in enumerate(b.ids)}
    missing = sum(1 for k in a.ids if k not in position)
    extra = b.n - (a.n - missing)
    if missing or extra:
        return None, f"item sets differ: {missing} items only in the first, {extra} only in the second"
    return np.array([position[k] for k in a.ids]), None


def _take(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return values if order is None else values[order]


def paired(a: ItemData, b: ItemData, resamples: int, rng: np.random.Generator) -> Paired | str:
    """a vs b on the same items: difference, interval, and exact McNemar or permutation p-value.

    Returns a reason string instead when the items cannot be matched.
    """
    order, reason = align(a, b)
    if reason:
        return reason
    found = _paired(a, b, order, resamples, rng)
    if not isinstance(found, str):
        found.prompt_mismatches = _prompt_mismatches(a, b, order)
    return found


def _paired(
    a: ItemData, b: ItemData, order: np.ndarray | None, resamples: int, rng: np.random.Generator
) -> Paired | str:
    rule = rule_for(a.benchmark)
    if rule in ("accuracy", "subtask_mean"):
        if rule == "subtask_mean":
            index = {name: i for i, name in enumerate(a.subtask_names)}
            in_a = np.array([index.get(name, -1) for name in b.subtask_names])  # b's codes as a's
            if not np.array_equal(a.subtask, in_a[_take(b.subtask, order)]):
                return "the same item ids sit in different subtasks"
            groups = a.subtask
        else:
            groups = np.zeros(a.n, dtype=np.int64)
        diff_items = a.score.astype(np.int64) - _take(b.score, order)
        sizes = np.bincount(groups)
        only_a = np.bincount(groups, weights=diff_items == 1, minlength=sizes.size)
        only_b = np.bincount(groups, weights=diff_items == -1, minlength=sizes.size)
        ci = stats.paired_mean_interval(only_a, only_b, sizes)
        ci = Interval(100 * ci.low, 100 * ci.high, ci.method)
        difference = 100.0 * float(np.mean((only_a - only_b) / sizes))
        if rule == "accuracy":
            oa, ob = int(only_a[0]), int(only_b[0])
            return Paired(difference, ci, stats.mcnemar_exact_p(oa, ob), "exact McNemar", a.n, oa, ob)
        contributions = 100.0 * diff_items / (sizes[groups] * sizes.size)
        p, _ = stats.sign_flip_test(contributions, resamples, rng)
        return Paired(difference, ci, p, "paired permutation", a.n)
    assert a.if_total is not None and b.if_total is not None
    if not np.array_equal(a.if_total, _take(b.if_total, order)):
        return "IFEval items list different instructions in the two results"
    assert a.if_prompt is not None and a.if_followed is not None
    assert b.if_prompt is not None and b.if_followed is not None
    d_prompt = (a.if_prompt - _take(b.if_prompt, order)).astype(float)
    d_followed = (a.if_followed - _take(b.if_followed, order)).astype(float)
    contributions = 50.0 * (d_prompt / a.n + d_followed / a.if_total.sum())
    ci = stats.paired_ratio_interval(d_prompt, d_followed, a.if_total)
    p, _ = stats.sign_flip_test(contributions, resamples, rng)
    interval = Interval(100 * ci.low, 100 * ci.high, ci.method)
    return Paired(float(contributions.sum()), interval, p, "paired permutation", a.n)


def _prompt_mismatches(a: ItemData, b: ItemData, order: np.ndarray | None) -> int | None:
    """Matched items whose prompt hashes differ (chat templates may legitimately differ)."""
    if a.prompt_sha is None or b.prompt_sha is None:
        return None
    if order is None:
        return (
            0
            if a.prompt_sha == b.prompt_sha
            else sum(x != y for x, y in zip(a.prompt_sha, b.prompt_sha, strict=True))
        )
    return sum(a.prompt_sha[i] != b.prompt_sha[j] for i, j in enumerate(order.tolist()))
