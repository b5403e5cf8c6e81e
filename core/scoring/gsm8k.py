"""GSM8K's answer as lighteval's gsm8k task reads it, from the model's output and from the gold field."""

from __future__ import annotations

import re

GSM8K_ANSWER = re.compile(r"#### (\-?[0-9\.\,]+)")


def gsm8k_extract(text: str) -> str | None:
    """First `#### N` in the text, commas removed; no fallback to the last number (strict)."""
    m = GSM8K_ANSWER.search(text)
    return m.group(1).strip().replace(",", "") if m else None
