"""The paper's claims judged on simulated results: exact small-sample trend p-values, claimed
sizes (smaller / larger than claimed), every claim of the paper in both directions, partial
runs kept out, and the recipe caveat of the 1130-vs-1207 claims."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT
from scipy import stats as sps

from core import recipe
from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.report import (
    analysis,
    claim_checks,
    claim_verdicts,
    claims,
    item_stats,
    reported,
    result_set,
    simulate,
    stats,
)

RESAMPLES = 2000


# --------------------------------------------------------------------------- building results


def _write(folder: Path, label: str, benches: dict[str, list[dict[str, Any]]], **settings: Any) -> Path:
    """A simulated results folder holding exactly these item records (as simulate.write_results)."""
    kinds = {registry.get(b).model_kind for b in benches}
    out: dict[str, results_fmt.BenchmarkResult] = {}
    for name, records in benches.items():
        rel = results_fmt.write_items(folder, name, records)
        data = item_stats.from_records(name, records, f"simulated {name}")
        out[name] = results_fmt.BenchmarkResult(
            score=data.headline, n=data.n, metric=registry.get(name).description, items=rel
        )
    res = results_fmt.Results(
        model=results_fmt.ModelInfo(
            spec=f"simulated:{label}", label=label, kind=kinds.pop(), source="external"
        ),
        backend="external",
        benchmarks=out,
        created="simulated",
        settings={"simulated": True, "note": simulate.SIMULATION_NOTE, **settings},
    )
    return results_fmt.save(res, folder)


def _base(bench: str, target: float, seed: int) -> list[dict[str, Any]]:
    return simulate.simulate_items(bench, target, np.random.default_rng(seed))


def _flip(rec: dict[str, Any], bench: str, up: bool) -> None:
    rec["score"] = int(up)
    m = rec["metrics"]
    if bench == "ifeval":
        for v in ("strict", "loose"):
            m[f"prompt_{v}"] = int(up)
            m[f"inst_{v}"] = [int(up)] * len(m[f"inst_{v}"])
    elif "chosen" in m:  # a reward model: the chosen response scores above the rejected one
        m["chosen"], m["rejected"] = sorted((m["chosen"], m["rejected"]), reverse=not up)


def _shift(records: list[dict[str, Any]], bench: str, delta: float, seed: int) -> list[dict[str, Any]]:
    """The same items with some outcomes flipped so the headline moves by about `delta` points.

    Two fine-tunes of one model agree on most items; so do these two records sets, which makes
    a gain of a point or two significant on the paired test, as it would be for real models.
    """
    head = registry.get(bench).headline
    target = head(records) + delta
    up = delta > 0
    key = "prompt_loose" if bench == "ifeval" else None
    order = np.random.default_rng(seed).permutation(len(records))
    flippable = [int(i) for i in order if (records[i]["metrics"][key] if key else records[i]["score"]) != up]

    def flipped(k: int) -> list[dict[str, Any]]:
        out = list(records)
        for i in flippable[:k]:
            out[i] = copy.deepcopy(records[i])
            _flip(out[i], bench, up)
        return out

    lo, hi = 0, len(flippable)  # smallest k whose headline reaches the target
    while lo < hi:
        mid = (lo + hi) // 2
        reached = head(flipped(mid)) >= target if up else head(flipped(mid)) <= target
        lo, hi = (lo, mid) if reached else (mid + 1, hi)
    best = min((k for k in (lo - 1, lo) if k >= 0), key=lambda k: abs(head(flipped(k)) - target))
    return flipped(best)


def _judge(root: Path, claim_list: list[claims.Claim], scores: reported.ReportedScores, calls=None):
    """Claims judged on the results under root, with the inputs analysis.analyse gives them."""
    runs = result_set.load_runs(
        results_fmt.discover([root]), scores, ablation_keys=claims.ablation_keys(claim_list)
    )
    cache = analysis.PairCache(result_set.seed_groups(runs), analysis.Settings(resamples=RESAMPLES))

    def pair(a: str, b: str, bench: str):
        if calls is not None:
            calls.append((a, b, bench))
        return cache.get(a, b, bench)

    results = claim_checks.evaluate(
        claim_list,
        pair,
        runs=cache.groups,
        ablation=[r for r in runs if r.is_ablation],
        reported=scores,
        alpha=0.05,
        resamples=RESAMPLES,
    )
    return {r.id: r for r in results}


def _pair_of_models(
    root: Path, better: str, worse: str, base: dict[str, float], deltas: dict[str, float], **settings: Any
) -> None:
    """`worse` simulated at `base`; `better` = the same items shifted by `deltas` points."""
    records = {b: _base(b, v, seed=i) for i, (b, v) in enumerate(base.items())}
    _write(root / worse, worse, records)
    shifted = {b: _shift(r, b, deltas[b], seed=10 + i) for i, (b, r) in enumerate(records.items())}
    _write(root / better, better, shifted, **settings)


def _reported_gap(scores: reported.ReportedScores, better: str, worse: str, bench: str) -> float:
    rb, rw = scores.get(better, reported.Metric(bench)), scores.get(worse, reported.Metric(bench))
    assert rb is not None and rw is not None
    return rb.value - rw.value


# --------------------------------------------------------------------------- exact trend test


def _hand_p(x: list[float], y: list[float]) -> float:
    """Two-sided permutation p of Spearman's rho by brute force, with scipy's statistic."""
    observed = abs(sps.spearmanr(x, y).statistic)
    rhos = [abs(sps.spearmanr(x, list(p)).statistic) for p in itertools.permutations(y)]
    return sum(r >= observed - 1e-9 for r in rhos) / len(rhos)


def test_four_points_cannot_give_p_below_one_twelfth() -> None:
    # the case that read "supported, p = 0": four points a tenth of a point apart
    x, y = [1.0, 2.0, 3.0, 4.0], [30.0, 30.1, 30.2, 30.3]
    _, asymptotic = stats.spearman(x, y)
    assert asymptotic < 1 / 12  # scipy's asymptotic p: the flaw
    res = stats.spearman_permutation(x, y)
    assert res.rho == pytest.approx(1.0)
    assert res.p_value == pytest.approx(1 / 12, abs=1e-15) and res.smallest_p == pytest.approx(1 / 12)
    assert res.method == "exact permutation (all 24 orderings)"
    rng = np.random.default_rng(0)
    for _ in range(200):  # any four points, ties included
        xs, ys = rng.integers(0, 4, size=4).tolist(), rng.integers(0, 5, size=4).tolist()
        res = stats.spearman_permutation(xs, ys)
        assert math.isnan(res.p_value) or res.p_value >= 1 / 12 - 1e-12


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 3, 4], [30.0, 29.0, 31.5, 32.0]),
        ([1, 1, 2, 3, 5], [3.0, 4.0, 4.0, 1.0, 6.0]),  # repeats at one ratio, tied scores
        ([0.1, 0.5, 0.2, 0.9, 0.7, 0.3], [5, 1, 4, 2, 6, 3]),
    ],
)
def test_exact_p_equals_hand_enumeration(x: list[float], y: list[float]) -> None:
    res = stats.spearman_permutation(x, y)
    assert res.rho == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)  # average ranks, as scipy
    assert res.p_value == pytest.approx(_hand_p(x, y), abs=1e-12)


def test_exact_p_equals_scipy_permutation_test_without_ties() -> None:
    x, y = [0.3, 1.2, 0.7, 2.5, 1.9, 0.1], [41.0, 44.5, 40.2, 47.9, 45.0, 42.2]
    ref = sps.permutation_test(
        (y,), lambda v: sps.spearmanr(x, v).statistic, permutation_type="pairings", n_resamples=10**6
    )  # n_resamples >= 6!: scipy enumerates; 2 * min(tails) = |rho| tail for a symmetric null
    assert stats.spearman_permutation(x, y).p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_monte_carlo_beyond_eight_points_is_seeded_and_close_to_exact() -> None:
    x, y = list(range(9)), [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5]
    exact = stats.spearman_permutation(x, y, exact_max_n=9)
    mc = stats.spearman_permutation(x, y, resamples=20_000, seed=3)
    assert exact.method.startswith("exact") and mc.method.startswith("Monte Carlo")
    assert mc.p_value == stats.spearman_permutation(x, y, resamples=20_000, seed=3).p_value
    assert abs(mc.p_value - exact.p_value) < 0.01
    perfect = stats.spearman_permutation(list(range(12)), list(range(12)), resamples=999)
    assert perfect.p_value == pytest.approx(1 / 1000)  # the +1 correction: never zero


def _grid(root: Path, points: list[tuple[float, int, float]], **kw: Any) -> None:
    for i, (lr, bs, score) in enumerate(points):
        settings = {"learning_rate": lr, "batch_size": bs, "ablation": "ablation-135m"}
        simulate.write_results(
            root / f"p{i}", f"ablation-{i}", {"gsm8k": score}, seed=i, settings=settings, **kw
        )


def _gsm8k_trend(results: dict[int, claims.ClaimResult]) -> claims.Check:
    return next(c for c in results[6].checks if c.what.startswith("gsm8k"))


def test_claim_6_four_points_stay_inconclusive(tmp_path: Path, claim_list, scores) -> None:
    _grid(tmp_path, [(1e-6, 64, 30.0), (1e-5, 64, 32.0), (1e-5, 8, 34.0), (9e-5, 8, 36.0)])
    check = _gsm8k_trend(_judge(tmp_path, claim_list, scores))
    assert check.verdict == "inconclusive" and check.n == 4 and check.test == "Spearman"
    assert check.p_value == pytest.approx(1 / 12) and check.effect == pytest.approx(1.0)
    assert "exact permutation (all 24 orderings)" in (check.reason or "")
    assert "smallest possible p is 0.08333" in (check.reason or "")
    assert len(check.files) == 4 and all(f.endswith("results.json") for f in check.files)


def test_claim_6_repeats_are_points_with_tied_ratios(tmp_path: Path, claim_list, scores) -> None:
    # six runs at five ratios (two at lr 1e-5 / bs 16): 6 points, tied ranks, still exact
    points = [(1e-6, 64, 25.0), (3e-6, 32, 27.0), (1e-5, 16, 29.0), (1e-5, 16, 31.0), (3e-5, 8, 33.0)]
    _grid(tmp_path, [*points, (9e-5, 8, 36.0)])
    check = _gsm8k_trend(_judge(tmp_path, claim_list, scores))
    assert check.n == 6 and "6 runs at 5 ratios" in (check.reason or "")
    realised = [
        json.loads((tmp_path / f"p{i}" / "results.json").read_text())["benchmarks"]["gsm8k"]["score"]
        for i in range(6)
    ]
    ratios = [lr / bs for lr, bs, _ in [*points, (9e-5, 8, 0)]]
    assert check.p_value == pytest.approx(_hand_p(ratios, realised), abs=1e-12)
    assert check.verdict == "supported" and check.p_value < 0.05


@pytest.mark.parametrize(("direction", "verdict"), [(1, "supported"), (-1, "contradicted")])
def test_claim_6_five_points_exact(tmp_path: Path, claim_list, scores, direction: int, verdict: str) -> None:
    grid = [(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 8), (9e-5, 8)]
    _grid(tmp_path, [(lr, bs, 30.0 + direction * 2 * i) for i, (lr, bs) in enumerate(grid)])
    check = _gsm8k_trend(_judge(tmp_path, claim_list, scores))
    assert check.verdict == verdict and check.p_value == pytest.approx(2 / 120)


def test_claim_6_leaves_out_partial_points(tmp_path: Path, claim_list, scores) -> None:
    grid = [(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 8), (9e-5, 8)]
    _grid(tmp_path, [(lr, bs, 30.0 + 2 * i) for i, (lr, bs) in enumerate(grid)])
    simulate.write_results(  # a sixth point, a --limit run: must not count
        tmp_path / "lim", "ablation-lim", {"gsm8k": 10.0}, seed=9, limit=100,
        settings={"learning_rate": 2e-4, "batch_size": 8, "ablation": "ablation-135m"},
    )  # fmt: skip
    check = _gsm8k_trend(_judge(tmp_path, claim_list, scores))
    assert check.n == 5 and check.verdict == "supported"
    assert "1 partial points left out, partial: --limit 100" in (check.reason or "")
    assert not any("lim" in Path(f).parent.name for f in check.files)


# --------------------------------------------------------------------------- loading sizes


def test_the_papers_claims_load_with_their_sizes(claim_list) -> None:
    by_id = {c.id: c for c in claim_list}
    assert sorted(by_id) == [*range(1, 10), *range(11, 16)]  # no claim 10: see claims.yaml
    assert all(c.source and c.quote for c in claim_list)
    grid_claims = [c for c in claim_list if not c.paired]
    assert grid_claims and all(c.ablation == "ablation-135m" for c in grid_claims)
    assert by_id[4].paired[0].sizes == {"ifeval": pytest.approx(11.0), "gsm8k": pytest.approx(3.4)}
    assert by_id[7].paired[0].sizes == {"arc": pytest.approx(5.4)}
    part = by_id[11].paired[0]
    assert (part.better, part.worse, part.sizes) == (
        "llama-3.1-tulu-3-8b-rm",
        "rm-1130",
        {"ufb": pytest.approx(4.17)},
    )
    assert {p.worse for p in by_id[8].paired} == {
        "smollm2-1.7b-instruct",
        "llama-3.2-1b-instruct",
        "qwen2.5-1.5b-instruct",
    }
    assert all(set(p.benchmarks) == {"ifeval", "gsm8k"} for p in by_id[8].paired)
    assert [(p.better, p.worse) for p in by_id[9].paired] == [("dpo-1130", "sft-1130")]
    assert {c.id for c in claim_list if c.about == "lr_bs_ratio"} == {1, 2, 3, 5, 6, 15}
    assert by_id[15].trend is not None and by_id[15].trend.monotonic
    assert by_id[15].trend.expect == {"gsm8k": 1}


PAPER = ROOT.parent / "shared" / "spec" / "paper.md"


def _letters(text: str) -> str:
    """Letters and digits only: the converted PDF's links, LaTeX and spacing aside."""
    text = re.sub(r"\(#page-[^)]*\)", "", text)  # link targets
    text = re.sub(r"\\Delta|Δ", "", text)
    return re.sub(r"[^a-z0-9]+", "", text.lower())


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text (../shared/spec/paper.md) is not there")
def test_every_quote_is_the_papers_sentence(claim_list) -> None:
    paper = _letters(PAPER.read_text())
    for claim in claim_list:
        if "Pareja" in claim.source:
            continue  # a related study's abstract, not this paper
        for part in re.split(r"\[§[0-9.]+\];?", claim.quote):
            if part.strip() and not part.strip().startswith("Table"):
                assert _letters(part) in paper, (claim.id, part)


