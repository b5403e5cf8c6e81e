"""`python -m evalsuite tables`: reported data, paper-layout tables, statistics JSON, claims, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_module

from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite.report import claims, grid, reported, simulate, tables_cmd
from evalsuite.report.reported import Metric

# Reported values typed from ../shared/spec/reported-scores.md (not read from the data files).
SPEC = {
    ("dpo-1130", "gsm8k"): 51.6,
    ("dpo-1130", "ifeval"): 67.7,
    ("dpo-1207", "arc"): 57.1,
    ("dpo-1207", "gsm8k"): 44.7,
    ("dpo-1207", "ifeval"): 56.6,
    ("sft-1207", "hellaswag"): 67.5,
    ("qwen2.5-1.5b-instruct", "mmlu_pro"): 24.2,
    ("rm-1130", "rewardbench"): 72.43,
    ("rm-1207", "ufb"): 61.66,
    ("llama-3.1-tulu-3-8b-rm", "rewardbench.chat_hard"): 55.92,
}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, simulate.Simulated]]:
    """DPO-1130 and DPO-1207 simulated at their reported GSM8K, IFEval and ARC scores."""
    root = tmp_path_factory.mktemp("results")
    sims = {}
    for seed, label in enumerate(("dpo-1130", "dpo-1207")):
        targets = {b: SPEC.get((label, b), 51.5) for b in ("gsm8k", "ifeval", "arc")}
        sims[label] = simulate.write_results(root / label, label, targets, seed=seed)
    return root, sims


@pytest.fixture(scope="module")
def generated(two_models: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    result = run_module("evalsuite", "tables", "--results", str(two_models[0]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "claim 1: supported" in result.stdout
    return out


# --------------------------------------------------------------------------- reported data


def test_reported_values_match_the_paper() -> None:
    scores = reported.load()
    for (model, metric), value in SPEC.items():
        found = scores.get(model, Metric.parse(metric))
        assert found is not None and found.value == value, (model, metric)
    card = scores.get("rlvr-1130", Metric("gsm8k"))
    assert card is not None and card.value == 61.0 and "model card" in card.source
    assert not scores.in_paper("rlvr-1130")
    assert scores.get("dpo-1130", Metric("rewardbench")) is None
    numbers = [t.number for t in scores.tables if t.kind == "paper"]
    assert numbers == [3, 6, 8, 9]


def _corrupt(tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / "reported"
    shutil.copytree(reported.REPORTED_DIR, folder)
    raw = yaml.safe_load((folder / name).read_text())
    edit(raw)
    (folder / name).write_text(yaml.safe_dump(raw))
    return folder


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            lambda r: r["rows"][0]["values"].__setitem__(0, "51.4"),
            "51.5 in paper Table 6 but 51.4 in paper Table 9",
        ),
        (lambda r: r["columns"][0].__setitem__("model", "dpo-113"), "not a model in checkpoints.lock"),
        (lambda r: r["rows"][0]["values"].pop(), "6 values for 7 columns"),
        (lambda r: r["rows"][1]["values"].__setitem__(0, 33.8), "quoted percentage"),
        (lambda r: r["rows"][2].__setitem__("metric", "gsm9k"), "unknown benchmark"),
        (lambda r: r["rows"][3].__setitem__("label", "Hellaswag"), "differs from the registry"),
        (lambda r: r.__setitem__("source", "paper Table 3"), "should read 'paper Table 9'"),
    ],
)
def test_reported_data_is_validated(tmp_path: Path, edit, needle: str) -> None:
    folder = _corrupt(tmp_path, "table9.yaml", edit)
    with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        reported.load(folder)


def test_claims_data_is_validated(tmp_path: Path) -> None:
    scores = reported.load()
    loaded = claims.load(scores)
    assert [c.id for c in loaded] == [*range(1, 10), *range(11, 16)]
    assert loaded[5].trend is not None and loaded[5].trend.expect == {
        "arc": 1, "gsm8k": 1, "hellaswag": -1, "ifeval": -1,
    }  # fmt: skip
    bad = tmp_path / "claims.yaml"
    bad.write_text(
        "claims:\n  - {id: 1, text: x, source: y, quote: z, "
        "paired: [{better: rm-1130, worse: dpo-1130, benchmarks: [ufb]}]}\n"
    )
    with pytest.raises(UsageError, match="not a benchmark for dpo-1130"):
        claims.load(scores, bad)


# --------------------------------------------------------------------------- the command


def test_tables_command_writes_every_output(generated: Path, two_models: tuple[Path, dict]) -> None:
    for name in ("tables.md", "tables.tex", "statistics.json", "claims.md", "forest.png"):
        assert (generated / name).stat().st_size > 0, name
    assert (generated / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (generated / "tables.md").read_text()
    # paper layout: Tables 2-9 in order, simulated columns labelled, missing cells reported and marked
    positions = [md.index(f"## Table {n}:") for n in (2, 3, 5, 6, 7, 8, 9)]
    assert positions == sorted(positions)
    assert "DPO-1130 (simulated)" in md and "SIMULATED" in md
    assert "| 61.5†" in md  # SFT-1130 HellaSwag, no result here: the reported value, marked
    gsm = two_models[1]["dpo-1130"].headlines["gsm8k"]
    table6 = md[md.index("## Table 6:") : md.index("## Table 6: reproduced")]
    gsm_row = next(line for line in table6.splitlines() if line.startswith("| GSM8K"))
    assert f"**{gsm:.1f}**" in gsm_row  # the best in its row is bold
    assert "11.25" in md and "0.097" in md  # Table 2's LR/BS ratios from the recipes
    tex = (generated / "tables.tex").read_text()
    assert r"\textbf{" in tex and r"\textsuperscript{\dag}" in tex and r"\toprule" in tex


def test_statistics_json(generated: Path, two_models: tuple[Path, dict]) -> None:
    stats = json.loads((generated / "statistics.json").read_text())
    assert stats["settings"]["resamples"] == 10_000
    assert {m["label"]: m["simulated"] for m in stats["models"]} == {"dpo-1130": True, "dpo-1207": True}
    by_key = {(s["model"], s["metric"]): s for s in stats["scores"]}
    gsm = by_key[("dpo-1130", "gsm8k")]
    assert gsm["interval"]["method"] == "wilson" and gsm["test"] == "score test (Wilson)"
    assert gsm["reported"]["value"] == 51.6 and gsm["inside"] is True and gsm["verdict"] == "reproduced"
    assert gsm["tolerance"] == pytest.approx(1.55) and gsm["seeds"] is None  # published: no seed term
    assert by_key[("dpo-1130", "arc")]["interval"]["method"] == "bootstrap-percentile"
    assert set(by_key[("dpo-1130", "ifeval")]["extra"]) >= {"prompt_level_strict", "inst_level_loose"}
    comps = {c["benchmark"]: c for c in stats["comparisons"]}
    assert set(comps) == {"gsm8k", "ifeval", "arc"}
    assert comps["gsm8k"]["test"] == "exact McNemar" and comps["arc"]["test"] == "paired permutation"
    assert all(c["p_holm"] >= c["p_value"] for c in comps.values())
    verdicts = {c["id"]: c["verdict"] for c in stats["claims"]}
    assert verdicts[1] == "supported"  # simulated at 51.6 vs 44.7 and 67.7 vs 56.6
    assert verdicts[2] == "inconclusive"  # HellaSwag, MMLU-Pro, PIQA missing
    assert "no ablation results" in stats["claims"][5]["reason"]


def _generate(tmp_path: Path, results: Path, **kw) -> dict:
    tables_cmd.generate([results], tmp_path / "out", formats=("md",), resamples=2000, **kw)
    return json.loads((tmp_path / "out" / "statistics.json").read_text())


def test_contradicted_claim(tmp_path: Path) -> None:
    res = tmp_path / "res"
    simulate.write_results(res / "a", "dpo-1130", {"gsm8k": 40.0, "ifeval": 70.0}, seed=1)
    simulate.write_results(res / "b", "dpo-1207", {"gsm8k": 50.0, "ifeval": 56.6}, seed=2)
    claim1 = _generate(tmp_path, res)["claims"][0]
    assert claim1["verdict"] == "contradicted" and "gsm8k" in claim1["reason"]
    assert claim1["p_value"] < 0.05


def test_reward_models_sections_and_claim_5(tmp_path: Path) -> None:
    res = tmp_path / "res"
    for seed, label in enumerate(("rm-1130", "rm-1207")):
        targets = {
            b: SPEC.get((label, b), 72.43 if label == "rm-1130" else 58.59) for b in ("rewardbench", "ufb")
        }
        simulate.write_results(res / label, label, targets, seed=seed)
    stats = _generate(tmp_path, res)
    by_key = {(s["model"], s["metric"]): s for s in stats["scores"]}
    chat = by_key[("rm-1130", "rewardbench.chat")]
    assert chat["interval"]["method"] == "bootstrap-percentile" and chat["reported"]["value"] == 94.13
    assert by_key[("rm-1130", "rewardbench")]["interval"]["method"] == "wilson"
    assert stats["claims"][4]["verdict"] == "supported"
    md = (tmp_path / "out" / "tables.md").read_text()
    assert "RM-1130 (simulated)" in md[md.index("## Table 8:") :]


@pytest.mark.parametrize(("direction", "verdict"), [(1, "supported"), (-1, "contradicted")])
def test_claim_6_from_ablation_points(tmp_path: Path, direction: int, verdict: str) -> None:
    res = tmp_path / "ablation"
    for i, (lr, bs) in enumerate([(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 8), (9e-5, 8)]):
        up, down = 30 + direction * 5 * i, 50 - direction * 5 * i
        targets = {"arc": up, "gsm8k": up, "hellaswag": down, "ifeval": down}
        settings = {"learning_rate": lr, "batch_size": bs, "ablation": "ablation-135m"}
        simulate.write_results(res / f"lr{lr}-bs{bs}", f"ablation-{i}", targets, seed=i, settings=settings)
    stats = _generate(tmp_path, res)
    assert stats["ablation_points"] == 5 and stats["models"] == []
    claim6 = stats["claims"][5]
    assert claim6["verdict"] == verdict
    assert all(c["test"] == "Spearman" and c["n"] == 5 for c in claim6["checks"])


def test_claim_6_ignores_smoke_profile_points(tmp_path: Path) -> None:
    res = tmp_path / "ablation"
    for i, lr in enumerate([1e-6, 3e-6, 1e-5, 3e-5]):
        settings = {"learning_rate": lr, "batch_size": 8, "profile": "smoke", "ablation": "ablation-135m"}
        simulate.write_results(
            res / f"p{i}", f"ablation-{i}", {"gsm8k": 20.0 + 5 * i}, seed=i, settings=settings
        )
    claim6 = _generate(tmp_path, res)["claims"][5]
    assert claim6["verdict"] == "inconclusive" and "4 smoke-profile points ignored" in claim6["reason"]


def test_limited_and_unknown_models(tmp_path: Path) -> None:
    res = tmp_path / "res"
    simulate.write_results(res / "lim", "dpo-1130", {"gsm8k": 51.6}, seed=1, limit=100)
    simulate.write_results(res / "mine", "my-model", {"gsm8k": 30.0}, seed=2)
    stats = _generate(tmp_path, res, all_pairs=True)  # the paper compares no such pair
    lim = next(s for s in stats["scores"] if s["model"] == "dpo-1130")
    assert lim["p_value"] is None and lim["verdict"] is None and "--limit 100" in lim["note"]
    md = (tmp_path / "out" / "tables.md").read_text()
    assert "‡" in md
    table9 = md[md.index("## Table 9:") : md.index("## Table 9: reproduced")]
    assert "my-model (not in paper)" in table9
    assert "my-model" not in md[md.index("## Table 6:") : md.index("## Table 7:")]
    comp = stats["comparisons"][0]
    assert comp["p_value"] is None and "item sets differ" in comp["note"]


def test_no_results_shows_the_reported_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./results here
    tables_cmd.generate(None, tmp_path / "out", formats=("md",), resamples=1000)
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["models"] == [] and any("no results/" in n for n in stats["notes"])
    assert {c["verdict"] for c in stats["claims"]} == {"inconclusive"}
    md = (tmp_path / "out" / "tables.md").read_text()
    assert "**57.1†**" in md  # DPO-1207's ARC is Table 6's best
    protocol = md[md.index("## Protocol check") :]  # the card's values, waiting for results
    assert "| 40.9 " in protocol and "evalsuite run --label smollm2-135m-instruct" in protocol


def test_latex_escaping() -> None:
    assert grid.latex_escape("my_model 100% & co") == r"my\_model 100\% \& co"
    assert grid.latex_escape("51.5†") == r"51.5\textsuperscript{\dag}"
    assert grid.latex_escape("a > b") == r"a \textgreater{} b"


# --------------------------------------------------------------------------- bad input, real CLI


def _one_model(tmp_path: Path) -> Path:
    folder = tmp_path / "res" / "dpo-1130"
    simulate.write_results(folder, "dpo-1130", {"gsm8k": 51.6}, seed=3)
    return folder


def _tables(tmp_path: Path, results: Path):
    return run_module("evalsuite", "tables", "--results", str(results), "--out", str(tmp_path / "out"))


def _edit(path: Path, edit) -> None:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


def test_missing_field_is_one_line_error(tmp_path: Path) -> None:
    folder = _one_model(tmp_path)
    _edit(folder / "results.json", lambda r: r.pop("backend"))
    _tables(tmp_path, folder.parent).assert_usage_error("missing field 'backend'")
    assert not (tmp_path / "out").exists()


def test_wrong_model_kind_is_one_line_error(tmp_path: Path) -> None:
    folder = _one_model(tmp_path)
    _edit(folder / "results.json", lambda r: r["model"].__setitem__("label", "rm-1130"))
    _tables(tmp_path, folder.parent).assert_usage_error("'rm-1130' is a reward-model in the paper")


def test_unknown_benchmark_is_one_line_error(tmp_path: Path) -> None:
    folder = _one_model(tmp_path)
    _edit(folder / "results.json", lambda r: r["benchmarks"].__setitem__("mmlu", r["benchmarks"]["gsm8k"]))
    _tables(tmp_path, folder.parent).assert_usage_error("unknown benchmark 'mmlu'")


def test_items_that_do_not_match_the_results_are_refused(tmp_path: Path) -> None:
    folder = _one_model(tmp_path)
    _edit(folder / "results.json", lambda r: r["benchmarks"]["gsm8k"].__setitem__("score", 60.0))
    _tables(tmp_path, folder.parent).assert_usage_error("items give 51.63")
    lines = (folder / "items" / "gsm8k.jsonl").read_text().splitlines()
    (folder / "items" / "gsm8k.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    _tables(tmp_path, folder.parent).assert_usage_error("1318 item records but results.json says n = 1319")


def test_two_results_for_one_model_and_bad_options(tmp_path: Path) -> None:
    folder = _one_model(tmp_path)
    shutil.copytree(folder, folder.parent / "again")
    _tables(tmp_path, folder.parent).assert_usage_error("two results for model 'dpo-1130'")
    run_module("evalsuite", "tables", "--results", str(tmp_path / "nowhere")).assert_usage_error(
        "does not exist"
    )
    run_module("evalsuite", "tables", "--resamples", "10", "--out", str(tmp_path / "o")).assert_usage_error(
        "at least 1000"
    )
    run_module("evalsuite", "tables", "--format", "pdf").assert_usage_error("invalid choice")


def test_help_names_the_default_results_folder() -> None:
    result = run_module("evalsuite", "tables", "--help")
    assert result.returncode == 0
    assert "./results" in result.stdout and "evalsuite run" in result.stdout
    assert ROOT.joinpath("tables", "generated").is_dir()


# --------------------------------------------------------------------------- protocol check

# SmolLM2-135M-Instruct's model card (https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct),
# typed from the card, not read from the data file: card row -> (suite benchmark or None, value).
CARD_URL = "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"
CARD = {
    "IFEval (Average prompt/inst)": ("ifeval", 29.9),
    "HellaSwag": ("hellaswag", 40.9),
    "ARC (Average)": ("arc", 37.3),
    "PIQA": ("piqa", 66.3),
    "BBH (3-shot)": ("bbh", 28.2),
    "GSM8K (5-shot)": ("gsm8k", 1.4),
    "MMLU (cloze)": (None, 29.3),
}
REAL = "smollm2-135m-instruct"
CARD_FILE = "smollm2-135m-instruct-card.yaml"


def test_protocol_check_card_validates() -> None:
    scores = reported.load()
    (table,) = scores.protocol_checks()
    assert table.url == CARD_URL and [c.model for c in table.columns] == [REAL]
    found = {r.source_row: (r.metric.benchmark, r.values[0]) for r in table.rows}
    found.update({r.source_row: (None, r.values[0]) for r in table.not_evaluated})
    assert {row: (bench, rep.value) for row, (bench, rep) in found.items()} == CARD
    for row, (_, rep) in found.items():  # every value names the card and its row
        assert CARD_URL in rep.source and f"row '{row}'" in rep.source
    # column names are the registry's, never repeated in the file
    assert all(r.label == registry.get(r.metric.benchmark).column for r in table.rows)
    assert all(
        "label" not in r for r in yaml.safe_load((reported.REPORTED_DIR / CARD_FILE).read_text())["rows"]
    )
    assert "mmlu_pro" not in {r.metric.benchmark for r in table.rows}
    # a real model outside the paper: a card value, no paper column, no regression case
    assert not scores.in_paper(REAL) and scores.model_kind(REAL) == "causal-lm"
    for label in (REAL, f"{REAL}-q4_1", "SmolLM2-135M-Instruct"):
        got = scores.get(label, Metric("gsm8k"))
        assert got is not None and got.value == 1.4, label
    assert scores.get("smollm2-135m-instructx", Metric("gsm8k")) is None
    assert scores.get("dpo-1130-q4_1", Metric("gsm8k")) is None  # variants only for protocol checks


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda r: r["rows"][0].__setitem__("label", "ARC (Average)"), "no 'label' here"),
        (lambda r: r["rows"][0].pop("card_row"), "missing 'card_row'"),
        (lambda r: r["rows"][-1].__setitem__("metric", "mmlu_pro"), "names no suite metric"),
        (lambda r: r["rows"][-1].pop("why"), "missing 'why'"),
        (lambda r: r["rows"][1].__setitem__("card_row", "ARC (Average)"), "a card row appears twice"),
        (lambda r: r["rows"][2].__setitem__("values", [1.4]), "quoted percentage"),
        (lambda r: r.pop("url"), "missing 'url'"),
        (lambda r: r["columns"][0].__setitem__("model", "SmolLM2 135M"), "should be a results label"),
        (lambda r: r["columns"].append({"model": "other", "header": "x"}), "has one column"),
    ],
)
def test_protocol_check_card_is_validated(tmp_path: Path, edit, needle: str) -> None:
    folder = _corrupt(tmp_path, CARD_FILE, edit)
    with pytest.raises(UsageError, match=re.escape(needle)):
        reported.load(folder)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The real model twice: at its card's values, and a variant far off the card on GSM8K."""
    root = tmp_path_factory.mktemp("protocol")
    res = root / "results"
    near = {b: CARD[row][1] for row, b in [("GSM8K (5-shot)", "gsm8k"), ("IFEval (Average prompt/inst)",
            "ifeval"), ("ARC (Average)", "arc")]}  # fmt: skip
    simulate.write_results(res / REAL, REAL, near, seed=5)
    far = {"gsm8k": 12.0, "piqa": 66.3}  # recorded as an `evalsuite run --sample` run: still compared
    simulate.write_results(res / f"{REAL}-q4_1", f"{REAL}-q4_1", far, seed=6, settings={"sample": 2000})
    tables_cmd.generate([res], root / "out", resamples=2000)
    return root / "out", json.loads((root / "out" / "statistics.json").read_text())


