"""The benchmarks the suite knows, and how each one's headline score follows from its items.

Every statistic (intervals, paired tests, regression checks) recomputes headlines from
per-item records through `Benchmark.headline`, so a benchmark's aggregation rule lives here
and nowhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from repro.errors import UsageError

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


def ifeval_scores(items: Sequence[Item]) -> dict[str, float]:
    """The four IFEval scores and both (prompt + instruction) / 2 averages, in percent."""
    if not items:
        raise ValueError("no items")
    out: dict[str, float] = {}
    for variant in ("strict", "loose"):
        prompt = 100.0 * sum(float(it["metrics"][f"prompt_{variant}"]) for it in items) / len(items)
        flags = [float(f) for it in items for f in it["metrics"][f"inst_{variant}"]]
        inst = 100.0 * sum(flags) / len(flags)
        out[f"prompt_level_{variant}"] = prompt
        out[f"inst_level_{variant}"] = inst
        out[f"average_{variant}"] = (prompt + inst) / 2
    return out


def ifeval_average_loose(items: Sequence[Item]) -> float:
    return ifeval_scores(items)["average_loose"]


@dataclass(frozen=True)
class Benchmark:
    name: str  # the suite's name, used in --benchmarks and file names
    column: str  # the paper's column header
    model_kind: Literal["causal-lm", "reward-model"]
    headline: Callable[[Sequence[Item]], float]  # percent, from per-item records
    # Wilson intervals apply when the headline is one accuracy over independent items;
    # anything aggregated over subsets or instructions gets a bootstrap over items.
    interval: Literal["wilson", "bootstrap"]
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("arc", "ARC (Average)", "causal-lm", subtask_mean, "bootstrap",
                  "ARC-Easy + ARC-Challenge test, 0-shot, acc_norm_nospace, mean of the two"),
        Benchmark("bbh", "BBH (3-shot)", "causal-lm", subtask_mean, "bootstrap",
                  "27 BIG-Bench-Hard subsets, 3 balanced shots, exact match, unweighted mean"),
        Benchmark("gsm8k", "GSM8K (5-shot)", "causal-lm", accuracy, "wilson",
                  "GSM8K test, 5 random train shots per item (Random(42)), strict #### match"),
        Benchmark("hellaswag", "HellaSwag", "causal-lm", accuracy, "wilson",
                  "HellaSwag validation, 0-shot, acc_norm_nospace"),
        # The paper does not say strict or loose; both averages are reported (see ifeval_scores)
        # and the headline is the loose one until a real SmolLM2-1.7B-Instruct run says otherwise.
        Benchmark("ifeval", "IFEval (Average)", "causal-lm", ifeval_average_loose, "bootstrap",
                  "IFEval, (prompt-level + instruction-level) / 2; strict and loose both reported"),
        Benchmark("mmlu_pro", "MMLU-Pro (MCF)", "causal-lm", accuracy, "wilson",
                  "MMLU-Pro test, 0-shot, log-likelihood of the option letter"),
        Benchmark("piqa", "PIQA", "causal-lm", accuracy, "wilson",
                  "PIQA validation, 0-shot, acc_norm_nospace"),
        Benchmark("rewardbench", "RB Average", "reward-model", accuracy, "wilson",
                  "RewardBench filtered, overall accuracy over all rows (the paper's column)"),
        Benchmark("ufb", "UFB", "reward-model", accuracy, "wilson",
                  "UltraFeedback binarized cleaned test_prefs, chosen > rejected"),
    )
}  # fmt: skip

# Items in the full evaluation sets (../shared/spec/eval-protocol.md): a result over fewer is
# partial (evalsuite.result_set.Run.partial). RewardBench's count is its subsets' rows
# (evalsuite/reward/sections); UFB's test_prefs size is not in the spec, so it is not checked.
FULL_ITEMS: dict[str, int | None] = {
    "arc": 2376 + 1172,  # ARC-Easy + ARC-Challenge test
    "bbh": 6511,  # 27 subsets
    "gsm8k": 1319,
    "hellaswag": 10042,
    "ifeval": 541,
    "mmlu_pro": 12032,
    "piqa": 1838,
    "ufb": None,
}


def full_items(name: str) -> int | None:
    """Items of the full set of a benchmark, or None where the spec does not give it."""
    if name == "rewardbench":
        from evalsuite.reward import sections

        return sum(sections.table().rows.values())
    return FULL_ITEMS[get(name).name]


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
