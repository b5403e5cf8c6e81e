"""The chat template every stage trains with: open-instruct's `tulu` or SmolLM2's ChatML, never a guess.

open-instruct (the Tulu 3 code, allenai/open-instruct @ 816dcbf) trains with its `tulu` template
unless told otherwise: `FlatArguments.chat_template_name` defaults to "tulu" in finetune.py and
dpo_tune_cache.py, and the Tulu 3 reward-model command passes `--chat_template tulu` to
reward_modeling.py (docs/tulu3.md); the template is `CHAT_TEMPLATES["tulu"]` in
open_instruct/dataset_processor.py, and finetune.py saves it with the tokenizer. SmolLM2's own
instruct models use ChatML. Which one SmolTulu's tokenizer carries can only be read from the
published tokenizer, so the choice is made there: each candidate ships twice in repro/data/, as the
plain template and as a training template with `{% generation %}` markers (same text), and the
recipe key `chat_template_name` (default `auto`) picks the candidate whose rendering equals the
pinned tokenizer's own template on a few fixed conversations and the dataset's first rows. A run
is refused when none does. SFT, DPO and RM all take the pick from here (`select`); each manifest
records it.

A template is the model's, so it is input like any other: every rendering of a tokenizer's own
template (`render`) has a time limit (a loop of 10^10 steps would hang a run) and a template that
fails is a one-line error naming the tokenizer.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from core.errors import UsageError

AUTO = "auto"
RECIPE_KEY = "chat_template_name"
DEFAULT_SOURCE = "assumption: no recipe value; the candidate that renders like the tokenizer's template"

Message = dict[str, str]


@dataclass(frozen=True)
class Candidate:
    name: str
    plain_file: str  # the template as published (no generation markers)
    training_file: str  # the same rendering with {% generation %} around what the loss scores
    origin: str

    def plain(self) -> str:
        return resources.files("core.data").joinpath(self.plain_file).read_text()

    def training(self) -> str:
        return resources.files("core.data").joinpath(self.training_file).read_text()


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate(
            "tulu",
            "tulu_chat_template.jinja",
            "tulu_training_template.jinja",
            "open-instruct's `tulu` (CHAT_TEMPLATES, open_instruct/dataset_processor.py @ 816dcbf), "
            "Tulu 3's default chat_template_name",
        ),
        Candidate(
            "chatml",
            "smollm2_chat_template.jinja",
            "chatml_training_template.jinja",
            "SmolLM2-Instruct's ChatML (default system turn)",
        ),
    )
}

# Fixed conversations the candidates must render exactly as the tokenizer does: system or not,
# one and several turns, and prompts ending in a user turn (rendered with the generation prompt too).
PROBES: tuple[tuple[Message, ...], ...] = (
    ({"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."}),
    (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ),
    (
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Red.\n\nOr green."},
    ),
    ({"role": "user", "content": "Hi"},),
    (
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour."},
        {"role": "user", "content": "Thanks"},
    ),
)


@dataclass(frozen=True)
class Selection:
    """The template a run trains with, how it was chosen, and whether the tokenizer renders like it."""

    name: str
    requested: str  # the recipe value: "auto" or a candidate name
    source: str  # the recipe value's source
    matches_tokenizer: bool

    @property
    def candidate(self) -> Candidate:
        return CANDIDATES[self.name]

    def training(self) -> str:
        return self.candidate.training()

    def describe(self) -> str:
        how = (
            "renders exactly like the tokenizer's template"
            if self.matches_tokenizer
            else "chosen by the recipe; the tokenizer's template differs, the saved tokenizer gets this one"
        )
        return f"{self.name} [{self.requested}: {how}] = {self.candidate.origin}"

    def record(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            **asdict(self),
            "template_file": f"repro/data/{self.candidate.training_file}",
            "origin": self.candidate.origin,
        }


RENDER_SECONDS = 30.0  # one conversation; real templates take milliseconds


class _TooSlow(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _TooSlow


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM after `seconds` (main thread only: elsewhere there is no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render(tokenizer: Any, messages: list[Message], **kwargs: Any) -> str:
    """tokenizer.apply_chat_template(messages, tokenize=False, **kwargs), within RENDER_SECONDS; a
    template that fails or loops too long is a UsageError naming the tokenizer."""
    return guarded(tokenizer, tokenizer.apply_chat_template, messages, tokenize=False, **kwargs)


def guarded(tokenizer: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, a rendering with `tokenizer`'s template, under `render`'s rules."""
    where = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    try:
        with _time_limit(RENDER_SECONDS):
            return call(*args, **kwargs)
    except _TooSlow:
        raise UsageError(
            f"{where}: its chat template took over {RENDER_SECONDS:g} s to render one conversation (a "
            "loop far too long?); fix chat_template in tokenizer_config.json"
        ) from None
    except UsageError:
        raise
    except Exception as exc:  # jinja's TemplateError, or anything the template's own code raised
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise UsageError(
            f"{where}: its chat template fails ({type(exc).__name__}: {message}); fix chat_template in "
            "tokenizer_config.json, or the conversation it fails on"
        ) from None


