"""User-facing errors and the CLI wrapper that turns them into one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input or an unmet precondition the user can fix; the message says how."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block before its error; the suite's contract is one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def command_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The suite's top-level parser: one-line errors, --lock, and a required COMMAND."""
    from pathlib import Path

    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="checkpoints.lock to use (default: SMOLTULU_LOCK or the repository's)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    return parser, sub


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; UsageError becomes `prog: error: ...` on stderr and exit 2."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
