"""`python -m evalsuite contamination`: the paper's Tables 1, 4 and 13 measured on a training set.

Each of the 17 benchmarks is read (the suite's own readers for the four it evaluates, else
`datasets` at the lock's revision, or local files under --data-dir), indexed in memory, and the
training set is streamed through it with `datasets` over --workers processes. The definition is
Tulu 3's (evalsuite/trainingdata/contamination.py), with search.py's retrieval cap: each n-gram
credits only the first --search-size (100) user turns, in row order, that contain it. Writes one
JSON file, atomically: settings, and per benchmark its items, contaminated items, percent and each
flagged item's best match.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core import lock as lockfile
from core.errors import UsageError, non_negative_int, one_line, positive_int
from evalsuite.trainingdata import contamination as cont
from evalsuite.trainingdata import contamination_index as cont_index
from evalsuite.trainingdata import contamination_scan as cont_scan

DEFAULT_OUTPUT_DIR = Path("results") / "contamination"
TRAINING_SETS = ("tulu-3-sft-mixture", "tulu-3-preference-mixture", "rlvr-mixture")
# The conversation each row is indexed by. SFT and RLVR rows hold `messages`; the preference
# mixture holds `chosen`/`rejected` (same user turns): assumption, index.py's --messages_field
# had to name one of them, and `chosen` is the first.
MESSAGES_FIELDS = {
    "tulu-3-sft-mixture": "messages",
    "tulu-3-preference-mixture": "chosen",
    "rlvr-mixture": "messages",
}
DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".tsv", ".csv")


# --- benchmarks ---------------------------------------------------------------------------------
def _read_table(path: Path) -> list[dict[str, Any]]:
    from evalsuite.harness import sources

    if path.suffix in (".tsv", ".csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    return list(sources.read_rows(path))


def _local_rows(folder: Path, bench: cont.Benchmark) -> list[dict[str, Any]]:
    """Rows of a benchmark's split from a local copy in the hub layout (config/split folders or names)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file())
    groups: dict[str | None, list[Path]] = {}
    for p in files:
        parts = p.relative_to(folder).parts
        config = parts[0] if len(parts) > 1 else None
        groups.setdefault(config, []).append(p)
    if bench.config not in (None, cont.ALL_CONFIGS) and bench.config in groups:
        groups = {bench.config: groups[bench.config]}
    rows: list[dict[str, Any]] = []
    for _config, paths in sorted(groups.items(), key=lambda kv: kv[0] or ""):
        split = [p for p in paths if bench.split in (p.parent.name, *p.name.replace(".", "-").split("-")[:1])]
        if not split and len(paths) == 1:  # a config with one file (wildjailbreak's eval/eval.tsv)
            split = paths
        part: list[dict[str, Any]] = []
        for p in split:
            part.extend(_read_table(p))
        rows.extend(part[: bench.limit] if bench.limit else part)
    if not rows:
        raise FileNotFoundError(f"no {bench.split} rows under {folder}")
    return rows


def _suite_rows(bench: cont.Benchmark, folder: Path) -> list[dict[str, Any]]:
    from evalsuite.harness import sources

    split = {"gsm8k": "test", "ifeval": "train", "mmlu_pro": "test", "bbh": "train"}[bench.suite or ""]
    rows: list[dict[str, Any]] = []
    for subset in sources.subsets(bench.suite or ""):
        rows.extend(sources.read(bench.suite or "", folder, subset)[split])
    return rows


def _pinned(entry: lockfile.Entry, allow_unlocked: bool, alternative: str = "") -> str | None:
    """The commit to read `entry` at; None (the hub head) only with --allow-unlocked."""
    if entry.resolved:
        return entry.download_revision
    if not allow_unlocked:
        raise UsageError(
            f"{entry.name} is unresolved in checkpoints.lock: run `python -m repro lock update {entry.name}` "
            f"with network, pass --allow-unlocked{alternative}"
        )
    return None


