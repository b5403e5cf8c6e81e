"""The paper's claims (tables/claims.yaml), each judged on per-item results.

A paired claim part ("better" beats "worse" on some benchmarks) is judged by the paired test
on the same items (evalsuite.report.item_stats.paired); a trend claim by Spearman's rho of score
against the learning-rate / batch-size ratio over the ablation points, with an exact
permutation p-value (stats.spearman_permutation: all n! orderings up to 8 points, a seeded
Monte Carlo beyond), so four points can never give p below 1/12.

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

Pooled training seeds on either side are compared with seeds as the unit (analysis.seed_comparison,
a t test over seeds); one run per side, with the paired test on the items.

Sizes are the differences of the reported scores (evalsuite.report.reported): `size: reported`
takes them as they are; `size: {benchmark: "+11.0"}` quotes the paper's number, and loading
fails unless it equals the reported difference to its printed precision. Claims marked
`about: lr_bs_ratio` compare runs whose recipes (repro/recipes) differ in more than the
ratio; their result carries a `caveat` naming the differences, computed from the recipes.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalsuite import benchmarks as registry
from evalsuite.report import datafile, stats, verdicts
from evalsuite.report.item_stats import Paired
from evalsuite.report.reported import CLAIMS_FILE, Metric, ReportedScores
from evalsuite.report.result_set import Run
from evalsuite.sharpness.record import Measurement
from repro import recipe as recipes
from repro.errors import UsageError

CONSISTENT = "consistent, too wide to confirm the size"
Verdict = Literal[
    "supported",
    "smaller than claimed",
    "larger than claimed",
    "consistent, too wide to confirm the size",
    "contradicted",
    "inconclusive",
]
DIRECTIONS = {"increasing": 1, "decreasing": -1}
ABOUT = ("lr_bs_ratio",)  # what a claim may say it is about (`about:` in claims.yaml)


@dataclass(frozen=True)
class PairedPart:
    better: str
    worse: str
    benchmarks: tuple[str, ...]
    # benchmark -> claimed size in points (better - worse), the reported difference; None: no size
    sizes: dict[str, float] | None = None
    # benchmark -> how far a reproduced difference may sit from the claimed size: both reported
    # scores' tolerances plus their printed rounding (tables/tolerances.yaml, verdicts.py)
    size_tolerances: dict[str, float] | None = None


@dataclass(frozen=True)
class Trend:
    numerator: str
    denominator: str
    min_points: int  # distinct ratios needed before the trend is tested
    expect: dict[str, int]  # benchmark -> +1 (increasing) / -1 (decreasing)
    monotonic: bool = False  # also every step between neighbouring ratios in the claimed direction


@dataclass(frozen=True)
class SharpnessTrend:
    """Each sharpness measure against numerator/denominator over the grid's sharpness files."""

    numerator: str
    denominator: str
    min_points: int  # distinct ratios needed
    expect: dict[str, int]  # "top_eigenvalue" / "epsilon_sharpness" -> +1 / -1


@dataclass(frozen=True)
class Factorial:
    """At each fixed level of one grid axis, the score against the other (Page's L / sign test)."""

    benchmarks: tuple[str, ...]
    expect: dict[str, int]  # "batch_size" / "learning_rate" -> +1 / -1 (score against that axis)
    min_blocks: int = 2


@dataclass(frozen=True)
class EarlySignals:
    """Each early-run signal (mean over the first `steps` steps) against the final score."""

    benchmarks: tuple[str, ...]
    expect: dict[str, int]  # "loss" / "grad_norm" -> +1 / -1
    steps: int
    min_points: int


