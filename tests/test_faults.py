"""The suite under bad input, kills and reruns, through the real CLI (`pytest -m faults`).

Every bad input must give one line on stderr, exit status 2, no traceback, and leave no
output behind: the table below holds every class of issue 16 the CLIs can be driven into
(impossible numbers, unwritable or impossible output paths, a full disk, malformed data rows in
both layouts, files that are not UTF-8, invalid IFEval arguments, model folders the suite must not
load); --debug shows the traceback instead, and a malformed request-cache line is recomputed.
The kill/resume cases live beside the features they protect and carry the same marker:
tests/test_training.py (SIGKILL mid-training, then --resume: same weights), tests/test_eval_run.py
(SIGKILL mid-evaluation: finished requests not recomputed, same results), tests/test_lock.py (a
tampered file fails `lock verify`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REAL_ITEMS, run_module
from test_training import assert_same_weights

from evalsuite.demo import DEMO_DATA
from evalsuite.report import simulate

pytestmark = pytest.mark.faults

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Case:
    module: str
    args: list[str]
    needle: str
    must_not_exist: list[str] = field(default_factory=list)  # relative to tmp_path
    env: dict[str, str] = field(default_factory=dict)
    marks: list[pytest.MarkDecorator] = field(default_factory=list)


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
as_root = pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders; run as a user")
# A full disk, simulated in the CLI's own process: this sitecustomize (put first on PYTHONPATH)
# makes every write to a file under $FAULT_FULL_DISK_UNDER fail with ENOSPC after half the data.
FULL_DISK_SITE = """
import builtins, errno, io, os

_under = os.environ.get("FAULT_FULL_DISK_UNDER")
_real_open = io.open


class _Full:
    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def _open(file, mode="r", *args, **kwargs):
    handle = _real_open(file, mode, *args, **kwargs)
    if _under and any(c in mode for c in "wax+"):
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.path.realpath(file)
        if path.startswith(_under):
            return _Full(handle)
    return handle


io.open = builtins.open = _open
"""


def _results(tmp: Path, edit: Callable[[dict], dict] | None = None, raw: str | None = None) -> Path:
    """A simulated results folder (one model, GSM8K), optionally edited or replaced by raw text."""
    folder = tmp / "results" / "dpo-1130"
    simulate.write_results(folder, "dpo-1130", {"gsm8k": 50.0}, seed=0)
    path = folder / "results.json"
    if edit is not None:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    if raw is not None:
        path.write_text(raw)
    return tmp / "results"


def _drop(key: str) -> Callable[[dict], dict]:
    def edit(d: dict) -> dict:
        d.pop(key)
        return d

    return edit


def _set(key: str, value: object) -> Callable[[dict], dict]:
    return lambda d: {**d, key: value}


def _data(tmp: Path, benchmark: str, rel: str, text: str) -> Path:
    path = tmp / "data" / benchmark / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return tmp / "data"


def _rows(tmp: Path, name: str, benchmark: str, rel: str, *rows: object) -> Path:
    """A --data-dir of its own (tmp/name) holding one file of JSON rows."""
    return _data(tmp / name, benchmark, rel, "".join(json.dumps(r) + "\n" for r in rows))


def _benchdata(tmp: Path, benchmark: str, rel: str, edit: Callable[[str], str]) -> Path:
    """A copy of the real items' folder (../shared/benchdata layout) with one file edited."""
    root = tmp / f"benchdata-{benchmark}"
    shutil.copytree(REAL_ITEMS / benchmark, root / benchmark)
    if benchmark == "hellaswag" and "original" not in rel:  # original rows win: the edited conversion is read
        for original in (root / benchmark).glob("hellaswag_val_original*.jsonl"):
            original.unlink()
    path = root / benchmark / rel
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return root


def _replace_line(n: int, text: str) -> Callable[[str], str]:
    def edit(content: str) -> str:
        lines = content.split("\n")
        lines[n - 1] = text
        return "\n".join(lines)

    return edit


def _model(tmp: Path, model: Path, name: str, change: Callable[[Path], None]) -> Path:
    """A copy of the tiny model folder with one thing wrong."""
    folder = tmp / name
    shutil.copytree(model, folder)
    change(folder)
    return folder


