"""Checkpoints from strangers: round trips, no pickles, config checked before allocation, clear errors."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import pickletools
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from gptlab import CharTokenizer, CheckpointError, ModelConfig, build_model, load_checkpoint, save_checkpoint

TOK = CharTokenizer("abcdefghij ")
BASE = dict(vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16)
KINDS = {
    "bigram": ModelConfig(kind="bigram", vocab_size=TOK.vocab_size, block_size=16),
    "single_head": ModelConfig(**{**BASE, "kind": "single_head", "n_layer": 1, "n_head": 1}),
    "multi_head": ModelConfig(**{**BASE, "kind": "multi_head", "n_layer": 1}),
    "blocks": ModelConfig(**{**BASE, "kind": "blocks"}),
    "gpt": ModelConfig(**{**BASE, "kind": "gpt"}),
    "gpt_tied_rope": ModelConfig(**{**BASE, "kind": "gpt", "tie_weights": True, "pos": "rope", "qk_norm": True}),
}
REPO = pathlib.Path(__file__).resolve().parent.parent
X = torch.randint(TOK.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))


def saved(tmp_path, name: str = "gpt", **kw) -> tuple[pathlib.Path, torch.nn.Module]:
    torch.manual_seed(1)
    model = build_model(KINDS[name]).eval()
    return save_checkpoint(tmp_path / name, model, TOK, **kw), model


def edit_config(folder: pathlib.Path, **model_fields) -> None:
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data["model"].update(model_fields)
    path.write_text(json.dumps(data))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(X)[0]


@pytest.mark.parametrize("name", KINDS)
def test_round_trip_gives_identical_logits(tmp_path, name):
    folder, model = saved(tmp_path, name, metrics={"best": {"val_loss": 2.0, "step": 5}})
    ckpt = load_checkpoint(folder)
    assert torch.equal(logits(ckpt.model), logits(model))
    assert ckpt.config == model.config and not ckpt.model.training
    assert ckpt.best_val_loss == 2.0 and ckpt.tokenizer.chars == TOK.chars
    if model.config.tie_weights:
        assert ckpt.model.lm_head.weight is ckpt.model.transformer.wte.weight
        assert "lm_head.weight" not in load_file(folder / "model.safetensors")  # stored once


def test_bfloat16_storage(tmp_path):
    folder, model = saved(tmp_path, dtype=torch.bfloat16)
    stored = load_file(folder / "model.safetensors")
    assert all(t.dtype == torch.bfloat16 for t in stored.values())
    rounded = build_model(model.config).eval()
    rounded.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()})
    loaded = load_checkpoint(folder).model
    assert next(loaded.parameters()).dtype == torch.float32
    assert torch.equal(logits(loaded), logits(rounded))


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("filename", ["pytorch_model.bin", "model.pt", "weights.pkl"])
def test_pickles_are_refused_and_never_run(tmp_path, filename):
    folder, _ = saved(tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    (folder / filename).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match="Pickle") as info:
        load_checkpoint(folder)
    assert filename in str(info.value)
    assert not marker.exists()
    # the payload is real, read without running it: unpickling would call Path.touch(marker)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops((folder / filename).read_bytes())]
    names = [op for op, _ in ops]
    strings = [arg for _, arg in ops if isinstance(arg, str)]
    assert {"pathlib", "Path.touch", *marker.parts} <= set(strings)  # a Path pickles as its parts
    assert "STACK_GLOBAL" in names and "REDUCE" in names


@pytest.mark.parametrize("fields", [dict(n_embd=10**9), dict(vocab_size=10**12), dict(n_layer=10**6),
                                    dict(block_size=10**9), dict(vocab_size=999_999, kind="bigram")])
def test_huge_config_fails_at_once(tmp_path, fields):
    folder, _ = saved(tmp_path)
    edit_config(folder, **fields)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(folder)
    assert time.perf_counter() - start < 1.0


def test_large_config_with_small_weights_allocates_nothing(tmp_path, monkeypatch):
    """Inside the limits but ~800M parameters: the weights file is checked before any allocation."""
    folder, _ = saved(tmp_path)
    edit_config(folder, n_embd=4096, n_head=32, n_layer=4, block_size=1024)
    import gptlab.checkpoint as checkpoint

    built = []
    real_build = checkpoint.build_model
    monkeypatch.setattr(checkpoint, "build_model", lambda c, d=None: built.append(str(d)) or real_build(c, d))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="does not match config.json"):
        load_checkpoint(folder)
    assert time.perf_counter() - start < 2.0
    assert built == ["meta"]  # only the shape skeleton, which costs no memory


@pytest.mark.parametrize("fields, needle", [
    (dict(kind="transformer-xl"), "kind"), (dict(n_layer="2"), "n_layer"), (dict(bias=1), "bias"),
    (dict(n_head=True), "n_head"), (dict(vocab_size=11.0), "vocab_size"), (dict(rogue=1), "rogue"),
    (dict(dropout=float("nan")), "dropout"), (dict(n_embd=15), "multiple"),
])
def test_bad_config_values_are_named(tmp_path, fields, needle):
    folder, _ = saved(tmp_path)
    edit_config(folder, **fields)
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    "content",
    ["", "[1]", '{"format": "other"}', "[" * 100_000, '{"format": "gptlab", "format_version": 9, "model": {}}'],
)
def test_foreign_or_corrupt_config_json(tmp_path, content):
    folder, _ = saved(tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(folder)


def rewrite_weights(folder: pathlib.Path, change) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize("change, needle", [
    (lambda t: t.update({"transformer.wte.weight": t["transformer.wte.weight"].long()}), "dtype"),
    (lambda t: t.update({"transformer.wte.weight": torch.zeros(3, 16)}), "transformer.wte.weight has shape"),
    (lambda t: t.update({"extra.weight": torch.zeros(1)}), "extra.weight"),
    (lambda t: t.pop("transformer.h.1.mlp.c_fc.weight"), "transformer.h.1.mlp.c_fc.weight"),
    (lambda t: t["lm_head.weight"].fill_(float("nan")), "NaN"),
])
def test_tensor_mismatches_are_named(tmp_path, change, needle):
    folder, _ = saved(tmp_path)
    rewrite_weights(folder, change)
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(folder)


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, -1])
def test_truncated_weights(tmp_path, keep):
    folder, _ = saved(tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder)


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json", "tokenizer.json"])
def test_missing_files_are_named(tmp_path, missing):
    folder, _ = saved(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(CheckpointError, match=f"{missing}: missing"):
        load_checkpoint(folder)


def test_tokenizer_mismatches(tmp_path):
    folder, _ = saved(tmp_path)
    CharTokenizer("abc").save(folder)
    with pytest.raises(CheckpointError, match="3 tokens.*vocab_size=11"):
        load_checkpoint(folder)
    TOK.save(folder)
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, "tokenizer": "bpe"}))
    with pytest.raises(CheckpointError, match="tokenizer 'bpe'"):
        load_checkpoint(folder)


def test_bad_metrics_and_not_a_folder(tmp_path):
    folder, _ = saved(tmp_path)
    (folder / "metrics.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="metrics.json"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="is a file"):
        load_checkpoint(folder / "config.json")
    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        load_checkpoint(tmp_path / "no" / "such" / "place")


def hub_cache(tmp_path: pathlib.Path, folder: pathlib.Path, hf_home: pathlib.Path) -> pathlib.Path:
    """Lay ``folder`` out as the Hub cache does: snapshot files are symlinks into blobs/."""
    repo = hf_home / "hub" / "models--someone--tiny"
    snapshot = repo / "snapshots" / ("a" * 40)
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, f in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"{i:064x}"
        shutil.copy(f, blob)
        (snapshot / f.name).symlink_to(pathlib.Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return snapshot


def test_hub_snapshot_layout_loads(tmp_path):
    folder, model = saved(tmp_path)
    snapshot = hub_cache(tmp_path, folder, tmp_path / "hf")
    assert torch.equal(logits(load_checkpoint(snapshot).model), logits(model))


HUB_SCRIPT = """
import json, sys, time
from gptlab import CheckpointError, load_checkpoint
start = time.perf_counter()
try:
    load_checkpoint("someone/tiny")
    outcome = "loaded"
