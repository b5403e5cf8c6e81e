"""FastHFLM (evalsuite/harness/fast_hf.py) answers what lm-eval's HFLM answers, on real prompts.

Log-likelihoods within 1e-4 absolute (float32; two float32 steps past |512|) and identical
is_greedy flags, in the original order, for every batch size and with lm-eval's left-truncation
at work; the mutants show that a first continuation token scored from the wrong position fails
the comparison.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import run_module

from evalsuite.harness.fast_hf import FastHFLM, chunks, threads_for

TOL = 1e-4
TASKS = {"smoltulu_piqa": 4, "smoltulu_hellaswag": 4, "smoltulu_arc_easy": 4, "smoltulu_mmlu_pro": 2}
ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    """Real items: the first rows kept in the repository, else ../shared/benchdata, else the demo items."""
    from evalsuite.demo import DEMO_DATA, find_benchdata

    fixture = ROOT / "tests" / "fixtures" / "benchdata"
    return fixture if (fixture / "piqa").is_dir() else find_benchdata(None) or DEMO_DATA


def _lm(cls: type, model: Path, batch_size: int, max_length: int = 2048) -> Any:
    return cls(
        pretrained=str(model), backend="causal", dtype="float32", max_length=max_length,
        batch_size=batch_size, device="cpu",
    )  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these models are tiny, and a shared CPU makes more threads much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def instances(tiny_model_dir: Path) -> list[Any]:
    """The exact requests a run sends (chat template included): several choices per context."""
    from evalsuite.harness.prompts import requests

    out = []
    for task, limit in TASKS.items():
        out += requests(task, tokenizer_dir=tiny_model_dir, data_dir=_data_dir(), limit=limit)
    assert len({r.args[0] for r in out}) < len(out)  # contexts are shared between choices
    return out


def _assert_same(stock: list[tuple[float, bool]], fast: list[tuple[float, bool]]) -> None:
    assert len(stock) == len(fast)
    for k, ((a, _), (b, _)) in enumerate(zip(stock, fast, strict=True)):
        # The answers are float32 sums: past |512| one float32 step is 6.1e-5, so allow two steps there.
        tol = max(TOL, 2 * float(np.spacing(np.float32(abs(a)))))
        assert abs(a - b) <= tol, f"request {k}: log-likelihood {b} instead of {a}"
    assert [g for _, g in stock] == [g for _, g in fast], "is_greedy differs"


@pytest.mark.parametrize("max_length", [2048, 100])
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_loglikelihoods_equal_hflm(
    tiny_model_dir: Path, instances: list[Any], batch_size: int, max_length: int
):
    from lm_eval.models.huggingface import HFLM

    stock = _lm(HFLM, tiny_model_dir, batch_size, max_length)
    fast = _lm(FastHFLM, tiny_model_dir, batch_size, max_length)
    if max_length < 2048:  # left-truncation is exercised: some requests are longer than the window
        lengths = [sum(map(len, stock._encode_pair(*r.args))) for r in instances]
        assert min(lengths) <= max_length < max(lengths)
    _assert_same(stock.loglikelihood(instances), fast.loglikelihood(instances))


def _greedy(lm: Any, context: list[int], n: int) -> list[int]:
    ids = list(context)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(lm.model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(context) :]


@pytest.fixture(scope="module")
def token_requests(tiny_model_dir: Path, instances: list[Any]) -> list[tuple[Any, list[int], list[int]]]:
    """Encoded requests as `_loglikelihood_tokens` receives them, with greedy continuations (is_greedy
    True), the same with the last token changed (False), a continuation as long as the window,
    a one-token context, and duplicates."""
    from lm_eval.models.huggingface import HFLM

    lm = _lm(HFLM, tiny_model_dir, 1, 100)
    pairs = [lm._encode_pair(*r.args) for r in instances[::3]]
    reqs: list[tuple[Any, list[int], list[int]]] = []
    for k, (ctx, cont) in enumerate(pairs[:6]):
        short = ctx[-60:]  # fits the window with its continuation: greedy for exactly these inputs
        good = _greedy(lm, short, 1 + k % 4)
        bad = [*good[:-1], (good[-1] + 1) % lm.model.config.vocab_size]
        reqs += [
            ((f"g{k}", "good"), short, good),
            ((f"g{k}", "bad"), short, bad),
            ((f"g{k}", "real"), short, cont),
        ]
    ctx, cont = pairs[0]
    reqs.append((None, ctx, (cont * 100)[:100]))  # fills the window: one context token is left
    reqs.append((None, ctx[:1], cont))  # a one-token context, like an empty context's prefix token
    reqs += reqs[:2]  # duplicates
    return reqs


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_token_requests_equal_hflm(tiny_model_dir: Path, token_requests: list[Any], batch_size: int) -> None:
    from lm_eval.models.huggingface import HFLM

    stock = _lm(HFLM, tiny_model_dir, batch_size, 100)._loglikelihood_tokens(token_requests)
    fast = _lm(FastHFLM, tiny_model_dir, batch_size, 100)._loglikelihood_tokens(token_requests)
    assert {g for _, g in stock} == {True, False}  # the greedy flag is really tested
    _assert_same(stock, fast)


class _FirstTokenFromWrongPosition(FastHFLM):
    """Mutant: the first continuation token is predicted from the position after the right one."""

    def _forward(self, **kwargs: Any) -> Any:
        if "attention_mask" in kwargs:  # the scoring pass: row = context's last token + continuation
            ids = kwargs["input_ids"].clone()
            ids[:, 0] = ids[:, 1] if ids.shape[1] > 1 else ids[:, 0]
            kwargs["input_ids"] = ids
        return super()._forward(**kwargs)


class _PositionsOffByOne(FastHFLM):
    """Mutant: the continuation rows get position ids one past the right ones."""

    def _forward(self, **kwargs: Any) -> Any:
        if "attention_mask" in kwargs:
            kwargs["position_ids"] = kwargs["position_ids"] + 1
        return super()._forward(**kwargs)


@pytest.mark.parametrize("mutant", [_FirstTokenFromWrongPosition, _PositionsOffByOne])
def test_the_comparison_catches_wrong_positions(tiny_model_dir: Path, token_requests: list[Any], mutant):
    from lm_eval.models.huggingface import HFLM

    stock = _lm(HFLM, tiny_model_dir, 8, 100)._loglikelihood_tokens(token_requests)
    broken = _lm(mutant, tiny_model_dir, 8, 100)._loglikelihood_tokens(token_requests)
    with pytest.raises(AssertionError):
        _assert_same(stock, broken)


def test_rolling_loglikelihood_is_hflms(tiny_model_dir: Path, instances: list[Any]) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    docs = [Instance("loglikelihood_rolling", {}, (r.args[0] + r.args[1],), 0) for r in instances[:5]]
    stock = _lm(HFLM, tiny_model_dir, 4, 64).loglikelihood_rolling(docs)
    assert _lm(FastHFLM, tiny_model_dir, 4, 64).loglikelihood_rolling(docs) == stock


def test_resumable_cache_wraps_it(tiny_model_dir: Path, instances: list[Any], tmp_path: Path) -> None:
    from evalsuite.harness.resumable import ResumableLM

    fast = _lm(FastHFLM, tiny_model_dir, 32)
    direct = fast.loglikelihood(instances)
    first = ResumableLM(fast, tmp_path / "requests.jsonl", fingerprint="x", chunk_size=7, progress=False)
    answers = first.loglikelihood(instances)  # batched by chunks of 7: equal up to rounding
    _assert_same(direct, answers)
    assert first.computed == len(instances)
    again = ResumableLM(fast, tmp_path / "requests.jsonl", fingerprint="x", chunk_size=7, progress=False)
    assert again.loglikelihood(instances) == answers and again.reused == len(instances)


def test_build_lm_uses_it_on_cpu(tiny_model_dir: Path) -> None:
    from evalsuite.harness.fast_hf import CPU_BATCH_SIZE, CPU_GENERATE_BATCH_SIZE
    from evalsuite.harness.lm_run import _build_lm

    threads = torch.get_num_threads()
    try:
        lm, dtype = _build_lm(tiny_model_dir, "hf", None)
        given, _ = _build_lm(tiny_model_dir, "hf", 5)
    finally:
        torch.set_num_threads(threads)
    assert isinstance(lm, FastHFLM) and dtype == "float32"
    assert (lm.batch_size, lm.generate_batch_size) == (CPU_BATCH_SIZE, CPU_GENERATE_BATCH_SIZE)
    assert (given.batch_size, given.generate_batch_size) == (5, 5)


def test_generation_uses_its_own_batch_size(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    seen = []
    real = HFLM._model_generate

    def spy(self, context, *args, **kwargs):
        seen.append(context.shape[0])
        return real(self, context, *args, **kwargs)

    monkeypatch.setattr(HFLM, "_model_generate", spy)
    lm = FastHFLM(
        pretrained=str(tiny_model_dir), backend="causal", dtype="float32", batch_size=8, device="cpu",
        generate_batch_size=1,
    )  # fmt: skip
    gen = {"until": ["\n"], "max_gen_toks": 3, "do_sample": False}
    reqs = [Instance("generate_until", {}, (f"Question {k}:", gen), k) for k in range(3)]
    assert len(lm.generate_until(reqs)) == 3
    assert seen == [1, 1, 1] and lm.batch_size == 8


def test_chunks_are_optimal_and_cover_every_row() -> None:
    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted((rng.randint(1, 60) for _ in range(rng.randint(1, 7))), reverse=True)
        overhead, most = rng.choice([0, 8, 32]), rng.randint(1, 4)
        got = chunks(lengths, overhead, most)
        assert [r for c in got for r in c] == list(range(len(lengths)))
        assert all(1 <= len(c) <= most for c in got)

        def cost(cuts: list[list[int]], lengths: list[int] = lengths, overhead: int = overhead) -> int:
            return sum(overhead + len(c) * lengths[c[0]] for c in cuts)

        best = min(
            cost([list(range(a, b)) for a, b in itertools.pairwise([0, *cut, len(lengths)])])
            for k in range(len(lengths))
            for cut in itertools.combinations(range(1, len(lengths)), k)
            if all(b - a <= most for a, b in itertools.pairwise([0, *cut, len(lengths)]))
        )
        assert cost(got) == best


def test_threads_follow_the_free_cores() -> None:
    assert threads_for(0.0, 2, 2) == 2  # idle machine: every core
    assert threads_for(0.3, 2, 2) == 1  # a core partly taken would stall every parallel region
    assert threads_for(3.5, 2, 2) == 1  # never fewer than one
    assert threads_for(1.0, 16, 8) == 8  # never more than torch started with


@pytest.mark.slow
def test_eval_throughput_times_the_hf_paths(tmp_path: Path) -> None:
    out = tmp_path / "paths.json"
    args = ("--hf-paths", "--model-size", "tiny", "--limit", "1", "--benchmarks", "piqa", "--rounds", "1")
    result = run_module(
        "benchmarks.eval_throughput", *args, "--variants", "stock:1:1,fast:4:1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    piqa = json.loads(out.read_text())["per_benchmark"]["piqa"]
    assert piqa["requests"] == 2 and piqa["median"]["fast:4:1"]["requests_per_s"] > 0
    assert piqa["max_abs_diff_from_first"]["fast:4:1"] <= TOL and piqa["greedy_agrees_with_first"]["fast:4:1"]
