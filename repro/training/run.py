"""`python -m repro NAME`: resolve a recipe's inputs, train its stage with TRL, write the run.

A run folder holds `run.json` (what the run was started with: --resume must match it),
`checkpoints/` (Trainer checkpoints, each marked complete once whole, for --resume), `final/`
(the model and tokenizer, written whole) and `manifest.json` (written last: a run without it is
unfinished). One process writes a run folder at a time (`.lock`, core.run_lock).
Profiles: `real` (the paper's models and data through checkpoints.lock) and `smoke` (the
embedded tiny model, the small in-repo data in the real schemas, a few steps; nothing else
about the recipe changes).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core import atomic, chat_templates, manifest, model_folder, run_lock, tiny
from core import lock as lockfile
from core.errors import UsageError, cannot_write, full_disk_named, no_space, one_line, out_of_space
from core.recipe import BatchPlan, Recipe
from core.resolve import Resolved, finished_run, outputs_root, resolve
from repro import stages
from repro.training import checkpoints, trl_args

PROFILES = ("real", "smoke")
SMOKE_MAX_STEPS = 3
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
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # stderr stays free for a one-line error of a later check
        try:
            with full_disk_named(path), atomic.output_dir(path, overwrite=True) as tmp:
                tiny.build_tiny_model(tmp)
        except OSError as exc:
            raise UsageError(cannot_write(path, exc, "the embedded tiny model to ")) from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    return Resolved(path=path.resolve(), source="local", name="embedded tiny model")


def model_input(req: Request) -> Resolved:
    """The checkpoint the stage starts from: --from, a finished local run, or the lock."""
    if req.init_from is not None:
        if not req.init_from.is_dir():
            raise UsageError(f"--from {req.init_from}: no such directory")
        path = finished_run(req.init_from) or req.init_from
        try:
            model_folder.check(path)
        except UsageError as exc:
            raise UsageError(f"--from {exc}") from None
        return Resolved(path=path.resolve(), source="local")
    root = profile_root(req.profile)
    name = str(req.recipe.inputs["model"].value)
    if req.profile == "smoke" and stages.hook(req.recipe.stage, "SMOKE_FROM_TINY_MODEL"):
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

    try:
        if path.is_file():
            return load_dataset("json", data_files=str(path), split="train")
        return load_dataset(str(path), split="train")
    except Exception as exc:  # pyarrow's ArrowInvalid for a torn or too deeply nested row, and the like
        reason = one_line(str(exc))[:200] or "empty, or no rows"
        raise UsageError(
            f"dataset {path} cannot be read ({type(exc).__name__}: {reason}); fix or remove the damaged rows"
        ) from None


def dataset_input(req: Request) -> tuple[Resolved, Any]:
    stage = req.recipe.stage
    if req.profile == "smoke":
        path = Path(
            str(resources.files("repro.data").joinpath("smoke").joinpath(stages.module(stage).SMOKE_ROWS))
        )
        resolved = Resolved(path=path, source="local", name=f"in-repo smoke data ({path.name})")
    else:
        name = str(req.recipe.inputs["dataset"].value)
        resolved = resolve(name, lock=req.lock, allow_unlocked=req.allow_unlocked, repo_type="dataset")
    dataset = _read_dataset(resolved.path)
    missing = [c for c in stages.module(stage).DATASET_COLUMNS if c not in dataset.column_names]
    if missing:
        raise UsageError(f"dataset {resolved.path} lacks columns {missing} (has {dataset.column_names})")
    if len(dataset) == 0:
        raise UsageError(f"dataset {resolved.path} is empty")
    stages.hook(stage, "check_rows")(dataset, str(resolved.path), req.recipe)
    return resolved, dataset


def _show(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def trainer_config(req: Request) -> tuple[Any, list[warnings.WarningMessage]]:
    """The stage's TRL config, and the warnings building it raised (shown once the run goes ahead)."""
    import torch

    kwargs = trl_args.trl_kwargs(req.recipe, req.plan, str(req.out / "checkpoints"))
    if req.profile == "smoke":
        kwargs.update(max_steps=SMOKE_MAX_STEPS, save_steps=1)
    else:
        kwargs.update(save_steps=REAL_SAVE_STEPS, save_total_limit=3)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = True
    kwargs.update(stages.hook(req.recipe.stage, "config_overrides")(req.recipe, req.profile))
    with warnings.catch_warnings(record=True) as caught:  # shown only when the settings are accepted
        warnings.simplefilter("always")
        try:
            config = trl_args.config_class(req.recipe.stage)(**kwargs)
        except (ValueError, TypeError) as exc:  # TrainingArguments' own checks (scheduler, optimizer...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UsageError(f"{req.recipe.name}: TRL refuses these settings: {first}") from None
    return config, caught


