"""Push to and pull from the Hub through the real huggingface_hub client, against a loopback fake Hub.

HF_ENDPOINT is read when huggingface_hub is imported, so every networked step runs in a
subprocess whose environment points at the fake Hub (tests/fake_hub.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_hub import TOKEN, FakeHub
from safetensors.torch import load_file

from gptlab import CheckpointError, load_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
SAFE_FILES = {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md"}
PROMPT = "First Citizen:\nSpeak"

# Loads a checkpoint (folder or repo id) and saves its logits for PROMPT, so the parent can compare.
LOAD_SCRIPT = """
import sys, time
from safetensors.torch import save_file
import torch
from gptlab import GptlabError, load_checkpoint
start = time.perf_counter()
try:
    ckpt = load_checkpoint(sys.argv[1])
except GptlabError as exc:
    print(f"{time.perf_counter() - start:.3f} {exc}")
    sys.exit(1)
with torch.no_grad():
    logits, _ = ckpt.model(torch.tensor([ckpt.tokenizer.encode(sys.argv[2])]))
save_file({"logits": logits.contiguous()}, sys.argv[3])
print(ckpt.folder)
"""


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


def hub_env(endpoint: str, home: Path, token: str | None = TOKEN, offline: bool = False) -> dict[str, str]:
    """The subprocess environment: this endpoint, a private HF_HOME, no telemetry, no Xet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_OFFLINE="1" if offline else "0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_push(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.push", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def run_load(env: dict[str, str], source: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOAD_SCRIPT, source, PROMPT, str(out)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_push_uploads_safe_files_and_pull_gives_identical_logits(hub, tiny_checkpoints, tmp_path):
    folder = shutil.copytree(tiny_checkpoints["gpt"], tmp_path / "run")
    (folder / "pytorch_model.bin").write_bytes(b"a planted pickle must never leave the machine")
    (folder / "optimizer.pt").write_bytes(b"nor this one")
    (folder / "training_state.safetensors").write_bytes(b"optimizer state: only for resuming, stays home")
    env = hub_env(hub.endpoint, tmp_path / "hf_home")

    pushed = run_push(env, str(folder), "user/tiny-gpt", "--private")
    assert pushed.returncode == 0, pushed.stderr
    assert f"{hub.endpoint}/user/tiny-gpt/commit/" in pushed.stdout
    repo = hub.repos["user/tiny-gpt"]
    assert set(repo.files) == SAFE_FILES
    assert all(repo.files[name] == (folder / name).read_bytes() for name in SAFE_FILES)
    assert repo.private
    push_requests = [(m, p) for m, p in hub.log]
    assert ("POST", "/api/repos/create") in push_requests
    assert ("POST", "/api/models/user/tiny-gpt/commit/main") == push_requests[-1]
    assert hub.refused == []  # every request carried HF_TOKEN and hit an endpoint the real Hub has

    repo.files["training_state.safetensors"] = b"as an older push might have left it: never downloaded"
    hub.log.clear()
    loaded = run_load(env, "user/tiny-gpt", tmp_path / "hub_logits.safetensors")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    downloaded = Path(loaded.stdout.strip().splitlines()[-1])
    assert {p.name for p in downloaded.iterdir()} == SAFE_FILES
    assert hub.log[0] == ("GET", "/api/models/user/tiny-gpt/revision/main")
    assert sorted(p.rsplit("/", 1)[-1] for m, p in hub.log if m == "GET" and "/resolve/" in p) == sorted(SAFE_FILES)
    assert hub.refused == []

    local = load_checkpoint(tiny_checkpoints["gpt"])
    with torch.no_grad():
        expected, _ = local.model(torch.tensor([local.tokenizer.encode(PROMPT)]))
    assert torch.equal(load_file(tmp_path / "hub_logits.safetensors")["logits"], expected)


def test_offline_load_of_uncached_repo_is_clear_and_fast(hub, tmp_path):
    env = hub_env(hub.endpoint, tmp_path / "empty_home", offline=True)
    result = run_load(env, "user/never-downloaded", tmp_path / "unused.safetensors")
    assert result.returncode == 1, result.stdout + result.stderr
    elapsed, message = result.stdout.split(" ", 1)
    assert "'user/never-downloaded' is not available offline" in message
    assert float(elapsed) < 10.0  # no retry loop (that takes ~23 s); the ~0.1 s figure is in the note
    assert hub.log == []  # offline means no request at all


def test_hub_http_error_is_not_reported_as_offline(hub, tmp_path):
    hub.fail_with = 500  # answered at once: repo_info is not retried
    result = run_load(hub_env(hub.endpoint, tmp_path / "empty_home"), "user/tiny-gpt", tmp_path / "unused")
    assert result.returncode == 1
    assert "Could not download the Hub model 'user/tiny-gpt'" in result.stdout and "500" in result.stdout
    assert "offline" not in result.stdout


def test_push_to_unreachable_hub_fails_fast(tiny_checkpoints, tmp_path):
    env = hub_env(f"http://127.0.0.1:{closed_port()}", tmp_path / "hf_home")
    start = time.perf_counter()
    result = run_push(env, str(tiny_checkpoints["gpt"]), "user/tiny-gpt")
    assert time.perf_counter() - start < 15  # mostly interpreter and torch start-up
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "unreachable" in result.stderr


@pytest.mark.parametrize("token, expected", [(None, "no Hub token"), ("hf_wrong", "rejected the token")])
def test_push_without_a_valid_token_is_refused(hub, tiny_checkpoints, tmp_path, token, expected):
    env = hub_env(hub.endpoint, tmp_path / "empty_home", token=token)
    result = run_push(env, str(tiny_checkpoints["gpt"]), "user/tiny-gpt")
    assert result.returncode == 1
    assert expected in result.stderr and result.stderr.count("\n") == 1
    assert hub.repos == {}


def test_push_cli_refuses_a_folder_that_is_not_a_checkpoint(hub, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"a pickle, no safetensors")
    result = run_push(hub_env(hub.endpoint, tmp_path / "hf_home"), str(tmp_path), "user/tiny-gpt")
    assert result.returncode == 1
    assert "is not a checkpoint folder" in result.stderr and result.stderr.count("\n") == 1
    assert hub.log == []


@pytest.mark.parametrize("repo_id", ["tiny-gpt", "user/../etc", "a/b/c", "user/", "-user/x y"])
def test_push_refuses_bad_repo_ids(tiny_checkpoints, repo_id):
    from train.push import push

    with pytest.raises(CheckpointError, match="is not a Hub repo id"):
        push(tiny_checkpoints["gpt"], repo_id)


def test_push_refuses_foreign_folders(tmp_path):
    from train.push import push

    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        push(tmp_path / "missing", "user/x")
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(CheckpointError, match="not a gptlab config"):
        push(tmp_path, "user/x")


def test_push_in_offline_mode_says_so(tiny_checkpoints, monkeypatch):
    from huggingface_hub import constants

    from train.push import push

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE=1"):
        push(tiny_checkpoints["gpt"], "user/x")
