"""Lesson presets and data-driven captions for teaching with attention heatmaps.

A lesson fixes everything that decides a heatmap (model, prompt, seed for any generated
continuation, layer, head), so the same lesson draws the same picture every time, and can be
shared as URL query parameters. A lesson may name a head label instead of a head: the head of
the model that best fits that label on the lesson's prompt is used (found the same way each time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlencode

import torch

from ...checkpoint import Checkpoint
from ...errors import InputError, UnknownCharactersError
from ...inside.heads import HeadLabel, describe
from ...markdown import code_span
from ...prompts import LESSON_PROMPTS, builtin_texts
from .matters import NEEDED

MAX_EXTEND = 200  # tokens a lesson may generate after its prompt before drawing


@dataclass(frozen=True)
class Lesson:
    """Everything that decides a lesson's heatmaps."""

    id: str
    title: str
    prompt: str
    model: str = "gpt"
    seed: int = 0
    extend: int = 0  # tokens to generate (seeded) after the prompt before looking
    layer: int = -1  # -1 with ``find``: the best head for that label
    head: int = -1
    find: str = ""  # a head label ('previous', 'line_start', ...) or NEEDED to look for when layer/head are -1
    look_for: str = ""  # what the teacher points at
    baseline: str = ""  # a model without context: the lesson colours its text by bits, model minus baseline


LESSONS: dict[str, Lesson] = {lesson.id: lesson for lesson in [
    Lesson("previous-char", "1. The previous-character head", LESSON_PROMPTS["previous-char"], find="previous",
           look_for="a bright line just below the diagonal: each character looks one step back."),
    Lesson("line-start", "2. Where does the line start?", LESSON_PROMPTS["line-start"], find="line_start",
           look_for="bright columns at the newlines: the head keeps track of the line."),
    Lesson("speaker", "3. Who is speaking?", LESSON_PROMPTS["speaker"], find="speaker",
           look_for="weight on the name before the colon: who speaks shapes what comes next."),
    Lesson("same-char", "4. Seen this letter before?", LESSON_PROMPTS["same-char"], find="same_earlier",
           look_for="cells on earlier copies of the same letter (every 't' looks at t's)."),
    Lesson("broad", "5. The averaging head", LESSON_PROMPTS["broad"], find="broad",
           look_for="an evenly lit triangle: this head averages everything it has seen."),
    Lesson("own-words", "6. Attention on the model's own words", LESSON_PROMPTS["own-words"], seed=7, extend=80,
           layer=0, head=0, look_for="the same patterns on text the model wrote itself (seed 7, 80 characters)."),
    Lesson("which-head", "7. Which head matters?", LESSON_PROMPTS["which-head"], find=NEEDED,
           look_for="the head the model misses most when it is switched off, and what it attends to."),
    Lesson("context-pays", "8. Where does context pay?", LESSON_PROMPTS["context-pays"], baseline="bigram",
           look_for="blue inside words, where the GPT's context nearly fixes the spelling; pale first letters: "
           "which word comes next is still open."),
    Lesson("copying", "9. Copying what came before", LESSON_PROMPTS["copying"], model="induction", find="induction",
           look_for="a bright stripe one copy back: each letter of the second copy looks at the letter that "
           "followed its earlier copy, and the model copies it."),
]}


@dataclass(frozen=True)
class LessonView:
    """A lesson resolved to concrete values (what the widgets show)."""

    lesson: str
    model: str
    prompt: str
    seed: int
    extend: int
    layer: int
    head: int
    teacher: bool = False

    def query(self) -> str:
        """URL query parameters that restore this view; a lesson's own prompt is left out (a link reads it from
        the lesson), so a link stays short even for a lesson of 2,000 characters."""
        params = {k: v for k, v in asdict(self).items() if k != "teacher"}
        if self.lesson in LESSONS and self.prompt == LESSONS[self.lesson].prompt:
            del params["prompt"]
        if self.teacher:
            params["teacher"] = 1
        return "?" + urlencode(params)


