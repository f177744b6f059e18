"""Stop frees a request's row in the model's generation engine at once, on Generate and on Bigram vs GPT
(gradio_client's job.cancel(), as the Stop button cancels the event; a real server on 127.0.0.1)."""

from __future__ import annotations

import time

import pytest
from conftest import served_shelf
from gradio_client import Client

from gptlab.generate import engine_for
from gptlab_app.common import MAX_NEW_TOKENS

STEP_S = 0.02  # each forward of the served gpt is made this much slower, so a request outlasts the Stop
WAIT_S = 60.0  # a guard against a hang, never a speed goal


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoints, tiny_text):
    with served_shelf(tmp_path_factory.mktemp("shelf"), tiny_checkpoints, tiny_text) as (catalog, _, url):
        yield catalog, url


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {WAIT_S:.0f} s"
        time.sleep(0.02)


@pytest.mark.parametrize("endpoint", ["/generate", "/compare"])
def test_stop_frees_the_row_long_before_its_last_token(served, endpoint):
    catalog, url = served
    model = catalog.get("gpt").model
    engine = engine_for(model)
    forwards = []

    def slower(*_) -> None:  # returns None: the forward's output stays as it is
        forwards.append(1)
        time.sleep(STEP_S)

    handle = model.register_forward_hook(slower)
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        args = (("gpt", "First Citizen:\n", MAX_NEW_TOKENS, 0.8, 0, 1.0, 1) if endpoint == "/generate"
                else ("bigram", "gpt", "First Citizen:\n", MAX_NEW_TOKENS, 0.8, 1))
        job = client.submit(*args, api_name=endpoint)
        wait_for(lambda: engine.active == 1 and len(forwards) >= 5, "the request's row")
        job.cancel()
        wait_for(lambda: engine.active == 0, "the row to leave after Stop")
        assert len(forwards) < MAX_NEW_TOKENS // 2  # it left, it did not run to its last token
    finally:
        handle.remove()
