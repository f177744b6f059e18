"""Run a command that sets up and starts the app, pass once its page answers, then stop it.

`python3 .ci/serves_page.py "<command>"` (.ci/run gives it the README's app command, verbatim). The
command runs in bash, in a process group of its own, with GRADIO_SERVER_PORT set to a free loopback
port. Exit 0 when http://127.0.0.1:PORT/ answers 200; exit 1, showing the end of the command's
output, when it exits first or LIMIT_S passes. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LIMIT_S = 900  # the command installs requirements.txt before it starts the app: minutes on a cold cache


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 .ci/serves_page.py '<command that starts the app>'", file=sys.stderr)
        return 2
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port)}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(["bash", "-c", argv[0]], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        start = time.monotonic()
        try:
            while proc.poll() is None and time.monotonic() - start < LIMIT_S:
                if answers(url):
                    print(f"the app command served {url} after {time.monotonic() - start:.0f} s")
                    return 0
                time.sleep(1)
            why = f"exited with status {proc.returncode}" if proc.poll() is not None else f"no page in {LIMIT_S} s"
            log.seek(0)
            print(f"the app command failed ({why}):\n{log.read()[-4000:]}", file=sys.stderr)
            return 1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # bash and the app it started
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
