"""`python -m benchmarks.tables_speed`: time `evalsuite tables` on 7 models x 7 benchmarks.

Simulated per-item results at full item counts (the seven Table 9 columns, at their reported
scores) are written to a temporary folder first (not timed); then every table, interval, test,
claim and the forest plot are generated in-process and, separately, by the CLI in a fresh
interpreter. Prints the times and writes them with hardware, versions and settings to
benchmarks/results/tables_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

ROOT = common.ROOT
RESULTS = common.RESULTS / "tables_speed.json"
BUDGET_S = 5.0


def simulate_models(folder: Path, seed: int) -> tuple[list[str], int]:
    """The seven Table 9 models at their reported scores; returns labels and total items."""
    from evalsuite import benchmarks
    from evalsuite.report import reported, simulate

    scores = reported.load()
    table9 = next(t for t in scores.tables if t.number == 9)
    assert set(benchmarks.LM_BENCHMARKS) == {str(r.metric) for r in table9.rows}
    for j, col in enumerate(table9.columns):
        targets = {str(row.metric): row.values[j].value for row in table9.rows}
        simulate.write_results(folder / col.model, col.model, targets, seed=seed + j)
    items = sum(sum(1 for _ in p.open(encoding="utf-8")) for p in folder.glob("*/items/*.jsonl"))
    return [c.model for c in table9.columns], items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables_speed", description=__doc__)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="in-process runs; the best is reported")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON to write (default: {RESULTS})")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]

    # imported up front: the in-process time excludes imports (the CLI time includes them)
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    from evalsuite.report import analysis, forest, tablegen, tables_cmd  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="tables-speed-") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        labels, items = simulate_models(tmp_path / "results", args.seed)
        simulate_s = time.perf_counter() - t0

        runs = []
        for _ in range(args.repeats):  # the best of a few runs: other work on the machine adds noise
            t0 = time.perf_counter()
            tables_cmd.generate(
                [tmp_path / "results"],
                tmp_path / "out",
                resamples=args.resamples,
                seed=args.seed,
                workers=args.workers,
            )
            runs.append(time.perf_counter() - t0)
        in_process_s = min(runs)
        stats = json.loads((tmp_path / "out" / "statistics.json").read_text(encoding="utf-8"))

        t0 = time.perf_counter()
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "evalsuite",
                "tables",
                "--results",
                str(tmp_path / "results"),
                "--out",
                str(tmp_path / "cli-out"),
                "--resamples",
                str(args.resamples),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        cli_s = time.perf_counter() - t0
        if cli.returncode != 0:
            print(cli.stderr, file=sys.stderr)
            return 1

    record = {
        "settings": {
            "workers": args.workers,
            "models": labels,
            "benchmarks": 7,
            "items": items,
            "resamples": args.resamples,
            "seed": args.seed,
            "simulated": True,
        },
        "seconds": {
            "generate_in_process": round(in_process_s, 3),
            "generate_in_process_runs": [round(r, 3) for r in runs],
            "cli_cold_start": round(cli_s, 3),
            "simulate_not_timed_in_budget": round(simulate_s, 3),
        },
        "budget_s": BUDGET_S,
        "within_budget": in_process_s < BUDGET_S,
        "counts": {
            "scores": len(stats["scores"]),
            "comparisons": len(stats["comparisons"]),
            "claims": len(stats["claims"]),
        },
        # other work on the machine inflates the times: the 1-minute load average before the run
        "load_average_1m_before": round(load_before, 2),
    }
    common.write("tables_speed", record, args.out)
    print(
        f"{len(labels)} models x 7 benchmarks, {items} items, {args.resamples} resamples: "
        f"tables + statistics in {in_process_s:.2f} s in-process (budget {BUDGET_S:.0f} s), "
        f"{cli_s:.2f} s as a fresh CLI process (imports included)"
    )
    return 0 if in_process_s < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
