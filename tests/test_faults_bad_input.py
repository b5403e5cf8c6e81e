"""Bad input and hostile conditions that used to end in "internal error" or worse (`pytest -m faults`):

- JSON nested too deeply for the parser, in every file the suite reads: named, or for the request
  cache skipped and counted;
- values of the wrong type (config.json, run.json, the chat template), a lone surrogate in a data
  row, a broken or empty training file, seeds out of range, `--epsilon nan`, an empty
  SMOLTULU_OUTPUTS: each a named one-line error;
- a full disk named (device and file) wherever it strikes, the first checkpoint and tiny-model too;
- a killed write's temp folder removed by the next write; files following the umask;
- a rerun with fewer benchmarks leaves no items file its results.json does not list; grid points'
  scores checked against their items like every other result;
- a chat template that loops for ever is stopped; SIGTERM cleans up like Ctrl-C;
- control characters in an error line are escaped, whatever raised it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from core import atomic, manifest, model_folder, run_lock
from core.errors import UsageError, describe
from evalsuite.demo import DEMO_DATA
from repro.training import checkpoints

pytestmark = pytest.mark.faults

FULL = "No space left on device (filesystem /"  # then the mount point, and the file being written
DEEP = "[" * 50_000 + "]" * 50_000  # json.loads raises RecursionError on it


def _copy_model(tiny_model_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_model_dir, dest)
    return dest


def _edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- deep nesting


def test_a_deeply_nested_request_cache_line_is_skipped_and_counted(tmp_path: Path) -> None:
    from evalsuite.harness import resumable

    cache = tmp_path / "requests.jsonl"
    good = json.dumps({"fingerprint": "f", "key": "k", "answer": [-1.0, True]})
    cache.write_text(good + "\n" + DEEP + "\n")
    lm = resumable.ResumableLM(object(), cache, fingerprint="f")  # type: ignore[arg-type]
    assert lm.damaged == 1 and lm._answers == {"k": [-1.0, True]}
    assert cache.read_text() == good + "\n"  # rewritten without it


@pytest.mark.parametrize("name", ["config.json", "generation_config.json", "tokenizer.json"])
def test_a_deeply_nested_model_file_is_named(tiny_model_dir: Path, tmp_path: Path, name: str) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    (model / name).write_text(DEEP)
    with pytest.raises(UsageError, match=rf"{name} is not readable JSON \(nested too deeply\)"):
        model_folder.check(model)


def test_deeply_nested_run_files_are_named_or_treated_as_damage(tmp_path: Path) -> None:
    from evalsuite.harness import run_folder

    (tmp_path / manifest.STARTED).write_text(DEEP)
    with pytest.raises(UsageError, match=rf"{manifest.STARTED} is unreadable"):
        manifest.read_started(tmp_path)
    marker = tmp_path / "checkpoint-1"
    marker.mkdir()
    (marker / checkpoints.MARKER).write_text(DEEP)
    assert checkpoints.problem(marker) == f"{checkpoints.MARKER} is unreadable"  # removed, not trusted
    (tmp_path / run_lock.LOCK_NAME).write_text(DEEP)
    assert run_lock._describe(tmp_path / run_lock.LOCK_NAME) == "another process"
    (tmp_path / run_folder.IDENTITY_FILE).write_text(DEEP)
    assert run_folder.recorded(tmp_path) is None  # a folder of unknown identity: refused without --force


def test_deeply_nested_inputs_of_score_and_sharpness_are_named(tmp_path: Path) -> None:
    from core.scoring import ifeval as ifeval_scoring
    from evalsuite.harness import score_cmd
    from evalsuite.sharpness import record

    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n" + DEEP + "\n")
    with pytest.raises(UsageError, match=r"outputs.jsonl:2: not valid JSON"):
        score_cmd._read_outputs(outputs)
    with pytest.raises(UsageError, match=r"outputs.jsonl:2: not JSON \(nested too deeply\)"):
        ifeval_scoring._read_jsonl(outputs, ("id",))
    (tmp_path / "s.json").write_text(DEEP)
    with pytest.raises(UsageError, match=r"s.json: not valid JSON \(nested too deeply"):
        record.load(tmp_path / "s.json")


# --------------------------------------------------------------------------- wrong types and values


@pytest.mark.parametrize(
    "key, value",
    [("num_hidden_layers", "2"), ("hidden_size", 64.5), ("vocab_size", None), ("num_attention_heads", 0)],
)
def test_config_values_of_the_wrong_type_are_named(
    tiny_model_dir: Path, tmp_path: Path, key: str, value: Any
) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    _edit_json(model / "config.json", **{key: value})
    with pytest.raises(UsageError, match=r"config.json does not build a model"):
        model_folder.check(model)


def test_a_chat_template_that_is_not_text_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    _edit_json(model / "tokenizer_config.json", chat_template=5)
    with pytest.raises(UsageError, match=r"chat_template in tokenizer_config.json is a int"):
        model_folder.check(model)


class _Tokenizer:
    """A tokenizer whose own template is `template` (the candidates' templates render normally)."""

    name_or_path = "/models/hostile"

    def __init__(self, template: str) -> None:
        from transformers.utils.chat_template_utils import render_jinja_template

        self.chat_template = template
        self._render = render_jinja_template

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        kwargs.pop("tokenize", None)
        template = kwargs.pop("chat_template", None) or self.chat_template
        rendered, _ = self._render(conversations=[messages], chat_template=template, **kwargs)
        return rendered[0]


@pytest.mark.parametrize(
    "template, needle",
    [
        ("{{ raise_exception('no system role') }}", "TemplateError: no system role"),
        ("{% for %}", "TemplateSyntaxError"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_a_failing_chat_template_is_one_line_naming_the_tokenizer(template: str, needle: str) -> None:
    from core import chat_templates

    with pytest.raises(UsageError, match=rf"/models/hostile: its chat template fails \({needle}"):
        chat_templates.renders_like_tokenizer(_Tokenizer(template), "tulu")


LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_a_chat_template_that_loops_for_ever_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import chat_templates

    monkeypatch.setattr(chat_templates, "RENDER_SECONDS", 0.3)
    with pytest.raises(UsageError, match=r"/models/hostile: its chat template took over 0.3 s"):
        chat_templates.renders_like_tokenizer(_Tokenizer(LOOP), "tulu")


def test_evaluation_renders_the_chat_template_with_a_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import chat_templates
    from evalsuite.harness import resumable

    class Inner:
        tokenizer = _Tokenizer(LOOP)

        def apply_chat_template(self, history: list[dict[str, str]], add_generation_prompt: bool) -> str:
            return self.tokenizer.apply_chat_template(history, add_generation_prompt=add_generation_prompt)

    monkeypatch.setattr(chat_templates, "RENDER_SECONDS", 0.3)
    lm = resumable.ResumableLM(Inner(), tmp_path / "cache.jsonl", fingerprint="f")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"took over 0.3 s"):
        lm.apply_chat_template([{"role": "user", "content": "hi"}])


def test_a_lone_surrogate_in_a_data_row_is_named(tmp_path: Path) -> None:
    from evalsuite.harness import protocol

    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data)
    rows = [
        {"goal": "fine", "sol1": "a", "sol2": "b", "label": 0},
        {"goal": "g", "sol1": "a \ud800 b", "sol2": "b", "label": 1},
    ]
    (data / "piqa" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UsageError, match=r"piqa validation row 2, field sol1: a lone surrogate"):
        protocol._dataset("piqa", None, data_dir=str(data))


@pytest.mark.parametrize(
    "field, value",
    [("command", "python -m repro"), ("hyperparameters", []), ("batch", 8), ("resumes", {})],
)
def test_a_run_json_with_fields_of_the_wrong_type_is_named(tmp_path: Path, field: str, value: Any) -> None:
    record = {"command": ["python"], "recipe": "sft-1130", "hyperparameters": {}, "batch": {}, field: value}
    (tmp_path / manifest.STARTED).write_text(json.dumps(record))
    with pytest.raises(UsageError, match=rf"field {field} has the wrong type"):
        manifest.read_started(tmp_path)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "StopIteration"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": ', "ArrowInvalid"),
        (DEEP + "\n", ".*depth"),
    ],
)
def test_contamination_on_a_broken_or_empty_training_file_is_named(
    tmp_path: Path, text: str, needle: str
) -> None:
    from evalsuite.trainingdata import contamination_cmd

    path = tmp_path / "train.jsonl"
    path.write_text(text)
    with pytest.raises(UsageError, match=rf"training file\(s\) {path} cannot be read \(\w*{needle}"):
        rows, _, _ = contamination_cmd.training_rows(None, [path], None, None, False)  # type: ignore[arg-type]
        list(rows)


