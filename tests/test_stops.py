"""Generation stops where the reference stops: the tokenizer's EOS and generation_config's eos ids.

SmolTulu-1.7b-Instruct's generation_config declares eos id 0 while its tokenizer's EOS may be
another token; lighteval's vLLM model stops at both. Here a copy of the tiny model declares, in
generation_config.json, an ordinary token that greedy decoding reaches after a few steps: both
backends must stop right after it.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
from pathlib import Path

import pytest

from evalsuite.harness import lm_run

PROMPT = [{"role": "user", "content": "Question: What is 12 plus 7?\nAnswer:"}]
STEPS = 12


@pytest.fixture(scope="module")
def stopping_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny model with generation_config eos = a token greedy decoding reaches before the limit."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    context = tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = tok(context, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False)
    greedy = out[0, ids["input_ids"].shape[1] :].tolist()
    # the last token that greedy decoding produces for the first time (the tiny model may repeat one)
    firsts = [i for i in range(STEPS - 1) if greedy[i] not in greedy[:i] and greedy[i] != tok.eos_token_id]
    k = firsts[-1]
    folder = tmp_path_factory.mktemp("stops") / "model"
    shutil.copytree(tiny_model_dir, folder)
    GenerationConfig(eos_token_id=[greedy[k]]).save_pretrained(folder)
    return {
        "path": folder,
        "context": context,
        # HF keeps the stop token's text, vLLM drops it (v1, as v0's StopChecker did in lighteval's
        # time); the real stop ids are special tokens, whose text neither backend shows.
        "stopped": tok.decode(greedy[: k + 1], skip_special_tokens=True),
        "stopped_vllm": tok.decode(greedy[:k], skip_special_tokens=True),
        "unstopped": tok.decode(greedy, skip_special_tokens=True),
        "ids": sorted({tok.eos_token_id, greedy[k]}),
    }


def _generate(path: Path, backend: str, context: str, stop_ids: list[int] | None, tmp: Path) -> str:
    from lm_eval.api.instance import Instance

    from evalsuite.harness.resumable import ResumableLM

    if backend == "vllm":  # as lm_run._build_lm on CPU, with a small share of RAM for the KV cache
        from lm_eval.models.vllm_causallms import VLLM

        inner = VLLM(
            pretrained=str(path), dtype="float32", max_model_len=2048, enforce_eager=True, seed=1234,
            gpu_memory_utilization=0.1, batch_size="auto", trust_remote_code=False,
        )  # fmt: skip
    else:
        inner, _ = lm_run._build_lm(path, backend, 1)
    extra = lm_run.apply_stop_ids(inner, backend, stop_ids) if stop_ids is not None else {}
    if stop_ids is None and backend == "hf":
        inner.model.generation_config.eos_token_id = None  # what generation does without the explicit ids
    lm = ResumableLM(
        inner, tmp / f"{backend}-{stop_ids}.jsonl", fingerprint="t", gen_extra=extra, progress=False
    )
    kwargs = {"until": [], "max_gen_toks": STEPS, "do_sample": False, "temperature": 0.0}
    (out,) = lm.generate_until([Instance("generate_until", {}, (context, kwargs), 0)])
    del lm, inner  # free the engine (vLLM holds its KV cache) before the next test builds one
    gc.collect()
    return out


def test_stop_ids_read_from_the_model(stopping_model: dict) -> None:

    assert lm_run.stop_token_ids(stopping_model["path"]) == stopping_model["ids"]


def test_hf_backend_stops_at_a_generation_config_eos(stopping_model: dict, tmp_path: Path) -> None:

    m = stopping_model
    ids = lm_run.stop_token_ids(m["path"])
    assert _generate(m["path"], "hf", m["context"], ids, tmp_path) == m["stopped"]
    # the control: without the ids, the same request runs to the token limit
    assert _generate(m["path"], "hf", m["context"], None, tmp_path) == m["unstopped"] != m["stopped"]


@pytest.mark.vllm
@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vllm is not installed: run `tox -e vllm`"
)
def test_vllm_backend_stops_at_a_generation_config_eos(stopping_model: dict, tmp_path: Path) -> None:

    m = stopping_model
    ids = lm_run.stop_token_ids(m["path"])
    assert _generate(m["path"], "vllm", m["context"], ids, tmp_path) == m["stopped_vllm"]
