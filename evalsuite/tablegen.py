"""The paper's tables in its layout (Markdown and LaTeX), with the statistics beside them.

A cell shows the reproduced score when results exist, else the reported value marked with a
dagger; the best value of each row is bold. Tables 2, 5 and 7 come from repro.hparam_tables.
A protocol-check file (a real model's card, evalsuite.reported) gets one "protocol check"
table instead: per results folder of that model, card value against reproduced value with
the same statistics and verdict as the paper's tables.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tabulate import tabulate

from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.analysis import Report, ScoreStat
from evalsuite.claims import ClaimResult
from evalsuite.reported import Reported, ReportedScores, ReportedTable
from repro import hparam_tables, recipe

Fmt = Literal["md", "latex"]
REPORTED_MARK = "†"
LIMITED_MARK = "‡"
LEGEND = (
    f"Plain: reproduced from the results; {REPORTED_MARK}: value reported by the source table "
    f"(no result here); {LIMITED_MARK}: a --limit run on part of the items (not comparable); "
    "bold: best in the row."
)


@dataclass
class Cell:
    text: str
    value: float | None = None
    bold: bool = False
    mark: str = ""


@dataclass
class Grid:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _columns(table: ReportedTable, report: Report, reported: ReportedScores) -> list[tuple[str, str]]:
    """(model, header) pairs: the table's own columns, plus results of models no table has.

    Those extra models join the widest table of their kind (Table 9 for LMs, 8 for RMs).
    """
    cols = [(c.model, c.header) for c in table.columns]
    widest = max(
        (t for t in reported.tables if t.model_kind == table.model_kind), key=lambda t: len(t.columns)
    )
    if table is widest:
        cols += [
            (m.label, f"{m.label} (not in paper)")
            for m in report.models
            if m.kind == table.model_kind and reported.model_kind(m.label) is None
        ]
    return cols


def score_grid(table: ReportedTable, report: Report, reported: ReportedScores) -> Grid:
    models = {m.label: m for m in report.models}
    cols = _columns(table, report, reported)
    headers = ["", *(h + (" (simulated)" if m in models and models[m].simulated else "") for m, h in cols)]
    rows = []
    for row in table.rows:
        decimals = max(v.decimals for v in row.values)
        cells = [Cell(row.label)]
        for model, _ in cols:
            stat = report.score(model, row.metric)
            rep = table.value(model, row.metric)
            if stat is not None:
                limited = models[model].limit is not None
                cells.append(
                    Cell(_fmt(stat.value, decimals), stat.value, mark=LIMITED_MARK if limited else "")
                )
            elif rep is not None:
                cells.append(Cell(rep.text, rep.value, mark=REPORTED_MARK))
            else:
                cells.append(Cell("–"))
        # --limit cells are not comparable with the rest, so they never take the bold
        ranked = [c for c in cells[1:] if c.value is not None and c.mark != LIMITED_MARK]
        if len(cols) > 1 and ranked:
            best = max(round(c.value, decimals) for c in ranked if c.value is not None)
            for c in ranked:
                c.bold = c.value is not None and round(c.value, decimals) == best
        rows.append(cells)
    title = f"Table {table.number}: {table.title}" if table.number else table.title
    notes = [f"Source of reported values: {table.source}."]
    if any(models[m].simulated for m, _ in cols if m in models):
        notes.append("SIMULATED: columns marked (simulated) come from simulated items, not from a model.")
    return Grid(title, headers, rows, notes)


def verdict(s: ScoreStat) -> str:
    """Reproduced vs reported, in words: why it was not tested, else Holm-significant or not."""
    return s.note or ("" if s.significant is None else ("differs" if s.significant else "consistent"))


def _interval_text(ci: dict[str, Any] | None) -> str:
    return f"[{ci['low']:.2f}, {ci['high']:.2f}] {ci['method']}" if ci else "–"


def stats_grid(table: ReportedTable, report: Report, reported: ReportedScores) -> Grid | None:
    """Reproduced vs reported for the table's columns that have results."""
    labels = {str(r.metric): r.label for r in table.rows}
    rows = []
    for model, header in _columns(table, report, reported):
        for row in table.rows:
            s: ScoreStat | None = report.score(model, row.metric)
            if s is None:
                continue
            own = table.value(model, row.metric)  # equal to s.reported (checked on load); this table's print
            rows.append(
                [
                    Cell(header),
                    Cell(labels[s.metric]),
                    Cell(_fmt(s.value, 2)),
                    Cell(_interval_text(s.interval)),
                    Cell(own.text if own else "–"),
                    Cell(_fmt(s.difference, 2)),
                    Cell("–" if s.inside is None else ("yes" if s.inside else "no")),
                    Cell(_p(s.p_value)),
                    Cell(_p(s.p_holm)),
                    Cell(verdict(s)),
                ]
            )
    if not rows:
        return None
    headers = [
        "model",
        "metric",
        "reproduced",
        "95% interval",
        "reported",
        "diff",
        "reported inside",
        "p",
        "p (Holm)",
        "verdict",
    ]
    notes = [
        "p: two-sided test of reproduced = reported given item sampling error (score test for one "
        "accuracy, the test the Wilson interval inverts; bootstrap percentile inversion for "
        "averages); Holm over the metrics of each results file."
    ]
    name = f"Table {table.number}" if table.number else table.title
    return Grid(f"{name}: reproduced vs reported", headers, rows, notes)


