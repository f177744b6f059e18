"""Screenshot the README's images of two views from the real app in Chromium (Playwright).

    python scripts/readme_images.py [--browser /usr/bin/chromium] [--out docs/img]

Starts ``python app.py`` on the shipped checkpoints (loopback, a free port), opens each tab, waits for its view,
hovers one cell so the image shows what a hover says, and writes, each under MAX_BYTES:
- inside-one-head.png: "Inside a head" with its defaults (gpt, 'ROMEO:\\nWhat light', layer 0, head 0, last query)
- where-context-pays.png: "Where context pays" with its defaults (gpt minus bigram on the val split's opening)
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gptlab.prompts import SURPRISE_PROMPT  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_BYTES = 150_000
START_LIMIT_S = 300  # a shared machine can be slow to start the app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_tab(page, name: str) -> None:
    """Click the tab ``name`` in the bar, or in Gradio's 'More tabs' menu when it does not fit."""
    for _ in range(120):
        tab = page.get_by_role("tab", name=name, exact=True)
        more = page.locator("button[aria-label='More tabs']")
        if tab.count() and tab.first.is_visible():
            tab.first.click()
            return
        if more.count() and more.first.is_visible():
            more.first.click()
            page.locator(".overflow-dropdown button", has_text=name).first.click()
            return
        page.wait_for_timeout(250)
    raise SystemExit(f"error: no tab called {name!r}")


def shoot(page, top: str, bottom: str, path: Path, hover: str = "", at: tuple[float, float] = (0, 0)) -> None:
    """A screenshot from element ``top``'s top to ``bottom``'s bottom, with the mouse over ``hover`` at ``at``
    (fractions of its width and height) when given."""
    if hover:
        box = page.locator(hover).first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * at[0], box["y"] + box["height"] * at[1])
        page.wait_for_selector(f"{hover.split()[0]} .hoverlayer .hovertext")
    page.wait_for_timeout(500)
    y0 = page.locator(top).first.bounding_box()["y"] - 12
    end = page.locator(bottom).first.bounding_box()
    clip = {"x": 0, "y": max(0, y0), "width": page.viewport_size["width"], "height": end["y"] + end["height"] + 12 - y0}
    write_small(page.screenshot(clip=clip), path)


def write_small(png: bytes, path: Path) -> None:
    """``png`` as written, or with a 128-colour palette (and halved if still too big) to stay under MAX_BYTES."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    for attempt in range(3):
        if len(png) <= MAX_BYTES:
            break
        small = image if attempt < 2 else image.resize((image.width * 3 // 4, image.height * 3 // 4))
        buffer = io.BytesIO()
        small.convert("RGB").quantize(colors=128 if attempt == 0 else 64).save(buffer, "PNG", optimize=True)
        png = buffer.getvalue()
    path.write_bytes(png)
    print(f"wrote {path} ({len(png) / 1000:.0f} kB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", default=os.environ.get("BROWSER_PATH", "/usr/bin/chromium"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GPTLAB_CHECKPOINTS": str(REPO / "checkpoints")}
    app = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if app.poll() is not None or time.monotonic() - start > START_LIMIT_S:
                    raise SystemExit("error: the app did not start") from None
                time.sleep(0.5)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.browser, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#gen-btn")
            open_tab(page, "Inside a head")
            page.wait_for_selector("#inside-bars .js-plotly-plot .bars")
            shoot(page, "#inside-model", "#inside-table", args.out / "inside-one-head.png")
            open_tab(page, "Where context pays")
            page.wait_for_selector("#surprise-plot .js-plotly-plot .hm")
            lines = len(SURPRISE_PROMPT.splitlines())  # one drawn line each: every line is under 64 characters
            shoot(page, "#surprise-text", "#surprise-plot", args.out / "where-context-pays.png",
                  "#surprise-plot .nsewdrag", (3.5 / 64, 1.5 / lines))  # the 'd' of 'Good'
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
