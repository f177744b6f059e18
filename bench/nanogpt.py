"""Running an unmodified nanoGPT checkout the user fetched, for the optional peer section (bench/peer.py).

nanoGPT is never vendored: ``git clone https://github.com/karpathy/nanoGPT`` and pass the folder. Nothing in
it is written: its ``train.py`` runs as a subprocess from a temporary folder holding the character data
(built here from the Tiny Shakespeare gptlab ships, as its ``prepare.py`` would, without the download) and a
copy of its ``configurator.py``, which ``train.py`` opens from the working folder; ``PYTHONDONTWRITEBYTECODE``
keeps ``__pycache__`` out of the checkout. A saved checkpoint is scored by a small script that uses nanoGPT's
own ``model.py`` and ``torch.load(weights_only=True)``: the mean loss over the whole val split in consecutive
windows of the context, the rule of ``train.evaluate.full_split_loss``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gptlab import CharTokenizer
from gptlab.errors import InputError

from .common import Options, load

NEEDS = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py",
         "data/shakespeare_char/prepare.py")
ITER = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", re.M)
LIMIT_S = 3600  # a nanoGPT run that has not ended by then is stopped
SCORE = r"""
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from model import GPT, GPTConfig
ckpt = torch.load(sys.argv[2], map_location="cpu", weights_only=True)
model = GPT(GPTConfig(**ckpt["model_args"]))
model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
model.eval()
data = torch.from_numpy(np.fromfile(sys.argv[3], dtype=np.uint16).astype(np.int64))
block = model.config.block_size
n = (len(data) - 1) // block
x, y = data[: n * block].view(n, block), data[1 : n * block + 1].view(n, block)
total = 0.0
with torch.no_grad():
    for i in range(0, n, 32):
        total += float(model(x[i : i + 32], y[i : i + 32])[1]) * len(x[i : i + 32])
print("VAL_LOSS", total / n, int(ckpt["iter_num"]))
"""


def check_checkout(path: Path | str) -> Path:
    """The nanoGPT checkout at ``path``, resolved; InputError saying what is missing and how to get one."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise InputError(f"--peer-nanogpt {path}: {what}. Fetch nanoGPT first: "
                         "git clone https://github.com/karpathy/nanoGPT, then pass that folder.")
    missing = [name for name in NEEDS if not (folder / name).is_file()]
    if missing:
        raise InputError(f"--peer-nanogpt {path}: not a nanoGPT checkout (missing {', '.join(missing)}). Pass the "
                         "folder of git clone https://github.com/karpathy/nanoGPT, unmodified.")
    return folder


def commit_of(checkout: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30)
        return done.stdout.strip() or "unknown commit"
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"


def prepare(checkout: Path, work: Path, text: str) -> Path:
    """A working folder for nanoGPT's train.py: data/shakespeare_char/{train,val}.bin and meta.pkl as its
    prepare.py writes them (the first 90% of the characters to train on), and a copy of configurator.py."""
    import pickle

    import numpy as np

    data = work / "data" / "shakespeare_char"
    data.mkdir(parents=True, exist_ok=True)
    tokenizer = CharTokenizer.train(text)  # sorted characters: prepare.py's ids
    ids = np.array(tokenizer.encode(text), dtype=np.uint16)
    n = int(len(ids) * 0.9)
    ids[:n].tofile(data / "train.bin")
    ids[n:].tofile(data / "val.bin")
    chars = tokenizer.chars
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}
    (data / "meta.pkl").write_bytes(pickle.dumps(meta))  # nanoGPT reads it; gptlab never unpickles
    shutil.copy(checkout / "configurator.py", work / "configurator.py")
    return work


def run_nanogpt(checkout: Path, work: Path, options: Options, **overrides: Any) -> dict[str, Any]:
    """nanoGPT's unmodified train.py with its shakespeare_char config and ``--key=value`` overrides: its
    per-iteration seconds (iteration 0, which evaluates first, left out) and the process's wall time."""
    settings = {"device": "cpu", "compile": False, "dtype": "float32", "wandb_log": False, "log_interval": 1,
                "out_dir": str(work / "out")} | overrides
    args = [f"--{key}={value}" for key, value in settings.items()]
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(options.thread_count)}
    start = time.perf_counter()
    config = checkout / "config" / "train_shakespeare_char.py"
    command = [sys.executable, str(checkout / "train.py"), str(config), *args]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"nanoGPT's train.py exited with {done.returncode}: {done.stderr[-1500:]}")
    steps = [float(ms) / 1e3 for it, ms in ITER.findall(done.stdout) if int(it) > 0]
    return {"wall_s": wall, "step_s": steps, "load_end": load()}


def score(checkout: Path, work: Path) -> tuple[float, int]:
    """(whole-split val loss, iteration) of nanoGPT's saved checkpoint, by nanoGPT's own model.py."""
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", SCORE, str(checkout), str(work / "out" / "ckpt.pt"),
                           str(work / "data" / "shakespeare_char" / "val.bin")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=LIMIT_S)
    found = re.search(r"VAL_LOSS (\S+) (\d+)", done.stdout)
    if not found:
        raise RuntimeError(f"scoring nanoGPT's checkpoint failed: {done.stderr[-1500:]}")
    return float(found[1]), int(found[2])
