"""Training survives SIGKILL at any moment, including in the middle of checkpoint writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gptlab import load_checkpoint
from gptlab.models import build_model
from train.config import apply_overrides
from train.optim import make_optimizers
from train.presets import make_preset
from train.state import STATE_FILE, load_state

REPO = Path(__file__).resolve().parent.parent
ARGS = ["gpt-mini", "model.block_size=16", "model.n_layer=1", "model.n_head=2", "model.n_embd=16",
        "batch_size=4", "eval_interval=3", "eval_iters=1", "sample_tokens=5", "warmup_iters=1",
        "progress=false", "max_iters=60"]


def saved_step(out: Path, vocab_size: int) -> int:
    """Load the training state as resume would, and return its step."""
    config = apply_overrides(make_preset("gpt-mini"), ARGS[1:])
    model = build_model(replace(config.model, vocab_size=vocab_size))
    extra = load_state(out / STATE_FILE, model, make_optimizers(model, config))
    return extra["run"]["step"]


def wait_for_new_write(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Block until this run has written ``path`` at least once (start-up is over)."""
    before = path.stat().st_mtime_ns if path.exists() else None
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.stat().st_mtime_ns != before:
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_a_checkpoint(tiny_text_file, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(7)
    env = {**os.environ, "GPTLAB_SLOW_WRITE_S": "0.15"}  # widen the window inside each atomic write
    kills = mid_write = 0
    last_step = -1
    for _ in range(12):
        resume = ["resume=true"] if (out / STATE_FILE).exists() else []
        proc = subprocess.Popen([sys.executable, "-m", "train", *ARGS, f"data={tiny_text_file}", f"out={out}",
                                 *resume], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_new_write(out / "metrics.json", proc)
        time.sleep(rng.uniform(0.0, 1.0))  # then a random moment: a step, an eval or inside a write
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        mid_write += bool(list(out.glob(".*.tmp")))  # a temporary left behind: killed inside a write
        if (out / "model.safetensors").exists():
            checkpoint = load_checkpoint(out)  # must always load, whatever moment the kill hit
        if (out / STATE_FILE).exists():  # absent only if killed before the first save completed
            step = saved_step(out, checkpoint.tokenizer.vocab_size)
            assert step >= last_step  # the saved state never goes backwards
            last_step = step
    assert kills >= 10
    assert mid_write >= 3, f"only {mid_write} of {kills} kills landed inside a write"
    final = subprocess.run([sys.executable, "-m", "train", *ARGS, f"data={tiny_text_file}", f"out={out}",
                            "resume=true"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[-1]["step"] == 60
    assert [r["step"] for r in history] == sorted({r["step"] for r in history})  # no step lost or repeated
    assert not list(out.glob(".*.tmp"))
