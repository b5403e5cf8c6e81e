"""`python -m repro ablation-135m`: grid syntax, point recipes, Figure 1 from results, the smoke grid."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import ROOT, CliResult, kill_after_first_checkpoint, run_module

from core import recipe
from core.errors import UsageError
from evalsuite import results as results_io
from repro.grid import ablation, figure1
from repro.training import trl_args

BENCHES = ["arc", "gsm8k", "hellaswag", "ifeval"]
# The end-to-end grid evaluates the two log-likelihood benchmarks: the tiny model never stops
# generating, so one GSM8K item costs ~13 s and one IFEval item 15-60 s per point on this CPU. The
# hand-off of all four is tested with a fake evaluate() and their maps from written results.
E2E_FLAGS = ("--profile", "smoke", "--limit", "1", "--benchmarks", "arc,hellaswag")
E2E_BENCHES = ["arc", "hellaswag"]
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(outputs: Path, *args: str):
    return run_module("repro", "ablation-135m", *args, env={**ENV, "SMOLTULU_OUTPUTS": str(outputs)})


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The same command in this process (no interpreter start-up); one subprocess test keeps the contract."""
    from repro.cli import main

    def call(outputs: Path, *args: str) -> CliResult:
        monkeypatch.setenv("SMOLTULU_OUTPUTS", str(outputs))
        capsys.readouterr()
        code = main(["ablation-135m", *args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return call


# ---- the grid --------------------------------------------------------------------------------


def test_default_grids_come_from_the_recipe() -> None:
    r = recipe.load("ablation-135m")
    real = ablation.default_grid(r, "real")
    assert real.learning_rates == (1e-6, 3e-6, 1e-5, 3e-5, 9e-5) and real.batch_sizes == (8, 16, 32, 64)
    smoke = ablation.default_grid(r, "smoke")
    assert (len(smoke.learning_rates), len(smoke.batch_sizes)) == (2, 2)
    assert smoke.sources["lr"].startswith("assumption: smoke profile")
    for point in smoke.points():  # reachable on one CPU process
        recipe.plan_batch(point.batch_size, 1)


def test_grid_syntax_sorts_dedupes_and_keeps_the_missing_axis() -> None:
    default = ablation.default_grid(recipe.load("ablation-135m"), "real")
    g = ablation.parse_grid(["lr=3e-5, 1e-5,3e-5;bs=16,8"], default)
    assert g.learning_rates == (1e-5, 3e-5) and g.batch_sizes == (8, 16)
    assert [p.name for p in g.points()] == ["lr1e-05_bs8", "lr3e-05_bs8", "lr1e-05_bs16", "lr3e-05_bs16"]
    assert g.sources["lr"].startswith("override: --grid lr=1e-05,3e-05")
    g = ablation.parse_grid(["learning_rate=1e-5", "batch_size=32"], default)  # one axis per --grid
    assert g.learning_rates == (1e-5,) and g.batch_sizes == (32,)
    g = ablation.parse_grid(["bs=8"], default)
    assert g.learning_rates == default.learning_rates and g.sources["lr"] == default.sources["lr"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lr 1e-5", "expected lr=V,V;bs=N,N"),
        ("momentum=0.9", "expected lr=V,V;bs=N,N"),
        ("lr=fast", "is not a number"),
        ("lr=0", "must be positive"),
        ("lr=-1e-5", "must be positive"),
        ("lr=nan", "must be positive"),
        ("bs=8.5", "is not a whole number"),
        ("bs=-8", "must be positive"),
        ("bs=", "at least one value"),
        ("lr=1e-5;lr=3e-5", "names lr twice"),
        ("lr=1e-5,1.0000001e-5", "6 significant digits"),
    ],
)
def test_bad_grids_are_refused(spec: str, message: str) -> None:
    default = ablation.default_grid(recipe.load("ablation-135m"), "real")
    with pytest.raises(UsageError, match=message):
        ablation.parse_grid([spec], default)


def test_point_recipe_is_an_ordinary_sft_recipe_with_the_point_recorded() -> None:
    base = recipe.load("ablation-135m")
    grid = ablation.default_grid(base, "real")
    point = ablation.Point(3e-5, 16)
    r = ablation.point_recipe(base, grid, point)
    assert r.hp("learning_rate") == 3e-5 and r.hp("effective_batch_size") == 16 and not r.grid
    assert r.overrides == ("learning_rate=3e-05", "effective_batch_size=16")
    assert r.hyperparameters["learning_rate"].source == grid.sources["lr"]
    plan = recipe.plan_batch(16, 1)
    kwargs = trl_args.trl_kwargs(r, plan, "/tmp/x")
    assert kwargs["learning_rate"] == 3e-5
    assert kwargs["per_device_train_batch_size"] * kwargs["gradient_accumulation_steps"] == 16
    assert r.lr_per_example == pytest.approx(3e-5 / 16)


def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path: Path, cli) -> None:
    root = tmp_path / "smoke" / "ablation-135m"
    _cli(tmp_path, "--profile", "smoke", "--grid", "lr=1e-5;bs=x", "--world-size", "1").assert_usage_error(
        "--grid bs=x"
    )
    cli(tmp_path, "--profile", "smoke", "--grid", "bs=6", "--world-size", "4").assert_usage_error(
        "--grid bs=6", "world size"
    )
    cli(tmp_path, "--override", "learning_rate=1e-4").assert_usage_error("--grid")
    cli(tmp_path, "--profile", "smoke", "--world-size", "1", "--limit", "0").assert_usage_error("--limit")
    assert not root.exists()
    (root / "lr1e-05_bs4" / "checkpoints").mkdir(parents=True)  # a killed point
    cli(tmp_path, "--profile", "smoke", "--world-size", "1", "--skip-eval").assert_usage_error(
        "lr1e-05_bs4", "--resume"
    )
    assert sorted(p.name for p in root.iterdir()) == ["lr1e-05_bs4"]  # no other point was started


