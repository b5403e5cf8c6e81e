"""Sharpness against LR/BS over the 135M grid, each point coloured by its reasoning score.

Two panels (top Hessian eigenvalue; Keskar's ε-sharpness) over log LR/BS, from the grid's sharpness
files (evalsuite/sharpness/record.py); a point's colour is its reasoning score, the mean of the
paper's reasoning benchmarks (ARC, GSM8K: "reasoning tasks like ARC and GSM8K", abstract) that its
evaluation has. A point without results is drawn hollow, a power iteration that did not converge
with a cross; smoke-profile points say so in the title. `tables` writes it as sharpness.png;
`write(roots, out_dir)` draws it from results folders (the grid's own figure folder).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core import atomic
from evalsuite import results as results_io
from evalsuite.report.grid_claims import sharpness_of
from evalsuite.report.result_set import Run
from evalsuite.sharpness import record as record_io
from evalsuite.sharpness.record import Measurement

FILE = "sharpness.png"
REASONING = ("arc", "gsm8k")


@dataclass(frozen=True)
class Dot:
    measurement: Measurement
    ratio: float
    score: float | None  # mean reasoning score, percent
    benchmarks: tuple[str, ...]  # those the score averages


def _score(benchmarks: dict[str, results_io.BenchmarkResult]) -> tuple[float | None, tuple[str, ...]]:
    have = tuple(b for b in REASONING if b in benchmarks)
    return (sum(benchmarks[b].score for b in have) / len(have) if have else None), have


def dots(training: Sequence[Measurement], results: Sequence[results_io.Results]) -> list[Dot]:
    """Every grid point's sharpness file, with the reasoning score of the evaluation of its weights."""
    scored = {}
    for res in results:
        m = sharpness_of(res.model.sha256, res.settings, training)
        if m is not None:
            scored[m.path] = _score(res.benchmarks)
    out = []
    for m in training:
        point = m.point()
        if point is not None:
            score, have = scored.get(m.path, (None, ()))
            out.append(Dot(m, point[0] / point[1], score, have))
    return out


def _draw(fig, points: Sequence[Dot]) -> None:
    from matplotlib import cm, colormaps, colors

    scores = [d.score for d in points if d.score is not None]
    norm = None
    if scores:
        low, high = min(scores), max(scores)
        norm = colors.Normalize(low, high if high > low else low + 1)
    cmap = colormaps["viridis"]
    axes = fig.subplots(1, 2)
    benches = sorted({b for d in points for b in d.benchmarks})
    smoke = any(d.measurement.profile != "real" for d in points)
    for ax, (key, label) in zip(
        axes,
        (("top_eigenvalue", "top Hessian eigenvalue"), ("epsilon_sharpness", "ε-sharpness (%)")),
        strict=True,
    ):
        for d in points:
            y = getattr(d.measurement, key)
            face = cmap(norm(d.score)) if norm is not None and d.score is not None else "none"
            marker = "X" if key == "top_eigenvalue" and not d.measurement.converged else "o"
            ax.scatter([d.ratio], [y], s=60, c=[face], edgecolors="black", marker=marker, zorder=3)
            lr, bs = d.measurement.point() or (math.nan, 0)
            ax.annotate(
                f"lr {lr:g}\nbs {bs}", (d.ratio, y), textcoords="offset points", xytext=(5, 3), fontsize=6
            )
        x_log = _log_scale(ax, "x", [d.ratio for d in points])
        _log_scale(ax, "y", [getattr(d.measurement, key) for d in points])
        ax.set_xlabel("learning rate / batch size" + (" (log scale)" if x_log else ""))
        ax.set_ylabel(label)
        ax.grid(True, which="major", linewidth=0.3)
    if norm is not None:
        mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=list(axes), label=f"reasoning score: mean of {', '.join(benches)} (%)")
    notes = ["hollow: no evaluation", "X: power iteration not converged"]
    title = f"Sharpness of each grid point's SFT loss against LR/BS ({len(points)} points)"
    if smoke:
        title += " — smoke profile (tiny model): decides nothing"
    fig.suptitle(f"{title}\n{'; '.join(notes)}", fontsize=9)


def _log_scale(ax, which: str, values: Sequence[float]) -> bool:
    """A log axis only for positive values spanning a decade or more: a narrower log range has no
    major tick inside it, and its axis would carry no numbers. Either way the ticks are labelled."""
    from matplotlib.ticker import LogFormatterSciNotation, NullFormatter

    finite = [v for v in values if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) >= 10
    axis = ax.xaxis if which == "x" else ax.yaxis
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_formatter(LogFormatterSciNotation())
        axis.set_minor_formatter(NullFormatter())  # minor labels crowd a short log range
    return log


def png_of(points: Sequence[Dot]) -> bytes | None:
    if not points:
        return None
    from matplotlib.figure import Figure  # the object API: Agg canvas, no pyplot global state

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    _draw(fig, points)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def png(training: Sequence[Measurement], runs: Sequence[Run]) -> bytes | None:
    """The figure for `tables` (None when no sharpness file is of a grid point)."""
    return png_of(dots(training, [r.results for r in runs]))


def write(roots: Sequence[Path], out_dir: Path) -> Path | None:
    """Draw from results folders (sharpness/*.json and results.json under roots) into out_dir/FILE."""
    present = [Path(r) for r in roots if Path(r).exists()]
    results = [results_io.load(p) for p in results_io.discover(present)]
    data = png_of(dots(record_io.discover(present), results))
    if data is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out_dir / FILE, data)
    return out_dir / FILE
