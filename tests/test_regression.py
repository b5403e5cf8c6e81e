"""Reproduced results against the paper's reported scores.

`pytest -m regression` checks every results file under SMOLTULU_RESULTS (default ./results):
one test per (model, metric) the paper reports, failing on the verdict "not reproduced"
(evalsuite.report.verdicts: the gap beyond the benchmark's stated tolerance, widened by the spread of a
retrained recipe's training seeds). The unmarked tests below run the same check on simulated
results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REGRESSION_CASES

from evalsuite.report import regression, reported, simulate, verdicts

LM = ("arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa")


def _plan() -> list[regression.Case]:
    missing = regression.named_folder_missing()
    if missing:
        return [regression.Case("results", error=missing)]
    try:
        return regression.plan([regression.results_dir()])
    except Exception as exc:  # a broken results folder must fail a test, not the collection
        return [regression.Case("results", error=f"{type(exc).__name__}: {exc}")]


CASES = _plan()  # cheap: results.json only; the statistics run once, in the fixture below
NO_RESULTS = (
    f"no results under {regression.results_dir().resolve()}: put `python -m evalsuite run` output "
    f"there (one folder per model) or set {regression.ENV}=/path/to/results"
)


@pytest.fixture(scope="module")
def evaluated(request: pytest.FixtureRequest) -> list[regression.Case]:
    regression.evaluate(CASES)
    request.config.stash[REGRESSION_CASES] = CASES  # conftest prints regression.summary at the end
    return CASES


@pytest.mark.regression
@pytest.mark.parametrize("index", range(len(CASES)) or [None], ids=[c.id for c in CASES] or ["no-results"])
def test_matches_the_paper(index: int | None, evaluated: list[regression.Case]) -> None:
    if index is None:
        pytest.skip(NO_RESULTS)
    case = evaluated[index]
    if case.error:
        pytest.fail(case.error, pytrace=False)
    if case.skip:
        pytest.skip(case.skip)
    if case.failed:
        pytest.fail(case.explain(), pytrace=False)


@pytest.mark.regression
def test_the_gate_judged_something(evaluated: list[regression.Case]) -> None:
    """A folder named in SMOLTULU_RESULTS with nothing judged fails; so, in strict mode
    (SMOLTULU_STRICT=1), does a run whose every judged case is inconclusive."""
    why = regression.gate(evaluated, named_folder=regression.named(), strict_mode=regression.strict())
    if why:
        pytest.fail(why, pytrace=False)
    if not any(c.stat and c.stat.verdict for c in evaluated):
        pytest.skip(f"nothing judged under {regression.judged_folder()}")
    if all(c.inconclusive for c in evaluated if c.stat and c.stat.verdict):
        pytest.skip(f"every judged case is inconclusive ({regression.STRICT_ENV}=1 makes this a failure)")


# --------------------------------------------------------------------------- the check itself


def _reported_row(model: str) -> dict[str, float]:
    scores = reported.load()
    return {b: scores.get(model, reported.Metric(b)).value for b in LM}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def dpo_1130_row() -> dict[str, float]:
    return _reported_row("dpo-1130")


def _check(tmp_path: Path, shift: float, row: dict[str, float], **kw) -> list[regression.Case]:
    targets = {b: v + shift for b, v in row.items()}
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", targets, seed=7, **kw)
    return regression.collect([tmp_path], include_simulated=True)


def test_five_points_below_fails_every_benchmark(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    cases = _check(tmp_path, -5.0, dpo_1130_row)
    assert sorted(c.stat.metric for c in cases if c.stat) == sorted(LM)
    failed = {c.stat.metric for c in cases if c.failed and c.stat}
    assert failed == set(LM), [c.explain() for c in cases]


def test_within_each_tolerance_passes(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    # below by most of each benchmark's own tolerance (some are measured, under half a point)
    tolerances = verdicts.load()
    targets = {b: v - 0.8 * tolerances[b].points for b, v in dpo_1130_row.items()}
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", targets, seed=7)
    cases = regression.collect([tmp_path], include_simulated=True)
    assert len(cases) == len(LM)
    assert not any(c.failed for c in cases), [c.explain() for c in cases]
    assert all(c.stat and c.stat.difference is not None and c.stat.difference < 0 for c in cases)


def test_five_points_below_on_one_benchmark_alone_fails(
    tmp_path: Path, dpo_1130_row: dict[str, float]
) -> None:
    row = {"ifeval": dpo_1130_row["ifeval"]}
    (case,) = _check(tmp_path, -5.0, row)
    assert case.failed and case.stat and case.stat.verdict == "not reproduced", case.explain()


def test_the_papers_gsm8k_gain_gone_fails(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    """DPO-1130 at -3.4 GSM8K and -4.0 IFEval (its +3.4 GSM8K gain over SmolLM2 gone) must fail."""
    shifts = {"gsm8k": -3.4, "ifeval": -4.0}
    targets = {b: v + shifts.get(b, 0.0) for b, v in dpo_1130_row.items()}
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", targets, seed=7)
    cases = regression.collect([tmp_path], include_simulated=True)
    failed = {c.stat.metric for c in cases if c.failed and c.stat}
    assert failed == {"gsm8k", "ifeval"}, [c.explain() for c in cases]


def test_at_the_reported_values_every_case_passes(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    cases = _check(tmp_path, 0.0, dpo_1130_row)
    assert [c.stat.verdict for c in cases if c.stat] == ["reproduced"] * len(LM), [c.explain() for c in cases]


def _retrained(tmp_path: Path, row: dict[str, float], offsets: list[float]) -> list[regression.Case]:
    """Simulated retrained runs of dpo-1130, one per training seed, each `offset` off the paper."""
    for i, offset in enumerate(offsets):
        targets = {b: v + offset for b, v in row.items()}
        simulate.write_results(
            tmp_path / f"dpo-1130-seed{i}", "dpo-1130", targets, seed=i, settings={"training_seed": i}
        )
    return regression.collect([tmp_path], include_simulated=True)


def test_one_training_seed_beyond_the_tolerance_is_inconclusive(tmp_path: Path) -> None:
    (case,) = _retrained(tmp_path, {"gsm8k": 51.6}, [-3.4])
    assert not case.failed and case.inconclusive and "seed variance unknown" in case.explain()


def test_seed_spread_widens_the_band_but_never_to_a_reproduction(tmp_path: Path) -> None:
    # three seeds spread over 6 points: a mean 3 points off is within the seeds' own noise, but a
    # ±16-point band cannot tell a reproduction from a miss: inconclusive, never "reproduced"
    (case,) = _retrained(tmp_path, {"gsm8k": 51.6}, [-6.0, -3.0, 0.0])
    assert case.stat and case.stat.seeds == 3 and case.stat.verdict == "inconclusive", case.explain()
    assert "seed spread too large" in case.explain() and not case.failed
    assert case.stat.band and case.stat.band["low"] < 51.6 - 3.0 - 1.5


def test_tight_seeds_far_from_the_paper_fail(tmp_path: Path) -> None:
    (case,) = _retrained(tmp_path, {"gsm8k": 51.6}, [-5.0, -5.1, -4.9])
    assert case.failed and case.stat and case.stat.seeds == 3, case.explain()


def test_every_benchmark_has_a_stated_tolerance() -> None:
    tolerances = verdicts.load()
    assert all(t.reason and t.source for t in tolerances.values())


def test_a_missing_named_results_folder_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(regression.ENV, str(tmp_path / "typo"))
    assert "names no folder" in (regression.named_folder_missing() or "")
    monkeypatch.setenv(regression.ENV, str(tmp_path))
    assert regression.named_folder_missing() is None


def test_summary_counts_real_results(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    cases = _check(tmp_path, 0.0, dpo_1130_row)
    assert "0 real" in regression.summary(cases)  # simulated results are not real evidence
    for c in cases:
        c.real = True
    assert "1 real (non-simulated, full) results checked, 7 scores: 7 reproduced" in regression.summary(cases)


@pytest.mark.parametrize(
    ("label", "kw", "reason"),
    [
        ("dpo-1130", {"limit": 200}, "--limit 200 run"),
        ("dpo-1130", {"settings": {"sample": 30}}, "--sample 30 run"),
        ("my-model", {}, "unknown model 'my-model'"),
        ("rlvr-1130", {}, "only on its model card"),
    ],
)
def test_ineligible_results_are_skipped_with_the_reason(
    tmp_path: Path, label: str, kw: dict, reason: str
) -> None:
    simulate.write_results(tmp_path / label, label, {"gsm8k": 50.0}, seed=1, **kw)
    (case,) = regression.collect([tmp_path], include_simulated=True)
    assert case.skip and reason in case.skip and not case.failed


def test_simulated_results_are_skipped_by_default(tmp_path: Path) -> None:
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", {"gsm8k": 51.6}, seed=1)
    (case,) = regression.collect([tmp_path])
    assert case.skip and "simulated" in case.skip


def test_no_results_means_no_cases(tmp_path: Path) -> None:
    assert regression.collect([tmp_path]) == []
    assert regression.collect([tmp_path / "absent"]) == []


def test_a_broken_results_file_is_a_failing_case(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text("{not json")
    (case,) = regression.collect([tmp_path])
    assert case.failed and case.error and "not valid JSON" in case.error


def test_truncated_data_is_partial(tmp_path: Path) -> None:
    """Fewer items than the full set (no --limit recorded) is partial and never judged."""
    folder = simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", {"gsm8k": 51.6}, seed=1).folder
    items = folder / "items" / "gsm8k.jsonl"
    lines = items.read_text().splitlines()[:1000]
    items.write_text("\n".join(lines) + "\n")
    res = json.loads((folder / "results.json").read_text())
    res["benchmarks"]["gsm8k"]["n"] = 1000
    res["benchmarks"]["gsm8k"]["score"] = 100.0 * sum(json.loads(x)["score"] for x in lines) / 1000
    (folder / "results.json").write_text(json.dumps(res))
    (case,) = regression.collect([tmp_path], include_simulated=True)
    assert case.skip and "gsm8k 1000 of 1319" in case.skip and not case.failed
