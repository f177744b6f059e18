"""Terminal generation: ``python -m gptlab.generate <checkpoint-or-repo> [prompt] key=value ...``.

With a prompt it prints the prompt and its streamed continuation, then exits (non-zero on any
error). Without one it loads the model once and loops: each line is a prompt, a line of
key=value pairs changes the settings, and quit, exit or Ctrl-D leaves.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TextIO

from gptlab.checkpoint import load_checkpoint
from gptlab.errors import GptlabError, SettingsError
from gptlab.generate import generate
from gptlab.sampling import GenerationSettings

USAGE = (
    "usage: python -m gptlab.generate <checkpoint-folder | user/repo> [prompt] [key=value ...]\n"
    "  keys: max_new_tokens=200 temperature=0.8 top_k=0 top_p=1.0 seed=none errors=strict\n"
    "  No prompt: an interactive loop. A prompt holding '=' goes after '--'."
)
QUIT_WORDS = {"quit", "exit"}
SETTING = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.DOTALL)
ERRORS_CHOICES = ("strict", "drop", "replace")


def _whole(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {text!r}.") from None
    return parse


def _number(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {text!r}.") from None
    return parse


def _seed(text: str) -> int | None:
    return None if text.lower() in ("", "none", "random") else _whole("seed")(text)


def _errors(text: str) -> str:
    if text not in ERRORS_CHOICES:
        raise SettingsError(f"errors must be one of {', '.join(ERRORS_CHOICES)}, got {text!r}.")
    return text


# One parser per key: GenerationSettings fields, plus how to treat characters the model lacks.
PARSERS: dict[str, Callable[[str], Any]] = {
    "max_new_tokens": _whole("max_new_tokens"), "temperature": _number("temperature"),
    "top_k": _whole("top_k"), "top_p": _number("top_p"), "seed": _seed, "errors": _errors,
}


def parse_settings(pairs: list[str], base: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated from ``key=value`` strings; raises SettingsError naming the valid keys."""
    values = dict(base)
    for pair in pairs:
        match = SETTING.match(pair)
        if not match:
            raise SettingsError(f"'{pair}' is not key=value.")
        key, text = match.groups()
        if key not in PARSERS:
            raise SettingsError(f"Unknown setting '{key}'. Valid keys: {', '.join(PARSERS)}.")
        values[key] = PARSERS[key](text.strip())
    _settings(values)  # range checks now, before any model is loaded
    return values


def _settings(values: dict[str, Any]) -> GenerationSettings:
    return GenerationSettings(**{k: v for k, v in values.items() if k != "errors"}).validate()


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(prompt or None, key=value strings). Everything after '--' is the prompt, '=' and all."""
    prompt_parts: list[str] = []
    pairs: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            prompt_parts += args[i + 1 :]
            break
        (pairs if SETTING.match(arg) else prompt_parts).append(arg)
    if len(prompt_parts) > 1:
        raise SettingsError(f"Give the prompt as one quoted argument; got {len(prompt_parts)}: {prompt_parts}.")
    return (prompt_parts[0] if prompt_parts else None), pairs


def stream(checkpoint, prompt: str, values: dict[str, Any], out: TextIO, echo: bool = False) -> None:
    """Print the continuation of ``prompt`` piece by piece, flushing each so it appears at once."""
    settings = _settings(values)
    checkpoint.tokenizer.encode(prompt, values["errors"])  # unknown characters raise before anything is printed
    if echo:
        out.write(prompt)
    for piece in generate(checkpoint.model, checkpoint.tokenizer, prompt, settings, errors=values["errors"]):
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()


def describe(name: str, checkpoint) -> str:
    config = checkpoint.config
    return (f"{name}: a {config.kind} model, {checkpoint.n_params:,} parameters, context {config.block_size} tokens, "
            f"{checkpoint.tokenizer.kind} tokenizer ({checkpoint.tokenizer.vocab_size} tokens)")


def interactive(name: str, checkpoint, values: dict[str, Any], out: TextIO, inp: TextIO) -> int:
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
            if words and all(SETTING.match(w) and SETTING.match(w)[1] in PARSERS for w in words):
                values = parse_settings(words, values)
                shown = {k: v for k, v in values.items() if k in {m[1] for m in map(SETTING.match, words)}}
                out.write(f"settings: {shown}\n")
                continue
            stream(checkpoint, line, values, out)
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
        values = parse_settings(pairs, {**asdict(GenerationSettings()), "errors": "strict"})
    except SettingsError as exc:
        print(f"error: {exc} (see --help)", file=sys.stderr)
        return 2
    try:
        checkpoint = load_checkpoint(source)
        if prompt is None:
            return interactive(source, checkpoint, values, out, inp)
        stream(checkpoint, prompt, values, out, echo=True)
    except GptlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
