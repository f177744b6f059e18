"""Every model a view may set side by side: each rung of the ladder (the bigram too), the training snapshots a
model left (``gpt@1000``: gpt at step 1,000) and the visitor's live model. Where context pays picks A and B here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import InputError
from gptlab.snapshots import Snapshot, SnapshotCache, find_snapshots

from .pickers import LIVE, LIVE_LABEL, get_model

SNAPSHOT_VALUE = re.compile(r"^(?P<name>.+)@(?P<step>\d{1,9})$")


@dataclass(frozen=True)
class Rungs:
    """The catalog's models and their snapshots (looked up on disk at each request), loaded snapshots kept."""

    catalog: Catalog
    cache: SnapshotCache = field(default_factory=lambda: SnapshotCache(size=4))  # a gpt snapshot is ~11 MB

    def snapshots(self, name: str) -> list[Snapshot]:
        """The training snapshots of the catalog's model ``name`` (none for a Hub model or one without)."""
        return find_snapshots(self.catalog.get(name).folder) if name in self.catalog.names else []

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) for a dropdown: every model, then each one's snapshots, then the visitor's live model."""
        shown = self.catalog.choices(self.catalog.names)
        for name in self.catalog.names:
            shown += [(f"{name} at {snap.label}", f"{name}@{snap.step}") for snap in self.snapshots(name)]
        return shown + [(LIVE_LABEL, LIVE)]

    def get(self, value, live: Checkpoint | None) -> Checkpoint:
        """The checkpoint a dropdown value names; InputError for a value that names nothing offered."""
        if value == LIVE:
            return get_model(self.catalog, LIVE, live)  # InputError until the visitor has trained one
        if value in self.catalog.names:
            return self.catalog.get(value)
        match = SNAPSHOT_VALUE.match(value) if isinstance(value, str) else None
        if match and match["name"] in self.catalog.names:
            for snap in self.snapshots(match["name"]):
                if snap.step == int(match["step"]):
                    return self.cache.get(snap)
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
        raise InputError(f"No model or snapshot named {shown}; choose one from the list (a snapshot reads "
                         "'gpt@1000': gpt at step 1,000).")

    @staticmethod
    def name(value: str) -> str:
        """How a value reads in a sentence or a title: 'gpt@1000' -> 'gpt at step 1,000'."""
        match = SNAPSHOT_VALUE.match(value)
        if match:
            return f"{match['name']} at step {int(match['step']):,}"
        return "your model" if value == LIVE else value
