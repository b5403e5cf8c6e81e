"""Faults of evaluation outputs and caches (`pytest -m faults`): caches and results folders that
cannot be fooled, outputs whole or absent.

- a request cache with a torn or garbage line: every other line still counts, appends start on
  a new line;
- two different sharded models (no model.safetensors) under one label: distinct identities,
  the second run refused, --force recomputes everything;
- a --force rerun with another model, killed midway: never a results.json beside items of
  another model, `tables` ignores the unfinished folder; a hand-made mix is refused;
- a full disk (ENOSPC, injected below io.open in a subprocess) while writing the cache, the
  items, results.json or the tables: one line, exit 2, nothing half-written, the old tables whole;
- labels that would leave the output folder, umask permissions, an explicit
  SMOLTULU_BENCHDATA that points nowhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, CliResult, hold_lock, run_module

from evalsuite import results as results_io
from evalsuite.demo import DEMO_DATA
from evalsuite.report import simulate

pytestmark = pytest.mark.faults

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
ENOSPC = "No space left on device"


def _run_args(model: Path, out: Path, benchmarks: str = "piqa", limit: str = "2") -> list[str]:
    return [
        "run", "--model", str(model), "--data-dir", str(DEMO_DATA), "--benchmarks", benchmarks,
        "--limit", limit, "--output", str(out), "--no-progress",
    ]  # fmt: skip


def _eval(model: Path, out: Path, *extra: str, benchmarks: str = "piqa", limit: str = "2") -> CliResult:
    return run_module("evalsuite", *_run_args(model, out, benchmarks, limit), *extra, env=OFFLINE)


def _ends_in_one_error_line(result: CliResult, *needles: str) -> None:
    """A failure in the middle of a run: exit 2, no traceback, and one error line, the last one
    (the progress output of the work done before it stays above it)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


