"""The suite under bad input, kills and reruns, through the real CLI (`pytest -m faults`).

Every bad input must give one line on stderr, exit status 2, no traceback, and leave no
output behind. The kill/resume cases live beside the features they protect and carry the
same marker: tests/test_training.py (SIGKILL mid-training, then --resume: same weights),
tests/test_eval_run.py (SIGKILL mid-evaluation: finished requests not recomputed, same
results), tests/test_lock.py (a tampered file fails `lock verify`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_module
from test_training import assert_same_weights

from evalsuite import simulate
from evalsuite.demo import DEMO_DATA

pytestmark = pytest.mark.faults

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Case:
    module: str
    args: list[str]
    needle: str
    must_not_exist: list[str] = field(default_factory=list)  # relative to tmp_path
    env: dict[str, str] = field(default_factory=dict)


def _results(tmp: Path, edit: Callable[[dict], dict] | None = None, raw: str | None = None) -> Path:
    """A simulated results folder (one model, GSM8K), optionally edited or replaced by raw text."""
    folder = tmp / "results" / "dpo-1130"
    simulate.write_results(folder, "dpo-1130", {"gsm8k": 50.0}, seed=0)
    path = folder / "results.json"
    if edit is not None:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    if raw is not None:
        path.write_text(raw)
    return tmp / "results"


def _drop(key: str) -> Callable[[dict], dict]:
    def edit(d: dict) -> dict:
        d.pop(key)
        return d

    return edit


def _set(key: str, value: object) -> Callable[[dict], dict]:
    return lambda d: {**d, key: value}


def _data(tmp: Path, benchmark: str, rel: str, text: str) -> Path:
    path = tmp / "data" / benchmark / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return tmp / "data"


def _tables(results: Path) -> list[str]:
    return ["tables", "--results", str(results), "--out", "tables-out"]


def _cases(tmp: Path, model: Path) -> dict[str, Case]:
    run = ["run", "--model", str(model), "--output", "eval-out", "--no-progress"]
    piqa_row = '{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n'
    return {
        # repro
        "unknown recipe": Case("repro", ["sft-9999", "--dry-run"], "sft-9999"),
        "malformed override": Case(
            "repro", ["sft-1130", "--dry-run", "--override", "learning_rate"], "expected key=value"
        ),
        "unknown override key": Case("repro", ["sft-1130", "--dry-run", "--override", "lr=1e-5"], "lr"),
        "override of the wrong type": Case(
            "repro", ["sft-1130", "--dry-run", "--override", "learning_rate=fast"], "learning_rate"
        ),
        "impossible batch arithmetic": Case("repro", ["sft-1130", "--dry-run", "--world-size", "3"], "8"),
        "missing parent checkpoint": Case(
            "repro",
            ["dpo-1130", "--profile", "smoke"],
            "python -m repro sft-1130 --profile smoke",
            ["outputs/smoke/dpo-1130"],
            {"SMOLTULU_OUTPUTS": str(tmp / "outputs")},
        ),
        "bad ablation grid": Case(
            "repro", ["ablation-135m", "--grid", "lr=fast", "--out", "grid"], "lr", ["grid"]
        ),
        # evalsuite run
        "unknown benchmark": Case("evalsuite", [*run, "--benchmarks", "arc,mmlu"], "mmlu", ["eval-out"]),
        "unknown model": Case(
            "evalsuite",
            ["run", "--model", "no-such-model", "--output", "eval-out"],
            "no-such-model",
            ["eval-out"],
        ),
        "offline model not in cache": Case(
            "evalsuite",
            ["run", "--model", "dpo-1130", "--output", "eval-out"],
            "not in the local Hugging Face cache",
            ["eval-out"],
            {**OFFLINE, "HF_HOME": str(tmp / "empty-hf-home")},
        ),
        "data dir missing a benchmark": Case(
            "evalsuite",
            [
                *run,
                "--data-dir",
                str(_data(tmp / "only-piqa", "piqa", "validation.jsonl", piqa_row)),
                "--benchmarks",
                "piqa,arc",
            ],
            "no arc/ folder",
            ["eval-out"],
        ),
        "empty dataset": Case(
            "evalsuite",
            [*run, "--data-dir", str(_data(tmp, "piqa", "validation.jsonl", "")), "--benchmarks", "piqa"],
            "no rows",
            ["eval-out"],
        ),
        "dataset with wrong columns": Case(
            "evalsuite",
            [
                *run,
                "--data-dir",
                str(_data(tmp, "hellaswag", "validation.jsonl", piqa_row)),
                "--benchmarks",
                "hellaswag",
            ],
            "lacks activity_label",
            ["eval-out"],
        ),
        "output dir not writable": Case(
            "evalsuite",
            [
                "run",
                "--model",
                str(model),
                "--output",
                str(model / "config.json"),
                "--data-dir",
                str(DEMO_DATA),
                "--benchmarks",
                "piqa",
            ],
            "cannot write results",
        ),
        "limit of zero": Case("evalsuite", [*run, "--limit", "0"], "--limit", ["eval-out"]),
        "causal LM where a reward model is required": Case(
            "evalsuite",
            [*run, "--data-dir", str(DEMO_DATA), "--benchmarks", "rewardbench"],
            "needs a reward-model",
            ["eval-out"],
        ),
        # evalsuite score
        "outputs file not JSON": Case(
            "evalsuite",
            [
                "score",
                "--benchmark",
                "gsm8k",
                "--outputs",
                str(_data(tmp, "x", "o.jsonl", "{oops\n") / "x/o.jsonl"),
                "--data-dir",
                str(DEMO_DATA),
                "--output",
                "score-out",
            ],
            "not valid JSON",
            ["score-out"],
        ),
        # evalsuite tables
        "corrupt results JSON": Case(
            "evalsuite", _tables(_results(tmp / "corrupt", raw="{not json")), "results.json", ["tables-out"]
        ),
        "truncated results JSON": Case(
            "evalsuite",
            _tables(_results(tmp / "trunc", raw=json.dumps({"format": "x", "model": {}})[:20])),
            "results.json",
            ["tables-out"],
        ),
        "results of another protocol version": Case(
            "evalsuite",
            _tables(_results(tmp / "proto", _set("protocol", "lm-eval-default/0"))),
            "protocol",
            ["tables-out"],
        ),
        "results with a missing field": Case(
            "evalsuite", _tables(_results(tmp / "field", _drop("benchmarks"))), "benchmarks", ["tables-out"]
        ),
        "unknown table format": Case(
            "evalsuite", ["tables", "--format", "html", "--out", "tables-out"], "html", ["tables-out"]
        ),
    }


CASE_NAMES = list(_cases(Path("/nonexistent"), Path("/nonexistent")))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    name: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    case = _cases(tmp_path, tiny_model_dir)[name]
    before = {p for p in tmp_path.rglob("*")}
    result = run_module(case.module, *case.args, env=case.env, cwd=tmp_path)
    result.assert_usage_error(case.needle)
    for rel in case.must_not_exist:
        assert not (tmp_path / rel).exists(), f"{rel} was left behind"
    # nothing at all was written under the working folder (temp files included)
    assert {p for p in tmp_path.rglob("*")} == before
    assert not any(p.name.endswith(".tmp") for p in tiny_model_dir.iterdir())


def test_at_least_fifteen_bad_inputs_across_the_three_commands() -> None:
    cases = _cases(Path("/x"), Path("/x"))
    assert len(cases) >= 15
    assert {c.module for c in cases.values()} == {"repro", "evalsuite"}
    assert {c.args[0] for c in cases.values() if c.module == "evalsuite"} >= {"run", "score", "tables"}


def _smoke_sft(outputs: Path) -> Path:
    result = run_module("repro", "sft-1130", "--profile", "smoke", env={"SMOLTULU_OUTPUTS": str(outputs)})
    assert result.returncode == 0, result.stderr[-2000:]
    return outputs / "smoke" / "sft-1130"


def test_two_training_runs_with_the_same_seed_are_identical(tmp_path: Path) -> None:
    a, b = _smoke_sft(tmp_path / "a"), _smoke_sft(tmp_path / "b")
    losses = [json.loads((r / "manifest.json").read_text())["metrics"]["step_losses"] for r in (a, b)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert_same_weights(a / "final", b / "final")


def test_two_evaluations_give_identical_scores(tiny_model_dir: Path, tmp_path: Path) -> None:
    from evalsuite import results as results_io

    folders = []
    for out in ("a", "b"):
        result = run_module(
            "evalsuite", "run", "--model", str(tiny_model_dir), "--data-dir", str(DEMO_DATA), "--benchmarks",
            "arc,gsm8k,piqa", "--limit", "2", "--output", str(tmp_path / out), "--no-progress", env=OFFLINE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        folders.append(tmp_path / out / tiny_model_dir.name)
    a, b = (results_io.load(f) for f in folders)
    assert {k: (v.score, v.n) for k, v in a.benchmarks.items()} == {
        k: (v.score, v.n) for k, v in b.benchmarks.items()
    }
    for bench in ("arc", "gsm8k", "piqa"):
        items = [results_io.load_items(f, bench) for f in folders]
        assert items[0] == items[1]
