"""`python -m benchmarks.eval_throughput`: items/s and tokens/s per benchmark, vLLM against HF.

Both backends evaluate the same model on the same items (`--limit` per (sub)task) through the
suite's own `evalsuite.run_cmd.evaluate`, one call per benchmark so every figure is that
benchmark's alone; the engine start-up is measured once per call and reported apart. Tokens
are counted with the model's tokenizer on the requests lm-eval sends: prefill tokens (the
context, plus the continuation of log-likelihood requests) and generated tokens.

Roofline for the model on this device: prefill at 2·N FLOPs per token at the measured matmul
peak, decode at one read of the weights per step at the measured copy bandwidth, one step
serving every sequence in flight (the batch size for HF, all of a chunk's requests for vLLM).
The achieved fraction is roofline time / measured time.

On CPU the default model is the embedded "small" one; vLLM needs the `vllm` tox env:
  tox -e vllm --notest && VLLM_TARGET_DEVICE=cpu .tox/vllm/bin/python -m benchmarks.eval_throughput
On a GPU, `--model-size 1.7b` builds a random model with SmolLM2-1.7B's exact configuration.
`--budget-s` starts no (backend, benchmark) run after that many seconds; the JSON, rewritten after
each run, names the skipped ones (`python -m benchmarks.gpu_suite` uses it).

`--hf-paths` instead times the HF backend's log-likelihood paths against each other in this one
process, on the same requests (`evalsuite.harness.prompts.requests`: exactly what a run sends for the
first `--limit` items of each (sub)task), fed through the suite's ResumableLM in its chunks of 32
with a fresh cache: lm-eval's stock HFLM against evalsuite.harness.fast_hf.FastHFLM, each `--variants`
entry CLASS:BATCH:THREADS (THREADS: a number, "max" for torch's default, "auto" for FastHFLM's
free-core policy), `--rounds` times in turn so that a busy machine slows every variant alike.
It reports log-likelihood requests/s, each variant's speed-up over the first in the same round,
and the largest difference of its answers from the first's; writes eval_throughput_hf_paths.json:
  python -m benchmarks.eval_throughput --hf-paths --model /path/to/SmolLM2-135M-Instruct --limit 24
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.models import build_model

ALL = ("arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa")


@dataclass
class Counts:
    prefill_tokens: int = 0
    generated_tokens: int = 0
    requests: int = 0
    decode_steps: int = 0  # sum over calls of max generated tokens per in-flight group


@dataclass
class Counter:
    tokenizer: Any
    concurrency: int | None  # sequences one decode step serves; None: the ResumableLM chunk
    counts: Counts = field(default_factory=Counts)

    def n(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def record(self, kind: str, requests: list[Any], answers: list[Any]) -> None:
        c = self.counts
        c.requests += len(requests)
        if kind == "generate_until":
            lengths = [self.n(str(a)) for a in answers]
            c.prefill_tokens += sum(self.n(r.args[0]) for r in requests)
            c.generated_tokens += sum(lengths)
            for i in range(0, len(lengths), self.concurrency):  # one step serves every sequence in flight
                c.decode_steps += max(lengths[i : i + self.concurrency], default=0)
        else:
            c.prefill_tokens += sum(self.n(r.args[0] + r.args[1]) for r in requests)


def _counting_lm(counter: Counter):
    """ResumableLM that also counts the tokens of every request it computes."""
    from evalsuite.harness.resumable import ResumableLM

    class CountingLM(ResumableLM):
        def _run(self, kind, requests, call):  # type: ignore[override]
            counter.concurrency = counter.concurrency or self.chunk_size  # vLLM takes a chunk at once

            def counted(batch: list[Any]) -> list[Any]:
                answers = call(batch)
                counter.record(kind, batch, list(answers))
                return answers

            return super()._run(kind, requests, counted)

    return CountingLM


def run_one(model: Path, backend: str, bench: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    import evalsuite.harness.resumable as resumable
    from evalsuite import results as results_io
    from evalsuite.run_cmd import evaluate

    concurrency = args.hf_batch_size if backend == "hf" else None
    counter = Counter(AutoTokenizer.from_pretrained(model), concurrency)
    original = resumable.ResumableLM
    resumable.ResumableLM = _counting_lm(counter)  # evaluate() imports it at call time
    try:
        t0 = time.perf_counter()
        folder = evaluate(
            str(model), benchmarks=[bench], data_dir=args.data_dir, limit=args.limit, output=out,
            backend=backend, batch_size=args.hf_batch_size, progress=False, label=f"{backend}-{bench}",
        )  # fmt: skip
        total = time.perf_counter() - t0
    finally:
        resumable.ResumableLM = original
    res = results_io.load(folder).benchmarks[bench]
    c = counter.counts
    seconds = float(res.seconds or total)
    return {
        "items": res.n,
        "seconds": round(seconds, 3),
        "startup_seconds": round(total - seconds, 3),
        "items_per_s": res.n / seconds,
        "prefill_tokens": c.prefill_tokens,
        "generated_tokens": c.generated_tokens,
        "tokens_per_s": (c.prefill_tokens + c.generated_tokens) / seconds,
        "generated_tokens_per_s": c.generated_tokens / seconds,
        "decode_steps": c.decode_steps,
        "score": res.score,
    }


def roofline(
    row: dict[str, Any], n_params: int, weight_bytes: int, peaks: dict[str, Any]
) -> dict[str, float]:
    flops, bw = peaks["peak_flops_measured"], peaks["bandwidth_measured"]
    prefill_s = 2 * n_params * row["prefill_tokens"] / flops
    decode_s = row["decode_steps"] * weight_bytes / bw
    bound = prefill_s + decode_s
    return {
        "roofline_seconds": bound,
        "roofline_fraction": bound / row["seconds"] if row["seconds"] else math.nan,
    }


def suite_figures(
    rows: dict[str, dict[str, Any]], benches: list[str], backends: list[str]
) -> tuple[dict[str, dict[str, float]], float | None]:
    """Whole-suite seconds per backend (one engine start) and vLLM's speed-up over HF, where both
    backends timed every benchmark."""
    suite = {
        b: {
            "seconds": sum(r["seconds"] for r in rows[b].values()),
            "startup_seconds": statistics.median(r["startup_seconds"] for r in rows[b].values()),
            "benchmarks": len(rows[b]),
        }
        for b in backends
        if rows.get(b)
    }
    for s in suite.values():
        s["wall_seconds"] = s["seconds"] + s["startup_seconds"]  # one engine start for the whole suite
    complete = all(len(rows.get(b, {})) == len(benches) for b in ("hf", "vllm"))
    ratio = (
        suite["hf"]["seconds"] / suite["vllm"]["seconds"]
        if {"hf", "vllm"} <= set(backends) and complete
        else None
    )
    return suite, ratio


def report(
    rows: dict[str, dict[str, Any]],
    suite: dict[str, dict[str, float]],
    benches: list[str],
    backends: list[str],
    ratio: float | None,
) -> None:
    print(
        f"{'benchmark':10} "
        + " ".join(f"{b + ' items/s':>13} {b + ' tok/s':>11} {'roof%':>6}" for b in backends)
    )
    for bench in benches:
        cells = []
        for b in backends:
            r = rows[b].get(bench)
            if r is None:
                cells.append(f"{'skipped':>32}")
                continue
            cells.append(
                f"{r['items_per_s']:13.2f} {r['tokens_per_s']:11.0f} {100 * r['roofline_fraction']:5.1f}%"
            )
        print(f"{bench:10} " + " ".join(cells))
    for b, s in suite.items():
        print(f"whole suite, {b}: {s['wall_seconds']:.1f} s ({s['startup_seconds']:.1f} s start-up)")
    if ratio is not None:
        print(f"vLLM speed-up over HF (whole suite, start-up excluded): {ratio:.2f}x (H100 target: >= 5x)")


LOGLIKELIHOOD = ("arc", "hellaswag", "mmlu_pro", "piqa")
DEFAULT_VARIANTS = "stock:1:max,stock:32:1,fast:32:1,fast:32:auto"


def _variant(spec: str) -> tuple[str, int, str]:
    kind, batch, threads = spec.split(":")
    if (
        kind not in ("stock", "fast")
        or not batch.isdigit()
        or not (threads in ("max", "auto") or threads.isdigit())
    ):
        raise ValueError(f"variant {spec!r}: use stock|fast:BATCH:THREADS (THREADS: N, max or auto)")
    if threads == "auto" and kind != "fast":
        raise ValueError(f"variant {spec!r}: only fast has the auto thread policy")
    return kind, int(batch), threads


def hf_paths(model: Path, benches: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Log-likelihood requests/s of each variant on the same requests, the variants taking turns."""
    import os

    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalsuite.harness.fast_hf import FastHFLM
    from evalsuite.harness.lm_run import MAX_LENGTH, TASKS
    from evalsuite.harness.prompts import requests
    from evalsuite.harness.resumable import ResumableLM

    max_threads = torch.get_num_threads()
    specs = [s.strip() for s in args.variants.split(",") if s.strip()]
    variants = {s: _variant(s) for s in specs}
    weights = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model)
    lms: dict[str, Any] = {}
    for spec, (kind, batch, threads) in variants.items():
        cls = FastHFLM if kind == "fast" else HFLM
        extra = {"cpu_threads": "auto"} if threads == "auto" else {}
        lms[spec] = cls(
            pretrained=weights, tokenizer=tokenizer, backend="causal", max_length=MAX_LENGTH,
            batch_size=batch, device="cpu", **extra,
        )  # fmt: skip
    out: dict[str, Any] = {}
    for bench in benches:
        reqs = [
            r
            for task in TASKS[bench]
            for r in requests(task, tokenizer_dir=model, data_dir=args.data_dir, limit=args.limit)
        ]
        rounds: list[dict[str, Any]] = []
        answers: dict[str, list[Any]] = {}
        for number in range(args.rounds):
            row: dict[str, Any] = {}
            for spec, (_, _, threads) in variants.items():
                lm = lms[spec]
                if threads == "auto":
                    lm._cpu_share.start()  # decide afresh: the previous variant may have set any count
                else:
                    torch.set_num_threads(max_threads if threads == "max" else int(threads))
                with tempfile.TemporaryDirectory() as tmp:
                    wrapped = ResumableLM(lm, Path(tmp) / "cache.jsonl", fingerprint="x", progress=False)
                    load = os.getloadavg()[0]
                    t0 = time.perf_counter()
                    answers[spec] = wrapped.loglikelihood(reqs)
                    seconds = time.perf_counter() - t0
                row[spec] = {
                    "seconds": round(seconds, 3),
                    "requests_per_s": len(reqs) / seconds,
                    "threads_at_end": torch.get_num_threads(),
                    "load_average_1m_at_start": round(load, 2),
                }
                print(f"  {bench} round {number + 1}: {spec:16} {len(reqs) / seconds:7.2f} req/s", flush=True)
            first = specs[0]
            for spec in specs:
                row[spec]["speedup_over_first"] = row[first]["seconds"] / row[spec]["seconds"]
            rounds.append(row)
        ref = answers[specs[0]]
        out[bench] = {
            "items_per_subtask": args.limit,
            "requests": len(reqs),
            "rounds": rounds,
            "median": {
                spec: {
                    "requests_per_s": statistics.median(r[spec]["requests_per_s"] for r in rounds),
                    "speedup_over_first": statistics.median(r[spec]["speedup_over_first"] for r in rounds),
                }
                for spec in specs
            },
            "max_abs_diff_from_first": {
                spec: max(abs(a[0] - b[0]) for a, b in zip(ref, answers[spec], strict=True)) for spec in specs
            },
            "greedy_agrees_with_first": {
                spec: all(a[1] == b[1] for a, b in zip(ref, answers[spec], strict=True)) for spec in specs
            },
        }
    torch.set_num_threads(max_threads)
    return out


