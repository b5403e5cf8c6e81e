"""DPO on TRL's DPOTrainer: length-normalised loss, reference log-probs precomputed once.

Rows are tokenized as open-instruct's DPO does (core/preference.py): each side's whole
conversation through the selected chat template, every assistant turn scored. TRL's own
preparation cannot express that: it splits a row into one shared prompt and one contiguous
completion per side (DPOTrainer._prepare_dataset, DataCollatorForPreference), so earlier assistant
turns are never scored and sides with different prompts cannot be represented. The trainer below
therefore replaces only the dataset preparation and the collator; the loss (`sigmoid_norm`), the
reference precomputation and the training loop are TRL's, fed the same `input_ids`,
`attention_mask` and `completion_mask` batches its collator makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import chat_templates, preference
from core.chat_templates import Selection

DATASET_COLUMNS = ("chosen", "rejected")  # Tulu 3 preference mixture schema
SMOKE_ROWS = "preference.jsonl"


def dropped(trainer: Any, dataset: Any, config: Any) -> dict[str, int]:
    """open-instruct drops pairs left with no label after truncation."""
    return {"no_label_after_truncation": len(dataset) - len(trainer.train_dataset)}


COLUMNS = ("chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask")


@dataclass
class PreferenceCollator:
    """Chosen rows then rejected rows, right-padded; completion_mask marks the scored tokens."""

    pad_token_id: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids = [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]
        masks = [e["chosen_mask"] for e in examples] + [e["rejected_mask"] for e in examples]
        width = max(len(row) for row in ids)
        out = {
            "input_ids": torch.full((len(ids), width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(ids), width), dtype=torch.long),
            "completion_mask": torch.zeros((len(ids), width), dtype=torch.long),
        }
        for i, (row, mask) in enumerate(zip(ids, masks, strict=True)):
            out["input_ids"][i, : len(row)] = torch.tensor(row, dtype=torch.long)
            out["attention_mask"][i, : len(row)] = 1
            out["completion_mask"][i, : len(row)] = torch.tensor(mask, dtype=torch.long)
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                out[key] = torch.tensor([e[key] for e in examples])
        return out


def tokenize(dataset: Any, tokenizer: Any, selection: Selection, max_length: int | None) -> Any:
    """open-instruct's DPO rows; pairs left without a scored token after truncation are dropped."""
    from trl.trainer.utils import global_then_local_main_first

    with global_then_local_main_first():  # one process writes the datasets cache, as TRL's own preparation
        tokenized = dataset.map(
            preference.dpo_features,
            fn_kwargs={"tokenizer": tokenizer, "selection": selection, "max_length": max_length},
            remove_columns=dataset.column_names,
            desc="Tokenizing preference rows (open-instruct)",
        )
        return tokenized.filter(preference.has_scored_tokens)


def trainer_class() -> type:
    from trl import DPOTrainer

    class OpenInstructDPOTrainer(DPOTrainer):
        """DPOTrainer fed open-instruct's preference rows (see the module docstring)."""

        def __init__(self, *args: Any, selection: Selection, **kwargs: Any) -> None:
            self.selection = selection  # read by _prepare_dataset, which DPOTrainer.__init__ calls
            super().__init__(*args, **kwargs)

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            return tokenize(dataset, processing_class, self.selection, args.max_length)

        def _set_signature_columns_if_needed(self) -> None:
            if self._signature_columns is None:
                self._signature_columns = [*COLUMNS, "ref_chosen_logps", "ref_rejected_logps"]

    return OpenInstructDPOTrainer


def build(
    model_dir: Path, tokenizer: Any, dataset: Any, config: Any, template: Selection | None = None
) -> Any:
    from transformers import AutoModelForCausalLM

    if template is None:
        template = chat_templates.for_dataset(tokenizer, dataset)
    # The reference is the same checkpoint as the starting policy; with
    # precompute_ref_log_probs TRL scores it once before the first step.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = trainer_class()(
        model=model,
        args=config,
        data_collator=PreferenceCollator(pad),
        train_dataset=dataset,
        processing_class=tokenizer,
        selection=template,
    )
    tokenizer.chat_template = chat_templates.saved_template(tokenizer, template)
    return trainer
