"""The paper's claims (tables/claims.yaml) judged on per-item results: `evaluate`.

A paired claim part ("better" beats "worse" on some benchmarks) is judged by the paired test
on the same items (evalsuite.report.item_stats.paired); a trend claim by Spearman's rho of score
against the learning-rate / batch-size ratio over the ablation points, with an exact
permutation p-value (stats.spearman_permutation: all n! orderings up to 8 points, a seeded
Monte Carlo beyond), so four points can never give p below 1/12.

Pooled training seeds on either side are compared with seeds as the unit (analysis.seed_comparison,
a t test over seeds); one run per side, with the paired test on the items.

The grid's own claims are judged in grid_claims; the verdict rules are claim_verdicts'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from core.errors import UsageError
from evalsuite.report import stats
from evalsuite.report.claim_verdicts import combine, require_monotonic, spearman_check, verdict
from evalsuite.report.claims import (
    Check,
    Claim,
    ClaimResult,
    Trend,
)
from evalsuite.report.grid_claims import early_checks, factorial_checks, of_grid, sharpness_checks
from evalsuite.report.item_stats import Paired
from evalsuite.report.reported import Metric, ReportedScores
from evalsuite.report.result_set import Run
from evalsuite.sharpness.record import Measurement

PairLookup = Callable[[str, str, str], "Paired | str"]


def paired_checks(
    claim: Claim,
    pair: PairLookup,
    runs: Mapping[str, Sequence[Run]],
    reported: ReportedScores,
    alpha: float,
) -> list[Check]:
    checks = []
    for part in claim.paired:
        for bench in part.benchmarks:
            what = f"{part.better} > {part.worse} on {bench}"
            rb, rw = reported.get(part.better, Metric(bench)), reported.get(part.worse, Metric(bench))
            rep = round(rb.value - rw.value, 4) if rb and rw else None
            size = part.sizes[bench] if part.sizes is not None else None
            size_tol = part.size_tolerances[bench] if part.size_tolerances is not None else None
            used = [r for m in (part.better, part.worse) for r in runs.get(m, ())]
            partial = [f"{r.label} ({r.path}): {r.partial}" for r in used if r.partial is not None]
            # partial runs never reach the paired test: they cannot decide a claim
            found = "partial: " + "; ".join(partial) if partial else pair(part.better, part.worse, bench)
            if isinstance(found, str):
                checks.append(Check(what, "inconclusive", None, None, rep, reason=found, claimed_size=size))
                continue
            interval = (found.interval.low, found.interval.high)
            checks.append(
                Check(
                    what,
                    verdict(found.difference, found.p_value, alpha, size, interval, size_tol or 0.0),
                    found.difference,
                    interval,
                    rep,
                    found.p_value,
                    found.test,
                    found.n,
                    claimed_size=size,
                    size_tolerance=size_tol,
                    files=[str(r.path) for r in used],
                )
            )
    return checks


def _ratio(run: Run, t: Trend) -> float:
    s = run.results.settings
    try:
        return float(s[t.numerator]) / float(s[t.denominator])
    except (TypeError, ValueError, ZeroDivisionError):
        raise UsageError(
            f"{run.path}: settings {t.numerator}={s[t.numerator]!r}, {t.denominator}={s[t.denominator]!r} "
            "are not a usable ratio"
        ) from None


def trend_checks(
    claim: Claim, ablation: Sequence[Run], alpha: float, seed: int, resamples: int
) -> list[Check]:
    """Every ablation run is one point; repeats at one ratio are separate points with tied ranks.

    Under H0 (score unrelated to the ratio) all runs' scores are exchangeable, so permuting
    them over all runs, repeats included, keeps the p-value exact; `min_points` counts
    distinct ratios. Partial runs (Run.partial) and smoke-profile runs are left out, and said so.
    """
    assert claim.trend is not None
    t = claim.trend
    # smoke-profile grids train the embedded tiny model: no evidence about the 135M model
    smoke = [r for r in ablation if r.results.settings.get("profile", "real") != "real"]
    partial = [r for r in ablation if r not in smoke and r.partial is not None]
    ablation = [r for r in ablation if r not in smoke and r not in partial]
    ignored = f" ({len(smoke)} smoke-profile points ignored)" if smoke else ""
    if partial:
        why = "; ".join(dict.fromkeys(str(r.partial) for r in partial))
        ignored += f" ({len(partial)} partial points left out, partial: {why})"
    checks = []
    for bench, sign in t.expect.items():
        what = f"{bench} {'rises' if sign > 0 else 'falls'} with {t.numerator}/{t.denominator}"
        used = [run for run in ablation if bench in run.results.benchmarks]
        points = [(_ratio(run, t), run.results.benchmarks[bench].score) for run in used]
        if not ablation:
            reason = f"no ablation results (results whose settings carry {t.numerator} and {t.denominator})"
            checks.append(Check(what, "inconclusive", reason=reason + ignored))
            continue
        distinct = len({x for x, _ in points})
        if distinct < t.min_points:
            reason = (
                f"{len(points)} usable ablation points with {bench} at {distinct} distinct ratios; "
                f"need {t.min_points}"
            )
            checks.append(Check(what, "inconclusive", reason=reason + ignored))
            continue
        check = spearman_check(
            what, points, sign, alpha, resamples, seed,
            files=[str(run.path) for run in used], described=f"runs at {distinct} ratios",
            flat=f"{bench} scores do not vary", suffix=ignored,
        )  # fmt: skip
        if t.monotonic:
            require_monotonic(check, points, sign)
        checks.append(check)
    return checks


def _caveat(claim: Claim, runs: Mapping[str, Sequence[Run]]) -> str | None:
    """What a ratio claim cannot say: how many runs each side has, and how the recipes differ."""
    if not claim.confounds:
        return None
    models = list(dict.fromkeys(m for p in claim.paired for m in (p.better, p.worse)))
    counts = {m: len(runs.get(m, ())) for m in models}
    if all(c <= 1 for c in counts.values()):
        runs_said = "rests on one run per setting"
    else:
        runs_said = "training seeds: " + ", ".join(f"{m} {c}" for m, c in counts.items())
    return runs_said + "; " + "; ".join(claim.confounds)


def evaluate(
    claims: Sequence[Claim],
    pair: PairLookup,
    *,
    runs: Mapping[str, Sequence[Run]],
    ablation: Sequence[Run],
    reported: ReportedScores,
    alpha: float,
    seed: int = 0,
    resamples: int = stats.RESAMPLES,
    training: Sequence[Measurement] = (),
) -> list[ClaimResult]:
    """Every claim judged on the loaded results.

    `pair(a, b, benchmark)` gives the paired comparison of two models (analysis.PairCache.get)
    and `runs` maps each label to its runs (PairCache.groups: the training seeds of a recipe, or
    one run): their paths are recorded, and partial ones (Run.partial) are never passed to `pair`.
    `ablation`: the ablation-grid runs (each grid claim reads the grid it names). `seed` and
    `resamples` set the Monte Carlo of trend tests with more than stats.EXACT_PERMUTATION_MAX_N points.
    `training`: the sharpness files found (claims 12-14).
    """
    out = []
    for claim in claims:
        grid, grid_training, left_out = of_grid(claim, ablation, training)
        if claim.paired:
            checks = paired_checks(claim, pair, runs, reported, alpha)
        elif claim.sharpness is not None:
            checks = sharpness_checks(claim, grid_training, alpha, seed, resamples)
        elif claim.factorial is not None:
            checks = factorial_checks(claim, grid, alpha)
        elif claim.early_signals is not None:
            checks = early_checks(claim, grid, grid_training, alpha, seed, resamples)
        else:
            checks = trend_checks(claim, grid, alpha, seed, resamples)
        for check in checks if left_out else ():
            check.reason = (check.reason or "") + left_out
        result = combine(claim, checks)
        result.caveat = _caveat(claim, runs)
        out.append(result)
    return out
