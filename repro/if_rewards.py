"""IFEval-constraint rewards as Tulu 3's RLVR computed them: open-instruct 816dcbf, `if_functions.py`
called by `ground_truth_utils.verify_ifeval_sample`. Written from reading that code, behaviour for
behaviour, including what looks like a bug (the released model was trained on it):

- `validate_placeholders` returns a (bool, list) tuple, which the caller reads as true: always rewarded;
- `validate_choice` iterates its options; the rows store them as one text, so it tests whether the whole
  response is one character of that text: an empty or one-character response is rewarded, almost
  nothing else;
- `validate_quotation` accepts a lone `"`, `validate_title` an empty `<<>>`;
- every comparison is case-sensitive where the function compares raw text (end phrase, repeated
  prompt, first word, which is a prefix test: "Theory" starts with "The").

The caller passes every non-null argument of the row's JSON by name, so a row naming an argument the
function does not take, or lacking one it needs, would stop open-instruct's run: `row_problem` refuses
such rows before training. Where a function raises on a response (langdetect finds nothing to detect
in an empty or digit-only response) open-instruct's run would stop; here that response scores 0.
langdetect is seeded (0) so a response gets the same verdict every time; open-instruct left it unseeded.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

# --- one function per constraint, named as in open-instruct's IF_FUNCTIONS_MAP ------------------------


def verify_keywords(text: str, keyword_list: Any) -> bool:
    low = text.lower()
    return all(k.lower() in low for k in keyword_list)  # substrings, case-insensitive


def verify_keyword_frequency(text: str, word: str, N: Any) -> bool:
    words = re.findall(r"\b\w+\b", text.lower())  # whole \w+ words; a multi-word keyword never matches
    return sum(w == word.lower() for w in words) == N


def validate_forbidden_words(text: str, forbidden_words: Any) -> bool:
    low = text.lower()
    return not any(w.lower() in low for w in forbidden_words)  # substrings: "cat" forbids "category"


def verify_letter_frequency(text: str, letter: str, N: Any) -> bool:
    if len(letter) != 1:
        raise ValueError("letter must be one character")
    return text.count(letter) == N  # case-sensitive


def validate_response_language(text: str, language: str) -> bool:
    from langdetect import DetectorFactory, detect

    DetectorFactory.seed = 0
    return detect(text) == language


def verify_paragraph_count(text: str, N: Any) -> bool:
    joined = "\n".join(line.strip() for line in text.splitlines()).strip()
    parts = joined.split("* * *")
    return all(p.strip() for p in parts) and len(parts) == N


def validate_word_constraint(text: str, N: Any, quantifier: str) -> bool:
    count = len(text.split())
    if quantifier == "at least":
        return count >= N
    if quantifier == "at most":
        return count <= N
    if quantifier == "around":
        return abs(count - N) <= max(round(N * 0.1), 1)  # Python's round: half to even
    return False


# A sentence ends at whitespace right after "." or "?" ("!" does not end one), unless the four
# characters before it look like "e.g." (word char, dot, word char, any) or the three before like "Mr."
_SENTENCE_BREAK = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s")


def verify_sentence_constraint(text: str, N: Any, quantifier: str) -> bool:
    count = len(_SENTENCE_BREAK.split(text))  # a trailing break leaves an empty last piece, counted
    if quantifier == "at least":
        return count >= N
    if quantifier == "around":
        return abs(count - N) <= 1
    if quantifier == "at most":
        return count <= N
    return False


def validate_paragraphs(text: str, N: Any, first_word: str, i: Any) -> bool:
    paragraphs = text.split("\n\n")
    if len(paragraphs) != N:
        return False
    return paragraphs[i - 1].strip().startswith(first_word)  # a prefix, case-sensitive


def verify_postscript(text: str, postscript_marker: str) -> bool:
    at = text.find(postscript_marker)  # anywhere, case-sensitive, followed by something
    return at >= 0 and len(text[at:].strip()) > len(postscript_marker)


def validate_placeholders(text: str, N: Any) -> tuple[bool, list[str]]:
    found = re.findall(r"\[(.*?)\]", text)
    return len(found) >= N, found  # a tuple: always true to the caller


def verify_bullet_points(text: str, N: Any) -> bool:
    bullets = [line for line in text.split("\n") if line.strip().startswith(("*", "-"))]
    return len(bullets) == N  # "---" and "**bold**" lines count as bullets


def validate_title(text: str) -> bool:
    return re.search(r"<<(.*?)>>", text) is not None


def validate_choice(text: str, options: Any) -> bool:
    return any(text in option for option in options)  # options as text: each character in turn


def validate_highlighted_sections(text: str, N: Any) -> bool:
    return len(re.findall(r"\*(.*?)\*", text)) >= N  # "**" is an empty highlight and counts


def validate_sections(text: str, N: Any, section_splitter: str) -> bool:
    sections = text.split(section_splitter)
    if sections[0] == "":
        sections = sections[1:]
    return len(sections) == N


def validate_json_format(text: str) -> bool:
    try:
        json.loads(text)  # markdown fences around it fail
    except ValueError:
        return False
    return True


def validate_repeat_prompt(text: str, original_prompt: str) -> bool:
    return text.startswith(original_prompt)


def validate_two_responses(text: str) -> bool:
    if text.count("******") != 1:
        return False
    first, second = text.split("******")
    return first.strip() != second.strip()  # an empty side counts as a response


def validate_uppercase(text: str) -> bool:
    return text == text.upper()


def validate_lowercase(text: str) -> bool:
    return text == text.lower()


def validate_frequency_capital_words(text: str, N: Any, quantifier: str) -> bool:
    count = len(re.findall(r"\b[A-Z]+\b", text))  # "I" and "A" count
    if quantifier == "at least":
        return count >= N
    if quantifier == "around":
        return count == N
    if quantifier == "at most":
        return count <= N
    return False


def validate_end(text: str, end_phrase: str) -> bool:
    return text.endswith(end_phrase)


def validate_quotation(text: str) -> bool:
    return text.startswith('"') and text.endswith('"')


def validate_no_commas(text: str) -> bool:
    return "," not in text


FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        verify_keywords, verify_keyword_frequency, validate_forbidden_words, verify_letter_frequency,
        validate_response_language, verify_paragraph_count, validate_word_constraint,
        verify_sentence_constraint, validate_paragraphs, verify_postscript, validate_placeholders,
        verify_bullet_points, validate_title, validate_choice, validate_highlighted_sections,
        validate_sections, validate_json_format, validate_repeat_prompt, validate_two_responses,
        validate_uppercase, validate_lowercase, validate_frequency_capital_words, validate_end,
        validate_quotation, validate_no_commas,
    )
}  # fmt: skip


# --- the caller -----------------------------------------------------------------------------------


def constraint_of(ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    """A row's Tulu 3 constraint (its JSON text or the mapping itself), with its func_name."""
    from core.errors import UsageError, json_loads

    constraint = ground_truth
    if isinstance(ground_truth, str):
        try:
            constraint = json_loads(ground_truth)
        except json.JSONDecodeError as exc:
            raise UsageError(f"ifeval ground_truth is not JSON ({exc.msg})") from None
    if not isinstance(constraint, Mapping) or "func_name" not in constraint:
        raise UsageError("ifeval ground_truth has no func_name")
    return dict(constraint)


