"""Recipes as data: recipes/*.yaml, each value with its source, variants inheriting a base.

A file starting with `_` is a stage base (Tulu 3 defaults); a checkpoint recipe names it in
`inherits` and adds the paper's values. Every leaf is `{value, source}` and the source must
say where the value comes from: "paper ...", "Tulu 3 default ...", "card: ..." (a published
model card, for the RLVR model the paper mentions), or "assumption: <why>".
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from core.errors import UsageError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # data at the repository root, beside tables/
SOURCE = re.compile(r"^(paper |Tulu 3 default|card: \S|assumption: \S|override: )")
STAGES = ("sft", "dpo", "rm", "rlvr")
SECTIONS = ("inputs", "hyperparameters", "grid", "not_applicable")


@dataclass(frozen=True)
class Sourced:
    value: Any
    source: str


@dataclass(frozen=True)
class Recipe:
    name: str
    stage: str
    paper_name: str
    inputs: dict[str, Sourced]
    hyperparameters: dict[str, Sourced]
    grid: dict[str, Sourced] = field(default_factory=dict)
    # values of the method the paper or card used that the TRL trainer cannot take, each saying why
    not_applicable: dict[str, Sourced] = field(default_factory=dict)
    benchmarks: Sourced | None = None
    overrides: tuple[str, ...] = ()

    def hp(self, key: str) -> Any:
        return self.hyperparameters[key].value

    @property
    def lr_per_example(self) -> float:
        """The paper's ratio of interest: learning rate / effective batch size."""
        return self.hp("learning_rate") / self.hp("effective_batch_size")


def _read(name: str) -> dict[str, Any]:
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown recipe {name!r}; choose one of: {', '.join(names())}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def names() -> list[str]:
    """Checkpoint recipes a user can run (stage bases, `_*.yaml`, are not listed)."""
    return sorted(p.name[:-5] for p in RECIPES.iterdir() if p.name.endswith(".yaml") and p.name[0] != "_")


