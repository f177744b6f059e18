"""The one causal self-attention used by every attention model of the ladder.

Two paths compute the same thing: PyTorch's fused ``scaled_dot_product_attention`` for speed,
and the explicit softmax(QK^T / sqrt(d)) V, which runs whenever someone listens at one of the
attention's hook points (``hook_q``, ``hook_k``, ``hook_v``, ``hook_attn_scores``, ``hook_pattern``), or a
cached prefix needs an offset mask the fused path cannot express.
CPU training with attention dropout also takes the explicit path: the fused CPU kernel has no
dropout, and its fallback draws the mask the slow way (see dropout.py).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import HookPoint
from .config import ModelConfig
from .dropout import Dropout


class LayerKV:
    """Keys and values of one attention layer for the tokens seen so far (KV cache)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, nh, T_past, hs)
        self.v: torch.Tensor | None = None

    key_bias = None  # every row has the same past: the causal mask follows from ``length`` alone

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """Absolute positions (T,) of the next T tokens."""
        return torch.arange(self.length, self.length + T, device=device)

    def rotary(self, head_size: int, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos and sin for the next T tokens, each (T, hs/2)."""
        return positions_rotary(head_size, self.length, T, device)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """Per-call cache for incremental decoding: one LayerKV per layer, owned by the caller."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [LayerKV() for _ in range(n_layer)]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        return self.layers[0].positions(T, device)


def rotary_tables(head_size: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE angles for positions (T,), each (T, hs/2)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_size, 2, device=positions.device).float() / head_size))
    angles = positions.float()[..., None] * inv_freq
    return angles.cos(), angles.sin()


@functools.lru_cache(maxsize=512)
def positions_rotary(head_size: int, start: int, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """rotary_tables for positions start..start + T - 1, made once and shared by every layer and call (read-only).

    Made outside inference mode even when called inside it, so a table made while generating can later take
    part in training (autograd refuses inference tensors).
    """
    with torch.inference_mode(False):
        return rotary_tables(head_size, torch.arange(start, start + T, device=device))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head's features by position."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


_SQUARES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}  # per kind: the largest causal bias made yet


def causal_bias(past: int, T: int, S: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (T, S) additive causal mask of T queries at positions past..past + T - 1 against S keys: 0 where
    query past + i may see key j (j <= past + i), -inf for later keys.

    A read-only view into one 0/-inf square kept per (dtype, device) and grown on demand, so the written-out
    path does not build a mask in every layer of every forward pass. Add it to scores; never write into it.
    """
    n = max(past + T, S)
    square = _SQUARES.get((dtype, device))
    if square is None or square.size(0) < n:
        n = max(n, 2 * square.size(0)) if square is not None else n
        square = torch.full((n, n), float("-inf"), dtype=dtype, device=device).triu(diagonal=1)
        _SQUARES[(dtype, device)] = square
    return square[past:past + T, :S]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; n_head=1 and no output projection gives the single head."""

    def __init__(self, config: ModelConfig, project_output: bool = True) -> None:
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.head_size
        self.rope = config.pos == "rope"
        self.dropout = config.dropout
        # query, key, value for all heads in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias) if project_output else nn.Identity()
        self.q_norm = nn.RMSNorm(self.head_size, elementwise_affine=False) if config.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_size, elementwise_affine=False) if config.qk_norm else nn.Identity()
        self.attn_dropout = Dropout(config.dropout)
        self.resid_dropout = Dropout(config.dropout)
        # what a learner can read inside the attention, in the order the forward pass makes it
        self.hook_q = HookPoint()  # [batch, head, pos, head_size], after QK-norm and rotary
        self.hook_k = HookPoint()  # [batch, head, pos, head_size], the new positions only (not the KV cache)
        self.hook_v = HookPoint()  # [batch, head, pos, head_size]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos], q·k/sqrt(hs), future -inf
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos], rows sum to 1
        self.hook_z = HookPoint()  # [batch, pos, head, head_size]: each head's output before c_proj mixes them

    @property
    def listening(self) -> bool:
        """True while a hook listens at any of this attention's hook points: the explicit path then runs."""
        return any(p.active for p in (self.hook_q, self.hook_k, self.hook_v, self.hook_attn_scores, self.hook_pattern))

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        B, T, C = x.size()  # batch, time (new tokens), channels (n_embd)
        past = kv.length if kv is not None else 0
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:  # rows of a BatchKVCache each have their own positions
            cos, sin = (kv.rotary(self.head_size, T, x.device) if kv is not None
                        else positions_rotary(self.head_size, 0, T, x.device))
            q, k = apply_rotary(torch.stack([q, k]), cos, sin).unbind(0)  # one rotation for both: fewer ops
        listening = self.listening
        if listening:
            q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        mask = None
        if kv is not None:
            k, v = kv.extend(k, v)  # (B, nh, past + T, hs)
            mask = kv.key_bias  # rows of different lengths: 0 where a query may see a key, else -inf, (B, 1, T, S)

        cpu_dropout = self.training and self.dropout > 0 and x.device.type == "cpu"
        # rows with their own lengths (mask) also go the explicit way: for one new token per row it is faster
        # than the fused kernel's masked path on CPU (bench/class_load.py)
        if listening or mask is not None or (past > 0 and T > 1) or cpu_dropout:
            y = self._explicit(q, k, v, past, mask)
        else:
            # past == 0: the ordinary causal mask; T == 1: one new query sees every cached key
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=past == 0 and T > 1,
            )
        y = self.hook_z(y.transpose(1, 2))  # (B, T, nh, hs)
        y = y.contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))

    def _explicit(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """softmax(QK^T / sqrt(hs)) V written out, so the scores and the pattern can be seen at their hook points."""
        T, S = q.size(2), k.size(2)
        att = (q * (1.0 / math.sqrt(self.head_size))) @ k.transpose(-2, -1)  # (B, nh, T, S); scale the smaller q
        # query i sits at absolute position past + i and may see keys 0..past + i; later keys get -inf (weight 0).
        # Added in place: att is new here (its matmul keeps only q and k), and on CPU adding a 0/-inf matrix is
        # several times faster than masked_fill with a boolean one.
        if mask is None:
            future = causal_bias(past, T, S, att.dtype, q.device)  # (T, S), 0 or -inf
        else:  # per-row lengths (BatchKVCache): a key a row has not reached, or padding, is -inf already
            future = mask
        att += future
        att = self.hook_attn_scores(att)
        att = F.softmax(att, dim=-1)
        att = self.hook_pattern(att)
        att = self.attn_dropout(att)
        return att @ v  # (B, nh, T, hs)
