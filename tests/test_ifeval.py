"""IFEval scoring on real items from the reference input file, and the offline punkt_tab data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.errors import UsageError
from core.scoring import punkt

ROOT = Path(__file__).resolve().parents[1]

# The sentence splits below hold only with the real abbreviation list: "Dr.", "U.S.", "p.m." and
# "Mr." do not end a sentence.
FIVE_SENTENCES = (
    "Dear diary, today Dr. Lee from the U.S. office called me at 4 p.m. about the deadline. "
    "I felt my chest tighten and my thoughts race. So I walked around the block for ten minutes. "
    "Then I wrote down three small tasks on a card. By evening Mr. Brown said the plan looked fine."
)
NO_COMMA = (
    "Thou shalt land in Tokyo at dawn and rest thy weary bones.\n"
    "On the second day journey to Kyoto and behold its temples."
)
LOWERCASE = (
    "in the sentence about the two young boys with toy guns and horns, "
    "what game do you think the boys are playing together in the park?"
)
SENTIMENT = "The sentiment of the sentence is negative: money meant for children may be misused."
END = "Is there anything else I can help with?"
KOTLIN = "Kotlin is concise. Java is everywhere."


@pytest.fixture(scope="module", autouse=True)
def punkt_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Scoring writes punkt_tab (when not installed) under a temp folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(punkt.CACHE_ENV, str(tmp_path_factory.mktemp("nltk_data")))
        yield


def read_items(input_data: Path) -> dict[int, dict[str, Any]]:
    rows = [json.loads(line) for line in input_data.read_text(encoding="utf-8").splitlines()]
    return {row["key"]: row for row in rows}


@pytest.fixture(scope="module")
def items(real_items: Path) -> dict[int, dict[str, Any]]:
    """The reference file's first rows (tests/fixtures/benchdata), which hold every key scored here."""
    return read_items(real_items / "ifeval" / "input_data.jsonl")


def outcome(metrics: dict[str, Any]) -> tuple[int, int, list[int], list[int]]:
    return metrics["prompt_strict"], metrics["prompt_loose"], metrics["inst_strict"], metrics["inst_loose"]


def test_reference_input_counts(benchdata: Path) -> None:
    items = read_items(benchdata / "ifeval" / "input_data.jsonl")
    assert len(items) == 541
    assert sum(len(it["instruction_id_list"]) for it in items.values()) == 834


# (key, instruction ids the item must have, response, prompt strict, prompt loose, inst strict, inst loose)
CASES = [
    (1001, ["punctuation:no_comma"], NO_COMMA, 1, 1, [1], [1]),
    (1001, ["punctuation:no_comma"], "Day one: Tokyo, then Kyoto.", 0, 0, [0], [0]),
    # The comma sits in a lead-in line, which the loose variants drop.
    (1001, ["punctuation:no_comma"], "Sure, here is thy itinerary:\n" + NO_COMMA, 0, 1, [0], [1]),
    # "less than 6 sentences", counted by punkt.
    (1268, ["length_constraints:number_sentences"], FIVE_SENTENCES, 1, 1, [1], [1]),
    (1268, ["length_constraints:number_sentences"], FIVE_SENTENCES + " I slept well.", 0, 0, [0], [0]),
    (1019, ["change_case:english_lowercase"], LOWERCASE, 1, 1, [1], [1]),
    (1019, ["change_case:english_lowercase"], LOWERCASE.capitalize(), 0, 0, [0], [0]),
    (1019, ["change_case:english_lowercase"], "Sure! Here is my question:\n" + LOWERCASE, 0, 1, [0], [1]),
    (1322, ["detectable_format:title"], "<<Kotlin vs Java>>\n" + KOTLIN, 1, 1, [1], [1]),
    (1322, ["detectable_format:title"], "Kotlin vs Java\n" + KOTLIN, 0, 0, [0], [0]),
    (1322, ["detectable_format:title"], "<<  >>\n" + KOTLIN, 0, 0, [0], [0]),
    (1128, ["startend:end_checker"], f"{SENTIMENT}\n{END}", 1, 1, [1], [1]),
    # Markdown bold around the end phrase: the loose variants strip asterisks.
    (1128, ["startend:end_checker"], f"{SENTIMENT}\n**{END}**", 0, 1, [0], [1]),
    (1128, ["startend:end_checker"], SENTIMENT, 0, 0, [0], [0]),
]


