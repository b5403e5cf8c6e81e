"""lm-eval's HF backend with shared-context log-likelihoods, for multiple-choice benchmarks on CPU.

Hand-written because lm-eval's HFLM runs every (context, choice) pair as its own padded row and
projects every position of it through the 49152-way output layer, so the chat-templated context
(system turn included) is recomputed once per choice and ~99% of the logits are thrown away.

`FastHFLM._loglikelihood_tokens` answers the same requests in three steps per batch of up to
`batch_size` requests (longest contexts first):

1. prefix: the tokens every context of the batch starts with (SmolLM2's system turn and
   "<|im_start|>user\\n" at least) run once;
2. contexts: each distinct context once, but its last token, on top of the prefix's KV cache,
   right-padded in chunks of similar length, with explicit position ids;
3. choices: one row per request, the context's last token + the continuation but its last token,
   on a cache filled with its context's KV (a 2D mask hides the padding), in chunks of similar
   length; only the continuation positions' final hidden states go through lm_head, and the
   log_softmax is taken in float32.

Chunks are cut to minimise padded tokens plus a fixed cost per forward pass (on CPU every pass
streams all the weights from memory). Each request is left-truncated exactly as HFLM does
((context + continuation)[-(max_length + 1):], last token dropped), so the answers, (sum of
log-probs, is_greedy) in the original order, equal HFLM's up to float rounding
(tests/test_fast_hf.py). Everything else is HFLM's: tokenisation (`_encode_pair`), generation,
rolling log-likelihoods, seq2seq, "auto" batch sizes and models outside FAST_MODEL_TYPES.

On CPU, `cpu_threads="auto"` (what `evalsuite run` uses) also keeps torch's intra-op thread count
at the cores other processes leave free (CpuShare): on a shared 2-core machine, two OpenMP threads
next to another busy process ran 4-8x slower than one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from evalsuite.harness.capped_generation import CappedGenerationMixin

log = logging.getLogger(__name__)

# Decoder-only models whose logits are exactly lm_head(final hidden state); tested on Llama (SmolLM2).
FAST_MODEL_TYPES = frozenset({"llama"})
# `evalsuite run`'s defaults on CPU: log-likelihood requests per batch (a whole ResumableLM chunk of
# 32), and generation one request at a time (benchmarks/results/eval_throughput_hf_paths.json).
CPU_BATCH_SIZE = 32
CPU_GENERATE_BATCH_SIZE = 1

Request = tuple[Any, list[int], list[int]]
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [batch, kv heads, seq, head dim]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


def chunks(lengths: Sequence[int], overhead: int, max_rows: int) -> list[list[int]]:
    """Split rows sorted by decreasing length into consecutive chunks of at most `max_rows` rows,
    minimising the padded tokens (rows x longest row) plus `overhead` tokens per chunk."""
    n = len(lengths)
    best = [0] + [1 << 62] * n  # best[j]: cost of rows [0, j)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - max_rows), j):
            cost = best[i] + overhead + (j - i) * lengths[i]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out = []
    j = n
    while j:
        out.append(list(range(cut[j], j)))
        j = cut[j]
    return out[::-1]


def _kv_of(cache: Any) -> KV:
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _cache_from(kv: KV) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    return cache


def _right_pad(rows: Sequence[Sequence[int]], width: int, pad: int) -> torch.Tensor:
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def threads_for(others: float, cpus: int, most: int) -> int:
    """Intra-op threads for a machine whose other processes keep `others` of its `cpus` cores busy:
    only the cores that are (nearly) free, at least one. An OpenMP thread that has to share its core
    stalls every parallel region of the rest (their spin-waits make it worse), so on a busy machine
    fewer threads are faster."""
    return max(1, min(most, int(cpus - others + 0.25)))


class CpuShare:
    """Keeps torch's intra-op thread count at the number of cores other processes leave free.

    Linux only (/proc/stat); elsewhere, or where /proc/stat counts other CPUs than this process may
    use (a container with a CPU quota), it leaves the thread count alone. Re-decided at most every
    `interval` seconds from the busy time of the whole machine minus this process's own.
    """

    def __init__(self, interval: float = 20.0) -> None:
        self.interval = interval
        self.most = torch.get_num_threads()
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.enabled = self._machine_busy() is not None
        self.last = self._sample()

    @staticmethod
    def _machine_busy() -> tuple[float, int] | None:
        """(busy CPU-seconds since boot of all processes, number of CPUs) from /proc/stat."""
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return None
        ticks = [int(x) for x in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
        n_cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), n_cpus

    def _sample(self) -> tuple[float, float, float]:
        busy = self._machine_busy()
        return time.monotonic(), busy[0] if busy else 0.0, time.process_time()

    def others(self, start: tuple[float, float, float], end: tuple[float, float, float]) -> float:
        """Cores the other processes kept busy between two samples."""
        wall = end[0] - start[0]
        return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / wall if wall > 0 else 0.0

    def adjust(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self._sample()
        if not force and now[0] - self.last[0] < self.interval:
            return
        busy = self._machine_busy()
        if busy is None or busy[1] != self.cpus:
            self.enabled = False  # /proc/stat describes CPUs this process does not run on
            return
        threads = threads_for(self.others(self.last, now), self.cpus, self.most)
        if threads != torch.get_num_threads():
            log.info("torch threads %d -> %d (other processes busy)", torch.get_num_threads(), threads)
            torch.set_num_threads(threads)
        self.last = now

    def start(self, settle: float = 0.5) -> None:
        """First decision, from `settle` seconds of watching the machine."""
        self.last = self._sample()
        time.sleep(settle)
        self.adjust(force=True)


class FastHFLM(CappedGenerationMixin, HFLM):
    """HFLM whose multiple-choice log-likelihoods compute each shared context once."""

    # Token-equivalents one extra forward pass costs (weights streamed from memory, per-op overhead).
    forward_overhead_tokens = 32
    min_shared_prefix = 4  # a shorter common prefix is not worth its own forward pass
    logits_chunk = 1024  # continuation positions per [positions, vocab] float32 block

    def __init__(
        self,
        *args: Any,
        cpu_threads: str | int | None = None,
        generate_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """`cpu_threads` on CPU: an int sets torch's thread count; "auto" keeps it at the number of
        cores other processes leave free (CpuShare); None leaves it alone. `generate_batch_size`:
        the batch size of generate_until, if not `batch_size` (on CPU batched greedy decoding was
        slower: every sequence of a batch runs until its longest stops)."""
        super().__init__(*args, **kwargs)
        self.generate_batch_size = generate_batch_size
        self._cpu_share: CpuShare | None = None
        if self.device.type == "cpu" and isinstance(cpu_threads, int):
            torch.set_num_threads(cpu_threads)
        elif self.device.type == "cpu" and cpu_threads == "auto":
            self._cpu_share = CpuShare()
            self._cpu_share.start()

    def _adjust_threads(self) -> None:
        if self._cpu_share is not None:
            self._cpu_share.adjust()

    def _model_call(self, *args: Any, **kwargs: Any) -> Any:  # HFLM's own log-likelihood path
        self._adjust_threads()
        return super()._model_call(*args, **kwargs)

    def _model_generate(self, *args: Any, **kwargs: Any) -> Any:
        self._adjust_threads()
        return super()._model_generate(*args, **kwargs)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if self.generate_batch_size is None:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        batch_size, self.batch_size_per_gpu = self.batch_size_per_gpu, self.generate_batch_size
        try:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        finally:
            self.batch_size_per_gpu = batch_size

    def _fast_ok(self, override_bs: int | None) -> bool:
        model_type = getattr(getattr(self.model, "config", None), "model_type", None)
        return (
            override_bs is None  # loglikelihood_rolling's windows
            and self.backend == "causal"
            and isinstance(self.batch_size, int)
            and model_type in FAST_MODEL_TYPES
            and self.model.get_output_embeddings() is not None
        )

    def _loglikelihood_tokens(
        self,
        requests: list[Request],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        if not self._fast_ok(override_bs):
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)

        # Group by the context each request is scored on after HFLM's left-truncation.
        limit = self.max_length + 1
        contexts: dict[tuple[int, ...], list[int]] = {}
        for i, (_, ctx, cont) in enumerate(requests):
            assert len(ctx) > 0 and 0 < len(cont) <= self.max_length
            cut = max(0, len(ctx) + len(cont) - limit)
            contexts.setdefault(tuple(ctx[cut:]), []).append(i)
        groups = sorted(contexts.items(), key=lambda g: -len(g[0]))  # longest first, like HFLM

        answers: list[Any] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="loglikelihood (fast)")
        batch: list[tuple[tuple[int, ...], list[int]]] = []
        size = 0
        for group in [*groups, None]:
            if batch and (group is None or size + len(group[1]) > self.batch_size):
                self._run_batch(batch, requests, answers)
                bar.update(size)
                batch, size = [], 0
            if group is not None:
                batch.append(group)
                size += len(group[1])
        bar.close()

        for (key, _, _), answer in zip(requests, answers, strict=True):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return answers

    def _forward(self, **kwargs: Any) -> Any:
        base = getattr(self.model, self.model.base_model_prefix)
        kwargs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        return base(**kwargs)

    @torch.inference_mode()
    def _run_batch(
        self, groups: list[tuple[tuple[int, ...], list[int]]], requests: list[Request], answers: list[Any]
    ) -> None:
        self._adjust_threads()
        pad = int(self.tokenizer.pad_token_id or 0)
        heads = [ctx[:-1] for ctx, _ in groups]  # each context's last token goes with its choices

        # 1. The prefix shared by every context of the batch.
        n_prefix = common_prefix_len(heads)
        prefix_kv: KV | None = None
        if n_prefix >= self.min_shared_prefix:
            out = self._forward(input_ids=torch.tensor([heads[0][:n_prefix]]), use_cache=True)
            prefix_kv = _kv_of(out.past_key_values)
        else:
            n_prefix = 0

        # 2. The rest of each context. Right padding puts pads after every real token, so causal
        # attention alone keeps them out of the real positions: no mask needed.
        rests = [h[n_prefix:] for h in heads]
        chunk_kv: list[KV] = []
        slot: list[tuple[int, int] | None] = [None] * len(groups)  # group -> (chunk, row) of its KV
        for chunk in chunks([len(r) for r in rests], self.forward_overhead_tokens, self.batch_size):
            width = len(rests[chunk[0]])
            if width == 0:  # the context is the prefix (or one token): nothing more to run
                if prefix_kv is not None:
                    chunk_kv.append(prefix_kv)
                    for g in chunk:
                        slot[g] = (len(chunk_kv) - 1, 0)
                continue
            past = None
            if prefix_kv is not None:
                past = _cache_from(
                    [
                        (k.expand(len(chunk), -1, -1, -1), v.expand(len(chunk), -1, -1, -1))
                        for k, v in prefix_kv
                    ]
                )
            out = self._forward(
                input_ids=_right_pad([rests[g] for g in chunk], width, pad),
                position_ids=torch.arange(n_prefix, n_prefix + width).expand(len(chunk), -1),
                past_key_values=past,
                use_cache=True,
            )
            chunk_kv.append(_kv_of(out.past_key_values))
            for row, g in enumerate(chunk):
                slot[g] = (len(chunk_kv) - 1, row)

        # 3. One row per request, longest continuations first, in chunks of similar length.
        rows = sorted(
            ((g, i) for g, (_, idxs) in enumerate(groups) for i in idxs),
            key=lambda r: -len(requests[r[1]][2]),
        )
        lengths = [len(requests[i][2]) for _, i in rows]
        for chunk in chunks(lengths, self.forward_overhead_tokens, self.batch_size):
            part = [rows[r] for r in chunk]
            cache, ctx_len = self._gather_kv([(len(groups[g][0]) - 1, slot[g]) for g, _ in part], chunk_kv)
            inputs = [[groups[g][0][-1], *requests[i][2][:-1]] for g, i in part]
            self._score(
                inputs, [requests[i][2] for _, i in part], cache, ctx_len, pad, [i for _, i in part], answers
            )

    def _gather_kv(
        self, rows: list[tuple[int, tuple[int, int] | None]], chunk_kv: list[KV]
    ) -> tuple[Any, torch.Tensor]:
        """A cache with each row's context KV (its first `length` slots), right-padded, and the lengths."""
        lengths = torch.tensor([length for length, _ in rows])
        past = int(lengths.max())
        if past == 0:
            return None, lengths
        by_chunk: dict[int, tuple[list[int], list[int]]] = {}
        for r, (_, where) in enumerate(rows):
            if where is not None:
                dst, src = by_chunk.setdefault(where[0], ([], []))
                dst.append(r)
                src.append(where[1])
        layers: KV = []
        for layer in range(len(chunk_kv[0])):
            k0 = chunk_kv[0][layer][0]
            keys = k0.new_zeros((len(rows), k0.shape[1], past, k0.shape[3]))
            values = torch.zeros_like(keys)
            for c, (dst, src) in by_chunk.items():
                k, v = chunk_kv[c][layer]
                width = min(k.shape[2], past)
                d, s = torch.tensor(dst, device=k.device), torch.tensor(src, device=k.device)
                keys[d, :, :width] = k.index_select(0, s)[:, :, :width]
                values[d, :, :width] = v.index_select(0, s)[:, :, :width]
            layers.append((keys, values))
        return _cache_from(layers), lengths

    def _score(
        self,
        inputs: list[list[int]],
        targets: list[list[int]],
        cache: Any,
        ctx_len: torch.Tensor,
        pad: int,
        out_idx: list[int],
        answers: list[Any],
    ) -> None:
        """Run `inputs` (each predicting its row of `targets`) on `cache`; write (log-prob, greedy)."""
        past = cache.get_seq_length() if cache is not None else 0
        steps = max(len(x) for x in inputs)
        lens = torch.tensor([len(x) for x in inputs])
        step = torch.arange(steps)
        real = step[None, :] < lens[:, None]
        mask = torch.cat([torch.arange(past)[None, :] < ctx_len[:, None], real], dim=1)
        hidden = self._forward(
            input_ids=_right_pad(inputs, steps, pad),
            attention_mask=mask.long(),
            position_ids=ctx_len[:, None] + step[None, :],
            past_key_values=cache,
            use_cache=cache is not None,
        ).last_hidden_state
        scored = hidden[real.to(hidden.device)]  # [sum of continuation lengths, hidden], row-major
        flat = torch.tensor([t for row in targets for t in row], device=hidden.device)
        lm_head = self.model.get_output_embeddings()
        token_lp, greedy = [], []
        for s in range(0, len(flat), self.logits_chunk):
            logprobs = F.log_softmax(lm_head(scored[s : s + self.logits_chunk]).float(), dim=-1)
            t = flat[s : s + self.logits_chunk]
            token_lp.append(logprobs.gather(1, t[:, None]).squeeze(1))
            greedy.append(logprobs.argmax(dim=-1) == t)
        lp, hit = torch.cat(token_lp).cpu(), torch.cat(greedy).cpu()
        offset = 0
        for i, n in zip(out_idx, lens.tolist(), strict=True):
            answers[i] = (float(lp[offset : offset + n].sum()), bool(hit[offset : offset + n].all()))
            offset += n
