"""RLVR on TRL's RLOOTrainer: verifiable rewards (repro/verifiers.py) in place of a reward model.

SmolTulu-1.7b-Reinforced was trained with PPO (its card); TRL 1.x has no PPO trainer, so this stage
runs RLOO, which keeps the card's KL-in-the-reward (beta x summed kl1), clipped ratio, epochs per
rollout batch and whitened advantages, and replaces the value model and GAE by the leave-one-out mean
of the prompt's other samples (recipes/_rlvr.yaml lists what cannot apply). Rows are Tulu 3's
RLVR rows (`messages`, `ground_truth`, `dataset`): the prompt is `messages` without a final assistant
turn, rendered with the selected chat template and its generation prompt, as open-instruct's
SFTGroundTruthDatasetProcessor does; prompts over `max_prompt_length` tokens are dropped and counted.

Batch sizes are open-instruct's: a per-device rollout and minibatch (the card's 32, as Tulu 3's
`--local_rollout_batch_size` / `--local_mini_batch_size`) times the recipe's `world_size` (`Rollout`).
TRL's RLOO clips the importance ratio of the whole sequence where open-instruct's PPO clips each
token's (TRL 1.x offers token-level ratios only in GRPO); the fraction of completions it clipped is
logged each step and recorded in the manifest (`clip_fractions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import RLOOConfig

from core import chat_templates
from core.chat_templates import Selection
from core.errors import UsageError
from repro import stages, verifiers

DATASET_COLUMNS = ("messages", "ground_truth", "dataset")  # Tulu 3's RLVR rows: the verifier and its truth
SMOKE_ROWS = "rlvr.jsonl"
# Smoke rollouts stop at this many tokens: the tiny random model almost never ends a response, so
# the recipe's 2048 would cost minutes of CPU per rollout; the cut responses get the truncation penalty.
SMOKE_COMPLETION_TOKENS = 32


def adjust_request(req: Any) -> Any:
    """A smoke run gets one device's rollout: its 24 rows could not fill the full world size's."""
    return one_device(req) if req.profile == "smoke" else req


def check_rows(dataset: Any, where: str, recipe: Any) -> None:
    """Every row must name a verifier that can score it."""
    verifiers.check_rows(dataset, where, recipe.hp("ifeval_reward"))


def config_overrides(recipe: Any, profile: str) -> dict[str, Any]:
    out: dict[str, Any] = {"use_vllm": use_vllm()}  # colocated vLLM generation on a GPU when installed
    if profile == "smoke":
        out["max_completion_length"] = SMOKE_COMPLETION_TOKENS
    return out


def dropped(trainer: Any, dataset: Any, config: Any) -> dict[str, int]:
    """open-instruct drops prompts over max_prompt_token_length: counted."""
    print(
        f"RLVR: {trainer.dropped_prompts} prompts over {config.max_prompt_length} tokens dropped; "
        f"generation with {'vLLM' if config.use_vllm else 'transformers'}"
    )
    return {"prompt_over_max_prompt_length": trainer.dropped_prompts}


def trl_kwargs(recipe: Any, plan: Any) -> dict[str, Any]:
    """Generation round and length of an RLVR run, in TRL's terms (refused when they cannot hold)."""
    sizes = rollout_of(recipe)
    verifiers.check_ifeval_reward(recipe.hp("ifeval_reward"))
    for key, supported in (("stop_token", "eos"), ("kl_estimator", "kl1")):
        if key in recipe.hyperparameters and recipe.hp(key) != supported:
            raise UsageError(
                f"recipe {recipe.name}: {key} {recipe.hp(key)!r}: RLOO supports only {supported!r}"
            )
    return {"generation_batch_size": sizes.rollout, "max_steps": max(sizes.optimizer_steps, 1)}


def manifest_extra(trainer: Any, config: Any) -> dict[str, Any]:
    return {"rlvr": _rlvr_record(trainer, config)}


