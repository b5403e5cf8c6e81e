"""One results folder holds one model: claimed with its identity when a run starts, filled whole at the end.

`identity.json` names what the folder's results are of: for `run`, the sha256 of every file
of the model folder (all weight files, every `*.safetensors` shard and its index or any other
layout, config, generation config, tokenizer, chat template), for `score` the outputs file.
Each file is read and hashed in full (streamed, several files in parallel): about 1 GB/s per
core with SHA extensions, so ~3 s for SmolLM2-1.7B in bf16 and ~16 s of CPU for an 8B reward
model, read from the page cache when the model is loaded anyway. Sizes and mtimes are not an
identity: two models can share both.

A run under a label whose folder belongs to another model is refused; `--force` empties it
first. While a run works, its per-item records go to `.pending/`; at the end the old
results.json is removed, the records moved into `items/` (an earlier run's items files the new
results do not list removed) and the new results.json (with the sha256 of each items file)
written, so a results.json is only ever beside the items it was written with: a kill leaves the
folder without results.json (unfinished, ignored by `tables`), never with a mix. One run at a
time: `owned` holds the folder's run lock (core/run_lock.py) for the run's whole life, and a
failed run removes the folders it made if they hold nothing of use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import atomic, run_lock
from core.errors import UsageError, cannot_write, json_loads
from evalsuite import results as results_io

IDENTITY_FORMAT = "smoltulu-identity/1"
IDENTITY_FILE = results_io.IDENTITY_FILE
PENDING = ".pending"
CHUNK = 1 << 20
# Folders a run writes whole into `.pending/` and commit moves in whole, replacing the previous run's:
# lm-eval's own results and samples files (evalsuite/harness/lm_run.py, LmEvalFiles).
LM_EVAL_DIR = "lm-eval"
WHOLE_DIRS = (LM_EVAL_DIR,)


@dataclass(frozen=True)
class Identity:
    sha256: str  # over the (name, size, sha256) of every file
    kind: str  # "model-folder" | "outputs-file"
    source: str  # the folder or file it was computed from
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"size", "sha256"}

    def to_json(self) -> str:
        return json.dumps({"format": IDENTITY_FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n"


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _identity(kind: str, source: Path, files: list[Path]) -> Identity:
    workers = max(1, min(4, os.cpu_count() or 1, len(files)))
    try:
        if workers > 1:  # hashlib releases the GIL on large updates: shards hash in parallel
            with ThreadPoolExecutor(workers) as pool:
                hashed = list(pool.map(_hash_file, files))
        else:
            hashed = [_hash_file(p) for p in files]
    except OSError as exc:
        raise UsageError(f"cannot read {source} to identify it: {exc.strerror or exc}") from None
    entries = {p.name: {"size": size, "sha256": sha} for p, (size, sha) in zip(files, hashed, strict=True)}
    total = hashlib.sha256(kind.encode() + b"\n")
    for name in sorted(entries):
        total.update(f"{name}\t{entries[name]['size']}\t{entries[name]['sha256']}\n".encode())
    return Identity(total.hexdigest(), kind, str(source), entries)


def model_identity(folder: Path) -> Identity:
    """The identity of a model folder: every regular file in it (hidden ones aside), hashed in full."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    if not files:
        raise UsageError(f"{folder}: no model files in it")
    return _identity("model-folder", folder, files)


def outputs_identity(path: Path) -> Identity:
    """The identity of an outputs file `evalsuite score` reads."""
    return _identity("outputs-file", Path(path), [Path(path)])


