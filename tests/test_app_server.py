"""The app as a real server on 127.0.0.1, driven through gradio_client like any API caller."""

from __future__ import annotations

import base64
import inspect
import json
import math
import typing
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import gradio.utils
import httpx
import numpy as np
import pytest
from conftest import app_shelf
from every_endpoint import CHECKS
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab import load_checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.figures.style import escape_markup
from gptlab.inside.explore import attention_view
from gptlab_app import build_app, launch_options, main
from gptlab_app.common import MAX_PROMPT_CHARS
from gptlab_app.tabs import attention, generate

PROMPT = "First Citizen:\n"  # every character is in the tiny corpus's vocabulary
GEN = dict(max_new_tokens=120, temperature=0.8, top_k=0, top_p=1.0, seed=7)


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, tiny_checkpoints, tiny_text):
    return app_shelf(tmp_path_factory.mktemp("shelf"), tiny_checkpoints, tiny_text)


@pytest.fixture(scope="module")
def server(shelf):
    demo = build_app(Catalog.from_sources(shelf).load_all(), str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False, analytics_enabled=False, download_files=False)


def typed_array(z: dict) -> np.ndarray:
    """Decode Plotly's base64 typed array ({"dtype", "bdata", "shape"})."""
    shape = tuple(int(n) for n in str(z["shape"]).split(","))
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)


def answers(client: Client) -> bool:
    """The server still serves a normal request."""
    note, *_ = client.predict("gpt", "All:", 0, 0, -1, api_name="/attention")
    return "sees 4 token(s)" in note


LESSON_FIELDS = [("lesson_id", "Dropdown"), ("model", "Dropdown"), ("prompt", "Textbox"), ("seed", "Number"),
                 ("extend", "Number"), ("layer", "Number"), ("head", "Number"), ("teacher", "Checkbox")]
# The public API as scripts call it (gradio_client, tests/every_endpoint.py): every endpoint, its parameters
# in order and the component behind each. Renaming or reordering any of them breaks a caller's script.
API = {
    "/generate": [("model", "Dropdown"), ("prompt", "Textbox"), ("max_new_tokens", "Slider"),
                  ("temperature", "Slider"), ("top_k", "Slider"), ("top_p", "Slider"), ("seed", "Number")],
    "/compare": [("left", "Dropdown"), ("right", "Dropdown"), ("prompt", "Textbox"), ("max_new_tokens", "Slider"),
                 ("temperature", "Slider"), ("seed", "Number")],
    "/attention": [("model", "Dropdown"), ("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"),
                   ("query", "Number")],
    "/models": [],
    "/across_steps": [],
    "/across": [("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"), ("index", "Slider"),
                ("teacher", "Checkbox")],
    "/across_induction": [("model", "Dropdown"), ("teacher", "Checkbox")],
    "/live": [("source", "Radio"), ("text", "Textbox"), ("seconds", "Slider")],
    "/live_stop": [],
    "/closer": [("model", "Dropdown"), ("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"),
                ("position", "Number"), ("teacher", "Checkbox")],
    "/follow": [("model", "Dropdown"), ("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"),
                ("by", "Radio"), ("position", "Number"), ("teacher", "Checkbox")],
    "/export": [("model", "Dropdown"), ("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"),
                ("teacher", "Checkbox")],
    "/inside": [("model", "Dropdown"), ("prompt", "Textbox"), ("layer", "Slider"), ("head", "Slider"),
                ("query", "Number"), ("teacher", "Checkbox")],
    "/ablate": [("model", "Dropdown"), ("prompt", "Textbox"), ("heads", "Checkboxgroup"), ("mode", "Radio"),
                ("teacher", "Checkbox")],
    "/rank": [("model", "Dropdown"), ("mode", "Radio"), ("teacher", "Checkbox")],
    "/surprise": [("text", "Textbox"), ("model_a", "Dropdown"), ("model_b", "Dropdown"), ("mode", "Radio"),
                  ("teacher", "Checkbox")],
    "/step": [("model", "Dropdown"), ("text", "Textbox"), ("temperature", "Slider"), ("top_k", "Slider"),
              ("top_p", "Slider"), ("seed", "Number"), ("teacher", "Checkbox")],
    "/lesson": LESSON_FIELDS,
    "/lesson_html": LESSON_FIELDS,
    "/all_lessons_html": [("model", "Dropdown"), ("teacher", "Checkbox")],
}


