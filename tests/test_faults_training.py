"""Training under faults (`pytest -m faults`): torn checkpoints, kills while a checkpoint is written,
two runs into one folder, a --resume that does not match its run, model folders the suite must not
load, and impossible numbers or output paths. Every refusal is one line on stderr and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, CliResult, hold_lock, run_module
from test_training import assert_same_weights

from core import model_folder, run_lock
from core.errors import UsageError
from core.resolve import resolve
from evalsuite.demo import DEMO_DATA
from repro.training import checkpoints

pytestmark = pytest.mark.faults

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _env(outputs: Path) -> dict[str, str]:
    # PYTHONPATH: this checkout's code even when a test runs the CLI from another working folder
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ, **OFFLINE, "SMOLTULU_OUTPUTS": str(outputs), "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": path,
    }  # fmt: skip


def _repro(outputs: Path, *args: str, name: str = "sft-1130") -> CliResult:
    return run_module("repro", name, "--profile", "smoke", *args, env=_env(outputs))


def _start(outputs: Path, out: Path, *extra: str) -> subprocess.Popen:
    """A training run in the background; its output goes to files (a full pipe would stall it)."""
    cmd = [sys.executable, "-m", "repro", "sft-1130", "--profile", "smoke", "--out", str(out), *extra]
    logs = [tempfile.TemporaryFile("w+") for _ in range(2)]  # noqa: SIM115 (read by _finish, after the run)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(outputs), stdout=logs[0], stderr=logs[1], text=True)
    proc.logs = logs  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen) -> CliResult:
    code = proc.wait(timeout=300)
    texts = []
    for log in proc.logs:  # type: ignore[attr-defined]
        log.seek(0)
        texts.append(log.read())
    return CliResult(code, *texts)


@pytest.fixture(scope="module")
def whole(smoke_sft: Path) -> Path:
    """An uninterrupted smoke SFT run (3 steps, a checkpoint each; the session's shared one): the
    reference, never modified (copies go beside it)."""
    return smoke_sft


def _outputs(run: Path) -> Path:
    return run.parents[1]  # <outputs>/smoke/<name>


def _copy(run: Path, tmp_path: Path) -> Path:
    """A copy of `run` beside it (same SMOLTULU_OUTPUTS, so the same embedded tiny model input)."""
    copy = run.parent / f"{run.name}-{tmp_path.name}"
    shutil.copytree(run, copy)
    return copy


def _unfinish(run: Path) -> None:
    """What a run killed before its end leaves: no final model, no manifest."""
    shutil.rmtree(run / "final")
    (run / "manifest.json").unlink()


def _tear(checkpoint: Path) -> None:
    """What a kill or a full disk leaves in the checkpoint being written: half the weights, nothing after."""
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", checkpoints.MARKER):
        (checkpoint / name).unlink(missing_ok=True)


def _resume(run: Path, outputs: Path | None = None) -> CliResult:
    return run_module(
        "repro", "sft-1130", "--profile", "smoke", "--out", str(run), "--resume",
        env=_env(outputs or _outputs(run)),
    )  # fmt: skip


# ------------------------------------------------------------------ torn and incomplete checkpoints


@pytest.mark.slow  # a resumed smoke run, beside the shared one
def test_resume_skips_a_torn_checkpoint_and_matches_an_uninterrupted_run(whole: Path, tmp_path: Path) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    _tear(run / "checkpoints" / "checkpoint-3")  # killed (or out of disk) while writing the last one
    result = _resume(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping incomplete checkpoint checkpoint-3" in result.stdout, result.stdout[-2000:]
    assert f"resuming from {run / 'checkpoints' / 'checkpoint-2'}" in result.stdout
    assert_same_weights(run / "final", whole / "final")
    manifest = json.loads((run / "manifest.json").read_text())
    assert (
        manifest["metrics"]["step_losses"]
        == json.loads((whole / "manifest.json").read_text())["metrics"]["step_losses"]
    )
    assert manifest["metrics"]["train_loss"] == pytest.approx(
        json.loads((whole / "manifest.json").read_text())["metrics"]["train_loss"], rel=1e-6
    )  # over all three steps, not only the one this process ran
    assert [r["from_checkpoint"] for r in manifest["resumes"]] == ["checkpoint-2"]
    assert manifest["command"] == json.loads((whole / "manifest.json").read_text())["command"]


def test_a_checkpoint_is_complete_only_with_its_marker_and_every_file_whole(whole: Path) -> None:
    ckpt = whole / "checkpoints" / "checkpoint-1"
    assert checkpoints.problem(ckpt) is None
    assert checkpoints.scan(whole / "checkpoints").newest == whole / "checkpoints" / "checkpoint-3"


def test_marker_catches_a_missing_or_shortened_file(whole: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(whole / "checkpoints" / "checkpoint-1", ckpt)
    (ckpt / "optimizer.pt").write_bytes((ckpt / "optimizer.pt").read_bytes()[:-1])
    assert "optimizer.pt has" in checkpoints.problem(ckpt)
    (ckpt / "optimizer.pt").unlink()
    assert "optimizer.pt is missing" in checkpoints.problem(ckpt)
    (ckpt / checkpoints.MARKER).unlink()
    assert "no checkpoint_complete.json" in checkpoints.problem(ckpt)


def kill_when(start: Callable[[int], tuple[subprocess.Popen, Path]], appears: str, attempts: int = 5) -> Path:
    """SIGKILL a run the moment `appears` (relative to its folder) exists, while the checkpoint holding it
    is still being written (no completion marker yet); retry when the run outran the kill."""
    for attempt in range(attempts):
        proc, run = start(attempt)
        deadline = time.time() + 300
        while not (run / appears).exists():
            assert proc.poll() is None and time.time() < deadline, _finish(proc).stderr[-2000:]
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (run / Path(appears).parent / checkpoints.MARKER).exists():
            return run
    pytest.fail(f"could not kill a smoke run while it was writing {appears}")


@pytest.mark.slow  # a killed and a resumed smoke run, beside the shared one
def test_kill_while_a_checkpoint_is_written_then_resume(whole: Path, tmp_path: Path) -> None:
    outputs = _outputs(whole)
    run = kill_when(
        lambda attempt: (_start(outputs, tmp_path / f"killed-{attempt}"), tmp_path / f"killed-{attempt}"),
        "checkpoints/checkpoint-2/model.safetensors",
    )
    assert not (run / "manifest.json").exists()
    result = _resume(run, outputs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping incomplete checkpoint checkpoint-2" in result.stdout, result.stdout[-2000:]
    assert f"resuming from {run / 'checkpoints' / 'checkpoint-1'}" in result.stdout
    assert_same_weights(run / "final", whole / "final")


# ------------------------------------------------------------------ one run per output folder


@pytest.mark.slow  # a smoke run (and a refused one), beside the shared one
def test_two_runs_started_together_into_one_folder(whole: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    procs = [_start(_outputs(whole), out) for _ in range(2)]
    results = [_finish(p) for p in procs]
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [(r.returncode, r.stderr[-1500:]) for r in results]
    refused = next(r for r in results if r.returncode == 2)
    refused.assert_usage_error()
    # refused while the other ran, or (on a slow machine) found its finished run under the lock
    assert "in use by another run (pid" in refused.stderr or "already holds a finished" in refused.stderr
    assert_same_weights(out / "final", whole / "final")


def test_a_live_run_refuses_a_second_one_and_a_killed_one_blocks_nothing(whole: Path, tmp_path: Path) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    holder = hold_lock(run, "python -m repro sft-1130 (test holder)")
    try:
        started = time.time()
        _resume(run).assert_usage_error("in use by another run", f"pid {holder.pid}", "test holder")
        assert time.time() - started < 60  # refused before loading anything
        assert not (run / "final").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_lock.holder(run) is None  # the kernel released it with the dead process
    with run_lock.hold(run, "next run") as held:
        assert held.fd is not None


# ------------------------------------------------------------------ --resume must match the run


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--override", "learning_rate=1e-5"], ["learning_rate=1e-05 (started with 9e-05)"]),
        (["--seed", "7"], ["seed=7 (started with 123)"]),
        (["--per-device-batch", "4"], ["batch split 4 per device x 2 accumulation", "started with 8 per"]),
    ],
    ids=["override", "seed", "batch-split"],
)
def test_resume_with_other_settings_is_refused(
    whole: Path, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    result = run_module(
        "repro",
        "sft-1130",
        "--profile",
        "smoke",
        "--out",
        str(run),
        "--resume",
        *args,
        env=_env(_outputs(run)),
    )
    result.assert_usage_error("--resume", "started with other settings", *needles)
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before


@pytest.mark.slow  # refused after loading, beside the shared smoke run
def test_resume_from_another_model_is_refused(whole: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    result = run_module(
        "repro", "sft-1130", "--profile", "smoke", "--out", str(run), "--resume", "--from",
        str(tiny_model_dir), env=_env(_outputs(run)),
    )  # fmt: skip
    result.assert_usage_error(f"model input {tiny_model_dir.resolve()} (started from", "_tiny-model")
    assert not (run / "final").exists()


def test_resume_with_another_recipe_is_refused(whole: Path, tmp_path: Path) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    result = run_module(
        "repro", "sft-1207", "--profile", "smoke", "--out", str(run), "--resume", env=_env(_outputs(run))
    )
    result.assert_usage_error("recipe sft-1207 (started as sft-1130)", "learning_rate")


# ------------------------------------------------------------------ model folders


def _model_copy(tiny_model_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_model_dir, dest)
    return dest


def _bin_only(tiny_model_dir: Path, dest: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    folder = _model_copy(tiny_model_dir, dest)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def _truncated(tiny_model_dir: Path, dest: Path) -> Path:
    folder = _model_copy(tiny_model_dir, dest)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return folder


def _no_tokenizer(tiny_model_dir: Path, dest: Path) -> Path:
    folder = _model_copy(tiny_model_dir, dest)
    (folder / "tokenizer.json").unlink()
    return folder


def _edit_config(key: str, value: object) -> Callable[[Path, Path], Path]:
    def make(tiny_model_dir: Path, dest: Path) -> Path:
        folder = _model_copy(tiny_model_dir, dest)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        return folder

    return make


def _missing_shard(tiny_model_dir: Path, dest: Path) -> Path:
    folder = _model_copy(tiny_model_dir, dest)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


BAD_FOLDERS = {
    "bin-only": (_bin_only, "safetensors only"),
    "truncated-safetensors": (_truncated, "not a whole safetensors file"),
    "no-tokenizer": (_no_tokenizer, "no tokenizer"),
    "remote-code": (
        _edit_config("auto_map", {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}),
        "remote code",
    ),
    "unknown-model-type": (_edit_config("model_type", "no-such-arch"), "not implemented by transformers"),
    "missing-shard": (_missing_shard, "model-00002-of-00002.safetensors"),
}


@pytest.mark.parametrize("name", list(BAD_FOLDERS))
def test_resolver_refuses_a_model_folder_the_suite_must_not_load(
    name: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    make, needle = BAD_FOLDERS[name]
    folder = make(tiny_model_dir, tmp_path / name)
    with pytest.raises(UsageError, match=needle) as caught:
        resolve(str(folder))
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match=needle):
        model_folder.check(folder)


def test_an_unfinished_run_is_not_a_model(whole: Path, tmp_path: Path) -> None:
    run = _copy(whole, tmp_path)
    _unfinish(run)
    with pytest.raises(UsageError, match=r"an unfinished `python -m repro` run .*--resume"):
        resolve(str(run))
    assert resolve(str(whole)).path == (whole / "final").resolve()


def test_resolver_accepts_the_embedded_model(tiny_model_dir: Path) -> None:
    assert resolve(str(tiny_model_dir)).path == tiny_model_dir.resolve()


@pytest.mark.parametrize("name", ["bin-only", "truncated-safetensors"])
def test_training_from_a_bad_folder_is_refused(name: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    make, needle = BAD_FOLDERS[name]
    folder = make(tiny_model_dir, tmp_path / name)
    result = _repro(tmp_path / "outputs", "--from", str(folder), name="dpo-1130")
    result.assert_usage_error("--from", needle)
    assert not (tmp_path / "outputs" / "smoke" / "dpo-1130").exists()


@pytest.mark.parametrize("name", ["bin-only", "remote-code"])
def test_evaluating_a_bad_folder_is_refused(name: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    make, needle = BAD_FOLDERS[name]
    folder = make(tiny_model_dir, tmp_path / name)
    result = run_module(
        "evalsuite", "run", "--model", str(folder), "--data-dir", str(DEMO_DATA), "--benchmarks", "piqa",
        "--limit", "1", "--output", str(tmp_path / "eval-out"), "--no-progress", env=OFFLINE,
    )  # fmt: skip
    result.assert_usage_error(needle)
    assert not (tmp_path / "eval-out").exists()


# ------------------------------------------------------------------ impossible numbers and output paths


def _impossible(tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    a_file = tmp_path / "a-file"  # the test writes it
    return {
        "world size 0": (["--world-size", "0"], {}, "world size 0"),
        "negative world size": (["--world-size", "-2"], {}, "world size -2"),
        "WORLD_SIZE not a number": ([], {"WORLD_SIZE": "two"}, "WORLD_SIZE"),
        "batch 0": (["--override", "effective_batch_size=0"], {}, "effective_batch_size=0"),
        "fractional batch": (["--override", "effective_batch_size=2.5"], {}, "whole number"),
        "per-device batch 0": (["--per-device-batch", "0"], {}, "per-device batch 0"),
        "learning rate NaN": (["--override", "learning_rate=.nan"], {}, "finite"),
        "negative learning rate": (["--override", "learning_rate=-1e-5"], {}, "above 0"),
        "infinite learning rate": (["--override", "learning_rate=.inf"], {}, "finite"),
        "negative seed": (["--seed", "-1"], {}, "seed -1"),
        "seed beyond 2**32": (["--seed", str(2**32)], {}, "seed 4294967296"),
        "warmup ratio 1": (["--override", "warmup_ratio=1.5"], {}, "warmup_ratio"),
        "max length 0": (["--override", "max_length=0"], {}, "max_length=0"),
        "unknown scheduler": (["--override", "lr_scheduler_type=sideways"], {}, "TRL refuses"),
        "output under a file": (["--out", str(a_file / "run")], {}, "is a file"),
        "output is a file": (["--out", str(a_file)], {}, "is a file"),
        "output on a read-only filesystem": (["--out", "/proc/version/run"], {}, "cannot write --out"),
    }


IMPOSSIBLE = list(_impossible(Path("/nonexistent")))


@pytest.mark.parametrize("name", IMPOSSIBLE)
def test_impossible_numbers_and_paths_are_one_line_and_leave_nothing(name: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    args, env, needle = _impossible(tmp_path)[name]
    outputs = tmp_path / "outputs"
    result = run_module(
        "repro", "sft-1130", "--profile", "smoke", *args, env={**_env(outputs), **env}, cwd=tmp_path
    )
    result.assert_usage_error(needle)
    left = [p for p in (outputs / "smoke").glob("*") if p.name != "_tiny-model"] if outputs.exists() else []
    assert not left, f"left behind: {left}"
    assert sorted(p.name for p in tmp_path.iterdir()) in (["a-file"], ["a-file", "outputs"])
    assert (tmp_path / "a-file").read_text() == "not a folder"
