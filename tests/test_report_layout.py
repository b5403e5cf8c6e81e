"""What `python -m evalsuite tables` shows a reader: provenance, the paper's layout, readable output.

Tables 3 and 6 print the paper's three columns (Llama/Qwen only in Table 9), every reported value
names the table it is credited to, each reproduced-vs-reported row appears once, p-values never
print as 0.0e+00, the hyperparameter tables carry the paper's Tulu 3 columns, the forest plot has
a panel per kind of model with nothing cut off, and --all-pairs widens the model comparisons.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_module

from core.errors import UsageError
from evalsuite.report import analysis, forest, hparam_tables, reported, simulate, tablegen, tables_cmd
from evalsuite.report.reported import Metric

# The paper's tables, typed from arXiv 2412.08347 (not read from the data files).
TABLE3 = ["sft-1130", "sft-1207", "smollm2-1.7b-instruct"]
TABLE6 = ["dpo-1130", "dpo-1207", "smollm2-1.7b-instruct"]
TABLE9 = ["dpo-1130", "dpo-1207", "sft-1130", "sft-1207", "smollm2-1.7b-instruct",
          "llama-3.2-1b-instruct", "qwen2.5-1.5b-instruct"]  # fmt: skip
ROWS = ["arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa"]
HEADERS = {"sft-1130": "SFT-1130", "sft-1207": "SFT-1207", "dpo-1130": "DPO-1130", "dpo-1207": "DPO-1207",
           "smollm2-1.7b-instruct": "SmolLM2-1.7B-Instruct", "llama-3.2-1b-instruct": "Llama-3.2-1B-Instruct",
           "qwen2.5-1.5b-instruct": "Qwen2.5-1.5B-Instruct"}  # fmt: skip
# Simulated results: LMs of Tables 3, 6 and 9 (DPO-1207 off its GSM8K), and two reward models.
MODELS = {
    "dpo-1130": {"gsm8k": 51.6, "ifeval": 67.7},
    "dpo-1207": {"gsm8k": 40.0},
    "smollm2-1.7b-instruct": {"gsm8k": 48.2, "ifeval": 56.7},
    "llama-3.2-1b-instruct": {"gsm8k": 26.8},
    "rm-1130": {"rewardbench": 72.43, "ufb": 73.17},
    "rm-1207": {"ufb": 61.66},
}


def _empty_report() -> analysis.Report:
    return analysis.Report(analysis.Settings(), [], [], [], [], 0)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout-results")
    for seed, (label, targets) in enumerate(MODELS.items()):
        simulate.write_results(root / label, label, targets, seed=seed)
    return root


@pytest.fixture(scope="module")
def generated(results: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[analysis.Report, Path]:
    out = tmp_path_factory.mktemp("layout-out")
    report, _ = tables_cmd.generate([results], out, resamples=1000)
    return report, out


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 1)
    return md[start : end if end != -1 else len(md)]


def _table_rows(section: str) -> list[list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]  # after header and rule


# --------------------------------------------------------------------------- provenance and layout


def test_tables_3_and_6_have_the_papers_three_columns() -> None:
    scores = reported.load()
    by_number = {t.number: t for t in scores.tables if t.kind == "paper"}
    for number, models in ((3, TABLE3), (6, TABLE6), (9, TABLE9)):
        table = by_number[number]
        assert [c.model for c in table.columns] == models, number
        assert [c.header for c in table.columns] == [HEADERS[m] for m in models], number
        assert [str(r.metric) for r in table.rows] == ROWS, number
        grid = tablegen.score_grid(table, _empty_report(), scores)
        assert grid.headers == ["", *(HEADERS[m] for m in models)], number
        assert [row[0].text for row in grid.rows] == [r.label for r in table.rows]


def test_each_reported_value_is_credited_to_the_table_that_prints_it() -> None:
    scores = reported.load()
    expected = {  # model -> (credited table, every table printing it)
        "llama-3.2-1b-instruct": ("paper Table 9", ("paper Table 9",)),
        "qwen2.5-1.5b-instruct": ("paper Table 9", ("paper Table 9",)),
        "sft-1207": ("paper Table 3", ("paper Table 3", "paper Table 9")),
        "dpo-1130": ("paper Table 6", ("paper Table 6", "paper Table 9")),
        "smollm2-1.7b-instruct": ("paper Table 3", ("paper Table 3", "paper Table 6", "paper Table 9")),
        "rm-1130": ("paper Table 8", ("paper Table 8",)),
    }
    for model, (source, printed_in) in expected.items():
        metric = Metric("ufb") if model.startswith("rm-") else Metric("gsm8k")
        got = scores.get(model, metric)
        assert got is not None and got.source == source and got.printed_in == printed_in, model
        assert scores.credited(model, metric).source == source  # type: ignore[union-attr]
    assert scores.get("llama-3.2-1b-instruct", Metric("mmlu_pro")).text == "12.7"  # type: ignore[union-attr]


def test_no_reproduced_vs_reported_row_is_printed_twice(generated: tuple[analysis.Report, Path]) -> None:
    md = (generated[1] / "tables.md").read_text()
    seen: Counter[tuple[str, str]] = Counter()
    where: dict[str, set[str]] = {}
    for title in re.findall(r"^## (Table \d+: reproduced vs reported)$", md, flags=re.M):
        for row in _table_rows(_section(md, title)):
            seen[(row[0], row[1])] += 1
            where.setdefault(row[0].removesuffix(" (simulated)"), set()).add(title.split(":")[0])
    assert seen and max(seen.values()) == 1, [k for k, n in seen.items() if n > 1]
    # 7 LM scores + RewardBench (headline and four sections) + 2 UFB: each once
    assert sum(seen.values()) == 6 + 5 + 2
    assert where == {
        "SmolLM2-1.7B-Instruct": {"Table 3"},  # first printed in Table 3 (also in 6 and 9)
        "DPO-1130": {"Table 6"},
        "DPO-1207": {"Table 6"},
        "Llama-3.2-1B-Instruct": {"Table 9"},  # printed in Table 9 only
        "RM-1130": {"Table 8"},
        "RM-1207": {"Table 8"},
    }
    table3 = _section(md, "Table 3: Performance")
    assert "Llama" not in table3 and "Qwen" not in table3
    header9 = _section(md, "Table 9: A comparison").splitlines()[2]
    assert all(HEADERS[m] in header9 for m in TABLE9)


def test_verdicts_are_shown_with_tolerance_source_and_reason(generated: tuple[analysis.Report, Path]) -> None:
    md = (generated[1] / "tables.md").read_text()
    section = _section(md, "Table 6: reproduced vs reported")
    header = [c.strip() for c in next(ln for ln in section.splitlines() if ln.startswith("|")).split("|")]
    assert header[1:-1] == ["model", "metric", "measured", "95% interval", "reported (source)", "diff",
                            "band", "verdict"]  # fmt: skip
    off = next(r for r in _table_rows(section) if r[0].startswith("DPO-1207") and r[1] == "GSM8K (5-shot)")
    assert off[4] == "44.7 (Table 6; also Table 9)"  # reported value and its provenance
    assert off[-2].startswith("±") and re.fullmatch(r"not reproduced \[\d+\]", off[-1])
    number = re.search(r"\[(\d+)\]", off[-1]).group(1)  # type: ignore[union-attr]
    assert re.search(rf"^\[{number}\] .*outside the band", section, flags=re.M)
    ok = next(r for r in _table_rows(section) if r[0].startswith("DPO-1130") and r[1] == "GSM8K (5-shot)")
    assert ok[-1] == "reproduced"  # inside reported ± tolerance: no footnote needed
    stat = next(s for s in generated[0].scores if s.model == "dpo-1207" and s.metric == "gsm8k")
    assert getattr(stat, "verdict", None) == "not reproduced"


# --------------------------------------------------------------------------- p-values


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0, "< 1e-4"), (3e-7, "< 1e-4"), (9.99e-5, "< 1e-4"), (1e-4, "0.0001"), (0.00042, "0.0004"),
     (0.0123, "0.012"), (0.5, "0.500"), (1.0, "1.000"), (None, "–"), (float("nan"), "–")],
)  # fmt: skip
def test_p_formatting(p: float | None, text: str) -> None:
    assert tablegen.format_p(p) == text


def test_p_values_never_print_as_zero_in_any_output(generated: tuple[analysis.Report, Path]) -> None:
    report, out = generated
    assert any(c.p_value is not None and c.p_value < 1e-4 for c in report.comparisons)  # the case at hand
    for name in ("tables.md", "tables.tex", "claims.md"):
        assert not re.search(r"\b0\.0e[+-]\d\d", (out / name).read_text()), name  # the old 0.0e+00
    cells = []
    for name in ("tables.md", "claims.md"):  # every cell under a p column of every table
        for block in re.split(r"\n\n", (out / name).read_text()):
            lines = [ln for ln in block.splitlines() if ln.startswith("|")]
            if not lines:
                continue
            header = [c.strip() for c in lines[0].strip("|").split("|")]
            columns = [j for j, h in enumerate(header) if h in ("p", "p (Holm)")]
            cells += [row[j] for row in _table_rows(block) for j in columns]
    assert len(cells) >= 20 and "< 1e-4" in cells
    assert all(re.fullmatch(r"< 1e-4|0\.\d{3,4}|1\.000|–", c) for c in cells), set(cells)
    assert r"\textless{} 1e-4" in (out / "tables.tex").read_text()


# --------------------------------------------------------------------------- hyperparameter tables

# The paper's reference columns (Tables 2, 5, 7): header -> (learning rate, batch, LR/BS as printed).
REFERENCE = {
    2: {"Tulu 3 SFT 8b": ("5.0e-06", "128", "0.039"), "Tulu 3 SFT 70b": ("2.0e-06", "128", "0.016")},
    5: {"Tulu 3 DPO 8b": ("5.0e-07", "128", "0.039"), "Tulu 3 DPO 70b": ("2.0e-07", "128", "0.016")},
    7: {"Tulu 3 DPO 8b": ("5.0e-07", "128", "0.039")},  # the paper's RM table prints the DPO values
}


def test_hparam_tables_carry_the_papers_reference_columns() -> None:
    for table in hparam_tables.tables():
        ref = REFERENCE[table.number]
        assert table.headers[-len(ref) :] == list(ref), table.number
        for j, (header, cells) in enumerate(ref.items(), start=len(table.headers) - len(ref)):
            assert tuple(row[j] for row in table.rows) == cells, (table.number, header)
    table7 = next(t for t in hparam_tables.tables() if t.number == 7)
    assert any("3.0e-6" in n and "256" in n for n in table7.notes)  # the Tulu 3 8B RM's own values


def test_hparam_reference_columns_are_rendered_everywhere(generated: tuple[analysis.Report, Path]) -> None:
    md = (generated[1] / "tables.md").read_text()
    cli = run_module("repro", "hparam-tables")
    assert cli.returncode == 0, cli.stderr
    for text in (md, cli.stdout):
        for number, title in ((2, "SFT"), (5, "DPO"), (7, "Reward model")):
            section = text[text.index(f"Table {number}: {title}") :]
            header = next(ln for ln in section.splitlines() if ln.startswith("|"))
            assert all(h in header for h in REFERENCE[number]), (number, header)


def test_hparam_reference_values_need_a_source() -> None:
    good = (
        "columns:\n  - {table: 2, header: X, model: m, learning_rate: {value: 5.0e-6, source: s},\n"
        "     effective_batch_size: {value: 128, source: s}, ratio: {value: '0.039', source: s}}\n"
    )
    assert hparam_tables.reference_columns(good)[0].learning_rate.value == 5e-6
    with pytest.raises(UsageError, match="expected \\{value, source\\}"):
        hparam_tables.reference_columns(good.replace("{value: 128, source: s}", "128"))
    with pytest.raises(UsageError, match="needs a source"):
        hparam_tables.reference_columns(good.replace("5.0e-6, source: s", "5.0e-6, source: ''"))


# --------------------------------------------------------------------------- forest plot


def test_forest_plot_has_a_panel_per_kind_with_the_papers_labels(
    generated: tuple[analysis.Report, Path],
) -> None:
    report = generated[0]
    scores = reported.load()
    fig = forest.forest_figure(report, scores)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["Language models", "Reward models"]
    lm, rm = ([t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes)
    assert (
        "DPO-1130 · GSM8K (5-shot) (n 1319)" in lm and "Llama-3.2-1B-Instruct · GSM8K (5-shot) (n 1319)" in lm
    )
    assert any(x.startswith("RM-1130 · RB Chat (n ") for x in rm) and "RM-1207 · UFB (n 2000)" in rm
    title = fig.texts[0].get_text()  # from the content: the models shown, never a fixed name
    assert title.startswith("Measured − reported: ") and "DPO-1130" in title
    assert not any("RM-" in label for label in lm) and not any("DPO" in label for label in rm)
    # nothing cut off: every label, title and legend lies inside the figure
    fig.canvas.draw()
    box = fig.bbox
    texts = [t for ax in fig.axes for t in (*ax.get_yticklabels(), ax.title, ax.xaxis.label)]
    texts += [*fig.texts, *fig.legends]
    for artist in texts:
        ext = artist.get_window_extent()
        assert ext.x0 >= box.x0 - 0.5 and ext.x1 <= box.x1 + 0.5, artist
        assert ext.y0 >= box.y0 - 0.5 and ext.y1 <= box.y1 + 0.5, artist
    # sized to its content: more rows, a taller figure
    one_kind = dataclasses.replace(report, scores=[s for s in report.scores if not s.model.startswith("rm-")])
    small = forest.forest_figure(one_kind, scores)
    assert len(small.axes) == 1 and small.get_figheight() < fig.get_figheight()


def test_forest_png_is_written(generated: tuple[analysis.Report, Path]) -> None:
    assert (generated[1] / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- --all-pairs


def test_all_pairs_widens_the_comparisons(
    results: Path, generated: tuple[analysis.Report, Path], tmp_path: Path
) -> None:
    if "all_pairs" not in {f.name for f in dataclasses.fields(analysis.Settings)}:
        pytest.skip("analysis.Settings has no all_pairs field yet (another change adds it)")
    help_text = run_module("evalsuite", "tables", "--help").stdout
    assert "--all-pairs" in help_text
    out = tmp_path / "all"
    cli = run_module("evalsuite", "tables", "--results", str(results), "--out", str(out),
                     "--resamples", "1000", "--all-pairs")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    default = generated[0].comparisons
    wide = json.loads((out / "statistics.json").read_text())["comparisons"]
    pairs = {frozenset((c.a, c.b)) for c in default}
    wide_pairs = {frozenset((c["a"], c["b"])) for c in wide}
    assert len(wide) > len(default) and pairs < wide_pairs
    assert frozenset(("smollm2-1.7b-instruct", "llama-3.2-1b-instruct")) in wide_pairs - pairs
    # the output says which pairs were compared and which family Holm adjusted over
    assert "every pair of models of the same kind (--all-pairs)" in (out / "tables.md").read_text()
    assert "only the pairs the paper compares" in (generated[1] / "tables.md").read_text()
    assert "Holm family" in cli.stdout
