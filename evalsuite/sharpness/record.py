"""The sharpness file: one JSON per measured model, in a `sharpness/` folder beside results.

    <results root>/sharpness/<label>.json   format smoltulu-sharpness/1

It records the model (label, path, sha256: the identity evalsuite results carry, so a grid
point's sharpness is matched to its evaluation and a retrained point's stale file is caught),
`settings` (for a `python -m repro` run: recipe, stage, profile and, for an ablation point,
`ablation`, `learning_rate`, `batch_size`, the keys of the evaluation results' settings), the
loss and batch it was measured on, each estimator with its convergence trace, and `early`: the
run's first optimizer steps (loss, grad_norm) from its manifest.json. Nothing here imports torch:
the report reads these files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text
from core.errors import UsageError, json_loads
from evalsuite import results as results_io

FORMAT = "smoltulu-sharpness/1"
FOLDER = "sharpness"  # files are found in folders of this name under the --results roots


@dataclass(frozen=True)
class Measurement:
    """What the claims and the figure read from one sharpness file."""

    path: Path
    label: str
    sha256: str | None
    settings: dict[str, Any]
    top_eigenvalue: float
    converged: bool
    epsilon_sharpness: float
    loss: float
    early: list[dict[str, float]] = field(default_factory=list)  # [{step, loss, grad_norm}], first steps

    def point(
        self, numerator: str = "learning_rate", denominator: str = "batch_size"
    ) -> tuple[float, int] | None:
        """(learning rate, batch size) of an ablation point, LR to 6 significant digits; None otherwise."""
        try:
            return float(f"{float(self.settings[numerator]):.6g}"), int(self.settings[denominator])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def profile(self) -> str:
        return str(self.settings.get("profile", "real"))


def write(record: dict[str, Any], path: Path) -> Path:
    record = {"format": FORMAT, **record}
    _parse(record, str(path))  # never write what load would refuse
    write_text(Path(path), json.dumps(results_io.json_safe(record), indent=2, sort_keys=True) + "\n")
    return Path(path)


def _number(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a finite number; rerun `python -m evalsuite sharpness`")
    return float(value)


def _parse(raw: Any, where: str) -> Measurement:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(f"{where}: not a {FORMAT} file; move it out of the --results folders")
    model, hessian, eps = raw.get("model"), raw.get("hessian"), raw.get("epsilon_sharpness")
    if not all(isinstance(x, dict) for x in (model, hessian, eps, raw.get("loss"), raw.get("settings"))):
        raise UsageError(f"{where}: needs model, settings, loss, hessian and epsilon_sharpness objects")
    if not isinstance(model.get("label"), str):
        raise UsageError(f"{where}: model.label missing")
    early = raw.get("early") or {}
    steps = early.get("steps", []) if isinstance(early, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise UsageError(f"{where}: early.steps must be a list of {{step, loss, grad_norm}} objects")
    return Measurement(
        Path(where),
        model["label"],
        model.get("sha256"),
        raw["settings"],
        _number(hessian, "top_eigenvalue", f"{where} hessian"),
        bool(hessian.get("converged")),
        _number(eps, "value", f"{where} epsilon_sharpness"),
        _number(raw["loss"], "value", f"{where} loss"),
        steps,
    )


def load(path: Path) -> Measurement:
    try:
        raw = json_loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no sharpness file; run `python -m evalsuite sharpness` first") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path}: not valid JSON ({str(exc).splitlines()[0]}); the file is corrupt"
        ) from None
    return _parse(raw, str(path))


def discover(roots: list[Path]) -> list[Measurement]:
    """Every sharpness file under the roots (JSON files in a `sharpness/` folder, at any depth), each once."""
    found: list[Path] = []
    for root in roots:
        found += sorted(p for p in Path(root).rglob("*.json") if p.parent.name == FOLDER and p.is_file())
    return [load(p) for p in dict.fromkeys(p.resolve() for p in found if not p.name.startswith("."))]
