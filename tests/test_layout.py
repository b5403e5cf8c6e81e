"""The package layout's import rules, read from the source (evalsuite/__init__.py states them).

The contracts in pyproject.toml (`lint-imports`, in the lint environment) keep the packages
layered (core <- evalsuite <- repro) and every package free of sibling cycles; they are deny-lists.
This file adds the allow-list they cannot express: which part of evalsuite may import which. run →
results → tables: harness/ and reward/ write results, report/ reads them, and the two sides meet
only in evalsuite/results.py (the format) and evalsuite/benchmarks.py (what each benchmark is).
The entry points (cli, run_cmd, demo, fidelity) may use everything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (or module) -> the evalsuite modules/packages it may import (besides itself and core)
RULES: dict[str, tuple[str, ...]] = {
    "evalsuite.results": ("evalsuite.benchmarks",),
    "evalsuite.benchmarks": ("evalsuite.reward_sections",),
    "evalsuite.reward_sections": (),
    "evalsuite.harness": ("evalsuite.results", "evalsuite.benchmarks"),
    "evalsuite.reward": (
        "evalsuite.results",
        "evalsuite.benchmarks",
        "evalsuite.reward_sections",
        "evalsuite.harness.sources",
    ),
    "evalsuite.report": (
        "evalsuite.results",
        "evalsuite.benchmarks",
        "evalsuite.reward_sections",
        "evalsuite.sharpness.record",
    ),
    "evalsuite.sharpness": ("evalsuite.results", "evalsuite.harness.run_folder"),
    "evalsuite.trainingdata": (
        "evalsuite.results",
        "evalsuite.benchmarks",
        "evalsuite.harness.sources",
        "evalsuite.report.datafile",
        "evalsuite.report.data_tables",
        "evalsuite.report.stats",
    ),
}
ENTRY_POINTS = {
    "evalsuite.cli",
    "evalsuite.__main__",
    "evalsuite.run_cmd",
    "evalsuite.demo",
    "evalsuite.fidelity",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a file, at any depth (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from evalsuite import x` imports the module evalsuite.x
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    return [(line, name) for line, name in _all_imports(path) if name.split(".")[0] == "evalsuite"]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rule(module: str) -> str | None:
    return next((p for p in RULES if _within(module, p)), None)


def _allowed(module: str, imported: str) -> bool:
    if module in ENTRY_POINTS:
        return True
    rule = _rule(module)
    if rule is None:
        return False
    return any(_within(imported, p) for p in (rule, *RULES[rule])) or imported == "evalsuite"


SOURCES = sorted((ROOT / "evalsuite").rglob("*.py"))


def test_every_evalsuite_module_falls_under_a_rule() -> None:
    loose = [m for m in map(_module_name, SOURCES) if m not in ENTRY_POINTS and _rule(m) is None]
    assert loose in ([], ["evalsuite"]), f"modules outside every layout rule: {loose}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layout(path: Path) -> None:
    module = _module_name(path)
    if module == "evalsuite":
        return
    bad = [f"line {line}: {name}" for line, name in _imports(path) if not _allowed(module, name)]
    assert not bad, f"{module} imports what its layer may not: {bad} (rules in tests/test_layout.py)"


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The check itself can fail: report code reaching into the harness is caught."""
    assert not _allowed("evalsuite.report.tablegen", "evalsuite.harness.run_folder")
    assert not _allowed("evalsuite.harness.sources", "evalsuite.report.stats")
    assert not _allowed("evalsuite.reward.pipeline", "evalsuite.harness.resumable")
    assert _allowed("evalsuite.report.tablegen", "evalsuite.results")
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from evalsuite.harness import run_folder\n")
    assert _imports(bad) == [(2, "evalsuite.harness.run_folder")]


def _loaded(statement: str) -> set[str]:
    """The suite's modules a fresh interpreter has loaded after `statement`."""
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m for m in out.stdout.split() if m.split(".")[0] in ("core", "repro", "evalsuite")}


def test_repro_and_evalsuite_stand_on_core_alone() -> None:
    """`import repro` loads no evaluation code; `import evalsuite` (and its command line) nothing of
    repro: the base package is all the two share."""
    training = _loaded("import repro, repro.cli")
    assert not [m for m in training if m.split(".")[0] == "evalsuite"], sorted(training)
    evaluation = _loaded("import evalsuite, evalsuite.cli")
    assert not [m for m in evaluation if m.split(".")[0] == "repro"], sorted(evaluation)
    assert any(m.startswith("core.") for m in evaluation)  # the check sees what was loaded


def test_no_evalsuite_module_imports_repro() -> None:
    """Lazy imports included (the subprocess check above sees only what importing loads)."""
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in SOURCES
        for line, name in _all_imports(path)
        if name.split(".")[0] == "repro"
    ]
    assert not bad, bad


def test_repro_keeps_at_most_eight_top_level_modules() -> None:
    """Everything else lives in a subpackage named for its concern (training, stages, grid)."""
    modules = sorted(p.name for p in (ROOT / "repro").glob("*.py"))
    assert len(modules) <= 8, modules
