"""Call every public endpoint of a running gptlab app once, the way a visitor's script would.

Shared by the tests that run the app where its users run it (tests/test_where_it_runs.py). Each
check takes a gradio_client Client and raises AssertionError with what it saw.
The table is checked against the app's own API listing, so a new endpoint cannot go untested.

As a script (inside a network namespace, where the test process cannot reach loopback) it starts
app.py on the shipped checkpoints, runs every check and prints one JSON line of timings:

    python tests/every_endpoint.py LOG_DIR
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from gradio_client import Client

PROMPT = "ROMEO:\nBut soft, what light"  # every character is in the shipped char models' vocabulary
LESSON_PROMPT = "ROMEO:\nO Romeo, Romeo, wherefore art thou Romeo?\n"
LIVE_SECONDS = 3  # Watch it learn: long enough for one report, short enough for CI
# one call on the shipped models, cold (a lesson that ranks 36 heads, the induction probe of 21 snapshots) on a
# loaded 2-core CI box; a request that hangs on the network takes longer
ANSWER_LIMIT_S = 45.0
EXTRA_S = {"/live": LIVE_SECONDS, "/all_lessons_html": 2 * ANSWER_LIMIT_S}  # training time; every lesson drawn


def call(c: Client, *args, api_name: str):
    """One request, given up on after its time limit: an export that hangs must fail, not block the run."""
    return c.submit(*args, api_name=api_name).result(timeout=ANSWER_LIMIT_S + EXTRA_S.get(api_name, 0))


def _plotly(value) -> dict:
    assert isinstance(value, dict) and value.get("type") == "plotly", f"not a Plotly figure: {str(value)[:200]}"
    fig = json.loads(value["plot"])
    assert fig["data"], "the figure has no traces"
    return fig


def _generate(c: Client) -> None:
    text = call(c, "gpt", PROMPT, 40, 0.8, 0, 1.0, 1, api_name="/generate")
    assert text.startswith(PROMPT) and len(text) > len(PROMPT), text


def _compare(c: Client) -> None:
    left, right = call(c, "bigram", "gpt", PROMPT, 40, 0.8, 1, api_name="/compare")
    assert left.startswith(PROMPT) and right.startswith(PROMPT) and left != right, (left, right)


def _attention(c: Client) -> None:
    note, heatmap, grid, average, bars = call(c, "gpt", PROMPT, 0, 0, -1, api_name="/attention")
    assert f"sees {len(PROMPT)} token(s)" in note, note
    for fig in (heatmap, grid, average, bars):
        _plotly(fig)


def _models(c: Client) -> None:
    table, curves = call(c, api_name="/models")
    names = [row[0] for row in table["data"]]
    assert any("gpt" in str(name) for name in names) and any("bigram" in str(name) for name in names), names
    _plotly(curves)


def _across_steps(c: Client) -> None:
    slider = call(c, api_name="/across_steps")
    assert slider["maximum"] >= 1 and slider["value"] == slider["maximum"], slider


def _across(c: Client) -> None:
    note, heatmap, grid, sample, sentence, strip = call(c, PROMPT, 0, 0, 1, False, api_name="/across")
    assert "Snapshot 2 of" in note and sample and sentence, (note, sample, sentence)
    for fig in (heatmap, grid, strip):
        _plotly(fig)


def _across_induction(c: Client) -> None:
    caption, chart = call(c, "induction", False, api_name="/across_induction")
    assert "induction score" in caption and "step" in caption, caption
    _plotly(chart)


def _live(c: Client) -> None:
    """Watch it learn on Tiny Shakespeare, the default choice: it must train, even with no network."""
    status, loss, sample, heatmap = call(c, "Tiny Shakespeare", "", LIVE_SECONDS, api_name="/live")
    assert status.startswith("**done"), status
    assert sample, "no sample after training"
    _plotly(loss)
    _plotly(heatmap)


def _live_stop(c: Client) -> None:
    assert call(c, api_name="/live_stop") == "No training of yours is running."


def _closer(c: Client) -> None:
    sentence, *figures = call(c, "gpt", PROMPT, 0, 0, -1, False, api_name="/closer")
    assert "Layer 0, head 0" in sentence, sentence
    for fig in figures:
        _plotly(fig)


def _follow(c: Client) -> None:
    """Follow one character: position 10 shaded by gpt's layer 0, head 0 (weights summing to 1), later ones
    unavailable, and row 10 outlined in the heatmap."""
    text, heatmap = call(c, "gpt", PROMPT, 0, 0, "head", 10, False, api_name="/follow")
    weights = [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', text)]
    assert len(weights) == 11 and abs(sum(weights) - 1) < 1e-3, weights
    assert text.count('aria-disabled="true"') == len(PROMPT) - 11, text[:300]
    shapes = _plotly(heatmap)["layout"]["shapes"]
    assert (shapes[0]["y0"], shapes[0]["y1"]) == (9.5, 10.5), shapes


def _export(c: Client) -> None:
    """PNG, SVG, CSV and JSON of the head, each fetched back from the server as a browser would."""
    files = call(c, "gpt", PROMPT, 0, 0, False, api_name="/export")
    by_suffix = {Path(f["path"]).suffix: f for f in files}
    assert set(by_suffix) == {".png", ".svg", ".csv", ".json"}, files
    body = {suffix: httpx.get(f["url"], timeout=30) for suffix, f in by_suffix.items()}
    for suffix, response in body.items():
        assert response.status_code == 200, f"{suffix}: HTTP {response.status_code} for {by_suffix[suffix]['url']}"
    assert body[".png"].content.startswith(b"\x89PNG\r\n\x1a\n"), body[".png"].content[:16]
    assert b"<svg" in body[".svg"].content[:400], body[".svg"].content[:200]
    rows = list(csv.reader(io.StringIO(body[".csv"].text)))
    assert len(rows) == len(PROMPT) + 1, rows[:2]
    assert json.loads(body[".json"].text)["model"] == "gpt"


def _inside(c: Client) -> None:
    """Inside a head: the keys the last character may see, largest weight first, and the same table as CSV."""
    note, table, bars, file = call(c, "gpt", PROMPT, 0, 0, -1, False, api_name="/inside")
    assert "head_size = " in note and "Query: position" in note, note
    weights = [row[4] for row in table["data"]]
    assert len(weights) == len(PROMPT) and weights == sorted(weights, reverse=True), table["data"][:3]
    assert abs(sum(weights) - 1) < 1e-4, sum(weights)
    _plotly(bars)
    response = httpx.get(file["url"], timeout=30)
    assert response.status_code == 200, f"HTTP {response.status_code} for {file['url']}"
    assert len(list(csv.reader(io.StringIO(response.text)))) == len(PROMPT) + 1, response.text[:200]


def _ablate(c: Client) -> None:
    """Knock out heads: two heads of gpt off; the next-token bars before and after, the bits per character."""
    note, after, bits = call(c, "gpt", PROMPT, ["L0 H0", "L1 H2"], "zero", False, api_name="/ablate")
    assert "Switched off: L0 H0, L1 H2 (zero mode)" in note and "nats/token" in note, note
    assert len(_plotly(after)["data"]) == 2
    assert len(_plotly(bits)["data"][0]["y"]) == len(PROMPT) - 1


def _rank(c: Client) -> None:
    """Every head of blocks (the smallest model with several layers) ranked by the rise in validation loss."""
    note, bars, table = call(c, "blocks", "zero", False, api_name="/rank")
    assert "12 of 12 heads" in note, note
    rises = [row[2] for row in table["data"]]
    assert len(rises) == 12 and rises == sorted(rises, reverse=True), table["data"][:3]
    _plotly(bars)


def _surprise(c: Client) -> None:
    """Where context pays: the prompt coloured by gpt minus bigram, one cell per predicted character."""
    summary, plot = call(c, PROMPT, "gpt", "bigram", "A minus B", False, api_name="/surprise")
    assert "`gpt` − `bigram`" in summary and "bits per character" in summary, summary
    cells = [v for row in _plotly(plot)["data"][0]["z"] for v in row if v is not None]
    assert len(cells) == len(PROMPT) - 1, cells


def _step(c: Client) -> None:
    text, note, bars, attention = call(c, "gpt", PROMPT, 0.8, 0, 1.0, 1337, False, api_name="/step")
    assert text.startswith(PROMPT) and len(text) == len(PROMPT) + 1, text
    assert "Picked" in note, note
    _plotly(bars)
    _plotly(attention)


def _lesson(c: Client) -> None:
    caption, heatmap, grid, layer, head, link = call(c, "previous-char", "gpt", LESSON_PROMPT, 0, 0, -1, -1,
                                                          False, api_name="/lesson")
    assert caption and layer >= 0 and head >= 0 and "lesson=previous-char" in link, (caption, layer, head, link)
    _plotly(heatmap)
    _plotly(grid)


def _fetched_html(file: dict) -> str:
    """A downloaded lesson page: HTML that carries plotly.js itself (a classroom may have no network)."""
    response = httpx.get(file["url"], timeout=30)
    assert response.status_code == 200, f"HTTP {response.status_code} for {file['url']}"
    text = response.text
    assert text.lstrip().lower().startswith("<!doctype html"), text[:200]
    assert "Plotly.newPlot" in text and "<script src=" not in text, "plotly.js is not inside the file"
    return text


def _lesson_html(c: Client) -> None:
    file = call(c, "previous-char", "gpt", LESSON_PROMPT, 0, 0, -1, -1, False, api_name="/lesson_html")
    assert file["path"].endswith(".html"), file
    assert _fetched_html(file).count('<section id="lesson-') == 1


def _all_lessons_html(c: Client) -> None:
    text = _fetched_html(call(c, "gpt", False, api_name="/all_lessons_html"))
    assert text.count('<section id="lesson-') > 1, "every lesson belongs in the one file"


# Every public endpoint of app.py and what it must answer. A new endpoint fails check_all until it is here.
CHECKS: dict[str, Callable[[Client], None]] = {
    "/generate": _generate,
    "/compare": _compare,
    "/attention": _attention,
    "/models": _models,
    "/across_steps": _across_steps,
    "/across": _across,
    "/across_induction": _across_induction,
    "/live": _live,
    "/live_stop": _live_stop,
    "/closer": _closer,
    "/follow": _follow,
    "/export": _export,
    "/inside": _inside,
    "/ablate": _ablate,
    "/rank": _rank,
    "/surprise": _surprise,
    "/step": _step,
    "/lesson": _lesson,
    "/lesson_html": _lesson_html,
    "/all_lessons_html": _all_lessons_html,
}


def check_all(url: str) -> dict[str, float]:
    """Run every check against the app at ``url``; seconds per endpoint.

    Raises AssertionError naming each endpoint that failed (all are tried), that took longer
    than its limit (ANSWER_LIMIT_S, plus EXTRA_S for the long ones), or that the app lists but no
    check covers.
    """
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    listed = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    failures = []
    if listed != set(CHECKS):
        failures.append(f"endpoints without a check: {sorted(listed - set(CHECKS))}; "
                        f"checks for endpoints the app no longer has: {sorted(set(CHECKS) - listed)}")
    seconds = {}
    for name, check in CHECKS.items():
        if name not in listed:
            continue
        start = time.monotonic()
        try:
            check(client)
        except Exception as exc:  # every endpoint is tried; all failures are reported together
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:600]}")
        seconds[name] = round(time.monotonic() - start, 2)
        limit = ANSWER_LIMIT_S + EXTRA_S.get(name, 0)
        if seconds[name] > limit:
            failures.append(f"{name} took {seconds[name]:.1f} s (limit {limit:.0f} s): is it waiting on the network?")
    if failures:
        raise AssertionError("\n".join(failures) + f"\nseconds per endpoint: {seconds}")
    return seconds


def main(log_dir: str) -> None:
    """Start app.py on the shipped checkpoints, run every check, print {"start_s", "seconds"} as JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from app_process import REPO, running_app

    start = time.monotonic()
    with running_app(REPO / "checkpoints", Path(log_dir)) as url:
        started = time.monotonic() - start
        seconds = check_all(url)
    print(json.dumps({"start_s": round(started, 2), "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1])
