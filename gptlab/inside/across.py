"""Across training: one prompt read by the snapshots a model left while it learned.

``across_view`` is the one call behind the app's Across training tab: the snapshot the slider
points at, read closely, and one head's pattern at up to six snapshots from first to last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..generate import generate
from ..markdown import code_span
from ..prompts import fit_builtin, sample_start
from ..sampling import GenerationSettings
from ..snapshots import Snapshot, SnapshotCache, snapshot_sample
from .explore import HeadView, attention_view
from .heads import describe, label_heads, unit_for

MOST_FRAMES = 6  # snapshots side by side in the strip: small heatmaps stay readable
SAMPLE_TOKENS = 160  # a snapshot without a stored sample gets one this long, made on the spot
SAMPLE_SEED = 1337  # ... seeded, so every visitor reads the same one
NO_SNAPSHOTS = ("No training snapshots found: train with `python -m train gpt` (it saves "
                "snapshots/step_XXXXXX folders) and reload.")


def head_across_training(snapshots: Sequence[Snapshot], cache: SnapshotCache, prompt: str, layer: int, head: int,
                         most: int = MOST_FRAMES) -> list[tuple[Snapshot, torch.Tensor, list[str]]]:
    """One head's [q, k] pattern on ``prompt`` at up to ``most`` snapshots spread from first to last.

    Returns (snapshot, pattern, token labels) per chosen snapshot, for a strip of small heatmaps.
    """
    if len(snapshots) > most:  # first, last and evenly spaced ones between
        picks = sorted({round(i * (len(snapshots) - 1) / (most - 1)) for i in range(most)})
        snapshots = [snapshots[i] for i in picks]
    frames = []
    for snap in snapshots:
        checkpoint = cache.get(snap)
        view = attention_view(checkpoint.model, checkpoint.tokenizer, prompt)
        frames.append((snap, view.patterns[layer][head], view.labels))
    return frames


@dataclass(frozen=True)
class AcrossView(HeadView):
    """One snapshot read on a prompt, beside the same head at up to MOST_FRAMES snapshots.

    With T the prompt's tokens: ``view.patterns`` holds the shown snapshot's ``[head, query, key]``
    tensor per layer, ``pattern`` is ``[query, key]``, ``head_labels`` is ``[layer][head]``, and each
    frame is (snapshot, ``[query, key]`` pattern of the same head, T token labels), first step first.
    """

    snapshots: list[Snapshot]  # every snapshot found, by step
    index: int  # the one shown, 0..len(snapshots)-1
    sample: str  # the text the training wrote at that step, or a seeded one made now
    frames: list[tuple[Snapshot, torch.Tensor, list[str]]]
    prompt_note: str = ""  # Markdown: the characters of a built-in prompt this model never saw, left out

    @property
    def snapshot(self) -> Snapshot:
        return self.snapshots[self.index]

    @property
    def note(self) -> str:
        """Markdown: which snapshot of how many, its step and val loss, every step saved, the prompt's note."""
        steps = ", ".join(f"{s.step:,}" for s in self.snapshots)
        text = f"**Snapshot {self.index + 1} of {len(self.snapshots)}: {self.snapshot.label}** (steps saved: {steps})"
        return text + (f"\n\n⚠️ {self.prompt_note}" if self.prompt_note else "")


def across_view(snapshots: Sequence[Snapshot], cache: SnapshotCache, prompt: str, layer: int, head: int,
                index: int = -1) -> AcrossView:
    """Read ``prompt`` with snapshot ``index`` (-1 or past the end: the last) and one head across all of them.

    A prompt that gptlab supplies is fitted to the model; a person's own is kept as typed. Raises
    CheckpointError when there are no snapshots or one is gone, InputError for a layer or head the
    model lacks, and UnknownCharactersError for characters a char model has never seen.
    """
    if not snapshots:
        raise CheckpointError(NO_SNAPSHOTS)
    index = len(snapshots) - 1 if index < 0 or index >= len(snapshots) else index
    snap = snapshots[index]
    checkpoint = cache.get(snap)
    fit = fit_builtin(checkpoint.tokenizer, prompt)
    view = attention_view(checkpoint.model, checkpoint.tokenizer, fit.text)
    view.head_pattern(layer, head)  # the range check, before the other snapshots load
    labels = label_heads(view.patterns, view.tokens, view.ids)
    sample = snapshot_sample(checkpoint, snap.step)
    if sample is None:  # none stored: a short seeded sample, the same for every visitor
        settings = GenerationSettings(max_new_tokens=SAMPLE_TOKENS, temperature=0.8, seed=SAMPLE_SEED)
        sample = "".join(generate(checkpoint.model, checkpoint.tokenizer, sample_start(checkpoint.tokenizer),
                                  settings))
    return AcrossView(
        snapshots=list(snapshots),
        index=index,
        view=view,
        layer=layer,
        head=head,
        head_labels=labels,
        sentence=describe(labels[layer][head], unit_for(checkpoint.tokenizer.kind)),
        sample=sample,
        frames=head_across_training(snapshots, cache, fit.text, layer, head),
        prompt_note=fit.note(code_span) if fit.changed else "",
    )
