"""The training chat template: open-instruct's `tulu` or SmolLM2's ChatML, picked by rendering, never a guess.

The tiny model carries SmolLM2's ChatML; its `tulu` twin is the same model whose tokenizer carries
open-instruct's `tulu` template with SmolLM2's base EOS `<|endoftext|>` (id 0, the EOS SmolTulu's
generation config declares). SFT masks are compared with open-instruct's `encode_sft_example` rule,
re-implemented below from its description (allenai/open-instruct @ 816dcbf, finetune.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core import chat_templates, recipe
from core.errors import UsageError
from repro.training import trl_args

TEMPLATES = ("chatml", "tulu")
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another?"},
    {"role": "assistant", "content": "Red."},
]
# What each template scores in CONVERSATION: every assistant turn with its end-of-turn token, and
# the newline after it where the next message's span starts after it (ChatML), not where it is
# written between turns by the assistant's own template branch (tulu).
SCORED = {
    "chatml": ["Blue.<|im_end|>\n", "Red.<|im_end|>\n"],
    "tulu": ["Blue.<|endoftext|>", "Red.<|endoftext|>"],
}


def tulu_model(tiny_model_dir: Path, out: Path) -> Path:
    """The tiny model with open-instruct's `tulu` template and SmolLM2's base EOS, as SmolTulu may be."""
    from transformers import AutoTokenizer

    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = chat_templates.CANDIDATES["tulu"].plain()
    tok.eos_token = "<|endoftext|>"
    tok.save_pretrained(out)
    for name in ("config.json", "generation_config.json"):
        if (out / name).is_file():
            config = json.loads((out / name).read_text())
            config["eos_token_id"] = tok.eos_token_id
            (out / name).write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "chatml": tiny_model_dir,
        "tulu": tulu_model(tiny_model_dir, tmp_path_factory.mktemp("t") / "tulu"),
    }


def tokenizer_of(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def ids_of(tokenizer, messages: list[dict[str, str]], generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, return_dict=True)
    return list(out["input_ids"])


def open_instruct_labels(tokenizer, messages: list[dict[str, str]]) -> list[bool]:
    """Which tokens encode_sft_example leaves unmasked: all but each non-assistant message's span.

    A non-assistant message's span runs from the length of the rendering of the messages before it
    to the length of the rendering up to it, with the generation prompt when an assistant follows.
    """

    def length(prefix: list[dict[str, str]], generation_prompt: bool) -> int:
        return len(ids_of(tokenizer, prefix, generation_prompt))

    labels = [True] * length(messages, False)
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            continue
        start = 0 if i == 0 else length(messages[:i], False)
        follows = i + 1 < len(messages) and messages[i + 1]["role"] == "assistant"
        for position in range(start, length(messages[: i + 1], follows)):
            labels[position] = False
    return labels


def spans(tokenizer, ids: list[int], scored: list[bool]) -> list[str]:
    """The decoded runs of scored tokens."""
    out, run = [], []
    for token, keep in zip(ids, scored, strict=True):
        if keep:
            run.append(token)
        elif run:
            out.append(tokenizer.decode(run))
            run = []
    return [*out, tokenizer.decode(run)] if run else out


def test_tulu_renders_as_open_instruct_writes_it(model_dirs: dict[str, Path]) -> None:
    tok = tokenizer_of(model_dirs["tulu"])
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == (
        "<|system|>\nBe brief.\n<|user|>\nName a colour.\n<|assistant|>\nBlue.<|endoftext|>\n"
        "<|user|>\nAnother?\n<|assistant|>\nRed.<|endoftext|>"
    )
    prompt = tok.apply_chat_template(CONVERSATION[:4], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|endoftext|>\n<|user|>\nAnother?\n<|assistant|>\n")
    # the generation-marked copy renders the same text on every probe, and ChatML does not
    assert chat_templates.renders_like_tokenizer(tok, "tulu", [CONVERSATION])
    assert not chat_templates.renders_like_tokenizer(tok, "chatml")


def test_chatml_training_template_renders_as_smollm2(tiny_model_dir: Path) -> None:
    tok = tokenizer_of(tiny_model_dir)
    assert chat_templates.renders_like_tokenizer(tok, "chatml", [CONVERSATION])
    assert not chat_templates.renders_like_tokenizer(tok, "tulu")
    assert chat_templates.CANDIDATES["chatml"].plain() == tok.chat_template


@pytest.mark.parametrize("name", TEMPLATES)
def test_auto_picks_the_template_that_renders_like_the_tokenizer(
    name: str, model_dirs: dict[str, Path]
) -> None:
    picked = chat_templates.select(tokenizer_of(model_dirs[name]), "auto", "assumption: test")
    assert (picked.name, picked.matches_tokenizer) == (name, True)
    assert picked.record()["name"] == name and picked.record()["requested"] == "auto"


def test_a_template_like_no_candidate_is_refused(tiny_model_dir: Path) -> None:
    tok = tokenizer_of(tiny_model_dir)
    tok.chat_template = tok.chat_template.replace("You are a helpful AI assistant", "You are an assistant")
    with pytest.raises(UsageError, match="renders differently from every training template"):
        chat_templates.select(tok)
    # a named template is used as asked; the saved tokenizer then carries it, as open-instruct saves its own
    forced = chat_templates.select(tok, "tulu", "override: test")
    assert (forced.name, forced.matches_tokenizer) == ("tulu", False)
    assert chat_templates.saved_template(tok, forced) == chat_templates.CANDIDATES["tulu"].plain()
    with pytest.raises(UsageError, match="choose auto or one of tulu, chatml"):
        chat_templates.select(tok, "zephyr")


def test_recipes_default_to_auto_with_a_source() -> None:
    for name in ("sft-1130", "dpo-1130", "rm-1130", "ablation-135m"):
        value, source = chat_templates.requested(recipe.load(name))
        assert value == "auto" and source.startswith("assumption: ")
        assert "chat_template_name" not in trl_args.trl_kwargs(
            recipe.load("sft-1130"), recipe.plan_batch(8, 1), "out"
        )
    assert "auto" in chat_templates.describe(recipe.load("dpo-1130"))


@pytest.mark.parametrize("name", TEMPLATES)
def test_sft_masks_are_open_instructs(name: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    from datasets import Dataset

    from repro.stages import sft

    r = recipe.load("sft-1130")
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(1, 1), str(tmp_path))
    config = trl_args.config_class("sft")(**{**kwargs, "bf16": False, "use_cpu": True})
    tok = tokenizer_of(model_dirs[name])
    saved = tok.chat_template
    trainer = sft.build(model_dirs[name], tok, Dataset.from_list([{"messages": CONVERSATION}]), config)
    row = trainer.train_dataset[0]
    scored = [label != -100 for label in row["labels"]]
    assert row["input_ids"] == ids_of(tok, CONVERSATION)
    assert scored == open_instruct_labels(tok, CONVERSATION)
    assert spans(tok, row["input_ids"], scored) == SCORED[name]
    assert tok.chat_template == saved  # the saved tokenizer keeps its own template
