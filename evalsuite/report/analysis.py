"""All the statistics behind the tables, from loaded runs: one `Report`, also written as JSON.

- every reproduced score with its 95% interval (Wilson, or bootstrap over items);
- reproduced vs reported: a verdict against the harness tolerance and, for retrained models,
  the spread of their training seeds (evalsuite.report.verdicts); difference, interval and item test
  as information;
- model vs model on the same items (the pairs the paper compares, or all with `all_pairs`),
  Holm-adjusted over the benchmarks of each pair;
- the paper's claims.
Random streams are seeded per (seed, model, benchmark), so a number does not change when
other results are added.
"""

from __future__ import annotations

import itertools
import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from evalsuite import results as results_fmt
from evalsuite.report import claim_checks, item_stats, stats, verdicts
from evalsuite.report import claims as claims_mod
from evalsuite.report.item_stats import Paired
from evalsuite.report.reported import Metric, Reported, ReportedScores
from evalsuite.report.result_set import Run, group_problem, seed_groups
from evalsuite.report.stats import CONFIDENCE
from evalsuite.sharpness.record import Measurement

FORMAT = "smoltulu-tables/1"


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    resamples: int = stats.RESAMPLES
    seed: int = 0
    all_pairs: bool = False  # compare every pair of models, not only the pairs the paper compares
    confidence: float = field(default=stats.CONFIDENCE, init=False)  # recorded; intervals are 95%


@dataclass
class ScoreStat:
    model: str
    metric: str  # "gsm8k", "rewardbench.chat", ...
    value: float  # percent (the mean over training seeds when several are pooled)
    n: int  # items (per seed)
    interval: dict[str, Any] | None  # {low, high, method}: items, or over seeds when pooled
    reported: dict[str, Any] | None  # {value, text, source}
    difference: float | None = None  # reproduced - reported, points
    inside: bool | None = None  # reported value inside the interval (information)
    p_value: float | None = None  # two-sided item-sampling test of reproduced = reported (information)
    test: str | None = None
    verdict: str | None = None  # reproduced | not reproduced | inconclusive (evalsuite.report.verdicts)
    verdict_reason: str | None = None  # the numbers behind it
    tolerance: float | None = None  # harness tolerance + printed rounding, points
    band: dict[str, float] | None = None  # {low, high}: reproduced values that count as reported
    seeds: int | None = None  # training seeds pooled (retrained); None: a published checkpoint
    seed_sd: float | None = None  # points, with two seeds or more
    half_width: float | None = None  # the band's half-width used (tolerance + seed spread), points
    partial: str | None = None  # why this run is not evidence on the full set (never judged/claimed)
    note: str | None = None  # why a comparison was not made
    extra: dict[str, float] = field(default_factory=dict)  # e.g. all IFEval variants


@dataclass
class Comparison:
    a: str
    b: str
    benchmark: str
    difference: float | None = None  # a - b, points
    interval: dict[str, Any] | None = None
    p_value: float | None = None
    test: str | None = None
    n: int | None = None
    only_a: int | None = None
    only_b: int | None = None
    prompt_mismatches: int | None = None
    p_holm: float | None = None
    significant: bool | None = None
    note: str | None = None


@dataclass
class ModelEntry:
    label: str
    header: str
    kind: str
    results: str
    simulated: bool
    limit: int | None
    in_paper: bool
    benchmarks: list[str]
    seed_results: list[str] = field(default_factory=list)  # every results file pooled (seeds)
    training_seeds: list[int] | None = None  # retrained with `python -m repro`; None: published
    partial: str | None = None
    provenance: str = ""  # published checkpoint, retrained by repro, local folder, outputs, simulated


@dataclass
class Report:
    settings: Settings
    models: list[ModelEntry]
    scores: list[ScoreStat]
    comparisons: list[Comparison]
    claims: list[claims_mod.ClaimResult]
    ablation_points: int
    notes: list[str] = field(default_factory=list)
    format: str = FORMAT

    def score(self, model: str, metric: Metric) -> ScoreStat | None:
        for s in self.scores:
            if s.model == model and s.metric == str(metric):
                return s
        return None

    def to_json_obj(self) -> dict[str, Any]:
        return results_fmt.json_safe(asdict(self))


def rng_for(settings: Settings, *keys: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, *(zlib.crc32(k.encode()) for k in keys)])


def _interval(low: float, high: float, method: str) -> dict[str, Any]:
    return {"low": low, "high": high, "method": method}


