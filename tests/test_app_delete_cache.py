"""The app's download files (Inside a head's CSV on every page load, ~4.8 MB per /lesson_html) do not pile up:
the Blocks have Gradio's delete_cache set, so files older than a day are deleted every hour."""

from __future__ import annotations

from app_process import REPO

from gptlab.classroom.catalog import Catalog
from gptlab_app import DELETE_CACHE, build_app


def test_build_app_sets_delete_cache():
    catalog = Catalog.from_sources(REPO / "checkpoints", only=["gpt"]).load_all()
    demo = build_app(catalog, str(REPO / "checkpoints"))
    assert demo.delete_cache == DELETE_CACHE
    every, age = demo.delete_cache
    assert 0 < every <= age <= 7 * 86400
