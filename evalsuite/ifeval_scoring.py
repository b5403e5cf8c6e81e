"""IFEval scoring with lm-eval's port of the reference instruction checkers, strict and loose.

`score_item` is what the suite's IFEval task calls per response; `score_reference_files`
scores the IFEval reference repository's own file pair (input_data.jsonl + a responses
jsonl), so numbers can be checked against its evaluation_main.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalsuite.benchmarks import ifeval_scores
from evalsuite.punkt import ensure_punkt_tab
from repro.errors import UsageError

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


def _check_doc(doc: Mapping[str, Any]) -> None:
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in doc]
    if missing:
        raise UsageError(f"IFEval item lacks {', '.join(missing)}")
    ids, kwargs = doc["instruction_id_list"], doc["kwargs"]
    if len(ids) != len(kwargs):
        raise UsageError(f"IFEval item {doc['key']}: {len(ids)} instructions but {len(kwargs)} kwargs")
    unknown = [i for i in ids if i not in INSTRUCTION_DICT]
    if unknown:
        raise UsageError(f"IFEval item {doc['key']}: unknown instruction id(s) {', '.join(unknown)}")


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


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or any(f not in row for f in fields):
            raise UsageError(f"{path}:{number}: expected an object with {', '.join(fields)}")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path} has no rows")
    return rows


def score_reference_files(input_data: Path, responses: Path) -> dict[str, Any]:
    """Score the reference repository's format: input_data.jsonl and {"prompt", "response"} lines.

    Responses are matched to items by exact prompt text, as the reference does. Returns
    {"scores": {reference name: percent}, "items": [{"key", "prompt", "metrics"}]} with
    items in input_data order and metrics as `score_item` returns them.
    """
    items = _read_jsonl(input_data, ("key", "prompt", "instruction_id_list", "kwargs"))
    answers = _read_jsonl(responses, ("prompt", "response"))
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
