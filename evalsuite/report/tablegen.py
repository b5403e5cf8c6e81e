"""The paper's tables in its layout (Markdown and LaTeX), with the statistics beside them.

A cell shows the measured score when results exist, else the reported value marked with a dagger
(†); partial evidence (a --limit or --sample run, fewer items than the full set, converted data:
`ScoreStat.partial` / `ModelEntry.partial`) is marked with a double dagger (‡) in every table and is
never bold; the best of the other values of each row is bold. Tables 3 and 6 have the paper's three
columns, Table 9 all seven; Tables 2, 5 and 7 come from evalsuite.report.hparam_tables (recipes, plus the Tulu
3 reference columns the paper prints). Under each score table, "reproduced vs reported" lists each
(model, metric) once: under the table its reported value is credited to (the first that prints it,
evalsuite.report.reported), with the tolerance verdict of evalsuite.report.analysis and its reason
as a footnote. A protocol-check file (a real model's card, evalsuite.report.reported) gets one
"protocol check" table instead: per results folder of that model, card value against reproduced
value with the same verdict as the paper's tables. Under each score table of language models, one
line gives its benchmarks' contamination in the training mixtures, and a "Data tables" section
follows the score tables (evalsuite.report.data_tables). Every p-value is printed by `format_p`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evalsuite.report import hparam_tables, stats
from evalsuite.report.analysis import ModelEntry, Report, ScoreStat
from evalsuite.report.claims import ClaimResult
from evalsuite.report.grid import (
    LIMITED_MARK,
    REPORTED_MARK,
    Cell,
    Grid,
)
from evalsuite.report.reported import Metric, ReportedScores, ReportedTable

if TYPE_CHECKING:
    pass

LEGEND = (
    f"Plain: measured from the results (whether it reproduces the reported value is the verdict of "
    f"the table below it); {REPORTED_MARK}: value reported by the source table (no result here); "
    f"{LIMITED_MARK}: partial evidence - a --limit or --sample run, fewer items than the full set, or "
    "converted data - not a score on the full benchmark, never bold; bold: best in the row among the "
    "other values."
)
PARTIAL_NOTE = (
    f"{LIMITED_MARK}: partial evidence (a --limit or --sample run, fewer items than the full set, or "
    "converted data): not a result on the full benchmark."
)


def fmt(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _bounds(low: float, high: float) -> str:
    """A 95% interval as printed; one that could not be computed (NaN bounds) says so."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return stats.NO_INTERVAL
    return f"[{low:.2f}, {high:.2f}]"


def partial_reason(model: ModelEntry | None, stat: ScoreStat | None = None) -> str | None:
    """Why a result is partial evidence: the score's own reason, else its model's; None when full."""
    return (stat.partial if stat is not None else None) or (model.partial if model is not None else None)


P_FLOOR = 1e-4  # below what 10,000 resamples resolve; exact tests print the same floor


def format_p(p: float | None) -> str:
    """A p-value as every table prints it (Markdown and LaTeX): '< 1e-4' below the floor."""
    if p is None or not math.isfinite(p):
        return "–"
    if p < P_FLOOR:
        return "< 1e-4"
    return f"{p:.4f}" if p < 1e-3 else f"{p:.3f}"


def signed(value: float | None) -> str:
    """A difference in points, signed; one that rounds to zero prints +0.00, never -0.00."""
    if value is None:
        return "–"
    return f"{round(value, 2) + 0.0:+.2f}"


def _source(rep: dict[str, Any]) -> str:
    """'Table 6', or 'Table 6; also Table 9', or 'model card' (a reported value's provenance)."""

    def short(source: str) -> str:
        return source.removeprefix("paper ") if source.startswith("paper ") else "model card"

    first = short(rep["source"])
    others = [short(s) for s in rep.get("printed_in") or () if short(s) != first]
    return first + (f"; also {', '.join(others)}" if others else "")


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
                partial = partial_reason(models.get(model), stat)
                cells.append(
                    Cell(fmt(stat.value, decimals), stat.value, mark=LIMITED_MARK if partial else "")
                )
            elif rep is not None:
                cells.append(Cell(rep.text, rep.value, mark=REPORTED_MARK))
            else:
                cells.append(Cell("–"))
        # partial evidence is not a score on the full set: it never takes the bold
        ranked = [c for c in cells[1:] if c.value is not None and c.mark != LIMITED_MARK]
        if len(cols) > 1 and ranked:
            best = max(round(c.value, decimals) for c in ranked if c.value is not None)
            for c in ranked:
                c.bold = c.value is not None and round(c.value, decimals) == best
        rows.append(cells)
    title = f"Table {table.number}: {table.title}" if table.number else table.title
    notes = [f"Source of reported values: {table.source}."]
    if any(c.mark == LIMITED_MARK for row in rows for c in row):
        notes.append(PARTIAL_NOTE)
    if any(models[m].simulated for m, _ in cols if m in models):
        notes.append("SIMULATED: columns marked (simulated) come from simulated items, not from a model.")
    return Grid(title, headers, rows, notes)