def _judge(
    stat: ScoreStat,
    rep: Reported,
    tolerance: verdicts.Tolerance,
    group: Sequence[Run],
    per_seed: list[float],
    test: tuple[float, str] | None,
    problem: str | None,
) -> None:
    """Fill the reproduced-vs-reported fields of one score (see evalsuite.report.verdicts).

    `problem`: why the pooled seeds are not evidence together (result_set.group_problem); such a
    group is shown, never judged.
    """
    run = group[0]
    stat.difference = stat.value - rep.value
    bounds = (stat.interval or {}).get("low"), (stat.interval or {}).get("high")
    finite = all(isinstance(b, int | float) and math.isfinite(b) for b in bounds)
    if stat.interval is not None and finite:
        stat.inside = stat.interval["low"] <= rep.value <= stat.interval["high"]
    stat.partial = run.partial
    if problem is not None:
        stat.partial = stat.partial or problem
        stat.note = f"{problem}; pooled seeds are judged only when every seed is"
        return
    if run.limit is not None or (run.partial and "sample" not in run.results.settings):
        stat.note = f"partial: {run.partial}; only full (or randomly sampled) sets are judged"
        return
    if test is not None:
        stat.p_value, stat.test = test
    sampled = None
    if "sample" in run.results.settings:
        if stat.interval is None or not finite:
            stat.note = "n too small: a --sample run with no interval to judge it by; evaluate more items"
            return
        sampled = (stat.interval["low"], stat.interval["high"])
    trained = run.retrained or run.unverified  # a training run: its seed variance widens the band
    seeds = per_seed if trained else None
    j = verdicts.judge(rep, tolerance, value=stat.value, seeds=seeds, sampled=sampled)
    stat.verdict, stat.verdict_reason, stat.tolerance = j.verdict, j.reason, j.tolerance
    stat.band = {"low": j.band[0], "high": j.band[1]}
    stat.seeds = len(per_seed) if trained else None
    stat.seed_sd, stat.half_width = j.seed_sd, j.half_width


def _provenance(group: Sequence[Run]) -> str:
    if len(group) == 1:
        return group[0].provenance
    seeds = ", ".join(str(r.training_seed) for r in group)
    if group[0].simulated:
        return f"simulated, training seeds {seeds}"
    return f"retrained by repro, training seeds {seeds}" if group[0].retrained else group[0].provenance


def _seed_interval(values: list[float]) -> dict[str, Any]:
    """95% t interval of a recipe's mean score over its training seeds."""
    k = len(values)
    half = float(sps.t.ppf(0.975, k - 1)) * statistics.stdev(values) / math.sqrt(k)
    mean = statistics.fmean(values)
    return _interval(mean - half, mean + half, f"t over {k} training seeds")


def score_stats(
    group: Sequence[Run], reported: ReportedScores, settings: Settings, tolerances: dict | None = None
) -> list[ScoreStat]:
    """Every score of one model: a results file, or the training seeds of one recipe pooled."""
    tolerances = tolerances if tolerances is not None else verdicts.load()
    run = group[0]
    problem = group_problem(group)
    out = []
    for bench, data in run.items.items():
        per_seed = [r.items[bench].headline for r in group if bench in r.items]
        lacking = _lacking(group, bench)
        rng = rng_for(settings, run.label, bench)
        ci, reps = item_stats.interval(data, settings.resamples, rng)
        pooled = len(per_seed) > 1
        rep = reported.get(run.label, Metric(bench))
        stat = ScoreStat(
            run.label,
            bench,
            statistics.fmean(per_seed) if pooled else data.headline,
            data.n,
            _seed_interval(per_seed) if pooled else _interval(ci.low, ci.high, ci.method),
            asdict(rep) if rep else None,
        )
        if bench == "ifeval":
            stat.extra = data.extra
        if rep is not None:
            test = None if pooled else item_stats.vs_value(data, rep.value, reps)
            _judge(stat, rep, tolerances[bench], group, per_seed, test, problem or lacking)
        out.append(stat)
        if bench == "rewardbench":
            out.extend(_section_stats(group, reported, settings, tolerances[bench], problem or lacking))
    return out


def _lacking(group: Sequence[Run], bench: str) -> str | None:
    """A pooled seed without this benchmark: the others are not pooled without it."""
    missing = [r for r in group if bench not in r.items]
    if not missing:
        return None
    return (
        f"refused: training seed {missing[0].training_seed} ({missing[0].path}) has no {bench} results; "
        "every pooled seed needs every benchmark"
    )


