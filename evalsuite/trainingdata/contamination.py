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

from dataclasses import dataclass

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
