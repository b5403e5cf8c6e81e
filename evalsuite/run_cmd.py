"""`python -m evalsuite run`: evaluate models on the paper's benchmarks with its protocol.

Causal LMs go through lm-eval (the task definitions in evalsuite/harness/tasks/, vLLM or HF
backend; on vLLM across GPUs with --tensor-parallel/--data-parallel); reward models through
evalsuite.reward. Either way the output is one results folder per model in the format of
evalsuite/results.py, written when every benchmark is done (for causal LMs with lm-eval's own
results and samples files in lm-eval/); finished requests are kept in <folder>/cache/ so an
interrupted run resumes. The folder belongs to one model, by the sha256 of its files
(evalsuite/harness/run_folder.py): another model under the same label is refused unless --force.
Several models (--model repeated, --models FILE) are evaluated one after another, each into its
own folder; one that fails does not stop the others, and the summary at the end names it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from core import errors, run_lock
from core import lock as lockfile
from core.errors import UsageError, json_loads, options, positive_int, seed
from core.resolve import Resolved, resolve
from evalsuite import benchmarks as registry
from evalsuite import results as results_io
from evalsuite.harness import lm_run, run_folder

DEFAULT_OUTPUT = results_io.DEFAULT_ROOT
MAX_LENGTH = lm_run.MAX_LENGTH


def _manifest(res: Resolved) -> dict[str, Any]:
    """The `python -m repro` manifest of a run folder's final/ ({} for any other model)."""
    if res.source != "repro-output":
        return {}
    try:
        found = json_loads((res.path.parent / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _label(spec: str, res: Resolved) -> str:
    """The default label; checked like --label (a recipe name or folder name never escapes OUTPUT)."""
    if res.source == "repro-output":  # outputs/<recipe>[-seedN]/final -> the recipe name
        manifest = _manifest(res)
        name = manifest.get("recipe") or res.name or res.path.parent.name
        # A smoke run (tiny model, in-repo data) must never fill the paper's column of its recipe.
        name = f"{name}-smoke" if manifest.get("profile") == "smoke" else name
        return results_io.check_label(str(name), f"recipe name of {res.path.parent}")
    if res.name:
        return results_io.check_label(res.name, "lock name")
    # a local folder by its own name ("." and ".." too), a hub id by its last part
    name = Path(res.path).resolve().name if res.source == "local" else Path(spec.rstrip("/")).name
    label = results_io.label_from(name)
    if not label:
        raise UsageError(f"cannot name the results of {spec!r} after it: pass --label NAME")
    return label


def evaluate(
    model: str,
    *,
    benchmarks: list[str] | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    output: Path = DEFAULT_OUTPUT,
    backend: str | None = None,
    settings: dict[str, Any] | None = None,
    lock_path: Path | None = None,
    allow_unlocked: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    label: str | None = None,
    force: bool = False,
    tensor_parallel: int = 1,
    data_parallel: int = 1,
    lm_eval_files: bool = True,
) -> Path:
    """Evaluate `model` (path, lock name or hub id) and return its results folder.

    The folder OUTPUT/<label> belongs to one model (run_folder): a folder of another model is
    refused, or with `force` emptied first.

    `label` names the folder and the model in tables (default: lock name, recipe name of a run
    folder with "-smoke" for smoke-profile runs, or the folder's name). `tensor_parallel` and
    `data_parallel` are vLLM's (lm-eval's wrapper); `lm_eval_files` adds lm-eval's own results
    and samples files under OUTPUT/<label>/lm-eval/ (causal LMs; reward models have none).
    """
    from evalsuite import reward

    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be a positive number of items, not {limit}")
    if sample is not None and (sample < 1 or limit is not None):
        raise UsageError("--sample takes a positive number of items and cannot be combined with --limit")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a directory")
    lock = lockfile.load(lock_path)
    res = resolve(model, lock=lock, allow_unlocked=allow_unlocked)
    kind = "reward-model" if reward.is_reward_model(res.path) else "causal-lm"
    if kind == "reward-model" and sample is not None:
        raise UsageError("--sample is for causal LMs; use --limit for reward models")
    if kind == "reward-model" and (tensor_parallel, data_parallel) != (1, 1):
        raise UsageError(
            f"{model} is a reward model, which runs on HF on one device: drop --tensor-parallel and "
            "--data-parallel"
        )
    if kind == "causal-lm":  # which backend and how many GPUs, before any file is read or written
        backend = lm_run.pick_backend(backend)
        lm_run.check_parallel(backend, tensor_parallel, data_parallel)
    names = registry.parse_list(",".join(benchmarks) if benchmarks else None, kind)
    label = results_io.check_label(label) if label is not None else _label(model, res)
    folder = Path(output) / label
    run_folder.refuse_overlap(folder, [res.path, data_dir])  # before anything is read or written
    run_lock.refuse_if_held(folder)  # before the slow checks below; `owned` takes the lock itself
    pairs = None
    if kind == "reward-model":  # every row checked before anything is loaded or written
        pairs = reward.load_all_pairs(
            names, data_dir=data_dir, limit=limit, lock=lock, allow_unlocked=allow_unlocked
        )
    else:
        from evalsuite.harness import sources

        converted: dict[str, str] = {}  # benchmarks whose rows are a lossy conversion: never judged
        for name in names:  # fail before loading the model or writing anything if any data is bad
            where = sources.benchmark_folder(
                name, data_dir, lock_path=str(lock.path), allow_unlocked=allow_unlocked
            )
            for subset in sources.subsets(name):
                if note := sources.converted(sources.read_for_evaluation(name, where, subset)):
                    converted[name] = note
        settings = {**(settings or {}), "converted_data": converted}
    identity = run_folder.model_identity(res.path)
    what = f"evalsuite run --model {model}"
    with run_folder.owned(folder, identity, force=force, what=what, inputs=[data_dir]) as pending:
        results = _evaluate_into(
            folder,
            pending,
            model,
            res,
            identity,
            kind=kind,
            names=names,
            label=label,
            data_dir=data_dir,
            limit=limit,
            sample=sample,
            seed=seed,
            backend=backend,
            settings=settings,
            lock=lock,
            allow_unlocked=allow_unlocked,
            batch_size=batch_size,
            progress=progress,
            pairs=pairs,
            tensor_parallel=tensor_parallel,
            data_parallel=data_parallel,
            lm_eval_files=lm_eval_files,
        )
        path = run_folder.commit(folder, results, pending)
    print(f"results: {path}")
    return folder


def _evaluate_into(
    folder: Path,
    pending: Path,
    model: str,
    res: Resolved,
    identity: run_folder.Identity,
    *,
    kind: str,
    names: list[str],
    label: str,
    data_dir: Path | None,
    limit: int | None,
    sample: int | None,
    seed: int,
    backend: str | None,
    settings: dict[str, Any] | None,
    lock: lockfile.Lock,
    allow_unlocked: bool,
    batch_size: int | None,
    progress: bool,
    pairs: dict[str, Any] | None = None,
    tensor_parallel: int = 1,
    data_parallel: int = 1,
    lm_eval_files: bool = True,
) -> results_io.Results:
    """The evaluation proper: the request cache in folder/cache, per-item records into `pending`."""
    from core import manifest
    from evalsuite import reward

    started = time.perf_counter()
    run_settings: dict[str, Any] = {"max_length": MAX_LENGTH, **(settings or {})}
    if sample is not None:
        run_settings.update({"sample": sample, "sample_seed": seed})
    if isinstance(_manifest(res).get("seed"), int):  # tables pool the seeds of one recipe
        run_settings["training_seed"] = _manifest(res)["seed"]
    if kind == "reward-model":
        chosen_backend = "hf"
        bench_results = reward.evaluate(
            res.path,
            benchmarks=names,
            data_dir=data_dir,
            limit=limit,
            out_dir=pending,
            cache_dir=folder / "cache",
            batch_size=batch_size,
            max_length=MAX_LENGTH,
            progress=progress,
            lock=lock,
            allow_unlocked=allow_unlocked,
            pairs=pairs,
        )
    else:
        chosen_backend = lm_run.pick_backend(backend)
        bench_results, lm_settings = lm_run.evaluate(
            res,
            identity,
            names,
            cache_file=folder / "cache" / "requests.jsonl",
            out=pending,
            backend=chosen_backend,
            batch_size=batch_size,
            data_dir=data_dir,
            limit=limit,
            sample=(sample, seed) if sample is not None else None,
            lock_path=lock.path,
            allow_unlocked=allow_unlocked,
            progress=progress,
            tensor_parallel=tensor_parallel,
            data_parallel=data_parallel,
            # lm-eval names its folder after the model: the hub id, as leaderboards know it, else the label
            lm_eval_name=(res.repo_id or label) if lm_eval_files else None,
        )
        run_settings.update(lm_settings)
    run_settings["seconds"] = round(time.perf_counter() - started, 3)
    info = results_io.ModelInfo(
        spec=model,
        label=label,
        kind=kind,
        source=res.source,
        name=res.name,
        repo_id=res.repo_id,
        revision=res.revision,
        path=str(res.path),
        sha256=identity.sha256,
    )
    return results_io.Results(
        model=info,
        backend=chosen_backend,
        benchmarks=bench_results,
        limit=limit,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        versions={**manifest.package_versions(), "smoltulu": manifest.git_commit() or "unknown"},
        hardware=manifest.hardware(),
        settings=run_settings,
    )


def benchmark_list(text: str | None) -> list[str] | None:
    """--benchmarks as names; unknown names fail before any model is touched."""
    benchmarks = [b.strip() for b in text.split(",") if b.strip()] if text else None
    for name in benchmarks or []:
        registry.get(name)
    return benchmarks


def evaluate_from_args(
    model: str, args: argparse.Namespace, benchmarks: list[str] | None, label: str | None = None
) -> Path:
    """`evaluate` with the options `run` and `fidelity` share."""
    return evaluate(
        model,
        benchmarks=benchmarks,
        lock_path=args.lock,
        progress=not args.no_progress,
        allow_unlocked=bool(getattr(args, "allow_unlocked", False)),
        force=bool(getattr(args, "force", False)),
        label=label if label is not None else getattr(args, "label", None),
        tensor_parallel=getattr(args, "tensor_parallel", None) or 1,
        data_parallel=getattr(args, "data_parallel", None) or 1,
        lm_eval_files=not getattr(args, "no_lm_eval_files", False),
        **options(args, "data_dir", "limit", "sample", "seed", "output", "backend", "batch_size"),
    )


def read_models_file(path: Path) -> list[tuple[str, str | None]]:
    """--models FILE: one model a line (as --model takes it), optionally its label after whitespace;
    blank lines and `#` comments (a line's rest from a `#` at its start or after whitespace) skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--models {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    models: list[tuple[str, str | None]] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].split()
        if len(fields) > 2:
            raise UsageError(
                f"{path}:{number}: write one model and at most a label per line, not {line.strip()!r}"
            )
        if fields:
            label = results_io.check_label(fields[1], f"{path}:{number}: label") if len(fields) == 2 else None
            models.append((fields[0], label))
    if not models:
        raise UsageError(f"--models {path} names no model: write one per line (MODEL [LABEL])")
    return models


def _plan(models: list[tuple[str, str | None]], args: argparse.Namespace) -> list[tuple[str, str]]:
    """Every model with its label, each checked before any is evaluated; one label per model."""
    lock = lockfile.load(args.lock)
    planned: list[tuple[str, str]] = []
    for spec, label in models:
        if label is None:
            label = _label(spec, resolve(spec, lock=lock, allow_unlocked=bool(args.allow_unlocked)))
        planned.append((spec, label))
    seen: dict[str, str] = {}
    for spec, label in planned:  # casefolded: "A" and "a" are one folder on macOS and Windows
        if label.casefold() in seen:
            raise UsageError(
                f"{seen[label.casefold()]} and {spec} would both write {Path(args.output) / label}: give "
                "each its own label in --models FILE (MODEL LABEL per line)"
            )
        seen[label.casefold()] = spec
    return planned


def _cmd(args: argparse.Namespace) -> int:
    benchmarks = benchmark_list(args.benchmarks)
    models = [(m, None) for m in args.model or []]
    models += read_models_file(args.models) if args.models else []
    if not models:
        raise UsageError("name the model to evaluate: --model MODEL (repeatable) or --models FILE")
    if len(models) == 1 and not (args.label and models[0][1]):
        evaluate_from_args(models[0][0], args, benchmarks, label=models[0][1])
        return 0
    if args.label is not None:
        raise UsageError(
            "--label names one model's results: with several models, write each one's label "
            "after it in --models FILE (MODEL LABEL per line)"
        )
    if (args.tensor_parallel, args.data_parallel) != (1, 1):  # refused now, not after the first model
        lm_run.check_parallel(lm_run.pick_backend(args.backend), args.tensor_parallel, args.data_parallel)
    planned = _plan(models, args)
    # One after another in this process (each frees its engine): a failure is reported and the
    # others still run, so a night of 20 checkpoints is not lost to the 3rd; the exit status says so.
    done: list[tuple[str, str, str]] = []
    failed = 0
    for number, (spec, label) in enumerate(planned, 1):
        print(f"=== [{number}/{len(planned)}] {spec} -> {Path(args.output) / label}", flush=True)
        try:
            folder = evaluate_from_args(spec, args, benchmarks, label=label)
            done.append((spec, label, f"done: {folder}"))
        except Exception as exc:  # any failure of one model is reported and the others still run
            if errors.debug_enabled():
                traceback.print_exc()
            print(f"error: {spec}: {errors.describe(exc)}", file=sys.stderr, flush=True)
            done.append((spec, label, f"FAILED: {errors.describe(exc)}"))
            failed += 1
    from tabulate import tabulate

    print(f"\n{len(planned) - failed} of {len(planned)} models evaluated")
    print(tabulate(done, headers=["model", "label", "result"], maxcolwidths=[None, None, 80]))
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    lm_names = ", ".join(registry.LM_BENCHMARKS)
    rm_names = ", ".join(registry.RM_BENCHMARKS)
    p = sub.add_parser(
        "run",
        help="evaluate a model on the paper's benchmarks (writes results.json + per-item records)",
        description=(
            "Evaluate a causal LM on the seven benchmarks with the SmolLM2/lighteval protocol, or a "
            "reward model on RewardBench and UFB. The model kind is detected from its config. "
            "Interrupted runs resume: finished requests are kept in <output>/<label>/cache/."
        ),
    )
    p.add_argument(
        "--model",
        action="append",
        help="a lock name (see `python -m evalsuite models`), a local folder (a `python -m repro` "
        "run folder works), or a hub id; repeat it for several models, each into OUTPUT/<its label>/",
    )
    p.add_argument(
        "--models",
        type=Path,
        metavar="FILE",
        help="a file of models, one per line as --model takes them, each optionally followed by its label; "
        "`#` starts a comment. Evaluated one after another; a model that fails is named in the summary "
        "and the others still run (exit status 1)",
    )
    p.add_argument(
        "--benchmarks",
        default=None,
        help=f"comma-separated subset; causal LMs: {lm_names}; reward models: {rm_names} "
        "(default: all for the model's kind)",
    )
    p.add_argument(
        "--backend",
        choices=("vllm", "hf"),
        default=None,
        help="inference engine (default: vllm when installed and a GPU is present, else hf)",
    )
    p.add_argument(
        "--tensor-parallel",
        type=positive_int,
        default=1,
        metavar="N",
        help="vLLM: split each model over N GPUs (tensor_parallel_size; in the request cache's key, as it "
        "changes the arithmetic)",
    )
    p.add_argument(
        "--data-parallel",
        type=positive_int,
        default=1,
        metavar="N",
        help="vLLM: N replicas of the model, the requests dealt among them as lm-eval's vLLM wrapper does "
        "it (data_parallel_size; needs ray); uses N x --tensor-parallel GPUs",
    )
    p.add_argument(
        "--no-lm-eval-files",
        action="store_true",
        help="do not write lm-eval's own results and samples files to OUTPUT/<label>/lm-eval/ (the samples "
        "hold every prompt: hundreds of MB per model on the full benchmarks)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="evaluate only the first N items of each (sub)task"
    )
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        help="evaluate a seeded random sample of N items of each (sub)task (an unbiased estimate of "
        "the whole set's score, with a wider interval); not with --limit",
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of --sample (default: 0)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="read benchmark files from DIR/<benchmark>/ (hub layout or ../shared/benchdata "
        "layout) instead of the hub",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"results root; the model's results go to OUTPUT/<label>/ (default: {DEFAULT_OUTPUT})",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="batch size for the HF backend and reward models (default on CPU: 32 log-likelihood "
        "requests and 1 generation request per batch for the HF backend, 8 for reward models; 16 on GPU)",
    )
    p.add_argument(
        "--allow-unlocked",
        action="store_true",
        help="allow models/datasets whose revision checkpoints.lock does not pin",
    )
    p.add_argument(
        "--label",
        type=results_io.label_arg,
        help="name of the results folder and of the model in tables (default: the lock name, a run "
        "folder's recipe name (+'-smoke' for smoke-profile runs), or the folder's name); one model only",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="when OUTPUT/<label> holds the results of another model (or of an unknown one), delete them "
        "and evaluate this model there (without it such a run is refused)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)


def describe(folder: Path) -> str:
    """One line per benchmark of a results folder (used by the demo summary)."""
    res = results_io.load(folder)
    return "\n".join(
        f"  {registry.get(n).column:<18} {b.score:6.2f}  (n={b.n})" for n, b in sorted(res.benchmarks.items())
    ) or json.dumps({})
