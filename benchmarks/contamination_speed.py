"""`python -m benchmarks.contamination_speed`: rows/s of `evalsuite contamination`'s scan.

The benchmark side is the real items the suite has offline (GSM8K, IFEval, BBH, MMLU-Pro from
../shared/benchdata or SMOLTULU_BENCHDATA), else synthetic items. Training rows are synthetic
conversations in the SFT mixture's schema whose user turns are real prose that is not indexed
(GSM8K train, PIQA) at the mixture's mean size (stated below); 1% of them paste a benchmark item,
so the scoring path runs too. Prints the index time, rows/s and flagged items for each search
size (search.py's cap, default 100, and 0: no cap) and worker count, and the time the real SFT
mixture (939,343 rows) would take; writes them with hardware, load and versions to
benchmarks/results/contamination_speed.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from benchmarks import common

RESULTS = common.RESULTS / "contamination_speed.json"
SFT_ROWS = 939_343  # allenai/tulu-3-sft-mixture card metadata at b14afda (checkpoints.lock note)
# Mean user-turn characters per SFT row. Assumption: the card's 2,914,250,826 bytes / 939,343 rows
# = 3,102 bytes a row, less ~100 bytes of id/source/roles, times the user share of a conversation's
# tokens, 0.35 (benchmarks/data/sft_lengths.yaml prompt_fraction) = ~1,050 characters.
USER_CHARS = 1_050
SIGMA = 1.0  # log-normal spread of turn sizes, as sft_lengths.yaml


def benchmark_items(seed: int) -> tuple[list[tuple[str, list[tuple[str, ...]]]], str]:
    from evalsuite.harness import sources
    from evalsuite.trainingdata import contamination as cont
    from evalsuite.trainingdata import contamination_cmd as cmd

    root = Path(os.environ.get("SMOLTULU_BENCHDATA", common.ROOT.parent / "shared" / "benchdata"))
    out = []
    if root.is_dir():
        for bench in cont.BENCHMARKS:
            if bench.suite and (root / bench.suite).is_dir():
                rows = cmd._suite_rows(bench, root / bench.suite)
                out.append((bench.name, cmd.queries(bench, rows)[0]))
        if out:
            return out, str(root)
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    items = [(" ".join(rng.choices(words, k=rng.randint(10, 80))),) for _ in range(20_000)]
    _ = sources  # the real readers are used above when the data is present
    return [("synthetic", items)], "synthetic (no benchdata)"


def prose(seed: int) -> tuple[list[str], str]:
    """Real English text that is not indexed: GSM8K train and PIQA goals/solutions, when present."""
    import json

    root = Path(os.environ.get("SMOLTULU_BENCHDATA", common.ROOT.parent / "shared" / "benchdata"))
    texts: list[str] = []
    gsm = root / "gsm8k" / "train.jsonl"
    if gsm.is_file():
        for line in gsm.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [row["question"], row["answer"]]
    piqa = root / "piqa" / "valid.jsonl"
    if piqa.is_file():
        for line in piqa.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.append(f"{row['goal']} {row['sol1']} {row['sol2']}")
    if texts:
        return texts, "GSM8K train + PIQA valid text (not indexed)"
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(50_000)]
    return [" ".join(rng.choices(words, k=60)) for _ in range(5000)], "random words"


def training_rows(n: int, items: list[str], seed: int) -> list[list[dict[str, Any]]]:
    """`n` conversations; user turns of log-normal size (mean USER_CHARS) of real prose."""
    rng = random.Random(seed)
    pool, _ = prose(seed)
    mu = math.log(USER_CHARS) - SIGMA**2 / 2
    rows = []
    for _ in range(n):
        target = min(int(rng.lognormvariate(mu, SIGMA)), 50_000)
        parts, size = [], 0
        if rng.random() < 0.01:
            parts.append(rng.choice(items))
            size += len(parts[-1])
        while size < target:
            parts.append(rng.choice(pool))
            size += len(parts[-1]) + 1
        rows.append([{"role": "user", "content": " ".join(parts)}, {"role": "assistant", "content": "…"}])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contamination_speed", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--search-size", type=int, nargs="+", default=[100, 0], help="0: no cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON to write (default: {RESULTS})")
    args = parser.parse_args(argv)
    from evalsuite.trainingdata import contamination_index as cont_index
    from evalsuite.trainingdata import contamination_scan as cont_scan

    load_before = os.getloadavg()[0]
    benches, source = benchmark_items(args.seed)
    t0 = time.perf_counter()
    index = cont_index.build_index(benches)
    index_s = time.perf_counter() - t0
    n_items = sum(len(items) for _, items in benches)
    print(
        f"index: {n_items} items of {len(benches)} benchmarks ({source}), "
        f"{len(index.phrases)} phrases, {index_s:.1f} s"
    )

    flat = [s for _, items in benches for item in items for s in item]
    rows = training_rows(args.rows, flat, args.seed)
    chars = sum(len(m["content"]) for r in rows for m in r if m["role"] == "user") / len(rows)
    runs = []
    for search_size in args.search_size:
        for workers in args.workers:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            result = cont_scan.scan(index, rows, workers=workers, search_size=search_size, progress=False)
            seconds = time.perf_counter() - t0
            rate = len(rows) / seconds
            hits = [i for i, (score, _, _) in result.best.items() if index.flagged(score)]
            flagged = len(hits)
            per_benchmark = {name: 0 for name in index.benchmarks}
            for i in hits:
                per_benchmark[index.benchmarks[index.items[i].benchmark]] += 1
            runs.append(
                {
                    "search_size": search_size,
                    "workers": workers,
                    "load_average_before": round(load, 2),
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(rate),
                    "tokens_per_s": round(result.tokens / seconds),
                    "flagged_items": flagged,
                    "flagged_by_benchmark": per_benchmark,
                    "search_cap": result.cap,
                    "sft_mixture_minutes": round(SFT_ROWS / rate / 60, 1),
                }
            )
            print(
                f"search size {search_size}, {workers} worker(s): {rate:,.0f} rows/s "
                f"({result.tokens / seconds:,.0f} tokens/s), {flagged} items flagged, "
                f"{result.cap['phrases_over_cap']} n-grams over the cap; the SFT mixture "
                f"({SFT_ROWS:,} rows): {SFT_ROWS / rate / 60:.1f} min (load {load:.1f})"
            )
    common.write(
        "contamination_speed",
        {
            "settings": {
                "rows": args.rows,
                "seed": args.seed,
                "mean_user_chars": round(chars),
                "assumed_sft_user_chars": USER_CHARS,
                "benchmark_side": source,
                "benchmark_items": n_items,
                "phrases": len(index.phrases),
                "load_average_before": round(load_before, 2),
            },
            "index_seconds": round(index_s, 2),
            "runs": runs,
            "note": "time to stream the parquet files is not included (datasets reads ~100 MB/s)",
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
