"""Training configs as dataclasses, overridable from the command line as key=value (nested with dots)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gptlab import settings
from gptlab.errors import ConfigError
from gptlab.models import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; every field can be set as key=value (model fields as model.<field>)."""

    model: ModelConfig = field(default_factory=ModelConfig)  # its vocab_size comes from the tokenizer
    data: str = "tinyshakespeare"  # 'tinyshakespeare' (shipped with gptlab, verified) or a path to a UTF-8 text file
    tokenizer: str = "char"  # char | bpe
    bpe_vocab_size: int = 512  # only for tokenizer=bpe
    out: str = ""  # checkpoint folder; default runs/<preset> (the shipped checkpoints/ stay untouched)
    max_iters: int = 5000  # optimizer steps; the learning-rate schedule spans them
    stop_at: int = 0  # end this run early at this step (0 = run to max_iters); resume later
    max_time: float = 0.0  # stop after this many seconds of wall time (0 = no limit)
    batch_size: int = 32  # sequences per micro-batch (per process under torchrun)
    repeat_share: float = 0.0  # fraction of training rows that repeat a passage (teaches copying; 0 = plain text)
    repeat_random: bool = False  # those rows repeat a random string of tokens instead (no English to fall back on)
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


# keys that exist in the dataclasses but are not set on the command line, and why
FROM_TOKENIZER = {"model.vocab_size": "the tokenizer decides it (tokenizer=char: the corpus's characters, "
                                      "tokenizer=bpe: bpe_vocab_size)"}


def defaults() -> dict[str, Any]:
    """Every key a run takes, with its default before any preset: {'lr': 0.001, 'model.n_layer': 6, ...}."""
    return {key: value for key, value in settings.values(TrainConfig()).items() if key not in FROM_TOKENIZER}


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """A new config with key=value pairs applied (gptlab.settings); ConfigError before any work.

    Raises for a pair that is not key=value, an unknown key (listing the valid ones), a value of
    the wrong type, or a combination out of range (validate).
    """
    config = settings.override(config, overrides, fixed=FROM_TOKENIZER)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Range checks that would otherwise fail deep inside the run."""
    checks = [
        (config.tokenizer in ("char", "bpe"), "tokenizer must be char or bpe"),
        (config.max_iters >= 1, "max_iters must be at least 1"),
        (config.batch_size >= 1 and config.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
        (0.0 <= config.repeat_share <= 1.0, "repeat_share must be in 0..1 (a fraction of each batch's rows)"),
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
    config.model.validate()
    _check_repeats(config)
    try:
        snapshot_steps(config)
    except ValueError as exc:
        raise ConfigError(f"snapshots must be whole numbers separated by commas, got {config.snapshots!r}.") from exc


def repeated_rows(config: TrainConfig) -> int:
    """Rows of each micro-batch that repeat (gptlab.data.get_batch rounds repeat_share * batch_size)."""
    return round(config.repeat_share * config.batch_size)


def _check_repeats(config: TrainConfig) -> None:
    """ConfigError for a repeat setting get_batch would refuse, or one that would silently do nothing."""
    rows = repeated_rows(config)
    if config.repeat_random and not config.repeat_share:
        raise ConfigError("repeat_random=true does nothing with repeat_share=0: set repeat_share (for example 0.5) "
                          "or drop repeat_random.")
    if config.repeat_share and not rows:
        raise ConfigError(f"repeat_share={config.repeat_share} of batch_size={config.batch_size} rounds to 0 "
                          f"repeated rows: raise repeat_share to at least {1 / config.batch_size:.3g} or raise "
                          "batch_size.")
    if rows and config.model.block_size < 4:
        raise ConfigError(f"repeat_share needs model.block_size of at least 4 (a passage of 2 and its copy), got "
                          f"{config.model.block_size}.")


def snapshot_steps(config: TrainConfig) -> list[int]:
    return sorted({int(s) for s in config.snapshots.split(",") if s.strip()})


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
