"""The paper's reported scores, read from tables/reported/*.yaml (one file per paper table).

Each file names its source table and holds exactly the columns that table prints, in its
order; values are strings exactly as printed (their decimals set how reproduced values are
printed). Loading validates everything against the benchmark registry and checkpoints.lock,
and checks that a score printed in two tables agrees.

Provenance: the paper prints some scores in several tables (DPO-1130's in Tables 6 and 9,
SmolLM2-1.7B-Instruct's in Tables 3, 6 and 9). `ReportedScores.get` credits a score to the
FIRST table that prints it in the paper's order (Table 3, 6, 8, 9, then model cards): its
`source` names that table and `printed_in` lists every table that prints it. So SFT scores
come from Table 3, DPO scores from Table 6, SmolLM2-1.7B-Instruct's from Table 3, and
Llama-3.2-1B-Instruct's and Qwen2.5-1.5B-Instruct's from Table 9, the only table with them.
`ReportedTable.value` is one table's own print (its `source` is that table).

Besides the paper's tables and the Reinforced model card, a `protocol-check` file holds the
published scores of a real model that is not a paper artefact (SmolLM2-135M-Instruct's model
card): the suite evaluates it to check the evaluation protocol itself. Such a file names its
card's URL and, for every value, the card's row; its column names come from the registry
only, and rows the suite cannot evaluate are kept as data, marked `evaluated: false`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from core import lock as lockfile
from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import datafile

ROOT = Path(__file__).resolve().parents[2]
REPORTED_DIR = ROOT / "tables" / "reported"
CLAIMS_FILE = ROOT / "tables" / "claims.yaml"
NUMBER = re.compile(r"^\d{1,3}(\.\d+)?$")
LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # a results label, as `evalsuite run --label` takes it
KINDS = ("paper", "model-card", "protocol-check")
# Named scores a results file may carry besides the headline (results.BenchmarkResult.scores).
SCORE_KEYS = {"rewardbench": ("chat", "chat_hard", "safety", "reasoning")}
MODEL_ROLES = ("published", "baseline", "reproduce-only")


@dataclass(frozen=True)
class Metric:
    """A table row: a benchmark's headline, or one of its named scores ("rewardbench.chat")."""

    benchmark: str
    score: str | None = None

    @classmethod
    def parse(cls, text: str) -> Metric:
        bench, _, score = text.partition(".")
        return cls(bench, score or None)

    def __str__(self) -> str:
        return f"{self.benchmark}.{self.score}" if self.score else self.benchmark


@dataclass(frozen=True)
class Reported:
    value: float  # percent
    text: str  # as printed
    source: str  # "paper Table 6", or the model card (protocol check: its URL and the card's row)
    printed_in: tuple[str, ...] = ()  # every table that prints this score (ReportedScores.get fills it)

    @property
    def decimals(self) -> int:
        return len(self.text.partition(".")[2])


@dataclass(frozen=True)
class Column:
    model: str  # lock name, = results model.label
    header: str  # the paper's column header


@dataclass(frozen=True)
class Row:
    metric: Metric
    label: str  # the registry's column (a paper/card file prints it, a protocol check does not)
    values: tuple[Reported, ...]
    source_row: str | None = None  # protocol check: the row's name on the card


@dataclass(frozen=True)
class NotEvaluated:
    """A protocol-check card row the suite has no benchmark for: data, never compared."""

    source_row: str
    values: tuple[Reported, ...]
    why: str


@dataclass(frozen=True)
class ReportedTable:
    key: str  # "table3", ..., "card"
    number: int | None
    title: str
    source: str
    kind: Literal["paper", "model-card", "protocol-check"]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    model_kind: str  # every column's model kind: "causal-lm" | "reward-model"
    url: str | None = None  # protocol check: the model card's address
    not_evaluated: tuple[NotEvaluated, ...] = ()  # protocol check: card rows outside the suite

    def column_of(self, label: str) -> Column | None:
        """The column whose model a results label names.

        Exact lock/label match; a protocol check also takes its model's label in any case and
        its variants (`smollm2-135m-instruct-q4_1` is `smollm2-135m-instruct` from other weights).
        """
        for col in self.columns:
            if col.model == label:
                return col
            if self.kind == "protocol-check":
                low = label.lower()
                if low == col.model or low.startswith(col.model + "-"):
                    return col
        return None

    def value(self, model: str, metric: Metric) -> Reported | None:
        col = self.column_of(model)
        if col is not None:
            j = self.columns.index(col)
            for row in self.rows:
                if row.metric == metric:
                    return row.values[j]
        return None


