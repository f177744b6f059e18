"""Read an HTML file the way a browser would fetch things for it: every reference it holds to another file.

Used to check that an exported page stands alone (opens from a USB stick with no network).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)  # http://, https:// and protocol-relative //host
CSS_REFERENCES = re.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\")\s;]+)|url\(\s*['\"]?([^'\")\s]+)", re.I)


class References(HTMLParser):
    """Every place an HTML document can point at another file: src/href-like attributes, CSS
    @import and url() in <style> and style attributes; and the inline scripts (their text is code,
    not a reference: plotly.js holds URLs in strings that are never fetched)."""

    URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "xlink:href", "background"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self.tags: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES and value:
                self.urls.append(value)
            if name == "style" and value:
                self.urls += [a or b for a, b in CSS_REFERENCES.findall(value)]
        self._in = tag if tag in ("script", "style") else None
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.urls += [a or b for a, b in CSS_REFERENCES.findall(data)]


def references(text: str) -> References:
    parser = References()
    parser.feed(text)
    parser.close()
    return parser


def assert_standalone(text: str) -> References:
    """No reference leaves the file, and plotly.js is inside it (exactly once)."""
    found = references(text)
    assert [u for u in found.urls if EXTERNAL.match(u)] == []
    assert "link" not in found.tags  # no stylesheet or icon fetched from anywhere
    assert sum("plotly.js v" in script[:300] for script in found.scripts) == 1
    return found
