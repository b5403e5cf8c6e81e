"""A tiny random stand-in for the paper's language detector, built offline.

`papluca/xlm-roberta-base-language-detection` (the XLM-RoBERTa classifier of Tables 10–12) cannot
be downloaded here, so tests and the offline demo of `python -m evalsuite languages` run on an
`XLMRobertaForSequenceClassification` of the same architecture family, shrunk to about 50 thousand
parameters, with the real model's label set in the real model's id order, and a SentencePiece-style
Unigram tokenizer (Metaspace, `<s> … </s>`, XLM-R's special tokens at XLM-R's ids) built with
`tokenizers` from the hand-written sentences below. Its answers are random; what it checks is the
pipeline: loading with safetensors and no remote code, token truncation, batching, the label check.
The same seed gives byte-identical files.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from pathlib import Path

# papluca/xlm-roberta-base-language-detection config.json id2label (hub, main), in its id order.
ID2LABEL = (
    "ja", "nl", "ar", "pl", "de", "it", "pt", "tr", "es", "hi",
    "el", "ur", "bg", "en", "fr", "zh", "ru", "th", "sw", "vi",
)  # fmt: skip
# XLM-R's special tokens and their ids (xlm-roberta-base tokenizer); <mask> is the last id.
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK = "<mask>"
MAX_POSITIONS = 514  # xlm-roberta-base: 512 tokens + the padding offset of its position ids
MODEL_MAX_LENGTH = 512
METASPACE = "\u2581"  # SentencePiece's word-start mark
# One sentence per label, written for this project (CC0), so every script has pieces in the vocabulary.
CORPUS = (
    "The library opens at nine and closes late on Fridays.",
    "De bibliotheek gaat om negen uur open en sluit laat op vrijdag.",
    "تفتح المكتبة في الساعة التاسعة وتغلق متأخرة يوم الجمعة.",
    "Biblioteka jest otwarta od dziewiątej i zamykana późno w piątki.",
    "Die Bibliothek öffnet um neun Uhr und schließt freitags spät.",
    "La biblioteca apre alle nove e chiude tardi il venerdì.",
    "A biblioteca abre às nove e fecha tarde às sextas-feiras.",
    "Kütüphane dokuzda açılır ve cuma günleri geç kapanır.",
    "La biblioteca abre a las nueve y cierra tarde los viernes.",
    "पुस्तकालय नौ बजे खुलता है और शुक्रवार को देर से बंद होता है।",
    "Η βιβλιοθήκη ανοίγει στις εννέα και κλείνει αργά τις Παρασκευές.",
    "لائبریری نو بجے کھلتی ہے اور جمعہ کو دیر سے بند ہوتی ہے۔",
    "Библиотеката отваря в девет и затваря късно в петък.",
    "La bibliothèque ouvre à neuf heures et ferme tard le vendredi.",
    "图书馆九点开门，星期五很晚才关门。",
    "図書館は九時に開き、金曜日は遅くまで開いています。",
    "Библиотека открывается в девять и закрывается поздно по пятницам.",
    "ห้องสมุดเปิดเก้าโมงและปิดดึกในวันศุกร์",
    "Maktaba hufunguliwa saa tatu na hufungwa kwa kuchelewa siku ya Ijumaa.",
    "Thư viện mở cửa lúc chín giờ và đóng cửa muộn vào thứ Sáu.",
)


def vocabulary() -> list[tuple[str, float]]:
    """XLM-R's specials, then every character and every space-led word of CORPUS, log-frequency scored.

    Counted here rather than with tokenizers' UnigramTrainer, whose output changes between runs
    (tied pieces come out in hash order), so that the same corpus always gives the same bytes.
    """
    counts: Counter[str] = Counter()
    for sentence in CORPUS:
        text = unicodedata.normalize("NFKC", sentence)
        counts.update(text.replace(" ", ""))
        counts.update(METASPACE + word for word in text.split(" "))
    counts[METASPACE] = len(CORPUS)  # the piece a space-led word falls back to
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(t, 0.0) for t in SPECIALS] + [(p, round(math.log(n / total), 6)) for p, n in ranked]


def build_tokenizer():
    """A Unigram tokenizer shaped like XLM-R's (NFKC, Metaspace pieces, `<s> A </s>`), built offline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizer

    backend = Tokenizer(models.Unigram(vocabulary(), unk_id=SPECIALS.index("<unk>"), byte_fallback=False))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.add_special_tokens([MASK])
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return XLMRobertaTokenizer(tokenizer_object=backend, model_max_length=MODEL_MAX_LENGTH)


def build_tiny_classifier(out_dir: Path, *, seed: int = 0) -> Path:
    """Write the tiny classifier and its tokenizer to `out_dir` (safetensors, no remote code)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = build_tokenizer()
    for token, expected in zip(SPECIALS, range(len(SPECIALS)), strict=True):
        if tokenizer.convert_tokens_to_ids(token) != expected:  # XLM-R's ids, relied on by the config
            raise RuntimeError(f"tiny tokenizer put {token} at {tokenizer.convert_tokens_to_ids(token)}")
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        id2label=dict(enumerate(ID2LABEL)),
        label2id={label: i for i, label in enumerate(ID2LABEL)},
        problem_type="single_label_classification",
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config).eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":  # python -m evalsuite.trainingdata.tiny_classifier DIR
    import argparse

    parser = argparse.ArgumentParser(description="build the tiny random language classifier into DIR")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parsed = parser.parse_args()
    print(build_tiny_classifier(parsed.out, seed=parsed.seed))
