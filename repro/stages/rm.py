"""Reward model on TRL's RewardTrainer: score head on the policy, pad distinct from EOS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PAD_TOKEN = "<|pad|>"


def build(model_dir: Path, tokenizer: Any, dataset: Any, config: Any) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl import RewardTrainer

    torch.manual_seed(config.seed)  # the new score head's initialisation
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype="float32")
    # The reward is read at the last non-pad token: with pad == eos that would skip the EOS.
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    config.pad_token = tokenizer.pad_token
    return RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
