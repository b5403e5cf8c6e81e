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
