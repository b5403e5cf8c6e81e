"""The lm-eval task definitions reproduce the SmolLM2/lighteval protocol, on real benchmark items.

Expected prompts are written out by hand from the raw data files and the spec
(../shared/spec/eval-protocol.md), never produced by the code under test. Prompts and scorers
run on the first rows kept in tests/fixtures/benchdata (`real_items`); what depends on whole
files (row counts, BBH's shot pool, lighteval's GSM8K shots) needs ../shared/benchdata.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.harness import lm_run, protocol, sources
from evalsuite.harness.tasks import utils as task_utils  # noqa: F401  (the module lm-eval resolves)

SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


def user(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n"


def assistant(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


GEN = "<|im_start|>assistant\n"


def _renderer(tiny_model_dir: Path, data_dir: Path):
    from evalsuite.harness import prompts

    def _render(task: str, limit: int = 1):
        return prompts.requests(task, tokenizer_dir=tiny_model_dir, data_dir=data_dir, limit=limit)

    return _render


@pytest.fixture(scope="module")
def render(tiny_model_dir: Path, real_items: Path):
    """Requests on the fixture's first rows: for prompts that do not depend on the rest of the file."""
    return _renderer(tiny_model_dir, real_items)


@pytest.fixture(scope="module")
def render_full(tiny_model_dir: Path, benchdata: Path):
    """Requests on the whole files: for shots, which are drawn from the whole pool."""
    return _renderer(tiny_model_dir, benchdata)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


# --- exact prompts, one known item per benchmark ---------------------------------------------------


def test_arc_challenge_first_item(render, real_items: Path) -> None:
    reqs = render("smoltulu_arc_challenge")
    raw = _jsonl(real_items / "arc" / "arc_challenge_test.llmfoundry.jsonl")[0]
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


def test_piqa_first_item(render, real_items: Path) -> None:
    reqs = render("smoltulu_piqa")
    raw = _jsonl(real_items / "piqa" / "valid.jsonl")[0]
    context = SYSTEM + user(f"Question: {raw['goal']}\nAnswer:") + GEN
    assert [r.args for r in reqs] == [(context, " " + raw["sol1"]), (context, " " + raw["sol2"])]


def test_mmlu_pro_first_item(render, real_items: Path) -> None:
    reqs = render("smoltulu_mmlu_pro")
    raw = _jsonl(next((real_items / "mmlu_pro").glob("test*.jsonl")))[0]
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


# lighteval ea46419a's shots for GSM8K test items, as indices into train.jsonl. Derived once, not
# by the code under test, with a literal transcription of lighteval's code on the real files:
#   docs = list(test); rnd = random.Random(); rnd.seed(42); rnd.shuffle(docs)
#   for d in docs: shots[test.index(d)] = [train.index(x) for x in rnd.sample(train, 5)]
# (create_requests_from_tasks shuffles the eval docs, then FewShotSampler's
# random_sampling_from_train calls sampler.sample(pool, 5) with that same rnd, item by item.)
LIGHTEVAL_GSM8K_SHOTS = {
    0: [1946, 403, 6109, 3892, 2200],
    1: [6851, 5067, 2916, 1277, 6381],
    2: [4624, 5267, 5204, 5116, 2647],
    1318: [5970, 3414, 4955, 5288, 731],
}


def _gsm8k_turns(shots: list[dict]) -> str:
    return "".join(user(f"Question: {s['question']}\nAnswer:") + assistant(f" {s['answer']}") for s in shots)


def test_gsm8k_items_get_lightevals_shots_in_lightevals_order(render_full, benchdata: Path) -> None:
    train = _jsonl(benchdata / "gsm8k" / "train.jsonl")
    test = _jsonl(benchdata / "gsm8k" / "test.jsonl")
    reqs = render_full("smoltulu_gsm8k", limit=3)
    kept = []
    for i, (item, req) in enumerate(zip(test, reqs, strict=False)):
        shots = [train[j] for j in LIGHTEVAL_GSM8K_SHOTS[i]]
        k = req.args[0].count(GEN) - 1  # the tiny tokenizer is verbose: late shots may not fit 2048
        question = user(f"Question: {item['question']}\nAnswer:")
        assert req.args[0] == SYSTEM + _gsm8k_turns(shots[:k]) + question + GEN
        kept.append(k)
    assert kept[0] >= 3 and all(k >= 1 for k in kept)
    # lighteval's stop sequences and generation size for GSM8K (smollm tasks.py).
    assert reqs[0].args[1]["until"] == ["Question:", "Question"] and reqs[0].args[1]["max_gen_toks"] == 256