def test_dpo_over_sft_is_what_section_4_3_says(claim_list, scores) -> None:
    # §4.3: "SmolTulu DPO-1130 ... achieved substantial gains on instruction following and mathematical
    # reasoning tasks, reaching 67.7% on IFEval and 51.6% on GSM8K"; nothing on DPO-1207 vs SFT-1207
    (part,) = next(c for c in claim_list if c.id == 9).paired
    assert (part.better, part.worse, set(part.benchmarks)) == ("dpo-1130", "sft-1130", {"ifeval", "gsm8k"})
    assert all(_reported_gap(scores, "dpo-1130", "sft-1130", b) > 0 for b in part.benchmarks)
    compared = {(p.better, p.worse) for c in claim_list for p in c.paired}
    assert ("dpo-1207", "sft-1207") not in compared


def _claims_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n" + body)
    return path


def _one(
    better: str, worse: str, benches: str, part: str = "", claim: str = "source: abstract, quote: x, "
) -> str:
    """One claim of a claims file, in flow style."""
    return (
        f"  - {{id: 1, {claim}text: x, paired: [{{better: {better}, worse: {worse}, "
        f"benchmarks: [{benches}]{part}}}]}}\n"
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (  # the paper's +3.4 misquoted as +3.5: refused
            _one("dpo-1130", "smollm2-1.7b-instruct", "gsm8k", ", size: {gsm8k: '+3.5'}"),
            "not the reported difference 51.6 - 48.2 = 3.4",
        ),
        (
            _one("dpo-1130", "smollm2-1.7b-instruct", "gsm8k, ifeval", ", size: {gsm8k: '+3.4'}"),
            "one size per benchmark",
        ),
        (
            _one("dpo-1130", "smollm2-1.7b-instruct", "gsm8k", ", size: {gsm8k: 3.4}"),
            "quote the size for gsm8k as printed",
        ),
        (  # the reported scores say the opposite
            _one("dpo-1207", "dpo-1130", "gsm8k"),
            "the reported scores do not say dpo-1207 > dpo-1130 on gsm8k (44.7 vs 51.6)",
        ),
        (
            _one(
                "dpo-1130",
                "smollm2-1.7b-instruct",
                "gsm8k",
                claim="source: x, quote: y, about: lr_bs_ratio, ",
            ),
            "smollm2-1.7b-instruct has no recipe",
        ),
        (_one("dpo-1130", "smollm2-1.7b-instruct", "gsm8k", claim=""), "'source' must say where"),
        (_one("dpo-1130", "smollm2-1.7b-instruct", "gsm8k", claim="source: x, "), "'quote' must give"),
    ],
)
def test_claims_file_is_validated(tmp_path: Path, scores, body: str, needle: str) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)):
        claims.load(scores, _claims_file(tmp_path, body))