def _leftovers(root: Path) -> list[Path]:
    """Temp files and folders anywhere under root (what a half-done write would leave)."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name == ".pending"]


# --------------------------------------------------------------------------- the request cache


class _Inner:
    """A stand-in LM: answers from the request, counts what it computes."""

    def __init__(self) -> None:
        self.calls = 0

    def loglikelihood(self, requests, disable_tqdm=False):
        self.calls += len(requests)
        return [(-float(len(r.args[0])), True) for r in requests]


def _requests(*texts: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(args=(t, " x")) for t in texts]


def test_a_torn_or_garbage_cache_line_is_skipped_counted_and_never_glued_to(tmp_path: Path) -> None:
    from evalsuite.harness.resumable import ResumableLM

    cache = tmp_path / "cache" / "requests.jsonl"
    first = ResumableLM(_Inner(), cache, fingerprint="f", chunk_size=2, progress=False)
    first.loglikelihood(_requests("a", "bb", "ccc", "dddd"))
    lines = cache.read_text().splitlines()
    assert len(lines) == 4 and first.damaged == 0
    # garbage after the first record, and a last line torn by a kill (no newline)
    cache.write_text(lines[0] + "\n" + "\x00garbage{\n" + "\n".join(lines[1:]) + "\n" + lines[3][:17])

    inner = _Inner()
    again = ResumableLM(inner, cache, fingerprint="f", chunk_size=2, progress=False)
    assert again.damaged == 2  # counted (and reported by `evalsuite run`)
    out = again.loglikelihood(_requests("a", "bb", "ccc", "dddd", "eeeee"))
    assert inner.calls == 1 and again.reused == 4  # the lines after the garbage still count
    assert out[4] == (-5.0, True)
    text = cache.read_text()
    assert text.endswith("\n") and all(json.loads(x)["fingerprint"] == "f" for x in text.splitlines())

    third = ResumableLM(_Inner(), cache, fingerprint="f", chunk_size=2, progress=False)
    assert third.damaged == 0 and len(third._answers) == 5  # rewritten clean: reported once


def test_appends_after_a_torn_tail_start_on_a_new_line(tmp_path: Path) -> None:
    from evalsuite.harness.resumable import ResumableLM

    cache = tmp_path / "requests.jsonl"
    lm = ResumableLM(_Inner(), cache, fingerprint="f", chunk_size=8, progress=False)
    lm.loglikelihood(_requests("a"))
    with cache.open("a") as handle:  # a torn line the loader has not seen (another writer, a crash)
        handle.write('{"fingerprint": "f", "ke')
    lm.loglikelihood(_requests("bb"))
    lines = cache.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["answer"] == [-2.0, True]
    assert ResumableLM(_Inner(), cache, fingerprint="f", progress=False).damaged == 1


# --------------------------------------------------------------------------- model identity


def _sharded(source: Path, dest: Path, seed: int | None) -> Path:
    """The tiny model saved in shards (no model.safetensors); seed None keeps its weights."""
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(source)
    if seed is not None:  # other weights, same tensors in the same order: the same index file
        torch.manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(dest, safe_serialization=True, max_shard_size="300KB")
    for extra in source.iterdir():
        if extra.suffix != ".safetensors" and not (dest / extra.name).exists():
            shutil.copy(extra, dest / extra.name)
    assert not (dest / "model.safetensors").exists() and len(list(dest.glob("*.safetensors"))) > 1
    assert (dest / "model.safetensors.index.json").is_file()
    return dest


@pytest.fixture(scope="module")
def sharded_pair(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sharded")
    return _sharded(tiny_model_dir, root / "a", None), _sharded(tiny_model_dir, root / "b", 1)


def test_two_sharded_models_have_different_cache_fingerprints(
    sharded_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from core.resolve import Resolved
    from evalsuite.harness import lm_run

    a, b = sharded_pair
    # same config, tokenizer and index; only the shards differ
    for name in ("config.json", "tokenizer.json", "model.safetensors.index.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()

    def fp(path: Path) -> str:
        return lm_run._fingerprint(Resolved(path, "local"), "hf", "float32")

    assert fp(a) != fp(b)
    # one byte of one shard changed, same size, same mtime: still another model
    c = tmp_path / "c"
    shutil.copytree(a, c)
    shard = sorted(c.glob("*.safetensors"))[-1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    stat = shard.stat()
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fp(c) != fp(a)
    # the identity itself names every file: all shards and the index
    from evalsuite.harness.run_folder import model_identity

    files = model_identity(a).files
    assert {p.name for p in a.glob("*.safetensors")} | {"model.safetensors.index.json"} <= set(files)


@pytest.mark.slow  # three evaluation CLI runs
def test_another_model_under_the_same_label_is_refused_unless_forced(
    sharded_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = sharded_pair
    out = tmp_path / "results"
    first = _eval(a, out, "--label", "shared")
    assert first.returncode == 0, first.stderr[-2000:]
    folder = out / "shared"
    before = (folder / "results.json").read_bytes()

    refused = _eval(b, out, "--label", "shared")
    refused.assert_usage_error("another model", "--force")
    assert (folder / "results.json").read_bytes() == before  # untouched

    forced = _eval(b, out, "--label", "shared", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    res = results_io.load(folder)
    assert res.settings["reused_requests"] == 0 and res.settings["computed_requests"] == 4
    assert res.model.path == str(b)
    assert json.loads((folder / "identity.json").read_text())["sha256"] == res.model.sha256
    assert not _leftovers(out)


# --------------------------------------------------------------------------- results folders


@pytest.mark.slow  # two evaluation CLI runs
def test_evaluating_into_a_folder_a_live_run_holds_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    folder = out / "held"
    folder.mkdir(parents=True)
    holder = hold_lock(folder, "evalsuite run --model other (test holder)")
    try:
        refused = _eval(tiny_model_dir, out, "--label", "held")
        refused.assert_usage_error("in use by another run", f"pid {holder.pid}", "test holder")
        assert [p.name for p in folder.iterdir()] == [".lock"]  # nothing claimed, nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the dead holder blocks nothing, and the lock file it left is not taken for another model's files
    done = _eval(tiny_model_dir, out, "--label", "held")
    assert done.returncode == 0, done.stderr[-2000:]
    assert results_io.load(folder).model.path == str(tiny_model_dir)


def test_a_failed_evaluation_removes_the_folders_it_made(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run that fails after claiming its folder, before computing anything, leaves no empty folders."""
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "generation_config.json").write_text("{")  # read once the folder is claimed
    result = _eval(broken, tmp_path / "a" / "b")
    assert result.returncode == 2, result.stderr[-2000:]
    assert not (tmp_path / "a").exists()


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL `proc` once ready() holds; False if it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    return False