@dataclass(frozen=True)
class Claim:
    id: int
    text: str
    source: str = ""  # where the paper says it: "abstract", "paper §4.3", "paper Table 8", ...
    quote: str = ""  # the paper's sentence, verbatim
    ablation: str | None = None  # the grid a grid claim reads (settings.ablation); others left out
    paired: tuple[PairedPart, ...] = ()
    trend: Trend | None = None
    about: str | None = None  # "lr_bs_ratio": a claim about the learning-rate / batch-size ratio
    # about the ratio, paired: how the compared recipes differ (from repro/recipes), one per pair
    confounds: tuple[str, ...] = ()
    sharpness: SharpnessTrend | None = None
    factorial: Factorial | None = None
    early_signals: EarlySignals | None = None


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
    n: int | None = None  # items compared (paired) or ablation points used (trend)
    reason: str | None = None  # why not tested, or a note on how
    claimed_size: float | None = None  # points, when the claim states a size
    size_tolerance: float | None = None  # points: the claimed size's own tolerance
    files: list[str] = field(default_factory=list)  # the results.json files the check used


@dataclass
class ClaimResult:
    id: int
    text: str
    verdict: Verdict
    p_value: float | None
    reason: str
    checks: list[Check] = field(default_factory=list)
    source: str = ""
    caveat: str | None = None  # what the verdict cannot say (e.g. the ratio is confounded)
    files: list[str] = field(default_factory=list)  # every results.json file the checks used


# --- loading -------------------------------------------------------------------------------------


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _sizes(raw: Any, cw: str, better: str, worse: str, benches: list[str], reported: ReportedScores):
    """A part's claimed sizes: the reported differences, checked against the paper's quoted numbers."""
    if raw is None:
        return None
    if raw != "reported" and not isinstance(raw, dict):
        raise UsageError(f"{cw}: size must be 'reported' or a mapping benchmark -> the paper's number")
    if isinstance(raw, dict) and set(raw) != set(benches):
        raise UsageError(
            f"{cw}: size names {sorted(raw)} but the part compares {benches}; give one size per "
            "benchmark (split the part when only some have one)"
        )
    sizes = {}
    for b in benches:
        rb, rw = reported.get(better, Metric(b)), reported.get(worse, Metric(b))
        if rb is None or rw is None:
            raise UsageError(f"{cw}: a size on {b} needs reported scores for {better} and {worse}")
        diff = rb.value - rw.value
        if isinstance(raw, dict):
            text = raw[b]
            if not isinstance(text, str):
                raise UsageError(f'{cw}: quote the size for {b} as printed, e.g. "+3.4"')
            try:
                stated = float(text)
            except ValueError:
                raise UsageError(f"{cw}: size {text!r} for {b} is not a number as printed") from None
            if abs(round(diff, _decimals(text)) - stated) > 1e-9:
                raise UsageError(
                    f"{cw}: the paper's {text} on {b} is not the reported difference {rb.text} - {rw.text} "
                    f"= {diff:.{max(_decimals(rb.text), _decimals(rw.text))}f}"
                )
        sizes[b] = round(diff, 6)
    return sizes


def _size_tolerances(
    sizes: dict[str, float] | None, better: str, worse: str, reported: ReportedScores
) -> dict[str, float] | None:
    """A claimed size is a difference of two reported scores: each carries its tolerance and rounding."""
    if sizes is None:
        return None
    tolerances = verdicts.load()
    out = {}
    for b in sizes:
        rb, rw = reported.get(better, Metric(b)), reported.get(worse, Metric(b))
        assert rb is not None and rw is not None  # checked by _sizes
        out[b] = round(2 * tolerances[b].points + verdicts.rounding(rb) + verdicts.rounding(rw), 6)
    return out


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _recipe_differences(a: str, b: str, cw: str) -> str:
    """How the recipes of two compared runs differ, from repro/recipes: the claim's confounds."""
    known = recipes.names()
    for name in (a, b):
        if name not in known:
            raise UsageError(
                f"{cw}: about lr_bs_ratio, but {name} has no recipe in repro/recipes "
                "(only trained runs can be compared by their hyperparameters)"
            )
    ra, rb = recipes.load(a), recipes.load(b)
    diffs = []
    for section, label in (("hyperparameters", "{}"), ("inputs", "input {}")):
        sa, sb = getattr(ra, section), getattr(rb, section)
        for key in [*sa, *(k for k in sb if k not in sa)]:
            va, vb = sa.get(key), sb.get(key)
            if va is not None and vb is not None and va.value == vb.value:
                continue
            name = "starting checkpoint" if (section, key) == ("inputs", "model") else label.format(key)
            name = name.replace("_", " ")
            assumed = [
                r for r, s in ((a, va), (b, vb)) if s is not None and s.source.startswith("assumption")
            ]
            note = f", assumed by the {' and '.join(assumed)} recipe" if assumed else ""
            values = f"{_value(va.value) if va else 'unset'} vs {_value(vb.value) if vb else 'unset'}"
            diffs.append(f"{name} ({values}{note})")
    listed = ", ".join(diffs[:-1]) + f" and {diffs[-1]}" if len(diffs) > 1 else "".join(diffs)
    return f"{a} and {b} differ in {listed or 'nothing'}, not only in their LR/BS ratio"