# --- protocol check: a real model against its own model card ------------------------------------


@dataclass
class ProtocolRow:
    """One card row against one results folder of the card's model (statistics.json: protocol_check)."""

    table: str  # the reported file's key
    model: str  # results label (the card's model name when there are no results)
    results: str | None  # results.json
    benchmark: str | None  # the suite's benchmark; None for a card row the suite does not evaluate
    column: str  # the registry's column (the card row when not evaluated)
    card_row: str
    reported: dict[str, Any]  # {value, text, source}
    reproduced: float | None = None
    n: int | None = None
    limit: int | None = None  # a --limit run: partial, not compared
    sample: int | None = None  # an `evalsuite run --sample N` run (settings.sample): compared, wider interval
    simulated: bool = False
    interval: dict[str, Any] | None = None
    difference: float | None = None
    inside: bool | None = None
    p_value: float | None = None
    test: str | None = None
    p_holm: float | None = None
    significant: bool | None = None
    verdict: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # IFEval: both averages and all four scores


def protocol_check(table: ReportedTable, report: Report) -> list[ProtocolRow]:
    """Every results folder of the card's model (label = its model, or model-<variant>), row by row.

    The statistics are the report's own reproduced-vs-reported ones (evalsuite.analysis: the
    same intervals, tests, Holm family and verdict as the paper's tables); without results,
    one block shows the card's values.
    """
    col = table.columns[0]
    runs = [m for m in report.models if table.column_of(m.label) is not None]
    out = []
    for m in runs or [None]:
        label = m.label if m else col.model
        sample = results_fmt.load(Path(m.results)).settings.get("sample") if m else None
        j = table.columns.index(table.column_of(label) or col)
        for row in table.rows:
            rep = row.values[j]
            pr = ProtocolRow(
                table.key,
                label,
                m.results if m else None,
                row.metric.benchmark,
                row.label,
                row.source_row or row.label,
                _reported(rep),
            )
            s = report.score(label, row.metric) if m else None
            if m is None:
                pr.verdict = f"no results: evaluate the model with `evalsuite run --label {col.model}`"
                out.append(pr)
                continue
            pr.limit, pr.simulated, pr.sample = m.limit, m.simulated, sample
            if s is None:
                pr.verdict = "no result for this benchmark in the results folder"
            else:
                pr.reproduced, pr.n, pr.interval, pr.extra = s.value, s.n, s.interval, dict(s.extra)
                pr.difference, pr.inside, pr.p_value, pr.test = s.difference, s.inside, s.p_value, s.test
                pr.p_holm, pr.significant, pr.verdict = s.p_holm, s.significant, verdict(s)
                if m.limit is not None and s.p_value is None:  # analysis leaves --limit runs untested
                    pr.verdict = f"partial (--limit {m.limit} run): not comparable with the card"
            out.append(pr)
        for ne in table.not_evaluated:
            out.append(
                ProtocolRow(
                    table.key,
                    label,
                    m.results if m else None,
                    None,
                    ne.source_row,
                    ne.source_row,
                    _reported(ne.values[j]),
                    limit=m.limit if m else None,
                    simulated=bool(m and m.simulated),
                    verdict=f"not evaluated by the suite: {ne.why}",
                )
            )
    return out


def _reported(rep: Reported) -> dict[str, Any]:
    return {"value": rep.value, "text": rep.text, "source": rep.source}