@pytest.mark.slow  # three evaluation CLI runs (one killed) and the tables
def test_a_killed_rerun_with_another_model_never_leaves_a_mix(
    sharded_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = sharded_pair
    out = tmp_path / "results"
    folder = out / "shared"
    assert _eval(a, out, "--label", "shared").returncode == 0
    cache = folder / "cache" / "requests.jsonl"
    a_sha = results_io.load(folder).model.sha256
    # piqa, then gsm8k (generation: seconds on the tiny model); killed once B's piqa answers are in
    args = [*_run_args(b, out, "piqa,gsm8k"), "--label", "shared", "--force", "--batch-size", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalsuite", *args],
        cwd=ROOT,
        env={**os.environ, **OFFLINE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def b_started() -> bool:
        ident = folder / "identity.json"
        return (
            cache.is_file()
            and cache.stat().st_size > 0
            and ident.is_file()
            and json.loads(ident.read_text())["sha256"] != a_sha
        )

    assert _kill_when(proc, b_started), "the rerun ended before it could be killed"
    # never a results.json beside the new model's items: the folder is B's, unfinished
    assert not (folder / "results.json").exists()
    assert not (folder / "items").exists()  # A's items went with A's results
    tables = run_module(
        "evalsuite", "tables", "--results", str(out), "--out", str(tmp_path / "tables"), "--resamples",
        "1000", "--workers", "1",
    )  # fmt: skip
    assert tables.returncode == 0, tables.stderr
    assert "unfinished" in tables.stderr
    stats = json.loads((tmp_path / "tables" / "statistics.json").read_text())
    assert [m["label"] for m in stats["models"]] == []

    # the same model again finishes it, reusing what the killed run computed
    again = _eval(b, out, "--label", "shared", "--batch-size", "1", benchmarks="piqa,gsm8k")
    assert again.returncode == 0, again.stderr[-2000:]
    res = results_io.load(folder)
    assert res.model.path == str(b) and res.settings["reused_requests"] >= 4
    for name in ("piqa", "gsm8k"):
        results_io.load_items(folder, name)  # every items file is the one results.json names
    assert not _leftovers(out)


def _simulated(root: Path, label: str = "dpo-1130", seed: int = 0) -> Path:
    simulate.write_results(root / label, label, {"gsm8k": 50.0}, seed=seed)
    return root / label


def _tables(results: Path, out: Path, *extra: str) -> CliResult:
    return run_module(
        "evalsuite", "tables", "--results", str(results), "--out", str(out), "--resamples", "1000",
        "--workers", "1", *extra,
    )  # fmt: skip


def test_tables_refuse_items_or_an_identity_from_another_run(tmp_path: Path) -> None:
    folder = _simulated(tmp_path / "results")
    items = folder / "items" / "gsm8k.jsonl"
    records = [json.loads(x) for x in items.read_text().splitlines()]
    # another run's items: same count, same score, different outputs
    items.write_text("".join(json.dumps({**r, "output": "another model"}) + "\n" for r in records))
    _tables(tmp_path / "results", tmp_path / "out").assert_usage_error("gsm8k.jsonl", "two runs")
    assert not (tmp_path / "out").exists()

    folder = _simulated(tmp_path / "results2")
    (folder / "identity.json").write_text(json.dumps({"sha256": "f" * 64, "source": "/elsewhere"}))
    _tables(tmp_path / "results2", tmp_path / "out").assert_usage_error("results.json", "another model")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- a full disk

# Runs a CLI with io.open patched: from the NTH file opened for writing whose path matches
# PATTERN on, the disk is full (half of the first write lands, then ENOSPC), as the kernel
# would do it. io.open is what open(), Path.open and os.fdopen all go through.
DRIVER = r"""
import errno, fnmatch, io, os, sys

pattern, nth, log, module, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
real_open = io.open
count = 0


class Full:
    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        with real_open(log, "a") as fired:
            fired.write("fired\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def full_open(file, mode="r", *args, **kwargs):
    global count
    handle = real_open(file, mode, *args, **kwargs)
    if any(c in mode for c in "wax+"):
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.path.abspath(file)
        if fnmatch.fnmatch(path, pattern):
            count += 1
            if count >= nth:
                return Full(handle)
    return handle


io.open = full_open
if module == "evalsuite":
    from evalsuite.cli import main
else:
    from repro.cli import main
sys.exit(main(argv))
"""


def _full_disk(tmp_path: Path, pattern: str, nth: int, *argv: str) -> tuple[CliResult, bool]:
    log = tmp_path / "fault.log"
    log.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, pattern, str(nth), str(log), "evalsuite", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **OFFLINE},
        timeout=600,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr), log.is_file()


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="fd paths come from /proc")


