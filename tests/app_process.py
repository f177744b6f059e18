"""Start app.py as a subprocess on a free loopback port, for tests that need a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
START_LIMIT_S = 60  # generous for a loaded CI machine; on an idle one the page answers in ~6 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(checkpoints: Path, log_dir: Path, **env: str) -> Iterator[str]:
    """Yield the URL of app.py serving ``checkpoints``; stop it on exit (the log is shown on failure)."""
    port = free_port()
    full_env = {**os.environ, "GPTLAB_CHECKPOINTS": str(checkpoints), "GRADIO_ANALYTICS_ENABLED": "False", **env}
    with open(log_dir / "app.log", "w+") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        start = time.monotonic()
        try:
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() - start > START_LIMIT_S:
                    log.seek(0)
                    pytest.fail(f"app did not start within {START_LIMIT_S} s:\n{log.read()[-3000:]}")
                time.sleep(0.2)
            print(f"app answered after {time.monotonic() - start:.1f} s")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
