"""Ctrl-C while a benchmark waits for the app it started: the app goes with it (a real `python -m bench.class_load`,
started with SIGINT ignored as a background job is, so run_cli's handler is what hears it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_while_the_app_starts_leaves_no_app_running():
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    bench = subprocess.Popen([sys.executable, "-m", "bench.class_load", "--users", "2"], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    apps: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not apps and time.monotonic() < deadline:  # the app has been started: the bench now waits for it
            apps = [p for p in psutil.Process(bench.pid).children(recursive=True)
                    if any(part.endswith("app.py") for part in p.cmdline())]
            time.sleep(0.05)
        assert apps, "the bench started no app"
        bench.send_signal(signal.SIGINT)
        bench.communicate(timeout=60)
        assert bench.returncode in (130, -signal.SIGINT)  # a status of its own, or ended by the signal
        gone, alive = psutil.wait_procs(apps, timeout=15)
        assert not alive, f"app.py left running: {[p.pid for p in alive]}"
    finally:
        bench.kill()
        for app in apps:  # whatever happened above, the test leaves no app behind either
            try:
                app.kill()
            except psutil.Error:
                pass