def test_every_endpoint_keeps_its_name_and_parameters(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    seen = {name: [(p["parameter_name"], p["component"]) for p in endpoint["parameters"]]
            for name, endpoint in endpoints.items()}
    assert seen == API
    assert set(API) == set(CHECKS)  # every endpoint is also called, by the script that runs the app as a Space does


def test_every_handler_reads_to_gradio_as_the_function_it_wraps(shelf):
    """Handlers are bound to the catalog or their tab's state; Gradio must still see the function itself: its
    docstring (the API description), its gr.Request parameter (else the visitor's session is lost) and
    whether it streams."""
    demo = build_app(Catalog.from_sources(shelf).load_all(), str(shelf))
    bound = [fn.fn for fn in demo.fns.values() if hasattr(fn.fn, "__wrapped__")]
    assert len(bound) >= 25  # every handler but the two one-line ones (the Step reset and the teacher mirror)
    for fn in bound:
        original = fn.__wrapped__
        assert inspect.getdoc(fn) == inspect.getdoc(original) and inspect.getdoc(fn), original
        assert gradio.utils.get_type_hints(fn) == typing.get_type_hints(original), original
        assert inspect.isgeneratorfunction(fn) == inspect.isgeneratorfunction(original), original
    asking = [fn for fn in bound if "request" in inspect.signature(fn).parameters]
    assert {fn.__name__ for fn in asking} == {"train", "stop", "look_on_open", "draw", "draw_on_load", "restore",
                                            "show_on_open"}
    for fn in asking:
        assert gradio.utils.get_type_hints(fn)["request"] is gr.Request, fn


def test_generate_streams_growing_text(client):
    job = client.submit("gpt", PROMPT, *GEN.values(), api_name="/generate")
    partials = list(job)
    assert len(partials) >= 2, "streaming should deliver several partial texts"
    for before, after in zip(partials, partials[1:], strict=False):
        assert after.startswith(before)
    assert partials[0].startswith(PROMPT) and len(partials[-1]) > len(PROMPT) + 20
    # same seed, same text
    assert client.predict("gpt", PROMPT, *GEN.values(), api_name="/generate") == partials[-1]


def test_compare_streams_both_sides(client):
    partials = list(client.submit("bigram", "gpt", PROMPT, 150, 0.8, 3, api_name="/compare"))
    assert len(partials) >= 2
    left, right = partials[-1]
    assert left.startswith(PROMPT) and right.startswith(PROMPT)
    assert left != right  # different models, different text
    assert len(left) > len(PROMPT) and len(right) > len(PROMPT)


def test_attention_plots_match_the_library(client, shelf):
    prompt = "All:\nSpeak, speak."
    note, heatmap, grid, average, bars = client.predict("gpt", prompt, 1, 2, 4, api_name="/attention")
    ck = load_checkpoint(shelf / "gpt")
    view = attention_view(ck.model, ck.tokenizer, prompt)
    hm = json.loads(heatmap["plot"])
    assert heatmap["type"] == "plotly"
    assert hm["data"][0]["x"] == view.labels and hm["data"][0]["y"] == view.labels
    z = typed_array(hm["data"][0]["z"])
    np.testing.assert_allclose(z[5, :6], view.patterns[1][2, 5, :6].numpy(), atol=1e-6)
    assert np.isnan(z[2, 5])
    assert hm["config"]["toImageButtonOptions"]["format"] == "png"
    assert len(json.loads(grid["plot"])["data"]) == ck.config.n_head
    assert "average" in json.loads(average["plot"])["layout"]["title"]["text"]
    bar = json.loads(bars["plot"])
    assert [y.strip() for y in bar["data"][0]["y"]] == [t for t, _ in view.predictions[4]]
    assert "query `4:↵`" in note and "cropped" not in note


def test_attention_reports_cropping(client):
    prompt = "All:\nSpeak, speak.\n" * 8  # 144 characters, context 64
    note, heatmap, *_ = client.predict("gpt", prompt, 0, 0, 500, api_name="/attention")
    assert "cropped" in note and f"first {len(prompt) - 64} token(s) were dropped" in note
    assert "past the end" in note
    assert len(json.loads(heatmap["plot"])["data"][0]["x"]) == 64


def test_bpe_model_in_generate_and_attention(client, shelf):
    prompt = "First Citizen: 日本"  # byte-level BPE has no unknown characters
    text = client.predict("gpt-bpe", prompt, 20, 0.8, 0, 1.0, 1, api_name="/generate")
    assert text.startswith(prompt) and len(text) > len(prompt)
    note, heatmap, grid, *_ = client.predict("gpt-bpe", prompt, 0, 1, -1, api_name="/attention")
    ck = load_checkpoint(shelf / "gpt-bpe")
    view = attention_view(ck.model, ck.tokenizer, prompt)
    # byte tokens read <E6>: the figure carries them as entities, which Plotly draws as written
    assert json.loads(heatmap["plot"])["data"][0]["x"] == [escape_markup(label) for label in view.labels]
    assert len(view.labels) < len(prompt.encode())  # merged tokens, not bytes
    assert len(json.loads(grid["plot"])["data"]) == 2
    assert f"sees {len(view.ids)} token(s)" in note


def test_models_table_and_curves(client):
    table, curves = client.predict(api_name="/models")
    names = [row[0] for row in table["data"]]
    assert names == ["bigram", "gpt", "gpt-bpe"]
    assert json.loads(curves["plot"])["layout"]["title"]["text"].startswith("Loss")


BAD_GENERATE = [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="日本"), "never seen these characters: '日', '本'"),
    (dict(prompt="a" * (MAX_PROMPT_CHARS + 1)), "limit is 2,000"),
    (dict(max_new_tokens=10**9), "greater than maximum value 1000"),
    (dict(temperature=-1), "less than minimum value"),
    (dict(top_p=2), "greater than maximum value 1"),
    (dict(model="../../etc/passwd"), "not in the list of choices"),
]


