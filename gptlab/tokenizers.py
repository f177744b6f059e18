"""Tokenizers: characters (the tutorials' choice) and byte-level BPE trained on the corpus.

Both save to and load from ``tokenizer.json`` in a checkpoint folder. The BPE file is the
Hugging Face ``tokenizers`` format, so other tools can read it too.
"""

from __future__ import annotations

import codecs
import json
import operator
from pathlib import Path
from typing import Literal, Protocol

from .errors import CheckpointError, InputError, SettingsError, UnknownCharactersError
from .fileio import write_text_atomic

Errors = Literal["strict", "drop", "replace"]
TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    """What models, generation and the app need from a tokenizer."""

    kind: str

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str, errors: Errors = "strict") -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def token_strings(self, ids: list[int]) -> list[str]: ...
    def save(self, folder: str | Path) -> None: ...


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters in the corpus."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        if not chars or len(set(chars)) != len(chars):
            raise CheckpointError("A char tokenizer needs a non-empty vocabulary without repeats.")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, errors: Errors = "strict") -> list[int]:
        """Token ids; characters outside the vocabulary raise, or are dropped/replaced on request."""
        _check_errors(errors)
        unknown = [c for c in dict.fromkeys(text) if c not in self.stoi]
        if not unknown:
            return [self.stoi[c] for c in text]
        if errors == "strict":
            raise UnknownCharactersError(unknown)
        if errors == "drop":
            return [self.stoi[c] for c in text if c in self.stoi]
        fill = self.stoi.get(" ", 0)  # errors == "replace"
        return [self.stoi.get(c, fill) for c in text]

    def decode(self, ids: list[int]) -> str:
        ids = _check_ids(ids, self.vocab_size)  # a negative index would silently wrap around
        return "".join(self.chars[i] for i in ids)

    def token_strings(self, ids: list[int]) -> list[str]:
        ids = _check_ids(ids, self.vocab_size)
        return [self.chars[i] for i in ids]

    def save(self, folder: str | Path) -> None:
        write_text_atomic(Path(folder) / TOKENIZER_FILE, json.dumps({"gptlab_tokenizer": "char", "chars": self.chars}))


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) from Hugging Face ``tokenizers``: no text is ever unknown."""

    kind = "bpe"

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int = 512) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if not 257 <= vocab_size <= 65_536:
            raise SettingsError(f"BPE vocab_size must be in 257..65536 (256 bytes + merges), got {vocab_size}.")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
            show_progress=False,
        )
        tok.train_from_iterator([text[i : i + 10_000] for i in range(0, len(text), 10_000)], trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str, errors: Errors = "strict") -> list[int]:
        """Token ids; every string of characters has some (lone surrogates are not characters)."""
        _check_errors(errors)
        try:
            return self.tokenizer.encode(text).ids
        except TypeError:  # the Rust side takes only valid Unicode: a lone surrogate lands here
            raise InputError(
                "The text holds a lone surrogate (U+D800..U+DFFF), which is not a character and "
                "cannot be encoded; remove it."
            ) from None

    def decode(self, ids: list[int]) -> str:
        ids = _check_ids(ids, self.vocab_size)  # the library would silently skip unknown ids
        return self.tokenizer.decode(ids)

    def token_strings(self, ids: list[int]) -> list[str]:
        ids = _check_ids(ids, self.vocab_size)
        return [self.tokenizer.decode([i]) for i in ids]

    def token_bytes(self, token_id: int) -> bytes | None:
        """The raw bytes of one token (byte-level vocabularies), None if it is not made of bytes."""
        from tokenizers import decoders

        if not isinstance(self.tokenizer.decoder, decoders.ByteLevel):  # e.g. a foreign WordPiece file
            return None
        [token_id] = _check_ids([token_id], self.vocab_size)  # a negative id would overflow in Rust
        token = self.tokenizer.id_to_token(token_id)
        if token is None or any(c not in _UNICODE_TO_BYTE for c in token):
            return None
        return bytes(_UNICODE_TO_BYTE[c] for c in token)

    def save(self, folder: str | Path) -> None:
        write_text_atomic(Path(folder) / TOKENIZER_FILE, self.tokenizer.to_str())


def _gpt2_byte_alphabet() -> dict[str, int]:
    """GPT-2's map of printable stand-ins back to bytes (how byte-level BPE spells its tokens)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in, extra = {}, 0
    for b in range(256):
        if b in printable:
            stand_in[b] = chr(b)
        else:  # unprintable bytes are shifted past 255, in order
            stand_in[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in stand_in.items()}