def call(ground_truth: str | Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The row's function and the arguments open-instruct passes it: every non-null one but func_name."""
    from core.errors import UsageError

    constraint = constraint_of(ground_truth)
    name = constraint.pop("func_name")
    if name not in FUNCTIONS:
        raise UsageError(f"ifeval ground_truth func_name {name!r} is not one of Tulu 3's if_functions")
    return FUNCTIONS[name], {k: v for k, v in constraint.items() if v is not None}


def verify(text: str, ground_truth: str | Mapping[str, Any]) -> bool:
    """open-instruct's verdict on a response (already cut after the assistant marker and stripped)."""
    func, kwargs = call(ground_truth)
    try:
        return bool(func(text, **kwargs))
    except Exception:  # e.g. langdetect's "No features in text": open-instruct's run would stop here
        return False


def row_problem(ground_truth: Any) -> str | None:
    """Why open-instruct could not call the row's function whatever the response, or None."""
    from core.errors import UsageError

    try:
        func, kwargs = call(ground_truth)
    except UsageError as exc:
        return str(exc)
    try:
        inspect.signature(func).bind("", **kwargs)
    except TypeError as exc:
        return f"{func.__name__} cannot take the row's arguments ({exc})"
    if "letter" in kwargs and not (isinstance(kwargs["letter"], str) and len(kwargs["letter"]) == 1):
        return f"ifeval letter {kwargs['letter']!r} is not one character"
    if "section_splitter" in kwargs and not kwargs["section_splitter"]:
        return "ifeval section_splitter is empty"
    for key, kinds in (("N", (int, float)), ("i", (int,))):
        if key in kwargs and (isinstance(kwargs[key], bool) or not isinstance(kwargs[key], kinds)):
            return f"ifeval {key} is {kwargs[key]!r}, expected a number"
    if "i" in kwargs and not 1 - kwargs["N"] <= kwargs["i"] <= kwargs["N"]:  # paragraphs[i - 1] would raise
        return f"ifeval paragraph i {kwargs['i']} is outside N {kwargs['N']} paragraphs"
    return None
