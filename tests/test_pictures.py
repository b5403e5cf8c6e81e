"""The figures read right at a glance: titles from their content, n on every row or panel, a readable
band, numbers on every axis, no colour map of a constant field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite import results as results_fmt
from evalsuite.report import analysis, claims, forest, reported, result_set, sharpness_figure, simulate
from repro.grid import figure1


@pytest.fixture(scope="module")
def sampled_report(tmp_path_factory: pytest.TempPathFactory) -> analysis.Report:
    """The real model's protocol check on a 60-item sample: intervals of about ±20 points."""
    root = tmp_path_factory.mktemp("pictures")
    simulate.write_results(
        root / "s135", "smollm2-135m-instruct", {"arc": 43.0, "piqa": 66.0}, seed=1, settings={"sample": 60},
        truncate=60,
    )  # fmt: skip
    scores = reported.load()
    runs = result_set.load_runs(results_fmt.discover([root]), scores)
    return analysis.analyse(runs, scores, claims.load(scores), analysis.Settings(resamples=1000))


def test_the_forest_plot_keeps_the_band_readable(sampled_report: analysis.Report) -> None:
    fig = forest.forest_figure(sampled_report, reported.load())
    (ax,) = fig.axes
    title = fig.texts[0].get_text()
    assert "SmolLM2-135M-Instruct" in title and "SmolTulu" not in title
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all("(n 60)" in label for label in labels)
    low, high = ax.get_xlim()
    widest = max(s.interval["high"] - s.interval["low"] for s in sampled_report.scores if s.interval)
    assert high - low < widest  # the axis follows the bands, not a 60-item interval
    stats = [s for s in sampled_report.scores if s.verdict is not None]
    assert all(s.half_width is not None and 2 * s.half_width > 0.02 * (high - low) for s in stats)


def test_a_narrow_range_gets_a_linear_axis_with_numbers() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert not sharpness_figure._log_scale(ax, "y", [3.0, 5.0, 9.0])  # under a decade: linear
    assert ax.get_yscale() == "linear"
    assert sharpness_figure._log_scale(ax, "x", [1e-8, 1e-6])
    assert ax.get_xscale() == "log"


def test_a_constant_grid_is_not_drawn_as_a_colour_map(tmp_path: Path) -> None:
    rows = [
        figure1.Scored(lr, bs, Path("r.json"), {"gsm8k": 0.0}, {"gsm8k": 8})
        for lr in (1e-5, 9e-5)
        for bs in (4, 8)
    ]
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    figure1._draw_map(ax, rows, [1e-5, 9e-5], [4, 8], "gsm8k", {}, "GSM8K: smoke")
    assert "4 points, n 8 items each" in ax.get_title()
    assert any("nothing to map" in t.get_text() for t in ax.texts)
    assert len(ax.figure.axes) == 1  # no colour bar
    varied = [
        figure1.Scored(r.learning_rate, r.batch_size, r.results, {"gsm8k": float(i)}, r.n)
        for i, r in enumerate(rows)
    ]
    ax2 = Figure().add_subplot()
    figure1._draw_map(ax2, varied, [1e-5, 9e-5], [4, 8], "gsm8k", {}, "GSM8K: smoke")
    assert len(ax2.figure.axes) == 2 and not np.isnan(ax2.get_xlim()).any()