def _hub_rows(bench: cont.Benchmark, lock: lockfile.Lock, allow_unlocked: bool) -> list[dict[str, Any]]:
    import datasets

    entry = lock.get(bench.lock)
    revision = _pinned(entry, allow_unlocked)
    repo = entry.repo_id or bench.name
    configs: list[str | None] = [bench.config]
    if bench.config == cont.ALL_CONFIGS:
        configs = list(datasets.get_dataset_config_names(repo, revision=revision))
    rows: list[dict[str, Any]] = []
    for config in configs:
        ds = datasets.load_dataset(repo, config, split=bench.split, revision=revision)
        part = ds.select(range(min(bench.limit, len(ds)))) if bench.limit else ds
        rows.extend(part.to_list())
    return rows


def load_benchmark(
    bench: cont.Benchmark, data_dir: Path | None, lock: lockfile.Lock, allow_unlocked: bool
) -> tuple[list[dict[str, Any]], str]:
    """The benchmark's rows and where they came from; UsageError (one line) when unavailable."""
    from evalsuite.harness import sources

    if data_dir is not None:
        candidates = [data_dir / bench.lock] + ([data_dir / bench.suite] if bench.suite else [])
        folder = next((p for p in candidates if p.is_dir()), None)
        if folder is None:
            raise UsageError(f"not available offline (no {' or '.join(map(str, candidates))})")
        if bench.suite and folder.name == bench.suite:
            return _suite_rows(bench, folder), str(folder)
        try:
            return _local_rows(folder, bench), str(folder)
        except FileNotFoundError as exc:
            raise UsageError(f"not available offline ({exc})") from None
    if bench.suite:
        folder = sources.benchmark_folder(bench.suite, None, allow_unlocked=allow_unlocked)
        return _suite_rows(bench, folder), str(folder)
    try:
        return _hub_rows(bench, lock, allow_unlocked), f"hub {bench.name}"
    except UsageError:
        raise
    except Exception as exc:  # offline, gated, moved: one line, and the other benchmarks go on
        raise UsageError(f"not available ({type(exc).__name__}: {one_line(str(exc))[:200]})") from None


def queries(bench: cont.Benchmark, rows: Iterable[dict[str, Any]]) -> tuple[list[tuple[str, ...]], int]:
    """Each row's field strings (search.py skips a row with any field None); and how many were skipped."""
    out, skipped = [], 0
    for row in rows:
        values = [row.get(f) for f in bench.fields]
        if any(v is None for v in values):
            skipped += 1
            continue
        out.append(tuple(str(v) for v in values))
    return out, skipped


# --- training set ---------------------------------------------------------------------------------
def training_rows(
    dataset: str | None,
    files: list[Path] | None,
    field: str | None,
    lock: lockfile.Lock,
    allow_unlocked: bool,
) -> tuple[Iterable[Any], int | None, dict[str, Any]]:
    """The rows' message lists, streamed with `datasets`, their count when known, and provenance."""
    import datasets

    if files:
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise UsageError(f"training file(s) not found: {', '.join(missing)}")
        kinds = {"parquet" if p.suffix == ".parquet" else "json" for p in files}
        if len(kinds) != 1 or any(p.suffix not in (".parquet", ".jsonl", ".json") for p in files):
            raise UsageError("--train-files takes .parquet files or .json/.jsonl files, not a mix")
        with _unreadable_files(files):
            ds = datasets.load_dataset(
                kinds.pop(), data_files=[str(p) for p in files], split="train", streaming=True
            )
        info: dict[str, Any] = {"files": [str(p) for p in files]}
        total = None
    else:
        assert dataset is not None
        entry = lock.get(dataset)
        if entry.role != "train-data":
            raise UsageError(
                f"{dataset} is not a training set in checkpoints.lock; one of {', '.join(TRAINING_SETS)}"
            )
        revision = _pinned(entry, allow_unlocked, ", or give --train-files")
        try:
            ds = datasets.load_dataset(entry.repo_id, split="train", revision=revision, streaming=True)
        except Exception as exc:
            raise UsageError(
                f"cannot stream {entry.repo_id} ({type(exc).__name__}: {one_line(str(exc))[:200]}); "
                "offline, give the files with --train-files"
            ) from None
        field = field or MESSAGES_FIELDS.get(entry.name)
        info = {
            "dataset": entry.name,
            "repo_id": entry.repo_id,
            "revision": revision or "unlocked (hub head)",
        }
        splits = getattr(ds.info, "splits", None) or {}
        total = splits["train"].num_examples if "train" in splits else None
    with _unreadable_files(files):
        first = next(iter(ds), None)
    if first is None or not isinstance(first, dict):
        raise UsageError(f"the training set has no rows{f' ({_names(files)})' if files else ''}")
    if field is None:
        field = next((f for f in ("messages", "chosen") if f in first), None)
        if field is None:
            raise UsageError(
                f"rows have no 'messages' or 'chosen' column ({sorted(first)}); pass --messages-field"
            )
    if field not in first:
        raise UsageError(f"rows have no {field!r} column ({sorted(first)}); pass --messages-field")
    info["messages_field"] = field
    ds = ds.select_columns([field])
    return _rows(ds, field, files), total, info


