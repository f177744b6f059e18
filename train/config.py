"""Training configs as dataclasses, overridable from the command line as key=value (nested with dots)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from gptlab.errors import ConfigError
from gptlab.models import ModelConfig


@dataclass
class ModelSettings:
    """Mutable mirror of gptlab's ModelConfig, so presets and overrides can edit it."""

    kind: str = "gpt"
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = False
    pos: str = "learned"
    qk_norm: bool = False
    mlp: str = "gelu"
    mlp_ratio: int = 4

    def build(self, vocab_size: int) -> ModelConfig:
        config = ModelConfig(vocab_size=vocab_size, **dataclasses.asdict(self))
        config.validate()
        return config


@dataclass
class TrainConfig:
    """Everything a training run needs; every field can be set as key=value."""

    model: ModelSettings = field(default_factory=ModelSettings)
    data: str = "tinyshakespeare"  # 'tinyshakespeare' (shipped with gptlab, verified) or a path to a UTF-8 text file
    tokenizer: str = "char"  # char | bpe
    bpe_vocab_size: int = 512  # only for tokenizer=bpe
    out: str = ""  # checkpoint folder; default checkpoints/<preset>
    max_iters: int = 5000  # optimizer steps; the learning-rate schedule spans them
    stop_at: int = 0  # end this run early at this step (0 = run to max_iters); resume later
    max_time: float = 0.0  # stop after this many seconds of wall time (0 = no limit)
    batch_size: int = 32  # sequences per micro-batch (per process under torchrun)
    grad_accum: int = 1  # micro-batches per step, over all processes: global batch = batch_size * grad_accum
    optimizer: str = "adamw"  # adamw | muon (Muon for 2-D block weights, AdamW for the rest)
    lr: float = 1e-3  # peak AdamW learning rate
    muon_lr: float = 0.02  # peak Muon learning rate (optimizer=muon)
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of the peak
    warmup_iters: int = 100
    decay: str = "cosine"  # cosine | linear | constant
    weight_decay: float = 0.1  # applied to 2-D weights only (not biases, not LayerNorm)
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    eval_interval: int = 250
    eval_iters: int = 20  # batches of train and of val per evaluation
    sample_tokens: int = 200  # length of the sample written at each evaluation
    snapshots: str = ""  # comma-separated steps at which a bfloat16 copy goes to <out>/snapshots/
    save_dtype: str = "float32"  # float32 | bfloat16 | float16 for the shipped model.safetensors
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    dtype: str = "float32"  # float32 | bfloat16 | float16 (autocast; float16 uses a grad scaler)
    compile: bool = False  # torch.compile, falling back with a warning where unavailable
    threads: int = 0  # CPU threads (0 = all cores)
    seed: int = 1337
    resume: str = "false"  # false | true (from <out>) | path to a checkpoint folder
    push_to_hub: str = ""  # user/repo to upload the best checkpoint to at the end
    progress: bool = True  # show the progress bar


def field_types(cls: type = TrainConfig, prefix: str = "") -> dict[str, tuple[type, Any]]:
    """Flat map 'a.b' -> (type, default) of every settable key."""
    out: dict[str, tuple[type, Any]] = {}
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out.update(field_types(type(value), f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (type(value), value)
    return out


def parse_value(key: str, raw: str, kind: type) -> Any:
    """Convert a command-line string to the key's type, or raise ConfigError saying why."""
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(raw.replace("_", ""))
        if kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        return raw
    except ValueError:
        raise ConfigError(f"{key}={raw!r}: expected {kind.__name__}.") from None


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Set key=value pairs on a config; unknown keys or bad values raise ConfigError before any work."""
    types = field_types()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"'{item}' is not key=value. Valid keys: {', '.join(types)}.")
        if key not in types:
            raise ConfigError(f"Unknown key '{key}'. Valid keys: {', '.join(types)}.")
        set_key(config, key, parse_value(key, raw, types[key][0]))
    validate(config)
    return config


def set_key(config: TrainConfig, key: str, value: Any) -> None:
    """Set a dotted key ('lr', 'model.n_embd') to an already typed value."""
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, leaf, value)


def validate(config: TrainConfig) -> None:
    """Range checks that would otherwise fail deep inside the run."""
    checks = [
        (config.tokenizer in ("char", "bpe"), "tokenizer must be char or bpe"),
        (config.max_iters >= 1, "max_iters must be at least 1"),
        (config.batch_size >= 1 and config.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
        (config.optimizer in ("adamw", "muon"), "optimizer must be adamw or muon"),
        (config.decay in ("cosine", "linear", "constant"), "decay must be cosine, linear or constant"),
        (config.lr > 0 and config.muon_lr > 0, "learning rates must be positive"),
        (0 <= config.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
        (config.eval_interval >= 1 and config.eval_iters >= 1, "eval_interval and eval_iters must be at least 1"),
        (config.save_dtype in ("float32", "bfloat16", "float16"), "save_dtype must be float32, bfloat16 or float16"),
        (config.dtype in ("float32", "bfloat16", "float16"), "dtype must be float32, bfloat16 or float16"),
        (config.warmup_iters >= 0 and config.grad_clip >= 0, "warmup_iters and grad_clip must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message + ".")
    try:
        config.model.build(vocab_size=65)
        snapshot_steps(config)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def snapshot_steps(config: TrainConfig) -> list[int]:
    return sorted({int(s) for s in config.snapshots.split(",") if s.strip()})


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