def _merged(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise UsageError(f"recipe inheritance loops: {' -> '.join((*seen, name))}")
    raw = _read(name)
    parent = raw.pop("inherits", None)
    if parent is None:
        return raw
    merged = _merged(parent, (*seen, name))
    for key, value in raw.items():
        if key in SECTIONS:
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def _sourced(recipe: str, section: str, items: dict[str, Any]) -> dict[str, Sourced]:
    out = {}
    for key, leaf in items.items():
        if not isinstance(leaf, dict) or set(leaf) != {"value", "source"}:
            raise UsageError(f"recipe {recipe}: {section}.{key} must be {{value, source}}")
        if not SOURCE.match(str(leaf["source"])):
            raise UsageError(
                f"recipe {recipe}: {section}.{key} source {leaf['source']!r} must start with "
                "'paper ', 'Tulu 3 default', 'card: ' or 'assumption: '"
            )
        out[key] = Sourced(leaf["value"], leaf["source"])
    return out


def load(name: str) -> Recipe:
    if name.startswith("_"):
        raise UsageError(
            f"{name} is a stage base, not a runnable recipe; choose one of: {', '.join(names())}"
        )
    raw = _merged(name)
    stage = raw.get("stage")
    if stage not in STAGES:
        raise UsageError(f"recipe {name}: stage {stage!r} is not one of {STAGES}")
    benchmarks = raw.get("benchmarks")
    recipe = Recipe(
        name=name,
        stage=stage,
        paper_name=raw.get("paper_name", name),
        inputs=_sourced(name, "inputs", raw.get("inputs", {})),
        hyperparameters=_sourced(name, "hyperparameters", raw.get("hyperparameters", {})),
        grid=_sourced(name, "grid", raw.get("grid", {})),
        not_applicable=_sourced(name, "not_applicable", raw.get("not_applicable", {})),
        benchmarks=_sourced(name, "benchmarks", {"b": benchmarks})["b"] if benchmarks else None,
    )
    for required in ("learning_rate", "effective_batch_size"):
        if required not in recipe.hyperparameters and required not in recipe.grid:
            raise UsageError(f"recipe {name}: no {required}")
    return recipe


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """`key=value` (YAML-parsed) for hyperparameters or inputs; unknown keys are refused."""
    hyper, inputs = dict(recipe.hyperparameters), dict(recipe.inputs)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--override {item!r}: expected key=value, e.g. learning_rate=1e-5")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError(f"--override {item!r}: {text!r} is not a valid value") from None
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" as text; people mean a number
            with contextlib.suppress(ValueError):
                value = float(value) if any(c in value for c in ".eE") else int(value)
        target = hyper if key in hyper else inputs if key in inputs else None
        if target is None:
            known = ", ".join(sorted({*hyper, *inputs}))
            raise UsageError(f"--override {key}: not a setting of {recipe.name}; known: {known}")
        old = target[key].value
        if isinstance(old, bool) != isinstance(value, bool) or (
            isinstance(old, (int, float)) and not isinstance(value, (int, float))
        ):
            raise UsageError(f"--override {key}={text}: expected a value like {old!r}")
        target[key] = Sourced(value, f"override: command line (recipe had {old!r})")
    changed = replace(recipe, hyperparameters=hyper, inputs=inputs, overrides=(*recipe.overrides, *overrides))
    check_values(changed)
    return changed


SEED_LIMIT = 2**32  # numpy's seeds (transformers.set_seed seeds numpy too) are 0 .. 2**32 - 1
# Numeric settings and the values they can take: (kind, lowest, lowest allowed?, highest, highest allowed?).
RANGES: dict[str, tuple[type, float, bool, float, bool]] = {
    "learning_rate": (float, 0.0, False, math.inf, False),
    "effective_batch_size": (int, 1, True, math.inf, False),
    "num_train_epochs": (float, 0.0, False, math.inf, False),
    "warmup_ratio": (float, 0.0, True, 1.0, False),
    "weight_decay": (float, 0.0, True, math.inf, False),
    "max_grad_norm": (float, 0.0, True, math.inf, False),
    "max_length": (int, 1, True, math.inf, False),
    "seed": (int, 0, True, SEED_LIMIT, False),
    "beta": (float, 0.0, False, math.inf, False),
    "adam_epsilon": (float, 0.0, False, math.inf, False),
    "dropout": (float, 0.0, True, 1.0, False),
    "max_prompt_length": (int, 1, True, math.inf, False),
    "max_completion_length": (int, 1, True, math.inf, False),
    "temperature": (float, 0.0, False, math.inf, False),
    "total_episodes": (int, 1, True, math.inf, False),
    "rollout_batch_size": (int, 1, True, math.inf, False),
    "num_generations": (int, 2, True, math.inf, False),  # RLOO's leave-one-out baseline needs two
    "num_iterations": (int, 1, True, math.inf, False),
    "epsilon": (float, 0.0, False, 1.0, False),
}


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _range_text(low: float, low_ok: bool, high: float, high_ok: bool) -> str:
    if high == math.inf:
        return f"{'at least' if low_ok else 'above'} {_number(low)}"
    return f"in {'[' if low_ok else '('}{_number(low)}, {_number(high)}{']' if high_ok else ')'}"


def check_values(recipe: Recipe) -> None:
    """Refuse numbers no run can use (NaN, infinite, negative, zero batch, out-of-range seed)."""
    for key, (kind, low, low_ok, high, high_ok) in RANGES.items():
        if key not in recipe.hyperparameters:
            continue
        value = recipe.hp(key)
        where = f"{key}={value!r}"
        if recipe.hyperparameters[key].source.startswith("override: "):  # --seed N is the override seed=N
            where = f"--override {where}" if key != "seed" else f"seed {value!r} (--seed or --override)"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}: expected a number")
        if kind is int and not isinstance(value, int):
            raise UsageError(f"{where}: expected a whole number")
        if not math.isfinite(value):
            raise UsageError(f"{where}: must be a finite number")
        too_low = value < low or (value == low and not low_ok)
        too_high = value > high or (value == high and not high_ok)
        if too_low or too_high:
            raise UsageError(f"{where}: must be {_range_text(low, low_ok, high, high_ok)}")


@dataclass(frozen=True)
class BatchPlan:
    effective: int
    world_size: int
    per_device: int
    grad_accum: int

    def describe(self) -> str:
        return (
            f"{self.per_device} per device x {self.grad_accum} accumulation x {self.world_size} "
            f"process(es) = {self.effective}"
        )


def detected_world_size() -> int:
    """Processes of this launch: WORLD_SIZE from accelerate/torchrun, else visible GPUs, else 1."""
    if env := os.environ.get("WORLD_SIZE"):
        try:
            return int(env)
        except ValueError:
            raise UsageError(f"WORLD_SIZE={env!r} is not a number of processes") from None
    import torch

    return max(1, torch.cuda.device_count())


def plan_batch(
    effective: int, world_size: int, per_device: int | None = None, max_per_device: int = 8
) -> BatchPlan:
    """Split the recipe's effective batch exactly; refuse any world size that cannot keep it."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise UsageError(f"world size {world_size!r}: must be a whole number of processes, at least 1")
    if isinstance(effective, bool) or not isinstance(effective, int) or effective < 1:
        raise UsageError(f"effective batch size {effective!r}: must be a whole number, at least 1")
    if effective % world_size:
        raise UsageError(
            f"effective batch {effective} cannot be split over {world_size} processes; "
            f"use a world size that divides {effective}"
        )
    per_process = effective // world_size
    if per_device is None:
        per_device = max(d for d in range(1, min(per_process, max_per_device) + 1) if per_process % d == 0)
    elif per_device < 1 or per_process % per_device:
        raise UsageError(
            f"per-device batch {per_device} does not divide {per_process} (= effective {effective} / "
            f"{world_size} processes); choose a divisor of {per_process}"
        )
    return BatchPlan(effective, world_size, per_device, per_process // per_device)
