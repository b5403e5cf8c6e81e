"""Is a model folder a reward model? Read from config.json, without loading weights."""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import UsageError, json_loads

RM_ARCHITECTURE_SUFFIX = "ForSequenceClassification"


def is_reward_model(model_path: Path) -> bool:
    """True when config.json names a sequence-classification architecture (a score head)."""
    config = Path(model_path) / "config.json"
    try:
        raw = json_loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{model_path}: no config.json; pass a model folder, lock name or hub id") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{config}: not valid JSON; the model folder is damaged") from None
    architectures = raw.get("architectures") if isinstance(raw, dict) else None
    return any(str(a).endswith(RM_ARCHITECTURE_SUFFIX) for a in architectures or [])
