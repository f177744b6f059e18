"""Run a program with no network but loopback: a new network namespace (``unshare --net``) with lo up.

Root makes one directly; another user through a user namespace (where the system allows it). Where
neither works the calling test skips and says why, or fails under GPTLAB_REQUIRE_MOUNT=1 (CI, set by
.ci/run, runs as root), as the real-tmpfs tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def in_network_namespace() -> list[str]:
    """The command prefix that runs a program (appended as its arguments) in a loopback-only namespace."""
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    prefix = [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    reason = ""
    if not (shutil.which("unshare") and shutil.which("ip")):
        reason = "unshare or ip (util-linux, iproute2) is not installed"
    else:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            reason = f"a network namespace was refused: {probe.stderr.strip()[-300:]}"
    if reason:
        if os.environ.get("GPTLAB_REQUIRE_MOUNT") == "1":
            pytest.fail(f"GPTLAB_REQUIRE_MOUNT=1 but {reason}")
        pytest.skip(f"{reason} (GPTLAB_REQUIRE_MOUNT=1 makes this a failure)")
    return prefix
