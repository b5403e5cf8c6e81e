"""All the statistics behind the tables, from loaded runs: one `Report`, also written as JSON.

- every reproduced score with its 95% interval (Wilson, or bootstrap over items);
- reproduced vs reported: difference, reported inside the interval, two-sided test, and
  Holm-adjusted p over the metrics of each results file (the regression family);
- model vs model on the same items, Holm-adjusted over the benchmarks of each pair;
- the paper's claims.
Random streams are seeded per (seed, model, benchmark), so a number does not change when
other results are added.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalsuite import claims as claims_mod
from evalsuite import item_stats, stats
from evalsuite.item_stats import Paired
from evalsuite.reported import Metric, Reported, ReportedScores
from evalsuite.result_set import Run

FORMAT = "smoltulu-tables/1"


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    resamples: int = stats.RESAMPLES
    seed: int = 0
    confidence: float = field(default=stats.CONFIDENCE, init=False)  # recorded; intervals are 95%


@dataclass
class ScoreStat:
    model: str
    metric: str  # "gsm8k", "rewardbench.chat", ...
    value: float  # percent
    n: int
    interval: dict[str, Any] | None  # {low, high, method}
    reported: dict[str, Any] | None  # {value, text, source}
    difference: float | None = None  # reproduced - reported, points
    inside: bool | None = None  # reported value inside the interval
    p_value: float | None = None  # two-sided, H0: reproduced = reported
    test: str | None = None
    p_holm: float | None = None
    significant: bool | None = None  # p_holm < alpha
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
        return _finite(asdict(self))


def _finite(obj: Any) -> Any:
    """NaN/inf have no JSON spelling: they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def rng_for(settings: Settings, *keys: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, *(zlib.crc32(k.encode()) for k in keys)])


def _interval(low: float, high: float, method: str) -> dict[str, Any]:
    return {"low": low, "high": high, "method": method}


def _vs_reported(stat: ScoreStat, p: float, test: str) -> None:
    assert stat.reported is not None and stat.interval is not None
    rep = stat.reported["value"]
    stat.difference = stat.value - rep
    stat.inside = stat.interval["low"] <= rep <= stat.interval["high"]
    stat.p_value, stat.test = p, test


def _comparable(run: Run) -> str | None:
    """Why this run's scores are not tested against the paper's, or None."""
    if run.limit is not None:
        return f"--limit {run.limit} run: only full item counts are compared with the paper"
    return None


def score_stats(run: Run, reported: ReportedScores, settings: Settings) -> list[ScoreStat]:
    out = []
    why_not = _comparable(run)
    for bench, data in run.items.items():
        rng = rng_for(settings, run.label, bench)
        ci, reps = item_stats.interval(data, settings.resamples, rng)
        rep = reported.get(run.label, Metric(bench))
        stat = ScoreStat(
            run.label,
            bench,
            data.headline,
            data.n,
            _interval(ci.low, ci.high, ci.method),
            asdict(rep) if rep else None,
        )
        if bench == "ifeval":
            stat.extra = data.extra
        if rep is not None and why_not is None:
            _vs_reported(stat, *item_stats.vs_value(data, rep.value, reps))
        elif rep is not None:
            stat.note = why_not
        out.append(stat)
        if bench == "rewardbench":
            out.extend(_section_stats(run, data, reported, settings, why_not))
    return out


def _section_stats(
    run: Run, data: item_stats.ItemData, reported: ReportedScores, settings: Settings, why_not: str | None
) -> list[ScoreStat]:
    sections = item_stats.section_bootstrap(
        data, settings.resamples, rng_for(settings, run.label, "rb-sections")
    )
    point, reps = sections
    out = []
    for key in point:
        metric = Metric("rewardbench", key)
        rep: Reported | None = reported.get(run.label, metric)
        ci = stats.percentile_interval(reps[key])
        stat = ScoreStat(
            run.label, str(metric), point[key], data.n, _interval(ci.low, ci.high, ci.method),
            asdict(rep) if rep else None,
        )  # fmt: skip
        if rep is not None and why_not is None:
            _vs_reported(stat, stats.bootstrap_p(reps[key], rep.value), "bootstrap percentile inversion")
        elif rep is not None:
            stat.note = why_not
        out.append(stat)
    return out


def apply_holm(rows: list[Any], alpha: float) -> None:
    """Holm-adjust the p-values of rows that have one, in place."""
    tested = [r for r in rows if r.p_value is not None]
    for row, adjusted in zip(tested, stats.holm([r.p_value for r in tested]), strict=True):
        row.p_holm = adjusted
        row.significant = adjusted < alpha


class PairCache:
    """Paired comparisons, computed once per unordered pair and benchmark."""

    def __init__(self, runs: dict[str, Run], settings: Settings):
        self.runs = runs
        self.settings = settings
        self._cache: dict[tuple[str, str, str], Paired | str] = {}

    def get(self, a: str, b: str, bench: str) -> Paired | str:
        """a vs b (difference a - b); a reason string when it cannot be compared."""
        first, second = sorted((a, b))
        key = (first, second, bench)
        if key not in self._cache:
            ra, rb = self.runs.get(first), self.runs.get(second)
            absent = [m for m, r in ((first, ra), (second, rb)) if r is None]
            lacking = [m for m, r in ((first, ra), (second, rb)) if r is not None and bench not in r.items]
            if absent:
                self._cache[key] = f"no results for {' and '.join(absent)}"
            elif lacking:
                self._cache[key] = f"no {bench} results for {' and '.join(lacking)}"
            else:
                assert ra is not None and rb is not None
                rng = rng_for(self.settings, first, second, bench)
                self._cache[key] = item_stats.paired(
                    ra.items[bench], rb.items[bench], self.settings.resamples, rng
                )
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


def comparisons(order: list[str], cache: PairCache, settings: Settings) -> list[Comparison]:
    """Every pair of models of the same kind, on the benchmarks both have; Holm within each pair."""
    out = []
    for a, b in itertools.combinations(order, 2):
        ra, rb = cache.runs[a], cache.runs[b]
        if ra.kind != rb.kind:
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


def analyse(
    runs: list[Run],
    reported: ReportedScores,
    claim_list: list[claims_mod.Claim],
    settings: Settings,
) -> Report:
    table_runs = [r for r in runs if not r.is_ablation]
    ablation = [r for r in runs if r.is_ablation]
    paper_order = [c.model for t in reported.tables for c in t.columns]
    rank = {m: i for i, m in enumerate(dict.fromkeys(paper_order))}
    table_runs.sort(key=lambda r: (rank.get(r.label, len(rank)), r.label))
    models = [
        ModelEntry(
            r.label,
            reported.header(r.label),
            r.kind,
            str(r.path),
            r.simulated,
            r.limit,
            reported.in_paper(r.label),
            list(r.items),
        )
        for r in table_runs
    ]
    scores = []
    for run in table_runs:  # one family per results file: the regression check's unit
        own = score_stats(run, reported, settings)
        apply_holm(own, settings.alpha)
        scores.extend(own)
    by_label = {r.label: r for r in table_runs}
    cache = PairCache(by_label, settings)
    pairs = comparisons([r.label for r in table_runs], cache, settings)
    claim_results = claims_mod.evaluate(claim_list, cache.get, ablation, reported, settings.alpha)
    notes = []
    if any(r.simulated for r in runs):
        notes.append("SIMULATED inputs: some results are simulated (settings.simulated), not model outputs")
    return Report(settings, models, scores, pairs, claim_results, len(ablation), notes)
