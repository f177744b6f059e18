"""A checkpoint shelf with training snapshots, laid out like `python -m train gpt` writes it.

Used by the teaching tests (library, gradio_client and browser): a tiny GPT trained a few steps,
saved at several steps into gpt/snapshots/step_XXXXXX/ with each step's val loss and sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from gptlab import CharTokenizer, ModelConfig, TokenSplits, build_model, get_batch, save_checkpoint

SNAPSHOT_STEPS = (0, 10, 40)
SNAP_CONFIG = ModelConfig(kind="gpt", n_layer=2, n_head=4, n_embd=32, block_size=64)


def write_snapshots(model_folder: Path, text: str, steps=SNAPSHOT_STEPS, seed: int = 0,
                    shape: ModelConfig = SNAP_CONFIG, samples: bool = True) -> list[Path]:
    """Train a tiny GPT, saving a bf16 snapshot (metrics: best val loss, history with samples unless
    ``samples`` is False) at ``steps``; the model at the last step is also saved in ``model_folder``."""
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train(text)
    config = ModelConfig(**{**shape.to_dict(), "vocab_size": tokenizer.vocab_size})
    model = build_model(config)
    splits = TokenSplits.from_ids(tokenizer.encode(text))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    history, folders = [], []
    for step in range(max(steps) + 1):
        if step in steps:
            model.eval()
            with torch.no_grad():
                val = float(model(*get_batch(splits.val, 8, config.block_size, generator))[1])
            history.append({"step": step, "val_loss": val, "train_loss": val}
                           | ({"sample": f"sample at step {step}"} if samples else {}))
            folder = model_folder / "snapshots" / f"step_{step:06d}"
            save_checkpoint(folder, model, tokenizer, dtype=torch.bfloat16,
                            metrics={"history": list(history), "best": {"step": step, "val_loss": val}})
            folders.append(folder)
            if step == max(steps) and not (model_folder / "config.json").exists():
                save_checkpoint(model_folder, model, tokenizer, metrics={"history": list(history),
                                                                          "best": {"step": step, "val_loss": val}})
            model.train()
        x, y = get_batch(splits.train, 8, config.block_size, generator)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return folders


_shelves: dict[str, Path] = {}  # made once per test session, shared read-only by the teaching tests


def make_shelf(tmp_path_factory, tiny_checkpoints: dict[str, Path], text: str) -> Path:
    """Copies of the tiny gpt and bigram, the gpt with snapshots (made once per session; do not modify)."""
    if "shelf" not in _shelves:
        root = tmp_path_factory.mktemp("teach-shelf")
        for name, folder in tiny_checkpoints.items():
            shutil.copytree(folder, root / name)
        write_snapshots(root / "gpt", text)
        _shelves["shelf"] = root
    return _shelves["shelf"]


# Text with few characters, as a visitor might paste it or a user train on it: no newline, few capitals.
PARAGRAPH = ("To be, or not to be, that is the question: " * 60).strip()
# Characters that are Markdown syntax: a model trained on it writes them as tokens.
MARKUP_TEXT = "a`b*c_d[e]f#g " * 150
NARROW = ModelConfig(kind="gpt", n_layer=1, n_head=2, n_embd=32, block_size=64)


def make_foreign_shelf(tmp_path_factory) -> Path:
    """Models unlike the shipped ones (made once per test session; do not modify):

    ``gpt``: a narrow GPT (1 layer, 2 heads) trained on PARAGRAPH, with snapshots that store no
    sample; ``bigram``: a bigram on PARAGRAPH; ``markup``: a wider GPT (2 layers, 4 heads) on MARKUP_TEXT.
    """
    if "foreign" not in _shelves:
        root = tmp_path_factory.mktemp("foreign-shelf")
        write_snapshots(root / "gpt", PARAGRAPH, steps=(0, 20), shape=NARROW, samples=False)
        write_snapshots(root / "markup", MARKUP_TEXT, steps=(0, 40), samples=False)
        torch.manual_seed(0)
        tokenizer = CharTokenizer.train(PARAGRAPH)
        bigram = build_model(ModelConfig(kind="bigram", vocab_size=tokenizer.vocab_size, block_size=8))
        save_checkpoint(root / "bigram", bigram, tokenizer, metrics={"best": {"val_loss": 2.9}, "history": []})
        shutil.rmtree(root / "markup" / "snapshots")  # only the default model's snapshots are shown
        _shelves["foreign"] = root
    return _shelves["foreign"]
