"""Live training: bounded in time, stoppable, learns, one run per visitor, a server-wide cap."""

from __future__ import annotations

import itertools
import threading

import pytest
import torch

from gptlab.classroom.live import MAX_CHARS, MAX_SECONDS, BusyError, LiveConfig, LiveSlots, check_text, train_live
from gptlab.errors import InputError

FAST = LiveConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, report_every_s=0.3,
                  eval_batches=2, sample_tokens=40, max_seconds=1.5)


def test_it_learns_within_its_time_limit_and_reports_along_the_way(tiny_text):
    threads_before = torch.get_num_threads()
    reports = list(train_live(tiny_text, FAST))
    first, last = reports[0], reports[-1]
    assert first.step == 0 and not first.done
    assert last.done and last.reason == "time limit" and sum(r.done for r in reports) == 1
    assert last.elapsed_s < FAST.max_seconds + 1.0  # stops at the limit (plus one eval and sample)
    assert len(reports) >= 3 and last.step > first.step
    assert last.history[-1]["val_loss"] < first.history[0]["val_loss"] - 0.3  # it learned something
    assert [r["step"] for r in last.history] == sorted(r["step"] for r in last.history)
    assert isinstance(last.sample, str) and len(last.sample) > 10
    assert last.probe and set(last.probe) <= set(tiny_text)
    checkpoint = last.checkpoint()
    assert checkpoint.model is last.model and checkpoint.config.n_layer == 1
    assert torch.get_num_threads() == threads_before  # the 1-thread setting does not leak


def test_a_pasted_paragraph_without_a_newline_trains():
    """The samples start from a character of the pasted text, not a newline it lacks (issue 17, kind 1)."""
    paragraph = ("To be, or not to be, that is the question: " * 60).strip()
    config = FAST.__class__(**{**FAST.__dict__, "max_seconds": 0.5})
    reports = list(train_live(paragraph, config))
    assert reports[0].step == 0 and reports[-1].done
    assert all(r.sample and set(r.sample) <= set(paragraph) for r in reports)
    assert reports[-1].probe and set(reports[-1].probe) <= set(paragraph)


def test_stop_ends_the_run_early(tiny_text):
    stop = threading.Event()
    reports = []
    for report in train_live(tiny_text, FAST.__class__(**{**FAST.__dict__, "max_seconds": 30.0}), stop):
        reports.append(report)
        stop.set()
    assert reports[-1].done and reports[-1].reason == "stopped" and len(reports) == 2


def test_no_caller_can_ask_for_more_than_the_server_limit(tiny_text):
    ticks = itertools.count(0, 7.0)  # a fake clock: every reading is 7 seconds later
    config = FAST.__class__(**{**FAST.__dict__, "max_seconds": 10_000.0, "report_every_s": 1e9})
    reports = list(train_live(tiny_text, config, clock=lambda: next(ticks)))
    assert reports[-1].done and reports[-1].elapsed_s <= MAX_SECONDS + 30


@pytest.mark.parametrize(("text", "message"), [("", "at least 1,000"), ("short text", "got 10"),
                                               ("x" * (MAX_CHARS + 1), "limit is 200,000")])
def test_text_size_is_bounded(text, message):
    with pytest.raises(InputError, match=message):
        check_text(text)
    with pytest.raises(InputError):
        next(train_live(text, FAST))


def test_slots_one_per_visitor_and_a_server_cap():
    slots = LiveSlots(cap=2)
    with slots.claim("ann") as ann_stop:
        with pytest.raises(BusyError, match="already have a training"):
            with slots.claim("ann"):
                pass
        with slots.claim("bob"):
            assert slots.running == 2
            with pytest.raises(BusyError, match="server is busy: 2 trainings"):
                with slots.claim("cat"):
                    pass
        assert slots.stop("ann") and ann_stop.is_set()
        assert not slots.stop("bob")  # bob's run has ended
    assert slots.running == 0
    with slots.claim("cat"):  # free again
        assert slots.running == 1


def test_a_slot_is_released_when_the_run_fails():
    slots = LiveSlots(cap=1)
    with pytest.raises(RuntimeError), slots.claim("ann"):
        raise RuntimeError("boom")
    assert slots.running == 0
