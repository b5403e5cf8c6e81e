"""Reproduced vs reported as a regression check (tests/test_regression.py, `pytest -m regression`).

Each case is one (model, metric) the paper reports. It fails when the verdict is "not
reproduced" (evalsuite.report.verdicts: the gap beyond the harness tolerance, widened by the spread of
the training seeds of a retrained recipe) and is skipped, with the numbers, when "inconclusive".
Results of models the paper does not report, partial runs (--limit, --sample, fewer items than
the full set) and simulated results are skipped with the reason. The seeds of one retrained
recipe are one case, and every seed passes those checks.

The gate as a whole (`gate`): a folder named in SMOLTULU_RESULTS where nothing was judged
(empty, only partial, only simulated) fails, and in strict mode (SMOLTULU_STRICT=1) so does a run
whose every judged case is inconclusive; by default an inconclusive case is a visible skip.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UsageError
from evalsuite import results as results_fmt
from evalsuite.report import analysis, reported, result_set, verdicts
from evalsuite.report.analysis import ScoreStat

ENV = "SMOLTULU_RESULTS"
STRICT_ENV = "SMOLTULU_STRICT"
ALPHA = 0.05


def results_dir() -> Path:
    return Path(os.environ.get(ENV, "results"))


def named() -> bool:
    """The user named the results folder (SMOLTULU_RESULTS), rather than the default ./results."""
    return bool(os.environ.get(ENV))


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


def judged_folder() -> str:
    """Which folder the gate reads, and why: said in every summary, never silent."""
    where = results_dir().resolve()
    return f"{where} ({ENV})" if named() else f"{where} (the default: {ENV} is not set)"


def named_folder_missing() -> str | None:
    """An error when SMOLTULU_RESULTS names a folder that does not exist (a typo must not pass)."""
    named = os.environ.get(ENV)
    if named and not Path(named).is_dir():
        return f"{ENV}={named} names no folder; point it at `python -m evalsuite run` output"
    return None


@dataclass
class Case:
    id: str
    path: Path | None = None
    metric: str | None = None
    skip: str | None = None  # why not compared
    error: str | None = None  # the results could not be read
    stat: ScoreStat | None = None
    real: bool = False  # a full, non-simulated result of a model the paper reports
    group: list[Path] = field(default_factory=list)  # every results file pooled (training seeds)

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.stat and self.stat.verdict == "not reproduced")

    @property
    def inconclusive(self) -> bool:
        return bool(self.stat and self.stat.verdict == "inconclusive")

    def explain(self) -> str:
        if self.error:
            return self.error
        s = self.stat
        if s is None or s.reported is None or s.verdict is None:
            return self.skip or "not compared"
        seeds = f", {s.seeds} training seed(s)" if s.seeds else ""
        return (
            f"{s.model} {s.metric}: {s.verdict}: reproduced {s.value:.2f} vs reported "
            f"{s.reported['text']} ({s.reported['source']}{seeds}): {s.verdict_reason}"
        )


def _eligibility(run: result_set.Run, scores: reported.ReportedScores, include_simulated: bool) -> str | None:
    if run.is_ablation:
        return "135M ablation point (claim 6, not a paper table)"
    if not scores.in_paper(run.label):
        if scores.model_kind(run.label) is not None:
            return f"model {run.label!r} is reported only on its model card, not in the paper"
        return f"unknown model {run.label!r}: the paper reports no scores for it"
    if run.partial is not None:
        return f"partial: {run.partial}; only full sets are compared with the paper"
    if run.simulated and not include_simulated:
        return "simulated results (settings.simulated), not model output"
    return None


def plan(dirs: Sequence[Path], *, include_simulated: bool = False) -> list[Case]:
    """The cases under the folders, from results.json alone (cheap: for test collection)."""
    dirs = [Path(d) for d in dirs if Path(d).is_dir()]
    paths = results_fmt.discover(dirs) if dirs else []
    if not paths:
        return []
    scores = reported.load()
    cases: list[Case] = []
    runs = []
    for path in paths:
        try:
            runs.extend(result_set.load_runs([path], scores, with_items=False))
        except UsageError as exc:
            cases.append(Case(str(path), path, error=str(exc)))
    try:
        result_set.check_unique(runs)
    except UsageError as exc:
        return [*cases, Case("results", error=str(exc))]
    for label, group in result_set.seed_groups(runs).items():
        run = group[0]
        where = run.path.parent.name if len(group) == 1 else f"{len(group)}-seeds"
        found = (_eligibility(r, scores, include_simulated) for r in group)
        why = next((w for w in found if w), None) or result_set.group_problem(group)
        if why and len(group) > 1 and not why.startswith(("partial", "refused")):
            why = f"a pooled training seed: {why}"
        if why:
            cases.append(Case(f"{label}@{where}", run.path, skip=why))
            continue
        for bench in run.results.benchmarks:
            keys = [None, *(reported.SCORE_KEYS.get(bench, ()))]
            for metric in (reported.Metric(bench, k) for k in keys):
                real = not any(r.simulated for r in group)
                case = Case(f"{label}-{metric}", run.path, str(metric), real=real)
                case.group = [r.path for r in group]
                if scores.get(label, metric) is None:
                    case.skip = f"the paper reports no {metric} score for {label}"
                cases.append(case)
    return cases


def evaluate(cases: Sequence[Case], *, alpha: float = ALPHA, resamples: int = 10_000, seed: int = 0) -> None:
    """Fill in the verdicts of the cases to compare (loads their items)."""
    pending = [c for c in cases if c.skip is None and c.error is None and c.metric is not None]
    paths = list(dict.fromkeys(p for c in pending for p in (c.group or [c.path]) if p is not None))
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
    tolerances = verdicts.load()
    found: dict[tuple[Path, str], ScoreStat] = {}
    for group in result_set.seed_groups(runs).values():
        for stat in analysis.score_stats(group, scores, settings, tolerances):
            found[(group[0].path, stat.metric)] = stat
    for case in pending:
        assert case.path is not None and case.metric is not None
        case.stat = found.get((case.path.resolve(), case.metric))
        if case.stat is None or case.stat.verdict is None:
            case.skip = (case.stat.note if case.stat else None) or "no verdict for this metric"
        elif case.inconclusive:
            case.skip = "inconclusive: " + case.explain()


def summary(cases: Sequence[Case]) -> str:
    """One line for the end of a regression run: which folder, what real evidence was checked, how it
    came out, and which cases were inconclusive (skipped, not passed)."""
    real = [c for c in cases if c.real]
    files = {c.path for c in real}
    verdict = {v: sum(1 for c in real if c.stat and c.stat.verdict == v) for v in verdicts.VERDICTS}
    skipped = sum(1 for c in cases if c.skip and not c.inconclusive)
    undecided = [c.id for c in real if c.inconclusive]
    listed = f" (skipped, not passed: {', '.join(undecided)})" if undecided else ""
    return (
        f"regression on {judged_folder()}: {len(files)} real (non-simulated, full) results checked, "
        f"{len(real)} scores: {verdict['reproduced']} reproduced, {verdict['not reproduced']} not "
        f"reproduced, {verdict['inconclusive']} inconclusive{listed}; {skipped} other cases skipped"
    )


def gate(cases: Sequence[Case], *, named_folder: bool, strict_mode: bool) -> str | None:
    """Why the regression run as a whole fails (None when it does not).

    A named folder must hold something judged: a gate that passes on nothing is no gate. In
    strict mode a run whose every judged case is inconclusive fails too.
    """
    judged = [c for c in cases if c.stat is not None and c.stat.verdict is not None]
    if named_folder and not judged:
        reasons = sorted({(c.error or c.skip or "not compared").split(":")[0] for c in cases})
        why = "; ".join(reasons) if reasons else "no results.json under it"
        return (
            f"{ENV}={os.environ.get(ENV, '')} judged nothing ({len(cases)} cases: {why}); point it at "
            "full, non-simulated `python -m evalsuite run` output of models the paper reports"
        )
    if strict_mode and judged and all(c.inconclusive for c in judged):
        return (
            f"strict mode ({STRICT_ENV}=1): every one of the {len(judged)} judged cases is inconclusive: "
            + "; ".join(c.explain() for c in judged[:3])
        )
    return None


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