def protocol_grid(table: ReportedTable, report: Report) -> Grid:
    rows = []
    ifeval: dict[str, dict[str, float]] = {}
    for r in protocol_check(table, report):
        if r.benchmark == "ifeval" and r.extra:
            ifeval[r.model] = r.extra
        rows.append(
            [
                Cell(r.model + (" (simulated)" if r.simulated else "")),
                Cell(r.column),
                Cell(r.card_row),
                Cell(r.reported["text"]),
                Cell(
                    _fmt(r.reproduced, 2), mark=LIMITED_MARK if r.limit and r.reproduced is not None else ""
                ),
                Cell("–" if r.n is None else f"{r.n}{' (sampled)' if r.sample else ''}"),
                Cell(_interval_text(r.interval)),
                Cell(_fmt(r.difference, 2)),
                Cell("–" if r.inside is None else ("yes" if r.inside else "no")),
                Cell(_p(r.p_value)),
                Cell(_p(r.p_holm)),
                Cell(r.verdict),
            ]
        )
    model = table.columns[0].model
    headline = registry.get("ifeval").headline.__name__
    card_ifeval = next((r.source_row for r in table.rows if r.metric.benchmark == "ifeval"), None)
    notes = [
        f"Reported: {table.source}, {table.url}; each value is the card row named beside it. Rows: every "
        f"results folder labelled {model} (or {model}-<variant>, e.g. {model}-q4_1).",
        "Verdict: the reproduced-vs-reported test of the paper's tables (score test for one accuracy, "
        "bootstrap percentile inversion for averages; Holm over the benchmarks of each results folder): "
        f"consistent, or differs at alpha = {report.settings.alpha}. {LIMITED_MARK}: a --limit run on "
        "part of the items (partial): not compared with the card; (sampled): a seeded random sample "
        "of items per (sub)task (`evalsuite run --sample`), compared, with its wider interval.",
    ]
    if card_ifeval:
        text = (
            f"IFEval: the card's '{card_ifeval}' is compared with the suite's IFEval headline, "
            f"{headline} (evalsuite/benchmarks.py), as the paper's IFEval column is."
        )
        for label, extra in ifeval.items():
            if "average_strict" in extra and "average_loose" in extra:
                text += (
                    f" {label}: strict average {extra['average_strict']:.2f}, "
                    f"loose average {extra['average_loose']:.2f}."
                )
        notes.append(text)
    if any(r[0].text.endswith("(simulated)") for r in rows):
        notes.append("SIMULATED: rows marked (simulated) come from simulated items, not from a model.")
    headers = ["model", "benchmark", "card row", "reported", "reproduced", "n", "95% interval", "diff",
               "reported inside", "p", "p (Holm)", "verdict"]  # fmt: skip
    return Grid(table.title, headers, rows, notes)


def protocol_checks(report: Report, reported: ReportedScores) -> list[ProtocolRow]:
    """Every protocol-check row (statistics.json)."""
    return [r for t in reported.protocol_checks() for r in protocol_check(t, report)]


def comparisons_grid(report: Report) -> Grid | None:
    rows = []
    for c in report.comparisons:
        ci = c.interval
        rows.append(
            [
                Cell(c.a),
                Cell(c.b),
                Cell(c.benchmark),
                Cell(_fmt(c.difference, 2)),
                Cell(f"[{ci['low']:.2f}, {ci['high']:.2f}]" if ci else "–"),
                Cell(c.test or "–"),
                Cell(_p(c.p_value)),
                Cell(_p(c.p_holm)),
                Cell(
                    c.note or ("" if c.significant is None else ("significant" if c.significant else "n.s."))
                ),
            ]
        )
    if not rows:
        return None
    headers = ["a", "b", "benchmark", "a - b", "95% interval (paired)", "test", "p", "p (Holm)", ""]
    notes = [
        "Items matched by id; Holm over the benchmarks compared for each pair. Interval: normal, on "
        "the variance of the paired item bootstrap (closed form; delta method for IFEval)."
    ]
    return Grid("Model vs model on the same items", headers, rows, notes)


def claims_grid(results: Sequence[ClaimResult]) -> Grid:
    rows = [
        [Cell(str(c.id)), Cell(c.text), Cell(c.verdict), Cell(_p(c.p_value)), Cell(c.reason)] for c in results
    ]
    return Grid("The paper's claims", ["#", "claim", "verdict", "p", "why"], rows)


@functools.lru_cache(maxsize=1)
def hparam_grids() -> tuple[Grid, ...]:
    """Tables 2, 5, 7 from the recipes (cached: the recipes are parsed once per process)."""
    grids = []
    for title, names, scale in hparam_tables.TABLES:
        headers = ["", *(recipe.load(n).paper_name for n in names)]
        rows = [[Cell(str(v)) for v in row] for row in hparam_tables.rows(names, scale)]
        grids.append(Grid(f"{title} (from repro/recipes)", headers, rows))
    return tuple(grids)


# --- rendering ----------------------------------------------------------------------------------

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
LATEX_MARKS = {REPORTED_MARK: r"\textsuperscript{\dag}", LIMITED_MARK: r"\textsuperscript{\ddag}"}


def latex_escape(text: str) -> str:
    out = "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)
    for mark, tex in LATEX_MARKS.items():
        out = out.replace(mark, tex)
    return out.replace("–", "--")


