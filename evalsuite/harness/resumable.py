"""An lm-eval LM wrapper that keeps every finished request on disk, so a killed run resumes.

lm-eval's own CachingLM commits its SQLite cache only after a whole request type finishes
(a kill loses everything); here requests run in fixed chunks and each chunk's answers are
appended to a JSONL file and fsynced before the next chunk starts. Chunks are cut from the
full, ordered request list, so a rerun batches the missing requests exactly as an
uninterrupted run would and produces identical answers.

A damaged line (torn by a kill, or garbage) is skipped and counted (`damaged`), every other
line is still read, and the file is rewritten without it; an append always starts on a new
line. A cached answer whose shape does not fit its request kind is counted the same way and
computed again (the new answer is appended, and a later line wins on every read). An append
that fails (a full disk) is cut back to where it began: no torn line is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from tqdm import tqdm

from core import atomic, chat_templates
from core.errors import UsageError, json_loads


def request_key(kind: str, args: tuple[Any, ...]) -> str:
    payload = json.dumps([kind, list(args)], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _parse(line: bytes) -> dict[str, Any] | None:
    """A cache record, or None for a damaged line."""
    try:
        rec = json_loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or "answer" not in rec:
        return None
    return rec if isinstance(rec.get("fingerprint"), str) else None


def _number(x: Any) -> bool:
    """A finite number: a cached NaN is damage, recomputed (and then refused) like any other."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# The shape an answer of each request kind has; a cached answer of another shape (a line written by
# hand, or by a broken version) is treated as damaged and computed again, never handed to lm-eval.
ANSWER_SHAPES: dict[str, Callable[[Any], bool]] = {
    "loglikelihood": lambda a: (
        isinstance(a, list) and len(a) == 2 and _number(a[0]) and isinstance(a[1], bool)
    ),
    "loglikelihood_rolling": _number,
    "generate_until": lambda a: isinstance(a, str),
}


