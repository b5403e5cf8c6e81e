"""Simulated results folders (valid results.json + per-item records) for tests and benchmarks.

Every folder says `settings.simulated = true` and carries its seed, so nothing can take it for
model output; the tables label such columns "simulated". Item scores are placed so that the
headline lands on the requested value (to within item granularity), at full item counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.report import item_stats

# The full benchmarks (full_items in evalsuite/benchmarks.yaml) as (subtask, n).
# BBH: 27 subsets of 250 items except three (187, 146, 178); names are placeholders here.
BBH_SIZES = [250] * 24 + [187, 146, 178]
_FULL: dict[str, int] = {k: b.full_items for k, b in registry.BENCHMARKS.items() if b.full_items is not None}
SHAPES: dict[str, list[tuple[str, int]]] = {
    "arc": [("ARC-Easy", 2376), ("ARC-Challenge", 1172)],
    "bbh": [(f"bbh-subset-{i + 1:02d}", n) for i, n in enumerate(BBH_SIZES)],
    "gsm8k": [("gsm8k", _FULL["gsm8k"])],
    "hellaswag": [("hellaswag", _FULL["hellaswag"])],
    "ifeval": [("ifeval", _FULL["ifeval"])],
    "mmlu_pro": [
        (f"mmlu-pro-category-{i + 1:02d}", _FULL["mmlu_pro"] // 14 + (i < _FULL["mmlu_pro"] % 14))
        for i in range(14)
    ],
    "piqa": [("piqa", _FULL["piqa"])],
    "ufb": [("ufb", _FULL["ufb"])],
}
IFEVAL_INSTRUCTIONS = 834
# ARC-Easy is far easier than ARC-Challenge; spreading the halves keeps the simulation honest.
SUBTASK_SPREAD = {"arc": 10.0}
SIMULATION_NOTE = "SIMULATED per-item results (evalsuite.report.simulate), not the output of any model"


def shape(benchmark: str) -> list[tuple[str, int]]:
    """(subtask, items) of the full benchmark; RewardBench's subsets come from evalsuite.reward."""
    if benchmark == "rewardbench":
        from evalsuite import reward_sections as sections

        return list(sections.table().rows.items())
    return SHAPES[benchmark]


