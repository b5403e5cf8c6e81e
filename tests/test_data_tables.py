"""The paper's data tables in `python -m evalsuite tables`: contamination (Tables 1, 4, 13) and
language presence (Tables 10-12), printed against measured, and contamination beside the scores.

The printed values are checked against ../shared/spec/data-tables.md, parsed here on its own; the
measurements are JSON files in the formats `evalsuite contamination` / `languages` write, built
here with counts chosen so the expected verdict follows from arithmetic done in the test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_module

from core import lock as lockfile
from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import data_tables, tables_cmd

SPEC = Path(ROOT.parent / "shared" / "spec" / "data-tables.md")
# The printed values as input data, read with plain YAML (not through the loader under test).
PRINTED = {
    t["table"]: {r.get("benchmark") or r.get("language"): r["value"] for r in t["rows"]}
    for t in yaml.safe_load(data_tables.DATA_FILE.read_text(encoding="utf-8"))["tables"]
}


def _spec() -> tuple[dict[int, list[tuple[str, str]]], dict[int, str], dict[int, str]]:
    """(table -> [(key, printed)]), contamination table -> dataset repo, languages table -> stage word."""
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} absent: the spec of the paper's data tables is not in this checkout's workspace")
    text = SPEC.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    columns = [re.match(r"Table (\d+): (\w+) \(([^)]+)\)", h) for h in header[1:]]
    tables: dict[int, list[tuple[str, str]]] = {int(m.group(1)): [] for m in columns if m}
    repos = {int(m.group(1)): m.group(3) for m in columns if m}
    stage = {m.group(2): int(m.group(1)) for m in columns if m}  # SFT -> 1, DPO -> 4, RLVR -> 13
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for m, value in zip(columns, cells[1:], strict=True):
            tables[int(m.group(1))].append((cells[0], value))
    languages_of = {}
    for number, word, body in re.findall(
        r"^Table (\d+), (\w+)[^:]*:(.*?)(?:\n\n|\Z)", text, flags=re.M | re.S
    ):
        tables[int(number)] = re.findall(r"([A-Z][a-z]+) (\d+\.\d+)", body)
        languages_of[int(number)] = word
    return tables, repos, {n: repos[stage[w]] for n, w in languages_of.items()}


def test_reported_values_equal_the_spec() -> None:
    spec, repos, language_repos = _spec()
    loaded = {t.number: t for t in data_tables.load()}
    assert sorted(loaded) == sorted(spec) == [1, 4, 10, 11, 12, 13]
    lock = lockfile.load()
    for number, rows in spec.items():
        table = loaded[number]
        assert [(r.key, r.text) for r in table.rows] == rows, number
        assert table.kind == ("contamination" if number in repos else "languages")
        repo = repos.get(number) or language_repos[number]
        assert lock.get(table.dataset).repo_id == repo, number
    assert len(spec[1]) == 17 and len(spec[12]) == 18  # Table 12 prints no Thai, no Greek


def test_the_benchmark_mapping_agrees_with_the_contamination_study() -> None:
    """IN_STUDY (report side) against the study's own list, which names the suite's readers."""
    from evalsuite.trainingdata import contamination

    study = {b.suite: b.name for b in contamination.BENCHMARKS if b.suite}
    assert study == data_tables.IN_STUDY
    evaluated = {name for name, b in registry.BENCHMARKS.items() if b.model_kind == "causal-lm"}
    assert evaluated - set(study) == {"arc", "hellaswag", "piqa"}


def test_a_malformed_reported_file_is_one_line(tmp_path: Path) -> None:
    raw = yaml.safe_load(data_tables.DATA_FILE.read_text(encoding="utf-8"))
    raw["tables"][0]["rows"][0]["value"] = 1.34  # a number, not the printed string
    bad = tmp_path / "data_tables.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(UsageError, match=r"data_tables\.yaml: table 1: cais/mmlu: 'value' should be a str"):
        data_tables.load(bad)
    bad.write_text("tables: [\n")
    with pytest.raises(UsageError, match="not valid YAML") as err:
        data_tables.load(bad)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- measurements


def _contamination(
    folder: Path, dataset: str | None, counts: dict[str, tuple[int, int]], name: str = ""
) -> Path:
    """A JSON in `evalsuite contamination`'s format; benchmarks absent from `counts` unavailable."""
    per = []
    for bench in PRINTED[1]:
        if bench in counts:
            hits, items = counts[bench]
            per.append({"benchmark": bench, "status": "measured", "items": items, "contaminated": hits,
                        "percent": 100 * hits / items, "flagged": []})  # fmt: skip
        else:
            per.append({"benchmark": bench, "status": "unavailable", "reason": "not available offline"})
    train = {"dataset": dataset, "repo_id": "x", "revision": "r"} if dataset else {"files": ["train.jsonl"]}
    record = {
        "command": "contamination",
        "training_set": train,
        "definition": {"method": "ngram", "ngram_size": 8, "threshold": 0.5, "search_size": 100},
        "benchmarks": per,
    }
    path = folder / "contamination" / f"{name or dataset or 'local'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _languages(folder: Path, dataset: str, counts: dict[str, int], census: bool = False) -> Path:
    """A JSON in `evalsuite languages`' format (primary detector only); n = sum of counts."""
    n = sum(counts.values())
    names = sorted({*PRINTED[10], *counts})
    record = {
        "schema": 1,
        "dataset": {"name": dataset, "repo_id": "x", "revision": "r", "paper_table": "Table ?", "rows": n},
        "settings": {
            "sample": n,
            "sampled": n,
            "census": census,
            "seed": 0,
            "text": "first-user",
            "max_length": 512,
        },
        "primary": "xlm-roberta",
        "detectors": {
            "xlm-roberta": {
                "classified": n,
                "languages": [{"language": k, "count": counts.get(k, 0)} for k in names],
            }
        },
    }
    path = folder / "languages" / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _result(report: data_tables.DataReport, number: int) -> dict[str, data_tables.DataRow]:
    table = next(t for t in report.tables if t.number == number)
    return {r.key: r for r in table.rows}


