"""The first rung: each token looks up the logits of the next one in a table, no context."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class BigramLanguageModel(nn.Module):
    """A (vocab x vocab) table of next-token logits: row i holds the guesses after token i."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: object | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) and, given targets, the mean cross-entropy."""
        logits = self.token_embedding_table(idx)  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def new_cache(self) -> None:
        return None  # nothing to remember: only the last token matters
