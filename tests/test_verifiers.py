"""RLVR verifiers (repro/verifiers.py): a correct, a wrong and a truncated response per verifier, on
rows in the schema of allenai/RLVR-GSM-MATH-IF-Mixed-Constraints, plus every Tulu 3 IF constraint.

Expected values come from the task, not from the code: GSM8K answers are the real items' golds
(tests/fixtures/benchdata/gsm8k, the number after `####`, as the RLVR set stores it), MATH answers
are worked by hand, IFEval responses are written to follow or break the stated constraint; the
default IFEval rewards are the ones open-instruct 816dcbf's if_functions.py gives, worked out by
reading that code (OPEN_INSTRUCT_CASES).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UsageError
from repro import verifiers

ROOT = Path(__file__).resolve().parents[1]
SMOKE_ROWS = ROOT / "repro" / "data" / "smoke" / "rlvr.jsonl"
PENALTY = -10.0  # the card's reward for an incomplete generation
USER = {"role": "user", "content": "q"}

# Tulu 3's constraint functions (open-instruct 816dcbf, open_instruct/if_functions.py IF_FUNCTIONS_MAP).
TULU3_IF_FUNCTIONS = {
    "verify_keywords", "verify_keyword_frequency", "validate_forbidden_words", "verify_letter_frequency",
    "validate_response_language", "verify_paragraph_count", "validate_word_constraint",
    "verify_sentence_constraint", "validate_paragraphs", "verify_postscript", "validate_placeholders",
    "verify_bullet_points", "validate_title", "validate_choice", "validate_highlighted_sections",
    "validate_sections", "validate_json_format", "validate_repeat_prompt", "validate_two_responses",
    "validate_uppercase", "validate_lowercase", "validate_frequency_capital_words", "validate_end",
    "validate_quotation", "validate_no_commas",
}  # fmt: skip
# Every row of the IF subset carries all argument names, unused ones null (the data card's viewer).
NULLS = dict.fromkeys(
    ("N", "quantifier", "end_phrase", "keyword_list", "word", "forbidden_words", "letter", "i", "first_word",
     "postscript_marker", "options", "section_splitter", "original_prompt"),
)  # fmt: skip


def if_row(func_name: str, prompt: str = "Write something.", **arguments: object) -> dict:
    truth = json.dumps({"func_name": func_name, **NULLS, **arguments})
    return {"messages": [{"role": "user", "content": prompt}], "ground_truth": truth, "dataset": "ifeval"}


def score(
    row: dict, response: str, truncated: bool = False, ifeval_reward: str = verifiers.OPEN_INSTRUCT
) -> float:
    return verifiers.reward(
        response, row["ground_truth"], row["dataset"], truncated=truncated, penalty=PENALTY,
        prompt=verifiers.prompt_text(row["messages"]), ifeval_reward=ifeval_reward,
    )  # fmt: skip


def _gsm8k_items() -> list[dict]:
    files = sorted((ROOT / "tests" / "fixtures" / "benchdata" / "gsm8k").rglob("*.jsonl"))
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    assert rows, "tests/fixtures/benchdata/gsm8k holds real GSM8K items"
    return rows


# --- GSM8K ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", _gsm8k_items()[:3])
def test_gsm8k_real_items(item: dict) -> None:
    gold = item["answer"].split("####")[-1].strip().replace(",", "")
    row = {
        "messages": [{"role": "user", "content": item["question"]}],
        "ground_truth": gold,
        "dataset": "gsm8k",
    }
    solution = item["answer"]  # the reference solution ends "#### <gold>": its last number is the answer
    assert score(row, solution) == 10.0
    wrong = solution.rsplit("####", 1)[0] + f"#### {int(gold) + 1}"
    assert score(row, wrong) == 0.0
    assert score(row, solution, truncated=True) == PENALTY


def test_gsm8k_follows_tulu3_not_the_eval_extraction() -> None:
    row = {"messages": [], "ground_truth": "1234", "dataset": "gsm8k"}
    # no "#### N" at all (the evaluation would score nothing); Tulu 3 takes the last number
    assert score(row, "She ends with 1,234 apples.") == 10.0
    assert score(row, "She had 1234 apples, then 1300.") == 0.0
    # Tulu 3's number pattern keeps a sign only on decimals: "-7" reads as 7
    assert verifiers.gsm8k_answer("The change is -7") == "7"
    assert verifiers.gsm8k_answer("<|user|>\nWhat is 2+2?\n<|assistant|>\nIt is 4.") == "4"


# --- MATH -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "response"),
    [
        (r"\frac{3}{4}", r"Adding gives $\frac{2}{4}+\frac{1}{4}=\boxed{\dfrac{3}{4}}$."),  # dfrac = frac
        (r"\frac{3}{4}", r"So the sum is $\boxed{0.75}$."),  # sympy: 0.75 - 3/4 = 0
        ("4", "Final Answer: The final answer is $4$. I hope it is correct."),  # Minerva sentence
        ("12", r"The root is $\sqrt{144} = 12$ and that is $12$"),  # last $...$ pair
        ("4x", r"Expanding, the difference is $\boxed{4x}$."),
    ],
)
def test_math_correct(truth: str, response: str) -> None:
    row = {"messages": [], "ground_truth": truth, "dataset": "MATH"}
    assert score(row, response) == 10.0
    assert score(row, response, truncated=True) == PENALTY


@pytest.mark.parametrize(
    ("truth", "response"),
    [
        (r"\frac{3}{4}", r"So the sum is $\boxed{\frac{2}{3}}$."),
        ("4", "Final Answer: The final answer is $5$. I hope it is correct."),
        ("720", "I am not sure."),
    ],
)
def test_math_wrong(truth: str, response: str) -> None:
    assert score({"messages": [], "ground_truth": truth, "dataset": "MATH"}, response) == 0.0


def test_minerva_normalisation_as_tulu3() -> None:
    # appendix D: units and \text removed, shorthand fractions braced, thousands commas dropped
    assert verifiers.normalize_final_answer(r"\text{5 inches}") == "5"
    assert verifiers.normalize_final_answer(r"\frac12") == r"\frac{1}{2}"
    assert verifiers.normalize_final_answer("1,000") == "1000"
    assert verifiers.normalize_final_answer("x = 3") == "3"


def test_sympy_equivalence_needs_the_antlr_runtime() -> None:
    # without antlr4-python3-runtime 4.11 every comparison would silently be "not equal"
    assert verifiers.sympy_equivalent(r"\frac{1}{2}", "0.5")
    assert not verifiers.sympy_equivalent(r"\frac{1}{2}", "0.6")


# --- IFEval ---------------------------------------------------------------------------------------


def test_every_tulu3_constraint_has_checkers() -> None:
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    from repro import if_rewards

    assert set(verifiers.IFEVAL_INSTRUCTIONS) == TULU3_IF_FUNCTIONS == set(if_rewards.FUNCTIONS)
    assert set(verifiers.IFEVAL_DIFFERENCES) <= TULU3_IF_FUNCTIONS
    for name, translate in verifiers.IFEVAL_INSTRUCTIONS.items():
        args = {
            "N": 3, "quantifier": "around", "keyword_list": ["a"], "word": "a", "forbidden_words": ["b"],
            "letter": "a", "language": "en", "i": 1, "first_word": "Hi", "postscript_marker": "P.S.",
            "options": "yes/no", "section_splitter": "Section", "original_prompt": "Hi", "end_phrase": "Bye",
        }  # fmt: skip
        for instruction_id, _ in translate(args):
            if instruction_id != verifiers.STAR_PARAGRAPHS:  # the one rule IFEval has no checker for
                assert instruction_id in INSTRUCTION_DICT, (name, instruction_id)


LOREM = "The river runs through the valley and feeds the fields"
# The "eval-checkers" reward (lm-eval's IFEval checkers, `--override ifeval_reward=eval-checkers`):
# (Tulu 3 function, its arguments, a response that follows the constraint, one that does not)
IF_CASES = [
    ("verify_keywords", {"keyword_list": ["night", "rest"]}, "Rest well at night.", "Sleep well."),
    ("verify_keyword_frequency", {"word": "tea", "N": 2}, "Tea is good. I like tea.", "Tea is good."),
    ("validate_forbidden_words", {"forbidden_words": ["cat"]}, "Dogs bark.", "The cat sleeps."),
    ("verify_letter_frequency", {"letter": "z", "N": 2}, "zoo zebra", "zoo"),
    ("validate_response_language", {"language": "en"}, f"{LOREM} every spring.",
     "Der Fluss fließt durch das Tal und versorgt die Felder im Frühling."),
    ("verify_paragraph_count", {"N": 2}, "First part.\n* * *\nSecond part.", "Only one part."),
    ("validate_word_constraint", {"N": 5, "quantifier": "at most"}, "Rivers carry water.", LOREM),
    ("validate_word_constraint", {"N": 10, "quantifier": "at least"}, LOREM + " today.", "Too short."),
    ("validate_word_constraint", {"N": 10, "quantifier": "around"}, LOREM + " today.", "Too short."),
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"}, "One sentence here.",
     "One sentence. Two sentences. Three."),
    ("validate_paragraphs", {"N": 2, "i": 2, "first_word": "Second"}, "First one.\n\nSecond one.",
     "First one.\n\nThird one."),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. See you.", "Hello."),
    ("validate_placeholders", {"N": 2}, "Send it to [name] at [address].", "Send it to me."),
    ("verify_bullet_points", {"N": 2}, "* one\n* two", "* one"),
    ("validate_title", {}, "<<Sea>>\nWaves.", "Waves."),
    ("validate_choice", {"options": "yes/no/maybe"}, "My answer is yes.", "Certainly."),
    ("validate_choice", {"options": "I know or I don't know"}, "I don't know.", "Perhaps."),
    ("validate_highlighted_sections", {"N": 2}, "*one* and *two*", "*one* only"),
    ("validate_sections", {"N": 2, "section_splitter": "Section"}, "Section 1\nA\nSection 2\nB",
     "Section 1\nA"),
    ("validate_json_format", {}, '{"a": 1}', "a: 1"),
    ("validate_repeat_prompt", {"original_prompt": "Name a colour."}, "Name a colour. Blue.", "Blue."),
    ("validate_two_responses", {}, "Blue.\n******\nRed.", "Blue."),
    ("validate_uppercase", {}, LOREM.upper() + " EVERY SPRING.", LOREM + " every spring."),
    ("validate_lowercase", {}, "hello there", "Hello there"),
    ("validate_frequency_capital_words", {"N": 2, "quantifier": "at least"}, "NASA and ESA agree.",
     "Nasa agrees."),
    ("validate_frequency_capital_words", {"N": 1, "quantifier": "around"}, "Only NASA.", "NASA and ESA."),
    ("validate_end", {"end_phrase": "That is all."}, "Blue. That is all.", "That is all. Blue."),
    ("validate_quotation", {}, '"Blue."', "Blue."),
    ("validate_no_commas", {}, "Red and blue", "Red, blue"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "arguments", "follows", "breaks"), IF_CASES)
def test_ifeval_checker_constraint(name: str, arguments: dict, follows: str, breaks: str) -> None:
    prompt = arguments.get("original_prompt", "Write something.")
    row = if_row(name, f"{prompt} (constraint)", **arguments)
    assert verifiers.row_problem(row, verifiers.EVAL_CHECKERS) is None
    assert score(row, follows, ifeval_reward=verifiers.EVAL_CHECKERS) == 10.0
    assert score(row, breaks, ifeval_reward=verifiers.EVAL_CHECKERS) == 0.0
    assert score(row, follows, truncated=True, ifeval_reward=verifiers.EVAL_CHECKERS) == PENALTY


CHOICES = "yes/no/maybe"
# The default reward, open-instruct 816dcbf's if_functions.py as ground_truth_utils.verify_ifeval_sample
# calls it. Each expected value was worked out by reading that code (and, for the last column, lm-eval's
# checker in lm_eval/tasks/ifeval/instructions.py), never by running the code under test:
# (function, arguments, response, open-instruct's reward, the eval checkers' reward)
OPEN_INSTRUCT_CASES = [
    # all(k.lower() in text.lower()): substrings, so "interesting" holds "rest"
    ("verify_keywords", {"keyword_list": ["night", "rest"]}, "Rest well at night.", 10, 10),
    ("verify_keywords", {"keyword_list": ["night", "rest"]}, "Interesting nights.", 10, 10),
    ("verify_keywords", {"keyword_list": ["night", "rest"]}, "Sleep well.", 0, 0),
    ("verify_keywords", {"keyword_list": ["$5"]}, "It costs $5.", 10, 0),  # lm-eval: a regex, "$" an anchor
    # re.findall(r"\b\w+\b") words equal to the word, exactly N; lm-eval counts regex hits ("team")
    ("verify_keyword_frequency", {"word": "tea", "N": 2}, "Tea is good. I like tea.", 10, 10),
    ("verify_keyword_frequency", {"word": "tea", "N": 2}, "Tea, team and tea.", 10, 0),
    ("verify_keyword_frequency", {"word": "tea", "N": 2}, "Tea is good.", 0, 0),
    # substrings, case-insensitive; lm-eval: whole words
    ("validate_forbidden_words", {"forbidden_words": ["cat"]}, "Dogs bark.", 10, 10),
    ("validate_forbidden_words", {"forbidden_words": ["cat"]}, "A category.", 0, 10),
    # text.count(letter) == N, case-sensitive; lm-eval lower-cases
    ("verify_letter_frequency", {"letter": "z", "N": 2}, "zoo zebra", 10, 10),
    ("verify_letter_frequency", {"letter": "z", "N": 2}, "Zoo zebra", 0, 10),
    # langdetect.detect(text) == language; no letters: detect raises (open-instruct's run would stop,
    # scored 0 here), lm-eval counts it followed
    ("validate_response_language", {"language": "en"}, f"{LOREM} every spring.", 10, 10),
    ("validate_response_language", {"language": "en"},
     "Der Fluss fließt durch das Tal und versorgt die Felder im Frühling.", 0, 0),
    ("validate_response_language", {"language": "en"}, "12345", 0, 10),
    # lines stripped, split on "* * *", every part non-empty, N parts (both rewards run this rule)
    ("verify_paragraph_count", {"N": 2}, "First part.\n* * *\nSecond part.", 10, 10),
    ("verify_paragraph_count", {"N": 2}, "First.\n* * *\n* * *\nSecond.", 0, 0),
    # whitespace tokens; around: |count - N| <= max(round(N * 0.1), 1), round(2.5) == 2
    ("validate_word_constraint", {"N": 5, "quantifier": "at most"}, "Rivers carry water.", 10, 10),
    ("validate_word_constraint", {"N": 25, "quantifier": "around"}, " ".join(["w"] * 27), 10, 10),
    ("validate_word_constraint", {"N": 25, "quantifier": "around"}, " ".join(["w"] * 28), 0, 0),
    ("validate_word_constraint", {"N": 2, "quantifier": "at most"}, "Hello , world", 0, 10),  # ","
    ("validate_word_constraint", {"N": 2, "quantifier": "nearly"}, "Hello", 0, None),  # unknown: False
    # pieces split at whitespace after "." or "?" (not "!", not after "Dr.")
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"}, "One sentence here.", 10, 10),
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"}, "Dr. Smith came.", 10, 10),
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"}, "I came! I saw!", 10, 0),
    ("verify_sentence_constraint", {"N": 1, "quantifier": "at most"}, "I came. I saw?", 0, 0),
    # split on "\n\n", exactly N pieces (empty ones too), the i-th stripped starts with first_word
    ("validate_paragraphs", {"N": 2, "i": 2, "first_word": "Second"}, "First one.\n\nSecond one.", 10, 10),
    ("validate_paragraphs", {"N": 2, "i": 2, "first_word": "Second"}, "First.\n\nSecondly, two.", 10, 0),
    ("validate_paragraphs", {"N": 2, "i": 2, "first_word": "Second"}, "First.\n\n\n\nSecond one.", 0, 0),
    # the marker anywhere, case-sensitive, with text after it; lm-eval: a line starting with it, any case
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. See you.", 10, 10),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hello.\np.s. see you.", 0, 10),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hello.", 0, 0),
    # returns (bool, list): a non-empty tuple, always true to the caller
    ("validate_placeholders", {"N": 2}, "Send it to [name] at [address].", 10, 10),
    ("validate_placeholders", {"N": 2}, "Send it to me.", 10, 0),
    # lines whose stripped text starts with "*" or "-", exactly N; lm-eval: "*" not followed by "*"
    ("verify_bullet_points", {"N": 2}, "* one\n* two", 10, 10),
    ("verify_bullet_points", {"N": 2}, "* one\n**Note**", 10, 0),
    ("verify_bullet_points", {"N": 2}, "* one", 0, 0),
    # any <<...>> on one line, even empty; lm-eval: a non-blank title
    ("validate_title", {}, "<<Sea>>\nWaves.", 10, 10),
    ("validate_title", {}, "<<>> Waves.", 10, 0),
    ("validate_title", {}, "Waves.", 0, 0),
    # `text in option` for each option: the options are one text, so each option is one character
    ("validate_choice", {"options": CHOICES}, "My answer is yes.", 0, 10),
    ("validate_choice", {"options": CHOICES}, "y", 10, 0),
    ("validate_choice", {"options": CHOICES}, "", 10, 0),
    # re.findall(r"\*(.*?)\*") >= N: "**one**" is two empty spans; lm-eval counts one bold span
    ("validate_highlighted_sections", {"N": 2}, "*one* and *two*", 10, 10),
    ("validate_highlighted_sections", {"N": 2}, "**one**", 10, 0),
    ("validate_highlighted_sections", {"N": 2}, "*one* only", 0, 0),
    # text.split(splitter), a leading "" dropped, exactly N; lm-eval: at least N "Splitter <number>"
    ("validate_sections", {"N": 2, "section_splitter": "Section"}, "Section 1\nA\nSection 2\nB", 10, 10),
    ("validate_sections", {"N": 2, "section_splitter": "Section"}, "Hi\nSection 1\nA\nSection 2\nB", 0, 10),
    ("validate_sections", {"N": 2, "section_splitter": "Section"}, "Section 1\nA", 0, 0),
    # json.loads(text); lm-eval strips ``` fences first
    ("validate_json_format", {}, '{"a": 1}', 10, 10),
    ("validate_json_format", {}, '```json\n{"a": 1}\n```', 0, 10),
    ("validate_json_format", {}, "a: 1", 0, 0),
    # text.startswith(prompt), case-sensitive; lm-eval lower-cases both
    ("validate_repeat_prompt", {"original_prompt": "Name a colour."}, "Name a colour. Blue.", 10, 10),
    ("validate_repeat_prompt", {"original_prompt": "Name a colour."}, "name a colour. Blue.", 0, 10),
    # exactly one "******", the stripped sides differ (an empty side too); lm-eval: two non-empty
    ("validate_two_responses", {}, "Blue.\n******\nRed.", 10, 10),
    ("validate_two_responses", {}, "******\nRed.", 10, 0),
    ("validate_two_responses", {}, "Blue.", 0, 0),
    # text == text.upper() / .lower(); lm-eval: str.isupper()/islower() and English by langdetect
    ("validate_uppercase", {}, LOREM.upper() + " EVERY SPRING.", 10, 10),
    ("validate_uppercase", {}, "12345", 10, 0),
    ("validate_uppercase", {}, "Hello", 0, 0),
    ("validate_lowercase", {}, "hello there, this is all in lower case", 10, 10),
    ("validate_lowercase", {}, "12345", 10, 0),
    ("validate_lowercase", {}, "Hello there", 0, 0),
    # re.findall(r"\b[A-Z]+\b"): "U.S.A." is three words; around is exactly N
    ("validate_frequency_capital_words", {"N": 1, "quantifier": "around"}, "Only NASA.", 10, 10),
    ("validate_frequency_capital_words", {"N": 1, "quantifier": "around"}, "NASA and ESA.", 0, 0),
    ("validate_frequency_capital_words", {"N": 1, "quantifier": "around"}, "The U.S.A. wins.", 0, 10),
    # text.endswith(phrase), case-sensitive; lm-eval lower-cases and strips quotes
    ("validate_end", {"end_phrase": "That is all."}, "Blue. That is all.", 10, 10),
    ("validate_end", {"end_phrase": "That is all."}, "Blue. that is all.", 0, 10),
    ("validate_end", {"end_phrase": "That is all."}, "That is all. Blue.", 0, 0),
    # starts and ends with '"': a lone '"' does both; lm-eval needs two characters
    ("validate_quotation", {}, '"Blue."', 10, 10),
    ("validate_quotation", {}, '"', 10, 0),
    ("validate_quotation", {}, "Blue.", 0, 0),
    ("validate_no_commas", {}, "Red and blue", 10, 10),
    ("validate_no_commas", {}, "Red, blue", 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(("name", "arguments", "response", "tulu3", "checkers"), OPEN_INSTRUCT_CASES)
def test_ifeval_reward_is_open_instructs(
    name: str, arguments: dict, response: str, tulu3: int, checkers: int | None
) -> None:
    prompt = arguments.get("original_prompt", "Write something.")
    row = if_row(name, f"{prompt} (constraint)", **arguments)
    assert verifiers.row_problem(row) is None
    assert score(row, response) == tulu3  # the default is Tulu 3's reward
    assert score(row, response, truncated=True) == PENALTY
    if checkers is not None:
        assert score(row, response, ifeval_reward=verifiers.EVAL_CHECKERS) == checkers


def test_every_listed_difference_shows_in_a_case_and_only_those() -> None:
    differ = {name for name, _, _, tulu3, checkers in OPEN_INSTRUCT_CASES if checkers not in (None, tulu3)}
    assert differ == verifiers.IFEVAL_DIFFERENCES
    assert {name for name, *_ in OPEN_INSTRUCT_CASES} == TULU3_IF_FUNCTIONS  # a case per constraint


def test_the_docs_table_every_difference() -> None:
    text = (ROOT / "docs" / "training.md").read_text()
    table = text.split("| Tulu 3 function | open-instruct (default) | eval-checkers |", 1)[1].split("\n\n")[0]
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")}
    assert rows == verifiers.IFEVAL_DIFFERENCES


def test_ifeval_reads_the_response_after_the_assistant_marker() -> None:
    row = if_row("validate_lowercase")
    assert score(row, "<|user|>\nWrite Something.\n<|assistant|>\nall lower case") == 10.0
    assert score(row, "<|user|>\nWrite Something.\n<|assistant|>\nAll lower case") == 0.0


def test_ifeval_reward_choice_is_checked() -> None:
    with pytest.raises(UsageError, match="ifeval_reward 'lm-eval'"):
        verifiers.verify("x", if_row("validate_lowercase")["ground_truth"], "ifeval", ifeval_reward="lm-eval")


# --- rows -----------------------------------------------------------------------------------------


def test_the_smoke_rows_are_usable_and_cover_every_verifier() -> None:
    rows = [json.loads(line) for line in SMOKE_ROWS.read_text().splitlines()]
    assert {r["dataset"].lower() for r in rows} == set(verifiers.DATASETS)
    for row in rows:
        assert set(row) == {"messages", "ground_truth", "dataset", "constraint_type", "constraint"}
        assert verifiers.row_problem(row) is None, row


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"messages": [USER], "ground_truth": "1", "dataset": "code"}, "names no verifier"),
        # rows open-instruct's call would fail on whatever the response (a TypeError or IndexError)
        (if_row("verify_postscript"), "cannot take the row's arguments"),
        (if_row("validate_lowercase", N=3), "cannot take the row's arguments"),
        (if_row("validate_paragraphs", N=2, i=3, first_word="A"), "outside N 2"),
        (if_row("verify_letter_frequency", letter="ab", N=2), "not one character"),
        ({"messages": [USER], "ground_truth": "", "dataset": "gsm8k"}, "empty"),
        ({"messages": "q", "ground_truth": "1", "dataset": "gsm8k"}, "list of turns"),
        ({**if_row("validate_lowercase"), "ground_truth": "{not json"}, "not JSON"),
        (if_row("verify_rhymes"), "not one of Tulu 3's"),
    ],
)  # fmt: skip
def test_unusable_rows_are_named(row: dict, needle: str) -> None:
    problem = verifiers.row_problem(row)
    assert problem is not None and needle in problem


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (if_row("verify_letter_frequency", letter="7", N=2), "not one letter"),
        (if_row("validate_word_constraint", N=5, quantifier="roughly"), "quantifier"),
        (if_row("verify_postscript"), "no postscript_marker"),
    ],
)  # fmt: skip
def test_rows_the_eval_checkers_cannot_take_are_named(row: dict, needle: str) -> None:
    problem = verifiers.row_problem(row, verifiers.EVAL_CHECKERS)
    assert problem is not None and needle in problem


def test_check_rows_names_file_and_row() -> None:
    rows = [if_row("validate_lowercase"), {"messages": [USER], "ground_truth": "1", "dataset": "code"}]
    with pytest.raises(UsageError, match=r"data\.jsonl: row 1: dataset 'code'"):
        verifiers.check_rows(rows, "data.jsonl")
