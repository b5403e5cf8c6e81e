"""Preference rows tokenized as open-instruct tokenizes them (allenai/open-instruct @ 816dcbf).

A Tulu preference row holds two whole conversations, `chosen` and `rejected`, that usually share
every turn but the last. open-instruct never splits them into prompt / completion:

- DPO (dpo_tune_cache.py, `encode_dpo_example`) encodes each conversation on its own with
  finetune.py's `encode_sft_example`: the whole conversation through the chat template, truncated
  to `max_seq_length`, labels on every assistant turn (each non-assistant message masked from the
  end of the previous messages' rendering to the end of its own, including the `<|assistant|>`
  generation prompt when an assistant turn follows). So every assistant turn of a multi-turn
  conversation is scored, not only the last, and the two sides may even have different prompts.
  Pairs with no label left on either side after truncation are dropped. `dpo_norm` divides each
  side's summed log-probability by its number of label tokens (dpo_utils.py `_get_batch_logps`).
- The reward model (reward_modeling.py, `PreferenceDatasetProcessor.tokenize` in
  dataset_processor.py) tokenizes each whole conversation with `apply_chat_template` and reads the
  reward at the token before the first pad (model_utils.py `get_reward`:
  `first_true_indices(ids == pad) - 1`), after adding a pad token of its own ("[PAD]").

What the template renders after the last turn is kept as it is: under `tulu` the last assistant
turn ends in EOS with no newline (its newline is only written between turns), so the last scored
token and the reward token are the EOS; under ChatML the turn's `<|im_end|>` is followed by a
newline, scored in DPO and SFT as open-instruct's boundary rule scores it (the next message's span
starts after it), and the reward is read on it.

The masks come from the selected training template's `{% generation %}` markers (the same
character spans `encode_sft_example` derives from prefix renderings; see tests).
"""

from __future__ import annotations

from typing import Any

from core.chat_templates import Selection

Message = dict[str, str]


def conversation_tokens(
    tokenizer: Any, messages: list[Message], selection: Selection, max_length: int | None = None
) -> tuple[list[int], list[int]]:
    """(token ids, assistant mask) of one whole conversation, truncated to max_length (keep start)."""
    out = tokenizer.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        chat_template=selection.training(),
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return ids, mask


def sides(row: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """The chosen and rejected conversations of a row: whole (Tulu), or an explicit prompt prepended."""
    prompt = row.get("prompt")
    prompt = prompt if isinstance(prompt, list) else []
    return prompt + row["chosen"], prompt + row["rejected"]


def dpo_features(
    row: dict[str, Any], tokenizer: Any, selection: Selection, max_length: int | None
) -> dict[str, list[int]]:
    """Both sides tokenized whole: ids and a mask of the tokens DPO scores (every assistant turn)."""
    chosen, rejected = sides(row)
    chosen_ids, chosen_mask = conversation_tokens(tokenizer, chosen, selection, max_length)
    rejected_ids, rejected_mask = conversation_tokens(tokenizer, rejected, selection, max_length)
    return {
        "chosen_ids": chosen_ids,
        "chosen_mask": chosen_mask,
        "rejected_ids": rejected_ids,
        "rejected_mask": rejected_mask,
    }


def has_scored_tokens(row: dict[str, Any]) -> bool:
    """Both sides keep a labelled token (dpo_tune_cache.py main: the filters on `*_labels != -100`)."""
    return any(row["chosen_mask"]) and any(row["rejected_mask"])


def reward_ids(ids: list[int], pad_token_id: int | None) -> list[int]:
    """The tokens up to the one the reward is read at: everything before the first pad.

    open-instruct reads the reward at `first_true_indices(ids == pad) - 1` (model_utils.py
    `get_reward`). A causal model's state there depends only on the tokens before it, so cutting the
    sequence at its first pad gives the same reward under any reader that takes the last real token
    (transformers' sequence classifiers take the rightmost non-pad one). A sequence that starts with
    the pad keeps its first token.
    """
    if pad_token_id is None or pad_token_id not in ids:
        return list(ids)
    return list(ids[: max(1, ids.index(pad_token_id))])


def rm_features(row: dict[str, Any], tokenizer: Any, selection: Selection) -> dict[str, list[int]]:
    """Both sides rendered whole by the template, each cut where the reward is read."""
    chosen, rejected = sides(row)
    pad = tokenizer.pad_token_id
    return {
        "chosen_ids": reward_ids(conversation_tokens(tokenizer, chosen, selection)[0], pad),
        "rejected_ids": reward_ids(conversation_tokens(tokenizer, rejected, selection)[0], pad),
    }
