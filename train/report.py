"""python -m train.report: rebuild the README's model table, samples and val-loss chart
from the shipped checkpoints' metrics.json, so the published numbers cannot drift."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from gptlab.classroom.catalog import ladder_key
from gptlab.cli import run_cli
from gptlab.markdown import code_block, code_span

START, END = "<!-- models:start -->", "<!-- models:end -->"


def shipped(folder: Path) -> dict[str, dict[str, Any]]:
    """name -> metrics.json of each checkpoint folder, in ladder order."""
    found = {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/metrics.json")}
    return {name: found[name] for name in sorted(found, key=ladder_key)}


def models_table(models: dict[str, dict[str, Any]]) -> str:
    rows = ["| model | parameters | val loss | val loss, whole split | train loss | val bits/char | tokens seen "
            "| training time | hardware | command |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, m in models.items():
        best = m.get("best", {})
        rows.append(
            f"| {code_span(name, in_table=True)} | {m.get('n_params', 0):,} | {best.get('val_loss', float('nan')):.4f} "
            f"| {best.get('val_loss_full', float('nan')):.4f} | {best.get('train_loss', float('nan')):.4f} "
            f"| {m.get('bits_per_char', float('nan')):.3f} | {m.get('tokens', 0) / 1e6:.1f}M "
            f"| {m.get('train_time_s', 0) / 60:.1f} min | {m.get('hardware', '?')} "
            f"| {code_span(str(m.get('command', '?')), in_table=True)}"
            + (f" then {len(m['resumed_with'])}× `resume=true`" if m.get("resumed_with") else "") + " |"
        )
    return "\n".join(rows)


def samples_section(models: dict[str, dict[str, Any]], lines: int = 4) -> str:
    parts = []
    for name, m in models.items():
        text = "\n".join((m.get("sample") or "").strip("\n").splitlines()[:lines])
        parts += [f"**{name}**", "", code_block(text), ""]  # model text: a fence no line of it can close
    return "\n".join(parts)


def render(folder: Path, chart: str) -> str:
    models = shipped(folder)
    return "\n".join([
        START,
        "",
        models_table(models),
        "",
        f"![val bits per character of each rung of the ladder]({chart})",
        "",
        "Val loss: mean cross-entropy (nats per token) on 20 fixed random batches of the last 10% of Tiny "
        "Shakespeare at the best evaluation; \"whole split\" scores every val token once, in windows of the "
        "model's context. Training time excludes evaluation. `tests/test_shipped_checkpoints.py` re-measures "
        "these in CI.",
        "",
        "<details><summary>A few lines of each model's sample (temperature 0.8)</summary>",
        "",
        samples_section(models),
        "</details>",
        "",
        END,
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", default="checkpoints", type=Path)
    parser.add_argument("--readme", default="README.md", type=Path)
    parser.add_argument("--chart", default="docs/ladder.png", type=Path)
    args = parser.parse_args(argv)
    models = shipped(args.checkpoints)
    if not models:
        print(f"error: no checkpoints with metrics.json under {args.checkpoints.resolve()} (run it from the "
              "repository, or give --checkpoints)", file=sys.stderr)
        return 1
    from gptlab.errors import ExportError
    from gptlab.figures import ladder_chart
    from gptlab.figures.export import figure_image

    args.chart.parent.mkdir(parents=True, exist_ok=True)
    try:  # bounded: without a browser this fails in seconds and says what to install
        args.chart.write_bytes(figure_image(ladder_chart(models).update_layout(width=900, height=420), "png", scale=1))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    readme = args.readme.read_text(encoding="utf-8")
    section = render(args.checkpoints, args.chart.as_posix())
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        print(f"error: {args.readme} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    args.readme.write_text(pattern.sub(lambda _: section, readme), encoding="utf-8")
    print(f"wrote {len(models)} models to {args.readme} and {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
