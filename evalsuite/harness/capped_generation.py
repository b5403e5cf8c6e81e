"""Batched greedy generation when each request has its own token cap (BBH fills the context).

lighteval gives BBH no generation size, so its vLLM model generates until the 2048-token context
is full: each request's cap is 2048 minus its own prompt (evalsuite.harness.protocol.SmolLM2Task). lm-eval's
HFLM batches only requests with identical generation kwargs, so those requests would run one by
one. Hand-written because no library batches per-row caps for HF generate: requests that differ
only in `max_gen_toks` are batched, generated to the batch's largest cap, and each row is cut at
its own cap before decoding and stop-string handling, which is what a per-request run returns
(greedy decoding of one row does not depend on the others). Everything else is HFLM's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import torch
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm


class CappedGenerationMixin:
    """For an lm-eval HFLM subclass (causal): batch requests whose only difference is the cap."""

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            _, kwargs = req.args
            rest = {k: v for k, v in kwargs.items() if k != "max_gen_toks"}
            groups[json.dumps(rest, sort_keys=True, default=str)].append(i)
        capped = [idxs for idxs in groups.values() if len(self._caps(requests, idxs)) > 1]
        in_capped = {i for idxs in capped for i in idxs}
        stock = [i for i in range(len(requests)) if i not in in_capped]
        out: list[str | None] = [None] * len(requests)
        if stock:
            answers = super().generate_until([requests[i] for i in stock], disable_tqdm)  # type: ignore[misc]
            for i, s in zip(stock, answers, strict=True):
                out[i] = s
        bar = tqdm(total=len(requests) - len(stock), disable=disable_tqdm, desc="generate (per-row caps)")
        for idxs in capped:
            for i, s in self._generate_capped(requests, idxs):
                out[i] = s
                bar.update(1)
        bar.close()
        return [s if s is not None else "" for s in out]

    def _caps(self, requests: list[Any], idxs: list[int]) -> set[int]:
        return {int(requests[i].args[1].get("max_gen_toks", self.max_gen_toks)) for i in idxs}  # type: ignore[attr-defined]

    def _generate_capped(self, requests: list[Any], idxs: list[int]) -> list[tuple[int, str]]:
        lm: Any = self
        eos = lm.tok_decode(lm.eot_token_id, skip_special_tokens=False)
        kwargs = normalize_gen_kwargs(requests[idxs[0]].args[1], lm.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        kwargs.pop("max_gen_toks")
        if lm.device.type == "cpu":
            # On CPU the default dynamic cache grows by torch.cat every step, reallocating the whole
            # cache (tens of MB at a 2048-token context); a preallocated static cache gives the same
            # tokens (tests/test_capped_generation.py) at twice the speed. Not on GPU, where
            # transformers may torch.compile a static-cache decode step.
            kwargs.setdefault("cache_implementation", "static")
        rows = []
        for i in idxs:
            context, gen_kwargs = requests[i].args
            cap = int(gen_kwargs.get("max_gen_toks", lm.max_gen_toks))
            # HFLM's left truncation, per row: the context keeps max_length - cap tokens.
            ids = lm.tok_batch_encode([context])[0][0].tolist()[-(lm.max_length - cap) :]
            rows.append((i, ids, cap))
        rows.sort(key=lambda r: -len(r[1]))  # longest first, as HFLM does
        size = lm.batch_size if isinstance(lm.batch_size, int) and lm.batch_size > 0 else 1
        done = []
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            width = max(len(ids) for _, ids, _ in batch)
            pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
            left = [width - len(ids) for _, ids, _ in batch]
            input_ids = torch.tensor([[pad] * n + ids for n, (_, ids, _) in zip(left, batch, strict=True)])
            mask = torch.tensor([[0] * n + [1] * (width - n) for n in left])
            cont = lm._model_generate(
                context=input_ids.to(lm.device),
                attention_mask=mask.to(lm.device),
                stop=until,
                max_length=width + max(cap for _, _, cap in batch),
                **kwargs,
            )
            for (i, _, cap), toks in zip(batch, cont.tolist(), strict=True):
                text = lm.tok_decode(toks[width:][:cap])
                done.append(
                    (i, postprocess_generated_text(generation=text, stop=until, think_end_token=None))
                )
        # (the padded width is the batch's longest prompt: rows are cut at width, then at their cap)
        return done
