"""The results format every evalsuite command writes and every table/statistic reads.

One folder per evaluated model:

    <out>/<label>/results.json          scores, stderr, n, protocol, model pin, backend, versions
    <out>/<label>/items/<bench>.jsonl   one record per item (what the statistics resample)

The folder also holds identity.json (evalsuite/harness/run_folder.py), the model it belongs to, and
results.json records the same sha256 and each items file's sha256: a results.json beside items
or an identity of another run is refused, never read as a mix.

An item record is {"id", "subtask", "prompt_sha256", "score", "metrics", "output" |
"loglikelihoods" | rewards, "target"}: `score` is the item's 0/1 correctness for the
benchmark's primary metric; benchmark-specific values (IFEval's per-instruction flags,
a reward model's two rewards) sit in `metrics`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text
from core.errors import UsageError, json_loads
from evalsuite import benchmarks as bench_registry

FORMAT = "smoltulu-eval/1"
# Bump when a prompt, shot-selection, metric or aggregation rule changes: results of another
# protocol version are refused by the statistics instead of being compared silently.
# /2: GSM8K/BBH stop strings, GSM8K shots in lighteval's shuffled order, few-shot budget on the
#     whole chat-templated prompt, one leading space in acc_norm_nospace, BBH fills the context,
#     the model's EOS ids as stops on both backends.
PROTOCOL = "smollm2-lighteval/2"
RESULTS_FILE = "results.json"
DEFAULT_ROOT = Path("results")  # `run` writes OUTPUT/<label>/, `tables` reads it, by default here
ITEMS_DIR = "items"
IDENTITY_FILE = "identity.json"  # the model a results folder belongs to (evalsuite/harness/run_folder.py)
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_label(label: str, what: str = "label") -> str:
    """A label names a folder under the results root: one plain path component, never . or ..

    Every label (--label of `run` and `score`, the defaults derived from model folders, lock
    names, recipe names and outputs files) goes through here.
    """
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise UsageError(
            f"{what} {label!r}: use letters, digits, '.', '_' and '-' only, starting with a letter or "
            "digit (at most 128 characters)"
        )
    return label


def label_arg(text: str) -> str:
    """argparse type of every --label (`run`, `score`, `fidelity`): check_label, as an argparse error."""
    import argparse

    try:
        return check_label(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def label_from(name: str) -> str:
    """A default label from a folder or file name: other characters become '_'; '' when none is left."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._-")[:128]
    return cleaned if LABEL_PATTERN.fullmatch(cleaned) else ""


def json_safe(obj: Any) -> Any:
    """NaN/inf have no JSON spelling: they become null (dicts, lists and tuples walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class BenchmarkResult:
    score: float  # percent; the paper's column
    n: int  # items scored
    metric: str
    stderr: float | None = None  # percent
    subtasks: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {score, n}
    scores: dict[str, float] = field(default_factory=dict)  # other named scores (percent)
    counts: dict[str, int] = field(default_factory=dict)  # e.g. pairs dropped over max length
    items: str = ""  # per-item records, relative to the results folder
    seconds: float = 0.0
    items_sha256: str = ""  # of the items file; filled by save()


@dataclass
class ModelInfo:
    spec: str  # what the user passed to --model
    label: str  # folder and table label: the lock name, else the folder/hub name
    kind: str  # "causal-lm" | "reward-model"
    source: str  # "local" | "repro-output" | "hub" | "external"
    name: str | None = None  # lock name
    repo_id: str | None = None
    revision: str | None = None
    path: str | None = None
    sha256: str | None = None  # the identity of the weights/outputs scored (evalsuite/harness/run_folder.py)


@dataclass
class Results:
    model: ModelInfo
    backend: str  # "hf" | "vllm" | "external"
    benchmarks: dict[str, BenchmarkResult]
    limit: int | None = None
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    protocol: str = PROTOCOL

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def save(results: Results, folder: Path) -> Path:
    """Write results.json, recording the sha256 of each benchmark's items file as it is on disk."""
    folder = Path(folder)
    for bench in results.benchmarks.values():
        items = folder / bench.items if bench.items else None
        bench.items_sha256 = sha256_bytes(items.read_bytes()) if items is not None and items.is_file() else ""
    path = folder / RESULTS_FILE
    write_text(path, results.to_json())
    return path


def check_items(path: Path, data: bytes, expected: str) -> None:
    """Refuse an items file that is not the one results.json was written with."""
    if expected and sha256_bytes(data) != expected:
        raise UsageError(
            f"{path}: not the items file its results.json was written with (sha256 differs): the folder "
            "mixes two runs; rerun `python -m evalsuite run` for this label"
        )


