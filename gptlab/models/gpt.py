"""The attention rungs of the ladder and the full GPT, in reading order:
MLP, Block (attention + MLP + residual + LayerNorm), AttentionOnly (the head-only rungs), GPT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..hooks import HookPoint, name_hook_points
from .attention import CausalSelfAttention, KVCache, LayerKV
from .config import ModelConfig
from .dropout import Dropout


class MLP(nn.Module):
    """Position-wise feed-forward: widen, non-linearity, project back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.act = nn.GELU() if config.mlp == "gelu" else ReLUSquared()
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class ReLUSquared(nn.Module):
    """relu(x)^2: a cheap activation that trains small models as well as GELU or better."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class Block(nn.Module):
    """Pre-LN transformer block: communicate (attention), then compute (MLP), both residual."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.hook_resid_post = HookPoint()  # [batch, pos, n_embd]: residual stream after the block

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv)
        x = x + self.mlp(self.ln_2(x))
        return self.hook_resid_post(x)


class AttentionOnly(nn.Module):
    """The head-only rungs: attention replaces the embedding (no residual, no MLP, no LayerNorm)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        # the tutorial's single head has no output projection; several heads get one to mix them
        self.attn = CausalSelfAttention(config, project_output=config.kind != "single_head")
        self.hook_resid_post = HookPoint()  # [batch, pos, n_embd]

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        return self.hook_resid_post(self.attn(x, kv))


class GPT(nn.Module):
    """Token + position embeddings, a stack of layers, final LayerNorm, LM head.

    The same class builds the ``single_head``, ``multi_head``, ``blocks`` and ``gpt`` rungs;
    parameter names follow nanoGPT/GPT-2 (``transformer.wte``, ``transformer.h.0.attn.c_attn``...).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        attention_only = config.kind in ("single_head", "multi_head")
        layer = AttentionOnly if attention_only else Block
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd) if config.pos == "learned" else None,
                drop=Dropout(config.dropout),
                h=nn.ModuleList([layer(config) for _ in range(config.n_layer)]),
                ln_f=nn.Identity() if attention_only else nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.hook_embed = HookPoint()  # [batch, pos, n_embd]: residual stream before layer 0
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        name_hook_points(self)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position (B, T, vocab) and, given targets, the mean cross-entropy.

        ``cache`` (a KVCache, or a BatchKVCache whose rows each have their own length) holds the keys and
        values of earlier tokens; the T new tokens then continue at the cache's positions.
        """
        B, T = idx.size()
        past = cache.length if cache is not None else 0  # a BatchKVCache: its longest row
        if past + T > self.config.block_size:
            raise InputError(f"{past + T} tokens exceed the context of {self.config.block_size}: keep the last "
                             f"{self.config.block_size} (idx[:, -{self.config.block_size}:]) or start a new cache.")
        x = self.transformer.wte(idx)  # (B, T, n_embd)
        if self.transformer.wpe is not None:  # positions (T,), or (B, T) for a BatchKVCache
            positions = cache.positions(T, idx.device) if cache is not None else torch.arange(T, device=idx.device)
            x = x + self.transformer.wpe(positions)
        x = self.hook_embed(self.transformer.drop(x))
        for i, layer in enumerate(self.transformer.h):
            x = layer(x, cache.layers[i] if cache is not None else None)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits read from a residual stream tensor (the logit lens)."""
        return self.lm_head(self.transformer.ln_f(resid))