def _parse_paired(raw: dict[str, Any], cw: str, reported: ReportedScores) -> tuple[PairedPart, ...]:
    parts = []
    for p in raw["paired"] if isinstance(raw["paired"], list) else [None]:
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in ("better", "worse")):
            raise UsageError(f"{cw}: each paired part needs 'better', 'worse' and 'benchmarks'")
        benches = p.get("benchmarks")
        if not isinstance(benches, list) or not benches:
            raise UsageError(f"{cw}: 'benchmarks' must be a non-empty list")
        unknown = set(p) - {"better", "worse", "benchmarks", "size"}
        if unknown:
            raise UsageError(f"{cw}: unknown key(s) {sorted(unknown)} in a paired part")
        for model in (p["better"], p["worse"]):
            kind = reported.model_kind(model)
            if kind is None:
                raise UsageError(f"{cw}: {model!r} is in none of the reported tables")
            for b in benches:
                bench = registry.get(b)
                if bench.model_kind != kind:
                    raise UsageError(f"{cw}: {b} is not a benchmark for {model} ({kind})")
        for b in benches:  # the paper's own numbers must say what the claim says
            rb, rw = reported.get(p["better"], Metric(b)), reported.get(p["worse"], Metric(b))
            if rb is not None and rw is not None and rb.value <= rw.value:
                raise UsageError(
                    f"{cw}: the reported scores do not say {p['better']} > {p['worse']} on {b} "
                    f"({rb.text} vs {rw.text})"
                )
        sizes = _sizes(p.get("size"), cw, p["better"], p["worse"], benches, reported)
        size_tol = _size_tolerances(sizes, p["better"], p["worse"], reported)
        parts.append(PairedPart(p["better"], p["worse"], tuple(benches), sizes, size_tol))
    return tuple(parts)


def _parse_trend(raw: dict[str, Any], cw: str) -> Trend:
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
    expect = {b: DIRECTIONS[d] for b, d in t["expect"].items()}
    if not isinstance(t.get("monotonic", False), bool):
        raise UsageError(f"{cw}: monotonic must be true or false")
    return Trend(t["numerator"], t["denominator"], t["min_points"], expect, t.get("monotonic", False))


KINDS = ("paired", "trend", "sharpness", "factorial", "early_signals")
SHARPNESS_MEASURES = ("top_eigenvalue", "epsilon_sharpness")
GRID_AXES = ("learning_rate", "batch_size")
EARLY_SIGNALS = ("loss", "grad_norm")


def _expect(raw: Any, allowed: Sequence[str], cw: str, what: str) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"{cw}: {what} needs 'expect': {{{allowed[0]}: increasing|decreasing, ...}}")
    for key, d in raw.items():
        if key not in allowed:
            raise UsageError(f"{cw}: {what} expects one of {', '.join(allowed)}, not {key!r}")
        if d not in DIRECTIONS:
            raise UsageError(f"{cw}: direction for {key} must be 'increasing' or 'decreasing'")
    return {k: DIRECTIONS[d] for k, d in raw.items()}


