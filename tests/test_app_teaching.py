"""The teaching tabs through gradio_client: across training, live training (bounds under concurrent
visitors), look closer (labels, rollout, logit lens), export, step-through, lessons."""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from renderer_marks import NEEDS_RENDERER
from teaching_shelf import SNAPSHOT_STEPS, make_shelf

import app
from gptlab import load_checkpoint
from gptlab.catalog import Catalog
from gptlab.explore import attention_view
from gptlab.export import attention_csv, browser_available
from gptlab.heads import describe, label_heads

PROMPT = "First Citizen:\nBefore we proceed"


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, tiny_checkpoints, tiny_text):
    return make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text)


@pytest.fixture(scope="module")
def server(shelf):
    demo = app.build_app(Catalog.from_sources(shelf).load_all(), str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **app.launch_options(shelf))
    yield url
    demo.close()


def client_for(url: str) -> Client:
    """One visitor (its own session)."""
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


@pytest.fixture(scope="module")
def client(server):
    return client_for(server)


def plot_json(value: dict) -> dict:
    assert value["type"] == "plotly"
    return json.loads(value["plot"])


def test_teaching_endpoints_are_named(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/across", "/across_steps", "/live", "/live_stop", "/closer", "/export", "/step",
            "/lesson"} <= set(endpoints)


def test_across_training_slider_walks_the_snapshots(client, shelf):
    slider = client.predict(api_name="/across_steps")
    assert slider["maximum"] == len(SNAPSHOT_STEPS) - 1 and slider["value"] == len(SNAPSHOT_STEPS) - 1
    first = client.predict(PROMPT, 0, 1, 0, False, api_name="/across")
    last = client.predict(PROMPT, 0, 1, len(SNAPSHOT_STEPS) - 1, False, api_name="/across")
    assert "step 0" in first[0] and f"step {SNAPSHOT_STEPS[-1]}" in last[0]
    assert first[3] == "sample at step 0" and last[3] == f"sample at step {SNAPSHOT_STEPS[-1]}"
    assert plot_json(first[1])["data"][0]["z"] != plot_json(last[1])["data"][0]["z"]  # the head changed
    grid = plot_json(last[2])
    assert [a["text"].split(" · ")[0] for a in grid["layout"]["annotations"][:4]] == [f"head {h}" for h in range(4)]
    ck = load_checkpoint(shelf / "gpt" / "snapshots" / f"step_{SNAPSHOT_STEPS[-1]:06d}")
    view = attention_view(ck.model, ck.tokenizer, PROMPT)
    assert last[4] == describe(label_heads(view.patterns, view.tokens)[0][1])
    strip = plot_json(last[5])
    assert len(strip["data"]) == len(SNAPSHOT_STEPS)  # the same head at every snapshot, side by side
    assert [a["text"].split("<br>")[0] for a in strip["layout"]["annotations"]] == [f"step {s}" for s in SNAPSHOT_STEPS]
    with pytest.raises(AppError, match="greater than maximum value 1"):
        client.predict(PROMPT, 5, 0, 0, False, api_name="/across")


def test_look_closer_labels_rollout_and_logit_lens(client):
    sentence, heat, grid, roll, bar, lens = client.predict("gpt", PROMPT, 1, 2, 4, False, api_name="/closer")
    assert sentence.startswith("Layer 1, head 2 ") and "position **4:t**" in sentence
    assert len(plot_json(grid)["data"]) == 4
    assert "rollout" in plot_json(roll)["layout"]["title"]["text"].lower()
    assert plot_json(bar)["layout"]["title"]["text"] == "What flows into 4:t"
    assert plot_json(lens)["data"][0]["y"] == ["embed", "after layer 0", "after layer 1"]
    teacher = client.predict("gpt", PROMPT, 1, 2, -1, True, api_name="/closer")
    assert plot_json(teacher[1])["data"][0]["colorscale"][0][1] != plot_json(heat)["data"][0]["colorscale"][0][1]
    with pytest.raises(AppError, match="not trained a model yet"):
        client.predict("live", PROMPT, 0, 0, -1, False, api_name="/closer")


@NEEDS_RENDERER
def test_export_gives_png_svg_csv_json_of_the_view(client, shelf):
    files = client.predict("gpt", "All:\nSpeak.", 0, 1, False, api_name="/export")
    by_ext = {f["path"].rsplit(".", 1)[-1]: f for f in files}
    assert set(by_ext) == {"png", "svg", "csv", "json"}
    get = lambda f: httpx.get(f["url"], timeout=30).content  # noqa: E731
    assert get(by_ext["png"])[:4] == b"\x89PNG"
    assert b"<svg" in get(by_ext["svg"])[:200]
    ck = load_checkpoint(shelf / "gpt")
    view = attention_view(ck.model, ck.tokenizer, "All:\nSpeak.")
    assert get(by_ext["csv"]).decode() == attention_csv(view.patterns[0][1], view.labels)
    data = json.loads(get(by_ext["json"]))
    assert data["labels"] == view.labels and (data["layer"], data["head"]) == (0, 1)
    rows = list(csv.reader(io.StringIO(get(by_ext["csv"]).decode())))
    assert rows[0][1:] == view.labels