def test_each_point_is_handed_to_evaluate_with_its_settings(tmp_path: Path, monkeypatch) -> None:
    import evalsuite.run_cmd
    from repro.cli import build_parser

    calls = []

    def fake_evaluate(model: str, **kwargs) -> Path:
        calls.append((model, kwargs))
        return kwargs["output"]

    monkeypatch.setattr(evalsuite.run_cmd, "evaluate", fake_evaluate)
    monkeypatch.setenv("SMOLTULU_OUTPUTS", str(tmp_path))
    argv = ["ablation-135m", "--profile", "smoke", "--world-size", "1", "--limit", "3", "--data-dir", "d"]
    args = build_parser().parse_args(argv)
    plan = ablation.make_plan(args)
    point = ablation.Point(9e-5, 8)
    ablation.evaluate_point(args, plan, point)
    model, kwargs = calls[0]
    run_dir = tmp_path / "smoke" / "ablation-135m" / "lr9e-05_bs8"
    assert model == str(run_dir) and kwargs["output"] == run_dir / "eval"
    assert kwargs["benchmarks"] == BENCHES and kwargs["limit"] == 3 and kwargs["data_dir"] == Path("d")
    assert kwargs["settings"] == {
        "learning_rate": 9e-5, "batch_size": 8, "ablation": "ablation-135m", "profile": "smoke",
    }  # fmt: skip
    # results already there for the same benchmarks and limit: not evaluated again; another limit: again
    _results(run_dir / "eval" / point.name, 9e-5, 8, dict.fromkeys(BENCHES, 10))
    res = results_io.load(run_dir / "eval" / point.name)
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "config.json").write_text("{}")
    from evalsuite.harness import run_folder

    weights = run_folder.model_identity(run_dir / "final").sha256
    model = replace(res.model, sha256=weights)
    results_io.save(replace(res, limit=3, model=model), run_dir / "eval" / point.name)
    ablation.evaluate_point(args, plan, point)
    assert len(calls) == 1
    # the point retrained since (other weights): evaluated again
    (run_dir / "final" / "config.json").write_text('{"retrained": true}')
    ablation.evaluate_point(args, plan, point)
    assert len(calls) == 2
    (run_dir / "final" / "config.json").write_text("{}")
    args.limit = 4
    ablation.evaluate_point(args, plan, point)
    assert len(calls) == 3


# ---- Figure 1 from results folders -------------------------------------------------------------


