"""python -m train <preset> [key=value ...]: train a rung of the ladder and write a checkpoint."""

from __future__ import annotations

import shlex
import sys

from gptlab.cli import run_cli
from gptlab.errors import GptlabError

from .config import apply_overrides, defaults
from .presets import PRESETS, make_preset

USAGE = """usage: python -m train <preset> [key=value ...]
       torchrun --nproc_per_node=N -m train <preset> [key=value ...]

example: python -m train gpt max_iters=3000 model.n_layer=4 data=path/to/book.txt out=checkpoints/my-gpt
"""


def help_text() -> str:
    lines = [USAGE, "presets:"]
    lines += [f"  {name:<12} {desc}" for name, (desc, _) in PRESETS.items()]
    lines += ["", "keys (default shown; presets change some):"]
    lines += [f"  {key}={default}" for key, default in defaults().items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0 if argv else 2
    try:
        config = apply_overrides(make_preset(argv[0]), argv[1:])
    except GptlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .loop import train

    # SIGINT saves and stops the run (run_cli makes sure it is heard, even from a background job)
    command = "python -m train " + " ".join(shlex.quote(a) for a in argv)
    try:
        train(config, command=command)
    except KeyboardInterrupt:
        return 130
    except GptlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
