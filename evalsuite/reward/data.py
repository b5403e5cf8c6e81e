"""Preference pairs for RewardBench and UFB, from the locked hub snapshot or a local folder.

Both sources share one layout: a folder of parquet or jsonl files. A hub snapshot holds
every split (`data/filtered-*.parquet`, `data/raw-*.parquet`), so files named after the
wanted split are taken when there are any; otherwise every file in the folder is.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import lock as lockfile
from core.errors import UsageError
from core.resolve import resolve

Message = dict[str, str]
EXTENSIONS = {".parquet": "parquet", ".jsonl": "json"}


@dataclass(frozen=True)
class Source:
    lock_name: str  # entry in checkpoints.lock
    split: str
    folder: str  # under --data-dir
    subset_column: bool  # RewardBench's rows name their subset; UFB is one set
    columns: str  # for error messages


SOURCES = {
    "rewardbench": Source(
        "reward-bench", "filtered", "rewardbench", True, "prompt, chosen, rejected, subset"
    ),
    "ufb": Source("ultrafeedback-binarized-cleaned", "test_prefs", "ufb", False, "prompt, chosen, rejected"),
}


@dataclass(frozen=True)
class Pair:
    id: str
    subtask: str
    prompt: str  # the raw user prompt; its hash identifies the item across models
    chosen: list[Message]  # full conversation ending in the assistant turn
    rejected: list[Message]

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()


def layout_hint(benchmark: str) -> str:
    src = SOURCES[benchmark]
    return f"<data-dir>/{src.folder}/ with parquet or jsonl files ({src.columns})"


def data_files(folder: Path, split: str) -> list[Path]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    named = [p for p in files if p.name.startswith(split)]
    return named or files


def _read_file(path: Path) -> tuple[list[Any], list[str]]:
    """The rows of one parquet or JSON-lines file, and where each came from (`file:line`)."""
    from evalsuite.harness.sources import read_rows

    rows = read_rows(path)
    return list(rows), rows.origins


def _read(files: list[Path]) -> tuple[list[Any], list[str]]:
    kinds = {EXTENSIONS[p.suffix] for p in files}
    if len(kinds) > 1:
        raise UsageError(f"{files[0].parent}: mixes parquet and jsonl files; keep one format")
    rows: list[Any] = []
    origins: list[str] = []
    for path in files:
        more, where = _read_file(path)
        rows += more
        origins += where
    return rows, origins


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _messages(value: Any, prompt: str | None, field: str) -> list[Message]:
    """A response as a conversation: a string becomes user(prompt) + assistant(value)."""
    if isinstance(value, str):
        if prompt is None:
            raise UsageError(f"field {field!r} is a string response, which needs a 'prompt' column")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": value}]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in value)
    ):
        messages = [{"role": str(m["role"]), "content": m["content"]} for m in value]
        if messages[-1]["role"] != "assistant":
            raise UsageError(f"field {field!r}: the conversation must end with an assistant turn")
        if messages[0]["role"] == "assistant":  # response-only list: the prompt is separate
            if prompt is None:
                raise UsageError(f"field {field!r}: an assistant-only conversation needs a 'prompt' column")
            messages.insert(0, {"role": "user", "content": prompt})
        return messages
    raise UsageError(
        f"field {field!r} is {_show(value)}, expected a string or a list of {{role, content}} messages"
    )


def _pair(row: Any, src: Source) -> tuple[str, list[Message], list[Message], str]:
    """(prompt, chosen, rejected, subtask) of one row; UsageError (without the row's place) if malformed."""
    if not isinstance(row, dict):
        raise UsageError(f"the row is {_show(row)}, expected an object with {src.columns}")
    needed = ("prompt", "chosen", "rejected", "subset") if src.subset_column else ("chosen", "rejected")
    missing = [f for f in needed if row.get(f) is None]
    if missing:
        raise UsageError(f"missing column(s) {', '.join(missing)}; expected {src.columns}")
    prompt = row.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise UsageError(f"field 'prompt' is {_show(prompt)}, expected text")
    chosen = _messages(row["chosen"], prompt, "chosen")
    rejected = _messages(row["rejected"], prompt, "rejected")
    if prompt is None:
        prompt = next((m["content"] for m in chosen if m["role"] == "user"), "")
    subtask = row["subset"] if src.subset_column else src.folder
    if not isinstance(subtask, str) or not subtask:
        raise UsageError(f"field 'subset' is {_show(subtask)}, expected a subset name")
    return prompt, chosen, rejected, subtask


def _pairs(rows: list[Any], origins: list[str], src: Source) -> list[Pair]:
    key = next((k for k in ("id", "prompt_id") if rows and isinstance(rows[0], dict) and k in rows[0]), None)
    seen: Counter[str] = Counter()
    pairs = []
    for row, origin in zip(rows, origins, strict=True):
        try:
            prompt, chosen, rejected, subtask = _pair(row, src)
            raw_id = row.get(key) if key else len(pairs)
            if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
                raise UsageError(f"field {key!r} is {_show(raw_id)}, expected an id (text or a number)")
        except UsageError as exc:
            raise UsageError(f"{origin}: {exc}; fix or remove that row") from None
        raw_id = str(raw_id)
        seen[raw_id] += 1
        pair_id = raw_id if seen[raw_id] == 1 else f"{raw_id}#{seen[raw_id]}"  # ids must be unique
        pairs.append(Pair(pair_id, subtask, prompt, chosen, rejected))
    return pairs


def _folder(benchmark: str, data_dir: Path | None, lock: lockfile.Lock | None, allow_unlocked: bool) -> Path:
    src = SOURCES[benchmark]
    if data_dir is None:
        return resolve(src.lock_name, lock=lock, allow_unlocked=allow_unlocked, repo_type="dataset").path
    if not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a directory")
    folder = Path(data_dir) / src.folder
    if not folder.is_dir():
        raise UsageError(
            f"{data_dir} has no {src.folder}/ folder for {benchmark}: expected {layout_hint(benchmark)}"
        )
    return folder


def load_pairs(
    benchmark: str,
    *,
    data_dir: Path | None = None,
    limit: int | None = None,
    lock: lockfile.Lock | None = None,
    allow_unlocked: bool = False,
    progress: bool = True,
) -> list[Pair]:
    """The benchmark's pairs; with `limit`, the first `limit` of each RewardBench subset (of UFB).

    Every row is checked; a malformed one is a UsageError naming its file, line and field.
    (`progress` is kept for callers: the files are read directly, without a progress bar.)
    """
    src = SOURCES[benchmark]
    folder = _folder(benchmark, data_dir, lock, allow_unlocked)
    files = data_files(folder, src.split)
    if not files:
        raise UsageError(f"{folder} has no .parquet or .jsonl files: expected {layout_hint(benchmark)}")
    pairs = _pairs(*_read(files), src)
    if not pairs:
        raise UsageError(f"{folder}: no rows")
    if limit is not None:
        taken: Counter[str] = Counter()
        kept = []
        for pair in pairs:
            taken[pair.subtask] += 1
            if taken[pair.subtask] <= limit:
                kept.append(pair)
        pairs = kept
    return pairs
