"""A full disk or a read-only output folder fails with a clear message before any training step.

Real small tmpfs mounts where this machine allows mounting (root with CAP_SYS_ADMIN, as in CI's
container); elsewhere those tests skip and say why. As root a chmod does not stop writes, so a
read-only mount is the honest read-only folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gptlab.errors import GptlabError
from train import loop
from train.config import apply_overrides
from train.presets import make_preset

TINY = ["model.block_size=16", "model.n_layer=1", "model.n_head=2", "model.n_embd=16", "batch_size=4",
        "eval_interval=2", "eval_iters=1", "sample_tokens=5", "warmup_iters=1", "progress=false", "max_iters=2"]
MIB = 1 << 20


def tiny_config(data: Path, out: Path):
    return apply_overrides(make_preset("gpt-mini"), [*TINY, f"data={data}", f"out={out}"])


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size, read_only) -> a fresh tmpfs of that size; all unmounted at the end."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            reason = f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}"
            # a laptop without root skips (the monkeypatched tests cover the same branches); CI, which
            # runs as root, sets GPTLAB_REQUIRE_MOUNT=1 so that a refused mount fails instead
            if os.environ.get("GPTLAB_REQUIRE_MOUNT") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", str(point)], check=False)


def nothing_trained(out: Path) -> bool:
    return not any((out / name).exists() for name in ("metrics.json", "model.safetensors", "train_config.json"))


def test_full_disk_fails_before_training(tiny_text_file, tmpfs):
    disk = tmpfs("disk", "16m")
    filler = disk / "filler.bin"
    with open(filler, "wb") as f:  # fill it up, leaving about 1 MiB
        f.write(b"\0" * (shutil.disk_usage(disk).free - MIB))
    assert shutil.disk_usage(disk).free <= 2 * MIB
    out = disk / "run"
    with pytest.raises(GptlabError, match=r"Only \d+ MiB free at .*run; a checkpoint needs about \d+ MiB"):
        loop.train(tiny_config(tiny_text_file, out))
    assert nothing_trained(out)
    # the same run on the same disk, once there is room: the refusal was about space, nothing else
    filler.unlink()
    loop.train(tiny_config(tiny_text_file, out))
    assert (out / "model.safetensors").is_file()


def test_read_only_output_folder_fails_before_training(tiny_text_file, tmpfs):
    disk = tmpfs("readonly", "1m", read_only=True)
    with pytest.raises(GptlabError, match=r"Cannot write checkpoints to .*run: Read-only file system\. Choose another"):
        loop.train(tiny_config(tiny_text_file, disk / "run"))


def test_full_disk_branch_without_mounting(tiny_text_file, tmp_path, monkeypatch):
    """The same branch anywhere (no mount needed): disk_usage reports a nearly full disk."""
    full = shutil._ntuple_diskusage(100 * MIB, 100 * MIB, 0)  # total, used, free
    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: full)
    out = tmp_path / "run"
    with pytest.raises(GptlabError, match="Only 0 MiB free"):
        loop.train(tiny_config(tiny_text_file, out))
    assert nothing_trained(out)