def report_hf_paths(rows: dict[str, Any], specs: list[str]) -> None:
    print(f"{'benchmark':10} {'requests':>8} " + " ".join(f"{s:>22}" for s in specs))
    for bench, r in rows.items():
        cells = [
            f"{r['median'][s]['requests_per_s']:8.2f} req/s {r['median'][s]['speedup_over_first']:5.2f}x"
            for s in specs
        ]
        print(f"{bench:10} {r['requests']:8d} " + " ".join(f"{c:>22}" for c in cells))
    print(f"(median over rounds; speed-up against {specs[0]} in the same round)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.eval_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, help="a model folder (default: build --model-size)")
    parser.add_argument(
        "--model-size",
        choices=("tiny", "small", "1.7b"),
        default=None,
        help="random model to time: small (CPU default), 1.7b (GPU default; SmolLM2-1.7B's config), tiny",
    )
    parser.add_argument("--benchmarks", default=",".join(ALL))
    parser.add_argument("--backends", default=None, help="hf,vllm (default: those installed)")
    parser.add_argument("--limit", type=int, default=4, help="items per (sub)task (default: 4)")
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, help="benchmark files (default: benchdata, else demo items)")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: benchmarks/results/…)")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="start no run after this many seconds (default: none)"
    )
    parser.add_argument(
        "--hf-paths",
        action="store_true",
        help="time lm-eval's stock HFLM against FastHFLM on the same log-likelihood requests (see above)",
    )
    parser.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"--hf-paths: (default: {DEFAULT_VARIANTS})"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="--hf-paths: turns each variant takes (default: 2)"
    )
    args = parser.parse_args(argv)
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: no model there (no config.json)")

    from evalsuite.demo import DEMO_DATA, find_benchdata

    args.data_dir = find_benchdata(args.data_dir) or DEMO_DATA
    if args.hf_paths:
        return main_hf_paths(args, parser)
    benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    have_vllm = importlib.util.find_spec("vllm") is not None
    backends = args.backends.split(",") if args.backends else (["vllm", "hf"] if have_vllm else ["hf"])
    gpu = common.device() == "cuda"
    size = args.model_size or ("1.7b" if gpu else "small")
    peaks = common.measured_peaks()
    described = str(args.model) if args.model else f"random {size}"
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {b: {} for b in backends}
    skipped: list[str] = []
    n_params = 0

    def save(final: bool) -> None:
        """The record so far (rewritten after each run, so a killed run leaves its figures)."""
        suite, ratio = suite_figures(rows, benches, backends)
        if final:
            print(
                f"\nmodel: {described} ({n_params / 1e6:.2f}M params) on {peaks['device']}, "
                f"--limit {args.limit}"
            )
            report(rows, suite, benches, backends, ratio)
        common.write(
            "eval_throughput",
            {
                "settings": {
                    "model": described,
                    "parameters": n_params,
                    "limit": args.limit,
                    "benchmarks": benches,
                    "backends": backends,
                    "hf_batch_size": args.hf_batch_size,
                    "data_dir": str(args.data_dir),
                    "budget_s": args.budget_s,
                },
                "peaks": peaks,
                "per_benchmark": rows,
                "suite": suite,
                "vllm_over_hf": ratio,
                "skipped": skipped,
                "complete": final,
            },
            args.out,
        )

    with tempfile.TemporaryDirectory(prefix="eval-throughput-") as tmp:
        model = args.model or build_model(Path(tmp) / "model", size)
        n_params = common.model_parameters(model)
        weight_bytes = n_params * (2 if gpu else 4)
        for backend in backends:
            for bench in benches:
                if args.budget_s is not None and time.monotonic() - started > args.budget_s:
                    print(
                        f"{backend} {bench}: skipped, the --budget-s {args.budget_s:g} s is used", flush=True
                    )
                    skipped.append(f"{backend} {bench}")
                    continue
                print(f"{backend} {bench} ...", flush=True)
                row = run_one(model, backend, bench, args, Path(tmp) / "results")
                row.update(roofline(row, n_params, weight_bytes, peaks))
                rows[backend][bench] = row
                save(final=False)
    save(final=True)
    return 0