def _count(raw: dict[str, Any], key: str, low: int, cw: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{cw}: {key} must be an integer of at least {low}")
    return value


def _benchmarks(raw: dict[str, Any], cw: str) -> tuple[str, ...]:
    benches = raw.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise UsageError(f"{cw}: 'benchmarks' must be a non-empty list")
    for b in benches:
        registry.get(b)
    return tuple(benches)


def _parse_grid_kind(kind: str, raw: Any, cw: str) -> SharpnessTrend | Factorial | EarlySignals:
    if not isinstance(raw, dict):
        raise UsageError(f"{cw}: {kind} must be a mapping")
    if kind == "sharpness":
        if not isinstance(raw.get("numerator"), str) or not isinstance(raw.get("denominator"), str):
            raise UsageError(f"{cw}: sharpness needs 'numerator' and 'denominator' settings keys")
        expect = _expect(raw.get("expect"), SHARPNESS_MEASURES, cw, kind)
        return SharpnessTrend(raw["numerator"], raw["denominator"], _count(raw, "min_points", 3, cw), expect)
    if kind == "factorial":
        expect = _expect(raw.get("expect"), GRID_AXES, cw, kind)
        return Factorial(_benchmarks(raw, cw), expect, _count(raw, "min_blocks", 2, cw))
    expect = _expect(raw.get("expect"), EARLY_SIGNALS, cw, kind)
    return EarlySignals(
        _benchmarks(raw, cw), expect, _count(raw, "steps", 1, cw), _count(raw, "min_points", 3, cw)
    )


def _parse(raw: Any, where: str, reported: ReportedScores) -> Claim:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("id"), int)
        or not isinstance(raw.get("text"), str)
    ):
        raise UsageError(f"{where}: each claim needs an integer 'id' and a 'text'")
    cw = f"{where} claim {raw['id']}"
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise UsageError(f"{cw}: give exactly one of {', '.join(map(repr, KINDS))}")
    paired = _parse_paired(raw, cw, reported) if "paired" in raw else ()
    trend = _parse_trend(raw, cw) if "trend" in raw else None
    grid = {k: _parse_grid_kind(k, raw[k], cw) for k in KINDS[2:] if k in raw}
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UsageError(f"{cw}: 'source' must say where the paper makes the claim (e.g. 'abstract')")
    quote = raw.get("quote")
    if not isinstance(quote, str) or not quote.strip():
        raise UsageError(f"{cw}: 'quote' must give the paper's sentence that makes the claim")
    ablation = None
    if kinds[0] != "paired":
        ablation = raw[kinds[0]].get("ablation") if isinstance(raw[kinds[0]], dict) else None
        if not isinstance(ablation, str) or not ablation.strip():
            raise UsageError(
                f"{cw}: a grid claim names its grid: {kinds[0]}.ablation (the recipe, e.g. ablation-135m)"
            )
    about = raw.get("about")
    if about is not None and about not in ABOUT:
        raise UsageError(f"{cw}: about must be one of {', '.join(ABOUT)}, not {about!r}")
    confounds: tuple[str, ...] = ()
    if about == "lr_bs_ratio" and paired:
        pairs = dict.fromkeys(tuple(sorted((p.better, p.worse))) for p in paired)
        confounds = tuple(_recipe_differences(a, b, cw) for a, b in pairs)
    return Claim(
        raw["id"], raw["text"], source, " ".join(quote.split()), ablation, paired, trend, about, confounds,
        **grid,  # type: ignore[arg-type]
    )  # fmt: skip


def load(reported: ReportedScores, path: Path | None = None) -> list[Claim]:
    path = Path(path) if path is not None else CLAIMS_FILE
    raw = datafile.read_mapping(path, missing="claims file missing; run from a checkout of the suite")
    claims = [_parse(c, str(path), reported) for c in datafile.field(raw, "claims", list, str(path))]
    if len({c.id for c in claims}) != len(claims):
        raise UsageError(f"{path}: claim ids must be unique")
    return claims


def ablation_keys(claims: Sequence[Claim]) -> tuple[str, ...]:
    for c in claims:
        if c.trend is not None:
            return (c.trend.numerator, c.trend.denominator)
    return ("learning_rate", "batch_size")


