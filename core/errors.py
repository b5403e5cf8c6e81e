"""User-facing errors and the CLI wrapper that turns every failure into one line and exit 2.

`UsageError` is bad input or an unmet precondition, with a message that says what to do. Every
other exception that reaches `run_cli` is turned into one line too: an OSError names the path and
the reason (a read-only folder, a file where a folder is expected; a full disk names its
filesystem and the file being written, as does a library's own error for one), a file that is
not UTF-8 says so, and anything unexpected is reported as an internal error with its type, its
message and where it was raised. Control characters are shown escaped in every line. SIGTERM
unwinds like Ctrl-C, so every clean-up runs. JSON is read through `json_loads`, for which nesting
too deep for the parser is damage like any other. `--debug` (any command, either CLI) or
SMOLTULU_DEBUG=1 shows the traceback instead; the flag also sets SMOLTULU_DEBUG, so commands that
run other commands (the demo) pass it on.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import shutil
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2
DEBUG_ENV = "SMOLTULU_DEBUG"
DEBUG_HINT = "rerun with --debug for the traceback"
_PACKAGES = Path(__file__).resolve().parents[1]  # the folder holding core/, repro/ and evalsuite/


class UsageError(Exception):
    """Bad input or an unmet precondition the user can fix; the message says how."""


def debug_enabled() -> bool:
    """True when --debug was given or SMOLTULU_DEBUG is set to anything but 0/false/no/off."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class _DebugAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *_: Any) -> None:
        os.environ[DEBUG_ENV] = "1"  # read by run_cli, and inherited by the commands this one runs
        setattr(namespace, self.dest, True)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block before its error; the suite's contract is one line.

    Every parser of the suite's CLIs accepts --debug, so it may come before or after COMMAND.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug",
            action=_DebugAction,
            default=argparse.SUPPRESS,
            help=f"on failure, show the traceback instead of one line (also {DEBUG_ENV}=1)",
        )

    def error(self, message: str) -> NoReturn:
        # argparse quotes the user's own value, which may hold any character: one line, escaped
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def command_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The suite's top-level parser: one-line errors, --lock, --debug and a required COMMAND."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="checkpoints.lock to use (default: SMOLTULU_LOCK or the repository's)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    return parser, sub


def read_text(path: Path | str, what: str = "") -> str:
    """A UTF-8 text file the user gave; not UTF-8, absent or unreadable is a one-line UsageError."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what}{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); convert it to UTF-8"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {what}{path}: {exc.strerror or exc}") from None


def json_loads(text: str | bytes) -> Any:
    """json.loads, where nesting too deep for the parser (RecursionError, a few thousand brackets) is
    a JSONDecodeError like any other damage, so every reader's `except ValueError` names the file."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None


def parse_json(text: str | bytes, where: str) -> Any:
    """JSON from `where` (`file` or `file:line`); damage of any kind is a one-line UsageError."""
    try:
        return json_loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise UsageError(f"{where}: not valid JSON ({reason}); fix or remove it") from None


def read_json(path: Path | str, what: str = "") -> Any:
    """A JSON file: unreadable, not UTF-8 or not JSON is a one-line UsageError naming it."""
    return parse_json(read_text(path, what), f"{what}{path}")


def one_line(text: str) -> str:
    """A message on one line: line breaks and the blanks around them become one space, and any other
    control character (from a file or folder name, say) is shown escaped, never raw."""
    flat = re.sub(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*", " ", text.strip())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in flat)


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose another output folder, then rerun",
    errno.EACCES: "check its permissions, or choose a folder you can write to",
    errno.EPERM: "check its permissions, or choose a folder you can write to",
    errno.EROFS: "that filesystem is read-only: choose another folder",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "that path is a folder, not a file",
    errno.EEXIST: "something is already there (a file where a folder is expected?)",
    errno.ENAMETOOLONG: "choose a shorter path",
}
if hasattr(errno, "EDQUOT"):  # not on every platform
    _OS_HINTS[errno.EDQUOT] = "the disk quota is used up: free some space or choose another folder"


def describe_os_error(exc: OSError) -> str:
    """`path: reason; what to do` for an OSError that no command turned into a UsageError."""
    paths = [os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in (exc.filename, exc.filename2) if p]
    if exc.errno in _FULL and paths:
        return no_space(paths[-1])
    reason = exc.strerror or str(exc) or type(exc).__name__
    text = f"{' -> '.join(paths)}: {reason}" if paths else reason
    hint = _OS_HINTS.get(exc.errno) if exc.errno is not None else None
    return one_line(f"{text}; {hint}" if hint else text)


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
NEARLY_FULL = 16 << 20  # bytes free below which a failed write is put down to the disk


