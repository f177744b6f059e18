"""Every command line of ours piped into a reader that stops early (``| head``) ends quietly with status 141.

Real subprocesses: the test reads a little of the output (or none) and closes its end of the pipe, as
``head -c 100`` does; the program must then stop, print no traceback, and exit with BROKEN_PIPE_EXIT.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptlab.cli import BROKEN_PIPE_EXIT

REPO = Path(__file__).resolve().parent.parent
# stdout to a pipe is block-buffered unless PYTHONUNBUFFERED is set: drop it so the CLIs' own writes are tested
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"PYTHONPATH": str(REPO)}
NOISE = ("Traceback", "BrokenPipe", "Exception ignored", "Errno 32")


def run_closed(args: list[str], read: int = 0, stdin: str = "", cwd: Path = REPO) -> tuple[int, str]:
    """(exit status, stderr) of ``python args`` whose stdout reader reads ``read`` bytes, then closes the pipe
    (with ``read=0`` the reader is gone before the program starts, so its first write meets a closed pipe)."""
    reader, writer = os.pipe()
    if not read:
        os.close(reader)
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdin=subprocess.PIPE, stdout=writer,
                            stderr=subprocess.PIPE)
    os.close(writer)
    try:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
        if read:
            received = b""
            while len(received) < read:
                chunk = os.read(reader, read - len(received))
                assert chunk, f"the output ended after {received!r}: {proc.stderr.read().decode()[-2000:]}"
                received += chunk
            os.close(reader)  # the reader goes away, as head does once it has its bytes
        err = proc.stderr.read().decode()
        return proc.wait(timeout=120), err
    finally:
        proc.kill()


def assert_quiet(status: int, err: str) -> None:
    assert status == BROKEN_PIPE_EXIT, (status, err[-2000:])
    assert not any(word in err for word in NOISE), err[-2000:]


def test_generation_stops_quietly_when_the_reader_has_enough(tiny_checkpoints):
    """python -m gptlab.generate ckpt "All:" max_new_tokens=20000 | head -c 40: no traceback, no 20,000 tokens."""
    status, err = run_closed(["-m", "gptlab.generate", str(tiny_checkpoints["gpt"]), "All:", "max_new_tokens=20000",
                              "seed=1"], read=40)
    assert_quiet(status, err)


def test_the_interactive_loop_stops_quietly_too(tiny_checkpoints):
    status, err = run_closed(["-m", "gptlab.generate", str(tiny_checkpoints["gpt"])], stdin="All:\nFirst:\n")
    assert_quiet(status, err)


def test_training_saves_its_checkpoint_then_stops_quietly(tmp_path, tiny_text_file):
    """The run's one line of output comes after the checkpoint is written: cutting it loses no training."""
    out = tmp_path / "run"
    status, err = run_closed(["-m", "train", "bigram", f"data={tiny_text_file}", f"out={out}", "progress=false",
                              "max_iters=4", "eval_iters=1", "threads=1"])
    assert_quiet(status, err)
    assert (out / "model.safetensors").is_file()


def test_the_benchmark_stops_quietly(tmp_path):
    status, err = run_closed(["-m", "bench", "--quick", "--only", "matmul", "--out", str(tmp_path)])
    assert_quiet(status, err)


@pytest.mark.parametrize("module", ["train", "train.report", "train.push", "bench", "gptlab.generate",
                                    "gptlab.classroom.lessons"])
def test_help_piped_into_a_closed_reader_is_quiet(module):
    status, err = run_closed(["-m", module, "--help"])
    assert_quiet(status, err)


def test_a_command_line_started_with_stdout_closed_still_runs():
    """``python -m train --help >&-``: Python sets sys.stdout to None and print() writes nothing; not an error."""
    result = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m train --help >&-'], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not any(word in result.stderr for word in NOISE), result.stderr[-2000:]
