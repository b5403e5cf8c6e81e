"""Forest plot (PNG): measured minus reported per model and metric, with the tolerance verdict.

One row per judged (model, metric), labelled as the paper labels them: the column header
("DPO-1130") and the benchmark's column name ("GSM8K (5-shot)", "RB Chat") from the reported
tables, else the registry. Language models and reward models get separate panels (their
scales differ). Each row shows the 95% interval (bar), the measured score (marker, shaped and
coloured by verdict) and the band that counts as the reported score (shaded: tolerance, widened
by the seed spread when seeds are pooled). A --sample run (judged, but on part of the items) is
labelled with the double dagger (‡) that marks partial evidence in the tables. Every row says its
n (items per seed). The title names the models shown. The x axis spans the bands and the measured
values, so a band of ±0.5 stays readable beside a 60-item interval of ±20: an interval that runs
past the axis ends in an arrow. The figure is laid out in inches from its content: the label column
and the legend are measured, each row gets a fixed height, so nothing is cut off.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from evalsuite import benchmarks as registry
from evalsuite.report.analysis import Report, ScoreStat
from evalsuite.report.reported import Metric, ReportedScores
from evalsuite.report.tablegen import LIMITED_MARK

DPI = 100
FONT = 8  # points, tick labels
ROW_IN = 0.24  # inches per row
PLOT_IN = 5.2  # width of the plotting area
PANELS = (("causal-lm", "Language models"), ("reward-model", "Reward models"))
# verdict -> (colour, marker, legend text); colour-blind safe pair plus shape
STYLE = {
    "reproduced": ("#1f77b4", "o", "reproduced (inside a band within max_band)"),
    "not reproduced": ("#d62728", "X", "not reproduced (outside the band)"),
    "inconclusive": ("#ff7f0e", "D", "inconclusive (undecided, or band too wide)"),
}
BAND_COLOUR = "#c7e9c0"


@dataclass
class Row:
    label: str
    stat: ScoreStat


def metric_label(metric: str, reported: ReportedScores | None) -> str:
    """The paper's name of a metric: a reported table's row label, else the registry's column."""
    m = Metric.parse(metric)
    for table in reported.tables if reported else ():
        for row in table.rows:
            if row.metric == m:
                return row.label
    bench = registry.BENCHMARKS.get(m.benchmark)
    if bench is None:
        return metric
    return bench.column if m.score is None else f"{bench.column}: {m.score}"


def _metric_rank(reported: ReportedScores | None) -> dict[str, int]:
    order = [str(r.metric) for t in (reported.tables if reported else ()) for r in t.rows]
    return {m: i for i, m in enumerate(dict.fromkeys(order))}


def panels(report: Report, reported: ReportedScores | None) -> tuple[list[tuple[str, list[Row]]], int]:
    """(panel title, rows top to bottom) for each kind of model with judged scores; rows left out."""
    models = {m.label: m for m in report.models}
    rank = _metric_rank(reported)
    every_simulated = all(m.simulated for m in report.models)  # then the title says so, once
    judged = [
        s
        for s in report.scores
        if s.verdict is not None and s.reported and s.difference is not None and s.interval is not None
    ]
    left_out = sum(1 for s in report.scores if s.reported and s.verdict is None)
    order = {m.label: i for i, m in enumerate(report.models)}
    judged.sort(key=lambda s: (order.get(s.model, len(order)), rank.get(s.metric, len(rank)), s.metric))
    out = []
    for kind, title in PANELS:
        rows = []
        for s in judged:
            entry = models.get(s.model)
            if entry is None or entry.kind != kind:
                continue
            sim = " (simulated)" if entry.simulated and not every_simulated else ""
            label = f"{entry.header}{sim} · {metric_label(s.metric, reported)}"
            if not s.reported["source"].startswith("paper") and "(card)" not in entry.header:
                label += " (card)"
            label += f" (n {s.n})"
            if s.seeds is not None:
                label += f" [{s.seeds} seed{'s' if s.seeds != 1 else ''}]"
            if s.partial or entry.partial:
                label += f" {LIMITED_MARK}"
            rows.append(Row(label, s))
        if rows:
            out.append((title, rows))
    return out, left_out


def _title(report: Report, groups: list[tuple[str, list[Row]]]) -> str:
    """What the figure shows, from its rows: the models' names, and the reference compared with."""
    shown = {r.stat.model for _, rows in groups for r in rows}
    names = [m.header for m in report.models if m.label in shown]
    if not names:
        return "Measured − reported"
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"Measured − reported: {listed}"


def _text_width_in(texts: list[str], renderer, size: float, weight: str = "normal") -> float:
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(size=size, weight=weight)
    widths = [renderer.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts]
    return max(widths, default=0.0) / DPI


