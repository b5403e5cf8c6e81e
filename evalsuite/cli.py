"""`python -m evalsuite`: evaluate models with the paper's protocol, score outside outputs, tables.

Each command lives in its own module exposing `add_parser(sub)`; this file only assembles them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from core import lock as lockfile
from core.errors import command_parser, run_cli
from core.resolve import resolve

MODEL_ROLES = ("published", "base", "baseline", "reproduce-only")


def _cmd_models(args: argparse.Namespace) -> int:
    """Names `--model` accepts, and, with --check, where each would be loaded from."""
    from tabulate import tabulate

    from core.errors import UsageError

    lock = lockfile.load(args.lock)
    rows = []
    for entry in sorted(
        lock.entries.values(),
        key=lambda e: (MODEL_ROLES.index(e.role) if e.role in MODEL_ROLES else 9, e.name),
    ):
        if entry.role not in MODEL_ROLES:
            continue
        row = [entry.name, entry.paper_name, entry.repo_id or "(reproduce only)"]
        if args.check:
            try:
                row.append(resolve(entry.name, lock=lock).describe())
            except UsageError as exc:
                row.append(f"unavailable: {exc}")
        rows.append(row)
    headers = ["--model NAME", "paper name", "hub repo"] + (["resolves to"] if args.check else [])
    print(tabulate(rows, headers=headers, maxcolwidths=[None, 40, None, 70]))
    print("\n--model also accepts a local folder, or a hub id with --allow-unlocked.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser, sub = command_parser(
        "python -m evalsuite",
        "Evaluate models with the SmolLM2/lighteval protocol used by the SmolTulu paper.",
    )
    p = sub.add_parser("models", help="list the lock's model names that --model accepts")
    p.add_argument(
        "--check",
        action="store_true",
        help="also resolve each one (offline: from the local cache) and say where from",
    )
    p.set_defaults(func=_cmd_models)
    from evalsuite import demo, fidelity, run_cmd
    from evalsuite.harness import score_cmd
    from evalsuite.report import tables_cmd
    from evalsuite.sharpness import cmd as sharpness_cmd
    from evalsuite.trainingdata import contamination_cmd, languages_cmd

    for module in (run_cmd, score_cmd, tables_cmd, fidelity, demo):
        module.add_parser(sub)
    for module in (contamination_cmd, languages_cmd, sharpness_cmd):  # training data, sharpness
        module.add_parser(sub)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)