def _cell(cell: Cell, fmt: Fmt) -> str:
    if fmt == "md":
        text = cell.text + cell.mark
        return f"**{text}**" if cell.bold else text
    text = latex_escape(cell.text) + LATEX_MARKS.get(cell.mark, "")
    return rf"\textbf{{{text}}}" if cell.bold else text


def render(grid: Grid, fmt: Fmt, level: int = 2) -> str:
    body = [[_cell(c, fmt) for c in row] for row in grid.rows]
    if fmt == "md":
        table = tabulate(body, grid.headers, tablefmt="github", disable_numparse=True)
        notes = "".join(f"\n\n{n}" for n in grid.notes)
        return f"{'#' * level} {grid.title}\n\n{table}{notes}\n"
    headers = [latex_escape(h) for h in grid.headers]
    table = tabulate(body, headers, tablefmt="latex_raw", disable_numparse=True)
    for rule in (r"\toprule", r"\midrule"):
        table = table.replace(r"\hline", rule, 1)
    table = table.replace(r"\hline", r"\bottomrule", 1)
    notes = "".join(f"\n\\par{{\\footnotesize {latex_escape(n)}}}" for n in grid.notes)
    return (
        "\\begin{table}[ht]\n\\centering\n\\small\n"
        f"\\caption{{{latex_escape(grid.title)}}}\n{table}\n{notes}\n\\end{{table}}\n"
    )


def grids(report: Report, reported: ReportedScores) -> list[Grid]:
    """Every table in document order: hyperparameters and scores by number, then statistics."""
    numbered: list[tuple[float, list[Grid]]] = [
        (float(re.search(r"Table (\d+)", g.title).group(1)), [g])  # type: ignore[union-attr]
        for g in hparam_grids()
    ]
    for i, table in enumerate(reported.tables):  # model cards (no number) after the paper's tables
        if table.kind == "protocol-check":
            numbered.append((1000.0 + i, [protocol_grid(table, report)]))
            continue
        st = stats_grid(table, report, reported)
        gs = [score_grid(table, report, reported), *([st] if st else [])]
        numbered.append((float(table.number) if table.number else 1000.0 + i, gs))
    out = [g for _, gs in sorted(numbered, key=lambda x: x[0]) for g in gs]
    comp = comparisons_grid(report)
    if comp is not None:
        out.append(comp)
    out.append(claims_grid(report.claims))
    return out


def document(report: Report, reported: ReportedScores, fmt: Fmt, sources: Sequence[str]) -> str:
    intro = [
        "SmolTulu tables, regenerated by `python -m evalsuite tables`",
        f"Results read from: {', '.join(sources) or '(none)'}; models with results: "
        f"{', '.join(m.label for m in report.models) or 'none'}.",
        LEGEND,
        *report.notes,
    ]
    parts = [render(g, fmt) for g in grids(report, reported)]
    if fmt == "md":
        return f"# {intro[0]}\n\n" + "\n\n".join(intro[1:]) + "\n\n" + "\n".join(parts)
    head = (
        "% " + intro[0] + "\n% needs \\usepackage{booktabs}\n" + "".join(f"% {line}\n" for line in intro[1:])
    )
    return head + "\n" + "\n".join(parts)


def claims_document(report: Report) -> str:
    """claims.md: each claim's verdict, then every comparison behind it."""
    parts = [
        "# The paper's claims, judged on the per-item results\n",
        f"alpha = {report.settings.alpha}; a claim with several comparisons is supported only if "
        "every one is (intersection-union test: its p is the largest).",
        *report.notes,
        "",
        render(claims_grid(report.claims), "md"),
    ]
    for claim in report.claims:
        rows = [
            [
                Cell(c.what),
                Cell(c.verdict),
                Cell(_fmt(c.effect, 3 if c.test == "Spearman" else 2)),
                Cell(f"[{c.interval[0]:.2f}, {c.interval[1]:.2f}]" if c.interval else "–"),
                Cell(_fmt(c.reported_effect, 2)),
                Cell(c.test or "–"),
                Cell(_p(c.p_value)),
                Cell(str(c.n) if c.n else "–"),
                Cell(c.reason or ""),
            ]
            for c in claim.checks
        ]
        headers = [
            "comparison",
            "verdict",
            "effect",
            "95% interval",
            "reported effect",
            "test",
            "p",
            "n",
            "note",
        ]
        grid = Grid(f"Claim {claim.id}: {claim.verdict}", headers, rows, [claim.text])
        parts.append(render(grid, "md", level=3))
    parts.append("Effect: reproduced difference in points (better - worse), or Spearman's rho for trends.\n")
    return "\n".join(parts)
