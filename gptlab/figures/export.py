"""Export what a class is looking at: figures as PNG/SVG, attention matrices and tables as CSV/JSON.

CSV and JSON are written by Python alone. PNG and SVG need kaleido and a Chrome or Chromium: the
browser is looked up once, before any render, and each render runs in a worker process with a time
limit, so a missing or stuck browser gives an ExportError in seconds instead of a request that
never returns. A browser that exits as soon as it starts (a snap stub, a broken install) is noticed
when it exits, and remembered: later exports refuse at once for BROWSER_RETRY_S seconds, then try it
again; a changed file at that path (a reinstall) or another BROWSER_PATH is tried at once.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import csv
import functools
import io
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import psutil
import torch

from ..errors import ExportError

IMAGE_FORMATS = ("png", "svg")
DATA_FORMATS = ("csv", "json")
RENDER_TIMEOUT_S = 60.0  # one image, browser start included (~4 s on an idle 2-core machine, ~0.2 s warm)
BROWSER_RETRY_S = 300.0  # a browser that failed to start is not tried again for this long (unless its file changes)
INSTALL_HINT = ("Install Chromium (Debian/Ubuntu: `apt-get install chromium`; on a Hugging Face Space: a line "
                "`chromium` in `packages.txt`), or use the camera button above each plot, which downloads a PNG. "
                "CSV and JSON export need no browser.")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula


def text_cell(value: Any) -> Any:
    """A text cell safe to open in a spreadsheet: one starting with = + - @ (or a tab / carriage return) gets
    a leading apostrophe, the usual CSV-injection guard; other values (numbers included) unchanged."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def attention_csv(pattern: torch.Tensor, labels: Sequence[str]) -> str:
    """A [q, k] matrix as CSV: a header of key labels, one row per query label; the masked future empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["query \\ key", *map(text_cell, labels)])
    for q, label in enumerate(labels):
        weights = (f"{float(pattern[q, k]):.6f}" if k <= q else "" for k in range(len(labels)))
        writer.writerow([text_cell(label), *weights])
    return out.getvalue()


def table_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of equal keys (e.g. ``HeadMath.table()``) as CSV: a header of the keys, floats to 6 decimals; a
    text cell starting with = + - @ is prefixed with an apostrophe (``text_cell``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(rows[0]) if rows else []
    writer.writerow(map(text_cell, columns))
    for row in rows:
        writer.writerow([f"{row[c]:.6f}" if isinstance(row[c], float) else text_cell(row[c]) for c in columns])
    return out.getvalue()


def attention_json(pattern: torch.Tensor, labels: Sequence[str], tokens: Sequence[str],
                   meta: dict[str, Any] | None = None) -> str:
    """The matrix with its token labels and what it is (model, layer, head, prompt) as JSON; future = null."""
    n = len(labels)
    weights = [[round(float(pattern[q, k]), 6) if k <= q else None for k in range(n)] for q in range(n)]
    return json.dumps({**(meta or {}), "labels": list(labels), "tokens": list(tokens), "weights": weights,
                       "rows": "query", "columns": "key"}, ensure_ascii=False, indent=1)


@dataclass(frozen=True)
class BrowserCheck:
    """Whether kaleido has a browser to render with here: its path, or why there is none."""

    available: bool
    path: str | None
    reason: str


@functools.lru_cache(maxsize=1)
def browser_available() -> BrowserCheck:
    """Look for the browser kaleido would start, the way kaleido does (BROWSER_PATH, then its own
    download, then PATH and the usual install places); once per process (``cache_clear()`` to redo)."""
    try:
        from choreographer.browsers import Chromium  # kaleido's browser driver, installed with it
    except ImportError:
        return BrowserCheck(False, None, "kaleido is not installed (pip install kaleido)")
    try:
        path = Chromium.find_browser(skip_local=False)
    except Exception as exc:  # a broken local download or registry: say so rather than crash the export
        return BrowserCheck(False, None, f"the browser lookup failed ({type(exc).__name__}: {exc})")
    if not path:
        return BrowserCheck(False, None, "no Chrome or Chromium was found on PATH or in the usual places")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        source = "BROWSER_PATH" if os.environ.get("BROWSER_PATH") == path else "the browser lookup"
        return BrowserCheck(False, path, f"{source} points at {path}, which is not an executable file")
    return BrowserCheck(True, path, f"found {path}")


def figure_image(fig: go.Figure, fmt: str = "png", scale: float = 2.0,
                 timeout_s: float = RENDER_TIMEOUT_S) -> bytes:
    """The figure rendered by kaleido (headless Chromium) as PNG or SVG bytes (``scale`` is for PNG only).

    Raises ExportError at once when there is no browser, within seconds when the browser exits as it
    starts (and then at once for the next BROWSER_RETRY_S seconds), and after ``timeout_s`` seconds when a
    render hangs (the worker is then killed; the next call starts a fresh one).
    """
    if fmt not in IMAGE_FORMATS:
        raise ExportError(f"Image format must be one of {IMAGE_FORMATS}, got {fmt!r}.")
    check = browser_available()
    if not check.available:
        raise ExportError(f"PNG and SVG export needs Chrome or Chromium, and {check.reason}. {INSTALL_HINT}")
    return _renderer.render(fig.to_json(), fmt, scale if fmt == "png" else 1, timeout_s, check.path)


@dataclass(frozen=True)
class _FailedStart:
    """A browser that could not start: when, why, and which file it was (a reinstall is tried again)."""

    file: tuple[int, ...]
    at: float  # time.monotonic()
    reason: str


def _file_identity(path: str) -> tuple[int, ...]:
    """Device, inode, size and modification time of a file; () when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Renderer:
    """One worker process (kaleido_worker.py) that keeps a headless browser between renders.

    Starting a browser costs ~2.5 s, a render in a warm one ~0.2 s. A worker that does not answer in
    time is killed and forgotten, so a stuck render never blocks the exports after it. A worker whose
    browser fails to start says so (or dies) within seconds; that failure is remembered per browser.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one render at a time: they are heavy on 2 cores
        self._proc: subprocess.Popen | None = None
        self._browser = ""  # the browser the worker was started with
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._log: Any = None  # the worker's stderr (a temporary file), quoted when it fails
        self._failed: dict[str, _FailedStart] = {}  # browser path -> its last failed start

    def render(self, figure_json: str, fmt: str, scale: float, timeout_s: float, browser: str) -> bytes:
        request = json.dumps({"figure": figure_json, "format": fmt, "scale": scale}) + "\n"
        with self._lock:
            self._refuse_failed(browser)
            deadline = time.monotonic() + timeout_s
            try:
                proc = self._start(browser, timeout_s)
                proc.stdin.write(request)
                proc.stdin.flush()
                line = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._stop(kill=True)
                raise ExportError(f"Rendering the figure as {fmt.upper()} took longer than {timeout_s:g} s and "
                                  f"was stopped (the browser at {browser} may be stuck, or the "
                                  f"machine overloaded). Try again; the camera button above each plot downloads "
                                  f"a PNG without it.") from None
            except OSError as exc:  # the worker could not start, or died before reading the request
                line = None
                cause = f"{type(exc).__name__}: {exc}"
            else:
                cause = ""
            if line is None:
                cause = cause or self._log_tail()
                self._stop()
                raise ExportError(f"The image renderer stopped without an answer ({cause}). {INSTALL_HINT}")
            reply = json.loads(line)
            if "fatal" in reply:  # the browser died under the render; the next export starts a fresh one
                self._stop()
                raise ExportError(f"The browser at {browser} exited while rendering ({reply['fatal']}). Try "
                                  "again (a fresh one starts); the camera button above each plot downloads a PNG "
                                  "without it.")
        if "error" in reply:
            raise ExportError(f"Could not render the figure as {fmt.upper()} ({reply['error']}). "
                              "Use the camera button above the plot for a PNG instead.")
        return base64.b64decode(reply["image"])

    def _refuse_failed(self, browser: str) -> None:
        """ExportError at once if ``browser`` failed to start less than BROWSER_RETRY_S ago and is unchanged."""
        failed = self._failed.get(browser)
        if failed is None:
            return
        ago = time.monotonic() - failed.at
        if ago >= BROWSER_RETRY_S or _file_identity(browser) != failed.file:
            del self._failed[browser]  # time to try again, or a different file now: try it
            return
        raise ExportError(f"The browser at {browser} failed to start {ago:.0f} s ago ({failed.reason}), so PNG "
                          f"and SVG export is off; it is tried again {BROWSER_RETRY_S - ago:.0f} s from now, or at "
                          f"once if that file changes (a reinstall) or BROWSER_PATH names another browser and the "
                          f"app is restarted. {INSTALL_HINT}")

    def _start(self, browser: str, timeout_s: float) -> subprocess.Popen:
        """The running worker, or a new one that renders with ``browser`` (the one browser_available found),
        once it says its browser is up. queue.Empty when that takes over ``timeout_s``; ExportError, remembered
        for this browser, when the browser exits at once or the worker dies before it is ready."""
        if self._proc is not None and self._proc.poll() is None and self._browser == browser:
            return self._proc
        self._stop()
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("kaleido_worker.py"))],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      text=True, encoding="utf-8", env={**os.environ, "BROWSER_PATH": browser})
        self._browser = browser
        self._replies = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, self._replies), daemon=True,
                         name="gptlab-render-replies").start()
        line = self._replies.get(timeout=timeout_s)  # the worker's first line: its browser is up, or not
        reply = json.loads(line) if line is not None else {"fatal": f"the renderer exited: {self._log_tail()}"}
        if "ready" not in reply:
            reason = reply.get("fatal", line)
            self._failed[browser] = _FailedStart(_file_identity(browser), time.monotonic(), reason)
            self._stop(kill=True)
            raise ExportError(f"The browser at {browser} exited as soon as it started ({reason}), so no PNG or "
                              f"SVG can be made. Later exports say so at once for {BROWSER_RETRY_S:.0f} s. "
                              f"{INSTALL_HINT}")
        return self._proc

    def _stop(self, kill: bool = False) -> None:
        """End the worker: ask it to leave (closing stdin closes its browser), or kill it and its browser."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if not kill:
                try:
                    proc.stdin.close()
                    proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    kill = True
            if kill:
                _kill_tree(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        if self._log is None:
            return "no log"
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return lines[-1][-300:] if lines else "no log"

    def close(self) -> None:
        with self._lock:
            self._stop()


def _kill_tree(proc: subprocess.Popen, wait_s: float = 5.0) -> None:
    """Kill the worker and every process under it, and wait (about ``wait_s`` seconds at most) until they are
    gone. Never raises.

    The browser runs in a session of its own (kaleido's driver starts it so) and would outlive the
    worker. The whole tree is stopped (SIGSTOP) before it is listed, so a browser that the worker is
    starting at that very moment cannot slip out between the listing and the kill; then everything in
    it is killed. A process counts as gone when it has exited or is a zombie (dead, not yet reaped).
    A worker that has exited already is left alone: its pid may belong to another process by now, and
    a browser it left behind can no longer be told from other processes.
    """
    deadline = time.monotonic() + wait_s
    tree: dict[int, psutil.Process] = {}
    if proc.poll() is None:
        with contextlib.suppress(psutil.Error):  # the worker exited meanwhile: nothing left to find
            root = psutil.Process(proc.pid)
            new = [root]
            # stop what was found, then look again, until a listing finds nothing new (stopped processes
            # cannot fork) or the time is up
            while new and time.monotonic() < deadline:
                for process in new:
                    tree[process.pid] = process
                    with contextlib.suppress(psutil.Error):
                        process.suspend()
                new = [child for child in root.children(recursive=True) if child.pid not in tree]
    for process in tree.values():
        with contextlib.suppress(psutil.Error):
            process.kill()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in tree.values():
        while time.monotonic() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(0.02)


def _pump(stream, replies: queue.Queue) -> None:
    """Move the worker's reply lines into a queue (read with a timeout there); None when it exits."""
    for line in stream:
        replies.put(line)
    replies.put(None)


_renderer = _Renderer()
atexit.register(_renderer.close)


def safe_name(text: str) -> str:
    """A file-name-safe version of a label ('gpt · layer 1 · head 2' -> 'gpt-layer-1-head-2')."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")[:80] or "gptlab"


def write_data(folder: str | Path, stem: str, pattern: torch.Tensor, labels: Sequence[str], tokens: Sequence[str],
               meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``stem``.csv and ``stem``.json of a [query, key] pattern into ``folder``; {format: path}.

    Needs no browser: this part of an export always works.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(stem)
    paths = {"csv": folder / f"{stem}.csv", "json": folder / f"{stem}.json"}
    paths["csv"].write_text(attention_csv(pattern, labels), encoding="utf-8")
    paths["json"].write_text(attention_json(pattern, labels, tokens, meta), encoding="utf-8")
    return paths


def write_images(folder: str | Path, stem: str, fig: go.Figure, images: Sequence[str] = IMAGE_FORMATS,
                 timeout_s: float = RENDER_TIMEOUT_S) -> dict[str, Path]:
    """Write ``stem``.png/.svg (those in ``images``) of a figure into ``folder``; ExportError as figure_image."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(stem)
    paths = {}
    for fmt in images:
        image = figure_image(fig, fmt, timeout_s=timeout_s)
        paths[fmt] = folder / f"{stem}.{fmt}"
        paths[fmt].write_bytes(image)
    return paths


def write_exports(folder: str | Path, stem: str, fig: go.Figure, pattern: torch.Tensor, labels: Sequence[str],
                  tokens: Sequence[str], meta: dict[str, Any] | None = None,
                  images: Sequence[str] = IMAGE_FORMATS) -> dict[str, Path]:
    """Write CSV and JSON, then the images asked for, into ``folder``; {format: path}.

    An ExportError from the images comes after the CSV and JSON are on disk.
    """
    paths = write_data(folder, stem, pattern, labels, tokens, meta)
    paths.update(write_images(folder, stem, fig, images))
    return paths