def _parse_table(path: Path, model_names: set[str]) -> ReportedTable:
    where = str(path)
    raw = datafile.read_mapping(path)
    number = raw.get("table")
    kind = datafile.field(raw, "kind", str, where)
    if kind not in KINDS:
        raise UsageError(f"{where}: kind must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
    if kind == "paper" and not isinstance(number, int):
        raise UsageError(f"{where}: a paper table needs its table number in 'table'")
    source = datafile.field(raw, "source", str, where)
    if kind == "paper" and source != f"paper Table {number}":
        raise UsageError(f"{where}: source should read 'paper Table {number}'")
    check = kind == "protocol-check"
    url = None
    if check:
        url = datafile.field(raw, "url", str, where)
        if not url.startswith("https://"):
            raise UsageError(f"{where}: url {url!r} should be the model card's https:// address")
    columns = []
    for c in datafile.field(raw, "columns", list, where):
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("model"), str)
            or not isinstance(c.get("header"), str)
        ):
            raise UsageError(f"{where}: each column needs 'model' and 'header' strings")
        if check:  # a real model outside the paper: named by its results label, not by the lock
            if not LABEL.match(c["model"]):
                raise UsageError(
                    f"{where}: column model {c['model']!r} should be a results label "
                    "(a-z, 0-9, '.', '_', '-')"
                )
        elif c["model"] not in model_names:
            raise UsageError(f"{where}: column model {c['model']!r} is not a model in checkpoints.lock")
        columns.append(Column(c["model"], c["header"]))
    if len({c.model for c in columns}) != len(columns):
        raise UsageError(f"{where}: a model appears in two columns")
    if check and len(columns) != 1:
        raise UsageError(f"{where}: a protocol check has one column, the model its card describes")
    rows = []
    not_evaluated = []
    kinds = set()
    for r in datafile.field(raw, "rows", list, where):
        if not isinstance(r, dict):
            raise UsageError(f"{where}: each row must be a mapping")
        source_row = None
        if check:
            source_row = datafile.field(r, "card_row", str, f"{where} row")
            rw = f"{where} row {source_row!r}"
            if "label" in r:
                raise UsageError(f"{rw}: no 'label' here; the column name comes from evalsuite/benchmarks.py")
            if r.get("evaluated", True) is False:
                if "metric" in r:
                    raise UsageError(f"{rw}: a row with evaluated: false names no suite metric")
                not_evaluated.append(
                    NotEvaluated(
                        source_row,
                        _values(r, rw, columns, source, url, source_row),
                        datafile.field(r, "why", str, rw),
                    )
                )
                continue
            if r.get("evaluated", True) is not True:
                raise UsageError(f"{rw}: evaluated must be true or false")
        metric = Metric.parse(datafile.field(r, "metric", str, where))
        rw = f"{where} row {metric}"
        bench = registry.BENCHMARKS.get(metric.benchmark)
        if bench is None:
            raise UsageError(f"{rw}: unknown benchmark; known: {', '.join(registry.BENCHMARKS)}")
        if metric.score is not None and metric.score not in SCORE_KEYS.get(metric.benchmark, ()):
            raise UsageError(f"{rw}: {metric.benchmark} has no named score {metric.score!r}")
        if check:
            if metric.score is not None:
                raise UsageError(f"{rw}: a protocol check compares benchmark headlines only")
            label = bench.column
        else:
            label = datafile.field(r, "label", str, rw)
        if metric.score is None and label != bench.column:
            raise UsageError(f"{rw}: label {label!r} differs from the registry's column {bench.column!r}")
        kinds.add(bench.model_kind)
        rows.append(Row(metric, label, _values(r, rw, columns, source, url, source_row), source_row))
    if len(kinds) != 1:
        raise UsageError(f"{where}: rows mix causal-LM and reward-model benchmarks")
    if len({r.metric for r in rows}) != len(rows):
        raise UsageError(f"{where}: a metric appears in two rows")
    card_rows = [r.source_row for r in rows] + [r.source_row for r in not_evaluated]
    if check and len(set(card_rows)) != len(card_rows):
        raise UsageError(f"{where}: a card row appears twice")
    return ReportedTable(
        key=f"table{number}" if kind == "paper" else str(number or path.stem),
        number=number if kind == "paper" else None,
        title=datafile.field(raw, "title", str, where),
        source=source,
        kind=kind,
        columns=tuple(columns),
        rows=tuple(rows),
        model_kind=kinds.pop(),
        url=url,
        not_evaluated=tuple(not_evaluated),
    )


