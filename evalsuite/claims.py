"""The paper's claims (tables/claims.yaml), each judged on per-item results.

A paired claim part is judged by the paired test on the same items; a trend claim by the
Spearman correlation of score with the learning-rate / batch-size ratio over ablation points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from evalsuite import benchmarks as registry
from evalsuite import stats
from evalsuite.item_stats import Paired
from evalsuite.reported import CLAIMS_FILE, Metric, ReportedScores
from evalsuite.result_set import Run
from repro.errors import UsageError

Verdict = Literal["supported", "contradicted", "inconclusive"]
DIRECTIONS = {"increasing": 1, "decreasing": -1}


@dataclass(frozen=True)
class PairedPart:
    better: str
    worse: str
    benchmarks: tuple[str, ...]


@dataclass(frozen=True)
class Trend:
    numerator: str
    denominator: str
    min_points: int
    expect: dict[str, int]  # benchmark -> +1 (increasing) / -1 (decreasing)


@dataclass(frozen=True)
class Claim:
    id: int
    text: str
    paired: tuple[PairedPart, ...] = ()
    trend: Trend | None = None


@dataclass
class Check:
    """One benchmark-level comparison inside a claim."""

    what: str  # "dpo-1130 > dpo-1207 on gsm8k"
    verdict: Verdict
    effect: float | None = None  # points (paired) or Spearman rho (trend)
    interval: tuple[float, float] | None = None
    reported_effect: float | None = None
    p_value: float | None = None
    test: str | None = None
    n: int | None = None
    reason: str | None = None


@dataclass
class ClaimResult:
    id: int
    text: str
    verdict: Verdict
    p_value: float | None
    reason: str
    checks: list[Check] = field(default_factory=list)


def _parse(raw: Any, where: str, reported: ReportedScores) -> Claim:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("id"), int)
        or not isinstance(raw.get("text"), str)
    ):
        raise UsageError(f"{where}: each claim needs an integer 'id' and a 'text'")
    cw = f"{where} claim {raw['id']}"
    if ("paired" in raw) == ("trend" in raw):
        raise UsageError(f"{cw}: give exactly one of 'paired' or 'trend'")
    if "paired" in raw:
        parts = []
        for p in raw["paired"] if isinstance(raw["paired"], list) else [None]:
            if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in ("better", "worse")):
                raise UsageError(f"{cw}: each paired part needs 'better', 'worse' and 'benchmarks'")
            benches = p.get("benchmarks")
            if not isinstance(benches, list) or not benches:
                raise UsageError(f"{cw}: 'benchmarks' must be a non-empty list")
            for model in (p["better"], p["worse"]):
                kind = reported.model_kind(model)
                if kind is None:
                    raise UsageError(f"{cw}: {model!r} is in none of the reported tables")
                for b in benches:
                    bench = registry.get(b)
                    if bench.model_kind != kind:
                        raise UsageError(f"{cw}: {b} is not a benchmark for {model} ({kind})")
            parts.append(PairedPart(p["better"], p["worse"], tuple(benches)))
        return Claim(raw["id"], raw["text"], paired=tuple(parts))
    t = raw["trend"]
    if not isinstance(t, dict) or not isinstance(t.get("expect"), dict):
        raise UsageError(f"{cw}: trend needs numerator, denominator, min_points and expect")
    for b, d in t["expect"].items():
        registry.get(b)
        if d not in DIRECTIONS:
            raise UsageError(f"{cw}: direction for {b} must be 'increasing' or 'decreasing'")
    if not isinstance(t.get("min_points"), int) or t["min_points"] < 3:
        raise UsageError(f"{cw}: min_points must be an integer of at least 3")
    if not isinstance(t.get("numerator"), str) or not isinstance(t.get("denominator"), str):
        raise UsageError(f"{cw}: trend needs 'numerator' and 'denominator' settings keys")
    trend = Trend(
        t["numerator"], t["denominator"], t["min_points"], {b: DIRECTIONS[d] for b, d in t["expect"].items()}
    )
    return Claim(raw["id"], raw["text"], trend=trend)


def load(reported: ReportedScores, path: Path | None = None) -> list[Claim]:
    path = Path(path) if path is not None else CLAIMS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: claims file missing; run from a checkout of the suite") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise UsageError(f"{path}: expected a mapping with a 'claims' list")
    claims = [_parse(c, str(path), reported) for c in raw["claims"]]
    if len({c.id for c in claims}) != len(claims):
        raise UsageError(f"{path}: claim ids must be unique")
    return claims


def ablation_keys(claims: Sequence[Claim]) -> tuple[str, ...]:
    for c in claims:
        if c.trend is not None:
            return (c.trend.numerator, c.trend.denominator)
    return ("learning_rate", "batch_size")


def _verdict(effect: float, p: float, alpha: float) -> Verdict:
    if p < alpha and effect > 0:
        return "supported"
    if p < alpha and effect < 0:
        return "contradicted"
    return "inconclusive"


def _combine(claim: Claim, checks: list[Check]) -> ClaimResult:
    """Intersection-union: supported only if every check is; contradicted if any check is."""
    verdicts = [c.verdict for c in checks]
    ps = [c.p_value for c in checks if c.p_value is not None]
    if verdicts and all(v == "supported" for v in verdicts):
        return ClaimResult(
            claim.id, claim.text, "supported", max(ps), "every comparison significant, right sign", checks
        )
    contra = [c for c in checks if c.verdict == "contradicted"]
    if contra:
        p = min(c.p_value for c in contra if c.p_value is not None)
        what = "; ".join(c.what for c in contra)
        return ClaimResult(
            claim.id, claim.text, "contradicted", p, f"significant the other way: {what}", checks
        )
    missing = [c for c in checks if c.p_value is None]
    reasons = list(dict.fromkeys(c.reason or "not tested" for c in missing))
    reason = "; ".join(reasons) if missing else "not every comparison is significant"
    return ClaimResult(
        claim.id, claim.text, "inconclusive", max(ps) if ps and not missing else None, reason, checks
    )


PairLookup = Callable[[str, str, str], "Paired | str"]


def _paired_checks(claim: Claim, pair: PairLookup, reported: ReportedScores, alpha: float) -> list[Check]:
    checks = []
    for part in claim.paired:
        for bench in part.benchmarks:
            what = f"{part.better} > {part.worse} on {bench}"
            rb, rw = reported.get(part.better, Metric(bench)), reported.get(part.worse, Metric(bench))
            rep = round(rb.value - rw.value, 4) if rb and rw else None
            found = pair(part.better, part.worse, bench)
            if isinstance(found, str):
                checks.append(Check(what, "inconclusive", reported_effect=rep, reason=found))
                continue
            checks.append(
                Check(
                    what,
                    _verdict(found.difference, found.p_value, alpha),
                    found.difference,
                    (found.interval.low, found.interval.high),
                    rep,
                    found.p_value,
                    found.test,
                    found.n,
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


def _trend_checks(claim: Claim, ablation: Sequence[Run], alpha: float) -> list[Check]:
    assert claim.trend is not None
    t = claim.trend
    # smoke-profile grids train the embedded tiny model: no evidence about the 135M model
    smoke = [r for r in ablation if r.results.settings.get("profile", "real") != "real"]
    ablation = [r for r in ablation if r not in smoke]
    ignored = f" ({len(smoke)} smoke-profile points ignored)" if smoke else ""
    checks = []
    for bench, sign in t.expect.items():
        what = f"{bench} {'rises' if sign > 0 else 'falls'} with {t.numerator}/{t.denominator}"
        points = [
            (_ratio(run, t), run.results.benchmarks[bench].score)
            for run in ablation
            if bench in run.results.benchmarks and run.limit is None
        ]
        if not ablation:
            reason = f"no ablation results (results whose settings carry {t.numerator} and {t.denominator})"
            checks.append(Check(what, "inconclusive", reason=reason + ignored))
            continue
        if len({x for x, _ in points}) < t.min_points:
            reason = (
                f"{len(points)} full-count ablation points with {bench}; need {t.min_points} distinct ratios"
            )
            checks.append(Check(what, "inconclusive", reason=reason + ignored))
            continue
        rho, p = stats.spearman([x for x, _ in points], [y for _, y in points])
        if not (math.isfinite(rho) and math.isfinite(p)):
            checks.append(Check(what, "inconclusive", n=len(points), reason=f"{bench} scores do not vary"))
            continue
        checks.append(
            Check(what, _verdict(sign * rho, p, alpha), rho, None, None, p, "Spearman", len(points))
        )
    return checks


def evaluate(
    claims: Sequence[Claim],
    pair: PairLookup,
    ablation: Sequence[Run],
    reported: ReportedScores,
    alpha: float,
) -> list[ClaimResult]:
    out = []
    for claim in claims:
        if claim.paired:
            checks = _paired_checks(claim, pair, reported, alpha)
        else:
            checks = _trend_checks(claim, ablation, alpha)
        out.append(_combine(claim, checks))
    return out
