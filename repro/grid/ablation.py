"""`python -m repro ablation-135m`: the Figure 1 grid of SFT runs, their evaluation, the contour maps.

Each grid point is an ordinary SFT run (repro.training.run.train) of the recipe with learning_rate and
effective_batch_size set, in <root>/lr<LR>_bs<BS>/ with its own manifest.json; a finished point
is skipped on rerun and an interrupted one continues with --resume. Finished points are then
evaluated by evalsuite.run_cmd.evaluate (their results carry the point in `settings`), and
repro.grid.figure1 draws the maps from those results only.

`--shard I/N` (1-based, as SLURM's `--array=1-N` numbers its tasks) trains and evaluates only the
points k (0-based, in the grid's sorted order) with k % N == I - 1: every machine derives the same
shares from the same --grid alone. A share draws the maps only once every point of the grid has
results (the last share to finish on a shared filesystem); `--plot-only` merges the shares'
results, from one outputs folder or from several --results roots.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from core import lock as lockfile
from core import recipe
from core.errors import UsageError
from core.recipe import BatchPlan, Recipe, Sourced
from core.resolve import finished_run
from repro.grid import figure1
from repro.training import run

AXES = {"lr": "learning_rate", "bs": "effective_batch_size"}
ALIASES = {"lr": "lr", "learning_rate": "lr", "bs": "bs", "batch_size": "bs", "effective_batch_size": "bs"}
SHARD_HELP = "1/4"
SMOKE_PREFIX = "smoke_"  # the recipe's smoke_* grid axes replace the real ones under --profile smoke
GRID_HELP = "lr=1e-5,3e-5;bs=8,16"
PAPER_RATIOS = ("sft-1130", "sft-1207")  # drawn as labelled iso-lines: the paper's two SFT recipes
DESCRIPTION = (
    "Paper Figure 1: one SFT run per (learning rate, batch size) grid point in OUT/lr<LR>_bs<BS>/ "
    "(finished points are skipped on rerun; --resume continues an interrupted one), each evaluated "
    "on the recipe's benchmarks, then one contour map per benchmark with LR/BS iso-lines in "
    "OUT/figure1/. --profile smoke runs the recipe's 2x2 smoke grid on the tiny model."
)


@dataclass(frozen=True)
class Point:
    learning_rate: float
    batch_size: int

    @property
    def name(self) -> str:
        return f"lr{self.learning_rate:g}_bs{self.batch_size}"

    @property
    def ratio(self) -> float:
        return self.learning_rate / self.batch_size


@dataclass(frozen=True)
class Grid:
    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    sources: dict[str, str]  # "lr" / "bs" -> where the values come from (recorded per run)

    def points(self) -> list[Point]:
        return [Point(lr, bs) for bs in self.batch_sizes for lr in self.learning_rates]


@dataclass(frozen=True)
class Shard:
    """Share `index` (1-based) of `count`: round-robin over the grid's sorted points, so the shares
    are balanced (sizes differ by at most one) and every machine computes the same ones."""

    index: int
    count: int

    def take(self, points: list[Point]) -> list[Point]:
        return [p for k, p in enumerate(points) if k % self.count == self.index - 1]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise UsageError(
            f"--shard {text!r}: expected I/N, share I of N counted from 1, e.g. --shard {SHARD_HELP} "
            "(SLURM: --array=1-N with --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(
            f"--shard {text.strip()}: shares are numbered 1 to N (N at least 1), e.g. --shard 1/4"
        )
    return Shard(index, count)


def default_grid(r: Recipe, profile: str) -> Grid:
    prefix = SMOKE_PREFIX if profile == "smoke" else ""
    axes = {short: r.grid[prefix + key] for short, key in AXES.items()}
    return Grid(
        tuple(float(v) for v in axes["lr"].value),
        tuple(int(v) for v in axes["bs"].value),
        {k: s.source for k, s in axes.items()},
    )


def _values(axis: str, text: str) -> tuple[float, ...] | tuple[int, ...]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"--grid {axis}=: give at least one value, e.g. --grid '{GRID_HELP}'")
    out: list = []
    for item in items:
        try:
            value = int(item) if axis == "bs" else float(item)
        except ValueError:
            kind = "a whole number" if axis == "bs" else "a number like 3e-5"
            raise UsageError(f"--grid {axis}={text}: {item!r} is not {kind}") from None
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--grid {axis}={text}: {item} must be positive")
        out.append(value)
    values = tuple(sorted(set(out)))
    names = [f"{v:g}" for v in values]
    if len(set(names)) < len(names):
        raise UsageError(f"--grid {axis}={text}: values must differ within 6 significant digits")
    return values


def parse_grid(specs: list[str], default: Grid) -> Grid:
    """`lr=1e-5,3e-5;bs=8,16` (axes separated by `;`, or repeat --grid); a missing axis keeps default."""
    given: dict[str, tuple] = {}
    for spec in specs:
        for part in (p.strip() for p in spec.split(";")):
            if not part:
                continue
            name, sep, text = part.partition("=")
            axis = ALIASES.get(name.strip().lower())
            if not sep or axis is None:
                raise UsageError(f"--grid {part!r}: expected lr=V,V;bs=N,N, e.g. --grid '{GRID_HELP}'")
            if axis in given:
                raise UsageError(f"--grid names {axis} twice; list all its values once, comma-separated")
            given[axis] = _values(axis, text)
    sources = dict(default.sources)
    for axis, values in given.items():
        listed = ",".join(f"{v:g}" for v in values)
        sources[axis] = f"override: --grid {axis}={listed} (recipe grid: {default.sources[axis]})"
    return Grid(given.get("lr", default.learning_rates), given.get("bs", default.batch_sizes), sources)


def point_recipe(base: Recipe, grid: Grid, point: Point) -> Recipe:
    """The recipe of one point: an ordinary SFT recipe, the point recorded as its overrides."""
    hyper = dict(base.hyperparameters)
    hyper["learning_rate"] = Sourced(point.learning_rate, grid.sources["lr"])
    hyper["effective_batch_size"] = Sourced(point.batch_size, grid.sources["bs"])
    overrides = (f"learning_rate={point.learning_rate!r}", f"effective_batch_size={point.batch_size}")
    return replace(base, hyperparameters=hyper, grid={}, overrides=(*base.overrides, *overrides))


def status(run_dir: Path) -> str:
    if finished_run(run_dir):
        return "finished"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        return "unfinished"
    return "new"


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    grid: Grid
    root: Path  # the grid's folder; point runs are <root>/<point.name>
    results: tuple[Path, ...]  # --results roots (one, except for --plot-only), else each point's <run>/eval
    benchmarks: list[str]
    batches: dict[Point, BatchPlan]
    shard: Shard | None = None

    def run_dir(self, point: Point) -> Path:
        return self.root / point.name

    def eval_root(self, point: Point) -> Path:
        return self.results[0] if self.results else self.run_dir(point) / "eval"

    def result_roots(self) -> list[Path]:
        return list(self.results) if self.results else sorted(self.root.glob("*/eval"))

    def points(self) -> list[Point]:
        """The points this process trains and evaluates: the grid, or this share of it."""
        points = self.grid.points()
        return self.shard.take(points) if self.shard else points


def _benchmarks(r: Recipe, spec: str | None) -> list[str]:
    allowed = list(r.benchmarks.value) if r.benchmarks else []
    if not spec:
        return allowed
    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UsageError(f"--benchmarks {spec}: choose from the recipe's {','.join(allowed)}")
    return names


def make_plan(args: argparse.Namespace) -> Plan:
    base = recipe.load(args.command)
    for item in args.override:
        if item.partition("=")[0].strip() in ("learning_rate", "effective_batch_size"):
            raise UsageError(f"--override {item}: the grid sets it; use --grid '{GRID_HELP}'")
    base = recipe.apply_overrides(base, args.override)
    grid = parse_grid(args.grid, default_grid(base, args.profile))
    shard = parse_shard(args.shard) if args.shard is not None else None
    results = tuple(args.results or ())
    if args.plot_only:
        if shard:
            raise UsageError("--plot-only merges the results of every share: drop --shard")
        if missing := [str(r) for r in results if not r.is_dir()]:
            raise UsageError(f"--results {', '.join(missing)}: no such folder")
    elif len(results) > 1:
        raise UsageError(
            f"--results given {len(results)} times: evaluation writes to one root; several roots "
            "(shares run on other machines) are for --plot-only"
        )
    batches: dict[Point, BatchPlan] = {}
    if not args.plot_only:
        world = args.world_size if args.world_size is not None else recipe.detected_world_size()
        for point in grid.points():
            try:
                batches[point] = recipe.plan_batch(point.batch_size, world, args.per_device_batch)
            except UsageError as exc:
                raise UsageError(f"--grid bs={point.batch_size}: {exc}") from None
    root = Path(args.out or run.profile_root(args.profile) / base.name)
    return Plan(base, grid, root, results, _benchmarks(base, args.benchmarks), batches, shard)


def _check_eval_inputs(args: argparse.Namespace, plan: Plan) -> None:
    """Fail before any training if evaluation could not run afterwards."""
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be a positive number of items, not {args.limit}")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a directory")
    from evalsuite.harness import sources

    lock_path = str(lockfile.load(args.lock).path)
    for name in plan.benchmarks:
        sources.benchmark_folder(name, args.data_dir, lock_path=lock_path, allow_unlocked=args.allow_unlocked)


def _evaluated(results_json: Path, benchmarks: list[str], limit: int | None, model_dir: Path) -> bool:
    """Results for these benchmarks and limit exist, and of this point's current weights."""
    from evalsuite import results as results_io
    from evalsuite.harness import run_folder

    if not results_json.is_file():
        return False
    res = results_io.load(results_json)
    if not (set(benchmarks) <= set(res.benchmarks) and res.limit == limit):
        return False
    return res.model.sha256 == run_folder.model_identity(model_dir).sha256  # a retrained point is redone


