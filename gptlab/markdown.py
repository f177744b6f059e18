"""Model and user text inside Markdown, shown exactly as written.

A token such as a backtick, ``*`` or ``_`` written straight into Markdown is read as markup
(``**`**`` is not a bold backtick). Every place that puts text it did not write itself (tokens,
samples, prompts, model names, paths, commands) into Markdown wraps it with these helpers; they
follow CommonMark, which Gradio's Markdown, the Hub's model cards and GitHub's READMEs all speak.
"""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")


def code_span(text: str, in_table: bool = False) -> str:
    """``text`` as an inline code span that shows it verbatim, backticks included.

    The fence is one backtick longer than the longest run inside; a space pads both ends when
    the text starts or ends with a backtick or a space (CommonMark strips exactly that padding).
    Line breaks show as spaces (a code span is one line). ``in_table``: also escape ``|``, which
    would end a table cell even inside a code span (GitHub-flavoured Markdown).
    """
    text = text.replace("\r\n", "\n").replace("\n", " ")
    if not text:
        return "` `"  # an empty span cannot be written; a space is the closest visible thing
    fence = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    pad = " " if text.strip(" ") and (text[0] in "` " or text[-1] in "` ") else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: str, info: str = "") -> str:
    """``text`` as a fenced code block whose fence no line of the text can close.

    The fence is three backticks, or one more than the longest run of backticks in the text.
    """
    fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    return f"{fence}{info}\n{text}\n{fence}"
