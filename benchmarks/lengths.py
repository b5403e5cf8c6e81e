"""Conversation lengths for the training benchmarks, and `python -m benchmarks.lengths` to measure them.

Offline, lengths are drawn from the stated assumption in benchmarks/data/sft_lengths.yaml.
With network, `python -m benchmarks.lengths [--sample 20000]` tokenizes a seeded sample of the
locked Tulu 3 SFT mixture with the locked SmolTulu tokenizer (chat template applied) and writes
the lengths to benchmarks/data/sft_lengths.measured.json; from then on the benchmarks draw from
those measured lengths instead, and record which source they used.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data"
ASSUMED = DATA / "sft_lengths.yaml"
MEASURED = DATA / "sft_lengths.measured.json"


def distribution() -> dict[str, Any]:
    """The measured lengths when present, else the stated log-normal assumption."""
    if MEASURED.is_file():
        return json.loads(MEASURED.read_text())
    spec = yaml.safe_load(ASSUMED.read_text())
    return {
        "source": f"assumption ({ASSUMED.name})",
        "mean_tokens": spec["mean_tokens"]["value"],
        "sigma": spec["sigma"]["value"],
        "prompt_fraction": spec["prompt_fraction"]["value"],
    }


def sample(n: int, cap: int, seed: int, dist: dict[str, Any] | None = None) -> list[int]:
    """`n` conversation lengths in tokens, at least 16 and at most `cap` (the max_length)."""
    dist = dist or distribution()
    rng = random.Random(seed)
    if "lengths" in dist:
        drawn = [rng.choice(dist["lengths"]) for _ in range(n)]
    else:
        sigma = dist["sigma"]
        mu = math.log(dist["mean_tokens"]) - sigma**2 / 2  # so that the mean is mean_tokens
        drawn = [round(rng.lognormvariate(mu, sigma)) for _ in range(n)]
    return [min(max(length, 16), cap) for length in drawn]


def summary(lengths: list[int]) -> dict[str, float]:
    ordered = sorted(lengths)

    def q(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "n": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": q(0.5),
        "p90": q(0.9),
        "max": ordered[-1],
    }


def measure(sample_size: int, seed: int) -> dict[str, Any]:
    """Lengths of a seeded sample of the locked SFT mixture under the locked tokenizer (network)."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from core import recipe
    from core.resolve import resolve

    sft = recipe.load("sft-1130")
    data_name, tok_name = str(sft.inputs["dataset"].value), str(sft.inputs["chat_template"].value)
    data = resolve(data_name, repo_type="dataset")
    tokenizer = AutoTokenizer.from_pretrained(resolve(tok_name).path)
    rows = load_dataset(str(data.path), split="train").shuffle(seed=seed)
    rows = rows.select(range(min(sample_size, len(rows))))
    lengths, prompt_tokens = [], 0
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        users = "".join(m["content"] for m in row["messages"] if m["role"] != "assistant")
        prompt_tokens += len(tokenizer(users, add_special_tokens=False)["input_ids"])
    return {
        "source": f"measured: {len(lengths)} rows of {data.describe()} (seed {seed}), tokenizer {tok_name}",
        "lengths": lengths,
        "prompt_fraction": prompt_tokens / max(1, sum(lengths)),
        "summary": summary(lengths),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lengths", description=__doc__)
    parser.add_argument("--sample", type=int, default=20_000, help="rows to tokenize (default: 20000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from core.atomic import write_text
    from core.errors import UsageError

    try:
        record = measure(args.sample, args.seed)
    except UsageError as exc:  # no network and no cached copy: say so in one line, exit 2
        print(f"error: {exc} (measuring needs the hub or a copy in the HF cache)", file=sys.stderr)
        return 2
    write_text(MEASURED, json.dumps(record) + "\n")
    print(f"{record['source']}: {record['summary']}\nwrote {MEASURED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