def dry_run_lines(recipe: Any) -> list[str]:
    return [
        "",
        *describe_rollout(recipe),
        "",
        "RLVR trainer: TRL RLOOTrainer, not the card's PPO (TRL 1.x has none; recipes/_rlvr.yaml); "
        "it clips the whole sequence's importance ratio where PPO clips each token's (the fraction "
        "clipped is recorded in manifest.json); rewards from repro/verifiers.py (GSM8K, MATH, IFEval "
        f"by {recipe.hp('ifeval_reward')}); generation with "
        + ("vLLM (installed, GPU present)" if use_vllm() else "transformers (vLLM needs a GPU)"),
    ]


CLIP_KEYS = ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean")  # TRL RLOO's logs


def _rlvr_record(trainer: Any, config: Any) -> dict[str, Any]:
    """The trainer actually run, its generation backend and each step's verifier and reward figures."""
    keys = ("reward", "rlvr/verified", "rlvr/truncated", "kl", *CLIP_KEYS)
    steps = [
        {"step": e["step"], **{k: e[k] for k in keys if k in e}}
        for e in trainer.state.log_history
        if "loss" in e and any(k in e for k in keys)  # generation steps (a rollout is reused num_iterations)
    ]
    clipped = [e[CLIP_KEYS[0]] for e in trainer.state.log_history if CLIP_KEYS[0] in e]
    return {
        "trainer": type(trainer).__mro__[1].__name__,
        # TRL's RLOO clips the sequence's ratio (PPO clips each token's): the share of completions clipped
        "clip_fraction": {
            "ratio": "sequence",
            "mean": sum(clipped) / len(clipped) if clipped else None,
            "max": max(clipped) if clipped else None,
            "steps": len(clipped),
        },
        "departure": "PPO on the card; TRL has no PPO trainer, RLOO instead (recipes/_rlvr.yaml)",
        "generation": "vllm" if config.use_vllm else "transformers",
        "max_completion_length": config.max_completion_length,  # SMOKE_COMPLETION_TOKENS in a smoke run
        "steps": steps,
    }


KEEP = ("prompt", "ground_truth", "dataset")


@dataclass
class RLVRConfig(RLOOConfig):
    """TRL's RLOOConfig plus the RLVR reward and prompt limit (module level, so checkpoints can pickle it)."""

    max_prompt_length: int | None = field(
        default=None, metadata={"help": "drop prompts longer than this many tokens (chat template applied)"}
    )
    verified_reward: float = field(default=verifiers.VERIFIED_REWARD, metadata={"help": "reward if verified"})
    truncation_penalty: float = field(
        default=-10.0, metadata={"help": "reward of a response that never produced an EOS token"}
    )
    ifeval_reward: str = field(
        default=verifiers.OPEN_INSTRUCT,
        metadata={"help": "IFEval rewards: open-instruct (Tulu 3's functions) or eval-checkers"},
    )