def evaluate_point(args: argparse.Namespace, plan: Plan, point: Point) -> Path:
    from evalsuite.run_cmd import evaluate

    output = plan.eval_root(point)
    # labelled by the point's name, so this is where a previous evaluation sits
    if _evaluated(
        output / point.name / "results.json", plan.benchmarks, args.limit, plan.run_dir(point) / "final"
    ):
        print(f"  {point.name}: evaluated already ({output / point.name})")
        return output / point.name
    return evaluate(
        str(plan.run_dir(point)),
        benchmarks=plan.benchmarks,
        data_dir=args.data_dir,
        limit=args.limit,
        output=output,
        backend=args.backend,
        settings={
            "learning_rate": point.learning_rate,
            "batch_size": point.batch_size,
            "ablation": plan.recipe.name,
            "profile": args.profile,
        },
        lock_path=args.lock,
        allow_unlocked=args.allow_unlocked,
        label=point.name,
        force=True,  # <point>/eval belongs to this point's model: a rerun replaces it
    )


def plot(args: argparse.Namespace, plan: Plan, grid: Grid | None) -> list[Path]:
    """Draw from the results found; `grid` None: the points that have results (--plot-only)."""
    found = figure1.collect(plan.result_roots(), plan.recipe.name)
    if grid is None:
        if not found:
            where = ", ".join(map(str, plan.result_roots())) or f"{plan.root}/*/eval"
            raise UsageError(f"no {plan.recipe.name} results in {where}: run the grid or pass --results DIR")
        lrs, bss = sorted({k[0] for k in found}), sorted({k[1] for k in found})
    else:
        lrs, bss = list(grid.learning_rates), list(grid.batch_sizes)
    rows = figure1.score_table(lrs, bss, found, plan.benchmarks)
    for row in rows:
        missing = [b for b in plan.benchmarks if b not in row.scores]
        if missing:
            print(f"no results for LR {row.learning_rate:g}, BS {row.batch_size}: {', '.join(missing)}")
    marked = {recipe.load(n).paper_name: recipe.load(n).lr_per_example for n in PAPER_RATIOS}
    title = "tiny model SFT (smoke profile)" if args.profile == "smoke" else "SmolLM2-135M SFT"
    out = args.figures or plan.root / "figure1"
    paths = figure1.draw(
        rows, lrs, bss, plan.benchmarks, out, ablation=plan.recipe.name, title=title, marked=marked
    )
    from evalsuite.report import sharpness_figure

    if (drawn := sharpness_figure.write(plan.result_roots(), out)) is not None:
        paths.append(drawn)  # sharpness against LR/BS, where the points were measured
    for path in paths:
        print(f"wrote {path}")
    return paths


