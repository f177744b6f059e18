"""A separate process that renders Plotly figures with kaleido (headless Chromium) for gptlab.figures.export.

Run by path, not imported: ``python gptlab/figures/kaleido_worker.py``. It starts its browser first and
says so on stdout: {"ready": true}, or {"fatal": <message>} and exit status 1 when the browser could not
start (a missing file, a stub that exits at once). Then it reads one JSON request per line on stdin
({"figure": <figure JSON>, "format": "png"|"svg", "scale": float}) and answers one JSON line on stdout
({"image": <base64>} or {"error": <message>}), keeping that one browser for all renders; if the browser
dies, it answers {"fatal": <message>} and exits 1. The parent can kill it at any moment; that is how a
render that hangs is abandoned.
"""

import asyncio
import base64
import contextlib
import json
import os
import sys

# Run by path, Python puts this file's folder first on the import path: gptlab's own modules
# (attention.py, style.py, ...) must not shadow the packages that plotly and kaleido import.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import kaleido  # noqa: E402
import plotly.io as pio  # noqa: E402


def main() -> int:
    replies = sys.stdout
    sys.stdout = sys.stderr  # a stray print from a library cannot corrupt the replies
    return asyncio.run(serve(replies))


def answer(replies, reply: dict) -> None:
    replies.write(json.dumps(reply) + "\n")
    replies.flush()


async def serve(replies) -> int:
    """Open one browser, then render each request with it; 1 when the browser cannot start or dies."""
    # kaleido's synchronous server would hide a browser that exits at once: its thread dies and every
    # render waits forever. Driving Kaleido directly, the failed start is an exception here, in seconds.
    browser = None
    try:
        browser = kaleido.Kaleido(timeout=None)  # the parent holds the time limit
        await browser.open()
    except Exception as exc:  # ChromeNotFoundError, BrowserFailedError, a channel closed under it, ...
        answer(replies, {"fatal": f"{type(exc).__name__}: {_short(exc)}"})
        if browser is not None:
            with contextlib.suppress(Exception):  # its temporary page folder; the browser is gone already
                await browser.close()
        return 1
    answer(replies, {"ready": True})
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            request = json.loads(line)
            try:
                fig = pio.from_json(request["figure"], skip_invalid=True)
                opts = {"format": request["format"], "scale": request["scale"]}
                image = await browser.calc_fig(fig.to_dict(), opts=opts)
                reply = {"image": base64.b64encode(image).decode("ascii")}
            except (Exception, asyncio.CancelledError) as exc:  # a dead browser cancels the render
                if browser.subprocess.poll() is not None:
                    answer(replies, {"fatal": f"{type(exc).__name__}: {_short(exc)}"})
                    return 1
                reply = {"error": f"{type(exc).__name__}: {_short(exc)}"}
            answer(replies, reply)
    finally:
        await browser.close()
    return 0


def _short(exc: BaseException) -> str:
    """The first line of an exception's message; choreographer's run to a paragraph of advice."""
    text = str(exc.args[0]) if exc.args else str(exc)
    return (text.strip().splitlines() or [""])[0][:300]

if __name__ == "__main__":
    sys.exit(main())
