"""A resume that asks for another model, vocabulary, tokenizer, optimizer or dtype than the saved
state is refused in one line that names each difference and the overrides that resume."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from gptlab import CharTokenizer, CheckpointError
from train.config import apply_overrides
from train.loop import train
from train.presets import make_preset
from train.state import STATE_FILE

REPO = Path(__file__).resolve().parent.parent
# gpt-mini (rotary, ReLU^2, Muon + AdamW) at a tiny size
TINY = ["model.block_size=16", "model.n_layer=2", "model.n_head=2", "model.n_embd=16", "batch_size=4",
        "eval_interval=5", "eval_iters=1", "sample_tokens=5", "warmup_iters=2", "progress=false", "max_iters=10"]


def config(data: Path, out: Path, *extra: str):
    return apply_overrides(make_preset("gpt-mini"), [*TINY, f"data={data}", f"out={out}", *extra])


@pytest.fixture(scope="module")
def stopped(tiny_text_file, tmp_path_factory) -> Path:
    """A run stopped at step 5 of 10, to be resumed."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train(config(tiny_text_file, out, "stop_at=5"))
    return out


def resume_error(data: Path, out: Path, *change: str) -> str:
    """The message of the refused resume; the saved state is left as it was."""
    before = (out / STATE_FILE).read_bytes()
    with pytest.raises(CheckpointError) as refused:
        train(config(data, out, "resume=true", *change))
    assert (out / STATE_FILE).read_bytes() == before
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("change, named, fix", [
    ("model.block_size=32", "model.block_size: saved 16, asked 32", "model.block_size=16"),
    ("model.n_layer=3", "model.n_layer: saved 2, asked 3", "model.n_layer=2"),
    ("model.n_embd=32", "model.n_embd: saved 16, asked 32", "model.n_embd=16"),
    ("model.n_head=4", "model.n_head: saved 2, asked 4", "model.n_head=2"),  # same shapes, other model
    ("model.mlp=gelu", "model.mlp: saved relu2, asked gelu", "model.mlp=relu2"),  # same shapes
    ("model.pos=learned", "model.pos: saved rope, asked learned", "model.pos=rope"),
    ("model.tie_weights=true", "model.tie_weights: saved false, asked true", "model.tie_weights=false"),
    ("model.kind=blocks", "model.kind: saved gpt, asked blocks", "model.kind=gpt"),
    ("tokenizer=bpe", "tokenizer: saved char, asked bpe", "tokenizer=char"),
    ("optimizer=adamw", "optimizer: saved muon, asked adamw", "optimizer=muon"),
    ("lr=0.002", "lr: saved 0.003, asked 0.002", "lr=0.003"),  # the saved param groups would win silently
    ("muon_lr=0.01", "muon_lr: saved 0.02, asked 0.01", "muon_lr=0.02"),
    ("beta2=0.95", "beta2: saved 0.99, asked 0.95", "beta2=0.99"),
    ("weight_decay=0", "weight_decay: saved 0.1, asked 0.0", "weight_decay=0.1"),
    ("dtype=bfloat16", "dtype: saved float32, asked bfloat16", "dtype=float32"),
    ("repeat_share=0.5", "repeat_share: saved 0.0, asked 0.5", "repeat_share=0.0"),  # other batches, silently
])
def test_each_difference_is_named_with_its_fix(stopped, tiny_text_file, change, named, fix):
    message = resume_error(tiny_text_file, stopped, change)
    assert named in message and fix in message


def test_a_resume_with_random_strings_instead_of_plain_text_is_refused(stopped, tiny_text_file):
    message = resume_error(tiny_text_file, stopped, "repeat_share=0.5", "repeat_random=true")
    assert "repeat_random: saved false, asked true" in message and "repeat_random=false" in message


def test_several_differences_are_all_named(stopped, tiny_text_file):
    message = resume_error(tiny_text_file, stopped, "model.n_layer=1", "lr=0.01", "optimizer=adamw")
    for named in ("model.n_layer: saved 2, asked 1", "lr: saved 0.003, asked 0.01", "optimizer: saved muon"):
        assert named in message