def _hits(printed: str, items: int) -> int:
    return round(float(printed) * items / 100)


def test_contamination_verdicts(tmp_path: Path) -> None:
    items = 100_000  # 1 item = 0.001 points: every printed value is an exact count
    counts = {b: (_hits(v, items), items) for b, v in PRINTED[1].items() if b != "ucinlp/drop"}
    counts["openai/gsm8k"] = (_hits(PRINTED[1]["openai/gsm8k"], items) + 100, items)  # 0.1 points more
    counts["lighteval/MATH"] = (_hits(PRINTED[1]["lighteval/MATH"], items) + 4, items)  # within 0.005
    counts["akariasai/PopQA"] = (_hits(PRINTED[1]["akariasai/PopQA"], items) - 6, items)  # beyond 0.005
    _contamination(tmp_path, "tulu-3-sft-mixture", counts)
    rows = _result(data_tables.build([tmp_path]), 1)
    assert rows["cais/mmlu"].verdict == "same as printed"
    assert rows["lighteval/MATH"].verdict == "same as printed"
    assert rows["openai/gsm8k"].verdict == "differs by +0.10 points"
    assert rows["akariasai/PopQA"].verdict == "differs by -0.01 points"
    assert rows["ucinlp/drop"].verdict == "unavailable" and rows["ucinlp/drop"].measured is None
    assert rows["cais/mmlu"].interval is None  # a census has no sampling interval
    assert list(rows) == list(PRINTED[1])  # the printed order


def test_language_verdicts_use_the_wilson_interval(tmp_path: Path) -> None:
    n = 1000
    # English 50%: its interval excludes 83.13; Hindi 38/1000 = 3.8%: includes 3.79; Greek 0/1000: the
    # interval [0, 0.38] overlaps 0.09
    _languages(tmp_path, "tulu-3-sft-mixture", {"English": 500, "Hindi": 38, "Dutch": n - 538})
    rows = _result(data_tables.build([tmp_path]), 10)
    assert rows["English"].verdict == "differs"
    assert rows["Hindi"].verdict == "consistent"
    assert rows["Greek"].verdict == "consistent"
    # the interval is the 95% Wilson score interval, computed here from its formula
    z, p = 1.959963984540054, 0.5
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)),
    )
    assert rows["English"].interval["low"] == pytest.approx(100 * (centre - half), abs=1e-6)
    assert rows["English"].interval["high"] == pytest.approx(100 * (centre + half), abs=1e-6)
    assert rows["English"].count == 500 and rows["English"].n == n


def test_language_not_printed_and_census(tmp_path: Path) -> None:
    _languages(tmp_path, "rlvr-mixture", {"English": 9480, "French": 129, "Thai": 391}, census=True)
    rows = _result(data_tables.build([tmp_path]), 12)
    assert rows["Thai"].verdict == "not printed" and rows["Thai"].reported is None
    assert rows["English"].verdict == "same as printed" and rows["English"].interval is None
    assert rows["Spanish"].verdict == "differs by -1.04 points"  # 0 rows in a census


def test_a_local_measurement_has_no_paper_table(tmp_path: Path) -> None:
    path = _contamination(tmp_path, None, {"openai/gsm8k": (2, 1319)})
    report = data_tables.build([tmp_path])
    assert [m.path for m in report.unmatched] == [path.resolve()]
    assert all(t.measurement is None for t in report.tables)


