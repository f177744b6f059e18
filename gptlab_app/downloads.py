"""Files the app hands a visitor (exports, lesson pages): written where Gradio serves the files it made
itself, a fresh folder per request, so no visitor sees another's and no other path is ever served."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gradio.utils import get_upload_folder

from gptlab.errors import ExportError
from gptlab.figures.export import safe_name


def download_folder() -> Path:
    """A fresh folder's path inside Gradio's own upload/cache folder (files created there are served);
    whoever writes the first file creates it."""
    return Path(get_upload_folder()) / "gptlab-export" / uuid.uuid4().hex


@contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn the disk refusing a download (an OSError: full, read-only, no such folder) into an ExportError
    that says what could not be written (never the server's paths)."""
    try:
        yield
    except OSError as exc:
        raise ExportError(f"Could not write {what} ({exc.strerror or type(exc).__name__}): the server's disk may "
                          "be full or read-only. The camera button above each plot still downloads a PNG.") from None


def html_file(text: str, stem: str) -> str:
    """Write a page (UTF-8) as ``<stem>.html`` in a new download folder; its path, for a gr.File.
    ExportError when the disk refuses it."""
    return text_file(text, f"{safe_name(stem)}.html", "the HTML page")


def csv_file(text: str, stem: str) -> str:
    """Write a table (UTF-8 CSV text) as ``<stem>.csv`` in a new download folder; its path, for a gr.File.
    ExportError when the disk refuses it."""
    return text_file(text, f"{safe_name(stem)}.csv", "the CSV table")


def text_file(text: str, name: str, what: str) -> str:
    """Write ``text`` (UTF-8) as ``name`` in a new download folder; its path. ExportError names ``what``."""
    path = download_folder() / name
    with writing(what):
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
    return str(path)
