"""A skip mark for tests that render PNG/SVG through kaleido, which needs Chrome or Chromium.

Where no browser is found (a laptop, a fresh clone) these tests skip and say why; where
GPTLAB_REQUIRE_BROWSER=1 (CI, set by .ci/run) they run, and a missing browser fails them.
"""

from __future__ import annotations

import os

import pytest

from gptlab.figures.export import browser_available

REQUIRED = os.environ.get("GPTLAB_REQUIRE_BROWSER") == "1"
_found = browser_available()
NEEDS_RENDERER = pytest.mark.skipif(
    not _found.available and not REQUIRED,
    reason=f"PNG/SVG export needs Chrome or Chromium, and {_found.reason} (apt-get install chromium; "
           "GPTLAB_REQUIRE_BROWSER=1 makes this a failure instead)",
)
