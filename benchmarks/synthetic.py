"""Conversations and preference pairs of chosen token lengths, in the real datasets' schemas.

Speed depends on lengths, not on the words, so the text is drawn from the embedded tokenizer's
corpus until the rendered conversation reaches the drawn length (exactly, up to one word).
"""

from __future__ import annotations

import random
from functools import cache
from importlib import resources
from typing import Any

Messages = list[dict[str, str]]


@cache
def _words(tokenizer: Any) -> list[tuple[str, int]]:
    corpus = resources.files("core.data").joinpath("tiny_corpus.txt").read_text(encoding="utf-8")
    words = sorted(set(corpus.split()))
    return [(w, len(tokenizer(" " + w, add_special_tokens=False)["input_ids"])) for w in words]


def text_of(tokenizer: Any, tokens: int, rng: random.Random) -> str:
    """About `tokens` tokens of text (space-separated words: the counts add up under byte-level BPE)."""
    words, total, out = _words(tokenizer), 0, []
    while total < tokens:
        word, n = rng.choice(words)
        out.append(word)
        total += n
    return " ".join(out)


def _overhead(tokenizer: Any) -> int:
    """Tokens the chat template adds to a one-turn conversation (system prompt included)."""
    empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
    return rendered_length(tokenizer, empty)


def rendered_length(tokenizer: Any, messages: Messages) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def turn_lengths(tokenizer: Any, length: int, prompt_fraction: float) -> tuple[int, int]:
    """User and assistant tokens of a one-turn conversation of `length` tokens, template included."""
    body = max(2, length - _overhead(tokenizer))
    prompt = max(1, round(body * prompt_fraction))
    return prompt, body - prompt


def conversation(tokenizer: Any, length: int, prompt_fraction: float, rng: random.Random) -> Messages:
    prompt, response = turn_lengths(tokenizer, length, prompt_fraction)
    return [
        {"role": "user", "content": text_of(tokenizer, prompt, rng)},
        {"role": "assistant", "content": text_of(tokenizer, response, rng)},
    ]


def sft_rows(tokenizer: Any, lengths: list[int], prompt_fraction: float, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"messages": conversation(tokenizer, n, prompt_fraction, rng)} for n in lengths]


def preference_rows(
    tokenizer: Any, lengths: list[int], prompt_fraction: float, seed: int
) -> list[dict[str, Any]]:
    """prompt / chosen / rejected turns (explicit-prompt form: the stages prepend the prompt to each side)."""
    rng = random.Random(seed)
    rows = []
    for n in lengths:
        prompt, chosen = turn_lengths(tokenizer, n, prompt_fraction)
        rows.append(
            {
                "prompt": [{"role": "user", "content": text_of(tokenizer, prompt, rng)}],
                "chosen": [{"role": "assistant", "content": text_of(tokenizer, chosen, rng)}],
                "rejected": [
                    {
                        "role": "assistant",
                        "content": text_of(tokenizer, round(chosen * rng.uniform(0.5, 1)), rng),
                    }
                ],
            }
        )
    return rows
