"""`python -m evalsuite sharpness`: how sharp a checkpoint's SFT loss is, into a sharpness file.

`measure_model` measures one model (a `python -m repro` run folder, a model folder or a lock name)
and writes `<output root>/sharpness/<label>.json` (evalsuite/sharpness/record.py);
`measure_run(run_dir, results_root)` is what the 135M grid calls per point. For a run folder the
data, chat template, max_length and grid point come from its manifest.json; for any other model
`--data` names the SFT rows (a JSON-lines or parquet file or a dataset folder with `messages`).
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import lock as lockfile
from core.errors import UsageError, json_loads, non_negative_int, positive_float, positive_int, seed
from evalsuite import results as results_io
from evalsuite.sharpness import record as record_io

DEFAULT_OUTPUT = results_io.DEFAULT_ROOT  # the file goes to OUTPUT/sharpness/<label>.json


@dataclass(frozen=True)
class Options:
    rows: int = 16
    seed: int = 0
    max_iterations: int = 100
    tolerance: float = 1e-3
    epsilon: float = 1e-3
    ascent_steps: int = 10
    micro_batch: int = 4
    max_length: int | None = None  # None: the run's recipe value, else recipes/_sft.yaml's
    device: str | None = None  # None: cuda when available
    progress: bool = True


def _manifest(model_dir: Path, source: str) -> dict[str, Any] | None:
    if source != "repro-output":
        return None
    path = model_dir.parent / "manifest.json"
    try:
        raw = json_loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable run manifest ({exc.__class__.__name__})") from None
    return raw if isinstance(raw, dict) else None


def _hp(manifest: dict[str, Any], key: str) -> Any:
    table = manifest.get("hyperparameters")
    item = table.get(key) if isinstance(table, dict) else None  # a hand-edited manifest: no value
    return item.get("value") if isinstance(item, dict) else None


def run_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run's identity in the keys evaluation results use (repro.grid.ablation's evaluate_point)."""
    from core import recipe as recipes

    out: dict[str, Any] = {
        "recipe": manifest.get("recipe"),
        "stage": manifest.get("stage"),
        "profile": manifest.get("profile", "real"),
        "training_seed": manifest.get("seed"),
    }
    name = manifest.get("recipe")
    if name in recipes.names() and recipes.load(name).grid:  # a grid recipe: this run is one point
        out.update(
            ablation=name,
            learning_rate=_hp(manifest, "learning_rate"),
            batch_size=_hp(manifest, "effective_batch_size"),
        )
    return out


def _data_path(manifest: dict[str, Any] | None, data: Path | None, model_dir: Path) -> Path:
    if data is not None:
        if not data.exists():
            raise UsageError(f"--data {data}: no such file or folder")
        return data
    recorded = ((manifest or {}).get("inputs") or {}).get("dataset") or {}
    path = recorded.get("path")
    if path and Path(path).exists():
        return Path(path)
    if manifest is None:
        raise UsageError(f"{model_dir} is not a `python -m repro` run: pass --data FILE with its SFT rows")
    raise UsageError(f"the run's training data {path} is not on this machine: pass --data FILE with it")


def _read_rows(path: Path) -> Any:
    from datasets import load_dataset

    if path.is_dir():
        return load_dataset(str(path), split="train")
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return load_dataset(kind, data_files=str(path), split="train")


def _sample(dataset: Any, rows: int, seed: int) -> tuple[list[list[dict[str, str]]], list[str]]:
    import numpy as np

    if "messages" not in dataset.column_names:
        raise UsageError(f"the SFT data has no `messages` column (has {dataset.column_names})")
    picked = sorted(
        np.random.default_rng(seed).choice(len(dataset), size=min(rows, len(dataset)), replace=False)
    )
    chosen = dataset.select([int(i) for i in picked])
    ids = chosen["id"] if "id" in chosen.column_names else [f"row-{i}" for i in picked]
    return list(chosen["messages"]), [str(i) for i in ids]


