"""One writer per output folder: an advisory lock that a crash cannot leave stuck.

`hold(folder, what)` takes an exclusive `flock` on `folder/.lock` for as long as the block
runs. The kernel drops the lock when the holder's process ends in any way (exit, exception,
SIGKILL, out of memory), so a dead run never blocks the next one and nothing has to be cleaned
up; a second process asking while the holder lives gets a one-line UsageError (`Busy`) naming it (pid,
host, command, start time, which the holder writes into the lock file). The file itself is
left in place: deleting a lock file others may have opened would let two processes hold
"the" lock on two different files (acquire re-checks the path's inode for the same reason).

Used by `python -m repro NAME` for its run folder; `evalsuite run` can guard its results folder
the same way (`with run_lock.hold(folder, "evalsuite run ..."): ...`). POSIX only (fcntl); on a
filesystem without flock support the run goes ahead with a printed note.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core import atomic
from core.errors import UsageError, cannot_write, json_loads

LOCK_NAME = ".lock"
BUSY_TRIES, BUSY_WAIT_S = 5, 0.1  # a held lock is reported after half a second of asking


@dataclass
class Held:
    path: Path
    fd: int | None  # None: the filesystem could not lock; the run went ahead unguarded

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


def _describe(path: Path) -> str:
    try:
        info = json_loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {info['pid']} on {info['host']} since {since}: {info['what']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class Busy(UsageError):
    """Another live process holds the folder."""


def _busy(folder: Path, path: Path) -> Busy:
    return Busy(
        f"{folder} is in use by another run ({_describe(path)}); wait for it to finish, or choose "
        "another output folder"
    )


def acquire(folder: Path, what: str) -> Held:
    """Lock `folder` (which must exist) for this process, or raise UsageError naming the holder."""
    import fcntl

    folder = Path(folder)
    path = folder / LOCK_NAME
    tries = 0
    while True:
        try:
            fd = atomic.open_in_place(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise UsageError(cannot_write(folder, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            tries += 1
            if tries < BUSY_TRIES:  # `holder` probes take the lock shared for a moment
                time.sleep(BUSY_WAIT_S)
                continue
            raise _busy(folder, path) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                print(
                    f"note: {folder}: this filesystem cannot lock ({exc.strerror}); a concurrent run "
                    "into the same folder would not be detected",
                    file=sys.stderr,
                )
                return Held(path, None)
            raise UsageError(f"cannot lock {path}: {exc.strerror}") from None
        try:  # the file we locked must still be the one at `path` (not unlinked and replaced meanwhile)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "what": what,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return Held(path, fd)


def holder(folder: Path) -> str | None:
    """Who holds `folder`'s lock now (None: nobody, or no lock file); takes nothing."""
    import fcntl

    path = Path(folder) / LOCK_NAME
    try:
        fd = atomic.open_in_place(path, os.O_RDONLY)
    except (OSError, UsageError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(path)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def refuse_if_held(folder: Path) -> None:
    """UsageError when a live process holds `folder` (a quick check before slow preparation)."""
    if Path(folder).is_dir() and holder(folder) is not None:
        raise _busy(Path(folder), Path(folder) / LOCK_NAME)


@contextlib.contextmanager
def hold(folder: Path, what: str) -> Iterator[Held]:
    """`with hold(folder, "evalsuite run --model X"):` the block runs as the folder's only writer."""
    held = acquire(folder, what)
    try:
        yield held
    finally:
        held.release()
