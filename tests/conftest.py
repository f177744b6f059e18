"""Shared fixtures: offline environment, the shipped corpus, tiny trained checkpoints."""

from __future__ import annotations

import os

# Before gradio or huggingface_hub are imported anywhere: no telemetry, no network lookups.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from gptlab import (  # noqa: E402
    BPETokenizer,
    CharTokenizer,
    ModelConfig,
    TokenSplits,
    build_model,
    get_batch,
    save_checkpoint,
)
from gptlab.data import read_tiny_shakespeare  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
) * 20


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    """Tiny Shakespeare as the package ships it (read offline, sha256-checked)."""
    return read_tiny_shakespeare()


@pytest.fixture(scope="session")
def tiny_text() -> str:
    return TINY_TEXT


@pytest.fixture(scope="session")
def tiny_text_file(tmp_path_factory, tiny_text) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(tiny_text, encoding="utf-8")
    return path


def train_tiny(config: ModelConfig, text: str, steps: int = 60, seed: int = 0):
    """A few AdamW steps on ``text``: enough for attention patterns to stop being uniform."""
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train(text)
    config = ModelConfig(**{**config.to_dict(), "vocab_size": tokenizer.vocab_size})
    model = build_model(config)
    splits = TokenSplits.from_ids(tokenizer.encode(text))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x, y = get_batch(splits.train, 16, config.block_size, generator)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return model, tokenizer


TINY_GPT = ModelConfig(kind="gpt", n_layer=2, n_head=4, n_embd=32, block_size=64)
TINY_BIGRAM = ModelConfig(kind="bigram", block_size=8)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, tiny_text) -> dict[str, Path]:
    """Folders of a tiny trained gpt and bigram, made once per test session."""
    root = tmp_path_factory.mktemp("checkpoints")
    folders = {}
    for name, config in (("gpt", TINY_GPT), ("bigram", TINY_BIGRAM)):
        model, tokenizer = train_tiny(config, tiny_text)
        metrics = {"best": {"step": 60, "val_loss": 2.5, "train_loss": 2.4}, "history": []}
        folders[name] = save_checkpoint(root / name, model, tokenizer, metrics=metrics)
    return folders


@contextmanager
def served_shelf(root: Path, tiny_checkpoints: dict[str, Path], tiny_text: str) -> Iterator[tuple]:
    """The app on 127.0.0.1 over an ``app_shelf`` in ``root``: (catalog, demo, url), closed on exit."""
    from gptlab.classroom.catalog import Catalog
    from gptlab_app import build_app, launch_options

    shelf = app_shelf(root, tiny_checkpoints, tiny_text)
    catalog = Catalog.from_sources(shelf).load_all()
    demo = build_app(catalog, str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(shelf))
    try:
        yield catalog, demo, url
    finally:
        demo.close()


def app_shelf(root: Path, tiny_checkpoints: dict[str, Path], tiny_text: str) -> Path:
    """A checkpoints folder for an app under test: the tiny gpt and bigram, and a byte-level BPE gpt
    (untrained weights are enough to check the plumbing)."""
    for name, folder in tiny_checkpoints.items():
        shutil.copytree(folder, root / name)
    tokenizer = BPETokenizer.train(tiny_text, vocab_size=300)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2,
                                    n_embd=16, block_size=32)).eval()
    save_checkpoint(root / "gpt-bpe", model, tokenizer, metrics={"best": {"val_loss": 5.0}, "history": []})
    return root
