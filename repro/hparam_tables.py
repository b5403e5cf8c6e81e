"""Paper Tables 2, 5 and 7 (hyperparameters), regenerated from the recipe files."""

from __future__ import annotations

import math

from repro import recipe

# (paper table, stage, recipes in the paper's column order, ratio scale as printed)
TABLES = (
    ("Table 2: SFT", ["sft-1130", "sft-1207"], 1e6),
    ("Table 5: DPO", ["dpo-1130", "dpo-1207"], 1e7),
    ("Table 7: reward model", ["rm-1130", "rm-1207"], 1e7),
)


def exponent(scale: float) -> int:
    return round(math.log10(scale))


def short(value: float) -> str:
    """Three decimals without trailing zeros, as the paper prints its ratios."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def rows(names: list[str], scale: float) -> list[list[object]]:
    recipes = [recipe.load(n) for n in names]
    return [
        ["learning rate", *(f"{r.hp('learning_rate'):.1e}" for r in recipes)],
        ["effective batch size", *(r.hp("effective_batch_size") for r in recipes)],
        [f"LR/BS x 1e{exponent(scale)}", *(short(r.lr_per_example * scale) for r in recipes)],
    ]


def markdown() -> str:
    from tabulate import tabulate

    parts = []
    for title, names, scale in TABLES:
        headers = ["", *(recipe.load(n).paper_name for n in names)]
        parts.append(
            f"### {title} (from repro/recipes)\n\n"
            + tabulate(rows(names, scale), headers, tablefmt="github", disable_numparse=True)
        )
    return "\n\n".join(parts) + "\n"