def _results(folder: Path, lr: float, bs: int, scores: dict[str, int], ablation_name: str = "ablation-135m"):
    """A results folder as evaluate() writes it: items of 10 with `score/10` correct per benchmark."""
    benches = {}
    for bench, score in scores.items():
        items = [{"id": str(i), "subtask": bench, "score": float(i < score // 10)} for i in range(10)]
        rel = results_io.write_items(folder, bench, items)
        benches[bench] = results_io.BenchmarkResult(score=float(score), n=10, metric="acc", items=rel)
    info = results_io.ModelInfo(spec=str(folder), label=folder.name, kind="causal-lm", source="repro-output")
    settings = {"learning_rate": lr, "batch_size": bs, "ablation": ablation_name}
    results_io.save(
        results_io.Results(model=info, backend="hf", benchmarks=benches, settings=settings), folder
    )


def _grid_results(root: Path, skip: tuple[float, int] | None = None) -> dict[tuple[float, int], dict]:
    """2x2 results where ARC/GSM8K rise with LR/BS and HellaSwag/IFEval fall (the paper's claim 6)."""
    written = {}
    for rank, (lr, bs) in enumerate(
        sorted([(1e-5, 8), (9e-5, 8), (1e-5, 4), (9e-5, 4)], key=lambda p: p[0] / p[1])
    ):
        scores = {
            "arc": 30 + 10 * rank,
            "gsm8k": 10 * rank,
            "hellaswag": 60 - 10 * rank,
            "ifeval": 50 - 10 * rank,
        }
        if (lr, bs) != skip:
            _results(root / ablation.Point(lr, bs).name, lr, bs, scores)
            written[(lr, bs)] = scores
    return written


def _png_size(path: Path) -> tuple[int, int]:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path).shape[:2]


def test_plot_only_draws_the_four_maps_and_the_score_table(tmp_path: Path, cli) -> None:
    results = tmp_path / "results"
    written = _grid_results(results)
    _results(results / "other", 3e-5, 16, {"arc": 90}, ablation_name="another-grid")  # not ours: ignored
    figures = tmp_path / "fig"
    done = cli(tmp_path, "--plot-only", "--results", str(results), "--figures", str(figures))
    assert done.returncode == 0, done.stderr
    for bench in BENCHES:
        h, w = _png_size(figures / f"figure1_{bench}.png")
        assert h > 300 and w > 400
    _png_size(figures / "figure1.png")
    table = json.loads((figures / "figure1_scores.json").read_text())
    assert table["benchmarks"] == BENCHES
    got = {(p["learning_rate"], p["batch_size"]): p["scores"] for p in table["points"]}
    assert got == {k: {b: float(v) for b, v in s.items()} for k, s in written.items()}
    rows = list(csv.DictReader((figures / "figure1_scores.csv").open()))
    assert len(rows) == 4 and {r["arc"] for r in rows} == {"30.0000", "40.0000", "50.0000", "60.0000"}
    assert all(
        float(r["lr_per_batch"]) == pytest.approx(float(r["learning_rate"]) / int(r["batch_size"]))
        for r in rows
    )
    assert "no results" not in done.stdout


def test_a_point_without_results_is_reported_never_filled_in(tmp_path: Path, cli) -> None:
    results = tmp_path / "results"
    _grid_results(results, skip=(9e-5, 4))
    figures = tmp_path / "fig"
    done = cli(
        tmp_path, "--plot-only", "--results", str(results), "--figures", str(figures),
        "--grid", "lr=1e-5,9e-5;bs=4,8",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no results for LR 9e-05, BS 4: arc, gsm8k, hellaswag, ifeval" in done.stdout
    points = json.loads((figures / "figure1_scores.json").read_text())["points"]
    missing = [p for p in points if (p["learning_rate"], p["batch_size"]) == (9e-5, 4)]
    assert missing[0]["scores"] == dict.fromkeys(BENCHES) and missing[0]["results"] is None
    assert len(points) == 4 and sum(p["results"] is None for p in points) == 1


def test_plot_only_without_results_and_duplicate_points_are_usage_errors(tmp_path: Path, cli) -> None:
    cli(tmp_path, "--plot-only", "--results", str(tmp_path / "none")).assert_usage_error(
        f"--results {tmp_path / 'none'}: no such folder"
    )
    (tmp_path / "empty").mkdir()
    cli(tmp_path, "--plot-only", "--results", str(tmp_path / "empty")).assert_usage_error(
        "no ablation-135m results"
    )
    results = tmp_path / "results"
    _grid_results(results)
    _results(results / "copy", 1e-5, 8, {"arc": 10})
    cli(tmp_path, "--plot-only", "--results", str(results)).assert_usage_error(
        "two results for LR 1e-05, BS 8"
    )


def test_constant_scores_and_iso_ratios(tmp_path: Path) -> None:
    rows = [
        figure1.Scored(lr, bs, None, {"gsm8k": 0.0}, {"gsm8k": 1}) for bs in (4, 8) for lr in (1e-5, 9e-5)
    ]
    paths = figure1.draw(rows, [1e-5, 9e-5], [4, 8], ["gsm8k"], tmp_path, ablation="x", title="t")
    assert tmp_path / "figure1_gsm8k.png" in paths
    # the real grid spans 1.6e-8 .. 1.1e-5: decade lines only; the smoke grid needs the 3e-k ones too
    assert figure1.iso_ratios([1e-6, 3e-6, 1e-5, 3e-5, 9e-5], [8, 16, 32, 64]) == pytest.approx(
        [1e-7, 1e-6, 1e-5]
    )
    assert figure1.iso_ratios([1e-5, 9e-5], [4, 8]) == pytest.approx([3e-6, 1e-5])
    with pytest.raises(UsageError, match="at least 2"):
        figure1.draw(rows[:2], [1e-5, 9e-5], [4], ["gsm8k"], tmp_path, ablation="x", title="t")


# ---- shards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 25])
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (5, 4), (3, 1)])
def test_shards_partition_the_grid_evenly_whatever_order_it_is_given_in(
    count: int, shape: tuple[int, int]
) -> None:
    default = ablation.default_grid(recipe.load("ablation-135m"), "real")
    lrs = [f"{(k + 1) * 1e-5:g}" for k in range(shape[0])]
    bss = [str(2 ** (k + 2)) for k in range(shape[1])]
    grid = ablation.parse_grid([f"lr={','.join(lrs)};bs={','.join(bss)}"], default)
    reordered = ablation.parse_grid(
        [f"bs={','.join(reversed(bss))}", f"lr={','.join(reversed(lrs))}"], default
    )
    shares = [ablation.Shard(i, count).take(grid.points()) for i in range(1, count + 1)]
    names = [p.name for share in shares for p in share]
    assert sorted(names) == sorted(p.name for p in grid.points()) and len(names) == len(set(names))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert shares == [ablation.Shard(i, count).take(reordered.points()) for i in range(1, count + 1)]


def test_the_smoke_grid_splits_round_robin_over_its_sorted_points() -> None:
    # sorted by batch size, then LR: lr1e-05_bs4, lr9e-05_bs4, lr1e-05_bs8, lr9e-05_bs8
    points = ablation.default_grid(recipe.load("ablation-135m"), "smoke").points()
    assert [p.name for p in ablation.parse_shard("1/2").take(points)] == ["lr1e-05_bs4", "lr1e-05_bs8"]
    assert [p.name for p in ablation.parse_shard(" 2 / 2 ").take(points)] == ["lr9e-05_bs4", "lr9e-05_bs8"]
    assert [p.name for p in ablation.parse_shard("3/3").take(points)] == ["lr1e-05_bs8"]
    assert ablation.parse_shard("5/5").take(points) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0/2", "numbered 1 to N"),
        ("3/2", "numbered 1 to N"),
        ("1/0", "numbered 1 to N"),
        ("junk", "expected I/N"),
        ("2", "expected I/N"),
        ("-1/2", "expected I/N"),
        ("1/2/3", "expected I/N"),
        ("", "expected I/N"),
    ],
)
def test_bad_shards_are_refused_in_one_line(tmp_path: Path, cli, spec: str, message: str) -> None:
    flags = ("--profile", "smoke", "--world-size", "1", "--skip-eval", f"--shard={spec}")
    cli(tmp_path, *flags).assert_usage_error("--shard", message)
    assert not (tmp_path / "smoke").exists()


