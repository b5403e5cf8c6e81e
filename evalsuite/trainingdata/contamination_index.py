"""The benchmark side of the contamination check: each item's spaCy 8-grams, indexed by the hash of
their analyzed tokens so a training document's tokens find every n-gram they contain.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from evalsuite.trainingdata.contamination import NGRAM_SIZE, THRESHOLD
from evalsuite.trainingdata.contamination_tokens import analyze, analyze_offsets, analyze_span, spacy_doc

ANCHOR = 8  # longest key of the hashed filter; longer phrases are checked in full after a hit


_BASE = np.uint64(1_000_003)


_SHIFT = 24  # postings pack (string id << _SHIFT) | start token


_MASK = (1 << _SHIFT) - 1


_FILTER_BITS = 24


_FILTER_MASK = np.uint64((1 << _FILTER_BITS) - 1)


def _hash(ids: Sequence[int]) -> int:
    h = 0
    for i in ids:
        h = (h * 1_000_003 + i) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass
class Item:
    benchmark: int  # position in Index.benchmarks
    strings: tuple[int, ...]  # string ids of its fields, in field order


@dataclass
class Index:
    """Benchmark phrases (analyzed n-grams, or whole fields for `exact`) -> where they come from."""

    method: str = "ngram"
    n: int = NGRAM_SIZE
    threshold: float = THRESHOLD
    benchmarks: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    ntokens: list[int] = field(default_factory=list)  # spaCy tokens per string id
    string_items: list[list[int]] = field(default_factory=list)  # string id -> items using it
    vocab: dict[str, int] = field(default_factory=dict)
    phrases: list[tuple[int, ...]] = field(default_factory=list)
    postings: list[list[int]] = field(default_factory=list)
    _string_ids: dict[str, int] = field(default_factory=dict)
    _phrase_ids: dict[tuple[int, ...], int] = field(default_factory=dict)
    _anchors: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    _keys: dict[int, np.ndarray] = field(default_factory=dict)

    def add_benchmark(self, name: str, items: Iterable[Sequence[str]]) -> None:
        """Add one benchmark's items, each the tuple of its field strings (no None: skip those first)."""
        b = len(self.benchmarks)
        self.benchmarks.append(name)
        for strings in items:
            sids = tuple(self._string(s) for s in strings)
            item = len(self.items)
            self.items.append(Item(b, sids))
            for sid in dict.fromkeys(sids):
                self.string_items[sid].append(item)
        self._keys = {}

    def _string(self, text: str) -> int:
        sid = self._string_ids.get(text)
        if sid is not None:
            return sid
        sid = self._string_ids[text] = len(self.ntokens)
        self.string_items.append([])
        if self.method == "exact":
            self.ntokens.append(0)
            self._add_phrase(analyze(text), sid, 0)
            return sid
        doc = spacy_doc(text)
        self.ntokens.append(len(doc))
        if len(doc) >= 1 << _SHIFT:
            raise ValueError(f"a benchmark string of {len(doc)} tokens is too long to index")
        bounds = [(t.idx, t.idx + len(t.text)) for t in doc]
        mapping: dict[str, tuple[int, int, int]] = {}
        for i in range(len(doc) - self.n + 1):
            cs, ce = bounds[i][0], bounds[i + self.n - 1][1]
            mapping[text[cs:ce]] = (i, cs, ce)  # a repeated n-gram text keeps its last position
        analyzed = analyze_offsets(text)
        for start, cs, ce in mapping.values():
            self._add_phrase(analyze_span(text, analyzed, cs, ce), sid, start)
        return sid

    def _add_phrase(self, tokens: list[str], sid: int, start: int) -> None:
        if not tokens:  # match_phrase with no terms matches no document
            return
        vocab = self.vocab
        key = tuple([vocab.setdefault(t, len(vocab)) for t in tokens])
        pid = self._phrase_ids.get(key)
        if pid is None:
            pid = self._phrase_ids[key] = len(self.phrases)
            self.phrases.append(key)
            self.postings.append([])
            anchor = key[:ANCHOR]
            self._anchors.setdefault(len(anchor), {}).setdefault(_hash(anchor), []).append(pid)
        self.postings[pid].append(sid << _SHIFT | start)

    def keys(self) -> dict[int, np.ndarray]:
        if not self._keys:
            self._keys = {a: np.array(sorted(h), dtype=np.uint64) for a, h in self._anchors.items()}
            # a bitmap of the keys' low bits: one memory access rules out most windows
            self._seen = {a: np.zeros(1 << _FILTER_BITS, dtype=bool) for a in self._keys}
            for a, k in self._keys.items():
                self._seen[a][(k & _FILTER_MASK).astype(np.int64)] = True
            # the same postings as flat arrays (CSR), for scoring a whole batch at once
            lengths = [len(p) for p in self.postings]
            self._post_ptr = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
            packed = np.fromiter((p for ps in self.postings for p in ps), dtype=np.int64, count=sum(lengths))
            self._post_sid = packed >> _SHIFT
            self._ntokens = np.maximum(np.array(self.ntokens, dtype=np.float64), 1.0)
            self._si_ptr = np.concatenate(
                [[0], np.cumsum([len(v) for v in self.string_items], dtype=np.int64)]
            )
            self._si_item = np.array([i for v in self.string_items for i in v], dtype=np.int64)
            self._nfields = np.array([len(it.strings) for it in self.items], dtype=np.float64)
        return self._keys

    # -- scanning ------------------------------------------------------------------------------
    def matches(self, docs: Sequence[Sequence[str]]) -> list[set[int]]:
        """For each document (its analyzed tokens), the phrase ids it contains."""
        vget = self.vocab.get
        flat: list[int] = []
        starts: list[int] = []
        for tokens in docs:
            starts.append(len(flat))
            flat.extend([vget(t, -1) for t in tokens])
            flat.append(-1)  # windows never cross documents
        found: list[set[int]] = [set() for _ in docs]
        keys = self.keys()
        if not keys or not flat:
            return found
        ids = np.array(flat, dtype=np.int64)
        valid = ids >= 0
        u = np.where(valid, ids, 0).astype(np.uint64)
        h = np.zeros(len(ids), dtype=np.uint64)
        ok = np.ones(len(ids), dtype=bool)
        for a in range(1, max(keys) + 1):
            if a > len(ids):
                break
            h = h[: len(ids) - a + 1] * _BASE + u[a - 1 :]  # window [p, p+a): polynomial hash mod 2**64
            ok = ok[: len(ids) - a + 1] & valid[a - 1 :]
            if a not in keys:
                continue
            k = keys[a]
            maybe = np.flatnonzero(ok & self._seen[a][(h & _FILTER_MASK).astype(np.int64)])
            idx = np.minimum(np.searchsorted(k, h[maybe]), len(k) - 1)
            for p in maybe[k[idx] == h[maybe]].tolist():
                d = bisect.bisect_right(starts, p) - 1
                for pid in self._anchors[a][int(h[p])]:
                    phrase = self.phrases[pid]
                    if tuple(flat[p : p + len(phrase)]) == phrase:  # hash collisions and the tail
                        found[d].add(pid)
        return found

    def scores(self, pids: set[int], only: set[int] | None = None) -> dict[int, float]:
        """Item id -> score against one document that contains phrases `pids`, for the items whose
        score can pass the threshold (the others are not scored); `only`: just those items."""
        if not pids:
            return {}
        if self.method == "exact":
            hit = {p >> _SHIFT for pid in pids for p in self.postings[pid]}
            touched = {i for s in hit for i in self.string_items[s]}
            return {i: 1.0 for i in touched if all(s in hit for s in self.items[i].strings)}
        starts: dict[int, list[int]] = {}
        for pid in pids:
            for p in self.postings[pid]:
                sid = p >> _SHIFT
                found = starts.get(sid)
                if found is None:
                    starts[sid] = [p & _MASK]
                else:
                    found.append(p & _MASK)
        # Each matched n-gram covers n tokens at most: an item whose bound cannot pass the
        # threshold is not scored (common phrases touch many items and lift none of them).
        n, ntokens = self.n, self.ntokens
        bound = {s: min(1.0, len(v) * n / ntokens[s]) for s, v in starts.items()}
        out = {}
        for i in only if only is not None else {i for s in starts for i in self.string_items[s]}:
            strings = self.items[i].strings
            if sum(bound.get(s, 0.0) for s in strings) / len(strings) <= self.threshold:
                continue
            covered = 0.0
            for s in strings:
                if s in starts:
                    tokens: set[int] = set()
                    for start in starts[s]:
                        tokens.update(range(start, start + n))
                    covered += len(tokens) / ntokens[s]
            out[i] = covered / len(strings)
        return out

    def batch_scores(self, found: Sequence[set[int]]) -> list[dict[int, float]]:
        """`scores` for many documents: the threshold bound of every (document, item) pair is
        computed with numpy in one pass, and only the pairs that pass it are scored exactly."""
        if self.method == "exact":
            return [self.scores(pids) for pids in found]
        out: list[dict[int, float]] = [{} for _ in found]
        pairs = [(d, pid) for d, pids in enumerate(found) for pid in pids]
        if not pairs:
            return out
        self.keys()
        docs = np.array([d for d, _ in pairs], dtype=np.int64)
        pids = np.array([p for _, p in pairs], dtype=np.int64)
        d_s, s_s = _expand(docs, self._post_ptr[pids], self._post_ptr[pids + 1], self._post_sid)
        key, count = np.unique(d_s * len(self.ntokens) + s_s, return_counts=True)
        d_s, s_s = key // len(self.ntokens), key % len(self.ntokens)
        bound = np.minimum(1.0, count * self.n / self._ntokens[s_s])  # each n-gram covers n tokens at most
        rows, items = _expand(np.arange(len(d_s)), self._si_ptr[s_s], self._si_ptr[s_s + 1], self._si_item)
        key, inverse = np.unique(d_s[rows] * len(self.items) + items, return_inverse=True)
        total = np.bincount(inverse, weights=bound[rows])
        d_i, i_i = key // len(self.items), key % len(self.items)
        passing = total / self._nfields[i_i] > self.threshold
        wanted: dict[int, set[int]] = {}
        for d, item in zip(d_i[passing].tolist(), i_i[passing].tolist(), strict=True):
            wanted.setdefault(d, set()).add(item)
        for d, items_ in wanted.items():
            out[d] = self.scores(found[d], only=items_)
        return out

    def flagged(self, score: float) -> bool:
        return score > self.threshold


def _expand(
    owner: np.ndarray, lo: np.ndarray, hi: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each owner k, values[lo[k]:hi[k]]: flattened, with the owner repeated beside each."""
    lengths = hi - lo
    total = int(lengths.sum())
    offsets = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
    return np.repeat(owner, lengths), values[offsets + np.arange(total)]


def build_index(
    benchmarks: Sequence[tuple[str, Sequence[Sequence[str]]]],
    method: str = "ngram",
    n: int = NGRAM_SIZE,
    threshold: float = THRESHOLD,
    progress: bool = False,
) -> Index:
    from tqdm import tqdm

    index = Index(method=method, n=n, threshold=threshold)
    enabled = gc.isenabled()
    gc.disable()  # millions of small containers: the cyclic collector would rescan them all, often
    try:
        for name, items in tqdm(benchmarks, desc="index benchmarks", unit="benchmark", disable=not progress):
            index.add_benchmark(name, items)
        index.keys()
    finally:
        if enabled:
            gc.enable()
    gc.freeze()  # the index lives as long as the process: keep it out of later collections
    return index
