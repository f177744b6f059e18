"""The shipped induction model forms an induction head, and Across training finds when.

On random strings it never saw (the probe's own seeds, not the training's) the shipped `induction` model's best
head scores at least 0.5 and the second copy costs at most half the bits of the first. ``score_rise`` times a
score's climb from 20% to 80% of its rise and says whether it jumps; ``induction_across`` on the shipped
snapshots names the step range the snapshots' own probes give."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptlab import load_checkpoint
from gptlab.errors import CheckpointError, InputError
from gptlab.figures.formation import induction_across_figure
from gptlab.inside.formation import induction_across, score_rise
from gptlab.inside.induction import induction_probe
from gptlab.snapshots import SnapshotCache, find_snapshots

INDUCTION = Path(__file__).resolve().parent.parent / "checkpoints" / "induction"


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_the_shipped_induction_model_copies_random_strings_it_never_saw(seed):
    probe = induction_probe(load_checkpoint(INDUCTION).model, trials=32, seed=seed)
    assert probe.best[2] >= 0.5, probe.scores
    assert probe.second_copy_bits <= 0.5 * probe.first_copy_bits, (probe.first_copy_bits, probe.second_copy_bits)


def test_a_step_in_the_score_is_a_jump_between_the_snapshots_either_side_of_it():
    rise = score_rise([0, 100, 200, 300, 400, 500], [0.02, 0.02, 0.03, 0.6, 0.7, 0.7])
    assert (rise.start, rise.end, rise.sharp, rise.formed) == (200, 300, True, True)
    assert (rise.low, rise.high) == (0.03, 0.6)


def test_a_steady_climb_is_not_a_jump_and_a_flat_score_forms_nothing():
    steady = score_rise(list(range(0, 1001, 100)), [i / 10 for i in range(11)])
    assert steady.formed and not steady.sharp and (steady.start, steady.end) == (100, 800)
    flat = score_rise([0, 100, 200], [0.02, 0.05, 0.03])
    assert not flat.formed


def test_a_rise_needs_two_snapshots_in_step_order():
    with pytest.raises(InputError, match="two or more"):
        score_rise([0], [0.1])
    with pytest.raises(InputError, match="two or more"):
        score_rise([0, 1], [0.1])
    with pytest.raises(InputError, match="must increase"):
        score_rise([100, 100], [0.1, 0.2])
    with pytest.raises(CheckpointError, match="No training snapshots"):
        induction_across([], SnapshotCache())


def test_the_caption_names_the_step_range_the_snapshots_own_probes_give():
    snapshots = find_snapshots(INDUCTION)
    found = induction_across(snapshots, SnapshotCache(size=64))
    scores = [induction_probe(load_checkpoint(s.folder).model, trials=16, seed=0).best[2] for s in snapshots]
    assert found.scores == pytest.approx(scores) and found.steps == [s.step for s in snapshots]
    first, top = scores[0], max(scores)
    end = next(i for i, s in enumerate(scores) if s >= first + 0.8 * (top - first))
    start = max(i for i in range(end) if scores[i] < first + 0.2 * (top - first))
    assert found.rise.formed
    assert f"between step {snapshots[start].step:,} and step {snapshots[end].step:,}" in found.caption
    assert f"from {scores[start]:.2f} to {scores[end]:.2f}" in found.caption
    assert found.val_loss == [s.val_loss for s in snapshots] and None not in found.val_loss
    fig = induction_across_figure(found.steps, found.scores, found.val_loss, found.chance,
                                  (found.rise.start, found.rise.end), found.second_copy_bits, "induction")
    assert list(fig.data[0].y) == found.scores and list(fig.data[2].y) == found.val_loss
    assert fig.layout.shapes[0].x0 == snapshots[start].step and fig.layout.shapes[0].x1 == snapshots[end].step
