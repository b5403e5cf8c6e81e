"""Malformed benchmark rows are refused on load, naming the file, the row and the field (issue 16).

The CLI cases (one line, exit 2, nothing written) are in tests/test_faults.py; these check each
rule in-process, and that every real and demo item passes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REAL_ITEMS

from core.errors import UsageError
from evalsuite.demo import DEMO_DATA
from evalsuite.harness import sources
from evalsuite.reward import data as reward_data

pytestmark = pytest.mark.faults

ARC = {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}
HELLASWAG = {
    "activity_label": "a",
    "ctx_a": "b.",
    "ctx_b": "c",
    "endings": ["1", "2", "3", "4"],
    "label": "0",
}
PIQA = {"goal": "g", "sol1": "a", "sol2": "b", "label": 0}
MMLU_PRO = {"question": "q", "options": ["a", "b", "c"], "answer_index": 2, "category": "math"}
GSM8K = {"question": "q", "answer": "1 + 1 = 2\n#### 2"}
BBH = {"input": "i", "target": "t"}
IFEVAL = {"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
WORDS = {**IFEVAL, "instruction_id_list": ["length_constraints:number_words"]}

FILES = {  # benchmark -> (file of the bad row, its subset)
    "arc": ("ARC-Easy/test.jsonl", "ARC-Easy"),
    "hellaswag": ("validation.jsonl", None),
    "piqa": ("validation.jsonl", None),
    "mmlu_pro": ("test.jsonl", None),
    "gsm8k": ("test.jsonl", None),
    "bbh": ("navigate/train.jsonl", "navigate"),
    "ifeval": ("train.jsonl", None),
}

BAD = {  # name -> (benchmark, bad row, what the error says)
    "arc answer key not a label": ("arc", {**ARC, "answerKey": "C"}, "field 'answerKey' is \"C\""),
    "arc choices a string": ("arc", {**ARC, "choices": "ab"}, "field 'choices'"),
    "arc labels shorter than texts": (
        "arc",
        {**ARC, "choices": {"text": ["a", "b"], "label": ["A"]}},
        "choices",
    ),
    "arc question missing": ("arc", {k: v for k, v in ARC.items() if k != "question"}, "lacks question"),
    "hellaswag label 4": ("hellaswag", {**HELLASWAG, "label": "4"}, "field 'label' is \"4\""),
    "hellaswag label negative": ("hellaswag", {**HELLASWAG, "label": -1}, "field 'label' is -1"),
    "hellaswag ctx_b null": ("hellaswag", {**HELLASWAG, "ctx_b": None}, "field 'ctx_b' is null"),
    "piqa label 2": ("piqa", {**PIQA, "label": 2}, "field 'label' is 2"),
    "piqa label true": ("piqa", {**PIQA, "label": True}, "field 'label' is true"),
    "piqa goal a number": ("piqa", {**PIQA, "goal": 3}, "field 'goal' is 3"),
    "mmlu-pro index 3 of 3": ("mmlu_pro", {**MMLU_PRO, "answer_index": 3}, "field 'answer_index' is 3"),
    "mmlu-pro index a float": ("mmlu_pro", {**MMLU_PRO, "answer_index": 1.0}, "field 'answer_index' is 1.0"),
    "mmlu-pro options null": ("mmlu_pro", {**MMLU_PRO, "options": None}, "field 'options' is null"),
    "gsm8k answer a number": ("gsm8k", {**GSM8K, "answer": 2}, "field 'answer' is 2"),
    "gsm8k answer without ####": ("gsm8k", {**GSM8K, "answer": "2"}, "no final '#### N' line"),
    "bbh target a number": ("bbh", {**BBH, "target": 3}, "field 'target' is 3"),
    "row not an object": ("piqa", [1, 2], "the row is [1, 2]"),
    "ifeval key missing": ("ifeval", {k: v for k, v in IFEVAL.items() if k != "key"}, "lacks key"),
    "ifeval ids a string": (
        "ifeval",
        {**IFEVAL, "instruction_id_list": "x"},
        "'instruction_id_list' is \"x\"",
    ),
    "ifeval kwargs shorter": ("ifeval", {**IFEVAL, "kwargs": []}, "1 instructions but 0 kwargs"),
    "ifeval unknown instruction": (
        "ifeval",
        {**IFEVAL, "instruction_id_list": ["punctuation:no_semicolon"]},
        "unknown instruction",
    ),
    "ifeval kwargs not an object": ("ifeval", {**IFEVAL, "kwargs": ["x"]}, 'its kwargs are "x"'),
    "ifeval unknown argument": (
        "ifeval",
        {**IFEVAL, "kwargs": [{"n": 3}]},
        "argument 'n' is not one it takes",
    ),
    "ifeval count as text": ("ifeval", {**WORDS, "kwargs": [{"num_words": "9"}]}, "'num_words' is \"9\""),
    "ifeval count negative": ("ifeval", {**WORDS, "kwargs": [{"num_words": -9}]}, "'num_words' is -9"),
    "ifeval relation unknown": (
        "ifeval",
        {**WORDS, "kwargs": [{"relation": "about", "num_words": 9}]},
        "'relation' is \"about\"",
    ),
    "ifeval keywords a string": (
        "ifeval",
        {**IFEVAL, "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": "sea"}]},
        "'keywords' is \"sea\"",
    ),
    "ifeval language unknown": (
        "ifeval",
        {**IFEVAL, "instruction_id_list": ["language:response_language"], "kwargs": [{"language": "xx"}]},
        "'language' is \"xx\"",
    ),
}


def _folder(tmp: Path, benchmark: str, row: object) -> Path:
    """A hub-layout copy of the demo items of `benchmark` with `row` as the second row of one file."""
    folder = tmp / benchmark
    shutil.copytree(DEMO_DATA / benchmark, folder)
    rel, _ = FILES[benchmark]
    path = folder / ("main/" + rel if benchmark == "gsm8k" else rel)
    lines = path.read_text().splitlines()
    lines.insert(1, json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_row_names_file_row_and_field(name: str, tmp_path: Path) -> None:
    benchmark, row, needle = BAD[name]
    folder = _folder(tmp_path, benchmark, row)
    rel, subset = FILES[benchmark]
    with pytest.raises(UsageError) as caught:
        sources.read(benchmark, folder, subset)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{rel.split('/')[-1]}:2: " in message, message  # the file and the line of the row
    assert needle in message, (needle, message)


@pytest.mark.parametrize("benchmark", list(FILES))
def test_the_good_rows_pass(benchmark: str, tmp_path: Path) -> None:
    good = {
        "arc": ARC,
        "hellaswag": HELLASWAG,
        "piqa": PIQA,
        "mmlu_pro": MMLU_PRO,
        "gsm8k": GSM8K,
        "bbh": BBH,
    }
    row = good.get(benchmark, {**WORDS, "key": 9, "kwargs": [{"relation": "at least", "num_words": 9}]})
    folder = _folder(tmp_path, benchmark, row)
    _, subset = FILES[benchmark]
    splits = sources.read(benchmark, folder, subset)
    assert any(row.items() <= r.items() for rows in splits.values() for r in rows)


def test_hub_rows_with_every_ifeval_argument_as_none_pass(tmp_path: Path) -> None:
    """The hub's IFEval rows carry every argument name, None where unused; lm-eval drops those."""
    nones = dict.fromkeys(("num_highlights", "relation", "num_words", "keywords", "language", "letter"))
    folder = _folder(tmp_path, "ifeval", {**WORDS, "key": 9, "kwargs": [{**nones, "num_words": 9}]})
    assert len(sources.read("ifeval", folder)["train"]) == 3


