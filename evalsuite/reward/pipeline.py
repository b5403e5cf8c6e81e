"""Score a reward model on RewardBench and UFB: per-pair records and the Table 8 numbers."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

from core import lock as lockfile
from core.errors import UsageError
from evalsuite import reward_sections as sections
from evalsuite.results import BenchmarkResult, write_items
from evalsuite.reward import data, scoring
from evalsuite.reward.detect import is_reward_model

CPU_BATCH, GPU_BATCH = 8, 16


def pair_score(chosen: float, rejected: float) -> int:
    """A pair is right only when chosen strictly beats rejected: ties count as wrong."""
    return 1 if chosen > rejected else 0


def _check_args(benchmarks: list[str], limit: int | None, batch_size: int | None, max_length: int) -> None:
    unknown = [b for b in benchmarks if b not in data.SOURCES]
    if unknown or not benchmarks:
        known = ", ".join(data.SOURCES)
        raise UsageError(f"reward-model benchmarks are {known}; got {', '.join(benchmarks) or 'none'}")
    for name, value in (("--limit", limit), ("--batch-size", batch_size), ("--max-length", max_length)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value}")


def _check_subsets(pairs: list[data.Pair], limit: int | None) -> None:
    table = sections.table()
    counts: dict[str, int] = defaultdict(int)
    for pair in pairs:
        counts[pair.subtask] += 1
    unknown = sorted(set(counts) - set(table.subsets))
    if unknown:
        raise UsageError(
            f"rewardbench: unknown subset(s) {', '.join(unknown)}; expected the 23 of split filtered "
            f"({', '.join(table.subsets)})"
        )
    differ = [s for s in table.subsets if counts.get(s, 0) != table.rows[s]]
    if limit is None and differ:
        print(
            f"warning: rewardbench has {len(pairs)} rows and {len(differ)} subset(s) whose row counts "
            f"differ from split filtered's ({sum(table.rows.values())} rows): not comparable with the paper",
            file=sys.stderr,
        )


def _rewardbench_result(records: list[dict], prior_sets: float | None) -> BenchmarkResult:
    by_subset: dict[str, list[int]] = defaultdict(list)
    for rec in records:
        by_subset[rec["subtask"]].append(rec["score"])
    order = sections.table().subsets
    subtasks = {
        s: {"score": 100.0 * sum(by_subset[s]) / len(by_subset[s]), "n": len(by_subset[s])}
        for s in order
        if by_subset[s]
    }
    overall = 100.0 * sum(rec["score"] for rec in records) / len(records)
    scores = sections.section_scores({s: v["score"] for s, v in subtasks.items()}, prior_sets)
    scores["overall_accuracy"] = overall
    return BenchmarkResult(
        score=overall, n=len(records), metric="overall_accuracy", subtasks=subtasks, scores=scores
    )


def _accuracy_result(records: list[dict]) -> BenchmarkResult:
    acc = 100.0 * sum(rec["score"] for rec in records) / len(records)
    return BenchmarkResult(score=acc, n=len(records), metric="accuracy", scores={"accuracy": acc})


def _score_benchmark(
    rm: scoring.RewardModel,
    name: str,
    pairs: list[data.Pair],
    cache: scoring.Cache,
    *,
    batch_size: int,
    max_length: int,
    progress: bool,
) -> tuple[list[dict], dict[str, int]]:
    encoded: dict[str, list[int]] = {}
    kept: list[tuple[data.Pair, str, str]] = []
    for pair in pairs:
        ids = [rm.encode(rm.render(pair.chosen)), rm.encode(rm.render(pair.rejected))]
        if max(len(ids[0]), len(ids[1])) > max_length:
            continue  # never truncated: a cut pair would be scored on text it does not end with
        keys = [scoring.text_key(i) for i in ids]
        encoded.update(zip(keys, ids, strict=True))
        kept.append((pair, keys[0], keys[1]))
    if not kept:
        raise UsageError(f"{name}: all {len(pairs)} pairs are longer than --max-length {max_length} tokens")
    # The cache holds one reward per distinct text, so a pair may be half done after a kill.
    reused_pairs = sum(1 for _, c, r in kept if c in cache.rewards and r in cache.rewards)
    reused_rewards = sum(1 for key in encoded if key in cache.rewards)
    rewards = scoring.score_texts(
        rm, encoded, cache, batch_size=batch_size, desc=f"{name} rewards", progress=progress
    )
    records = [
        {
            "id": pair.id,
            "subtask": pair.subtask,
            "prompt_sha256": pair.prompt_sha256,
            "score": pair_score(rewards[c], rewards[r]),
            "metrics": {"chosen": rewards[c], "rejected": rewards[r]},
        }
        for pair, c, r in kept
    ]
    counts = {
        "rows": len(pairs),
        "over_max_length": len(pairs) - len(kept),
        "cache_reused_pairs": reused_pairs,
        "cache_reused_rewards": reused_rewards,
    }
    return records, counts


def load_all_pairs(
    benchmarks: list[str],
    *,
    data_dir: Path | None,
    limit: int | None,
    lock: lockfile.Lock | None = None,
    allow_unlocked: bool = False,
) -> dict[str, list[data.Pair]]:
    """Every benchmark's pairs, each row checked (a malformed one is a UsageError naming it)."""
    pairs = {
        name: data.load_pairs(name, data_dir=data_dir, limit=limit, lock=lock, allow_unlocked=allow_unlocked)
        for name in benchmarks
    }
    if "rewardbench" in pairs:
        _check_subsets(pairs["rewardbench"], limit)
    return pairs