def test_size_reported_is_the_difference_of_the_reported_scores(tmp_path: Path, scores) -> None:
    body = _one("dpo-1130", "llama-3.2-1b-instruct", "gsm8k, ifeval", ", size: reported")
    (claim,) = claims.load(scores, _claims_file(tmp_path, body))
    assert claim.paired[0].sizes == {
        "gsm8k": pytest.approx(51.6 - 26.8),
        "ifeval": pytest.approx(67.7 - 53.5),
    }


# --------------------------------------------------------------------------- verdicts with sizes


def _check(verdict: str, size: float | None = 3.0, p: float = 0.001) -> claims.Check:
    return claims.Check("a > b on x", verdict, 2.0, (1.0, 2.5), None, p, "t", 100, claimed_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["supported", "supported"], "supported"),
        (["supported", "smaller than claimed"], "smaller than claimed"),
        (["inconclusive", "smaller than claimed"], "smaller than claimed"),
        (["larger than claimed", "smaller than claimed"], "smaller than claimed"),
        (["supported", "larger than claimed"], "larger than claimed"),
        (["supported", claims.CONSISTENT], claims.CONSISTENT),
        (["larger than claimed", claims.CONSISTENT], claims.CONSISTENT),
        (["smaller than claimed", claims.CONSISTENT], "smaller than claimed"),
        (["inconclusive", claims.CONSISTENT], "inconclusive"),
        (["inconclusive", "larger than claimed"], "inconclusive"),
        (["contradicted", "smaller than claimed"], "contradicted"),
    ],
)
def test_claim_verdict_from_its_checks(verdicts: list[str], expected: str) -> None:
    claim = claims.Claim(99, "x", "test")
    assert claim_verdicts.combine(claim, [_check(v) for v in verdicts]).verdict == expected


