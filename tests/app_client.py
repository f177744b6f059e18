"""The app in-process on 127.0.0.1 over a test file's own ``shelf`` fixture, and a gradio_client Client of it.

Module-scoped fixtures for a test file to import by name (pytest then makes them once for that file), each
registered under the name the tests use: ``shelf_catalog`` is ``catalog`` (the shelf's models, loaded),
``shelf_client`` is ``client`` (served by the app built on that catalog, stopped after the file's tests)."""

from __future__ import annotations

import pytest
from gradio_client import Client

from gptlab.classroom.catalog import Catalog
from gptlab_app import build_app, launch_options


@pytest.fixture(scope="module", name="catalog")
def shelf_catalog(shelf):
    return Catalog.from_sources(shelf).load_all()


@pytest.fixture(scope="module", name="client")
def shelf_client(shelf, catalog):
    demo = build_app(catalog, str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(shelf))
    yield Client(url, verbose=False, analytics_enabled=False, download_files=False)
    demo.close()
