"""Training snapshots of a model (``<model>/snapshots/step_XXXXXX/``): find them, load them once.

A training writes a checkpoint folder at chosen steps; each folder's metrics.json ``best`` holds
that step's validation loss and its ``history`` the sample texts written at each evaluation.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, Checkpoint, _read_json, load_checkpoint
from .errors import CheckpointError

SNAPSHOTS_DIR = "snapshots"
STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot folder: the training step it was saved at and its validation loss (if known)."""

    step: int
    folder: Path
    val_loss: float | None

    @property
    def label(self) -> str:
        loss = f" · val loss {self.val_loss:.3f}" if self.val_loss is not None else ""
        return f"step {self.step:,}{loss}"


def find_snapshots(model_folder: str | Path) -> list[Snapshot]:
    """Complete snapshot folders under ``model_folder/snapshots``, sorted by step.

    A folder still being written (no weights or config yet) is skipped, so a live training's
    folder can be read while it grows.
    """
    root = Path(model_folder) / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = STEP_DIR.match(path.name)
        if not (match and path.is_dir() and (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()):
            continue
        found.append(Snapshot(int(match.group(1)), path, _val_loss(path)))
    return sorted(found, key=lambda s: s.step)


def _val_loss(folder: Path) -> float | None:
    try:
        metrics = _read_json(folder / METRICS_FILE)
    except CheckpointError:
        return None
    best = metrics.get("best") if isinstance(metrics, dict) else None
    value = best.get("val_loss") if isinstance(best, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def snapshot_sample(checkpoint: Checkpoint, step: int) -> str | None:
    """The sample text the training wrote at ``step`` (metrics history or samples/), if any."""
    for row in checkpoint.metrics.get("history") or []:
        if isinstance(row, dict) and row.get("step") == step and isinstance(row.get("sample"), str):
            return row["sample"]
    for folder in (checkpoint.folder, checkpoint.folder.parent.parent):  # the snapshot, then the model folder
        path = folder / "samples" / f"step_{step:06d}.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    return None


class SnapshotCache:
    """Loaded snapshots, at most ``size`` at once (least recently used dropped); thread-safe."""

    def __init__(self, size: int = 12) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, float], Checkpoint] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, snapshot: Snapshot) -> Checkpoint:
        """The loaded checkpoint (a rewritten folder is loaded again: its weights' mtime is in the key)."""
        try:
            key: tuple[Any, ...] = (str(snapshot.folder), (snapshot.folder / WEIGHTS_FILE).stat().st_mtime)
        except OSError:
            raise CheckpointError(f"{snapshot.folder}: the snapshot is gone; reload the page.") from None
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        checkpoint = load_checkpoint(snapshot.folder)
        with self._lock:
            self._items[key] = checkpoint
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return checkpoint

