"""`python -m repro NAME --dry-run`: the full resolved configuration of a run, offline."""

from __future__ import annotations

from core import lock as lockfile
from core.recipe import BatchPlan, Recipe
from core.resolve import describe_pin
from repro import stages
from repro.training import trl_args


def render(recipe: Recipe, plan: BatchPlan | None, lock: lockfile.Lock, output_dir: str) -> str:
    """Inputs with their pins, every hyperparameter with its source, batch split, TRL args.

    `plan` is None for a grid recipe, whose points each get their own split.
    """
    from tabulate import tabulate

    lines = [f"recipe {recipe.name} ({recipe.paper_name}), stage {recipe.stage}", ""]
    inputs = [[k, s.value, describe_pin(str(s.value), lock), s.source] for k, s in recipe.inputs.items()]
    lines += ["inputs:", tabulate(inputs, headers=["input", "lock name", "resolves to", "source"]), ""]
    hyper = [[k, s.value, s.source] for k, s in sorted(recipe.hyperparameters.items())]
    lines += ["hyperparameters:", tabulate(hyper, headers=["key", "value", "source"]), ""]
    if recipe.not_applicable:
        gone = [[k, s.value, s.source] for k, s in recipe.not_applicable.items()]
        lines += [
            "values of the source method the TRL trainer cannot take (not used):",
            tabulate(gone, headers=["key", "value", "source and why"]),
            "",
        ]
    if recipe.grid:
        grid = [[k, s.value, s.source] for k, s in recipe.grid.items()]
        lines += ["grid:", tabulate(grid, headers=["key", "values", "source"]), ""]
    if plan is None:
        return "\n".join([*lines, f"output: {output_dir}/<point>"])
    lines.append(f"LR / effective batch = {recipe.lr_per_example:.4g}")
    lines += [
        f"effective batch: {plan.describe()} (world size {plan.world_size} detected)",
        f"output: {output_dir}",
        "",
        f"TRL {trl_args.config_class(recipe.stage).__name__} arguments:",
    ]
    for key, value in sorted(trl_args.trl_kwargs(recipe, plan, output_dir).items()):
        lines.append(f"  {key} = {value!r}")
    translated = [(k, s) for k, s in sorted(recipe.hyperparameters.items()) if k in trl_args.TRANSLATED]
    if translated:
        lines += ["", "recipe keys TRL takes differently:"]
        lines += [f"  {k} = {s.value!r} -> {trl_args.TRANSLATED[k]}" for k, s in translated]
    if "loss_reduction" in recipe.hyperparameters:
        from repro.stages.sft_loss import REDUCTIONS

        value = recipe.hp("loss_reduction")
        meaning = REDUCTIONS.get(value, "?")
        lines += ["", f"SFT loss reduction (repro/stages/sft_loss.py): {value} = {meaning}"]
    lines += stages.hook(recipe.stage, "dry_run_lines")(recipe)
    from core import chat_templates

    lines += ["", chat_templates.describe(recipe)]
    if recipe.overrides:
        lines += ["", "overrides: " + ", ".join(recipe.overrides)]
    return "\n".join(lines)
