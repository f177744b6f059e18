"""Resumable training state in one safetensors file: weights, optimizer moments, RNG, step.

One file, written atomically, so a run killed at any moment (even mid-save) resumes from the
previous complete state. JSON-able parts (step, param groups, history) go in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gptlab.errors import CheckpointError
from gptlab.fileio import write_atomic

STATE_FILE = "training_state.safetensors"


def save_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
               extra: dict[str, Any]) -> None:
    """Write model weights (float32), optimizer states, RNG states and ``extra`` (JSON) to one file."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:  # tied weights: stored once
            continue
        seen.add(t.data_ptr())
        tensors[f"model.{name}"] = t.detach().float().cpu().contiguous()
    optim_meta = []
    for j, opt in enumerate(optimizers):
        sd = opt.state_dict()
        scalars = {}
        for index, param_state in sd["state"].items():
            for key, value in param_state.items():
                if torch.is_tensor(value):
                    tensors[f"optim{j}.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{key}"] = value
        optim_meta.append({"param_groups": sd["param_groups"], "scalars": scalars})
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {"gptlab_training_state": "1", "json": json.dumps({"optimizers": optim_meta, **extra})}
    write_atomic(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def load_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> dict[str, Any]:
    """Restore what save_state wrote into ``model`` and ``optimizers``; return the ``extra`` dict."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing, so there is nothing to resume. Start without resume=.") from None
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}).") from None
    if metadata.get("gptlab_training_state") != "1":
        raise CheckpointError(f"{path}: not a gptlab training state.")
    extra = json.loads(metadata["json"])
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    result = model.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_weights", False) else set()
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise CheckpointError(f"{path}: weights do not match this model ({result}). Was the config changed?")
    if len(extra["optimizers"]) != len(optimizers):
        raise CheckpointError(f"{path}: saved with a different optimizer setting; resume with the same one.")
    for j, (opt, meta) in enumerate(zip(optimizers, extra.pop("optimizers"), strict=True)):
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim{j}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, name = key[len(prefix):].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        for key, value in meta["scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return extra