except CheckpointError as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start}))
"""


def run_offline(hf_home: pathlib.Path, cwd: pathlib.Path) -> dict:
    """huggingface_hub reads HF_HOME and HF_HUB_OFFLINE at import: a fresh process gets them right."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hub_repo_id_offline(tmp_path):
    """Empty cache: a clear 'not available offline' with no network retries; filled cache: it loads."""
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    empty = run_offline(hf_home, tmp_path)
    assert "not available offline" in empty["outcome"] and empty["seconds"] < 10.0  # retries would take ~23 s
    folder, _ = saved(tmp_path)
    hub_cache(tmp_path, folder, hf_home)
    assert run_offline(hf_home, tmp_path)["outcome"] == "loaded"


EDITS = [  # a config.json edited by hand, and what the weights say instead
    (dict(block_size=32), "block_size: config.json says 32, the weights hold 16"),
    (dict(n_embd=32), "n_embd: config.json says 32, the weights hold 16"),
    (dict(n_layer=3), "n_layer: config.json says 3, the weights hold 2"),
    (dict(bias=False), "bias: config.json says False, the weights hold True"),
    (dict(tie_weights=True), "tie_weights: config.json says True, the weights hold False"),
    (dict(pos="rope"), "pos: config.json says 'rope', the weights hold 'learned'"),
    (dict(mlp_ratio=2), "mlp_ratio: config.json says 2, the weights hold 4"),
    (dict(kind="multi_head"), "kind: config.json says 'multi_head', the weights hold 'gpt'"),
]
SHAPELESS_EDITS = [  # the same shapes, so only the config recorded in the weights file can tell
    (dict(n_head=4), "n_head: config.json says 4, the weights hold 2"),
    (dict(mlp="relu2"), "mlp: config.json says 'relu2', the weights hold 'gelu'"),
    (dict(qk_norm=True), "qk_norm: config.json says True, the weights hold False"),
]


@pytest.mark.parametrize("fields, named", EDITS + SHAPELESS_EDITS)
def test_edited_config_is_named_by_field(tmp_path, fields, named):
    folder, _ = saved(tmp_path)
    edit_config(folder, **fields)
    with pytest.raises(CheckpointError, match=re.escape(named)) as err:
        load_checkpoint(folder)
    assert "Put the saved values back in config.json" in str(err.value)


@pytest.mark.parametrize("fields, named", EDITS)
def test_edited_config_of_an_older_file_is_named_from_shapes(tmp_path, fields, named):
    """Files saved before the config was recorded (the shipped ones): the shapes name the field."""
    folder, _ = saved(tmp_path)
    save_file(load_file(folder / "model.safetensors"), folder / "model.safetensors", metadata={"format": "pt"})
    edit_config(folder, **fields)
    with pytest.raises(CheckpointError, match=re.escape(named)):
        load_checkpoint(folder)


def test_what_leaves_the_weights_alone_may_be_edited(tmp_path):
    """dropout does nothing at inference; a rotary model has no weights tied to its context length."""
    folder, model = saved(tmp_path, "gpt_tied_rope")
    edit_config(folder, dropout=0.3, block_size=32)
    loaded = load_checkpoint(folder).model
    assert loaded.config.block_size == 32 and torch.equal(logits(loaded), logits(model))
