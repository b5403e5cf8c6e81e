"""`python -m evalsuite run` and `score` through the real CLI, offline, on the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_module

from core.resolve import Resolved
from evalsuite import results as results_io
from evalsuite import run_cmd

ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(*args: str):
    return run_module("evalsuite", "run", "--no-progress", *args, env=ENV)


@pytest.mark.slow
def test_all_seven_benchmarks_write_results_and_items(
    tiny_model_dir: Path, real_items: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    first = _run(
        "--model", str(tiny_model_dir), "--data-dir", str(real_items), "--limit", "1", "--output", str(out)
    )
    assert first.returncode == 0, first.stderr[-2000:]
    # --no-progress is quiet: no bar of lm-eval's request building (27 for BBH) or transformers' loading
    assert "|" not in first.stderr and "it/s" not in first.stderr, first.stderr[-2000:]
    folder = out / tiny_model_dir.name
    res = results_io.load(folder)
    assert set(res.benchmarks) == {"arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa"}
    expected_n = {"arc": 2, "bbh": 27, "gsm8k": 1, "hellaswag": 1, "ifeval": 1, "mmlu_pro": 1, "piqa": 1}
    for name, n in expected_n.items():
        items = results_io.load_items(folder, name)
        assert res.benchmarks[name].n == len(items) == n
        assert all(len(it["prompt_sha256"]) == 64 for it in items)
    assert set(res.benchmarks["ifeval"].scores) >= {"average_strict", "average_loose", "prompt_level_loose"}
    assert len(res.benchmarks["bbh"].subtasks) == 27
    assert res.backend == "hf" and res.limit == 1 and res.protocol == results_io.PROTOCOL
    assert {"lm_eval", "torch", "transformers", "smoltulu"} <= set(res.versions)  # provenance
    # A rerun finds every request in the cache and recomputes none.
    again = _run(
        "--model", str(tiny_model_dir), "--data-dir", str(real_items), "--limit", "1", "--output", str(out)
    )
    assert again.returncode == 0 and "requests: 0 computed" in again.stdout
    assert results_io.load(folder).benchmarks["gsm8k"].score == res.benchmarks["gsm8k"].score


@pytest.mark.slow  # three evaluation CLI runs (one killed)
@pytest.mark.faults
def test_killed_run_resumes_without_recomputing_finished_requests(
    tiny_model_dir: Path, real_items: Path, tmp_path: Path
) -> None:
    args = [
        "--model",
        str(tiny_model_dir),
        "--data-dir",
        str(real_items),
        "--benchmarks",
        "gsm8k",
        "--limit",
        "6",
        "--batch-size",
        "1",
    ]
    clean = _run(*args, "--output", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr[-2000:]

    out = tmp_path / "killed"
    cache = out / tiny_model_dir.name / "cache" / "requests.jsonl"
    env = {**os.environ, **ENV}
    cmd = [sys.executable, "-m", "evalsuite", "run", "--no-progress", *args, "--output", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (cache.is_file() and cache.stat().st_size > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(cache.read_text().splitlines()) if cache.is_file() else 0
    assert done_before > 0, "the run was killed before any request finished"
    assert not (out / tiny_model_dir.name / "results.json").exists()  # nothing half-written

    rerun = _run(*args, "--output", str(out))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    settings = results_io.load(out / tiny_model_dir.name).settings
    assert settings["reused_requests"] == min(done_before, 6) and settings["computed_requests"] == 6 - min(
        done_before, 6
    )
    killed_items = results_io.load_items(out / tiny_model_dir.name, "gsm8k")
    clean_items = results_io.load_items(tmp_path / "clean" / tiny_model_dir.name, "gsm8k")
    assert [i["output"] for i in killed_items] == [i["output"] for i in clean_items]
    killed_res = results_io.load(out / tiny_model_dir.name).benchmarks["gsm8k"]
    clean_res = results_io.load(tmp_path / "clean" / tiny_model_dir.name).benchmarks["gsm8k"]
    assert (killed_res.score, killed_res.n) == (clean_res.score, clean_res.n)


def _score(outputs: Path, data_dir: Path, out: Path):
    return run_module(
        "evalsuite", "score", "--benchmark", "gsm8k", "--outputs", str(outputs), "--data-dir", str(data_dir),
        "--output", str(out), env=ENV,
    )  # fmt: skip


def test_score_scores_outside_outputs_like_run(real_items: Path, tmp_path: Path) -> None:
    test = [json.loads(x) for x in (real_items / "gsm8k" / "test.jsonl").read_text().split("\n") if x.strip()]
    outputs = tmp_path / "api-model.jsonl"
    lines = [
        {"id": "gsm8k:0", "output": test[0]["answer"]},  # gold: right
        {"prompt": f"Question: {test[1]['question']}\nAnswer:", "output": "#### 1"},  # wrong
        {"prompt": test[2]["question"], "output": "so #### " + test[2]["answer"].split("#### ")[1]},  # right
    ]
    outputs.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = _score(outputs, real_items, tmp_path / "res")
    assert res.returncode == 0, res.stderr
    loaded = results_io.load(tmp_path / "res" / "api-model")
    assert loaded.backend == "external" and loaded.benchmarks["gsm8k"].n == 3
    assert loaded.benchmarks["gsm8k"].score == pytest.approx(200 / 3)
    outputs.write_text(json.dumps({"id": "gsm8k:999999", "output": "x"}) + "\n")
    _score(outputs, real_items, tmp_path / "res2").assert_usage_error("match no gsm8k item")
    assert not (tmp_path / "res2").exists()


def test_unknown_benchmark_is_a_one_line_error(tiny_model_dir: Path) -> None:
    _run("--model", str(tiny_model_dir), "--benchmarks", "arc,mmlu").assert_usage_error(
        "unknown benchmark 'mmlu'"
    )


def test_model_not_in_the_offline_cache_is_a_one_line_error(tmp_path: Path) -> None:
    env_home = {"HF_HOME": str(tmp_path / "hf")}
    res = run_module(
        "evalsuite", "run", "--model", "smollm2-1.7b-instruct", "--allow-unlocked", env={**ENV, **env_home}
    )
    res.assert_usage_error("not in the local Hugging Face cache")


def test_data_dir_missing_a_benchmark_is_a_one_line_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "data" / "arc").mkdir(parents=True)
    out = tmp_path / "out"
    res = _run(
        "--model",
        str(tiny_model_dir),
        "--data-dir",
        str(tmp_path / "data"),
        "--benchmarks",
        "gsm8k",
        "--output",
        str(out),
    )
    res.assert_usage_error("has no gsm8k/ folder")
    assert not (out / tiny_model_dir.name / "results.json").exists()


def test_demo_items_load_in_the_hub_layout() -> None:
    """The hand-written demo items (the demo's fallback without benchdata) pass the schema checks."""
    from evalsuite.demo import DEMO_DATA
    from evalsuite.harness import sources

    for name in sources.READERS:
        for subset in sources.subsets(name):
            splits = sources.read(name, DEMO_DATA / name, subset)
            assert all(len(rows) >= 2 for rows in splits.values()), (name, subset)
    assert len(sources.read("gsm8k", DEMO_DATA / "gsm8k")["train"]) >= 5  # the 5-shot pool
    assert all(len(sources.read("bbh", DEMO_DATA / "bbh", s)["train"]) >= 4 for s in sources.BBH_SUBSETS)


def test_a_seeded_run_folder_is_labelled_by_its_recipe(tmp_path: Path) -> None:
    """outputs/dpo-1130-seed7/final evaluates as dpo-1130 with its training seed (tables pool seeds)."""
    final = tmp_path / "dpo-1130-seed7" / "final"
    final.mkdir(parents=True)
    manifest = {"recipe": "dpo-1130", "profile": "real", "seed": 7}
    (final.parent / "manifest.json").write_text(json.dumps(manifest))
    res = Resolved(final, "repro-output")
    assert run_cmd._label(str(final), res) == "dpo-1130"
    assert run_cmd._manifest(res)["seed"] == 7
    (final.parent / "manifest.json").write_text(json.dumps({**manifest, "profile": "smoke"}))
    assert run_cmd._label(str(final), res) == "dpo-1130-smoke"
    assert run_cmd._manifest(Resolved(final, "local")) == {}
