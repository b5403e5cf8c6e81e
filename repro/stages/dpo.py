"""DPO on TRL's DPOTrainer: length-normalised loss, reference log-probs precomputed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build(model_dir: Path, tokenizer: Any, dataset: Any, config: Any) -> Any:
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    # The reference is the same checkpoint as the starting policy; with
    # precompute_ref_log_probs TRL scores it once before the first step.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    return DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
