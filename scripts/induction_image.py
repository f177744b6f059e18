"""Draw the README's induction-score image from the induction model's training snapshots.

    python scripts/induction_image.py [--checkpoints checkpoints] [--model induction]

Writes docs/img/induction-across-training.png: the best head's induction score and the val loss at every
snapshot (gptlab.inside.formation.induction_across), the step range where the score climbs shaded, and
prints the caption the app shows beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gptlab.errors import ExportError  # noqa: E402
from gptlab.figures.export import figure_image  # noqa: E402
from gptlab.figures.formation import induction_across_figure  # noqa: E402
from gptlab.inside.formation import induction_across  # noqa: E402
from gptlab.snapshots import SnapshotCache, find_snapshots  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(REPO / "checkpoints"))
    parser.add_argument("--model", default="induction")
    parser.add_argument("--out", default=str(REPO / "docs" / "img" / "induction-across-training.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    snapshots = find_snapshots(Path(args.checkpoints) / args.model)
    if len(snapshots) < 2:
        print(f"fewer than two snapshots under {Path(args.checkpoints) / args.model / 'snapshots'}", file=sys.stderr)
        return 1
    found = induction_across(snapshots, SnapshotCache(size=len(snapshots)))
    fig = induction_across_figure(found.steps, found.scores, found.val_loss, found.chance,
                                  (found.rise.start, found.rise.end) if found.rise.formed else None,
                                  found.second_copy_bits, f"The {args.model} model: an induction head forms")
    fig.update_layout(width=1000, height=420)
    try:
        Path(args.out).write_bytes(figure_image(fig, "png", scale=1))
    except ExportError as exc:  # no browser, or a render that hung: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}\n{found.caption}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
