"""The model ladder: bigram -> single head -> multi-head -> transformer blocks -> GPT."""

from __future__ import annotations

import torch
from torch import nn

from .attention import CausalSelfAttention, KVCache
from .bigram import BigramLanguageModel
from .config import KINDS, ModelConfig
from .gpt import GPT, Block

LanguageModel = GPT | BigramLanguageModel


def build_model(config: ModelConfig, device: str | torch.device | None = None) -> LanguageModel:
    """The model class for config.kind, freshly initialised."""
    model_class = BigramLanguageModel if config.kind == "bigram" else GPT
    with torch.device(device or "cpu"):
        return model_class(config)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "KINDS", "GPT", "Block", "BigramLanguageModel", "CausalSelfAttention", "KVCache",
    "LanguageModel", "ModelConfig", "build_model", "count_parameters",
]