VERDICTS = (
    "Reproduced vs reported: the band is the reported value ± the benchmark's harness tolerance "
    "(tables/tolerances.yaml) plus half the last printed digit, widened by the training-seed spread "
    "when several seeds of a retrained recipe are pooled (each row shows the band it used). A score "
    "is reproduced when it lies inside the band and the band is no wider than max_band "
    "(tables/tolerances.yaml); not reproduced when it lies outside; inconclusive when that cannot be "
    "decided (one training seed and a gap beyond the tolerance, a sample's interval straddling the "
    "band, or 'seed spread too large': inside a band wider than max_band). Partial results (--limit, "
    f"fewer items than the full set, converted data) are shown with {LIMITED_MARK}, never judged; "
    f"--sample runs are judged by their interval and marked {LIMITED_MARK} too. 95% interval: item "
    "sampling (Wilson on a count; bootstrap over items; a Wilson score interval at the effective n "
    f"where subsets are small or all their items alike; '{stats.NO_INTERVAL}' where none applies), "
    "or a t interval over training seeds when pooled. The reported score was measured on the same "
    "items, so item sampling alone does not separate the two: a reproduced score whose interval "
    "excludes the reported value says so, and the item-sampling p-value is in statistics.json as "
    "information only."
)
VERDICT_NOTE = (
    "band: reported ± tolerance (tables/tolerances.yaml, plus half the printed digit), + seed spread "
    "when training seeds are pooled. reproduced: inside the band and the band within max_band; not "
    "reproduced: outside the band; inconclusive: undecided (the footnote says why); partial: never "
    f"judged. measured: the suite's score ({LIMITED_MARK}: partial evidence). A footnote gives the "
    "reason wherever it says more than the row (how the verdict is reached: see the document's "
    "introduction). Reported: the table the value is credited to (the first that prints it), and the "
    "other tables that print it."
)


def verdict_cells(s: ScoreStat) -> tuple[str, str]:
    """(short verdict, reason) of one reproduced-vs-reported score."""
    if s.verdict is not None:
        return s.verdict, s.verdict_reason or ""
    if s.reported is None:
        return "–", "the paper reports no score here: nothing to compare"
    if s.partial is not None or s.note is not None:
        return "partial", s.note or f"partial: {s.partial}"
    return "–", s.note or ""


def interval_text(ci: dict[str, Any] | None) -> str:
    if not ci:
        return "–"
    bounds = _bounds(_num(ci["low"]), _num(ci["high"]))
    return ci["method"] if bounds == stats.NO_INTERVAL else f"{bounds} {ci['method']}"


def _num(value: float | None) -> float:
    """NaN for a bound that statistics.json wrote as null."""
    return math.nan if value is None else float(value)


def excludes(ci: dict[str, Any] | None, reported: dict[str, Any] | None) -> bool:
    """The 95% interval was computed and the reported value lies outside it."""
    if not ci or not reported:
        return False
    low, high = _num(ci["low"]), _num(ci["high"])
    return math.isfinite(low) and math.isfinite(high) and not low <= reported["value"] <= high


def _half_width(half_width: float | None, tolerance: float | None) -> float | None:
    return half_width if half_width is not None else tolerance


def band_text(half_width: float | None, tolerance: float | None) -> str:
    """The band's half-width actually used: the tolerance, plus the seed spread when pooled."""
    half = _half_width(half_width, tolerance)
    if half is None or tolerance is None:
        return "–"
    if half - tolerance > 5e-3:
        return f"±{half:.2f} (tolerance ±{tolerance:.2f} + seed spread {half - tolerance:.2f})"
    return f"±{tolerance:.2f}"


