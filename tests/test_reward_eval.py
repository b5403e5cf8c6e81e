"""Reward-model evaluation: RewardBench section arithmetic, the paper's RM-1130 row, data
loading in the hub layout, and evaluate() end to end on a tiny reward model on CPU."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import run_module

from core.errors import UsageError
from core.resolve import Resolved
from evalsuite import benchmarks, results
from evalsuite import reward_sections as sections
from evalsuite.demo import DEMO_DATA
from evalsuite.reward import data, evaluate, is_reward_model, pipeline, scoring

FIXTURES = DEMO_DATA  # the hand-written reward pairs of the demo data
CHAT = ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"]
CHAT_HARD = ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
             "llmbar-adver-GPTOut", "llmbar-adver-manual"]  # fmt: skip
SAFETY = ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
          "donotanswer"]  # fmt: skip
HEP = ["hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"]
REASONING = ["math-prm", *HEP]
TIE_ID = "1046"  # the fixture pair whose two responses are identical


# ----------------------------------------------------------------------------- arithmetic


def made_up() -> dict[str, float]:
    acc = dict.fromkeys(CHAT + CHAT_HARD + SAFETY + REASONING, 0.0)
    acc.update({"alpacaeval-easy": 100, "mt-bench-easy": 100, "mt-bench-med": 50})
    acc.update({"mt-bench-hard": 100, "llmbar-adver-neighbor": 50, "llmbar-adver-GPTOut": 100})
    acc.update({"refusals-dangerous": 100, "refusals-offensive": 100, "xstest-should-respond": 100})
    acc.update({"math-prm": 100})
    return acc


def test_sections_against_hand_computed_values() -> None:
    got = sections.section_scores(made_up(), prior_sets=80.0)
    chat = (100 * 100 + 28 * 100 + 40 * 50) / (100 + 95 + 95 + 28 + 40)  # 14800 / 358
    chat_hard = (37 * 100 + 134 * 50 + 47 * 100) / (37 + 100 + 134 + 92 + 47 + 46)  # 15100 / 456
    safety = (100 * 100 + 100 * 100 + 250 * 100) / (100 + 100 + 154 + 250 + 136)  # 45000 / 740
    reasoning = 984 * 100 / (984 + 6 * 164)  # math-prm weighs as much as the six hep-* together
    assert got["chat"] == pytest.approx(41.340782, abs=1e-6)
    assert got["chat"] == pytest.approx(chat)
    assert got["chat_hard"] == pytest.approx(chat_hard) and got["chat_hard"] == pytest.approx(33.114035)
    assert got["safety"] == pytest.approx(safety) and got["safety"] == pytest.approx(60.810811)
    assert got["reasoning"] == pytest.approx(reasoning) == 50.0  # 31.24 by rows, 14.29 unweighted
    four = (chat + chat_hard + safety + reasoning) / 4
    assert got["average_sections"] == pytest.approx(four) and four == pytest.approx(46.316407)
    assert got["average_prior_weighted"] == pytest.approx((2 * 4 * four + 80.0) / 9)
    assert "average_prior_weighted" not in sections.section_scores(made_up())


def test_reasoning_is_half_math_half_mean_hep() -> None:
    acc = {"math-prm": 80.0, **dict(zip(HEP, [10.0, 20.0, 30.0, 40.0, 50.0, 90.0], strict=True))}
    assert sections.section_scores(acc)["reasoning"] == pytest.approx(0.5 * 80 + 0.5 * 40)


def test_section_scores_take_fractions_and_arrays() -> None:
    np = pytest.importorskip("numpy")
    pct = sections.section_scores(made_up())
    frac = sections.section_scores({k: v / 100 for k, v in made_up().items()})
    reps = sections.section_scores({k: np.array([v, v / 100]) for k, v in made_up().items()})
    for key in pct:
        assert frac[key] * 100 == pytest.approx(pct[key])
        assert reps[key] == pytest.approx([pct[key], frac[key]])


def test_unknown_subset_is_refused() -> None:
    with pytest.raises(ValueError, match="alpacaeval-medium"):
        sections.section_scores({"alpacaeval-medium": 50.0})


def test_overall_accuracy_weighs_by_rows() -> None:
    rows = sections.table().rows
    acc = made_up()
    correct = sum(acc[s] / 100 * rows[s] for s in acc)
    assert sections.overall_accuracy(acc, rows) == pytest.approx(100 * correct / 2985)
    assert sum(rows.values()) == 2985 and rows["math-prm"] == 447


def test_paper_rm1130_average_is_the_overall_accuracy_not_the_section_mean() -> None:
    """Table 8, RM-1130: Chat 94.13, Chat Hard 43.64, Safety 75.54, Reasoning 68.01, Average 72.43.

    The four-section mean of the paper's own section scores is 70.33, not 72.43. The overall
    accuracy over all 2985 rows can be 72.43: Chat, Chat Hard and Safety weigh their subsets
    by rows, so only Reasoning's split between math-prm (447 rows, half the section) and the
    hep-* subsets (984 rows) is free, and a feasible split (math-prm 50.5, hep 85.5) gives it.
    """
    reported = {"chat": 94.13, "chat_hard": 43.64, "safety": 75.54, "reasoning": 68.01}
    acc = {s: reported[sections.table().section_of(s)] for s in sections.table().subsets}
    got = sections.section_scores(acc)
    assert {k: round(got[k], 2) for k in reported} == reported
    assert round(got["average_sections"], 2) == 70.33 != 72.43

    rows = sections.table().rows
    fixed = sum(acc[s] * rows[s] for s in CHAT + CHAT_HARD + SAFETY)
    hep_rows = sum(rows[s] for s in HEP)
    # Solve 447 m + 984 h = 72.43 * 2985 - fixed with (m + h) / 2 = 68.01.
    math_prm = (2 * 68.01 * hep_rows - (72.43 * 2985 - fixed)) / (hep_rows - rows["math-prm"])
    hep = 2 * 68.01 - math_prm
    assert 0 <= math_prm <= 100 and 0 <= hep <= 100
    acc.update({"math-prm": math_prm, **dict.fromkeys(HEP, hep)})
    assert round(sections.section_scores(acc)["reasoning"], 2) == 68.01
    assert round(sections.overall_accuracy(acc, rows), 2) == 72.43


def test_weights_match_the_reference_constants(benchdata: Path) -> None:
    ref = json.loads((benchdata / "rewardbench" / "subset_counts_from_constants.json").read_text())
    table = sections.table()
    names = {"Chat": "chat", "Chat Hard": "chat_hard", "Safety": "safety", "Reasoning": "reasoning"}
    for section, subsets in ref["SUBSET_MAPPING"].items():
        assert list(table.sections[names[section]]) == subsets
        for subset in subsets:
            assert table.sections[names[section]][subset] == ref["EXAMPLE_COUNTS_as_in_source"][subset]
    assert table.rows == ref["actual_counts"]


def test_ties_count_as_wrong() -> None:
    assert pipeline.pair_score(1.5, 1.5) == 0
    assert pipeline.pair_score(1.5, 1.25) == 1
    assert pipeline.pair_score(-2.0, 3.0) == 0


# ----------------------------------------------------------------------------- data


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_fixture_covers_all_23_subsets() -> None:
    pairs = data.load_pairs("rewardbench", data_dir=FIXTURES)
    assert {p.subtask for p in pairs} == set(sections.table().subsets)
    assert len({p.id for p in pairs}) == len(pairs)
    tie = next(p for p in pairs if p.id == TIE_ID)
    assert tie.chosen == tie.rejected


def test_parquet_and_string_responses_load_like_the_hub_format(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    (tmp_path / "rewardbench").mkdir()
    rb = _rows(FIXTURES / "rewardbench" / "filtered.jsonl")
    pq.write_table(pa.Table.from_pylist(rb), tmp_path / "rewardbench" / "filtered.parquet")
    ufb = [
        {
            "prompt": r["prompt"],
            "chosen": r["chosen"][-1]["content"],
            "rejected": r["rejected"][-1]["content"],
        }
        for r in _rows(FIXTURES / "ufb" / "test_prefs.jsonl")
    ]
    _write_jsonl(tmp_path / "ufb" / "strings.jsonl", ufb)
    for name in ("rewardbench", "ufb"):
        local = data.load_pairs(name, data_dir=tmp_path)
        fixture = data.load_pairs(name, data_dir=FIXTURES)
        assert [(p.subtask, p.prompt, p.chosen, p.rejected) for p in local] == [
            (p.subtask, p.prompt, p.chosen, p.rejected) for p in fixture
        ]
    assert [p.id for p in data.load_pairs("rewardbench", data_dir=tmp_path)][:2] == ["1000", "1001"]


def test_limit_takes_the_first_pairs_of_each_subset() -> None:
    pairs = data.load_pairs("rewardbench", data_dir=FIXTURES, limit=1)
    assert len(pairs) == 23 and [p.id for p in pairs][:2] == ["1000", "1002"]
    assert len(data.load_pairs("ufb", data_dir=FIXTURES, limit=2)) == 2


def test_data_dir_without_the_layout_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no rewardbench/ folder .*rewardbench/ with parquet or jsonl"):
        data.load_pairs("rewardbench", data_dir=tmp_path)
    (tmp_path / "ufb").mkdir()
    (tmp_path / "ufb" / "notes.json").write_text("{}")
    with pytest.raises(UsageError, match=r"no \.parquet or \.jsonl files"):
        data.load_pairs("ufb", data_dir=tmp_path)
    _write_jsonl(tmp_path / "rewardbench" / "x.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(UsageError, match=r"missing column.*subset"):
        data.load_pairs("rewardbench", data_dir=tmp_path)


def test_shared_benchdata_has_counts_only_and_is_refused(benchdata: Path) -> None:
    with pytest.raises(UsageError, match=r"rewardbench has no \.parquet or \.jsonl files") as exc:
        data.load_pairs("rewardbench", data_dir=benchdata)
    assert "\n" not in str(exc.value)


def test_hub_snapshot_is_read_at_the_lock_pin_and_its_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = _rows(FIXTURES / "rewardbench" / "filtered.jsonl")
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "filtered-00000-of-00001.parquet")
    raw = [{**r, "id": 5000 + i} for i, r in enumerate(rows + rows)]
    pq.write_table(pa.Table.from_pylist(raw), tmp_path / "data" / "raw-00000-of-00001.parquet")
    calls = []

    def fake_resolve(spec: str, **kwargs) -> Resolved:
        calls.append((spec, kwargs["repo_type"], kwargs["allow_unlocked"]))
        return Resolved(
            path=tmp_path, source="hub", name=spec, repo_id="allenai/reward-bench", revision="a" * 40
        )

    monkeypatch.setattr(data, "resolve", fake_resolve)
    pairs = data.load_pairs("rewardbench")
    assert calls == [("reward-bench", "dataset", False)]
    assert len(pairs) == len(rows) and pairs[0].id == "1000"

    (tmp_path / "data").rename(tmp_path / "rb")
    shutil.copytree(FIXTURES / "ufb", tmp_path / "data")
    assert len(data.load_pairs("ufb", allow_unlocked=True)) == 6
    assert calls[-1] == ("ultrafeedback-binarized-cleaned", "dataset", True)


def test_unresolved_lock_revision_is_refused_like_the_resolver() -> None:
    with pytest.raises(UsageError, match=r"unresolved revision.*lock update reward-bench"):
        data.load_pairs("rewardbench")


# ----------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def tiny_rm(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded tiny model with a one-output score head, pad distinct from EOS (as the RM stage)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from repro.stages.rm import PAD_TOKEN

    out = tmp_path_factory.mktemp("tiny-rm")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tok.add_special_tokens({"pad_token": PAD_TOKEN})
    model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_is_reward_model(tiny_rm: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    assert is_reward_model(tiny_rm) and not is_reward_model(tiny_model_dir)
    with pytest.raises(UsageError, match=r"no config\.json"):
        is_reward_model(tmp_path)


def test_causal_lm_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a reward model"):
        evaluate(tiny_model_dir, benchmarks=["ufb"], data_dir=FIXTURES, limit=None, out_dir=tmp_path)


def _run(model: Path, out: Path, **kwargs) -> dict[str, results.BenchmarkResult]:
    kwargs = {"benchmarks": ["rewardbench", "ufb"], "data_dir": FIXTURES, "limit": None, **kwargs}
    return evaluate(model, out_dir=out, progress=False, **kwargs)


def _items(out: Path, name: str) -> list[dict]:
    return _rows(out / "items" / f"{name}.jsonl")


def test_evaluate_end_to_end(tiny_rm: Path, tmp_path: Path) -> None:
    got = _run(tiny_rm, tmp_path, prior_sets=60.0)
    rb, ufb = got["rewardbench"], got["ufb"]

    items = _items(tmp_path, "rewardbench")
    assert rb.items == "items/rewardbench.jsonl" and len(items) == rb.n == 47
    assert set(items[0]) == {"id", "subtask", "prompt_sha256", "score", "metrics"}
    assert set(items[0]["metrics"]) == {"chosen", "rejected"}
    for it in items:
        assert it["score"] == int(it["metrics"]["chosen"] > it["metrics"]["rejected"])
    tie = next(it for it in items if it["id"] == TIE_ID)
    assert tie["metrics"]["chosen"] == tie["metrics"]["rejected"] and tie["score"] == 0

    assert rb.metric == "overall_accuracy"
    assert rb.score == pytest.approx(100 * sum(it["score"] for it in items) / 47)
    assert rb.score == pytest.approx(benchmarks.BENCHMARKS["rewardbench"].headline(items))
    assert list(rb.subtasks) == sections.table().subsets
    assert sum(v["n"] for v in rb.subtasks.values()) == 47
    expected = sections.section_scores({s: v["score"] for s, v in rb.subtasks.items()}, 60.0)
    assert set(rb.scores) == {*sections.SECTIONS, "average_sections", "average_prior_weighted",
                              "overall_accuracy"}  # fmt: skip
    for key, value in expected.items():
        assert rb.scores[key] == pytest.approx(value)
    assert rb.scores["overall_accuracy"] == rb.score
    assert rb.counts == {"rows": 47, "over_max_length": 0, "cache_reused_pairs": 0, "cache_reused_rewards": 0}

    ufb_items = _items(tmp_path, "ufb")
    assert ufb.n == len(ufb_items) == 6 and {it["subtask"] for it in ufb_items} == {"ufb"}
    assert ufb.score == pytest.approx(benchmarks.BENCHMARKS["ufb"].headline(ufb_items))
    assert ufb.counts["over_max_length"] == 0

    # The results contract: saved and read back by the loader the tables and statistics use.
    model = results.ModelInfo(spec=str(tiny_rm), label="tiny-rm", kind="reward-model", source="local")
    results.save(results.Results(model=model, backend="hf", benchmarks=got), tmp_path)
    loaded = results.load(tmp_path)
    assert asdict(loaded.benchmarks["rewardbench"]) == asdict(rb)
    assert len(results.load_items(tmp_path, "ufb")) == 6
    assert (
        "average_prior_weighted"
        not in _run(tiny_rm, tmp_path / "b", benchmarks=["rewardbench"])["rewardbench"].scores
    )


def test_over_long_pairs_are_dropped_and_counted(tiny_rm: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_rm)

    def tokens(messages: list[dict]) -> int:
        return len(tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False).input_ids)

    pairs = data.load_pairs("rewardbench", data_dir=FIXTURES)
    longest = {p.id: max(tokens(p.chosen), tokens(p.rejected)) for p in pairs}
    limit = 109  # two fixture pairs are exactly this long: at the limit is not over it
    assert list(longest.values()).count(limit) >= 1
    got = _run(tiny_rm, tmp_path, max_length=limit, benchmarks=["rewardbench"])["rewardbench"]
    kept = [it["id"] for it in _items(tmp_path, "rewardbench")]
    assert kept == [i for i, n in longest.items() if n <= limit]
    assert got.counts["over_max_length"] == sum(n > limit for n in longest.values()) > 0
    assert got.n == len(kept) == 47 - got.counts["over_max_length"]
    with pytest.raises(UsageError, match="all 6 pairs are longer than --max-length 5"):
        _run(tiny_rm, tmp_path / "b", max_length=5, benchmarks=["ufb"])


class Killed(Exception):
    pass


def test_killed_run_resumes_from_the_cache(
    tiny_rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = _run(tiny_rm, tmp_path / "clean", batch_size=4)
    real_forward = scoring._forward
    calls: list[int] = []
    die_at = [3]

    def dies_on_third_batch(rm, batch):
        calls.append(len(batch))
        if len(calls) == die_at[0]:
            raise Killed  # stands in for a kill between batches
        return real_forward(rm, batch)

    monkeypatch.setattr(scoring, "_forward", dies_on_third_batch)
    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        _run(tiny_rm, out, batch_size=4)
    [cache_file] = (out / "cache").glob("rewards-*.jsonl")
    assert len(cache_file.read_text().splitlines()) == 8  # two batches, flushed as they finished
    with cache_file.open("a") as handle:
        handle.write('{"key": "torn by a ki')  # a kill mid-write leaves half a line

    calls.clear()
    die_at[0] = 0
    resumed = _run(tiny_rm, out, batch_size=4)
    texts = 47 * 2 - 1 + 6 * 2  # the tie pair's two texts are one
    assert sum(calls) == texts - 8
    assert resumed["rewardbench"].counts["cache_reused_rewards"] == 8  # the longest texts come first
    for name in ("rewardbench", "ufb"):
        assert [it["score"] for it in _items(out, name)] == [
            it["score"] for it in _items(tmp_path / "clean", name)
        ]
        assert resumed[name].score == clean[name].score
    assert all(json.loads(line) for line in cache_file.read_text().splitlines()[9:])

    calls.clear()
    again = _run(tiny_rm, out, batch_size=4)
    assert calls == [] and again["rewardbench"].counts["cache_reused_pairs"] == 47


def test_cache_is_per_model(tiny_rm: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-rm"
    shutil.copytree(tiny_rm, other)
    config = json.loads((other / "config.json").read_text())
    config["initializer_range"] = 0.03  # a different config, so a different fingerprint
    (other / "config.json").write_text(json.dumps(config))
    _run(tiny_rm, tmp_path / "out", benchmarks=["ufb"])
    got = _run(other, tmp_path / "out", benchmarks=["ufb"])["ufb"]
    assert got.counts["cache_reused_rewards"] == 0
    assert len(list((tmp_path / "out" / "cache").glob("rewards-*.jsonl"))) == 2


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_run_on_a_reward_model(tiny_rm: Path, tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = ["run", "--model", str(tiny_rm), "--data-dir", str(FIXTURES), "--output", str(tmp_path)]
    done = run_module("evalsuite", *args, "--no-progress", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / tiny_rm.name
    res = results.load(folder)
    assert res.model.kind == "reward-model" and set(res.benchmarks) == {"rewardbench", "ufb"}
    rb = res.benchmarks["rewardbench"]
    assert rb.n == 47 and len(rb.subtasks) == 23
    assert {"average_sections", "overall_accuracy", *sections.SECTIONS} <= set(rb.scores)
    assert rb.score == rb.scores["overall_accuracy"]
    assert (
        len(results.load_items(folder, "rewardbench")) == 47 and len(results.load_items(folder, "ufb")) == 6
    )
    assert "47 pairs (93 rewards) reused" in run_module("evalsuite", *args, "--no-progress", env=env).stderr


def test_cli_reward_model_on_counts_only_data_is_one_line(
    tiny_rm: Path, benchdata: Path, tmp_path: Path
) -> None:
    done = run_module(
        "evalsuite", "run", "--model", str(tiny_rm), "--data-dir", str(benchdata), "--output", str(tmp_path),
        env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    done.assert_usage_error(
        "rewardbench has no .parquet or .jsonl files", "rewardbench/ with parquet or jsonl"
    )


def test_reward_is_read_before_the_first_pad_token(tiny_rm: Path, tmp_path: Path) -> None:
    """Where open-instruct reads it (model_utils.py get_reward) and the RM stage trains it: the pad
    here is the newline ChatML writes after every turn, so the reward lands inside the first one."""
    import torch
    from test_preference_tokens import open_instruct_reward
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_rm)
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    long = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello to you too"}]
    whole = [
        tok(tok.apply_chat_template(m, tokenize=False), add_special_tokens=False).input_ids
        for m in (short, long)
    ]
    newline = whole[0][-1]
    clash = tmp_path / "pad-clash"
    shutil.copytree(tiny_rm, clash)
    config = json.loads((clash / "config.json").read_text())
    config["pad_token_id"] = newline
    (clash / "config.json").write_text(json.dumps(config))
    rm = scoring.load_model(clash, progress=False)
    encoded = {name: rm.encode(rm.render(m)) for name, m in (("short", short), ("long", long))}
    assert encoded["short"] == whole[0][: whole[0].index(newline)]
    rewards = scoring.score_texts(
        rm, encoded, scoring.Cache(tmp_path / "cache.jsonl"), batch_size=2, desc="rm", progress=False
    )
    for name, ids in zip(("short", "long"), whole, strict=True):
        by_hand = open_instruct_reward(rm.model, torch.tensor([ids]), newline)[0]
        assert rewards[name] == pytest.approx(float(by_hand), abs=1e-5)
