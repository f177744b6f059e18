"""The models the bench measures: the training sizes (sections 1 and 2), and the two models that
generation, capture and the app are measured on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from gptlab import ModelConfig, build_model, load_checkpoint
from gptlab.errors import GptlabError
from gptlab.settings import with_values
from train.config import TrainConfig
from train.presets import make_preset

from .common import REPO, VOCAB, Options

DEFAULT_CHECKPOINT = REPO / "checkpoints" / "gpt"


@dataclass(frozen=True)
class Size:
    """A model size measured here: the preset it comes from, and a tiny stand-in for --quick."""

    preset: str
    target_ratio: float | None  # gptlab's training tokens/s over the tutorial's must reach this (None: no target)
    quick: dict[str, Any]  # dotted keys of the preset's TrainConfig that --quick changes

    def train_config(self, options: Options) -> TrainConfig:
        config = make_preset(self.preset)
        config = with_values(config, self.quick) if options.quick else config
        return replace(config, model=replace(config.model, vocab_size=VOCAB))

    def model_config(self, options: Options) -> ModelConfig:
        return self.train_config(options).model

    def batch(self, options: Options) -> int:
        return self.train_config(options).batch_size


SIZES = {
    # gpt-mini's >= 2x target is retired (issue 16: a profile put it below the matmul floor at this size);
    # the time-to-quality rows of section 3 carry its targets instead
    "gpt-mini": Size("gpt-mini", None, {"batch_size": 4}),
    "classic": Size("gpt-classic", 1.5, {"batch_size": 2, "model.block_size": 64, "model.n_layer": 2,
                                         "model.n_embd": 96}),
}


def default_model(options: Options) -> tuple[torch.nn.Module, str]:
    """The app's default model: the shipped checkpoints/gpt, else the gpt preset with random weights."""
    if DEFAULT_CHECKPOINT.is_dir():
        try:
            checkpoint = load_checkpoint(DEFAULT_CHECKPOINT)
            return checkpoint.model.eval(), f"checkpoints/gpt ({_shape(checkpoint.config)}, trained)"
        except GptlabError as exc:
            print(f"bench: checkpoints/gpt not loadable ({exc}); using random weights")
    config = replace(make_preset("gpt").model, vocab_size=VOCAB)
    torch.manual_seed(0)
    return build_model(config).eval(), f"gpt preset ({_shape(config)}, random weights)"


def classic_model(options: Options) -> tuple[torch.nn.Module, str]:
    """The classic 6/6/384/256 GPT with random weights (speed does not depend on training)."""
    config = SIZES["classic"].model_config(options)  # --quick: the small stand-in training is timed on
    torch.manual_seed(0)
    return build_model(config).eval(), f"classic ({_shape(config)}, random weights)"


def _shape(config: ModelConfig) -> str:
    return f"{config.n_layer}L/{config.n_head}H/{config.n_embd}C/T{config.block_size}"
