"""Language presence in the training mixtures: the paper's Tables 10–12, with sampling intervals.

The paper says only "Using XLM-RoBERTa for language detection, we can get an estimate for the
presence of each language in a given dataset"; its 20 rows are exactly the labels of
papluca/xlm-roberta-base-language-detection (pinned in checkpoints.lock as
`xlm-roberta-language-detection`). The rest is chosen here and recorded with every result:

- a seeded simple random sample of rows without replacement (numpy `default_rng(seed).choice`),
  DEFAULT_SAMPLE rows unless told: the 95% Wilson interval of a share is then about ±0.7 points
  at the paper's 83% English, ±0.2 at 1%, 0.05–0.18 at 0.1% (the whole set when it is smaller);
- one text per row, `--text` (TEXT_CHOICES): by default the first user turn, the one text every
  mixture has in the same place (SFT `messages`, the preference pair's shared prompt, the RLVR
  prompt), written by the user, whose language the reply follows; whole conversations add
  code, maths and translation targets, which vote for the wrong language;
- that text cut at 512 tokens (`--max-length`), the most the classifier reads (where a
  text-classification pipeline with truncation=True cuts too); every detector reads the same cut text;
- shares over the rows with a text and a label, each with a 95% Wilson score interval
  (evalsuite.report.stats); a row with no text of the chosen kind is counted, not classified.

A second detector (`lingua`, lingua-language-detector, whose models ship in its PyPI wheel) can
classify the same texts, restricted to the same 20 languages as papluca's model card does for
its langid baseline; its shares and its agreement with the first detector (rate with a Wilson
interval, Cohen's kappa, the commonest disagreements) are reported beside them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import atomic
from core import lock as lockfile
from core.errors import UsageError
from core.preference import sides
from core.resolve import Resolved, resolve
from evalsuite.report.stats import CONFIDENCE, wilson_interval
from evalsuite.trainingdata.language_detectors import (
    LANGUAGES,
    Detector,
    LinguaDetector,
    Texts,
    XLMRobertaDetector,
    cut_texts,
)

SCHEMA = 1
DETECTOR_LOCK_NAME = "xlm-roberta-language-detection"
DETECTORS = ("xlm-roberta", "lingua")
# The training mixtures (lock names) and the table of the paper that reports each.
PAPER_TABLES = {
    "tulu-3-sft-mixture": "Table 10",
    "tulu-3-preference-mixture": "Table 11",
    "rlvr-mixture": "Table 12",
}
TEXT_CHOICES = {
    "first-user": "the first user turn",
    "all-user": "every user turn, joined by a blank line",
    "all": "every turn (system, user, assistant), joined by a blank line",
}
DEFAULT_TEXT = "first-user"
DEFAULT_SAMPLE = 10_000
DEFAULT_SEED = 0
DEFAULT_MAX_LENGTH = 512  # xlm-roberta-base: 514 positions less the padding offset
DEFAULT_BATCH_SIZE = 32
JOIN = "\n\n"
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")  # in order of preference within one folder

Message = dict[str, Any]


# ---------------------------------------------------------------- rows and their text


def conversation(row: dict[str, Any], origin: str) -> list[Message]:
    """The row's conversation: SFT/RLVR `messages`, or a preference pair's whole `chosen` side."""
    if isinstance(row.get("messages"), list):
        messages = row["messages"]
    elif isinstance(row.get("chosen"), list) and isinstance(row.get("rejected"), list):
        messages = sides(row)[0]  # both sides share the prompt; the chosen one is the row's
    else:
        raise UsageError(
            f"{origin}: a row needs `messages` (SFT, RLVR) or `chosen`/`rejected` (preference) lists; "
            f"it has {sorted(row)}"
        )
    for message in messages:
        if not (
            isinstance(message, dict) and isinstance(message.get("content"), str) and message.get("role")
        ):
            raise UsageError(f"{origin}: a message is {str(message)[:80]!r}, not {{role, content}}")
    return messages


def select_text(row: dict[str, Any], text: str, origin: str = "row") -> str:
    """The text of a row that is classified, per TEXT_CHOICES ("" when the row has none)."""
    messages = conversation(row, origin)
    if text == "first-user":
        return next((m["content"] for m in messages if m["role"] == "user"), "")
    if text == "all-user":
        return JOIN.join(m["content"] for m in messages if m["role"] == "user")
    if text == "all":
        return JOIN.join(m["content"] for m in messages)
    raise UsageError(f"--text {text!r}: choose one of {', '.join(TEXT_CHOICES)}")


def sample_indices(n_rows: int, n: int, seed: int) -> list[int]:
    """A seeded simple random sample of row indices without replacement, in row order (all rows when
    n >= n_rows)."""
    if n >= n_rows:
        return list(range(n_rows))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n_rows, size=n, replace=False))


@dataclass
class Source:
    """Where the rows come from, as recorded in the results."""

    name: str
    path: Path
    repo_id: str | None = None
    revision: str | None = None
    paper_table: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "repo_id": self.repo_id,
            "revision": self.revision,
            "paper_table": self.paper_table,
        }


def data_files(path: Path) -> list[Path]:
    """The data files of a file or folder: one format, the train split's files when split names show."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"{path}: no such file or folder")
    for suffix in DATA_SUFFIXES:
        found = sorted(
            p
            for p in path.rglob(f"*{suffix}")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        train = [p for p in found if "train" in p.relative_to(path).as_posix()]
        if found:
            return train or found
    raise UsageError(f"{path}: holds no {', '.join(DATA_SUFFIXES)} files")


class Table:
    """The rows of a data set's files, read only where sampled (parquet: by row, from disk)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        if files[0].suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.dataset as pads

            try:
                self._parquet = pads.dataset([str(f) for f in files], format="parquet")
                self.n_rows = self._parquet.count_rows()
            except (OSError, pa.ArrowException) as exc:
                raise UsageError(f"{files[0].parent}: unreadable parquet files ({exc})") from None
            self._rows = None
        else:
            from evalsuite.harness.sources import Rows, read_rows

            self._rows = Rows()
            for f in files:
                self._rows.join(read_rows(f))
            self.n_rows = len(self._rows)

    def take(self, indices: Sequence[int]) -> list[tuple[dict[str, Any], str]]:
        """(row, where it came from) for each index."""
        if self._rows is not None:
            return [(self._rows[i], self._rows.origins[i]) for i in indices]
        names = set(self._parquet.schema.names)
        columns = [c for c in ("id", "messages", "prompt", "chosen", "rejected") if c in names]
        rows = self._parquet.take(list(indices), columns=columns).to_pylist()
        return [(row, f"{self.files[0].parent} row {i + 1}") for row, i in zip(rows, indices, strict=True)]


def open_dataset(
    name: str, *, data_dir: Path | None, lock: lockfile.Lock | None, allow_unlocked: bool
) -> tuple[Source, Table]:
    """--dataset NAME: a local file or folder, or a lock name read from --data-dir or the hub."""
    local = Path(name).expanduser()
    if data_dir is None and (local.is_file() or local.is_dir()):
        return Source(name=local.stem or local.name, path=local.resolve()), Table(data_files(local))
    lock = lock or lockfile.load()
    try:
        entry = lock.get(name)
    except UsageError:
        raise UsageError(
            f"--dataset {name}: no such file or folder, and not a lock name; the training mixtures are "
            + ", ".join(PAPER_TABLES)
        ) from None
    if entry.repo_type != "dataset":
        raise UsageError(f"{entry.name} is a {entry.repo_type} in the lock, not a data set")
    source = Source(
        name=entry.name, path=Path(), repo_id=entry.repo_id, paper_table=PAPER_TABLES.get(entry.name)
    )
    if data_dir is not None:
        source.path, source.revision = data_dir.resolve(), None  # a download the lock did not check
        return source, Table(data_files(data_dir))
    resolved = resolve(entry.name, lock=lock, allow_unlocked=allow_unlocked, repo_type="dataset")
    source.path, source.revision = resolved.path, resolved.revision
    return source, Table(data_files(resolved.path))


# ---------------------------------------------------------------- detectors


# ---------------------------------------------------------------- statistics


def language_shares(
    labels: Sequence[str | None], reported: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Per language: rows, share (percent of the labelled rows) and its 95% Wilson interval; every one
    of the 20 languages, most frequent first (then the paper's share, then the code)."""
    counts = Counter(label for label in labels if label is not None)
    n = sum(counts.values())
    reported = reported or {}
    rows = []
    for code, name in LANGUAGES.items():
        entry: dict[str, Any] = {"code": code, "language": name, "count": counts.get(code, 0)}
        if n:
            ci = wilson_interval(entry["count"], n)
            entry.update(share=100 * entry["count"] / n, low=100 * ci.low, high=100 * ci.high)
        if code in reported:
            entry["paper"] = reported[code]
            entry["paper_inside"] = bool(n) and entry["low"] <= reported[code] <= entry["high"]
        rows.append(entry)
    rows.sort(key=lambda e: (-e["count"], -e.get("paper", 0.0), e["code"]))
    return rows


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Agreement beyond chance of two labelings of the same rows (hand-written: three lines of
    arithmetic; scikit-learn is not a dependency)."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    return None if chance == 1.0 else (observed - chance) / (1.0 - chance)


def agreement(first: Sequence[str | None], other: Sequence[str | None]) -> dict[str, Any]:
    """How often `other` gives the label `first` gives, over the rows both labelled."""
    pairs = [(a, b) for a, b in zip(first, other, strict=True) if a is not None and b is not None]
    result: dict[str, Any] = {
        "compared": len(pairs),
        "only_first": sum(a is not None and b is None for a, b in zip(first, other, strict=True)),
        "only_other": sum(a is None and b is not None for a, b in zip(first, other, strict=True)),
    }
    if not pairs:
        return result
    agreed = sum(a == b for a, b in pairs)
    ci = wilson_interval(agreed, len(pairs))
    by_first = Counter(a for a, _ in pairs)
    agreed_by = Counter(a for a, b in pairs if a == b)
    result.update(
        agreed=agreed,
        rate=100 * agreed / len(pairs),
        low=100 * ci.low,
        high=100 * ci.high,
        kappa=cohen_kappa([a for a, _ in pairs], [b for _, b in pairs]),
        by_language=[
            {"code": code, "language": LANGUAGES[code], "count": count, "agreed": agreed_by[code]}
            for code, count in by_first.most_common()
        ],
        disagreements=[
            {"first": a, "other": b, "count": count}
            for (a, b), count in Counter((a, b) for a, b in pairs if a != b).most_common(10)
        ],
    )
    return result


# ---------------------------------------------------------------- the paper's values


def reported_shares(dataset: str, path: Path | None = None) -> dict[str, float] | None:
    """The paper's shares (percent, by label) for a mixture: its `kind: languages` table of
    tables/reported/data/data_tables.yaml, read by the tables' own loader (report/data_tables.py)."""
    from evalsuite.report import data_tables

    path = path or data_tables.DATA_FILE
    if dataset not in PAPER_TABLES or not path.is_file():
        return None
    table = next((t for t in data_tables.load(path) if t.kind == "languages" and t.dataset == dataset), None)
    if table is None:
        return None
    by_name = {name.lower(): code for code, name in LANGUAGES.items()}
    shares = {}
    for row in table.rows:
        name = row.key.strip()
        code = name if name in LANGUAGES else by_name.get(name.lower())
        if code is None:
            raise UsageError(f"{path}: {dataset}: {name!r} is not one of the detector's 20 languages")
        shares[code] = row.value
    return shares


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Settings:
    sample: int = DEFAULT_SAMPLE
    seed: int = DEFAULT_SEED
    text: str = DEFAULT_TEXT
    max_length: int = DEFAULT_MAX_LENGTH
    batch_size: int = DEFAULT_BATCH_SIZE
    detectors: tuple[str, ...] = ("xlm-roberta",)

    def check(self) -> None:
        if self.text not in TEXT_CHOICES:
            raise UsageError(f"--text {self.text!r}: choose one of {', '.join(TEXT_CHOICES)}")
        unknown = [d for d in self.detectors if d not in DETECTORS]
        if unknown or not self.detectors:
            raise UsageError(f"--detector {' '.join(unknown)}: choose from {', '.join(DETECTORS)}")
        if len(set(self.detectors)) != len(self.detectors):
            raise UsageError(f"--detector {' '.join(self.detectors)}: name each detector once")
        if self.sample < 1 or self.batch_size < 1:
            raise UsageError("--sample and --batch-size must be at least 1")
        if self.max_length < 0 or 0 < self.max_length < 3:
            raise UsageError("--max-length: 0 (no cut; lingua only) or at least 3 tokens (<s>, one, </s>)")
        if self.max_length == 0 and "xlm-roberta" in self.detectors:
            raise UsageError("--max-length 0 (whole texts) is for lingua alone: xlm-roberta reads 512 tokens")


def classifier_folder(model_dir: Path | None, lock: lockfile.Lock | None, allow_unlocked: bool) -> Resolved:
    """The classifier: --model-dir, else the lock's pin of papluca/xlm-roberta-base-language-detection."""
    if model_dir is not None:
        if not model_dir.is_dir():
            raise UsageError(f"--model-dir {model_dir}: no such folder")
        return resolve(str(model_dir), lock=lock)
    return resolve(DETECTOR_LOCK_NAME, lock=lock, allow_unlocked=allow_unlocked)


def build_detectors(
    settings: Settings, classifier: Resolved | None, *, progress: bool = True
) -> tuple[list[Detector], Any]:
    """The detectors of `settings`, in order, and the tokenizer that cuts the texts (None: whole texts)."""
    settings.check()
    detectors: list[Detector] = []
    tokenizer = None
    for name in settings.detectors:
        if name == "xlm-roberta":
            if classifier is None:
                raise ValueError("xlm-roberta needs the classifier's folder")
            xlmr = XLMRobertaDetector(
                classifier, batch_size=settings.batch_size, max_length=settings.max_length, progress=progress
            )
            tokenizer = xlmr.tokenizer
            detectors.append(xlmr)
        else:
            detectors.append(LinguaDetector(progress=progress))
    if settings.max_length and tokenizer is None:  # lingua alone still cuts where the classifier would
        if classifier is None:
            raise ValueError("cutting at --max-length needs the classifier's tokenizer")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(classifier.path, trust_remote_code=False)
    return detectors, tokenizer


def measure(
    source: Source,
    table: Table,
    settings: Settings,
    detectors: Sequence[Detector],
    tokenizer: Any,
    *,
    reported: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Sample the rows, select and cut their texts, run every detector on them, gather the results."""
    settings.check()
    if [d.name for d in detectors] != list(settings.detectors):
        raise ValueError(f"detectors {[d.name for d in detectors]} are not {settings.detectors}")
    if table.n_rows == 0:
        raise UsageError(f"{source.path}: the data set has no rows")
    indices = sample_indices(table.n_rows, settings.sample, settings.seed)
    rows = table.take(indices)
    raw = [select_text(row, settings.text, origin) for row, origin in rows]
    if settings.max_length == 0:
        texts = Texts(raw, None, [False] * len(raw))
    else:
        if tokenizer is None:
            raise ValueError("cutting at --max-length needs the classifier's tokenizer")
        texts = cut_texts(raw, tokenizer, settings.max_length)

    labels = {d.name: d.classify(texts) for d in detectors}
    first = settings.detectors[0]
    no_text = sum(not t.strip() for t in texts.texts)
    per_detector = {}
    for detector in detectors:
        found = labels[detector.name]
        per_detector[detector.name] = {
            **detector.record(),
            "classified": sum(label is not None for label in found),
            "no_text": no_text,
            "undetermined": sum(label is None for label in found) - no_text,
            "languages": language_shares(found, reported),
        }
    ids = [row.get("id") for row, _ in rows]
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dataset": {**source.record(), "rows": table.n_rows},
        "settings": {
            "sample": settings.sample,
            "sampled": len(indices),
            "census": len(indices) == table.n_rows,
            "seed": settings.seed,
            "sampling": "numpy default_rng(seed).choice(rows, sample, replace=False), sorted",
            "text": settings.text,
            "text_means": TEXT_CHOICES[settings.text],
            "max_length": settings.max_length,
            "cut_rows": sum(texts.cut),
            "batch_size": settings.batch_size,
            "detectors": list(settings.detectors),
            "interval": f"Wilson score, {100 * CONFIDENCE:.0f}%",
            "share_of": "rows with a text and a label",
        },
        "primary": first,
        "detectors": per_detector,
        "agreement": {d.name: agreement(labels[first], labels[d.name]) for d in detectors if d.name != first},
        "rows": [
            {
                "index": index,
                "id": ids[k],
                "chars": len(texts.texts[k]),
                "cut": texts.cut[k],
                "labels": {name: labels[name][k] for name in settings.detectors},
            }
            for k, index in enumerate(indices)
        ],
    }


def write(result: dict[str, Any], path: Path) -> None:
    """The results JSON, whole or not at all."""
    atomic.write_text(path, json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def summary(result: dict[str, Any]) -> str:
    """The primary detector's table (the others' shares beside it) and the agreement lines."""
    from tabulate import tabulate

    first = result["primary"]
    others = [d for d in result["detectors"] if d != first]
    reported = any("paper" in e for e in result["detectors"][first]["languages"])
    rows = []
    other_share = {
        d: {e["code"]: e.get("share") for e in result["detectors"][d]["languages"]} for d in others
    }
    for e in result["detectors"][first]["languages"]:
        row = [e["language"], e["count"], _pct(e.get("share")), f"{_pct(e.get('low'))}–{_pct(e.get('high'))}"]
        row += [_pct(other_share[d][e["code"]]) for d in others]
        if reported:
            paper = e.get("paper")
            row += [_pct(paper), "" if paper is None else ("yes" if e["paper_inside"] else "no")]
        rows.append(row)
    headers = ["language", "rows", f"{first} %", "95% interval"] + [f"{d} %" for d in others]
    headers += ["paper %", "paper inside"] if reported else []
    s, ds = result["settings"], result["dataset"]
    drawn = " (all)" if s["census"] else f", seed {s['seed']}"
    lines = [
        f"{ds['name']} ({ds['paper_table'] or 'no paper table'}): {s['sampled']:,} of {ds['rows']:,} rows"
        f"{drawn}; text: {s['text']} ({s['text_means']}), cut at {s['max_length'] or 'no'} tokens "
        f"({s['cut_rows']:,} cut)",
        tabulate(rows, headers=headers, disable_numparse=True),
    ]
    d = result["detectors"][first]
    lines.append(
        f"{d['no_text']:,} rows had nothing to classify under --text {s['text']}; "
        f"{d['undetermined']:,} left undetermined by {first}"
    )
    for other, a in result["agreement"].items():
        if not a["compared"]:
            lines.append(f"{other}: no row labelled by both")
            continue
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
        lines.append(
            f"{other} agrees with {first} on {a['agreed']:,} of {a['compared']:,} rows "
            f"({a['rate']:.2f}%, 95% {a['low']:.2f}–{a['high']:.2f}; Cohen's kappa {kappa}); "
            f"{a['only_first']:,} labelled by {first} only"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
