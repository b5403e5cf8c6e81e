"""The DPO loss the recipes select is Tulu 3's dpo_norm, checked against TRL's own computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import recipe
from repro.training import trl_args

# Two pairs, right-padded; the completion masks give responses of 5 vs 2 and 3 vs 6 tokens.
IDS = [
    [1, 40, 41, 42, 2, 60, 61, 62, 63, 64, 2, 2],  # chosen 1
    [1, 43, 44, 2, 70, 71, 72, 2, 2, 2, 2, 2],  # chosen 2
    [1, 40, 41, 42, 2, 80, 81, 2, 2, 2, 2, 2],  # rejected 1
    [1, 43, 44, 2, 90, 91, 92, 93, 94, 95, 2, 2],  # rejected 2
]
PROMPT_LEN = [5, 4, 5, 4]
SEQ_LEN = [11, 8, 8, 11]
REF_CHOSEN, REF_REJECTED = [-20.0, -15.0], [-18.0, -25.0]


def _batch():
    import torch

    ids = torch.tensor(IDS)
    attention = torch.zeros_like(ids)
    completion = torch.zeros_like(ids)
    for row, (p, n) in enumerate(zip(PROMPT_LEN, SEQ_LEN, strict=True)):
        attention[row, :n] = 1
        completion[row, p:n] = 1
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "completion_mask": completion,
        "ref_chosen_logps": torch.tensor(REF_CHOSEN, dtype=torch.float64),
        "ref_rejected_logps": torch.tensor(REF_REJECTED, dtype=torch.float64),
    }


def _dpo_norm_by_hand(model, batch, beta: float, normalise: bool = True) -> float:
    """-log sigmoid(beta * [(logp_c - ref_c)/|y_c| - (logp_r - ref_r)/|y_r|]), from logits."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    token_logps = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    mask = batch["completion_mask"][:, 1:]
    logps = (token_logps * mask).sum(dim=1)
    lengths = (
        batch["completion_mask"].sum(dim=1).double() if normalise else torch.ones(4, dtype=torch.float64)
    )
    ref = torch.tensor(REF_CHOSEN + REF_REJECTED, dtype=torch.float64)
    ratio = (logps - ref) / lengths
    margin = ratio[:2] - ratio[2:]
    return float(-F.logsigmoid(beta * margin).mean())


@pytest.fixture(scope="module")
def dpo_trainer(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    r = recipe.load("dpo-1130")
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(2, 1), str(tmp_path_factory.mktemp("dpo")))
    kwargs.update(bf16=False, use_cpu=True)  # the loss settings (beta, loss_type) stay the recipe's
    pair = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello"}],
        "rejected": [{"role": "assistant", "content": "No"}],
    }
    # float64 throughout, so the 1e-6 comparison measures the formula, not float32 rounding
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    trainer = DPOTrainer(model=model, args=DPOConfig(**kwargs), train_dataset=Dataset.from_list([pair] * 2),
                         processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))  # fmt: skip
    return trainer, r.hp("beta")


def test_recipe_selects_dpo_norm() -> None:
    r = recipe.load("dpo-1130")
    args = trl_args.trl_kwargs(r, recipe.plan_batch(12, 1), "out")
    assert args["loss_type"] == ["sigmoid_norm"] and args["beta"] == 5.0 and args["precompute_ref_log_probs"]


def test_trl_loss_equals_tulu3_dpo_norm(dpo_trainer) -> None:
    trainer, beta = dpo_trainer
    batch = _batch()
    trainer.model.eval()
    trl_loss = float(trainer._compute_loss(trainer.model, batch, False))
    assert trl_loss == pytest.approx(_dpo_norm_by_hand(trainer.model, batch, beta), abs=1e-6)
    # The check discriminates: the unnormalised (plain sigmoid DPO) loss is far from it.
    assert abs(trl_loss - _dpo_norm_by_hand(trainer.model, batch, beta, normalise=False)) > 1e-3


def _rm_trainer(model_dir: Path, out: Path) -> tuple[Any, Any]:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from repro.stages import rm

    r = recipe.load("rm-1130")
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(2, 1), str(out))
    config = trl_args.config_class("rm")(**{**kwargs, "bf16": False, "use_cpu": True})
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    user = {"role": "user", "content": "Hi"}
    pair = {"chosen": [user, {"role": "assistant", "content": "Hello"}],
            "rejected": [user, {"role": "assistant", "content": "No"}]}  # fmt: skip
    return rm.build(model_dir, tokenizer, Dataset.from_list([pair] * 2), config), tokenizer


def test_reward_model_weight_decay_reaches_every_parameter(tiny_model_dir: Path, tmp_path: Path) -> None:
    """open-instruct's reward_modeling.py: AdamW over model.parameters(), one group, norms included."""
    trainer, _ = _rm_trainer(tiny_model_dir, tmp_path)
    optimizer = trainer.create_optimizer()
    decay = recipe.load("rm-1130").hyperparameters["weight_decay"].value
    assert decay > 0
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == decay for p in g["params"]}
    named = dict(trainer.model.named_parameters())
    norms = [n for n in named if "norm" in n]
    assert norms and all(id(named[n]) in decayed for n in norms)
    assert len(decayed) == len(named)


def test_reward_loss_reads_the_last_real_token(tiny_model_dir: Path, tmp_path: Path) -> None:
    """-log sigmoid(r_chosen - r_rejected), rewards read at each sequence's last non-pad token (its EOS)."""
    import torch
    import torch.nn.functional as F

    trainer, tokenizer = _rm_trainer(tiny_model_dir, tmp_path)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = torch.tensor([[1, 40, 41, 42, eos, pad, pad], [1, 43, eos, pad, pad, pad, pad],
                        [1, 40, 41, eos, pad, pad, pad], [1, 43, 44, 45, 46, 47, eos]])  # fmt: skip
    mask = (ids != pad).long()
    model = trainer.model.eval()
    with torch.no_grad():
        loss = float(trainer.compute_loss(model, {"input_ids": ids, "attention_mask": mask}))
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        last = mask.sum(dim=1) - 1
        rewards = model.score(hidden[torch.arange(4), last]).squeeze(-1).double()
    expected = float(-F.logsigmoid(rewards[:2] - rewards[2:]).mean())
    assert loss == pytest.approx(expected, abs=1e-6)
