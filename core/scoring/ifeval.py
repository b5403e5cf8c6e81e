"""IFEval scoring with lm-eval's port of the reference instruction checkers, strict and loose.

`score_item` is what the suite's IFEval task calls per response; `score_reference_files`
scores the IFEval reference repository's own file pair (input_data.jsonl + a responses
jsonl), so numbers can be checked against its evaluation_main.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import UsageError, json_loads, read_text
from core.scoring.punkt import ensure_punkt_tab

METRIC_KEYS = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
# The reference's names for the four scores; values here are percent, like every suite score.
REFERENCE_NAMES = {
    "prompt_level_strict": "prompt-level strict accuracy",
    "inst_level_strict": "instruction-level strict accuracy",
    "prompt_level_loose": "prompt-level loose accuracy",
    "inst_level_loose": "instruction-level loose accuracy",
    "average_strict": "average strict (prompt + instruction) / 2",
    "average_loose": "average loose (prompt + instruction) / 2",
}

_ready = False


def ifeval_scores(items: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The four IFEval scores and both (prompt + instruction) / 2 averages, in percent."""
    if not items:
        raise ValueError("no items")
    out: dict[str, float] = {}
    for variant in ("strict", "loose"):
        prompt = 100.0 * sum(float(it["metrics"][f"prompt_{variant}"]) for it in items) / len(items)
        flags = [float(f) for it in items for f in it["metrics"][f"inst_{variant}"]]
        inst = 100.0 * sum(flags) / len(flags)
        out[f"prompt_level_{variant}"] = prompt
        out[f"inst_level_{variant}"] = inst
        out[f"average_{variant}"] = (prompt + inst) / 2
    return out


def _prepare() -> None:
    """punkt_tab must exist before lm-eval's ifeval modules are imported: their import calls nltk.download."""
    global _ready
    if _ready:
        return
    ensure_punkt_tab()
    import langdetect

    # langdetect samples at random; a fixed seed makes the language checks repeatable.
    langdetect.DetectorFactory.seed = 0
    _ready = True


# How each instruction argument of the IFEval data is checked (every name lm-eval's checkers take).
_COUNTS = (
    "num_highlights", "num_words", "num_placeholders", "num_bullets", "num_sections", "capital_frequency",
    "num_paragraphs", "let_frequency", "frequency", "num_sentences", "nth_paragraph",
)  # fmt: skip
_RELATIONS = ("relation", "capital_relation", "let_relation")
_WORD_LISTS = ("keywords", "forbidden_words")
RELATION_VALUES = ("less than", "at least")  # lm-eval's (and the reference's) _COMPARISON_RELATION


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _parameters(instruction_id: str) -> dict[str, bool]:
    """The arguments an instruction's checker takes: name -> required."""
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    params = inspect.signature(INSTRUCTION_DICT[instruction_id].build_description).parameters
    return {
        name: p.default is inspect.Parameter.empty
        for name, p in params.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _argument_problem(name: str, value: Any) -> str | None:
    """What is wrong with one argument value, or None (names lm-eval has no rule for pass)."""
    if name in _COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else "a whole number of at least 1"
    if name in _RELATIONS:
        return None if value in RELATION_VALUES else " or ".join(repr(r) for r in RELATION_VALUES)
    if name in _WORD_LISTS:
        ok = isinstance(value, list) and all(isinstance(w, str) and w for w in value)
        return None if ok else "a list of words"
    if name == "language":
        from lm_eval.tasks.ifeval.instructions_util import LANGUAGE_CODES

        return None if value in LANGUAGE_CODES else "an ISO 639-1 code the checker knows, such as 'en'"
    return None if isinstance(value, str) else "text"


def instruction_problem(instruction_id: str, kwargs: Any) -> str | None:
    """What is wrong with one instruction's arguments, or None.

    Values lm-eval drops before building the checker (None, 0, "", as the hub's rows carry every
    argument name with None) are not checked; every other name must be one the checker takes,
    with a value of the kind it needs, or scoring would crash or silently pick a random value.
    """
    if not isinstance(kwargs, dict):
        return f"its kwargs are {_show(kwargs)}, expected an object of arguments"
    params = _parameters(instruction_id)
    given = {k: v for k, v in kwargs.items() if v}
    for name, value in given.items():
        if name not in params:
            takes = ", ".join(params) or "no arguments"
            return f"argument {name!r} is not one it takes ({takes})"
        expected = _argument_problem(name, value)
        if expected is not None:
            return f"argument {name!r} is {_show(value)}, expected {expected}"
    missing = [name for name, required in params.items() if required and name not in given]
    if missing:
        return f"lacks the argument(s) {', '.join(missing)}"
    return None


def doc_problem(doc: Any) -> str | None:
    """What is wrong with an IFEval row (key, prompt, instruction_id_list, kwargs), or None."""
    _prepare()
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    if not isinstance(doc, Mapping):
        return f"the row is {_show(doc)}, expected an object"
    missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in doc]
    if missing:
        return f"lacks {', '.join(missing)}"
    key, ids, kwargs = doc["key"], doc["instruction_id_list"], doc["kwargs"]
    if not (isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool))):
        return f"field 'key' is {_show(key)}, expected a number or text"
    if not isinstance(doc["prompt"], str):
        return f"field 'prompt' is {_show(doc['prompt'])}, expected text"
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return f"field 'instruction_id_list' is {_show(ids)}, expected a list of instruction ids"
    if not isinstance(kwargs, list):
        return f"field 'kwargs' is {_show(kwargs)}, expected a list with one object per instruction"
    if len(ids) != len(kwargs):
        return f"{len(ids)} instructions but {len(kwargs)} kwargs"
    unknown = [i for i in ids if i not in INSTRUCTION_DICT]
    if unknown:
        return f"unknown instruction id(s) {', '.join(unknown)}"
    for n, (instruction_id, arguments) in enumerate(zip(ids, kwargs, strict=True)):
        problem = instruction_problem(instruction_id, arguments)
        if problem:
            return f"kwargs[{n}] ({instruction_id}): {problem}"
    return None


