"""The model card (README.md) written beside every checkpoint and shown on the Hub."""

from __future__ import annotations

import math
from typing import Any

from .markdown import code_block, code_span
from .models import ModelConfig

RUNG_DESCRIPTIONS = {
    "bigram": "a bigram table: each character predicts the next from itself alone",
    "single_head": "one causal self-attention head over token and position embeddings",
    "multi_head": "several causal self-attention heads side by side, no MLP",
    "blocks": "transformer blocks (multi-head attention + MLP, residual, LayerNorm)",
    "gpt": "a GPT: pre-LayerNorm transformer blocks, dropout, final LayerNorm and LM head",
}


def model_card(config: ModelConfig, info: dict[str, Any], metrics: dict[str, Any], n_params: int) -> str:
    """Markdown with Hub front matter: architecture, size, data, best val loss, time, a sample."""
    best = metrics.get("best") or {}
    val = best.get("val_loss")
    lines = [
        "---",
        "library_name: gptlab",
        "license: mit",
        "tags: [gptlab, gpt, character-level, tiny-shakespeare, educational]",
        "pipeline_tag: text-generation",
        "---",
        "",
        f"# gptlab `{config.kind}` model",
        "",
        f"{RUNG_DESCRIPTIONS[config.kind].capitalize()}, written from scratch in PyTorch with gptlab.",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {n_params:,} |",
        f"| layers / heads / width / context | {config.n_layer} / {config.n_head} / {config.n_embd} "
        f"/ {config.block_size} |",
        f"| tokenizer | {info.get('tokenizer', '?')} ({config.vocab_size} tokens) |",
        f"| data | {code_span(str(metrics.get('data', info.get('data', '?'))), in_table=True)} |",
    ]
    rows = _repeated(metrics.get("preset_config") or {})
    if rows and (metrics.get("preset_config") or {}).get("repeat_random"):
        lines.append(f"| repeated random strings | {rows} are a random string of "
                     f"tokens drawn uniformly from all {config.vocab_size}, repeated to the end of the row "
                     f"(`repeat_share={metrics['preset_config']['repeat_share']} repeat_random=true`), to teach "
                     "copying; the rest is the text |")
    elif rows:  # a teaching device, not natural text: the card says how much of it there was
        lines.append(f"| repeated passages | {rows} read a passage, then the same "
                     f"text again (`repeat_share={metrics['preset_config']['repeat_share']}`), to teach copying |")
    if val is not None:
        bits = val / math.log(2)
        lines.append(f"| best val loss | {val:.4f} nats/token ({bits:.3f} bits/token) at step {best.get('step')} |")
    if metrics.get("bits_per_char") is not None:
        lines.append(f"| val bits per character | {metrics['bits_per_char']:.4f} |")
    if metrics.get("train_time_s") is not None:
        lines.append(f"| training time | {metrics['train_time_s'] / 60:.1f} min on {metrics.get('hardware', '?')} |")
    if metrics.get("command"):
        lines += ["", "Made with:", "", code_block(metrics["command"])]
    if metrics.get("sample"):  # model text: a fence longer than any run of backticks in it
        lines += ["", "A sample:", "", code_block(metrics["sample"].strip())]
    lines += [
        "",
        "Load it with `gptlab.load_checkpoint(path_or_repo_id)`; files are safetensors and JSON only.",
        "",
    ]
    return "\n".join(lines)


def _repeated(preset: dict[str, Any]) -> str:
    """How many rows repeated, as the batches held them ('' for none): get_batch rounds repeat_share * batch_size,
    so the card states the rows and their actual share, not the share asked for."""
    share, batch = preset.get("repeat_share") or 0.0, preset.get("batch_size") or 0
    if not batch:  # an older record without the batch size: the share as asked
        return f"{share:.0%} of training rows" if share else ""
    rows = round(share * batch)
    return f"{rows} of each batch's {batch} rows ({rows / batch:.0%})" if rows else ""
