"""SFT loss reduction (repro/stages/sft_loss.py): each `loss_reduction` gives open-instruct's gradient.

open-instruct 816dcbf, open_instruct/finetune.py (training loop of `main`): `--reduce_loss mean`
backpropagates the micro-batch's token-mean loss, `sum` its token-sum loss; accelerate (or
DeepSpeed) divides either by the accumulation steps G and DDP averages the W processes'
gradients. TRL's own loss is the token mean over the whole step. On a hand-built batch of
conversations with unequal loss-token counts, the trainer's gradient is checked against those
formulas, computed here from the model's plain logits, for several (W, G, per-device) splits of
one effective batch of 8; processes are simulated one after another and averaged, as DDP does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

import pytest
import torch

from core import recipe
from core.errors import UsageError
from repro.training import trl_args

# (prompt tokens, response tokens) per conversation: loss-token counts from 1 to 12, so micro-batches
# of one split carry very different numbers of tokens and the three reductions disagree.
SHAPES = [(3, 2), (2, 9), (4, 1), (3, 6), (5, 3), (2, 12), (3, 1), (4, 5)]
# (processes W, accumulation steps G, per-device batch): each a split of the effective batch of 8
SPLITS = [(1, 1, 8), (1, 4, 2), (2, 2, 2), (2, 1, 4), (4, 2, 1), (8, 1, 1)]
MODES = ("sum", "mean", "token_mean")


def _rows(vocab: int) -> list[dict[str, list[int]]]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for prompt, response in SHAPES:
        ids = torch.randint(3, vocab, (prompt + response,), generator=gen).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def _micro_batches(split: tuple[int, int, int]) -> list[list[list[int]]]:
    """Row indices of micro-batch k of process r: [r][k], in the order a distributed sampler deals them."""
    world, accum, per_device = split
    return [
        [[(k * world + r) * per_device + i for i in range(per_device)] for k in range(accum)]
        for r in range(world)
    ]


def _token_losses(model: Any, row: dict[str, list[int]]) -> tuple[torch.Tensor, int]:
    """(sum of the row's per-token NLL over its loss tokens, their count), from the plain logits."""
    ids, labels = torch.tensor(row["input_ids"]), torch.tensor(row["labels"])
    logits = model(input_ids=ids[None]).logits[0, :-1]
    targets, mask = labels[1:], labels[1:] != -100
    nll = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
    return nll, int(mask.sum())


def _objective(model: Any, rows: list[dict[str, list[int]]], split: tuple[int, int, int], mode: str) -> Any:
    """The step's loss whose gradient each reduction should give (repro/stages/sft_loss.py docstring)."""
    world, accum, _ = split
    per_row = [_token_losses(model, row) for row in rows]
    if mode == "token_mean":  # TRL: every token of the step weighs the same
        return sum(s for s, _ in per_row) / sum(n for _, n in per_row)
    total = 0
    for process in _micro_batches(split):
        for micro in process:
            s = sum(per_row[i][0] for i in micro)
            # open-instruct: sum -> CrossEntropyLoss(reduction="sum"); mean -> the model's token-mean loss
            total = total + (s if mode == "sum" else s / sum(per_row[i][1] for i in micro))
    return total / (accum * world)  # accelerate's backward divides by G; DDP averages over W


def _expected_gradient(model: Any, rows: list, split: tuple[int, int, int], mode: str) -> list[torch.Tensor]:
    model.zero_grad()
    _objective(model, rows, split, mode).backward()
    return [p.grad.clone() for p in model.parameters()]


def _trainer_gradient(trainer: Any, rows: list, split: tuple[int, int, int]) -> list[torch.Tensor]:
    """What the Trainer's loop does on each of W processes, then DDP's average of their gradients."""
    from accelerate import Accelerator

    world, accum, _ = split
    model = trainer.model
    model.train()
    trainer.args.gradient_accumulation_steps = accum
    trainer.current_gradient_accumulation_steps = accum
    batches = [[trainer.data_collator([rows[i] for i in micro]) for micro in process] for process in
               _micro_batches(split)]  # fmt: skip
    counts = [trainer._get_num_items_in_batch(process, model.device) for process in batches]
    if trainer.args.average_tokens_across_devices:  # the Trainer gathers the count over processes
        counts = [sum(counts)] * world
    per_process = []
    with patch.object(Accelerator, "num_processes", new_callable=PropertyMock, return_value=world):
        for process, count in zip(batches, counts, strict=True):
            model.zero_grad()
            for batch in process:
                trainer.training_step(model, dict(batch), count)
            per_process.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(grads).mean(dim=0) for grads in zip(*per_process, strict=True)]


