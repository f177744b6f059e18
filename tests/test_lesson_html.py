"""Lessons as self-contained HTML: nothing in the file points outside it, a real Chromium opens it from
file:// with every network request blocked and draws the heatmap with working hover text, and the
command line writes every lesson as a file that stands on its own. Drawn with the shipped gpt."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest
from offline_html import assert_standalone, references
from test_app_browser import ARGS, BROWSER_MARKS, CHROMIUM

from gptlab import load_checkpoint
from gptlab.classroom.catalog import CHECKPOINTS_ENV
from gptlab.classroom.lessons import LESSONS, draw_lesson, lesson_view, lessons_html
from gptlab.classroom.lessons.__main__ import ALL_LESSONS_FILE
from gptlab.classroom.lessons.__main__ import main as cli_main
from gptlab.errors import InputError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints"


@pytest.fixture(scope="module")
def gpt():
    return load_checkpoint(SHIPPED / "gpt")


@pytest.fixture(scope="module")
def teacher_page(gpt):
    return draw_lesson(gpt, lesson_view("previous-char", "gpt", teacher=True))


@pytest.fixture(scope="module")
def lesson_file(tmp_path_factory, teacher_page) -> Path:
    path = tmp_path_factory.mktemp("usb-stick") / "previous-char.html"
    path.write_text(lessons_html([teacher_page]), encoding="utf-8")
    return path


def test_the_file_points_nowhere_outside_itself_and_keeps_caption_and_teacher_style(teacher_page, lesson_file):
    text = lesson_file.read_text(encoding="utf-8")
    assert_standalone(text)
    assert references("<style>@import url('https://x.test/a.css')</style>").urls == ["https://x.test/a.css"]
    assert teacher_page.view.layer >= 0 and teacher_page.view.head >= 0  # the best head was found
    assert teacher_page.caption.startswith(f"Layer {teacher_page.view.layer}, head {teacher_page.view.head} ")
    assert "<title>1. The previous-character head</title>" in text
    assert "Look for:</strong> a bright line just below the diagonal" in text
    assert '<body class="teacher">' in text
    assert teacher_page.heatmap.data[0].colorscale == go.Heatmap(colorscale="Cividis").colorscale
    assert teacher_page.heatmap.layout.font.size == 20


def test_a_lesson_needs_a_known_lesson_and_a_head_the_model_has(gpt, teacher_page):
    with pytest.raises(InputError, match="No lesson 'nope'"):
        lesson_view("nope")
    view = lesson_view("own-words", "gpt")
    with pytest.raises(InputError, match="head=99 is outside -1..5"):
        draw_lesson(gpt, view.__class__(**{**view.__dict__, "head": 99}))
    with pytest.raises(InputError, match="at least one page"):
        lessons_html([])


@pytest.mark.parametrize("field, value", [("seed", 1.5), ("extend", 2.5), ("layer", 0.5), ("head", 0.5),
                                          ("layer", True), ("seed", None)])
def test_a_lesson_view_with_a_fraction_is_refused_clearly(gpt, field, value):
    """From a notebook, a LessonView holding 1.5 failed deep inside (TypeError from a list index, RuntimeError
    from manual_seed): it is refused first, naming the field."""
    view = lesson_view("previous-char", "gpt")
    with pytest.raises(InputError, match=f"The lesson's {field} must be a whole number"):
        draw_lesson(gpt, view.__class__(**{**view.__dict__, "extend": 3, field: value}))


def browser_test(fn):
    """The browser tests' marks: skipped without Chromium, unless GPTLAB_REQUIRE_BROWSER=1 makes that a failure."""
    for mark in BROWSER_MARKS:
        fn = mark(fn)
    return fn


@browser_test
def test_chromium_opens_it_from_file_with_the_network_blocked(lesson_file, teacher_page):
    from playwright.sync_api import sync_playwright

    blocked, seen = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(45_000)

            def only_the_file(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.on("request", lambda request: seen.append(request.url))
            page.goto(lesson_file.as_uri())
            page.wait_for_selector("#lesson-1-heatmap.js-plotly-plot .hm")  # Plotly drew the heatmap trace...
            drawn = page.get_attribute("#lesson-1-heatmap .hm image", "href") or ""
            assert drawn.startswith("data:image/png;base64,") and len(drawn) > 1000  # ...as an image of its cells
            assert page.locator("#lesson-1-grid .hm").count() == len(teacher_page.grid.data)  # one per head
            box = page.locator("#lesson-1-heatmap .nsewdrag").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.75)  # lower triangle
            page.wait_for_selector("#lesson-1-heatmap .hoverlayer .hovertext")
            hover = " ".join(page.locator("#lesson-1-heatmap .hoverlayer").all_text_contents())
            assert re.search(r"query \d+:.+key \d+:.+weight \d\.\d{3}", hover), hover
            caption = page.inner_text(".caption")
            assert caption.startswith(f"Layer {teacher_page.view.layer}, head {teacher_page.view.head} ")
            assert page.evaluate("getComputedStyle(document.body).fontSize") == "22px"
        finally:
            browser.close()
    assert blocked == []
    assert [url for url in seen if not url.startswith("file://")] == []


@pytest.mark.slow
def test_the_command_line_writes_every_lesson_as_a_file_of_its_own(tmp_path):
    out = tmp_path / "lessons"
    run = subprocess.run([sys.executable, "-m", "gptlab.classroom.lessons", "export", str(out), "--teacher",
                          "--model", "gpt", "--checkpoints", str(SHIPPED)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = [f"{lesson}.html" for lesson in LESSONS] + [ALL_LESSONS_FILE]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for lesson in LESSONS.values():
        text = (out / f"{lesson.id}.html").read_text(encoding="utf-8")
        assert_standalone(text)
        assert f"<title>{html.escape(lesson.title)}</title>" in text and text.count('class="plotly-graph-div"') == 2
    everything = (out / ALL_LESSONS_FILE).read_text(encoding="utf-8")
    assert_standalone(everything)
    assert all(f"<h2>{html.escape(lesson.title)}</h2>" in everything for lesson in LESSONS.values())
    assert everything.count('class="plotly-graph-div"') == 2 * len(LESSONS)


def test_the_command_line_names_the_models_it_has_when_one_is_missing(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "out"), "--model", "nope", "--checkpoints", str(SHIPPED)]) == 1
    err = capsys.readouterr().err
    assert "no model 'nope'" in err and "gpt-bpe" in err  # it lists the models it found
    assert not (tmp_path / "out").exists()


def test_a_lesson_title_keeps_its_own_question_mark(gpt, teacher_page):
    asking = draw_lesson(gpt, lesson_view("line-start", "gpt"))
    assert asking.summary.startswith("**2. Where does the line start?** Look for bright columns")
    assert teacher_page.summary.startswith("**1. The previous-character head.** Look for a bright line")


def test_the_command_line_finds_the_shipped_models_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outside the repository, no checkpoints/ here
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    assert cli_main(["export", "out", "--lesson", "previous-char"]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "previous-char.html").is_file()
    assert cli_main(["export", "out", "--model", "nope"]) == 1
    assert f"no model 'nope' in {SHIPPED.resolve()} (found: " in capsys.readouterr().err  # the folder searched
    assert cli_main(["export", "out", "--model", "gpt", "--checkpoints", "elsewhere"]) == 1
    assert f"in {tmp_path.resolve() / 'elsewhere'} (found: none: that folder does not exist)" in capsys.readouterr().err


def test_the_library_does_not_import_its_command_line():
    code = ("import sys, gptlab, gptlab.classroom, gptlab.classroom.lessons; "
            "print('gptlab.classroom.lessons.__main__' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr
