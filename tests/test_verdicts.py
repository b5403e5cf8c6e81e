"""Verdicts a hostile user cannot fool: weak evidence is never "reproduced" or "supported".

Each case writes simulated results folders (evalsuite.report.simulate) and, where a hostile user
would, removes the markers that say what they are (`simulated`, `limit`), so only the checks on
the evidence itself can catch them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from core.errors import UsageError
from evalsuite import results as results_fmt
from evalsuite.report import (
    analysis,
    claim_verdicts,
    claims,
    regression,
    reported,
    result_set,
    simulate,
    verdicts,
)

RESAMPLES = 500
GSM8K = 51.6  # DPO-1130's reported GSM8K (paper Table 6)


@pytest.fixture(scope="module")
def scores() -> reported.ReportedScores:
    return reported.load()


@pytest.fixture(scope="module")
def claim_list(scores: reported.ReportedScores) -> list[claims.Claim]:
    return claims.load(scores)


def _edit(folder: Path, change: Any) -> None:
    path = folder / results_fmt.RESULTS_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _unmark(folder: Path) -> None:
    """What a hostile user does: drop the simulated and --limit markers."""

    def drop(data: dict) -> None:
        for key in ("simulated", "seed", "note"):
            data["settings"].pop(key, None)
        data["limit"] = None

    _edit(folder, drop)


def _seed(root: Path, label: str, seed: int, targets: dict[str, float], **kw: Any) -> Path:
    settings = {"training_seed": seed, **kw.pop("settings", {})}
    return simulate.write_results(
        root / f"{label}-seed{seed}", label, targets, seed=seed, settings=settings, **kw
    ).folder


def _report(root: Path, scores, claim_list) -> analysis.Report:
    runs = result_set.load_runs(
        results_fmt.discover([root]), scores, ablation_keys=claims.ablation_keys(claim_list)
    )
    return analysis.analyse(runs, scores, claim_list, analysis.Settings(resamples=RESAMPLES))


def _stat(report: analysis.Report, model: str, metric: str = "gsm8k") -> analysis.ScoreStat:
    found = report.score(
        model, reported.Metric(*metric.split(".", 1)) if "." in metric else reported.Metric(metric)
    )
    assert found is not None
    return found


# --------------------------------------------------------------------------- 1. every seed checked


def test_a_full_seed_with_two_short_seeds_is_refused(tmp_path: Path, scores, claim_list) -> None:
    # one full seed 5 points low and two 30-item seeds, the --limit marker removed: on the old code
    # only the lowest seed was checked, and the band came out ±184.7, "reproduced"
    _seed(tmp_path, "dpo-1130", 0, {"gsm8k": GSM8K - 5})
    for seed in (1, 2):
        _unmark(_seed(tmp_path, "dpo-1130", seed, {"gsm8k": GSM8K}, limit=30))
    stat = _stat(_report(tmp_path, scores, claim_list), "dpo-1130")
    assert stat.verdict is None and stat.note and "training seed 1" in stat.note and "30 of 1319" in stat.note
    cases = regression.collect([tmp_path], include_simulated=True)
    assert all(c.stat is None or c.stat.verdict is None for c in cases)
    assert regression.gate(cases, named_folder=True, strict_mode=False)


def test_a_real_seed_pooled_with_a_simulated_one_is_refused(tmp_path: Path, scores, claim_list) -> None:
    _unmark(_seed(tmp_path, "dpo-1130", 0, {"gsm8k": GSM8K - 5}))
    _seed(tmp_path, "dpo-1130", 1, {"gsm8k": GSM8K + 60})
    stat = _stat(_report(tmp_path, scores, claim_list), "dpo-1130")
    assert stat.verdict is None and "simulated and real results are never pooled" in (stat.note or "")
    (case,) = regression.collect([tmp_path], include_simulated=True)
    assert case.skip and "never pooled" in case.skip and not case.real


def test_seeds_of_different_model_kinds_are_refused(tmp_path: Path, scores, claim_list) -> None:
    _seed(tmp_path, "my-recipe", 0, {"gsm8k": 40.0})
    _seed(tmp_path, "my-recipe", 1, {"ufb": 70.0})  # a reward model under the same label
    runs = result_set.load_runs(results_fmt.discover([tmp_path]), scores)
    (group,) = result_set.seed_groups(runs).values()
    assert "different model kinds" in (result_set.group_problem(group) or "")


def test_a_seed_without_a_benchmark_is_named_not_a_key_error(tmp_path: Path, scores, claim_list) -> None:
    _seed(tmp_path, "rm-1130", 0, {"rewardbench": 72.4, "ufb": 73.2})
    _seed(tmp_path, "rm-1130", 1, {"ufb": 73.0})
    report = _report(tmp_path, scores, claim_list)
    chat = _stat(report, "rm-1130", "rewardbench.chat")
    assert (
        chat.verdict is None
        and "training seed 1" in (chat.note or "")
        and "no rewardbench" in (chat.note or "")
    )
    assert _stat(report, "rm-1130", "ufb").seeds == 2


# --------------------------------------------------------------------------- 2. wide bands


@pytest.mark.parametrize(
    ("offsets", "widest"),
    [([-13.0, -10.0, -7.0], 16.0), ([-13.0, -7.0], 45.0)],  # sd 3 over 3 seeds; 6 points over 2 seeds
)
def test_a_wide_band_is_never_a_reproduction(tmp_path: Path, offsets: list[float], widest: float) -> None:
    for seed, offset in enumerate(offsets):
        _seed(tmp_path, "dpo-1130", seed, {"gsm8k": GSM8K + offset})
    (case,) = regression.collect([tmp_path], include_simulated=True)
    stat = case.stat
    assert stat is not None and stat.verdict == "inconclusive", case.explain()
    assert stat.half_width is not None and stat.half_width > widest
    assert f"k {len(offsets)}" in (stat.verdict_reason or "") and "seed spread too large" in case.explain()


def test_bands_are_clipped_to_the_scale() -> None:
    rep = reported.Reported(value=95.0, text="95.0", source="t")
    tol = verdicts.Tolerance(0.5, "assumption", "x", 1.7)
    j = verdicts.judge(rep, tol, value=94.0, seeds=[93.5, 94.5])  # half-width 8.0 beyond 100
    assert j.half_width is not None and 95.0 + j.half_width > 100.0
    assert j.band == (pytest.approx(95.0 - j.half_width), 100.0) and j.verdict == "inconclusive"
    wide = verdicts.judge(rep, tol, value=80.0, seeds=[70.0, 90.0])
    assert wide.band == (0.0, 100.0)


def test_max_band_is_stated_and_wider_than_every_tolerance() -> None:
    tolerances = verdicts.load()
    assert all(t.points < t.max_half_width < math.inf for t in tolerances.values())


# --------------------------------------------------------------------------- 3. distinct models only


def test_one_run_copied_as_three_seeds_is_refused(tmp_path: Path, scores) -> None:
    folder = _seed(tmp_path, "dpo-1130", 0, {"gsm8k": GSM8K})
    for seed in (1, 2):
        copy = tmp_path / f"copy{seed}"
        copy.mkdir()
        for f in folder.rglob("*"):
            if f.is_file():
                target = copy / f.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f.read_bytes())
        _edit(copy, lambda d, s=seed: d["settings"].update(training_seed=s))
    with pytest.raises(UsageError, match="same model"):
        result_set.load_runs(results_fmt.discover([tmp_path]), scores)
    (case,) = regression.collect([tmp_path], include_simulated=True)
    assert case.error and "same model" in case.error and case.failed


def _grid_point(
    root: Path, i: int, lr: float, bs: int, score: float, ablation: str = "ablation-135m"
) -> Path:
    settings = {"learning_rate": lr, "batch_size": bs, "ablation": ablation}
    return simulate.write_results(
        root / f"{ablation}-{i}", f"{ablation}-{i}", {"gsm8k": score}, seed=i, settings=settings
    ).folder


def test_a_grid_point_copied_into_a_second_folder_is_refused(tmp_path: Path, scores, claim_list) -> None:
    for i, (lr, bs) in enumerate([(1e-6, 64), (1e-5, 64), (1e-5, 8), (9e-5, 8)]):
        folder = _grid_point(tmp_path, i, lr, bs, 30.0 + 2 * i)
        copy = tmp_path / f"copy-{i}"
        copy.mkdir()
        for f in folder.rglob("*"):
            if f.is_file():
                (copy / f.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
                (copy / f.relative_to(folder)).write_bytes(f.read_bytes())
    with pytest.raises(UsageError, match=r"same model.*grid points"):
        _report(tmp_path, scores, claim_list)


def test_a_trend_claim_reads_only_the_grid_it_names(tmp_path: Path, scores, claim_list) -> None:
    grid = [(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 8)]
    for i, (lr, bs) in enumerate(grid):
        _grid_point(tmp_path, i, lr, bs, 30.0 + 2 * i)
        _grid_point(tmp_path, 10 + i, lr * 1.5, bs, 40.0 + 2 * i, ablation="other-grid")
    claim6 = next(c for c in _report(tmp_path, scores, claim_list).claims if c.id == 6)
    check = next(c for c in claim6.checks if c.what.startswith("gsm8k"))
    assert check.n == 4 and check.verdict == "inconclusive"  # 4 points: p >= 1/12, never 5e-5
    assert "4 points of grid 'other-grid' left out" in (check.reason or "")


def test_grid_points_with_nan_settings_are_left_out(tmp_path: Path, scores, claim_list) -> None:
    for i, (lr, bs) in enumerate([(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 8), (9e-5, 8)]):
        _grid_point(tmp_path, i, lr, bs, 30.0 + 2 * i)
    _edit(tmp_path / "ablation-135m-4", lambda d: d["settings"].update(learning_rate=float("nan")))
    claim6 = next(c for c in _report(tmp_path, scores, claim_list).claims if c.id == 6)
    check = next(c for c in claim6.checks if c.what.startswith("gsm8k"))
    assert check.n == 4 and "1 points left out: learning rate or batch size not a finite" in (
        check.reason or ""
    )


# --------------------------------------------------------------------------- 4. every seed compared


def test_claim_1_uses_every_seed(tmp_path: Path, scores, claim_list) -> None:
    # seed 0 of DPO-1130 far above DPO-1207's seed 0, but the seed means favour DPO-1207: the old
    # code compared the lowest seeds alone and called claim 1 supported at p = 1e-4
    for seed, value in enumerate((60.0, 38.0, 39.0)):
        _seed(tmp_path, "dpo-1130", seed, {"gsm8k": value, "ifeval": 67.7})
    for seed, value in enumerate((45.0, 46.0, 44.0)):
        _seed(tmp_path, "dpo-1207", seed + 10, {"gsm8k": value, "ifeval": 56.6})
    report = _report(tmp_path, scores, claim_list)
    claim1 = next(c for c in report.claims if c.id == 1)
    gsm8k = next(c for c in claim1.checks if c.what.endswith("gsm8k"))
    assert gsm8k.test and "two-sample t over training seeds (3 vs 3" in gsm8k.test
    assert gsm8k.verdict == "inconclusive" and claim1.verdict != "supported"
    assert claim1.caveat and "training seeds: dpo-1130 3, dpo-1207 3" in claim1.caveat
    row = next(c for c in report.comparisons if c.benchmark == "gsm8k")
    assert row.test == gsm8k.test  # the table and the claim use the same comparison


def test_seeds_against_a_published_checkpoint(tmp_path: Path, scores) -> None:
    for seed, value in enumerate((52.0, 52.5, 51.5)):
        _seed(tmp_path, "dpo-1130", seed, {"gsm8k": value})
    simulate.write_results(tmp_path / "smollm2", "smollm2-1.7b-instruct", {"gsm8k": 48.2}, seed=9)
    runs = result_set.load_runs(results_fmt.discover([tmp_path]), scores)
    groups = result_set.seed_groups(runs)
    found = analysis.seed_comparison(groups["dpo-1130"], groups["smollm2-1.7b-instruct"], "gsm8k")
    assert not isinstance(found, str) and "one-sample t over 3 training seeds" in found.test
    back = analysis.seed_comparison(groups["smollm2-1.7b-instruct"], groups["dpo-1130"], "gsm8k")
    assert not isinstance(back, str)
    assert back.difference == pytest.approx(-found.difference)
    assert (back.interval.low, back.interval.high) == pytest.approx(
        (-found.interval.high, -found.interval.low)
    )


# --------------------------------------------------------------------------- 7. the gate


def test_a_named_empty_folder_fails_the_gate(tmp_path: Path) -> None:
    cases = regression.collect([tmp_path])
    assert cases == [] and "judged nothing" in (
        regression.gate(cases, named_folder=True, strict_mode=False) or ""
    )
    assert regression.gate(cases, named_folder=False, strict_mode=False) is None


def test_only_simulated_results_fail_a_named_gate(tmp_path: Path) -> None:
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", {"gsm8k": GSM8K}, seed=1)
    cases = regression.collect([tmp_path])
    assert "simulated" in (regression.gate(cases, named_folder=True, strict_mode=False) or "")


def test_strict_mode_fails_when_everything_is_inconclusive(tmp_path: Path) -> None:
    _seed(tmp_path, "dpo-1130", 0, {"gsm8k": GSM8K - 3.4})  # one seed beyond the tolerance
    cases = regression.collect([tmp_path], include_simulated=True)
    assert all(c.inconclusive for c in cases)
    assert regression.gate(cases, named_folder=True, strict_mode=False) is None
    assert "inconclusive" in (regression.gate(cases, named_folder=True, strict_mode=True) or "")
    for case in cases:
        case.real = True  # as if the markers were real model output: the summary lists it
    line = regression.summary(cases)
    assert "1 inconclusive (skipped, not passed: dpo-1130-gsm8k)" in line
    assert str(regression.results_dir().resolve()) in line


def test_summary_says_which_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(regression.ENV, raising=False)
    assert "the default: SMOLTULU_RESULTS is not set" in regression.summary([])
    monkeypatch.setenv(regression.ENV, str(tmp_path))
    assert f"{tmp_path.resolve()} (SMOLTULU_RESULTS)" in regression.summary([])


def test_converted_data_is_partial_and_never_judged(tmp_path: Path) -> None:
    note = "the text conversion of HellaSwag (tagged endings lost their space)"
    settings = {"converted_data": {"hellaswag": note}}
    simulate.write_results(tmp_path / "dpo-1130", "dpo-1130", {"hellaswag": 61.1}, seed=1, settings=settings)
    (case,) = regression.collect([tmp_path], include_simulated=True)
    assert case.skip and "converted data" in case.skip and not case.failed


def test_a_point_with_a_nan_value_is_left_out_of_a_rank_test() -> None:
    points = [(1.0, 10.0), (2.0, 12.0), (3.0, math.nan), (4.0, 15.0), (5.0, 16.0), (6.0, 18.0)]
    check = claim_verdicts.spearman_check(
        "y rises with x", points, 1, 0.05, 1000, 0, files=[], described="points", flat="flat", suffix=""
    )
    assert check.n == 5 and "1 points left out: not a finite number" in (check.reason or "")


def test_reward_pairs_dropped_for_length_are_not_missing_items(tmp_path: Path, scores) -> None:
    folder = simulate.write_results(
        tmp_path / "rm-1130", "rm-1130", {"ufb": 73.2}, seed=1, truncate=1990
    ).folder
    (run,) = result_set.load_runs([folder / results_fmt.RESULTS_FILE], scores)
    assert run.partial and "ufb 1990 of 2000" in run.partial
    _edit(folder, lambda d: d["benchmarks"]["ufb"].update(counts={"over_max_length": 10}))
    (run,) = result_set.load_runs([folder / results_fmt.RESULTS_FILE], scores)
    assert run.partial is None  # the protocol dropped 10 pairs over 2048 tokens and counted them


def test_the_tables_say_where_each_model_came_from(tmp_path: Path, scores, claim_list) -> None:
    for seed in (0, 1):
        _seed(tmp_path, "dpo-1130", seed, {"gsm8k": GSM8K})
    simulate.write_results(tmp_path / "dpo-1207", "dpo-1207", {"gsm8k": 44.7}, seed=5)
    _unmark(tmp_path / "dpo-1207")
    entries = {m.label: m.provenance for m in _report(tmp_path, scores, claim_list).models}
    assert entries == {
        "dpo-1130": "simulated, training seeds 0, 1",
        "dpo-1207": "scored from outputs (simulated:dpo-1207)",  # not taken for the published checkpoint
    }


# --------------------------------------------------------------------------- 6. what was evaluated


def _as_source(folder: Path, source: str) -> None:
    """The results of a real (unmarked) evaluation whose model came from `source`."""
    _unmark(folder)

    def change(data: dict) -> None:
        data["model"].update(source=source, path="/data/my-sft", spec="/data/my-sft")

    _edit(folder, change)


@pytest.mark.parametrize(
    ("source", "verdict"),
    [("external", "not reproduced"), ("local", "inconclusive")],  # outside outputs, a model folder
)
def test_a_local_folder_named_as_a_published_checkpoint_is_not_judged_as_it(
    tmp_path: Path, scores, claim_list, source: str, verdict: str
) -> None:
    """The published checkpoint re-evaluated (resolved through the lock) differs from its reported
    score only by the harness; a folder of the user's own under the same name may be any training
    run, so a miss is inconclusive and the tables say why."""
    folder = simulate.write_results(tmp_path / "sft-1130", "sft-1130", {"gsm8k": 40.0}).folder
    _as_source(folder, source)
    report = _report(tmp_path, scores, claim_list)
    stat = _stat(report, "sft-1130")
    assert stat.verdict == verdict, stat.verdict_reason
    (model,) = [m for m in report.models if m.label == "sft-1130"]
    assert ("never published: judged as one training run" in model.provenance) == (source == "local")
