"""The embedded default model: a tiny random LlamaForCausalLM shaped like SmolLM2.

Every code path of the suite (training, evaluation, vLLM) runs on it offline. It is built
deterministically from a seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# SmolLM2-1.7B's architecture constants (HuggingFaceTB/SmolLM2-1.7B config.json); only the
# sizes below shrink. head_dim stays 32 because vLLM's CPU attention needs head_dim >= 32.
SMOLLM2_ARCH = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 130000.0,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
}
# SmolLM2's tokenizer puts these first, in this order (ids 0, 1, 2).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
VOCAB_SIZE = 1024
HEAD_DIM = 32


@dataclass(frozen=True)
class ModelSize:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int

    @property
    def num_attention_heads(self) -> int:
        return self.hidden_size // HEAD_DIM


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(hidden_size=64, intermediate_size=256, num_hidden_layers=2),
    "small": ModelSize(hidden_size=256, intermediate_size=1024, num_hidden_layers=4),
}


def chat_template() -> str:
    """The SmolLM2-Instruct ChatML template, with its default system text."""
    return resources.files("core.data").joinpath("smollm2_chat_template.jinja").read_text()


def tokenizer_corpus(seed: int) -> list[str]:
    """The project's hand-written corpus plus seeded arithmetic drills, one string per line."""
    text = resources.files("core.data").joinpath("tiny_corpus.txt").read_text(encoding="utf-8")
    rng = random.Random(seed)
    drills = []
    for _ in range(400):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        drills.append(f"Question: What is {a} plus {b}?\nAnswer: {a} + {b} = {a + b}. #### {a + b}")
    return [line for line in text.splitlines() if line.strip()] + drills


def build_tokenizer(seed: int = 0):
    """Train a byte-level BPE tokenizer (SmolLM2's pre-tokenisation) on the project corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tokenizer_corpus(seed), trainer=trainer)
    # Special tokens as in SmolLM2-Instruct: bos <|im_start|>, eos = pad <|im_end|>.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=SMOLLM2_ARCH["max_position_embeddings"],
        chat_template=chat_template(),
        clean_up_tokenization_spaces=False,
    )


def build_config(size: str, vocab_size: int, tokenizer):
    from transformers import LlamaConfig

    shape = SIZES[size]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,  # SmolLM2-1.7B uses no GQA
        head_dim=HEAD_DIM,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
        **SMOLLM2_ARCH,
    )


def build_tiny_model(out_dir: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """Build the model and tokenizer into `out_dir` (which must not hold anything else)."""
    import torch
    from transformers import LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    tokenizer = build_tokenizer(seed)
    config = build_config(size, len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    # transformers 5 names its own backend class; the generic name loads in 4.x too (vLLM).
    tok_config = out_dir / "tokenizer_config.json"
    settings = json.loads(tok_config.read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return out_dir


def parameter_count(size: str, vocab_size: int = VOCAB_SIZE) -> int:
    """Parameters of a size (tied embeddings counted once), without building it."""
    s = SIZES[size]
    per_layer = 4 * s.hidden_size**2 + 3 * s.hidden_size * s.intermediate_size + 2 * s.hidden_size
    return vocab_size * s.hidden_size + s.num_hidden_layers * per_layer + s.hidden_size
