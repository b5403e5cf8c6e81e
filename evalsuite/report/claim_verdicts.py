"""How a claim's verdict follows from its comparisons (the rules `claim_checks` and `grid_claims` apply).

Verdicts of one comparison (a `Check`), at level alpha:
- supported: significant (p < alpha) in the claimed direction and, when the claim states a
  size, the whole 95% interval lies within the claimed size ± its tolerance (both reported
  scores' harness tolerances plus their printed rounding);
- consistent, too wide to confirm the size: significant in the claimed direction, the interval
  overlaps the claimed size ± its tolerance without lying inside it (+5.9 [0.6, 11.2] vs +11.0);
- smaller than claimed / larger than claimed: significant in the claimed direction, but the
  interval lies entirely below / above the claimed size ± its tolerance;
- contradicted: significant in the other direction;
- inconclusive: not significant, no results, or the results are partial (`Run.partial`:
  --limit / --sample runs or fewer items than the full benchmark never decide a claim).
A claim with several comparisons (intersection-union): contradicted if any comparison is;
else smaller than claimed if any is; supported if all are; larger than claimed if all are
supported or larger; consistent (too wide) if all are supported, larger or consistent; else
inconclusive. Claims without a size only get supported, contradicted or inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evalsuite.report import stats
from evalsuite.report.claims import (
    CONSISTENT,
    Check,
    Claim,
    ClaimResult,
    Verdict,
)


def verdict(
    effect: float,
    p: float,
    alpha: float,
    size: float | None = None,
    interval: tuple[float, float] | None = None,
    size_tolerance: float = 0.0,
) -> Verdict:
    """One comparison: `effect` signed so that > 0 is the claimed direction.

    With a claimed size, "supported" needs the whole 95% interval inside size ± size_tolerance;
    an interval that only overlaps that window is "consistent, too wide to confirm the size".
    """
    if not (p < alpha) or effect == 0:
        return "inconclusive"
    if effect < 0:
        return "contradicted"
    if size is not None and interval is not None:
        low, high = size - size_tolerance, size + size_tolerance
        if interval[1] < low:
            return "smaller than claimed"
        if interval[0] > high:
            return "larger than claimed"
        if not (low <= interval[0] and interval[1] <= high):
            return CONSISTENT
    return "supported"


def size_note(c: Check) -> str:
    assert c.effect is not None and c.interval is not None and c.claimed_size is not None
    lo, hi = c.interval
    tol = f" ± {c.size_tolerance:.2f}" if c.size_tolerance else ""
    return f"{c.what}: {c.effect:+.2f} [{lo:+.2f}, {hi:+.2f}] vs claimed {c.claimed_size:+.2f}{tol}"


def combine(claim: Claim, checks: list[Check]) -> ClaimResult:
    """Intersection-union over the checks (see the module docstring for the order of verdicts)."""
    found = [c.verdict for c in checks]
    ps = [c.p_value for c in checks if c.p_value is not None]
    all_p = max(ps) if ps and len(ps) == len(checks) else None
    files = list(dict.fromkeys(f for c in checks for f in c.files))

    def result(verdict: Verdict, p: float | None, reason: str) -> ClaimResult:
        return ClaimResult(claim.id, claim.text, verdict, p, reason, checks, claim.source, None, files)

    contra = [c for c in checks if c.verdict == "contradicted"]
    if contra:
        p = min(c.p_value for c in contra if c.p_value is not None)
        return result("contradicted", p, "significant the other way: " + "; ".join(c.what for c in contra))
    smaller = [c for c in checks if c.verdict == "smaller than claimed"]
    larger = [c for c in checks if c.verdict == "larger than claimed"]
    if smaller:
        reason = "significant, but the interval lies below the claimed size: " + "; ".join(
            map(size_note, smaller)
        )
        if larger:
            reason += "; above it: " + "; ".join(map(size_note, larger))
        return result("smaller than claimed", all_p, reason)
    sized = any(c.claimed_size is not None for c in checks)
    if found and all(v == "supported" for v in found):
        tail = ", every claimed size inside its interval" if sized else ""
        return result("supported", all_p, "every comparison significant, right sign" + tail)
    if found and all(v in ("supported", "larger than claimed") for v in found):
        reason = "significant, but the interval lies above the claimed size: " + "; ".join(
            map(size_note, larger)
        )
        return result("larger than claimed", all_p, reason)
    wide = [c for c in checks if c.verdict == CONSISTENT]
    if found and all(v in ("supported", "larger than claimed", CONSISTENT) for v in found):
        reason = (
            "significant in the claimed direction, but the interval is wider than the claimed size ± "
            "its tolerance: " + "; ".join(map(size_note, wide))
        )
        return result(CONSISTENT, all_p, reason)
    missing = [c for c in checks if c.p_value is None]
    reasons = list(dict.fromkeys(c.reason or "not tested" for c in missing))
    reason = "; ".join(reasons) if missing else "not every comparison is significant"
    if larger:
        reason += "; larger than claimed: " + "; ".join(map(size_note, larger))
    return result("inconclusive", all_p, reason)


def require_monotonic(check: Check, points: Sequence[tuple[float, float]], sign: int) -> None:
    """A monotonic claim: the mean score at each ratio must move the claimed way at every step."""
    by_ratio: dict[float, list[float]] = {}
    for x, y in points:
        by_ratio.setdefault(x, []).append(y)
    means = [float(np.mean(by_ratio[x])) for x in sorted(by_ratio)]
    against = [i for i in range(len(means) - 1) if sign * (means[i + 1] - means[i]) <= 0]
    check.what += " at every step"
    if not against:
        check.reason = (check.reason or "") + f"; monotonic: every one of {len(means) - 1} steps"
        return
    ratios = sorted(by_ratio)
    steps = ", ".join(f"{ratios[i]:.3g} -> {ratios[i + 1]:.3g}" for i in against)
    check.reason = (
        check.reason or ""
    ) + f"; not monotonic: {len(against)} of {len(means) - 1} steps go the other way ({steps})"
    if check.verdict == "supported":
        check.verdict = "inconclusive"


def spearman_check(
    what: str,
    points: Sequence[tuple[float, float]],
    sign: int,
    alpha: float,
    resamples: int,
    seed: int,
    *,
    files: list[str],
    described: str,
    flat: str,
    suffix: str,
) -> Check:
    """A rank-correlation check: Spearman's rho with its exact (or resampled) permutation p.

    Points with a non-finite value (a NaN sharpness, say) cannot be ranked: left out, and said so.
    """
    kept = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(kept) < len(points):
        suffix += f" ({len(points) - len(kept)} points left out: not a finite number)"
        points = kept
    if len(points) < 3:
        return Check(
            what, "inconclusive", n=len(points), reason=f"{len(points)} usable points" + suffix, files=files
        )
    res = stats.spearman_permutation(
        [x for x, _ in points], [y for _, y in points], resamples=resamples, seed=seed
    )
    if not (math.isfinite(res.rho) and math.isfinite(res.p_value)):
        return Check(what, "inconclusive", n=len(points), reason=flat + suffix, files=files)
    reason = f"{res.method}; {len(points)} {described}"
    if res.smallest_p >= alpha:
        reason += (
            f"; with these {len(points)} points no ordering reaches p < {alpha} (the smallest "
            f"possible p is {res.smallest_p:.4g}): add grid points"
        )
    return Check(
        what,
        verdict(sign * res.rho, res.p_value, alpha),
        res.rho,
        None,
        None,
        res.p_value,
        "Spearman",
        len(points),
        reason + suffix,
        files=files,
    )
