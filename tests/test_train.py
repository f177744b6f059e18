"""The training CLI: overrides, exact resume, torchrun data-parallel parity, interruption, bad outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gptlab import load_checkpoint
from gptlab.errors import ConfigError, GptlabError
from train.config import apply_overrides
from train.loop import train
from train.presets import PRESETS, make_preset

REPO = Path(__file__).resolve().parent.parent
TINY = ["model.block_size=16", "model.n_layer=2", "model.n_head=2", "model.n_embd=16", "batch_size=4",
        "eval_interval=5", "eval_iters=2", "sample_tokens=10", "warmup_iters=2", "progress=false"]


def tiny_config(data: Path, out: Path, *extra: str):
    return apply_overrides(make_preset("gpt-mini"), [*TINY, f"data={data}", f"out={out}", *extra])


def history(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["history"]


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides(make_preset("gpt"), ["model.n_layr=3"])
    assert "model.n_layr" in str(err.value) and "model.n_layer" in str(err.value)


@pytest.mark.parametrize("item, fragment", [("max_iters=ten", "int"), ("compile=maybe", "bool"),
                                            ("lr=nan", "float"), ("model.kind=transformer", "kind"),
                                            ("model.n_head=5", "multiple"), ("no_equals_sign", "key=value")])
def test_bad_values_are_refused_before_work(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides(make_preset("gpt"), [item])


def test_overrides_are_typed_and_nested():
    config = apply_overrides(make_preset("gpt"), ["model.n_layer=3", "lr=3e-4", "compile=true", "data=x.txt"])
    assert (config.model.n_layer, config.lr, config.compile, config.data) == (3, 3e-4, True, "x.txt")


def test_help_lists_presets_and_keys():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in PRESETS:
        assert name in result.stdout
    assert "model.n_layer=6" in result.stdout and "grad_accum=1" in result.stdout


def test_cli_rejects_unknown_key_with_nonzero_exit():
    result = run_cli("gpt", "bogus=1")
    assert result.returncode == 2 and "Unknown key 'bogus'" in result.stderr


def test_train_writes_a_loadable_checkpoint_with_metrics(tiny_text_file, tmp_path):
    out = tmp_path / "run"
    metrics = train(tiny_config(tiny_text_file, out, "max_iters=10", "snapshots=0,5"))
    steps = [row["step"] for row in history(out)]
    assert steps == [0, 5, 10]
    assert history(out)[-1]["val_loss"] < history(out)[0]["val_loss"]
    assert metrics["best"]["val_loss"] == min(row["val_loss"] for row in history(out))
    checkpoint = load_checkpoint(out)
    assert checkpoint.best_val_loss == metrics["best"]["val_loss"]
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000000", "step_000005"]
    assert load_checkpoint(out / "snapshots" / "step_000005").metrics["best"]["step"] == 5
    assert (out / "samples" / "step_000010.txt").read_text()


def test_train_leaves_subnormal_floats_to_the_code_that_runs_after_it(tiny_text_file, tmp_path):
    """train() flushes denormals while it runs; a notebook (or a later test) must get IEEE floats back."""
    train(tiny_config(tiny_text_file, tmp_path / "run", "max_iters=2"))
    tiny = torch.tensor([1e-40]) * 1.0  # a subnormal float32 that survives only without flush-to-zero
    assert tiny.item() != 0.0


def test_resume_matches_an_uninterrupted_run(tiny_text_file, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny_config(tiny_text_file, straight, "max_iters=20", "model.dropout=0.1"))
    train(tiny_config(tiny_text_file, split, "max_iters=20", "model.dropout=0.1", "stop_at=10"))
    assert history(split)[-1]["step"] == 10
    train(tiny_config(tiny_text_file, split, "max_iters=20", "model.dropout=0.1", "resume=true"))
    a, b = history(straight), history(split)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for row_a, row_b in zip(a, b, strict=True):
        assert row_a["val_loss"] == pytest.approx(row_b["val_loss"], abs=1e-6)
        assert row_a["train_loss"] == pytest.approx(row_b["train_loss"], abs=1e-6)


def test_resume_with_muon_and_bpe(tiny_text_file, tmp_path):
    out = tmp_path / "muon"
    extra = ["optimizer=muon", "tokenizer=bpe", "bpe_vocab_size=300", "max_iters=10"]
    train(tiny_config(tiny_text_file, out, *extra, "stop_at=5"))
    train(tiny_config(tiny_text_file, out, *extra, "resume=true"))
    assert [r["step"] for r in history(out)] == [0, 5, 10]
    assert load_checkpoint(out).tokenizer.kind == "bpe"


def test_a_corpus_without_a_newline_trains(tmp_path):
    """Samples start from a character the corpus has: one paragraph with no newline trains (issue 17, kind 1)."""
    data = tmp_path / "one_paragraph.txt"
    data.write_text(("To be, or not to be, that is the question: " * 60).strip(), encoding="utf-8")
    out = tmp_path / "oneline"
    result = run_cli("bigram", f"data={data}", f"out={out}", "progress=false", "max_iters=10", "eval_iters=1",
                     "threads=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "samples start from ' '" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sample_start"] == " " and len(metrics["sample"]) == 200
    assert set(metrics["sample"]) <= set(data.read_text())


def test_a_run_without_out_leaves_the_shipped_checkpoints_alone(tmp_path):
    """python -m train <preset> writes runs/<preset>, never checkpoints/<preset> (the models the app serves)."""
    data = tmp_path / "text.txt"
    data.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "train", "bigram", f"data={data}", "progress=false", "max_iters=4",
                             "eval_iters=1", "threads=1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "bigram" / "model.safetensors").is_file()
    assert not (tmp_path / "checkpoints").exists()


def test_unwritable_output_fails_before_training(tiny_text_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(GptlabError, match="Cannot write checkpoints"):
        train(tiny_config(tiny_text_file, blocker / "run", "max_iters=5"))
    assert not (tmp_path / "a-file" / "run").exists()


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tiny_text_file, tmp_path):
    """Data-parallel (gloo, 2 CPU processes) = one process accumulating the same global batch."""
    args = ["gpt-mini", *TINY, f"data={tiny_text_file}", "max_iters=10", "grad_accum=2"]
    single = run_cli(*args, f"out={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = subprocess.run([*launcher, "-m", "train", *args, f"out={tmp_path / 'ddp'}"], cwd=REPO,
                         capture_output=True, text=True, timeout=180, env=env)
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    a, b = history(tmp_path / "single"), history(tmp_path / "ddp")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 5, 10]
    for row_a, row_b in zip(a, b, strict=True):
        assert row_a["val_loss"] == pytest.approx(row_b["val_loss"], abs=1e-5)
    assert not (tmp_path / "ddp" / "snapshots").exists()  # only rank 0 writes, and only what was asked


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues(tiny_text_file, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "train", "gpt-mini", *TINY, f"data={tiny_text_file}",
                             f"out={out}", "max_iters=100000", "eval_interval=50"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "training_state.safetensors").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr[-2000:]
    assert "resume=true" in stdout
    resumed = run_cli("gpt-mini", *TINY, f"data={tiny_text_file}", f"out={out}", "max_iters=100000",
                      "eval_interval=50", "resume=true", "max_time=1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(out).metrics["history"][-1]["step"] > 0


def test_the_recorded_learning_rate_follows_the_clock_when_time_runs_out_first(tiny_text_file, tmp_path):
    """With max_time, the rate decays on whichever runs out first; the history records the rate used, not the
    one the step count alone gives (which stayed near the peak in an 80-minute run with a far max_iters)."""
    out = tmp_path / "timed"
    train(tiny_config(tiny_text_file, out, "max_iters=1000000", "max_time=1.5", "lr=1e-2"))
    last = history(out)[-1]
    assert last["time_s"] > 1.0 and last["step"] < 10_000  # the clock, not the steps, ended it
    assert last["lr"] < 0.5e-2  # 1.5 s of 1.5: the cosine is near its floor (0.1 of the peak)


def test_a_resume_with_nothing_left_to_train_says_so(tiny_text_file, tmp_path):
    """A state at (or past) the end of the run asked for: its step and the key to raise, not a missing file."""
    done = tmp_path / "done"
    train(tiny_config(tiny_text_file, done, "max_iters=10"))
    with pytest.raises(GptlabError, match=r"already at step 10 of max_iters=10.*raise max_iters to train on"):
        train(tiny_config(tiny_text_file, tmp_path / "new", "max_iters=10", f"resume={done}"))
    with pytest.raises(GptlabError, match=r"already at step 10 of max_iters=5.*raise max_iters to train on"):
        train(tiny_config(tiny_text_file, done, "max_iters=5", "resume=true"))
    with pytest.raises(GptlabError, match=r"already at step 10 of stop_at=5.*raise stop_at to train on"):
        train(tiny_config(tiny_text_file, tmp_path / "new", "max_iters=20", "stop_at=5", f"resume={done}"))
    assert not (tmp_path / "new").exists()  # refused before anything is written
    train(tiny_config(tiny_text_file, tmp_path / "more", "max_iters=15", f"resume={done}"))
    assert [r["step"] for r in history(tmp_path / "more")] == [0, 5, 10, 15]


def test_a_resume_into_a_new_folder_keeps_the_best_so_far(tiny_text_file, tmp_path):
    """The new folder starts with the saved run's best checkpoint, so a resume whose evaluations never beat it
    (here a learning rate that only makes the model worse) still ends with one."""
    first, new = tmp_path / "first", tmp_path / "new"
    train(tiny_config(tiny_text_file, first, "max_iters=10", "stop_at=5", "lr=10"))
    assert json.loads((first / "metrics.json").read_text())["best"]["step"] == 0
    metrics = train(tiny_config(tiny_text_file, new, "max_iters=10", "lr=10", f"resume={first}"))
    assert [r["step"] for r in history(new)] == [0, 5, 10] and metrics["best"]["step"] == 0
    assert load_checkpoint(new).best_val_loss == history(first)[0]["val_loss"]


@pytest.mark.parametrize("save_dtype, whole", [("float32", r"whole val split \d\.\d{4}; "),
                                               ("bfloat16", r"whole val split \d\.\d{4} in bfloat16, \d\.\d{4} "
                                                            r"before rounding; ")])
def test_the_summary_names_each_loss_once(tiny_text_file, tmp_path, capsys, save_dtype, whole):
    """The last line printed: the float32 loss is not given twice when the weights are saved in float32."""
    train(tiny_config(tiny_text_file, tmp_path / "run", "max_iters=2", f"save_dtype={save_dtype}"))
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"^best val loss \d\.\d{4} at step \d+ \(" + whole + r"\d\.\d{3} bits/char\); saved to ",
                     summary), summary
