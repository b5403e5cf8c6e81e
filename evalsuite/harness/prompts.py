"""Build the exact requests a run sends, without loading model weights (only the tokenizer).

Used by the prompt-rendering tests and by `evalsuite score`, so both see what `run` sees.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from core import chat_templates
from evalsuite.harness.protocol import task_class_path


@functools.cache
def task_manager(
    data_dir: str | None, tokenizer_dir: str | None, lock: str | None = None, allow_unlocked: bool = False
):
    from lm_eval.tasks import TaskManager

    from evalsuite.harness.lm_run import MAX_LENGTH

    meta = {
        "data_dir": data_dir,
        "lock": lock,
        "allow_unlocked": allow_unlocked,
        "tokenizer": tokenizer_dir,
        "max_length": MAX_LENGTH,
    }
    return TaskManager(include_path=str(task_class_path()), include_defaults=False, metadata=meta)


def load_task(
    task: str,
    *,
    data_dir: Path | None,
    tokenizer_dir: Path | None = None,
    lock: Path | None = None,
    allow_unlocked: bool = False,
):
    manager = task_manager(
        str(data_dir) if data_dir else None,
        str(tokenizer_dir) if tokenizer_dir else None,
        str(lock) if lock else None,
        allow_unlocked,
    )
    return manager.load([task])["tasks"][task]


def requests(task: str, *, tokenizer_dir: Path, data_dir: Path | None, limit: int | None = None) -> list[Any]:
    """The lm-eval Instances of `task` for the first `limit` docs, chat-templated as in a run."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False)

    def chat(history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return chat_templates.render(  # the model's template: time-limited, a failure one line
            tok,
            history,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    t = load_task(task, data_dir=data_dir, tokenizer_dir=tokenizer_dir)
    chat_on = bool(tok.chat_template)
    t.build_all_requests(
        limit=limit,
        apply_chat_template=chat_on,
        fewshot_as_multiturn=chat_on,
        chat_template=chat if chat_on else None,
        tokenizer_name=str(tokenizer_dir),
    )
    return list(t.instances)
