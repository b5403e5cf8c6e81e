"""The lm-eval task definitions reproduce the SmolLM2/lighteval protocol, on real benchmark items.

Expected prompts are written out by hand from the raw data files and the spec
(../shared/spec/eval-protocol.md), never produced by the code under test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from evalsuite import protocol, sources
from evalsuite.tasks import utils as task_utils  # noqa: F401  (the module lm-eval resolves)

SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


def user(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n"


def assistant(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


GEN = "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def render(tiny_model_dir: Path, benchdata: Path):
    from evalsuite import prompts

    def _render(task: str, limit: int = 1):
        return prompts.requests(task, tokenizer_dir=tiny_model_dir, data_dir=benchdata, limit=limit)

    return _render


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


# --- exact prompts, one known item per benchmark ---------------------------------------------------


def test_arc_challenge_first_item(render, benchdata: Path) -> None:
    reqs = render("smoltulu_arc_challenge")
    raw = _jsonl(benchdata / "arc" / "arc_challenge_test.llmfoundry.jsonl")[0]
    question = raw["query"].removeprefix("Question: ")
    assert question.startswith("An astronomer observes that a planet rotates faster")
    context = SYSTEM + user(f"Question: {question}\nAnswer:") + GEN
    assert [r.args for r in reqs] == [(context, f" {c}") for c in raw["choices"]]
    # The leading space of each choice survives the chat template (lm-eval would drop it).
    assert reqs[0].args[1] == " Planetary density will decrease."


def test_hellaswag_first_item(render) -> None:
    reqs = render("smoltulu_hellaswag")
    # ctx_b "he" capitalised, trailing space kept inside the user turn.
    context = SYSTEM + user("Roof shingle removal: A man is sitting on a roof. He ") + GEN
    assert reqs[0].args == (context, " is using wrap to wrap a pair of skis.")
    assert [r.args[1] for r in reqs][3] == " starts pulling up roofing on a roof."


def test_piqa_first_item(render, benchdata: Path) -> None:
    reqs = render("smoltulu_piqa")
    raw = _jsonl(benchdata / "piqa" / "valid.jsonl")[0]
    context = SYSTEM + user(f"Question: {raw['goal']}\nAnswer:") + GEN
    assert [r.args for r in reqs] == [(context, " " + raw["sol1"]), (context, " " + raw["sol2"])]


def test_mmlu_pro_first_item(render, benchdata: Path) -> None:
    reqs = render("smoltulu_mmlu_pro")
    raw = _jsonl(next((benchdata / "mmlu_pro").glob("test*.jsonl")))[0]
    assert raw["question_id"] == 70 and len(raw["options"]) == 9
    body = (
        "The following are multiple choice questions (with answers) about business.\n\n"
        f"{raw['question']}\n"
        "A. Safe practices, Fear, Jealousy, Trivial\n"
        "B. Unsafe practices, Distress, Joy, Trivial\n"
        "C. Safe practices, Wants, Jealousy, Trivial\n"
        "D. Safe practices, Distress, Fear, Trivial\n"
        "E. Unsafe practices, Wants, Jealousy, Serious\n"
        "F. Safe practices, Distress, Jealousy, Serious\n"
        "G. Safe practices, Wants, Fear, Serious\n"
        "H. Unsafe practices, Wants, Fear, Trivial\n"
        "I. Unsafe practices, Distress, Fear, Serious\n"
        "Answer:"
    )
    # Bare letters, no leading space, as many as the item has options.
    assert [r.args for r in reqs] == [(SYSTEM + user(body) + GEN, letter) for letter in "ABCDEFGHI"]


def test_gsm8k_items_get_fresh_random42_shots(render, benchdata: Path) -> None:
    train = _jsonl(benchdata / "gsm8k" / "train.jsonl")
    test = _jsonl(benchdata / "gsm8k" / "test.jsonl")
    reqs = render("smoltulu_gsm8k", limit=3)
    rng = random.Random(42)  # one generator, one draw of 5 per item in dataset order
    kept = []
    for item, req in zip(test, reqs, strict=False):
        shots = rng.sample(train, 5)
        k = req.args[0].count(GEN) - 1  # the tiny tokenizer is verbose: late shots may not fit 2048
        turns = "".join(
            user(f"Question: {s['question']}\nAnswer:") + assistant(f" {s['answer']}") for s in shots[:k]
        )
        assert req.args[0] == SYSTEM + turns + user(f"Question: {item['question']}\nAnswer:") + GEN
        kept.append(k)
    assert kept[0] == 5 and all(k >= 1 for k in kept)
    assert reqs[0].args[1]["until"] == [] and reqs[0].args[1]["max_gen_toks"] == 256


def test_bbh_shots_are_label_balanced_and_fixed_per_subset(render, benchdata: Path) -> None:
    pool = json.loads((benchdata / "bbh" / "bbh" / "navigate.json").read_text())["examples"]
    reqs = render("smoltulu_bbh_navigate", limit=5)
    # navigate has 145 "No" and 105 "Yes": labels by count, cycled -> No, Yes, No (,Yes).
    for req, item in zip(reqs, pool[:5], strict=True):
        context = req.args[0]
        assert context.startswith(SYSTEM) and context.endswith(
            user(f"Question: {item['input']}\nAnswer: ") + GEN
        )
        answers = [part.split("<|im_end|>")[0] for part in context.split(GEN)[1:-1]]
        assert answers == ["No", "Yes", "No"]
        assert req.args[1]["until"] == []
    # The same shots for every item (chosen once per subset), not a fresh draw per item.
    assert len({r.args[0][: r.args[0].rindex("<|im_start|>user\n")] for r in reqs}) == 1


def test_bbh_evaluated_item_is_never_its_own_shot(benchdata: Path, tiny_model_dir: Path) -> None:
    from evalsuite.prompts import load_task

    task = load_task("smoltulu_bbh_navigate", data_dir=benchdata, tokenizer_dir=tiny_model_dir)
    four = task.sampler._choose(3)
    assert len(four) == 4 and [d["target"] for d in four] == ["No", "Yes", "No", "Yes"]
    assert task.sampler.sample(3, eval_doc=four[1]) == [four[0], four[2], four[3]]
    assert task.sampler.sample(3, eval_doc={"input": "elsewhere", "target": "No"}) == four[:3]


def test_ifeval_first_item_is_the_raw_prompt(render, benchdata: Path) -> None:
    raw = _jsonl(benchdata / "ifeval" / "input_data.jsonl")[0]
    (req,) = render("smoltulu_ifeval")
    assert req.args[0] == SYSTEM + user(raw["prompt"]) + GEN
    assert req.args[1]["max_gen_toks"] == 1280 and req.args[1]["until"] == []


def test_shots_are_dropped_last_first_when_the_context_is_full(benchdata: Path, tiny_model_dir: Path) -> None:
    from evalsuite.prompts import load_task

    task = load_task("smoltulu_gsm8k", data_dir=benchdata, tokenizer_dir=tiny_model_dir)
    doc = task.test_docs()[0]
    task.config.metadata = {**task.config.metadata, "max_length": 2048}
    task.sampler = protocol.FreshRandomShots(list(task.fewshot_docs()))
    full = task.fewshot_context(doc, 5)
    task.sampler = protocol.FreshRandomShots(list(task.fewshot_docs()))
    task.config.metadata = {**task.config.metadata, "max_length": 256 + 900}
    short = task.fewshot_context(doc, 5)
    # Plain-text layout (no chat template passed): shots are question + gold joined by blank lines.
    assert 1 < short.count("Question: ") < full.count("Question: ") == 6
    # The shots that stay are the first ones of the same draw, in order.
    assert full.startswith(short.rsplit(f"Question: {doc['question']}\nAnswer:", 1)[0])


# --- scorers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("So she has 18 left.\n#### 18", "18"),
        ("#### 1,234.", "1234."),  # the trailing full stop stays: strict match fails on it
        ("#### -5 and then #### 7", "-5"),  # the first match counts
        ("#### 72\n\nQuestion: next one", "72"),
        ("The answer is 72.", None),  # no fallback to the last number
        ("####72", None),  # the space after #### is required
    ],
)
def test_gsm8k_extraction(output: str, expected: str | None) -> None:
    assert protocol.gsm8k_extract(output) == expected


def test_gsm8k_gold_outputs_score_100_and_planted_wrong_answers_0(benchdata: Path) -> None:
    docs = _jsonl(benchdata / "gsm8k" / "test.jsonl")
    assert all(protocol.gsm8k_results(d, [d["answer"]])["exact_match"] == 1 for d in docs)
    wrong = [d["answer"].rsplit("####", 1)[0] + "#### 999999" for d in docs]
    assert sum(protocol.gsm8k_results(d, [w])["exact_match"] for d, w in zip(docs, wrong, strict=True)) == 0
    doc = {"answer": "… #### 1234"}
    assert protocol.gsm8k_results(doc, ["#### 1,234"])["exact_match"] == 1
    assert protocol.gsm8k_results(doc, ["#### 1,234."])["exact_match"] == 0
    assert protocol.gsm8k_results(doc, ["1234"])["exact_match"] == 0


def test_bbh_gold_outputs_score_100_and_planted_wrong_answers_0(benchdata: Path) -> None:
    total = 0
    for subset in sources.BBH_SUBSETS:
        docs = json.loads((benchdata / "bbh" / "bbh" / f"{subset}.json").read_text())["examples"]
        assert all(protocol.bbh_results(d, [f"  {d['target']}\n"])["exact_match"] == 1 for d in docs)
        assert all(protocol.bbh_results(d, [d["target"] + " (wrong)"])["exact_match"] == 0 for d in docs)
        total += len(docs)
    assert total == 6511
    doc = {"target": "(A)"}
    assert protocol.bbh_results(doc, ["(A) because it is first"])["exact_match"] == 0  # whole output
    assert protocol.bbh_results({"target": "Yes"}, ["yes"])["exact_match"] == 0  # case-sensitive


def test_acc_norm_nospace_ignores_the_leading_space_and_ties_go_first() -> None:
    choices = [" ab", " abcde"]
    lls = [-3.0, -6.5]  # per char without space: -1.5 vs -1.3; with the space: -1.0 vs -1.08
    assert protocol.acc_norm_nospace(lls, choices, gold=1) == 1
    assert protocol.acc_norm_nospace(lls, choices, gold=0) == 0
    assert protocol.acc_norm_nospace([-2.0, -2.0], [" x", " y"], gold=0) == 1


def test_benchmark_headlines_follow_the_spec() -> None:
    from evalsuite import benchmarks

    items = [{"subtask": "easy", "score": 1}] * 3 + [{"subtask": "easy", "score": 0}] + [
        {"subtask": "challenge", "score": 0}
    ] * 2  # fmt: skip
    assert benchmarks.subtask_mean(items) == pytest.approx((75.0 + 0.0) / 2)  # not 50.0 (pooled)
    ife = [
        {"metrics": {"prompt_strict": 1, "prompt_loose": 1, "inst_strict": [1, 1], "inst_loose": [1, 1]}},
        {
            "metrics": {
                "prompt_strict": 0,
                "prompt_loose": 1,
                "inst_strict": [1, 0, 0],
                "inst_loose": [1, 1, 1],
            }
        },
    ]
    scores = benchmarks.ifeval_scores(ife)
    assert scores["prompt_level_strict"] == 50.0 and scores["inst_level_strict"] == pytest.approx(60.0)
    assert scores["average_strict"] == pytest.approx(55.0) and scores["average_loose"] == 100.0


# --- data ------------------------------------------------------------------------------------------

SPEC_ROWS = {  # ../shared/spec/eval-protocol.md, "Per benchmark"
    ("arc", "ARC-Easy", "test"): 2376,
    ("arc", "ARC-Challenge", "test"): 1172,
    ("hellaswag", None, "validation"): 10042,
    ("piqa", None, "validation"): 1838,
    ("mmlu_pro", None, "test"): 12032,
    ("gsm8k", None, "test"): 1319,
    ("gsm8k", None, "train"): 7473,
    ("ifeval", None, "train"): 541,
}


@pytest.mark.parametrize(("benchmark", "subset", "split"), list(SPEC_ROWS))
def test_row_counts_equal_the_spec(benchdata: Path, benchmark: str, subset: str | None, split: str) -> None:
    rows = sources.read(benchmark, benchdata / benchmark, subset)[split]
    assert len(rows) == SPEC_ROWS[(benchmark, subset, split)]


def test_bbh_has_27_subsets_and_6511_rows(benchdata: Path) -> None:
    assert len(sources.BBH_SUBSETS) == 27
    assert sum(len(sources.read("bbh", benchdata / "bbh", s)["train"]) for s in sources.BBH_SUBSETS) == 6511


def test_hub_layout_is_read_too(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "gsm8k" / "main"
    folder.mkdir(parents=True)
    for split in ("test", "train"):
        rows = [{"question": f"{split} q{i}", "answer": f"#### {i}"} for i in range(3)]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")
    got = sources.read("gsm8k", tmp_path / "gsm8k")
    assert [r["question"] for r in got["test"]] == ["test q0", "test q1", "test q2"]


def test_generated_bbh_task_files_are_in_sync() -> None:
    from tools.gen_bbh_tasks import TASKS, render

    files = {p.name: p.read_text() for p in TASKS.glob("smoltulu_bbh_*.yaml")}
    assert files == {f"smoltulu_bbh_{s}.yaml": render(s) for s in sources.BBH_SUBSETS}