def test_shard_flag_combinations_are_refused(tmp_path: Path, cli) -> None:
    results = tmp_path / "results"
    _grid_results(results)
    cli(tmp_path, "--plot-only", "--results", str(results), "--shard", "1/2").assert_usage_error(
        "drop --shard"
    )
    twice = ("--results", str(results), "--results", str(results))
    cli(tmp_path, "--profile", "smoke", "--world-size", "1", *twice).assert_usage_error(
        "--results given 2 times", "--plot-only"
    )


def test_dry_run_lists_only_the_share(tmp_path: Path, cli) -> None:
    done = cli(tmp_path, "--profile", "smoke", "--world-size", "1", "--dry-run", "--shard", "2/2")
    assert done.returncode == 0, done.stderr
    assert "share 2/2: 2 of its 4 points" in done.stdout
    assert "lr9e-05_bs4" in done.stdout and "lr9e-05_bs8" in done.stdout
    assert "lr1e-05_bs4" not in done.stdout and "lr1e-05_bs8" not in done.stdout


def test_plot_only_merges_shares_from_several_machines(tmp_path: Path, cli) -> None:
    """Two machines without a shared filesystem: each outputs folder holds its share's results."""
    written = {}
    for machine, lr in (("a", 1e-5), ("b", 9e-5)):
        root = tmp_path / machine / "smoke" / "ablation-135m"
        for bs, score in ((4, 20), (8, 40)):
            _results(root / ablation.Point(lr, bs).name / "eval" / ablation.Point(lr, bs).name, lr, bs,
                     {"arc": score + int(lr * 1e5)})  # fmt: skip
            written[(lr, bs)] = float(score + int(lr * 1e5))
    figures = tmp_path / "fig"
    done = cli(
        tmp_path, "--plot-only", "--benchmarks", "arc", "--figures", str(figures),
        "--results", str(tmp_path / "a"), "--results", str(tmp_path / "b"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    points = json.loads((figures / "figure1_scores.json").read_text())["points"]
    assert {(p["learning_rate"], p["batch_size"]): p["scores"]["arc"] for p in points} == written
    _png_size(figures / "figure1_arc.png")
    # one machine's folder alone: its two points, the other LR absent from the map
    alone = cli(tmp_path, "--plot-only", "--benchmarks", "arc", "--figures", str(tmp_path / "f2"),
                "--grid", "lr=1e-5,9e-5;bs=4,8", "--results", str(tmp_path / "a"))  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert "no results for LR 9e-05, BS 4: arc" in alone.stdout


# ---- the smoke grid end to end -----------------------------------------------------------------


class SmokeGrid(NamedTuple):
    root: Path
    stdout: str  # both shares'
    first_stdout: str
    after_first: list[str]  # the grid folder's entries once share 1/2 had finished


@pytest.fixture(scope="module")
def smoke_grid(tmp_path_factory: pytest.TempPathFactory, real_items: Path) -> SmokeGrid:
    """The smoke grid run as two shares into one outputs folder, as a SLURM array on a shared filesystem."""
    outputs = tmp_path_factory.mktemp("outputs")
    root = outputs / "smoke" / "ablation-135m"
    # share 1 skips the sharpness measurement (minutes a point on CPU); share 2 measures its points
    first = _cli(outputs, *E2E_FLAGS, "--data-dir", str(real_items), "--shard", "1/2", "--skip-sharpness")
    assert first.returncode == 0, first.stderr[-3000:]
    after_first = sorted(p.name for p in root.iterdir())
    second = _cli(outputs, *E2E_FLAGS, "--data-dir", str(real_items), "--shard", "2/2")
    assert second.returncode == 0, second.stderr[-3000:]
    return SmokeGrid(root, first.stdout + second.stdout, first.stdout, after_first)


@pytest.mark.slow
def test_shares_train_their_points_and_the_last_draws_the_merged_map(smoke_grid: SmokeGrid) -> None:
    assert smoke_grid.after_first == ["lr1e-05_bs4", "lr1e-05_bs8"]  # share 1/2 alone: no maps yet
    measured = sorted(p.stem for p in smoke_grid.root.glob("*/eval/sharpness/*.json"))
    assert measured == ["lr9e-05_bs4", "lr9e-05_bs8"]  # share 2 measured its points, share 1 was told not to
    assert (smoke_grid.root / "figure1" / "sharpness.png").is_file()
    assert (
        "the maps wait for 2 point(s) of other shares (lr9e-05_bs4, lr9e-05_bs8)" in smoke_grid.first_stdout
    )
    assert "--plot-only" in smoke_grid.first_stdout
    assert "lr9e-05" not in smoke_grid.first_stdout.split("the maps wait")[0]
    table = json.loads((smoke_grid.root / "figure1" / "figure1_scores.json").read_text())
    assert sorted((p["learning_rate"], p["batch_size"]) for p in table["points"] if p["results"]) == [
        (1e-5, 4), (1e-5, 8), (9e-5, 4), (9e-5, 8),
    ]  # fmt: skip


@pytest.mark.slow
def test_smoke_grid_trains_evaluates_and_draws(smoke_grid: SmokeGrid) -> None:
    root, stdout = smoke_grid.root, smoke_grid.stdout
    grid = ablation.default_grid(recipe.load("ablation-135m"), "smoke")
    for point in grid.points():
        run = root / point.name
        m = json.loads((run / "manifest.json").read_text())
        assert m["recipe"] == "ablation-135m" and m["profile"] == "smoke"
        assert m["overrides"] == [
            f"learning_rate={point.learning_rate!r}",
            f"effective_batch_size={point.batch_size}",
        ]
        assert m["hyperparameters"]["learning_rate"]["value"] == point.learning_rate
        assert (
            m["batch"]["per_device"] * m["batch"]["grad_accum"] * m["batch"]["world_size"] == point.batch_size
        )
        assert m["metrics"]["global_step"] == 3
        assert f"{point.name} (LR/BS {point.ratio:.3g}): training" in stdout
        res = results_io.load(run / "eval" / point.name)
        assert set(res.benchmarks) == set(E2E_BENCHES) and res.limit == 1
        assert (
            res.settings["learning_rate"] == point.learning_rate
            and res.settings["batch_size"] == point.batch_size
        )
        assert res.settings["ablation"] == "ablation-135m"
        assert Path(res.model.path) == (run / "final").resolve()
    table = json.loads((root / "figure1" / "figure1_scores.json").read_text())
    assert len(table["points"]) == 4
    for p in table["points"]:  # the maps' numbers are the results' numbers
        res = results_io.load(Path(p["results"]))
        assert p["scores"] == {b: res.benchmarks[b].score for b in E2E_BENCHES}
        assert (res.settings["learning_rate"], res.settings["batch_size"]) == (
            p["learning_rate"],
            p["batch_size"],
        )
    for bench in E2E_BENCHES:
        _png_size(root / "figure1" / f"figure1_{bench}.png")
    assert not (root / "figure1" / "figure1_ifeval.png").exists()  # not evaluated: no map
    assert table["benchmarks"] == E2E_BENCHES
    # learning rate changes the run: different LRs at one batch size end on different losses
    losses = {
        p.name: json.loads((root / p.name / "manifest.json").read_text())["metrics"]["final_step_loss"]
        for p in grid.points()
    }
    assert losses["lr1e-05_bs4"] != losses["lr9e-05_bs4"]


@pytest.mark.slow
def test_rerun_skips_finished_points_and_evaluations(smoke_grid: SmokeGrid, real_items: Path, cli) -> None:
    root = smoke_grid.root
    before = {p: p.stat().st_mtime_ns for p in root.glob("*/manifest.json")}
    again = cli(root.parent.parent, *E2E_FLAGS, "--data-dir", str(real_items))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("finished run, skipped") == 4 and again.stdout.count("evaluated already") == 4
    assert {p: p.stat().st_mtime_ns for p in root.glob("*/manifest.json")} == before


@pytest.mark.slow
def test_killed_point_resumes_to_the_uninterrupted_result(smoke_grid: SmokeGrid, tmp_path: Path, cli) -> None:
    root = smoke_grid.root
    point = root / "lr1e-05_bs4"
    args = ["ablation-135m", "--profile", "smoke", "--grid", "lr=1e-5;bs=4", "--skip-eval"]

    def start(attempt: int) -> tuple[subprocess.Popen, Path]:
        outputs = tmp_path / f"attempt-{attempt}"
        env = {**os.environ, **ENV, "SMOLTULU_OUTPUTS": str(outputs)}
        proc = subprocess.Popen([sys.executable, "-m", "repro", *args], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        return proc, outputs / "smoke" / "ablation-135m" / "lr1e-05_bs4"

    killed = kill_after_first_checkpoint(start)
    outputs = killed.parents[2]  # attempt-N/smoke/ablation-135m/<point>
    cli(outputs, *args[1:]).assert_usage_error("--resume")
    resumed = _cli(outputs, *args[1:], "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    loss = json.loads((killed / "manifest.json").read_text())["metrics"]["final_step_loss"]
    assert loss == pytest.approx(
        json.loads((point / "manifest.json").read_text())["metrics"]["final_step_loss"], abs=1e-6
    )