def _values(
    r: dict[str, Any], rw: str, columns: list[Column], source: str, url: str | None, source_row: str | None
) -> tuple[Reported, ...]:
    """A row's quoted percentages; a protocol check's name the card's URL and row."""
    texts = datafile.field(r, "values", list, rw)
    if len(texts) != len(columns):
        raise UsageError(f"{rw}: {len(texts)} values for {len(columns)} columns")
    where = source if url is None else f"{source}: {url}, row '{source_row}'"
    values = []
    for text in texts:
        if not isinstance(text, str) or not NUMBER.match(text) or float(text) > 100.0:
            raise UsageError(f"{rw}: value {text!r} must be a quoted percentage as printed, e.g. '51.5'")
        values.append(Reported(float(text), text, where))
    return tuple(values)


@dataclass(frozen=True)
class ReportedScores:
    tables: tuple[ReportedTable, ...]  # paper tables by number, then model cards

    def get(self, model: str, metric: Metric) -> Reported | None:
        """The reference value, credited to the first table that prints it (module docstring).

        The paper's, else a model card's; `source` names the table, `printed_in` every table.
        """
        prints = [(t, v) for t in self.tables if (v := t.value(model, metric)) is not None]
        if not prints:
            return None
        return replace(prints[0][1], printed_in=tuple(t.source for t, _ in prints))

    def credited(self, model: str, metric: Metric) -> ReportedTable | None:
        """The table `get` credits for this score (the first that prints it), or None."""
        return next((t for t in self.tables if t.value(model, metric) is not None), None)

    def model_kind(self, model: str) -> str | None:
        for table in self.tables:
            if table.column_of(model) is not None:
                return table.model_kind
        return None

    def in_paper(self, model: str) -> bool:
        return any(t.kind == "paper" and any(c.model == model for c in t.columns) for t in self.tables)

    def header(self, model: str) -> str:
        for table in self.tables:
            col = table.column_of(model)
            if col is not None:
                return col.header if col.model == model else f"{col.header}: {model}"
        return model

    def protocol_checks(self) -> tuple[ReportedTable, ...]:
        return tuple(t for t in self.tables if t.kind == "protocol-check")


def load(folder: Path | None = None, lock_path: Path | None = None) -> ReportedScores:
    folder = Path(folder) if folder is not None else REPORTED_DIR
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise UsageError(f"no reported tables (*.yaml) in {folder}; run from a checkout of the suite")
    lock = lockfile.load(lock_path)
    model_names = {e.name for e in lock.entries.values() if e.role in MODEL_ROLES}
    tables = [_parse_table(p, model_names) for p in files]
    keys = [t.key for t in tables]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{folder}: two files describe the same table")
    tables.sort(key=lambda t: (t.number is None, t.number or 0, t.key))
    seen: dict[tuple[str, Metric], tuple[Reported, str]] = {}
    for table in tables:
        for row in table.rows:
            for col, value in zip(table.columns, row.values, strict=True):
                prior = seen.get((col.model, row.metric))
                if prior and prior[0].value != value.value:
                    raise UsageError(
                        f"{folder}: {col.model} {row.metric} is {prior[0].text} in {prior[1]} "
                        f"but {value.text} in {table.source}"
                    )
                seen.setdefault((col.model, row.metric), (value, table.source))
    return ReportedScores(tuple(tables))
