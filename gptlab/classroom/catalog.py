"""The models an app offers: shipped checkpoint folders plus Hub repo ids the deployer lists.

Visitors choose among these names only; a path or repo id typed by a visitor is never loaded.
Each model is loaded once, at start, and shared by every request (models are read-only in eval
mode, and hooks are per thread, so sharing is safe).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_FILE, Checkpoint, load_checkpoint
from ..errors import GptlabError
from ..inside.explore import has_attention

# Ladder order: simplest first. Names outside the ladder come after, alphabetically.
LADDER = ("bigram", "single_head", "multi_head", "blocks", "gpt", "gpt-bpe")
HUB_ENV = "GPTLAB_HUB_MODELS"
CHECKPOINTS_ENV = "GPTLAB_CHECKPOINTS"
# The checkout's shipped models, found from this file: a command run from any folder finds them
DEFAULT_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def ladder_key(name: str) -> tuple[int, str]:
    return (LADDER.index(name) if name in LADDER else len(LADDER), name)


def discover(folder: str | Path) -> dict[str, Path]:
    """Checkpoint folders directly inside ``folder`` (those holding config.json), in ladder order.

    Sub-folders without a config.json (e.g. ``snapshots/``) are not models and are skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        return {}
    found = {p.name: p for p in root.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()}
    return {name: found[name] for name in sorted(found, key=ladder_key)}


def hub_ids_from_env(value: str | None = None) -> list[str]:
    """Hub repo ids from $GPTLAB_HUB_MODELS (comma-separated), blanks dropped."""
    raw = os.environ.get(HUB_ENV, "") if value is None else value
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass
class Entry:
    """One offered model: where it came from and, once loaded, the checkpoint (or why it failed)."""

    name: str
    source: str
    checkpoint: Checkpoint | None = None
    error: str | None = None

    @property
    def from_hub(self) -> bool:
        """True for a Hub repo id, False for a local folder (a local path is not worth showing visitors)."""
        return not Path(self.source).exists()

    @property
    def kind(self) -> str:
        return self.checkpoint.config.kind if self.checkpoint else "?"

    @property
    def label(self) -> str:
        """e.g. 'gpt · 10.8M params · val loss 1.482' (what the model pickers show)."""
        if self.checkpoint is None:
            return f"{self.name} (failed to load)"
        parts = [self.name, f"{format_params(self.checkpoint.n_params)} params"]
        if self.checkpoint.best_val_loss is not None:
            parts.append(f"val loss {self.checkpoint.best_val_loss:.3f}")
        return " · ".join(parts)


def format_params(n: int) -> str:
    """1234 -> '1.2K', 10_800_000 -> '10.8M'."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def training_time(metrics: dict[str, Any]) -> float | None:
    """Seconds of training: metrics.json's train_time_s, else the last history row's time_s."""
    value = metrics.get("train_time_s")
    if value is not None:
        return float(value)
    history = metrics.get("history") or []
    if history and isinstance(history[-1], dict) and history[-1].get("time_s") is not None:
        return float(history[-1]["time_s"])
    return None


def format_duration(seconds: float | None) -> str:
    """42.0 -> '42 s', 750 -> '12.5 min', 7200 -> '2.0 h'; '—' when unknown."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Catalog:
    """Named models, loaded once; failures are kept with their message instead of stopping the app."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.entries: dict[str, Entry] = {name: Entry(name, src) for name, src in sources.items()}

    @classmethod
    def from_sources(
        cls, folder: str | Path | None, hub_ids: list[str] | None = None, only: list[str] | None = None
    ) -> Catalog:
        """Local folders under ``folder`` then Hub ids (named by their repo name), filtered to ``only``."""
        sources = {name: str(path) for name, path in discover(folder).items()} if folder else {}
        for repo_id in hub_ids or []:
            sources.setdefault(repo_id.split("/")[-1], repo_id)
        if only:
            missing = [name for name in only if name not in sources]
            if missing:
                found = f"only {list(sources)} were found" if sources else "no model was found"
                where = ("" if not folder else f" (there is no folder {folder})" if not Path(folder).is_dir()
                         else f" (looked in the checkpoint folders under {folder})")
                raise GptlabError(f"--models asks for {missing}, but {found}{where}.")
            sources = {name: sources[name] for name in only}
        return cls(sources)

    def load_all(self) -> Catalog:
        """Load every model now, keeping each failure's message (shown in the Models tab)."""
        for entry in self.entries.values():
            if entry.checkpoint is None and entry.error is None:
                try:
                    entry.checkpoint = load_checkpoint(entry.source)
                except GptlabError as exc:
                    entry.error = str(exc)
        return self

    @property
    def names(self) -> list[str]:
        """Models that loaded, in ladder order."""
        return [n for n, e in self.entries.items() if e.checkpoint is not None]

    @property
    def attention_names(self) -> list[str]:
        """Loaded models that have attention layers (everything but the bigram)."""
        return [n for n in self.names if has_attention(self.entries[n].checkpoint.model)]

    def get(self, name: str) -> Checkpoint:
        """The loaded checkpoint for a name offered by this catalog, else a GptlabError."""
        entry = self.entries.get(name)
        if entry is None or entry.checkpoint is None:
            offered = ", ".join(self.names) or "none"
            reason = f" ({entry.error})" if entry is not None and entry.error else ""
            raise GptlabError(f"No model named {name!r} is available{reason}. Choose one of: {offered}.")
        return entry.checkpoint

    def label(self, name: str) -> str:
        return self.entries[name].label

    def choices(self, names: list[str] | None = None) -> list[tuple[str, str]]:
        """(label, name) pairs for a dropdown: the label shows size and loss, the value is the name."""
        return [(self.label(n), n) for n in (self.names if names is None else names)]

    def default(self, preferred: str, names: list[str] | None = None) -> str | None:
        """``preferred`` if offered, else the most capable offered model (last in ladder order)."""
        names = self.names if names is None else names
        return preferred if preferred in names else (names[-1] if names else None)

    def table(self) -> list[list[Any]]:
        """Rows for the Models tab: name, kind, tokenizer, parameters, layers x heads x width, context,
        best val loss, training time, source (or the load error)."""
        rows = []
        for name, entry in self.entries.items():
            ck = entry.checkpoint
            if ck is None:
                rows.append([name, "—", "—", None, "—", None, None, "—", f"failed: {entry.error}"])
                continue
            c = ck.config
            shape = "—" if c.kind == "bigram" else f"{c.n_layer}×{c.n_head}×{c.n_embd}"
            val = ck.best_val_loss
            rows.append([
                name, c.kind, ck.tokenizer.kind, f"{ck.n_params:,}", shape, c.block_size,
                round(val, 4) if val is not None else None,
                format_duration(training_time(ck.metrics)), entry.source if entry.from_hub else "local folder",
            ])
        return rows

    def metrics(self) -> dict[str, dict[str, Any]]:
        """metrics.json of every loaded model, by name (for the loss curves)."""
        return {n: self.entries[n].checkpoint.metrics for n in self.names}


TABLE_HEADERS = [
    "model", "kind", "tokenizer", "parameters", "layers × heads × width", "context", "best val loss",
    "training time", "source",
]
