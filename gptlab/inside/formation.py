"""When does an induction head form? The induction probe run on every snapshot a training left.

``induction_across`` scores each snapshot with ``induction_probe`` (the same random strings for
all, so the numbers compare) beside the val loss the training recorded there; ``score_rise``
reads off the step range where the best head's score climbs, and says when it does not jump.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

from ..errors import CheckpointError, InputError
from ..snapshots import Snapshot, SnapshotCache
from .across import NO_SNAPSHOTS
from .heads import unit_for
from .induction import induction_probe

LOW, HIGH = 0.2, 0.8  # the rise is timed from 20% to 80% of the way from the first score to the highest
SHARP = 1 / 3  # a rise over at most this share of the training's steps is a jump
LEAST_RISE = 0.2  # a best score that climbs less than this (0..1) above its start formed no induction head
PROBE_TRIALS = 16
PROBE_SEED = 0


@dataclass(frozen=True)
class ScoreRise:
    """Where a score climbs: ``start`` is the last snapshot step below LOW of the way up, ``end`` the first at
    or above HIGH; ``sharp`` when end - start is at most SHARP of all the steps; ``formed`` when the score
    rose at least LEAST_RISE."""

    start: int
    end: int
    low: float  # score at start
    high: float  # score at end
    sharp: bool
    formed: bool


def score_rise(steps: Sequence[int], scores: Sequence[float]) -> ScoreRise:
    """The step range where ``scores`` (one per step, steps increasing) climb from 20% to 80% of their rise.

    InputError for fewer than two snapshots, lengths that differ, steps that do not increase, or a
    score that is not a finite number (NaN, infinity).
    """
    if len(steps) != len(scores) or len(steps) < 2:
        raise InputError(f"A rise needs two or more snapshots with one score each; got {len(steps)} steps and "
                         f"{len(scores)} scores.")
    if any(b <= a for a, b in zip(steps[:-1], steps[1:], strict=True)):
        raise InputError("Snapshot steps must increase.")
    if not all(isinstance(v, Real) and math.isfinite(v) for v in scores):
        bad = next(v for v in scores if not (isinstance(v, Real) and math.isfinite(v)))
        raise InputError(f"Induction scores must be finite numbers (0..1), got {bad!r}: the model's weights may "
                         "hold NaN or infinity.")
    first, top = scores[0], max(scores)
    rise = top - first
    j = next(k for k, s in enumerate(scores) if s >= first + HIGH * rise)  # first snapshot 80% of the way up
    i = max((k for k in range(j) if scores[k] < first + LOW * rise), default=0)  # the last one before, below 20%
    span = steps[-1] - steps[0]
    return ScoreRise(start=steps[i], end=steps[j], low=scores[i], high=scores[j],
                     sharp=steps[j] - steps[i] <= SHARP * span, formed=rise >= LEAST_RISE)


@dataclass(frozen=True)
class InductionAcross:
    """The induction probe at every snapshot, in step order (lists of one value per snapshot).

    ``scores`` is the best head's induction score (0..1) and ``heads`` its (layer, head); the bits are
    per ``unit`` on the first and the second copy of ``length``-token random strings; ``val_loss`` is what
    the training recorded at the snapshot (nats per token; None where it recorded none).
    """

    steps: list[int]
    scores: list[float]
    heads: list[tuple[int, int]]
    first_copy_bits: list[float]
    second_copy_bits: list[float]
    val_loss: list[float | None]
    chance: float
    length: int
    rise: ScoreRise
    unit: str = "token"  # what the bits are per: 'character' for a char model, 'token' for BPE (unit_for)

    @property
    def caption(self) -> str:
        """Markdown, every number read from the snapshots: when the score jumps (or that it does not)."""
        r, last = self.rise, len(self.steps) - 1
        layer, head = self.heads[last]
        end = (f"At step {self.steps[last]:,} the best head (layer {layer}, head {head}) scores "
               f"{self.scores[last]:.2f} (chance {self.chance:.3f}), and the second copy costs "
               f"{self.second_copy_bits[last]:.2f} bits per {self.unit} against {self.first_copy_bits[last]:.2f} "
               f"on the first.")
        if not r.formed:
            return (f"**No induction head forms**: across {len(self.steps)} snapshots the best score climbs "
                    f"only from {self.scores[0]:.2f} to {max(self.scores):.2f}. {end}")
        how = "jumps" if r.sharp else "rises gradually, with no sharp jump,"
        return (f"**The induction score {how} between step {r.start:,} and step {r.end:,}**: from {r.low:.2f} "
                f"to {r.high:.2f} ({LOW:.0%} to {HIGH:.0%} of its rise from {self.scores[0]:.2f} to "
                f"{max(self.scores):.2f}). {end}")


def induction_across(snapshots: Sequence[Snapshot], cache: SnapshotCache, length: int | None = None,
                     trials: int = PROBE_TRIALS, seed: int = PROBE_SEED) -> InductionAcross:
    """``induction_probe`` (``length`` tokens per copy, default half the context) at every snapshot.

    Raises CheckpointError with fewer than two snapshots (a rise needs two) or one that is gone, and
    InputError (the probe's) for a model without attention or a length that does not fit.
    """
    if len(snapshots) < 2:
        raise CheckpointError(NO_SNAPSHOTS if not snapshots else "Only one training snapshot: the induction "
                              "score across training needs two or more.")
    probes = [induction_probe(cache.get(s).model, length, trials, seed) for s in snapshots]
    steps, scores = [s.step for s in snapshots], [p.best[2] for p in probes]
    return InductionAcross(
        steps=steps, scores=scores, heads=[p.best[:2] for p in probes],
        first_copy_bits=[p.first_copy_bits for p in probes], second_copy_bits=[p.second_copy_bits for p in probes],
        val_loss=[s.val_loss for s in snapshots], chance=probes[0].chance, length=probes[0].length,
        rise=score_rise(steps, scores), unit=unit_for(cache.get(snapshots[-1]).tokenizer.kind),
    )
