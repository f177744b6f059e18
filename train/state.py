"""Resumable training state in one safetensors file: weights, optimizer moments, RNG, step.

One file, written atomically, so a run killed at any moment (even mid-save) resumes from the
previous complete state. JSON-able parts (step, param groups, history) go in its metadata, with
the run's setup (run_setup): a resume that asks for another model, tokenizer, optimizer or dtype
is refused with one line naming each difference, before any tensor is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gptlab.checkpoint import fields_from_weights, model_state, unwrap_model, weight_differences
from gptlab.errors import CheckpointError, UnknownCharactersError
from gptlab.fileio import write_atomic
from gptlab.models import ModelConfig
from gptlab.tokenizers import Tokenizer

from .config import TrainConfig, defaults

STATE_FILE = "training_state.safetensors"


def run_setup(config: TrainConfig, model_config: ModelConfig) -> dict[str, Any]:
    """What a resumed run must share with its saved state, as override key -> value.

    Every model field but dropout (the weights' shapes and meaning), the vocabulary and
    tokenizer, the optimizer kind and the hyperparameters stored in its param groups (a resume
    would silently restore the saved ones), the autocast dtype, and the repeated rows
    (repeat_share, repeat_random: a resume would silently train on other batches). Keys that apply only to one
    choice (bpe_vocab_size, muon_lr) are present only then.
    """
    setup: dict[str, Any] = {_key(k): v for k, v in model_config.to_dict().items() if k != "dropout"}
    setup.update(tokenizer=config.tokenizer, optimizer=config.optimizer, lr=config.lr, beta1=config.beta1,
                 beta2=config.beta2, weight_decay=config.weight_decay, dtype=config.dtype,
                 repeat_share=config.repeat_share, repeat_random=config.repeat_random)  # what each batch holds
    if config.tokenizer == "bpe":
        setup["bpe_vocab_size"] = config.bpe_vocab_size
    if config.optimizer == "muon":
        setup["muon_lr"] = config.muon_lr
    return setup


def setup_differences(saved: dict[str, Any], asked: dict[str, Any], *, inferred: bool = False) -> list[str]:
    """'key: saved X, asked Y' for each key both setups hold with different values.

    A key only one side holds follows from another difference (muon_lr from optimizer), so it
    is skipped. ``inferred``: ``saved`` was read off an older state's shapes, which cannot tell
    the gpt and blocks rungs apart.
    """
    out = []
    for key in sorted(saved.keys() & asked.keys()):
        if key == "model.kind" and inferred and {saved[key], asked[key]} <= {"gpt", "blocks"}:
            continue
        if saved[key] != asked[key]:
            out.append(f"{key}: saved {_shown(saved[key])}, asked {_shown(asked[key])}")
    return out


def data_identity(source: str, text: str) -> dict[str, Any]:
    """The corpus a run trains on, as saved with its state: the data= value, the sha256 of the text's
    UTF-8 bytes (hex) and its length in characters."""
    return {"source": str(source), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "chars": len(text)}


def resumed_ids(path: Path, tokenizer: Tokenizer, text: str, asked: dict[str, Any]) -> list[int]:
    """The token ids of ``text`` for a resume of the state at ``path``, encoded with its saved vocabulary.

    ``asked`` is data_identity of the text. Raises CheckpointError, in one line that names the change
    and the fix, when the state recorded another text (by sha256) or when the text holds characters the
    saved vocabulary lacks (the only check for states written before the text was recorded): a
    character is never trained on as a stand-in.
    """
    saved = _saved_data(path)
    changed = saved is not None and saved.get("sha256") != asked["sha256"]
    try:
        ids = tokenizer.encode(text)
        unknown: list[str] = []
    except UnknownCharactersError as exc:
        ids, unknown = [], sorted(exc.unknown)
    if not (changed or unknown):
        return ids
    parts = []
    if changed:
        parts.append(f"data: saved run trained on {_described(saved)}, asked {_described(asked)}")
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        shown = ", ".join(repr(c) for c in unknown[:10]) + more
        parts.append(f"the text has {len(unknown)} character(s) the saved vocabulary lacks: {shown}")
    if saved is not None and not changed:  # the very text, so the vocabulary is what changed
        raise CheckpointError(f"{path}: {parts[0]}, though it is the text the state was trained on. To continue, "
                              "restore the tokenizer.json saved with this state.")
    again = f"resume with data={saved['source']}" if saved else "resume with the text the state was trained on"
    raise CheckpointError(f"{path}: this run does not train on the saved run's text: {'; '.join(parts)}. "
                          f"To continue, {again}; to train on this text, start a new run in another out= folder.")


def _saved_data(path: Path) -> dict[str, Any] | None:
    """The data_identity a state recorded; None for a state written before it was recorded (or unreadable,
    which load_state reports)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            data = json.loads((f.metadata() or {}).get("json", "{}")).get("data")
    except (OSError, SafetensorError, ValueError):
        return None
    return data if isinstance(data, dict) and "sha256" in data else None


def _described(data: dict[str, Any]) -> str:
    chars = f", {data['chars']:,} characters" if "chars" in data else ""
    return f"{data.get('source', '?')} (sha256 {data['sha256'][:12]}...{chars})"


def _key(field: str) -> str:
    """The override key of a ModelConfig field; vocab_size is not one (it comes from the tokenizer)."""
    return field if field == "vocab_size" else f"model.{field}"


def _shown(value: Any) -> str:
    """A value as it is written on the command line (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def save_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
               extra: dict[str, Any]) -> None:
    """Write model weights (float32), optimizer states, RNG states and ``extra`` (JSON) to one file.

    ``model`` may be wrapped (torch.compile, DDP...): its weights go under their GPT-2 names.
    Put run_setup's dict in ``extra["setup"]`` so load_state can check a resume against it.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in model_state(model).items():
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


def load_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
               setup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore what save_state wrote into ``model`` and ``optimizers``; return the ``extra`` dict.

    ``setup`` (run_setup of the run that resumes) is compared with the saved one first, or with
    what an older file's shapes and param groups reveal. Raises CheckpointError naming each
    difference ("model.block_size: saved 8, asked 16") and the overrides that resume.
    """
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
    model = unwrap_model(model)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    saved_setup = extra.pop("setup", None)
    if setup is not None:
        inferred = saved_setup is None  # written before the setup was recorded
        saved = _setup_from_state(weights, extra["optimizers"]) if inferred else saved_setup
        _refuse_differences(path, setup_differences(saved, setup, inferred=inferred), saved)
    _check_weights(path, model, weights)
    model.load_state_dict(weights, strict=False)  # strict=False: a tied lm_head is stored once
    if len(extra["optimizers"]) != len(optimizers):
        raise CheckpointError(f"{path}: saved with {len(extra['optimizers'])} optimizer(s), this run has "
                              f"{len(optimizers)}: resume with the saved optimizer= setting.")
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
        try:
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        except (ValueError, KeyError) as exc:  # param groups of other sizes: the parameters were regrouped
            raise CheckpointError(f"{path}: the optimizer's parameter groups differ from this run's ({exc}). "
                                  "Resume with the saved optimizer and model settings.") from None
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return extra


def _setup_from_state(weights: dict[str, torch.Tensor], optimizers: list[dict[str, Any]]) -> dict[str, Any]:
    """What a state written before run_setup was recorded reveals: shapes, optimizer, its hyperparameters."""
    fields = fields_from_weights({name: tuple(t.shape) for name, t in weights.items()})
    setup: dict[str, Any] = {_key(k): v for k, v in fields.items()}
    setup["optimizer"] = "muon" if len(optimizers) > 1 else "adamw"
    adamw = optimizers[0]["param_groups"][0]  # the decayed group: lr, betas, weight_decay as asked
    if "peak_lr" in adamw:
        setup["lr"] = adamw["peak_lr"]
    setup["beta1"], setup["beta2"] = adamw["betas"]
    setup["weight_decay"] = adamw["weight_decay"]
    if len(optimizers) > 1 and "peak_lr" in optimizers[1]["param_groups"][0]:
        setup["muon_lr"] = optimizers[1]["param_groups"][0]["peak_lr"]
    return setup


def _refuse_differences(path: Path, differences: list[str], saved: dict[str, Any]) -> None:
    if not differences:
        return
    keys = defaults()
    changed = [d.split(":", 1)[0] for d in differences]
    overrides = " ".join(f"{k}={_shown(saved[k])}" for k in changed if k in keys)
    fix = f"resume with the saved values ({overrides})" if overrides else "resume with the saved settings"
    if "vocab_size" in changed:
        fix += ", restore the tokenizer.json saved with this state"
    raise CheckpointError(f"{path}: this run does not match the saved training state: {'; '.join(differences)}. "
                          f"To continue, {fix}; to change them, start a new run in another out= folder.")


def _check_weights(path: Path, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless ``weights`` fit ``model`` name for name and shape (tied lm_head may be absent)."""
    own = {name: tuple(t.shape) for name, t in model_state(model).items()}
    saved = {name: tuple(t.shape) for name, t in weights.items()}
    tied = {"lm_head.weight"} if getattr(model.config, "tie_weights", False) else set()
    missing, extra = sorted(set(own) - set(saved) - tied), sorted(set(saved) - set(own))
    wrong = [f"{n} saved {saved[n]}, asked {own[n]}" for n in sorted(set(own) & set(saved)) if saved[n] != own[n]]
    if not (missing or extra or wrong):
        return
    fields = weight_differences(model.config, fields_from_weights(saved), inferred=True)
    what = "; ".join(f"{_key(k)}: saved {_shown(s)}, asked {_shown(a)}" for k, s, a in fields) or (
        f"missing {missing[:5]}, unexpected {extra[:5]}, {wrong[:3]}")
    raise CheckpointError(f"{path}: the saved weights do not fit this model ({what}). "
                          "Resume with the model settings the state was saved with.")
