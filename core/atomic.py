"""Atomic writes: results appear whole or not at all (temp file or folder + rename).

Temp files and folders are created with os.open/os.mkdir and the ordinary modes (0666/0777),
so what is renamed into place carries the user's umask like any other file (tempfile's
mkstemp/mkdtemp would leave 0600/0700); a folder another library filled (safetensors writes
0600) gets the ordinary modes under the umask too (`share_modes`). A write that fails (a full disk,
a read-only folder) raises WriteError, a UsageError: one line, exit 2, and the temp file is gone.
The temp folder of a write that was killed is removed by the next write of the same folder
(`remove_stale`); a live write holds a flock on its own, so it is never taken for one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.errors import UsageError, cannot_write

TEMP_SUFFIX = ".tmp"


class WriteError(UsageError):
    """A file could not be written (full disk, permissions); nothing half-written was left."""


def write_error(path: Path, exc: OSError, what: str = "") -> WriteError:
    return WriteError(cannot_write(path, exc) + what)


def umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def share_modes(folder: Path) -> None:
    """Every file under `folder` 0666 and every folder 0777, less the umask: what a plain write gives
    (safetensors and some other writers leave 0600, tempfile 0700)."""
    mask = umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _held(folder: Path) -> int | None:
    """A descriptor holding an exclusive flock on `folder` (kept while a write fills it), or None when
    another live process holds it."""
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_stale(final: Path) -> list[Path]:
    """Remove the temp folders killed writes of `final` left beside it (`.<name>.<hex>.tmp`, model-sized
    for a run's final/): those no live process holds (output_dir keeps a flock on its temp folder)."""
    final = Path(final)
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.[0-9a-f]{{12}}{re.escape(TEMP_SUFFIX)}$")
    removed = []
    for path in sorted(final.parent.iterdir()) if final.parent.is_dir() else []:
        if not pattern.match(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = _held(path)
        except OSError:
            continue
        if fd is None:  # a write in progress
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


def open_in_place(path: Path, flags: int, mode: int = 0o666) -> int:
    """os.open for a file written in place (a lock, an append-only cache): never through a symbolic
    link, and only a regular file, so a link planted in the folder cannot redirect the write."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(
                f"{path} is a symbolic link; the suite writes only files it made: remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file; remove it")
    return fd


def temp_sibling(final: Path, tag: str = "") -> Path:
    """A fresh hidden name beside `final` (`.<name>.<tag><random>.tmp`), not yet created."""
    final = Path(final)
    return final.parent / f".{final.name}.{tag}{secrets.token_hex(6)}{TEMP_SUFFIX}"


def _open_temp(final: Path) -> tuple[Path, int]:
    for _ in range(100):
        tmp = temp_sibling(final)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {final}")


def make_temp_dir(final: Path, tag: str = "") -> Path:
    """Create an empty hidden folder beside `final` with the umask's ordinary mode."""
    for _ in range(100):
        tmp = temp_sibling(final, tag)
        try:
            tmp.mkdir(0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {final}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(handle: BinaryIO, data: bytes) -> None:
    """Write `data` to an open file and make it durable before the caller renames it into place."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _open_temp(path)
        with os.fdopen(fd, "wb") as handle:
            write_all(handle, data)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (LF line ends on every platform)."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def output_dir(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside `final`; on success it replaces `final`, on error it is removed.

    The caller checks `final` is free (or passes overwrite=True) before heavy work starts.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)  # what a killed write of it left
    tmp = make_temp_dir(final)
    try:
        fd = _held(tmp)
    except OSError:  # a filesystem without flock: the write goes on, a kill's leftover stays
        fd = None
    try:
        yield tmp
        share_modes(tmp)
        if final.exists():
            if not overwrite and any(final.iterdir()):
                raise FileExistsError(final)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def replace_dir(tmp: Path, final: Path) -> None:
    """Put the finished folder `tmp` in the place of `final` (a sibling), whole.

    `final` is renamed aside, `tmp` renamed into its place, the old one removed: at every
    instant `final` is either the old folder, absent, or the new folder, never a mix. A
    failure between the renames puts the old folder back.
    """
    tmp, final = Path(tmp), Path(final)
    if not final.exists():
        os.rename(tmp, final)
        fsync_dir(final.parent)
        return
    old = temp_sibling(final, "old-")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