@dataclass(frozen=True)
class Rollout:
    """Tulu 3's generation round and minibatch, as open-instruct 816dcbf sizes them
    (ppo_vllm_thread_ray_gtrl.py): per-device sizes x world size, rounds = episodes // rollout."""

    local_rollout: int  # completions per device per generation round (--local_rollout_batch_size)
    local_minibatch: int  # completions per device per optimizer step (--local_mini_batch_size)
    world_size: int  # learner GPUs (--actor_num_gpus_per_node summed)
    total_episodes: int
    epochs: int  # PPO epochs over each round (num_iterations)

    @property
    def rollout(self) -> int:
        return self.local_rollout * self.world_size

    @property
    def minibatch(self) -> int:
        return self.local_minibatch * self.world_size

    @property
    def rounds(self) -> int:  # open-instruct's num_training_steps
        return self.total_episodes // self.rollout

    @property
    def optimizer_steps(self) -> int:
        return self.rounds * self.epochs * (self.rollout // self.minibatch)


KEYS = ("local_rollout_batch_size", "local_mini_batch_size", "world_size")


def rollout_of(recipe: Any) -> Rollout:
    """The recipe's rollout sizes, refused (one line) when they cannot make Tulu 3's schedule."""
    for key in KEYS:
        value = recipe.hp(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"recipe {recipe.name}: {key} {value!r} must be a whole number, at least 1")
    sizes = Rollout(*(recipe.hp(k) for k in KEYS), recipe.hp("total_episodes"), recipe.hp("num_iterations"))
    generations, effective = recipe.hp("num_generations"), recipe.hp("effective_batch_size")
    if sizes.local_rollout % sizes.local_minibatch or sizes.rollout % generations:
        raise UsageError(
            f"recipe {recipe.name}: local_rollout_batch_size {sizes.local_rollout} must be a multiple of "
            f"local_mini_batch_size {sizes.local_minibatch}, and the rollout {sizes.rollout} of "
            f"num_generations {generations}"
        )
    if effective != sizes.minibatch:
        raise UsageError(
            f"recipe {recipe.name}: effective_batch_size {effective} must be local_mini_batch_size "
            f"{sizes.local_minibatch} x world_size {sizes.world_size} = {sizes.minibatch}; override both"
        )
    return sizes


def one_device(req: Any) -> Any:
    """A run request with one device's rollout and minibatch (world_size 1, recorded as overrides): the
    smoke profile's, whose 24 rows could not fill a round of the full world size's 112 prompts."""
    from dataclasses import replace

    from core.recipe import apply_overrides, plan_batch

    one = apply_overrides(
        req.recipe, ["world_size=1", f"effective_batch_size={req.recipe.hp('local_mini_batch_size')}"]
    )
    return replace(req, recipe=one, plan=plan_batch(one.hp("effective_batch_size"), req.plan.world_size))


def describe_rollout(recipe: Any) -> list[str]:
    """The dry run's account of the rollout sizes, each with its source."""
    sizes = rollout_of(recipe)
    src = {k: recipe.hyperparameters[k].source for k in (*KEYS, "total_episodes", "num_iterations")}
    prompts = sizes.rollout // recipe.hp("num_generations")
    return [
        "RLVR rollout and minibatch (open-instruct: per device x world size):",
        f"  per device: rollout {sizes.local_rollout} [{src['local_rollout_batch_size']}], minibatch "
        f"{sizes.local_minibatch} [{src['local_mini_batch_size']}]",
        f"  world size {sizes.world_size} [{src['world_size']}]",
        f"  global: rollout {sizes.local_rollout} x {sizes.world_size} = {sizes.rollout} completions per "
        f"generation round ({prompts} prompts x num_generations {recipe.hp('num_generations')}) = TRL "
        f"generation_batch_size; minibatch {sizes.local_minibatch} x {sizes.world_size} = {sizes.minibatch} "
        "= effective_batch_size, one optimizer step",
        f"  {sizes.total_episodes:,} episodes [{src['total_episodes']}] // {sizes.rollout} = "
        f"{sizes.rounds:,} rounds x {sizes.epochs} epochs [{src['num_iterations']}] x "
        f"{sizes.rollout // sizes.minibatch} minibatch(es) = {sizes.optimizer_steps:,} optimizer steps "
        "(TRL max_steps)",
    ]


def _prompt(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    return turns[:-1] if len(turns) > 1 and turns[-1]["role"] == "assistant" else turns


def prepare(dataset: Any, tokenizer: Any, max_prompt_length: int | None) -> tuple[Any, int]:
    """TRL's conversational `prompt` rows with the verifier's columns; rows over the limit dropped."""
    from trl.trainer.utils import global_then_local_main_first

    def row(example: dict[str, Any]) -> dict[str, Any]:
        prompt = _prompt(example["messages"])
        text = chat_templates.render(tokenizer, prompt, add_generation_prompt=True)  # time-limited
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return {"prompt": prompt, "prompt_tokens": tokens}

    with global_then_local_main_first():  # one process writes the datasets cache
        rows = dataset.map(row, desc="Rendering RLVR prompts")
        if max_prompt_length is not None:
            rows = rows.filter(lambda r: r["prompt_tokens"] <= max_prompt_length, desc="Prompt length filter")
    dropped = len(dataset) - len(rows)
    return rows.remove_columns([c for c in rows.column_names if c not in KEEP]), dropped


class VerifiableReward:
    """The reward function TRL calls: Tulu 3's verifier score, the card's penalty for cut responses.

    A completion is cut when its last token is not an EOS id (TRL keeps the EOS it stopped at, the same
    test as its `completions/clipped_ratio`). The verifier runs on every completion, cut or not, so the
    logged `rlvr/verified` is the verifiers' own rate; the penalty then replaces a cut one's score.
    """

    __name__ = "verifiable_reward"  # TRL names a reward function's logs by it

    def __init__(
        self, verified_reward: float, penalty: float, ifeval_reward: str = verifiers.OPEN_INSTRUCT
    ) -> None:
        self.verified_reward = verified_reward
        self.penalty = penalty
        self.ifeval_reward = verifiers.check_ifeval_reward(ifeval_reward)
        self.eos_token_ids: tuple[int, ...] = ()

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]],
        ground_truth: list[Any],
        dataset: list[str],
        log_metric: Any = None,
        **_: Any,
    ) -> list[float]:
        rewards, verified, cut = [], 0, 0
        for prompt, completion, ids, truth, kind in zip(
            prompts, completions, completion_ids, ground_truth, dataset, strict=True
        ):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            asked = verifiers.prompt_text(prompt) if isinstance(prompt, list) else str(prompt)
            ok = verifiers.verify(text, truth, kind, asked, self.ifeval_reward)
            truncated = not ids or ids[-1] not in self.eos_token_ids
            verified += ok
            cut += truncated
            rewards.append(self.penalty if truncated else self.verified_reward if ok else 0.0)
        if log_metric is not None and rewards:
            log_metric("rlvr/verified", verified / len(rewards))
            log_metric("rlvr/truncated", cut / len(rewards))
        return rewards