def _bin_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def _remote_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))


def _full_disk_site(tmp: Path) -> dict[str, str]:
    site = tmp / "full-disk-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(FULL_DISK_SITE)
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        "FAULT_FULL_DISK_UNDER": str(tmp.resolve()),
    }


def _tables(results: Path) -> list[str]:
    return ["tables", "--results", str(results), "--out", "tables-out"]


def _cases(tmp: Path, model: Path, rm: Path) -> dict[str, Case]:
    run = ["run", "--model", str(model), "--output", "eval-out", "--no-progress"]
    piqa_row = '{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n'
    return {**_original_cases(tmp, model, run, piqa_row), **_issue_16_cases(tmp, model, rm, run)}


def _a_file(tmp: Path) -> Path:
    blocker = tmp / "a-file-not-a-folder"
    blocker.write_text("x\n")
    return blocker


def _original_cases(tmp: Path, model: Path, run: list[str], piqa_row: str) -> dict[str, Case]:
    return {
        # repro
        "unknown recipe": Case("repro", ["sft-9999", "--dry-run"], "sft-9999"),
        "malformed override": Case(
            "repro", ["sft-1130", "--dry-run", "--override", "learning_rate"], "expected key=value"
        ),
        "unknown override key": Case("repro", ["sft-1130", "--dry-run", "--override", "lr=1e-5"], "lr"),
        "override of the wrong type": Case(
            "repro", ["sft-1130", "--dry-run", "--override", "learning_rate=fast"], "learning_rate"
        ),
        "impossible batch arithmetic": Case("repro", ["sft-1130", "--dry-run", "--world-size", "3"], "8"),
        "missing parent checkpoint": Case(
            "repro",
            ["dpo-1130", "--profile", "smoke"],
            "python -m repro sft-1130 --profile smoke",
            ["outputs/smoke/dpo-1130"],
            {"SMOLTULU_OUTPUTS": str(tmp / "outputs")},
        ),
        "bad ablation grid": Case(
            "repro", ["ablation-135m", "--grid", "lr=fast", "--out", "grid"], "lr", ["grid"]
        ),
        # evalsuite run
        "unknown benchmark": Case("evalsuite", [*run, "--benchmarks", "arc,mmlu"], "mmlu", ["eval-out"]),
        "unknown model": Case(
            "evalsuite",
            ["run", "--model", "no-such-model", "--output", "eval-out"],
            "no-such-model",
            ["eval-out"],
        ),
        "offline model not in cache": Case(
            "evalsuite",
            ["run", "--model", "dpo-1130", "--output", "eval-out"],
            "not in the local Hugging Face cache",
            ["eval-out"],
            {**OFFLINE, "HF_HOME": str(tmp / "empty-hf-home")},
        ),
        "data dir missing a benchmark": Case(
            "evalsuite",
            [
                *run,
                "--data-dir",
                str(_data(tmp / "only-piqa", "piqa", "validation.jsonl", piqa_row)),
                "--benchmarks",
                "piqa,arc",
            ],
            "no arc/ folder",
            ["eval-out"],
        ),
        "empty dataset": Case(
            "evalsuite",
            [*run, "--data-dir", str(_data(tmp, "piqa", "validation.jsonl", "")), "--benchmarks", "piqa"],
            "no rows",
            ["eval-out"],
        ),
        "dataset with wrong columns": Case(
            "evalsuite",
            [
                *run,
                "--data-dir",
                str(_data(tmp, "hellaswag", "validation.jsonl", piqa_row)),
                "--benchmarks",
                "hellaswag",
            ],
            "lacks activity_label",
            ["eval-out"],
        ),
        "output dir not writable": Case(
            "evalsuite",
            [
                "run",
                "--model",
                str(model),
                "--output",
                str(_a_file(tmp)),  # a file where the output folder should be (not inside the model)
                "--data-dir",
                str(DEMO_DATA),
                "--benchmarks",
                "piqa",
            ],
            "cannot write results",
        ),
        "limit of zero": Case("evalsuite", [*run, "--limit", "0"], "--limit", ["eval-out"]),
        "causal LM where a reward model is required": Case(
            "evalsuite",
            [*run, "--data-dir", str(DEMO_DATA), "--benchmarks", "rewardbench"],
            "needs a reward-model",
            ["eval-out"],
        ),
        # evalsuite score
        "outputs file not JSON": Case(
            "evalsuite",
            [
                "score",
                "--benchmark",
                "gsm8k",
                "--outputs",
                str(_data(tmp, "x", "o.jsonl", "{oops\n") / "x/o.jsonl"),
                "--data-dir",
                str(DEMO_DATA),
                "--output",
                "score-out",
            ],
            "not valid JSON",
            ["score-out"],
        ),
        # evalsuite tables
        "corrupt results JSON": Case(
            "evalsuite", _tables(_results(tmp / "corrupt", raw="{not json")), "results.json", ["tables-out"]
        ),
        "truncated results JSON": Case(
            "evalsuite",
            _tables(_results(tmp / "trunc", raw=json.dumps({"format": "x", "model": {}})[:20])),
            "results.json",
            ["tables-out"],
        ),
        "results of another protocol version": Case(
            "evalsuite",
            _tables(_results(tmp / "proto", _set("protocol", "lm-eval-default/0"))),
            "protocol",
            ["tables-out"],
        ),
        "results with a missing field": Case(
            "evalsuite", _tables(_results(tmp / "field", _drop("benchmarks"))), "benchmarks", ["tables-out"]
        ),
        "unknown table format": Case(
            "evalsuite", ["tables", "--format", "html", "--out", "tables-out"], "html", ["tables-out"]
        ),
    }


