"""The app run the way each of its users runs it, every public endpoint called through gradio_client.

- A hosted Space: the repository's files in a folder the Space user owns, a fresh venv made from
  ``requirements.txt`` only (torch installed first, as CI does), an unprivileged user (uid 1000), a
  fresh HOME, ``SYSTEM=spaces``, ``SPACE_ID``, ``GRADIO_SERVER_NAME=0.0.0.0``, then ``python app.py``.
  It builds a 1.3 GB venv (a minute or two with torch on local disk), so it runs only where
  GPTLAB_SPACE_TEST=1 (set by .ci/run) and skips elsewhere with that reason.
- A classroom with no network: the app and its caller inside a network namespace that has only
  loopback (``unshare -n``), with none of the HF_HUB_OFFLINE-style switches, so the namespace alone
  stops the network; and ``python -m train gpt-mini`` there. Where a namespace is refused it skips,
  unless GPTLAB_REQUIRE_MOUNT=1 (set by .ci/run, as for the other tests that need root), which makes
  that a failure.

Both copy the repository's files (tracked and not ignored) to a fresh folder, so nothing a
developer downloaded or cached in the checkout can help, and both fail if the app writes a file
inside that folder or tries to reach any host beyond loopback (tests/netwatch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_process import REPO, START_LIMIT_S, free_port
from every_endpoint import check_all
from network_namespace import in_network_namespace
from renderer_marks import NEEDS_RENDERER

pytestmark = pytest.mark.slow

SPACE_UID = 1000  # the user a Space runs its app as
SPACE_ID = "you/gptlab"
# Known and harmless on a Space: Gradio starts its dev-mode reloader when SYSTEM=spaces, and that
# needs the `spaces` package, which Spaces preinstall (requirements.txt does not, and need not, list it).
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b")
HARMLESS_LOG_ERRORS = ("RuntimeError: `spaces` package is required to run hot-reloading in Spaces",)
# Switches that would stop the network from inside the process; the offline run must do without them.
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "TRANSFORMERS_OFFLINE")
TRAIN = ["-m", "train", "gpt-mini", "max_iters=50", "eval_iters=2", "batch_size=8", "sample_tokens=20",
         "progress=false"]


def copy_repository(dest: Path) -> list[str]:
    """Copy the files ``git ls-files`` lists (tracked, and new ones not ignored) to ``dest``; their paths."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    copied = []
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not sent either
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
            copied.append(name)
    return copied


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime in ns)} of the files under ``folder``, bytecode caches left out."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def written_since(folder: Path, before: dict[str, tuple[int, int]]) -> set[str]:
    """Files under ``folder`` created or changed since ``before`` was taken."""
    return {path for path, stamp in files_under(folder).items() if before.get(path) != stamp}


def log_errors(log: str) -> list[str]:
    """The last line of each traceback in an app's log, and any permission error, known-harmless ones left out."""
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line and not line.startswith(" ")]
        # the exception's own line: another thread's output can land between a traceback's lines (the CI run
        # of 7eddb6a found "* Running on local URL" there, before the harmless RuntimeError)
        raised = [line for line in lines if EXCEPTION_LINE.match(line)]
        found.append(raised[0] if raised else lines[0] if lines else block.strip()[:200])
    found += [line for line in log.splitlines() if "Permission denied" in line or "PermissionError" in line]
    return sorted({e for e in found if e not in HARMLESS_LOG_ERRORS})


def network_attempts(log_file: Path, ignore_program: str = "") -> list[str]:
    """Lines tests/netwatch wrote: a process of the app trying to reach a host beyond loopback."""
    if not log_file.exists():
        return []
    lines = log_file.read_text(encoding="utf-8").splitlines()
    return sorted({line for line in lines if not (ignore_program and line.split("\t")[0].endswith(ignore_program))})


def findings(app_log: str, written: set[str], attempts: list[str]) -> list[str]:
    """What a run found besides failed endpoints: errors in the log, files written inside the
    repository (a Space's or a read-only install's app folder is not the app's to fill), and any
    attempt to reach the network (offline it would fail or wait; on a Space it is not asked for)."""
    problems = [f"error in the app's log: {e}" for e in log_errors(app_log)]
    if written:
        problems.append(f"the app wrote inside the repository: {sorted(written)}")
    if attempts:
        problems.append(f"the app tried to reach the network (program, event, host, port): {attempts}")
    return problems


