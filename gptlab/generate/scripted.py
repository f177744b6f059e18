"""The generation engine's steps for a GPT, compiled once with TorchScript: the prefill of prompts from
position 0, the decode of one new token per row with every row at its own position (rows of the engine's
``BatchKVCache``), and the per-row draw of ``sample_rows``.

Each computes what the model computes for that input, op for op in the same order (logits and cache equal to
the last bit on the models tested in tests/test_scripted_decode.py, float32 and bfloat16), with two
differences that are about speed only:

- TorchScript runs a whole step in C++ and lets go of Python's global interpreter lock while it runs. The
  engine splits a big batch in two halves whose forwards run at once on two threads; through the modules,
  the two threads took turns at the lock for every one of a step's ~150 operations, so the second core added
  almost nothing (30 rows of the shipped gpt: 8.6 ms a step split, 9.4 ms on one thread). Scripted, the
  halves really run side by side (6.2 ms), and one row alone takes 1.1 ms instead of 2.4 ms. In the app the
  lock is also wanted by Gradio's threads (30 learners' first pieces go out at once): the fewer times a step
  has to take it back, the less the engine waits for them.
- No hook points and no dropout: ``scripted_steps_for`` returns None, and the engine uses the model's own
  forward, for anything these steps would not compute exactly as the model does: a model that is not a
  plain ``GPT`` of ``Block`` layers (the attention-only rungs, a replaced module), any forward hook or
  pre-hook registered on any of its modules or globally (gptlab.hooks, ablation, a user's own), training mode
  with dropout, or a Python without the sources TorchScript compiles from.

``torch.jit.script`` is deprecated in favour of ``torch.compile``, which on a CPU needs a C++ compiler at run
time and compiles for tens of seconds per shape; if a later PyTorch drops TorchScript, scripting fails and
the engine keeps working on the model's forward, slower.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..hooks import HookPoint
from ..models.attention import CausalSelfAttention, KVCache, positions_rotary
from ..models.batch_cache import BatchKVCache
from ..models.dropout import Dropout
from ..models.gpt import GPT, MLP, Block, ReLUSquared


def _heads(x: torch.Tensor, w: list[torch.Tensor], n_head: int, qk_norm: bool, rope: bool, cos: torch.Tensor,
           sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A block's queries, keys and values (B, nh, T, hs) from its input x (B, T, C), as CausalSelfAttention makes
    them after ln_1: one c_attn matmul, QK-norm, then the rotary positions of both at once."""
    B, T, C = x.shape
    hs = C // n_head
    q, k, v = F.linear(F.layer_norm(x, [C], w[0], w[1]), w[2], w[3]).split(C, dim=2)
    q = q.view(B, T, n_head, hs).transpose(1, 2)
    k = k.view(B, T, n_head, hs).transpose(1, 2)
    v = v.view(B, T, n_head, hs).transpose(1, 2)
    if qk_norm:
        q = F.rms_norm(q, [hs])
        k = F.rms_norm(k, [hs])
    if rope:
        qk = torch.stack([q, k])
        x1, x2 = qk.chunk(2, dim=-1)
        qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(qk)
        q, k = qk[0], qk[1]
    return q, k, v


def _rest_of_block(x: torch.Tensor, y: torch.Tensor, w: list[torch.Tensor], activation: int) -> torch.Tensor:
    """The block after attention: y (B, nh, T, hs) through c_proj into the residual stream, then the MLP."""
    B, T, C = x.shape
    x = x + F.linear(y.transpose(1, 2).contiguous().view(B, T, C), w[4], w[5])
    h = F.linear(F.layer_norm(x, [C], w[6], w[7]), w[8], w[9])
    h = F.gelu(h) if activation == 0 else F.relu(h).square()
    return x + F.linear(h, w[10], w[11])


