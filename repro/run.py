"""`python -m repro NAME`: resolve a recipe's inputs, train its stage with TRL, write the run.

A run folder holds `checkpoints/` (Trainer checkpoints, for --resume), `final/` (the model
and tokenizer, written whole) and `manifest.json` (written last: a run without it is
unfinished). Profiles: `real` (the paper's models and data through checkpoints.lock) and
`smoke` (the embedded tiny model, the small in-repo data in the real schemas, a few steps;
nothing else about the recipe changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from repro import atomic, chat_templates, manifest, stages, tiny, trl_args
from repro import lock as lockfile
from repro.errors import UsageError
from repro.recipe import BatchPlan, Recipe
from repro.resolve import Resolved, finished_run, outputs_root, resolve

PROFILES = ("real", "smoke")
SMOKE_MAX_STEPS = 3
SMOKE_DATA = {"sft": "sft.jsonl", "dpo": "preference.jsonl", "rm": "preference.jsonl"}
REAL_SAVE_STEPS = 500


def profile_root(profile: str) -> Path:
    return outputs_root() / "smoke" if profile == "smoke" else outputs_root()


@dataclass(frozen=True)
class Request:
    recipe: Recipe
    profile: str
    plan: BatchPlan
    out: Path
    lock: lockfile.Lock
    init_from: Path | None = None
    resume: bool = False
    allow_unlocked: bool = False


def _smoke_base_model(root: Path) -> Resolved:
    """The embedded tiny model, built once per outputs folder (deterministic, seconds)."""
    path = root / "_tiny-model"
    if not (path / "config.json").is_file():
        with atomic.output_dir(path, overwrite=True) as tmp:
            tiny.build_tiny_model(tmp)
    return Resolved(path=path.resolve(), source="local", name="embedded tiny model")


def model_input(req: Request) -> Resolved:
    """The checkpoint the stage starts from: --from, a finished local run, or the lock."""
    if req.init_from is not None:
        path = finished_run(req.init_from) or req.init_from
        if not (path / "config.json").is_file():
            raise UsageError(f"--from {req.init_from}: no model there (no config.json)")
        return Resolved(path=path.resolve(), source="local")
    root = profile_root(req.profile)
    name = str(req.recipe.inputs["model"].value)
    if req.profile == "smoke" and req.recipe.stage == "sft":
        return _smoke_base_model(root)
    produced = root / name
    if final := finished_run(produced):  # your own run of the parent wins over a published copy
        return Resolved(path=final.resolve(), source="repro-output", name=name)
    entry = req.lock.get(name)
    if req.profile == "smoke" or entry.role == "reproduce-only":
        flag = " --profile smoke" if req.profile == "smoke" else ""
        raise UsageError(
            f"{req.recipe.name} starts from {name}, which is not at {produced}: run "
            f"`python -m repro {name}{flag}` first, or pass --from DIR"
        )
    return resolve(name, lock=req.lock, allow_unlocked=req.allow_unlocked)


def _read_dataset(path: Path) -> Any:
    from datasets import load_dataset

    if path.is_file():
        return load_dataset("json", data_files=str(path), split="train")
    return load_dataset(str(path), split="train")


def dataset_input(req: Request) -> tuple[Resolved, Any]:
    if req.profile == "smoke":
        path = Path(
            str(resources.files("repro.data").joinpath("smoke").joinpath(SMOKE_DATA[req.recipe.stage]))
        )
        resolved = Resolved(path=path, source="local", name=f"in-repo smoke data ({path.name})")
    else:
        name = str(req.recipe.inputs["dataset"].value)
        resolved = resolve(name, lock=req.lock, allow_unlocked=req.allow_unlocked, repo_type="dataset")
    dataset = _read_dataset(resolved.path)
    missing = [c for c in stages.REQUIRED_COLUMNS[req.recipe.stage] if c not in dataset.column_names]
    if missing:
        raise UsageError(f"dataset {resolved.path} lacks columns {missing} (has {dataset.column_names})")
    if len(dataset) == 0:
        raise UsageError(f"dataset {resolved.path} is empty")
    return resolved, dataset


def trainer_config(req: Request) -> Any:
    import torch

    kwargs = trl_args.trl_kwargs(req.recipe, req.plan, str(req.out / "checkpoints"))
    if req.profile == "smoke":
        kwargs.update(max_steps=SMOKE_MAX_STEPS, save_steps=1)
    else:
        kwargs.update(save_steps=REAL_SAVE_STEPS, save_total_limit=3)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = True
    return trl_args.config_class(req.recipe.stage)(**kwargs)


def check_output(req: Request) -> None:
    out = req.out
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if finished_run(out) and not req.resume:
        raise UsageError(
            f"{out} already holds a finished {req.recipe.name} run; choose another --out or delete it"
        )
    if any(out.iterdir()) and not req.resume:
        raise UsageError(
            f"{out} holds an unfinished run: pass --resume to continue it, or choose another --out"
        )


def train(req: Request, argv: list[str]) -> Path:
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    check_output(req)
    model = model_input(req)  # inputs first: a missing parent must leave no output folder behind
    data_source, dataset = dataset_input(req)
    inputs = {"model": model, "dataset": data_source}
    if req.recipe.stage == "sft" and req.profile == "real":
        inputs["chat_template"] = resolve(
            str(req.recipe.inputs["chat_template"].value), lock=req.lock, allow_unlocked=req.allow_unlocked
        )
    tokenizer = AutoTokenizer.from_pretrained(inputs.get("chat_template", model).path)
    # One template for masks and preference rows, the same rule in every stage (refused before
    # anything is written when no training template renders like the tokenizer's own).
    value, source = chat_templates.requested(req.recipe)
    template = chat_templates.select(tokenizer, value, source, chat_templates.dataset_conversations(dataset))
    print(f"chat template: {template.describe()}")
    try:
        req.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write --out {req.out}: {exc.strerror}") from None
    dropped: dict[str, int] = {}

    config = trainer_config(req)
    trainer = stages.module(req.recipe.stage).build(model.path, tokenizer, dataset, config, template=template)
    if req.recipe.stage == "dpo":  # open-instruct drops pairs left with no label after truncation
        dropped["no_label_after_truncation"] = len(dataset) - len(trainer.train_dataset)
    if req.recipe.stage == "rm":  # TRL filters pairs over max_length; count them
        dropped["over_max_length"] = len(dataset) - len(trainer.train_dataset)
        print(f"reward model: {dropped['over_max_length']} pairs over {config.max_length} tokens dropped")

    checkpoints = req.out / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if req.resume and checkpoints.is_dir() else None
    if req.resume:
        print(f"resuming from {last}" if last else "no checkpoint to resume from: starting fresh")
    result = trainer.train(resume_from_checkpoint=last)

    if trainer.is_world_process_zero():
        with atomic.output_dir(req.out / "final", overwrite=True) as tmp:
            trainer.save_model(str(tmp))  # gathers sharded weights under DeepSpeed/FSDP too
            tokenizer.save_pretrained(str(tmp))
            # a pickle of the TrainingArguments; the manifest records them, final/ stays pickle-free
            (tmp / "training_args.bin").unlink(missing_ok=True)
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        metrics = {
            "train_loss": result.training_loss,
            "final_step_loss": losses[-1] if losses else None,
            "global_step": trainer.state.global_step,
            "step_losses": losses,
        }
        record = manifest.build(
            req.recipe, profile=req.profile, plan=req.plan, inputs=inputs, dataset=dataset,
            dropped=dropped, metrics=metrics, argv=argv,
        )  # fmt: skip
        record["chat_template"] = template.record()
        manifest.write(req.out, record)
        print(json.dumps({"run": str(req.out), "final_step_loss": metrics["final_step_loss"]}))
    return req.out