def measure_sharpness(plan: Plan, points: list[Point]) -> None:
    """Each point's top Hessian eigenvalue and epsilon-sharpness beside its results (claims 12-14)."""
    from evalsuite.sharpness import cmd as sharpness

    for number, point in enumerate(points, 1):
        if sharpness.measured(plan.run_dir(point), plan.eval_root(point)):
            continue  # a rerun: this point's current weights were measured already
        print(f"[{number}/{len(points)}] sharpness of {point.name}", flush=True)
        sharpness.measure_run(plan.run_dir(point), plan.eval_root(point))


def unmapped(plan: Plan) -> list[Point]:
    """Grid points that lack results for some of plan.benchmarks (other shares still at work)."""
    from evalsuite import results as results_io

    found = figure1.collect(plan.result_roots(), plan.recipe.name)
    missing = []
    for point in plan.grid.points():
        path = found.get(figure1.key(point.learning_rate, point.batch_size))
        if path is None or not set(plan.benchmarks) <= set(results_io.load(path).benchmarks):
            missing.append(point)
    return missing


def plot_command(args: argparse.Namespace, plan: Plan) -> str:
    """The --plot-only command that merges every share's results for this grid."""
    grid = ";".join(
        f"{axis}={','.join(f'{v:g}' for v in values)}"
        for axis, values in (("lr", plan.grid.learning_rates), ("bs", plan.grid.batch_sizes))
    )
    parts = [
        "python",
        "-m",
        "repro",
        plan.recipe.name,
        "--plot-only",
        "--profile",
        args.profile,
        "--grid",
        grid,
    ]
    for flag, value in (("--out", args.out), ("--benchmarks", args.benchmarks), ("--figures", args.figures)):
        if value is not None:
            parts += [flag, str(value)]
    for root in plan.results:
        parts += ["--results", str(root)]
    return shlex.join(parts)