# --- judging -------------------------------------------------------------------------------------


def _verdict(
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


def _size_note(c: Check) -> str:
    assert c.effect is not None and c.interval is not None and c.claimed_size is not None
    lo, hi = c.interval
    tol = f" ± {c.size_tolerance:.2f}" if c.size_tolerance else ""
    return f"{c.what}: {c.effect:+.2f} [{lo:+.2f}, {hi:+.2f}] vs claimed {c.claimed_size:+.2f}{tol}"


def _combine(claim: Claim, checks: list[Check]) -> ClaimResult:
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
            map(_size_note, smaller)
        )
        if larger:
            reason += "; above it: " + "; ".join(map(_size_note, larger))
        return result("smaller than claimed", all_p, reason)
    sized = any(c.claimed_size is not None for c in checks)
    if found and all(v == "supported" for v in found):
        tail = ", every claimed size inside its interval" if sized else ""
        return result("supported", all_p, "every comparison significant, right sign" + tail)
    if found and all(v in ("supported", "larger than claimed") for v in found):
        reason = "significant, but the interval lies above the claimed size: " + "; ".join(
            map(_size_note, larger)
        )
        return result("larger than claimed", all_p, reason)
    wide = [c for c in checks if c.verdict == CONSISTENT]
    if found and all(v in ("supported", "larger than claimed", CONSISTENT) for v in found):
        reason = (
            "significant in the claimed direction, but the interval is wider than the claimed size ± "
            "its tolerance: " + "; ".join(map(_size_note, wide))
        )
        return result(CONSISTENT, all_p, reason)
    missing = [c for c in checks if c.p_value is None]
    reasons = list(dict.fromkeys(c.reason or "not tested" for c in missing))
    reason = "; ".join(reasons) if missing else "not every comparison is significant"
    if larger:
        reason += "; larger than claimed: " + "; ".join(map(_size_note, larger))
    return result("inconclusive", all_p, reason)


PairLookup = Callable[[str, str, str], "Paired | str"]


def _paired_checks(
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
                    _verdict(found.difference, found.p_value, alpha, size, interval, size_tol or 0.0),
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


def _trend_checks(
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
        check = _spearman_check(
            what, points, sign, alpha, resamples, seed,
            files=[str(run.path) for run in used], described=f"runs at {distinct} ratios",
            flat=f"{bench} scores do not vary", suffix=ignored,
        )  # fmt: skip
        if t.monotonic:
            _require_monotonic(check, points, sign)
        checks.append(check)
    return checks


def _require_monotonic(check: Check, points: Sequence[tuple[float, float]], sign: int) -> None:
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


def _spearman_check(
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
        _verdict(sign * res.rho, res.p_value, alpha),
        res.rho,
        None,
        None,
        res.p_value,
        "Spearman",
        len(points),
        reason + suffix,
        files=files,
    )


# --- the grid's sharpness, factorial and early-signal claims -----------------------------------------


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
    return _spearman_check(
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


def _sharpness_checks(
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


def _factorial_checks(claim: Claim, ablation: Sequence[Run], alpha: float) -> list[Check]:
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
                    _verdict(sign * effect, p, alpha),
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


def _early_checks(
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


def _of_grid(
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
        grid, grid_training, left_out = _of_grid(claim, ablation, training)
        if claim.paired:
            checks = _paired_checks(claim, pair, runs, reported, alpha)
        elif claim.sharpness is not None:
            checks = _sharpness_checks(claim, grid_training, alpha, seed, resamples)
        elif claim.factorial is not None:
            checks = _factorial_checks(claim, grid, alpha)
        elif claim.early_signals is not None:
            checks = _early_checks(claim, grid, grid_training, alpha, seed, resamples)
        else:
            checks = _trend_checks(claim, grid, alpha, seed, resamples)
        for check in checks if left_out else ():
            check.reason = (check.reason or "") + left_out
        result = _combine(claim, checks)
        result.caveat = _caveat(claim, runs)
        out.append(result)
    return out
