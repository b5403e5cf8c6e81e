"""The paper's claims (tables/claims.yaml) as data: each claim's kind, models, benchmarks and
size, loaded and checked against the reported scores and the recipes.

Sizes are the differences of the reported scores (evalsuite.report.reported): `size: reported`
takes them as they are; `size: {benchmark: "+11.0"}` quotes the paper's number, and loading
fails unless it equals the reported difference to its printed precision. Claims marked
`about: lr_bs_ratio` compare runs whose recipes (recipes) differ in more than the
ratio; their result carries a `caveat` naming the differences, computed from the recipes.

Judging is claim_checks.evaluate (paired and trend claims, by the rules of claim_verdicts) and
grid_claims (the grid's sharpness, factorial and early-signal claims).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core import recipe as recipes
from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import datafile, verdicts
from evalsuite.report.reported import CLAIMS_FILE, Metric, ReportedScores

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
    # about the ratio, paired: how the compared recipes differ (from recipes), one per pair
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
    """How the recipes of two compared runs differ, from recipes: the claim's confounds."""
    known = recipes.names()
    for name in (a, b):
        if name not in known:
            raise UsageError(
                f"{cw}: about lr_bs_ratio, but {name} has no recipe in recipes "
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