def render(plan: Plan, lock: lockfile.Lock, args: argparse.Namespace) -> str:
    from tabulate import tabulate

    from repro.training import dryrun

    rows = []
    for point in plan.points():
        results = plan.eval_root(point) / point.name
        evaluated = "yes" if (results / "results.json").is_file() else "no"
        rows.append([point.name, f"{point.learning_rate:g}", point.batch_size, f"{point.ratio:.3g}",
                     plan.batches[point].describe(), status(plan.run_dir(point)), evaluated])  # fmt: skip
    head = dryrun.render(plan.recipe, None, lock, str(plan.root))
    table = tabulate(rows, headers=["point", "LR", "BS", "LR/BS", "batch split", "run", "evaluated"])
    eval_line = "skipped (--skip-eval)" if args.skip_eval else ", ".join(plan.benchmarks)
    total = len(plan.grid.points())
    share = f", share {plan.shard}: {len(rows)} of its {total} points" if plan.shard else f" ({total} points)"
    return f"{head}\n\n{args.profile} grid{share}:\n{table}\n\nevaluation: {eval_line}"


def command(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    if args.plot_only:
        plot(args, plan, plan.grid if args.grid else None)
        return 0
    lock = lockfile.load(args.lock)
    if args.dry_run:
        print(render(plan, lock, args))
        return 0
    points = plan.points()
    if plan.shard:
        names = ", ".join(p.name for p in points) or "none (more shares than points)"
        print(f"share {plan.shard} of the {len(plan.grid.points())}-point grid: {names}")
    states = {p: status(plan.run_dir(p)) for p in points}
    if not args.resume and (stuck := [p.name for p in points if states[p] == "unfinished"]):
        raise UsageError(
            f"{plan.root}: unfinished point(s) {', '.join(stuck)}: pass --resume to continue them"
        )
    if not args.skip_eval:
        _check_eval_inputs(args, plan)
    argv = ["python", "-m", "repro", *getattr(args, "_argv", [])]
    for number, point in enumerate(points, 1):
        head = f"[{number}/{len(points)}] {point.name} (LR/BS {point.ratio:.3g})"
        if states[point] == "finished":
            print(f"{head}: finished run, skipped")
            continue
        print(f"{head}: training, {plan.batches[point].describe()}", flush=True)
        request = run.Request(
            recipe=point_recipe(plan.recipe, plan.grid, point), profile=args.profile,
            plan=plan.batches[point], out=plan.run_dir(point), lock=lock, init_from=args.init_from,
            resume=states[point] == "unfinished", allow_unlocked=args.allow_unlocked,
        )  # fmt: skip
        run.train(request, argv)
    if args.skip_eval:
        print(f"evaluation skipped; later: python -m repro {plan.recipe.name} with the same flags")
        return 0
    for number, point in enumerate(points, 1):
        print(f"[{number}/{len(points)}] evaluating {point.name} on {', '.join(plan.benchmarks)}", flush=True)
        evaluate_point(args, plan, point)
    if not args.skip_sharpness:
        measure_sharpness(plan, points)
    if plan.shard and (waiting := unmapped(plan)):
        print(
            f"share {plan.shard} done; the maps wait for {len(waiting)} point(s) of other shares "
            f"({', '.join(p.name for p in waiting)}): the share that finishes last draws them; "
            f"else, once all have finished: {plot_command(args, plan)} (without a shared filesystem, "
            "add --results with each machine's outputs folder)"
        )
        return 0
    plot(args, plan, plan.grid)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The grid's flags, beside the ones every recipe command has (--profile, --resume, --out...)."""
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"narrow or change the grid: '{GRID_HELP}' (quote the `;`, or repeat --grid per axis); "
        "lr values positive numbers, bs whole numbers the batch split can reach; an axis left out "
        "keeps the recipe's (the smoke_* axes under --profile smoke)",
    )
    p.add_argument("--skip-eval", action="store_true", help="train the grid only; no evaluation, no maps")
    p.add_argument(
        "--skip-sharpness",
        action="store_true",
        help="do not measure each evaluated point's sharpness (top Hessian eigenvalue and epsilon-sharpness "
        "of the SFT loss, `evalsuite sharpness`; minutes a point on CPU), which claims 12-14 need",
    )
    p.add_argument(
        "--plot-only",
        action="store_true",
        help="only redraw the maps from existing results (--results, else each point's eval/); "
        "without --grid, every point that has results",
    )
    p.add_argument(
        "--results",
        type=Path,
        action="append",
        help="results root: evaluation writes RESULTS/<point>/ and the maps read it "
        "(default: <out>/<point>/eval/); with --plot-only repeat it to merge shares run on other "
        "machines (their outputs folders or results roots)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="train and evaluate only share I of N (counted from 1) of the grid's points, round-robin "
        "over the sorted points, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with "
        "--array=1-N; the share that finds every point evaluated draws the maps",
    )
    p.add_argument("--figures", type=Path, help="where the PNGs and score table go (default: <out>/figure1)")
    p.add_argument(
        "--benchmarks",
        help="comma-separated subset of the recipe's benchmarks (default: arc,gsm8k,hellaswag,ifeval)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="benchmark files from DIR/<benchmark>/ (e.g. ../shared/benchdata) instead of the hub",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N items of each (sub)task")
    p.add_argument("--backend", choices=("vllm", "hf"), help="evaluation engine (default: vllm with a GPU)")
