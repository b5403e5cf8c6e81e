"""RewardBench's section scores and its three "Average" definitions, from subset accuracies.

The weights live in rewardbench.yaml beside this module. The arithmetic is linear, so the
accuracies may be percentages or fractions (the answer is in the same unit), floats or
numpy arrays of bootstrap replicates (the answer is elementwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

SECTIONS = ("chat", "chat_hard", "safety", "reasoning")


@dataclass(frozen=True)
class Table:
    sections: dict[str, dict[str, int]]  # section -> subset -> weight
    section_weight: int  # in the prior-weighted average
    prior_weight: int
    rows: dict[str, int]  # subset -> rows in split `filtered`
    source: str

    @property
    def subsets(self) -> list[str]:
        return [s for weights in self.sections.values() for s in weights]

    def section_of(self, subset: str) -> str:
        for section, weights in self.sections.items():
            if subset in weights:
                return section
        raise KeyError(subset)


@cache
def table() -> Table:
    raw = yaml.safe_load(resources.files("evalsuite").joinpath("rewardbench.yaml").read_text())
    if tuple(raw["sections"]) != SECTIONS:
        raise RuntimeError(f"rewardbench.yaml sections {list(raw['sections'])} are not {list(SECTIONS)}")
    return Table(
        sections={k: dict(v) for k, v in raw["sections"].items()},
        section_weight=int(raw["prior_weighted"]["section"]),
        prior_weight=int(raw["prior_weighted"]["prior_sets"]),
        rows=dict(raw["rows"]),
        source=raw["source"],
    )


def section_scores(subset_accuracy: Mapping[str, Any], prior_sets: Any = None) -> dict[str, Any]:
    """Section scores and the averages that follow from subset accuracies.

    A section is the weighted mean of the subsets given (all of them in a full run; a
    subset left out, as under --limit, drops out of its section's weights). The four-section
    mean is `average_sections`; with a "Prior Sets" score, `average_prior_weighted` is the
    older [2, 2, 2, 2, 1] weighting. The overall accuracy needs row counts: `overall_accuracy`.
    """
    t = table()
    unknown = sorted(set(subset_accuracy) - set(t.subsets))
    if unknown:
        raise ValueError(f"not RewardBench subsets: {unknown}")
    out: dict[str, Any] = {}
    for section, weights in t.sections.items():
        present = {s: w for s, w in weights.items() if s in subset_accuracy}
        if present:
            total = sum(present.values())
            out[section] = sum(w * subset_accuracy[s] for s, w in present.items()) / total
    if all(s in out for s in SECTIONS):
        out["average_sections"] = sum(out[s] for s in SECTIONS) / len(SECTIONS)
        if prior_sets is not None:
            weighted = t.section_weight * sum(out[s] for s in SECTIONS) + t.prior_weight * prior_sets
            out["average_prior_weighted"] = weighted / (t.section_weight * len(SECTIONS) + t.prior_weight)
    return out


def overall_accuracy(subset_accuracy: Mapping[str, Any], subset_rows: Mapping[str, int]) -> Any:
    """Accuracy over all rows (the reference CLI's number and the paper's RB Average column)."""
    rows = sum(subset_rows[s] for s in subset_accuracy)
    if not rows:
        raise ValueError("no rows")
    return sum(acc * subset_rows[s] for s, acc in subset_accuracy.items()) / rows
