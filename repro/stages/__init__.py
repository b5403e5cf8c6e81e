"""One thin module per training stage over its TRL trainer: sft, dpo, rm."""

from __future__ import annotations

import importlib
from types import ModuleType

# Columns each stage needs, in the real datasets' schemas (Tulu 3 SFT / preference mixtures).
REQUIRED_COLUMNS = {"sft": ("messages",), "dpo": ("chosen", "rejected"), "rm": ("chosen", "rejected")}


def module(stage: str) -> ModuleType:
    return importlib.import_module(f"repro.stages.{stage}")
