"""The protocol check: a real model's scores against its own model card (SmolLM2-135M-Instruct).

A model card reports lighteval scores of the setup the paper used, so a card row tests the
evaluation itself, independent of the paper's models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.report.analysis import Report
from evalsuite.report.grid import (
    LIMITED_MARK,
    Cell,
    Grid,
)
from evalsuite.report.reported import Reported, ReportedScores, ReportedTable
from evalsuite.report.tablegen import (
    band_text,
    compared,
    excludes,
    fmt,
    footnoted,
    interval_text,
    partial_reason,
    signed,
    verdict_cells,
    verdict_text,
)


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
    inside: bool | None = None  # information, as in analysis.ScoreStat
    p_value: float | None = None  # information, as in analysis.ScoreStat
    test: str | None = None
    tolerance: float | None = None
    band: dict[str, float] | None = None
    half_width: float | None = None  # the band's half-width used (analysis.ScoreStat.half_width)
    partial: str | None = None
    # reproduced | not reproduced | inconclusive (analysis), or: partial | no results | no result |
    # not evaluated; verdict_reason says why
    verdict: str = ""
    verdict_reason: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # IFEval: both averages and all four scores


def protocol_check(table: ReportedTable, report: Report) -> list[ProtocolRow]:
    """Every results folder of the card's model (label = its model, or model-<variant>), row by row.

    The statistics are the report's own reproduced-vs-reported ones (evalsuite.report.analysis: the
    same intervals, tolerance and verdict as the paper's tables); without results, one block
    shows the card's values.
    """
    col = table.columns[0]
    runs = [m for m in report.models if table.column_of(m.label) is not None]
    # a card row no folder evaluated is shown once (under the first folder), not once per folder
    evaluated = {r.metric for m in runs for r in table.rows if report.score(m.label, r.metric) is not None}
    out = []
    for m in runs or [None]:
        first = m is None or m is runs[0]
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
                pr.verdict = "no results"
                pr.verdict_reason = f"evaluate the model with `evalsuite run --label {col.model}`"
                out.append(pr)
                continue
            pr.limit, pr.simulated, pr.sample = m.limit, m.simulated, sample
            if s is None and (row.metric in evaluated or not first):
                continue
            if s is None:
                pr.verdict = "no result"
                pr.verdict_reason = "no result for this benchmark in the results folder"
            else:
                pr.reproduced, pr.n, pr.interval, pr.extra = s.value, s.n, s.interval, dict(s.extra)
                pr.tolerance, pr.band, pr.half_width = s.tolerance, s.band, s.half_width
                pr.partial = partial_reason(m, s)
                pr.verdict, pr.verdict_reason = verdict_cells(s)
                if compared(s):  # a partial run is shown, not compared: no difference or test
                    pr.difference, pr.inside, pr.p_value, pr.test = s.difference, s.inside, s.p_value, s.test
            out.append(pr)
        for ne in table.not_evaluated if first else ():
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
                    verdict="not evaluated",
                    verdict_reason=f"not evaluated by the suite: {ne.why}",
                )
            )
    return out


def _reported(rep: Reported) -> dict[str, Any]:
    return {"value": rep.value, "text": rep.text, "source": rep.source}


def protocol_grid(table: ReportedTable, report: Report) -> Grid:
    rows = []
    notes: list[str] = []
    ifeval: dict[str, dict[str, float]] = {}
    for r in protocol_check(table, report):
        if r.benchmark == "ifeval" and r.extra:
            ifeval[r.model] = r.extra
        partial = (r.partial or r.limit) and r.reproduced is not None
        cells = [
            Cell(r.model + (" (simulated)" if r.simulated else "")),
            Cell(r.column),
            Cell(r.card_row),
            Cell(r.reported["text"]),
            Cell(fmt(r.reproduced, 2), mark=LIMITED_MARK if partial else ""),
            Cell("–" if r.n is None else f"{r.n}{' (sampled)' if r.sample else ''}"),
            Cell(interval_text(r.interval)),
            Cell(signed(r.difference)),
            Cell(band_text(r.half_width, r.tolerance)),
            Cell(verdict_text(r.verdict, r.interval, r.reported, r.half_width, r.tolerance)),
        ]
        # inside ± tolerance, on every item, the card's value inside the interval: the row says it all
        plain = r.verdict == "reproduced" and not partial and not excludes(r.interval, r.reported)
        rows.append((cells, "" if plain else r.verdict_reason))
    model = table.columns[0].model
    headline = registry.get("ifeval").headline.__name__
    card_ifeval = next((r.source_row for r in table.rows if r.metric.benchmark == "ifeval"), None)
    head = [
        f"Reported: {table.source}, {table.url}; each value is the card row named beside it. Rows: every "
        f"results folder labelled {model} (or {model}-<variant>, e.g. {model}-q4_1).",
        "Verdict: the reproduced-vs-reported judgement of the paper's tables (tolerance band around the "
        f"card's value, tables/tolerances.yaml). {LIMITED_MARK}: partial evidence - a --limit run, fewer "
        "items than the full set or converted data: not compared with the card; or (sampled) a seeded "
        "random sample of items per (sub)task (`evalsuite run --sample`), judged by its interval "
        "against the band.",
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
        head.append(text)
    body = footnoted(rows, notes)
    if any(r[0].text.endswith("(simulated)") for r in body):
        head.append("SIMULATED: rows marked (simulated) come from simulated items, not from a model.")
    headers = ["model", "benchmark", "card row", "reported", "measured", "n", "95% interval", "diff",
               "band", "verdict"]  # fmt: skip
    return Grid(table.title, headers, body, [*head, *notes])


def protocol_checks(report: Report, reported: ReportedScores) -> list[ProtocolRow]:
    """Every protocol-check row (statistics.json)."""
    return [r for t in reported.protocol_checks() for r in protocol_check(t, report)]
