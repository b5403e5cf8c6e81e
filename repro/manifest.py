"""manifest.json beside every checkpoint: what exactly was run, on what, with which software."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from repro import atomic
from repro.recipe import BatchPlan, Recipe
from repro.resolve import Resolved

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "datasets",
    "accelerate",
    "tokenizers",
    "huggingface_hub",
    "deepspeed",
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
) -> dict[str, Any]:
    return {
        "recipe": recipe.name,
        "paper_name": recipe.paper_name,
        "stage": recipe.stage,
        "profile": profile,
        "hyperparameters": {k: asdict(v) for k, v in sorted(recipe.hyperparameters.items())},
        "overrides": list(recipe.overrides),
        "inputs": {k: _resolved(v) for k, v in inputs.items()},
        "batch": asdict(plan),
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
        "command": argv,
    }


def write(run_dir: Path, manifest: dict[str, Any]) -> Path:
    path = run_dir / "manifest.json"
    atomic.write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