def forest_png(report: Report, reported: ReportedScores | None = None) -> bytes:
    buf = io.BytesIO()
    forest_figure(report, reported).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def forest_figure(report: Report, reported: ReportedScores | None = None):
    """The forest plot as a matplotlib Figure (one axes per panel), sized to its content."""
    # Figure + Agg canvas, not pyplot: files only, no display, and a lighter import
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    groups, left_out = panels(report, reported)
    simulated = any(m.simulated for m in report.models)
    fig = Figure(figsize=(8.0, 3.0), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    title = _title(report, groups)
    if simulated:
        title += " — SIMULATED inputs, not model outputs"
    footer = []
    if left_out:
        footer.append(
            f"Not shown: {left_out} partial result(s) (--limit runs, fewer items than the full set, "
            "converted data), never judged."
        )
    if any(r.label.endswith(LIMITED_MARK) for _, rows in groups for r in rows):
        footer.append(f"{LIMITED_MARK}: partial evidence, a --sample run judged by its interval.")
    if any("(card)" in r.label for _, rows in groups for r in rows):
        footer.append("(card): the reported value is a model card's, not the paper's.")

    if not groups:
        fig.set_size_inches(6.0, 2.0)
        fig.text(0.5, 0.85, title, ha="center", va="top", fontsize=10)
        fig.text(0.5, 0.45, "no judged results to compare with reported values", ha="center", va="center")
        for i, line in enumerate(footer):
            fig.text(0.5, 0.2 - 0.1 * i, line, ha="center", fontsize=FONT)
        return fig

    # layout in inches: measured label column, fixed row height, fixed overheads per panel
    renderer = canvas.get_renderer()
    label_in = _text_width_in([r.label for _, rows in groups for r in rows], renderer, FONT) + 0.2
    legend_w = 2 * (_text_width_in([text for *_, text in STYLE.values()], renderer, FONT) + 0.5)
    verdicts_shown = {r.stat.verdict for _, rows in groups for r in rows}
    legend_rows = -(-(len(verdicts_shown & set(STYLE)) + 2) // 2)  # two columns
    head_in, legend_in, foot_in = 0.45, 0.1 + 0.2 * legend_rows, 0.2 + 0.18 * len(footer)
    panel_title_in, axis_in, pad_in = 0.3, 0.55, 0.25
    heights = [len(rows) * ROW_IN + pad_in for _, rows in groups]
    total_h = head_in + legend_in + sum(h + panel_title_in + axis_in for h in heights) + foot_in
    total_w = max(
        label_in + PLOT_IN + 0.35, _text_width_in([title], renderer, 10, "bold") + 0.6, legend_w + 0.4
    )
    fig.set_size_inches(total_w, total_h)
    left = label_in / total_w

    fig.text(0.5, 1 - 0.12 / total_h, title, ha="center", va="top", fontsize=10, weight="bold")
    y_top = total_h - head_in - legend_in
    present = set()
    for (panel_title, rows), h in zip(groups, heights, strict=True):
        y_top -= panel_title_in
        bottom = y_top - h
        ax = fig.add_axes((left, bottom / total_h, PLOT_IN / total_w, h / total_h))
        ax.set_title(panel_title, fontsize=9, loc="left")
        stats = [r.stat for r in rows]
        ys = np.arange(len(rows))[::-1].astype(float)  # first row on top
        reps = np.array([s.reported["value"] for s in stats])
        diffs = np.array([s.difference for s in stats])
        lows = np.array([s.interval["low"] for s in stats]) - reps
        highs = np.array([s.interval["high"] for s in stats]) - reps
        band_lo = np.array([s.band["low"] if s.band else np.nan for s in stats]) - reps
        band_hi = np.array([s.band["high"] if s.band else np.nan for s in stats]) - reps
        ok = ~np.isnan(band_lo)
        ax.barh(ys[ok], (band_hi - band_lo)[ok], left=band_lo[ok], height=0.7, color=BAND_COLOUR, zorder=1)
        # the axis spans the bands and the measured values; a wider interval is clipped, with an arrow
        lo = np.nanmin(np.concatenate([band_lo, diffs, [0.0]]))
        hi = np.nanmax(np.concatenate([band_hi, diffs, [0.0]]))
        span = max(hi - lo, 2.0)
        lo, hi = lo - 0.25 * span, hi + 0.25 * span
        ax.hlines(ys, np.maximum(lows, lo), np.minimum(highs, hi), color="0.35", linewidth=1.2, zorder=2)
        for edge, past, marker in ((lo, lows < lo, "<"), (hi, highs > hi, ">")):
            if past.any():
                ax.scatter(
                    np.full(int(past.sum()), edge), ys[past], color="0.35", marker=marker, s=18, zorder=2
                )
        for verdict, (colour, marker, _) in STYLE.items():  # one artist per verdict: fast
            pick = np.array([s.verdict == verdict for s in stats])
            if pick.any():
                present.add(verdict)
                ax.scatter(diffs[pick], ys[pick], color=colour, marker=marker, s=28, zorder=3)
        ax.axvline(0.0, color="black", linewidth=0.8, zorder=0)
        for i in range(1, len(stats)):  # a thin rule between models
            if stats[i].model != stats[i - 1].model:
                ax.axhline(ys[i] + 0.5, color="0.75", linewidth=0.6, zorder=0)
        ax.set_yticks(ys, [r.label for r in rows], fontsize=FONT)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.tick_params(axis="x", labelsize=FONT)
        ax.set_xlabel("measured − reported (points)", fontsize=FONT)
        ax.grid(axis="x", linewidth=0.3)
        ax.set_xlim(lo, hi)
        y_top = bottom - axis_in

    handles = [
        Line2D([], [], color=STYLE[v][0], marker=STYLE[v][1], linestyle="", label=STYLE[v][2])
        for v in STYLE
        if v in present
    ]
    handles += [
        Line2D([], [], color="0.35", linewidth=1.2, label="95% interval (arrow: runs past the axis)"),
        Patch(color=BAND_COLOUR, label="counts as reported (tolerance, + seed spread if pooled)"),
    ]
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - head_in / total_h),
        ncol=2,
        fontsize=FONT,
        frameon=False,
    )
    for i, line in enumerate(footer):
        fig.text(0.01, (foot_in - 0.12 - 0.18 * i) / total_h, line, fontsize=FONT, va="top")
    return fig
