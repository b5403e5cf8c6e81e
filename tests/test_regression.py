"""Reproduced results against the paper's reported scores.

`pytest -m regression` checks every results file under SMOLTULU_RESULTS (default ./results):
one test per (model, metric) the paper reports, failing only on a significant difference
(Holm over the metrics of each results file). The unmarked tests below run the same check
on simulated results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite import regression, reported, simulate

LM = ("arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa")


def _plan() -> list[regression.Case]:
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
def evaluated() -> list[regression.Case]:
    regression.evaluate(CASES)
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
        pytest.fail("significant difference: " + case.explain(), pytrace=False)


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


def test_half_a_point_below_passes(tmp_path: Path, dpo_1130_row: dict[str, float]) -> None:
    cases = _check(tmp_path, -0.5, dpo_1130_row)
    assert len(cases) == len(LM)
    assert not any(c.failed for c in cases), [c.explain() for c in cases]
    assert all(c.stat and c.stat.difference is not None and c.stat.difference < 0 for c in cases)


def test_five_points_below_on_one_benchmark_alone_fails(
    tmp_path: Path, dpo_1130_row: dict[str, float]
) -> None:
    # IFEval is the smallest set (541 prompts): the hardest place to see 5 points
    row = {"ifeval": dpo_1130_row["ifeval"]}
    (case,) = _check(tmp_path, -5.0, row)
    assert case.failed and case.stat and case.stat.p_holm is not None and case.stat.p_holm < 0.05


@pytest.mark.parametrize(
    ("label", "kw", "reason"),
    [
        ("dpo-1130", {"limit": 200}, "--limit 200 run"),
        ("my-model", {}, "unknown model 'my-model'"),
        ("reinforced", {}, "only on its model card"),
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