def test_duplicate_ifeval_keys_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "ifeval", {**IFEVAL, "key": 1})
    with pytest.raises(UsageError, match=r"train\.jsonl:2: key 1 is also the key of .*train\.jsonl:1"):
        sources.read("ifeval", folder)


def test_a_parquet_row_is_named_by_its_number(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "piqa"
    folder.mkdir()
    rows = [PIQA, {**PIQA, "label": 5}]
    pq.write_table(pa.Table.from_pylist(rows), folder / "validation-00000-of-00001.parquet")
    with pytest.raises(UsageError, match=r"validation-00000-of-00001\.parquet row 2: field 'label' is 5"):
        sources.read("piqa", folder)
    (folder / "validation-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UsageError, match="not a readable parquet file"):
        sources.read("piqa", folder)


def test_too_few_gsm8k_shots(tmp_path: Path) -> None:
    folder = tmp_path / "gsm8k"
    (folder / "main").mkdir(parents=True)
    (folder / "main" / "test.jsonl").write_text(json.dumps(GSM8K) + "\n")
    (folder / "main" / "train.jsonl").write_text((json.dumps(GSM8K) + "\n") * 4)
    assert len(sources.read("gsm8k", folder)["train"]) == 4  # the reader reads them
    with pytest.raises(UsageError, match=r"gsm8k train\): 4 rows, but every item takes 5 few-shot examples"):
        sources.read_for_evaluation("gsm8k", folder)


def test_the_shot_pools_match_the_task_definitions() -> None:
    import re

    tasks = Path(sources.__file__).with_name("tasks")
    for benchmark, (split, shots) in sources.SHOT_POOLS.items():
        text = (tasks / f"smoltulu_{benchmark}.yaml").read_text()
        assert re.search(rf"^fewshot_split: {split}$", text, re.M), benchmark
        assert re.search(rf"^num_fewshot: {shots}$", text, re.M), benchmark


def _benchdata_copy(tmp: Path, benchmark: str) -> Path:
    shutil.copytree(REAL_ITEMS / benchmark, tmp / benchmark)
    return tmp / benchmark


def test_benchdata_layouts_name_the_original_file(tmp_path: Path) -> None:
    arc = _benchdata_copy(tmp_path, "arc")
    path = arc / "arc_challenge_test.llmfoundry.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"query": "Question: q", "choices": ["a", "b"], "gold": -1})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"arc_challenge_test\.llmfoundry\.jsonl:2: field 'gold' is -1"):
        sources.read("arc", arc, "ARC-Challenge")

    piqa = _benchdata_copy(tmp_path, "piqa")
    (piqa / "valid-labels.lst").write_text("0\n1\nx\n1\n")
    with pytest.raises(UsageError, match=r"valid-labels\.lst:3: label 'x' is not 0 or 1"):
        sources.read("piqa", piqa)

    hellaswag = _benchdata_copy(tmp_path, "hellaswag")
    for original in hellaswag.glob("hellaswag_val_original*.jsonl"):  # original rows win: test the conversion
        original.unlink()
    path = hellaswag / "hellaswag_val_full.txt"
    lines = path.read_text().split("\n")
    lines[13] = "7"  # the gold line of the third item
    path.write_text("\n".join(lines))
    with pytest.raises(UsageError, match=r"hellaswag_val_full\.txt:14: the gold line of the item at line 13"):
        sources.read("hellaswag", hellaswag)


def test_a_data_file_that_is_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "piqa"
    folder.mkdir()
    (folder / "validation.jsonl").write_bytes(b'{"goal": "caf\xe9"}\n')
    with pytest.raises(UsageError, match=r"validation\.jsonl: not UTF-8 text \(byte 13"):
        sources.read("piqa", folder)


# ------------------------------------------------------------------ reward-model pairs

RB = {"prompt": "p", "chosen": "a", "rejected": "b", "subset": "alpacaeval-easy"}


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({**RB, "chosen": 5}, "field 'chosen' is 5"),
        ({**RB, "rejected": [{"role": "user"}]}, "field 'rejected'"),
        ({**RB, "rejected": [{"role": "user", "content": "x"}]}, "must end with an assistant turn"),
        ({**RB, "prompt": ["p"]}, "field 'prompt' is [\"p\"]"),
        ({**RB, "subset": None}, "missing column(s) subset"),
        ({k: v for k, v in RB.items() if k != "chosen"}, "missing column(s) chosen"),
        ({**RB, "subset": 3}, "field 'subset' is 3"),
        ({**RB, "id": [1]}, "field 'id' is [1]"),
        ("a string", 'the row is "a string"'),
    ],
)
def test_a_bad_reward_pair_names_file_row_and_field(row: object, needle: str, tmp_path: Path) -> None:
    folder = tmp_path / "rewardbench"
    folder.mkdir()
    first = {**RB, "id": 1} if isinstance(row, dict) and "id" in row else RB
    (folder / "filtered.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UsageError) as caught:
        reward_data.load_pairs("rewardbench", data_dir=tmp_path)
    message = str(caught.value)
    assert "filtered.jsonl:2: " in message and needle in message, message


def test_reward_files_that_are_not_json_or_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "ufb"
    folder.mkdir()
    (folder / "test_prefs.jsonl").write_text(json.dumps(RB) + "\n{oops\n")
    with pytest.raises(UsageError, match=r"test_prefs\.jsonl:2: not JSON"):
        reward_data.load_pairs("ufb", data_dir=tmp_path)
    (folder / "test_prefs.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(UsageError, match=r"test_prefs\.jsonl: not UTF-8"):
        reward_data.load_pairs("ufb", data_dir=tmp_path)
