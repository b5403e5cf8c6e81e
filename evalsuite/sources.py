"""Benchmark data: hub snapshots pinned by checkpoints.lock, or local folders.

Every reader returns rows in the hub's schema (field names of the dataset on the hub), so
the task definitions see one schema whatever the source. A local folder may hold either the
hub layout (parquet/jsonl files under config/split folders, as `huggingface-cli download`
leaves them, including refs/convert/parquet conversions) or the layouts of
../shared/benchdata (original GitHub files and the conversions its README lists).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.errors import UsageError

Row = dict[str, Any]

# One place for each benchmark's data facts: lock entry, hub config/split, expected rows.
BBH_SUBSETS = (
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
    "word_sorting",
)

LOCK_NAMES = {
    "arc": "ai2-arc",
    "bbh": "big-bench-hard",
    "gsm8k": "gsm8k",
    "hellaswag": "hellaswag",
    "ifeval": "ifeval",
    "mmlu_pro": "mmlu-pro",
    "piqa": "piqa",
}


def _read_rows(path: Path) -> list[Row]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:  # one document (BIG-Bench-Hard's {"examples": [...]}) or, failing that, JSON lines
            data = json.loads(text)
            return data["examples"] if isinstance(data, dict) and "examples" in data else data
        except json.JSONDecodeError:
            pass
    # split on "\n" only: str.splitlines also breaks at U+2028 inside JSON strings
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def _hub_files(folder: Path, *, config: str | None, split: str) -> list[Path]:
    """Data files of one config/split in a hub snapshot (`cfg/split-0000-of-0001.parquet`,
    refs/convert/parquet's `cfg/split/0000.parquet`, or `data/split-….parquet`)."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".parquet", ".jsonl", ".json") or not path.is_file():
            continue
        parts = path.relative_to(folder).parts
        stem_split = re.split(r"[-.]", path.name)[0]
        in_split = stem_split == split or (len(parts) > 1 and parts[-2] == split)
        in_config = config is None or config in parts[:-1]
        if in_split and in_config:
            out.append(path)
    return out


def _hub_split(folder: Path, config: str | None, split: str) -> list[Row] | None:
    files = _hub_files(folder, config=config, split=split)
    if not files:
        return None
    return [row for f in files for row in _read_rows(f)]


# --- readers: folder -> {split: rows in the hub schema} ----------------------------------------


def _arc(folder: Path, subset: str) -> dict[str, list[Row]]:
    rows = _hub_split(folder, subset, "test")
    if rows is not None:
        return {"test": rows}
    # benchdata: llm-foundry conversion {"query": "Question: …", "choices": [...], "gold": i}
    name = {"ARC-Easy": "arc_easy", "ARC-Challenge": "arc_challenge"}[subset]
    files = sorted(folder.glob(f"{name}_test*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{subset} test")
    labels = "ABCDEFGH"
    out = []
    for i, raw in enumerate(_read_rows(files[0])):
        n = len(raw["choices"])
        out.append(
            {
                "id": f"{subset}-{i}",  # the conversion dropped ids; position is stable
                "question": raw["query"].removeprefix("Question: ").strip(),
                "choices": {"text": raw["choices"], "label": list(labels[:n])},
                "answerKey": labels[raw["gold"]],
            }
        )
    return {"test": out}


def _split_ctx(ctx: str) -> tuple[str, str]:
    """Recover (ctx_a, ctx_b) from a joined HellaSwag context.

    The conversion in benchdata keeps only `ctx = ctx_a + " " + ctx_b`; ctx_b is the
    lower-case sentence start after the last full stop (ActivityNet items). When no such
    fragment exists ctx_b is taken as empty, which changes nothing in the prompt.
    """
    m = re.match(r"^(.*[.!?])\s+([a-z][^.!?]*)$", ctx)
    return (m.group(1), m.group(2)) if m else (ctx, "")


def _hellaswag(folder: Path) -> dict[str, list[Row]]:
    rows = _hub_split(folder, None, "validation")
    if rows is not None:
        return {"validation": rows}
    files = sorted(folder.glob("hellaswag_val*.txt"))
    if not files:
        raise FileNotFoundError("validation")
    lines = files[0].read_text(encoding="utf-8").split("\n")
    out = []
    for i in range(0, len(lines) - 5, 6):
        head, gold, *endings = lines[i : i + 6]
        label, _, ctx = head.partition(": ")
        ctx_a, ctx_b = _split_ctx(ctx)
        out.append(
            {
                "ind": i // 6,
                "activity_label": label,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": ctx,
                "endings": endings,
                "label": gold.strip(),
            }
        )
    return {"validation": out}


def _piqa(folder: Path) -> dict[str, list[Row]]:
    rows = _hub_split(folder, None, "validation")
    if rows is not None:
        return {"validation": rows}
    data, labels = folder / "valid.jsonl", folder / "valid-labels.lst"
    if not (data.is_file() and labels.is_file()):
        raise FileNotFoundError("validation (valid.jsonl + valid-labels.lst)")
    golds = [int(x) for x in labels.read_text().split()]
    items = _read_rows(data)
    if len(golds) != len(items):
        raise UsageError(f"{folder}: {len(items)} PIQA items but {len(golds)} labels")
    return {"validation": [{**row, "label": g} for row, g in zip(items, golds, strict=True)]}


def _mmlu_pro(folder: Path) -> dict[str, list[Row]]:
    rows = _hub_split(folder, None, "test")
    if rows is None:
        files = sorted(folder.glob("test*.jsonl"))
        if not files:
            raise FileNotFoundError("test")
        rows = _read_rows(files[0])
    return {"test": rows}


def _gsm8k(folder: Path) -> dict[str, list[Row]]:
    out = {}
    for split in ("test", "train"):
        rows = _hub_split(folder, "main", split) or _hub_split(folder, None, split)
        if rows is None:
            raise FileNotFoundError(split)
        out[split] = rows
    return out


def _bbh(folder: Path, subset: str) -> dict[str, list[Row]]:
    rows = _hub_split(folder, subset, "train")
    if rows is None:
        original = [folder / "bbh" / f"{subset}.json", folder / f"{subset}.json"]
        found = next((p for p in original if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{subset} train")
        rows = _read_rows(found)
    return {"train": rows}


def _ifeval(folder: Path) -> dict[str, list[Row]]:
    rows = _hub_split(folder, None, "train")
    if rows is None:
        files = sorted(folder.glob("*input_data.jsonl"))
        if not files:
            raise FileNotFoundError("train (input_data.jsonl)")
        rows = _read_rows(files[0])
    return {"train": rows}


READERS: dict[str, Callable[..., dict[str, list[Row]]]] = {
    "arc": _arc,
    "bbh": _bbh,
    "gsm8k": _gsm8k,
    "hellaswag": _hellaswag,
    "ifeval": _ifeval,
    "mmlu_pro": _mmlu_pro,
    "piqa": _piqa,
}


def benchmark_folder(
    benchmark: str, data_dir: str | Path | None, *, lock_path: str | None = None, allow_unlocked: bool = False
) -> Path:
    """The folder a benchmark's files are read from: data_dir/<benchmark>/, or the hub snapshot."""
    if data_dir is not None:
        folder = Path(data_dir) / benchmark
        if not folder.is_dir():
            raise UsageError(
                f"data dir {data_dir} has no {benchmark}/ folder; put the benchmark's files there "
                "(hub layout or the ../shared/benchdata layout) or drop --data-dir to use the hub"
            )
        return folder
    from repro import lock as lockfile
    from repro.resolve import resolve

    lock = lockfile.load(Path(lock_path) if lock_path else None)
    return resolve(LOCK_NAMES[benchmark], lock=lock, allow_unlocked=allow_unlocked, repo_type="dataset").path


# The hub-schema fields each benchmark's prompts and scorers read; checked on load so a wrong
# file is a one-line error, not a KeyError deep inside lm-eval.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "arc": ("question", "choices", "answerKey"),
    "bbh": ("input", "target"),
    "gsm8k": ("question", "answer"),
    "hellaswag": ("activity_label", "ctx_a", "ctx_b", "endings", "label"),
    "ifeval": ("prompt", "instruction_id_list", "kwargs"),
    "mmlu_pro": ("question", "options", "answer_index", "category"),
    "piqa": ("goal", "sol1", "sol2", "label"),
}


def _check(benchmark: str, folder: Path, subset: str | None, splits: dict[str, list[Row]]) -> None:
    where = f"{folder} ({benchmark}{' ' + subset if subset else ''}"
    for split, rows in splits.items():
        if not rows:
            raise UsageError(f"{where} {split}): no rows; put the benchmark's files there or drop --data-dir")
        for i, row in enumerate(rows):
            missing = [f for f in REQUIRED_FIELDS[benchmark] if f not in row]
            if missing:
                raise UsageError(
                    f"{where} {split}): row {i} lacks {', '.join(missing)}; expected the hub schema "
                    f"with {', '.join(REQUIRED_FIELDS[benchmark])}"
                )


@functools.cache
def read(benchmark: str, folder: Path, subset: str | None = None) -> dict[str, list[Row]]:
    """Rows of one benchmark (and subset) from a folder; a one-line error names what is missing."""
    reader = READERS[benchmark]
    try:
        splits = reader(folder, subset) if subset is not None else reader(folder)
    except FileNotFoundError as exc:
        raise UsageError(
            f"{folder} has no {benchmark} {exc.args[0] if exc.args else ''} data in the hub layout "
            "or the ../shared/benchdata layout"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:  # unparsable JSON, a conversion missing a field
        raise UsageError(f"{folder}: cannot read {benchmark} data ({type(exc).__name__}: {exc})") from None
    _check(benchmark, folder, subset, splits)
    return splits


def subsets(benchmark: str) -> tuple[str | None, ...]:
    """The subsets a benchmark's reader is called with (None: the benchmark has one)."""
    return {"arc": ("ARC-Easy", "ARC-Challenge"), "bbh": BBH_SUBSETS}.get(benchmark, (None,))
