"""Print one of the README's two commands, for .ci/run: `python3 .ci/readme_commands.py app|test`.

The commands are the two one-line ```bash blocks under "## Two commands" in README.md: first the
one that sets up and runs the app, then the one that sets up and runs the tests. The README is the
only place they are written; CI runs what this prints, so the two cannot drift apart. Standard
library only: it runs before any virtual environment exists. Exits 1 with a message when the
README no longer has that shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Two commands"
NAMES = ("app", "test")  # in the order the README gives them


def readme_commands(text: str) -> dict[str, str]:
    """{"app": ..., "test": ...} from the README's text; ValueError saying what is wrong otherwise."""
    lines = text.splitlines()
    if SECTION not in lines:
        raise ValueError(f"the README has no {SECTION!r} section")
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks, block = [], None
    for line in lines[start:end]:
        if block is None and line.strip() == "```bash":
            block = []
        elif block is not None and line.strip() == "```":
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(line)
    if block is not None:
        raise ValueError(f"a ```bash block under {SECTION!r} is never closed")
    if len(blocks) != len(NAMES) or any(len(b) != 1 or not b[0].strip() for b in blocks):
        shapes = ", ".join(f"{len(b)} line(s)" for b in blocks) or "none"
        raise ValueError(f"{SECTION!r} must hold exactly {len(NAMES)} ```bash blocks of one line each "
                         f"(the app command, then the test command); found {shapes}")
    return {name: block[0].strip() for name, block in zip(NAMES, blocks, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=NAMES, help="the app command or the test command")
    parser.add_argument("--readme", type=Path, default=README, help="the README to read (default: the repo's)")
    args = parser.parse_args(argv)
    try:
        commands = readme_commands(args.readme.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot take the {args.which} command from {args.readme}: {exc}", file=sys.stderr)
        return 1
    print(commands[args.which])
    return 0


if __name__ == "__main__":
    sys.exit(main())
