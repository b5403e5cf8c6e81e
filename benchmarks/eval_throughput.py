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
    from evalsuite.resumable import ResumableLM

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

    import evalsuite.resumable as resumable
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
            r = rows[b][bench]
            cells.append(
                f"{r['items_per_s']:13.2f} {r['tokens_per_s']:11.0f} {100 * r['roofline_fraction']:5.1f}%"
            )
        print(f"{bench:10} " + " ".join(cells))
    for b in backends:
        s = suite[b]
        print(f"whole suite, {b}: {s['wall_seconds']:.1f} s ({s['startup_seconds']:.1f} s start-up)")
    if ratio is not None:
        print(f"vLLM speed-up over HF (whole suite, start-up excluded): {ratio:.2f}x (H100 target: >= 5x)")


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
    args = parser.parse_args(argv)
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: no model there (no config.json)")

    from evalsuite.demo import DEMO_DATA, find_benchdata

    args.data_dir = find_benchdata(args.data_dir) or DEMO_DATA
    benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    have_vllm = importlib.util.find_spec("vllm") is not None
    backends = args.backends.split(",") if args.backends else (["vllm", "hf"] if have_vllm else ["hf"])
    gpu = common.device() == "cuda"
    size = args.model_size or ("1.7b" if gpu else "small")
    peaks = common.measured_peaks()

    with tempfile.TemporaryDirectory(prefix="eval-throughput-") as tmp:
        model = args.model or build_model(Path(tmp) / "model", size)
        n_params = common.model_parameters(model)
        weight_bytes = n_params * (2 if gpu else 4)
        rows: dict[str, dict[str, Any]] = {}
        for backend in backends:
            rows[backend] = {}
            for bench in benches:
                print(f"{backend} {bench} ...", flush=True)
                row = run_one(model, backend, bench, args, Path(tmp) / "results")
                row.update(roofline(row, n_params, weight_bytes, peaks))
                rows[backend][bench] = row

    suite = {
        b: {
            "seconds": sum(r["seconds"] for r in rows[b].values()),
            "startup_seconds": statistics.median(r["startup_seconds"] for r in rows[b].values()),
        }
        for b in backends
    }
    for s in suite.values():
        s["wall_seconds"] = s["seconds"] + s["startup_seconds"]  # one engine start for the whole suite
    ratio = suite["hf"]["seconds"] / suite["vllm"]["seconds"] if {"hf", "vllm"} <= set(backends) else None
    described = str(args.model) if args.model else f"random {size}"
    print(f"\nmodel: {described} ({n_params / 1e6:.2f}M params) on {peaks['device']}, --limit {args.limit}")
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
            },
            "peaks": peaks,
            "per_benchmark": rows,
            "suite": suite,
            "vllm_over_hf": ratio,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
