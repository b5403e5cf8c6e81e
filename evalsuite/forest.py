"""Forest plot: reproduced minus reported, per model and metric, with the 95% interval (PNG)."""

from __future__ import annotations

import io

import numpy as np

from evalsuite.analysis import Report


def forest_png(report: Report) -> bytes:
    # Figure + Agg canvas, not pyplot: files only, no display, and a lighter import
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [s for s in report.scores if s.difference is not None and s.interval is not None and s.reported]
    simulated = {m.label for m in report.models if m.simulated}
    height = max(2.5, 0.28 * len(rows) + 1.5)
    fig = Figure(figsize=(8.0, height))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if not rows:
        ax.text(0.5, 0.5, "no reproduced results at full item count to compare", ha="center", va="center")
        ax.set_axis_off()
    else:
        ordered = list(reversed(rows))
        for flag, colour in ((False, "tab:blue"), (True, "tab:red")):  # one artist per colour: fast
            pick = [(y, s) for y, s in enumerate(ordered) if bool(s.significant) == flag]
            if not pick:
                continue
            ys = [y for y, _ in pick]
            diffs = np.array([s.difference for _, s in pick])
            reps = np.array([s.reported["value"] for _, s in pick])
            lows = np.array([s.interval["low"] for _, s in pick]) - reps
            highs = np.array([s.interval["high"] for _, s in pick]) - reps
            ax.errorbar(
                diffs,
                ys,
                xerr=[diffs - lows, highs - diffs],
                fmt="o",
                color=colour,
                ecolor=colour,
                capsize=2,
                markersize=4,
            )
        # a value from a model card (the Reinforced card, a protocol check's card) is marked as such
        labels = [
            f"{s.model}{' (sim.)' if s.model in simulated else ''} · {s.metric}"
            f"{'' if s.reported['source'].startswith('paper') else ' (card)'}"
            for s in reversed(rows)
        ]
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("reproduced − reported (points), 95% interval; red: significant after Holm")
        ax.grid(axis="x", linewidth=0.3)
    title = "SmolTulu: reproduced vs reported"
    if simulated:
        title += " — SIMULATED inputs"
    ax.set_title(title, fontsize=10)
    # fixed margins: tight_layout would lay the text out twice, the slowest step here
    fig.subplots_adjust(left=0.32, right=0.97, top=1 - 0.5 / height, bottom=0.7 / height)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