def test_protocol_check_table(protocol: tuple[Path, dict]) -> None:
    out, stats = protocol
    rows = {(r["model"], r["card_row"]): r for r in stats["protocol_check"]}
    assert {m for m, _ in rows} == {REAL, f"{REAL}-q4_1"}  # both folders recognised by their label
    for (_, card_row), r in rows.items():
        assert r["reported"]["value"] == CARD[card_row][1] and CARD_URL in r["reported"]["source"]
    # matching the card: consistent, with the full item counts and the tables' intervals
    expected = [
        ("GSM8K (5-shot)", 1319, "wilson"),
        ("ARC (Average)", 3548, "bootstrap-percentile"),
        ("IFEval (Average prompt/inst)", 541, "bootstrap-percentile"),
    ]
    for card_row, n, method in expected:
        r = rows[(REAL, card_row)]
        assert r["n"] == n and r["interval"]["method"] == method, card_row
        assert r["inside"] is True and r["verdict"] == "reproduced", card_row
        assert abs(r["difference"]) < 0.2
    assert {"average_strict", "average_loose"} <= set(rows[(REAL, "IFEval (Average prompt/inst)")]["extra"])
    # far off the card: not reproduced (the same verdict as the paper's tables)
    far = rows[(f"{REAL}-q4_1", "GSM8K (5-shot)")]
    assert far["verdict"] == "not reproduced" and "outside the band" in far["verdict_reason"]
    assert far["difference"] == pytest.approx(12.0 - 1.4, abs=0.1) and far["inside"] is False
    # a sample's interval around the card value is wider than the tolerance band: not decided
    assert rows[(f"{REAL}-q4_1", "PIQA")]["verdict"] == "inconclusive"
    assert far["sample"] == 2000 and rows[(REAL, "GSM8K (5-shot)")]["sample"] is None
    assert (REAL, "PIQA") not in rows  # evaluated by the q4_1 folder only: shown there
    # a card row no folder evaluated is shown once, under the first folder; MMLU (cloze) likewise
    assert (f"{REAL}-q4_1", "HellaSwag") not in rows and rows[(REAL, "HellaSwag")]["verdict"] == "no result"
    assert (f"{REAL}-q4_1", "MMLU (cloze)") not in rows
    assert rows[(REAL, "MMLU (cloze)")]["verdict"] == "not evaluated"
    # the same numbers are the report's reproduced-vs-reported statistics
    score = next(s for s in stats["scores"] if s["model"] == f"{REAL}-q4_1" and s["metric"] == "gsm8k")
    assert score["verdict"] == far["verdict"] and score["reported"]["value"] == 1.4
    md = (out / "tables.md").read_text()
    section = md[md.index("## Protocol check") :]
    assert "| not reproduced" in section and "| reproduced" in section and "ifeval_average_loose" in section
    assert "| 1319 (sampled) |" in section
    assert f"{REAL} (not in paper)" not in md  # it has its own table, not a Table 9 column
    assert "Protocol check" in (out / "tables.tex").read_text()


