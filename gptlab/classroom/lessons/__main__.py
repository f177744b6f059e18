"""Lessons from the terminal: ``python -m gptlab.classroom.lessons export OUT_DIR [--teacher] [--model gpt]``.

Writes ``OUT_DIR/<lesson>.html`` for each lesson (each one opens on its own) and
``OUT_DIR/all-lessons.html`` with every lesson in one file: copy them to a USB stick and open
them in any browser, with no server and no network. Exits non-zero with a message on any error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gptlab.checkpoint import Checkpoint, load_checkpoint
from gptlab.classroom.catalog import CHECKPOINTS_ENV, DEFAULT_CHECKPOINTS
from gptlab.classroom.lessons import LESSONS, draw_lesson, lesson_view, lessons_html
from gptlab.cli import run_cli
from gptlab.errors import GptlabError

ALL_LESSONS_FILE = "all-lessons.html"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gptlab.classroom.lessons",
                                     description="Write gptlab's lessons as HTML files that open offline.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write lessons as HTML files that need no server or network")
    export.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    export.add_argument("--model", default="gpt", help="a checkpoint name in --checkpoints, a checkpoint folder, "
                        "or a Hub repo id (default: gpt)")
    export.add_argument("--checkpoints", type=Path, default=Path(os.environ.get(CHECKPOINTS_ENV, DEFAULT_CHECKPOINTS)),
                        help=f"folder of checkpoint folders (default: ${CHECKPOINTS_ENV}, else the repository's "
                        f"checkpoints/, whatever the current folder)")
    export.add_argument("--teacher", action="store_true", help="projector style: large type, the Cividis scale")
    export.add_argument("--lesson", action="append", choices=list(LESSONS),
                        help="only this lesson (repeat for more; default: every lesson)")
    return parser.parse_args(argv)


def baseline(checkpoints: Path, lesson: str) -> Checkpoint | None:
    """The model a lesson compares against (the bigram for "Where does context pay?"), if ``checkpoints`` has it."""
    folder = checkpoints / LESSONS[lesson].baseline
    return load_checkpoint(folder) if LESSONS[lesson].baseline and folder.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    named = args.checkpoints / args.model
    if not (named.is_dir() or Path(args.model).exists() or "/" in args.model):
        folder = args.checkpoints.resolve()  # the folder searched, whatever the current folder is
        if folder.is_dir():
            found = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir())) or "none"
        else:
            found = "none: that folder does not exist"
        print(f"error: no model {args.model!r} in {folder} (found: {found}); give a name from there, "
              f"--checkpoints (or ${CHECKPOINTS_ENV}) with another folder, a checkpoint folder or a Hub repo id "
              "(user/name).", file=sys.stderr)
        return 1
    try:
        checkpoint = load_checkpoint(named if named.is_dir() else args.model)
        name = Path(args.model).name if Path(args.model).is_dir() or named.is_dir() else args.model
        pages = [draw_lesson(checkpoint, lesson_view(lesson, name, args.teacher), baseline(args.checkpoints, lesson))
                 for lesson in args.lesson or LESSONS]
        args.out_dir.mkdir(parents=True, exist_ok=True)
        files = {args.out_dir / f"{page.view.lesson}.html": lessons_html([page]) for page in pages}
        files[args.out_dir / ALL_LESSONS_FILE] = lessons_html(pages)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
    except (GptlabError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