def measure_model(
    spec: str,
    *,
    output: Path | None = None,
    label: str | None = None,
    data: Path | None = None,
    settings: dict[str, Any] | None = None,
    options: Options = Options(),  # frozen: an immutable default
    lock_path: Path | None = None,
    allow_unlocked: bool = False,
) -> Path:
    """Measure `spec` and write its sharpness file; returns the file's path."""
    import torch
    from transformers import AutoTokenizer

    from core import chat_templates
    from core.resolve import resolve
    from evalsuite.harness import run_folder
    from evalsuite.sharpness import measure

    res = resolve(spec, lock=lockfile.load(lock_path), allow_unlocked=allow_unlocked)
    manifest = _manifest(res.path, res.source)
    if manifest is not None and manifest.get("stage") != "sft":
        raise UsageError(
            f"{spec} is a {manifest.get('stage')} run: sharpness measures the SFT loss only (the DPO/RM "
            "losses are not implemented); pass an SFT run or a model folder with --data"
        )
    name = label or results_io.label_from(res.path.parent.name if manifest else res.path.name)
    label = results_io.check_label(name or "", "sharpness label (pass --label NAME)")
    path = Path(output or DEFAULT_OUTPUT) / record_io.FOLDER / f"{label}.json"
    data_path = _data_path(manifest, data, res.path)
    messages, ids = _sample(_read_rows(data_path), options.rows, options.seed)

    tokenizer = AutoTokenizer.from_pretrained(res.path)
    value = (
        str(_hp(manifest, chat_templates.RECIPE_KEY) or chat_templates.AUTO)
        if manifest
        else chat_templates.AUTO
    )
    template = chat_templates.select(tokenizer, value, "the run's recipe" if manifest else "auto", messages)
    max_length = options.max_length or (_hp(manifest, "max_length") if manifest else None)
    max_length = int(max_length or measure.DEFAULT_MAX_LENGTH)
    batch = measure.sft_rows(
        messages, ids, tokenizer, template.training(), max_length=max_length, micro_batch=options.micro_batch
    )
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = measure.load_model(res.path, device)
    got = measure.measure(
        model,
        batch,
        device,
        max_iterations=options.max_iterations,
        tolerance=options.tolerance,
        epsilon=options.epsilon,
        ascent_steps=options.ascent_steps,
        seed=options.seed,
        progress=options.progress,
    )
    first = ((manifest or {}).get("metrics") or {}).get("first_steps")
    record = {
        "model": {
            "spec": spec,
            "label": label,
            "path": str(res.path),
            "source": res.source,
            "sha256": run_folder.model_identity(res.path).sha256,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "settings": {**(run_settings(manifest) if manifest else {}), **(settings or {})},
        "loss": {
            "stage": "sft",
            "value": got.loss,
            "definition": "next-token NLL summed over the batch's assistant (loss) tokens / their count",
        },
        "data": {
            "source": str(data_path),
            "rows": len(got.rows),
            "row_ids": got.rows,
            "seed": options.seed,
            "loss_tokens": got.loss_tokens,
            "max_length": max_length,
            "micro_batch": options.micro_batch,
            "chat_template": template.name,
            "note": "a fixed seeded sample of the run's own training rows (not held out: SFT sees every row)",
        },
        **got.record(),
        "early": {"steps": first, "source": "manifest.json metrics.first_steps"} if first else None,
        "device": str(device),
        "seconds": got.seconds,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    return record_io.write(record, path)


def measure_run(run_dir: Path, results_root: Path, **kwargs: Any) -> dict[str, Any]:
    """One grid point: its run folder measured into results_root/sharpness/<run folder name>.json.

    The 135M grid calls it after training a point (results_root: the point's evaluation root, where
    `evalsuite tables` finds the file beside the results). Returns the record written.
    """
    path = measure_model(str(run_dir), output=results_root, label=Path(run_dir).name, **kwargs)
    return json.loads(path.read_text(encoding="utf-8"))


def measured(run_dir: Path, results_root: Path) -> bool:
    """A sharpness file of the run's current weights exists where measure_run writes it (a retrained
    point's old file does not count)."""
    from core.resolve import finished_run
    from evalsuite.harness import run_folder

    path = Path(results_root) / record_io.FOLDER / f"{Path(run_dir).name}.json"
    final = finished_run(Path(run_dir))
    if final is None or not path.is_file():
        return False
    return record_io.load(path).sha256 == run_folder.model_identity(final).sha256


def _cmd(args: argparse.Namespace) -> int:
    opts = Options(
        **{f.name: getattr(args, f.name) for f in fields(Options) if f.name != "progress"},
        progress=not args.no_progress,
    )
    path = measure_model(
        args.model,
        output=args.output,
        label=args.label,
        data=args.data,
        options=opts,
        lock_path=args.lock,
        allow_unlocked=args.allow_unlocked,
    )
    got = record_io.load(path)
    state = "converged" if got.converged else "NOT converged (raise --max-iterations)"
    print(
        f"top Hessian eigenvalue {got.top_eigenvalue:.6g} ({state}); "
        f"ε-sharpness {got.epsilon_sharpness:.4g}% at ε={args.epsilon:g}; loss {got.loss:.4f}"
    )
    print(f"wrote {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = Options()
    p = sub.add_parser(
        "sharpness",
        help="top Hessian eigenvalue and Keskar's ε-sharpness of a model's SFT loss",
        description=(
            "Sharpness of a checkpoint's SFT training loss on a fixed, seeded batch of the stage's own "
            "data: the top Hessian eigenvalue by Lanczos (power iteration for large models) on "
            "Hessian-vector products (torch.func), converged only when its residual is below --tolerance, "
            "with its convergence trace, and Keskar et al.'s ε-sharpness. Writes "
            "OUTPUT/sharpness/<label>.json (evalsuite/sharpness/record.py), which `evalsuite tables` "
            "reads for claims 12-14."
        ),
    )
    p.add_argument(
        "--model", required=True, help="a `python -m repro` SFT run folder, a model folder or a lock name"
    )
    p.add_argument("--data", type=Path, help="SFT rows (`messages`): required unless --model is a run folder")
    p.add_argument("--rows", type=positive_int, default=d.rows, help=f"rows in the batch (default {d.rows})")
    p.add_argument("--seed", type=seed, default=d.seed, help="seed of the rows, start vector and box start")
    p.add_argument(
        "--max-iterations",
        type=positive_int,
        default=d.max_iterations,
        help="Hessian-vector products at most",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=d.tolerance,
        help="converged when the residual |Hv - λv| / |λ| is below this (1e-3)",
    )
    p.add_argument(
        "--epsilon", type=positive_float, default=d.epsilon, help="ε of Keskar's box (default 1e-3)"
    )
    p.add_argument(
        "--ascent-steps", type=non_negative_int, default=d.ascent_steps, help="ascent steps in the box (10)"
    )
    p.add_argument(
        "--micro-batch", type=positive_int, default=d.micro_batch, help="rows per forward pass (4)"
    )
    p.add_argument(
        "--max-length", type=positive_int, help="token cut per row (default: the run's recipe, 4096)"
    )
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--output", type=Path, help=f"results root (default ./{DEFAULT_OUTPUT})")
    p.add_argument(
        "--label", help="file name under OUTPUT/sharpness/ (default: the run or model folder name)"
    )
    p.add_argument(
        "--allow-unlocked", action="store_true", help="allow a hub id checkpoints.lock does not pin"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)