@pytest.mark.timeout(120)  # the old export never returned here, and blocked every export after it
def test_export_without_a_browser_gives_csv_and_json_in_seconds(client, monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium-here"))  # the server runs in this process
    browser_available.cache_clear()
    try:
        for _ in range(2):  # the second export is not stuck behind the first
            start = time.monotonic()
            files = client.predict("gpt", "All:\nSpeak.", 0, 1, False, api_name="/export")
            assert time.monotonic() - start < 20
            assert sorted(f["path"].rsplit(".", 1)[-1] for f in files) == ["csv", "json"]
    finally:
        browser_available.cache_clear()


def test_step_through_adds_one_token_reproducibly(client):
    args = ("gpt", "All:\nSpeak", 1.0, 5, 0.9, 3, False)
    text, note, bars, attn = client.predict(*args, api_name="/step")
    assert text.startswith("All:\nSpeak") and len(text) == len("All:\nSpeak") + 1
    assert client.predict(*args, api_name="/step")[0] == text
    assert "top-k 5" in note and "top-p 0.9" in note
    assert [t["name"] for t in plot_json(bars)["data"]] == ["model (temperature 1)", "after your settings"]
    assert len(plot_json(attn)["data"][0]["y"]) == 8  # 2 layers x 4 heads
    with pytest.raises(AppError, match="greater than maximum value 2"):
        client.predict("gpt", "All:", 9.0, 0, 1.0, 1, False, api_name="/step")


def test_lesson_resolves_the_best_head_and_gives_a_share_link(client):
    out = client.predict("previous-char", "gpt", "First Citizen:\nBefore we proceed any further", 0, 0, -1, -1, False,
                         api_name="/lesson")
    caption, heat, grid, layer, head, link = out
    assert layer >= 0 and head >= 0 and caption.startswith("**1. The previous-character head.**")
    assert f"Layer {layer}, head {head} " in caption
    assert f"layer={layer}" in link and f"head={head}" in link and "lesson=previous-char" in link
    assert client.predict("previous-char", "gpt", "First Citizen:\nBefore we proceed any further", 0, 0, layer,
                          head, False, api_name="/lesson")[1] == heat  # the same view, the same heatmap
    own = client.predict("own-words", "gpt", "All:\n", 7, 40, 0, 0, False, api_name="/lesson")
    assert len(plot_json(own[1])["data"][0]["x"]) == len("All:\n") + 40  # seeded continuation included


def live(c: Client, seconds: int, text: str):
    return c.predict("My text", text, seconds, api_name="/live")


def test_live_training_bounds_under_concurrent_visitors(server, tiny_text):
    """Three visitors at once against a cap of two: two train (within their time), one is told to wait;
    a visitor cannot start a second run; Stop ends a run; the trained model serves that visitor only."""
    visitors = [client_for(server) for _ in range(3)]
    outcomes = []

    def run(c: Client):
        start = time.monotonic()
        try:
            result = live(c, 3, tiny_text)
            return "ok", time.monotonic() - start, result
        except AppError as exc:
            return "error", time.monotonic() - start, str(exc)

    with ThreadPoolExecutor(4) as pool:
        # visitor 0 claims a slot first; had all three raced, visitor 0 could be the one told the
        # server is busy, and its second request would then hear "busy" too
        futures = [pool.submit(run, visitors[0])]
        time.sleep(1.0)
        futures += [pool.submit(run, c) for c in visitors[1:]]
        futures.append(pool.submit(run, visitors[0]))  # the same visitor again, while its run goes on
        outcomes = [f.result() for f in futures]
    oks = [o for o in outcomes if o[0] == "ok"]
    errors = [o[2] for o in outcomes if o[0] == "error"]
    assert len(oks) == 2, outcomes
    assert any("server is busy" in e for e in errors) and any("already have a training" in e for e in errors)
    for _, took, (status, loss, sample, heat) in oks:
        assert "done (time limit)" in status and took < 3 + 25  # 3 s of training, then eval and sample
        assert len(plot_json(loss)["data"][0]["x"]) >= 2 and sample
        assert plot_json(heat)["data"][0]["type"] == "heatmap"
    # the visitor who trained can use the model in another tab; a fresh visitor cannot
    trained = next(c for c, o in zip(visitors, outcomes, strict=False) if o[0] == "ok")
    sentence, *_ = trained.predict("live", "First", 0, 0, -1, False, api_name="/closer")
    assert sentence.startswith("Layer 0, head 0")
    with pytest.raises(AppError, match="not trained a model yet"):
        client_for(server).predict("live", "First", 0, 0, -1, False, api_name="/closer")


def test_stop_ends_a_live_run_and_frees_the_slot(server, tiny_text):
    c = client_for(server)
    job = c.submit("My text", tiny_text, 60, api_name="/live")
    time.sleep(1.5)
    assert "Stopping" in c.predict(api_name="/live_stop")
    start = time.monotonic()
    status = job.result(timeout=30)[0]
    assert "done (stopped)" in status and time.monotonic() - start < 15
    assert "No training of yours" in c.predict(api_name="/live_stop")


def test_live_refuses_bad_input(client):
    with pytest.raises(AppError, match="at least 1,000"):
        client.predict("My text", "too short", 5, api_name="/live")
    with pytest.raises(AppError, match="greater than maximum value 60"):
        client.predict("My text", "x" * 2000, 600, api_name="/live")
