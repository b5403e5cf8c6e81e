"""Every results folder the tables read, loaded and checked: one `Run` per evaluated model.

Results whose `settings` carry the ablation keys (learning rate and batch size) are grid
points of the 135M ablation: they feed claim 6 and stay out of the paper's tables.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import lock as lockfile
from core.errors import UsageError
from evalsuite import benchmarks as registry
from evalsuite import results as results_fmt
from evalsuite.report import item_stats
from evalsuite.report.item_stats import ItemData
from evalsuite.report.reported import ReportedScores

ABLATION_KEYS = ("learning_rate", "batch_size")  # default; claims.yaml's claim 6 names its own
SCORE_TOLERANCE = 0.01  # points: results.json's score against the headline of its own items
# lock roles of the models the paper evaluated: published checkpoints, and those it never published
PAPER_ROLES = ("published", "baseline", "base", "reproduce-only")


@functools.cache
def paper_models() -> dict[str, str]:
    """The lock's names of the paper's models -> their role."""
    lock = lockfile.load(lockfile.default_path())
    return {e.name: e.role for e in lock.entries.values() if e.role in PAPER_ROLES}


@dataclass
class Run:
    path: Path  # results.json
    results: results_fmt.Results
    items: dict[str, ItemData] = field(default_factory=dict)
    ablation_keys: tuple[str, ...] = ABLATION_KEYS

    @property
    def label(self) -> str:
        return self.results.model.label

    @property
    def kind(self) -> str:
        return self.results.model.kind

    @property
    def simulated(self) -> bool:
        return bool(self.results.settings.get("simulated"))

    @property
    def limit(self) -> int | None:
        return self.results.limit

    @property
    def is_ablation(self) -> bool:
        return all(k in self.results.settings for k in self.ablation_keys)

    @property
    def training_seed(self) -> int | None:
        """The seed of a model retrained with `python -m repro` (from its manifest), else None."""
        seed = self.results.settings.get("training_seed")
        return int(seed) if isinstance(seed, int) else None

    @property
    def retrained(self) -> bool:
        """Trained by this suite from a recipe, rather than a published checkpoint re-evaluated."""
        return self.results.model.source == "repro-output" or self.training_seed is not None

    @property
    def unverified(self) -> bool:
        """A local model folder under the name of one of the paper's models, not trained by repro:
        nothing shows it holds the published weights (the lock's hashes are checked when the model
        is evaluated by its lock name; some were never published), so it is judged as one training
        run of unknown seed variance, never as the published checkpoint re-evaluated."""
        model = self.results.model
        return (
            not (self.simulated or self.retrained)
            and model.source == "local"
            and model.label in paper_models()
        )

    @property
    def provenance(self) -> str:
        """Where the evaluated model came from, as the tables say it."""
        model = self.results.model
        if self.simulated:
            return "simulated"
        if self.retrained:
            seed = f", training seed {self.training_seed}" if self.training_seed is not None else ""
            return f"retrained by repro{seed}"
        if self.unverified:
            folder = f"local model folder ({model.path}) named {model.label}"
            if paper_models()[model.label] == "reproduce-only":
                return f"{folder}, a model never published: judged as one training run of unknown seed"
            return (
                f"{folder}, not verified to be the published checkpoint: judged as one training run "
                f"(evaluate `--model {model.label}` to check it against the lock)"
            )
        if model.source == "hub":
            rev = f"@{model.revision[:12]}" if model.revision else ""
            return f"published checkpoint ({model.repo_id}{rev})"
        if model.source == "local":
            return f"local model folder ({model.path})"
        return f"scored from outputs ({model.spec})"

    @property
    def identity(self) -> str:
        """What was evaluated: the sha256 of the model's files (identity.json), else of the item files.

        Two results with one identity are one model, whatever their labels, seeds or grid points say.
        """
        if self.results.model.sha256:
            return self.results.model.sha256
        items = sorted(f"{k}:{b.items_sha256}" for k, b in self.results.benchmarks.items())
        return "items:" + ",".join(items)

    @property
    def partial(self) -> str | None:
        """Why this run is not evidence about the full benchmarks (None when it is).

        Partial runs are shown, never used by claims or regression checks.
        """
        if self.limit is not None:
            return f"--limit {self.limit} run (the first items only)"
        sample = self.results.settings.get("sample")
        if sample is not None:
            return f"--sample {sample} run (a seeded sample of items per (sub)task)"
        converted = self.results.settings.get("converted_data") or {}
        if isinstance(converted, dict) and converted:
            return "converted data (not the original rows): " + "; ".join(
                f"{name}: {note}" for name, note in sorted(converted.items())
            )
        short = []
        for name, bench in self.results.benchmarks.items():
            full = registry.full_items(name)
            # reward pairs over the length limit are dropped by the protocol and counted, not missing
            seen = bench.n + int(bench.counts.get("over_max_length", 0) or 0)
            if full is not None and seen < full:
                short.append(f"{name} {seen} of {full}")
        if short:
            return "fewer items than the full set (truncated data?): " + ", ".join(short)
        return None


def read_records(path: Path) -> list[dict[str, Any]]:
    """One JSONL file of item records (evalsuite.results.read_items); fields are checked by item_stats."""
    return results_fmt.read_items(path)[1]


def _load_benchmark(folder: Path, name: str, bench: results_fmt.BenchmarkResult) -> ItemData:
    path = folder / (bench.items or f"{results_fmt.ITEMS_DIR}/{name}.jsonl")
    raw, records = results_fmt.read_items(path)
    if len(records) != bench.n:
        raise UsageError(f"{path}: {len(records)} item records but results.json says n = {bench.n}")
    data = item_stats.from_records(name, records, str(path))
    if abs(data.headline - bench.score) > SCORE_TOLERANCE:
        raise UsageError(
            f"{folder / results_fmt.RESULTS_FILE}: {name} score {bench.score:.2f} but its items give "
            f"{data.headline:.2f}; the items file does not belong to these results"
        )
    # same count and score can still be another run's items: results.json records their sha256
    results_fmt.check_items(path, raw, bench.items_sha256)
    return data


def _load_one(path: Path, reported: ReportedScores, with_items: bool, keys: tuple[str, ...]) -> Run:
    res = results_fmt.load(path)
    label = res.model.label
    known = reported.model_kind(label)
    if known is not None and known != res.model.kind:
        raise UsageError(
            f"{path}: model {label!r} is a {known} in the paper, but the results say {res.model.kind}"
        )
    run = Run(path, res, ablation_keys=keys)
    if with_items:  # grid points too: a hand-edited score must not pass for a trend
        for name, bench in res.benchmarks.items():
            run.items[name] = _load_benchmark(path.parent, name, bench)
    return run


def _load_star(args: tuple[Path, ReportedScores, bool, tuple[str, ...]]) -> Run:
    return _load_one(*args)


def load_runs(
    paths: Sequence[Path],
    reported: ReportedScores,
    *,
    with_items: bool = True,
    workers: int = 1,
    ablation_keys: Sequence[str] = ABLATION_KEYS,
) -> list[Run]:
    """Load and check every results file; `workers` > 1 parses models in parallel processes."""
    jobs = [(Path(p), reported, with_items, tuple(ablation_keys)) for p in paths]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            runs = list(pool.map(_load_star, jobs))
    else:
        runs = [_load_star(j) for j in jobs]
    check_unique(runs)
    return runs


def check_unique(runs: Sequence[Run]) -> None:
    """One results file per model, except the training seeds of one retrained recipe; and no model
    counted twice: seeds and grid points must be distinct weights (Run.identity)."""
    _check_distinct(runs)
    seen: dict[str, list[Run]] = {}
    for run in runs:
        if run.is_ablation:
            continue
        for other in seen.get(run.label, []):
            if not _seed_siblings(other, run):
                raise UsageError(
                    f"two results for model {run.label!r}: {other.path} and {run.path}; pass --results "
                    "folders that hold one of them (retrained runs of one recipe with different "
                    "training seeds are pooled)"
                )
        seen.setdefault(run.label, []).append(run)


def _check_distinct(runs: Sequence[Run]) -> None:
    """The same weights as two training seeds of a recipe, or as two grid points, are refused.

    A copy would shrink the seed spread to nothing or add a fake grid point to a trend test.
    """
    first: dict[str, Run] = {}
    for run in runs:
        if not (run.is_ablation or run.training_seed is not None):
            continue
        other = first.setdefault(run.identity, run)
        if other is run:
            continue
        what = "grid points" if run.is_ablation or other.is_ablation else "training seeds"
        raise UsageError(
            f"{other.path} and {run.path} are results of the same model (identity "
            f"{run.identity[:16]}), counted as two {what}; keep one of them"
        )


def group_problem(group: Sequence[Run]) -> str | None:
    """Why pooled training seeds are not evidence together (None when they are).

    Every seed passes the checks a single run does: none partial, all simulated or none, one model
    kind. A single run's own problems are `Run.partial` and `Run.simulated`.
    """
    if len(group) < 2:
        return None
    for run in group:
        if run.partial is not None:
            return f"partial: training seed {run.training_seed} ({run.path}): {run.partial}"
    simulated = [r for r in group if r.simulated]
    if simulated and len(simulated) < len(group):
        real = next(r for r in group if not r.simulated)
        return (
            f"refused: training seed {simulated[0].training_seed} ({simulated[0].path}) is simulated and "
            f"seed {real.training_seed} ({real.path}) is not; simulated and real results are never pooled"
        )
    kinds = {r.kind for r in group}
    if len(kinds) > 1:
        return f"refused: the pooled seeds are of different model kinds ({', '.join(sorted(kinds))})"
    return None


def _seed_siblings(a: Run, b: Run) -> bool:
    """Two retrained runs of one recipe that differ in their training seed: pooled, not a clash."""
    return (
        a.retrained
        and b.retrained
        and a.training_seed is not None
        and b.training_seed is not None
        and a.training_seed != b.training_seed
    )


def seed_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The table runs by label, seeds of one recipe together (lowest training seed first)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if not run.is_ablation:
            groups.setdefault(run.label, []).append(run)
    for members in groups.values():
        members.sort(key=lambda r: (r.training_seed is None, r.training_seed or 0, str(r.path)))
    return groups
