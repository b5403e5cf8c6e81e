"""Reproduced vs reported: is it the same score? Judged against the noise that can separate them.

The reported score was measured on the same items, so item sampling error does not separate
it from ours. What can:
- the harness (kernels, precision, batch shapes): a stated tolerance per benchmark
  (tables/tolerances.yaml), plus half the last digit the paper printed;
- for a model retrained with `python -m repro`, the training seed: the seeds of one recipe are
  pooled and the band grows by a 95% prediction interval for one more run (the paper's run is
  one draw from the same recipe): t(k-1) * sd * sqrt(1 + 1/k). With one seed that spread is
  unknown: a gap inside the tolerance is still "reproduced" (more noise only widens the band),
  a gap beyond it is "inconclusive".
A seeded item sample (`evalsuite run --sample`) estimates the full-set score: its interval must
lie inside the band to be "reproduced" and outside it to be "not reproduced".

A band can be too wide to mean anything: two seeds 10 points apart give a band of about ±45.
"Reproduced" therefore also needs the band's half-width within `max_band` (tables/tolerances.yaml);
a gap inside a wider band is "inconclusive: seed spread too large". Bands are clipped to 0-100.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scipy import stats as sps

from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import datafile
from evalsuite.report.reported import ROOT, Reported

TOLERANCES_FILE = ROOT / "tables" / "tolerances.yaml"
CONFIDENCE = 0.95
Verdict = Literal["reproduced", "not reproduced", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("reproduced", "not reproduced", "inconclusive")


@dataclass(frozen=True)
class Tolerance:
    points: float
    source: str
    reason: str
    max_half_width: float = math.inf  # the widest band (half-width, points) that can say "reproduced"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str  # the numbers behind the verdict
    tolerance: float  # harness tolerance + printed rounding, points
    band: tuple[float, float]  # reproduced values that count as the reported one (clipped to 0-100)
    seed_sd: float | None = None
    half_width: float | None = None  # the band's half-width used: tolerance + seed spread, points


def load(path: Path | None = None) -> dict[str, Tolerance]:
    """Every registry benchmark's tolerance; a missing, extra or malformed entry is an error."""
    path = Path(path) if path is not None else TOLERANCES_FILE
    raw = datafile.read_mapping(path, missing="tolerance file missing; run from a checkout of the suite")
    entries = datafile.field(raw, "tolerances", dict, str(path))
    widest = _max_band(datafile.field(raw, "max_band", dict, str(path)), path)
    out = {}
    for name, entry in entries.items():
        registry.get(name)
        points = entry.get("points") if isinstance(entry, dict) else None
        if not isinstance(points, int | float) or isinstance(points, bool) or not 0 <= points < 100:
            raise UsageError(f"{path}: {name}: 'points' must be a number of points in [0, 100)")
        if not all(isinstance(entry.get(k), str) and entry[k].strip() for k in ("source", "reason")):
            raise UsageError(f"{path}: {name}: every tolerance needs a 'source' and a 'reason'")
        if points >= widest:
            raise UsageError(f"{path}: {name}: 'points' {points} is not below max_band {widest}")
        out[name] = Tolerance(float(points), entry["source"], " ".join(entry["reason"].split()), widest)
    missing = [b for b in registry.BENCHMARKS if b not in out]
    if missing:
        raise UsageError(f"{path}: no tolerance for {', '.join(missing)}")
    return out


def _max_band(entry: dict, path: Path) -> float:
    points = entry.get("points")
    if not isinstance(points, int | float) or isinstance(points, bool) or not 0 < points < 100:
        raise UsageError(f"{path}: max_band: 'points' must be a number of points in (0, 100)")
    if not all(isinstance(entry.get(k), str) and entry[k].strip() for k in ("source", "reason")):
        raise UsageError(f"{path}: max_band needs a 'source' and a 'reason'")
    return float(points)


def rounding(reported: Reported) -> float:
    """Half the last printed digit: 51.6 stands for anything in [51.55, 51.65)."""
    return 0.5 * 10.0 ** (-reported.decimals)


def judge(
    reported: Reported,
    tolerance: Tolerance,
    *,
    value: float,
    seeds: Sequence[float] | None = None,
    sampled: tuple[float, float] | None = None,
) -> Judgement:
    """Verdict on a reproduced score.

    value: the reproduced score (the mean over seeds for a retrained recipe); seeds: each
    training seed's score for a retrained model, None for a published checkpoint re-evaluated;
    sampled: the 95% interval of the full-set score when only a random sample was evaluated.
    """
    tol = tolerance.points + rounding(reported)
    half, sd, spread = tol, None, ""
    unknown_seed_variance = seeds is not None and len(seeds) < 2
    if seeds is not None and len(seeds) >= 2:
        k = len(seeds)
        sd = statistics.stdev(seeds)
        widen = float(sps.t.ppf(0.5 + CONFIDENCE / 2, k - 1)) * sd * math.sqrt(1 + 1 / k)
        half = tol + widen
        spread = f" + seed spread {widen:.2f} (sd {sd:.2f} over {k} seeds)"
    band = (max(0.0, reported.value - half), min(100.0, reported.value + half))
    gap = value - reported.value
    where = f"band {reported.text} ± {half:.2f} = tolerance {tol:.2f}{spread}"

    def out(verdict: Verdict, reason: str) -> Judgement:
        return Judgement(verdict, reason, tol, band, sd, half)

    if sampled is not None:
        low, high = sampled
        inside = band[0] <= low and high <= band[1]
        outside = high < band[0] or low > band[1]
        shown = f"sample interval [{low:.2f}, {high:.2f}]"
    else:
        inside = band[0] <= value <= band[1]
        outside = not inside
        shown = f"gap {gap:+.2f}"
    if inside and half > tolerance.max_half_width:
        seeds_said = f"sd {sd:.2f}, k {len(seeds or ())}" if sd is not None else "sample interval"
        return out(
            "inconclusive",
            f"seed spread too large ({seeds_said}): {shown} inside the {where}, but a band wider than "
            f"± {tolerance.max_half_width:.2f} (max_band, tables/tolerances.yaml) cannot confirm a "
            "reproduction; evaluate more training seeds",
        )
    if inside:
        return out("reproduced", f"{shown} inside the {where}")
    if outside and unknown_seed_variance:
        return out(
            "inconclusive",
            f"{shown} beyond the {where}; seed variance unknown (one training seed: "
            "retrain with `python -m repro NAME --seed N` and evaluate each)",
        )
    if outside:
        return out("not reproduced", f"{shown} outside the {where}")
    return out("inconclusive", f"{shown} straddles the edge of the {where}; evaluate more items")
