"""Benchmark contamination of a training set (paper Tables 1, 4, 13), by Tulu 3's definition.

The definition, as Tulu 3 ran it (open-instruct 816dcbf, decontamination/index.py and search.py,
and the Tulu 3 report, arXiv 2411.15124 §3.2 "Identifying Matching Instances"):

- Training side: every message whose role is "user" is one document (index.py indexes each user
  turn of `messages` separately, `--query_filter role:user`); assistant and system turns are not
  compared ("we chose to compute overlap in the prompts alone (or more generally user turns)").
- Benchmark side: the fields search.py's `eval_sets` names for each benchmark (BENCHMARKS below);
  an item with any field None is skipped (search.py `continue`s) and is not in the denominator.
- Each benchmark string is split into tokens by spaCy's English tokenizer (search.py
  `SPACY_MODEL = spacy.load("en_core_web_lg")`; only its tokenizer is used); its 8-grams are
  spans of 8 consecutive spaCy tokens, keyed by the span's text (a text seen twice keeps its last
  position: search.py's `get_ngram_mapping` builds a dict).
- An n-gram matches a training document when Elasticsearch's `match_phrase` finds it: the span
  text and the document are both run through the index's analyzer and the n-gram's tokens must
  appear consecutively in the document's. index.py defines a "tulu_analyzer" but never assigns it
  to the `text` field, so the field uses Elasticsearch's default `standard` analyzer (Unicode
  UAX#29 word segmentation, lower-cased, no stop words): `analyze` below.
- A benchmark token is matched by a document when some n-gram containing it matches; a string's
  score is matched tokens / all its spaCy tokens, an item's is the mean over its fields, per
  document; the item's score is the maximum over documents (search.py `ngram_match`).
- An item is contaminated when that score is > 0.5 ("more than 50% of the test tokens", report
  §3.2; search.py `score > args.match_threshold`), and a benchmark's contamination is the percent
  of its items that are (search.py: the mean of the 0/1 item scores).
- search.py asks Elasticsearch for at most `--search_size` (default 100) documents per n-gram,
  and only those credit its tokens. The query is `{"bool": {"filter": [{"match_phrase": ...}]}}`:
  a filter clause is not scored (Elasticsearch reference, bool query, "Scoring with bool.filter":
  every hit scores 0), so no BM25 ranking applies, and Lucene breaks equal scores by doc id
  (lower first). In a single-shard index (the default since Elasticsearch 7) doc ids follow
  indexing order, which index.py makes the rows' order, each row's user turns in order. So an
  n-gram credits only the first `search_size` documents, in (row, turn) order, that contain it
  (`SearchCap`); `search_size=0` lifts the cap (every document credits). What cannot be known
  offline: a multi-shard index (hits merged by shard, then doc id; documents routed to shards by
  a hash of their random ids) and segment merges that reorder doc ids (Lucene's default
  TieredMergePolicy merges non-adjacent segments) would change which documents are first.

Every item and every training row is compared, so the percentages are a census, not a sample:
they carry no sampling interval.

`--method exact` is search.py's other text mode (no `--ngram_size`): an item counts when one
document contains every field of it as a phrase.
"""

from __future__ import annotations

import bisect
import functools
import gc
import multiprocessing
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import regex

# --- the definition: every constant with its source ------------------------------------------
NGRAM_SIZE = 8  # Tulu 3 report §3.2: "We used 8-gram matching"
THRESHOLD = 0.5  # report §3.2: "more than 50% of the test tokens"; search.py: score > match_threshold
TRAIN_ROLE = "user"  # index.py: --query_filter role:user (default); report §3.2: "user turns"
SPACY_PIPELINE = "en_core_web_lg"  # search.py; its tokenizer is spaCy's English default (see spacy_tokens)
ANALYZER = "elasticsearch standard"  # index.py's mapping names no analyzer (tulu_analyzer is unused)
LUCENE_MAX_TOKEN = 255  # the standard tokenizer's max_token_length: longer tokens are cut there
METHODS = ("ngram", "exact")
SEARCH_SIZE = 100  # search.py --search_size default: the documents each n-gram query returns
SOURCES = {
    "ngram_size": "Tulu 3 report (arXiv 2411.15124) §3.2; search.py --ngram_size",
    "threshold": "report §3.2 'more than 50%'; search.py `1 if score > args.match_threshold else 0`",
    "training_text": "index.py read_dataset: each message with role == 'user', one document each",
    "benchmark_text": "search.py eval_sets (dataset, subset, split, fields, limit) at open-instruct 816dcbf",
    "benchmark_tokens": "search.py SPACY_MODEL(query_string) tokens, whitespace tokens included",
    "phrase_match": "search.py match_phrase on a `text` field with the default standard analyzer",
    "item_score": "search.py ngram_match: max over documents of the mean over fields of matched/len",
    "denominator": "search.py: mean over the items queried; items with a None field are skipped",
    "search_size": "search.py es.search(size=search_size) of a bool filter query: hits all score 0, "
    "so each n-gram credits its first search_size documents by Lucene doc id (index order: row, turn)",
}
SEARCH_PY = "allenai/open-instruct@816dcbf decontamination/search.py"