def recorded(folder: Path) -> dict[str, Any] | None:
    """The identity a folder records; None when it records none (or an unreadable one)."""
    try:
        raw = json_loads((Path(folder) / IDENTITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and isinstance(raw.get("sha256"), str) else None


def _contents(folder: Path) -> list[Path]:
    """What a folder holds besides this module's own hidden temp entries."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _clear(folder: Path) -> None:
    """Empty a folder for another model: results.json first, so no step leaves it beside foreign items."""
    (folder / results_io.RESULTS_FILE).unlink(missing_ok=True)
    _remove(p for p in folder.iterdir() if p.name not in (IDENTITY_FILE, run_lock.LOCK_NAME))
    (folder / IDENTITY_FILE).unlink(missing_ok=True)


def claim(folder: Path, identity: Identity, *, force: bool = False) -> Path:
    """Make `folder` this identity's and return a fresh `.pending/` for its per-item records.

    A folder of another model (or with files but no identity) is refused, or emptied with
    force. The caller removes the pending folder with `discard` if the run fails.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(cannot_write(folder, exc, "results to ")) from None
    got = recorded(folder)
    if got is None or got["sha256"] != identity.sha256:
        if _contents(folder) and not force:
            if got is None:
                whose = f"files but no {IDENTITY_FILE} (written by an older version or by hand)"
            else:
                whose = f"the results of another model ({got.get('source')}, sha256 {got['sha256'][:12]})"
            raise UsageError(
                f"{folder} holds {whose}; this model is {identity.source} (sha256 {identity.sha256[:12]}): "
                "pass --force to replace them, or choose another --label"
            )
        try:
            _clear(folder)
        except OSError as exc:
            raise UsageError(f"cannot empty {folder} for the new model: {exc.strerror}") from None
        atomic.write_text(folder / IDENTITY_FILE, identity.to_json())
    pending = folder / PENDING
    try:
        _remove([pending])  # a killed run's records: recomputed from the request cache
        pending.mkdir(0o777)
    except OSError as exc:
        raise UsageError(cannot_write(folder, exc, "results to ")) from None
    return pending


def _missing_parents(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing.append(path)
    return missing


def _remove_if_unused(created: list[Path]) -> None:
    """After a failed run: the folders it made go again if nothing worth keeping is in them (no
    request cache, no results), so a bad run leaves no empty output folders behind."""
    if not created or any(p.name != IDENTITY_FILE for p in _contents(created[0])):
        return
    with contextlib.suppress(OSError):
        for name in (IDENTITY_FILE, run_lock.LOCK_NAME, PENDING):
            _remove([created[0] / name])
        for path in created:
            path.rmdir()  # fails (and stops) at the first folder something else was put in


def refuse_overlap(folder: Path, inputs: Iterable[Path | str | None]) -> None:
    """A results folder that is, holds or lies inside an input (the model folder, the outputs file,
    the data folder) is refused: --force would empty it, and results written into a model folder
    would change the model's identity."""
    here = Path(folder).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if here == source or here in source.parents or source in here.parents:
            raise UsageError(
                f"the results folder {folder} overlaps the input {given}: write results elsewhere "
                "(--output or --label)"
            )


@contextlib.contextmanager
def owned(
    folder: Path,
    identity: Identity,
    *,
    force: bool = False,
    what: str,
    inputs: Iterable[Path | str | None] = (),
) -> Iterator[Path]:
    """`with owned(folder, identity, what="evalsuite run ..") as pending:` the run's whole life in its folder.

    Holds the folder's run lock (core/run_lock.py: a second run into it is refused while this one
    lives), claims it for `identity`, yields the pending folder for per-item records and removes it at
    the end; on failure, folders this run created are removed again if they hold nothing of use.
    """
    folder = Path(folder)
    refuse_overlap(folder, [identity.source, *inputs])
    created = _missing_parents(folder)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(cannot_write(folder, exc, "results to ")) from None
        with run_lock.hold(folder, what):
            pending = claim(folder, identity, force=force)
            try:
                yield pending
            finally:
                discard(pending)
    except BaseException:
        _remove_if_unused(created)
        raise


def discard(pending: Path) -> None:
    with contextlib.suppress(OSError):
        _remove([Path(pending)])


def _unlisted_items(folder: Path, results: results_io.Results) -> list[Path]:
    """Items files of an earlier run that the new results.json does not list (a rerun of the label
    with fewer --benchmarks): removed, so every items file beside results.json is one of its own."""
    listed = {(folder / b.items).resolve() for b in results.benchmarks.values() if b.items}
    items = folder / results_io.ITEMS_DIR
    if not items.is_dir() or items.is_symlink():
        return []
    return [p for p in sorted(items.iterdir()) if p.resolve() not in listed and not p.name.startswith(".")]


def commit(folder: Path, results: results_io.Results, pending: Path) -> Path:
    """Replace the folder's results with `results`, whose items files sit in `pending`, whole.

    results.json goes first and comes back last: a kill or a full disk in between leaves the
    folder unfinished (no results.json), never a results.json beside items of another run. The
    WHOLE_DIRS are replaced whole (the previous run's go even when this run wrote none).
    """
    folder, pending = Path(folder), Path(pending)
    target = folder / results_io.RESULTS_FILE
    try:
        target.unlink(missing_ok=True)
        atomic.fsync_dir(folder)
        for bench in results.benchmarks.values():
            if not bench.items:
                continue
            src, dst = pending / bench.items, folder / bench.items
            if not src.is_file():  # never let an earlier run's file pass for this run's records
                dst.unlink(missing_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            atomic.fsync_dir(dst.parent)
        for name in WHOLE_DIRS:
            _remove([folder / name])
            if (pending / name).is_dir():
                os.replace(pending / name, folder / name)
        _remove(_unlisted_items(folder, results))
        atomic.fsync_dir(folder)
    except OSError as exc:
        raise atomic.write_error(target, exc) from None
    path = results_io.save(results, folder)
    discard(pending)
    return path
