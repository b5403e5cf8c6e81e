"""Paper Tables 2, 5 and 7 (hyperparameters) in the paper's layout.

The SmolTulu columns are regenerated from the recipe files (recipes); the Tulu 3
reference columns the paper prints beside them (Tulu 3 SFT 8b/70b, DPO 8b/70b, and the
"Tulu 3 DPO 8b" column of the reward-model table) are data, each value with its source, in
tables/hparam_reference.yaml. They print what the paper prints: Table 7's reference column
carries the 8B DPO values the paper put there, and a note gives the Tulu 3 8B RM's own ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core import recipe
from core.errors import UsageError

# (paper table, recipes in the paper's column order, ratio scale as printed)
TABLES = (
    ("Table 2: SFT hyperparameter selection", ["sft-1130", "sft-1207"], 1e6),
    ("Table 5: DPO hyperparameter selection", ["dpo-1130", "dpo-1207"], 1e7),
    ("Table 7: Reward model hyperparameter selection", ["rm-1130", "rm-1207"], 1e7),
)
REFERENCE_FILE = "hparam_reference.yaml"
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "tables"
ROW_LABELS = ("Learning Rate (LR)", "Batch Size (BS)")


@dataclass(frozen=True)
class ReferenceColumn:
    """A Tulu 3 column as the paper prints it (values are recipe.Sourced: value and source)."""

    table: int
    header: str
    model: str
    learning_rate: recipe.Sourced
    effective_batch_size: recipe.Sourced
    ratio: recipe.Sourced  # as printed, a string at the table's scale
    actual: dict[str, recipe.Sourced] | None = None  # the model's own values where the paper differs
    note: str | None = None


@dataclass(frozen=True)
class HparamTable:
    number: int
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]


def exponent(scale: float) -> int:
    return round(math.log10(scale))


def short(value: float) -> str:
    """Three decimals without trailing zeros, as the paper prints its ratios."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def number(title: str) -> int:
    found = re.match(r"Table (\d+):", title)
    assert found, title
    return int(found.group(1))


def ratio_label(scale: float) -> str:
    return f"LR/BS x 1e{exponent(scale)}"


def rows(names: list[str], scale: float) -> list[list[object]]:
    """The SmolTulu columns of one table (label first), regenerated from the recipes."""
    recipes = [recipe.load(n) for n in names]
    return [
        [ROW_LABELS[0], *(f"{r.hp('learning_rate'):.1e}" for r in recipes)],
        [ROW_LABELS[1], *(r.hp("effective_batch_size") for r in recipes)],
        [ratio_label(scale), *(short(r.lr_per_example * scale) for r in recipes)],
    ]


def _sourced(raw: Any, where: str, kind: type | tuple[type, ...]) -> recipe.Sourced:
    if not isinstance(raw, dict) or set(raw) != {"value", "source"}:
        raise UsageError(f"{where}: expected {{value, source}}")
    if not isinstance(raw["value"], kind) or isinstance(raw["value"], bool):
        raise UsageError(f"{where}: value {raw['value']!r} has the wrong type")
    if not isinstance(raw["source"], str) or not raw["source"].strip():
        raise UsageError(f"{where}: every value needs a source")
    return recipe.Sourced(raw["value"], raw["source"])


def reference_columns(text: str | None = None) -> list[ReferenceColumn]:
    """Every reference column of tables/hparam_reference.yaml (or of `text`), validated."""
    if text is None:
        text = (REFERENCE_DIR / REFERENCE_FILE).read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), list):
        raise UsageError(f"{REFERENCE_FILE}: expected a mapping with a 'columns' list")
    numbers = {number(t) for t, _, _ in TABLES}
    out = []
    for i, c in enumerate(raw["columns"]):
        where = f"{REFERENCE_FILE} column {i + 1}"
        if not isinstance(c, dict) or c.get("table") not in numbers:
            raise UsageError(f"{where}: 'table' must be one of {sorted(numbers)}")
        for key in ("header", "model"):
            if not isinstance(c.get(key), str):
                raise UsageError(f"{where}: missing {key!r}")
        actual = None
        if "actual" in c:
            if not isinstance(c["actual"], dict) or not c.get("note"):
                raise UsageError(f"{where}: 'actual' values need a 'note' saying why the paper differs")
            actual = {
                "learning_rate": _sourced(c["actual"].get("learning_rate"), f"{where} actual lr", float),
                "effective_batch_size": _sourced(
                    c["actual"].get("effective_batch_size"), f"{where} actual batch", int
                ),
            }
        out.append(
            ReferenceColumn(
                c["table"],
                c["header"],
                c["model"],
                _sourced(c.get("learning_rate"), f"{where} learning_rate", float),
                _sourced(c.get("effective_batch_size"), f"{where} effective_batch_size", int),
                _sourced(c.get("ratio"), f"{where} ratio", str),
                actual,
                " ".join(c["note"].split()) if c.get("note") else None,
            )
        )
    return out


def reference_rows(columns: list[ReferenceColumn], scale: float) -> list[list[str]]:
    """The reference columns' cells, formatted like the recipe columns (LR/BS computed)."""
    return [
        [f"{c.learning_rate.value:.1e}" for c in columns],
        [str(c.effective_batch_size.value) for c in columns],
        [short(c.learning_rate.value / c.effective_batch_size.value * scale) for c in columns],
    ]


def tables() -> list[HparamTable]:
    """Tables 2, 5, 7: SmolTulu columns from the recipes, then the paper's Tulu 3 columns."""
    refs = reference_columns()
    out = []
    for title, names, scale in TABLES:
        n = number(title)
        cols = [c for c in refs if c.table == n]
        own = rows(names, scale)
        ref = reference_rows(cols, scale)
        body = [[str(v) for v in row] + extra for row, extra in zip(own, ref, strict=True)]
        headers = ["", *(recipe.load(name).paper_name for name in names), *(c.header for c in cols)]
        notes = [
            "SmolTulu columns regenerated from recipes/*.yaml; "
            + (
                "Tulu 3 columns as the paper prints them (tables/hparam_reference.yaml, each value "
                "with its source)."
                if cols
                else "the paper prints no reference column here."
            )
        ]
        notes += [f"{c.header}: {c.note}" for c in cols if c.note]
        out.append(HparamTable(n, title, headers, body, notes))
    return out


def markdown() -> str:
    from tabulate import tabulate

    parts = []
    for t in tables():
        notes = "".join(f"\n\n{n}" for n in t.notes)
        parts.append(
            f"### {t.title}\n\n"
            + tabulate(t.rows, t.headers, tablefmt="github", disable_numparse=True)
            + notes
        )
    return "\n\n".join(parts) + "\n"
