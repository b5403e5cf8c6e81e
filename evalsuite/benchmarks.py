"""The benchmarks the suite knows, and how each one's headline score follows from its items.

Every statistic (intervals, paired tests, regression checks) recomputes headlines from
per-item records through `Benchmark.headline`, so a benchmark's aggregation rule lives here
and nowhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from core.errors import UsageError
from core.scoring.ifeval import ifeval_scores

Item = dict[str, Any]


def accuracy(items: Sequence[Item]) -> float:
    """Percent of items with score 1 (ties and failures are 0)."""
    if not items:
        raise ValueError("no items")
    return 100.0 * sum(float(it["score"]) for it in items) / len(items)


def subtask_mean(items: Sequence[Item]) -> float:
    """Unweighted mean over subtasks of each subtask's accuracy (ARC, BBH)."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        groups[it["subtask"]].append(it)
    if not groups:
        raise ValueError("no items")
    return sum(accuracy(g) for g in groups.values()) / len(groups)


def ifeval_average_loose(items: Sequence[Item]) -> float:
    return ifeval_scores(items)["average_loose"]


HEADLINES: dict[str, Callable[[Sequence[Item]], float]] = {
    f.__name__: f for f in (accuracy, subtask_mean, ifeval_average_loose)
}
DEFINITIONS = Path(__file__).with_name("benchmarks.yaml")


@dataclass(frozen=True)
class Benchmark:
    name: str  # the suite's name, used in --benchmarks and file names
    column: str  # the paper's column header
    model_kind: Literal["causal-lm", "reward-model"]
    headline: Callable[[Sequence[Item]], float]  # percent, from per-item records
    interval: Literal["wilson", "bootstrap"]
    description: str
    full_items: int | None  # items of the full set, where the spec gives it (benchmarks.yaml)


def _load(path: Path) -> dict[str, Benchmark]:
    """benchmarks.yaml, checked: a broken file is a programming error, so it fails loudly on import."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    fields = {"column", "model_kind", "headline", "interval", "full_items", "description"}
    out = {}
    for name, entry in raw.items():
        if set(entry) != fields or entry["model_kind"] not in ("causal-lm", "reward-model"):
            raise ValueError(
                f"{path}: {name}: needs exactly {sorted(fields)}, model_kind causal-lm|reward-model"
            )
        if entry["interval"] not in ("wilson", "bootstrap") or entry["headline"] not in HEADLINES:
            raise ValueError(
                f"{path}: {name}: interval wilson|bootstrap, headline one of {sorted(HEADLINES)}"
            )
        out[name] = Benchmark(name=name, **{**entry, "headline": HEADLINES[entry["headline"]]})
    return out


BENCHMARKS: dict[str, Benchmark] = _load(DEFINITIONS)


def full_items(name: str) -> int | None:
    """Items of the full set of a benchmark, or None where the spec does not give it."""
    if name == "rewardbench":
        from evalsuite import reward_sections as sections

        return sum(sections.table().rows.values())
    return get(name).full_items


LM_BENCHMARKS = tuple(n for n, b in BENCHMARKS.items() if b.model_kind == "causal-lm")
RM_BENCHMARKS = tuple(n for n, b in BENCHMARKS.items() if b.model_kind == "reward-model")


def get(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UsageError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}") from None


def parse_list(spec: str | None, kind: Literal["causal-lm", "reward-model"]) -> list[str]:
    """`--benchmarks arc,gsm8k` → names, checked against the model kind; None → all of that kind."""
    default = LM_BENCHMARKS if kind == "causal-lm" else RM_BENCHMARKS
    if not spec:
        return list(default)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        bench = get(name)
        if bench.model_kind != kind:
            raise UsageError(
                f"benchmark {name!r} needs a {bench.model_kind} but the model is a {kind}; "
                f"choose from {', '.join(default)}"
            )
    return list(dict.fromkeys(names))
