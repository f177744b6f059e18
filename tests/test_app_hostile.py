"""The hosted app against hostile visitors: random inputs on every endpoint, file routes, model names.

A real server on 127.0.0.1, driven through gradio_client (and raw HTTP where the client cannot
send a value, such as NaN). Every answer must be a valid result or an error with a clear message:
never an anonymous error, a hang, or a server that stops answering.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import httpx
import pytest
from conftest import app_shelf
from gradio_client import Client
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptlab.classroom.catalog import Catalog
from gptlab.errors import GptlabError
from gptlab.inside.explore import attention_view
from gptlab_app import build_app, common, launch_options
from gptlab_app.common import MAX_NEW_TOKENS, MAX_PROMPT_CHARS, QUEUE_SIZE
from gptlab_app.tabs import attention, generate

REPO = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT_S = 60  # a request that takes longer counts as a hang
ANONYMOUS = "has raised an exception but has not enabled verbose error reporting"
HOSTILE = settings(max_examples=30, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# emoji, ZWJ sequences, combining marks, RTL text and marks, control characters, NUL, astral planes
NASTY = "😀👩\u200d👩\u200d👧e\u0301\u0338\u05e9\u05dc\u0645\u0631\u200f\u202e\x00\x07\t\r\n\x1b\u2028中𝔘\U0010fffd"
VOCAB = "First Citizen:\nAll speak.,?"  # characters the tiny char models know


def prompts() -> st.SearchStrategy:
    return st.one_of(
        st.text(alphabet=st.sampled_from(VOCAB), min_size=1, max_size=200),  # valid for every model
        st.text(alphabet=st.sampled_from(NASTY + VOCAB), max_size=60),
        st.text(max_size=60),
        st.sampled_from(["", "a" * 100_000, "All " * (MAX_PROMPT_CHARS // 4),
                         "A" * (MAX_PROMPT_CHARS + 1), "\x00", "\u202e:llA"]),
    )


def whole_numbers(low: int, high: int) -> st.SearchStrategy:
    """Values at, just past and far past [low, high], of any size and a few wrong types."""
    return st.one_of(
        st.integers(low, high),
        st.sampled_from([low, high, low - 1, high + 1, -1, 0, 10**9, 2**63, -(2**63) - 1, 10**40]),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),  # JSON can carry any finite float
        st.none(),
        st.text(max_size=4),
    )


def reals(low: float, high: float) -> st.SearchStrategy:
    return st.one_of(
        st.floats(low, high),
        st.sampled_from([low, high, low - 1e-9, high + 1e-6, -1.0, 0.0, 2.0, 1e308, -1e308, 5e-324, 10**9]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.text(max_size=4),
    )


def model_names(offered: list[str]) -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(offered),
        st.sampled_from(["", "../../etc/passwd", "/etc/passwd", "openai-community/gpt2", "gpt/../bigram",
                         "GPT", "checkpoints/gpt", None, 0]),
        st.text(max_size=20),
    )


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, tiny_checkpoints, tiny_text):
    return app_shelf(tmp_path_factory.mktemp("hostile-shelf"), tiny_checkpoints, tiny_text)


@pytest.fixture(scope="module")
def catalog(shelf):
    return Catalog.from_sources(shelf).load_all()


@pytest.fixture(scope="module")
def server(shelf, catalog):
    demo = build_app(catalog, str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(shelf))
    yield url.rstrip("/")
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False, analytics_enabled=False, download_files=False)


def call(client: Client, api: str, *args):
    """(True, result) or (False, error message); fails the test on a hang or any other exception."""
    job = client.submit(*args, api_name=api)
    try:
        return True, job.result(timeout=REQUEST_TIMEOUT_S)
    except AppError as exc:
        message = str(exc)
        assert message.strip() and ANONYMOUS not in message, f"{api}{args!r:.300}: anonymous error"
        assert "Traceback" not in message
        return False, message


def answers(client: Client) -> bool:
    """The server still serves a normal request."""
    ok, text = call(client, "/generate", "gpt", "All:", 5, 0.8, 0, 1.0, 1)
    return ok and text.startswith("All:")


@pytest.fixture(scope="module")
def tried():
    """Inputs tried per endpoint, printed at the end of the module (for the closing note)."""
    counts: dict[str, int] = {}
    yield counts
    print(f"\nhostile inputs tried: {counts}")


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "bigram", "gpt-bpe"]), prompt=prompts(), tokens=whole_numbers(1, MAX_NEW_TOKENS),
       temperature=reals(0.0, 2.0), top_k=whole_numbers(0, 40), top_p=reals(0.05, 1.0),
       seed=st.one_of(st.integers(), st.none(), st.floats(allow_nan=False, allow_infinity=False)))
def test_generate_takes_any_input(client, tried, model, prompt, tokens, temperature, top_k, top_p, seed):
    tried["generate"] = tried.get("generate", 0) + 1
    ok, text = call(client, "/generate", model, prompt, tokens, temperature, top_k, top_p, seed)
    if ok:
        assert text.startswith(prompt) and len(prompt) <= MAX_PROMPT_CHARS
        assert model in ("gpt", "bigram", "gpt-bpe")
        assert not isinstance(seed, float) or seed.is_integer()  # 1.5 is refused, never rounded
        if model != "gpt-bpe":  # one character per token: the continuation respects max_new_tokens
            assert len(text) - len(prompt) <= tokens <= MAX_NEW_TOKENS


@pytest.mark.slow
@HOSTILE
@given(left=model_names(["gpt", "bigram"]), right=model_names(["gpt-bpe", "gpt"]), prompt=prompts(),
       tokens=whole_numbers(1, MAX_NEW_TOKENS), temperature=reals(0.0, 2.0),
       seed=st.one_of(st.integers(), st.none(), st.floats(allow_nan=False, allow_infinity=False)))
def test_compare_takes_any_input(client, tried, left, right, prompt, tokens, temperature, seed):
    tried["compare"] = tried.get("compare", 0) + 1
    ok, result = call(client, "/compare", left, right, prompt, tokens, temperature, seed)
    if ok:
        assert all(side.startswith(prompt) for side in result)
        assert len(prompt) <= MAX_PROMPT_CHARS
        assert not isinstance(seed, float) or seed.is_integer()


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "gpt-bpe"]), prompt=prompts(), layer=whole_numbers(0, 1), head=whole_numbers(0, 3),
       query=st.one_of(whole_numbers(-1, 64), st.integers()))
def test_attention_takes_any_input(client, tried, catalog, model, prompt, layer, head, query):
    tried["attention"] = tried.get("attention", 0) + 1
    ok, result = call(client, "/attention", model, prompt, layer, head, query)
    if ok:
        note, heatmap, grid, average, bars = result
        assert "sees" in note
        labels = json.loads(heatmap["plot"])["data"][0]["x"]
        assert 1 <= len(labels) <= catalog.get(model).config.block_size  # the work is cropped to the context
        assert 0 <= layer < catalog.get(model).config.n_layer and 0 <= head < catalog.get(model).config.n_head


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "gpt-bpe", "live"]), prompt=prompts(), layer=whole_numbers(0, 1),
       head=whole_numbers(0, 3), query=st.one_of(whole_numbers(-1, 64), st.integers()))
def test_inside_takes_any_input(client, tried, catalog, model, prompt, layer, head, query):
    tried["inside"] = tried.get("inside", 0) + 1
    ok, result = call(client, "/inside", model, prompt, layer, head, query, False)
    if ok:
        note, table, bars, file = result
        config = catalog.get(model).config
        assert 0 <= layer < config.n_layer and 0 <= head < config.n_head and len(prompt) <= MAX_PROMPT_CHARS
        weights = [row[4] for row in table["data"]]
        assert 1 <= len(weights) <= config.block_size  # the work is cropped to the context
        assert weights == sorted(weights, reverse=True) and abs(sum(weights) - 1) < 1e-4
        assert file["path"].endswith(".csv")


BY = st.one_of(st.sampled_from(["head", "mean", "rollout"]), st.sampled_from(["", "HEAD", "max", None, 0]),
               st.text(max_size=6))


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "gpt-bpe", "live"]), prompt=prompts(), layer=whole_numbers(0, 1),
       head=whole_numbers(0, 3), by=BY, position=st.one_of(whole_numbers(-1, 64), st.integers()))
def test_follow_takes_any_input(client, tried, catalog, model, prompt, layer, head, by, position):
    tried["follow"] = tried.get("follow", 0) + 1
    ok, result = call(client, "/follow", model, prompt, layer, head, by, position, False)
    if ok:
        text, heatmap = result
        config = catalog.get(model).config
        assert by in ("head", "mean", "rollout") and len(prompt) <= MAX_PROMPT_CHARS
        assert 0 <= layer < config.n_layer and 0 <= head < config.n_head
        n = int(re.search(r'data-n="(\d+)"', text).group(1))
        assert 1 <= n <= config.block_size  # the work is cropped to the context
        weights = [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', text)]
        assert 1 <= len(weights) <= n and abs(sum(weights) - 1) < 1e-3
        assert "<script" not in text.lower()  # the prompt's text is escaped


def head_lists() -> st.SearchStrategy:
    """Checkbox values: names the tiny models have, lack or cannot have, and values of the wrong type."""
    names = st.sampled_from(["all attention", "L0 H0", "L0 H1", "L1 H3", "L0 H4", "L2 H0", "L9 H9", "l0 h0",
                             "L0H0", "L-1 H0", "L0 H0 ", ""])
    return st.one_of(st.lists(names, max_size=6), st.lists(st.text(max_size=8), max_size=3),
                     st.lists(st.one_of(st.integers(), st.none(), st.floats(allow_nan=False)), max_size=3),
                     st.none(), st.text(max_size=6), st.integers())


MODES = st.one_of(st.sampled_from(["zero", "mean"]), st.sampled_from(["", "ZERO", "half", None, 0]),
                  st.text(max_size=6))


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "gpt-bpe", "live"]), prompt=prompts(), heads=head_lists(), mode=MODES)
def test_ablate_takes_any_input(client, tried, catalog, model, prompt, heads, mode):
    tried["ablate"] = tried.get("ablate", 0) + 1
    ok, result = call(client, "/ablate", model, prompt, heads, mode, False)
    if ok:
        note, after, bits = result
        config = catalog.get(model).config
        assert mode in ("zero", "mean") and len(prompt) <= MAX_PROMPT_CHARS
        assert f"({mode} mode)" in note
        before_probs, after_probs = (trace["x"] for trace in json.loads(after["plot"])["data"])
        assert len(before_probs) == len(after_probs) <= 10
        assert len(json.loads(bits["plot"])["data"][0]["x"]) <= config.block_size - 1  # cropped to the context
        if not heads:
            assert before_probs == after_probs


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "gpt-bpe", "live"]), mode=MODES)
def test_rank_takes_any_input(client, tried, model, mode):
    tried["rank"] = tried.get("rank", 0) + 1
    ok, result = call(client, "/rank", model, mode, False)
    if ok:  # the tiny models record no training text, so there is no validation loss to rank by
        note, bars, table = result
        assert mode in ("zero", "mean") and table["data"]


@pytest.mark.slow
@HOSTILE
@given(model=model_names(["gpt", "induction", "bigram"]))
def test_across_induction_takes_any_input(client, tried, model):
    tried["across_induction"] = tried.get("across_induction", 0) + 1
    ok, result = call(client, "/across_induction", model, False)
    assert not ok, result  # the shelf's models left no training snapshots: every name is refused (clearly: call)


SURPRISE_MODES = st.one_of(st.sampled_from(["bits of A", "A minus B"]),
                           st.sampled_from(["", "a minus b", "A - B", None, 0]), st.text(max_size=6))


@pytest.mark.slow
@HOSTILE
@given(text=prompts(), model_a=model_names(["gpt", "bigram", "gpt-bpe", "live", "gpt@0"]),
       model_b=model_names(["bigram", "gpt", "gpt-bpe", "live", "gpt@0"]), mode=SURPRISE_MODES)
def test_surprise_takes_any_input(client, tried, catalog, text, model_a, model_b, mode):
    tried["surprise"] = tried.get("surprise", 0) + 1
    ok, result = call(client, "/surprise", text, model_a, model_b, mode, False)
    if ok:
        summary, plot = result
        assert mode in ("bits of A", "A minus B") and len(text) <= MAX_PROMPT_CHARS
        assert model_a in catalog.names and (mode == "bits of A" or model_b in catalog.names)
        ids = catalog.get(model_a).tokenizer.encode(text)
        cells = [v for row in json.loads(plot["plot"])["data"][0]["z"] for v in row if v is not None]
        assert len(cells) == len(ids) - 1 >= 1  # every token after the first, once


@pytest.mark.parametrize("heads", [None, "L0 H0", 7, {"L0": 0}])
def test_a_checkbox_group_sent_no_list_is_answered_clearly(client, heads):
    """Gradio's CheckboxGroup iterates what it is sent: None (nothing ticked) means no head, anything else but a
    list gets a message naming the input, never the anonymous error."""
    ok, result = call(client, "/ablate", "gpt", "First Citizen:", heads, "zero", False)
    if heads is None:
        assert ok and "Switched off: no head" in result[0]
    else:
        assert not ok and "heads to switch off must be a list" in result


@settings(max_examples=60, deadline=None)
@given(prompt=st.one_of(st.text(alphabet=st.sampled_from(NASTY + VOCAB), max_size=300), st.text(max_size=80)))
def test_attention_view_takes_any_text(catalog, prompt):
    """The library function under the attention tab: a view of at most block_size tokens, or a project error."""
    for name in ["gpt", "gpt-bpe"]:
        checkpoint = catalog.get(name)
        try:
            view = attention_view(checkpoint.model, checkpoint.tokenizer, prompt)
        except GptlabError as exc:
            assert str(exc)
            continue
        n = len(view.ids)
        assert 1 <= n <= checkpoint.config.block_size and len(set(view.labels)) == n
        for pattern in view.patterns:
            assert pattern.shape == (checkpoint.config.n_head, n, n)
            assert bool(((pattern.sum(-1) - 1).abs() < 1e-4).all())


@pytest.mark.slow
def test_the_server_still_answers_after_the_hostile_batches(client, tried):
    """Runs after the property tests above (file order): no batch left the server broken."""
    assert answers(client)
    assert sum(tried.values()) >= 180, tried


NUMERIC_FIELDS = {
    "/generate": (["gpt", "All:", 5, 0.8, 0, 1.0, 1], [2, 3, 4, 5, 6]),
    "/compare": (["bigram", "gpt", "All:", 5, 0.8, 1], [3, 4, 5]),
    "/attention": (["gpt", "All:", 0, 0, -1], [2, 3, 4]),
    "/inside": (["gpt", "All:", 0, 0, -1, False], [2, 3, 4]),
    "/follow": (["gpt", "All:", 0, 0, "head", -1, False], [2, 3, 5]),
}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", '"7"', "null", "[1]", "true"])
@pytest.mark.parametrize("api", list(NUMERIC_FIELDS))
def test_non_finite_and_mistyped_numbers_in_raw_json_are_refused_clearly(server, client, api, value):
    """gradio_client cannot send NaN or infinity; a hand-written request can, on every numeric field."""
    base, fields = NUMERIC_FIELDS[api]
    for index in fields:
        data = [json.dumps(v) for v in base]
        data[index] = value
        url = f"{server}/gradio_api/call{api}"
        body = '{"data": [' + ", ".join(data) + "]}"
        event = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
        stream = httpx.get(f"{url}/{event.json()['event_id']}", timeout=REQUEST_TIMEOUT_S).text
        if "event: error" in stream:  # refused: with a message, never {"error": null}
            assert '"error": null' not in stream and "Traceback" not in stream, (api, index, value, stream[-300:])
        else:  # accepted only where the value is legitimately empty (an empty seed means "random")
            assert value == "null" and (api, index) in {("/generate", 6), ("/compare", 5), ("/attention", 4),
                                                        ("/inside", 4), ("/follow", 5)}, (
                api, index, value, stream[-300:])
    assert answers(client)


# Every whole-number field of every endpoint: (valid arguments, the indexes of its whole-number fields).
WHOLE_FIELDS = {
    "/generate": (["gpt", "All:", 5, 0.8, 0, 1.0, 1], [2, 4, 6]),  # max new tokens, top-k, seed
    "/compare": (["bigram", "gpt", "All:", 5, 0.8, 1], [3, 5]),
    "/step": (["gpt", "All:", 0.8, 0, 1.0, 1, False], [3, 5]),  # top-k, seed
    "/attention": (["gpt", "All:", 0, 0, -1], [2, 3, 4]),  # layer, head, query position
    "/inside": (["gpt", "All:", 0, 0, -1, False], [2, 3, 4]),
    "/closer": (["gpt", "All:", 0, 0, -1, False], [2, 3, 4]),
    "/follow": (["gpt", "All:", 0, 0, "head", -1, False], [2, 3, 5]),
    "/export": (["gpt", "All:", 0, 0, False], [2, 3]),
    "/lesson": (["previous-char", "gpt", "All:", 0, 0, -1, -1, False], [3, 4, 5, 6]),  # seed, extend, layer, head
    "/lesson_html": (["previous-char", "gpt", "All:", 0, 0, -1, -1, False], [3, 4, 5, 6]),
    "/live": (["Tiny Shakespeare", "", 1], [2]),  # seconds of training
    "/across": (["All:", 0, 0, 0, False], [1, 2, 3]),  # layer, head, snapshot
}


@pytest.mark.parametrize("api", list(WHOLE_FIELDS))
def test_a_fraction_in_a_whole_number_field_is_refused_not_rounded(client, api):
    """A seed of 1.5 (or a position, a token count, a layer) is refused with a clear message: Gradio's number
    field with precision=0 would round it to 2 and answer as if the visitor had asked for that."""
    base, fields = WHOLE_FIELDS[api]
    for index in fields:
        args = list(base)
        args[index] += 0.5  # in range, so only its fraction can be refused
        ok, result = call(client, api, *args)
        assert not ok and "must be a whole number" in result, (api, index, str(result)[:200])


def test_only_listed_models_are_offered(shelf):
    """A model folder that exists on disk but was not listed, a path or a Hub id is never loaded."""
    listed = Catalog.from_sources(shelf, only=["gpt"]).load_all()
    for name in ["bigram", str(shelf / "bigram"), str(shelf / "gpt"), "openai-community/gpt2", "../gpt"]:
        with pytest.raises(gr.Error, match="No model named"):
            next(generate.stream(listed, name, "All:", 5, 0.8, 0, 1.0, 1))
        with pytest.raises(gr.Error, match="No model named"):
            attention.show(listed, name, "All:", 0, 0, -1)
    assert list(listed.entries) == ["gpt"]  # nothing else was loaded on the way


def test_only_listed_models_through_the_server(shelf):
    demo = build_app(Catalog.from_sources(shelf, only=["gpt"]).load_all(), str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        for name in ["bigram", str(shelf / "bigram"), "openai-community/gpt2"]:
            with pytest.raises(AppError, match="not in the list of choices"):
                c.predict(name, "All:", 5, 0.8, 0, 1.0, 1, api_name="/generate")
            with pytest.raises(AppError, match="not in the list of choices"):
                c.predict("gpt", name, "All:", 5, 0.8, 1, api_name="/compare")
        assert c.predict("gpt", "All:", 5, 0.8, 0, 1.0, 1, api_name="/generate").startswith("All:")
    finally:
        demo.close()


def secret_paths(shelf: Path) -> list[str]:
    return ["/etc/passwd", "/proc/self/environ", str(REPO / "app.py"), str(REPO / "pyproject.toml"),
            str(shelf / "gpt" / "config.json"), str(shelf / "gpt" / "model.safetensors")]


def test_file_routes_serve_no_arbitrary_path(server, shelf):
    routes = []
    for path in secret_paths(shelf):
        routes += [f"/gradio_api/file={path}", f"/file={path}", f"/gradio_api/file{path}",
                   f"/gradio_api/file={path.replace('/', '%2F')}"]
    routes += ["/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=..%2F..%2F..%2Fetc%2Fpasswd",
               "/gradio_api/file=app.py", "/static/..%2F..%2Fapp.py", "/assets/..%2F..%2F..%2Fapp.py",
               "/gradio_api/file=file:///etc/passwd", f"/gradio_api/file={server}/config",
               "/gradio_api/file=http://127.0.0.1:1/", "/gradio_api/proxy=http://127.0.0.1:1/"]
    secrets = [Path("/etc/passwd").read_bytes()[:30], (REPO / "app.py").read_bytes()[:60],
               (shelf / "gpt" / "config.json").read_bytes()[:30]]
    for route in routes:
        response = httpx.get(server + route, timeout=15)
        assert response.status_code >= 400, (route, response.status_code, response.text[:200])
        assert not any(secret in response.content for secret in secrets), route


def test_model_folders_stay_blocked_even_if_a_deployer_allows_their_parent(shelf, catalog, tmp_path):
    """blocked_paths from launch_options() win over allowed_paths; a control file proves allowing works."""
    control = shelf.parent / "allowed-note.txt"
    control.write_text("served on purpose")
    demo = build_app(catalog, str(shelf))
    options = {**launch_options(shelf), "allowed_paths": [str(shelf.parent)]}
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **options)
    try:
        base = url.rstrip("/")
        assert httpx.get(f"{base}/gradio_api/file={control}", timeout=10).text == "served on purpose"
        for name in ["config.json", "model.safetensors", "tokenizer.json"]:
            response = httpx.get(f"{base}/gradio_api/file={shelf / 'gpt' / name}", timeout=10)
            assert response.status_code == 403, name
    finally:
        demo.close()


def test_uploads_are_capped(server):
    """The app takes no files, but Gradio's upload route is open: its size is capped."""
    small = httpx.post(f"{server}/gradio_api/upload", files={"files": ("a.txt", b"hello")}, timeout=10)
    assert small.status_code == 200
    big = httpx.post(f"{server}/gradio_api/upload", files={"files": ("b.txt", b"x" * (2 << 20))}, timeout=30)
    assert big.status_code >= 400