def view_from_query(params: Mapping[str, str], default_lesson: str = "previous-char") -> LessonView:
    """A LessonView from URL query parameters: a lesson id, with any field overridden; InputError on bad values."""
    lesson = LESSONS.get(params.get("lesson", default_lesson)) or LESSONS[default_lesson]
    view = LessonView(lesson.id, lesson.model, lesson.prompt, lesson.seed, lesson.extend, lesson.layer, lesson.head)
    changes: dict[str, object] = {}
    for key in ("model", "prompt"):
        if key in params:
            changes[key] = str(params[key])
    for key, low, high in (("seed", 0, 2**31 - 1), ("extend", 0, MAX_EXTEND), ("layer", -1, 127), ("head", -1, 255)):
        if key in params:
            try:
                value = int(params[key])
            except (TypeError, ValueError):
                raise InputError(f"The link's {key}={params[key]!r} is not a whole number.") from None
            if not low <= value <= high:
                raise InputError(f"The link's {key}={value} is outside {low}..{high}.")
            changes[key] = value
    changes["teacher"] = str(params.get("teacher", "")).lower() in ("1", "true", "yes", "on")
    return replace(view, **changes)


@dataclass(frozen=True)
class LinkedView:
    """A lesson link read leniently: the view its valid parameters give, and a sentence per parameter left out."""

    view: LessonView  # layer/head -1 where the best head is still to be found
    dropped: tuple[str, ...] = ()  # e.g. "layer 99 is not in 0..5 for gpt; searching every layer instead."


def read_link(params: Mapping[str, str], models: Mapping[str, Checkpoint], fallback_model: str | None = None,
              max_prompt_chars: int | None = None, default_lesson: str = "previous-char") -> LinkedView:
    """The view a lesson link asks for, keeping every valid parameter and dropping only the invalid ones.

    ``models`` maps each model offered to its checkpoint: the link's model must be one of them, its layer
    and head must fit that model (-1 for the best, else 0..n_layer-1 and 0..n_head-1) and its prompt must be
    readable by the model's tokenizer (and at most ``max_prompt_chars`` long). A parameter that does not fit
    gives way to the lesson's own value (the model to the lesson's, else ``fallback_model``) and is named in
    ``dropped``. Never raises: a link is what a visitor was given, not something they typed.
    """
    dropped: list[str] = []
    asked = str(params.get("lesson", default_lesson))
    lesson = LESSONS.get(asked)
    if lesson is None:
        lesson = LESSONS[default_lesson]
        dropped.append(f"lesson {_shown(asked)} is not one of {', '.join(LESSONS)}; showing {lesson.id} instead.")
    model = lesson.model if lesson.model in models or fallback_model is None else fallback_model
    if "model" in params:
        if params["model"] in models:
            model = str(params["model"])
        else:
            dropped.append(f"model {_shown(params['model'])} is not one of {', '.join(models) or 'none'}; "
                           f"using {model} instead.")
    checkpoint = models.get(model)
    where = f" for {model}" if checkpoint is not None else ""
    n_layer, n_head = (checkpoint.config.n_layer, checkpoint.config.n_head) if checkpoint is not None else (128, 256)
    values = {"seed": lesson.seed, "extend": lesson.extend, "layer": lesson.layer, "head": lesson.head}
    bounds = (("seed", 0, 2**31 - 1, ""), ("extend", 0, MAX_EXTEND, ""), ("layer", 0, n_layer - 1, where),
              ("head", 0, n_head - 1, where))
    for key, low, high, on in bounds:
        if key not in params:
            continue
        raw = params[key]
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value, problem = None, f"{_shown(raw)} is not a whole number in {low}..{high}{on}"
        else:
            problem = f"{_shown(value, quoted=False)} is not in {low}..{high}{on}"
        if value is not None and (low <= value <= high or (key in ("layer", "head") and value == -1)):
            values[key] = value  # -1: the best layer or head, found when drawing
            continue
        own = values[key]
        instead = f"searching every {key} instead" if own == -1 else f"using the lesson's {key} {own} instead"
        dropped.append(f"{key} {problem}; {instead}.")
    prompt = lesson.prompt
    if "prompt" in params:
        problem = _prompt_problem(str(params["prompt"]), checkpoint, model, max_prompt_chars)
        if problem:
            dropped.append(f"prompt {problem}; using the lesson's prompt instead.")
        else:
            prompt = str(params["prompt"])
    teacher = str(params.get("teacher", "")).lower() in ("1", "true", "yes", "on")
    view = LessonView(lesson.id, model, prompt, values["seed"], values["extend"], values["layer"], values["head"],
                      teacher)
    return LinkedView(view, tuple(dropped))


