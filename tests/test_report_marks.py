"""What the tables mark: partial evidence (‡, never bold) in every table, UFB's declared full size,
intervals at small n ("n too small"), the band a pooled row used, and legends that explain every
verdict they can show.

Simulated results folders (evalsuite.report.simulate), only the benchmarks each case needs.
"""

from __future__ import annotations

import math
import re

import pytest

from evalsuite import benchmarks as registry
from evalsuite.report import (
    analysis,
    claims,
    forest,
    reported,
    simulate,
    stats,
    tablegen,
    tables_cmd,
    verdicts,
)
from evalsuite.report import grid as table_grid
from evalsuite.report.reported import Metric

PARTIAL = table_grid.LIMITED_MARK
PROTOCOL_MODEL = "smollm2-135m-instruct"  # the model whose card has a protocol-check table


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> tuple[analysis.Report, str]:
    """RM-1130 on 358 of RewardBench's 2985 rows, RM-1207 on 300 UFB pairs far below its reported value,
    DPO-1130 from a --sample run, DPO-1207 full, SmolLM2 on two items (--limit 2), and the protocol
    check's model from a --sample run."""
    root = tmp_path_factory.mktemp("marks")
    simulate.write_results(root / "rm-1130", "rm-1130", {"rewardbench": 72.43}, seed=1, truncate=358)
    simulate.write_results(root / "rm-1207", "rm-1207", {"ufb": 55.0}, seed=2, truncate=300)
    simulate.write_results(root / "dpo-1130", "dpo-1130", {"gsm8k": 51.6}, seed=3, settings={"sample": 50})
    simulate.write_results(root / "dpo-1207", "dpo-1207", {"gsm8k": 44.7}, seed=4)
    simulate.write_results(
        root / "smollm2", "smollm2-1.7b-instruct", {"arc": 100.0, "ifeval": 100.0}, seed=5, limit=2
    )
    simulate.write_results(root / "135m", PROTOCOL_MODEL, {"gsm8k": 1.4}, seed=6, settings={"sample": 200})
    out = tmp_path_factory.mktemp("marks-out")
    report, _ = tables_cmd.generate([root], out, formats=("md",), resamples=1000)
    return report, (out / "tables.md").read_text()


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 1)
    return md[start : end if end != -1 else len(md)]


