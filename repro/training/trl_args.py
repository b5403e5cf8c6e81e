"""Recipe -> TRL config arguments: the one place where recipe keys meet TRL's names."""

from __future__ import annotations

from typing import Any

from core.errors import UsageError
from core.recipe import BatchPlan, Recipe
from repro import stages

# Recipe keys passed to TRL's config under the same name, per stage (SFT's config is
# repro.stages.sft_loss.ReproSFTConfig: TRL's SFTConfig plus loss_reduction; RLVR's is
# repro.stages.rlvr.RLVRConfig: TRL's RLOOConfig plus max_prompt_length and the reward values).
COMMON = (
    "learning_rate", "num_train_epochs", "lr_scheduler_type", "weight_decay",
    "optim", "max_grad_norm", "bf16", "seed",
)  # fmt: skip
STAGE_KEYS = {
    "sft": ("max_length", "packing", "padding_free", "assistant_only_loss", "loss_reduction"),
    "dpo": ("max_length", "beta", "precompute_ref_log_probs"),
    "rm": ("max_length", "adam_epsilon"),
    "rlvr": (
        "beta", "max_completion_length", "temperature", "num_generations", "num_iterations", "epsilon",
        "normalize_advantages", "adam_epsilon", "max_prompt_length", "verified_reward", "truncation_penalty",
        "ifeval_reward",
    ),
}  # fmt: skip
# Recipe keys that are not TRL arguments: what each becomes instead.
TRANSLATED = {
    "effective_batch_size": "per_device_train_batch_size x gradient_accumulation_steps x world size",
    "loss_type": "loss_type=[value] (DPOConfig takes a list)",
    "dropout": "disable_dropout=True when 0.0",
    "chat_template_name": "not a TRL argument: the chat template every stage renders and masks with "
    "(core/chat_templates.py; the pick is printed at start and recorded in manifest.json)",
    "warmup_ratio": "warmup_steps=ratio (transformers 5 reads a float below 1 as a ratio)",
    # RLVR (repro/stages/rlvr.py over TRL's RLOOTrainer)
    "local_rollout_batch_size": "generation_batch_size = local_rollout_batch_size x world_size (completions "
    "per generation round, each reused num_iterations times; repro.stages.rlvr.Rollout)",
    "local_mini_batch_size": "effective_batch_size must be local_mini_batch_size x world_size",
    "world_size": "Tulu 3's learner GPUs: multiplies the per-device rollout and minibatch (not this launch's "
    "process count, which only splits the effective batch)",
    "total_episodes": "max_steps = (total_episodes // rollout) x num_iterations x (rollout / effective "
    "batch), open-instruct's generation rounds times optimizer steps per round",
    "stop_token": "generation stops at the tokenizer's and generation_config's EOS ids (TRL's own rule)",
    "kl_estimator": "RLOO's KL penalty is kl1, log pi - log pi_ref summed over the response (the only one)",
    "deepspeed_stage": "not a TRL argument: launch with accelerate/zero3.yaml",
}


def config_class(stage: str) -> type:
    from trl import DPOConfig, RewardConfig

    from repro.stages.rlvr import RLVRConfig  # RLOOConfig plus the prompt limit and the reward values
    from repro.stages.sft_loss import ReproSFTConfig  # SFTConfig plus loss_reduction

    return {"sft": ReproSFTConfig, "dpo": DPOConfig, "rm": RewardConfig, "rlvr": RLVRConfig}[stage]


def _warmup(ratio: float) -> dict[str, float]:
    from transformers import TrainingArguments

    if "warmup_ratio" in TrainingArguments.__dataclass_fields__:  # transformers 4.x
        return {"warmup_ratio": ratio}
    return {"warmup_steps": float(ratio)}


def _checkpointing(stage: str) -> dict[str, Any]:
    """TRL's own default (gradient checkpointing on) under the name transformers 5 reads, so
    TrainingArguments does not warn about the deprecated `gradient_checkpointing` in every run."""
    from transformers import TrainingArguments

    if "activation_checkpointing" not in TrainingArguments.__dataclass_fields__:  # transformers 4.x
        return {}
    default = config_class(stage).__dataclass_fields__["gradient_checkpointing"].default
    return {"activation_checkpointing": default}


def trl_kwargs(recipe: Recipe, plan: BatchPlan, output_dir: str) -> dict[str, Any]:
    """Arguments for the stage's TRL config; every recipe value is used or translated."""
    hp = recipe.hyperparameters
    unused = set(hp) - set(COMMON) - set(STAGE_KEYS[recipe.stage]) - set(TRANSLATED)
    if unused:
        raise ValueError(f"recipe {recipe.name}: no TRL mapping for {sorted(unused)}")
    kwargs: dict[str, Any] = {k: hp[k].value for k in (*COMMON, *STAGE_KEYS[recipe.stage]) if k in hp}
    kwargs.update(
        output_dir=output_dir,
        per_device_train_batch_size=plan.per_device,
        gradient_accumulation_steps=plan.grad_accum,
        report_to="none",
        save_strategy="steps",
        logging_steps=1,
        **_checkpointing(recipe.stage),
    )
    if "loss_reduction" in hp:  # an argument of repro.stages.sft_loss.ReproSFTConfig, not of TRL's SFTConfig
        from repro.stages.sft_loss import REDUCTIONS, TOKEN_MEAN

        reduction = hp["loss_reduction"].value
        if reduction not in REDUCTIONS:
            raise UsageError(
                f"recipe {recipe.name}: loss_reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}"
            )
        # TRL's global token count (and its x world size) only for TRL's own token mean
        kwargs["average_tokens_across_devices"] = reduction == TOKEN_MEAN
    if "loss_type" in hp:
        kwargs["loss_type"] = [hp["loss_type"].value]
    if "warmup_ratio" in hp:
        kwargs.update(_warmup(hp["warmup_ratio"].value))
    if "dropout" in hp:
        kwargs["disable_dropout"] = hp["dropout"].value == 0.0
    kwargs.update(stages.hook(recipe.stage, "trl_kwargs")(recipe, plan))
    return kwargs
