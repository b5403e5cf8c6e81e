"""The suite's YAML data files (reported scores, claims, tolerances, data tables), read one way:
every problem is a one-line UsageError naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.errors import UsageError


def read_mapping(path: Path, *, missing: str = "missing; run from a checkout of the suite") -> dict[str, Any]:
    """The file's top-level mapping; `missing` says what to do when the file is absent."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: {missing}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a mapping")
    return raw


def field(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """raw[key], which must be present and of `kind`."""
    if key not in raw:
        raise UsageError(f"{where}: missing {key!r}")
    if not isinstance(raw[key], kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise UsageError(f"{where}: {key!r} should be a {names}")
    return raw[key]
