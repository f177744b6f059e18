"""The two models that generation, capture and the app are measured on."""

from __future__ import annotations

import torch

from gptlab import ModelConfig, build_model, load_checkpoint
from gptlab.errors import GptlabError
from train.presets import make_preset

from .common import REPO, VOCAB, Options

DEFAULT_CHECKPOINT = REPO / "checkpoints" / "gpt"
QUICK_CLASSIC = dict(n_layer=2, n_embd=96, block_size=64)


def default_model(options: Options) -> tuple[torch.nn.Module, str]:
    """The app's default model: the shipped checkpoints/gpt, else the gpt preset with random weights."""
    if DEFAULT_CHECKPOINT.is_dir():
        try:
            checkpoint = load_checkpoint(DEFAULT_CHECKPOINT)
            return checkpoint.model.eval(), f"checkpoints/gpt ({_shape(checkpoint.config)}, trained)"
        except GptlabError as exc:
            print(f"bench: checkpoints/gpt not loadable ({exc}); using random weights")
    config = make_preset("gpt").model.build(VOCAB)
    torch.manual_seed(0)
    return build_model(config).eval(), f"gpt preset ({_shape(config)}, random weights)"


def classic_model(options: Options) -> tuple[torch.nn.Module, str]:
    """The classic 6/6/384/256 GPT with random weights (speed does not depend on training)."""
    settings = make_preset("gpt-classic").model
    config = settings.build(VOCAB)
    if options.quick:
        config = ModelConfig(**{**config.to_dict(), **QUICK_CLASSIC})
    torch.manual_seed(0)
    return build_model(config).eval(), f"classic ({_shape(config)}, random weights)"


def _shape(config: ModelConfig) -> str:
    return f"{config.n_layer}L/{config.n_head}H/{config.n_embd}C/T{config.block_size}"
