"""Data integrity: the shipped Tiny Shakespeare (verified on read, usable offline), split, batches, reading files."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from network_namespace import in_network_namespace

from gptlab import DataError, GptlabError, TokenSplits, get_batch, load_text
from gptlab.data import SHIPPED_TINY_SHAKESPEARE, read_tiny_shakespeare

REPO = Path(__file__).resolve().parent.parent
# written out here, not imported: the test checks the package's constants as well as its file
SIZE, SHA256 = 1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_shipped_copy_is_exactly_tiny_shakespeare():
    assert SHIPPED_TINY_SHAKESPEARE.is_relative_to(REPO / "gptlab")  # inside the package, not beside it
    text = load_text("tinyshakespeare")
    data = text.encode("utf-8")
    assert len(data) == SIZE and hashlib.sha256(data).hexdigest() == SHA256
    assert text == read_tiny_shakespeare() and text.startswith("First Citizen:\nBefore we proceed")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """`pip install .` as a wheel, built from a copy of the sources (the build leaves nothing in the tree)."""
    pytest.importorskip("setuptools", reason="building a wheel without network needs setuptools in the venv")
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    for name in ("gptlab", "gptlab_app", "train"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (path,) = (tmp_path / "wheel").glob("gptlab-*.whl")
    with zipfile.ZipFile(path) as z:
        yield z


@pytest.mark.slow
def test_the_built_wheel_carries_the_corpus(wheel):
    inside = SHIPPED_TINY_SHAKESPEARE.relative_to(REPO).as_posix()
    assert wheel.read(inside) == SHIPPED_TINY_SHAKESPEARE.read_bytes()


@pytest.mark.slow
def test_the_built_wheel_carries_every_module_of_every_layer(wheel):
    """Each subpackage (inside/, figures/, classroom/lessons/, ...) and the export's worker, run by path."""
    modules = {p.relative_to(REPO).as_posix() for name in ("gptlab", "gptlab_app", "train")
               for p in (REPO / name).rglob("*.py") if "__pycache__" not in p.parts}
    assert "gptlab/figures/kaleido_worker.py" in modules and "gptlab/classroom/lessons/__main__.py" in modules
    assert modules - set(wheel.namelist()) == set()


def _changed_text(xz: bytes) -> bytes:  # intact xz of a text that differs in one byte
    text = lzma.decompress(xz)
    return lzma.compress(text[:100] + b"X" + text[101:])


def _flipped_byte(xz: bytes) -> bytes:  # a bit error in the middle of the compressed stream
    middle = len(xz) // 2
    return xz[:middle] + bytes([xz[middle] ^ 0x40]) + xz[middle + 1 :]


CORRUPTIONS = {
    "one byte of the text changed": (_changed_text, "is not the Tiny Shakespeare gptlab ships: it holds 1,115,394"),
    "text appended": (lambda xz: lzma.compress(lzma.decompress(xz) + b"more"), "holds more than 1,115,394 bytes"),
    "text cut short": (lambda xz: lzma.compress(lzma.decompress(xz)[:-1]), "holds 1,115,393 bytes"),
    "bit error in the xz stream": (_flipped_byte, "is damaged: it is not an intact xz file"),
    "xz file truncated": (lambda xz: xz[: len(xz) // 2], "is damaged: it is not an intact xz file"),
    "plain text, not xz": (lzma.decompress, "is damaged: it is not an intact xz file"),
    "a Git LFS pointer": (lambda xz: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n",
                          "is a Git LFS pointer, not the corpus"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupted_copy_is_refused_with_a_clear_message(tmp_path, corruption):
    make, says = CORRUPTIONS[corruption]
    bad = tmp_path / "tinyshakespeare.txt.xz"
    bad.write_bytes(make(SHIPPED_TINY_SHAKESPEARE.read_bytes()))
    with pytest.raises(DataError) as info:
        read_tiny_shakespeare(bad)
    assert isinstance(info.value, GptlabError)  # the app shows it with gr.Error, the CLI exits non-zero
    message = str(info.value)
    assert says in message and str(bad) in message
    assert "Restore" in message or "git lfs pull" in message  # says what to do


def test_missing_copy_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(DataError, match=r"Tiny Shakespeare is missing: no file at .*gone\.xz\. Restore"):
        read_tiny_shakespeare(tmp_path / "gone.xz")


@pytest.mark.slow
def test_training_on_tiny_shakespeare_needs_no_network(tmp_path):
    """`python -m train bigram` on the default corpus, in a network namespace that has loopback only."""
    prefix = in_network_namespace()  # skips where no namespace can be made (fails under GPTLAB_REQUIRE_MOUNT=1)
    out = tmp_path / "bigram"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTLAB_")}
    env |= {"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    train = [sys.executable, "-m", "train", "bigram", "max_iters=5", "eval_interval=5", "eval_iters=1",
             "sample_tokens=20", "snapshots=", "progress=false", "threads=1", f"out={out}"]
    done = subprocess.run([*prefix, *train], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "model.safetensors").is_file()


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_utf8_file_loads_exactly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("utf8") / "any.txt"
    path.write_bytes(text.encode("utf-8"))  # st.text() has no lone surrogates: always encodable
    assert load_text(path) == text  # byte for byte: \r and \r\n are kept as they are


def test_crlf_is_kept(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc")
    assert load_text(path) == "a\r\nb\rc"


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\xfa bad bytes", b"caf\xe9"])
def test_empty_or_non_utf8_file_is_a_data_error(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty|UTF-8"):
        load_text(path)


def test_missing_file_or_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="No text file"):
        load_text(tmp_path / "nope.txt")
    with pytest.raises(DataError):
        load_text(tmp_path)


def test_split_is_deterministic_90_10():
    ids = list(range(1000))
    a, b = TokenSplits.from_ids(ids), TokenSplits.from_ids(ids)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert a.train.tolist() == ids[:900] and a.val.tolist() == ids[900:]
    assert a.train.dtype == torch.long
    assert torch.equal(a.split("val"), a.val)


def test_get_batch_is_seeded_and_y_is_x_shifted():
    data = torch.arange(500)
    x1, y1 = get_batch(data, 8, 16, torch.Generator().manual_seed(3))
    x2, y2 = get_batch(data, 8, 16, torch.Generator().manual_seed(3))
    x3, _ = get_batch(data, 8, 16, torch.Generator().manual_seed(4))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert x1.shape == y1.shape == (8, 16)
    assert torch.equal(y1, x1 + 1)  # data is arange: the target is the next token
    assert torch.equal(x1[:, 1:], y1[:, :-1])


def test_get_batch_needs_more_than_block_size_tokens():
    with pytest.raises(DataError, match="block_size"):
        get_batch(torch.arange(16), 2, 16)
    x, y = get_batch(torch.arange(17), 2, 16)  # exactly enough: one window
    assert torch.equal(x[0], torch.arange(16)) and torch.equal(y[0], torch.arange(1, 17))
