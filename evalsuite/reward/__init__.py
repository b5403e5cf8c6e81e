"""Reward-model evaluation (Table 8): RewardBench sections and averages, UFB accuracy.

`is_reward_model(path)` decides the dispatch; `evaluate(path, ...)` scores and writes items.
"""

from __future__ import annotations

from evalsuite.reward.detect import is_reward_model
from evalsuite.reward.pipeline import evaluate, load_all_pairs

__all__ = ["evaluate", "is_reward_model", "load_all_pairs"]
