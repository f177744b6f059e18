"""A separate process that renders Plotly figures with kaleido (headless Chromium) for gptlab.figures.export.

Run by path, not imported: ``python gptlab/figures/kaleido_worker.py``. It reads one JSON request per line
on stdin ({"figure": <figure JSON>, "format": "png"|"svg", "scale": float}) and answers one JSON
line on stdout ({"image": <base64>} or {"error": <message>}). It keeps one browser for all
renders. The parent can kill it at any moment; that is how a render that hangs is abandoned.
"""

import base64
import json
import os
import sys
import warnings

# Run by path, Python puts this file's folder first on the import path: gptlab's own modules
# (attention.py, style.py, ...) must not shadow the packages that plotly and kaleido import.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import kaleido  # noqa: E402
import plotly.io as pio  # noqa: E402


def main() -> int:
    replies = sys.stdout
    sys.stdout = sys.stderr  # a stray print from a library cannot corrupt the replies
    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
    kaleido.start_sync_server(silence_warnings=True)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            try:
                fig = pio.from_json(request["figure"], skip_invalid=True)
                image = fig.to_image(format=request["format"], scale=request["scale"])
                reply = {"image": base64.b64encode(image).decode("ascii")}
            except Exception as exc:  # kaleido raises many types; the parent turns it into an ExportError
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    finally:
        kaleido.stop_sync_server(silence_warnings=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
