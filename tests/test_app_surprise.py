"""Where context pays through a real server on 127.0.0.1 (gradio_client) on the shipped checkpoints: the colours
are the library's bits (A, or A minus B, for rungs and snapshots alike), the hover carries bits, rank and top-5,
bad requests are refused clearly; the lesson "Where does context pay?" computes its caption from the data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab import load_checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import LESSONS, LessonView
from gptlab.data import TokenSplits, load_text
from gptlab.inside import surprise
from gptlab.passages import VAL_PASSAGE
from gptlab.prompts import SURPRISE_PROMPT
from gptlab.snapshots import find_snapshots
from gptlab_app import build_app, launch_options
from gptlab_app.common import MAX_PROMPT_CHARS

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints"
TEXT = "GREMIO:\nGood morrow, neighbour Baptista.\n"


def ordinal(n: int) -> str:
    """How the hover names the n-th guess, counted from 1: '1st guess', '2nd guess', '11th guess'."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')} guess"


@pytest.fixture(scope="module")
def catalog():
    return Catalog.from_sources(SHIPPED).load_all()


@pytest.fixture(scope="module")
def client(catalog):
    demo = build_app(catalog, str(SHIPPED))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(SHIPPED))
    yield Client(url, verbose=False, analytics_enabled=False, download_files=False)
    demo.close()


def cells(plot: dict) -> tuple[list[float], list[str]]:
    """The coloured cells of the text figure in reading order: values and hover texts (the first token has none)."""
    [heat] = json.loads(plot["plot"])["data"]
    values = [v for row in heat["z"] for v in row if v is not None]
    hover = [h for row, zs in zip(heat["customdata"], heat["z"], strict=True) for h, v in zip(row, zs, strict=True)
             if v is not None]
    return values, hover


def test_a_minus_b_colours_are_the_librarys_bits_and_the_hover_says_bits_rank_top5(client, catalog):
    summary, plot = client.predict(TEXT, "gpt", "bigram", "A minus B", False, api_name="/surprise")
    gpt, bigram = catalog.get("gpt"), catalog.get("bigram")
    a, b = surprise(gpt.model, gpt.tokenizer, TEXT), surprise(bigram.model, bigram.tokenizer, TEXT)
    values, hover = cells(plot)
    assert values == pytest.approx((a.bits - b.bits).tolist(), abs=1e-5) and len(values) == len(TEXT) - 1
    for t in (0, 9, len(TEXT) - 2):
        guesses = ", ".join(f"{label} {float(p):.0%}" for label, p in zip(a.top_labels[t], a.top_probs[t],
                                                                          strict=True))
        assert f"gpt {float(a.bits[t]):.2f} bits, bigram {float(b.bits[t]):.2f} bits" in hover[t], hover[t]
        assert f"{ordinal(int(a.ranks[t]) + 1)} of gpt" in hover[t] and f"top guesses: {guesses}" in hover[t]
    first = int((a.ranks == 0).nonzero()[0])  # the rank is counted from 1: the likeliest guess is the '1st'
    assert "1st guess of gpt<br>" in hover[first] and "rank" not in hover[first], hover[first]
    assert f"{a.mean_bits:.2f} bits per character on average over {len(TEXT) - 1} predicted" in summary
    assert f"{(a.bits - b.bits).double().mean():+.2f} bits per character on average" in summary
    assert "on letters inside a word" in summary and "on the first letter of a word" in summary


def test_bits_of_a_and_snapshot_against_snapshot(client, catalog):
    _, plot = client.predict(TEXT, "single_head", "bigram", "bits of A", False, api_name="/surprise")
    one = catalog.get("single_head")
    values, hover = cells(plot)
    assert values == pytest.approx(surprise(one.model, one.tokenizer, TEXT).bits.tolist(), abs=1e-5)
    assert re.search(r"\d+\.\d\d bits · \d+(st|nd|rd|th) guess<br>top guesses: ", hover[3]), hover[3]
    early, late = (snap for snap in find_snapshots(SHIPPED / "gpt") if snap.step in (150, 5000))
    summary, plot = client.predict(TEXT, "gpt@150", "gpt@5000", "A minus B", False, api_name="/surprise")
    first, last = load_checkpoint(early.folder), load_checkpoint(late.folder)
    expected = surprise(first.model, first.tokenizer, TEXT).bits - surprise(last.model, last.tokenizer, TEXT).bits
    assert cells(plot)[0] == pytest.approx(expected.tolist(), abs=1e-5)
    assert "`gpt at step 150` − `gpt at step 5,000`" in summary and float(expected.mean()) > 0  # training paid


@pytest.mark.parametrize(("args", "message"), [
    (("", "gpt", "bigram", "A minus B"), "The text is empty"),
    (("x" * (MAX_PROMPT_CHARS + 1), "gpt", "bigram", "A minus B"), "The text has 2,001 characters; the limit is 2,000"),
    (("a", "gpt", "bigram", "bits of A"), "at least two"),
    (("héllo", "gpt", "bigram", "bits of A"), "never seen these characters: 'é'"),
    ((TEXT, "gpt", "gpt-bpe", "A minus B"), "gpt and gpt-bpe use different tokenizers"),
    ((TEXT, "live", "bigram", "bits of A"), "You have not trained a model yet"),
    ((TEXT, "gpt@7", "bigram", "bits of A"), "not in the list of choices"),
    ((TEXT, "gpt", "bigram", "A plus B"), "not in the list of choices"),
])
def test_bad_requests_are_refused_clearly(client, args, message):
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(*args, False, api_name="/surprise")


def test_a_mismatched_tokenizer_does_not_matter_when_b_is_not_used(client):
    summary, _ = client.predict(TEXT, "gpt-bpe", "bigram", "bits of A", False, api_name="/surprise")
    assert "bits per token" in summary and "−" not in summary.split("\n\n")[0]


