"""User-facing exception types: every error a user can cause is one of these."""


class GptlabError(Exception):
    """Base class: a message that says what was wrong and what to do."""


class DataError(GptlabError):
    """The corpus could not be found, verified or read."""


class UnknownCharactersError(GptlabError):
    """Text holds characters the tokenizer's vocabulary does not have."""

    def __init__(self, unknown: list[str]):
        self.unknown = unknown
        shown = ", ".join(_visible(c) for c in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        super().__init__(
            f"The prompt has {len(unknown)} character(s) this model has never seen: {shown}{more}. "
            "Remove them, or pass errors='drop' (skip them) or errors='replace' (use a space)."
        )


class InputError(GptlabError, ValueError):
    """Text or token ids a tokenizer or model cannot take (ids outside the vocabulary, too many)."""


class SettingsError(GptlabError):
    """A generation or training setting is out of range or of the wrong type."""


class ConfigError(GptlabError):
    """A model or training config is invalid (unknown key, bad type, out of range)."""


class CheckpointError(GptlabError):
    """A checkpoint is missing, truncated, foreign, unsafe or inconsistent."""


class ExportError(GptlabError):
    """An export could not be made: no browser for kaleido, a render that failed or timed out, or a disk that
    refused the file."""


def _visible(char: str) -> str:
    """Show a character so that control characters and spaces can be read in a message."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X}"


def shown_value(value: object, limit: int = 40) -> str:
    """How an error message echoes a value: its repr, cut to ``limit`` characters with '…' (1e308 read as a
    whole number has 309 digits)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