@needs_proc
def test_a_full_disk_while_writing_the_tables_leaves_the_old_set_whole(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _simulated(results, "dpo-1130")
    site = tmp_path / "site"
    out = site / "tables-out"
    (site / ".tables-out.tables-0123.tmp").mkdir(parents=True)  # a killed run's temp folder
    first = _tables(results, out)
    assert first.returncode == 0, first.stderr
    assert not (site / ".tables-out.tables-0123.tmp").exists()  # stale temps are cleaned
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(old) == {"tables.md", "tables.tex", "statistics.json", "claims.md", "forest.png"}

    _simulated(results, "sft-1130", seed=1)  # the new set differs in every file
    for nth in (1, 3, 5):  # the first, a middle and the last file
        failed, fired = _full_disk(
            tmp_path, f"{site}/*", nth, "tables", "--results", str(results), "--out", str(out),
            "--resamples", "1000", "--workers", "1",
        )  # fmt: skip
        assert fired
        failed.assert_usage_error(ENOSPC, str(out))
        assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # the old set, whole
        assert [p.name for p in site.iterdir()] == ["tables-out"]  # no temp left beside it

    again = _tables(results, out)
    assert again.returncode == 0, again.stderr
    new = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(new) == set(old) and all(new[k] != old[k] for k in ("tables.md", "statistics.json"))


def test_tables_refuse_an_out_folder_with_other_files(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _simulated(results)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ".gitignore").write_text("*\n")
    _tables(results, out).assert_usage_error("notes.txt")
    (out / "notes.txt").unlink()
    assert _tables(results, out).returncode == 0
    assert (out / ".gitignore").read_text() == "*\n"  # hidden files move with the set
    assert (out / "tables.md").is_file()


@needs_proc
@pytest.mark.parametrize(
    ("what", "pattern", "nth"),
    [
        # piqa's answers are kept, arc's append fails; two evaluation CLI runs
        pytest.param("cache", "*/cache/requests.jsonl", 2, marks=pytest.mark.slow),
        ("items", "*items/*", 1),
        ("results", "*results.json*", 1),
    ],
)
def test_a_full_disk_while_evaluating_is_one_line_and_leaves_nothing_half_written(
    what: str, pattern: str, nth: int, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    folder = out / tiny_model_dir.name
    argv = _run_args(tiny_model_dir, out, "piqa,arc", "1")
    failed, fired = _full_disk(tmp_path, f"{out}/{pattern}", nth, *argv)
    assert fired
    _ends_in_one_error_line(failed, ENOSPC)
    assert not (folder / "results.json").exists()
    assert not _leftovers(out)
    cache = folder / "cache" / "requests.jsonl"
    lines = cache.read_text().split("\n") if cache.is_file() else [""]
    assert lines[-1] == "" and all(json.loads(x) for x in lines[:-1])  # no torn line
    if what == "cache":
        assert len(lines) - 1 == 2  # the finished chunk (piqa) was kept
        with cache.open("a") as handle:  # and then a garbage line and a torn one, for the rerun to report
            handle.write('garbage\n{"fingerprint": "')
        again = _eval(tiny_model_dir, out, benchmarks="piqa,arc", limit="1")
        assert again.returncode == 0, again.stderr[-2000:]
        assert "2 damaged cache lines skipped" in again.stdout
        settings = results_io.load(folder).settings
        assert settings["reused_requests"] == 2 and settings["damaged_cache_lines"] == 2


# --------------------------------------------------------------------------- paths and modes


def test_labels_never_leave_the_output_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    from core.errors import UsageError
    from core.resolve import Resolved
    from evalsuite import run_cmd

    res = Resolved(tiny_model_dir, "local")
    assert run_cmd._label(".", res) == tiny_model_dir.name  # "." names the folder, not OUTPUT itself
    assert run_cmd._label("..", res) == tiny_model_dir.name
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    (final.parent / "manifest.json").write_text(json.dumps({"recipe": "../../escape"}))
    with pytest.raises(UsageError, match="escape"):
        run_cmd._label(str(final), Resolved(final, "repro-output"))
    for bad in ("..", ".", "../x", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(UsageError):
            results_io.check_label(bad)

    outputs = tmp_path / "in" / "api.jsonl"
    outputs.parent.mkdir()
    outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n")
    out = tmp_path / "deep" / "out"
    score = ["score", "--benchmark", "gsm8k", "--data-dir", str(DEMO_DATA), "--output", str(out)]
    before = set(tmp_path.rglob("*"))
    for label in ("../escape", "..", "a/../../b"):
        run_module("evalsuite", *score, "--outputs", str(outputs), "--label", label).assert_usage_error(
            "--label"
        )
    dots = tmp_path / "in" / "...jsonl"  # its stem is ".."
    shutil.copy(outputs, dots)
    before.add(dots)
    run_module("evalsuite", *score, "--outputs", str(dots)).assert_usage_error("--label")
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere
    ok = run_module("evalsuite", *score, "--outputs", str(outputs))
    assert ok.returncode == 0, ok.stderr
    assert (out / "api" / "results.json").is_file()


def test_files_and_folders_follow_the_umask(tmp_path: Path) -> None:
    from core import atomic

    previous = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "a" / "f.txt", "x")
        with atomic.output_dir(tmp_path / "d") as tmp:
            (tmp / "g").write_text("y")
        outputs = tmp_path / "api.jsonl"
        outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n")
        scored = run_module(
            "evalsuite", "score", "--benchmark", "gsm8k", "--data-dir", str(DEMO_DATA), "--outputs",
            str(outputs), "--output", str(tmp_path / "out"),
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert scored.returncode == 0, scored.stderr
    assert (tmp_path / "a" / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
    folder = tmp_path / "out" / "api"
    assert folder.stat().st_mode & 0o777 == 0o750
    for path in (folder / "results.json", folder / "identity.json", folder / "items" / "gsm8k.jsonl"):
        assert path.stat().st_mode & 0o777 == 0o640, path
    assert (folder / "items").stat().st_mode & 0o777 == 0o750


def test_an_explicit_smoltulu_benchdata_that_points_nowhere_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import UsageError
    from evalsuite.demo import find_benchdata

    nowhere = tmp_path / "nowhere"
    monkeypatch.setenv("SMOLTULU_BENCHDATA", str(nowhere))
    with pytest.raises(UsageError, match="SMOLTULU_BENCHDATA"):
        find_benchdata(None)
    assert find_benchdata(DEMO_DATA) == DEMO_DATA  # --data-dir still wins
    monkeypatch.setenv("SMOLTULU_BENCHDATA", str(DEMO_DATA))  # has gsm8k/: used as given
    assert find_benchdata(None) == DEMO_DATA
    demo = run_module(
        "evalsuite", "demo", "--out", str(tmp_path / "demo"), env={"SMOLTULU_BENCHDATA": str(nowhere)}
    )
    demo.assert_usage_error("SMOLTULU_BENCHDATA", str(nowhere))
    assert not (tmp_path / "demo").exists()
