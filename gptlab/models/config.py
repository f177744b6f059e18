"""ModelConfig: one frozen dataclass describes every rung of the ladder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

KINDS = ("bigram", "single_head", "multi_head", "blocks", "gpt")

# Upper bounds that keep a config from a stranger's file from allocating the machine away.
MAX_VOCAB = 1_000_000
MAX_EMBD = 16_384
MAX_LAYERS = 128
MAX_HEADS = 256
MAX_BLOCK = 65_536
MAX_PARAMS = 3_000_000_000


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a language model; the same fields for every rung of the ladder."""

    kind: str = "gpt"  # bigram | single_head | multi_head | blocks | gpt
    vocab_size: int = 65  # Tiny Shakespeare has 65 distinct characters
    block_size: int = 256  # context length: the most tokens attention can see
    n_layer: int = 6  # transformer blocks (attention-only rungs use 1)
    n_head: int = 6  # attention heads per layer
    n_embd: int = 384  # width of the residual stream
    dropout: float = 0.0  # on attention weights, residual branches and embeddings
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2 has them)
    tie_weights: bool = False  # share wte and lm_head (GPT-2 does; small char models gain little)
    pos: str = "learned"  # learned (GPT-2) | rope (rotary, relative positions)
    qk_norm: bool = False  # RMS-normalise queries and keys per head before the dot product
    mlp: str = "gelu"  # gelu (GPT-2) | relu2 (ReLU squared)
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ConfigError unless every field is in range (checked before any allocation)."""
        checks = [
            (self.kind in KINDS, f"kind must be one of {KINDS}, got {self.kind!r}"),
            (1 <= self.vocab_size <= MAX_VOCAB, f"vocab_size must be in 1..{MAX_VOCAB}"),
            (1 <= self.block_size <= MAX_BLOCK, f"block_size must be in 1..{MAX_BLOCK}"),
            (1 <= self.n_layer <= MAX_LAYERS, f"n_layer must be in 1..{MAX_LAYERS}"),
            (1 <= self.n_head <= MAX_HEADS, f"n_head must be in 1..{MAX_HEADS}"),
            (1 <= self.n_embd <= MAX_EMBD, f"n_embd must be in 1..{MAX_EMBD}"),
            (self.n_embd % self.n_head == 0, "n_embd must be a multiple of n_head"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.pos in ("learned", "rope"), "pos must be 'learned' or 'rope'"),
            (self.pos != "rope" or self.head_size % 2 == 0, "rope needs an even head size"),
            (self.mlp in ("gelu", "relu2"), "mlp must be 'gelu' or 'relu2'"),
            (1 <= self.mlp_ratio <= 16, "mlp_ratio must be in 1..16"),
            (self.kind != "single_head" or self.n_head == 1, "single_head needs n_head=1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid model config: {message}.")
        if self.estimated_params() > MAX_PARAMS:
            raise ConfigError(
                f"Model config asks for about {self.estimated_params():,} parameters "
                f"(limit {MAX_PARAMS:,}); this is not a gptlab model."
            )

    def estimated_params(self) -> int:
        """Parameter count from the config alone, without building the model."""
        v, c, t = self.vocab_size, self.n_embd, self.block_size
        if self.kind == "bigram":
            return v * v
        per_layer = 4 * c * c + self.mlp_ratio * c * c * 2
        return v * c * (1 if self.tie_weights else 2) + t * c + self.n_layer * per_layer