def test_a_replaced_tokenizer_is_named_as_the_vocabulary(stopped, tiny_text_file, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    CharTokenizer("abcdefgh \n").save(out)  # tokenizer.json no longer the one the state was trained with
    message = resume_error(tiny_text_file, out)
    assert re.search(r"vocab_size: saved \d+, asked 10", message) and "tokenizer.json" in message


def test_an_older_state_without_a_recorded_setup_is_checked_by_what_it_holds(stopped, tiny_text_file, tmp_path):
    """States written before the setup was recorded: shapes and param groups still name the change."""
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    path = out / STATE_FILE
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    extra = json.loads(metadata["json"])
    del extra["setup"]
    save_file(tensors, str(path), metadata={**metadata, "json": json.dumps(extra)})
    assert "model.n_embd: saved 16, asked 32" in resume_error(tiny_text_file, out, "model.n_embd=32")
    assert "model.n_layer: saved 2, asked 1" in resume_error(tiny_text_file, out, "model.n_layer=1")
    assert "lr: saved 0.003, asked 0.002" in resume_error(tiny_text_file, out, "lr=0.002")
    assert "optimizer: saved muon, asked adamw" in resume_error(tiny_text_file, out, "optimizer=adamw")
    train(config(tiny_text_file, out, "resume=true"))  # the same settings still resume


def test_cli_resume_with_another_context_is_one_line(tiny_text_file, tmp_path):
    """The issue's reproduction: single_head stopped at step 10, resumed with model.block_size=16."""
    args = ["single_head", f"data={tiny_text_file}", f"out={tmp_path / 'run2'}", "progress=false", "max_iters=20",
            "stop_at=10", "eval_interval=10", "eval_iters=1"]
    train(apply_overrides(make_preset(args[0]), args[1:]))
    resumed = subprocess.run([sys.executable, "-m", "train", *args, "resume=true", "model.block_size=16"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr and resumed.stderr.count("\n") == 1, resumed.stderr
    assert "block_size: saved 8, asked 16" in resumed.stderr and "model.block_size=8" in resumed.stderr


def without_data_record(out: Path) -> None:
    """Rewrite the state as states were written before the text's identity was recorded."""
    path = out / STATE_FILE
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    extra = json.loads(metadata["json"])
    extra.pop("data", None)
    save_file(tensors, str(path), metadata={**metadata, "json": json.dumps(extra)})


def test_a_resume_on_another_text_is_refused_naming_both_texts(stopped, tiny_text_file, tmp_path):
    """The text is part of the run: its characters (none may become a space) and, when recorded, its sha256."""
    other = tmp_path / "other.txt"
    other.write_text(tiny_text_file.read_text(encoding="utf-8") + "café 日本\n", encoding="utf-8")
    message = resume_error(other, stopped)
    assert f"saved run trained on {tiny_text_file} (sha256 " in message and f"asked {other} (sha256 " in message
    assert "3 character(s) the saved vocabulary lacks: 'é', '日', '本'" in message
    assert f"resume with data={tiny_text_file}" in message and "another out= folder" in message


def test_the_same_alphabet_in_another_text_is_refused_too(stopped, tiny_text_file, tmp_path):
    """Every character known, but another text: its splits and val losses would not continue the history."""
    longer = tmp_path / "twice.txt"
    longer.write_text(tiny_text_file.read_text(encoding="utf-8") * 2, encoding="utf-8")
    message = resume_error(longer, stopped)
    assert "data: saved run trained on" in message and "lacks" not in message


def test_the_same_text_at_another_path_resumes(stopped, tiny_text_file, tmp_path):
    out, moved = tmp_path / "run", tmp_path / "moved.txt"
    shutil.copytree(stopped, out)
    shutil.copyfile(tiny_text_file, moved)
    train(config(moved, out, "resume=true"))
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["step"] == 10


def test_an_older_state_without_the_text_recorded_still_refuses_unknown_characters(stopped, tiny_text_file,
                                                                                    tmp_path):
    out, other = tmp_path / "run", tmp_path / "other.txt"
    shutil.copytree(stopped, out)
    without_data_record(out)
    other.write_text(tiny_text_file.read_text(encoding="utf-8") + "$&", encoding="utf-8")
    message = resume_error(other, out)
    assert "2 character(s) the saved vocabulary lacks: '$', '&'" in message
    assert "resume with the text the state was trained on" in message


def test_cli_resume_on_tiny_shakespeare_after_its_head_is_one_line(tmp_path):
    """The issue's reproduction: single_head trained on Tiny Shakespeare's first 20,000 characters, then
    resumed with data= left at its default (the whole text, with characters the head lacks)."""
    from gptlab.data import read_tiny_shakespeare

    head = tmp_path / "head.txt"
    head.write_text(read_tiny_shakespeare()[:20_000], encoding="utf-8")
    args = ["single_head", f"out={tmp_path / 'run'}", "progress=false", "max_iters=20", "eval_interval=10",
            "eval_iters=1"]
    train(apply_overrides(make_preset(args[0]), [*args[1:], f"data={head}", "stop_at=10"]))
    metrics = (tmp_path / "run" / "metrics.json").read_bytes()
    resumed = subprocess.run([sys.executable, "-m", "train", *args, "resume=true"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr and resumed.stderr.count("\n") == 1, resumed.stderr
    assert f"saved run trained on {head}" in resumed.stderr and "asked tinyshakespeare" in resumed.stderr
    assert "the saved vocabulary lacks: '$', '&'" in resumed.stderr and f"data={head}" in resumed.stderr
    assert (tmp_path / "run" / "metrics.json").read_bytes() == metrics


def test_a_tokenizer_replaced_by_one_of_the_same_size_is_named_not_the_text(stopped, tiny_text_file, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    chars = json.loads((out / "tokenizer.json").read_text())["chars"]
    CharTokenizer(chars.replace("z", "$")).save(out)  # same vocab_size, so the setup matches
    message = resume_error(tiny_text_file, out)
    assert "lacks: 'z', though it is the text the state was trained on" in message
    assert "restore the tokenizer.json" in message and "data=" not in message
