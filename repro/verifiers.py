"""Verifiable rewards for RLVR rows (allenai/RLVR-GSM-MATH-IF-Mixed-Constraints), one verifier each.

A row carries `messages`, `ground_truth` (text) and `dataset` (`gsm8k`, `MATH` or `ifeval`), which
names its verifier, as open-instruct 816dcbf's `apply_verifiable_reward` (model_utils.py) reads it.
The reward is Tulu 3's: 10 for a verified response, 0 otherwise (`verify_reward=10`), and the card's
-10 (`penalty_reward_value`) in place of either for a response cut at the length limit, i.e. one
that never produced an end-of-sequence token (`--non_stop_penalty`).

- GSM8K follows Tulu 3's `verify_gsm8k_sample` (the last number of the response, thousands commas
  removed, equals the ground truth as text), NOT the evaluation protocol's strict first `#### N`
  (core/scoring/gsm8k.py gsm8k_extract): the policy is rewarded as Tulu 3 rewarded it.
- MATH follows Tulu 3's `verify_math_sample` ("flex" match): candidates from the last `\\boxed{}`,
  the Minerva "Final Answer: The final answer is X. I hope it is correct." sentence, else the last
  `$...$`, else the whole response, each compared with the ground truth by sympy equivalence of the
  parsed LaTeX or by the Hendrycks string normalisation. The Hendrycks helpers are lm-eval's
  (`lm_eval.tasks.hendrycks_math.utils`, identical to open-instruct's math_utils at 816dcbf); the
  Minerva normalisation is written here as it stood at 816dcbf, since lm-eval's has since changed.
- IFEval rows name one of Tulu 3's constraint functions (open_instruct/if_functions.py) and its
  arguments as JSON. By default (`ifeval_reward` "open-instruct") the reward is that function's, as
  Tulu 3's RLVR computed it, bugs included (repro/if_rewards.py). "eval-checkers" checks the row with
  the suite's IFEval checkers instead (core.scoring.ifeval: lm-eval's port of the
  reference instructions, strict), the row's arguments translated to the instruction's
  (`IFEVAL_INSTRUCTIONS`); `IFEVAL_DIFFERENCES` names every function whose two rewards differ.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

from core.errors import UsageError
from repro import if_rewards

VERIFIED_REWARD = 10.0  # open-instruct ppo_vllm_thread_ray_gtrl.py: apply_verifiable_reward(verify_reward=10)
DATASETS = ("gsm8k", "math", "ifeval")  # `dataset` column, lower-cased as apply_verifiable_reward does
# Tulu 3's verifiers decode query + response and keep what follows the last assistant marker.
ASSISTANT_MARKER = "<|assistant|>\n"
SYMPY_TIMEOUT_S = 5  # open-instruct math_utils.is_equiv

log = logging.getLogger(__name__)


def _response(text: str) -> str:
    return text.split(ASSISTANT_MARKER)[-1].strip()


# --- GSM8K ----------------------------------------------------------------------------------------

_THOUSANDS = re.compile(r"(\d),(\d)")
_NUMBER = re.compile(r"[-+]?\d*\.\d+|\d+")  # as Tulu 3's: a sign is kept only on decimals


def gsm8k_answer(response: str) -> str:
    """Tulu 3's prediction: the response's last number (commas between digits removed), else the text."""
    text = _THOUSANDS.sub(r"\1\2", _response(response))
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else text


def verify_gsm8k(response: str, ground_truth: str) -> bool:
    return gsm8k_answer(response).lower() == str(ground_truth).lower()


# --- MATH -----------------------------------------------------------------------------------------

_MINERVA_FINAL = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.")
INVALID_ANSWER = "[invalidanswer]"
# Lewkowycz et al. (2022) appendix D, as open-instruct math_utils.py has it at 816dcbf.
_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)  # fmt: skip
_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots",
    "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters",
    "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
    "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;",
    r",\!", "{,}", '"', "\\dots",
)  # fmt: skip
_UNWRAP = (
    r"(\\text\{)(.*?)(\})",
    r"(\\textbf\{)(.*?)(\})",
    r"(\\overline\{)(.*?)(\})",
    r"(\\boxed\{)(.*)(\})",
)


def minerva_answer(text: str) -> str:
    """The X of "Final Answer: The final answer is X. I hope it is correct.", else INVALID_ANSWER."""
    m = _MINERVA_FINAL.search(text + "I hope it is correct.")
    return m.group(1).strip() if m else INVALID_ANSWER


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation of a final answer (appendix D), as open-instruct 816dcbf runs it."""
    answer = answer.split("=")[-1]
    for before, after in _SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in _REMOVED:
        answer = answer.replace(expr, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    for pattern in _UNWRAP:
        answer = re.sub(pattern, "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


def sympy_equivalent(a: str, b: str) -> bool:
    """Tulu 3's is_equiv: both parse as LaTeX (sympy, ANTLR 4.11) and their difference simplifies to 0.

    Any parse or simplification failure, or more than 5 s (SIGALRM, main thread only), is False.
    """
    from sympy import simplify
    from sympy.parsing.latex import parse_latex

    timed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _alarm) if timed else None
    if timed:
        signal.alarm(SYMPY_TIMEOUT_S)
    try:
        return simplify(parse_latex(a) - parse_latex(b)) == 0
    except ImportError:  # the ANTLR runtime is missing: a broken install, never a wrong answer
        raise
    except Exception:  # open-instruct treats every failure (parse, simplify, its timeout) as "not equal"
        return False
    finally:
        if timed:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def math_candidates(response: str) -> list[str]:
    """The answers Tulu 3's flex match tries, in its order."""
    from lm_eval.tasks.hendrycks_math.utils import last_boxed_only_string, remove_boxed

    text = _response(response)
    found = []
    boxed = last_boxed_only_string(text)
    if boxed is not None:
        with contextlib.suppress(AssertionError):  # e.g. \fbox{...}: open-instruct drops it the same way
            found.append(remove_boxed(boxed))
    minerva = normalize_final_answer(minerva_answer(text))
    if minerva != INVALID_ANSWER:
        found.append(minerva)
    if not found:
        dollars = [m.start() for m in re.finditer(r"\$", text)]
        if len(dollars) > 1:
            found.append(normalize_final_answer(text[dollars[-2] + 1 : dollars[-1]]))
    if not found:
        found.append(normalize_final_answer(text))
    return found


def verify_math(response: str, ground_truth: str) -> bool:
    from lm_eval.tasks.hendrycks_math.utils import is_equiv as hendrycks_equivalent

    return any(
        sympy_equivalent(answer, ground_truth) or hendrycks_equivalent(answer, ground_truth)
        for answer in math_candidates(response)
    )


# --- IFEval ---------------------------------------------------------------------------------------

Instruction = tuple[str, dict[str, Any]]


def _count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UsageError(f"{what}: N is {n!r}, expected a whole number")
    return n


def _bounds(
    iid: str, count_key: str, relation_key: str, low: int, high: int, extra: dict[str, Any]
) -> list[Instruction]:
    """`low <= count <= high` as IFEval's relations ("at least", "less than"); bounds below 1 are void."""
    out = []
    if low >= 1:
        out.append((iid, {**extra, count_key: low, relation_key: "at least"}))
    out.append((iid, {**extra, count_key: high + 1, relation_key: "less than"}))
    return out


def _quantified(
    iid: str, count_key: str, relation_key: str, around: Callable[[int], int]
) -> Callable[[Mapping[str, Any]], list[Instruction]]:
    def translate(a: Mapping[str, Any]) -> list[Instruction]:
        n, q = _count(a.get("N"), iid), a.get("quantifier")
        if q == "at least":
            return [(iid, {count_key: n, relation_key: "at least"})] if n >= 1 else []
        if q == "at most":
            return [(iid, {count_key: n + 1, relation_key: "less than"})]
        if q == "around":
            return _bounds(iid, count_key, relation_key, n - around(n), n + around(n), {})
        raise UsageError(f"{iid}: quantifier {q!r}, expected 'at least', 'around' or 'at most'")

    return translate


def _plain(iid: str, **names: str) -> Callable[[Mapping[str, Any]], list[Instruction]]:
    """One instruction; `names` maps the checker's argument to the row's (Tulu 3's) name."""

    def translate(a: Mapping[str, Any]) -> list[Instruction]:
        missing = [tulu for tulu in names.values() if a.get(tulu) is None]
        if missing:
            raise UsageError(f"{iid}: the row gives no {', '.join(missing)}")
        return [(iid, {mine: a[tulu] for mine, tulu in names.items()})]

    return translate


def _exact(
    iid: str, count_key: str, relation_key: str, **names: str
) -> Callable[[Mapping[str, Any]], list[Instruction]]:
    def translate(a: Mapping[str, Any]) -> list[Instruction]:
        n = _count(a.get("N"), iid)
        (extra,) = _plain(iid, **names)(a)
        return _bounds(iid, count_key, relation_key, n, n, extra[1])

    return translate


def _choice(a: Mapping[str, Any]) -> list[Instruction]:
    options = a.get("options")
    if not isinstance(options, str) or not options.strip():
        raise UsageError(f"validate_choice: options is {options!r}, expected text such as 'yes/no/maybe'")
    return [(CHOICE, {"options": _options(options)})]


CHOICE = "detectable_format:constrained_response"
STAR_PARAGRAPHS = "tulu3:paragraphs_star_divider"  # no IFEval checker splits on the rows' '* * *'


def _options(text: str) -> list[str]:
    # assumption: "a/b/c" and "a or b" list the options, as the rows' templates write them
    parts = re.split(r"\s*/\s*" if "/" in text else r"\s+or\s+", text.strip())
    return [p for p in parts if p]


# Tulu 3 constraint function (if_functions.IF_FUNCTIONS_MAP) -> the IFEval instructions that check it.
IFEVAL_INSTRUCTIONS: dict[str, Callable[[Mapping[str, Any]], list[Instruction]]] = {
    "verify_keywords": _plain("keywords:existence", keywords="keyword_list"),
    "verify_keyword_frequency": _exact("keywords:frequency", "frequency", "relation", keyword="word"),
    "validate_forbidden_words": _plain("keywords:forbidden_words", forbidden_words="forbidden_words"),
    "verify_letter_frequency": _exact(
        "keywords:letter_frequency", "let_frequency", "let_relation", letter="letter"
    ),
    "validate_response_language": _plain("language:response_language", language="language"),
    "verify_paragraph_count": _plain(STAR_PARAGRAPHS, num_paragraphs="N"),
    "validate_word_constraint": _quantified(
        "length_constraints:number_words", "num_words", "relation", lambda n: max(round(n * 0.1), 1)
    ),
    "verify_sentence_constraint": _quantified(
        "length_constraints:number_sentences", "num_sentences", "relation", lambda n: 1
    ),
    "validate_paragraphs": _plain(
        "length_constraints:nth_paragraph_first_word",
        num_paragraphs="N",
        nth_paragraph="i",
        first_word="first_word",
    ),
    "verify_postscript": _plain("detectable_content:postscript", postscript_marker="postscript_marker"),
    "validate_placeholders": _plain("detectable_content:number_placeholders", num_placeholders="N"),
    "verify_bullet_points": _plain("detectable_format:number_bullet_lists", num_bullets="N"),
    "validate_title": _plain("detectable_format:title"),
    "validate_choice": _choice,
    "validate_highlighted_sections": _plain(
        "detectable_format:number_highlighted_sections", num_highlights="N"
    ),
    "validate_sections": _plain(
        "detectable_format:multiple_sections", section_spliter="section_splitter", num_sections="N"
    ),
    "validate_json_format": _plain("detectable_format:json_format"),
    "validate_repeat_prompt": _plain("combination:repeat_prompt", prompt_to_repeat="original_prompt"),
    "validate_two_responses": _plain("combination:two_responses"),
    "validate_uppercase": _plain("change_case:english_capital"),
    "validate_lowercase": _plain("change_case:english_lowercase"),
    "validate_frequency_capital_words": _quantified(
        "change_case:capital_word_frequency", "capital_frequency", "capital_relation", lambda n: 0
    ),
    "validate_end": _plain("startend:end_checker", end_phrase="end_phrase"),
    "validate_quotation": _plain("startend:quotation"),
    "validate_no_commas": _plain("punctuation:no_comma"),
}

# The two IFEval rewards: Tulu 3's own functions (the default) or the evaluation's checkers.
OPEN_INSTRUCT, EVAL_CHECKERS = IFEVAL_REWARDS = ("open-instruct", "eval-checkers")

# Every Tulu 3 function whose "eval-checkers" reward differs from its "open-instruct" one (816dcbf);
# the README's table says how. verify_paragraph_count (the checker mode runs Tulu 3's rule, as no
# IFEval checker splits on the rows' '* * *') and validate_no_commas are the same in both.
IFEVAL_DIFFERENCES = frozenset(IFEVAL_INSTRUCTIONS) - {"verify_paragraph_count", "validate_no_commas"}


def check_ifeval_reward(value: Any) -> str:
    if value not in IFEVAL_REWARDS:
        raise UsageError(f"ifeval_reward {value!r}: expected {' or '.join(IFEVAL_REWARDS)}")
    return value


def ifeval_instructions(ground_truth: str | Mapping[str, Any]) -> list[Instruction]:
    """The IFEval instructions (id, kwargs) a row's Tulu 3 constraint JSON stands for."""
    constraint = if_rewards.constraint_of(ground_truth)
    name = constraint["func_name"]
    if name not in IFEVAL_INSTRUCTIONS:
        raise UsageError(f"ifeval ground_truth func_name {name!r} is not one of Tulu 3's if_functions")
    return IFEVAL_INSTRUCTIONS[name](constraint)


def _ifeval_doc(instructions: list[Instruction], prompt: str) -> dict[str, Any]:
    return {
        "key": 0,
        "prompt": prompt,
        "instruction_id_list": [iid for iid, _ in instructions],
        "kwargs": [kwargs for _, kwargs in instructions],
    }


def _choice_followed(options: list[str], response: str) -> bool:
    from core.scoring.punkt import ensure_punkt_tab

    ensure_punkt_tab()  # lm-eval's ifeval modules need punkt_tab at import
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    checker = INSTRUCTION_DICT[CHOICE](CHOICE)
    checker.build_description()
    checker._constrained_responses = tuple(options)  # the row's options in place of IFEval's fixed three
    return bool(checker.check_following(response))


def _star_paragraphs(text: str, n: Any) -> bool:
    """Tulu 3's verify_paragraph_count: lines stripped, split on '* * *', every part non-empty, n parts."""
    parts = "\n".join(line.strip() for line in text.splitlines()).strip().split("* * *")
    return all(p.strip() for p in parts) and len(parts) == n


def verify_ifeval(
    response: str, ground_truth: str | Mapping[str, Any], prompt: str = "", ifeval_reward: str = OPEN_INSTRUCT
) -> bool:
    from core.scoring.ifeval import score_item

    text = _response(response)
    if check_ifeval_reward(ifeval_reward) == OPEN_INSTRUCT:
        return if_rewards.verify(text, ground_truth)
    instructions = ifeval_instructions(ground_truth)
    if instructions and instructions[0][0] == CHOICE:
        return _choice_followed(instructions[0][1]["options"], text)
    if instructions and instructions[0][0] == STAR_PARAGRAPHS:
        return _star_paragraphs(text, instructions[0][1]["num_paragraphs"])
    if not instructions:  # e.g. "at least 0 words": nothing to check
        return True
    return bool(score_item(_ifeval_doc(instructions, prompt), text)["prompt_strict"])


# --- rows -----------------------------------------------------------------------------------------


def prompt_text(messages: list[Mapping[str, Any]]) -> str:
    """The last user turn: what IFEval's repeat-prompt checker and the row's constraint refer to."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def verify(
    response: str, ground_truth: Any, dataset: str, prompt: str = "", ifeval_reward: str = OPEN_INSTRUCT
) -> bool:
    """The row's verifier on one response (no length penalty: see `reward`)."""
    kind = str(dataset).lower()
    if kind == "gsm8k":
        return verify_gsm8k(response, ground_truth)
    if kind == "math":
        return verify_math(response, ground_truth)
    if kind == "ifeval":
        return verify_ifeval(response, ground_truth, prompt, ifeval_reward)
    raise UsageError(f"dataset {dataset!r} has no verifier; expected one of {', '.join(DATASETS)}")


def reward(
    response: str,
    ground_truth: Any,
    dataset: str,
    *,
    truncated: bool,
    penalty: float,
    prompt: str = "",
    ifeval_reward: str = OPEN_INSTRUCT,
) -> float:
    """Tulu 3's score: `penalty` for a response cut at the limit, else 10 when verified, else 0."""
    if truncated:
        return float(penalty)
    return VERIFIED_REWARD if verify(response, ground_truth, dataset, prompt, ifeval_reward) else 0.0


def row_problem(row: Mapping[str, Any], ifeval_reward: str = OPEN_INSTRUCT) -> str | None:
    """What makes an RLVR row unusable (its verifier could not run on it), or None."""
    from core.scoring.ifeval import doc_problem

    messages, truth, kind = row.get("messages"), row.get("ground_truth"), row.get("dataset")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, Mapping) for m in messages):
        return "messages is not a list of turns"
    if not isinstance(kind, str) or kind.lower() not in DATASETS:
        return f"dataset {kind!r} names no verifier (expected gsm8k, MATH or ifeval)"
    if truth is None or (isinstance(truth, str) and not truth.strip()):
        return "ground_truth is empty"
    if kind.lower() != "ifeval":
        return None
    if check_ifeval_reward(ifeval_reward) == OPEN_INSTRUCT:
        return if_rewards.row_problem(truth)
    try:
        instructions = ifeval_instructions(truth)
    except UsageError as exc:
        return str(exc)
    if instructions and instructions[0][0] not in (CHOICE, STAR_PARAGRAPHS):
        problem = doc_problem(_ifeval_doc(instructions, prompt_text(messages)))
        if problem:
            return f"ifeval constraint: {problem}"
    if instructions and instructions[0][0] == STAR_PARAGRAPHS:
        n = instructions[0][1]["num_paragraphs"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return f"ifeval paragraph count N is {n!r}, expected a whole number of at least 1"
    letter = next((kw.get("letter") for _, kw in instructions if "letter" in kw), None)
    if letter is not None and not (
        isinstance(letter, str) and len(letter) == 1 and letter.isascii() and letter.isalpha()
    ):
        return f"ifeval letter {letter!r} is not one letter (IFEval's checker would pick a random one)"
    return None


def check_rows(dataset: Any, where: str, ifeval_reward: str = OPEN_INSTRUCT) -> None:
    """Refuse a data set with a row no verifier can score, naming the first such row."""
    for index, row in enumerate(dataset):
        problem = row_problem(row, ifeval_reward)
        if problem:
            raise UsageError(f"{where}: row {index}: {problem}")
