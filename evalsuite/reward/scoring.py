"""Rewards for chat-templated conversations, batched, with an append-only cache for resume.

Each distinct rendered text is scored once; its reward goes to the cache as soon as its
batch finishes, so a run killed part-way recomputes only what was never written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import atomic, chat_templates
from core.errors import UsageError, json_loads
from core.preference import reward_ids

Message = dict[str, str]


@dataclass
class RewardModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    path: Path

    def render(self, messages: list[Message]) -> str:
        return chat_templates.render(self.tokenizer, messages)  # time-limited; a failure is one line

    def encode(self, text: str) -> list[int]:
        """The tokens up to the one the reward is read at: the token before the first pad.

        That is where open-instruct reads a reward (model_utils.py `get_reward`) and where the RM
        stage trains it (core.preference.reward_ids); for a text without the pad token it is the
        last token (under `tulu`, the EOS).
        """
        # The template already writes any BOS/special tokens; adding them again would double them.
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return reward_ids(ids, self.model.config.pad_token_id)

    def fingerprint(self) -> str:
        """Names this model and precision for the cache, cheaply (no hashing of the weights)."""
        digest = hashlib.sha256(f"{self.dtype}\n".encode())
        digest.update((self.path / "config.json").read_bytes())
        for weights in sorted(self.path.glob("*.safetensors")):
            stat = weights.stat()
            digest.update(f"{weights.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def load_model(model_path: Path, *, progress: bool = True) -> RewardModel:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # bf16 on GPU as the reference RewardBench runner loads models; float32 on CPU.
    dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    bars = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"{model_path}: cannot load a reward model ({str(exc).splitlines()[0]})") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if model.config.num_labels != 1:
        labels = model.config.num_labels
        raise UsageError(f"{model_path}: a reward model has one output, this one has {labels}")
    if not tokenizer.chat_template:
        raise UsageError(f"{model_path}: the tokenizer has no chat template; pairs are rendered with it")
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return RewardModel(model.to(device).eval(), tokenizer, device, dtype, Path(model_path))


def text_key(token_ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(token_ids)).encode()).hexdigest()


class Cache:
    """Append-only JSONL of {key, reward}; a line torn by a kill is ignored on reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rewards: dict[str, float] = {}
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        # A torn last line from a kill would otherwise glue onto the first new record.
        self._torn = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                rec = json_loads(line)
                self.rewards[rec["key"]] = float(rec["reward"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue

    def append(self, rewards: dict[str, float]) -> None:
        self.rewards.update(rewards)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = atomic.open_in_place(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            if self._torn:
                handle.write("\n")
                self._torn = False
            handle.writelines(json.dumps({"key": k, "reward": v}) + "\n" for k, v in rewards.items())
            handle.flush()
            os.fsync(handle.fileno())


def _forward(rm: RewardModel, batch: list[list[int]]) -> list[float]:
    import torch

    pad = rm.model.config.pad_token_id
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad if pad is not None else 0, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):  # right padding: the reward is read at the last real token
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    with torch.inference_mode():
        logits = rm.model(input_ids=input_ids.to(rm.device), attention_mask=mask.to(rm.device)).logits
    rewards = [float(x) for x in logits[:, 0].float().cpu()]
    if not all(math.isfinite(r) for r in rewards):
        raise UsageError(
            "the reward model returned a non-finite reward (NaN or inf): its weights (or their dtype) are "
            "broken; check the model folder"
        )
    return rewards


def score_texts(
    rm: RewardModel,
    encoded: dict[str, list[int]],
    cache: Cache,
    *,
    batch_size: int,
    desc: str,
    progress: bool,
) -> dict[str, float]:
    """Rewards for every key of `encoded` (key -> token ids), computing only keys not cached."""
    from tqdm.auto import tqdm

    todo = sorted((k for k in encoded if k not in cache.rewards), key=lambda k: -len(encoded[k]))
    # encoded texts hold no pad token (RewardModel.encode cuts at the first); a model without one
    # cannot batch (transformers then reads the last position), so it scores one text at a time
    size = batch_size if rm.model.config.pad_token_id is not None else 1
    batches = [todo[i : i + size] for i in range(0, len(todo), size)]
    for keys in tqdm(batches, desc=desc, unit="batch", disable=not progress):
        rewards = _forward(rm, [encoded[k] for k in keys])
        cache.append(dict(zip(keys, rewards, strict=True)))
    return {k: cache.rewards[k] for k in encoded}