def evaluate(
    model_path: Path,
    *,
    benchmarks: list[str],
    data_dir: Path | None,
    limit: int | None,
    out_dir: Path,
    batch_size: int | None = None,
    max_length: int = 2048,
    progress: bool = True,
    prior_sets: float | None = None,
    cache_dir: Path | None = None,
    lock: lockfile.Lock | None = None,
    allow_unlocked: bool = False,
    pairs: dict[str, list[data.Pair]] | None = None,
) -> dict[str, BenchmarkResult]:
    """Score each benchmark, write items/<name>.jsonl under out_dir, return the results.

    data_dir None reads the lock-pinned hub datasets. `limit` takes the first N pairs of each
    RewardBench subset (of UFB). Pairs over `max_length` tokens are dropped and counted.
    `prior_sets` (RewardBench "Prior Sets" accuracy, evaluated elsewhere) adds the [2,2,2,2,1]
    average. Rewards are cached in cache_dir (default out_dir/cache) for resuming. `pairs`: what
    `load_all_pairs` returned for the same arguments (read before the caller writes anything).
    """
    _check_args(benchmarks, limit, batch_size, max_length)
    if not is_reward_model(Path(model_path)):
        raise UsageError(
            f"{model_path} is not a reward model (config.json names no *ForSequenceClassification "
            "architecture); RewardBench and UFB need one"
        )
    if pairs is None:
        pairs = load_all_pairs(
            benchmarks, data_dir=data_dir, limit=limit, lock=lock, allow_unlocked=allow_unlocked
        )
    rm = scoring.load_model(Path(model_path), progress=progress)
    batch_size = batch_size or (GPU_BATCH if rm.device == "cuda" else CPU_BATCH)
    cache = scoring.Cache(Path(cache_dir or Path(out_dir) / "cache") / f"rewards-{rm.fingerprint()}.jsonl")
    results: dict[str, BenchmarkResult] = {}
    for name, bench_pairs in pairs.items():
        start = time.monotonic()
        records, counts = _score_benchmark(
            rm, name, bench_pairs, cache, batch_size=batch_size, max_length=max_length, progress=progress
        )
        if name == "rewardbench":
            result = _rewardbench_result(records, prior_sets)
        else:
            result = _accuracy_result(records)
        result.counts = counts
        result.items = write_items(Path(out_dir), name, records)
        result.seconds = time.monotonic() - start
        results[name] = result
        print(
            f"{name}: {result.score:.2f} ({result.metric}) on {result.n} pairs; "
            f"{counts['over_max_length']} over {max_length} tokens dropped, "
            f"{counts['cache_reused_pairs']} pairs ({counts['cache_reused_rewards']} rewards) "
            "reused from the cache",
            file=sys.stderr,
        )
    return results