def _rows(section: str) -> list[list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _row(section: str, first: str) -> list[str]:
    return next(r for r in _rows(section) if r[0] == first)


# --------------------------------------------------------------------------- partial evidence


def test_truncated_and_sampled_cells_are_marked_and_never_bold(marked: tuple[analysis.Report, str]) -> None:
    _, md = marked
    table8 = _section(md, "Table 8:")
    for row in ("RB Average", "RB Chat"):
        cells = _row(table8, row)
        rm1130 = cells[1]  # Table 8's first column
        assert rm1130.endswith(PARTIAL) and "**" not in rm1130, (row, cells)
    gsm = _row(_section(md, "Table 6:"), "GSM8K (5-shot)")
    assert gsm[1].endswith(PARTIAL) and "**" not in gsm[1]  # DPO-1130's --sample run
    assert any(c.startswith("**") for c in gsm[2:])  # the bold goes to a full value
    assert tablegen.PARTIAL_NOTE in table8


def test_partial_evidence_is_marked_in_the_statistics_tables(marked: tuple[analysis.Report, str]) -> None:
    _, md = marked
    stats8 = _section(md, "Table 8: reproduced vs reported")
    rb = next(r for r in _rows(stats8) if r[0].startswith("RM-1130") and r[1] == "RB Average")
    assert rb[2].endswith(PARTIAL)
    comparisons = _section(md, "Model vs model")
    dpo = next(r for r in _rows(comparisons) if r[2] == "GSM8K (5-shot)")
    assert dpo[0] == f"DPO-1130{PARTIAL}" and dpo[1] == "DPO-1207"
    assert tablegen.PARTIAL_NOTE in comparisons
    protocol = _section(md, "Protocol check")
    gsm = next(r for r in _rows(protocol) if r[0].startswith(PROTOCOL_MODEL) and r[1] == "GSM8K (5-shot)")
    assert gsm[4].endswith(PARTIAL) and gsm[5].endswith("(sampled)"), gsm


def test_the_forest_plot_marks_sampled_rows(marked: tuple[analysis.Report, str]) -> None:
    groups, _ = forest.panels(marked[0], reported.load())
    labels = [row.label for _, rows in groups for row in rows]
    assert any(label.startswith("DPO-1130") and label.endswith(PARTIAL) for label in labels), labels
    assert not any(label.startswith("DPO-1207") and label.endswith(PARTIAL) for label in labels)


def test_ufb_has_a_declared_full_size_and_a_truncated_ufb_is_partial(
    marked: tuple[analysis.Report, str],
) -> None:
    assert registry.full_items("ufb") == 2000  # test_prefs of allenai/ultrafeedback_binarized_cleaned
    assert sum(n for _, n in simulate.shape("ufb")) == registry.full_items("ufb")
    report, md = marked
    ufb = report.score("rm-1207", Metric("ufb"))
    assert ufb is not None and ufb.n == 300
    assert ufb.verdict is None and ufb.partial is not None and "ufb 300 of 2000" in ufb.partial
    row = next(
        r for r in _rows(_section(md, "Table 8: reproduced vs reported")) if r[0].startswith("RM-1207")
    )
    assert row[2].endswith(PARTIAL) and row[-1].startswith("partial"), row


# --------------------------------------------------------------------------- small n


def test_two_items_print_a_score_interval_or_n_too_small(marked: tuple[analysis.Report, str]) -> None:
    report, md = marked
    arc = report.score("smollm2-1.7b-instruct", Metric("arc"))
    ifeval = report.score("smollm2-1.7b-instruct", Metric("ifeval"))
    assert arc is not None and ifeval is not None and arc.n == 2 and ifeval.n == 2
    assert arc.interval["method"].startswith("wilson") and arc.interval["low"] < 50.0
    assert math.isnan(ifeval.interval["low"])
    section = _section(md, "Table 3: reproduced vs reported")
    rows = {r[1]: r for r in _rows(section) if r[0].startswith("SmolLM2")}
    assert rows["IFEval (Average)"][3].startswith(stats.NO_INTERVAL), rows["IFEval (Average)"]
    assert rows["ARC (Average)"][3].startswith("[") and "[100.00, 100.00]" not in rows["ARC (Average)"][3]
    assert "nan" not in md


def test_an_interval_written_as_null_prints_n_too_small() -> None:
    assert tablegen.interval_text({"low": None, "high": None, "method": "n too small"}) == "n too small"
    nan = {"low": math.nan, "high": math.nan, "method": stats.NO_INTERVAL + " (every resample the same)"}
    assert tablegen.interval_text(nan).startswith(stats.NO_INTERVAL) and "nan" not in tablegen.interval_text(
        nan
    )


# --------------------------------------------------------------------------- wording of verdicts


def _report_with(stat: analysis.ScoreStat, label: str = "dpo-1130") -> analysis.Report:
    model = analysis.ModelEntry(
        label, "DPO-1130", "causal-lm", "r/results.json", False, None, True, ["gsm8k"]
    )
    return analysis.Report(analysis.Settings(), [model], [stat], [], [], 0)


def _stats_row(stat: analysis.ScoreStat) -> list[str]:
    scores = reported.load()
    table = next(t for t in scores.tables if t.number == 6)
    stats = tablegen.stats_grid(table, _report_with(stat), scores)
    assert stats is not None
    return [table_grid._cell(c, "md") for c in stats.rows[0]]


def _gsm(value: float, interval: tuple[float, float], **fields) -> analysis.ScoreStat:
    rep = reported.load().get("dpo-1130", Metric("gsm8k"))
    assert rep is not None
    return analysis.ScoreStat(
        "dpo-1130",
        "gsm8k",
        value,
        1319,
        {"low": interval[0], "high": interval[1], "method": "t over 3 training seeds"},
        {"value": rep.value, "text": rep.text, "source": rep.source, "printed_in": rep.printed_in},
        difference=value - rep.value,
        **fields,
    )


def test_pooled_rows_show_the_band_they_used() -> None:
    stat = _gsm(45.0, (40.0, 50.0), verdict="inconclusive", verdict_reason="seed spread too large",
                tolerance=1.55, half_width=16.4, seeds=3, seed_sd=3.0,
                band={"low": 35.2, "high": 68.0})  # fmt: skip
    band = _stats_row(stat)[6]
    assert band.startswith("±16.40") and "1.55" in band, band


def test_reproduced_with_an_interval_that_excludes_the_reported_value_says_why() -> None:
    # three seeds close together, 1 point under 51.6: inside a ±1.9 band, outside their own interval
    stat = _gsm(50.6, (50.3, 50.9), verdict="reproduced", verdict_reason="gap -1.00 inside the band",
                tolerance=1.55, half_width=1.9, seeds=3, seed_sd=0.1,
                band={"low": 49.7, "high": 53.5})  # fmt: skip
    verdict = _stats_row(stat)[-1]
    assert verdict.startswith("reproduced (inside ±1.90 band; the 95% interval excludes the reported value)")
    inside = _gsm(51.0, (50.0, 52.0), verdict="reproduced", verdict_reason="gap -0.60 inside the band",
                  tolerance=1.55, half_width=1.55, band={"low": 50.05, "high": 53.15})  # fmt: skip
    assert _stats_row(inside)[-1] == "reproduced"  # the row says it all: no qualifier, no footnote


def test_no_legend_calls_a_measured_value_reproduced() -> None:
    assert "reproduced from the results" not in tablegen.LEGEND
    assert "measured" in tablegen.LEGEND
    for verdict in verdicts.VERDICTS:  # every verdict a row can show is explained under it
        assert verdict in tablegen.VERDICT_NOTE, verdict
    assert "seed spread" in tablegen.VERDICT_NOTE and "max_band" in tablegen.VERDICT_NOTE


def test_every_claim_verdict_is_explained_and_significance_differences_are_stated() -> None:
    for verdict in claims.Verdict.__args__:  # type: ignore[attr-defined]
        assert verdict in tablegen.CLAIM_VERDICTS, verdict
    assert re.search(r"consistent, too wide to confirm the size \(significant in the claimed direction; "
                     r"the interval overlaps the claimed size ± its tolerance but is not inside it\)",
                     tablegen.CLAIM_VERDICTS)  # fmt: skip
    result = claims.ClaimResult(1, "a claim", claims.CONSISTENT, 0.01, "interval [0.6, 11.2] vs +11.0 ± 1.6")
    grid = tablegen.claims_grid([result])
    assert grid.rows[0][2].text == claims.CONSISTENT and tablegen.CLAIM_VERDICTS in grid.notes
    # the same comparison, two significance rules: both lists say so
    assert "Holm" in tablegen.CLAIM_VERDICTS and "unadjusted" in tablegen.CLAIM_VERDICTS
    comparison = analysis.Comparison("dpo-1130", "dpo-1207", "gsm8k", 3.0, None, 0.03, "exact McNemar")
    report = analysis.Report(analysis.Settings(), [], [], [comparison], [], 0)
    notes = " ".join(tablegen.comparisons_grid(report).notes)  # type: ignore[union-attr]
    assert "unadjusted" in notes and "intersection-union" in notes


def test_no_internal_words_in_what_a_reader_sees(marked: tuple[analysis.Report, str]) -> None:
    text = " ".join([marked[1], tablegen.LEGEND, tablegen.VERDICTS, tablegen.CLAIM_VERDICTS])
    assert not re.search(r"\bissue \d|\bthe spec\b|\bsession\b", text, flags=re.I)
