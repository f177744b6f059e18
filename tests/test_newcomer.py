"""A newcomer's first steps: the README's two commands are the ones CI runs (read from one place), and
the test command on a machine without Chrome or Chromium skips the browser tests, saying why, instead
of hanging."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from app_process import REPO

README = REPO / "README.md"
CI = REPO / ".ci" / "run"
# names kaleido (choreographer) looks for on PATH
BROWSER_NAMES = ("chromium", "chromium-browser", "chrome", "google-chrome", "google-chrome-stable", "msedge",
                 "microsoft-edge", "brave", "brave-browser", "vivaldi")
NO_BROWSER_LIMIT_S = 300  # a bound for a hang, not a speed goal: the run takes ~30 s on a loaded 2-core box


def readme_blocks() -> list[str]:
    """The ```bash blocks under "## Two commands", read here independently of .ci/readme_commands.py."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"^```bash\n(.*?)^```$", section, re.S | re.M)]


def test_the_readme_gives_two_one_line_commands_app_then_tests():
    blocks = readme_blocks()
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), blocks
    app, tests = blocks
    assert app.startswith("python3 -m venv .venv && . .venv/bin/activate && ") and app.endswith(" && python app.py")
    assert "pip install -r requirements.txt" in app
    assert tests.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert "pip install -r requirements-dev.txt" in tests and tests.endswith(" && python -m pytest -q")


def test_ci_runs_the_readme_commands_verbatim():
    script = CI.read_text(encoding="utf-8")
    # an older .ci/run has no --print and would run the whole CI here: check before running it
    assert ".ci/readme_commands.py app" in script and ".ci/readme_commands.py test" in script, \
        ".ci/run must take both commands from the README"
    assert "--print" in script
    shown = subprocess.run(["bash", str(CI), "--print"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == readme_blocks()
    # and what it prints is what it runs: the test command as is, the app command until its page answers
    assert 'bash -c "$test_command"' in script and '.ci/serves_page.py "$app_command"' in script
    assert "pytest" not in script.replace(".ci/", "")  # no second copy of the test command


@pytest.mark.parametrize("broken, complaint", [
    ("# gptlab\n\nNo commands here.\n", "no '## Two commands' section"),
    ("## Two commands\n\n```bash\npython app.py\n```\n\n## Next\n\n```bash\npytest\n```\n", "found 1 line(s)"),
    ("## Two commands\n\n```bash\nA &&\nB\n```\n\n```bash\nC\n```\n", "found 2 line(s), 1 line(s)"),
])
def test_readme_commands_says_what_is_wrong_with_a_changed_readme(tmp_path, broken, complaint):
    readme = tmp_path / "README.md"
    readme.write_text(broken, encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / ".ci" / "readme_commands.py"), "test", "--readme", str(readme)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert complaint in done.stderr and "cannot take the test command" in done.stderr


@pytest.mark.slow
def test_serves_page_passes_once_the_app_answers_and_stops_it(tmp_path, tiny_checkpoints):
    shelf = tmp_path / "shelf"
    shutil.copytree(tiny_checkpoints["gpt"], shelf / "gpt")
    env = {**os.environ, "GPTLAB_CHECKPOINTS": str(shelf)}
    command = f"cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} app.py"
    done = subprocess.run([sys.executable, str(REPO / ".ci" / "serves_page.py"), command], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    port = re.search(r"served http://127\.0\.0\.1:(\d+)/", done.stdout).group(1)
    assert f":{port}" not in listening_ports(), "the app was left running"
    failed = subprocess.run([sys.executable, str(REPO / ".ci" / "serves_page.py"), "echo no app here; exit 3"],
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "exited with status 3" in failed.stderr and "no app here" in failed.stderr


def listening_ports() -> list[str]:
    """The ports of listening TCP sockets, as ':PORT' (Linux /proc)."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                rows.append(f":{int(local.rsplit(':', 1)[1], 16)}")
    return rows


def without_browser_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with no browser: none on PATH, BROWSER_PATH at a missing file,
    and GPTLAB_REQUIRE_BROWSER unset (as on a newcomer's laptop)."""
    env = {k: v for k, v in os.environ.items() if k != "GPTLAB_REQUIRE_BROWSER"}
    keep = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not any(shutil.which(name, path=d) for name in BROWSER_NAMES)]
    env["PATH"] = os.pathsep.join(keep)
    env["BROWSER_PATH"] = str(tmp_path / "no-browser-here")  # kaleido also tries /usr/bin/chromium by itself
    return env


@pytest.mark.slow
def test_the_test_command_without_a_browser_skips_browser_tests_with_a_reason(tmp_path):
    env = without_browser_env(tmp_path)
    assert not any(shutil.which(name, path=env["PATH"]) for name in BROWSER_NAMES)
    pytest_part = readme_blocks()[1].rsplit("&&", 1)[1].split()  # python -m pytest -q
    assert pytest_part[:3] == ["python", "-m", "pytest"]
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_app_browser*.py"))
    files += ["tests/test_export.py", "tests/test_app_teaching.py::test_export_gives_png_svg_csv_json_of_the_view"]
    report = tmp_path / "report.xml"
    command = [sys.executable, *pytest_part[1:], "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'run'}",
               f"--junitxml={report}", *files]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=NO_BROWSER_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and any renderer it started
        output, _ = proc.communicate()
        pytest.fail(f"the test command hung for {NO_BROWSER_LIMIT_S} s without a browser:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    cases = {f"{c.get('classname')}.{c.get('name')}": c for c in ET.parse(report).getroot().iter("testcase")}
    browser_cases = {name: c for name, c in cases.items() if name.startswith("tests.test_app_browser")}
    kaleido_tests = ("test_export.test_images_render_with_kaleido",
                     "test_app_teaching.test_export_gives_png_svg_csv_json_of_the_view")
    kaleido_cases = {name: c for name, c in cases.items() if name.endswith(kaleido_tests)}
    assert len(browser_cases) >= 10 and len(kaleido_cases) == 2
    for name, case in {**browser_cases, **kaleido_cases}.items():
        skipped = case.find("skipped")
        assert skipped is not None, f"{name} ran without a browser"
        reason = skipped.get("message", "")
        assert "Chrome or Chromium" in reason and "no-browser-here" in reason, f"{name}: {reason!r}"
        assert "GPTLAB_REQUIRE_BROWSER=1" in reason  # says how CI turns the skip into a failure
    # the tests that need no browser still ran, among them the export's no-browser answer
    ran = [name for name, c in cases.items() if c.find("skipped") is None]
    assert any("without_a_browser" in name for name in ran)