# ---- a hosted Space ---------------------------------------------------------------------------------

def as_space_user() -> list[str]:
    """The command prefix that runs a program as the Space's unprivileged user (nothing when not root)."""
    if os.geteuid() != 0:
        return []  # already an unprivileged user
    return ["setpriv", f"--reuid={SPACE_UID}", f"--regid={SPACE_UID}", "--clear-groups"]


def space_python_version() -> str:
    """The README front matter's python_version: the Python the Space runs."""
    front = (REPO / "README.md").read_text(encoding="utf-8").split("---")[1]
    return re.search(r'^python_version:\s*"?([\d.]+)"?', front, re.M).group(1)


def space_interpreter() -> str:
    """A Python of the Space's version that the Space user can run.

    The test's own interpreter may live where only root can read (a pyenv under /root): a venv made
    from it would start, but its subprocesses (kaleido's browser wrapper) could not.
    """
    version = space_python_version()
    candidates = [os.path.realpath(sys._base_executable), shutil.which(f"python{version}"),
                  f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        # the probe starts itself again, as kaleido starts its browser wrapper with sys.executable
        probe = subprocess.run([*as_space_user(), candidate, "-c", "import subprocess, sys; subprocess.run("
                                "[sys.executable, '-c', 'import venv, ensurepip'], check=True); "
                                "print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
        tried.append(f"{candidate}: {(probe.stdout + probe.stderr).strip()[-200:]}")
    pytest.fail(f"No Python {version} (the README's python_version) that uid {SPACE_UID} can run with venv; "
                f"tried:\n" + "\n".join(tried))


def torch_pin() -> str:
    """The torch requirement .ci/run installs before requirements.txt (its CPU wheel lies on local disk)."""
    match = re.search(r"pip install (?:-q )?(torch==\S+)", (REPO / ".ci" / "run").read_text(encoding="utf-8"))
    assert match, ".ci/run no longer installs a pinned torch before the requirements"
    return match.group(1)


def pip_install(venv: Path, *args: str) -> None:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"pip install {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


@pytest.fixture(scope="session")
def space_root() -> Iterator[Path]:
    """A world-readable scratch folder (pytest's own are private to the user running the tests)."""
    if os.environ.get("GPTLAB_SPACE_TEST") != "1":
        pytest.skip("the Space-style run builds a fresh 1.3 GB venv from requirements.txt (a minute or two "
                    "with torch on local disk); GPTLAB_SPACE_TEST=1 runs it (.ci/run sets it)")
    root = Path(tempfile.mkdtemp(prefix="gptlab-space-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def space_venv(space_root) -> Path:
    """A fresh venv as a Space builds it: torch first (as CI does), then requirements.txt, nothing else."""
    venv = space_root / "venv"
    start = time.monotonic()
    subprocess.run([space_interpreter(), "-m", "venv", str(venv)], check=True)
    pip_install(venv, torch_pin())
    pip_install(venv, "-r", str(REPO / "requirements.txt"))
    print(f"Space venv built from requirements.txt in {time.monotonic() - start:.0f} s")
    return venv


@NEEDS_RENDERER  # /export renders PNG and SVG with the Chromium that packages.txt gives a Space
def test_hosted_space_answers_every_endpoint(space_root, space_venv):
    """python app.py as a Space runs it: uid 1000, fresh HOME, SYSTEM=spaces, listening on 0.0.0.0."""
    home = space_root / "home"  # /home/user on a Space, with the repository in /home/user/app
    app_dir, tmp = home / "app", space_root / "tmp"  # the Space's container has a /tmp of its own
    for folder in (app_dir, tmp):
        folder.mkdir(parents=True)
    copied = copy_repository(app_dir)
    assert "app.py" in copied and "requirements.txt" in copied
    assert "chromium" in (app_dir / "packages.txt").read_text().split(), "packages.txt must give the Space Chromium"
    if os.geteuid() == 0:
        for path in [home, tmp, *home.rglob("*")]:
            os.lchown(path, SPACE_UID, SPACE_UID)
    before = files_under(app_dir)
    netlog, port = tmp / "netwatch.log", free_port()
    env = {"PATH": f"{space_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "SYSTEM": "spaces", "SPACE_ID": SPACE_ID,
           "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port),
           "PYTHONPATH": str(app_dir / "tests" / "netwatch"), "GPTLAB_NETWATCH_LOG": str(netlog)}
    url = f"http://127.0.0.1:{port}/"
    problems, seconds = [], {}
    with open(space_root / "app.log", "w+") as log:
        proc = subprocess.Popen([*as_space_user(), str(space_venv / "bin" / "python"), "app.py"], cwd=app_dir,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started = wait_for(url, proc, log)
            seconds = check_all(url)
        except AssertionError as exc:
            problems.append(str(exc))
        finally:
            stop(proc)
        log.seek(0)
        text = log.read()
    print(f"Space-style app answered after {started:.1f} s; seconds per endpoint: {seconds}")
    print(f"written in HOME: {sorted(p.name for p in home.iterdir())}; in TMPDIR: "
          f"{sorted(p.name for p in tmp.iterdir())}")
    if "0.0.0.0" not in text:
        problems.append("the app did not listen on GRADIO_SERVER_NAME=0.0.0.0")
    problems += findings(text, written_since(app_dir, before), network_attempts(netlog))
    assert not problems, "\n".join(problems) + f"\napp log:\n{text[-3000:]}"


def wait_for(url: str, proc: subprocess.Popen, log) -> float:
    """Seconds until ``url`` answers 200; fails with the log if the app exits or takes over START_LIMIT_S."""
    start = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - start > START_LIMIT_S:
            log.seek(0)
            pytest.fail(f"the app did not answer within {START_LIMIT_S} s:\n{log.read()[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """Stop the app and whatever it started in its session (kaleido's worker, Chromium)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---- a classroom with no network --------------------------------------------------------------------

@pytest.fixture(scope="module")
def classroom(tmp_path_factory) -> tuple[list[str], Path, dict[str, str]]:
    """(namespace prefix, a fresh copy of the repository, an environment with no offline switches)."""
    prefix = in_network_namespace()
    root = tmp_path_factory.mktemp("classroom")
    app_dir, home = root / "app", root / "home"
    home.mkdir()
    copy_repository(app_dir)
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES and not k.startswith("GPTLAB_")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return prefix, app_dir, env


@NEEDS_RENDERER  # /export renders PNG and SVG with Chromium
def test_offline_classroom_answers_every_endpoint(classroom, tmp_path):
    """Every tab, Watch it learn on Tiny Shakespeare included, with no network at all."""
    prefix, app_dir, env = classroom
    before = files_under(app_dir)
    netlog = tmp_path / "netwatch.log"
    env = {**env, "PYTHONPATH": str(app_dir / "tests" / "netwatch"), "GPTLAB_NETWATCH_LOG": str(netlog)}
    done = subprocess.run([*prefix, sys.executable, "tests/every_endpoint.py", str(tmp_path)], cwd=app_dir,
                          env=env, capture_output=True, text=True, timeout=480)
    app_log = (tmp_path / "app.log").read_text() if (tmp_path / "app.log").exists() else "(no log)"
    problems = [] if done.returncode == 0 else [f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"]
    if done.returncode == 0:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"offline app answered after {report['start_s']:.1f} s; seconds per endpoint: {report['seconds']}")
    # the caller (gradio_client) may look for the Hub; the app and its workers must not
    problems += findings(app_log, written_since(app_dir, before),
                         network_attempts(netlog, ignore_program="every_endpoint.py"))
    assert not problems, "\n".join(problems) + f"\napp log:\n{app_log[-3000:]}"


def test_offline_classroom_trains_gpt_mini(classroom):
    """python -m train gpt-mini on the shipped Tiny Shakespeare, with no network at all."""
    prefix, app_dir, env = classroom
    start = time.monotonic()
    done = subprocess.run([*prefix, sys.executable, *TRAIN], cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    print(f"python {' '.join(TRAIN)} offline: {time.monotonic() - start:.0f} s")
    out = app_dir / "runs" / "gpt-mini"  # where python -m train writes a run without out=
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"]["step"] == 50 and (out / "model.safetensors").is_file(), metrics["best"]
