"""The corpus: Tiny Shakespeare as shipped with the package (or any UTF-8 file), split, batch.

Tiny Shakespeare lies xz-compressed in ``gptlab/corpora/`` and is checked against its sha256 each
time it is read, so training, the app and the tests work offline on a fresh clone.
"""

from __future__ import annotations

import hashlib
import lzma
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DataError

TINY_SHAKESPEARE = "tinyshakespeare"
# where the text comes from (Karpathy's char-rnn); gptlab never downloads it
TINY_SHAKESPEARE_SOURCE = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_BYTES = 1_115_394
# 363,916 bytes, written by lzma.compress(text, filters=[{"id": lzma.FILTER_LZMA2,
# "preset": 9 | lzma.PRESET_EXTREME, "lc": 4, "pb": 0}]); gzip -9 would take 433,884
SHIPPED_TINY_SHAKESPEARE = Path(__file__).resolve().parent / "corpora" / "tinyshakespeare.txt.xz"
EVAL_SEED = 20_240_601  # evaluation batches are the same at every eval, so curves are comparable


def read_tiny_shakespeare(path: str | Path = SHIPPED_TINY_SHAKESPEARE) -> str:
    """Tiny Shakespeare's text from an xz file: exactly 1,115,394 bytes with the known sha256.

    Raises DataError if the file is missing, is not intact xz, or holds any other text: a damaged
    or replaced copy is never trained on.
    """
    path = Path(path)
    try:
        with lzma.open(path) as f:
            data = f.read(TINY_SHAKESPEARE_BYTES + 1)  # one byte more than expected shows a longer text
    except FileNotFoundError:
        raise DataError(f"Tiny Shakespeare is missing: no file at {path}. {_restore(path)}") from None
    except (lzma.LZMAError, EOFError) as exc:  # EOFError: the xz stream is cut short
        if _is_lfs_pointer(path):
            raise DataError(
                f"{path} is a Git LFS pointer, not the corpus: this clone skipped its LFS files. "
                "Run `git lfs pull` in the repository."
            ) from None
        raise DataError(f"{path} is damaged: it is not an intact xz file ({exc}). {_restore(path)}") from None
    except OSError as exc:
        raise DataError(f"Could not read {path}: {exc}. {_restore(path)}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != TINY_SHAKESPEARE_SHA256:
        size = f"{len(data):,}" if len(data) <= TINY_SHAKESPEARE_BYTES else f"more than {TINY_SHAKESPEARE_BYTES:,}"
        raise DataError(
            f"{path} is not the Tiny Shakespeare gptlab ships: it holds {size} bytes with sha256 "
            f"{digest[:12]}..., expected {TINY_SHAKESPEARE_BYTES:,} bytes with sha256 {TINY_SHAKESPEARE_SHA256}. "
            f"{_restore(path)}"
        )
    return data.decode("utf-8")


def _is_lfs_pointer(path: Path) -> bool:
    """True for the small text file git leaves in place of an LFS-tracked file it did not fetch."""
    try:
        with open(path, "rb") as f:
            return f.read(24) == b"version https://git-lfs."
    except OSError:
        return False


def _restore(path: Path) -> str:
    return (
        f"Restore {path.name} from the gptlab repository (or reinstall gptlab), "
        "or train on another text with data=path/to/file.txt."
    )


def load_text(source: str | Path = TINY_SHAKESPEARE) -> str:
    """The corpus text: 'tinyshakespeare' (the shipped, verified copy) or a path to a UTF-8 file.

    Raises DataError if the file is missing, unreadable, not UTF-8 or empty.
    """
    if str(source) == TINY_SHAKESPEARE:
        return read_tiny_shakespeare()
    path = Path(source)
    try:
        # bytes decoded as they are: no newline translation, so the text is exactly the file
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"No text file at {path}. Pass data=path/to/file.txt or data={TINY_SHAKESPEARE}.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise DataError(f"Could not read {path}: {exc}.") from None
    if not text:
        raise DataError(f"{path} is empty: a corpus needs some text.")
    return text


@dataclass
class TokenSplits:
    """The encoded corpus as two 1-D int64 tensors: first 90% train, last 10% val."""

    train: torch.Tensor
    val: torch.Tensor

    @classmethod
    def from_ids(cls, ids: list[int] | torch.Tensor, val_fraction: float = 0.1) -> TokenSplits:
        data = torch.as_tensor(ids, dtype=torch.long)
        n = int(len(data) * (1 - val_fraction))
        return cls(train=data[:n], val=data[n:])

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    repeat_share: float = 0.0,
    random_vocab: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of the data: inputs x and next-token targets y, each (batch, block).

    ``repeat_share`` (0..1) makes that fraction of the rows, rounded, the first ones, repeat a
    passage: a passage of n tokens (n drawn uniformly from 2..block_size // 2 per row), then the
    text again from the passage's start, so the row copies what it has already seen. A teaching
    device that rewards induction heads; 0 (the default) draws exactly the plain windows.
    ``random_vocab`` > 0 makes those rows a random string instead: n token ids drawn uniformly from
    0..random_vocab-1, repeated to the end of the row (no English to predict them by, only copying).
    Raises DataError if the split is too short, repeat_share is outside 0..1 or random_vocab < 0.
    """
    if len(data) <= block_size:
        raise DataError(f"The split has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}.")
    if not 0.0 <= repeat_share <= 1.0:
        raise DataError(f"repeat_share is the fraction of batch rows that repeat a passage: it must be in 0..1, "
                        f"got {repeat_share!r}.")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    positions = torch.arange(block_size + 1).repeat(batch_size, 1)  # (batch, block + 1)
    repeating = round(repeat_share * batch_size)
    if repeating and block_size < 4:
        raise DataError(f"repeat_share needs block_size of at least 4 (a passage of 2 and its copy), got {block_size}.")
    if isinstance(random_vocab, bool) or not isinstance(random_vocab, int) or random_vocab < 0:
        raise DataError(f"random_vocab is the number of token ids random strings are drawn from (0 = repeat "
                        f"passages of the text): it must be a whole number >= 0, got {random_vocab!r}.")
    if repeating:
        # row r reads its passage's n tokens, then starts over: positions 0..n-1, 0, 1, ...
        n = torch.randint(2, block_size // 2 + 1, (repeating, 1), generator=generator)
        head = positions[:repeating]
        positions[:repeating] = torch.where(head < n, head, head - n) if not random_vocab else head % n
    windows = data[starts[:, None] + positions]  # one gather, no Python loop
    if repeating and random_vocab:
        # a random string of n ids per row, read again and again: row[p] = string[p % n]
        strings = torch.randint(random_vocab, (repeating, block_size // 2), generator=generator)
        windows[:repeating] = strings.gather(1, positions[:repeating])
    return windows[:, :-1], windows[:, 1:]


def eval_batches(
    data: torch.Tensor, n_batches: int, batch_size: int, block_size: int, seed: int = EVAL_SEED
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed random batches a training run's evaluation scores (its first ``n_batches``), as
    (x, y) pairs each (batch, block): a loss on them compares with the README's val loss."""
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(data, batch_size, block_size, generator) for _ in range(n_batches)]