def test_the_passage_is_the_val_splits_first_2000_characters_from_its_first_whole_line():
    text = load_text()
    val = text[len(TokenSplits.from_ids(list(range(len(text)))).train):][:2000]
    start = val.index("\n") + 1  # the split begins mid-line: the passage starts at the next line's start
    while val[start] == "\n":
        start += 1
    assert VAL_PASSAGE == val[start:] and VAL_PASSAGE.startswith("GREMIO:\n")
    assert SURPRISE_PROMPT.startswith("GREMIO:\n") and SURPRISE_PROMPT in VAL_PASSAGE
    assert LESSONS["context-pays"].prompt == VAL_PASSAGE and LESSONS["context-pays"].baseline == "bigram"


def test_a_lesson_link_leaves_out_the_lessons_own_prompt():
    own = LessonView("context-pays", "gpt", VAL_PASSAGE, 0, 0, -1, -1).query()
    assert "prompt=" not in own and len(own) < 120
    assert "prompt=to+be" in LessonView("context-pays", "gpt", "to be", 0, 0, -1, -1).query()


@pytest.mark.slow  # scores the lesson's 2,000 characters with the shipped gpt and bigram
def test_the_lesson_caption_is_computed_from_the_shipped_checkpoints(client, catalog):
    """The caption's numbers are the savings recomputed here, from the two models' bits on the lesson's text."""
    lesson = LESSONS["context-pays"]
    caption, heatmap, grid, *_ = client.predict(lesson.id, "gpt", lesson.prompt, 0, 0, -1, -1, False,
                                                api_name="/lesson")
    gpt, bigram = catalog.get("gpt"), catalog.get("bigram")
    a, b = surprise(gpt.model, gpt.tokenizer, VAL_PASSAGE), surprise(bigram.model, bigram.tokenizer, VAL_PASSAGE)
    saved = b.bits - a.bits
    letter = [c.isalpha() for c in VAL_PASSAGE]
    inside = torch.tensor([t for t in range(len(saved)) if letter[t] and letter[t + 1]])
    start = torch.tensor([t for t in range(len(saved)) if not letter[t] and letter[t + 1]])
    found = re.search(r"saves (-?\d+\.\d+) bits per letter .* but only (-?\d+\.\d+) bits on the first", caption)
    numbers = [float(x) for x in found.groups()]
    assert numbers == [round(float(saved[inside].double().mean()), 2), round(float(saved[start].double().mean()), 2)]
    assert f"({len(inside):,} letters inside a word)" in caption and f"({len(start):,} letters at the start" in caption
    assert numbers[0] > numbers[1] + 1  # context pays far more inside a word than on its first letter
    assert caption.startswith(f"**{lesson.title}** Look for {lesson.look_for}")
    assert cells(heatmap)[0] == pytest.approx((a.bits - b.bits).tolist(), abs=1e-5)
    assert cells(grid)[0] == pytest.approx(a.bits.tolist(), abs=1e-5)


def test_the_summary_reads_right_for_one_predicted_character(client):
    summary, _ = client.predict("ab", "gpt", "bigram", "A minus B", False, api_name="/surprise")
    assert "over 1 predicted character;" in summary and "saw 1 earlier character " in summary
    assert "of the 1 character (blue)" in summary and "characters" not in summary.split("\n\n")[1]


def test_choosing_an_a_whose_tokenizer_b_lacks_falls_back_to_bits_of_a_with_one_warning(catalog):
    """What the tab runs when A changes, before its one draw: gpt-bpe minus the char bigram cannot line up their
    tokens, so the mode goes to 'bits of A' (one warning) instead of an error on every draw."""
    from gptlab_app.rungs import Rungs
    from gptlab_app.tabs.surprise import BITS, MINUS, fit_mode

    rungs = Rungs(catalog)
    with pytest.warns(UserWarning, match="gpt-bpe and bigram use different tokenizers"):
        assert fit_mode(rungs, "gpt-bpe", "bigram", MINUS) == BITS
    assert fit_mode(rungs, "gpt", "bigram", MINUS) == MINUS  # one tokenizer: A minus B stays
    assert fit_mode(rungs, "gpt-bpe", "bigram", BITS) == BITS
    assert fit_mode(rungs, "no-such", "bigram", MINUS) == MINUS  # the draw names that fault itself


def test_a_click_opens_the_explorer_on_model_a_or_says_which_model_it_shows_instead(catalog):
    """What the explorer runs when Where context pays opens it (follow_open.open_at): A itself when the explorer
    lists it; for a snapshot its finished model, for the bigram or the live model the opening model, each with
    a warning saying so; anything else refused."""
    from gradio.exceptions import Error

    from gptlab_app.follow_open import open_at

    def asked(model, position=4):
        return json.dumps({"model": model, "prompt": TEXT, "position": position})

    assert open_at(catalog, asked("gpt-bpe")) == ("gpt-bpe", TEXT, 4)
    with pytest.warns(UserWarning, match="shows gpt as trained, not gpt at step 150"):
        assert open_at(catalog, asked("gpt@150"))[0] == "gpt"
    with pytest.warns(UserWarning, match="bigram has no attention heads to follow"):
        assert open_at(catalog, asked("bigram"))[0] == "gpt"
    with pytest.warns(UserWarning, match="cannot show your live model"):
        assert open_at(catalog, asked("live"))[0] == "gpt"
    for bad in ("not json", json.dumps([1]), json.dumps({"model": "gpt"}), asked("gpt", "x"), None):
        with pytest.raises(Error, match="explorer with JSON|position must be a whole number"):
            open_at(catalog, bad)