def verdict_text(
    verdict: str,
    ci: dict[str, Any] | None,
    reported: dict[str, Any] | None,
    half: float | None,
    tol: float | None,
) -> str:
    """The verdict as printed: a "reproduced" whose interval excludes the reported value says why."""
    if verdict != "reproduced" or not excludes(ci, reported):
        return verdict
    width = _half_width(half, tol)
    where = "the band" if width is None else f"±{width:.2f}"
    if width is not None and tol is not None and abs(width - tol) <= 5e-3:
        where += " harness tolerance"
    elif width is not None:
        where += " band"
    return f"reproduced (inside {where}; the 95% interval excludes the reported value)"


def footnoted(rows: list[tuple[list[Cell], str]], notes: list[str]) -> list[list[Cell]]:
    """Rows whose last cell is a verdict: each reason a numbered footnote [k], shared by equal reasons."""
    seen: dict[str, int] = {}
    for cells, reason in rows:
        if reason:
            if reason not in seen:
                notes.append(f"[{len(notes) + 1}] {reason[0].upper()}{reason[1:]}.")
                seen[reason] = len(notes)
            cells[-1].text += f" [{seen[reason]}]"
    return [cells for cells, _ in rows]


def compared(s: ScoreStat) -> bool:
    """Judged against its reported value (a partial run, e.g. --limit, is shown but never compared)."""
    return s.verdict is not None


def _plain(s: ScoreStat) -> bool:
    """Reproduced inside reported ± tolerance, on a full run, the reported value inside the
    interval: the row says it all, no footnote."""
    if s.verdict != "reproduced" or s.tolerance is None or s.partial is not None:
        return False
    if excludes(s.interval, s.reported):
        return False
    return abs(_half_width(s.half_width, s.tolerance) - s.tolerance) < 1e-9  # type: ignore[operator]


def credited_table(report: Report, reported: ReportedScores, model: str, metric: str) -> str | None:
    """Key of the table whose reproduced-vs-reported block lists (model, metric): exactly one.

    The table its reported value is credited to (the first that prints it); a model the paper
    does not report joins the widest table of its kind, as in `_columns`.
    """
    table = reported.credited(model, Metric.parse(metric))
    if table is None:
        table = next((t for t in reported.tables if t.column_of(model) is not None), None)
    if table is None:
        kind = next((m.kind for m in report.models if m.label == model), None)
        same = [t for t in reported.tables if t.model_kind == kind and t.kind == "paper"]
        table = max(same, key=lambda t: len(t.columns)) if same else None
    return table.key if table is not None else None


def stats_grid(table: ReportedTable, report: Report, reported: ReportedScores) -> Grid | None:
    """Reproduced vs reported for the scores credited to this table (each score in one table only)."""
    models = {m.label: m for m in report.models}
    labels = {str(r.metric): r.label for r in table.rows}
    found: list[tuple[str, ScoreStat]] = []
    for model, header in _columns(table, report, reported):
        for row in table.rows:
            s: ScoreStat | None = report.score(model, row.metric)
            if s is not None and credited_table(report, reported, model, s.metric) == table.key:
                found.append((header, s))
    if not found:
        return None
    seeded = any(s.seeds is not None for _, s in found)
    notes: list[str] = []
    rows = []
    for header, s in found:
        verdict, reason = verdict_cells(s)
        name = header + (" (simulated)" if models[s.model].simulated else "")
        partial = partial_reason(models.get(s.model), s)
        cells = [
            Cell(name),
            Cell(labels[s.metric]),
            Cell(fmt(s.value, 2), mark=LIMITED_MARK if partial else ""),
            Cell(interval_text(s.interval)),
            Cell(f"{s.reported['text']} ({_source(s.reported)})" if s.reported else "–"),
            Cell(signed(s.difference) if compared(s) else "–"),
            Cell(band_text(s.half_width, s.tolerance)),
        ]
        if seeded:
            cells.append(Cell(_seeds_text(s)))
        cells.append(Cell(verdict_text(verdict, s.interval, s.reported, s.half_width, s.tolerance)))
        rows.append((cells, "" if _plain(s) else reason))
    body = footnoted(rows, notes)
    headers = ["model", "metric", "measured", "95% interval", "reported (source)", "diff", "band"]
    headers += ["training seeds"] if seeded else []
    headers += ["verdict"]
    name = f"Table {table.number}" if table.number else table.title
    return Grid(f"{name}: reproduced vs reported", headers, body, [VERDICT_NOTE, *notes])


def _seeds_text(s: ScoreStat) -> str:
    if s.seeds is None:
        return "published checkpoint"
    return f"{s.seeds}" + ("" if s.seed_sd is None else f" (sd {s.seed_sd:.2f})")