# Events allowed to skip the queue, each for a reason: they do a constant, tiny amount of work.
INSTANT_EVENTS = {"live_stop": "sets a flag; a Stop must not wait in line behind the run it stops"}


def test_every_event_has_bounded_concurrency(catalog, shelf):
    """Private events are still reachable over HTTP (by fn_index): all of them wait in a bounded queue."""
    demo = build_app(catalog, str(shelf))
    unbounded = [fn.api_name or fn.name for fn in demo.fns.values() if fn.concurrency_limit is None]
    assert set(unbounded) <= set(INSTANT_EVENTS), unbounded  # None would mean unlimited at once
    assert demo._queue.max_size == QUEUE_SIZE


def test_generation_stops_at_the_time_limit(client, monkeypatch):
    """Gradio's time_limit only covers .stream() events, so the app enforces its own deadline."""
    full = client.predict("gpt", "All:", 400, 1.0, 0, 1.0, 3, api_name="/generate")
    assert len(full) == len("All:") + 400
    monkeypatch.setattr(common, "GENERATION_TIME_LIMIT_S", 0.0)
    requests = [("/generate", ("gpt", "All:", 400, 1.0, 0, 1.0, 3)),
                ("/compare", ("gpt", "bigram", "All:", 400, 1.0, 3))]
    for api, args in requests:
        result = client.predict(*args, api_name=api)
        for text in [result] if isinstance(result, str) else result:
            assert text.startswith("All:") and len(text) < len(full)