def _issue_16_cases(tmp: Path, model: Path, rm: Path, run: list[str]) -> dict[str, Case]:
    """Every class of issue 16 that the CLIs can be driven into (each once at least)."""
    a_file = tmp / "a-file"
    a_file.write_text("not a folder")
    read_only = tmp / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    dry = ["sft-1130", "--dry-run"]
    piqa = ["--data-dir", str(DEMO_DATA), "--benchmarks", "piqa", "--limit", "1"]
    on = {  # a bad --data-dir for one benchmark -> the `run` arguments
        "piqa": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "piqa"],
        "arc": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "arc"],
        "hellaswag": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "hellaswag"],
        "mmlu_pro": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "mmlu_pro"],
        "gsm8k": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "gsm8k"],
        "ifeval": lambda d: [*run, "--data-dir", str(d), "--benchmarks", "ifeval"],
    }
    gsm8k = {"question": "q", "answer": "1 + 1 = 2\n#### 2"}
    words = {"key": 1, "prompt": "Write.", "instruction_id_list": ["length_constraints:number_words"]}
    bad_utf8 = tmp / "not-utf8" / "piqa" / "validation.jsonl"
    bad_utf8.parent.mkdir(parents=True)
    bad_utf8.write_bytes(b'{"goal": "caf\xe9", "sol1": "a", "sol2": "b", "label": 0}\n')
    outputs = tmp / "outputs" / "gsm8k.jsonl"
    outputs.parent.mkdir()
    outputs.write_text(json.dumps({"id": "gsm8k:0", "output": "#### 1"}) + "\n")
    latin1 = tmp / "outputs" / "latin1.jsonl"
    latin1.write_bytes(b'{"id": "gsm8k:0", "output": "\xe9t\xe9 #### 1"}\n')
    score = ["score", "--benchmark", "gsm8k", "--data-dir", str(DEMO_DATA), "--output", "score-out"]
    input_data = tmp / "ifeval-ref" / "input_data.jsonl"
    input_data.parent.mkdir()
    input_data.write_text(
        json.dumps({**words, "kwargs": [{"relation": "at least", "num_words": "ten"}]}) + "\n"
    )
    (input_data.parent / "responses.jsonl").write_text(
        json.dumps({"prompt": "Write.", "response": "Hi."}) + "\n"
    )
    ifeval_outputs = tmp / "outputs" / "ifeval.jsonl"
    ifeval_outputs.write_text(json.dumps({"id": "1", "output": "Hi."}) + "\n")
    full_disk = _full_disk_site(tmp)
    gsm8k_answer = _rows(tmp, "gsm8k-answer", "gsm8k", "test.jsonl", {"question": "q", "answer": "2"})
    _data(tmp / "gsm8k-answer", "gsm8k", "train.jsonl", (json.dumps(gsm8k) + "\n") * 5)
    gsm8k_pool = _rows(tmp, "gsm8k-pool", "gsm8k", "test.jsonl", gsm8k)
    _data(tmp / "gsm8k-pool", "gsm8k", "train.jsonl", (json.dumps(gsm8k) + "\n") * 4)
    good_results = _results(tmp / "good")
    rewardbench = {"prompt": "p", "chosen": 5, "rejected": "r", "subset": "alpacaeval-easy"}
    return {
        # impossible numbers
        "world size 0": Case("repro", [*dry, "--world-size", "0"], "world size 0"),
        "negative world size": Case("repro", [*dry, "--world-size", "-1"], "world size -1"),
        "per-device batch 0": Case("repro", [*dry, "--per-device-batch", "0"], "per-device batch 0"),
        "learning rate NaN": Case("repro", [*dry, "--override", "learning_rate=.nan"], "learning_rate"),
        "negative learning rate": Case("repro", [*dry, "--override", "learning_rate=-1"], "learning_rate"),
        "negative seed": Case("repro", [*dry, "--seed", "-1"], "seed -1"),
        "evaluation batch size 0": Case(
            "evalsuite",
            [*run, *piqa, "--batch-size", "0"],
            "--batch-size",
            ["eval-out"],
        ),
        # unwritable or impossible output paths
        "model folder under a file": Case("repro", ["tiny-model", "--out", str(a_file / "m")], "a-file"),
        "hparam tables under a file": Case(
            "repro", ["hparam-tables", "--out", str(a_file / "t.md")], "a-file"
        ),
        "model folder in a read-only folder": Case(
            "repro", ["tiny-model", "--out", str(read_only / "m")], "read-only", marks=[as_root]
        ),
        "results root is a file": Case(
            "evalsuite", ["run", "--model", str(model), "--output", str(a_file), *piqa], "a-file"
        ),
        "results in a read-only folder": Case(
            "evalsuite",
            ["run", "--model", str(model), "--output", str(read_only / "out"), *piqa],
            "read-only",
            marks=[as_root],
        ),
        "scores under a file": Case(
            "evalsuite", [*score[:-1], str(a_file / "s"), "--outputs", str(outputs)], "a-file"
        ),
        "tables under a file": Case(
            "evalsuite", ["tables", "--results", str(good_results), "--out", str(a_file / "t")], "a-file"
        ),
        # a full disk
        "full disk while writing hparam tables": Case(
            "repro", ["hparam-tables", "--out", "t.md"], "No space left on device", ["t.md"], full_disk
        ),
        "full disk while writing scores": Case(
            "evalsuite",
            [*score, "--outputs", str(outputs)],
            "No space left on device",
            ["score-out"],
            full_disk,
        ),
        "full disk while writing tables": Case(
            "evalsuite",
            ["tables", "--results", str(good_results), "--out", "tables-out", "--resamples", "1000"],
            "No space left on device",
            ["tables-out"],
            full_disk,
        ),
        # malformed data rows (hub layout)
        "label out of range": Case(
            "evalsuite",
            on["piqa"](
                _rows(
                    tmp,
                    "piqa-label",
                    "piqa",
                    "validation.jsonl",
                    {"goal": "g", "sol1": "a", "sol2": "b", "label": 2},
                )
            ),
            "validation.jsonl:1: field 'label' is 2",
            ["eval-out"],
        ),
        "answer index of the wrong type": Case(
            "evalsuite",
            on["mmlu_pro"](
                _rows(
                    tmp,
                    "mmlu-index",
                    "mmlu_pro",
                    "test.jsonl",
                    {"question": "q", "options": ["a", "b"], "answer_index": "B", "category": "math"},
                )
            ),
            "field 'answer_index' is \"B\"",
            ["eval-out"],
        ),
        "answer key not among the choices": Case(
            "evalsuite",
            on["arc"](
                _rows(
                    tmp,
                    "arc-key",
                    "arc",
                    "ARC-Easy/test.jsonl",
                    {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
                )
            ),
            "field 'answerKey' is \"E\"",
            ["eval-out"],
        ),
        "endings that are not a list": Case(
            "evalsuite",
            on["hellaswag"](
                _rows(
                    tmp,
                    "hellaswag-endings",
                    "hellaswag",
                    "validation.jsonl",
                    {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": "d", "label": "0"},
                )
            ),
            "field 'endings'",
            ["eval-out"],
        ),
        "GSM8K answer without its #### line": Case(
            "evalsuite",
            on["gsm8k"](gsm8k_answer),
            "test.jsonl:1: field 'answer' has no final '#### N' line",
            ["eval-out"],
        ),
        "GSM8K shot pool smaller than the shots": Case(
            "evalsuite",
            on["gsm8k"](gsm8k_pool),
            "at least 5",
            ["eval-out"],
        ),
        "data row that is not JSON": Case(
            "evalsuite",
            on["piqa"](_data(tmp / "piqa-json", "piqa", "validation.jsonl", '{"goal": "g"}\n{oops\n')),
            "validation.jsonl:2: not JSON",
            ["eval-out"],
        ),
        "data file not UTF-8": Case(
            "evalsuite", on["piqa"](tmp / "not-utf8"), "validation.jsonl: not UTF-8", ["eval-out"]
        ),
        # malformed data rows (../shared/benchdata layout)
        "PIQA label file with a 2": Case(
            "evalsuite",
            on["piqa"](_benchdata(tmp, "piqa", "valid-labels.lst", _replace_line(2, "2"))),
            "valid-labels.lst:2: label '2' is not 0 or 1",
            ["eval-out"],
        ),
        "ARC gold index out of range": Case(
            "evalsuite",
            on["arc"](
                _benchdata(
                    tmp,
                    "arc",
                    "arc_easy_test.llmfoundry.jsonl",
                    _replace_line(3, json.dumps({"query": "Question: q", "choices": ["a", "b"], "gold": 7})),
                )
            ),
            "arc_easy_test.llmfoundry.jsonl:3: field 'gold' is 7",
            ["eval-out"],
        ),
        "HellaSwag gold line not a number": Case(
            "evalsuite",
            on["hellaswag"](
                _benchdata(tmp, "hellaswag", "hellaswag_val_full.txt", _replace_line(8, "three"))
            ),
            "hellaswag_val_full.txt:8: the gold line",
            ["eval-out"],
        ),
        # invalid IFEval instruction arguments
        "IFEval argument of the wrong type": Case(
            "evalsuite",
            on["ifeval"](
                _rows(
                    tmp, "ifeval-type", "ifeval", "train.jsonl", {**words, "kwargs": [{"num_words": "ten"}]}
                )
            ),
            "argument 'num_words' is \"ten\"",
            ["eval-out"],
        ),
        "IFEval argument the instruction does not take": Case(
            "evalsuite",
            on["ifeval"](
                _rows(tmp, "ifeval-name", "ifeval", "train.jsonl", {**words, "kwargs": [{"num_word": 10}]})
            ),
            "argument 'num_word' is not one it takes",
            ["eval-out"],
        ),
        "IFEval relation that does not exist": Case(
            "evalsuite",
            [
                "score",
                "--benchmark",
                "ifeval",
                "--outputs",
                str(ifeval_outputs),
                "--output",
                "score-out",
                "--data-dir",
                str(
                    _rows(
                        tmp,
                        "ifeval-relation",
                        "ifeval",
                        "train.jsonl",
                        {**words, "kwargs": [{"relation": "about", "num_words": 9}]},
                    )
                ),
            ],
            "argument 'relation' is \"about\"",
            ["score-out"],
        ),
        "IFEval arguments of outside outputs": Case(
            "evalsuite",
            [
                "score",
                "--benchmark",
                "ifeval",
                "--input-data",
                str(input_data),
                "--outputs",
                str(input_data.parent / "responses.jsonl"),
            ],
            "input_data.jsonl:1: IFEval item 1: kwargs[0] (length_constraints:number_words): argument",
        ),
        # outputs made elsewhere
        "outputs file not UTF-8": Case(
            "evalsuite", [*score, "--outputs", str(latin1)], "latin1.jsonl: not UTF-8", ["score-out"]
        ),
        # reward-model data
        "reward pair of the wrong type": Case(
            "evalsuite",
            [
                "run",
                "--model",
                str(rm),
                "--output",
                "eval-out",
                "--no-progress",
                "--benchmarks",
                "rewardbench",
                "--data-dir",
                str(_rows(tmp, "reward-type", "rewardbench", "filtered.jsonl", rewardbench)),
            ],
            "filtered.jsonl:1: field 'chosen' is 5",
            ["eval-out"],
        ),
        # model folders the suite must not load
        "model folder without a tokenizer": Case(
            "evalsuite",
            [
                *run[:2],
                str(_model(tmp, model, "no-tok", lambda f: (f / "tokenizer.json").unlink())),
                *run[3:],
                *piqa,
            ],
            "no tokenizer",
            ["eval-out"],
        ),
        "truncated weights": Case(
            "evalsuite",
            [*run[:2], str(_model(tmp, model, "truncated", _truncate_weights)), *run[3:], *piqa],
            "not a whole safetensors file",
            ["eval-out"],
        ),
        "remote code in the config": Case(
            "evalsuite",
            [*run[:2], str(_model(tmp, model, "remote", _remote_code)), *run[3:], *piqa],
            "remote code",
            ["eval-out"],
        ),
        "pytorch_model.bin only": Case(
            "repro",
            ["dpo-1130", "--profile", "smoke", "--from", str(_model(tmp, model, "bin-only", _bin_only))],
            "safetensors only",
            ["outputs/smoke/dpo-1130"],
            {"SMOLTULU_OUTPUTS": str(tmp / "outputs")},
        ),
    }


def _case_params() -> list:
    """The case names, with their marks; the cases are built in a throwaway folder around a stand-in
    model (nothing is written anywhere else at collection time)."""
    from safetensors.torch import save_file
    from torch import zeros

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        (model / "tokenizer.json").write_text("{}")
        save_file({"w": zeros(1)}, model / "model.safetensors")
        cases = _cases(Path(tmp), model, model)
        (Path(tmp) / "read-only").chmod(0o755)
    return [pytest.param(name, marks=case.marks, id=name) for name, case in cases.items()]


CASE_PARAMS = _case_params()


@pytest.fixture(scope="module")
def tiny_rm(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a one-output score head: a reward model for the reward-data cases."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-rm")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    name: str, tmp_path: Path, tiny_model_dir: Path, tiny_rm: Path
) -> None:
    case = _cases(tmp_path, tiny_model_dir, tiny_rm)[name]
    before = {p for p in tmp_path.rglob("*")}
    result = run_module(case.module, *case.args, env={"SMOLTULU_DEBUG": "", **case.env}, cwd=tmp_path)
    result.assert_usage_error(case.needle)
    assert "internal error" not in result.stderr, result.stderr  # each is handled where it happens
    for rel in case.must_not_exist:
        assert not (tmp_path / rel).exists(), f"{rel} was left behind"
    # nothing at all was written under the working folder (temp files included)
    assert {p for p in tmp_path.rglob("*")} == before
    assert not any(p.name.endswith(".tmp") for p in tiny_model_dir.iterdir())


def test_at_least_fifteen_bad_inputs_across_the_three_commands(tmp_path: Path, tiny_model_dir: Path) -> None:
    cases = _cases(tmp_path, tiny_model_dir, tiny_model_dir)
    assert len(cases) >= 15
    assert {c.module for c in cases.values()} == {"repro", "evalsuite"}
    assert {c.args[0] for c in cases.values() if c.module == "evalsuite"} >= {"run", "score", "tables"}


@pytest.mark.parametrize(
    "how",
    [["--debug", "tiny-model"], ["tiny-model", "--debug"], ["tiny-model"]],
    ids=["before the command", "after the command", "SMOLTULU_DEBUG=1"],
)
def test_debug_shows_the_traceback(how: list[str], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = {"SMOLTULU_DEBUG": "" if "--debug" in how else "1"}
    result = run_module("repro", *how, "--out", str(tmp_path / "a-file" / "m"), env=env, cwd=tmp_path)
    assert result.returncode not in (0, 2) and "Traceback" in result.stderr, result.stderr
    assert not (tmp_path / "a-file" / "m").exists()


def _cache_run_argv(model: Path, output: Path) -> list[str]:
    return [
        "run", "--model", str(model), "--data-dir", str(DEMO_DATA), "--benchmarks", "piqa", "--limit", "1",
        "--output", str(output), "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cached_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-item PIQA run with its request cache: each case below damages a copy of it."""
    output = tmp_path_factory.mktemp("cached-run")
    first = run_module("evalsuite", *_cache_run_argv(tiny_model_dir, output), env=OFFLINE)
    assert first.returncode == 0, first.stderr[-2000:]
    return output / tiny_model_dir.name


@pytest.mark.slow  # two evaluation CLI runs (one shared by the cases)
@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            '{"fingerprint": "%s", "key": "%s", "answer": "not a log-likelihood"}',
            id="answer of the wrong type",
        ),
        pytest.param(
            '{"fingerprint": "%s", "key": "%s", "answer": [1]}',
            id="answer of the wrong length",
        ),
        pytest.param('{"fingerprint": "%s", "key": "%s"}', id="no answer"),
        pytest.param("[1, 2]", id="a list"),
        pytest.param("null", id="null"),
    ],
)
def test_a_malformed_cache_line_is_skipped_and_recomputed(
    line: str, tiny_model_dir: Path, cached_run: Path, tmp_path: Path
) -> None:
    """The request cache's contract (evalsuite/harness/resumable.py): a damaged line is skipped, counted and
    its request computed again; never a traceback, never a wrong answer reused."""
    from evalsuite import results as results_io

    argv = _cache_run_argv(tiny_model_dir, tmp_path)
    folder = tmp_path / tiny_model_dir.name
    shutil.copytree(cached_run, folder)
    scores = {k: v.score for k, v in results_io.load(folder).benchmarks.items()}
    cache = folder / "cache" / "requests.jsonl"
    records = [json.loads(x) for x in cache.read_text().splitlines()]
    records[0] = line % (records[0]["fingerprint"], records[0]["key"]) if "%s" in line else line
    cache.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    (folder / "results.json").unlink()  # as a run killed before its end leaves it
    again = run_module("evalsuite", *argv, env=OFFLINE)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    res = results_io.load(folder)
    assert res.settings["computed_requests"] == 1 and res.settings["reused_requests"] == 1
    assert res.settings["damaged_cache_lines"] == 1
    assert {k: v.score for k, v in res.benchmarks.items()} == scores


