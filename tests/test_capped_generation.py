"""Batched generation with a cap per request equals running each request alone (BBH fills the context)."""

from __future__ import annotations

from pathlib import Path

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from evalsuite.harness.capped_generation import CappedGenerationMixin


class CappedHFLM(CappedGenerationMixin, HFLM):
    pass


def _lm(cls, path: Path, batch: int):
    return cls(pretrained=str(path), batch_size=batch, max_length=2048, device="cpu", dtype="float32")


QUESTIONS = [
    "Question: not ( True ) and ( True ) is\nAnswer: ",
    "Question: Sort the following words alphabetically: List: oven costume counterpart\nAnswer: ",
    'Question: Is the following sentence plausible? "Joao Moutinho caught the screen pass in the NFC '
    'championship."\nAnswer: ',
    "Question: hi\nAnswer: ",
    "Question: What is 12 plus 7? Think step by step, then answer.\nAnswer: ",
]


def _requests(tok, caps: list[int], until: list[str]) -> list[Instance]:
    out = []
    for i, (q, cap) in enumerate(zip(QUESTIONS, caps, strict=True)):
        ctx = tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        kwargs = {"until": list(until), "max_gen_toks": cap, "do_sample": False, "temperature": 0.0}
        out.append(Instance("generate_until", {}, (ctx, kwargs), i))
    return out


def test_per_row_caps_batched_equal_one_by_one(tiny_model_dir: Path) -> None:
    stock = HFLM(pretrained=str(tiny_model_dir), batch_size=1, max_length=2048, device="cpu", dtype="float32")
    capped = CappedHFLM(
        pretrained=str(tiny_model_dir), batch_size=4, max_length=2048, device="cpu", dtype="float32"
    )
    caps = [5, 17, 9, 30, 12]
    for until in ([], ["Question:", "Question"]):
        reqs = _requests(stock.tokenizer, caps, until)
        alone = [stock.generate_until([r], disable_tqdm=True)[0] for r in reqs]
        together = capped.generate_until(reqs, disable_tqdm=True)
        assert together == alone
        # the caps matter: the same requests with one shared cap give other outputs
        assert (
            capped.generate_until(_requests(stock.tokenizer, [30] * 5, until), disable_tqdm=True) != together
        )


def test_requests_with_one_cap_take_lm_evals_own_path(tiny_model_dir: Path, monkeypatch) -> None:
    capped = CappedHFLM(
        pretrained=str(tiny_model_dir), batch_size=4, max_length=2048, device="cpu", dtype="float32"
    )
    calls = []
    monkeypatch.setattr(capped, "_generate_capped", lambda r, idxs: calls.append(idxs) or [])
    capped.generate_until(_requests(capped.tokenizer, [8] * 5, []), disable_tqdm=True)
    assert calls == []