# --------------------------------------------------------------------------- in `evalsuite tables`


def _section(md: str, title: str) -> str:
    start = md.index(title)
    end = md.find("\n## ", start + 1)
    return md[start : end if end != -1 else len(md)]


def test_contamination_beside_the_scores(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _contamination(results, "tulu-3-sft-mixture", {"openai/gsm8k": (2, 1319), "lukaemon/bbh": (0, 6511)})
    out = tmp_path / "out"
    tables_cmd.generate([results], out, formats=("md",), resamples=1000)
    md = (out / "tables.md").read_text(encoding="utf-8")
    table3 = _section(md, "## Table 3: Performance")
    line = next(ln for ln in table3.splitlines() if ln.startswith("Contamination"))
    assert f"GSM8K (openai/gsm8k): SFT {100 * 2 / 1319:.2f}% measured (2/1319; Table 1 prints 0.08)" in line
    assert f"preference {PRINTED[4]['openai/gsm8k']}% (printed, Table 4)" in line
    assert f"IFEval (google/IFEval): SFT {PRINTED[1]['google/IFEval']}% (printed, Table 1)" in line
    assert f"MMLU-Pro (TIGER-Lab/MMLU-Pro): SFT {PRINTED[1]['TIGER-Lab/MMLU-Pro']}% (printed" in line
    assert "ARC, HellaSwag, PIQA: not among the 17" in line
    assert "RLVR" not in line
    card = _section(md, "## SmolTulu-1.7b-Reinforced")
    assert f"RLVR {PRINTED[13]['openai/gsm8k']}% (printed, Table 13)" in card
    for title in ("## Table 6: Performance", "## Table 9: A comparison"):
        assert "BBH (lukaemon/bbh): SFT 0.00% measured (0/6511; Table 1 prints 0.02)" in _section(md, title)
    assert "Contamination" not in _section(md, "## Table 8: Performance")  # reward models: none of the 17
    data = _section(md, "## Data tables")
    assert "| openai/gsm8k " in data and "differs by +0.07 points" in data
    stats = json.loads((out / "statistics.json").read_text())
    t1 = next(t for t in stats["data_tables"]["tables"] if t["number"] == 1)
    assert next(r for r in t1["rows"] if r["key"] == "openai/gsm8k")["count"] == 2


def test_without_measurements_the_printed_tables_appear(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    tables_cmd.generate([tmp_path / "results"], tmp_path / "out", formats=("md", "latex"), resamples=1000)
    md = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    for number in (1, 4, 10, 11, 12, 13):
        section = md[md.index(f"### Table {number}:") :]
        section = section[: section.find("\n#", 1)]
        body = [ln for ln in section.splitlines() if ln.startswith("|")][2:]
        assert [c.strip() for c in body[0].strip("|").split("|")] == list(next(iter(PRINTED[number].items())))
        assert len(body) == len(PRINTED[number]) and "Not measured here" in section
    assert "\\section*{Data tables}" in (tmp_path / "out" / "tables.tex").read_text(encoding="utf-8")
    line = next(ln for ln in _section(md, "## Table 3: Performance").splitlines() if ln.startswith("Contam"))
    assert f"GSM8K (openai/gsm8k): SFT {PRINTED[1]['openai/gsm8k']}% (printed, Table 1)" in line


@pytest.mark.faults
@pytest.mark.parametrize(
    ("write", "needle"),
    [
        (
            lambda root: (
                (root / "contamination").mkdir() or (root / "contamination" / "a.json").write_text("{")
            ),
            "a.json: not a JSON file",
        ),
        (
            lambda root: (root / "languages").mkdir() or (root / "languages" / "b.json").write_text("[1]"),
            "b.json: neither",
        ),
        (
            lambda root: _contamination(root, "tulu-3-sft-mixture", {"openai/gsm8k": (5, 3)}),
            "tulu-3-sft-mixture.json: not a `python -m evalsuite contamination` result",
        ),
        (
            lambda root: (
                _contamination(root, "rlvr-mixture", {}),
                _contamination(root / "deeper", "rlvr-mixture", {}, name="again"),
            ),
            "two contamination measurements of rlvr-mixture",
        ),
    ],
    ids=["not-json", "unknown-shape", "bad-counts", "duplicate"],
)
def test_bad_measurement_files_are_one_line_errors(tmp_path: Path, write, needle: str) -> None:
    root = tmp_path / "results"
    root.mkdir()
    write(root)
    out = tmp_path / "out"
    result = run_module("evalsuite", "tables", "--results", str(root), "--out", str(out))
    result.assert_usage_error(needle)
    if "two" in needle:  # both files named
        assert "contamination/rlvr-mixture.json" in result.stderr and "again.json" in result.stderr
    assert not out.exists()  # nothing written
