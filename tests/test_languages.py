"""`python -m evalsuite languages` (paper Tables 10–12): sampling, text selection, cutting, both detectors,
shares with Wilson intervals and the agreement of two detectors, offline.

Expectations come from outside the code under test: the fixture rows' languages are hand-assigned
(tests/fixtures/languages/README.md: the second field of each `id`), the sample is numpy's documented
draw, the interval is the closed-form Wilson score, kappa is worked by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import UsageError
from core.resolve import resolve
from evalsuite.trainingdata import language_detectors as detectors
from evalsuite.trainingdata import languages as lang
from evalsuite.trainingdata.tiny_classifier import build_tiny_classifier

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "languages"
# papluca/xlm-roberta-base-language-detection config.json (hub), copied by hand.
PAPLUCA_ID2LABEL = {
    0: "ja", 1: "nl", 2: "ar", 3: "pl", 4: "de", 5: "it", 6: "pt", 7: "tr", 8: "es", 9: "hi",
    10: "el", 11: "ur", 12: "bg", 13: "en", 14: "fr", 15: "zh", 16: "ru", 17: "th", 18: "sw", 19: "vi",
}  # fmt: skip
# The paper's row names (arXiv 2412.08347 Tables 10-12).
PAPER_ROWS = {
    "English", "Hindi", "Swahili", "Russian", "Spanish", "Arabic", "Chinese", "Turkish", "Urdu",
    "Portuguese", "Vietnamese", "Japanese", "French", "Bulgarian", "Italian", "Dutch", "Polish",
    "German", "Thai", "Greek",
}  # fmt: skip


def rows_of(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]


def hand_label(row: dict) -> str:
    return row["id"].split("-")[1]


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, closed form (Wilson 1927), as fractions."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("langid") / "classifier")


@pytest.fixture(scope="module")
def xlmr(classifier_dir: Path) -> detectors.XLMRobertaDetector:
    return detectors.XLMRobertaDetector(resolve(str(classifier_dir)), batch_size=4, progress=False)


@pytest.fixture(scope="module")
def lingua() -> detectors.LinguaDetector:
    return detectors.LinguaDetector(progress=False)


def run(name: str, settings: lang.Settings, detectors: list, tokenizer) -> dict:
    source, table = lang.open_dataset(str(FIXTURES / name), data_dir=None, lock=None, allow_unlocked=False)
    return lang.measure(source, table, settings, detectors, tokenizer)


# ---------------------------------------------------------------- the tiny classifier


def test_tiny_classifier_has_the_real_labels_and_is_reproducible(
    classifier_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(classifier_dir)
    assert {int(k): v for k, v in config.id2label.items()} == PAPLUCA_ID2LABEL
    assert {lang.LANGUAGES[c] for c in PAPLUCA_ID2LABEL.values()} == PAPER_ROWS
    assert config.model_type == "xlm-roberta"
    files = sorted(p.name for p in classifier_dir.iterdir())
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt"))]
    tokenizer = AutoTokenizer.from_pretrained(classifier_dir)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    ids = tokenizer("Habari ya asubuhi").input_ids
    assert ids[0] == 0 and ids[-1] == 2  # <s> … </s>, as XLM-R
    again = build_tiny_classifier(tmp_path / "again")
    for name in files:
        digest = [hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (classifier_dir, again)]
        assert digest[0] == digest[1], name


def test_a_classifier_without_the_20_languages_is_refused(classifier_dir: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(classifier_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["id2label"]["13"] = "xx"  # "en" renamed
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="not the 20 languages"):
        detectors.XLMRobertaDetector(resolve(str(other)), batch_size=2, progress=False)


# ---------------------------------------------------------------- what is classified


def test_text_flag_selects_first_user_all_user_or_all() -> None:
    row = next(r for r in rows_of("sft.jsonl") if r["id"] == "sft-en-07")
    first = "I would like to practise my Spanish with you. Can we talk for a while?"
    second = "Quiero contarte sobre mis vacaciones en la playa con mi familia el verano pasado."
    assert lang.select_text(row, "first-user") == first
    assert lang.select_text(row, "all-user") == first + "\n\n" + second
    whole = lang.select_text(row, "all")
    assert whole.startswith(first + "\n\n¡Claro que sí!") and whole.endswith(
        "¿A qué playa fueron y qué hicieron allí?"
    )
    assert whole.count("\n\n") == 3
    system_first = next(r for r in rows_of("sft.jsonl") if r["id"] == "sft-en-03")
    assert lang.select_text(system_first, "first-user") == "What is the capital of Australia?"
    assert lang.select_text(system_first, "all").startswith("You are a helpful assistant.\n\n")
    pref = rows_of("preference.jsonl")[0]
    assert lang.select_text(pref, "first-user") == pref["prompt"]  # the pair's shared prompt
    assert lang.select_text(pref, "all").endswith(pref["chosen"][-1]["content"])  # the chosen side
    assert lang.select_text({"messages": [{"role": "system", "content": "Hi"}]}, "first-user") == ""
    with pytest.raises(UsageError, match="messages"):
        lang.select_text({"text": "hello"}, "first-user", "data.jsonl:4")


def test_sample_is_numpys_seeded_draw_without_replacement() -> None:
    expected = sorted(np.random.default_rng(7).choice(29, size=10, replace=False).tolist())
    assert lang.sample_indices(29, 10, 7) == expected
    assert lang.sample_indices(29, 10, 8) != expected
    assert len(set(lang.sample_indices(1000, 500, 0))) == 500
    assert lang.sample_indices(5, 10, 0) == [0, 1, 2, 3, 4]  # the whole set when it is smaller


# ---------------------------------------------------------------- statistics


def test_shares_sum_to_100_with_wilson_intervals() -> None:
    labels = ["en"] * 7 + ["fr"] * 2 + [None]
    shares = {e["code"]: e for e in lang.language_shares(labels, reported={"en": 83.13, "fr": 0.66})}
    assert set(shares) == set(PAPLUCA_ID2LABEL.values())
    assert shares["en"]["share"] == pytest.approx(700 / 9) and shares["fr"]["count"] == 2
    assert sum(e["share"] for e in shares.values()) == pytest.approx(100.0)
    for code, k in (("en", 7), ("fr", 2), ("de", 0)):
        low, high = wilson(k, 9)
        assert (shares[code]["low"], shares[code]["high"]) == pytest.approx((100 * low, 100 * high))
        assert shares[code]["low"] <= shares[code]["share"] <= shares[code]["high"]
    assert shares["en"]["paper_inside"] and not shares["fr"]["paper_inside"]  # 0.66 < 7.9, the fr low
    assert [e["code"] for e in lang.language_shares(labels)][:2] == ["en", "fr"]


def test_agreement_and_kappa_worked_by_hand() -> None:
    result = lang.agreement(["en", "en", "fr", None, "de"], ["en", "fr", "fr", "en", None])
    assert (result["compared"], result["agreed"], result["only_first"], result["only_other"]) == (3, 2, 1, 1)
    assert result["rate"] == pytest.approx(200 / 3)
    # observed 2/3; chance (2·1 + 1·2)/9 = 4/9; kappa = (2/3 − 4/9) / (1 − 4/9) = 0.4
    assert result["kappa"] == pytest.approx(0.4)
    assert result["disagreements"] == [{"first": "en", "other": "fr", "count": 1}]


# ---------------------------------------------------------------- the offline detector


def test_lingua_names_clear_sentences(lingua: detectors.LinguaDetector) -> None:
    sentences = {
        "en": "The children walked to school together through the quiet morning streets.",
        "de": "Morgen fahren wir mit dem Zug in die Berge, wenn das Wetter schön bleibt.",
        "ru": "Вчера мы долго гуляли по парку и разговаривали о новых книгах.",
        "ja": "明日は友達と一緒に図書館で勉強する予定です。",
        "ar": "ذهبنا إلى السوق صباحا واشترينا الخبز والفواكه الطازجة.",
        "hi": "कल हम अपने दोस्तों के साथ बाज़ार गए और ताज़े फल खरीदे।",
        "th": "พรุ่งนี้ฉันจะไปตลาดกับแม่เพื่อซื้อผักและผลไม้",
        "el": "Αύριο θα πάμε στη θάλασσα με τους φίλους μας αν έχει καλό καιρό.",
        "sw": "Kesho tutakwenda sokoni kununua matunda na mboga pamoja na marafiki zetu.",
        "vi": "Ngày mai chúng tôi sẽ đi chợ để mua rau và trái cây tươi.",
    }
    found = lingua.classify(detectors.Texts(list(sentences.values())))
    assert found == list(sentences)


@pytest.mark.parametrize("name", ["sft.jsonl", "preference.jsonl", "rlvr.jsonl"])
def test_lingua_on_every_fixture_row_matches_the_hand_labels(
    name: str, lingua: detectors.LinguaDetector
) -> None:
    settings = lang.Settings(sample=1000, max_length=0, detectors=("lingua",))
    result = run(name, settings, [lingua], None)
    rows = rows_of(name)
    assert result["settings"]["census"] and result["settings"]["sampled"] == len(rows)
    assert [r["labels"]["lingua"] for r in result["rows"]] == [hand_label(r) for r in rows]
    shares = {e["code"]: e for e in result["detectors"]["lingua"]["languages"]}
    english = sum(hand_label(r) == "en" for r in rows)
    assert shares["en"]["share"] == pytest.approx(100 * english / len(rows))


def test_the_text_flag_changes_the_answer(lingua: detectors.LinguaDetector) -> None:
    """Whole conversations relabel the translation and language-practice rows by their replies."""
    rows = rows_of("sft.jsonl")
    first = run("sft.jsonl", lang.Settings(sample=100, max_length=0, detectors=("lingua",)), [lingua], None)
    every = run(
        "sft.jsonl",
        lang.Settings(sample=100, max_length=0, text="all", detectors=("lingua",)),
        [lingua],
        None,
    )
    expected = {r["id"]: hand_label(r) for r in rows} | {"sft-en-06": "fr", "sft-en-07": "es"}
    assert {r["id"]: r["labels"]["lingua"] for r in every["rows"]} == expected
    count = {res["settings"]["text"]: {e["code"]: e["count"] for e in res["detectors"]["lingua"]["languages"]}
             for res in (first, every)}  # fmt: skip
    assert count["all"]["en"] == count["first-user"]["en"] - 2
    assert count["all"]["fr"] == count["first-user"]["fr"] + 1


# ---------------------------------------------------------------- both detectors, end to end


def test_command_end_to_end_with_both_detectors(
    classifier_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite.cli import main

    out = tmp_path / "languages.json"
    argv = ["languages", "--dataset", str(FIXTURES / "sft.jsonl"), "--model-dir", str(classifier_dir)]
    argv += ["--sample", "20", "--seed", "3", "--batch-size", "3", "--detector", "xlm-roberta", "lingua"]
    assert main([*argv, "--output", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    rows = rows_of("sft.jsonl")
    indices = sorted(np.random.default_rng(3).choice(len(rows), size=20, replace=False).tolist())
    assert [r["index"] for r in result["rows"]] == indices
    assert [r["id"] for r in result["rows"]] == [rows[i]["id"] for i in indices]
    assert (
        result["settings"] | {"sample": 20, "seed": 3, "text": "first-user", "max_length": 512}
        == result["settings"]
    )
    for name in ("xlm-roberta", "lingua"):
        table = result["detectors"][name]["languages"]
        assert {e["language"] for e in table} == PAPER_ROWS
        assert sum(e["count"] for e in table) == 20
        assert sum(e["share"] for e in table) == pytest.approx(100.0)
        assert all(e["low"] <= e["share"] <= e["high"] for e in table)
    assert [r["labels"]["lingua"] for r in result["rows"]] == [hand_label(rows[i]) for i in indices]
    xlmr_labels = [r["labels"]["xlm-roberta"] for r in result["rows"]]
    assert set(xlmr_labels) <= set(PAPLUCA_ID2LABEL.values()) and None not in xlmr_labels
    agreed = sum(r["labels"]["xlm-roberta"] == r["labels"]["lingua"] for r in result["rows"])
    check = result["agreement"]["lingua"]
    assert (check["compared"], check["agreed"]) == (20, agreed)
    assert (check["low"], check["high"]) == pytest.approx(tuple(100 * x for x in wilson(agreed, 20)))
    printed = capsys.readouterr().out
    assert f"lingua agrees with xlm-roberta on {agreed} of 20 rows" in printed and "95% interval" in printed


def test_same_seed_same_result_and_texts_cut_at_max_length(
    xlmr: detectors.XLMRobertaDetector, lingua: detectors.LinguaDetector
) -> None:
    settings = lang.Settings(sample=6, seed=11, max_length=12, detectors=("xlm-roberta", "lingua"))
    once = run("sft.jsonl", settings, [xlmr, lingua], xlmr.tokenizer)
    twice = run("sft.jsonl", settings, [xlmr, lingua], xlmr.tokenizer)
    assert once["rows"] == twice["rows"]
    assert once["settings"]["cut_rows"] == sum(r["cut"] for r in once["rows"]) > 0
    texts = [lang.select_text(r, "first-user") for r in rows_of("sft.jsonl")]
    cut = detectors.cut_texts(texts, xlmr.tokenizer, 12)
    for whole, part, ids, was_cut in zip(texts, cut.texts, cut.input_ids, cut.cut, strict=True):
        truncated = xlmr.tokenizer(whole, truncation=True, max_length=12)  # the tokenizer's own truncation
        assert ids == truncated.input_ids
        full = xlmr.tokenizer(whole, return_offsets_mapping=True)
        assert was_cut == (len(full.input_ids) > 12)
        # what lingua reads ends where the first token the classifier does not read begins
        assert part == (whole[: full.offset_mapping[11][0]] if was_cut else whole)


def test_bad_input_is_one_line_exit_2(
    classifier_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite.cli import main

    fixture = str(FIXTURES / "sft.jsonl")
    bad_rows = tmp_path / "bad.jsonl"
    bad_rows.write_text('{"id": "x", "text": "no conversation"}\n')
    cases = [
        (["--dataset", "no-such-mixture"], "tulu-3-sft-mixture"),
        (["--dataset", fixture, "--detector", "lingua", "--max-length", "0", "--text", "first"], "--text"),
        (["--dataset", fixture, "--max-length", "0", "--model-dir", str(classifier_dir)], "lingua alone"),
        (["--dataset", fixture, "--max-length", "600", "--model-dir", str(classifier_dir)], "at most 512"),
        (["--dataset", fixture, "--detector", "lingua", "lingua", "--max-length", "0"], "once"),
        (["--dataset", str(bad_rows), "--detector", "lingua", "--max-length", "0"], "bad.jsonl:1"),
    ]
    for args, needle in cases:
        try:
            code = main(["languages", *args, "--output", str(tmp_path / "o.json"), "--no-progress"])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], (args, err)
    assert not (tmp_path / "o.json").exists()


def test_reported_values_are_read_by_language_name(tmp_path: Path) -> None:
    path = tmp_path / "data_tables.yaml"
    path.write_text(
        "unit: percent\ntables:\n"
        "- {table: 1, kind: contamination, title: t, source: paper Table 1, dataset: tulu-3-sft-mixture,\n"
        "   rows: [{benchmark: gsm8k, value: '0.08'}]}\n"
        "- table: 10\n  kind: languages\n  title: t\n  source: paper Table 10\n"
        "  dataset: tulu-3-sft-mixture\n"
        "  rows: [{language: English, value: '83.13'}, {language: Hindi, value: '3.79'}]\n"
    )
    assert lang.reported_shares("tulu-3-sft-mixture", path) == {"en": 83.13, "hi": 3.79}
    assert lang.reported_shares("rlvr-mixture", path) is None
    assert lang.reported_shares("some-local-file", path) is None


def test_data_dir_reads_a_hub_download_of_a_mixture(tmp_path: Path, lingua: detectors.LinguaDetector) -> None:
    """--dataset LOCKNAME --data-dir DIR: the hub layout (data/train-*.parquet), the paper's table named."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = rows_of("sft.jsonl")
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:15]), tmp_path / "data" / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[15:]), tmp_path / "data" / "train-00001-of-00002.parquet")
    (tmp_path / "README.md").write_text("a dataset card\n")
    source, table = lang.open_dataset(
        "tulu-3-sft-mixture", data_dir=tmp_path, lock=None, allow_unlocked=False
    )
    assert (source.name, source.paper_table, table.n_rows) == ("tulu-3-sft-mixture", "Table 10", len(rows))
    settings = lang.Settings(sample=12, seed=5, max_length=0, detectors=("lingua",))
    paper = {"en": 83.13, "sw": 2.02}
    result = lang.measure(source, table, settings, [lingua], None, reported=paper)
    indices = sorted(np.random.default_rng(5).choice(len(rows), size=12, replace=False).tolist())
    assert [r["id"] for r in result["rows"]] == [rows[i]["id"] for i in indices]
    assert [r["labels"]["lingua"] for r in result["rows"]] == [hand_label(rows[i]) for i in indices]
    english = {e["code"]: e for e in result["detectors"]["lingua"]["languages"]}["en"]
    low, high = wilson(sum(hand_label(rows[i]) == "en" for i in indices), 12)
    assert english["paper"] == 83.13 and english["paper_inside"] == (100 * low <= 83.13 <= 100 * high)
    assert "Table 10" in lang.summary(result) and "paper %" in lang.summary(result)


def test_the_papers_tables_10_to_12_are_read_from_the_reported_file() -> None:
    from evalsuite.report import data_tables

    if not data_tables.DATA_FILE.is_file():
        pytest.skip(f"{data_tables.DATA_FILE} is absent")
    found = {name: lang.reported_shares(name) for name in lang.PAPER_TABLES}
    # arXiv 2412.08347: Tables 10 and 11 print all 20 languages, Table 12 all but Thai and Greek
    assert {name: len(shares or {}) for name, shares in found.items()} == {
        "tulu-3-sft-mixture": 20,
        "tulu-3-preference-mixture": 20,
        "rlvr-mixture": 18,
    }
    assert [found[name]["en"] for name in lang.PAPER_TABLES] == [83.13, 86.24, 94.80]
    assert (found["tulu-3-sft-mixture"]["fr"], found["rlvr-mixture"]["sw"]) == (0.66, 0.00)
