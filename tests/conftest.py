"""Shared fixtures: the embedded tiny model, real benchmark items (a few in tests/fixtures, or the whole
files), and a CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_ITEMS = ROOT / "tests" / "fixtures" / "benchdata"  # a few real items: see its README


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def assert_usage_error(self, *needles: str) -> None:
        """The suite's bad-input contract: exit 2, one line on stderr, no traceback."""
        assert self.returncode == 2, (self.returncode, self.stdout, self.stderr)
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> CliResult:
    merged = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=merged,
        cwd=cwd or ROOT,
        timeout=600,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def kill_after_first_checkpoint(
    start: Callable[[int], tuple[subprocess.Popen, Path]], attempts: int = 3
) -> Path:
    """SIGKILL a training run right after its first checkpoint lands; retry if the run outran us.

    `start(attempt)` launches a run and returns its process and run folder; returns the folder
    of the run that was killed unfinished.
    """
    for attempt in range(attempts):
        proc, run = start(attempt)
        deadline = time.time() + 300
        while not (run / "checkpoints" / "checkpoint-1" / "trainer_state.json").exists():
            assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (run / "manifest.json").exists():
            return run
    pytest.fail("could not interrupt a smoke run before it finished")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from repro.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def real_items() -> Path:
    """A few real items of every benchmark and BBH subset, always present: tests/fixtures/benchdata,
    the first rows of ../shared/benchdata's files in its layout (see its README)."""
    return REAL_ITEMS


@pytest.fixture(scope="session")
def benchdata() -> Path:
    """The whole files: ../shared/benchdata, or SMOLTULU_BENCHDATA. Only for tests that need whole
    files (row counts, few-shot pools, every item); they skip when it is absent."""
    named = os.environ.get("SMOLTULU_BENCHDATA")
    path = Path(named or ROOT.parent / "shared" / "benchdata")
    if named and not (path / "SHA256SUMS").is_file():
        pytest.fail(f"SMOLTULU_BENCHDATA={named} is not a copy of shared/benchdata (no SHA256SUMS)")
    if not (path / "SHA256SUMS").is_file():
        pytest.skip(
            f"needs the whole benchmark files, not found at {path} (tests/fixtures/benchdata holds only "
            "their first rows): set SMOLTULU_BENCHDATA to a copy of shared/benchdata"
        )
    return path


# `pytest -m regression` ends with what real evidence it checked (tests/test_regression.py).
REGRESSION_CASES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    cases = config.stash.get(REGRESSION_CASES, None)
    if cases is not None:
        from evalsuite.report import regression

        terminalreporter.write_sep("-", regression.summary(cases))


def hold_lock(folder: Path, what: str) -> subprocess.Popen:
    """Another process holding `folder`'s run lock (as a live run does) until it is killed."""
    code = (
        "import sys, time; from pathlib import Path; from repro import run_lock; "
        "run_lock.acquire(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder), what], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(scope="module")
def scores() -> Any:
    """The paper's reported scores (tables/reported)."""
    from evalsuite.report import reported

    return reported.load()


@pytest.fixture(scope="module")
def claim_list(scores: Any) -> list[Any]:
    """The paper's claims (tables/claims.yaml)."""
    from evalsuite.report import claims

    return claims.load(scores)
