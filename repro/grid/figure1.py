"""Paper Figure 1: one contour map per benchmark over (learning rate, batch size), from results only.

Scores come from evaluation results (evalsuite.results) whose `settings` name the ablation and
carry `learning_rate` and `batch_size`; a grid point without results is reported and drawn as
a cross, never filled in. Maps are drawn in (log10 LR, log2 BS) coordinates, where each
LR/BS ratio is a straight iso-line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import atomic
from core.errors import UsageError

PREFIX = "figure1"


def key(learning_rate: float, batch_size: int) -> tuple[float, int]:
    """Grid coordinates as compared across files: LR to 6 significant digits (as in point names)."""
    return float(f"{learning_rate:.6g}"), int(batch_size)


@dataclass(frozen=True)
class Scored:
    learning_rate: float
    batch_size: int
    results: Path | None  # the results.json, None when the point has none
    scores: dict[str, float]  # benchmark -> percent, only those evaluated
    n: dict[str, int]
    limit: int | None = None

    @property
    def ratio(self) -> float:
        return self.learning_rate / self.batch_size


def collect(roots: Sequence[Path], ablation: str) -> dict[tuple[float, int], Path]:
    """results.json files under `roots` that belong to `ablation`, keyed by grid point."""
    from evalsuite import results as results_io

    found: dict[tuple[float, int], Path] = {}
    for path in results_io.discover([r for r in roots if Path(r).exists()]):
        settings = results_io.load(path).settings
        if settings.get("ablation") != ablation:
            continue
        try:
            point = key(float(settings["learning_rate"]), int(settings["batch_size"]))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: settings lack a numeric learning_rate and batch_size") from None
        if point in found:
            raise UsageError(
                f"two results for LR {point[0]:g}, BS {point[1]}: {found[point]} and {path}; "
                "move one away and rerun"
            )
        found[point] = path
    return found


def score_table(
    learning_rates: Sequence[float],
    batch_sizes: Sequence[int],
    found: dict[tuple[float, int], Path],
    benchmarks: Sequence[str],
) -> list[Scored]:
    from evalsuite import results as results_io

    rows = []
    for bs in batch_sizes:
        for lr in learning_rates:
            path = found.get(key(lr, bs))
            if path is None:
                rows.append(Scored(lr, bs, None, {}, {}))
                continue
            res = results_io.load(path)
            got = {b: res.benchmarks[b] for b in benchmarks if b in res.benchmarks}
            rows.append(
                Scored(lr, bs, path, {b: r.score for b, r in got.items()}, {b: r.n for b, r in got.items()},
                       res.limit)
            )  # fmt: skip
    return rows


def iso_ratios(learning_rates: Sequence[float], batch_sizes: Sequence[int]) -> list[float]:
    """1e-k and 3e-k ratios inside the grid's span (1e-k only when that gives enough lines)."""
    low = min(learning_rates) / max(batch_sizes)
    high = max(learning_rates) / min(batch_sizes)
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    inside = [m * 10.0**k for k in decades for m in (1, 3) if low <= m * 10.0**k <= high]
    ones = [r for r in inside if f"{r:.0e}".startswith("1")]
    return ones if len(ones) >= 3 else inside


def _matrix(
    rows: Sequence[Scored], lrs: Sequence[float], bss: Sequence[int], bench: str
) -> np.ma.MaskedArray:
    by_point = {key(r.learning_rate, r.batch_size): r for r in rows}
    z = np.full((len(bss), len(lrs)), np.nan)
    for i, bs in enumerate(bss):
        for j, lr in enumerate(lrs):
            z[i, j] = by_point[key(lr, bs)].scores.get(bench, np.nan)
    return np.ma.masked_invalid(z)