def main_hf_paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    given = args.benchmarks if args.benchmarks != ",".join(ALL) else "piqa,hellaswag,arc"
    benches = [b.strip() for b in given.split(",") if b.strip()]
    if bad := [b for b in benches if b not in LOGLIKELIHOOD]:
        parser.error(f"--hf-paths times log-likelihood benchmarks ({', '.join(LOGLIKELIHOOD)}), not {bad}")
    try:
        specs = [s.strip() for s in args.variants.split(",") if s.strip()]
        for spec in specs:
            _variant(spec)
    except ValueError as exc:
        parser.error(str(exc))
    peaks = common.measured_peaks("float32")
    with tempfile.TemporaryDirectory(prefix="eval-hf-paths-") as tmp:
        model = args.model or build_model(Path(tmp) / "model", args.model_size or "small")
        n_params = common.model_parameters(model)
        described = str(args.model) if args.model else f"random {args.model_size or 'small'}"
        print(f"model: {described} ({n_params / 1e6:.2f}M params), --limit {args.limit}", flush=True)
        rows = hf_paths(model, benches, args)
    print()
    report_hf_paths(rows, specs)
    common.write(
        "eval_throughput_hf_paths",
        {
            "settings": {
                "model": described,
                "parameters": n_params,
                "limit": args.limit,
                "benchmarks": benches,
                "variants": specs,
                "rounds": args.rounds,
                "resumable_chunk": 32,
                "data_dir": str(args.data_dir),
            },
            "peaks": peaks,
            "per_benchmark": rows,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
