"""Preference rows tokenized as open-instruct tokenizes them, under each training template.

DPO (open-instruct dpo_tune_cache.py `encode_dpo_example`): each side's whole conversation,
every assistant turn scored, sides with different prompts kept. Reward model (reward_modeling.py,
model_utils.py `get_reward`): each side's whole conversation, the reward read at the token before
the first pad, re-implemented here by hand from per-token scores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_chat_templates import TEMPLATES, ids_of, open_instruct_labels, spans, tokenizer_of, tulu_model

from core import recipe
from repro.training import trl_args

USER = {"role": "user", "content": "Name a colour."}
FIRST = {"role": "assistant", "content": "Blue."}
AGAIN = {"role": "user", "content": "Another?"}
# A hand-built multi-turn row in the Tulu schema: whole conversations sharing all but the last turn.
ROW = {
    "chosen": [USER, FIRST, AGAIN, {"role": "assistant", "content": "Red."}],
    "rejected": [USER, FIRST, AGAIN, {"role": "assistant", "content": "I am not sure about that one."}],
}
# Sides whose prompts differ: open-instruct tokenizes each on its own and keeps the pair.
OTHER_PROMPTS = {
    "chosen": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5."}],
    "rejected": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "6."}],
}
# Per template: the scored text of each side of ROW, and the last token's text (the EOS under tulu,
# whose last turn ends there; the newline after <|im_end|> under ChatML, which renders it).
SCORED = {
    "chatml": (
        ["Blue.<|im_end|>\n", "Red.<|im_end|>\n"],
        ["Blue.<|im_end|>\n", "I am not sure about that one.<|im_end|>\n"],
        "\n",
    ),
    "tulu": (
        ["Blue.<|endoftext|>", "Red.<|endoftext|>"],
        ["Blue.<|endoftext|>", "I am not sure about that one.<|endoftext|>"],
        "<|endoftext|>",
    ),
}


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "chatml": tiny_model_dir,
        "tulu": tulu_model(tiny_model_dir, tmp_path_factory.mktemp("t") / "tulu"),
    }


def config(name: str, tmp_path: Path, **changes):
    r = recipe.load(name)
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(2, 1), str(tmp_path))
    return trl_args.config_class(r.stage)(**{**kwargs, "bf16": False, "use_cpu": True, **changes})


def dpo_trainer(model_dir: Path, rows: list[dict], tmp_path: Path, **changes):
    from datasets import Dataset

    from repro.stages import dpo

    tok = tokenizer_of(model_dir)
    return dpo.build(model_dir, tok, Dataset.from_list(rows), config("dpo-1130", tmp_path, **changes)), tok


@pytest.mark.parametrize("name", TEMPLATES)
def test_dpo_row_scores_every_assistant_turn(name: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import torch
    import torch.nn.functional as F

    trainer, tok = dpo_trainer(model_dirs[name], [ROW, OTHER_PROMPTS], tmp_path)
    assert len(trainer.train_dataset) == 2  # the pair with different prompts is kept
    batch = trainer.data_collator([trainer.train_dataset[0]])
    chosen_text, rejected_text, last = SCORED[name]
    for row, side, expected in ((0, "chosen", chosen_text), (1, "rejected", rejected_text)):
        length = int(batch["attention_mask"][row].sum())
        ids = batch["input_ids"][row, :length].tolist()
        scored = [bool(m) for m in batch["completion_mask"][row, :length]]
        assert ids == ids_of(tok, ROW[side])  # the whole conversation, as rendered by the template
        assert scored == open_instruct_labels(tok, ROW[side])
        assert spans(tok, ids, scored) == expected
        assert tok.decode(ids[-1:]) == last and scored[-1]
    # The reference log-probs TRL precomputed are sums over exactly these tokens (every turn).
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = F.log_softmax(logits[:, :-1].double(), dim=-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    by_hand = (logps * batch["completion_mask"][:, 1:]).sum(dim=1)
    ref = torch.tensor(
        [trainer.train_dataset[0]["ref_chosen_logps"], trainer.train_dataset[0]["ref_rejected_logps"]]
    )
    assert torch.allclose(by_hand.float(), ref.float(), atol=1e-3)


def test_dpo_drops_pairs_with_no_label_left_after_truncation(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    tok = tokenizer_of(model_dirs["chatml"])
    prompt_tokens = len(ids_of(tok, ROW["chosen"][:1], generation_prompt=True))
    long_prompt = {side: [{"role": "user", "content": "colour " * 40}, *ROW[side][1:]] for side in ROW}
    trainer, _ = dpo_trainer(model_dirs["chatml"], [ROW, long_prompt], tmp_path, max_length=prompt_tokens + 2)
    assert len(trainer.train_dataset) == 1
    assert all(len(ids) <= prompt_tokens + 2 for ids in trainer.train_dataset["chosen_ids"])


def rm_trainer(model_dir: Path, rows: list[dict], tmp_path: Path):
    from datasets import Dataset

    from repro.stages import rm

    tok = tokenizer_of(model_dir)
    return rm.build(model_dir, tok, Dataset.from_list(rows), config("rm-1130", tmp_path)), tok


def open_instruct_reward(model, input_ids, pad: int):
    """model_utils.get_reward by hand: per-token scores, read at first_true_indices(ids == pad) - 1."""
    import torch

    is_pad = input_ids == pad
    attention = ~is_pad
    positions = attention.cumsum(1) - attention.long()
    hidden = model.model(
        input_ids=input_ids.masked_fill(is_pad, 0), attention_mask=attention.long(), position_ids=positions
    ).last_hidden_state
    scores = model.score(hidden)[..., 0]
    width = input_ids.shape[1]
    first_pad = torch.where(is_pad, torch.arange(width), width).min(dim=1).values
    return scores[torch.arange(len(input_ids)), first_pad - 1]


@pytest.mark.parametrize("name", TEMPLATES)
def test_rm_pair_is_whole_and_read_before_the_first_pad(
    name: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    trainer, tok = rm_trainer(model_dirs[name], [ROW, OTHER_PROMPTS], tmp_path)
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    row = trainer.train_dataset[0]
    for side in ("chosen", "rejected"):
        assert row[f"{side}_ids"] == ids_of(tok, ROW[side])  # every turn, the template's own ending
        assert tok.decode(row[f"{side}_ids"][-1:]) == SCORED[name][2]
    batch = trainer.data_collator([row, trainer.train_dataset[1]])
    model = trainer.model.eval()
    with torch.no_grad():
        trained = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
        by_hand = open_instruct_reward(model, batch["input_ids"], tok.pad_token_id)
    assert torch.allclose(trained, by_hand, atol=1e-5)


def test_rm_reads_a_literal_pad_where_open_instruct_does(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """A pad inside the text ends the sequence for open-instruct's reader: training reads there too."""
    import torch

    user = {"role": "user", "content": "Say something."}
    row = {
        "chosen": [user, {"role": "assistant", "content": "Alpha <|pad|> beta gamma."}],
        "rejected": [user, {"role": "assistant", "content": "Alpha."}],
    }
    trainer, tok = rm_trainer(model_dirs["chatml"], [row], tmp_path)
    whole = tok(tok.apply_chat_template(row["chosen"], tokenize=False), add_special_tokens=False).input_ids
    assert tok.pad_token_id in whole
    chosen = trainer.train_dataset[0]["chosen_ids"]
    assert chosen == whole[: whole.index(tok.pad_token_id)]
    model = trainer.model.eval()
    with torch.no_grad():
        trained = model(input_ids=torch.tensor([chosen])).logits[0, 0]
        by_hand = open_instruct_reward(model, torch.tensor([whole]), tok.pad_token_id)[0]
    assert float(trained) == pytest.approx(float(by_hand), abs=1e-5)
