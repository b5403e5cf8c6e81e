"""Reward model on TRL's RewardTrainer: score head on the policy, a pad token of its own.

Rows are tokenized as open-instruct's reward model tokenizes them (core/preference.py): each
side's whole conversation through the selected chat template, the reward read at the token before
the first pad. The rows reach TRL already tokenized (`chosen_ids` / `rejected_ids`, which
RewardTrainer accepts as they are), so TRL's own chat-template rendering is not used.

Weight decay reaches every parameter, as open-instruct 816dcbf's reward_modeling.py builds its
optimizer (`torch.optim.AdamW(model.parameters(), ...)`, one group); transformers' Trainer would
exempt biases and norm weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import chat_templates, preference
from core.chat_templates import Selection
from repro import stages

DATASET_COLUMNS = ("chosen", "rejected")  # Tulu 3 preference mixture schema
SMOKE_ROWS = "preference.jsonl"


def dropped(trainer: Any, dataset: Any, config: Any) -> dict[str, int]:
    """TRL filters pairs over max_length: counted."""
    n = len(dataset) - len(trainer.train_dataset)
    print(f"reward model: {n} pairs over {config.max_length} tokens dropped")
    return {"over_max_length": n}


PAD_TOKEN = "<|pad|>"


def build(
    model_dir: Path, tokenizer: Any, dataset: Any, config: Any, template: Selection | None = None
) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl import RewardTrainer
    from trl.trainer.utils import global_then_local_main_first

    if template is None:
        template = chat_templates.for_dataset(tokenizer, dataset)
    torch.manual_seed(config.seed)  # the new score head's initialisation
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype="float32")
    # A pad token that no rendered text contains, as open-instruct's reward_modeling.py (main) adds
    # "[PAD]": the reward is read before the first pad, so a pad equal to EOS or to a template token
    # would move it into the conversation.
    if tokenizer.pad_token != PAD_TOKEN:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    config.pad_token = tokenizer.pad_token
    with global_then_local_main_first():  # one process writes the datasets cache, as TRL's own preparation
        tokenized = dataset.map(
            preference.rm_features,
            fn_kwargs={"tokenizer": tokenizer, "selection": template},
            remove_columns=dataset.column_names,
            desc="Tokenizing preference rows (open-instruct)",
        )

    class DecayEverything(RewardTrainer):
        get_decay_parameter_names = staticmethod(stages.decay_every_parameter)

    trainer = DecayEverything(model=model, args=config, train_dataset=tokenized, processing_class=tokenizer)
    tokenizer.chat_template = chat_templates.saved_template(tokenizer, template)
    return trainer
