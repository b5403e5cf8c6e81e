"""The benchmark scripts run end to end on small settings, and their length model is what it says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import run_module

from benchmarks import lengths, synthetic


def test_drawn_lengths_follow_the_stated_distribution() -> None:
    dist = lengths.distribution()
    drawn = lengths.sample(20_000, cap=10**6, seed=1, dist=dist)
    mean = sum(drawn) / len(drawn)
    assert mean == pytest.approx(dist["mean_tokens"], rel=0.05)
    median = sorted(drawn)[len(drawn) // 2]
    assert median == pytest.approx(dist["mean_tokens"] * math.exp(-(dist["sigma"] ** 2) / 2), rel=0.05)
    assert max(lengths.sample(2_000, cap=4096, seed=1, dist=dist)) <= 4096


def test_synthetic_conversations_have_the_drawn_token_lengths(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    targets = [100, 300, 1500]  # above the template's own tokens (its default system turn)
    rows = synthetic.sft_rows(tokenizer, targets, prompt_fraction=0.35, seed=0)
    for target, row in zip(targets, rows, strict=True):
        got = synthetic.rendered_length(tokenizer, row["messages"])
        assert target <= got <= target + 12, (target, got)  # overshoot: at most the last word of each turn


@pytest.mark.slow
def test_train_throughput_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    args = ("--model-size", "tiny", "--sft-conversations", "4", "--pairs", "4", "--out", str(out))
    result = run_module("benchmarks.train_throughput", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert set(record["stages"]) == {"sft", "dpo", "rm"}
    sft = record["stages"]["sft"]["variants"]
    assert sft["padded"]["tokens"] == sft["padding-free"]["tokens"] == sft["packed-bfd"]["tokens"]
    assert all(v["tokens_per_s"] > 0 for v in sft.values())
    assert record["summary"]["sft_padding_free_max_loss_difference"] < 1e-4
    assert "SFT packed (bfd) / padded" in result.stdout


@pytest.mark.slow
def test_eval_throughput_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = ("--model-size", "tiny", "--limit", "1", "--benchmarks", "arc,gsm8k", "--backends", "hf")
    result = run_module("benchmarks.eval_throughput", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    gsm8k = record["per_benchmark"]["hf"]["gsm8k"]
    assert gsm8k["generated_tokens"] > 0 and gsm8k["decode_steps"] > 0
    assert record["per_benchmark"]["hf"]["arc"]["prefill_tokens"] > 0
    assert 0 < gsm8k["roofline_fraction"] < 1  # nothing beats the roofline


# ---- the GPU suite's dry mode ----------------------------------------------------------------------


def _suite(tmp_path: Path, *args: str):
    out = tmp_path / "gpu_suite.json"
    logs = ("--log-dir", str(tmp_path / "logs"))
    done = run_module("benchmarks.gpu_suite", "--dry-run", "--out", str(out), *logs, *args)
    record = json.loads(out.read_text()) if out.is_file() else None
    return done, record


@pytest.mark.slow
def test_gpu_suite_dry_run_writes_every_part(tmp_path: Path) -> None:
    # a budget no slow or busy CI machine reaches: this checks what is written, not how fast
    done, record = _suite(tmp_path, "--budget-s", "3600")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert record["complete"] and record["settings"]["mode"] == "dry-run"
    parts = record["parts"]
    assert {k: v["status"] for k, v in parts.items()} == {"train": "ok", "eval": "ok", "fidelity": "ok"}
    train = parts["train"]["record"]["stages"]
    assert set(train) == {"sft", "dpo"}
    assert set(train["sft"]["variants"]) == {"padding-free"} and set(train["dpo"]["variants"]) == {
        "cached-reference"
    }
    sft = train["sft"]["variants"]["padding-free"]
    assert sft["tokens"] > 0 and sft["tokens_per_s"] == pytest.approx(sft["tokens"] / sft["train_seconds"])
    assert 0 < record["summary"]["sft_padding_free_mfu"] < 1 and 0 < record["summary"]["dpo_mfu"] < 1
    rows = parts["eval"]["record"]["per_benchmark"]["hf"]
    assert set(rows) == {"arc", "gsm8k"} and all(0 < r["roofline_fraction"] < 1 for r in rows.values())
    fidelity = parts["fidelity"]["benchmarks"]
    assert set(fidelity) == {"piqa", "arc"}
    assert (fidelity["piqa"]["card"], fidelity["arc"]["card"]) == (66.3, 37.3)  # the model card's values
    for row in fidelity.values():
        assert row["status"] == "ok" and row["n"] >= 1 and 0 <= row["score"] <= 100
    assert record["summary"]["targets"] == {"sft_mfu": 0.45, "vllm_over_hf": 5.0, "suite_seconds": 600.0}
    # each part gets its share of the time left when it starts (unused time passes on), never more
    budget = record["settings"]["budget_s"]
    assert parts["train"]["budget_s"] <= 0.3 * budget + 0.1
    assert all(p["budget_s"] <= budget for p in parts.values())
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {"train.log", "eval.log", "fidelity.log"}


@pytest.mark.slow
def test_gpu_suite_records_parts_cut_by_the_budget(tmp_path: Path) -> None:
    """Shares too short to finish anything: each part is stopped, says so, and the JSON is whole."""
    done, record = _suite(tmp_path, "--parts", "train,fidelity", "--budget-s", "2")
    assert done.returncode == 1
    assert record["complete"] and set(record["parts"]) == {"train", "fidelity"}
    train, fidelity = record["parts"]["train"], record["parts"]["fidelity"]
    assert train["status"] == "timed out" and "killed" in train["error"] and train["budget_s"] < 2
    assert fidelity["status"] == "failed" and fidelity["error"].startswith("building the model")
    assert record["summary"]["sft_padding_free_mfu"] is None
    assert train["budget_s"] + fidelity["budget_s"] <= 2


def test_gpu_suite_refuses_unknown_parts(tmp_path: Path) -> None:
    done, record = _suite(tmp_path, "--parts", "train,benchmarks")
    assert done.returncode == 2 and "--parts" in done.stderr and record is None
