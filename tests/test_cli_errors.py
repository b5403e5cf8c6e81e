"""run_cli, the safety net of both CLIs: every failure is one line and exit 2; --debug shows it whole."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import pytest

from core import errors
from core.errors import UsageError, run_cli

pytestmark = pytest.mark.faults


def _fails_with(exc: BaseException):
    def main(argv: Sequence[str] | None) -> int:
        raise exc

    return main


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(errors.DEBUG_ENV, "")  # recorded, so whatever a test sets is undone after it
    monkeypatch.delenv(errors.DEBUG_ENV)


@pytest.mark.parametrize(
    ("exc", "needles"),
    [
        (UsageError("bad\n  input"), ["error: bad input"]),
        (
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/out/results.json"),
            ["/out/results.json", "full"],
        ),
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/ro"), ["/ro", "permissions"]),
        (NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/f/x"), ["/f/x", "is a file"]),
        (FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), "/f"), ["/f", "File exists"]),
        (OSError("Can't load tokenizer for 'x'.\nMake sure that:\n- it exists"), ["Can't load tokenizer"]),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), ["not UTF-8", "byte 0"]),
        (MemoryError(), ["out of memory"]),
        (ValueError("max() arg is an empty sequence"), ["internal error: ValueError: max()", "--debug"]),
        (KeyError("x"), ["internal error: KeyError: 'x'", "--debug"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_every_failure_is_one_line_and_exit_2(
    exc: BaseException, needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(_fails_with(exc), []) == 2
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


def test_an_internal_error_says_where_it_was_raised(capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: Sequence[str] | None) -> int:
        return errors.one_line(None)  # type: ignore[arg-type]  # a bug inside the suite's own code

    assert run_cli(main, []) == 2
    assert "(in core/errors.py:" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_debug_lets_the_exception_through(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(errors.DEBUG_ENV, value)
    with pytest.raises(ValueError, match="boom"):
        run_cli(_fails_with(ValueError("boom")), [])
    with pytest.raises(UsageError):
        run_cli(_fails_with(UsageError("bad")), [])


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_debug_off_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(errors.DEBUG_ENV, value)
    assert run_cli(_fails_with(ValueError("boom")), []) == 2


def test_the_debug_flag_is_accepted_by_every_parser_and_sets_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalsuite.cli import build_parser

    parser = build_parser()
    assert not hasattr(parser.parse_args(["models"]), "debug")
    assert os.environ.get(errors.DEBUG_ENV) is None
    assert parser.parse_args(["models", "--debug"]).debug is True
    assert os.environ[errors.DEBUG_ENV] == "1"  # the commands this one runs (the demo) inherit it
    monkeypatch.delenv(errors.DEBUG_ENV)
    assert parser.parse_args(["--debug", "models"]).debug is True


def test_interrupt_stays_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(_fails_with(KeyboardInterrupt()), []) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_system_exit_passes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(_fails_with(SystemExit(2)), [])


def test_read_text_names_the_file(tmp_path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(UsageError, match=r"latin1\.jsonl: not UTF-8 text \(byte 3"):
        errors.read_text(path)
    with pytest.raises(UsageError, match=r"cannot read .*absent"):
        errors.read_text(tmp_path / "absent")
