"""What gptlab's command lines share: ending quietly when the reader of their output goes away, and hearing
Ctrl-C however they were started.

``python -m gptlab.generate ckpt "ROMEO:" | head -c 100`` closes the pipe after 100 bytes; the next write
then raises BrokenPipeError, which would end in a traceback (and a second one when Python flushes standard
output at exit). Each command line's ``__main__`` ends with ``raise SystemExit(run_cli(main))`` instead.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Callable

# 128 + SIGPIPE (13): the status a shell reports for cat, seq or yes cut short by `| head`, so a script
# (or `set -o pipefail`) can tell that the output was not all written
BROKEN_PIPE_EXIT = 141


def run_cli(main: Callable[[], int]) -> int:
    """``main()``'s exit code, or BROKEN_PIPE_EXIT with nothing printed when standard output's reader closed
    the pipe: the program stops at its next write, as a Unix tool killed by SIGPIPE would.

    Ctrl-C (SIGINT) raises KeyboardInterrupt even where the command was started with SIGINT ignored, as a shell
    without job control starts a background job (``cmd &`` in a script) and every process it starts inherits:
    Python then leaves SIGINT ignored, and ``kill -INT`` (a test's, a supervisor's) did nothing. Only an ignored
    SIGINT is changed (a handler of the caller's stays); one that comes while the modules still import, before
    this runs, is still ignored.
    """
    # signal handlers belong to the main thread
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            return main()
        finally:  # also after SystemExit (argparse's --help): output still buffered fails here, not at exit
            if sys.stdout is not None:  # None when started with standard output closed (>&-)
                sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():  # another pipe or socket broke: that is a real error
            raise
        # Python flushes standard output once more at exit: send what is left to /dev/null so that flush
        # cannot fail (and print "Exception ignored ... BrokenPipeError")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE_EXIT


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe with no reader left (Linux and macOS report POLLERR for it)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object with no file (a test's StringIO)
        return False
    if not hasattr(select, "poll"):  # Windows: trust the error
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))
