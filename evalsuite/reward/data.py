"""Preference pairs for RewardBench and UFB, from the locked hub snapshot or a local folder.

Both sources share one layout: a folder of parquet or jsonl files. A hub snapshot holds
every split (`data/filtered-*.parquet`, `data/raw-*.parquet`), so files named after the
wanted split are taken when there are any; otherwise every file in the folder is.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import lock as lockfile
from repro.errors import UsageError
from repro.resolve import resolve

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


def _read(files: list[Path], progress: bool) -> list[dict[str, Any]]:
    from datasets import load_dataset
    from datasets import utils as ds_utils

    kinds = {EXTENSIONS[p.suffix] for p in files}
    if len(kinds) > 1:
        raise UsageError(f"{files[0].parent}: mixes parquet and jsonl files; keep one format")
    was_disabled = ds_utils.are_progress_bars_disabled()
    if not progress:
        ds_utils.disable_progress_bars()
    try:
        ds = load_dataset(kinds.pop(), data_files=[str(p) for p in files], split="train")
    except Exception as exc:  # malformed files surface as several datasets/pyarrow errors
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{files[0].parent}: cannot read {len(files)} file(s): {first_line}") from None
    finally:
        if not was_disabled:
            ds_utils.enable_progress_bars()
    return list(ds)


def _messages(value: Any, prompt: str | None, where: str) -> list[Message]:
    """A response as a conversation: a string becomes user(prompt) + assistant(value)."""
    if isinstance(value, str):
        if prompt is None:
            raise UsageError(f"{where}: a string response needs a 'prompt' column")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": value}]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in value)
    ):
        messages = [{"role": str(m["role"]), "content": m["content"]} for m in value]
        if messages[-1]["role"] != "assistant":
            raise UsageError(f"{where}: the conversation must end with an assistant turn")
        if messages[0]["role"] == "assistant":  # response-only list: the prompt is separate
            if prompt is None:
                raise UsageError(f"{where}: an assistant-only conversation needs a 'prompt' column")
            messages.insert(0, {"role": "user", "content": prompt})
        return messages
    raise UsageError(f"{where}: responses must be strings or lists of {{role, content}} messages")


def _pairs(rows: list[dict[str, Any]], src: Source, where: str) -> list[Pair]:
    needed = {"chosen", "rejected"} | ({"subset", "prompt"} if src.subset_column else set())
    if rows and (missing := sorted(needed - set(rows[0]))):
        raise UsageError(f"{where}: missing column(s) {', '.join(missing)}; expected {src.columns}")
    key = next((k for k in ("id", "prompt_id") if rows and k in rows[0]), None)
    raw_ids = [str(r[key]) if key else str(i) for i, r in enumerate(rows)]
    seen: Counter[str] = Counter()
    pairs = []
    for i, (row, raw_id) in enumerate(zip(rows, raw_ids, strict=True)):
        seen[raw_id] += 1
        pair_id = raw_id if seen[raw_id] == 1 else f"{raw_id}#{seen[raw_id]}"  # ids must be unique
        at = f"{where} row {i}"
        prompt = row.get("prompt")
        chosen = _messages(row["chosen"], prompt, at)
        rejected = _messages(row["rejected"], prompt, at)
        if not isinstance(prompt, str):
            prompt = next((m["content"] for m in chosen if m["role"] == "user"), "")
        subtask = str(row["subset"]) if src.subset_column else src.folder
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
    """The benchmark's pairs; with `limit`, the first `limit` of each RewardBench subset (of UFB)."""
    src = SOURCES[benchmark]
    folder = _folder(benchmark, data_dir, lock, allow_unlocked)
    files = data_files(folder, src.split)
    if not files:
        raise UsageError(f"{folder} has no .parquet or .jsonl files: expected {layout_hint(benchmark)}")
    pairs = _pairs(_read(files, progress), src, str(folder))
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