# --- tokenization --------------------------------------------------------------------------------
@functools.cache
def _spacy() -> Any:
    try:
        import spacy
    except ImportError:  # pragma: no cover - a declared dependency
        from repro.errors import UsageError

        raise UsageError("contamination needs spaCy: pip install 'smoltulu-repro[data-tables]'") from None
    # en_core_web_lg's tokenizer is the English default (its pipes do not change tokens); the
    # package itself (~600 MB, GitHub-only) is not needed for tokens.
    return spacy.blank("en")


def spacy_doc(text: str) -> Any:
    """The benchmark side's tokens: spaCy's English tokenizer (whitespace tokens included)."""
    return _spacy().tokenizer(text)


def spacy_tokens(text: str) -> list[str]:
    return [t.text for t in spacy_doc(text)]


# Elasticsearch's standard analyzer: UAX#29 word segments that hold a letter, digit or emoji,
# lower-cased per code point. Hand-written: no Python package emulates Lucene's analyzer; the
# `regex` module supplies UAX#29 word boundaries ((?w)\b).
_WORD_BREAKS = regex.compile(r"(?wV1)\b")
_KEEP = regex.compile(r"[\p{Alphabetic}\p{Nd}\p{Emoji_Presentation}]")
# UAX#29 restricted to ASCII (WB5-WB13b: letters/digits/underscore join; ' . : join letters,
# ' . , ; join digits); 20x faster than the general path, and tested equal to it on ASCII text.
_ASCII_WORDS = re.compile(
    r"[A-Za-z0-9_]+(?:(?:(?<=[A-Za-z])[.:'](?=[A-Za-z])|(?<=[0-9])[.,;'](?=[0-9]))[A-Za-z0-9_]+)*"
)
_ASCII_KEEP = re.compile(r"[A-Za-z0-9]")
# Java's Character.toLowerCase (Lucene's LowerCaseFilter) maps per code point, without Python's
# final-sigma rule and with İ -> i.
_JAVA_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def analyze(text: str) -> list[str]:
    """The tokens Elasticsearch's standard analyzer indexes for `text`."""
    if text.isascii():
        tokens = [t for t in _ASCII_WORDS.findall(text.lower()) if _ASCII_KEEP.search(t)]
    else:
        pieces = _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower())
        tokens = [t for t in pieces if _KEEP.search(t)]
    if tokens and max(map(len, tokens)) > LUCENE_MAX_TOKEN:
        tokens = [t[i : i + LUCENE_MAX_TOKEN] for t in tokens for i in range(0, len(t), LUCENE_MAX_TOKEN)]
    return tokens


def analyze_offsets(text: str) -> tuple[list[str], list[int], list[int]]:
    """`analyze` with each token's start and end offset in `text`."""
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    if text.isascii():
        for m in _ASCII_WORDS.finditer(text.lower()):
            if _ASCII_KEEP.search(m.group()):
                tokens.append(m.group())
                starts.append(m.start())
                ends.append(m.end())
    else:
        at = 0
        for piece in _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower()):  # same length as text
            if _KEEP.search(piece):
                tokens.append(piece)
                starts.append(at)
                ends.append(at + len(piece))
            at += len(piece)
    if tokens and max(map(len, tokens)) > LUCENE_MAX_TOKEN:
        cut = [
            (t[i : i + LUCENE_MAX_TOKEN], s + i, min(s + i + LUCENE_MAX_TOKEN, e))
            for t, s, e in zip(tokens, starts, ends, strict=True)
            for i in range(0, len(t), LUCENE_MAX_TOKEN)
        ]
        tokens, starts, ends = [c[0] for c in cut], [c[1] for c in cut], [c[2] for c in cut]
    return tokens, starts, ends