class ResumableLM(LM):
    def __init__(
        self,
        inner: LM,
        cache_file: Path,
        *,
        fingerprint: str,
        chunk_size: int = 32,
        progress: bool = True,
        gen_extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Backend-specific generation kwargs (vLLM's stop_token_ids) added to every generation
        # request as it goes to the engine; not part of the cache key (the fingerprint covers the model).
        self.gen_extra = dict(gen_extra or {})
        self.inner = inner
        self.cache_file = Path(cache_file)
        self.fingerprint = fingerprint
        self.chunk_size = chunk_size
        self.progress = progress
        self.reused = 0
        self.computed = 0
        self.damaged = 0  # lines of the cache file that could not be read (set by _load)
        self._answers = self._load()

    # lm-eval asks the model for chat templating and tokenizer identity: delegate.
    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        # the model's template is input: time-limited, and its failure one line (core/chat_templates.py)
        return chat_templates.guarded(
            getattr(self.inner, "tokenizer", None),
            self.inner.apply_chat_template,
            chat_history,
            add_generation_prompt=add_generation_prompt,
        )

    @property
    def tokenizer_name(self) -> str:
        return self.inner.tokenizer_name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.inner.chat_template(chat_template)

    def _load(self) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        self.damaged = 0
        try:
            data = self.cache_file.read_bytes()
        except FileNotFoundError:
            return answers
        good: list[bytes] = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            rec = _parse(line)
            if rec is None:  # torn by a kill, or garbage: skipped, every other line still counts
                self.damaged += 1
                continue
            good.append(line)
            if rec["fingerprint"] == self.fingerprint:  # another model/backend/protocol: never reused
                answers[rec["key"]] = rec["answer"]
        if self.damaged:
            # Rewritten without the damaged lines, so they are reported once; if that cannot be
            # written (a full disk), the appends below still start on a new line.
            with contextlib.suppress(atomic.WriteError):
                atomic.write_bytes(self.cache_file, b"".join(x + b"\n" for x in good))
        return answers

    def _append(self, rows: list[tuple[str, Any]]) -> None:
        data = "".join(
            json.dumps({"fingerprint": self.fingerprint, "key": key, "answer": answer}) + "\n"
            for key, answer in rows
        ).encode("utf-8")
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd = atomic.open_in_place(self.cache_file, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            with os.fdopen(fd, "a+b", buffering=0) as handle:
                start = handle.seek(0, os.SEEK_END)
                if start:
                    handle.seek(start - 1)
                    if handle.read(1) != b"\n":  # a torn last line: never glue a record onto it
                        data = b"\n" + data
                try:
                    view = memoryview(data)
                    while view:
                        view = view[handle.write(view) :]
                    os.fsync(handle.fileno())
                except OSError:
                    os.ftruncate(handle.fileno(), start)  # nothing half-written stays behind
                    raise
        except OSError as exc:
            raise atomic.write_error(
                self.cache_file, exc, "; the requests of this chunk were not kept, a rerun computes them"
            ) from None

    def _run(self, kind: str, requests: list[Any], call: Callable[[list[Any]], list[Any]]) -> list[Any]:
        keys = [request_key(kind, tuple(r.args)) for r in requests]
        fits = ANSWER_SHAPES[kind]
        for k in dict.fromkeys(keys):  # the kind is known only now: check each cached answer's shape
            if k in self._answers and not fits(self._answers[k]):
                del self._answers[k]  # the recomputed answer is appended, and wins on every later read
                self.damaged += 1
        todo = [i for i, k in enumerate(keys) if k not in self._answers]
        self.reused += len(requests) - len(todo)
        todo_set = set(todo)
        chunks = [
            range(s, min(s + self.chunk_size, len(requests)))
            for s in range(0, len(requests), self.chunk_size)
        ]
        pending = [c for c in chunks if any(i in todo_set for i in c)]
        bar = tqdm(
            total=len(requests),
            initial=len(requests) - len(todo),
            desc=f"{kind} requests",
            disable=not self.progress,
            unit="req",
        )
        for chunk in pending:
            batch = [requests[i] for i in chunk]
            answers = call(batch)
            if kind != "generate_until":
                _refuse_non_finite(kind, answers)
            rows = []
            for i, answer in zip(chunk, answers, strict=True):
                answer = list(answer) if isinstance(answer, tuple) else answer
                if i in todo_set:
                    self._answers[keys[i]] = answer
                    rows.append((keys[i], answer))
            self._append(rows)
            self.computed += len(rows)
            bar.update(len(rows))
        bar.close()
        out = []
        for k in keys:
            a = self._answers[k]
            out.append(tuple(a) if kind == "loglikelihood" else a)
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._run("loglikelihood", requests, lambda b: self.inner.loglikelihood(b, disable_tqdm=True))

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        return self._run(
            "loglikelihood_rolling",
            requests,
            lambda b: self.inner.loglikelihood_rolling(b, disable_tqdm=True),
        )

    def _with_extra(self, batch: list[Any]) -> list[Any]:
        if not self.gen_extra:
            return batch
        out = []
        for req in batch:
            context, kwargs = req.arguments
            out.append(dataclasses.replace(req, arguments=(context, {**kwargs, **self.gen_extra})))
        return out

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        return self._run(
            "generate_until",
            requests,
            lambda b: self.inner.generate_until(self._with_extra(b), disable_tqdm=True),
        )


def _refuse_non_finite(kind: str, answers: list[Any]) -> None:
    """A NaN or infinite log-likelihood means broken weights: no score is computed from it (NaN
    ties would all go to the first choice), and nothing is cached."""
    for answer in answers:
        value = answer[0] if isinstance(answer, list | tuple) else answer
        if not _number(value):
            raise UsageError(
                f"the model returned a {kind} of {value!r}: its weights (or their dtype) give non-finite "
                "log-probabilities; check the model folder (NaN/inf weights, an overflowing float16)"
            )