@pytest.mark.parametrize(
    ("effect", "p", "interval", "expected"),
    [
        (3.0, 0.01, (2.0, 4.0), "supported"),  # inside 3.4 ± 1.5
        (3.0, 0.01, (1.5, 4.5), claims.CONSISTENT),  # contains 3.4 but wider than 3.4 ± 1.5
        (5.9, 0.03, (0.6, 11.2), claims.CONSISTENT),
        (1.2, 0.01, (0.9, 1.8), "smaller than claimed"),
        (6.0, 0.01, (5.0, 7.0), "larger than claimed"),
        (-3.0, 0.01, (-4.0, -2.0), "contradicted"),
        (1.5, 0.20, (-0.5, 3.5), "inconclusive"),
    ],
)
def test_one_comparison_judged_on_its_size(effect, p, interval, expected) -> None:
    assert claim_verdicts.verdict(effect, p, 0.05, 3.4, interval, 1.5) == expected
    if expected in ("smaller than claimed", "larger than claimed"):
        assert claim_verdicts.verdict(effect, p, 0.05) == "supported"  # without a size: the direction only


# --------------------------------------------------------------------------- each claim, both ways


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        # the reported gains, every changed item in one direction: a narrow interval inside size ± tol
        (1.0, "supported"),
        (None, "smaller than claimed"),
        (3.0, "larger than claimed"),
        (-1.0, "contradicted"),
    ],
)
def test_claim_4_judged_on_its_sizes(tmp_path: Path, claim_list, scores, scale, expected: str) -> None:
    base = {"ifeval": 56.7, "gsm8k": 48.2}
    claimed = {"ifeval": 11.0, "gsm8k": 3.4}
    # None: the gains of the magnitude test, +1.7 on IFEval and +1.5 on GSM8K, significant but small
    deltas = {"ifeval": 1.7, "gsm8k": 1.5} if scale is None else {b: scale * v for b, v in claimed.items()}
    _pair_of_models(tmp_path, "dpo-1130", "smollm2-1.7b-instruct", base, deltas)
    result = _judge(tmp_path, claim_list, scores)[4]
    assert result.verdict == expected, result.reason
    checks = {c.what.split()[-1]: c for c in result.checks}
    assert {b: c.claimed_size for b, c in checks.items()} == {b: pytest.approx(v) for b, v in claimed.items()}
    assert {b: c.n for b, c in checks.items()} == {"ifeval": 541, "gsm8k": 1319}
    if scale is None:
        assert all(c.p_value is not None and c.p_value < 0.05 for c in checks.values())
        assert all(c.interval is not None and c.interval[1] < c.claimed_size for c in checks.values())
        assert "below the claimed size" in result.reason


