"""The two tokenizations of Tulu 3's decontamination: spaCy's English tokenizer (the benchmark
strings' tokens and 8-grams) and Elasticsearch's `standard` analyzer (what `match_phrase` compares:
UAX#29 word segmentation, lower-cased).
"""

from __future__ import annotations

import bisect
import functools
import re
from typing import Any

import regex

from evalsuite.trainingdata.contamination import LUCENE_MAX_TOKEN


# --- tokenization --------------------------------------------------------------------------------
@functools.cache
def _spacy() -> Any:
    try:
        import spacy
    except ImportError:  # pragma: no cover - a declared dependency
        from core.errors import UsageError

        raise UsageError("contamination needs spaCy: pip install 'smoltulu-repro[data-tables]'") from None
    # en_core_web_lg's tokenizer is the English default (its pipes do not change tokens); the
    # package itself (~600 MB, GitHub-only) is not needed for tokens.
    return spacy.blank("en")


def spacy_doc(text: str) -> Any:
    """The benchmark side's tokens: spaCy's English tokenizer (whitespace tokens included)."""
    return _spacy().tokenizer(text)


def spacy_tokens(text: str) -> list[str]:
    return [t.text for t in spacy_doc(text)]


# Elasticsearch's standard analyzer: UAX#29 word segments that hold a letter, digit or emoji,
# lower-cased per code point. Hand-written: no Python package emulates Lucene's analyzer; the
# `regex` module supplies UAX#29 word boundaries ((?w)\b).
_WORD_BREAKS = regex.compile(r"(?wV1)\b")


_KEEP = regex.compile(r"[\p{Alphabetic}\p{Nd}\p{Emoji_Presentation}]")


# UAX#29 restricted to ASCII (WB5-WB13b: letters/digits/underscore join; ' . : join letters,
# ' . , ; join digits); 20x faster than the general path, and tested equal to it on ASCII text.
_ASCII_WORDS = re.compile(
    r"[A-Za-z0-9_]+(?:(?:(?<=[A-Za-z])[.:'](?=[A-Za-z])|(?<=[0-9])[.,;'](?=[0-9]))[A-Za-z0-9_]+)*"
)


_ASCII_KEEP = re.compile(r"[A-Za-z0-9]")


# Java's Character.toLowerCase (Lucene's LowerCaseFilter) maps per code point, without Python's
# final-sigma rule and with İ -> i.
_JAVA_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def analyze(text: str) -> list[str]:
    """The tokens Elasticsearch's standard analyzer indexes for `text`."""
    if text.isascii():
        tokens = [t for t in _ASCII_WORDS.findall(text.lower()) if _ASCII_KEEP.search(t)]
    else:
        pieces = _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower())
        tokens = [t for t in pieces if _KEEP.search(t)]
    if tokens and max(map(len, tokens)) > LUCENE_MAX_TOKEN:
        tokens = [t[i : i + LUCENE_MAX_TOKEN] for t in tokens for i in range(0, len(t), LUCENE_MAX_TOKEN)]
    return tokens


def analyze_offsets(text: str) -> tuple[list[str], list[int], list[int]]:
    """`analyze` with each token's start and end offset in `text`."""
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    if text.isascii():
        for m in _ASCII_WORDS.finditer(text.lower()):
            if _ASCII_KEEP.search(m.group()):
                tokens.append(m.group())
                starts.append(m.start())
                ends.append(m.end())
    else:
        at = 0
        for piece in _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower()):  # same length as text
            if _KEEP.search(piece):
                tokens.append(piece)
                starts.append(at)
                ends.append(at + len(piece))
            at += len(piece)
    if tokens and max(map(len, tokens)) > LUCENE_MAX_TOKEN:
        cut = [
            (t[i : i + LUCENE_MAX_TOKEN], s + i, min(s + i + LUCENE_MAX_TOKEN, e))
            for t, s, e in zip(tokens, starts, ends, strict=True)
            for i in range(0, len(t), LUCENE_MAX_TOKEN)
        ]
        tokens, starts, ends = [c[0] for c in cut], [c[1] for c in cut], [c[2] for c in cut]
    return tokens, starts, ends


def analyze_span(
    text: str, analyzed: tuple[list[str], list[int], list[int]], start: int, end: int
) -> list[str]:
    """`analyze(text[start:end])`, read off the whole text's analysis when no token straddles an end.

    UAX#29 decides a break from the characters on either side, so where the span's ends are not
    inside a token of the whole text, the span alone segments the same way; otherwise (spaCy cut a
    word, as in "do|n't") the span is analyzed by itself.
    """
    tokens, starts, ends = analyzed
    lo = bisect.bisect_left(starts, start)
    hi = bisect.bisect_right(ends, end)
    if (lo > 0 and ends[lo - 1] > start) or (hi < len(tokens) and starts[hi] < end):
        return analyze(text[start:end])
    return tokens[lo:hi]


def analyze_uax29(text: str) -> list[str]:
    """`analyze` through the general (non-ASCII) path; for the test that the two agree."""
    pieces = _WORD_BREAKS.split(text.translate(_JAVA_LOWER).lower())
    return [t for t in pieces if _KEEP.search(t)]
