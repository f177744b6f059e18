"""The terminal CLI: python -m gptlab.generate <checkpoint-or-repo> [prompt] key=value ..."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import pytest

from gptlab import GenerationSettings, generate, load_checkpoint
from gptlab.generate.__main__ import KEYS, main

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPT = "First Citizen:"
# stdout to a pipe is block-buffered unless PYTHONUNBUFFERED is set: drop it so the CLI's own flushes are tested
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlab.generate", *args], cwd=REPO_ROOT, env=ENV, input=stdin,
                          capture_output=True, text=True, timeout=60)


def library_text(folder: Path, prompt: str, **settings) -> str:
    ckpt = load_checkpoint(folder)
    return "".join(generate(ckpt.model, ckpt.tokenizer, prompt, GenerationSettings(**settings)))


def test_one_shot_streams_and_matches_the_library(tiny_checkpoints):
    folder = tiny_checkpoints["gpt"]
    settings = dict(max_new_tokens=120, temperature=0.9, top_k=20, top_p=0.95, seed=7)
    args = [f"{k}={v}" for k, v in settings.items()]
    proc = subprocess.Popen([sys.executable, "-m", "gptlab.generate", str(folder), PROMPT, *args], cwd=REPO_ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received = b""
    while len(received) <= len(PROMPT):  # the echoed prompt, then the first generated characters
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read().decode()
        received += chunk
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert rest, "all the text came in one piece: it was not streamed"
    assert (received + rest).decode() == PROMPT + library_text(folder, PROMPT, **settings) + "\n"
    assert err == b""  # no warnings, no progress noise


def test_every_piece_is_flushed_as_it_comes(tiny_checkpoints):
    class Recorder(io.StringIO):
        flushed: list[str] = []
        events: list[str] = []

        def write(self, text: str) -> int:
            self.events.append("write")
            return super().write(text)

        def flush(self) -> None:
            self.events.append("flush")
            self.flushed.append(self.getvalue())

    out = Recorder()
    assert main([str(tiny_checkpoints["gpt"]), PROMPT, "max_new_tokens=30", "seed=1"], out=out) == 0
    # every piece is flushed as soon as it is written (how many pieces depends on how fast the reader comes
    # back: the generation engine hands over every character made since its last visit in one piece)
    after_prompt = out.events[out.events.index("flush"):]  # the echoed prompt is written with the first piece
    assert out.events[-2:] == ["write", "flush"] and "write,write" not in ",".join(after_prompt)
    assert len(set(out.flushed)) >= 2  # at least one piece, then the final newline
    assert all(later.startswith(earlier) for earlier, later in pairwise(out.flushed))
    assert out.flushed[-1] == PROMPT + library_text(tiny_checkpoints["gpt"], PROMPT, max_new_tokens=30, seed=1) + "\n"


def test_interactive_loop_through_stdin(tiny_checkpoints):
    folder = tiny_checkpoints["gpt"]
    ckpt = load_checkpoint(folder)
    lines = ["temperature=0 max_new_tokens=25", "All:", "Zebra?", "First", ""]  # then EOF
    result = cli(str(folder), stdin="\n".join(lines))
    assert result.returncode == 0, result.stderr
    banner = result.stdout.splitlines()[0]
    assert f"a gpt model, {ckpt.n_params:,} parameters, context {ckpt.config.block_size} tokens" in banner
    assert str(folder) in banner
    assert "settings: {'max_new_tokens': 25, 'temperature': 0.0}" in result.stdout
    greedy = dict(temperature=0.0, max_new_tokens=25)
    assert "> " + library_text(folder, "All:", **greedy) + "\n> " in result.stdout
    assert "never seen: 'Z', 'b'" in result.stdout  # the error is shown ...
    assert "> " + library_text(folder, "First", **greedy) + "\n> " in result.stdout  # ... and the loop goes on


@pytest.mark.parametrize("word", ["quit", "exit", "  QUIT "])
def test_interactive_quit_words_leave(tiny_checkpoints, word):
    out = io.StringIO()
    assert main([str(tiny_checkpoints["bigram"])], out=out, inp=io.StringIO(f"{word}\nFirst\n")) == 0
    assert out.getvalue().count("> ") == 1  # left at the first prompt, "First" never ran


def test_unknown_characters_fail_with_the_library_message(tiny_checkpoints):
    result = cli(str(tiny_checkpoints["gpt"]), "Zebra")
    assert result.returncode == 1
    assert result.stdout == ""  # nothing, not even the prompt, is printed before the error
    assert "The prompt has 2 character(s) this model has never seen: 'Z', 'b'" in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_drop_skips_unknown_characters(tiny_checkpoints, capsys):
    out = io.StringIO()
    assert main([str(tiny_checkpoints["gpt"]), "Zebra", "errors=drop", "max_new_tokens=5", "seed=0"], out=out) == 0
    assert out.getvalue().startswith("Zebra") and len(out.getvalue()) == len("Zebra") + 5 + 1


def test_unknown_key_lists_the_valid_keys(capsys):
    # settings are checked before the checkpoint is even looked for
    assert main(["no/such-model", PROMPT, "temprature=0.5"]) == 2
    err = capsys.readouterr().err
    assert "Unknown key 'temprature'" in err
    assert "max_new_tokens, temperature, top_k, top_p, seed, errors" in err


@pytest.mark.parametrize("arg, expected", [
    ("temperature=hot", "temperature must be a number, got 'hot'"),
    ("temperature=11", "temperature must be in 0.0..10.0"),
    ("top_p=0", "top_p must be above 0"),
    ("max_new_tokens=-1", "max_new_tokens must be in 0.."),
    ("top_k=2.5", "top_k must be a whole number, got '2.5'"),
    ("seed=abc", "seed must be a whole number"),
    ("errors=ignore", "errors must be one of strict, drop, replace"),
])
def test_bad_values_are_refused_with_a_clear_message(arg, expected, capsys):
    assert main(["no/such-model", PROMPT, arg]) == 2
    assert expected in capsys.readouterr().err


def test_two_prompts_and_a_missing_checkpoint_are_errors(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "one", "two"]) == 2
    assert "one quoted argument" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), PROMPT]) == 1
    assert "No checkpoint folder" in capsys.readouterr().err


def test_a_prompt_with_equals_goes_after_double_dash(tiny_checkpoints):
    out = io.StringIO()
    args = [str(tiny_checkpoints["gpt"]), "max_new_tokens=3", "errors=replace", "--", "a=s"]  # '=' is unknown
    assert main(args, out=out) == 0
    assert out.getvalue().startswith("a=s") and len(out.getvalue()) == len("a=s") + 3 + 1


def test_every_generation_setting_is_a_key():
    assert set(asdict(GenerationSettings())) <= set(KEYS)