_UNICODE_TO_BYTE = _gpt2_byte_alphabet()


def _check_errors(errors: object) -> None:
    if errors not in ("strict", "drop", "replace"):
        raise SettingsError(f"errors must be 'strict', 'drop' or 'replace', got {errors!r}.")


def _check_ids(ids: list[int], vocab_size: int) -> list[int]:
    """The ids as Python ints (tensors and numpy ints welcome), each inside the vocabulary."""
    try:
        ids = [operator.index(i) for i in ids]
    except TypeError:
        raise InputError(f"Token ids must be whole numbers, got {ids!r:.80}.") from None
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise InputError(
            f"Token ids {bad[:5]} are outside this vocabulary of {vocab_size} tokens (0..{vocab_size - 1})."
        )
    return ids


def load_tokenizer(folder: str | Path) -> CharTokenizer | BPETokenizer:
    """Read ``tokenizer.json`` from a checkpoint folder (either kind)."""
    path = Path(folder) / TOKENIZER_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing. A checkpoint folder needs its tokenizer file.") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is corrupt or foreign.") from None
    if isinstance(data, dict) and data.get("gptlab_tokenizer") == "char":
        chars = data.get("chars")
        if not isinstance(chars, str):
            raise CheckpointError(f"{path}: 'chars' must be a string.")
        try:
            return CharTokenizer(chars)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    if isinstance(data, dict) and "model" in data:
        from tokenizers import Tokenizer

        try:
            return BPETokenizer(Tokenizer.from_str(text))
        except Exception as exc:  # the library raises its own types for malformed files
            raise CheckpointError(f"{path}: not a tokenizer this library can read ({exc}).") from None
    raise CheckpointError(f"{path}: neither a gptlab char tokenizer nor a Hugging Face tokenizer.")


def train_tokenizer(kind: str, text: str, vocab_size: int = 512) -> CharTokenizer | BPETokenizer:
    """A char tokenizer or a BPE of the given vocabulary size, trained on ``text``."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise SettingsError(f"tokenizer must be 'char' or 'bpe', got {kind!r}.")


def visible_token(token: str) -> str:
    """A token as a label a person can read: spaces as ␣, newlines as ↵, tabs as ⇥."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥").replace("\r", "␍") or "∅"


def visible_tokens(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """One readable label per token id that tells different tokens apart.

    Whitespace is shown as in ``visible_token``. A byte that is not part of a whole character
    inside its token is shown in hex, so the three byte tokens of 日 read ``<E6>``, ``<97>``,
    ``<A5>`` instead of three identical U+FFFD. Raises InputError for ids outside the vocabulary.
    """
    strings = tokenizer.token_strings(ids)  # checks the ids
    token_bytes = getattr(tokenizer, "token_bytes", None)
    labels = []
    for token_id, text in zip(_check_ids(ids, tokenizer.vocab_size), strings, strict=True):
        raw = token_bytes(token_id) if token_bytes is not None else None
        if raw is not None:  # surrogateescape turns each undecodable byte b into U+DC00 + b
            text = "".join(f"<{ord(c) - 0xDC00:02X}>" if 0xDC80 <= ord(c) <= 0xDCFF else c
                           for c in raw.decode("utf-8", errors="surrogateescape"))
        labels.append(visible_token(text))
    return labels


class IncrementalDecoder:
    """Token ids to text one id at a time, holding back the bytes of an unfinished character.

    A byte-level BPE token may end inside a multi-byte UTF-8 character (日 is three byte tokens in
    ``gpt-bpe``): decoded alone it gives U+FFFD. Here its bytes wait until the character's last
    byte comes, so the pieces joined (plus ``flush()``) equal ``tokenizer.decode(all ids)``.
    Every path that turns ids into text piece by piece uses this (streaming, the CLI, step-through).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._token_bytes = getattr(tokenizer, "token_bytes", None)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The text this token completes: "" while a character still waits for its last byte."""
        raw = self._token_bytes(token_id) if self._token_bytes is not None else None
        if raw is None:  # a char token (or a token not made of bytes): its text is complete
            return self.flush() + self.tokenizer.decode([token_id])
        return self._utf8.decode(raw)

    @property
    def pending(self) -> bytes:
        """The bytes held back: the start of a character whose last byte has not come yet."""
        return self._utf8.getstate()[0]

    def flush(self) -> str:
        """Whatever is held back, an unfinished character as U+FFFD (call it when the stream ends)."""
        tail = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return tail
