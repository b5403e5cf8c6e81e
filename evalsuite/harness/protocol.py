"""The SmolLM2/lighteval protocol as lm-eval pieces: prompts, scorers, shot samplers, a task class.

The YAML task definitions in evalsuite/harness/tasks/ point here (through tasks/utils.py, which only
re-exports, so module state such as shot RNGs exists once). Each function reproduces one
rule of ../shared/spec/eval-protocol.md; where lm-eval's default differs the comment says how.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import cycle
from pathlib import Path
from typing import Any

from lm_eval.api.samplers import ContextSampler
from lm_eval.api.task import ConfigurableTask

from core.errors import UsageError
from core.scoring.gsm8k import gsm8k_extract
from evalsuite.harness import sources

Doc = dict[str, Any]
log = logging.getLogger(__name__)


class _DropNotice(logging.Filter):
    """lm-eval logs this advice once per task that has a custom loader (27 times for BBH)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_DropNotice())

CONTEXT_LIMIT = 2048  # tokens, prompt + generation (spec: "Context limit 2048 tokens")
ROW = "_row"  # the field holding a doc's index in its split


# --- data: lm-eval calls these with the TaskManager metadata the runner passes -----------------


def _dataset(
    benchmark: str,
    subset: str | None,
    data_dir: str | None = None,
    lock: str | None = None,
    allow_unlocked: bool = False,
    **_: Any,
):
    import datasets

    folder = sources.benchmark_folder(benchmark, data_dir, lock_path=lock, allow_unlocked=allow_unlocked)
    splits = sources.read_for_evaluation(benchmark, folder, subset)
    for split, rows in splits.items():
        _refuse_unencodable(rows, f"{folder}: {benchmark}{f' {subset}' if subset else ''} {split}")
    # Each row keeps its position in its split (lighteval's `__index`): GSM8K's shots are a
    # function of the item's place in the whole test split, whatever --limit evaluates.
    return datasets.DatasetDict(
        {k: datasets.Dataset.from_list([{**r, ROW: i} for i, r in enumerate(v)]) for k, v in splits.items()}
    )