def _names(files: list[Path]) -> str:
    return ", ".join(str(p) for p in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


@contextlib.contextmanager
def _unreadable_files(files: list[Path] | None) -> Iterator[None]:
    """A local training file that `datasets` cannot read (empty, torn, not JSON, nested too deeply) is
    a one-line error naming it, whatever pyarrow raised (ArrowInvalid, StopIteration, ...)."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:
        if not files:
            raise
        reason = one_line(str(exc))[:200] or "empty, or no rows"
        raise UsageError(
            f"training file(s) {_names(files)} cannot be read ({type(exc).__name__}: {reason}); fix or "
            "remove the damaged rows"
        ) from None


def _rows(ds: Any, field: str, files: list[Path] | None) -> Iterator[Any]:
    with _unreadable_files(files):  # a damaged row further down the file
        for row in ds:
            yield row[field]


# --- the command ---------------------------------------------------------------------------------
def reported(dataset: str | None) -> dict[str, str]:
    """The paper's printed percentages for this training set (tables/reported/data), if any."""
    from evalsuite.report import data_tables

    if dataset is None or not data_tables.DATA_FILE.is_file():
        return {}
    tables = [t for t in data_tables.load() if t.kind == "contamination" and t.dataset == dataset]
    return {r.key: r.text for t in tables for r in t.rows}


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from core.atomic import write_text

    if args.method == "exact" and (args.ngram_size != cont.NGRAM_SIZE or args.threshold != cont.THRESHOLD):
        raise UsageError("--ngram-size and --threshold apply to --method ngram only")
    wanted = args.benchmarks or [b.name for b in cont.BENCHMARKS]
    unknown = [b for b in wanted if b not in cont.BY_NAME]
    if unknown:
        raise UsageError(
            f"unknown benchmark(s) {unknown}; known: {', '.join(b.name for b in cont.BENCHMARKS)}"
        )
    benches = [cont.BY_NAME[b] for b in dict.fromkeys(wanted)]
    lock = lockfile.load(Path(args.lock) if args.lock else None)
    data_dir = Path(args.data_dir) if args.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a folder")
    name = args.dataset or "local"
    output = Path(args.output) if args.output else DEFAULT_OUTPUT_DIR / f"{name}.json"
    rows, total, train_info = training_rows(
        args.dataset, args.train_files, args.messages_field, lock, args.allow_unlocked
    )

    loaded: list[tuple[str, list[tuple[str, ...]]]] = []
    status: dict[str, dict[str, Any]] = {}
    for bench in benches:
        try:
            raw, origin = load_benchmark(bench, data_dir, lock, args.allow_unlocked)
        except UsageError as exc:
            status[bench.name] = {"benchmark": bench.name, "status": "unavailable", "reason": str(exc)}
            print(f"{bench.name}: {exc}")
            continue
        items, skipped = queries(bench, raw)
        status[bench.name] = {"source": origin, "skipped": skipped, "fields": list(bench.fields)}
        loaded.append((bench.name, items))
    if not loaded:
        raise UsageError(
            "no benchmark data available: give --data-dir (e.g. ../shared/benchdata) or go online"
        )

    t0 = time.perf_counter()
    index = cont_index.build_index(
        loaded, method=args.method, n=args.ngram_size, threshold=args.threshold, progress=True
    )
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = cont_scan.scan(
        index,
        rows,
        workers=args.workers,
        batch_size=args.batch_size,
        search_size=args.search_size,
        total=total,
    )
    scan_s = time.perf_counter() - t0

    measured = {r["benchmark"]: r for r in cont_scan.summarize(index, result, status)}
    per = []
    for bench in benches:
        entry = measured.get(bench.name)
        if entry is None:
            per.append(status[bench.name])
            continue
        entry.update(source=status[bench.name]["source"], fields=status[bench.name]["fields"])
        per.append(entry)
    record = {
        "command": "contamination",
        "training_set": train_info,
        "definition": {
            "method": args.method,
            "ngram_size": args.ngram_size if args.method == "ngram" else None,
            "threshold": args.threshold if args.method == "ngram" else None,
            "search_size": result.cap["search_size"] if args.method == "ngram" else None,
            "search_order": "each n-gram credits its first search_size user turns in (row, turn) order "
            "(search.py's unscored filter query: Lucene doc id order of a single-shard index); 0: all",
            "training_text": f"each message with role {cont.TRAIN_ROLE!r} is one document",
            "benchmark_tokenizer": f"spaCy English tokenizer (as {cont.SPACY_PIPELINE})",
            "match": f"phrase match after the {cont.ANALYZER} analyzer",
            "reference": cont.SEARCH_PY,
            "sources": cont.SOURCES,
            "census": "every benchmark item and training row compared: no sampling, no interval",
        },
        "rows": result.rows,
        "documents": result.documents,
        "tokens": result.tokens,
        "search_cap": result.cap,
        "seconds": {"index": round(index_s, 2), "scan": round(scan_s, 2)},
        "workers": args.workers,
        "versions": _versions(),
        "benchmarks": per,
    }
    write_text(output, json.dumps(record, indent=2) + "\n")

    paper = reported(args.dataset)
    table = []
    for r in per:
        if r["status"] != "measured":
            table.append([r["benchmark"], "", "", "unavailable", paper.get(r["benchmark"], "")])
            continue
        table.append(
            [
                r["benchmark"],
                r["items"],
                r["contaminated"],
                f"{r['percent']:.2f}",
                paper.get(r["benchmark"], ""),
            ]
        )
    print(
        tabulate(
            table, headers=["benchmark", "items", "contaminated", "percent", "paper"], disable_numparse=True
        )
    )
    print(f"{result.rows} rows, {result.documents} user turns in {scan_s:.0f} s on {args.workers} worker(s)")
    if result.cap["search_size"]:
        print(
            f"search size {result.cap['search_size']}: {result.cap['phrases_over_cap']} n-grams matched more "
            f"user turns than that; {result.cap['uncredited_matches']} matches past the cap not credited"
        )
    print(f"wrote {output}")
    return 0


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("spacy", "regex", "datasets", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "contamination",
        help="benchmark contamination of a training set (the paper's Tables 1, 4, 13; Tulu 3's definition)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=TRAINING_SETS, help="a training set of checkpoints.lock")
    src.add_argument(
        "--train-files",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="local .parquet or .jsonl files of a training set",
    )
    p.add_argument("--messages-field", help="column with the conversation (default: per dataset, else auto)")
    p.add_argument(
        "--benchmarks", nargs="+", metavar="NAME", help="hub ids or lock names (default: all 17 of Table 1)"
    )
    p.add_argument(
        "--data-dir",
        help="read benchmarks from local folders: DIR/<suite name> (../shared/benchdata layout) "
        "or DIR/<lock name> (hub layout)",
    )
    p.add_argument("--method", choices=cont.METHODS, default="ngram", help="ngram: Tulu 3's (default)")
    p.add_argument("--ngram-size", type=positive_int, default=cont.NGRAM_SIZE, help=argparse.SUPPRESS)
    p.add_argument("--threshold", type=float, default=cont.THRESHOLD, help=argparse.SUPPRESS)
    p.add_argument(
        "--search-size",
        type=non_negative_int,
        default=cont.SEARCH_SIZE,
        metavar="N",
        help="documents each n-gram query returns, the first N user turns in row order, as search.py's "
        f"--search_size (default {cont.SEARCH_SIZE}); 0: every document (no cap)",
    )
    p.add_argument("--workers", type=positive_int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--batch-size", type=positive_int, default=512, help=argparse.SUPPRESS)
    p.add_argument("--output", help=f"JSON file (default: {DEFAULT_OUTPUT_DIR}/<dataset>.json)")
    p.add_argument("--lock", help="checkpoints.lock to use (default: the repository's)")
    p.add_argument(
        "--allow-unlocked", action="store_true", help="read unresolved lock entries at the hub head"
    )
    p.set_defaults(func=run)