def _mount_point(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def disk_nearly_full(path: Path | str) -> bool:
    """True when the filesystem of `path` has (almost) no space left for this user."""
    try:
        return shutil.disk_usage(_mount_point(Path(path))).free < NEARLY_FULL
    except OSError:
        return False


def out_of_space(exc: BaseException | None, where: Path | str | None = None) -> bool:
    """Whether `exc` (or an exception it came from) is a full disk: ENOSPC/EDQUOT, a library's message
    saying so (safetensors), or, given `where`, any failed write while that disk is full (torch.save
    says only 'unexpected pos')."""
    seen: set[int] = set()
    first = exc
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        if any(t in str(exc) for t in _FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return first is not None and where is not None and disk_nearly_full(where)


def cannot_write(path: Path | str, exc: OSError, what: str = "") -> str:
    """`cannot write PATH: reason`, or for a full disk the line `no_space` gives."""
    if exc.errno in _FULL:
        return no_space(path)
    return one_line(f"cannot write {what}{path}: {exc.strerror or exc}")


def no_space(path: Path | str, then: str = "free some space or write elsewhere, then rerun") -> str:
    """The one line for a full disk: which filesystem, and the file (or folder) being written."""
    device = _mount_point(Path(path))
    return one_line(
        f"No space left on device (filesystem {device}) while writing {path}: the disk is full; {then}"
    )


def _where(exc: BaseException) -> str | None:
    """`package/module.py:LINE` of the innermost frame in the suite's own code, if any."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        try:
            rel = path.resolve().relative_to(_PACKAGES)
        except (OSError, ValueError):
            continue
        if rel.parts and rel.parts[0] in ("core", "repro", "evalsuite"):
            found = f"{rel.as_posix()}:{frame.lineno}"
    return found


@contextlib.contextmanager
def full_disk_named(path: Path | str) -> Iterator[None]:
    """Around a write of `path` by a library (safetensors, torch.save, tokenizers): a full disk becomes
    the one line `no_space` gives, whatever the library raised."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:
        if out_of_space(exc, path):
            raise UsageError(no_space(path)) from None
        raise


def describe(exc: BaseException) -> str:
    """The one line (without `error: `) that stands for `exc`."""
    if isinstance(exc, UsageError):
        return one_line(str(exc))
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if out_of_space(exc):  # a library's own error for a full disk (safetensors, tokenizers...)
        return one_line(f"no space left: the disk is full ({exc}); free some space or write elsewhere")
    where = _where(exc)
    at = f" (in {where})" if where else ""
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}){at}; convert it to UTF-8"
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory{at}; use a smaller batch size, --limit, or a machine with more memory"
    message = one_line(str(exc))
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"internal error: {detail}{at}; {DEBUG_HINT}"


def _stdout_gone() -> int:
    """The reader of stdout went away (`| head`): stop quietly, as other command-line tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler's stop): unwound like Ctrl-C, so every clean-up runs (locks
    released, unfinished outputs removed, run folders left resumable)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends at once: never blocks
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point: any failure becomes `error: ...` on stderr (one line) and exit 2.

    With --debug or SMOLTULU_DEBUG=1 the exception propagates with its traceback instead.
    Ctrl-C stays `interrupted` and exit 130, SIGTERM the same clean-up and 143; a closed stdout
    pipe ends quietly.
    """
    try:
        with _sigterm_unwinds():
            return main(argv)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if exc.filename is None:  # writing to our stdout, not to a file
            return _stdout_gone()
        if debug_enabled():
            raise
        print(f"error: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug_enabled():
            raise
        print(f"error: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named command-line options as keyword arguments (absent ones as None), for the function a
    command calls with them."""
    return {name: getattr(args, name, None) for name in names}


def _int_at_least(text: str, low: int, hint: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(hint)
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a batch size, a count)."""
    return _int_at_least(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0 (where 0 means none, or no limit)."""
    return _int_at_least(text, 0, "must be 0 or more")


MAX_SEED = 2**32 - 1  # numpy's limit; transformers' set_seed and the samplers seed numpy too


def seed(text: str) -> int:
    """argparse type: a seed from 0 to 2**32 - 1 (what every random generator the suite seeds takes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: a seed is 0 to {MAX_SEED}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (nan, inf, 0 and negatives refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a finite number above 0")
    return value