def _draw_map(
    ax, rows: Sequence[Scored], lrs: Sequence[float], bss: Sequence[int], bench: str,
    marked: dict[str, float], title: str,
) -> None:  # fmt: skip
    from matplotlib.ticker import FixedLocator

    x, y = np.log10(lrs), np.log2(bss)
    z = _matrix(rows, lrs, bss, bench)
    ns = sorted({r.n[bench] for r in rows if bench in r.n})
    items = f"n {ns[0]}" if len(ns) == 1 else f"n {ns[0]}-{ns[-1]}" if ns else "no results"
    title = f"{title}\n{z.count()} points, {items} items each"
    if z.count():
        lo, hi = float(z.min()), float(z.max())
        if hi > lo:
            filled = ax.contourf(x, y, z, levels=np.linspace(lo, hi, 9), cmap="viridis")
            ax.figure.colorbar(filled, ax=ax, label="score (%)")
        else:  # a constant field has nothing to map: say so instead of a one-colour fill
            ax.text(0.5, 0.5, f"every point scores {lo:.1f}: nothing to map", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="0.3", zorder=5,
                    bbox={"facecolor": "white", "edgecolor": "0.7"})  # fmt: skip
    pad_x = max(0.2, 0.1 * (x.max() - x.min()))
    pad_y = max(0.3, 0.08 * (y.max() - y.min()))
    xlim, ylim = (x.min() - pad_x, x.max() + pad_x), (y.min() - pad_y, y.max() + pad_y)
    # log10(LR/BS) = x - y*log10(2): a linear field whose contours are the iso-ratio lines.
    gx, gy = np.meshgrid(np.linspace(*xlim, 50), np.linspace(*ylim, 50))
    field = gx - gy * math.log10(2)
    # a plain iso-line within 25% of a named one would only blur its label
    ratios = [r for r in iso_ratios(lrs, bss) if all(abs(math.log10(r / m)) > 0.1 for m in marked.values())]
    if ratios:
        lines = ax.contour(gx, gy, field, levels=np.log10(ratios), colors="black", linewidths=0.9,
                           linestyles="dotted")  # fmt: skip
        ax.clabel(lines, fmt=lambda v: f"LR/BS {10**v:.0e}", fontsize=7)
    for i, (name, ratio) in enumerate(sorted(marked.items())):  # a legend: short lines defeat clabel
        ends = np.array(ylim)
        ax.plot(math.log10(ratio) + ends * math.log10(2), ends, color=f"C{i + 1}", linewidth=1.3,
                label=f"{name}: LR/BS {ratio:.2g}")  # fmt: skip
    if marked:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7, frameon=False)
    for j in range(len(lrs)):
        for i in range(len(bss)):
            if np.ma.is_masked(z[i, j]):
                ax.plot(x[j], y[i], "x", color="red", markersize=7)
                ax.annotate("no result", (x[j], y[i]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7, color="red")  # fmt: skip
            else:
                ax.plot(x[j], y[i], "o", color="black", markersize=4)
                ax.annotate(f"{z[i, j]:.1f}", (x[j], y[i]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)  # fmt: skip
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.xaxis.set_major_locator(FixedLocator(x))
    ax.set_xticklabels([f"{lr:g}" for lr in lrs])
    ax.yaxis.set_major_locator(FixedLocator(y))
    ax.set_yticklabels([str(bs) for bs in bss])
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("effective batch size (log scale)")
    ax.set_title(title, fontsize=9)


def _png(draw, size: tuple[float, float]) -> bytes:
    from matplotlib.figure import Figure  # the object API: Agg canvas, no pyplot global state

    fig = Figure(figsize=size, layout="constrained")
    draw(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def _csv(rows: Sequence[Scored], benchmarks: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["learning_rate", "batch_size", "lr_per_batch", *benchmarks, "results"])
    for r in rows:
        scores = [f"{r.scores[b]:.4f}" if b in r.scores else "" for b in benchmarks]
        writer.writerow([f"{r.learning_rate:g}", r.batch_size, f"{r.ratio:.6g}", *scores, r.results or ""])
    return out.getvalue()


def _json(rows: Sequence[Scored], benchmarks: Sequence[str], ablation: str) -> str:
    points = [
        {
            "learning_rate": r.learning_rate,
            "batch_size": r.batch_size,
            "lr_per_batch": r.ratio,
            "scores": {b: r.scores.get(b) for b in benchmarks},  # null: not evaluated
            "n": r.n,
            "limit": r.limit,
            "results": str(r.results) if r.results else None,
        }
        for r in rows
    ]
    return (
        json.dumps({"ablation": ablation, "benchmarks": list(benchmarks), "points": points}, indent=2) + "\n"
    )


def draw(
    rows: Sequence[Scored],
    learning_rates: Sequence[float],
    batch_sizes: Sequence[int],
    benchmarks: Sequence[str],
    out_dir: Path,
    *,
    ablation: str,
    title: str,
    marked: dict[str, float] | None = None,
) -> list[Path]:
    """Write figure1_<bench>.png per benchmark, figure1.png (all panels) and the score table."""
    from evalsuite.benchmarks import get

    lrs, bss = sorted(learning_rates), sorted(batch_sizes)
    if len(lrs) < 2 or len(bss) < 2:
        raise UsageError("a contour map needs at least 2 learning rates and 2 batch sizes; widen --grid")
    marked = {k: v for k, v in (marked or {}).items() if lrs[0] / bss[-1] <= v <= lrs[-1] / bss[0]}
    drawn = [b for b in benchmarks if any(b in r.scores for r in rows)]
    if not drawn:
        raise UsageError(f"no evaluation results for any point of {ablation}: evaluate the grid first")

    def panel(bench: str):
        return lambda ax: _draw_map(ax, rows, lrs, bss, bench, marked, f"{get(bench).column}: {title}")

    images = {
        f"{PREFIX}_{b}.png": _png(lambda fig, b=b: panel(b)(fig.add_subplot()), (6, 4.5)) for b in drawn
    }

    def all_panels(fig) -> None:
        axes = list(fig.subplots(math.ceil(len(benchmarks) / 2), min(len(benchmarks), 2), squeeze=False).flat)
        for ax, bench in zip(axes, benchmarks, strict=False):
            panel(bench)(ax)
        for ax in axes[len(benchmarks) :]:
            ax.set_axis_off()

    images[f"{PREFIX}.png"] = _png(all_panels, (12, 4.5 * math.ceil(len(benchmarks) / 2)))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in images.items():  # everything rendered first: a drawing error writes nothing
        atomic.write_bytes(out_dir / name, data)
        written.append(out_dir / name)
    atomic.write_text(out_dir / f"{PREFIX}_scores.csv", _csv(rows, benchmarks))
    atomic.write_text(out_dir / f"{PREFIX}_scores.json", _json(rows, benchmarks, ablation))
    return [*written, out_dir / f"{PREFIX}_scores.csv", out_dir / f"{PREFIX}_scores.json"]