def _place(n: int, correct: int, rng: np.random.Generator) -> np.ndarray:
    scores = np.zeros(n, dtype=np.int8)
    scores[rng.choice(n, size=min(max(correct, 0), n), replace=False)] = 1
    return scores


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ifeval_records(target: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """541 prompts with 834 instructions; prompt level 5 points under, instruction level 5 over."""
    n = shape("ifeval")[0][1]
    # The instructions per prompt are the data set's, the same for every simulated model.
    extra = np.random.default_rng(0).multinomial(IFEVAL_INSTRUCTIONS - n, np.full(n, 1.0 / n))
    totals = 1 + np.minimum(extra, 5)
    totals[0] += IFEVAL_INSTRUCTIONS - totals.sum()  # keep the total exact after capping
    p_prompt = float(np.clip(target - 5.0, 0.0, 100.0)) / 100.0
    passed = _place(n, round(n * p_prompt), rng).astype(bool)
    want = round(IFEVAL_INSTRUCTIONS * (2 * target / 100.0 - p_prompt))  # makes the average `target`
    followed = np.where(passed, totals, 0)
    room = np.where(passed, 0, totals - 1)  # a failed prompt misses at least one instruction
    need = int(np.clip(want - followed.sum(), 0, room.sum()))
    slots = np.repeat(np.arange(n), room)
    followed += np.bincount(rng.choice(slots, size=need, replace=False), minlength=n) if need else 0
    records = []
    for i in range(n):
        flags = [1] * int(followed[i]) + [0] * int(totals[i] - followed[i])
        rng.shuffle(flags)
        metrics = {
            "prompt_strict": int(passed[i]),
            "prompt_loose": int(passed[i]),
            "inst_strict": flags,
            "inst_loose": flags,
        }
        records.append(
            {
                "id": f"ifeval/{i}",
                "subtask": "ifeval",
                "score": int(passed[i]),
                "metrics": metrics,
                "prompt_sha256": _sha(f"ifeval/{i}"),
            }
        )
    return records


def simulate_items(benchmark: str, target: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per-item records at full count whose headline is about `target` percent."""
    registry.get(benchmark)
    if benchmark == "ifeval":
        return _ifeval_records(target, rng)
    subsets = shape(benchmark)
    spread = SUBTASK_SPREAD.get(benchmark, 0.0)
    records: list[dict[str, Any]] = []
    for j, (subtask, n) in enumerate(subsets):
        offset = spread * (1 if j == 0 else -1) if len(subsets) == 2 else 0.0
        p = float(np.clip(target + offset, 0.0, 100.0)) / 100.0
        for i, s in enumerate(_place(n, round(n * p), rng).tolist()):
            rec: dict[str, Any] = {
                "id": f"{subtask}/{i}",
                "subtask": subtask,
                "score": s,
                "metrics": {},
                "prompt_sha256": _sha(f"{subtask}/{i}"),
            }
            if registry.get(benchmark).model_kind == "reward-model":
                chosen = float(rng.normal())
                rec["metrics"] = {"chosen": chosen, "rejected": chosen - 1.0 if s else chosen + 1.0}
            records.append(rec)
    return records


def _truncated(records: list[dict[str, Any]], items: int) -> list[dict[str, Any]]:
    """The first records of every subtask, about `items` in all, each subtask in proportion (at least one)."""
    by_subtask: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_subtask.setdefault(rec["subtask"], []).append(rec)
    share = min(1.0, items / len(records))
    return [r for recs in by_subtask.values() for r in recs[: max(1, round(share * len(recs)))]]


@dataclass
class Simulated:
    folder: Path
    headlines: dict[str, float]  # realised, percent


def write_results(
    folder: Path,
    label: str,
    targets: dict[str, float],
    *,
    seed: int = 0,
    kind: str | None = None,
    limit: int | None = None,
    truncate: int | None = None,
    settings: dict[str, Any] | None = None,
) -> Simulated:
    """A simulated results folder for model `label` with the given headline targets (percent).

    `limit`: a --limit run (the first items, results.limit set). `truncate`: about this many items
    of each benchmark, the first of every subset in proportion, with no limit recorded: a data set
    that is shorter than the full one (truncated or converted data), which only the item count shows.
    """
    folder = Path(folder)
    kinds = {registry.get(b).model_kind for b in targets}
    kind = kind or (kinds.pop() if len(kinds) == 1 else "causal-lm")
    rng = np.random.default_rng(seed)
    benches: dict[str, results_fmt.BenchmarkResult] = {}
    realised: dict[str, float] = {}
    for name, target in targets.items():
        records = simulate_items(name, target, rng)
        if limit is not None:
            records = records[:limit]
        if truncate is not None:
            records = _truncated(records, truncate)
        rel = results_fmt.write_items(folder, name, records)
        data = item_stats.from_records(name, records, f"simulated {name}")
        scores: dict[str, float] = {}
        if name == "rewardbench":
            scores["overall_accuracy"] = data.headline
            scores.update(item_stats.section_bootstrap(data, 1, rng)[0])
        realised[name] = data.headline
        benches[name] = results_fmt.BenchmarkResult(
            score=data.headline,
            n=data.n,
            metric=registry.get(name).description,
            scores=scores,
            subtasks={},
            items=rel,
        )
    results = results_fmt.Results(
        model=results_fmt.ModelInfo(spec=f"simulated:{label}", label=label, kind=kind, source="external"),
        backend="external",
        benchmarks=benches,
        limit=limit,
        created="simulated",
        settings={"simulated": True, "seed": seed, "note": SIMULATION_NOTE, **(settings or {})},
    )
    results_fmt.save(results, folder)
    return Simulated(folder, realised)


def is_simulated(settings: dict[str, Any]) -> bool:
    return bool(settings.get("simulated"))
