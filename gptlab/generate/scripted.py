"""The engine's decode step for a GPT, compiled once with TorchScript: one new token per row, every row at its
own position (a ``RowsView`` of the engine's ``BatchKVCache``).

It computes what ``GPT.forward`` computes for that input, op for op in the same order (the logits are equal
to the last bit on the models tested in tests/test_scripted_decode.py), with two differences that are about
speed only:

- TorchScript runs the whole step in C++ and lets go of Python's global interpreter lock while it runs. The
  engine splits a big batch in two halves whose forwards run at once on two threads; through the modules,
  the two threads take turns at the lock for every one of the step's ~150 operations, so the second core
  added almost nothing (30 rows of the shipped gpt: 8.6 ms a step split, 9.4 ms on one thread). Scripted,
  the halves really run side by side (6.2 ms), and one row alone takes 1.1 ms instead of 2.4 ms.
- No hook points and no dropout: ``decode_step_for`` returns None, and the engine uses the model's own
  forward, for anything this step would not compute exactly as the model does: a model that is not a plain
  ``GPT`` of ``Block`` layers (the attention-only rungs, a replaced module), any forward hook or pre-hook
  registered on any of its modules or globally (gptlab.hooks, ablation, a user's own), training mode with
  dropout, or a Python without the sources TorchScript compiles from.

``torch.jit.script`` is deprecated in favour of ``torch.compile``, which on a CPU needs a C++ compiler at run
time and compiles for tens of seconds per shape; if a later PyTorch drops TorchScript, scripting fails and
the engine keeps working on the model's forward, slower.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.attention import CausalSelfAttention
from ..models.gpt import GPT, MLP, Block, ReLUSquared


def _decode_step(idx: torch.Tensor, wte: torch.Tensor, wpe: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 layers: list[list[torch.Tensor]], ln_f: list[torch.Tensor], head: torch.Tensor,
                 keys: list[torch.Tensor], values: list[torch.Tensor], lo: int, hi: int, rows: torch.Tensor,
                 positions: torch.Tensor, key_bias: torch.Tensor, n_head: int, rope: bool, qk_norm: bool,
                 activation: int) -> torch.Tensor:
    """Logits (rows, 1, vocab) for idx (rows, 1), one new token per row.

    wpe: the position embedding, (block_size, n_embd), or an empty tensor with rotary positions (rope, with
    cos and sin (rows, 1, 1, hs/2) for the rows' new positions). layers: per block, in this order, ln_1 weight
    and bias, c_attn weight and bias, attention c_proj weight and bias, ln_2 weight and bias, MLP c_fc weight
    and bias, MLP c_proj weight and bias (a missing bias is a zero tensor: adding 0.0 changes no float).
    keys, values: per layer the cache storage (capacity, nh, block_size, hs); rows lo..hi-1 take part, ``rows``
    (rows, 1) and ``positions`` (rows, 1) say where each row's new key and value go, and key_bias (rows, 1, 1, S)
    is 0 for a key the row's query may see and -inf for the rest. activation: 0 GELU, 1 ReLU².
    """
    x = F.embedding(idx, wte)  # (rows, 1, C)
    if not rope:
        x = x + F.embedding(positions, wpe)
    R, T, C = x.shape
    hs = C // n_head
    S = key_bias.size(-1)
    scale = 1.0 / math.sqrt(hs)
    for i, w in enumerate(layers):
        h = F.layer_norm(x, [C], w[0], w[1])
        q, k, v = F.linear(h, w[2], w[3]).split(C, dim=2)
        q = q.view(R, T, n_head, hs).transpose(1, 2)  # (rows, nh, 1, hs)
        k = k.view(R, T, n_head, hs).transpose(1, 2)
        v = v.view(R, T, n_head, hs).transpose(1, 2)
        if qk_norm:
            q = F.rms_norm(q, [hs])
            k = F.rms_norm(k, [hs])
        if rope:
            qk = torch.stack([q, k])
            x1, x2 = qk.chunk(2, dim=-1)
            qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(qk)
            q, k = qk[0], qk[1]
        keys[i][rows, :, positions] = k.transpose(1, 2)  # each row's new key at its own position
        values[i][rows, :, positions] = v.transpose(1, 2)
        att = (q * scale) @ keys[i][lo:hi, :, :S].transpose(-2, -1)  # (rows, nh, 1, S)
        att += key_bias
        att = F.softmax(att, dim=-1)
        y = (att @ values[i][lo:hi, :, :S]).transpose(1, 2).contiguous().view(R, T, C)
        x = x + F.linear(y, w[4], w[5])
        h = F.linear(F.layer_norm(x, [C], w[6], w[7]), w[8], w[9])
        h = F.gelu(h) if activation == 0 else F.relu(h).square()
        x = x + F.linear(h, w[10], w[11])
    return F.linear(F.layer_norm(x, [C], ln_f[0], ln_f[1]), head)


_scripted: Any = None  # the compiled step, made on first use; False once scripting has failed
_script_lock = threading.Lock()


def _compiled() -> Any:
    global _scripted
    with _script_lock:
        if _scripted is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's (see the module note)
                    _scripted = torch.jit.script(_decode_step)
            except Exception:  # noqa: BLE001 - no sources, no TorchScript: the engine uses the model's forward
                _scripted = False
        return _scripted


def _hooked(model: nn.Module) -> bool:
    from torch.nn.modules import module as module_globals

    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _plain_gpt(model: nn.Module) -> bool:
    """A GPT built of the ladder's own Block, attention, MLP and norm modules, as GPT.__init__ makes them."""
    if type(model) is not GPT or model.config.kind not in ("gpt", "blocks"):
        return False
    config = model.config
    activation = nn.GELU if config.mlp == "gelu" else ReLUSquared
    qk_norm = nn.RMSNorm if config.qk_norm else nn.Identity
    norms = [model.transformer.ln_f]
    for block in model.transformer.h:
        attn, mlp = block.attn, block.mlp
        if (type(block) is not Block or type(attn) is not CausalSelfAttention or type(mlp) is not MLP
                or type(attn.c_attn) is not nn.Linear or type(attn.c_proj) is not nn.Linear
                or type(mlp.c_fc) is not nn.Linear or type(mlp.c_proj) is not nn.Linear
                or type(mlp.act) is not activation or getattr(mlp.act, "approximate", "none") != "none"
                or type(attn.q_norm) is not qk_norm or type(attn.k_norm) is not qk_norm
                or attn.rope != (config.pos == "rope")):
            return False
        if config.qk_norm and any(n.eps is not None or n.elementwise_affine for n in (attn.q_norm, attn.k_norm)):
            return False
        norms += [block.ln_1, block.ln_2]
    return all(type(n) is nn.LayerNorm and n.eps == 1e-5 and n.elementwise_affine for n in norms)


def decode_step_for(model: nn.Module):
    """A function ``step(idx, view) -> logits`` that computes ``model(idx, cache=view)[0]`` for idx (rows, 1)
    and a ``RowsView`` (gptlab.models.batch_cache), scripted; or None where the model's own forward must run
    (see the module note). Checked on every call (about 0.1 ms): hooks and modules can change between steps.
    """
    if not _plain_gpt(model) or (model.training and model.config.dropout > 0) or _hooked(model):
        return None
    step = _compiled()
    if step is False:
        return None
    config, transformer = model.config, model.transformer

    def weights(module: nn.Module) -> list[torch.Tensor]:
        """Weight and bias; no bias is zeros (out_features or normalized size)."""
        bias = module.bias if module.bias is not None else module.weight.new_zeros(module.weight.shape[0])
        return [module.weight, bias]

    layers = [[*weights(b.ln_1), *weights(b.attn.c_attn), *weights(b.attn.c_proj), *weights(b.ln_2),
               *weights(b.mlp.c_fc), *weights(b.mlp.c_proj)] for b in transformer.h]
    ln_f = weights(transformer.ln_f)
    rope, wte = config.pos == "rope", transformer.wte.weight
    wpe = transformer.wpe.weight if transformer.wpe is not None else wte.new_empty(0)
    activation = 0 if config.mlp == "gelu" else 1

    def run(idx: torch.Tensor, view) -> torch.Tensor:
        if rope:
            cos, sin = view.rotary(config.head_size, 1, idx.device)
        else:
            cos = sin = wte.new_empty(0)
        storage = view.layers[0].storage.owner.storage
        with torch.no_grad():
            return step(idx, wte, wpe, cos, sin, layers, ln_f, model.lm_head.weight,
                        [layer.k for layer in storage], [layer.v for layer in storage], view.lo, view.hi,
                        view.picked, view.new_positions, view.key_bias, config.n_head, rope, config.qk_norm,
                        activation)

    return run