@pytest.mark.parametrize(("key", "ids", "response", "p_strict", "p_loose", "i_strict", "i_loose"), CASES)
def test_score_item_real_items(
    items: dict[int, dict[str, Any]],
    key: int,
    ids: list[str],
    response: str,
    p_strict: int,
    p_loose: int,
    i_strict: list[int],
    i_loose: list[int],
) -> None:
    from core.scoring.ifeval import score_item

    doc = items[key]
    assert doc["instruction_id_list"] == ids
    assert outcome(score_item(doc, response)) == (p_strict, p_loose, i_strict, i_loose)


def test_score_item_per_instruction(items: dict[int, dict[str, Any]]) -> None:
    """Item 1262: a title and "less than 5 sentences", followed separately."""
    from core.scoring.ifeval import score_item

    doc = items[1262]
    assert doc["instruction_id_list"] == ["detectable_format:title", "length_constraints:number_sentences"]
    title = "<<Axle Weight and Road Damage>>\n"
    four = (
        "Heavier axles press harder on the pavement. The stress grows much faster than the weight. "
        "Roads therefore crack and rut sooner. Engineers limit axle loads for this reason."
    )
    assert outcome(score_item(doc, title + four)) == (1, 1, [1, 1], [1, 1])
    six = four + " Fines enforce the limits. Scales check the trucks."
    assert outcome(score_item(doc, title + six + "\nDrive safely.")) == (0, 0, [1, 0], [1, 0])
    assert outcome(score_item(doc, four)) == (0, 0, [0, 1], [0, 1])


def test_score_item_hub_kwargs_with_none(items: dict[int, dict[str, Any]]) -> None:
    """The hub's rows carry every kwarg name with None; they must score like the reference's."""
    from core.scoring.ifeval import score_item

    doc = dict(items[1268])
    nones = dict.fromkeys(("num_highlights", "relation", "num_words", "num_sentences", "keywords"))
    doc["kwargs"] = [{**nones, **kw} for kw in doc["kwargs"]]
    assert outcome(score_item(doc, FIVE_SENTENCES)) == (1, 1, [1], [1])
    assert outcome(score_item(doc, FIVE_SENTENCES + " I slept well.")) == (0, 0, [0], [0])