def test_worst_case_requests_finish_quickly(client):
    """The most work one visitor can ask for: the longest prompt and the most tokens."""
    prompt = ("All:\nSpeak, speak.\n" * 200)[: MAX_PROMPT_CHARS]
    ok, text = call(client, "/generate", "gpt", prompt, MAX_NEW_TOKENS, 1.0, 0, 1.0, 1)
    assert ok and len(text) == len(prompt) + MAX_NEW_TOKENS
    ok, (note, heatmap, *_) = call(client, "/attention", "gpt", prompt, 1, 3, -1)
    assert ok and "cropped" in note and len(json.loads(heatmap["plot"])["data"][0]["x"]) == 64
    ok, (note, table, *_) = call(client, "/inside", "gpt", prompt, 1, 3, -1, False)
    assert ok and "cropped" in note and len(table["data"]) == 64
    ok, (text, heatmap) = call(client, "/follow", "gpt", prompt, 1, 3, "rollout", 10**9, False)
    assert ok and "Cropped" in text and 'data-n="64"' in text and "following the last one, 63" in text
    ok, (note, after, bits) = call(client, "/ablate", "gpt", prompt, ["all attention"], "mean", False)
    assert ok and "cropped" in note and len(json.loads(bits["plot"])["data"][0]["x"]) == 63
    ok, (summary, plot) = call(client, "/surprise", prompt, "gpt", "bigram", "A minus B", False)
    cells = [v for row in json.loads(plot["plot"])["data"][0]["z"] for v in row if v is not None]
    assert ok and len(cells) == MAX_PROMPT_CHARS - 1  # the whole text is scored, window by window
