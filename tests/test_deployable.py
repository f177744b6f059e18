"""The repository deploys to a Hugging Face Space as the README says: every binary file it ships is
routed through LFS (a Space refuses a `git push` with a binary outside it), `packages.txt` gives the
Space a browser for export, and the README's `hf upload` sends the committed files and nothing that
git ignores."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import TOKEN, FakeHub

REPO = Path(__file__).resolve().parent.parent
LFS = {"filter": "lfs", "diff": "lfs", "merge": "lfs", "text": "unset"}  # filter=lfs diff=lfs merge=lfs -text


def git(*args: str, cwd: Path = REPO, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=True).stdout


def tracked_files() -> list[str]:
    """Tracked paths that are present in the working tree (another developer may be deleting one)."""
    return [p for p in git("ls-files", "-z").split("\0") if p and (REPO / p).is_file()]


def is_binary(path: Path) -> bool:
    """Git's own test: a NUL byte in the first 8000 bytes."""
    with open(path, "rb") as f:
        return b"\0" in f.read(8000)


def attributes(paths: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """{path: {attribute: value}} as git itself resolves .gitattributes for each path."""
    fields = git("check-attr", "-z", "--stdin", *names, stdin="\0".join(paths)).split("\0")
    found: dict[str, dict[str, str]] = {}
    for path, name, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):
        found.setdefault(path, {})[name] = value
    return found


def test_every_binary_file_goes_through_lfs():
    binaries = [p for p in tracked_files() if is_binary(REPO / p)]
    assert "checkpoints/gpt/model.safetensors" in binaries  # the walk sees the files it must
    found = attributes(binaries, list(LFS))
    outside = sorted(p for p in binaries if found[p] != LFS)
    assert not outside, (
        "binary files that no `filter=lfs diff=lfs merge=lfs -text` pattern in .gitattributes covers "
        f"(a Space refuses a git push that carries them): {outside}"
    )


def test_packages_txt_gives_a_space_chromium_for_the_export():
    requirements = (REPO / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^kaleido\b", requirements, re.M), "this test is about kaleido's browser"
    packages = [line.split("#")[0].strip() for line in (REPO / "packages.txt").read_text(encoding="utf-8").splitlines()]
    assert "chromium" in packages


def readme_hf_upload() -> list[str]:
    """The README's `hf upload` command as argv (continuation lines joined)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()
                if line.startswith("hf upload ")]
    assert len(commands) == 1, f"expected one `hf upload` command in the README, found {commands}"
    return shlex.split(commands[0])


# Files a working copy may hold that must not reach a Space: one in each place .gitignore names
IGNORED = [
    ".venv/bin/python", ".venv/lib/python3.11/site-packages/torch/__init__.py", ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/0.6/1234", ".hypothesis/examples/abc", "gptlab/__pycache__/data.cpython-311.pyc",
    "gptlab.egg-info/PKG-INFO", "data/book.txt", "outputs/figure.png", "runs/gpt.log", "runs/ab/x/metrics.json",
    "test-output/shot.png", "bench/quick/results.json", "checkpoints/gpt/training_state.safetensors",
    "checkpoints/gpt/samples/step_000100.txt",
]


@pytest.mark.slow
def test_readme_hf_upload_sends_the_committed_files_and_nothing_git_ignores(tmp_path):
    """The README's command, run by the real `hf` CLI against a loopback Hub, from a working copy
    that holds the tracked files plus one file in each place git ignores."""
    copy = tmp_path / "gptlab"
    tracked = tracked_files()
    for path in tracked:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / path, copy / path)
    for path in IGNORED:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_bytes(b"local only\0")
    git("init", "-q", cwd=copy)
    ignored = set(git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", cwd=copy).split("\0"))
    assert ignored >= set(IGNORED), "each planted file must be one that git ignores"

    argv = readme_hf_upload()
    assert argv[:2] == ["hf", "upload"] and argv[2] == "you/gptlab"
    hf = Path(sys.executable).parent / "hf"  # installed with huggingface_hub, beside this Python
    argv = [str(hf), "upload", "user/gptlab", *argv[3:]]  # the fake Hub's user
    hub = FakeHub()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="0",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        done = subprocess.run(argv, cwd=copy, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        uploaded = hub.repos["user/gptlab"].files
    finally:
        hub.close()
    assert not set(uploaded) & set(IGNORED), "files git ignores went to the Space"
    # everything committed goes, except the dot-folders (.ci: a Space runs no CI)
    expected = {p for p in tracked if not re.match(r"\.[^/]*/", p)}
    assert set(uploaded) == expected
    assert all(uploaded[p] == (copy / p).read_bytes() for p in expected)
