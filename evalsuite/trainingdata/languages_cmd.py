"""`python -m evalsuite languages`: language presence in a training mixture (the paper's Tables 10–12).

See evalsuite/trainingdata/languages.py for the method and why each default is what it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import lock as lockfile
from core.errors import non_negative_int, positive_int, seed
from evalsuite.trainingdata import languages as lang

DEFAULT_OUTPUT = Path("results") / "languages"


def _cmd(args: argparse.Namespace) -> int:
    settings = lang.Settings(
        sample=args.sample,
        seed=args.seed,
        text=args.text,
        max_length=args.max_length,
        batch_size=args.batch_size,
        detectors=tuple(args.detector),
    )
    settings.check()  # before anything is downloaded or loaded
    lock = lockfile.load(args.lock) if args.lock else None
    source, table = lang.open_dataset(
        args.dataset, data_dir=args.data_dir, lock=lock, allow_unlocked=args.allow_unlocked
    )
    needs_classifier = "xlm-roberta" in settings.detectors or settings.max_length > 0
    classifier = (
        lang.classifier_folder(args.model_dir, lock, args.allow_unlocked) if needs_classifier else None
    )
    detectors, tokenizer = lang.build_detectors(settings, classifier, progress=not args.no_progress)
    result = lang.measure(
        source, table, settings, detectors, tokenizer, reported=lang.reported_shares(source.name)
    )
    output = args.output or DEFAULT_OUTPUT / f"{source.name}.json"
    lang.write(result, output)
    print(lang.summary(result))
    print(f"wrote {output}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "languages",
        help="language presence in a training mixture (Tables 10-12), with intervals",
        description=(
            "Classify the language of a seeded sample of a training mixture's rows with the paper's "
            "detector (papluca/xlm-roberta-base-language-detection, pinned in checkpoints.lock) and "
            "report each of its 20 languages' share with a 95% Wilson interval, the paper's value "
            "beside it; optionally a second detector (lingua) on the same texts, and their agreement."
        ),
    )
    p.add_argument(
        "--dataset",
        required=True,
        help=f"a lock name ({', '.join(lang.PAPER_TABLES)}) or a local parquet/JSON-lines file or folder "
        "with rows in the mixtures' schema (messages, or chosen/rejected)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="read the lock-named data set's files from DIR (a download of its hub repository) "
        "instead of the hub cache",
    )
    p.add_argument(
        "--sample",
        type=positive_int,
        default=lang.DEFAULT_SAMPLE,
        help=f"rows drawn at random without replacement (default {lang.DEFAULT_SAMPLE:,}: a 95%% interval "
        "of about ±0.7 points at 83%%, ±0.2 at 1%%; the whole set when it is smaller)",
    )
    p.add_argument("--seed", type=seed, default=lang.DEFAULT_SEED, help="seed of the sample (default: 0)")
    p.add_argument(
        "--text",
        choices=tuple(lang.TEXT_CHOICES),
        default=lang.DEFAULT_TEXT,
        help="what of a row is classified: "
        + "; ".join(f"{k}: {v}" for k, v in lang.TEXT_CHOICES.items())
        + f" (default {lang.DEFAULT_TEXT}: the user's language, the same field in every mixture)",
    )
    p.add_argument(
        "--max-length",
        type=non_negative_int,
        default=lang.DEFAULT_MAX_LENGTH,
        help=f"cut each text after this many classifier tokens, <s> and </s> included (default "
        f"{lang.DEFAULT_MAX_LENGTH}, the classifier's limit); every detector reads the cut text; "
        "0: whole texts (lingua alone)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=lang.DEFAULT_BATCH_SIZE,
        help=f"texts per classifier batch (default {lang.DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--detector",
        nargs="+",
        choices=lang.DETECTORS,
        default=["xlm-roberta"],
        help="detectors, the first one's shares reported first, the others' agreement with it "
        "(xlm-roberta: the paper's classifier; lingua: lingua-language-detector, offline, on the same "
        "20 languages); default: xlm-roberta",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="a local classifier folder (safetensors, 20 language labels) instead of the lock's "
        f"{lang.DETECTOR_LOCK_NAME} (offline: `python -m evalsuite.trainingdata.tiny_classifier DIR` "
        "builds a tiny random one with the real labels)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"results JSON (default: {DEFAULT_OUTPUT}/<dataset>.json)",
    )
    p.add_argument(
        "--allow-unlocked",
        action="store_true",
        help="allow a data set or classifier whose revision checkpoints.lock does not pin",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)