def requested(recipe: Any) -> tuple[str, str]:
    """The recipe's `chat_template_name` value and source (`auto` when the recipe has none)."""
    item = recipe.hyperparameters.get(RECIPE_KEY)
    if item is None:
        return AUTO, DEFAULT_SOURCE
    return str(item.value), item.source


def _conversations(extra: list[list[Message]]) -> list[tuple[list[Message], bool]]:
    """(messages, add_generation_prompt) pairs to compare renderings on."""
    out = []
    for messages in [*(list(p) for p in PROBES), *extra]:
        out.append((messages, False))
        if messages and messages[-1]["role"] != "assistant":
            out.append((messages, True))
    return out


def renders_like_tokenizer(tokenizer: Any, name: str, conversations: list[list[Message]] = ()) -> bool:
    """True when the candidate's training template renders every conversation as the tokenizer's own."""
    if not tokenizer.chat_template:
        return False
    template = CANDIDATES[name].training()
    for messages, generation_prompt in _conversations(list(conversations)):
        theirs = render(tokenizer, messages, add_generation_prompt=generation_prompt)
        ours = render(tokenizer, messages, add_generation_prompt=generation_prompt, chat_template=template)
        if ours != theirs:
            return False
    return True


def select(
    tokenizer: Any,
    value: str = AUTO,
    source: str = DEFAULT_SOURCE,
    conversations: list[list[Message]] = (),
) -> Selection:
    """The training template for `value`: `auto` picks the candidate that renders like the tokenizer."""
    if value == AUTO:
        matching = [name for name in CANDIDATES if renders_like_tokenizer(tokenizer, name, conversations)]
        if not matching:
            raise UsageError(
                "the tokenizer's chat template renders differently from every training template ("
                + ", ".join(f"{c.name}: repro/data/{c.training_file}" for c in CANDIDATES.values())
                + "); loss masks and preference rows would be built on another format than the model's. "
                f"Choose one with --override {RECIPE_KEY}=NAME (the saved tokenizer then carries it)"
            )
        return Selection(matching[0], value, source, matches_tokenizer=True)
    if value not in CANDIDATES:
        raise UsageError(f"{RECIPE_KEY}={value!r}: choose {AUTO} or one of {', '.join(CANDIDATES)}")
    return Selection(value, value, source, renders_like_tokenizer(tokenizer, value, conversations))


def dataset_conversations(dataset: Any, rows: int = 8) -> list[list[Message]]:
    """The first rows' conversations (SFT messages, or chosen and rejected), for the rendering check."""
    columns = [c for c in ("messages", "chosen", "rejected") if c in dataset.column_names]
    out = []
    for row in dataset.select(range(min(rows, len(dataset)))):
        prompt = row.get("prompt") if isinstance(row.get("prompt"), list) else []
        out += [prompt + row[c] for c in columns if isinstance(row[c], list)]
    return out


def for_dataset(tokenizer: Any, dataset: Any) -> Selection:
    """`auto` on the fixed probes and the dataset's first rows (stages built outside `python -m repro`)."""
    return select(tokenizer, conversations=dataset_conversations(dataset))


def saved_template(tokenizer: Any, selection: Selection) -> str:
    """The chat template the run's tokenizer is saved with: its own, or the forced one in plain form.

    A template that renders identically is left untouched (users keep the file they know); a template
    chosen against the tokenizer's is written in, as open-instruct's finetune.py (main: "set the
    tokenizer chat template to the training format ... saved together with the tokenizer") does.
    """
    return tokenizer.chat_template if selection.matches_tokenizer else selection.candidate.plain()


def describe(recipe: Any, tokenizer: Any = None) -> str:
    """One line for `--dry-run`: the template choice with its source (resolved when a tokenizer is given)."""
    value, source = requested(recipe)
    if tokenizer is not None:
        try:
            picked = select(tokenizer, value, source).describe()
        except UsageError as exc:
            picked = f"refused: {exc}"
        return f"chat template: {picked} [{RECIPE_KEY} = {value}; {source}]"
    rule = (
        "the candidate whose rendering equals the pinned tokenizer's template, checked at start "
        "(refused when none does)"
        if value == AUTO
        else f"{value} ({CANDIDATES[value].origin})"
        if value in CANDIDATES
        else "unknown: the run is refused"
    )
    names = ", ".join(f"{c.name} = {c.origin}" for c in CANDIDATES.values())
    return f"chat template: {RECIPE_KEY} = {value} ({source}): {rule}; candidates: {names}"
