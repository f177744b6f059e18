"""A huge number given to a check (1e308 reads as a 309-digit whole number) is echoed shortened in the error
message, not in full: every check that echoes a value (positions, layer/head ranges, sampling settings)."""

from __future__ import annotations

import pytest

from gptlab.errors import GptlabError
from gptlab.sampling import GenerationSettings
from gptlab_app.common import sampling_settings, token_position, whole

HUGE = 1e308


@pytest.mark.parametrize("check", [
    lambda: whole(HUGE, "query", 0, 10),
    lambda: whole(10 ** 400, "layer", 0, 3),
    lambda: token_position("9" * 400, "position"),
    lambda: sampling_settings(HUGE, 1.0, 0, 1.0, None),
    lambda: sampling_settings(10, 1.0, HUGE, 1.0, None),
    lambda: sampling_settings(10, 1.0, 0, 1.0, "7" * 400),
    lambda: GenerationSettings(max_new_tokens=10 ** 400).validate(100),
])
def test_the_message_is_short_and_the_value_cut(check):
    with pytest.raises(GptlabError) as caught:
        check()
    message = str(caught.value)
    assert len(message) < 160 and "…" in message, message
