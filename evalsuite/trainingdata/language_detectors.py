"""The language detectors `evalsuite languages` can run: the pinned XLM-RoBERTa classifier (the
paper's, on GPU or CPU) and lingua (offline, from its wheel), each returning one label per text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import UsageError
from core.resolve import Resolved

# papluca's labels and the paper's row names (Tables 10–12).
LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "hi": "Hindi",
    "it": "Italian",
    "ja": "Japanese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sw": "Swahili",
    "th": "Thai",
    "tr": "Turkish",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}


@dataclass
class Texts:
    """What every detector reads: the cut texts, and the classifier's token ids of them (when cut by it)."""

    texts: list[str]
    input_ids: list[list[int]] | None = None
    cut: list[bool] = field(default_factory=list)


class Detector(Protocol):
    name: str

    def classify(self, texts: Texts) -> list[str | None]: ...

    def record(self) -> dict[str, Any]: ...


def cut_texts(texts: list[str], tokenizer: Any, max_length: int) -> Texts:
    """What the classifier reads of each text, as its tokenizer truncates (the first max_length - 1
    tokens, <s> first, then </s>), and the text cut where the first token it does not read begins."""
    whole = tokenizer(texts, return_offsets_mapping=True, verbose=False)  # verbose: no over-length warning
    kept_texts, kept_ids, cut = [], [], []
    for text, ids, offsets in zip(texts, whole["input_ids"], whole["offset_mapping"], strict=True):
        if len(ids) <= max_length:
            kept_texts.append(text)
            kept_ids.append(list(ids))
            cut.append(False)
        else:
            kept_texts.append(text[: offsets[max_length - 1][0]])
            kept_ids.append([*ids[: max_length - 1], ids[-1]])  # XLM-R's single sequence ends with </s>
            cut.append(True)
    return Texts(kept_texts, kept_ids, cut)


def model_limit(config: Any) -> int:
    """Tokens an XLM-R-type model reads: its positions less the padding offset of its position ids."""
    return int(config.max_position_embeddings) - int(config.pad_token_id) - 1


class XLMRobertaDetector:
    """papluca/xlm-roberta-base-language-detection (or a folder like it): argmax of its 20 logits."""

    name = "xlm-roberta"

    def __init__(
        self, resolved: Resolved, *, batch_size: int, max_length: int | None = None, progress: bool = True
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.resolved, self.batch_size, self.progress = resolved, batch_size, progress
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        config = AutoConfig.from_pretrained(resolved.path, trust_remote_code=False)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        if sorted(self.labels) != sorted(LANGUAGES):
            raise UsageError(
                f"{resolved.path}: its labels {sorted(self.labels)} are not the 20 languages of "
                f"papluca/xlm-roberta-base-language-detection ({', '.join(sorted(LANGUAGES))})"
            )
        self.limit = model_limit(config)
        if max_length is not None and max_length > self.limit:  # refused before the weights load
            raise UsageError(f"--max-length {max_length}: the classifier reads at most {self.limit} tokens")
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=False)
        bars = hf_logging.is_progress_bar_enabled()
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                resolved.path, config=config, trust_remote_code=False, use_safetensors=True
            )
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.model.to(self.device).eval()

    def classify(self, texts: Texts) -> list[str | None]:
        import torch
        from tqdm import tqdm

        if texts.input_ids is None:
            raise ValueError("the classifier reads token ids: cut the texts with its tokenizer first")
        answers: list[str | None] = [None] * len(texts.texts)
        todo = [i for i, t in enumerate(texts.texts) if t.strip()]
        todo.sort(key=lambda i: -len(texts.input_ids[i]))  # similar lengths together: little padding
        batches = [todo[s : s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        with torch.inference_mode():
            for batch in tqdm(batches, desc="xlm-roberta", unit="batch", disable=not self.progress):
                padded = self.tokenizer.pad(
                    {"input_ids": [texts.input_ids[i] for i in batch]}, return_tensors="pt"
                )
                logits = self.model(**{k: v.to(self.device) for k, v in padded.items()}).logits
                for i, label in zip(batch, logits.argmax(-1).tolist(), strict=True):
                    answers[i] = self.labels[label]
        return answers

    def record(self) -> dict[str, Any]:
        import transformers

        return {
            "model": self.resolved.describe(),
            "repo_id": self.resolved.repo_id,
            "revision": self.resolved.revision,
            "label_set": self.labels,
            "device": self.device,
            "transformers": transformers.__version__,
        }


class LinguaDetector:
    """lingua-language-detector (its n-gram models ship in the PyPI wheel), restricted to the 20
    languages, as papluca's model card restricts its langid baseline (`set_languages`)."""

    name = "lingua"
    package = "lingua-language-detector"

    def __init__(self, *, progress: bool = True) -> None:
        try:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
        except ImportError:
            raise UsageError(
                f"--detector lingua needs {self.package}: pip install 'smoltulu-repro[data-tables]'"
            ) from None

        self.progress = progress
        languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in LANGUAGES]
        self.detector = LanguageDetectorBuilder.from_languages(*languages).build()

    def classify(self, texts: Texts, block: int = 1000) -> list[str | None]:
        from tqdm import tqdm

        answers: list[str | None] = [None] * len(texts.texts)
        todo = [i for i, t in enumerate(texts.texts) if t.strip()]
        for start in tqdm(range(0, len(todo), block), desc="lingua", unit="block", disable=not self.progress):
            part = todo[start : start + block]
            found = self.detector.detect_languages_in_parallel_of([texts.texts[i] for i in part])
            for i, language in zip(part, found, strict=True):
                answers[i] = language.iso_code_639_1.name.lower() if language is not None else None
        return answers

    def record(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"package": self.package, "version": version(self.package), "label_set": sorted(LANGUAGES)}
