"""Export what a class is looking at: figures as PNG/SVG, attention matrices as CSV/JSON."""

from __future__ import annotations

import atexit
import csv
import io
import json
import re
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import torch

from .errors import GptlabError

IMAGE_FORMATS = ("png", "svg")
_render_lock = threading.Lock()  # one headless browser render at a time: they are heavy on 2 cores
_renderer_started = False


def attention_csv(pattern: torch.Tensor, labels: Sequence[str]) -> str:
    """A [q, k] matrix as CSV: a header of key labels, one row per query label; the masked future empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["query \\ key", *labels])
    for q, label in enumerate(labels):
        writer.writerow([label, *(f"{float(pattern[q, k]):.6f}" if k <= q else "" for k in range(len(labels)))])
    return out.getvalue()


def attention_json(pattern: torch.Tensor, labels: Sequence[str], tokens: Sequence[str],
                   meta: dict[str, Any] | None = None) -> str:
    """The matrix with its token labels and what it is (model, layer, head, prompt) as JSON; future = null."""
    n = len(labels)
    weights = [[round(float(pattern[q, k]), 6) if k <= q else None for k in range(n)] for q in range(n)]
    return json.dumps({**(meta or {}), "labels": list(labels), "tokens": list(tokens), "weights": weights,
                       "rows": "query", "columns": "key"}, ensure_ascii=False, indent=1)


def figure_image(fig: go.Figure, fmt: str = "png", scale: float = 2.0) -> bytes:
    """The figure rendered by kaleido (headless Chromium) as PNG or SVG bytes."""
    if fmt not in IMAGE_FORMATS:
        raise GptlabError(f"Image format must be one of {IMAGE_FORMATS}, got {fmt!r}.")
    try:
        with _render_lock, warnings.catch_warnings():
            _start_renderer()
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            return fig.to_image(format=fmt, scale=scale if fmt == "png" else 1)
    except Exception as exc:  # kaleido reports a missing browser or a crash with many exception types
        raise GptlabError(f"Could not render the figure as {fmt.upper()} ({type(exc).__name__}: {exc}). "
                          "Use the camera button above the plot for a PNG instead.") from None


def _start_renderer() -> None:
    """Keep one headless Chromium for all renders (~0.2 s each instead of ~2.5 s to start one per image)."""
    global _renderer_started
    if _renderer_started:
        return
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    atexit.register(kaleido.stop_sync_server, silence_warnings=True)
    _renderer_started = True


def safe_name(text: str) -> str:
    """A file-name-safe version of a label ('gpt · layer 1 · head 2' -> 'gpt-layer-1-head-2')."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")[:80] or "gptlab"


def write_exports(folder: str | Path, stem: str, fig: go.Figure, pattern: torch.Tensor, labels: Sequence[str],
                  tokens: Sequence[str], meta: dict[str, Any] | None = None,
                  images: Sequence[str] = IMAGE_FORMATS) -> dict[str, Path]:
    """Write ``stem``.csv/.json (and the images asked for) into ``folder``; {format: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(stem)
    paths = {"csv": folder / f"{stem}.csv", "json": folder / f"{stem}.json"}
    paths["csv"].write_text(attention_csv(pattern, labels), encoding="utf-8")
    paths["json"].write_text(attention_json(pattern, labels, tokens, meta), encoding="utf-8")
    for fmt in images:
        paths[fmt] = folder / f"{stem}.{fmt}"
        paths[fmt].write_bytes(figure_image(fig, fmt))
    return paths