def holm_family(report: Report) -> str:
    """Which model-vs-model comparisons were made and which family Holm adjusted over."""
    pairs = (
        "every pair of models of the same kind (--all-pairs)"
        if report.settings.all_pairs
        else "only the pairs the paper compares (its claims, tables/claims.yaml; --all-pairs for every pair)"
    )
    return f"Pairs: {pairs}. Holm family: the benchmarks compared for one pair of models, per pair."


SIGNIFICANCE_NOTE = (
    "Significance differs between the two lists on purpose: the model-vs-model table calls a "
    "comparison significant by its Holm-adjusted p (over the benchmarks of one pair, every one of "
    "which is tested), while a claim uses each of its comparisons' unadjusted p, because it is "
    "supported only if every one of them is (an intersection-union test needs no multiplicity "
    "correction). A comparison can therefore read n.s. in the table and still count toward a claim."
)


def comparisons_grid(report: Report, reported: ReportedScores | None = None) -> Grid | None:
    """Model vs model, with the paper's column headers and benchmark names."""
    headers_of = {m.label: m.header for m in report.models}
    entries = {m.label: m for m in report.models}
    columns = {str(r.metric): r.label for t in (reported.tables if reported else ()) for r in t.rows}
    rows = []
    for c in report.comparisons:
        ci = c.interval
        rows.append(
            [
                Cell(headers_of.get(c.a, c.a), mark=LIMITED_MARK if partial_reason(entries.get(c.a)) else ""),
                Cell(headers_of.get(c.b, c.b), mark=LIMITED_MARK if partial_reason(entries.get(c.b)) else ""),
                Cell(columns.get(c.benchmark, c.benchmark)),
                Cell(signed(c.difference)),
                Cell(_bounds(_num(ci["low"]), _num(ci["high"])) if ci else "–"),
                Cell(c.test or "–"),
                Cell(format_p(c.p_value)),
                Cell(format_p(c.p_holm)),
                Cell(
                    c.note or ("" if c.significant is None else ("significant" if c.significant else "n.s."))
                ),
            ]
        )
    if not rows:
        return None
    headers = ["a", "b", "benchmark", "a - b", "95% interval (paired)", "test", "p", "p (Holm)", "result"]
    notes = [
        f"{holm_family(report)} Items matched by id. Interval: normal, on the variance of the paired "
        "item bootstrap (closed form; delta method for IFEval); Wilson bounds on the two discordant "
        "proportions where items that differ are too few for it. significant: Holm-adjusted p < "
        f"alpha = {report.settings.alpha}. {SIGNIFICANCE_NOTE}"
    ]
    if any(c.mark == LIMITED_MARK for row in rows for c in row):
        notes.append(PARTIAL_NOTE)
    count = f"{len(rows)} comparison{'s' if len(rows) != 1 else ''}"
    return Grid(f"Model vs model on the same items ({count})", headers, rows, notes)


CLAIM_VERDICTS = (
    "Verdicts: supported (every comparison significant in the claimed direction and, where the claim "
    "states a size, its whole 95% interval inside the claimed size ± its tolerance); consistent, too "
    "wide to confirm the size (significant in the claimed direction; the interval overlaps the "
    "claimed size ± its tolerance but is not inside it); smaller than claimed / larger than claimed "
    "(significant in the claimed direction, but the interval lies entirely below / above the claimed "
    "size ± its tolerance); contradicted (one significant the other way); inconclusive (otherwise: "
    "not significant, results missing or partial). p: the largest of the claim's comparisons, "
    f"unadjusted (intersection-union). {SIGNIFICANCE_NOTE}"
)


def claims_grid(results: Sequence[ClaimResult], caveats: bool = True) -> Grid:
    rows = [
        [Cell(str(c.id)), Cell(c.text), Cell(c.verdict), Cell(format_p(c.p_value)), Cell(c.reason)]
        for c in results
    ]
    notes = [CLAIM_VERDICTS]
    notes += [f"Claim {c.id} caveat: {c.caveat}" for c in results if c.caveat and caveats]
    return Grid("The paper's claims", ["#", "claim", "verdict", "p", "why"], rows, notes)


@functools.lru_cache(maxsize=1)
def hparam_grids() -> tuple[Grid, ...]:
    """Tables 2, 5, 7: recipes plus the paper's Tulu 3 columns (cached: parsed once per process)."""
    return tuple(
        Grid(t.title, t.headers, [[Cell(v) for v in row] for row in t.rows], t.notes)
        for t in hparam_tables.tables()
    )
