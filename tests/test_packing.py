"""Padding-free and packed SFT batches keep the attention boundaries and the loss normalisation.

The SFT recipe trains padding-free (benchmarks/train_throughput.py measured it faster); these
tests are what makes that choice safe: a flattened row attends only within each conversation,
a step's loss is the same token mean as with padding, and a whole smoke run ends with the same
weights either way.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_module
from test_training import _losses

from core import recipe
from core.recipe import BatchPlan
from repro import stages
from repro.training import trl_args


def _model(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32").eval()


def test_position_ids_keep_flattened_sequences_apart(tiny_model_dir: Path) -> None:
    model = _model(tiny_model_dir)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randint(3, 1000, (1, n), generator=gen) for n in (7, 5))
    with torch.no_grad():
        alone = [model(x).logits for x in (a, b)]
        flat = torch.cat([a, b], dim=1)
        positions = torch.cat([torch.arange(7), torch.arange(5)])[None]
        # use_cache=False as TRL's SFT compute_loss sets it: transformers derives the block mask
        # from position_ids only without a cache.
        packed = model(flat, position_ids=positions, use_cache=False).logits
        leaky = model(flat, use_cache=False).logits  # control: one causal sequence, b sees a
    torch.testing.assert_close(packed[:, :7], alone[0])
    torch.testing.assert_close(packed[:, 7:], alone[1])
    assert not torch.allclose(leaky[:, 7:], alone[1], atol=1e-4)


def _smoke_rows() -> list[dict[str, Any]]:
    text = resources.files("repro.data").joinpath("smoke").joinpath("sft.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _one_batch_loss(
    model_dir: Path, out: Path, rows: list[dict[str, Any]], **changes: Any
) -> tuple[float, int]:
    """Loss of one step holding every row, built by the SFT stage as `python -m repro` builds it."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    rec = recipe.load("sft-1130")
    plan = BatchPlan(effective=len(rows), world_size=1, per_device=len(rows), grad_accum=1)
    kwargs = trl_args.trl_kwargs(rec, plan, str(out))
    kwargs.update(use_cpu=True, bf16=False, report_to="none", **changes)
    config = trl_args.config_class("sft")(**kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trainer = stages.module("sft").build(model_dir, tokenizer, Dataset.from_list(rows), config)
    batch = next(iter(trainer.get_train_dataloader()))
    targets = int((batch["labels"][:, 1:] != -100).sum())  # the tokens the shifted loss scores
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch, num_items_in_batch=targets)
    return float(loss), targets


@pytest.mark.parametrize(
    "layout",
    [{"padding_free": True}, {"packing": True, "packing_strategy": "bfd"}],
    ids=["padding-free", "packed-bfd"],
)
def test_flattened_batches_keep_the_token_mean_loss(
    tiny_model_dir: Path, tmp_path: Path, layout: dict[str, Any]
) -> None:
    rows = _smoke_rows()
    padded, padded_targets = _one_batch_loss(tiny_model_dir, tmp_path / "a", rows, padding_free=False)
    flat, flat_targets = _one_batch_loss(tiny_model_dir, tmp_path / "b", rows, **layout)
    assert flat_targets == padded_targets  # the same assistant tokens are scored, no more, no fewer
    assert flat == pytest.approx(padded, rel=1e-6)


@pytest.mark.slow  # a padded smoke run beside the shared padding-free one (the recipe's default)
def test_padding_free_run_ends_with_the_weights_of_a_padded_run(
    smoke_outputs: Path, smoke_sft: Path, tmp_path: Path
) -> None:
    runs = {"padding-free": smoke_sft, "padded": tmp_path / "padded"}
    env = {"SMOLTULU_OUTPUTS": str(smoke_outputs)}
    result = run_module(
        "repro", "sft-1130", "--profile", "smoke", "--out", str(runs["padded"]), "--override",
        "padding_free=false", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((runs["padding-free"] / "manifest.json").read_text())
    assert manifest["hyperparameters"]["padding_free"]["value"] is True
    assert _losses(runs["padding-free"]) == pytest.approx(_losses(runs["padded"]), rel=1e-5)

    from safetensors.torch import load_file

    # Float noise in near-zero gradients is magnified by Adam's normalisation, so weights agree to
    # well under one optimiser step (the learning rate bounds an element's move per step), not bitwise.
    step = manifest["hyperparameters"]["learning_rate"]["value"]
    free = load_file(runs["padding-free"] / "final" / "model.safetensors")
    padded = load_file(runs["padded"] / "final" / "model.safetensors")
    for key, tensor in free.items():
        assert (tensor - padded[key]).abs().max() < step / 2, key
