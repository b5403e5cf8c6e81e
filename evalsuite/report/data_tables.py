"""The paper's data tables (contamination: Tables 1, 4, 13; language presence: Tables 10–12),
reported against measured, and each evaluated benchmark's contamination beside its scores.

The printed values are data (tables/reported/data/data_tables.yaml, strings as printed). The
measurements are the JSON files `python -m evalsuite contamination` and `python -m evalsuite
languages` write (by default results/contamination/<dataset>.json, results/languages/<dataset>.json),
found under the `tables --results` folders at any depth and read here as data: this package does
not import evalsuite.trainingdata. Each is matched to its paper table by the training set's lock
name; a measurement of a local file has none and is listed as such.

Verdicts. Contamination is a census (every benchmark item against every training row): no
sampling interval, so the measured percent is the same as printed when it lies within half the
printed digit (0.005 for two decimals), and differs by so many points otherwise. A language share
from a sample carries its 95% Wilson interval (evalsuite.report.stats, recomputed from the count and
n): consistent when the printed value, ± half its last digit, overlaps the interval, differs when it
does not; a census of the whole set is judged like contamination.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UsageError, json_loads
from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.report import datafile
from evalsuite.report.grid import Cell, Grid
from evalsuite.report.stats import CONFIDENCE, wilson_interval

ROOT = Path(__file__).resolve().parents[2]
DATA_FILE = ROOT / "tables" / "reported" / "data" / "data_tables.yaml"
KINDS = ("contamination", "languages")
ROW_KEY = {"contamination": "benchmark", "languages": "language"}
COMMAND = {"contamination": "python -m evalsuite contamination", "languages": "python -m evalsuite languages"}
NUMBER = re.compile(r"^\d{1,3}(\.\d+)?$")
EPS = 1e-9  # float slack at the edge of half a printed digit
# The suite's benchmarks among the 17 of Tulu 3's decontamination study (Table 1's hub ids): the
# same data sets the suite evaluates (checkpoints.lock pins openai/gsm8k, google/IFEval and
# TIGER-Lab/MMLU-Pro; BBH is read from lighteval/big_bench_hard, a copy of lukaemon/bbh's 27
# subsets). ARC, HellaSwag and PIQA are not in the study: the paper has no figure for them.
IN_STUDY: dict[str, str] = {
    "bbh": "lukaemon/bbh",
    "gsm8k": "openai/gsm8k",
    "ifeval": "google/IFEval",
    "mmlu_pro": "TIGER-Lab/MMLU-Pro",
}
# The mixture each stage trained on (lock names) and the short name a score line gives it.
MIXTURES = {"tulu-3-sft-mixture": "SFT", "tulu-3-preference-mixture": "preference", "rlvr-mixture": "RLVR"}
RLVR_MODELS = ("rlvr-1130",)  # trained on the RLVR mixture (paper Section 6): its card row gets Table 13


# --------------------------------------------------------------------------- the printed tables


@dataclass(frozen=True)
class Printed:
    key: str  # a benchmark's hub id (contamination) or a language's name (languages)
    text: str  # exactly as printed
    value: float  # percent

    @property
    def half_digit(self) -> float:
        """Half the last printed digit: how far a value may sit from the print and print the same."""
        return 0.5 * 10.0 ** -len(self.text.partition(".")[2])


@dataclass(frozen=True)
class DataTable:
    number: int
    kind: str  # contamination | languages
    title: str
    source: str
    dataset: str  # the training set's lock name
    rows: tuple[Printed, ...]
    note: str | None = None

    def printed(self, key: str) -> Printed | None:
        return next((r for r in self.rows if r.key == key), None)


def load(path: Path | None = None) -> tuple[DataTable, ...]:
    """The data tables of the file, validated; every problem is one line naming the file."""
    path = Path(path) if path is not None else DATA_FILE
    where = str(path)
    raw = datafile.read_mapping(path)
    if raw.get("unit") != "percent":
        raise UsageError(f"{where}: 'unit' must be percent")
    entries = datafile.field(raw, "tables", list, where)
    tables = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: table entry {i} is not a mapping")
        number = datafile.field(entry, "table", int, f"{where}: table entry {i}")
        at = f"{where}: table {number}"
        kind = datafile.field(entry, "kind", str, at)
        if kind not in KINDS:
            raise UsageError(f"{at}: kind {kind!r} is not one of {', '.join(KINDS)}")
        rows = []
        for row in datafile.field(entry, "rows", list, at):
            if not isinstance(row, dict):
                raise UsageError(f"{at}: a row is {row!r}, not a mapping")
            key = datafile.field(row, ROW_KEY[kind], str, at)
            text = datafile.field(row, "value", str, f"{at}: {key}")
            if not NUMBER.match(text) or float(text) > 100:
                raise UsageError(f"{at}: {key}: {text!r} is not a percentage as printed (e.g. '0.08')")
            rows.append(Printed(key, text, float(text)))
        if not rows:
            raise UsageError(f"{at}: no rows")
        keys = [r.key for r in rows]
        if len(set(keys)) != len(keys):
            raise UsageError(f"{at}: a {ROW_KEY[kind]} is listed twice")
        note = entry.get("note")
        tables.append(
            DataTable(
                number,
                kind,
                datafile.field(entry, "title", str, at),
                datafile.field(entry, "source", str, at),
                datafile.field(entry, "dataset", str, at),
                tuple(rows),
                note if isinstance(note, str) else None,
            )
        )
    numbers = [t.number for t in tables]
    pairs = [(t.kind, t.dataset) for t in tables]
    if len(set(numbers)) != len(numbers) or len(set(pairs)) != len(pairs):
        raise UsageError(f"{where}: two entries for one table (or one kind of table of one data set)")
    return tuple(sorted(tables, key=lambda t: t.number))


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Measurement:
    kind: str  # contamination | languages
    path: Path
    dataset: str | None  # the training set's lock name; None: a local file
    local: str  # what a local measurement read (its files), for the listing
    data: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.dataset or f"local {self.local}")


def _bad(path: Path, kind: str, what: str) -> UsageError:
    return UsageError(f"{path}: not a `{COMMAND[kind]}` result ({what}); rerun it, or move the file away")


def _contamination(path: Path, raw: dict[str, Any]) -> Measurement:
    train = raw.get("training_set")
    if not isinstance(train, dict) or not isinstance(raw.get("definition"), dict):
        raise _bad(path, "contamination", "no 'training_set' or 'definition' mapping")
    dataset = train.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise _bad(path, "contamination", "training_set.dataset is not a name")
    benches = raw.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise _bad(path, "contamination", "no 'benchmarks' list")
    for b in benches:
        if not isinstance(b, dict) or not isinstance(b.get("benchmark"), str):
            raise _bad(path, "contamination", "a benchmark entry without its 'benchmark' name")
        if b.get("status") == "measured":
            items, hits = b.get("items"), b.get("contaminated")
            if not (type(items) is int and type(hits) is int and 0 <= hits <= items):
                raise _bad(
                    path, "contamination", f"{b['benchmark']}: 'items' and 'contaminated' are not counts"
                )
        elif b.get("status") != "unavailable":
            raise _bad(path, "contamination", f"{b['benchmark']}: status is neither measured nor unavailable")
    files = train.get("files") or []
    return Measurement("contamination", path, dataset, ", ".join(map(str, files)) or str(path), raw)


def _languages(path: Path, raw: dict[str, Any]) -> Measurement:
    ds, settings, primary = raw.get("dataset"), raw.get("settings"), raw.get("primary")
    if not (isinstance(ds, dict) and isinstance(ds.get("name"), str) and isinstance(settings, dict)):
        raise _bad(path, "languages", "no 'dataset' name or 'settings'")
    detector = (raw.get("detectors") or {}).get(primary) if isinstance(raw.get("detectors"), dict) else None
    if not isinstance(detector, dict) or not isinstance(detector.get("languages"), list):
        raise _bad(path, "languages", f"no languages of its primary detector {primary!r}")
    n = detector.get("classified")
    if type(n) is not int or n < 0:
        raise _bad(path, "languages", "'classified' is not a count")
    for e in detector["languages"]:
        if not (
            isinstance(e, dict)
            and isinstance(e.get("language"), str)
            and type(e.get("count")) is int
            and 0 <= e["count"] <= n
        ):
            raise _bad(path, "languages", "a language entry without its name and a count of at most n")
    # a lock name was resolved through the lock (repo_id set); a local file's name is only its stem
    dataset = ds["name"] if ds.get("repo_id") or ds.get("paper_table") else None
    return Measurement("languages", path, dataset, str(ds.get("path") or ds["name"]), raw)


def discover(roots: list[Path]) -> list[Measurement]:
    """Every measurement under the roots: JSON files in a contamination/ or languages/ folder, at any
    depth. A file that is not one is a one-line error naming it; two of one data set are refused."""
    found: list[Path] = []
    skip = {results_fmt.RESULTS_FILE, results_fmt.IDENTITY_FILE}  # a results folder labelled so
    for root in roots:
        found += sorted(
            p
            for p in Path(root).rglob("*.json")
            if p.parent.name in KINDS and p.name not in skip and not p.name.startswith(".") and p.is_file()
        )
    out: dict[tuple[str, str], Measurement] = {}
    for path in dict.fromkeys(p.resolve() for p in found):
        try:
            raw = json_loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: not a JSON file ({str(exc).splitlines()[0]}); move it away") from None
        if isinstance(raw, dict) and raw.get("command") == "contamination":
            m = _contamination(path, raw)
        elif isinstance(raw, dict) and "detectors" in raw and "schema" in raw:
            if raw["schema"] != 1:
                raise _bad(path, "languages", f"schema {raw['schema']!r}, this suite reads 1")
            m = _languages(path, raw)
        else:
            raise UsageError(
                f"{path}: neither a `{COMMAND['contamination']}` nor a `{COMMAND['languages']}` result; "
                "move it out of the --results folders"
            )
        if m.key in out:
            raise UsageError(
                f"two {m.kind} measurements of {m.key[1]}: {out[m.key].path} and {m.path}; "
                "keep one (move the other out of the --results folders)"
            )
        out[m.key] = m
    return list(out.values())


# --------------------------------------------------------------------------- reported vs measured


@dataclass
class DataRow:
    """One row of a regenerated data table (statistics.json: data_tables.tables[].rows)."""

    key: str  # benchmark hub id or language
    reported: str | None  # as printed; None: the paper prints none
    measured: float | None = None  # percent
    count: int | None = None  # contaminated items / rows of this language
    n: int | None = None  # items / classified rows
    interval: dict[str, Any] | None = None  # {low, high, method}: a sample's 95% interval
    difference: float | None = None  # measured - printed, points
    verdict: str = "–"  # same as printed | differs by X points | consistent | differs | not printed | ...
    reason: str = ""


@dataclass
class DataResult:
    """One paper table, reported against its measurement (if any)."""

    number: int
    kind: str
    title: str
    source: str
    dataset: str
    measurement: str | None  # the JSON file
    method: str  # how the measurement was made, or the command that makes it
    rows: list[DataRow] = field(default_factory=list)
    note: str | None = None


def _census_verdict(row: DataRow, printed: Printed) -> None:
    assert row.measured is not None
    row.difference = row.measured - printed.value
    if abs(row.difference) <= printed.half_digit + EPS:
        row.verdict = "same as printed"
    else:
        row.verdict = f"differs by {round(row.difference, 2) + 0.0:+.2f} points"


def _contamination_rows(table: DataTable, m: Measurement | None) -> list[DataRow]:
    entries = {b["benchmark"]: b for b in m.data["benchmarks"]} if m else {}
    keys = [r.key for r in table.rows] + [k for k in entries if table.printed(k) is None]
    rows = []
    for key in keys:
        printed = table.printed(key)
        row = DataRow(key, printed.text if printed else None)
        b = entries.get(key)
        if m is None:
            pass
        elif b is None:
            row.verdict, row.reason = "not measured", f"{m.path.name} has no entry for {key}"
        elif b["status"] != "measured":
            row.verdict, row.reason = "unavailable", str(b.get("reason") or "the benchmark could not be read")
        elif b["items"] == 0:
            row.verdict, row.reason = "no items", "the benchmark had no items to compare"
        else:
            row.count, row.n = b["contaminated"], b["items"]
            row.measured = 100.0 * b["contaminated"] / b["items"]
            if printed is None:
                row.verdict = "not printed"
            else:
                _census_verdict(row, printed)
        rows.append(row)
    return rows


def _language_rows(table: DataTable, m: Measurement | None) -> list[DataRow]:
    if m is None:
        return [DataRow(r.key, r.text) for r in table.rows]
    detector = m.data["detectors"][m.data["primary"]]
    n, census = detector["classified"], bool(m.data["settings"].get("census"))
    found = {e["language"]: e["count"] for e in detector["languages"]}
    keys = [r.key for r in table.rows] + [k for k in found if table.printed(k) is None]
    rows = []
    for key in keys:
        printed = table.printed(key)
        row = DataRow(key, printed.text if printed else None)
        if key not in found:
            row.verdict, row.reason = "not measured", f"{m.path.name} has no share for {key}"
        elif n == 0:
            row.verdict, row.reason = "no rows", "no row was classified"
        else:
            row.count, row.n = found[key], n
            row.measured = 100.0 * found[key] / n
            if not census:
                ci = wilson_interval(found[key], n)
                row.interval = {"low": 100 * ci.low, "high": 100 * ci.high, "method": "Wilson"}
            if printed is None:
                row.verdict = "not printed"
                row.reason = "the paper prints no share for this language"
            elif census:
                _census_verdict(row, printed)
            else:
                row.difference = row.measured - printed.value
                ci = row.interval or {}
                overlaps = printed.value + printed.half_digit >= ci["low"] - EPS and (
                    printed.value - printed.half_digit <= ci["high"] + EPS
                )
                row.verdict = "consistent" if overlaps else "differs"
        rows.append(row)
    return rows


def _method(table: DataTable, m: Measurement | None) -> str:
    if m is None:
        out = f"results/{table.kind}/{table.dataset}.json"
        return (
            f"Not measured here: `{COMMAND[table.kind]} --dataset {table.dataset}` writes {out} (under a "
            "--results folder); until then only the printed values are shown."
        )
    if table.kind == "contamination":
        d, train = m.data["definition"], m.data["training_set"]
        how = f"{d.get('method')}"
        if d.get("method") == "ngram":
            how += f", {d.get('ngram_size')}-grams, match threshold {d.get('threshold')}, search size "
            how += f"{d.get('search_size')}"
        return (
            f"Measured: {m.path} ({train.get('repo_id', m.dataset)} at {train.get('revision', '?')}); "
            f"method {how}; {d.get('training_text', '')}; reference {d.get('reference', '?')}. A census "
            "(every benchmark item against every training row): no sampling interval; same as printed "
            "means within half the printed digit."
        )
    s, ds = m.data["settings"], m.data["dataset"]
    primary = m.data["primary"]
    model = m.data["detectors"][primary].get("model", primary)
    drawn = "every row (a census)" if s.get("census") else f"a seeded sample (seed {s.get('seed')})"
    return (
        f"Measured: {m.path} ({ds.get('repo_id') or ds['name']} at {ds.get('revision') or '?'}); detector "
        f"{primary} ({model}); {s.get('sampled')} of {ds.get('rows')} rows, {drawn}; text: "
        f"{s.get('text_means', s.get('text'))}, cut at {s.get('max_length')} tokens; share of "
        f"{s.get('share_of', 'the classified rows')}. Interval: {100 * CONFIDENCE:.0f}% Wilson over the "
        "classified rows; consistent: the printed value ± half its last digit overlaps it."
    )


def _summary(m: Measurement) -> str:
    if m.kind == "contamination":
        done = [b for b in m.data["benchmarks"] if b["status"] == "measured" and b["items"]]
        parts = [f"{b['benchmark']} {b['contaminated']}/{b['items']}" for b in done]
        return f"{len(done)} benchmarks measured: " + ", ".join(parts) if parts else "no benchmark measured"
    detector = m.data["detectors"][m.data["primary"]]
    n = detector["classified"]
    top = sorted(detector["languages"], key=lambda e: -e["count"])[:3]
    shares = ", ".join(f"{e['language']} {100 * e['count'] / n:.2f}%" for e in top) if n else "none"
    return f"{n} rows classified: {shares}"


INTRO = (
    "The paper's data tables: contamination of benchmarks in the training mixtures (Tables 1, 4, "
    "13) and language presence (Tables 10–12), printed values from tables/reported/data, measured "
    "by `python -m evalsuite contamination` / `languages` where a measurement exists under the "
    "--results folders. Contamination is a census: same as printed within half the printed digit. "
    "Language shares from a sample carry a 95% Wilson interval: consistent when the printed value "
    "(± half its last digit) overlaps it."
)


@dataclass
class DataReport:
    """The data tables, reported against measured, and what a score table shows beside its scores."""

    tables: list[DataResult]
    unmatched: list[Measurement]  # measurements with no paper table (local files, other data sets)
    measurements: dict[tuple[str, str], Measurement]
    reported: tuple[DataTable, ...]

    def notes(self) -> list[str]:
        """What was read, for the document's introduction and the command's output."""
        out = [
            f"data tables: Table {r.number} from {r.measurement}"
            for r in self.tables
            if r.measurement is not None
        ]
        out += [f"data tables: {m.path} has no paper table (listed, not compared)" for m in self.unmatched]
        return out

    @property
    def intro(self) -> str:
        return INTRO

    # ----- beside the scores
    def contamination(self, dataset: str, benchmark: str) -> str | None:
        """'0.08% (printed, Table 1)' or '0.15% measured (2/1319; Table 1 prints 0.08)'."""
        table = next((t for t in self.reported if t.kind == "contamination" and t.dataset == dataset), None)
        printed = table.printed(benchmark) if table else None
        result = next((r for r in self.tables if r.kind == "contamination" and r.dataset == dataset), None)
        row = next((r for r in result.rows if r.key == benchmark), None) if result else None
        where = f"Table {table.number}" if table else "no paper table"
        if row is not None and row.measured is not None:
            said = f"{where} prints {printed.text}" if printed else f"{where}: not printed"
            return f"{row.measured:.2f}% measured ({row.count}/{row.n}; {said})"
        if printed is not None:
            return f"{printed.text}% (printed, {where})"
        return None

    def beside_scores(self, benchmarks: list[str], models: list[str]) -> str:
        """One line for a score table: each of its benchmarks' contamination in the training mixtures."""
        mixtures = ["tulu-3-sft-mixture", "tulu-3-preference-mixture"]
        if any(m in RLVR_MODELS for m in models):
            mixtures.append("rlvr-mixture")
        numbers = [
            str(t.number)
            for d in mixtures
            for t in self.reported
            if t.kind == "contamination" and t.dataset == d
        ]
        parts, absent = [], []
        for bench in dict.fromkeys(benchmarks):
            name = registry.get(bench).column.split(" (")[0]
            hub = IN_STUDY.get(bench)
            if hub is None:
                absent.append(name)
                continue
            cells = [f"{MIXTURES[d]} {self.contamination(d, hub) or 'no figure'}" for d in mixtures]
            parts.append(f"{name} ({hub}): " + ", ".join(cells))
        if absent:
            parts.append(
                f"{', '.join(absent)}: not among the 17 benchmarks of Tulu 3's decontamination study "
                "(no figure)"
            )
        return (
            f"Contamination of these benchmarks in the training mixtures (share of the benchmark's items "
            f"found in the mixture; paper Tables {', '.join(numbers)}; measured where a measurement exists, "
            "see Data tables): " + "; ".join(parts) + "."
        )

    # ----- the tables
    def grids(self) -> list[Grid]:
        out = [self._grid(r) for r in self.tables]
        if self.unmatched:
            rows = [
                [Cell(str(m.path)), Cell(m.kind), Cell(m.dataset or f"local: {m.local}"), Cell(_summary(m))]
                for m in self.unmatched
            ]
            out.append(
                Grid(
                    "Measurements with no paper table",
                    ["file", "kind", "training set", "measured"],
                    rows,
                    [
                        "A measurement of a local file (or of a data set the paper has no table for): shown, "
                        "never compared."
                    ],
                )
            )
        return out

    def _grid(self, r: DataResult) -> Grid:
        label = "benchmark" if r.kind == "contamination" else "language"
        notes = [f"Source of reported values: {r.source}.", r.method]
        notes += [f"Printed table: {r.note}."] if r.note else []
        if r.measurement is None:
            rows = [[Cell(row.key), Cell(row.reported or "–")] for row in r.rows]
            return Grid(f"Table {r.number}: {r.title}", [label, "reported %"], rows, notes)
        body = []
        for row in r.rows:
            measured = "–" if row.measured is None else f"{row.measured:.2f}"
            counts = "–" if row.n is None else f"{row.count}/{row.n}"
            verdict = row.verdict + (f": {row.reason}" if row.reason and row.verdict != "not printed" else "")
            if r.kind == "contamination":
                body.append(
                    [Cell(row.key), Cell(row.reported or "–"), Cell(counts), Cell(measured), Cell(verdict)]
                )
            else:
                ci = row.interval
                interval = f"[{ci['low']:.2f}, {ci['high']:.2f}]" if ci else ("census" if row.n else "–")
                cells = [Cell(row.key), Cell(row.reported or "not printed"), Cell(measured), Cell(interval)]
                body.append([*cells, Cell(counts), Cell(verdict)])
        if r.kind == "contamination":
            headers = [label, "reported %", "contaminated / items", "measured %", "verdict"]
        else:
            headers = [label, "reported %", "measured %", "95% interval", "rows / n", "verdict"]
        return Grid(f"Table {r.number}: {r.title}", headers, body, notes)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "reported_file": str(DATA_FILE),
            "tables": [asdict(r) for r in self.tables],
            "unmatched": [
                {
                    "path": str(m.path),
                    "kind": m.kind,
                    "dataset": m.dataset,
                    "local": m.local,
                    "summary": _summary(m),
                }
                for m in self.unmatched
            ],
        }


def build(roots: list[Path], path: Path | None = None) -> DataReport:
    """The printed tables (`path`, default DATA_FILE) against every measurement under `roots`."""
    reported = load(path)
    found = discover(roots)
    by_key = {m.key: m for m in found}
    results = []
    for t in reported:
        m = by_key.get((t.kind, t.dataset))
        rows = _contamination_rows(t, m) if t.kind == "contamination" else _language_rows(t, m)
        results.append(
            DataResult(
                t.number,
                t.kind,
                t.title,
                t.source,
                t.dataset,
                str(m.path) if m else None,
                _method(t, m),
                rows,
                t.note,
            )
        )
    matched = {(t.kind, t.dataset) for t in reported}
    unmatched = [m for m in found if m.key not in matched]
    return DataReport(results, unmatched, by_key, reported)