def test_a_training_data_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    from repro.training import run

    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n{"messages": ')
    with pytest.raises(UsageError, match=rf"dataset {path} cannot be read"):
        run._read_dataset(path)


def _parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a parser refuses `argv` with."""
    from evalsuite.cli import build_parser as evalsuite_parser
    from repro.cli import build_parser as repro_parser

    parser = repro_parser() if argv[0] == "repro" else evalsuite_parser()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(argv[1:])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("seed", ["-1", str(2**70), str(2**32)])
@pytest.mark.parametrize(
    "command",
    [
        ["repro", "tiny-model", "--out", "x"],
        ["repro", "sft-1130", "--dry-run"],
        ["evalsuite", "run", "--model", "m"],
        ["evalsuite", "tables"],
        ["evalsuite", "sharpness", "--model", "m"],
    ],
)
def test_a_seed_out_of_range_is_refused(
    command: list[str], seed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _parse([*command, "--seed", seed], capsys)
    assert f"argument --seed: seed {seed} is out of range: a seed is 0 to 4294967295" in err


@pytest.mark.parametrize("epsilon", ["nan", "-1", "0", "inf"])
def test_sharpness_refuses_a_bad_epsilon_before_any_work(
    epsilon: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _parse(["evalsuite", "sharpness", "--model", "m", "--epsilon", epsilon], capsys)
    assert "argument --epsilon: must be a finite number above 0" in err


def test_an_empty_outputs_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.resolve import outputs_root

    monkeypatch.setenv("SMOLTULU_OUTPUTS", "")
    with pytest.raises(UsageError, match="SMOLTULU_OUTPUTS is set but empty"):
        outputs_root()


# --------------------------------------------------------------------------- control characters


def test_control_characters_are_escaped_in_every_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "out\x1b[2J\nrm -rf\r/x"
    for exc in (
        OSError(errno.ENOENT, "No such file or directory", hostile),
        OSError(errno.EACCES, "Permission denied", "/a", None, hostile),
        RuntimeError(hostile),
    ):
        line = describe(exc)
        assert line.isprintable() and "\\x1b" in line, line
    err = _parse(["repro", "tiny-model", "--out", "x", "--size", hostile], capsys)
    assert err[:-1].isprintable() and "\\x1b" in err, err


# --------------------------------------------------------------------------- full disk


def test_a_full_disk_names_the_device_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_all", full)
    with pytest.raises(
        UsageError,
        match=rf"{re.escape(FULL)}\S*\) while writing {tmp_path}/r.json: the disk is full",
    ):
        atomic.write_text(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []
    line = describe(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x")))
    assert line.startswith(FULL) and f"while writing {tmp_path}/x" in line


def test_tiny_model_on_a_full_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors import SafetensorError

    from core import tiny
    from repro import cli

    def full(out: Path, **_: Any) -> None:
        (Path(out) / "model.safetensors").write_bytes(b"x" * 10)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(tiny, "build_tiny_model", full)
    assert cli.main(["tiny-model", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {FULL}") and f"while writing {tmp_path}/m:" in err, err
    assert list(tmp_path.iterdir()) == []  # the temp folder went too


@pytest.mark.slow  # a smoke training run in-process (6-10 s): the first checkpoint is where torch.save fails
def test_a_full_disk_at_the_first_checkpoint_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from repro import cli

    def full(*_: Any, **__: Any) -> None:  # what torch.save says when the disk fills under it
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setenv("SMOLTULU_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setattr(torch, "save", full)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=0))
    out = tmp_path / "run"
    assert cli.main(["sft-1130", "--profile", "smoke", "--out", str(out)]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]  # progress bars too
    assert len(errors) == 1, errors
    err = errors[0]
    assert err.startswith(f"error: {FULL}") and f"while writing {out}:" in err, err
    assert not out.exists()  # nothing resumable was written: the run leaves no folder behind


# --------------------------------------------------------------------------- temp folders and modes


def test_a_killed_writes_temp_folder_is_removed_by_the_next_write(tmp_path: Path) -> None:
    final = tmp_path / "final"
    stale = atomic.temp_sibling(final)
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    live = atomic.temp_sibling(final)  # a write in progress holds its temp folder
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with atomic.output_dir(final, overwrite=True) as tmp:
            (tmp / "config.json").write_text("{}")
        assert not stale.exists() and live.is_dir()
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["final", live.name])


@pytest.fixture
def umask_027() -> Any:
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_written_folders_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    with atomic.output_dir(tmp_path / "final") as tmp:
        save_file({"w": np.zeros(2)}, str(tmp / "model.safetensors"))  # safetensors writes 0600
        (tmp / "sub").mkdir(0o700)
    assert oct((tmp_path / "final" / "model.safetensors").stat().st_mode & 0o777) == oct(0o640)
    assert oct((tmp_path / "final" / "sub").stat().st_mode & 0o777) == oct(0o750)
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    save_file({"w": np.zeros(2)}, str(checkpoint / "model.safetensors"))
    checkpoints.mark_complete(checkpoint, 1)
    assert oct((checkpoint / "model.safetensors").stat().st_mode & 0o777) == oct(0o640)


# --------------------------------------------------------------------------- results


def test_a_rerun_with_fewer_benchmarks_leaves_no_unlisted_items(tmp_path: Path) -> None:
    from evalsuite import results as results_io
    from evalsuite.harness import run_folder
    from evalsuite.report import simulate

    folder = tmp_path / "m"
    simulate.write_results(folder, "m", {"gsm8k": 40.0, "piqa": 60.0})
    res = results_io.load(folder / results_io.RESULTS_FILE)
    pending = folder / run_folder.PENDING
    pending.mkdir()
    records = results_io.read_items(folder / res.benchmarks["gsm8k"].items)[1]
    results_io.write_items(pending, "gsm8k", records)
    del res.benchmarks["piqa"]  # the rerun: --benchmarks gsm8k
    run_folder.commit(folder, res, pending)
    assert sorted(p.name for p in (folder / results_io.ITEMS_DIR).iterdir()) == ["gsm8k.jsonl"]


def test_a_grid_points_score_is_checked_against_its_items(tmp_path: Path) -> None:
    from evalsuite import results as results_io
    from evalsuite.report import reported, result_set, simulate

    settings = {"learning_rate": 1e-5, "batch_size": 8, "ablation": "ablation-135m"}
    simulate.write_results(tmp_path, "ablation-0", {"gsm8k": 40.0}, settings=settings)
    path = tmp_path / results_io.RESULTS_FILE
    raw = json.loads(path.read_text())
    raw["benchmarks"]["gsm8k"]["score"] = 99.0
    path.write_text(json.dumps(raw))
    with pytest.raises(UsageError, match=r"gsm8k score 99.00 but its items give"):
        result_set.load_runs([path], reported.load())


# --------------------------------------------------------------------------- SIGTERM

HOLDER = """
import sys, time
from pathlib import Path
from evalsuite.harness import run_folder
from core.errors import run_cli

def main(argv):
    identity = run_folder.Identity("0" * 64, "outputs-file", sys.argv[2])
    with run_folder.owned(Path(sys.argv[1]), identity, what="test") as pending:
        (pending / "item").write_text("x")
        print("ready", flush=True)
        time.sleep(120)
    return 0

sys.exit(run_cli(main))
"""


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "label"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(tmp_path / "outputs.jsonl")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert (folder / ".pending" / "item").is_file()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM and err.strip() == "terminated", (proc.returncode, err)
    assert not (folder / ".pending").exists()
    run_lock.refuse_if_held(folder)  # released: a new run may start