def _decode_step(idx: torch.Tensor, lengths: torch.Tensor, lo: int, wte: torch.Tensor, wpe: torch.Tensor,
                 cos_table: torch.Tensor, sin_table: torch.Tensor, layers: list[list[torch.Tensor]],
                 ln_f: list[torch.Tensor], head: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor],
                 n_head: int, rope: bool, qk_norm: bool, activation: int) -> torch.Tensor:
    """Logits (rows, 1, vocab) for idx (rows, 1): one new token for each of the cache rows lo..lo + rows - 1,
    whose lengths (rows,) say the position it takes; its key and value are written there.

    wpe: the position embedding, (block_size, n_embd), or an empty tensor with rotary positions (rope), whose
    cos and sin for every position of the context are cos_table and sin_table (block_size, hs/2). layers: per
    block, in this order, ln_1 weight and bias, c_attn weight and bias, attention c_proj weight and bias, ln_2
    weight and bias, MLP c_fc weight and bias, MLP c_proj weight and bias (a missing bias is a zero tensor:
    adding 0.0 changes no float). keys, values: per layer the cache storage (capacity, nh, block_size, hs).
    activation: 0 GELU, 1 ReLU². Positions, mask and rotary angles are made as RowsView makes them, and the
    attention is written out as CausalSelfAttention._explicit computes it with a BatchKVCache's mask.
    """
    positions = lengths[:, None]  # (rows, 1): each row's new token sits at its length
    rows = torch.arange(lo, lo + lengths.size(0), device=idx.device)[:, None]
    S = int(lengths.max()) + 1
    visible = torch.arange(S, device=idx.device) <= positions[:, None, :, None]  # (rows, 1, 1, S)
    key_bias = torch.zeros(visible.shape, device=idx.device).masked_fill(~visible, float("-inf"))
    x = F.embedding(idx, wte)  # (rows, 1, C)
    cos = sin = wte
    if rope:
        cos, sin = cos_table[positions].unsqueeze(1), sin_table[positions].unsqueeze(1)  # (rows, 1, 1, hs/2)
    else:
        x = x + F.embedding(positions, wpe)
    scale = 1.0 / math.sqrt(x.size(-1) // n_head)
    for i, w in enumerate(layers):
        q, k, v = _heads(x, w, n_head, qk_norm, rope, cos, sin)  # (rows, nh, 1, hs)
        keys[i][rows, :, positions] = k.transpose(1, 2)  # each row's new key at its own position
        values[i][rows, :, positions] = v.transpose(1, 2)
        att = (q * scale) @ keys[i][lo:lo + lengths.size(0), :, :S].transpose(-2, -1)  # (rows, nh, 1, S)
        att += key_bias
        att = F.softmax(att, dim=-1)
        x = _rest_of_block(x, att @ values[i][lo:lo + lengths.size(0), :, :S], w, activation)
    return F.linear(F.layer_norm(x, [x.size(-1)], ln_f[0], ln_f[1]), head)


def _race(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """sample_rows's exponential race, row j drawn from generators[j]: token ids (rows,)."""
    race = torch.empty_like(probs)
    for j in range(len(generators)):
        race[j].exponential_(1.0, generator=generators[j])
    return (probs / race).argmax(dim=-1)


def _prefill_step(idx: torch.Tensor, wte: torch.Tensor, wpe: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                  layers: list[list[torch.Tensor]], ln_f: list[torch.Tensor], head: torch.Tensor, n_head: int,
                  rope: bool, qk_norm: bool, activation: int
                  ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Logits (B, T, vocab) for prompts idx (B, T) from position 0, and every layer's keys and values
    (B, nh, T, hs): what ``model(idx, cache=model.new_cache())`` returns and leaves in its cache. Arguments as
    ``_decode_step``'s; cos and sin (T, hs/2) for positions 0..T-1. The attention is PyTorch's fused one, causal,
    as the model's own forward takes it for a fresh cache.
    """
    x = F.embedding(idx, wte)  # (B, T, C)
    T = idx.size(1)
    if not rope:
        x = x + F.embedding(torch.arange(0, T, device=idx.device), wpe)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for w in layers:
        q, k, v = _heads(x, w, n_head, qk_norm, rope, cos, sin)  # (B, nh, T, hs)
        keys.append(k)
        values.append(v)
        x = _rest_of_block(x, F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=T > 1), w,
                           activation)
    return F.linear(F.layer_norm(x, [x.size(-1)], ln_f[0], ln_f[1]), head), keys, values


_scripted: dict[str, Any] = {}  # the compiled steps, made on first use; empty after scripting failed
_script_lock = threading.Lock()
_script_failed = False


def _compiled() -> dict[str, Any]:
    global _script_failed
    with _script_lock:
        if not _scripted and not _script_failed:
            try:
                # once per process: torch.jit.script warns that it is deprecated (see the module note), and a
                # caller's filter that turns warnings into errors must not turn the scripted steps off for good
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                                            category=DeprecationWarning)
                    _scripted.update(decode=torch.jit.script(_decode_step), prefill=torch.jit.script(_prefill_step),
                                     race=torch.jit.script(_race))
            except Exception:  # noqa: BLE001 - no sources, no TorchScript: the engine uses the model's forward
                _scripted.clear()
                _script_failed = True
        return _scripted


@functools.lru_cache(maxsize=64)
def _expected_modules(n_layer: int, pos: str, mlp: str, qk_norm: bool) -> dict[str, type]:
    """Every module of a GPT as GPT.__init__ builds it (gpt or blocks kind), by path: its type. Read-only."""
    norm = nn.RMSNorm if qk_norm else nn.Identity
    spec: dict[str, type] = {"": GPT, "transformer": nn.ModuleDict, "transformer.wte": nn.Embedding,
                             "transformer.drop": Dropout, "transformer.h": nn.ModuleList,
                             "transformer.ln_f": nn.LayerNorm, "hook_embed": HookPoint, "lm_head": nn.Linear}
    if pos == "learned":
        spec["transformer.wpe"] = nn.Embedding
    for i in range(n_layer):
        b = f"transformer.h.{i}"
        spec |= {b: Block, f"{b}.ln_1": nn.LayerNorm, f"{b}.attn": CausalSelfAttention, f"{b}.ln_2": nn.LayerNorm,
                 f"{b}.mlp": MLP, f"{b}.hook_resid_post": HookPoint, f"{b}.attn.c_attn": nn.Linear,
                 f"{b}.attn.c_proj": nn.Linear, f"{b}.attn.q_norm": norm, f"{b}.attn.k_norm": norm,
                 f"{b}.attn.attn_dropout": Dropout, f"{b}.attn.resid_dropout": Dropout,
                 f"{b}.mlp.c_fc": nn.Linear, f"{b}.mlp.act": nn.GELU if mlp == "gelu" else ReLUSquared,
                 f"{b}.mlp.c_proj": nn.Linear, f"{b}.mlp.dropout": Dropout}
        spec |= {f"{b}.attn.hook_{name}": HookPoint for name in ("q", "k", "v", "attn_scores", "pattern", "z")}
    return spec


_KNOWN = (GPT, Block, CausalSelfAttention, MLP, ReLUSquared, Dropout, HookPoint, nn.ModuleDict, nn.ModuleList,
          nn.Embedding, nn.Linear, nn.LayerNorm, nn.RMSNorm, nn.Identity, nn.GELU)
_FORWARDS = {kind: kind.forward for kind in _KNOWN}  # as imported: a forward patched later is not ours


def dropout_now(module: nn.Module) -> float:
    """The dropout probability ``module`` applies now: a dropout module's p, or an attention's own dropout
    (CausalSelfAttention passes it to the fused kernel), while in training mode (per module: a part of an eval
    model may be training); else 0."""
    if not module.training:
        return 0.0
    if isinstance(module, nn.modules.dropout._DropoutNd):  # Dropout, Dropout1d/2d/3d, AlphaDropout...
        return module.p
    return module.dropout if isinstance(module, CausalSelfAttention) else 0.0


def _settings_ok(path: str, module: nn.Module, config) -> bool:
    """The settings the scripted steps assume of one module (the shapes follow from the weights they read)."""
    C = config.n_embd
    if dropout_now(module) > 0:  # the steps draw no dropout
        return False
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape == (C,) and module.eps == 1e-5 and module.elementwise_affine
    if isinstance(module, nn.RMSNorm):
        return module.eps is None and not module.elementwise_affine
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    if isinstance(module, nn.Embedding):
        return module.max_norm is None
    if isinstance(module, CausalSelfAttention):
        return (module.n_head, module.head_size, module.rope) == (config.n_head, config.head_size, config.pos == "rope")
    if path == "lm_head":
        return module.bias is None
    return True


def _plain_gpt(model: nn.Module) -> bool:
    """A GPT built exactly as GPT.__init__ builds it: every module where it puts one, of its type and settings,
    with its own forward, and no hook on any of them (nor a global one)."""
    from torch.nn.modules import module as module_globals

    if type(model) is not GPT or model.config.kind not in ("gpt", "blocks"):
        return False
    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return False
    config, found = model.config, 0
    expected = _expected_modules(config.n_layer, config.pos, config.mlp, config.qk_norm)
    for path, module in model.named_modules():
        kind = type(module)
        if (expected.get(path) is not kind or "forward" in vars(module) or kind.forward is not _FORWARDS[kind]
                or module._forward_hooks or module._forward_pre_hooks or not _settings_ok(path, module, config)):
            return False
        found += 1
    return found == len(expected)


class ScriptedSteps:
    """The scripted decode and prefill of one model as it is now (its weights read when made)."""

    def __init__(self, model: nn.Module, compiled: dict[str, Any]) -> None:
        self.model, self.compiled, config = model, compiled, model.config
        transformer = model.transformer

        def weights(module: nn.Module) -> list[torch.Tensor]:
            """Weight and bias; no bias is zeros (out_features or normalized size)."""
            bias = module.bias if module.bias is not None else module.weight.new_zeros(module.weight.shape[0])
            return [module.weight, bias]

        self.layers = [[*weights(b.ln_1), *weights(b.attn.c_attn), *weights(b.attn.c_proj), *weights(b.ln_2),
                        *weights(b.mlp.c_fc), *weights(b.mlp.c_proj)] for b in transformer.h]
        self.ln_f, self.head = weights(transformer.ln_f), model.lm_head.weight
        self.rope, self.wte = config.pos == "rope", transformer.wte.weight
        self.unused = self.wte.new_empty(0)  # for the tables a model without them does not read
        self.wpe = transformer.wpe.weight if transformer.wpe is not None else self.unused
        self.switches = (config.n_head, self.rope, config.qk_norm, 0 if config.mlp == "gelu" else 1)

    def decode(self, idx: torch.Tensor, cache: BatchKVCache, lo: int, hi: int) -> torch.Tensor:
        """``model(idx, cache=cache.rows_view(lo, hi))[0]``: logits (rows, 1, vocab) for idx (rows, 1), one new
        token for each of the cache rows lo..hi-1, whose keys, values and lengths it updates. Raises InputError
        where a row is already at the context limit, as the model does."""
        block = self.model.config.block_size
        lengths = cache.lengths[lo:hi]
        if max(lengths) + 1 > block:
            raise InputError(f"{max(lengths) + 1} tokens exceed the context of {block}: start a new cache.")
        if self.rope:
            cos, sin = positions_rotary(self.model.config.head_size, 0, block, idx.device)
        else:
            cos = sin = self.unused
        storage = cache.storage
        with torch.no_grad():
            logits = self.compiled["decode"](
                idx, torch.tensor(lengths, device=idx.device), lo, self.wte, self.wpe, cos, sin, self.layers,
                self.ln_f, self.head, [layer.k for layer in storage], [layer.v for layer in storage], *self.switches)
        cache.lengths[lo:hi] = [n + 1 for n in lengths]
        return logits

    def race(self, probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """sample_rows's draw for rows of one setting (the scripted loop: one call instead of one per row)."""
        return self.compiled["race"](probs, generators)

    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """``model(idx, cache=kv)`` for idx (B, T) and a fresh cache kv: the logits (B, T, vocab) and kv, filled."""
        T = idx.size(1)
        if self.rope:
            cos, sin = positions_rotary(self.model.config.head_size, 0, T, idx.device)
        else:
            cos = sin = self.unused
        with torch.no_grad():
            logits, keys, values = self.compiled["prefill"](idx, self.wte, self.wpe, cos, sin, self.layers,
                                                            self.ln_f, self.head, *self.switches)
        kv = self.model.new_cache()
        for layer, k, v in zip(kv.layers, keys, values, strict=True):
            layer.extend(k, v)
        return logits, kv


def scripted_steps_for(model: nn.Module) -> ScriptedSteps | None:
    """The scripted steps of ``model`` as it is now, or None where the model's own forward must run (see the
    module note). Checked on every call (about 0.3 ms): hooks and modules can change between steps.
    """
    if not _plain_gpt(model):
        return None
    compiled = _compiled()
    return ScriptedSteps(model, compiled) if compiled else None
