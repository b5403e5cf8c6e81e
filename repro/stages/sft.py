"""SFT on TRL's SFTTrainer: assistant-only loss through a template with generation markers.

The template is the run's selection (core/chat_templates.py: open-instruct's `tulu` or SmolLM2's
ChatML, whichever renders like the tokenizer's own); its `{% generation %}` spans are the tokens
open-instruct's finetune.py `encode_sft_example` leaves unmasked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import chat_templates
from core.chat_templates import Selection
from core.resolve import Resolved, resolve
from repro.stages.sft_loss import MEAN, SUM, TOKEN_MEAN

DATASET_COLUMNS = ("messages",)  # Tulu 3 SFT mixture schema
SMOKE_ROWS = "sft.jsonl"
SMOKE_FROM_TINY_MODEL = True  # the first stage: nothing of ours to start from


def extra_inputs(req: Any) -> dict[str, Resolved]:
    """A real run takes its chat template from the recipe's tokenizer (a pinned input of its own)."""
    if req.profile != "real":
        return {}
    name = str(req.recipe.inputs["chat_template"].value)
    return {"chat_template": resolve(name, lock=req.lock, allow_unlocked=req.allow_unlocked)}


def build(
    model_dir: Path, tokenizer: Any, dataset: Any, config: Any, template: Selection | None = None
) -> Any:
    from transformers import AutoModelForCausalLM

    from repro.stages.sft_loss import ReducedLossSFTTrainer  # SFTTrainer with the recipe's loss_reduction

    if template is None:  # refused unless a training template renders like the tokenizer's
        template = chat_templates.for_dataset(tokenizer, dataset)
    inference_template = chat_templates.saved_template(tokenizer, template)
    tokenizer.chat_template = template.training()  # TRL masks with it; rendering is unchanged
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    # TRL refuses max_length beside padding_free (without packing) at construction, so build
    # without it and truncate the prepared rows the way TRL's own preparation does.
    max_length = config.max_length if config.padding_free and not config.packing else None
    if max_length is not None:
        config.max_length = None
    trainer = ReducedLossSFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    print(loss_note(getattr(config, "loss_reduction", TOKEN_MEAN)))
    tokenizer.chat_template = inference_template  # the saved tokenizer keeps the template users know
    if max_length is not None:
        config.max_length = max_length
        trainer.train_dataset = truncate(trainer.train_dataset, max_length)
    return trainer


def loss_note(reduction: str) -> str:
    """What the logged loss is: a summed loss in the thousands is expected, not a diverging run."""
    if reduction == SUM:
        return (
            "loss: summed over each micro-batch's loss tokens (open-instruct's `sum`, as Tulu 3 trained): "
            "logged values scale with the tokens per micro-batch (hundreds to thousands), which is "
            "expected; divided by those tokens it is the per-token loss"
        )
    if reduction == MEAN:
        return "loss: each micro-batch's mean over its loss tokens (open-instruct's `mean`)"
    return "loss: the mean over the step's loss tokens (TRL's default)"


def truncate(dataset: Any, max_length: int) -> Any:
    """Keep the first max_length tokens of each row; drop rows left with no loss tokens."""

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        return {"input_ids": row["input_ids"][:max_length], "labels": row["labels"][:max_length]}

    return dataset.map(cut).filter(lambda row: any(label != -100 for label in row["labels"]))