def _unencodable(value: Any) -> str | None:
    """The path to the first string in `value` that is not encodable text (a lone surrogate, which
    JSON's \\ud800 escape reads in and Arrow and the tokenizer refuse), else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ""
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found = _unencodable(inner)
        if found is not None:
            return f"{key}{'.' + found if found else ''}"
    return None


def _refuse_unencodable(rows: list[dict[str, Any]], where: str) -> None:
    for number, row in enumerate(rows, 1):
        field = _unencodable(row)
        if field is not None:
            raise UsageError(
                f"{where} row {number}, field {field}: a lone surrogate (an unpaired \\ud800-\\udfff "
                "escape), not text; fix or remove that row"
            )


def load_arc_easy(**kw: Any):
    return _dataset("arc", "ARC-Easy", **kw)


def load_arc_challenge(**kw: Any):
    return _dataset("arc", "ARC-Challenge", **kw)


def load_hellaswag(**kw: Any):
    return _dataset("hellaswag", None, **kw)


def load_piqa(**kw: Any):
    return _dataset("piqa", None, **kw)


def load_mmlu_pro(**kw: Any):
    return _dataset("mmlu_pro", None, **kw)


def load_gsm8k(**kw: Any):
    return _dataset("gsm8k", None, **kw)


def load_ifeval(**kw: Any):
    return _dataset("ifeval", None, **kw)


def load_bbh(subset: str, **kw: Any):
    return _dataset("bbh", subset, **kw)


# --- prompts ------------------------------------------------------------------------------------
# Choices carry their own leading space and the YAMLs set target_delimiter "": lm-eval drops
# the delimiter under chat templates (construct_requests), lighteval keeps the space.


def arc_prompt(doc: Doc) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def arc_choices(doc: Doc) -> list[str]:
    return [f" {t}" for t in doc["choices"]["text"]]


def arc_gold(doc: Doc) -> int:
    return list(doc["choices"]["label"]).index(doc["answerKey"])


def _hellaswag_clean(text: str) -> str:
    # lm-eval's/lighteval's WikiHow clean-up: " [title]" becomes ". ", other brackets go.
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_prompt(doc: Doc) -> str:
    # The trailing space stays; the log-likelihood moves it to the continuation.
    return _hellaswag_clean(f"{doc['activity_label']}: {doc['ctx_a']} {doc['ctx_b'].capitalize()} ")


def hellaswag_choices(doc: Doc) -> list[str]:
    return [" " + _hellaswag_clean(e) for e in doc["endings"]]


def hellaswag_gold(doc: Doc) -> int:
    return int(doc["label"])


def piqa_prompt(doc: Doc) -> str:
    return f"Question: {doc['goal']}\nAnswer:"


def piqa_choices(doc: Doc) -> list[str]:
    return [f" {doc['sol1']}", f" {doc['sol2']}"]


def piqa_gold(doc: Doc) -> int:
    return int(doc["label"])


def mmlu_pro_letters(doc: Doc) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(doc["options"]))]


def mmlu_pro_prompt(doc: Doc) -> str:
    topic = doc["category"].replace("_", " ")
    options = "".join(
        f"{letter}. {opt}\n" for letter, opt in zip(mmlu_pro_letters(doc), doc["options"], strict=True)
    )
    return (
        f"The following are multiple choice questions (with answers) about {topic}.\n\n"
        f"{doc['question']}\n{options}Answer:"
    )


def mmlu_pro_gold(doc: Doc) -> int:
    return int(doc["answer_index"])


def bbh_prompt(doc: Doc) -> str:
    return f"Question: {doc['input']}\nAnswer: "


def bbh_target(doc: Doc) -> str:
    return doc["target"]


def gsm8k_prompt(doc: Doc) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def gsm8k_target(doc: Doc) -> str:
    # lighteval's gold is " {answer}": the shots' assistant turns start with that space.
    return f" {doc['answer']}"


def ifeval_prompt(doc: Doc) -> str:
    return doc["prompt"]


# --- scorers ------------------------------------------------------------------------------------


def _lls(results: Sequence[Any]) -> list[float]:
    return [float(r[0]) if isinstance(r, (tuple, list)) else float(r) for r in results]


def argmax_first(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the first choice (spec)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def acc_norm_nospace(lls: Sequence[float], choices: Sequence[str], gold: int) -> int:
    """1 if the gold choice wins on log-likelihood per character, its leading space not counted.

    lm-eval's acc_norm divides by len(choice) including the space; lighteval's
    acc_norm_nospace (LogProbCharNorm(ignore_first_space=True)) discounts exactly one leading
    space: `len(choice) - 1 if choice[0] == " " else len(choice)`. An empty divisor (a choice
    that is one space) would raise there; here it counts as 1.
    """
    normed = [
        ll / max(len(c) - 1 if c.startswith(" ") else len(c), 1) for ll, c in zip(lls, choices, strict=True)
    ]
    return int(argmax_first(normed) == gold)


def _mc_results(choices_fn: Callable[[Doc], list[str]], gold_fn: Callable[[Doc], int]):
    def process(doc: Doc, results: Sequence[Any]) -> dict[str, int]:
        return {"acc_norm_nospace": acc_norm_nospace(_lls(results), choices_fn(doc), gold_fn(doc))}

    return process


arc_results = _mc_results(arc_choices, arc_gold)
hellaswag_results = _mc_results(hellaswag_choices, hellaswag_gold)
piqa_results = _mc_results(piqa_choices, piqa_gold)


def mmlu_pro_results(doc: Doc, results: Sequence[Any]) -> dict[str, int]:
    # Single-letter choices: per-character normalisation is the identity, so this is acc.
    return {"acc": int(argmax_first(_lls(results)) == mmlu_pro_gold(doc))}


def gsm8k_results(doc: Doc, results: Sequence[str]) -> dict[str, int]:
    pred, gold = gsm8k_extract(results[0]), gsm8k_extract(doc["answer"])
    return {"exact_match": int(pred is not None and pred == gold)}


def bbh_results(doc: Doc, results: Sequence[str]) -> dict[str, int]:
    # lighteval exact_match: the whole output, stripped, equals the target.
    return {"exact_match": int(results[0].strip() == doc["target"].strip())}


def ifeval_results(doc: Doc, results: Sequence[str]) -> dict[str, Any]:
    from core.scoring.ifeval import score_item

    return score_item(doc, results[0])


def mean_of_flattened(items: Sequence[Sequence[float] | float]) -> float:
    """Aggregation for instruction-level IFEval: every instruction counts once."""
    flat = [float(x) for it in items for x in (it if isinstance(it, (list, tuple)) else [it])]
    return sum(flat) / len(flat)


# --- few-shot samplers ---------------------------------------------------------------------------


class BalancedShots(ContextSampler):
    """BBH shots: lighteval's "balanced" selection, chosen once per subset.

    With random.seed(0): group the pool by target, order labels by count (ties shuffled),
    cycle over labels popping a random member each time until n+1 are taken; per item the
    evaluated doc is removed and the first n kept. lm-eval has no balanced sampler
    (its BalancedSampler raises NotImplementedError).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chosen: dict[int, list[Doc]] = {}

    def _choose(self, n: int) -> list[Doc]:
        if n not in self._chosen:
            rng = random.Random(0)  # same stream as lighteval's random.seed(0) + module functions
            by_label: dict[str, list[Doc]] = defaultdict(list)
            for doc in self.fewshot_docs():
                by_label[str(doc["target"])].append(doc)
            by_count: dict[int, list[str]] = defaultdict(list)
            for label, docs in sorted(by_label.items()):
                by_count[len(docs)].append(label)
            ordered: list[str] = []
            for count in sorted(by_count, reverse=True):
                labels = by_count[count]
                rng.shuffle(labels)
                ordered.extend(labels)
            chosen: list[Doc] = []
            wanted = min(sum(len(d) for d in by_label.values()), n + 1)
            for label in cycle(ordered):
                if len(chosen) == wanted:
                    break
                pool = by_label[label]
                if pool:
                    chosen.append(pool.pop(rng.randrange(len(pool))))
            self._chosen[n] = chosen
        return self._chosen[n]

    def sample(self, n: int, eval_doc: Doc | None = None, df: Any = None, **kwargs: Any) -> list[Doc]:
        if n == 0:
            return []
        return [d for d in self._choose(n) if d != eval_doc][:n]


