"""`python -m evalsuite tables`: the paper's tables regenerated from results, with statistics.

The output folder is replaced whole: the set is written into a hidden sibling folder and
swapped in (core.atomic.replace_dir), so a kill or a full disk leaves the previous set or the
new one, never a mix; stale temp folders of a killed run are removed by the next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core import atomic
from core.errors import UsageError, cannot_write, options, positive_int, seed
from evalsuite import results as results_fmt
from evalsuite.report import document, protocol_table

if TYPE_CHECKING:
    from evalsuite.report.analysis import Report

DEFAULT_RESULTS = results_fmt.DEFAULT_ROOT  # where `python -m evalsuite run` writes
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tables" / "generated"
FILES = {"md": "tables.md", "latex": "tables.tex"}
# every file `tables` writes (sharpness.png: only when sharpness files of grid points exist)
OUTPUTS = (*FILES.values(), "statistics.json", "claims.md", "forest.png", "sharpness.png")
TEMP_TAG = "tables-"  # .<out>.tables-<random>.tmp: the set being written


_positive = positive_int  # argparse type, shared with `evalsuite run`


def generate(
    result_dirs: list[Path] | None,
    out: Path,
    *,
    formats: tuple[str, ...] = ("md", "latex"),
    alpha: float = 0.05,
    resamples: int = 10_000,
    seed: int = 0,
    workers: int = 1,
    lock: Path | None = None,
    all_pairs: bool = False,
) -> tuple[Report, list[Path]]:
    """Everything `tables` writes; returns the report and the paths written (used by tests).

    all_pairs: compare every pair of models of the same kind, not only the pairs the paper
    compares (analysis.Settings.all_pairs).
    """
    from evalsuite.report import (
        analysis,
        claims,
        data_tables,
        forest,
        reported,
        result_set,
        sharpness_figure,
    )
    from evalsuite.sharpness import record as sharpness_record

    if not 0.0 < alpha < 0.5:
        raise UsageError(f"--alpha {alpha} must lie between 0 and 0.5")
    if resamples < 1000:
        raise UsageError(f"--resamples {resamples} is too few for 95% intervals; use at least 1000")
    out = _output_folder(out)
    scores = reported.load(lock_path=lock)
    claim_list = claims.load(scores)
    notes = []
    if result_dirs is None:
        dirs = [DEFAULT_RESULTS] if DEFAULT_RESULTS.is_dir() else []
        if not dirs:
            notes.append(f"no {DEFAULT_RESULTS}/ folder: every cell shows the reported value")
    else:
        dirs = result_dirs
    paths = results_fmt.discover(dirs)
    data = data_tables.build(dirs)  # before the statistics: a bad measurement file stops it early
    runs = result_set.load_runs(
        paths, scores, workers=workers, ablation_keys=claims.ablation_keys(claim_list)
    )
    settings = analysis.Settings(alpha=alpha, resamples=resamples, seed=seed, all_pairs=all_pairs)
    training = sharpness_record.discover(dirs)  # sharpness/*.json: the grid's claims 12-14 and its figure
    report = analysis.analyse(runs, scores, claim_list, settings, training)
    report.notes.extend(notes)
    for folder in results_fmt.unfinished(dirs):
        report.notes.append(
            f"{folder}: an unfinished `evalsuite run` (no results.json), not used; rerun it to finish"
        )
    report.notes.extend(data.notes())
    sources = [str(d) for d in dirs]

    # everything is rendered before the first file is written: a failure leaves the old set
    texts = {FILES[fmt]: document.document(report, scores, fmt, sources, data) for fmt in formats}  # type: ignore[arg-type]
    payload = {
        **report.to_json_obj(),
        "protocol_check": [asdict(r) for r in protocol_table.protocol_checks(report, scores)],
        "data_tables": data.to_json_obj(),
        "sources": sources,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    texts["statistics.json"] = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    texts["claims.md"] = document.claims_document(report)
    files = {name: text.encode("utf-8") for name, text in texts.items()}
    files["forest.png"] = forest.forest_png(report, scores)
    if figure := sharpness_figure.png(training, runs):
        files[sharpness_figure.FILE] = figure
    _write_set(out, files)
    return report, [out / name for name in files]


def _output_folder(out: Path) -> Path:
    """--out, checked before any work: a folder that holds nothing but a previous tables set.

    The set is replaced whole, folder and all, so a folder with other files in it (anything but
    OUTPUTS and hidden files such as .gitignore, which are carried over) is refused.
    """
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        out = out.resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder")
    if out.is_dir():
        other = sorted(
            p.name
            for p in out.iterdir()
            if p.name not in OUTPUTS and not (p.name.startswith(".") and p.is_file())
        )
        if other:
            raise UsageError(
                f"--out {out} holds files `tables` does not write ({', '.join(other[:3])}"
                f"{', ...' if len(other) > 3 else ''}); the set replaces the folder whole: pass an empty "
                "or new folder"
            )
    return out


def _stale(out: Path) -> list[Path]:
    """Temp folders a killed `tables` left beside `out`, and temp files of older versions inside it."""
    found = [*out.parent.glob(f".{out.name}.{TEMP_TAG}*.tmp"), *out.parent.glob(f".{out.name}.old-*.tmp")]
    if out.is_dir():
        found.extend(p for p in out.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
    return found


def _write_set(out: Path, files: dict[str, bytes]) -> None:
    """Write `files` as the whole content of `out` (hidden files already there are kept): all or nothing."""
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path in _stale(out):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        tmp = atomic.make_temp_dir(out, TEMP_TAG)
        # hidden files the folder holds (tables/generated's .gitignore) move with the set
        hidden = [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()] if out.is_dir() else []
        for name, data in {**{p.name: p.read_bytes() for p in hidden}, **files}.items():
            with (tmp / name).open("xb") as handle:
                atomic.write_all(handle, data)
        atomic.replace_dir(tmp, out)
        tmp = None
    except OSError as exc:
        raise UsageError(
            f"{cannot_write(out, exc, 'the tables to ')}; the previous tables are unchanged"
        ) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _versions() -> dict[str, str]:
    import numpy
    import scipy

    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__}


def _cmd(args: argparse.Namespace) -> int:
    formats = ("md", "latex") if args.format == "both" else (args.format,)
    report, written = generate(
        args.results,
        args.out,
        formats=formats,
        **options(args, "alpha", "resamples", "seed", "workers", "lock", "all_pairs"),
    )
    from evalsuite.report import tablegen

    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(report.models)} models with results, {report.ablation_points} ablation points")
    verdicts = Counter(s.verdict for s in report.scores if s.verdict is not None)
    if verdicts:
        print("reproduced vs reported: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
    if report.comparisons:
        print(f"{len(report.comparisons)} model-vs-model comparisons. {tablegen.holm_family(report)}")
    for claim in report.claims:
        caveat = f" (caveat: {claim.caveat})" if claim.caveat else ""
        print(f"claim {claim.id}: {claim.verdict} — {claim.reason}{caveat}")
    for path in written:
        print(f"wrote {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tables",
        help="regenerate the paper's tables from results, with intervals, tests and the claims",
        description=(
            "Regenerate paper Tables 2, 3, 5, 6, 7, 8, 9 (and the Reinforced model card row) from "
            "whatever results exist: a cell without a result shows the reported value, marked. "
            "The data tables (contamination, Tables 1, 4, 13; languages, Tables 10-12) show the printed "
            "values against the measurements of `evalsuite contamination` / `languages` found under "
            "--results (contamination/*.json, languages/*.json), and each score table the contamination "
            "of its benchmarks. "
            "Results of a real model with a protocol-check card in tables/reported (SmolLM2-135M-Instruct) "
            "get a protocol check table against that card. "
            "Writes tables.md / tables.tex, statistics.json, claims.md and forest.png."
        ),
    )
    p.add_argument(
        "--results",
        type=Path,
        nargs="+",
        metavar="DIR",
        help=f"results folders, searched at any depth for results.json (default: ./{DEFAULT_RESULTS}, "
        "the default output of `python -m evalsuite run`); training-data measurements in contamination/ "
        "and languages/ folders fill the data tables; 135M ablation points (results whose settings "
        "carry learning_rate and batch_size, e.g. under outputs/ablation-135m) feed claim 6",
    )
    p.add_argument(
        "--format", choices=("md", "latex", "both"), default="both", help="table format(s) (default: both)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help="output folder (default: tables/generated of the checkout)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    p.add_argument(
        "--resamples", type=_positive, default=10_000, help="bootstrap/permutation resamples (10000)"
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of every resampling stream (default: 0)")
    p.add_argument(
        "--all-pairs",
        action="store_true",
        help="model-vs-model tests for every pair of models of the same kind with results (default: only "
        "the pairs the paper compares, those of tables/claims.yaml); Holm still adjusts over the "
        "benchmarks of each pair, and the output says which pairs were compared",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=min(4, os.cpu_count() or 1),
        help="processes that parse results folders in parallel (default: CPU count, at most 4)",
    )
    p.set_defaults(func=_cmd)
