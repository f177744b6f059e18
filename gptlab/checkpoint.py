"""Checkpoint folders: config.json, model.safetensors, tokenizer.json, metrics.json, README.md.

Loading reads JSON and safetensors only (never a pickle), validates the config before any
tensor is allocated, and checks every tensor's name, shape and dtype against the config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .card import model_card
from .errors import CheckpointError, ConfigError
from .fileio import write_atomic, write_text_atomic
from .hub import download_checkpoint, looks_like_repo_id
from .models import LanguageModel, ModelConfig, build_model, count_parameters
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHT_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


@dataclass
class Checkpoint:
    """A loaded model with its tokenizer and what its folder says about it."""

    model: LanguageModel
    tokenizer: CharTokenizer | BPETokenizer
    folder: Path
    info: dict[str, Any] = field(default_factory=dict)  # config.json minus the model block
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json, if present

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def n_params(self) -> int:
        return count_parameters(self.model)

    @property
    def best_val_loss(self) -> float | None:
        best = self.metrics.get("best") or {}
        return best.get("val_loss")


def save_checkpoint(
    folder: str | Path,
    model: LanguageModel,
    tokenizer: CharTokenizer | BPETokenizer,
    *,
    metrics: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a complete checkpoint folder, each file atomically (old or new, never half)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format": "gptlab", "format_version": FORMAT_VERSION, "model": model.config.to_dict(),
              "tokenizer": tokenizer.kind, **(info or {})}
    tokenizer.save(folder)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2))
    save_weights(folder / WEIGHTS_FILE, model, dtype)
    if metrics is not None:
        write_text_atomic(folder / METRICS_FILE, json.dumps(metrics, indent=2))
    write_text_atomic(folder / CARD_FILE, model_card(model.config, config, metrics or {}, count_parameters(model)))
    return folder


def save_weights(path: Path, model: LanguageModel, dtype: torch.dtype | None = None) -> None:
    """model.safetensors; a tied lm_head is stored once (as transformer.wte) and re-tied on load."""
    tensors = {
        name: t.detach().to(dtype or t.dtype).contiguous().cpu()
        for name, t in model.state_dict().items()
        if name not in tied_names(model)
    }
    write_atomic(path, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))


def tied_names(model: LanguageModel) -> set[str]:
    return {"lm_head.weight"} if model.config.tie_weights else set()


def read_config(folder: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The validated ModelConfig and the rest of config.json; nothing is allocated yet."""
    path = folder / CONFIG_FILE
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != "gptlab" or "model" not in data:
        raise CheckpointError(f"{path}: not a gptlab config (no \"format\": \"gptlab\" and \"model\" block).")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {data.get('format_version')!r} is not {FORMAT_VERSION}.")
    try:
        config = ModelConfig.from_dict(data["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return config, {k: v for k, v in data.items() if k != "model"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing.") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is corrupt or foreign.") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}).") from None


def resolve_folder(source: str | Path) -> Path:
    """A local checkpoint folder for a path or a Hub repo id (downloaded or from the cache)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; a checkpoint is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}.")
    if isinstance(source, str) and looks_like_repo_id(source):
        return download_checkpoint(source)
    raise CheckpointError(f"No checkpoint folder at {path}, and '{source}' is not a Hub repo id (user/name).")


def load_checkpoint(source: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a model, its tokenizer and metrics from a folder or a Hub repo id, in eval mode."""
    folder = resolve_folder(source)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{folder}: holds {pickles} but no {WEIGHTS_FILE}. Pickle files can run code when "
                "loaded, so gptlab refuses them; convert the weights to safetensors."
            )
        raise CheckpointError(f"{weights}: missing.")
    config, info = read_config(folder)
    tokenizer = load_tokenizer(folder)
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but {CONFIG_FILE} says "
            f"vocab_size={config.vocab_size}."
        )
    if info.get("tokenizer", tokenizer.kind) != tokenizer.kind:
        raise CheckpointError(
            f"{folder}: {CONFIG_FILE} says tokenizer {info['tokenizer']!r} "
            f"but the tokenizer file is {tokenizer.kind!r}."
        )
    metrics_path = folder / METRICS_FILE
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{metrics_path}: must be a JSON object, got {type(metrics).__name__}.")
    skeleton = build_model(config, "meta")  # shapes only: costs no memory
    # every tensor is checked against the config before the real model is allocated, so a config
    # that promises a huge model next to a small (or foreign) weights file costs nothing
    tensors = _read_weights(weights, skeleton.state_dict(), tied_names(skeleton))
    model = build_model(config, device)
    model.load_state_dict(tensors, strict=False)
    model.eval()
    return Checkpoint(model=model, tokenizer=tokenizer, folder=folder, info=info, metrics=metrics)


def _read_weights(path: Path, expected: dict[str, torch.Tensor], tied: set[str]) -> dict[str, torch.Tensor]:
    """Every tensor of the file, checked against the expected names, shapes and dtypes, as float32."""
    wanted = {k: v for k, v in expected.items() if k not in tied}
    try:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            missing, extra = sorted(set(wanted) - names), sorted(names - set(wanted))
            if missing or extra:
                raise CheckpointError(
                    f"{path}: does not match config.json (missing {missing[:5]}, unexpected {extra[:5]})."
                )
            tensors = {}
            for name in wanted:
                sl = f.get_slice(name)
                shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
                if shape != tuple(wanted[name].shape):
                    raise CheckpointError(
                        f"{path}: tensor {name} has shape {shape}, config.json implies {tuple(wanted[name].shape)}."
                    )
                if dtype not in WEIGHT_DTYPES:
                    raise CheckpointError(f"{path}: tensor {name} has dtype {dtype}; expected F32, BF16 or F16.")
                tensor = f.get_tensor(name).to(wanted[name].dtype)
                if not torch.isfinite(tensor).all():  # NaN weights would only fail later, mid-generation
                    raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values.")
                tensors[name] = tensor
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it may be truncated.") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}).") from None
    return tensors
