"""Draw the README's attention-across-training image from the default GPT's training snapshots.

    python scripts/across_training_image.py [--checkpoints checkpoints] [--layer 0] [--head 0]

Writes docs/img/attention-across-training.png (and .svg): one head on one prompt at up to six
snapshots, from the untrained model to the last one saved. The head defaults to the one that is
most clearly a previous-character head in the last snapshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gptlab.classroom.lessons import resolve_head  # noqa: E402
from gptlab.errors import ExportError  # noqa: E402
from gptlab.figures import training_strip  # noqa: E402
from gptlab.figures.export import figure_image  # noqa: E402
from gptlab.inside import attention_view, head_across_training, label_heads  # noqa: E402
from gptlab.prompts import LOOK_PROMPT, fit_text  # noqa: E402
from gptlab.snapshots import SnapshotCache, find_snapshots  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(REPO / "checkpoints"))
    parser.add_argument("--model", default="gpt")
    parser.add_argument("--layer", type=int, default=-1, help="-1: the best previous-character head")
    parser.add_argument("--head", type=int, default=-1)
    parser.add_argument("--out", default=str(REPO / "docs" / "img" / "attention-across-training"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    snapshots = find_snapshots(Path(args.checkpoints) / args.model)
    if not snapshots:
        print(f"no snapshots under {Path(args.checkpoints) / args.model / 'snapshots'}", file=sys.stderr)
        return 1
    cache = SnapshotCache()
    last = cache.get(snapshots[-1])
    fit = fit_text(last.tokenizer, LOOK_PROMPT)  # the app's Across training prompt, as this model can read it
    if fit.changed:
        print(f"note: {fit.note()}")
    view = attention_view(last.model, last.tokenizer, fit.text)
    layer, head = resolve_head(label_heads(view.patterns, view.tokens, view.ids), args.layer, args.head, "previous")
    frames = head_across_training(snapshots, cache, fit.text, layer, head)
    fig = training_strip(frames, f"Layer {layer}, head {head} of the GPT while it trains "
                                 f"(prompt: “ROMEO: But soft, what light…”)")
    fig.update_layout(width=1400, height=360)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for fmt in ("png", "svg"):
        try:
            out.with_suffix(f".{fmt}").write_bytes(figure_image(fig, fmt, scale=1.5))
        except ExportError as exc:  # no browser, or a render that hung: the message says what to do
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {out}.png and .svg (layer {layer}, head {head}, steps {[f[0].step for f in frames]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