def _section_stats(
    group: Sequence[Run],
    reported: ReportedScores,
    settings: Settings,
    tolerance: verdicts.Tolerance,
    problem: str | None,
) -> list[ScoreStat]:
    run = group[0]
    point, reps = item_stats.section_bootstrap(
        run.items["rewardbench"], settings.resamples, rng_for(settings, run.label, "rb-sections")
    )
    with_rb = [r for r in group if "rewardbench" in r.items]
    sections = [item_stats.section_point(r.items["rewardbench"]) for r in with_rb]
    per_seed = {key: [found[key] for found in sections] for key in point}
    out = []
    for key in point:
        metric = Metric("rewardbench", key)
        rep: Reported | None = reported.get(run.label, metric)
        pooled = len(per_seed[key]) > 1
        ci, used = item_stats.section_interval(run.items["rewardbench"], key, reps[key])
        stat = ScoreStat(
            run.label, str(metric),
            statistics.fmean(per_seed[key]) if pooled else point[key],
            run.items["rewardbench"].n,
            _seed_interval(per_seed[key]) if pooled else _interval(ci.low, ci.high, ci.method),
            asdict(rep) if rep else None,
        )  # fmt: skip
        if rep is not None:
            test = (
                None
                if pooled
                else item_stats.section_vs_value(run.items["rewardbench"], key, rep.value, used)
            )
            _judge(stat, rep, tolerance, group, per_seed[key], test, problem)
        out.append(stat)
    return out


def apply_holm(rows: list[Any], alpha: float) -> None:
    """Holm-adjust the p-values of rows that have one, in place."""
    tested = [r for r in rows if r.p_value is not None]
    for row, adjusted in zip(tested, stats.holm([r.p_value for r in tested]), strict=True):
        row.p_holm = adjusted
        row.significant = adjusted < alpha


class PairCache:
    """Model-vs-model comparisons, computed once per unordered pair and benchmark.

    One run per side: the paired item test (item_stats.paired). Pooled training seeds on either
    side: the seeds are the unit (`seed_comparison`), since the paired item test on one seed per
    side would ignore the seed-to-seed spread, which is what separates two recipes' runs.
    """

    def __init__(self, groups: dict[str, list[Run]], settings: Settings):
        self.groups = groups
        self.runs = {label: members[0] for label, members in groups.items()}  # the lowest seed
        self.settings = settings
        self._cache: dict[tuple[str, str, str], Paired | str] = {}

    def get(self, a: str, b: str, bench: str) -> Paired | str:
        """a vs b (difference a - b); a reason string when it cannot be compared."""
        first, second = sorted((a, b))
        key = (first, second, bench)
        if key not in self._cache:
            self._cache[key] = self._compute(first, second, bench)
        found = self._cache[key]
        if isinstance(found, str) or first == a:
            return found
        flipped = item_stats.Interval(-found.interval.high, -found.interval.low, found.interval.method)
        return Paired(
            -found.difference,
            flipped,
            found.p_value,
            found.test,
            found.n,
            found.only_b,
            found.only_a,
            found.prompt_mismatches,
        )

    def _compute(self, first: str, second: str, bench: str) -> Paired | str:
        ga, gb = self.groups.get(first), self.groups.get(second)
        absent = [m for m, g in ((first, ga), (second, gb)) if g is None]
        if absent:
            return f"no results for {' and '.join(absent)}"
        assert ga is not None and gb is not None
        for g in (ga, gb):
            problem = group_problem(g) or _lacking(g, bench)
            if problem is not None and len(g) > 1:
                return problem
        lacking = [m for m, g in ((first, ga), (second, gb)) if bench not in g[0].items]
        if lacking:
            return f"no {bench} results for {' and '.join(lacking)}"
        if len(ga) == 1 and len(gb) == 1:
            rng = rng_for(self.settings, first, second, bench)
            return item_stats.paired(ga[0].items[bench], gb[0].items[bench], self.settings.resamples, rng)
        return seed_comparison(ga, gb, bench)


