"""The embedded default model: SmolLM2's shape, deterministic bytes, usable by transformers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import run_module

# SmolLM2-Instruct's rendering of one user turn, written out by hand from its template.
EXPECTED_CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_cli_builds_byte_identical_models(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_module("repro", "tiny-model", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert first == second
    assert "model.safetensors" in first
    assert not [n for n in first if n.endswith((".bin", ".pt", ".pth"))]


def test_seed_changes_weights_not_tokenizer(tmp_path: Path) -> None:
    from core.tiny import build_tiny_model

    a = _digests(build_tiny_model(tmp_path / "s0", seed=0))
    b = _digests(build_tiny_model(tmp_path / "s1", seed=1))
    assert a["model.safetensors"] != b["model.safetensors"]


def test_architecture_is_smollm2_shaped(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.architectures == ["LlamaForCausalLM"]
    assert config.tie_word_embeddings is True
    assert config.hidden_size // config.num_attention_heads >= 32  # vLLM CPU attention
    assert config.rope_parameters["rope_theta"] == 130000.0
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_tokenizer_special_tokens_and_chat_template(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == EXPECTED_CHAT
    # An explicit system turn replaces the default text.
    with_system = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], tokenize=False
    )
    assert with_system == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    # Byte-level BPE: any text round-trips, special tokens stay single tokens.
    text = "Ich lerne Deutsch; 12,345 × 6 = ? #### 74070 ✓"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids.count(2) == 2


def test_model_generates_greedily(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hello"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    runs = [model.generate(**prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False) for _ in range(2)]
    assert runs[0].shape[1] == prompt["input_ids"].shape[1] + 8
    assert torch.equal(runs[0], runs[1])


def test_small_size_has_a_few_million_parameters(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from core.tiny import build_tiny_model, parameter_count

    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "small", size="small"))
    n = model.num_parameters()
    assert 2_000_000 <= n <= 10_000_000
    assert n == parameter_count("small", model.config.vocab_size)


def test_refuses_non_empty_out(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    run_module("repro", "tiny-model", "--out", str(tmp_path)).assert_usage_error("not empty", "--force")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("module", ["repro", "evalsuite"])
def test_help_lists_commands(module: str) -> None:
    result = run_module(module, "--help")
    assert result.returncode == 0
    expected = {"repro": ["tiny-model", "lock"], "evalsuite": ["models"]}[module]
    for command in expected:
        assert command in result.stdout


def test_unknown_command_is_one_line() -> None:
    run_module("repro", "no-such-command").assert_usage_error("invalid choice")