def analyze_span(
    text: str, analyzed: tuple[list[str], list[int], list[int]], start: int, end: int
) -> list[str]:
    """`analyze(text[start:end])`, read off the whole text's analysis when no token straddles an end.

    UAX#29 decides a break from the characters on either side, so where the span's ends are not
    inside a token of the whole text, the span alone segments the same way; otherwise (spaCy cut a
    word, as in "do|n't") the span is analyzed by itself.
    """
    tokens, starts, ends = analyzed
    lo = bisect.bisect_left(starts, start)
    hi = bisect.bisect_right(ends, end)
    if (lo > 0 and ends[lo - 1] > start) or (hi < len(tokens) and starts[hi] < end):
        return analyze(text[start:end])
    return tokens[lo:hi]


def analyze_uax29(text: str) -> list[str]:
    """`analyze` through the general (non-ASCII) path; for the test that the two agree."""
    pieces = _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower())
    return [t for t in pieces if _KEEP.search(t)]


# --- the 17 benchmarks of Table 1 ------------------------------------------------------------------
ALL_CONFIGS = "*"  # search.py: a dataset with several configs and none given -> every config, concatenated


@dataclass(frozen=True)
class Benchmark:
    name: str  # the hub id, as search.py and the paper's Table 1 print it
    lock: str  # checkpoints.lock entry
    config: str | None
    split: str
    fields: tuple[str, ...]
    limit: int | None = None  # search.py's limit, applied per config
    suite: str | None = None  # read by evalsuite.harness.sources (the suite evaluates it too)
    note: str = ""


# search.py eval_sets at 816dcbf, in its order, less the three Tulu 3 safety sets the paper omits
# (tulu-3-trustllm-jailbreaktrigger-eval, tulu-3-harmbench-eval, tulu-3-do-anything-now-eval).
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("cais/mmlu", "mmlu", "all", "test", ("question",)),
    Benchmark("openai/openai_humaneval", "openai-humaneval", None, "test", ("prompt",)),
    Benchmark("openai/gsm8k", "gsm8k", "main", "test", ("question",), suite="gsm8k"),
    Benchmark("ucinlp/drop", "drop", None, "validation", ("passage", "question")),
    Benchmark("lighteval/MATH", "lighteval-math", "all", "test", ("problem",)),
    Benchmark("google/IFEval", "ifeval", None, "train", ("prompt",), suite="ifeval"),
    Benchmark("akariasai/PopQA", "popqa", None, "test", ("subj", "prop", "obj")),
    Benchmark("tatsu-lab/alpaca_eval", "alpaca-eval", None, "eval", ("instruction",)),
    Benchmark(
        "lukaemon/bbh",
        "big-bench-hard",
        ALL_CONFIGS,
        "test",
        ("input",),
        suite="bbh",
        note="read from the suite's BBH entry (lighteval/big_bench_hard): the same 6,511 items",
    ),
    Benchmark("truthfulqa/truthful_qa", "truthfulqa", "generation", "validation", ("question",)),
    Benchmark("allenai/wildguardmix", "wildguardmix", "wildguardtest", "test", ("prompt",)),
    Benchmark("allenai/wildjailbreak", "wildjailbreak", "eval", "train", ("adversarial",)),
    Benchmark("TIGER-Lab/MMLU-Pro", "mmlu-pro", None, "test", ("question",), suite="mmlu_pro"),
    Benchmark("Idavidrein/gpqa", "gpqa", "gpqa_extended", "train", ("Question",)),
    Benchmark("lighteval/agi_eval_en", "agi-eval-en", ALL_CONFIGS, "train", ("passage", "question")),
    Benchmark("bigcode/bigcodebench", "bigcodebench", None, "v0.1.2", ("instruct_prompt",)),
    Benchmark("deepmind/math_dataset", "math-dataset", ALL_CONFIGS, "test", ("question",), limit=50),
)
BY_NAME = {b.name: b for b in BENCHMARKS} | {b.lock: b for b in BENCHMARKS}


# --- the index of the benchmark side ---------------------------------------------------------------
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


# --- the training side ---------------------------------------------------------------------------
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
            # the batches in row order, which the cap needs
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                take(pool.imap(_work, jobs, chunksize=1))
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
