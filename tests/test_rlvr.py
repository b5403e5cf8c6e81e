"""`python -m repro rlvr-1130`: the recipe against the card, its TRL mapping, dry run, smoke run, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_module

from core import recipe
from core.errors import UsageError
from repro import verifiers
from repro.training import checkpoints, trl_args

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# The card of SultanR/SmolTulu-1.7b-Reinforced (README 2116ae7), as issue 19 transcribes it.
CARD = {
    "learning_rate": 3e-6,
    "total_episodes": 10_000_000,
    "beta": 0.05,
    "max_prompt_length": 2048,
    "max_completion_length": 2048,
    "local_rollout_batch_size": 32,  # the card's rollout batch, per device as open-instruct counts it
    "local_mini_batch_size": 32,  # the card's minibatch, per device
    "temperature": 1.0,
    "truncation_penalty": -10.0,
    "deepspeed_stage": 3,
}
# open-instruct 816dcbf ppo_vllm_thread_ray_gtrl.py: the critic's values, which RLOO has no use for.
CRITIC = {"value_model_init", "vf_coef", "cliprange_value", "gamma", "lam"}
# docs/tulu3.md's 8B RLVR command: --actor_num_gpus_per_node 7. open-instruct's arithmetic (816dcbf):
# rollout_batch_size = local_rollout_batch_size x world_size, mini_batch_size likewise,
# num_training_steps = total_episodes // rollout_batch_size, each trained num_epochs (4) times over
# rollout_batch_size // mini_batch_size minibatches.
TULU3_GPUS = 7
TULU3_ROUNDS = 10_000_000 // (32 * TULU3_GPUS)
TULU3_OPTIMIZER_STEPS = TULU3_ROUNDS * 4 * 1


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
    assert r.hp("world_size") == TULU3_GPUS and r.hp("ifeval_reward") == "open-instruct"


def test_trl_arguments() -> None:
    r = recipe.load("rlvr-1130")
    plan = recipe.plan_batch(r.hp("effective_batch_size"), 1)
    assert plan.effective == 32 * TULU3_GPUS  # the global minibatch: one optimizer step
    kwargs = trl_args.trl_kwargs(r, plan, "/tmp/out")
    assert kwargs["max_steps"] == TULU3_OPTIMIZER_STEPS == 178_568
    assert kwargs["generation_batch_size"] == 32 * TULU3_GPUS and kwargs["num_generations"] == 2
    assert kwargs["beta"] == 0.05 and kwargs["epsilon"] == 0.2 and kwargs["num_iterations"] == 4
    config = trl_args.config_class("rlvr")(**kwargs, use_cpu=True)
    assert config.truncation_penalty == -10.0 and config.max_prompt_length == 2048
    assert config.steps_per_generation * config.per_device_train_batch_size == 32 * TULU3_GPUS
    assert config.ifeval_reward == "open-instruct"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["world_size=8"], "effective_batch_size 224 must be local_mini_batch_size 32 x world_size 8"),
        (["local_rollout_batch_size=48"], "must be a multiple of local_mini_batch_size 32"),
        (["ifeval_reward=lm-eval"], "ifeval_reward 'lm-eval'"),
    ],
)
def test_inconsistent_rollout_sizes_are_refused(overrides: list[str], needle: str) -> None:
    r = recipe.apply_overrides(recipe.load("rlvr-1130"), overrides)
    with pytest.raises(UsageError, match=needle):
        trl_args.trl_kwargs(r, recipe.plan_batch(r.hp("effective_batch_size"), 1), "/tmp/out")


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
        f"max_steps = {TULU3_OPTIMIZER_STEPS}", f"generation_batch_size = {32 * TULU3_GPUS}",
        "allenai/RLVR-GSM-MATH-IF-Mixed-Constraints", "IFEval by open-instruct",
        "whole sequence's importance",
        # the per-device sizes, the world size and the global ones, each with its source
        "per device: rollout 32 [card: rollout batch 32", "minibatch 32 [card: minibatch 32",
        f"world size {TULU3_GPUS} [Tulu 3 default: docs/tulu3.md 8B RLVR command --actor_num_gpus_per_node 7",
        f"rollout 32 x 7 = {32 * TULU3_GPUS} completions per generation round",
        f"minibatch 32 x 7 = {32 * TULU3_GPUS} = effective_batch_size",
        f"= {TULU3_ROUNDS:,} rounds x 4 epochs", f"= {TULU3_OPTIMIZER_STEPS:,} optimizer steps",
    )  # fmt: skip
    for needle in needles:
        assert needle in out, needle
    checkers = run_module(
        "repro", "rlvr-1130", "--dry-run", "--override", "ifeval_reward=eval-checkers", env=OFFLINE
    )
    assert checkers.returncode == 0 and "IFEval by eval-checkers" in checkers.stdout


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
    # one device's rollout (24 rows cannot fill 7 devices' 112 prompts), recorded as overrides
    assert m["overrides"] == ["world_size=1", "effective_batch_size=32"]
    # the sequence-level ratio's clipped fraction, from TRL's per-step logs
    clip = m["rlvr"]["clip_fraction"]
    assert clip["ratio"] == "sequence" and clip["steps"] == 3 and 0.0 <= clip["mean"] <= clip["max"] <= 1.0
    assert all("clip_ratio/region_mean" in s for s in m["rlvr"]["steps"])
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
    from core.resolve import Resolved
    from evalsuite import run_cmd
    from evalsuite.report import reported

    scores = reported.load()
    card = next(t for t in scores.tables if t.kind == "model-card" and "Reinforced" in t.title)
    final = tmp_path / "rlvr-1130" / "final"
    final.mkdir(parents=True)
    for profile, label in (("real", "rlvr-1130"), ("smoke", "rlvr-1130-smoke")):
        manifest = {"recipe": "rlvr-1130", "profile": profile}
        (final.parent / "manifest.json").write_text(json.dumps(manifest))
        assert run_cmd._label(str(final), Resolved(final, "repro-output")) == label
    assert [c.model for c in card.columns] == ["rlvr-1130"]


# --- the verifiers at work: fixed completions, then one real step ----------------------------------

SMOKE_ROWS = ROOT / "repro" / "data" / "smoke" / "rlvr.jsonl"
# (correct completion, wrong completion) for each smoke row, in file order, written from the task:
# the GSM8K/MATH answers worked by hand, the IFEval ones following or breaking the constraint as
# open-instruct 816dcbf's if_functions.py reads it.
FIXED = [
    ("She sold 48 + 24 = 72 clips.", "She sold 70 clips."),
    (r"The sum is $\boxed{\frac{3}{4}}$.", r"The sum is $\boxed{\frac{2}{6}}$."),
    ("rain taps on the window all day.", "Rain taps on the window all day."),
    ("7 books cost 7 x 12 = 84 dollars.", "They cost 19 dollars."),
    (r"So $x = \boxed{4}$.", r"So $x = \boxed{7}$."),
    ("Apples pears and plums.", "Apples, pears and plums."),
    ("He has 45 - 13 = 32 pencils.", "He has 58 pencils."),
    (r"$\sqrt{144} = \boxed{12}$", r"$\sqrt{144} = \boxed{14}$"),
    ("A river is flowing water.", " ".join(["water"] * 21)),
    ("It travels 60 x 3 = 180 miles.", "It travels 63 miles."),
    (r"100 = 7 \cdot 14 + 2, so $\boxed{2}$.", r"So $\boxed{3}$."),
    ("Miss you.\nP.S. Write soon.", "Miss you."),
    ("He has 60 - 6 = 54 cookies.", "He has 66 cookies."),
    (r"It is $\boxed{4x}$.", r"It is $\boxed{2x}$."),
    ("Rest well at night.", "Sleep well."),
    ("1200 - 450 = 750 apples.", "1650 apples."),
    (r"1, 2, 3, 4, 6, 12: $\boxed{6}$.", r"$\boxed{5}$."),
    ("y", "My answer is yes."),  # Tulu 3's validate_choice: only a response inside one option character
    ("28 x 3 = 84 notebooks.", "31 notebooks."),
    (r"$3^4 = \boxed{81}$", r"$3^4 = \boxed{12}$"),
    ("<<Sea>>\nWaves rise.", "Sea\nWaves rise."),
    ("25 x 8 = 200 dollars.", "33 dollars."),
    (r"$180(6-2) = \boxed{720}$", r"$\boxed{540}$"),
    ("Blue. That is all.", "That is all. Blue."),
]


def _rows() -> list[dict]:
    return [json.loads(line) for line in SMOKE_ROWS.read_text().splitlines() if line.strip()]


def test_fixed_completions_within_the_smoke_cap_earn_the_verifier_reward(tiny_model_dir: Path) -> None:
    """Through the reward function the trainer calls: a correct completion that fits the smoke cap and
    ends at EOS earns 10, a wrong one 0, a cut one -10 (no length of it is left to chance)."""
    from transformers import AutoTokenizer

    from repro.stages import rlvr
    from repro.stages.rlvr import SMOKE_COMPLETION_TOKENS

    rows = _rows()
    assert len(rows) == len(FIXED)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    eos = tokenizer.eos_token_id
    reward = rlvr.VerifiableReward(10.0, -10.0)
    reward.eos_token_ids = (eos,)
    logged: dict[str, float] = {}
    texts, ids, rows3 = [], [], []
    for row, (right, wrong) in zip(rows, FIXED, strict=True):
        for text, ended in ((right, True), (wrong, True), (right, False)):
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if ended else [])
            assert len(tokens) <= SMOKE_COMPLETION_TOKENS, text
            texts.append(text)
            ids.append(tokens)
            rows3.append(row)
    got = reward(
        prompts=[r["messages"] for r in rows3],
        completions=[[{"role": "assistant", "content": t}] for t in texts],
        completion_ids=ids,
        ground_truth=[r["ground_truth"] for r in rows3],
        dataset=[r["dataset"] for r in rows3],
        log_metric=logged.__setitem__,
    )
    assert got == [10.0, 0.0, -10.0] * len(rows)
    assert logged == {"rlvr/verified": 2 / 3, "rlvr/truncated": 1 / 3}


class _Recorded:
    """The stage's reward function, called as the trainer calls it, each call's inputs and rewards kept."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []
        self.__name__ = inner.__name__

    def __call__(self, **kwargs: Any) -> list[float]:
        rewards = self.inner(**kwargs)
        self.calls.append((kwargs, rewards))
        return rewards


