"""Texts gptlab writes itself (sample starts, example and default prompts), fitted to any model.

A char model knows only the characters of its training text: one trained on a single paragraph
has never seen a newline or an ``R``. Text that gptlab supplies must still run on such a model,
so it goes through ``fit_builtin``: characters the model has never seen are left out, and a note
says which. A visitor's own prompt is never changed: it gets the unknown-character error instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UnknownCharactersError
from .passages import VAL_PASSAGE
from .tokenizers import Tokenizer, visible_token

SAMPLE_START = "\n"  # samples start on a fresh line, as the tutorials do
START_FALLBACKS = (" ", ".")  # tried in turn when a model has never seen a newline
GENERATE_PROMPT = "ROMEO:\n"  # Generate, Bigram vs GPT and Step through
ATTENTION_PROMPT = "ROMEO:\nWhat light"  # the Attention explorer
LOOK_PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"  # Across training, Look closer
# Where context pays: the val split's opening exchange (GREMIO: ... go to it orderly.), unseen in training
SURPRISE_PROMPT = "".join(VAL_PASSAGE.splitlines(keepends=True)[:16])
EXAMPLES = ("ROMEO:\n", "First Citizen:\nBefore we proceed", "KING HENRY:\nO ", "To be, or not to be")
# The lessons' prompts, by lesson id (gptlab.classroom.lessons builds its lessons on them): kept here,
# with every other text gptlab supplies, so that the core knows them without importing the classroom.
LESSON_PROMPTS = {
    "previous-char": LOOK_PROMPT,
    "line-start": "KING RICHARD:\nNow is the winter\nOf our discontent\nMade glorious\n",
    "speaker": "First Citizen:\nBefore we proceed.\n\nAll:\nSpeak, speak.\n\nFirst Citizen:\nYou",
    "same-char": "the three thieves thought that the thing was there\n",
    "broad": "To be, or not to be, that is the question:\n",
    "own-words": GENERATE_PROMPT,
    "context-pays": VAL_PASSAGE,  # scored whole: the 2,000 characters gptlab.inside.surprise's caption reads
    "which-head": LOOK_PROMPT + "It is the east, and Juliet is the sun.\n",
    "copying": "YaMiZaTJSZmrKonlSTPlWAmxveDsDW" * 2,  # 30 random letters, twice: only copying predicts the second
}


@dataclass(frozen=True)
class FittedText:
    """A built-in text as a model can read it: ``text`` is ``original`` without ``left_out``."""

    text: str
    original: str
    left_out: tuple[str, ...] = ()  # characters the model has never seen, in order of first use

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def note(self, quote: Callable[[str], str] = repr) -> str:
        """What was changed, for a person ('' when nothing was); ``quote`` shows each text
        (``repr`` for plain text, ``gptlab.markdown.code_span`` for Markdown)."""
        if not self.changed:
            return ""
        chars = ", ".join(quote(visible_token(c)) for c in self.left_out)
        return f"This model has never seen {chars}: the built-in text leaves them out and reads {quote(self.text)}."


def unknown_characters(tokenizer: Tokenizer, text: str) -> list[str]:
    """The characters of ``text`` the tokenizer cannot encode (always none for byte-level BPE)."""
    try:
        tokenizer.encode(text)
    except UnknownCharactersError as exc:
        return list(exc.unknown)
    return []


def sample_start(tokenizer: Tokenizer) -> str:
    """Where a sample starts: a newline, else a space or a full stop, else the vocabulary's first token."""
    for start in (SAMPLE_START, *START_FALLBACKS):
        if not unknown_characters(tokenizer, start):
            return start
    return tokenizer.decode([0])


def fit_text(tokenizer: Tokenizer, text: str) -> FittedText:
    """``text`` without the characters the tokenizer has never seen (a sample start if none is left)."""
    unknown = unknown_characters(tokenizer, text)
    if not unknown:
        return FittedText(text, text)
    kept = "".join(c for c in text if c not in set(unknown))
    return FittedText(kept or sample_start(tokenizer), text, tuple(unknown))


def builtin_texts() -> frozenset[str]:
    """Every prompt gptlab supplies: sample start, app defaults and examples, lesson prompts."""
    return frozenset({SAMPLE_START, GENERATE_PROMPT, ATTENTION_PROMPT, LOOK_PROMPT, SURPRISE_PROMPT, *EXAMPLES,
                      *LESSON_PROMPTS.values()})


def fit_builtin(tokenizer: Tokenizer, text: str) -> FittedText:
    """``text`` fitted to the tokenizer if gptlab supplied it (see ``builtin_texts``), else unchanged,
    so that a person's own text still raises UnknownCharactersError where it is encoded."""
    return fit_text(tokenizer, text) if text in builtin_texts() else FittedText(text, text)
