"""Shared fixtures: the embedded tiny model, one finished smoke training run, real benchmark items (a few
in tests/fixtures, or the whole files), a CLI runner; and the time budget of a test not marked slow."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One intra-op thread per process (this one and every CLI a test runs), unless set: the models are tiny,
# two test workers share a 2-core CPU (tox), and idle OpenMP threads spin on a shared CPU (README,
# Performance). Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
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
    from core.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def smoke_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SMOLTULU_OUTPUTS folder holding one uninterrupted `python -m repro sft-1130 --profile smoke` run
    (3 steps, a checkpoint each) and the embedded model it started from, trained once per test process
    for every test that needs a finished smoke run. Read it or copy it; never change what is in it (tests
    may add runs beside it)."""
    outputs = tmp_path_factory.mktemp("smoke-outputs")
    result = run_module("repro", "sft-1130", "--profile", "smoke", env={"SMOLTULU_OUTPUTS": str(outputs)})
    assert result.returncode == 0, result.stderr[-3000:]
    return outputs


@pytest.fixture(scope="session")
def smoke_sft(smoke_outputs: Path) -> Path:
    """The finished smoke SFT run of `smoke_outputs` (its folder: final/, checkpoints/, manifest.json)."""
    return smoke_outputs / "smoke" / "sft-1130"


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
        "import sys, time; from pathlib import Path; from core import run_lock; "
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


# ------------------------------------------------------------------ the time budget of a quick test
# A test not marked `slow` (or `vllm`) must fit in TEST_BUDGET_S seconds of CPU as if it ran alone: its
# setup and call, plus the module- and session-scoped fixtures it uses at the price they cost whichever
# test first built them (so the verdict does not depend on the order tests run in, or on the worker). CPU
# seconds of the test process and of the subprocesses it ran, not wall time, so other jobs on a shared
# machine do not fail it; a test that mostly waits is caught by the wall-time bound. The budget fits a
# 2-core CPU; SMOLTULU_TEST_BUDGET=SECONDS sets another (0 turns the check off). It is what keeps
# `pytest -m "not slow"` (the quick subset) quick.
TEST_BUDGET_S = 10.0
WALL_BOUND = 30  # wall-time bound, in budgets (a busy shared machine stretches wall time tenfold)
EXEMPT_MARKS = ("slow", "vllm")
Cost = tuple[float, float]  # CPU seconds, wall seconds
_SHARED_COST = pytest.StashKey[dict[Any, Cost]]()  # config.stash: module/session FixtureDef -> its setup
_SPENT = pytest.StashKey[list[float]]()  # item.stash: setup + call, less the shared fixtures built in it
_running: list[pytest.Item] = []  # the test being set up or run


def _budget() -> float:
    raw = os.environ.get("SMOLTULU_TEST_BUDGET", "")
    try:
        return float(raw) if raw else TEST_BUDGET_S
    except ValueError:
        raise pytest.UsageError(f"SMOLTULU_TEST_BUDGET={raw}: give seconds (0 turns the check off)") from None


def _now() -> Cost:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, time.perf_counter()


def _since(start: Cost) -> Cost:
    now = _now()
    return now[0] - start[0], now[1] - start[1]


def _count(item: pytest.Item, cost: Cost, sign: int = 1) -> None:
    spent = item.stash.setdefault(_SPENT, [0.0, 0.0])
    spent[0] += sign * cost[0]
    spent[1] += sign * cost[1]


def _timed_phase(item: pytest.Item) -> Generator[None, Any, Any]:
    start = _now()
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()
        _count(item, _since(start))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _timed_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _timed_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    if fixturedef.scope == "function":
        return (yield)
    start = _now()  # pytest has built the fixtures this one needs already: this is its own cost
    try:
        return (yield)
    finally:
        cost = _since(start)
        request.config.stash.setdefault(_SHARED_COST, {})[fixturedef] = cost
        if _running:
            _count(_running[-1], cost, sign=-1)  # charged to every test using it, below


def _alone(item: pytest.Item) -> Cost:
    """What the test would cost run alone: its own setup and call, and every shared fixture it uses."""
    cpu, wall = item.stash.get(_SPENT, [0.0, 0.0])
    shared = item.config.stash.get(_SHARED_COST, {})
    info = getattr(item, "_fixtureinfo", None)  # the fixtures the test uses, its fixtures' included
    for defs in info.name2fixturedefs.values() if info else ():
        if defs and defs[-1] in shared:
            cpu, wall = cpu + shared[defs[-1]][0], wall + shared[defs[-1]][1]
    return cpu, wall


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    budget = _budget()
    if call.when != "call" or not report.passed or budget <= 0:
        return report
    if any(item.get_closest_marker(mark) for mark in EXEMPT_MARKS):
        return report
    cpu, wall = _alone(item)
    if cpu > budget or wall > WALL_BOUND * budget:
        report.outcome = "failed"
        report.longrepr = (
            f"run alone it takes {cpu:.1f} s of CPU and {wall:.1f} s of wall time (setup, call and the "
            f"shared fixtures it uses), over the budget of a test not marked slow ({budget:g} s CPU, "
            f"{WALL_BOUND * budget:g} s wall): make it cheaper or mark it @pytest.mark.slow, saying why"
        )
    return report