@pytest.fixture(scope="module")
def one_step(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, _Recorded]:
    """One real RLOO step of the smoke recipe on the tiny model, generation biased towards EOS (a
    random model almost never ends a response, and only ended ones are scored by the verifier)."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from repro.stages import rlvr
    from repro.stages.rlvr import SMOKE_COMPLETION_TOKENS

    r = recipe.apply_overrides(recipe.load("rlvr-1130"), ["world_size=1", "effective_batch_size=32"])
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(32, 1), str(tmp_path_factory.mktemp("step")))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    kwargs.update(
        max_steps=1, save_strategy="no", use_cpu=True, max_completion_length=SMOKE_COMPLETION_TOKENS,
        generation_kwargs={"sequence_bias": {(tokenizer.eos_token_id,): 6.0}},
    )  # fmt: skip
    config = trl_args.config_class("rlvr")(**kwargs)
    trainer = rlvr.build(
        tiny_model_dir, tokenizer, load_dataset("json", data_files=str(SMOKE_ROWS))["train"], config
    )
    recorded = _Recorded(trainer.reward_funcs[0])
    trainer.reward_funcs[0] = recorded
    trainer.train()
    return trainer, recorded


def test_a_trained_step_is_rewarded_by_the_verifiers(one_step: tuple[Any, _Recorded]) -> None:
    trainer, recorded = one_step
    assert recorded.calls and trainer.state.global_step == 1
    eos = set(trainer.eos_token_ids)
    rewards = []
    for kwargs, got in recorded.calls:
        for prompt, completion, ids, truth, kind, value in zip(
            kwargs["prompts"], kwargs["completions"], kwargs["completion_ids"], kwargs["ground_truth"],
            kwargs["dataset"], got, strict=True,
        ):  # fmt: skip
            # the trainer's reward is the verifier's, recomputed here from the completion itself
            expected = verifiers.reward(
                completion[-1]["content"], truth, kind, truncated=not ids or ids[-1] not in eos,
                penalty=-10.0, prompt=verifiers.prompt_text(prompt),
            )  # fmt: skip
            assert value == expected
            rewards.append(value)
    assert 10.0 in rewards and 0.0 in rewards, rewards  # verified and unverified, not -10 for all