class LightevalTrainShots(ContextSampler):
    """GSM8K shots: lighteval's `random_sampling_from_train`, in lighteval's order.

    lighteval (create_requests_from_tasks, ea46419a) makes one `random.Random(42)`, shuffles the
    whole evaluation split with it, then walks the shuffled items and draws each one's shots
    with `rnd.sample(train_pool, n)` from the same generator. An item's shots therefore depend
    on its index in the full test split, not on the items a run evaluates; both random calls
    depend only on the lengths, so indices stand in for the docs. `bind` gives the split size.
    """

    SEED = 42

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_size: int | None = None
        self._plan: dict[int, dict[int, list[int]]] = {}

    def bind(self, eval_size: int) -> None:
        self.eval_size = eval_size

    def plan(self, n: int) -> dict[int, list[int]]:
        """Row index of every evaluation item -> the pool indices of its n shots, in order."""
        if self.eval_size is None:
            raise RuntimeError("LightevalTrainShots needs bind(len(test split)) before sampling")
        if n not in self._plan:
            rnd = random.Random(self.SEED)
            order = list(range(self.eval_size))
            rnd.shuffle(order)
            pool_size = len(self.fewshot_docs())
            self._plan[n] = {row: rnd.sample(range(pool_size), n) for row in order}
        return self._plan[n]

    def sample(self, n: int, eval_doc: Doc | None = None, df: Any = None, **kwargs: Any) -> list[Doc]:
        if n == 0:
            return []
        if eval_doc is None or ROW not in eval_doc:
            raise RuntimeError("LightevalTrainShots needs the evaluated doc and its row index")
        pool = self.fewshot_docs()
        return [pool[i] for i in self.plan(n)[int(eval_doc[ROW])]]


