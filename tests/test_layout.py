"""The package layout's import rules, read from the source (evalsuite/__init__.py states them).

run → results → tables: harness/ and reward/ write results, report/ reads them, and the two sides
meet only in evalsuite/results.py (the format) and evalsuite/benchmarks.py (what each benchmark
is). The entry points (cli, run_cmd, demo, fidelity) may use everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (or module) -> the evalsuite modules/packages it may import (besides itself and repro)
RULES: dict[str, tuple[str, ...]] = {
    "evalsuite.results": ("evalsuite.benchmarks",),
    "evalsuite.benchmarks": ("evalsuite.reward.sections",),
    "evalsuite.harness": ("evalsuite.results", "evalsuite.benchmarks"),
    "evalsuite.reward": ("evalsuite.results", "evalsuite.benchmarks", "evalsuite.harness.sources"),
    "evalsuite.report": (
        "evalsuite.results",
        "evalsuite.benchmarks",
        "evalsuite.reward.sections",
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


def test_repro_cli_and_ablation_do_not_import_each_other() -> None:
    ablation = {n for _, n in _all_imports(ROOT / "repro" / "ablation.py")}
    assert not any(_within(n, "repro.cli") for n in ablation)
