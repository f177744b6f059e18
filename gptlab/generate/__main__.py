"""Terminal generation: ``python -m gptlab.generate <checkpoint-or-repo> [prompt] key=value ...``.

With a prompt it prints the prompt and its streamed continuation, then exits (non-zero on any
error; 141, quietly, when the reader of its output stops early, as ``| head -c 100`` does). Without
one it loads the model once and loops: each line is a prompt, a line of key=value pairs changes the
settings, and quit, exit or Ctrl-D leaves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from gptlab.checkpoint import load_checkpoint
from gptlab.cli import run_cli
from gptlab.errors import ConfigError, GptlabError, SettingsError
from gptlab.generate import generate
from gptlab.sampling import GenerationSettings
from gptlab.settings import PAIR, keys, override, values
from gptlab.tokenizers import Errors

USAGE = (
    "usage: python -m gptlab.generate <checkpoint-folder | user/repo> [prompt] [key=value ...]\n"
    "  keys: max_new_tokens=200 temperature=0.8 top_k=0 top_p=1.0 seed=none errors=strict\n"
    "  No prompt: an interactive loop. A prompt holding '=' goes after '--'."
)
QUIT_WORDS = {"quit", "exit"}


@dataclass(frozen=True)
class CliSettings(GenerationSettings):
    """The generation settings, plus what to do with prompt characters the model has never seen."""

    errors: Errors = "strict"  # strict (refuse the prompt) | drop | replace (with a space)


KEYS = keys(CliSettings)  # max_new_tokens, temperature, top_k, top_p, seed, errors


def parse_settings(pairs: list[str], base: CliSettings) -> CliSettings:
    """``base`` with ``key=value`` strings applied (gptlab.settings), range-checked before any model loads.

    Raises ConfigError for an unknown key (listing the valid ones) or a value of the wrong type,
    SettingsError for one out of range.
    """
    return override(base, pairs).validate()


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(prompt or None, key=value strings). Everything after '--' is the prompt, '=' and all."""
    prompt_parts: list[str] = []
    pairs: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            prompt_parts += args[i + 1 :]
            break
        (pairs if PAIR.match(arg) else prompt_parts).append(arg)
    if len(prompt_parts) > 1:
        raise SettingsError(f"Give the prompt as one quoted argument; got {len(prompt_parts)}: {prompt_parts}.")
    return (prompt_parts[0] if prompt_parts else None), pairs


def stream(checkpoint, prompt: str, settings: CliSettings, out: TextIO, echo: bool = False) -> None:
    """Print the continuation of ``prompt`` piece by piece, flushing each so it appears at once."""
    checkpoint.tokenizer.encode(prompt, settings.errors)  # unknown characters raise before anything is printed
    if echo:
        out.write(prompt)
    # one row of the model's generation engine: the app's code path, with one visitor
    for piece in generate(checkpoint.model, checkpoint.tokenizer, prompt, settings, errors=settings.errors,
                          batched=True):
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()


def describe(name: str, checkpoint) -> str:
    config = checkpoint.config
    return (f"{name}: a {config.kind} model, {checkpoint.n_params:,} parameters, context {config.block_size} tokens, "
            f"{checkpoint.tokenizer.kind} tokenizer ({checkpoint.tokenizer.vocab_size} tokens)")


def interactive(name: str, checkpoint, settings: CliSettings, out: TextIO, inp: TextIO) -> int:
    """Prompt, complete, repeat; errors are shown and the loop goes on."""
    out.write(describe(name, checkpoint) + "\n")
    out.write("Type a prompt and press Enter. A line like 'temperature=0.5 seed=1' changes settings; "
              "quit, exit or Ctrl-D leaves.\n")
    while True:
        out.write("> ")
        out.flush()
        line = inp.readline()
        if not line:  # EOF (Ctrl-D or the end of piped input)
            out.write("\n")
            return 0
        line = line.rstrip("\r\n")
        if line.strip().lower() in QUIT_WORDS:
            return 0
        words = line.split()
        try:
            changed = [match[1] for match in map(PAIR.match, words) if match and match[1] in KEYS]
            if words and len(changed) == len(words):  # a line of known key=value pairs changes the settings
                settings = parse_settings(words, settings)
                shown = {key: value for key, value in values(settings).items() if key in changed}
                out.write(f"settings: {shown}\n")
                continue
            stream(checkpoint, line, settings, out)
        except GptlabError as exc:
            out.write(f"\nerror: {exc}\n")
        except KeyboardInterrupt:  # Ctrl-C stops this completion, not the session
            out.write("\n(stopped)\n")


def main(argv: list[str] | None = None, out: TextIO | None = None, inp: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 bad arguments)."""
    args = sys.argv[1:] if argv is None else argv
    out, inp = out or sys.stdout, inp or sys.stdin
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else out)
        return 2 if not args else 0
    source, rest = args[0], args[1:]
    try:
        prompt, pairs = split_args(rest)
        settings = parse_settings(pairs, CliSettings())
    except (ConfigError, SettingsError) as exc:
        print(f"error: {exc} (see --help)", file=sys.stderr)
        return 2
    try:
        checkpoint = load_checkpoint(source)
        if prompt is None:
            return interactive(source, checkpoint, settings, out, inp)
        stream(checkpoint, prompt, settings, out, echo=True)
    except GptlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