@pytest.mark.parametrize(("change", "message"), BAD_GENERATE, ids=[m for _, m in BAD_GENERATE])
def test_bad_generate_input_is_a_clear_error_and_the_server_lives_on(client, change, message):
    args = {"model": "gpt", "prompt": PROMPT, **GEN, **change}
    with pytest.raises(AppError, match=message.replace("(", r"\(")):
        client.predict(*args.values(), api_name="/generate")
    assert answers(client)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("gpt", "", 0, 0, -1), "prompt is empty"),
        (("gpt", "日本", 0, 0, -1), "never seen"),
        (("bigram", "All:", 0, 0, -1), "not in the list of choices"),  # the bigram has no attention
        (("gpt", "All:", 0, 9, -1), "greater than maximum value 3"),  # the widest model has 4 heads
    ],
)
def test_bad_attention_input_is_a_clear_error(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/attention")
    assert answers(client)


def test_nan_temperature_sent_as_raw_json_is_refused(server, client):
    """gradio_client cannot send NaN; a hand-written request can, and the server must refuse it."""
    base = f"{server.rstrip('/')}/gradio_api/call/generate"
    body = '{"data": ["gpt", "All:", 10, NaN, 0, 1.0, 1]}'
    event = httpx.post(base, content=body, headers={"content-type": "application/json"}).json()["event_id"]
    stream = httpx.get(f"{base}/{event}", timeout=30).text
    assert "event: error" in stream and "temperature must be a number" in stream
    assert answers(client)


def test_settings_are_checked_in_the_handler_too(shelf):
    """Limits hold even where Gradio's component checks would not (NaN passes a min/max test)."""
    catalog = Catalog.from_sources(shelf).load_all()
    with pytest.raises(gr.Error, match="temperature"):
        next(generate.stream(catalog, "gpt", PROMPT, 10, math.nan, 0, 1.0, 1))
    with pytest.raises(gr.Error, match="max_new_tokens must be in 0..1000"):
        next(generate.stream(catalog, "gpt", PROMPT, 10**9, 0.8, 0, 1.0, 1))
    with pytest.raises(gr.Error, match=r"layer must be a whole number in 0\.\.1 for gpt, got 7"):
        attention.show(catalog, "gpt", "All:", 7, 0, -1)


@pytest.mark.slow
def test_a_class_at_once_is_served(client):
    """Several learners generating at the same time all get their text."""
    def one(seed: int) -> str:
        return client.predict("gpt", PROMPT, 60, 0.8, 0, 1.0, seed, api_name="/generate")

    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(one, range(6)))
    assert all(t.startswith(PROMPT) and len(t) > len(PROMPT) for t in texts)
    assert len(set(texts)) > 1


def test_empty_checkpoint_folder_starts_and_says_no_models(tmp_path):
    demo = build_app(Catalog.from_sources(tmp_path / "none").load_all(), str(tmp_path / "none"))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        config = httpx.get(f"{url.rstrip('/')}/config", timeout=10).json()
        texts = [c.get("props", {}).get("value") for c in config["components"]]
        assert any(isinstance(t, str) and "No models found" in t for t in texts)
        with pytest.raises(AppError, match="gpt is not in the list of choices"):
            Client(url, verbose=False, analytics_enabled=False).predict("gpt", "a", 1, 0, -1, api_name="/attention")
    finally:
        demo.close()


def test_cli_refuses_unknown_model_names(shelf):
    with pytest.raises(SystemExit, match="--models asks for \\['nope'\\]"):
        main(["--checkpoints", str(shelf), "--models", "nope"])