@pytest.mark.parametrize(
    ("scale", "expected"), [(1.0, claims.CONSISTENT), (0.25, "smaller than claimed"), (-1.0, "contradicted")]
)
def test_claim_7_alternate_version_on_arc(tmp_path: Path, claim_list, scores, scale, expected: str) -> None:
    gap = _reported_gap(scores, "dpo-1207", "smollm2-1.7b-instruct", "arc")
    _pair_of_models(tmp_path, "dpo-1207", "smollm2-1.7b-instruct", {"arc": 51.7}, {"arc": scale * gap})
    result = _judge(tmp_path, claim_list, scores)[7]
    assert result.verdict == expected, result.reason
    assert result.checks[0].claimed_size == pytest.approx(5.4)


@pytest.mark.parametrize(("qwen_gsm8k", "expected"), [(None, "supported"), (4.0, "contradicted")])
def test_claim_8_state_of_the_art_against_every_baseline(
    tmp_path: Path, claim_list, scores, qwen_gsm8k, expected: str
) -> None:
    records = {b: _base(b, v, seed=i) for i, (b, v) in enumerate({"ifeval": 67.7, "gsm8k": 51.6}.items())}
    _write(tmp_path / "dpo-1130", "dpo-1130", records)
    for j, base in enumerate(("smollm2-1.7b-instruct", "llama-3.2-1b-instruct", "qwen2.5-1.5b-instruct")):
        deltas = {b: -_reported_gap(scores, "dpo-1130", base, b) for b in records}
        if base.startswith("qwen") and qwen_gsm8k is not None:
            deltas["gsm8k"] = qwen_gsm8k  # Qwen above DPO-1130 on GSM8K
        _write(tmp_path / base, base, {b: _shift(r, b, deltas[b], seed=20 + j) for b, r in records.items()})
    result = _judge(tmp_path, claim_list, scores)[8]
    assert result.verdict == expected, result.reason
    assert len(result.checks) == 6 and result.caveat is None
    if expected == "contradicted":
        assert result.reason == "significant the other way: dpo-1130 > qwen2.5-1.5b-instruct on gsm8k"
    else:
        assert result.p_value is not None and result.p_value < 0.05