def write_items(folder: Path, benchmark: str, records: Iterable[dict[str, Any]]) -> str:
    """Write per-item records atomically; returns the path relative to the results folder."""
    rel = f"{ITEMS_DIR}/{benchmark}.jsonl"
    write_text(Path(folder) / rel, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return rel


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise UsageError(f"{where}: missing field {key!r}; rerun `python -m evalsuite run` to rewrite it")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise UsageError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def load(path: Path, *, protocol: str | None = PROTOCOL) -> Results:
    """Read and validate a results.json (or the folder holding it); UsageError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    where = str(path)
    try:
        raw = json_loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{where}: no results file; run `python -m evalsuite run` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: not valid JSON ({exc}); the file is corrupt or truncated") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a JSON object")
    fmt = _require(raw, "format", str, where)
    if fmt != FORMAT:
        raise UsageError(f"{where}: format {fmt!r} is not {FORMAT!r}")
    got_protocol = _require(raw, "protocol", str, where)
    if protocol is not None and got_protocol != protocol:
        raise UsageError(
            f"{where}: protocol {got_protocol!r} differs from this suite's {protocol!r}; "
            "re-evaluate with this version before comparing"
        )
    model_raw = _require(raw, "model", dict, where)
    for key in ("spec", "label", "kind", "source"):
        _require(model_raw, key, str, f"{where} model")
    model = ModelInfo(**{k: model_raw.get(k) for k in ModelInfo.__dataclass_fields__})
    try:  # the label reaches file names and the tables' Markdown and LaTeX: the same rule as on writing
        check_label(model.label, f"{where}: model label")
    except UsageError as exc:
        raise UsageError(f"{exc}; the file was edited by hand or is not this suite's") from None
    benches: dict[str, BenchmarkResult] = {}
    for name, b in _require(raw, "benchmarks", dict, where).items():
        bench = bench_registry.BENCHMARKS.get(name)
        if bench is None:
            raise UsageError(
                f"{where}: unknown benchmark {name!r}; known: {', '.join(bench_registry.BENCHMARKS)}"
            )
        if bench.model_kind != model.kind:
            raise UsageError(
                f"{where}: benchmark {name!r} is for a {bench.model_kind}, the model is a {model.kind}"
            )
        bw = f"{where} benchmarks.{name}"
        if not isinstance(b, dict):
            raise UsageError(f"{bw}: expected an object")
        score = float(_require(b, "score", (int, float), bw))
        if not math.isfinite(score) or not 0.0 <= score <= 100.0:
            raise UsageError(f"{bw}: score {score} is not a percentage")
        benches[name] = BenchmarkResult(
            score=score,
            n=int(_require(b, "n", int, bw)),
            metric=_require(b, "metric", str, bw),
            stderr=b.get("stderr"),
            subtasks=b.get("subtasks", {}),
            scores=b.get("scores", {}),
            counts=b.get("counts", {}),
            items=b.get("items", ""),
            seconds=float(b.get("seconds", 0.0)),
            items_sha256=str(b.get("items_sha256") or ""),
        )
    _check_identity(path.parent, model, where)
    return Results(
        model=model,
        backend=_require(raw, "backend", str, where),
        benchmarks=benches,
        limit=raw.get("limit"),
        created=raw.get("created", ""),
        versions=raw.get("versions", {}),
        hardware=raw.get("hardware", {}),
        settings=raw.get("settings", {}),
        format=fmt,
        protocol=got_protocol,
    )


def _check_identity(folder: Path, model: ModelInfo, where: str) -> None:
    """A folder whose identity.json names another model than its results.json is a mix: refused."""
    try:
        raw = json_loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return  # written by hand, by simulate, or before identities were recorded
    except (OSError, ValueError):
        raise UsageError(f"{folder / IDENTITY_FILE}: unreadable; rerun `python -m evalsuite run`") from None
    raw = raw if isinstance(raw, dict) else {}
    if raw.get("sha256") != model.sha256:
        raise UsageError(
            f"{where}: written for model {str(model.sha256)[:12]} but the folder now belongs to "
            f"{str(raw.get('sha256'))[:12]} ({raw.get('source')}): an unfinished run of another model; "
            "finish it with `python -m evalsuite run` or remove the folder"
        )


def read_items(path: Path) -> tuple[bytes, list[Any]]:
    """An items file's bytes (for check_items) and its records, parsed in one call (twice as fast as
    line by line); a file that does not parse whole is read line by line to name the bad line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: per-item records missing; rerun `python -m evalsuite run`") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; the file is corrupt") from None
    try:  # one parse of the whole file; blank lines (",,") send it down the slow path
        return data, json_loads("[" + text.strip().replace("\n", ",") + "]")
    except json.JSONDecodeError:
        pass
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json_loads(line))
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{lineno}: not valid JSON; the file is corrupt") from None
    return data, records


def load_items(results_path: Path, benchmark: str) -> list[dict[str, Any]]:
    """The per-item records of one benchmark in a results folder (validated minimally)."""
    folder = Path(results_path)
    if folder.is_file():
        folder = folder.parent
    res = load(folder)
    if benchmark not in res.benchmarks:
        raise UsageError(f"{folder}: no {benchmark!r} results")
    path = folder / (res.benchmarks[benchmark].items or f"{ITEMS_DIR}/{benchmark}.jsonl")
    data, records = read_items(path)
    for lineno, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or "score" not in rec or "subtask" not in rec:
            raise UsageError(f"{path}: record {lineno}: item record needs 'subtask' and 'score'")
    check_items(path, data, res.benchmarks[benchmark].items_sha256)
    return records


def discover(roots: Sequence[Path]) -> list[Path]:
    """Every results.json under the given folders, at any depth (a folder may itself be one model's
    results; ablation points sit deeper), each once."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"results folder {root} does not exist; pass --results with a folder of results")
        found.extend(sorted(p for p in root.rglob(RESULTS_FILE) if p.is_file()))
    return list(dict.fromkeys(p.resolve() for p in found))


def unfinished(roots: Iterable[Path]) -> list[Path]:
    """Results folders a run claimed but did not finish (identity.json, no results.json)."""
    found = []
    for root in roots:
        for ident in sorted(Path(root).rglob(IDENTITY_FILE)):
            if not (ident.parent / RESULTS_FILE).is_file():
                found.append(ident.parent)
    return found