def test_gsm8k_last_item_shots_do_not_depend_on_the_items_evaluated(
    benchdata: Path, tiny_model_dir: Path
) -> None:
    from evalsuite.harness.prompts import load_task

    task = load_task("smoltulu_gsm8k", data_dir=benchdata, tokenizer_dir=tiny_model_dir)
    docs = list(task.test_docs())
    train = list(task.fewshot_docs())
    for row, expected in LIGHTEVAL_GSM8K_SHOTS.items():
        got = task.sampler.sample(5, eval_doc=docs[row])
        assert [train.index(d) for d in got] == expected


def test_fewshot_budget_counts_the_chat_templated_prompt_and_generation_size(
    benchdata: Path, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    from evalsuite.harness import prompts

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = _jsonl(benchdata / "gsm8k" / "train.jsonl")
    item = _jsonl(benchdata / "gsm8k" / "test.jsonl")[0]
    shots = [train[j] for j in LIGHTEVAL_GSM8K_SHOTS[0]]
    question = user(f"Question: {item['question']}\nAnswer:")
    rendered = [SYSTEM + _gsm8k_turns(shots[:k]) + question + GEN for k in range(6)]
    tokens = [len(tok(r)["input_ids"]) for r in rendered]

    def bare(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    # Counting only the questions and answers (no chat template), four shots would fit this
    # limit; counting the whole rendered prompt, as lighteval does, only three do.
    untemplated_4 = bare(f"Question: {item['question']}\nAnswer:") + sum(
        bare(f"Question: {s['question']}\nAnswer:") + bare(f" {s['answer']}") for s in shots[:4]
    )
    limit = untemplated_4 + 256
    assert tokens[4] + 256 > limit >= tokens[3] + 256
    prompts.task_manager.cache_clear()
    old = lm_run.MAX_LENGTH
    lm_run.MAX_LENGTH = limit
    try:
        (req,) = prompts.requests("smoltulu_gsm8k", tokenizer_dir=tiny_model_dir, data_dir=benchdata, limit=1)
    finally:
        lm_run.MAX_LENGTH = old
        prompts.task_manager.cache_clear()
    assert req.args[0] == rendered[3]


def test_bbh_shots_are_label_balanced_and_fixed_per_subset(render_full, benchdata: Path) -> None:
    pool = json.loads((benchdata / "bbh" / "bbh" / "navigate.json").read_text())["examples"]
    reqs = render_full("smoltulu_bbh_navigate", limit=5)
    # navigate has 145 "No" and 105 "Yes": labels by count, cycled -> No, Yes, No (,Yes).
    for req, item in zip(reqs, pool[:5], strict=True):
        context = req.args[0]
        assert context.startswith(SYSTEM) and context.endswith(
            user(f"Question: {item['input']}\nAnswer: ") + GEN
        )
        answers = [part.split("<|im_end|>")[0] for part in context.split(GEN)[1:-1]]
        assert answers == ["No", "Yes", "No"]
        assert req.args[1]["until"] == ["Question:", "Question"]
    # The same shots for every item (chosen once per subset), not a fresh draw per item.
    assert len({r.args[0][: r.args[0].rindex("<|im_start|>user\n")] for r in reqs}) == 1


def test_bbh_evaluated_item_is_never_its_own_shot(benchdata: Path, tiny_model_dir: Path) -> None:
    from evalsuite.harness.prompts import load_task

    task = load_task("smoltulu_bbh_navigate", data_dir=benchdata, tokenizer_dir=tiny_model_dir)
    four = task.sampler._choose(3)
    assert len(four) == 4 and [d["target"] for d in four] == ["No", "Yes", "No", "Yes"]
    assert task.sampler.sample(3, eval_doc=four[1]) == [four[0], four[2], four[3]]
    assert task.sampler.sample(3, eval_doc={"input": "elsewhere", "target": "No"}) == four[:3]


def test_ifeval_first_item_is_the_raw_prompt(render, real_items: Path) -> None:
    raw = _jsonl(real_items / "ifeval" / "input_data.jsonl")[0]
    (req,) = render("smoltulu_ifeval")
    assert req.args[0] == SYSTEM + user(raw["prompt"]) + GEN
    # lighteval's ifeval has no stop sequence: EOS (added by the runner) or 1280 tokens.
    assert req.args[1]["max_gen_toks"] == 1280 and req.args[1]["until"] == []


def test_bbh_generates_until_the_context_is_full(render, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for req in render("smoltulu_bbh_word_sorting", limit=3):
        # lighteval leaves BBH's generation_size unset: vLLM generates up to max_model_len 2048.
        assert req.args[1]["max_gen_toks"] == 2048 - len(tok(req.args[0])["input_ids"])


def test_shots_are_dropped_last_first_when_the_context_is_full(
    real_items: Path, tiny_model_dir: Path
) -> None:
    from evalsuite.harness.prompts import load_task

    task = load_task("smoltulu_gsm8k", data_dir=real_items, tokenizer_dir=tiny_model_dir)
    doc = task.test_docs()[0]
    task.config.metadata = {**task.config.metadata, "max_length": 2048}
    full = task.fewshot_context(doc, 5)
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


# Gold outputs on the fixture's items always; on every item when the whole files are present.
DATA = pytest.mark.parametrize("data", ["real_items", "benchdata"])


@DATA
def test_gsm8k_gold_outputs_score_100_and_planted_wrong_answers_0(
    data: str, request: pytest.FixtureRequest
) -> None:
    docs = _jsonl(request.getfixturevalue(data) / "gsm8k" / "test.jsonl")
    assert all(protocol.gsm8k_results(d, [d["answer"]])["exact_match"] == 1 for d in docs)
    wrong = [d["answer"].rsplit("####", 1)[0] + "#### 999999" for d in docs]
    assert sum(protocol.gsm8k_results(d, [w])["exact_match"] for d, w in zip(docs, wrong, strict=True)) == 0
    doc = {"answer": "… #### 1234"}
    assert protocol.gsm8k_results(doc, ["#### 1,234"])["exact_match"] == 1
    assert protocol.gsm8k_results(doc, ["#### 1,234."])["exact_match"] == 0
    assert protocol.gsm8k_results(doc, ["1234"])["exact_match"] == 0


@DATA
def test_bbh_gold_outputs_score_100_and_planted_wrong_answers_0(
    data: str, request: pytest.FixtureRequest
) -> None:
    folder = request.getfixturevalue(data)
    total = 0
    for subset in sources.BBH_SUBSETS:
        docs = json.loads((folder / "bbh" / "bbh" / f"{subset}.json").read_text())["examples"]
        assert all(protocol.bbh_results(d, [f"  {d['target']}\n"])["exact_match"] == 1 for d in docs)
        assert all(protocol.bbh_results(d, [d["target"] + " (wrong)"])["exact_match"] == 0 for d in docs)
        total += len(docs)
    if data == "benchdata":
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
    # Exactly one leading space is discounted (lighteval: len - 1 if choice[0] == " "):
    # "  abc" counts 4 characters (-1.0 each), not 3 (-1.33), so it beats " abcd" (-1.1).
    assert protocol.acc_norm_nospace([-4.0, -4.4], ["  abc", " abcd"], gold=0) == 1
    assert protocol.acc_norm_nospace([-4.0, -4.4], ["  abc", " abcd"], gold=1) == 0


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


def test_real_items_fixture_reads_like_the_full_folder(real_items: Path) -> None:
    """Every benchmark and subset loads from tests/fixtures/benchdata, with enough rows for the
    tests and runs that use it: BBH 3 shots + the item, GSM8K 5 shots and 6 test items."""
    for benchmark in sources.READERS:
        for subset in sources.subsets(benchmark):
            splits = sources.read(benchmark, real_items / benchmark, subset)
            assert all(len(rows) >= 4 for rows in splits.values()), (benchmark, subset)
    gsm8k = sources.read("gsm8k", real_items / "gsm8k")
    assert len(gsm8k["train"]) >= 5 and len(gsm8k["test"]) >= 6
    keys = {row["key"] for row in sources.read("ifeval", real_items / "ifeval")["train"]}
    assert keys >= {1000, 1001, 1019, 1128, 1262, 1268, 1322}  # the items tests/test_ifeval.py scores


def test_fixture_rows_are_the_first_rows_of_the_full_files(real_items: Path, benchdata: Path) -> None:
    """tests/fixtures/benchdata cannot drift: each data file is a byte prefix of the file at the same
    path in the full folder (whole lines; for BBH the document cut after an example), each licence
    file a copy, and the readers see the full folder's first rows."""
    files = sorted(p for p in real_items.rglob("*") if p.is_file() and p.name != "README.md")
    files = [p for p in files if ".selected." not in p.name]  # chosen rows: tests/test_original_data.py
    assert len(files) > 27
    for path in files:
        rel = path.relative_to(real_items)
        few, whole = path.read_bytes(), (benchdata / rel).read_bytes()
        if path.name.startswith("LICENSE"):
            assert few == whole, rel
        elif path.suffix == ".json":  # {"canary": …, "examples": [first examples]}, as json.dumps writes it
            assert few == json.dumps(json.loads(few)).encode() and few.endswith(b"}]}"), rel
            cut = len(few) - 2
            assert whole.startswith(few[:cut]) and whole[cut : cut + 2] in (b", ", b"]}"), rel
        else:
            assert few.endswith(b"\n") and whole.startswith(few), rel
    for benchmark in sources.READERS:
        for subset in sources.subsets(benchmark):
            few_rows = sources.read(benchmark, real_items / benchmark, subset)
            all_rows = sources.read(benchmark, benchdata / benchmark, subset)
            for split, rows in few_rows.items():
                assert rows == all_rows[split][: len(rows)], (benchmark, subset, split)


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
    from tools.gen_bbh_tasks import TASKS, render, render_group

    files = {p.name: p.read_text() for p in TASKS.glob("smoltulu_bbh_*.yaml")}
    assert files == {f"smoltulu_bbh_{s}.yaml": render(s) for s in sources.BBH_SUBSETS}
    assert (TASKS / "smoltulu_bbh.yaml").read_text() == render_group()


# --- what generation stops at ----------------------------------------------------------------------


def test_stop_ids_are_the_tokenizer_eos_and_the_generation_config_eos(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    eos = AutoTokenizer.from_pretrained(model).eos_token_id
    (model / "generation_config.json").unlink(missing_ok=True)
    assert lm_run.stop_token_ids(model) == [eos]
    # SmolTulu-1.7b-Instruct's generation_config declares eos id 0 (<|endoftext|>).
    GenerationConfig(eos_token_id=0).save_pretrained(model)
    assert lm_run.stop_token_ids(model) == sorted({0, eos})
    GenerationConfig(eos_token_id=[0, 7]).save_pretrained(model)
    assert lm_run.stop_token_ids(model) == sorted({0, 7, eos})


def test_both_backends_get_the_stop_ids(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lm_eval.api.instance import Instance

    from evalsuite.harness.resumable import ResumableLM

    hf = SimpleNamespace(model=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=2)))
    assert lm_run.apply_stop_ids(hf, "hf", [0, 2]) == {}
    assert hf.model.generation_config.eos_token_id == [0, 2]  # HF generate stops at any of them

    seen: list = []

    class Inner:
        def generate_until(self, requests, disable_tqdm=False):
            seen.extend(r.args for r in requests)
            return ["x"] * len(requests)

    extra = lm_run.apply_stop_ids(Inner(), "vllm", [0, 2])
    lm = ResumableLM(Inner(), tmp_path / "cache.jsonl", fingerprint="f", gen_extra=extra, progress=False)
    req = Instance("generate_until", {}, ("ctx", {"until": ["Question:"]}), 0)
    assert lm.generate_until([req]) == ["x"]
    # vLLM's SamplingParams gets stop_token_ids; the cached request keeps its task arguments.
    assert seen == [("ctx", {"until": ["Question:"], "stop_token_ids": [0, 2]})]
    assert req.args == ("ctx", {"until": ["Question:"]})


def test_protocol_version_is_part_of_the_cache_fingerprint(monkeypatch, tiny_model_dir: Path) -> None:
    from core.resolve import Resolved
    from evalsuite import results

    res = Resolved(path=tiny_model_dir, source="local", name=None, repo_id=None, revision=None)
    now = lm_run._fingerprint(res, "hf", "float32")
    monkeypatch.setattr(results, "PROTOCOL", "smollm2-lighteval/1")
    assert lm_run._fingerprint(res, "hf", "float32") != now