def test_score_item_bad_items(items: dict[int, dict[str, Any]]) -> None:
    from core.scoring.ifeval import score_item

    doc = items[1001]
    with pytest.raises(UsageError, match="unknown instruction"):
        score_item({**doc, "instruction_id_list": ["punctuation:no_semicolon"]}, NO_COMMA)
    with pytest.raises(UsageError, match="1 instructions but 2 kwargs"):
        score_item({**doc, "kwargs": [{}, {}]}, NO_COMMA)
    with pytest.raises(UsageError, match="lacks kwargs"):
        score_item({k: v for k, v in doc.items() if k != "kwargs"}, NO_COMMA)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_reference_files(items: dict[int, dict[str, Any]], tmp_path: Path) -> None:
    from core.scoring.ifeval import score_reference_files

    picked = [items[1001], items[1268], items[1262]]
    input_data = write_jsonl(tmp_path / "input_data.jsonl", picked)
    six = (
        "<<Axle Weight and Road Damage>>\nHeavier axles press harder on the pavement. The stress grows "
        "much faster than the weight. Roads crack sooner. Engineers limit axle loads. Fines enforce the "
        "limits. Scales check the trucks.\nDrive safely."
    )
    answers = [
        {"prompt": items[1268]["prompt"], "response": FIVE_SENTENCES},  # strict [1], loose [1]
        {"prompt": items[1001]["prompt"], "response": "Sure, here it is:\n" + NO_COMMA},  # [0], [1]
        {"prompt": items[1262]["prompt"], "response": six},  # strict [1, 0], loose [1, 0]
    ]
    responses = write_jsonl(tmp_path / "responses.jsonl", answers)

    out = score_reference_files(input_data, responses)
    assert [r["key"] for r in out["items"]] == [1001, 1268, 1262]
    assert [outcome(r["metrics"]) for r in out["items"]] == [
        (0, 1, [0], [1]),
        (1, 1, [1], [1]),
        (0, 0, [1, 0], [1, 0]),
    ]
    scores = out["scores"]
    expected = {
        "prompt-level strict accuracy": 100 * 1 / 3,
        "instruction-level strict accuracy": 100 * 2 / 4,
        "prompt-level loose accuracy": 100 * 2 / 3,
        "instruction-level loose accuracy": 100 * 3 / 4,
    }
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value)
    assert scores["average strict (prompt + instruction) / 2"] == pytest.approx((100 / 3 + 50) / 2)
    assert scores["average loose (prompt + instruction) / 2"] == pytest.approx((200 / 3 + 75) / 2)

    short = write_jsonl(tmp_path / "short.jsonl", answers[:2])
    with pytest.raises(UsageError, match="1 prompt\\(s\\) without a response, 0 response"):
        score_reference_files(input_data, short)
    stray = write_jsonl(tmp_path / "stray.jsonl", [*answers, {"prompt": "Say hi.", "response": "hi"}])
    with pytest.raises(UsageError, match="0 prompt\\(s\\) without a response, 1 response"):
        score_reference_files(input_data, stray)
    twice = write_jsonl(tmp_path / "twice.jsonl", [*answers, answers[0]])
    with pytest.raises(UsageError, match="1 prompt\\(s\\) answered more than once"):
        score_reference_files(input_data, twice)
    (tmp_path / "broken.jsonl").write_text('{"prompt": "x"\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"broken\.jsonl:1: not JSON"):
        score_reference_files(input_data, tmp_path / "broken.jsonl")
    with pytest.raises(UsageError, match="cannot read"):
        score_reference_files(input_data, tmp_path / "absent.jsonl")


# --- punkt_tab ------------------------------------------------------------------------------

PUNKT_SCRIPT = textwrap.dedent(
    """
    import json, os, nltk
    nltk.data.path[:] = []  # no installed copy may stand in for the written one
    from core.scoring.punkt import ensure_punkt_tab
    lang_dir = ensure_punkt_tab()
    lines = {p.name: len(p.read_text(encoding="utf-8").split("\\n")) for p in lang_dir.iterdir()}
    print(json.dumps({
        "dir": str(lang_dir),
        "nltk_path": list(map(str, nltk.data.path)),
        "lines": lines,
        "mtimes": {p.name: p.stat().st_mtime_ns for p in lang_dir.iterdir()},
        "split": nltk.sent_tokenize("Dr. Smith went to Washington. He arrived at 3 p.m. on Monday."),
    }))
    """
)


def run_punkt(cache: Path, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update({punkt.CACHE_ENV: str(cache), "HOME": str(home), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run(
        [sys.executable, "-c", PUNKT_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_punkt_tab_written_from_package(tmp_path: Path) -> None:
    from punkt.data import load_bundled

    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    out = run_punkt(cache, home)
    assert out["dir"] == str(cache / "tokenizers" / "punkt_tab" / "english")
    assert out["nltk_path"] == [str(cache)]
    ortho = len(load_bundled("english").ortho_context)
    assert out["lines"] == {
        "abbrev_types.txt": 156,
        "collocations.tab": 37,
        "sent_starters.txt": 39,
        "ortho_context.tab": ortho,
    }
    assert ortho > 20000
    assert out["split"] == ["Dr. Smith went to Washington.", "He arrived at 3 p.m. on Monday."]
    # A complete cache is reused, not rewritten, by the next process.
    assert run_punkt(cache, home)["mtimes"] == out["mtimes"]
    assert sorted(p.name for p in (cache / "tokenizers" / "punkt_tab").iterdir()) == ["english"]


def test_punkt_tab_never_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setenv(punkt.CACHE_ENV, str(tmp_path))
    real_write = punkt.write_text
    written: list[str] = []

    def write_then_fail(path: Path, text: str) -> None:
        if written:
            raise OSError(28, "No space left on device")
        written.append(path.name)
        real_write(path, text)

    monkeypatch.setattr(punkt, "write_text", write_then_fail)
    with pytest.raises(UsageError, match="cannot write NLTK punkt_tab data"):
        punkt.ensure_punkt_tab()
    assert written == ["abbrev_types.txt"]
    assert list((tmp_path / "tokenizers" / "punkt_tab").iterdir()) == []
    assert nltk.data.path == []


def test_punkt_tab_bad_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [])
    lang_dir = tmp_path / "partial" / "tokenizers" / "punkt_tab" / "english"
    lang_dir.mkdir(parents=True)
    (lang_dir / "abbrev_types.txt").write_text("dr", encoding="utf-8")
    monkeypatch.setenv(punkt.CACHE_ENV, str(tmp_path / "partial"))
    with pytest.raises(UsageError, match="incomplete NLTK punkt_tab cache"):
        punkt.ensure_punkt_tab()
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    monkeypatch.setenv(punkt.CACHE_ENV, str(tmp_path / "a-file"))
    with pytest.raises(UsageError, match="set SMOLTULU_NLTK_DATA to a writable folder"):
        punkt.ensure_punkt_tab()
