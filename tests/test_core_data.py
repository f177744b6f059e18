"""Data integrity: the checksum-verified download (against a loopback server), split, batches, reading files."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptlab import DataError, TokenSplits, get_batch, load_text
from gptlab.data import TINY_SHAKESPEARE_FILE, TINY_SHAKESPEARE_SHA256, sha256_of, tiny_shakespeare_path


class CorpusServer:
    """A loopback HTTP server with one route per way a download can go right or wrong."""

    def __init__(self, corpus: bytes) -> None:
        self.corpus = corpus
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # needed for the chunked route

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                getattr(server, "route_" + self.path.strip("/").replace("-", "_"), server.route_missing)(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _send(handler, body: bytes, length: int | None = None, pause: float = 0.0) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        for i in range(0, len(body), 1 << 16):
            handler.wfile.write(body[i : i + (1 << 16)])
            handler.wfile.flush()
            time.sleep(pause)
        handler.close_connection = True

    def route_good(self, h) -> None:
        self._send(h, self.corpus)

    def route_slow(self, h) -> None:  # long enough for two downloads to overlap
        self._send(h, self.corpus, pause=0.01)

    def route_wrong(self, h) -> None:  # same size, one byte changed
        self._send(h, b"X" + self.corpus[1:])

    def route_truncated(self, h) -> None:  # promises the full size, closes at half
        self._send(h, self.corpus[: len(self.corpus) // 2], length=len(self.corpus))

    def route_huge(self, h) -> None:  # a server that never stops: more than the corpus, no length
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            for _ in range(64):
                h.wfile.write(self.corpus[: 1 << 16] * 4)
        except OSError:  # the client hung up, as it should
            pass
        h.close_connection = True

    def route_chunked_cut(self, h) -> None:  # a chunked body cut off mid-stream
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"10000\r\n" + self.corpus[:1000])
        h.wfile.flush()
        h.close_connection = True

    def route_missing(self, h) -> None:
        h.send_response(404)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()


@pytest.fixture(scope="module")
def server(shakespeare_path):
    srv = CorpusServer(shakespeare_path.read_bytes())
    yield srv
    srv.close()


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(folder))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != TINY_SHAKESPEARE_FILE) if folder.exists() else []


def test_download_success_is_verified_and_cached(server, data_dir):
    path = tiny_shakespeare_path(download=True, url=server.url + "/good")
    assert path == data_dir / TINY_SHAKESPEARE_FILE
    assert sha256_of(path) == TINY_SHAKESPEARE_SHA256
    assert leftovers(data_dir) == []
    before = server.hits["/good"]
    assert tiny_shakespeare_path(download=True, url=server.url + "/good") == path
    assert server.hits["/good"] == before  # the verified copy is used, not fetched again


@pytest.mark.parametrize("route", ["/wrong", "/truncated", "/huge", "/chunked-cut", "/missing"])
def test_bad_download_is_detected_removed_and_explained(server, data_dir, route):
    with pytest.raises(DataError) as info:
        tiny_shakespeare_path(download=True, url=server.url + route)
    target = data_dir / TINY_SHAKESPEARE_FILE
    assert not target.exists(), "a bad download must never be put in place"
    assert leftovers(data_dir) == [], "no .part file may be left behind"
    message = str(info.value)
    assert str(target) in message and TINY_SHAKESPEARE_SHA256 in message  # says where to put the file


@pytest.mark.parametrize("url", ["not a url", "http://127.0.0.1:9/nothing-listens-here"])
def test_unreachable_or_malformed_url_is_a_data_error(data_dir, url):
    with pytest.raises(DataError, match="GPTLAB_DATA_DIR"):
        tiny_shakespeare_path(download=True, url=url)
    assert leftovers(data_dir) == []


def test_corrupt_cache_is_replaced_by_a_fresh_download(server, data_dir):
    data_dir.mkdir()
    target = data_dir / TINY_SHAKESPEARE_FILE
    target.write_bytes(b"not the corpus")
    before = server.hits["/good"]
    assert tiny_shakespeare_path(download=True, url=server.url + "/good") == target
    assert server.hits["/good"] == before + 1
    assert sha256_of(target) == TINY_SHAKESPEARE_SHA256


def test_corrupt_cache_is_deleted_when_download_fails_or_is_off(server, data_dir):
    data_dir.mkdir()
    target = data_dir / TINY_SHAKESPEARE_FILE
    target.write_bytes(b"not the corpus")
    with pytest.raises(DataError):
        tiny_shakespeare_path(download=True, url=server.url + "/wrong")
    assert not target.exists()
    target.write_bytes(b"not the corpus")
    with pytest.raises(DataError, match=str(target)):
        tiny_shakespeare_path(download=False)
    assert not target.exists()


def test_concurrent_downloads_leave_one_correct_file(server, data_dir):
    data_dir.mkdir()
    (data_dir / TINY_SHAKESPEARE_FILE).write_bytes(b"corrupt")
    results, errors = [], []

    def fetch() -> None:
        try:
            results.append(tiny_shakespeare_path(download=True, url=server.url + "/slow"))
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(results) == 3
    assert sha256_of(data_dir / TINY_SHAKESPEARE_FILE) == TINY_SHAKESPEARE_SHA256
    assert leftovers(data_dir) == []


def test_load_text_of_the_verified_corpus(shakespeare_path, monkeypatch):
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(shakespeare_path.parent))
    text = load_text("tinyshakespeare")
    assert text == shakespeare_path.read_bytes().decode("utf-8")
    assert text.startswith("First Citizen:")


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_utf8_file_loads_exactly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("utf8") / "any.txt"
    path.write_bytes(text.encode("utf-8"))  # st.text() has no lone surrogates: always encodable
    assert load_text(path) == text  # byte for byte: \r and \r\n are kept as they are


def test_crlf_is_kept(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc")
    assert load_text(path) == "a\r\nb\rc"


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\xfa bad bytes", b"caf\xe9"])
def test_empty_or_non_utf8_file_is_a_data_error(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty|UTF-8"):
        load_text(path)


def test_missing_file_or_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="No text file"):
        load_text(tmp_path / "nope.txt")
    with pytest.raises(DataError):
        load_text(tmp_path)


def test_split_is_deterministic_90_10():
    ids = list(range(1000))
    a, b = TokenSplits.from_ids(ids), TokenSplits.from_ids(ids)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert a.train.tolist() == ids[:900] and a.val.tolist() == ids[900:]
    assert a.train.dtype == torch.long
    assert torch.equal(a.split("val"), a.val)


def test_get_batch_is_seeded_and_y_is_x_shifted():
    data = torch.arange(500)
    x1, y1 = get_batch(data, 8, 16, torch.Generator().manual_seed(3))
    x2, y2 = get_batch(data, 8, 16, torch.Generator().manual_seed(3))
    x3, _ = get_batch(data, 8, 16, torch.Generator().manual_seed(4))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert x1.shape == y1.shape == (8, 16)
    assert torch.equal(y1, x1 + 1)  # data is arange: the target is the next token
    assert torch.equal(x1[:, 1:], y1[:, :-1])


def test_get_batch_needs_more_than_block_size_tokens():
    with pytest.raises(DataError, match="block_size"):
        get_batch(torch.arange(16), 2, 16)
    x, y = get_batch(torch.arange(17), 2, 16)  # exactly enough: one window
    assert torch.equal(x[0], torch.arange(16)) and torch.equal(y[0], torch.arange(1, 17))