def use_vllm() -> bool:
    """Generate with vLLM (colocated) when it is installed and a GPU is present, as evalsuite does."""
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def trainer_class() -> type:
    from trl import RLOOTrainer

    class RLVRTrainer(RLOOTrainer):
        """RLOOTrainer whose verifiable reward learns the EOS ids TRL stops generation at, with weight
        decay on every parameter as open-instruct's policy optimizer."""

        get_decay_parameter_names = staticmethod(stages.decay_every_parameter)

        def __init__(self, *args: Any, reward: VerifiableReward, **kwargs: Any) -> None:
            super().__init__(*args, reward_funcs=[reward], **kwargs)
            reward.eos_token_ids = tuple(self.eos_token_ids)

    return RLVRTrainer


def policy_dtype(config: Any) -> str:
    """bfloat16 on a GPU, as Tulu 3 loaded its policy (DeepSpeed, as accelerate/zero3.yaml launches it,
    keeps float32 master weights in the optimizer); float32 on CPU, where bf16 matmuls are slow."""
    import torch

    return "bfloat16" if config.bf16 and torch.cuda.is_available() and not config.use_cpu else "float32"


def build(
    model_dir: Path, tokenizer: Any, dataset: Any, config: Any, template: Selection | None = None
) -> Any:
    from transformers import AutoModelForCausalLM

    if template is None:
        template = chat_templates.for_dataset(tokenizer, dataset)
    tokenizer.chat_template = chat_templates.saved_template(
        tokenizer, template
    )  # TRL renders prompts with it
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, dropped = prepare(dataset, tokenizer, config.max_prompt_length)
    if len(rows) == 0:
        from core.errors import UsageError

        raise UsageError(f"every prompt is longer than max_prompt_length {config.max_prompt_length} tokens")
    # The reference (beta > 0) is loaded by TRL from the same folder as the policy, in its dtype.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=policy_dtype(config))
    reward = VerifiableReward(config.verified_reward, config.truncation_penalty, config.ifeval_reward)
    trainer = trainer_class()(
        model=model, args=config, train_dataset=rows, processing_class=tokenizer, reward=reward
    )
    trainer.dropped_prompts = dropped  # read by repro.training.run for the manifest
    return trainer
