"""Trainer checkpoints that a crash cannot pass off as whole.

transformers writes `checkpoint-N/` file by file, in place (weights, optimizer, scheduler, RNG
states, trainer_state.json), so a run killed or out of disk mid-save leaves a folder that looks
like the newest checkpoint and cannot be loaded. `CompletionMarker`, a TrainerCallback, runs
after transformers has written everything (`on_save`): it waits for every process (DeepSpeed and
FSDP ranks write their own shards), flushes the files to disk and then writes
`checkpoint_complete.json`, atomically and last, listing every file with its size. A checkpoint
is complete only when that marker is there and every file it lists has the listed size (which
also catches a checkpoint half-deleted by rotation). `--resume` continues from the newest
complete checkpoint; newer incomplete ones are named and removed (they can never be loaded, and
the resumed run writes those steps again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import atomic
from core.errors import json_loads

MARKER = "checkpoint_complete.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers.trainer_utils' naming


def _files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _fsync_tree(folder: Path) -> None:
    for path in [*sorted(folder.rglob("*")), folder]:
        if path.is_symlink():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:  # some filesystems cannot fsync a directory; the files are what matter
            if not path.is_dir():
                raise
        finally:
            os.close(fd)


def mark_complete(folder: Path, step: int) -> None:
    """Flush `folder` to disk, then record it as complete (the marker is written last, atomically)."""
    atomic.share_modes(folder)  # safetensors leaves its weights 0600; the umask decides, as elsewhere
    _fsync_tree(folder)
    record = {"step": step, "files": _files(folder)}
    atomic.write_text(folder / MARKER, json.dumps(record, indent=1, sort_keys=True) + "\n")


def problem(folder: Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None when it is."""
    try:
        record = json_loads((folder / MARKER).read_text(encoding="utf-8"))
        files = record["files"]
        if not isinstance(files, dict) or not files:
            return f"{MARKER} lists no files"
    except FileNotFoundError:
        return f"no {MARKER}: the run stopped while writing it"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MARKER} is unreadable"
    for name, size in files.items():
        try:
            actual = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, {size} were written"
    return None


@dataclass(frozen=True)
class Found:
    newest: Path | None  # the newest complete checkpoint
    incomplete: dict[Path, str]  # checkpoints newer than it that cannot be loaded, and why


def scan(checkpoints: Path) -> Found:
    """The newest complete checkpoint under `checkpoints` and the incomplete ones above it."""
    if not checkpoints.is_dir():
        return Found(None, {})
    numbered = []
    for path in checkpoints.iterdir():
        match = CHECKPOINT.match(path.name)
        if match and path.is_dir():
            numbered.append((int(match.group(1)), path))
    incomplete: dict[Path, str] = {}
    for _, path in sorted(numbered, reverse=True):
        why = problem(path)
        if why is None:
            return Found(path, incomplete)
        incomplete[path] = why
    return Found(None, incomplete)


def discard(found: Found) -> None:
    """Remove the incomplete checkpoints `scan` found, saying so (they can never be loaded)."""
    for path, why in sorted(found.incomplete.items()):
        print(f"skipping incomplete checkpoint {path.name} ({why}); removing it")
        shutil.rmtree(path, ignore_errors=True)


def callback() -> Any:
    """A TrainerCallback that marks each checkpoint complete once transformers has written it."""
    from transformers import TrainerCallback

    class CompletionMarker(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # every rank has written its shards
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    mark_complete(folder, state.global_step)
            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # no rank goes on (and maybe dies) before the marker is down

    return CompletionMarker()
