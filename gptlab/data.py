"""The corpus: download and verify Tiny Shakespeare (or read any UTF-8 file), split, batch.

Tests and CI never download: they set ``GPTLAB_DATA_DIR`` to a folder that already holds the
file (the shared copy) or pass a path to a small text they write.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DataError

TINY_SHAKESPEARE = "tinyshakespeare"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_BYTES = 1_115_394


def data_dir() -> Path:
    """Where downloaded corpora live: $GPTLAB_DATA_DIR, else ./data next to the package (git-ignored)."""
    env = os.environ.get("GPTLAB_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tiny_shakespeare_path(download: bool = True, url: str = TINY_SHAKESPEARE_URL) -> Path:
    """The verified Tiny Shakespeare file, downloading it once if needed.

    A cached file whose checksum is wrong is never used: it is replaced by a good download, or
    deleted. The download goes to a private temporary file that is renamed into place only after
    its checksum matches, so a failed download, or two processes downloading at once, cannot
    leave a bad file behind.
    """
    target = data_dir() / TINY_SHAKESPEARE_FILE
    if _verified(target):
        return target
    if not download:
        target.unlink(missing_ok=True)
        raise DataError(f"Tiny Shakespeare is not at {target}. {_place_it_yourself(target)}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(fd)
    except OSError as exc:
        raise DataError(f"Cannot write to {target.parent}: {exc}. {_place_it_yourself(target)}") from None
    tmp_path = Path(tmp)
    try:
        try:
            _download(url, tmp_path, target)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError: no network, refused, timeout; HTTPException: a chunked body cut short;
            # ValueError: a malformed URL
            raise DataError(
                f"Could not download Tiny Shakespeare from {url}: {exc}. {_place_it_yourself(target)}"
            ) from None
        os.replace(tmp_path, target)  # atomic: a concurrent reader sees the old file or the good one
    except BaseException:
        if not _verified(target):  # a corrupt cached copy goes too; a good one from a rival stays
            target.unlink(missing_ok=True)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)
    return target


def _download(url: str, tmp_path: Path, target: Path) -> None:
    """Stream ``url`` into ``tmp_path``; DataError if it is too large or its checksum is wrong."""
    with open(tmp_path, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
        size = 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            if size > TINY_SHAKESPEARE_BYTES:  # a wrong or hostile server must not fill the disk
                raise DataError(
                    f"The download from {url} is larger than the expected {TINY_SHAKESPEARE_BYTES:,} "
                    f"bytes; it was deleted. {_place_it_yourself(target)}"
                )
            out.write(chunk)
    digest = sha256_of(tmp_path)
    if digest != TINY_SHAKESPEARE_SHA256:
        raise DataError(
            f"The download from {url} has the wrong checksum (sha256 {digest[:12]}..., "
            f"{tmp_path.stat().st_size:,} bytes); it was deleted. {_place_it_yourself(target)}"
        )


def _verified(path: Path) -> bool:
    """True if ``path`` holds the exact corpus (False if absent, even if it vanishes meanwhile)."""
    try:
        return path.is_file() and sha256_of(path) == TINY_SHAKESPEARE_SHA256
    except OSError:
        return False


def _place_it_yourself(target: Path) -> str:
    return (
        f"To use it offline, save {TINY_SHAKESPEARE_URL} ({TINY_SHAKESPEARE_BYTES:,} bytes, "
        f"sha256 {TINY_SHAKESPEARE_SHA256}) as {target}, or set GPTLAB_DATA_DIR to a folder holding "
        f"{TINY_SHAKESPEARE_FILE}."
    )


def load_text(source: str | Path = TINY_SHAKESPEARE) -> str:
    """The corpus text: 'tinyshakespeare' (downloaded and verified) or a path to a UTF-8 file."""
    path = tiny_shakespeare_path() if str(source) == TINY_SHAKESPEARE else Path(source)
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
    data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of the data: inputs x and next-token targets y, each (batch, block)."""
    if len(data) <= block_size:
        raise DataError(f"The split has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}.")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size + 1)  # one gather, no Python loop
    windows = data[offsets]
    return windows[:, :-1], windows[:, 1:]
