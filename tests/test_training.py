"""`python -m repro NAME --profile smoke`: the chain SFT -> DPO -> RM on CPU, manifests, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, kill_after_first_checkpoint, run_module

from core import recipe


def _train(outputs: Path, *args: str):
    return run_module("repro", *args, "--profile", "smoke", env={"SMOLTULU_OUTPUTS": str(outputs)})


@pytest.fixture(scope="module")
def chain(smoke_outputs: Path) -> Path:
    """SFT (the shared session run) -> DPO -> RM, each stage finding its parent in SMOLTULU_OUTPUTS."""
    for name in ("dpo-1130", "rm-1130"):
        result = _train(smoke_outputs, name)
        assert result.returncode == 0, result.stderr[-3000:]
    return smoke_outputs / "smoke"


# Each test of the chain pays for two smoke trainings (~15 s of CPU) when it runs alone.
@pytest.mark.slow
def test_each_stage_leaves_a_loadable_checkpoint(chain: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    for name in ("sft-1130", "dpo-1130"):
        AutoModelForCausalLM.from_pretrained(chain / name / "final")
    rm = AutoModelForSequenceClassification.from_pretrained(chain / "rm-1130" / "final")
    tok = AutoTokenizer.from_pretrained(chain / "rm-1130" / "final")
    assert rm.config.pad_token_id == tok.pad_token_id != tok.eos_token_id
    assert not list((chain / "sft-1130" / "final").glob("*.bin"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sft-1130", "dpo-1130", "rm-1130"])
def test_manifest_records_the_run(chain: Path, name: str) -> None:
    m = json.loads((chain / name / "manifest.json").read_text())
    r = recipe.load(name)
    assert m["recipe"] == name and m["profile"] == "smoke" and m["seed"] == r.hp("seed")
    assert m["hyperparameters"]["learning_rate"] == {"value": r.hp("learning_rate"), "source": "paper " + (
        {"sft": "Table 2", "dpo": "Table 5", "rm": "Table 7"}[r.stage])}  # fmt: skip
    assert m["batch"]["per_device"] * m["batch"]["grad_accum"] * m["batch"]["world_size"] == r.hp(
        "effective_batch_size"
    )
    assert m["metrics"]["global_step"] == 3 and len(m["metrics"]["step_losses"]) == 3
    assert m["dataset"]["fingerprint"] and m["dataset"]["rows"] == 24
    assert {"torch", "transformers", "trl"} <= set(m["versions"])
    parent = {"sft-1130": "_tiny-model", "dpo-1130": "sft-1130/final", "rm-1130": "dpo-1130/final"}[name]
    assert Path(m["inputs"]["model"]["path"]) == (chain / parent).resolve()


def test_missing_parent_names_the_command(tmp_path: Path) -> None:
    _train(tmp_path, "dpo-1207").assert_usage_error("python -m repro sft-1207 --profile smoke")
    assert not (tmp_path / "smoke" / "dpo-1207").exists() or not any(
        (tmp_path / "smoke" / "dpo-1207").iterdir()
    )


def test_unfinished_output_needs_resume(tmp_path: Path) -> None:
    out = tmp_path / "smoke" / "sft-1130"
    (out / "checkpoints").mkdir(parents=True)
    _train(tmp_path, "sft-1130").assert_usage_error("--resume")


def _start(outputs: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "SMOLTULU_OUTPUTS": str(outputs)}
    cmd = [sys.executable, "-m", "repro", "sft-1130", "--profile", "smoke", "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _losses(out: Path) -> list[float]:
    return json.loads((out / "manifest.json").read_text())["metrics"]["step_losses"]


@pytest.mark.faults
@pytest.mark.slow  # a killed and a resumed smoke run, beside the shared uninterrupted one
def test_resume_after_sigkill_matches_an_uninterrupted_run(
    smoke_outputs: Path, smoke_sft: Path, tmp_path: Path
) -> None:
    whole = smoke_sft
    killed = kill_after_first_checkpoint(
        lambda attempt: (
            _start(smoke_outputs, tmp_path / f"killed-{attempt}"),
            tmp_path / f"killed-{attempt}",
        )
    )
    assert not (killed / "final").exists()
    assert _start(smoke_outputs, killed, "--resume").wait(timeout=300) == 0
    assert _losses(killed)[-1] == pytest.approx(_losses(whole)[-1], abs=1e-6)
    assert_same_weights(killed / "final", whole / "final")


def assert_same_weights(a: Path, b: Path) -> None:
    """Every tensor of two safetensors checkpoints is bit-identical (CPU, same seed)."""
    import torch
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