def _prompt_problem(prompt: str, checkpoint: Checkpoint | None, model: str, max_chars: int | None) -> str:
    """Why a link's prompt cannot be drawn with this model ('' when it can)."""
    if not prompt:
        return "is empty"
    if max_chars is not None and len(prompt) > max_chars:
        return f"has {len(prompt):,} characters, over the limit of {max_chars:,}"
    if checkpoint is not None and prompt not in builtin_texts():  # a built-in prompt is fitted when drawn
        try:
            checkpoint.tokenizer.encode(prompt)
        except UnknownCharactersError as exc:
            shown = ", ".join(repr(c) for c in exc.unknown[:10])
            return f"has characters {model} has never seen ({shown})"
    return ""


def _shown(value: object, most: int = 60, quoted: bool = True) -> str:
    """A link's value for a message (quoted unless ``quoted`` is False), cut to ``most`` characters: a link can
    be very long."""
    text = repr(str(value)) if quoted else str(value)
    return text if len(text) <= most else text[: most - 1] + "…"


def resolve_head(labels: list[list[HeadLabel]], layer: int, head: int, find: str) -> tuple[int, int]:
    """The (layer, head) to show: what is given (>= 0) is kept; what is left open (-1) is searched.

    A layer alone: the head of that layer that best fits ``find``; a head alone: the layer where
    that head fits best; neither: every head. Ties go to the lowest layer, then head; with nothing
    to look for (or no head scorable), an open layer or head is 0.
    """
    if layer >= 0 and head >= 0:
        return layer, head
    candidates = [lab for row in labels for lab in row
                  if layer in (-1, lab.layer) and head in (-1, lab.head)
                  and lab.scores.get(find, math.nan) == lab.scores.get(find, math.nan)]  # NaN: not scorable
    if not find or not candidates:
        return max(layer, 0), max(head, 0)
    best = max(candidates, key=lambda lab: (lab.scores[find], -lab.layer, -lab.head))
    return best.layer, best.head


def caption(pattern: torch.Tensor, tokens: list[str], labels: list[str], label: HeadLabel,
            unit: str = "character") -> str:
    """'What to look for', computed from the head's pattern: its label sentence, how far back it
    looks on average, and the key that receives the most attention (Markdown: the key's label is a
    code span, so a token such as ``*`` shows as itself)."""
    n = pattern.size(0)
    q = torch.arange(n)[:, None].float()
    k = torch.arange(n)[None, :].float()
    lookback = float(((q - k).clamp(min=0) * pattern.float()).sum(dim=1)[1:].mean()) if n > 1 else 0.0
    received = pattern.float().sum(dim=0)  # total weight each key receives
    received = received / torch.arange(n, 0, -1).float()  # per query that could see it: fair to late keys
    top = int(received[: max(1, n - 3)].argmax())  # ignore the last few keys, seen by few queries
    sentences = [describe(label, unit)]
    sentences.append(f"On average it looks back {lookback:.1f} {unit}s.")
    sentences.append(f"The key that draws the most attention is {code_span(labels[top])} "
                     f"({float(received[top]):.0%} of the weight of each row that can see it).")
    return " ".join(sentences)


def lesson_choices() -> list[tuple[str, str]]:
    return [(lesson.title, lesson.id) for lesson in LESSONS.values()]


def find_for(view: LessonView) -> str:
    """The label a lesson looks for, if its view still asks for the best head (layer/head -1)."""
    lesson = LESSONS.get(view.lesson)
    return lesson.find if lesson else ""