class _Fixed(ContextSampler):
    def __init__(self, docs: list[Doc]) -> None:
        super().__init__(docs)
        self._docs = docs

    def sample(self, n: int, eval_doc: Doc | None = None, df: Any = None, **kwargs: Any) -> list[Doc]:
        return self._docs[:n]


# --- the task class ------------------------------------------------------------------------------


@functools.cache
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


class SmolLM2Task(ConfigurableTask):
    """ConfigurableTask with lighteval's few-shot truncation and generation budget.

    Truncation (lighteval prompt_manager._single_turn_context): while the tokens of the whole
    rendered prompt (chat template included) plus the task's generation size exceed the
    context limit, the last shot is dropped; lm-eval instead cuts the prompt's left end. The
    generation size counted is metadata `truncation_gen_size` (lighteval's `generation_size`,
    0 when unset). A task whose lighteval generation size is unset (BBH) generates until the
    context is full: metadata `fill_context: true` gives each request `max_gen_toks` = limit -
    prompt tokens, so neither backend cuts the prompt. The tokenizer and the limit come from
    the TaskManager metadata (`tokenizer`, `max_length`), set by the runner.
    """

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = dict(config or {})
        config.pop("class", None)
        super().__init__(config=config, **kwargs)
        if isinstance(getattr(self, "sampler", None), LightevalTrainShots):
            self.sampler.bind(len(self.test_docs()))

    def _meta(self) -> dict[str, Any]:
        return self.config.metadata or {}

    def _budget(self) -> tuple[Any, int] | None:
        meta = self._meta()
        if not meta.get("tokenizer"):
            return None
        return _tokenizer(str(meta["tokenizer"])), int(meta.get("max_length", CONTEXT_LIMIT))

    @staticmethod
    def _count(tok: Any, prompt: str) -> int:
        # lighteval counts `tokenizer(prompt)["input_ids"]`: special tokens as the tokenizer adds them.
        return len(tok(prompt)["input_ids"])

    def fewshot_context(self, doc: Doc, num_fewshot: int, *args: Any, **kwargs: Any):
        if not num_fewshot:
            return super().fewshot_context(doc, num_fewshot, *args, **kwargs)
        # lighteval hands every sampler the evaluated doc (and drops it from the shots).
        shots = list(self.sampler.sample(n=num_fewshot, eval_doc=doc))
        budget = self._budget()
        gen_size = int(self._meta().get("truncation_gen_size", 0))
        original = self.sampler
        try:
            keep = len(shots)
            while True:
                self.sampler = _Fixed(shots[:keep])
                prompt = super().fewshot_context(doc, keep, *args, **kwargs)
                if budget is None or keep == 0 or self._count(budget[0], prompt) + gen_size <= budget[1]:
                    return prompt
                keep -= 1
        finally:
            self.sampler = original

    def construct_requests(self, doc: Doc, ctx: Any, **kwargs: Any):
        requests = super().construct_requests(doc, ctx, **kwargs)
        budget = self._budget()
        if self.OUTPUT_TYPE != "generate_until" or not self._meta().get("fill_context") or budget is None:
            return requests
        tok, limit = budget
        for req in requests if isinstance(requests, list) else [requests]:
            context, gen_kwargs = req.arguments
            # vLLM with max_tokens=None stops at max_model_len: the room the prompt leaves.
            gen_kwargs["max_gen_toks"] = max(limit - self._count(tok, context), 1)
        return requests


def task_class_path() -> Path:
    return Path(__file__).with_name("tasks")
