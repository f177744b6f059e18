"""The lesson "Copying what came before": beside the induction head, what copying is worth on the lesson's
prompt, one random string written twice (``gptlab.inside.induction.copy_bits``)."""

from __future__ import annotations

from collections.abc import Sequence

from ...checkpoint import Checkpoint
from ...inside.induction import copy_bits
from ...markdown import code_span


def copying_caption(checkpoint: Checkpoint, ids: Sequence[int], model: str, unit: str = "character") -> str:
    """Markdown: the model's bits per ``unit`` on the first and the second copy of the prompt, or why there are none."""
    found = copy_bits(checkpoint.model, ids)
    if found is None:
        return (f"The prompt is not one string written twice within the context of {code_span(model)}, so there is "
                f"no second copy to compare with the first.")
    first, second = found
    words = (f"On this prompt ({len(ids) // 2} {unit}s, then the same again) {code_span(model)} spends "
             f"**{first:.2f} bits per {unit}** on the first copy, where it can only guess, and **{second:.2f}** on "
             f"the second, where it could copy")
    if second < first:
        return f"{words}: the earlier copy saves {1 - second / first:.0%} of the bits."
    return f"{words}: the earlier copy does not help, as this model has no induction head to copy with."

