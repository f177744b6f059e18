"""Ctrl-C (SIGINT) while the terminal CLI streams through the generation engine: the interactive loop stops
that completion and serves the next prompt; a one-shot run exits with 130, neither waits for the 20,000
tokens it asked for (real subprocesses, the tiny checkpoint). Each CLI starts with SIGINT ignored, as a
background job of a shell without job control does (``pytest ... &`` in a script): run_cli must still hear it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gptlab import GenerationSettings, generate, load_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 120  # a guard against a hang, never a speed goal (20,000 tokens of the tiny model take ~16 s)


def start(*args: str) -> subprocess.Popen:
    """The CLI with SIGINT ignored from the start, as a background job inherits it."""
    return subprocess.Popen([sys.executable, "-m", "gptlab.generate", *args], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def read_until(proc: subprocess.Popen, seen: bytes, wanted: bytes, more: int = 0) -> bytes:
    """Read stdout until ``wanted`` has appeared followed by at least ``more`` bytes."""
    while wanted not in seen or len(seen) - seen.index(wanted) - len(wanted) < more:
        piece = os.read(proc.stdout.fileno(), 4096)
        assert piece, f"stdout ended; stderr: {proc.stderr.read()[-2000:]!r}"
        seen += piece
    return seen


def test_ctrl_c_stops_one_completion_and_the_loop_goes_on(tiny_checkpoints):
    folder = tiny_checkpoints["gpt"]
    proc = start(str(folder), "max_new_tokens=20000", "seed=1")
    try:
        seen = read_until(proc, b"", b"> ")
        proc.stdin.write(b"First\n")
        proc.stdin.flush()
        seen = read_until(proc, seen, b"> ", more=200)  # streaming now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(b"max_new_tokens=5 temperature=0\nAll:\nquit\n", timeout=WAIT_S)
    finally:
        proc.kill()
    checkpoint = load_checkpoint(folder)
    greedy = "".join(generate(checkpoint.model, checkpoint.tokenizer, "All:",
                              GenerationSettings(max_new_tokens=5, temperature=0.0)))
    assert proc.returncode == 0, err[-2000:]
    assert b"(stopped)" in out
    assert ("> " + greedy + "\n> ").encode() in out


def test_ctrl_c_ends_a_one_shot_run_with_130(tiny_checkpoints):
    proc = start(str(tiny_checkpoints["gpt"]), "First", "max_new_tokens=20000")
    try:
        read_until(proc, b"", b"First", more=200)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert b"Traceback" not in err


def test_run_cli_leaves_a_callers_own_sigint_handler_alone():
    """Only an ignored SIGINT is put back to Python's handler: a program that calls run_cli with its own
    handler keeps it."""
    from gptlab.cli import run_cli

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        assert run_cli(lambda: 0) == 0
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)