def test_protocol_check_limited_run_is_partial(tmp_path: Path) -> None:
    res = tmp_path / "res"
    simulate.write_results(res / REAL, REAL, {"gsm8k": 1.4, "hellaswag": 40.9}, seed=7, limit=100)
    stats = _generate(tmp_path, res)
    rows = {r["card_row"]: r for r in stats["protocol_check"]}
    for card_row in ("GSM8K (5-shot)", "HellaSwag"):
        r = rows[card_row]
        assert r["n"] == 100 and r["limit"] == 100 and r["p_value"] is None and r["difference"] is None
        assert r["verdict"] == "partial" and "--limit 100" in r["verdict_reason"]
    md = (tmp_path / "out" / "tables.md").read_text()
    section = md[md.index("## Protocol check") : md.index("## The paper's claims")]
    verdict_cells = [
        line.rstrip(" |").rsplit("|", 1)[-1].strip() for line in section.splitlines() if "|" in line
    ]
    assert "‡" in section and "reproduced" not in verdict_cells and "not reproduced" not in verdict_cells
    assert any(cell.startswith("partial") for cell in verdict_cells)


def test_training_seeds_of_one_recipe_are_pooled(tmp_path: Path) -> None:
    res = tmp_path / "res"
    for seed, value in ((1, 50.0), (2, 53.0)):
        simulate.write_results(
            res / f"dpo-1130-seed{seed}",
            "dpo-1130",
            {"gsm8k": value},
            seed=seed,
            settings={"training_seed": seed},
        )
    stats = _generate(tmp_path, res)
    (model,) = stats["models"]
    assert model["training_seeds"] == [1, 2] and len(model["seed_results"]) == 2
    (score,) = [s for s in stats["scores"] if s["model"] == "dpo-1130"]
    assert score["seeds"] == 2 and score["value"] == pytest.approx(51.5, abs=0.1)
    assert score["interval"]["method"] == "t over 2 training seeds" and score["seed_sd"] > 2
    # 51.6 lies within the seeds' own spread, but a ±20-point band cannot confirm a reproduction
    assert score["verdict"] == "inconclusive" and "seed spread too large" in score["verdict_reason"]
    assert score["half_width"] > 15 and score["band"]["high"] - score["band"]["low"] == pytest.approx(
        2 * score["half_width"]
    )
    # the same seed twice is two results for one model, not two seeds
    simulate.write_results(res / "again", "dpo-1130", {"gsm8k": 51.0}, seed=3, settings={"training_seed": 2})
    with pytest.raises(UsageError, match="two results for model 'dpo-1130'"):
        _generate(tmp_path, res)
