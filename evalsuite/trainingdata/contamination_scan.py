"""The training side of the contamination check: each user turn scanned against the benchmark index,
an n-gram crediting at most search_size documents in (row, turn) order, and the percentages.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalsuite.trainingdata.contamination import SEARCH_SIZE, TRAIN_ROLE
from evalsuite.trainingdata.contamination_index import Index
from evalsuite.trainingdata.contamination_tokens import analyze


def user_turns(messages: Any, role: str = TRAIN_ROLE) -> list[str]:
    """The documents index.py makes of one row: the content of each message with that role."""
    if not isinstance(messages, list):
        return []
    return [
        m["content"]
        for m in messages
        if isinstance(m, dict) and m.get("role") == role and isinstance(m.get("content"), str)
    ]


@dataclass
class Partial:
    """What a scan found: per item its best score, and the row/turn that gave it."""

    rows: int = 0
    documents: int = 0
    tokens: int = 0
    best: dict[int, tuple[float, int, int]] = field(default_factory=dict)  # item -> (score, row, turn)
    cap: dict[str, int] = field(default_factory=dict)  # SearchCap.summary() of the whole scan

    def add(self, item: int, score: float, row: int, turn: int) -> None:
        prior = self.best.get(item)
        if prior is None or score > prior[0] or (score == prior[0] and (row, turn) < prior[1:]):
            self.best[item] = (score, row, turn)

    def merge(self, other: Partial) -> Partial:
        self.rows += other.rows
        self.documents += other.documents
        self.tokens += other.tokens
        for item, (score, row, turn) in other.best.items():
            self.add(item, score, row, turn)
        return self


@dataclass
class Hits:
    """One batch's user turns, in index order, before the search-size cap: where each is, the phrase
    ids it contains (kept only when a cap applies), and its item scores counting every phrase."""

    rows: int
    tokens: int
    where: list[tuple[int, int]]  # (row, turn) per document
    scores: list[dict[int, float]]
    found: list[set[int]]


def match_batch(
    index: Index, first_row: int, batch: Sequence[Any], role: str = TRAIN_ROLE, keep_found: bool = False
) -> Hits:
    """Match and score every user turn of a batch of rows (each row: its list of messages)."""
    where: list[tuple[int, int]] = []
    docs: list[list[str]] = []
    for r, messages in enumerate(batch):
        for t, text in enumerate(user_turns(messages, role)):
            where.append((first_row + r, t))
            docs.append(analyze(text))
    found = index.matches(docs)
    return Hits(
        len(batch), sum(map(len, docs)), where, index.batch_scores(found), found if keep_found else []
    )


class SearchCap:
    """search.py's `size=search_size`: each n-gram query returns only the first `size` documents that
    contain it, in index order (unscored filter query, ties by doc id: see the module docstring).

    Batches must come in index order. Per phrase it keeps one count of the documents seen so far,
    so memory is bounded by the index, not the training set; a document whose phrases were all
    credited keeps the scores the batch computed, and one that lost a phrase is rescored without
    it for the items its uncapped scores flag (the others cannot pass; their scores are dropped).
    """

    def __init__(self, index: Index, size: int) -> None:
        self.index = index
        self.size = size if index.method == "ngram" else 0  # exact_match reads num_hits, not the hits
        self.counts = np.zeros(len(index.phrases) if self.size else 0, dtype=np.int32)
        self.uncredited = 0  # (document, phrase) matches past the cap
        self.rescored = 0  # documents rescored without their uncredited phrases

    def apply(self, hits: Hits) -> Partial:
        out = Partial(rows=hits.rows, documents=len(hits.where), tokens=hits.tokens)
        scores = self._capped(hits) if self.size else hits.scores
        for (row, turn), per_item in zip(hits.where, scores, strict=True):
            for item, score in per_item.items():
                out.add(item, score, row, turn)
        return out

    def _capped(self, hits: Hits) -> list[dict[int, float]]:
        found = hits.found
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        flat = np.fromiter((p for f in found for p in f), dtype=np.int64, count=int(lengths.sum()))
        if not flat.size:
            return hits.scores
        # each (document, phrase)'s rank among this batch's documents holding the phrase, in order
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[first, flat.size])
        rank = np.empty_like(flat)
        rank[order] = np.arange(flat.size) - np.repeat(first, sizes)
        credited = self.counts[flat] + rank < self.size
        self.counts[ordered[first]] += sizes.astype(np.int32)
        if credited.all():
            return hits.scores
        self.uncredited += int(flat.size - credited.sum())
        ptr = np.r_[0, np.cumsum(lengths)]
        out = list(hits.scores)
        losing = np.unique(np.repeat(np.arange(len(found)), lengths)[~credited])
        for d in losing.tolist():
            # fewer phrases cannot lift an item: only the ones flagged without the cap are rescored
            flagged = {i for i, score in out[d].items() if self.index.flagged(score)}
            out[d] = {}
            if flagged:
                lo, hi = ptr[d], ptr[d + 1]
                kept = set(flat[lo:hi][credited[lo:hi]].tolist())
                out[d] = self.index.scores(kept, only=flagged)
                self.rescored += 1
        return out

    def summary(self) -> dict[str, int]:
        return {
            "search_size": self.size,
            "phrases_over_cap": int((self.counts > self.size).sum()) if self.size else 0,
            "uncredited_matches": self.uncredited,
            "rescored_documents": self.rescored,
        }


def scan_batch(index: Index, first_row: int, batch: Sequence[Any], role: str = TRAIN_ROLE) -> Partial:
    """Score one batch alone, without a search-size cap (the cap depends on every earlier batch)."""
    return SearchCap(index, 0).apply(match_batch(index, first_row, batch, role))


_WORKER_INDEX: Index | None = None  # the index, inherited by forked workers (copy on write)


def _work(args: tuple[int, list[Any], str, bool]) -> Hits:
    assert _WORKER_INDEX is not None
    first, batch, role, keep_found = args
    return match_batch(_WORKER_INDEX, first, batch, role, keep_found)


def _batches(rows: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    batch: list[Any] = []
    first = 0
    for i, row in enumerate(rows):
        if not batch:
            first = i
        batch.append(row)
        if len(batch) == size:
            yield first, batch
            batch = []
    if batch:
        yield first, batch


def scan(
    index: Index,
    rows: Iterable[Any],
    *,
    workers: int = 1,
    batch_size: int = 512,
    role: str = TRAIN_ROLE,
    search_size: int = SEARCH_SIZE,
    total: int | None = None,
    progress: bool = True,
    on_batch: Callable[[Partial], None] | None = None,
) -> Partial:
    """Scan training rows (each its list of messages) in batches, over `workers` processes; each
    n-gram credits only its first `search_size` documents in row order (0: every document)."""
    global _WORKER_INDEX
    from tqdm import tqdm

    if search_size < 0:
        raise ValueError("search_size must be >= 0 (0: no cap)")
    cap = SearchCap(index, search_size)
    result = Partial()
    bar = tqdm(total=total, desc="scan training rows", unit="row", disable=not progress, smoothing=0.05)
    jobs = ((first, batch, role, cap.size > 0) for first, batch in _batches(rows, batch_size))

    def take(hits: Iterable[Hits]) -> None:  # the cap is applied here, in row order
        for part in map(cap.apply, hits):
            result.merge(part)
            bar.update(part.rows)
            if on_batch:
                on_batch(part)

    try:
        if workers <= 1:
            take(match_batch(index, *job) for job in jobs)
        else:
            _WORKER_INDEX = index
            # fork: workers share the index the parent built, without pickling it; imap keeps
            # the batches in row order, which the cap needs. The workers take back the default
            # SIGTERM (the CLI's turns it into an exception), and a finished pool is closed and
            # joined: Pool.terminate, which `with` would call, can leave a worker blocked on the
            # task queue's lock forever.
            pool = multiprocessing.get_context("fork").Pool(
                workers, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)
            )
            try:
                take(pool.imap(_work, jobs, chunksize=1))
                pool.close()
                pool.join()
            finally:
                pool.terminate()
    finally:
        _WORKER_INDEX = None
        bar.close()
    result.cap = cap.summary()
    return result


def summarize(index: Index, result: Partial, queried: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Per benchmark: items, flagged items, percent, and each flagged item's best match."""
    per: list[dict[str, Any]] = []
    offsets: dict[int, int] = {}
    for i, item in enumerate(index.items):
        offsets.setdefault(item.benchmark, i)
    for b, name in enumerate(index.benchmarks):
        first = offsets.get(b, 0)
        n = sum(1 for it in index.items if it.benchmark == b)
        flagged = []
        for i in range(first, first + n):
            best = result.best.get(i)
            if best and index.flagged(best[0]):
                flagged.append(
                    {"item": i - first, "score": round(best[0], 6), "row": best[1], "turn": best[2]}
                )
        per.append(
            {
                "benchmark": name,
                "status": "measured",
                "items": n,
                "skipped_none_field": queried.get(name, {}).get("skipped", 0),
                "contaminated": len(flagged),
                "percent": 100.0 * len(flagged) / n if n else None,
                "flagged": flagged,
            }
        )
    return per
