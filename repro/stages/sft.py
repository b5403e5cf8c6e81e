"""SFT on TRL's SFTTrainer: assistant-only loss through a template with generation markers."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from repro.errors import UsageError


def training_template() -> str:
    """SmolLM2's ChatML with `{% generation %}` around each assistant turn and its <|im_end|>."""
    return resources.files("repro.data").joinpath("chatml_training_template.jinja").read_text()


def check_template_matches(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> None:
    """The masking template must render exactly as the tokenizer's own template."""
    template = training_template()
    for messages in conversations:
        ours = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)
        theirs = tokenizer.apply_chat_template(messages, tokenize=False)
        if ours != theirs:
            raise UsageError(
                "the tokenizer's chat template renders differently from the ChatML training template "
                "(repro/data/chatml_training_template.jinja); assistant-only loss would mask the wrong tokens"
            )


def build(model_dir: Path, tokenizer: Any, dataset: Any, config: Any) -> Any:
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    check_template_matches(
        tokenizer, [row["messages"] for row in dataset.select(range(min(8, len(dataset))))]
    )
    inference_template = tokenizer.chat_template
    tokenizer.chat_template = training_template()  # TRL masks with it; rendering is unchanged
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    # TRL refuses max_length beside padding_free (without packing) at construction, so build
    # without it and truncate the prepared rows the way TRL's own preparation does.
    max_length = config.max_length if config.padding_free and not config.packing else None
    if max_length is not None:
        config.max_length = None
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    tokenizer.chat_template = inference_template  # the saved tokenizer keeps the template users know
    if max_length is not None:
        config.max_length = max_length
        trainer.train_dataset = truncate(trainer.train_dataset, max_length)
    return trainer


def truncate(dataset: Any, max_length: int) -> Any:
    """Keep the first max_length tokens of each row; drop rows left with no loss tokens."""

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        return {"input_ids": row["input_ids"][:max_length], "labels": row["labels"][:max_length]}

    return dataset.map(cut).filter(lambda row: any(label != -100 for label in row["labels"]))
