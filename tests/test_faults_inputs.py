"""Faults around what the suite reads and where it writes (`pytest -m faults`):

- a symbolic link planted where the suite writes in place (the run lock, the append-only caches)
  is refused, its target untouched;
- a results folder that is, holds or lies inside an input (the model folder, the outputs file, the
  data folder) is refused, --force or not, before anything is deleted;
- weights that do not match config.json (a layer too many or too few, a stray tensor) are refused
  before loading: transformers would initialise the missing ones at random and carry on;
- a model whose log-likelihoods or rewards are NaN gets no score;
- a stray RANK variable does not switch off the training guards.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import run_module

from core import model_folder, run_lock
from core.errors import UsageError, describe
from evalsuite.demo import DEMO_DATA
from evalsuite.harness import resumable, run_folder

pytestmark = pytest.mark.faults

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _copy_model(tiny_model_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_model_dir, dest)
    return dest


# --------------------------------------------------------------------------- symbolic links


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    folder = tmp_path / "out" / "label"
    folder.mkdir(parents=True)
    (folder / run_lock.LOCK_NAME).symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        run_lock.acquire(folder, "test")
    assert target.read_text() == "keep me\n"


def test_score_refuses_a_symlinked_lock(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    outputs = tmp_path / "api.jsonl"
    outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n")
    (tmp_path / "out" / "api").mkdir(parents=True)
    (tmp_path / "out" / "api" / run_lock.LOCK_NAME).symlink_to(target)
    result = run_module(
        "evalsuite", "score", "--benchmark", "gsm8k", "--data-dir", str(DEMO_DATA), "--outputs", str(outputs),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    result.assert_usage_error("symbolic link")
    assert target.read_text() == "keep me\n"


def test_a_symlinked_request_cache_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    cache = tmp_path / "cache.jsonl"
    cache.symlink_to(target)
    lm = resumable.ResumableLM.__new__(resumable.ResumableLM)
    lm.cache_file, lm.fingerprint = cache, "f"
    with pytest.raises(UsageError, match="symbolic link"):
        lm._append([("k", [-1.0, True])])
    assert target.read_text() == "keep me\n"


# --------------------------------------------------------------------------- --force on inputs


def test_a_results_folder_overlapping_an_input_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    for folder in (model, model / "results", tmp_path):
        with pytest.raises(UsageError, match="overlaps the input"):
            run_folder.refuse_overlap(folder, [model])
    run_folder.refuse_overlap(tmp_path / "results" / "m", [model, None])  # beside it: fine


def test_run_with_output_dot_and_force_keeps_the_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    before = sorted(p.name for p in model.iterdir())
    result = run_module(
        "evalsuite", "run", "--model", str(model), "--data-dir", str(DEMO_DATA), "--benchmarks", "piqa",
        "--limit", "2", "--output", str(tmp_path), "--label", "model", "--force", "--no-progress",
        env=OFFLINE,
    )  # fmt: skip
    result.assert_usage_error("overlaps the input")
    assert sorted(p.name for p in model.iterdir()) == before


def test_score_with_force_keeps_its_outputs_file(tmp_path: Path) -> None:
    outputs = tmp_path / "sf" / "gen" / "gen.jsonl"
    outputs.parent.mkdir(parents=True)
    outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n")
    result = run_module(
        "evalsuite", "score", "--benchmark", "gsm8k", "--data-dir", str(DEMO_DATA), "--outputs", str(outputs),
        "--output", str(tmp_path / "sf"), "--force",
    )  # fmt: skip
    result.assert_usage_error("overlaps the input")
    assert outputs.is_file()


# --------------------------------------------------------------------------- weights vs config


def _edit_config(model: Path, **changes: object) -> None:
    config = json.loads((model / "config.json").read_text())
    config.update(changes)
    (model / "config.json").write_text(json.dumps(config))


def test_a_config_with_a_layer_more_than_the_weights_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    _edit_config(model, num_hidden_layers=layers + 1)
    with pytest.raises(
        UsageError, match=rf"parameters config.json needs are in no weight file \(model.layers.{layers}"
    ):
        model_folder.check(model)


def test_weights_with_a_tensor_no_parameter_takes_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    model = _copy_model(tiny_model_dir, tmp_path / "model")
    tensors = load_file(model / "model.safetensors")
    layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    _edit_config(model, num_hidden_layers=layers - 1)  # the last layer's tensors fit nothing now
    with pytest.raises(UsageError, match="tensors fit no parameter"):
        model_folder.check(model)
    _edit_config(model, num_hidden_layers=layers)
    tensors["stray.weight"] = tensors[next(iter(tensors))]
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UsageError, match=r"1 tensors fit no parameter \(stray.weight\)"):
        model_folder.check(model)


def test_the_tiny_model_matches_its_config(tiny_model_dir: Path) -> None:
    assert model_folder.check(tiny_model_dir) == tiny_model_dir


# --------------------------------------------------------------------------- NaN models


def test_nan_log_likelihoods_are_refused_not_scored() -> None:
    with pytest.raises(UsageError, match="non-finite"):
        resumable._refuse_non_finite("loglikelihood", [(-1.0, True), (math.nan, False)])
    resumable._refuse_non_finite("loglikelihood", [(-1.0, True), (-2.5, False)])
    assert not resumable.ANSWER_SHAPES["loglikelihood"]([math.nan, False])  # a cached NaN is damage


@pytest.mark.slow  # runs the model on two ARC items
def test_a_nan_model_gets_no_score(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    model = _copy_model(tiny_model_dir, tmp_path / "model")
    tensors = load_file(model / "model.safetensors")
    name = next(n for n in tensors if "embed_tokens" in n)
    tensors[name] = tensors[name] * float("nan")
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    result = run_module(
        "evalsuite", "run", "--model", str(model), "--data-dir", str(DEMO_DATA), "--benchmarks", "arc",
        "--limit", "2", "--output", str(tmp_path / "out"), "--no-progress", env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 2 and "non-finite" in result.stderr.strip().splitlines()[-1], result.stderr
    assert not list((tmp_path / "out").rglob("results.json"))


# --------------------------------------------------------------------------- a stray RANK


@pytest.mark.parametrize(
    ("env", "main"),
    [
        ({"RANK": "1"}, True),  # a stray variable: still the one process, every guard on
        ({"RANK": "1", "WORLD_SIZE": "2"}, True),  # no launcher around it
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, False),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, True),
    ],
)
def test_only_a_real_launch_makes_a_process_a_worker(monkeypatch: pytest.MonkeyPatch, env, main) -> None:
    from repro.training import run

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert run._is_main_process() is main


def test_a_stray_rank_does_not_skip_the_output_check(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("someone's unfinished run\n")
    result = run_module(
        "repro", "sft-1130", "--profile", "smoke", "--out", str(out),
        env={**OFFLINE, "RANK": "1", "SMOLTULU_OUTPUTS": str(tmp_path / "outputs")},
    )  # fmt: skip
    result.assert_usage_error("holds an unfinished run")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- the request cache key


def test_the_hf_cache_key_covers_the_batch_size(tiny_model_dir: Path) -> None:
    from core.resolve import Resolved
    from evalsuite.harness import lm_run

    res = Resolved(tiny_model_dir, "local")
    keys = {bs: lm_run._fingerprint(res, "hf", "float32", batch_size=bs) for bs in (1, 8, "auto")}
    assert len(set(keys.values())) == 3  # padding to another batch's longest request moves the last bits
    vllm = {lm_run._fingerprint(res, "vllm", "bfloat16", batch_size=bs) for bs in (1, 8)}
    assert len(vllm) == 1  # vLLM's scheduler batches as it likes: the asked size changes nothing


# --------------------------------------------------------------------------- LaTeX and Markdown


def test_a_label_or_folder_cannot_inject_latex(tmp_path: Path) -> None:
    from evalsuite.report import simulate, tables_cmd

    evil = tmp_path / "res\n\\input{/etc/passwd}\n%"
    folder = simulate.write_results(evil / "dpo-1130", "dpo-1130", {"gsm8k": 51.6}, seed=1).folder
    tables_cmd.generate([evil], tmp_path / "out", formats=("md", "latex"), resamples=1000)
    tex = (tmp_path / "out" / "tables.tex").read_text()
    assert not any(line.startswith("\\input") for line in tex.splitlines())
    header = [line for line in tex.splitlines() if "Results read from" in line]
    assert len(header) == 1 and header[0].startswith("% ")
    md = (tmp_path / "out" / "tables.md").read_text()
    assert "\n\\input{/etc/passwd}" not in md
    # a label edited into results.json is refused on load, with the control characters escaped
    data = json.loads((folder / "results.json").read_text())
    data["model"]["label"] = "x\n\\input{/etc/passwd}\n%"
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"model label 'x\\n") as err:
        tables_cmd.generate([evil], tmp_path / "out2", formats=("latex",), resamples=1000)
    shown = describe(err.value)  # what the command prints
    assert shown.isprintable() and "res \\input{/etc/passwd} %" in shown


# --------------------------------------------------------------------------- deeply nested JSON


def test_deep_results_and_items_are_named_not_internal_errors(tmp_path: Path) -> None:
    from evalsuite import results as results_io
    from evalsuite.report import simulate

    deep = "[" * 100_000 + "]" * 100_000
    folder = simulate.write_results(tmp_path / "m", "dpo-1130", {"gsm8k": 51.6}, seed=1).folder
    items = folder / "items" / "gsm8k.jsonl"
    items.write_text(deep + "\n")
    with pytest.raises(UsageError, match=r"gsm8k.jsonl"):
        results_io.load_items(folder, "gsm8k")
    (folder / "results.json").write_text(deep)
    with pytest.raises(UsageError, match=r"results.json: not valid JSON \(nested too deeply"):
        results_io.load(folder)


def test_deep_data_rows_and_an_arc_gold_as_text_are_handled(tmp_path: Path) -> None:
    from evalsuite.harness import sources

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(UsageError, match=r"rows.jsonl:2: not JSON \(nested too deeply\)"):
        sources.read_rows(path)
    arc = tmp_path / "arc"
    arc.mkdir()
    row = {"query": "Question: Which?", "choices": ["a", "b", "c"], "gold": "1"}  # digits as text
    (arc / "arc_easy_test.jsonl").write_text(json.dumps(row) + "\n")
    got = sources.read("arc", arc, "ARC-Easy")
    assert [r["answerKey"] for r in got["test"]] == ["B"]
