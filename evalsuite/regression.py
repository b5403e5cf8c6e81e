"""Reproduced vs reported as a regression check (tests/test_regression.py, `pytest -m regression`).

Each case is one (results file, metric) the paper reports. It fails only on a *significant*
difference: Holm-adjusted p < alpha over the metrics of its results file, so a model whose
scores all equal the paper's fails its check at most alpha of the time. Results of models the paper does
not report, `--limit` runs and simulated results are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalsuite import analysis, reported, result_set
from evalsuite.analysis import ScoreStat
from repro.errors import UsageError

ENV = "SMOLTULU_RESULTS"
ALPHA = 0.05


def results_dir() -> Path:
    return Path(os.environ.get(ENV, "results"))


@dataclass
class Case:
    id: str
    path: Path | None = None
    metric: str | None = None
    skip: str | None = None  # why not compared
    error: str | None = None  # the results could not be read
    stat: ScoreStat | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.stat and self.stat.significant)

    def explain(self) -> str:
        if self.error:
            return self.error
        s = self.stat
        if s is None or s.reported is None or s.interval is None:
            return self.skip or "not compared"
        return (
            f"{s.model} {s.metric}: reproduced {s.value:.2f} [{s.interval['low']:.2f}, "
            f"{s.interval['high']:.2f}] vs reported {s.reported['text']} ({s.reported['source']}): "
            f"diff {s.difference:+.2f}, p = {s.p_value:.2g} ({s.test}), Holm p = {s.p_holm:.2g}"
        )


def _eligibility(run: result_set.Run, scores: reported.ReportedScores, include_simulated: bool) -> str | None:
    if run.is_ablation:
        return "135M ablation point (claim 6, not a paper table)"
    if not scores.in_paper(run.label):
        if scores.model_kind(run.label) is not None:
            return f"model {run.label!r} is reported only on its model card, not in the paper"
        return f"unknown model {run.label!r}: the paper reports no scores for it"
    if run.limit is not None:
        return f"--limit {run.limit} run: only full item counts are compared with the paper"
    if run.simulated and not include_simulated:
        return "simulated results (settings.simulated), not model output"
    return None


def plan(dirs: Sequence[Path], *, include_simulated: bool = False) -> list[Case]:
    """The cases under the folders, from results.json alone (cheap: for test collection)."""
    dirs = [Path(d) for d in dirs if Path(d).is_dir()]
    paths = result_set.find(dirs) if dirs else []
    if not paths:
        return []
    scores = reported.load()
    cases: list[Case] = []
    for path in paths:
        try:
            (run,) = result_set.load_runs([path], scores, with_items=False)
        except UsageError as exc:
            cases.append(Case(str(path), path, error=str(exc)))
            continue
        why = _eligibility(run, scores, include_simulated)
        if why:
            cases.append(Case(f"{run.label}@{path.parent.name}", path, skip=why))
            continue
        for bench in run.results.benchmarks:
            keys = [None, *(reported.SCORE_KEYS.get(bench, ()))]
            for metric in (reported.Metric(bench, k) for k in keys):
                case = Case(f"{run.label}-{metric}", path, str(metric))
                if scores.get(run.label, metric) is None:
                    case.skip = f"the paper reports no {metric} score for {run.label}"
                cases.append(case)
    return cases


def evaluate(cases: Sequence[Case], *, alpha: float = ALPHA, resamples: int = 10_000, seed: int = 0) -> None:
    """Fill in the statistics of the cases to compare (loads their items; Holm per results file)."""
    pending = [c for c in cases if c.skip is None and c.error is None and c.metric is not None]
    paths = list(dict.fromkeys(c.path for c in pending if c.path is not None))
    if not paths:
        return
    scores = reported.load()
    try:
        runs = result_set.load_runs(paths, scores, workers=min(4, os.cpu_count() or 1))
    except UsageError as exc:
        for case in pending:
            case.error = str(exc)
        return
    settings = analysis.Settings(alpha=alpha, resamples=resamples, seed=seed)
    found: dict[tuple[Path, str], ScoreStat] = {}
    for run in runs:
        own = [s for s in analysis.score_stats(run, scores, settings) if s.reported is not None]
        analysis.apply_holm(own, alpha)
        found.update({(run.path, s.metric): s for s in own})
    for case in pending:
        assert case.path is not None and case.metric is not None
        case.stat = found.get((case.path.resolve(), case.metric))
        if case.stat is None or case.stat.p_value is None:
            case.skip = (case.stat.note if case.stat else None) or "no interval for this metric"


def collect(
    dirs: Sequence[Path],
    *,
    alpha: float = ALPHA,
    resamples: int = 10_000,
    seed: int = 0,
    include_simulated: bool = False,
) -> list[Case]:
    """Every regression case under the folders, evaluated; an empty list when there are no results."""
    cases = plan(dirs, include_simulated=include_simulated)
    evaluate(cases, alpha=alpha, resamples=resamples, seed=seed)
    return cases