def _entries(out: Path) -> list[Path]:
    """What a run folder holds, the lock file aside (it stays after every run)."""
    return [p for p in out.iterdir() if p.name != run_lock.LOCK_NAME]


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(req: Request) -> None:
    out = req.out
    if not out.exists():
        base = _nearest_existing(out)
        if not base.is_dir():
            raise UsageError(f"cannot write --out {out}: {base} is a file, not a folder")
        if not os.access(base, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write --out {out}: {base} is not writable")
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if finished_run(out) and not req.resume:
        raise UsageError(
            f"{out} already holds a finished {req.recipe.name} run; choose another --out or delete it"
        )
    if _entries(out) and not req.resume:
        raise UsageError(
            f"{out} holds an unfinished run: pass --resume to continue it, or choose another --out"
        )


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p, returning the folders this call created (outermost first) for clean-up on failure."""
    missing = []
    probe = path.absolute()
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except FileExistsError:
        pass  # another process made it meanwhile; the lock decides who writes there
    except OSError as exc:
        _remove_created(created)
        raise UsageError(cannot_write(path, exc, "--out ")) from None
    return created


def _remove_created(created: list[Path]) -> None:
    if created:
        shutil.rmtree(created[0], ignore_errors=True)


LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # torchrun / accelerate set all


def _is_main_process() -> bool:
    """Rank 0 of a multi-process launch, or any single-process run.

    A launch counts as distributed only when the launcher's whole environment says so: WORLD_SIZE
    above 1 and every one of LAUNCHER_VARIABLES. One stray variable (RANK=1 left in a shell) must not
    switch off the output checks, the lock and the run.json comparison that rank 0 performs.
    """
    env = os.environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        return True
    launched = world > 1 and all(env.get(k) for k in LAUNCHER_VARIABLES)
    return not launched or rank == 0


def _started(req: Request, inputs: dict[str, Resolved], argv: list[str]) -> dict[str, Any]:
    """run.json: compared with this command on --resume (refused when they differ), else written."""
    recorded = manifest.read_started(req.out)
    if recorded is None:
        current = manifest.started_record(
            req.recipe, profile=req.profile, plan=req.plan, inputs=inputs, argv=argv
        )
        if req.resume and checkpoints.scan(req.out / "checkpoints").newest is not None:
            raise UsageError(
                f"{req.out} has checkpoints but no {manifest.STARTED} recording what they were trained "
                "with, so --resume cannot check this command against them; train into another --out"
            )
        manifest.write_started(req.out, current)
        return current
    _refuse_other_settings(req, recorded, inputs, argv)
    return recorded


def _refuse_other_settings(
    req: Request, recorded: dict[str, Any] | None, inputs: dict[str, Resolved], argv: list[str]
) -> None:
    """UsageError naming every difference between this command and the run's run.json.

    With `inputs` empty only the recipe, its values and the batch split are compared (before
    anything is loaded); with the resolved inputs, everything."""
    if recorded is None:
        return
    current = manifest.started_record(
        req.recipe, profile=req.profile, plan=req.plan, inputs=inputs, argv=argv
    )
    differ = manifest.differences(recorded, current, compare_inputs=bool(inputs))
    if differ:
        command = " ".join(recorded.get("command", [])) or "its original command"
        raise UsageError(
            f"--resume: {req.out} was started with other settings, so its checkpoints and manifest "
            f"would misstate this run: {'; '.join(differ)}. Resume with `{command} --resume`, or train "
            "into another --out"
        )


def train(req: Request, argv: list[str]) -> Path:
    """Train `req` into req.out: one process writes a run folder at a time (core.run_lock)."""
    req = stages.hook(req.recipe.stage, "adjust_request")(req)
    main = _is_main_process()
    if main:
        run_lock.refuse_if_held(req.out)  # say so now, not after minutes of loading
        check_output(req)
        if req.resume:  # the recipe, numbers and batch split now; the resolved inputs once loaded
            _refuse_other_settings(req, manifest.read_started(req.out), {}, argv)
    config, config_warnings = trainer_config(req)  # TRL's own refusals, before any loading or writing
    model = model_input(req)  # inputs first: a missing parent must leave no output folder behind
    data_source, dataset = dataset_input(req)
    inputs = {"model": model, "dataset": data_source}
    inputs.update(stages.hook(req.recipe.stage, "extra_inputs")(req))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs.get("chat_template", model).path)
    # One template for masks and preference rows, the same rule in every stage (refused before
    # anything is written when no training template renders like the tokenizer's own).
    value, source = chat_templates.requested(req.recipe)
    template = chat_templates.select(tokenizer, value, source, chat_templates.dataset_conversations(dataset))
    print(f"chat template: {template.describe()}")
    if not main:
        _show(config_warnings)
        return _train(req, argv, inputs, dataset, tokenizer, template, config, None)

    created = _make_dirs(req.out)
    try:
        held = run_lock.acquire(req.out, " ".join(argv))
    except run_lock.Busy:  # a run that started at the same moment holds it (and may have made it)
        raise
    except BaseException:
        _remove_created(created)
        raise
    fresh = False
    try:
        check_output(req)  # again, under the lock: another run may have written here meanwhile
        atomic.remove_stale(req.out / "final")  # a killed run's half-written model
        fresh = not _entries(req.out)
        started = _started(req, inputs, argv)
        _show(config_warnings)  # every check passed: the run goes ahead
        return _train(req, argv, inputs, dataset, tokenizer, template, config, started)
    except BaseException as exc:
        # a run that fails before its first complete checkpoint leaves the folder as it found it
        resumable = checkpoints.scan(req.out / "checkpoints").newest is not None
        # a full disk (torch.save says only "unexpected pos"), judged before the clean-up frees space
        full = isinstance(exc, Exception) and not isinstance(exc, UsageError) and out_of_space(exc, req.out)
        if fresh and not resumable:
            if created:
                _remove_created(created)
            else:
                for entry in _entries(req.out):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
                (req.out / run_lock.LOCK_NAME).unlink(missing_ok=True)  # safe: acquire re-checks the inode
        if full:
            then = (
                "free some, then rerun with --resume (it continues from the newest complete checkpoint)"
                if resumable
                else "free some (a checkpoint takes about three times the model's size), then rerun"
            )
            raise UsageError(no_space(req.out, then)) from None
        raise
    finally:
        held.release()


def _train(
    req: Request,
    argv: list[str],
    inputs: dict[str, Resolved],
    dataset: Any,
    tokenizer: Any,
    template: Any,
    config: Any,
    started: dict[str, Any] | None,
) -> Path:
    stage = req.recipe.stage
    trainer = stages.module(stage).build(inputs["model"].path, tokenizer, dataset, config, template=template)
    trainer.add_callback(checkpoints.callback())  # marks each checkpoint complete once it is written
    dropped: dict[str, int] = stages.hook(stage, "dropped")(trainer, dataset, config)

    found = checkpoints.scan(req.out / "checkpoints") if req.resume else checkpoints.Found(None, {})
    if started is not None:  # the main process: remove what can never be loaded, record the resume
        checkpoints.discard(found)
        if req.resume:
            started = manifest.record_resume(started, argv, found.newest)
            manifest.write_started(req.out, started)
    last = str(found.newest) if found.newest else None
    if req.resume:
        print(f"resuming from {last}" if last else "no complete checkpoint to resume from: starting fresh")
    result = trainer.train(resume_from_checkpoint=last)

    if trainer.is_world_process_zero():
        with atomic.output_dir(req.out / "final", overwrite=True) as tmp:
            trainer.save_model(str(tmp))  # gathers sharded weights under DeepSpeed/FSDP too
            tokenizer.save_pretrained(str(tmp))
            # a pickle of the TrainingArguments; the manifest records them, final/ stays pickle-free
            (tmp / "training_args.bin").unlink(missing_ok=True)
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        train_loss = result.training_loss  # of the steps this process ran; a resumed run logged the rest
        if found.newest is not None and losses:  # logging_steps=1: the mean of every step's loss
            train_loss = sum(losses) / len(losses)
        metrics = {
            "train_loss": train_loss,
            "final_step_loss": losses[-1] if losses else None,
            "global_step": trainer.state.global_step,
            "step_losses": losses,
            "first_steps": manifest.first_steps(trainer.state.log_history),  # early-run signals (claim 14)
        }
        record = manifest.build(
            req.recipe, profile=req.profile, plan=req.plan, inputs=inputs, dataset=dataset,
            dropped=dropped, metrics=metrics, argv=argv, started=started,
        )  # fmt: skip
        record["chat_template"] = template.record()
        record.update(stages.hook(stage, "manifest_extra")(trainer, config))
        manifest.write(req.out, record)
        print(json.dumps({"run": str(req.out), "final_step_loss": metrics["final_step_loss"]}))
    return req.out
