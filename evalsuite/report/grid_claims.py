"""The ablation grid's claims, judged from its results and sharpness files.

Three kinds test the paper's explanation and a related study on the same grid, from
the grid's results and its sharpness files (evalsuite/sharpness/record.py: sharpness and the
first optimizer steps' loss and gradient norm, from each run's manifest):
- `sharpness`: Spearman's rho (exact permutation p) of each sharpness measure against LR/BS;
- `factorial`: within the full LR x BS grid, score against batch size at each fixed learning rate
  and against learning rate at each fixed batch size: Page's L test (scipy.stats.page_trend_test,
  exact) over the blocks, or with two levels per block the sign test it reduces to
  (scipy.stats.binomtest); two-sided, p = 2 x the smaller one-sided p; effect: the mean
  within-block Spearman rho;
- `early_signals`: Spearman's rho of each early-run signal (its mean over the first `steps`
  optimizer steps) against the final score, over the points.
Smoke-profile points (the tiny model), partial runs and points lacking what a check needs are
never evidence; when nothing else exists, the statistic is computed on them and shown with an
inconclusive verdict, so a smoke grid shows its numbers and decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalsuite.report import stats
from evalsuite.report.claim_verdicts import spearman_check, verdict
from evalsuite.report.claims import (
    GRID_AXES,
    Check,
    Claim,
)
from evalsuite.report.result_set import Run
from evalsuite.sharpness.record import Measurement


def _not_evidence(profile: str, partial: str | None) -> str | None:
    if profile != "real":  # smoke-profile grids train the embedded tiny model
        return "smoke-profile point"
    return f"partial ({partial})" if partial else None


def _left_out(reasons: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return "".join(f" ({n} left out: {r})" for r, n in counts.items())


Point = tuple[float, float, str]  # (x, y, results or sharpness file)


def _rank_check(
    what: str,
    sign: int,
    evidence: list[Point],
    shown: list[Point],
    left_out: list[str],
    min_points: int,
    alpha: float,
    seed: int,
    resamples: int,
) -> Check:
    """Spearman's rho of y against x over the evidence points, with its permutation p (stats)."""
    note = _left_out(left_out)
    distinct = len({x for x, _, _ in evidence})
    if distinct < min_points:
        reason = f"{len(evidence)} usable points at {distinct} distinct values; need {min_points}{note}"
        info = _information(shown, seed, resamples)
        return Check(
            what,
            "inconclusive",
            info[0] if info else None,
            n=len(shown) if info else None,
            reason=reason + (info[1] if info else ""),
            files=[f for *_, f in shown],
        )
    return spearman_check(
        what, [(x, y) for x, y, _ in evidence], sign, alpha, resamples, seed,
        files=[f for *_, f in evidence], described="points", flat="no variation", suffix=note,
    )  # fmt: skip


def _information(shown: list[Point], seed: int, resamples: int) -> tuple[float, str] | None:
    """rho and p on points that are no evidence (smoke, partial): shown, never judged."""
    shown = [p for p in shown if math.isfinite(p[0]) and math.isfinite(p[1])]
    if len(shown) < 3:
        return None
    res = stats.spearman_permutation(
        [x for x, _, _ in shown], [y for _, y, _ in shown], resamples=resamples, seed=seed
    )
    if not math.isfinite(res.rho):
        return None
    return res.rho, (
        f"; on the {len(shown)} points that are no evidence: rho {res.rho:+.3f}, p {res.p_value:.4g} "
        f"({res.method}), shown only, never a verdict"
    )


def _ratio_of(settings: Mapping[str, Any], num: str, den: str) -> float:
    return float(settings[num]) / float(settings[den])


def sharpness_checks(
    claim: Claim, training: Sequence[Measurement], alpha: float, seed: int, resamples: int
) -> list[Check]:
    t = claim.sharpness
    assert t is not None
    grid = [m for m in training if m.point(t.numerator, t.denominator) is not None]
    names = {"top_eigenvalue": "top Hessian eigenvalue", "epsilon_sharpness": "ε-sharpness"}
    checks = []
    for measure, sign in t.expect.items():
        what = f"{names[measure]} {'rises' if sign > 0 else 'falls'} with {t.numerator}/{t.denominator}"
        if not grid:
            reason = "no sharpness files of grid points (`python -m evalsuite sharpness` on each point's run)"
            checks.append(Check(what, "inconclusive", reason=reason))
            continue
        evidence, shown, left = [], [], []
        for m in grid:
            point = (_ratio_of(m.settings, t.numerator, t.denominator), getattr(m, measure), str(m.path))
            why = _not_evidence(m.profile, None)
            if why is None and measure == "top_eigenvalue" and not m.converged:
                why = "power iteration not converged"
            (shown if why else evidence).append(point)
            left += [why] if why else []
        checks.append(_rank_check(what, sign, evidence, shown, left, t.min_points, alpha, seed, resamples))
    return checks


