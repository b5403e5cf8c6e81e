"""One thin module per training stage over its TRL trainer: sft, dpo, rm, rlvr."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

# Columns each stage needs, in the real datasets' schemas (Tulu 3 SFT / preference mixtures).
REQUIRED_COLUMNS = {
    "sft": ("messages",),
    "dpo": ("chosen", "rejected"),
    "rm": ("chosen", "rejected"),
    "rlvr": ("messages", "ground_truth", "dataset"),  # Tulu 3's RLVR rows: the verifier and its truth
}


def module(stage: str) -> ModuleType:
    return importlib.import_module(f"repro.stages.{stage}")


def decay_every_parameter(model: Any) -> list[str]:
    """Trainer.get_decay_parameter_names as open-instruct builds its optimizers (reward_modeling.py,
    ppo_vllm_thread_ray_gtrl.py): one AdamW group over model.parameters(), so weight decay reaches
    norm weights and biases too, which transformers' Trainer would exempt."""
    return [name for name, _ in model.named_parameters()]