@pytest.mark.parametrize(("sign", "expected"), [(1.0, "supported"), (-1.0, "contradicted")])
def test_claim_9_dpo_improves_sft_1130(
    tmp_path: Path, claim_list, scores, sign: float, expected: str
) -> None:
    benches = ("arc", "gsm8k", "ifeval")
    base = {b: scores.get("sft-1130", reported.Metric(b)).value for b in benches}  # type: ignore[union-attr]
    deltas = {b: sign * _reported_gap(scores, "dpo-1130", "sft-1130", b) for b in benches}
    _pair_of_models(tmp_path, "dpo-1130", "sft-1130", base, deltas)
    result = _judge(tmp_path, claim_list, scores)[9]
    assert result.verdict == expected, result.reason
    assert all(c.claimed_size is None for c in result.checks)


@pytest.mark.parametrize(
    ("scale", "expected"), [(1.0, "supported"), (0.25, "smaller than claimed"), (-1.0, "contradicted")]
)
def test_claim_11_rm_short_of_tulu_3_rm_on_ufb(
    tmp_path: Path, claim_list, scores, scale, expected: str
) -> None:
    _pair_of_models(tmp_path, "llama-3.1-tulu-3-8b-rm", "rm-1130", {"ufb": 73.17}, {"ufb": scale * 4.17})
    result = _judge(tmp_path, claim_list, scores)[11]
    assert result.verdict == expected, result.reason
    assert result.checks[0].claimed_size == pytest.approx(4.17) and result.checks[0].n == 2000


