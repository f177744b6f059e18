"""Live training: bounded in time, stoppable, learns, one run per visitor, a server-wide cap."""

from __future__ import annotations

import itertools
import threading

import pytest
import torch
import torch.nn.functional as F

from gptlab.classroom.live import MAX_CHARS, MAX_SECONDS, LiveConfig, check_text, train_live
from gptlab.classroom.live_slots import BusyError, LiveSlots
from gptlab.errors import InputError

FAST = LiveConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, report_every_s=0.3,
                  eval_batches=2, sample_tokens=40, max_seconds=1.5, warmup_steps=2)  # few steps on a busy machine


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
    assert not last.model.training  # the finished model is handed on in eval mode (no dropout in its views)


def test_a_pasted_paragraph_without_a_newline_trains():
    """The samples start from a character of the pasted text, not a newline it lacks (issue 17, kind 1)."""
    paragraph = ("To be, or not to be, that is the question: " * 60).strip()
    config = FAST.__class__(**{**FAST.__dict__, "max_seconds": 0.5})
    reports = list(train_live(paragraph, config))
    assert reports[0].step == 0 and reports[-1].done
    assert all(r.sample and set(r.sample) <= set(paragraph) for r in reports)
    assert reports[-1].probe and set(reports[-1].probe) <= set(paragraph)


def test_the_learning_rates_fall_with_the_clock_to_the_end_of_the_budget(tiny_text):
    """The schedule follows the time budget, not a step count: warm-up, then a straight fall to the
    final ratio as the clock reaches max_seconds (so a 30 s and a 60 s run both end on a low rate)."""
    from gptlab.classroom.live import lr_scale

    config = FAST.__class__(**{**FAST.__dict__, "max_seconds": 1.0, "report_every_s": 0.2, "warmup_steps": 4,
                               "final_lr_ratio": 0.1})
    assert lr_scale(0, 0.0, 1.0, config) == pytest.approx(0.25)  # first warm-up step: 1 of 4
    assert lr_scale(50, 0.5, 1.0, config) == pytest.approx(0.55)  # half the budget: half-way down
    assert lr_scale(50, 1.0, 1.0, config) == pytest.approx(0.1)
    assert lr_scale(50, 0.5, 2.0, config) == pytest.approx(0.775)  # the same moment of a longer budget: higher
    ticks = itertools.count(0, 0.02)  # a fake clock: every reading 20 ms later, whatever the machine's speed
    history = list(train_live(tiny_text, config, clock=lambda: next(ticks)))[-1].history
    scales = [row["lr_scale"] for row in history if row["step"] > config.warmup_steps]
    assert len(scales) >= 4 and scales == sorted(scales, reverse=True)
    for row in history[1:]:  # each report's rate is the schedule at (about) its own time
        assert row["lr_scale"] == pytest.approx(lr_scale(row["step"], row["time_s"], 1.0, config), abs=0.1)
    assert history[-1]["lr_scale"] < 0.15  # the last step ran near the end of the budget, near the final ratio


def by_hand(model, val: torch.Tensor) -> float:
    """Mean cross-entropy over every token of ``val`` that has a successor, in consecutive context windows."""
    block, n = model.config.block_size, len(val) - 1
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(val[s:min(s + block, n)][None])[0][0], val[s + 1:min(s + block, n) + 1],
                                    reduction="sum") for s in range(0, n, block))
    return float(total) / n


def test_the_val_loss_is_the_whole_val_split(tiny_text):
    """What the tab and the bench call val loss: the mean over every character of the val split (the last
    10% of the text), in consecutive windows of the context, with no sampled batches."""
    report = next(train_live(tiny_text, FAST))  # the untrained model; the run pauses here
    ids = torch.tensor(report.tokenizer.encode(tiny_text))
    val = ids[int(len(ids) * 0.9):]
    assert report.history[0]["val_loss"] == pytest.approx(by_hand(report.model, val), abs=1e-5)
    # a text of thousands of distinct characters is scored on the split's first windows, up to eval_logits
    vocab, block = report.tokenizer.vocab_size, report.model.config.block_size
    capped = next(train_live(tiny_text, FAST.__class__(**{**FAST.__dict__, "eval_logits": 3 * block * vocab})))
    assert capped.history[0]["val_loss"] == pytest.approx(by_hand(capped.model, val[:3 * block + 1]), abs=1e-5)


def test_reports_slower_than_their_interval_still_leave_steps_between_them(tiny_text):
    """On a busy server a report (evaluation and sample) can take longer than report_every_s; the run must
    still train between reports instead of reporting on an untrained model until the time is up."""
    ticks = itertools.count(0, 0.05)  # a fake clock: every reading 50 ms later, longer than the interval
    config = FAST.__class__(**{**FAST.__dict__, "max_seconds": 1.0, "report_every_s": 0.01})
    steps = [report.step for report in train_live(tiny_text, config, clock=lambda: next(ticks))]
    assert steps[0] == 0 and len(steps) >= 3  # the final report may follow the last one at once
    assert all(later > earlier for earlier, later in zip(steps[:-2], steps[1:-1], strict=True))


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


def test_threads_started_while_the_live_trainer_runs_keep_the_process_count():
    """The live trainer sets its own thread's count; a thread the server starts meanwhile (another tab's
    request) must begin with the process's count, not the trainer's (torch.set_num_threads set both)."""
    import threading

    from gptlab.classroom.live import _threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        with _threads(1):
            assert torch.get_num_threads() == 1
            thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
            thread.start()
            thread.join()
        assert seen == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