def seed_comparison(a: Sequence[Run], b: Sequence[Run], bench: str) -> Paired | str:
    """a vs b with training seeds as the unit (difference of mean scores, points).

    A published checkpoint (one run, not retrained) is a fixed model: a one-sample t test of the
    other side's seed scores minus its score, df k - 1. Two retrained recipes: a two-sample t test
    with pooled variance, df k_a + k_b - 2; pooled because a recipe with one seed has no spread of
    its own, and the two recipes share model, data and trainer. t rather than a test over items:
    the items are the same for every seed, and what varies between two recipes' runs is the seed.
    """
    va = [r.items[bench].headline for r in a]
    vb = [r.items[bench].headline for r in b]
    n = a[0].items[bench].n
    if len(set(va)) == 1 and len(set(vb)) == 1:  # no spread on either side: t is undefined
        return f"{bench}: the training seeds' scores do not vary, so a t test over seeds is undefined"
    fixed_b = len(b) == 1 and not b[0].retrained
    fixed_a = len(a) == 1 and not a[0].retrained
    if fixed_a or fixed_b:
        seeds, fixed, sign = (vb, va[0], -1.0) if fixed_a else (va, vb[0], 1.0)
        res = sps.ttest_1samp(np.subtract(seeds, fixed), 0.0)
        test = f"one-sample t over {len(seeds)} training seeds against a published checkpoint"
    else:
        res = sps.ttest_ind(va, vb, equal_var=True)
        seeds, sign = [*va, *vb], 1.0
        test = f"two-sample t over training seeds ({len(va)} vs {len(vb)}, pooled variance)"
    ci = res.confidence_interval(CONFIDENCE)
    if not (math.isfinite(float(res.pvalue)) and math.isfinite(float(ci.low))):
        return f"{bench}: the training seeds' scores do not vary, so a t test over seeds is undefined"
    low, high = sorted((sign * float(ci.low), sign * float(ci.high)))
    difference = statistics.fmean(va) - statistics.fmean(vb)
    return Paired(difference, item_stats.Interval(low, high, test), float(res.pvalue), test, n)


def comparisons(
    order: list[str], cache: PairCache, settings: Settings, only: set[frozenset[str]] | None = None
) -> list[Comparison]:
    """Pairs of models of the same kind (`only` these pairs, or all), on the benchmarks both have.

    Holm over the benchmarks of each pair: the family is one pair's row of the table.
    """
    out = []
    for a, b in itertools.combinations(order, 2):
        ra, rb = cache.runs[a], cache.runs[b]
        if ra.kind != rb.kind or (only is not None and frozenset((a, b)) not in only):
            continue
        rows = []
        for bench in [x for x in ra.items if x in rb.items]:
            found = cache.get(a, b, bench)
            if isinstance(found, str):
                rows.append(Comparison(a, b, bench, note=found))
                continue
            rows.append(
                Comparison(
                    a,
                    b,
                    bench,
                    found.difference,
                    _interval(found.interval.low, found.interval.high, found.interval.method),
                    found.p_value,
                    found.test,
                    found.n,
                    found.only_a,
                    found.only_b,
                    found.prompt_mismatches,
                )
            )
        apply_holm(rows, settings.alpha)
        out.extend(rows)
    return out


def paper_pairs(claim_list: Sequence[claims_mod.Claim]) -> set[frozenset[str]]:
    """The model pairs the paper compares: those its claims name."""
    return {frozenset((part.better, part.worse)) for c in claim_list for part in c.paired}


def analyse(
    runs: list[Run],
    reported: ReportedScores,
    claim_list: list[claims_mod.Claim],
    settings: Settings,
    training: Sequence[Measurement] = (),
) -> Report:
    """`training`: the sharpness files found (evalsuite.sharpness.record), for the grid's claims 12-14."""
    ablation = [r for r in runs if r.is_ablation]
    groups = seed_groups(runs)
    paper_order = [c.model for t in reported.tables for c in t.columns]
    rank = {m: i for i, m in enumerate(dict.fromkeys(paper_order))}
    labels = sorted(groups, key=lambda m: (rank.get(m, len(rank)), m))
    models = []
    for label in labels:
        r, seeds = groups[label][0], [g.training_seed for g in groups[label]]
        models.append(
            ModelEntry(
                r.label,
                reported.header(r.label),
                r.kind,
                str(r.path),
                r.simulated,
                r.limit,
                reported.in_paper(r.label),
                list(r.items),
                [str(g.path) for g in groups[label]],
                [s for s in seeds if s is not None] if r.retrained else None,
                r.partial,
                _provenance(groups[label]),
            )
        )
    tolerances = verdicts.load()
    scores = []
    for label in labels:
        scores.extend(score_stats(groups[label], reported, settings, tolerances))
    cache = PairCache({label: groups[label] for label in labels}, settings)
    pairs = comparisons(labels, cache, settings, None if settings.all_pairs else paper_pairs(claim_list))
    claim_results = claim_checks.evaluate(
        claim_list,
        cache.get,
        runs=cache.groups,
        ablation=ablation,
        reported=reported,
        alpha=settings.alpha,
        seed=settings.seed,
        resamples=settings.resamples,
        training=training,
    )
    notes = []
    if any(r.simulated for r in runs):
        notes.append("SIMULATED inputs: some results are simulated (settings.simulated), not model outputs")
    return Report(settings, models, scores, pairs, claim_results, len(ablation), notes)