def _smoke_sft(outputs: Path) -> Path:
    result = run_module("repro", "sft-1130", "--profile", "smoke", env={"SMOLTULU_OUTPUTS": str(outputs)})
    assert result.returncode == 0, result.stderr[-2000:]
    return outputs / "smoke" / "sft-1130"


@pytest.mark.slow  # a smoke run, compared with the session's shared one
def test_two_training_runs_with_the_same_seed_are_identical(smoke_sft: Path, tmp_path: Path) -> None:
    a, b = smoke_sft, _smoke_sft(tmp_path / "b")
    losses = [json.loads((r / "manifest.json").read_text())["metrics"]["step_losses"] for r in (a, b)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert_same_weights(a / "final", b / "final")


@pytest.mark.slow  # two evaluation CLI runs
def test_two_evaluations_give_identical_scores(tiny_model_dir: Path, tmp_path: Path) -> None:
    from evalsuite import results as results_io

    folders = []
    for out in ("a", "b"):
        result = run_module(
            "evalsuite", "run", "--model", str(tiny_model_dir), "--data-dir", str(DEMO_DATA), "--benchmarks",
            "arc,gsm8k,piqa", "--limit", "2", "--output", str(tmp_path / out), "--no-progress", env=OFFLINE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        folders.append(tmp_path / out / tiny_model_dir.name)
    a, b = (results_io.load(f) for f in folders)
    assert {k: (v.score, v.n) for k, v in a.benchmarks.items()} == {
        k: (v.score, v.n) for k, v in b.benchmarks.items()
    }
    for bench in ("arc", "gsm8k", "piqa"):
        items = [results_io.load_items(f, bench) for f in folders]
        assert items[0] == items[1]