@pytest.fixture(scope="module")
def trainers(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repro.stages.sft_loss import ReducedLossSFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = {}
    for mode in MODES:
        r = recipe.apply_overrides(recipe.load("sft-1130"), [f"loss_reduction={mode}"])
        kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(8, 1), str(tmp_path_factory.mktemp(mode)))
        # the loss settings stay the recipe's; the rows come tokenized, masked and short
        kwargs.update(bf16=False, use_cpu=True, assistant_only_loss=False, max_length=None)
        # float64, so the comparison measures the reduction, not float32 rounding
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
        rows = _rows(model.config.vocab_size)
        config = trl_args.config_class("sft")(**kwargs)
        dataset = Dataset.from_list(rows)
        out[mode] = ReducedLossSFTTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=tokenizer
        )
    return out


@pytest.mark.parametrize("split", SPLITS, ids=[f"W{w}-G{g}-B{b}" for w, g, b in SPLITS])
@pytest.mark.parametrize("mode", MODES)
def test_gradient_equals_the_formula(
    trainers: dict[str, Any], mode: str, split: tuple[int, int, int]
) -> None:
    trainer = trainers[mode]
    rows = _rows(trainer.model.config.vocab_size)
    got = _trainer_gradient(trainer, rows, split)
    expected = _expected_gradient(trainer.model, rows, split, mode)
    for (name, _), g, e in zip(trainer.model.named_parameters(), got, expected, strict=True):
        assert _relative_error(g, e) < 1e-5, name


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """|got - expected| / |expected| over a whole tensor. Even a float64 model runs its RMSNorm and
    rotary embeddings, and TRL's fused LM head, in float32: agreement is ~1e-7, while a wrong
    reduction is off by 1e-2 or more (test_the_reductions_differ)."""
    return float((got - expected).norm() / expected.norm())


def test_the_reductions_differ(trainers: dict[str, Any]) -> None:
    """The check discriminates; and `sum` is the token mean times the loss tokens per micro-batch."""
    model = trainers["sum"].model
    rows = _rows(model.config.vocab_size)
    split = (2, 2, 2)
    grads = {
        mode: torch.cat([g.flatten() for g in _expected_gradient(model, rows, split, mode)]) for mode in MODES
    }
    assert _relative_error(grads["mean"], grads["token_mean"]) > 1e-2
    assert _relative_error(grads["mean"], grads["sum"]) > 1e-2
    # 39 loss tokens over 2 x 2 micro-batches
    tokens_per_micro_batch = sum(response for _, response in SHAPES) / 4
    assert _relative_error(grads["sum"], grads["token_mean"] * tokens_per_micro_batch) < 1e-5


def test_the_recipe_follows_the_tulu3_sft_command() -> None:
    for name in ("sft-1130", "sft-1207", "ablation-135m"):
        item = recipe.load(name).hyperparameters["loss_reduction"]
        assert item.value == "sum", name
        assert "docs/tulu3.md" in item.source and "--reduce_loss sum" in item.source
    plan = recipe.plan_batch(8, 1)
    for mode, global_count in (("sum", False), ("mean", False), ("token_mean", True)):
        r = recipe.apply_overrides(recipe.load("sft-1130"), [f"loss_reduction={mode}"])
        kwargs = trl_args.trl_kwargs(r, plan, "out")
        assert kwargs["loss_reduction"] == mode and kwargs["average_tokens_across_devices"] is global_count
    median = recipe.apply_overrides(recipe.load("sft-1130"), ["loss_reduction=median"])
    with pytest.raises(UsageError, match="loss_reduction"):
        trl_args.trl_kwargs(median, plan, "out")


def test_the_sft_stage_trains_with_the_recipes_reduction(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json
    from importlib import resources

    from datasets import Dataset
    from transformers import AutoTokenizer

    from repro import stages
    from repro.stages.sft_loss import ReducedLossSFTTrainer

    text = resources.files("repro.data").joinpath("smoke").joinpath("sft.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()[:4] if line.strip()]
    kwargs = trl_args.trl_kwargs(recipe.load("sft-1130"), recipe.plan_batch(4, 1), str(tmp_path))
    config = trl_args.config_class("sft")(**{**kwargs, "bf16": False, "use_cpu": True})
    trainer = stages.module("sft").build(
        tiny_model_dir, AutoTokenizer.from_pretrained(tiny_model_dir), Dataset.from_list(rows), config
    )
    assert isinstance(trainer, ReducedLossSFTTrainer) and trainer.args.loss_reduction == "sum"
    assert trainer.loss_is_scaled_for_ga is True and not trainer.args.average_tokens_across_devices


def test_the_training_log_says_what_a_summed_loss_is() -> None:
    from repro.stages import sft
    from repro.stages.sft_loss import REDUCTIONS

    notes = {r: sft.loss_note(r) for r in REDUCTIONS}
    assert "thousands" in notes["sum"] and "expected" in notes["sum"]
    assert len(set(notes.values())) == len(REDUCTIONS)