def _check_doc(doc: Mapping[str, Any]) -> None:
    problem = doc_problem(doc)
    if problem is None:
        return
    if isinstance(doc, Mapping) and "key" in doc:
        raise UsageError(f"IFEval item {doc['key']}: {problem}")
    raise UsageError(f"IFEval item {problem}")


def score_item(doc: Mapping[str, Any], response: str) -> dict[str, Any]:
    """Score one response: {"prompt_strict", "prompt_loose": 0/1, "inst_strict", "inst_loose": [0/1 …]}.

    `doc` is an IFEval row (key, prompt, instruction_id_list, kwargs); kwargs may be the
    reference's trimmed dicts or the hub's full dicts with None values, which lm-eval drops.
    """
    _prepare()
    from lm_eval.tasks.ifeval.utils import process_results

    _check_doc(doc)
    if not isinstance(response, str):
        raise UsageError(f"IFEval item {doc['key']}: response is {type(response).__name__}, not text")
    out = process_results(doc, [response])
    return {
        "prompt_strict": int(out["prompt_level_strict_acc"]),
        "prompt_loose": int(out["prompt_level_loose_acc"]),
        "inst_strict": [int(f) for f in out["inst_level_strict_acc"]],
        "inst_loose": [int(f) for f in out["inst_level_loose_acc"]],
    }


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line; a one-line error names the first bad line."""
    lines = read_text(path).split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json_loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or any(f not in row for f in fields):
            raise UsageError(f"{path}:{number}: expected an object with {', '.join(fields)}")
        rows.append((number, row))
    if not rows:
        raise UsageError(f"{path} has no rows")
    return rows


def score_reference_files(input_data: Path, responses: Path) -> dict[str, Any]:
    """Score the reference repository's format: input_data.jsonl and {"prompt", "response"} lines.

    Responses are matched to items by exact prompt text, as the reference does. Returns
    {"scores": {reference name: percent}, "items": [{"key", "prompt", "metrics"}]} with
    items in input_data order and metrics as `score_item` returns them.
    """
    numbered = _read_jsonl(input_data, ("key", "prompt", "instruction_id_list", "kwargs"))
    for number, item in numbered:  # every item checked before any is scored
        problem = doc_problem(item)
        if problem is not None:
            raise UsageError(f"{input_data}:{number}: IFEval item {item['key']}: {problem}")
    items = [item for _, item in numbered]
    answers = []
    for number, row in _read_jsonl(responses, ("prompt", "response")):
        if not isinstance(row["prompt"], str) or not isinstance(row["response"], str):
            raise UsageError(f"{responses}:{number}: 'prompt' and 'response' must be text")
        answers.append(row)
    by_prompt: dict[str, str] = {}
    duplicates = 0
    for row in answers:
        duplicates += row["prompt"] in by_prompt
        by_prompt[row["prompt"]] = row["response"]
    if duplicates:
        raise UsageError(f"{responses}: {duplicates} prompt(s) answered more than once")
    known = {it["prompt"] for it in items}
    missing = sum(it["prompt"] not in by_prompt for it in items)
    extra = sum(p not in known for p in by_prompt)
    if missing or extra:
        raise UsageError(
            f"{responses} does not match {input_data}: {missing} prompt(s) without a response, "
            f"{extra} response(s) to a prompt not in the input data"
        )
    records = [
        {"key": it["key"], "prompt": it["prompt"], "metrics": score_item(it, by_prompt[it["prompt"]])}
        for it in items
    ]
    scores = ifeval_scores(records)
    return {"scores": {REFERENCE_NAMES[k]: v for k, v in scores.items()}, "items": records}
