"""Record every attempt of this Python process to reach beyond loopback (tests only).

tests/test_where_it_runs.py puts this folder on PYTHONPATH of the app it starts, so Python
imports it at start-up. Each DNS lookup or connection to a host other than this machine
appends one line to the file named by $GPTLAB_NETWATCH_LOG: ``<argv[0]>\t<event>\t<host>\t<port>``.
The app's answers are unchanged; the test then fails on any line the app wrote, so a request
that would wait on a network timeout shows up even where the network fails at once.
"""

import os
import sys

_LOG = os.environ.get("GPTLAB_NETWATCH_LOG")
_LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""}


def _watch(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo":
        host, port = args[0], args[1]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host, port = args[1][0], args[1][1]
    else:  # AF_UNIX paths and everything else
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None or str(host) in _LOCAL or str(host).startswith("127."):
        return
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{sys.argv[0] if sys.argv else '?'}\t{event}\t{host}\t{port}\n")


if _LOG:
    sys.addaudithook(_watch)
