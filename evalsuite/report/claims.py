"""The paper's claims (tables/claims.yaml), each judged on per-item results.

A paired claim part ("better" beats "worse" on some benchmarks) is judged by the paired test
on the same items (evalsuite.report.item_stats.paired); a trend claim by Spearman's rho of score
against the learning-rate / batch-size ratio over the ablation points, with an exact
permutation p-value (stats.spearman_permutation: all n! orderings up to 8 points, a seeded
Monte Carlo beyond), so four points can never give p below 1/12.

Verdicts of one comparison (a `Check`), at level alpha:
- supported: significant (p < alpha) in the claimed direction and, when the claim states a
  size, the paired 95% interval contains that size;
- smaller than claimed / larger than claimed: significant in the claimed direction, but the
  interval lies entirely below / above the claimed size;
- contradicted: significant in the other direction;
- inconclusive: not significant, no results, or the results are partial (`Run.partial`:
  --limit / --sample runs or fewer items than the full benchmark never decide a claim).
A claim with several comparisons (intersection-union): contradicted if any comparison is;
else smaller than claimed if any is; supported if all are; larger than claimed if all are
supported or larger; else inconclusive. Claims without a size only get supported,
contradicted or inconclusive.

Sizes are the differences of the reported scores (evalsuite.report.reported): `size: reported`
takes them as they are; `size: {benchmark: "+11.0"}` quotes the paper's number, and loading
fails unless it equals the reported difference to its printed precision. Claims marked
`about: lr_bs_ratio` compare runs whose recipes (repro/recipes) differ in more than the
ratio; their result carries a `caveat` naming the differences, computed from the recipes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalsuite import benchmarks as registry
from evalsuite.report import datafile, stats
from evalsuite.report.item_stats import Paired
from evalsuite.report.reported import CLAIMS_FILE, Metric, ReportedScores
from evalsuite.report.result_set import Run
from repro import recipe as recipes
from repro.errors import UsageError

Verdict = Literal["supported", "smaller than claimed", "larger than claimed", "contradicted", "inconclusive"]
DIRECTIONS = {"increasing": 1, "decreasing": -1}
ABOUT = ("lr_bs_ratio",)  # what a claim may say it is about (`about:` in claims.yaml)


@dataclass(frozen=True)
class PairedPart:
    better: str
    worse: str
    benchmarks: tuple[str, ...]
    # benchmark -> claimed size in points (better - worse), the reported difference; None: no size
    sizes: dict[str, float] | None = None


@dataclass(frozen=True)
class Trend:
    numerator: str
    denominator: str
    min_points: int  # distinct ratios needed before the trend is tested
    expect: dict[str, int]  # benchmark -> +1 (increasing) / -1 (decreasing)


@dataclass(frozen=True)
class Claim:
    id: int
    text: str
    source: str = ""  # where the paper says it: "abstract", "paper §4.3", "paper Table 8", ...
    paired: tuple[PairedPart, ...] = ()
    trend: Trend | None = None
    about: str | None = None  # "lr_bs_ratio": a claim about the learning-rate / batch-size ratio
    # about the ratio, paired: how the compared recipes differ (from repro/recipes), one per pair
    confounds: tuple[str, ...] = ()


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
        parts.append(PairedPart(p["better"], p["worse"], tuple(benches), sizes))
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
    return Trend(t["numerator"], t["denominator"], t["min_points"], expect)


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
    paired = _parse_paired(raw, cw, reported) if "paired" in raw else ()
    trend = _parse_trend(raw, cw) if "trend" in raw else None
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UsageError(f"{cw}: 'source' must say where the paper makes the claim (e.g. 'abstract')")
    about = raw.get("about")
    if about is not None and about not in ABOUT:
        raise UsageError(f"{cw}: about must be one of {', '.join(ABOUT)}, not {about!r}")
    confounds: tuple[str, ...] = ()
    if about == "lr_bs_ratio" and paired:
        pairs = dict.fromkeys(tuple(sorted((p.better, p.worse))) for p in paired)
        confounds = tuple(_recipe_differences(a, b, cw) for a, b in pairs)
    return Claim(raw["id"], raw["text"], source, paired, trend, about, confounds)


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
) -> Verdict:
    """One comparison: `effect` signed so that > 0 is the claimed direction."""
    if not (p < alpha) or effect == 0:
        return "inconclusive"
    if effect < 0:
        return "contradicted"
    if size is not None and interval is not None:
        if interval[1] < size:
            return "smaller than claimed"
        if interval[0] > size:
            return "larger than claimed"
    return "supported"


def _size_note(c: Check) -> str:
    assert c.effect is not None and c.interval is not None and c.claimed_size is not None
    lo, hi = c.interval
    return f"{c.what}: {c.effect:+.2f} [{lo:+.2f}, {hi:+.2f}] vs claimed {c.claimed_size:+.2f}"


def _combine(claim: Claim, checks: list[Check]) -> ClaimResult:
    """Intersection-union over the checks (see the module docstring for the order of verdicts)."""
    verdicts = [c.verdict for c in checks]
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
    if verdicts and all(v == "supported" for v in verdicts):
        tail = ", every claimed size inside its interval" if sized else ""
        return result("supported", all_p, "every comparison significant, right sign" + tail)
    if verdicts and all(v in ("supported", "larger than claimed") for v in verdicts):
        reason = "significant, but the interval lies above the claimed size: " + "; ".join(
            map(_size_note, larger)
        )
        return result("larger than claimed", all_p, reason)
    missing = [c for c in checks if c.p_value is None]
    reasons = list(dict.fromkeys(c.reason or "not tested" for c in missing))
    reason = "; ".join(reasons) if missing else "not every comparison is significant"
    if larger:
        reason += "; larger than claimed: " + "; ".join(map(_size_note, larger))
    return result("inconclusive", all_p, reason)


PairLookup = Callable[[str, str, str], "Paired | str"]


def _paired_checks(
    claim: Claim, pair: PairLookup, runs: Mapping[str, Run], reported: ReportedScores, alpha: float
) -> list[Check]:
    checks = []
    for part in claim.paired:
        for bench in part.benchmarks:
            what = f"{part.better} > {part.worse} on {bench}"
            rb, rw = reported.get(part.better, Metric(bench)), reported.get(part.worse, Metric(bench))
            rep = round(rb.value - rw.value, 4) if rb and rw else None
            size = part.sizes[bench] if part.sizes is not None else None
            used = [runs[m] for m in (part.better, part.worse) if m in runs]
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
                    _verdict(found.difference, found.p_value, alpha, size, interval),
                    found.difference,
                    interval,
                    rep,
                    found.p_value,
                    found.test,
                    found.n,
                    claimed_size=size,
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
        files = [str(run.path) for run in used]
        res = stats.spearman_permutation(
            [x for x, _ in points], [y for _, y in points], resamples=resamples, seed=seed
        )
        if not (math.isfinite(res.rho) and math.isfinite(res.p_value)):
            reason = f"{bench} scores do not vary"
            checks.append(Check(what, "inconclusive", n=len(points), reason=reason + ignored, files=files))
            continue
        note = f"{res.method}; {len(points)} runs at {distinct} ratios"
        if res.smallest_p >= alpha:
            note += (
                f"; with these {len(points)} points no ordering reaches p < {alpha} (the smallest "
                f"possible p is {res.smallest_p:.4g}): add grid points"
            )
        checks.append(
            Check(
                what,
                _verdict(sign * res.rho, res.p_value, alpha),
                res.rho,
                None,
                None,
                res.p_value,
                "Spearman",
                len(points),
                note + ignored,
                files=files,
            )
        )
    return checks


def _caveat(claim: Claim) -> str | None:
    if not claim.confounds:
        return None
    return "rests on one run per setting; " + "; ".join(claim.confounds)


def evaluate(
    claims: Sequence[Claim],
    pair: PairLookup,
    *,
    runs: Mapping[str, Run],
    ablation: Sequence[Run],
    reported: ReportedScores,
    alpha: float,
    seed: int = 0,
    resamples: int = stats.RESAMPLES,
) -> list[ClaimResult]:
    """Every claim judged on the loaded results.

    `pair(a, b, benchmark)` gives the paired comparison of two models (analysis.PairCache.get)
    and `runs` maps each label to the run it compares (PairCache.runs): their paths are
    recorded, and a partial one (Run.partial) is never passed to `pair`. `ablation`: the
    ablation-grid runs. `seed` and `resamples` set the Monte Carlo of trend tests with more
    than stats.EXACT_PERMUTATION_MAX_N points.
    """
    out = []
    for claim in claims:
        if claim.paired:
            checks = _paired_checks(claim, pair, runs, reported, alpha)
        else:
            checks = _trend_checks(claim, ablation, alpha, seed, resamples)
        result = _combine(claim, checks)
        result.caveat = _caveat(claim)
        out.append(result)
    return out
