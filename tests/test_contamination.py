"""Contamination (paper Tables 1, 4, 13): the in-memory index against a brute-force reading of
Tulu 3's definition (search.py's search-size cap included), on real benchmark items and
hand-written training rows with stated verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.report import data_tables
from evalsuite.trainingdata import contamination as cont
from evalsuite.trainingdata import contamination_cmd as cmd
from evalsuite.trainingdata import contamination_index as cont_index
from evalsuite.trainingdata import contamination_scan as cont_scan
from evalsuite.trainingdata import contamination_tokens as cont_tokens

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "contamination" / "train.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


# --- the definition, written out the slow way: no index, no hashing, no pruning ----------------
def _contains(doc: list[str], phrase: list[str]) -> bool:
    return any(doc[i : i + len(phrase)] == phrase for i in range(len(doc) - len(phrase) + 1))


def brute_doc_scores(
    items: list[tuple[str, ...]], turns: list[str], n: int, search_size: int = cont.SEARCH_SIZE
) -> list[list[float]]:
    """Per item, per user turn: the mean over its fields of (tokens in a matched n-gram / tokens),
    an n-gram being a span of n spaCy tokens keyed by its text (last position wins) whose
    query (its analyzed tokens, consecutive in a turn's analyzed tokens) returns the first
    `search_size` turns in order that contain it (0: all of them); only those credit its tokens."""
    docs = [cont_tokens.analyze(t) for t in turns]
    out = []
    for fields in items:
        ratios: list[dict[int, float]] = []  # per field: turn -> matched tokens / tokens
        for text in fields:
            tokens = cont_tokens.spacy_tokens(text)
            spans: dict[str, list[int]] = {}
            for i in range(len(tokens) - n + 1):
                spans[cont_tokens.spacy_doc(text)[i : i + n].text] = list(range(i, i + n))
            matched: dict[int, set[int]] = {}
            for span_text, positions in spans.items():
                phrase = cont_tokens.analyze(span_text)
                hits = [d for d, doc in enumerate(docs) if phrase and _contains(doc, phrase)]
                for d in hits[:search_size] if search_size else hits:
                    matched.setdefault(d, set()).update(positions)
            ratios.append({d: len(m) / len(tokens) for d, m in matched.items()})
        out.append([sum(r.get(d, 0.0) for r in ratios) / len(fields) for d in range(len(docs))])
    return out


def brute_scores(
    items: list[tuple[str, ...]], turns: list[str], n: int, search_size: int = cont.SEARCH_SIZE
) -> list[float]:
    """Per item: its score, the max over user turns."""
    return [max(per_doc, default=0.0) for per_doc in brute_doc_scores(items, turns, n, search_size)]


def fixture_items(real_items: Path) -> dict[str, list[tuple[str, ...]]]:
    gsm = [json.loads(x)["question"] for x in (real_items / "gsm8k" / "test.jsonl").read_text().splitlines()]
    ife = [
        json.loads(x)["prompt"] for x in (real_items / "ifeval" / "input_data.jsonl").read_text().splitlines()
    ]
    return {"openai/gsm8k": [(q,) for q in gsm], "google/IFEval": [(p,) for p in ife[:20]]}


def turns_of(rows: list[dict]) -> list[str]:
    return [t for r in rows for t in cont_scan.user_turns(r["messages"])]


def index_scores(
    items: dict[str, list[tuple[str, ...]]],
    rows: list[dict],
    search_size: int = cont.SEARCH_SIZE,
    workers: int = 1,
    **kw,
) -> dict[tuple[str, int], float]:
    """(benchmark, item) -> score, for the items the index flags by its own threshold."""
    index = cont_index.build_index(list(items.items()), **kw)
    messages = [r["messages"] for r in rows]
    result = cont_scan.scan(
        index, messages, progress=False, batch_size=3, search_size=search_size, workers=workers
    )
    out = {}
    starts = {}
    for i, item in enumerate(index.items):
        starts.setdefault(item.benchmark, i)
    for i, (score, _row, _turn) in result.best.items():
        b = index.items[i].benchmark
        if index.flagged(score):
            out[(index.benchmarks[b], i - starts[b])] = score
    return out


# --- the analyzer ---------------------------------------------------------------------------------
def test_analyzer_matches_elasticsearch_standard_analyzer_examples() -> None:
    # Elasticsearch reference, "Standard analyzer": the example sentence and its terms
    text = "The 2 QUICK Brown-Foxes jumped over the lazy dog's bone."
    assert cont_tokens.analyze(text) == [
        "the",
        "2",
        "quick",
        "brown",
        "foxes",
        "jumped",
        "over",
        "the",
        "lazy",
        "dog's",
        "bone",
    ]
    # UAX#29: letters join over . ' : (MidLetter/MidNumLet), digits over , . ; (MidNum)
    assert cont_tokens.analyze("e.g. U.S.A. 3.14 1,000 a:b x_y 1:30 $5 e-mail") == [
        "e.g", "u.s.a", "3.14", "1,000", "a:b", "x_y", "1", "30", "5", "e", "mail",
    ]  # fmt: skip
    assert cont_tokens.analyze("北京 カタカナ ΣΑΣ İ") == [
        "北",
        "京",
        "カタカナ",
        "σασ",
        "i",
    ]  # ideographs one by one


def test_ascii_fast_path_equals_the_unicode_segmenter(real_items: Path) -> None:
    texts = [t for items in fixture_items(real_items).values() for (t,) in items]
    texts += ["a.b.c 1.2.3 a1.b 1'000 don't __x__ ___ a,b 1;2 x--y", "Q: (A) 5/6 = 0.83; 2x+3=7?"]
    for text in texts:
        if text.isascii():
            assert cont_tokens.analyze(text) == cont_tokens.analyze_uax29(text), text


def test_spans_read_off_the_whole_text_equal_spans_analyzed_alone(real_items: Path) -> None:
    for items in fixture_items(real_items).values():
        for (text,) in items:
            doc, analyzed = cont_tokens.spacy_doc(text), cont_tokens.analyze_offsets(text)
            for i in range(len(doc) - 7):
                start, end = doc[i].idx, doc[i + 7].idx + len(doc[i + 7].text)
                assert cont_tokens.analyze_span(text, analyzed, start, end) == cont_tokens.analyze(
                    text[start:end]
                )


# --- the index against the brute force, and the hand-written verdicts ----------------------------
def test_hand_written_rows_get_their_stated_verdicts(real_items: Path) -> None:
    items = fixture_items(real_items)
    found = index_scores(items, ROWS)
    for row in ROWS:
        expect = row["expect"]
        fields = items[expect["benchmark"]][expect["item"]]
        brute = brute_scores([fields], turns_of([row]), cont.NGRAM_SIZE)[0]
        assert (brute > 0.5) is expect["contaminated"], (row["id"], brute, expect["why"])
        alone = index_scores(items, [row]).get((expect["benchmark"], expect["item"]))
        assert (alone is not None) is expect["contaminated"], (row["id"], alone)
        if expect["contaminated"]:
            assert alone == pytest.approx(brute), row["id"]
    assert set(found) == {
        (r["expect"]["benchmark"], r["expect"]["item"]) for r in ROWS if r["expect"]["contaminated"]
    }


def test_index_equals_brute_force_on_every_item(real_items: Path) -> None:
    items = fixture_items(real_items)
    turns = turns_of(ROWS)
    found = index_scores(items, ROWS)
    for name, its in items.items():
        for i, score in enumerate(brute_scores(its, turns, cont.NGRAM_SIZE)):
            assert ((name, i) in found) is (score > 0.5), (name, i, score)
            if score > 0.5:
                assert found[(name, i)] == pytest.approx(score)


def test_multi_field_items_average_their_fields_per_document() -> None:
    # search.py: a DROP-like item (passage, question) scores the mean of the two fields' ratios
    passage = "The city council approved the new budget after a long debate on Tuesday evening downtown."
    question = "Which body approved the new budget after a long debate on Tuesday?"
    items = {"two-field": [(passage, question)]}
    rows = [{"messages": [{"role": "user", "content": passage}]}]
    brute = brute_scores(items["two-field"], turns_of(rows), 8)[0]
    assert 0.5 < brute < 1.0  # the passage alone: its ratio 1.0, the question's partly shared
    assert index_scores(items, rows)[("two-field", 0)] == pytest.approx(brute)


def test_changing_the_ngram_size_or_threshold_changes_verdicts(real_items: Path) -> None:
    items = fixture_items(real_items)
    by_id = {r["id"]: r for r in ROWS}
    gap = [by_id["every-8th-word"]]  # runs of 7 words: flagged at n=7, not at n=8
    key = ("openai/gsm8k", 0)
    assert key not in index_scores(items, gap)
    assert key in index_scores(items, gap, n=7)
    assert brute_scores([items["openai/gsm8k"][0]], turns_of(gap), 7)[0] > 0.5
    assert key in index_scores(items, [by_id["majority"]])  # 45 of 60 tokens: over 0.5, under 0.8
    assert key not in index_scores(items, [by_id["majority"]], threshold=0.8)
    assert key in index_scores(items, [by_id["part"]], threshold=0.4)  # 27 of 60


def test_exact_method_needs_every_field_as_a_phrase_in_one_turn(real_items: Path) -> None:
    items = fixture_items(real_items)
    found = index_scores(items, ROWS, method="exact")
    # whole question inside one user turn: the copy, and the whitespace variant (analyzed the same)
    assert set(found) == {("openai/gsm8k", 0), ("openai/gsm8k", 1)}


# --- search.py's search-size cap: each n-gram credits only its first N documents, in index order ----
def _user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]}


def _halves(question: str) -> tuple[str, str, int]:
    doc = cont_tokens.spacy_doc(question)
    mid = len(doc) // 2
    return question[: doc[mid - 1].idx + len(doc[mid - 1].text)], question[doc[mid].idx :], len(doc)


def test_cap_changes_a_verdict_common_phrases_use_up_the_slots(real_items: Path) -> None:
    # GSM8K item 0 (60 spaCy tokens): three turns hold its first 30 tokens, three its last 30
    # (each scores 30/60 = 0.5, not over 0.5), then a turn holds the whole item. Without the cap
    # the copy scores 1.0; with search_size 3 every n-gram inside a half already returned its 3
    # documents, so the copy keeps only the 7 n-grams straddling the middle: tokens 23..36, 14/60.
    items = fixture_items(real_items)
    question = items["openai/gsm8k"][0][0]
    head, tail, length = _halves(question)
    assert length == 60
    common = [_user(head)] * 3 + [_user(tail)] * 3
    rows = [*common, _user(question)]
    key = ("openai/gsm8k", 0)
    turns = turns_of(rows)
    assert brute_doc_scores([(question,)], turns, 8, search_size=0)[0] == [0.5] * 6 + [1.0]
    assert brute_doc_scores([(question,)], turns, 8, search_size=3)[0] == [0.5] * 6 + [14 / 60]
    assert index_scores(items, rows, search_size=0)[key] == 1.0
    assert key not in index_scores(items, rows, search_size=3)
    assert key in index_scores(items, rows, search_size=4)  # more than the 3 common turns: a slot left
    assert key in index_scores(items, rows)  # the default, 100
    # the same turns with the copy first: it takes the first slot of every n-gram
    assert index_scores(items, [_user(question), *common], search_size=3)[key] == 1.0


def test_cap_ranks_by_index_order_not_by_relevance(real_items: Path) -> None:
    # search.py wraps match_phrase in a bool filter: every hit scores 0, so Lucene returns the
    # lowest doc ids. BM25 would rank a short turn holding the item twice (phrase frequency 2)
    # above long turns holding half of it once; here it still loses the slots to the earlier ones.
    items = fixture_items(real_items)
    question = items["openai/gsm8k"][0][0]
    head, tail, _ = _halves(question)
    filler = "Please read the following note carefully before you answer the questions below. " * 20
    common = [_user(filler + head)] * 3 + [_user(tail + " " + filler)] * 3
    short = _user(question + "\n" + question)
    key = ("openai/gsm8k", 0)
    assert key not in index_scores(items, [*common, short], search_size=3)
    assert brute_scores([(question,)], turns_of([*common, short]), 8, search_size=3)[0] <= 0.5
    assert index_scores(items, [short, *common], search_size=3)[key] == 1.0


@pytest.mark.parametrize("search_size", [1, 3])
def test_index_equals_brute_force_with_the_cap(real_items: Path, search_size: int) -> None:
    items = fixture_items(real_items)
    question = items["openai/gsm8k"][0][0]
    head, tail, _ = _halves(question)
    rows = [*ROWS[:4], _user(head), _user(tail), _user(head), *ROWS[4:], _user(tail), _user(question)]
    turns = turns_of(rows)
    one = index_scores(items, rows, search_size=search_size)
    assert index_scores(items, rows, search_size=search_size, workers=2) == one  # batches kept in order
    for name, its in items.items():
        for i, score in enumerate(brute_scores(its, turns, cont.NGRAM_SIZE, search_size)):
            assert ((name, i) in one) is (score > 0.5), (name, i, score)
            if score > 0.5:
                assert one[(name, i)] == pytest.approx(score)


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_cap_counts_documents_across_batches(batch_size: int) -> None:
    # one 8-token item, so one n-gram; five turns hold it: with search_size 2 the last three are
    # past the cap, whichever batches they fall in
    text = "alpha beta gamma delta epsilon zeta eta theta"
    index = cont_index.build_index([("one", [(text,)])])
    rows = [_user(text)["messages"]] * 5
    result = cont_scan.scan(index, rows, batch_size=batch_size, search_size=2, progress=False)
    assert result.cap == {
        "search_size": 2,
        "phrases_over_cap": 1,
        "uncredited_matches": 3,
        "rescored_documents": 3,
    }
    assert result.best == {0: (1.0, 0, 0)}
    free = cont_scan.scan(index, rows, batch_size=batch_size, search_size=0, progress=False)
    assert free.cap["uncredited_matches"] == 0 and free.best == {0: (1.0, 0, 0)}
    exact = cont_index.build_index([("one", [(text,)])], method="exact")
    assert cont_scan.scan(exact, rows, search_size=2, progress=False).cap["search_size"] == 0  # num_hits


# --- the command, offline ------------------------------------------------------------------------------
def test_command_runs_offline_on_local_files(tmp_path: Path, real_items: Path, capsys) -> None:
    from evalsuite.cli import main

    out = tmp_path / "out.json"
    benches = ["openai/gsm8k", "google/IFEval", "cais/mmlu"]
    argv = [
        "contamination",
        "--train-files",
        str(FIXTURE),
        "--data-dir",
        str(real_items),
        "--output",
        str(out),
    ]
    assert main([*argv, "--benchmarks", *benches, "--workers", "2"]) == 0
    record = json.loads(out.read_text())
    per = {b["benchmark"]: b for b in record["benchmarks"]}
    assert (
        per["cais/mmlu"]["status"] == "unavailable" and "not available offline" in per["cais/mmlu"]["reason"]
    )
    gsm = per["openai/gsm8k"]
    n_gsm = len((real_items / "gsm8k" / "test.jsonl").read_text().splitlines())
    assert (gsm["items"], gsm["contaminated"]) == (n_gsm, 2)
    assert gsm["percent"] == pytest.approx(200 / n_gsm)
    assert {f["item"] for f in gsm["flagged"]} == {0, 1}
    assert per["google/IFEval"]["contaminated"] == 0
    assert record["rows"] == len(ROWS) and record["definition"]["ngram_size"] == 8
    assert record["definition"]["search_size"] == 100 == record["search_cap"]["search_size"]
    assert "census" in record["definition"]
    assert "not available offline" in capsys.readouterr().out


def test_command_refuses_bad_input(tmp_path: Path) -> None:
    from evalsuite.cli import main

    assert main(["contamination", "--train-files", str(tmp_path / "none.jsonl")]) == 2
    argv = ["contamination", "--train-files", str(FIXTURE), "--benchmarks", "no/such-benchmark"]
    assert main(argv) == 2
    with pytest.raises(SystemExit) as exc:  # argparse's own error: one line, exit 2
        main(["contamination", "--train-files", str(FIXTURE), "--search-size", "-1"])
    assert exc.value.code == 2


def test_command_search_size_zero_is_the_census(tmp_path: Path, real_items: Path) -> None:
    from evalsuite.cli import main

    out = tmp_path / "out.json"
    argv = ["contamination", "--train-files", str(FIXTURE), "--data-dir", str(real_items)]
    assert main([*argv, "--benchmarks", "openai/gsm8k", "--output", str(out), "--search-size", "0"]) == 0
    record = json.loads(out.read_text())
    assert record["definition"]["search_size"] == 0 and record["search_cap"]["uncredited_matches"] == 0


def test_benchmarks_follow_table_1_and_search_py() -> None:
    import yaml

    assert len(cont.BENCHMARKS) == 17
    tables = yaml.safe_load(data_tables.DATA_FILE.read_text())["tables"]
    table1 = next(t for t in tables if t["table"] == 1)
    assert [r["benchmark"] for r in table1["rows"]] == [b.name for b in cont.BENCHMARKS]
    from core import lock as lockfile

    lock = lockfile.load()
    for b in cont.BENCHMARKS:
        assert lock.get(b.lock).repo_type == "dataset"
    for name in cmd.TRAINING_SETS:
        assert lock.get(name).role == "train-data"
