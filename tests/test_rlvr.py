"""`python -m repro rlvr-1130`: the recipe against the card, its TRL mapping, dry run, smoke run, resume."""

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

from repro import checkpoints, recipe, trl_args

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# The card of SultanR/SmolTulu-1.7b-Reinforced (README 2116ae7), as issue 19 transcribes it.
CARD = {
    "learning_rate": 3e-6,
    "total_episodes": 10_000_000,
    "beta": 0.05,
    "max_prompt_length": 2048,
    "max_completion_length": 2048,
    "rollout_batch_size": 32,
    "effective_batch_size": 32,  # the card's minibatch
    "temperature": 1.0,
    "truncation_penalty": -10.0,
    "deepspeed_stage": 3,
}
# open-instruct 816dcbf ppo_vllm_thread_ray_gtrl.py: the critic's values, which RLOO has no use for.
CRITIC = {"value_model_init", "vf_coef", "cliprange_value", "gamma", "lam"}


def test_recipe_holds_the_cards_values_each_with_a_source() -> None:
    r = recipe.load("rlvr-1130")
    assert r.stage == "rlvr" and r.inputs["model"].value == "dpo-1130"
    assert r.inputs["dataset"].value == "rlvr-mixture"
    for key, value in CARD.items():
        assert r.hp(key) == value, key
        assert r.hyperparameters[key].source.startswith("card: "), key
    for section in (r.inputs, r.hyperparameters, r.not_applicable):
        for key, item in section.items():
            assert item.source.startswith(("card: ", "Tulu 3 default", "assumption: ")), (key, item.source)
    assert set(r.not_applicable) >= CRITIC


def test_trl_arguments() -> None:
    r = recipe.load("rlvr-1130")
    plan = recipe.plan_batch(r.hp("effective_batch_size"), 1)
    kwargs = trl_args.trl_kwargs(r, plan, "/tmp/out")
    # 10M episodes, each 32-episode rollout reused for 4 PPO epochs of one 32-episode minibatch each
    assert kwargs["max_steps"] == 10_000_000 // 32 * 4
    assert kwargs["generation_batch_size"] == 32 and kwargs["num_generations"] == 2
    assert kwargs["beta"] == 0.05 and kwargs["epsilon"] == 0.2 and kwargs["num_iterations"] == 4
    config = trl_args.config_class("rlvr")(**kwargs, use_cpu=True)
    assert config.truncation_penalty == -10.0 and config.max_prompt_length == 2048
    assert config.steps_per_generation * config.per_device_train_batch_size == 32


def test_unsupported_kl_estimator_is_refused(tmp_path: Path) -> None:
    result = run_module(
        "repro", "rlvr-1130", "--dry-run", "--override", "kl_estimator=kl3", env=OFFLINE, cwd=tmp_path
    )
    result.assert_usage_error("kl_estimator", "kl1")


def test_dry_run_shows_sources_departure_and_unused_values() -> None:
    result = run_module("repro", "rlvr-1130", "--dry-run", env=OFFLINE)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    needles = (
        "card: learning rate 3e-6", "RLOOTrainer, not the card's PPO", "value_model_init",
        "max_steps = 1250000", "generation_batch_size = 32", "allenai/RLVR-GSM-MATH-IF-Mixed-Constraints",
    )  # fmt: skip
    for needle in needles:
        assert needle in out, needle


def _env(outputs: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **OFFLINE, "SMOLTULU_OUTPUTS": str(outputs), "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": path}  # fmt: skip


def _start(outputs: Path, model: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "repro", "rlvr-1130", "--profile", "smoke", "--from", str(model),
           "--out", str(out), *extra]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=ROOT, env=_env(outputs), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    outputs = tmp_path_factory.mktemp("outputs")
    out = outputs / "smoke" / "rlvr-1130"
    assert _start(outputs, tiny_model_dir, out).wait(timeout=900) == 0
    return out


@pytest.mark.slow
def test_smoke_run_trains_on_verifier_rewards(smoke: Path) -> None:
    from transformers import AutoModelForCausalLM

    m = json.loads((smoke / "manifest.json").read_text())
    assert m["stage"] == "rlvr" and m["profile"] == "smoke" and m["metrics"]["global_step"] == 3
    assert m["dataset"]["rows"] == 24 and m["dataset"]["dropped"] == {"prompt_over_max_prompt_length": 0}
    assert m["rlvr"]["trainer"] == "RLOOTrainer" and m["rlvr"]["generation"] == "transformers"
    first = m["rlvr"]["steps"][0]
    # every reward is 10 (verified), 0 or -10 (cut): the batch mean is their mix, as the fractions say
    cut, verified = first["rlvr/truncated"], first["rlvr/verified"]
    assert -10.0 * cut <= first["reward"] <= -10.0 * cut + 10.0 * (1 - cut) + 1e-6
    assert 0.0 <= verified <= 1.0
    AutoModelForCausalLM.from_pretrained(smoke / "final")


@pytest.mark.slow
@pytest.mark.faults
def test_resume_after_sigkill_continues_the_run(smoke: Path, tiny_model_dir: Path) -> None:
    outputs = smoke.parents[1]
    killed = outputs / "killed"
    proc = _start(outputs, tiny_model_dir, killed)
    marker = killed / "checkpoints" / "checkpoint-1" / checkpoints.MARKER
    deadline = time.time() + 900
    while not marker.exists():  # the first checkpoint complete, the run not yet at its second
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()
    assert _start(outputs, tiny_model_dir, killed, "--resume").wait(timeout=900) == 0
    m = json.loads((killed / "manifest.json").read_text())
    assert m["metrics"]["global_step"] == 3 and (killed / "final" / "model.safetensors").is_file()
    assert [r["from_checkpoint"] for r in m["resumes"]] == ["checkpoint-1"]
    # TRL keeps its rollout buffer in memory only: the resumed run regenerates, so the weights are not
    # compared with the uninterrupted run's (they differ by the new rollout's samples).


def test_rlvr_weight_decay_reaches_every_parameter() -> None:
    """open-instruct's policy optimizer is AdamW over policy.parameters(): norms and biases decay too."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from repro import stages
    from repro.stages import rlvr

    shape = {"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32}
    model = LlamaForCausalLM(LlamaConfig(hidden_size=8, intermediate_size=16, **shape))
    names = rlvr.trainer_class().get_decay_parameter_names(model)
    assert names == [n for n, _ in model.named_parameters()] and any("norm" in n for n in names)
    assert rlvr.trainer_class().get_decay_parameter_names is stages.decay_every_parameter


def test_a_retrained_rlvr_run_fills_the_reinforced_card_column(tmp_path: Path) -> None:
    """`evalsuite run --model outputs/rlvr-1130` labels its results by the recipe name, which is the
    model of the Reinforced card's column: a real run fills that row, a smoke run never does."""
    from evalsuite import run_cmd
    from evalsuite.report import reported
    from repro.resolve import Resolved

    scores = reported.load()
    card = next(t for t in scores.tables if t.kind == "model-card" and "Reinforced" in t.title)
    final = tmp_path / "rlvr-1130" / "final"
    final.mkdir(parents=True)
    for profile, label in (("real", "rlvr-1130"), ("smoke", "rlvr-1130-smoke")):
        manifest = {"recipe": "rlvr-1130", "profile": profile}
        (final.parent / "manifest.json").write_text(json.dumps(manifest))
        assert run_cmd._label(str(final), Resolved(final, "repro-output")) == label
    assert [c.model for c in card.columns] == ["rlvr-1130"]