def _within_blocks(cells: dict[tuple[float, float], float]) -> tuple[np.ndarray, list[float], list[float]]:
    """(blocks x levels) table of the complete blocks, the block values kept and the levels (sorted)."""
    levels = sorted({lv for _, lv in cells})
    blocks = sorted({b for b, _ in cells})
    full = [b for b in blocks if all((b, lv) in cells for lv in levels)]
    return np.array([[cells[(b, lv)] for lv in levels] for b in full], dtype=float), full, levels


def _block_test(table: np.ndarray) -> tuple[float, float, str, float]:
    """(mean within-block rho of score against level, two-sided p, test, smallest possible p)."""
    from scipy import stats as sps

    blocks, levels = table.shape
    rhos = [sps.spearmanr(np.arange(levels), row).statistic if np.ptp(row) > 0 else 0.0 for row in table]
    effect = float(np.mean(rhos))
    if levels == 2:  # Page's L needs 3 levels; with 2 it is the sign test
        up, down = int(np.sum(table[:, 1] > table[:, 0])), int(np.sum(table[:, 1] < table[:, 0]))
        p = float(sps.binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0
        return effect, p, f"sign test over {blocks} blocks (scipy binomtest)", min(1.0, 2 * 0.5**blocks)
    rising = sps.page_trend_test(table).pvalue
    falling = sps.page_trend_test(table[:, ::-1]).pvalue
    ordered = np.tile(np.arange(levels, dtype=float), (blocks, 1))
    smallest = min(1.0, 2 * float(sps.page_trend_test(ordered).pvalue))
    test = f"Page's L over {blocks} blocks x {levels} levels (scipy page_trend_test, two-sided)"
    return effect, float(min(1.0, 2 * min(rising, falling))), test, smallest


def factorial_checks(claim: Claim, ablation: Sequence[Run], alpha: float) -> list[Check]:
    f = claim.factorial
    assert f is not None
    checks = []
    for axis, sign in f.expect.items():
        other = "batch_size" if axis == "learning_rate" else "learning_rate"
        label = axis.replace("_", " ")
        for bench in f.benchmarks:
            fixed = other.replace("_", " ")
            what = f"{bench} {'rises' if sign > 0 else 'falls'} with {label} at each fixed {fixed}"
            runs = [r for r in ablation if bench in r.results.benchmarks]
            why = {
                id(r): _not_evidence(str(r.results.settings.get("profile", "real")), r.partial) for r in runs
            }
            evidence = [r for r in runs if why[id(r)] is None]
            used = evidence or runs  # nothing else: the smoke / partial points, as information only
            cells: dict[tuple[float, float], list[float]] = {}
            for r in used:
                s = r.results.settings
                key = (float(f"{float(s[other]):.6g}"), float(f"{float(s[axis]):.6g}"))
                cells.setdefault(key, []).append(r.results.benchmarks[bench].score)
            table, blocks, levels = _within_blocks({k: float(np.mean(v)) for k, v in cells.items()})
            note = _left_out([w for r in runs if (w := why[id(r)]) and evidence])
            if any(len(v) > 1 for v in cells.values()):
                note += " (repeated runs of a cell averaged)"
            files = [str(r.path) for r in used]
            if len(levels) < 2 or len(blocks) < f.min_blocks:
                reason = (
                    f"{len(blocks)} complete blocks (fixed {other.replace('_', ' ')}) over {len(levels)} "
                    f"{label} levels; need {f.min_blocks} blocks and 2 levels{note}"
                )
                checks.append(Check(what, "inconclusive", reason=reason or "no grid results", files=files))
                continue
            effect, p, test, smallest = _block_test(table)
            reason = (
                test + (f"; the smallest possible p is {smallest:.4g}" if smallest >= alpha else "") + note
            )
            if not evidence:
                reason += (
                    f"; {len(runs)} points that are no evidence (smoke or partial): p {p:.4g}, shown only"
                )
                checks.append(Check(what, "inconclusive", effect, n=len(blocks), reason=reason, files=files))
                continue
            checks.append(
                Check(
                    what,
                    verdict(sign * effect, p, alpha),
                    effect,
                    None,
                    None,
                    p,
                    test.split(" over")[0],
                    len(blocks),
                    reason,
                    files=files,
                )
            )
    return checks


def _early_value(m: Measurement, signal: str, steps: int) -> tuple[float | None, int]:
    values = [float(s[signal]) for s in m.early[:steps] if isinstance(s.get(signal), int | float)]
    return (float(np.mean(values)) if values else None), len(values)


def sharpness_of(
    sha256: str | None, settings: Mapping[str, Any], training: Sequence[Measurement]
) -> Measurement | None:
    """The sharpness file of a grid point's weights (same sha256); without a sha256 on either side, the
    only file at its grid point. A file of other weights at the point (a retrained point) is no match."""
    same = [m for m in training if sha256 and m.sha256 == sha256]
    if same:
        return same[0]
    try:
        point = (float(f"{float(settings['learning_rate']):.6g}"), int(settings["batch_size"]))
    except (KeyError, TypeError, ValueError):
        return None
    ablation = settings.get("ablation")
    at = [m for m in training if m.settings.get("ablation") == ablation and m.point() == point]
    return at[0] if len(at) == 1 and not (sha256 and at[0].sha256) else None


def early_checks(
    claim: Claim,
    ablation: Sequence[Run],
    training: Sequence[Measurement],
    alpha: float,
    seed: int,
    resamples: int,
) -> list[Check]:
    e = claim.early_signals
    assert e is not None
    checks = []
    for signal, sign in e.expect.items():
        for bench in e.benchmarks:
            what = (
                f"{bench} {'rises' if sign > 0 else 'falls'} with the early {signal.replace('_', ' ')} "
                f"(mean of the first {e.steps} steps)"
            )
            evidence, shown, left = [], [], []
            for run in (r for r in ablation if bench in r.results.benchmarks):
                m = sharpness_of(run.results.model.sha256, run.results.settings, training)
                value, logged = _early_value(m, signal, e.steps) if m else (None, 0)
                if value is None:
                    left.append(
                        "no sharpness file with its first steps" if m is None else f"no {signal} logged"
                    )
                    continue
                why = _not_evidence(str(run.results.settings.get("profile", "real")), run.partial)
                if why is None and logged < e.steps:
                    why = f"only {logged} of {e.steps} steps logged"
                point = (value, run.results.benchmarks[bench].score, str(run.path))
                (shown if why else evidence).append(point)
                left += [why] if why else []
            if not (evidence or shown):
                reason = "no grid points with results and first steps" + _left_out(left)
                checks.append(Check(what, "inconclusive", reason=reason))
                continue
            checks.append(
                _rank_check(what, sign, evidence, shown, left, e.min_points, alpha, seed, resamples)
            )
    return checks


def _usable_point(settings: Mapping[str, Any]) -> bool:
    """A grid point's learning rate and batch size are finite positive numbers."""
    try:
        values = [float(settings[k]) for k in GRID_AXES]
    except (KeyError, TypeError, ValueError):
        return False
    return all(math.isfinite(v) and v > 0 for v in values)


def of_grid(
    claim: Claim, ablation: Sequence[Run], training: Sequence[Measurement]
) -> tuple[list[Run], list[Measurement], str]:
    """The points of the grid a claim names; points of other grids, or with unusable settings, are
    left out and said so (two grids pooled would test neither)."""
    if claim.ablation is None:
        return list(ablation), list(training), ""
    others: dict[str, int] = {}
    bad = 0
    runs = []
    for run in ablation:
        name = str(run.results.settings.get("ablation", "unnamed"))
        if name != claim.ablation:
            others[name] = others.get(name, 0) + 1
        elif not _usable_point(run.results.settings):
            bad += 1
        else:
            runs.append(run)
    measured = [
        m for m in training if m.settings.get("ablation") == claim.ablation and _usable_point(m.settings)
    ]
    note = "".join(f" ({n} points of grid {name!r} left out: the claim reads {claim.ablation})"
                   for name, n in others.items())  # fmt: skip
    if bad:
        note += f" ({bad} points left out: learning rate or batch size not a finite positive number)"
    return runs, measured, note