# --------------------------------------------------------------------------- partial runs, records


@pytest.mark.parametrize(("settings", "needle"), [({"sample": 30}, "--sample 30 run"), ({}, None)])
def test_partial_runs_never_decide_a_claim(tmp_path: Path, claim_list, scores, settings, needle) -> None:
    # the same items as a full run, with gains the paired test would call significant
    deltas = {"ifeval": 11.0, "gsm8k": 3.4}
    _pair_of_models(
        tmp_path, "dpo-1130", "smollm2-1.7b-instruct", {"ifeval": 56.7, "gsm8k": 48.2}, deltas, **settings
    )
    calls: list[tuple[str, str, str]] = []
    result = _judge(tmp_path, claim_list, scores, calls)[4]
    if needle is None:  # the control: the same results, full, decide the claim
        assert result.verdict == "supported" and len(result.files) == 2
        return
    assert result.verdict == "inconclusive" and result.p_value is None
    assert all(
        c.verdict == "inconclusive" and c.reason and c.reason.startswith("partial: dpo-1130")
        for c in result.checks
    )
    assert needle in result.reason and str(tmp_path / "dpo-1130" / "results.json") in result.reason
    assert not any("dpo-1130" in call for call in calls)  # never handed to the paired test
    assert result.files == [] and all(c.n is None for c in result.checks)


def test_a_limit_run_is_partial(tmp_path: Path, claim_list, scores) -> None:
    simulate.write_results(tmp_path / "a", "rm-1130", {"ufb": 73.17}, seed=1, limit=500)
    simulate.write_results(tmp_path / "b", "llama-3.1-tulu-3-8b-rm", {"ufb": 77.34}, seed=2, limit=500)
    result = _judge(tmp_path, claim_list, scores)[11]
    assert result.verdict == "inconclusive" and "partial: llama-3.1-tulu-3-8b-rm" in result.reason
    assert "--limit 500" in result.reason


def test_statistics_name_the_files_and_items_used(tmp_path: Path, claim_list, scores) -> None:
    _pair_of_models(tmp_path, "dpo-1130", "smollm2-1.7b-instruct", {"ifeval": 56.7, "gsm8k": 48.2},
                    {"ifeval": 11.0, "gsm8k": 3.4})  # fmt: skip
    result = _judge(tmp_path, claim_list, scores)[4]
    files = [str(tmp_path / m / "results.json") for m in ("dpo-1130", "smollm2-1.7b-instruct")]
    assert result.files == files and all(c.files == files for c in result.checks)
    as_json = json.loads(json.dumps(dataclasses.asdict(result)))  # as analysis.Report writes it
    assert as_json["files"] == files and [c["n"] for c in as_json["checks"]] == [541, 1319]
    assert as_json["checks"][0]["claimed_size"] == pytest.approx(11.0) and as_json["source"].startswith(
        "abstract"
    )


# --------------------------------------------------------------------------- the ratio caveat


def test_ratio_claims_carry_the_recipe_differences(claim_list, scores) -> None:
    results = {
        r.id: r
        for r in claim_checks.evaluate(
            claim_list, lambda a, b, c: "no results", runs={}, ablation=[], reported=scores, alpha=0.05
        )
    }
    dpo = [recipe.load(n) for n in ("dpo-1130", "dpo-1207")]
    caveat = results[1].caveat or ""
    assert caveat.startswith("rests on one run per setting")
    assert f"learning rate ({dpo[0].hp('learning_rate'):g} vs {dpo[1].hp('learning_rate'):g})" in caveat
    assert (
        f"effective batch size ({dpo[0].hp('effective_batch_size')} vs {dpo[1].hp('effective_batch_size')})"
        in caveat
    )
    assert f"starting checkpoint ({dpo[0].inputs['model'].value} vs {dpo[1].inputs['model'].value})" in caveat
    assert "not only in their LR/BS ratio" in caveat
    sft = results[3].caveat or ""  # the SFT runs start from the same base model
    assert "learning rate" in sft and "starting checkpoint" not in sft
    assert "assumed by the rm-1207 recipe" in (results[5].caveat or "")
    assert results[4].caveat is None and results[6].caveat is None
