"""Models the benchmarks time: the embedded tiny/small ones, or SmolLM2-1.7B's shape at random.

Speed does not depend on the weights' values, so the 1.7B model is SmolLM2-1.7B's exact
configuration (HuggingFaceTB/SmolLM2-1.7B config.json) randomly initialised in bf16 with the
embedded tokenizer (its 1024 ids are a subset of the 49152-row embedding): no download needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from core import tiny

# The sizes of SmolLM2-1.7B; the shared architecture constants live in core.tiny.SMOLLM2_ARCH.
SMOLLM2_1_7B = {
    "vocab_size": 49152,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "head_dim": 64,
}


def build_model(out: Path, size: str) -> Path:
    """Write a model of `size` ("tiny", "small" or "1.7b") into `out` and return it."""
    if size in tiny.SIZES:
        return tiny.build_tiny_model(out, size=size)
    if size != "1.7b":
        raise ValueError(f"unknown model size {size!r}; choose tiny, small or 1.7b")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny.build_tokenizer()
    config = LlamaConfig(
        **SMOLLM2_1_7B,
        **tiny.SMOLLM2_ARCH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    settings = json.loads((out / "tokenizer_config.json").read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"  # loadable by vLLM's transformers too
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return out
