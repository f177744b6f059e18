"""One live training per visitor, at most N at once: ``LiveSlots`` for whatever server drives ``train_live``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import GptlabError


class BusyError(GptlabError):
    """A live training cannot start now (this visitor already runs one, or the server is full)."""


class LiveSlots:
    """At most ``cap`` live runs at once, one per visitor; ``stop(visitor)`` ends that visitor's run."""

    def __init__(self, cap: int = 2) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._runs: dict[str, threading.Event] = {}

    @contextmanager
    def claim(self, visitor: str) -> Iterator[threading.Event]:
        """A stop event for the visitor's run, held until the block ends; BusyError if none is free."""
        with self._lock:
            if visitor in self._runs:
                raise BusyError("You already have a training running: wait for it or press Stop first.")
            if len(self._runs) >= self.cap:
                raise BusyError(f"The server is busy: {len(self._runs)} trainings are running (the limit is "
                                f"{self.cap}). Try again in a minute.")
            event = self._runs[visitor] = threading.Event()
        try:
            yield event
        finally:
            with self._lock:
                self._runs.pop(visitor, None)

    def stop(self, visitor: str) -> bool:
        """Ask the visitor's run to end at its next check; False if it has none."""
        with self._lock:
            event = self._runs.get(visitor)
        if event is None:
            return False
        event.set()
        return True

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._runs)
