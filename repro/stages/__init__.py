"""One module per training stage over its TRL trainer: sft, dpo, rm, rlvr.

A stage module defines `build(model_dir, tokenizer, dataset, config, template)` (its trainer),
`DATASET_COLUMNS` (the dataset columns it needs, in the real datasets' schemas) and `SMOKE_ROWS` (its file
in repro/data/smoke), and may define any hook in DEFAULTS to do what is particular to it. The
runner (repro/training/run.py) asks `hook(stage, name)` and names no stage itself.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

STAGES = ("sft", "dpo", "rm", "rlvr")

# TRL 1.x calls model.is_gradient_checkpointing and gradient_checkpointing_enable/_disable around
# generation and reference passes, names transformers 5 deprecated (activation_checkpointing): nothing
# of ours to change, and each FutureWarning would repeat every rollout.
warnings.filterwarnings(
    "ignore",
    message=r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated",
    category=FutureWarning,
    module="transformers",
)


def _unchanged(req: Any) -> Any:
    return req


def _nothing(*_args: Any) -> dict[str, Any]:
    return {}


def _no_check(dataset: Any, where: str, recipe: Any) -> None:
    return None


def _no_lines(recipe: Any) -> list[str]:
    return []


# hook name -> what a stage that does not define it gets
DEFAULTS: dict[str, Any] = {
    "adjust_request": _unchanged,  # (request) -> request: adjust a run before anything is checked
    "SMOKE_FROM_TINY_MODEL": False,  # the smoke profile starts from the embedded tiny model
    "extra_inputs": _nothing,  # (request) -> {name: Resolved}: inputs besides model and dataset
    "check_rows": _no_check,  # (dataset, where, recipe): refuse rows the stage cannot train on
    "trl_kwargs": _nothing,  # (recipe, plan) -> TRL config keys the stage derives from its recipe
    "config_overrides": _nothing,  # (recipe, profile) -> TRL config keys the stage sets itself
    "dropped": _nothing,  # (trainer, dataset, config) -> {reason: rows the trainer left out}
    "manifest_extra": _nothing,  # (trainer, config) -> keys the stage adds to manifest.json
    "dry_run_lines": _no_lines,  # (recipe) -> lines the dry run adds
}


def module(stage: str) -> ModuleType:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return importlib.import_module(f"repro.stages.{stage}")


def hook(stage: str, name: str) -> Any:
    """The stage's own `name`, else the default of DEFAULTS."""
    return getattr(module(stage), name, DEFAULTS[name])


def decay_every_parameter(model: Any) -> list[str]:
    """Trainer.get_decay_parameter_names as open-instruct builds its optimizers (reward_modeling.py,
    ppo_vllm_thread_ray_gtrl.py): one AdamW group over model.parameters(), so weight decay reaches
    norm weights and biases too, which transformers' Trainer would exempt."""
    return [name for name, _ in model.named_parameters()]
