"""Wrapped models (torch.compile, DataParallel, DDP, AveragedModel) save under their own names;
files whose names carry a wrapper's prefix load; what cannot be saved is refused with a reason."""

from __future__ import annotations

import copy
import pathlib
import re
import warnings
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gptlab import CharTokenizer, CheckpointError, ModelConfig, build_model, load_checkpoint, save_checkpoint
from gptlab.checkpoint import WEIGHTS_FILE, foreign_names
from train.config import apply_overrides
from train.optim import make_optimizers
from train.presets import make_preset
from train.state import load_state, save_state

TOK = CharTokenizer("abcdefghij ")
CONFIG = ModelConfig(kind="gpt", vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16)
X = torch.randint(TOK.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def process_group():
    """A one-process gloo group, as DDP and FSDP need one (no network: an in-memory store)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def model() -> nn.Module:
    torch.manual_seed(3)
    return build_model(CONFIG).eval()


def logits(m: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return m(X)[0]


def stored_names(folder: pathlib.Path) -> set[str]:
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        return set(f.keys())


def compile_block(m: nn.Module) -> nn.Module:
    m.transformer.h[1] = torch.compile(m.transformer.h[1])  # a block compiled in place: '_orig_mod.' mid-name
    return m


WRAPPERS = {
    "torch.compile": torch.compile,
    "DataParallel": nn.DataParallel,
    "AveragedModel": AveragedModel,
    "compile(DataParallel)": lambda m: torch.compile(nn.DataParallel(m)),
    "block compiled in place": compile_block,
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_wrapped_model_saves_under_gpt2_names_and_loads(tmp_path, wrap):
    plain = model()
    expected, names = logits(plain), stored_names(save_checkpoint(tmp_path / "plain", plain, TOK))
    folder = save_checkpoint(tmp_path / "wrapped", wrap(copy.deepcopy(plain)), TOK)
    assert stored_names(folder) == names  # no '_orig_mod.' or 'module.' in the file
    assert torch.equal(logits(load_checkpoint(folder).model), expected)


def test_ddp_model_saves_and_fsdp_is_refused(tmp_path, process_group):
    plain = model()
    folder = save_checkpoint(tmp_path / "ddp", nn.parallel.DistributedDataParallel(copy.deepcopy(plain)), TOK)
    assert not any(n.startswith("module.") for n in stored_names(folder))
    assert torch.equal(logits(load_checkpoint(folder).model), logits(plain))
    from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "switching to NO_SHARD": world size 1
        fsdp1 = FullyShardedDataParallel(copy.deepcopy(plain), device_id=torch.device("cpu"))
    with pytest.raises(CheckpointError, match="FullyShardedDataParallel is not a gptlab model.*full state dict"):
        save_checkpoint(tmp_path / "fsdp1", fsdp1, TOK)
    fsdp2 = fully_shard(copy.deepcopy(plain))  # the model's own class, its weights DTensors
    with pytest.raises(CheckpointError, match="is a DTensor, not a plain tensor.*full state dict"):
        save_checkpoint(tmp_path / "fsdp2", fsdp2, TOK)
    assert not (tmp_path / "fsdp1").exists() and not (tmp_path / "fsdp2").exists()  # refused before writing


def test_what_could_not_be_loaded_again_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="A Sequential is not a gptlab model"):
        save_checkpoint(tmp_path / "seq", nn.Sequential(model()), TOK)
    grown = model()
    grown.transformer.wte = nn.Embedding(20, 16)  # resized embedding, config left at vocab_size=11
    with pytest.raises(CheckpointError, match=r"transformer.wte.weight has shape \(20, 16\).*\(11, 16\)"):
        save_checkpoint(tmp_path / "grown", grown, TOK)
    extended = model()
    extended.adapter = nn.Linear(16, 16)
    with pytest.raises(CheckpointError, match=r"unexpected \['adapter.bias', 'adapter.weight'\]"):
        save_checkpoint(tmp_path / "extended", extended, TOK)


PREFIXES = {
    "module.": lambda t: {f"module.{k}": v for k, v in t.items()},
    "_orig_mod.": lambda t: {f"_orig_mod.{k}": v for k, v in t.items()},
    "_orig_mod.module.": lambda t: {f"_orig_mod.module.{k}": v for k, v in t.items()},
    "module.module.": lambda t: {f"module.module.{k}": v for k, v in t.items()},
    "AveragedModel": lambda t: {**{f"module.{k}": v for k, v in t.items()}, "n_averaged": torch.tensor(4)},
    "model. (Lightning)": lambda t: {f"model.{k}": v for k, v in t.items()},
    "transformer. around the GPT-2 names": lambda t: {f"transformer.{k}": v for k, v in t.items()},
    "net.gpt.": lambda t: {f"net.gpt.{k}": v for k, v in t.items()},
    "model.module.": lambda t: {f"model.module.{k}": v for k, v in t.items()},
}


@pytest.mark.parametrize("rename", PREFIXES.values(), ids=PREFIXES.keys())
def test_files_with_a_wrapper_prefix_load(tmp_path, rename):
    """As other tools write them: every name behind the prefix of the wrapper that was saved."""
    plain = model()
    folder = save_checkpoint(tmp_path / "m", plain, TOK)
    save_file(rename(load_file(folder / WEIGHTS_FILE)), folder / WEIGHTS_FILE)
    assert torch.equal(logits(load_checkpoint(folder).model), logits(plain))


def test_a_prefixed_file_of_another_shape_is_explained(tmp_path):
    folder = save_checkpoint(tmp_path / "m", model(), TOK)
    tensors = {f"module.{k}": v for k, v in load_file(folder / WEIGHTS_FILE).items() if ".h.1." not in k}
    save_file(tensors, folder / WEIGHTS_FILE)  # a 1-layer model's file next to a 2-layer config.json
    with pytest.raises(CheckpointError, match="n_layer: config.json says 2, the weights hold 1"):
        load_checkpoint(folder)


def test_any_foreign_prefix_is_named_or_stripped(tmp_path):
    """Behind an unknown prefix: a file of another shape is explained by its fields, a foreign model by the
    prefix, and pushing the loadable one is refused as the wrapper prefixes are."""
    folder = save_checkpoint(tmp_path / "m", model(), TOK)
    plain = load_file(folder / WEIGHTS_FILE)
    save_file({f"model.{k}": v for k, v in plain.items() if ".h.1." not in k}, folder / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="n_layer: config.json says 2, the weights hold 1"):
        load_checkpoint(folder)
    save_file({"model.encoder.weight": torch.zeros(2, 2), "model.head.weight": torch.zeros(2)}, folder / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match=r"every tensor name starts with 'model\.', and what follows is not"):
        load_checkpoint(folder)
    save_file({f"model.{k}": v for k, v in plain.items()}, folder / WEIGHTS_FILE)
    assert foreign_names(folder / WEIGHTS_FILE) == sorted(f"model.{k}" for k in plain)


def test_training_state_of_a_compiled_model_resumes_into_a_plain_one(tmp_path):
    config = apply_overrides(make_preset("gpt-mini"), ["model.block_size=16", "model.n_layer=1", "model.n_head=2",
                                                      "model.n_embd=16"])
    plain = build_model(replace(config.model, vocab_size=TOK.vocab_size))
    optimizers = make_optimizers(plain, config)
    save_state(tmp_path / "state.safetensors", torch.compile(plain), optimizers, {"run": {"step": 3}})
    with safe_open(str(tmp_path / "state.safetensors"), framework="pt") as f:
        assert not [k for k in f.keys() if "_orig_mod" in k or "module." in k]
    fresh = build_model(replace(config.model, vocab_size=TOK.vocab_size))
    assert load_state(tmp_path / "state.safetensors", fresh, make_optimizers(fresh, config))["run"]["step"] == 3
    assert torch.equal(logits(fresh), logits(plain))


def test_push_refuses_prefixed_weights_and_its_fix_works(tmp_path, monkeypatch):
    """gptlab loads a 'module.' file, but pushing it would hand other tools names they do not know."""
    from huggingface_hub import constants

    from train.push import push

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the local checks come before any network
    folder = save_checkpoint(tmp_path / "m", model(), TOK)
    save_file({f"module.{k}": v for k, v in load_file(folder / WEIGHTS_FILE).items()}, folder / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match=r"wrapper's prefix \(e.g. 'module\.") as refused:
        push(folder, "user/tiny")
    fix = re.search(r'python -c "(.*)"$', str(refused.value)).group(1)
    exec(fix, {})  # the command the message gives, as the user would paste it
    assert not [n for n in stored_names(folder) if n.startswith("module.")]
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE=1"):  # only the network is missing now
        push(folder, "user/tiny")
