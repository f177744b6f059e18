"""Inside one head: q, k, v and the scores at hook points, and head_math's numbers, agree with the pattern."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEXT

from gptlab import (
    CharTokenizer,
    GptlabError,
    InputError,
    ModelConfig,
    UnknownCharactersError,
    build_model,
    hooks,
    load_checkpoint,
    run_with_cache,
)
from gptlab.figures import head_math_bars
from gptlab.figures.export import table_csv
from gptlab.inside import HeadMath, attention_view, head_math, label_heads

REPO = Path(__file__).resolve().parent.parent
PROMPT = "First Citizen:\nSpeak, speak. All: resolved."
POINTS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern")
TOKENIZER = CharTokenizer.train(TINY_TEXT)
BASE = dict(vocab_size=TOKENIZER.vocab_size, block_size=48, n_layer=2, n_head=4, n_embd=32)
RUNGS = {
    "single_head": ModelConfig(**{**BASE, "kind": "single_head", "n_layer": 1, "n_head": 1}),
    "multi_head": ModelConfig(**{**BASE, "kind": "multi_head", "n_layer": 1}),
    "blocks": ModelConfig(**{**BASE, "kind": "blocks"}),
    "gpt": ModelConfig(**{**BASE, "kind": "gpt"}),
    "gpt_rope": ModelConfig(**{**BASE, "kind": "gpt", "pos": "rope"}),
    "gpt_qk_norm": ModelConfig(**{**BASE, "kind": "gpt", "qk_norm": True}),
}


@pytest.fixture(scope="module", params=list(RUNGS))
def model(request):
    torch.manual_seed(0)
    m = build_model(RUNGS[request.param]).eval()
    with torch.no_grad():  # sharper attention than the init gives, so the weights are far from even
        for layer in m.transformer.h:
            layer.attn.c_attn.weight.mul_(20)
    return m


def ids(text: str = PROMPT) -> torch.Tensor:
    return torch.tensor([TOKENIZER.encode(text)])


def attentions(model) -> list[torch.nn.Module]:
    return [layer.attn for layer in model.transformer.h]


def captured(model, layer: int) -> dict[str, torch.Tensor]:
    """The five attention hook points of one layer, by short name, [batch, head, ...]."""
    prefix = f"transformer.h.{layer}.attn."
    _, cache = run_with_cache(model, ids(), names=[prefix + p for p in POINTS])
    return {p: cache[prefix + p] for p in POINTS}


def projection_inputs(model) -> list[torch.Tensor]:
    """What each layer's c_proj receives in a plain forward (the fused path): the heads side by side."""
    seen: list[torch.Tensor] = []
    handles = [attn.c_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
               for attn in attentions(model)]
    try:
        with torch.no_grad():
            model(ids())
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_hook_points_have_the_documented_shapes(model):
    config, T = model.config, ids().size(1)
    for layer in range(config.n_layer):
        got = captured(model, layer)
        for name in ("hook_q", "hook_k", "hook_v"):
            assert got[name].shape == (1, config.n_head, T, config.head_size)  # [batch, head, pos, head_size]
        assert got["hook_attn_scores"].shape == (1, config.n_head, T, T)  # [batch, head, query, key]


def test_softmax_of_the_scores_is_the_pattern(model):
    for layer in range(model.config.n_layer):
        got = captured(model, layer)
        diff = (torch.softmax(got["hook_attn_scores"], dim=-1) - got["hook_pattern"]).abs().max()
        assert diff <= 1e-6


def test_future_keys_are_minus_infinity_and_the_rest_finite(model):
    T = ids().size(1)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    for layer in range(model.config.n_layer):
        scores = captured(model, layer)["hook_attn_scores"]
        assert (scores[..., future] == float("-inf")).all()
        assert torch.isfinite(scores[..., ~future]).all()


def test_scores_are_q_dot_k_times_one_over_root_head_size(model):
    hs = model.config.head_size
    for layer in range(model.config.n_layer):
        got = captured(model, layer)
        dot = got["hook_q"] @ got["hook_k"].transpose(-2, -1)  # [batch, head, query, key], unscaled
        visible = ~torch.ones(dot.size(-2), dot.size(-1), dtype=torch.bool).triu(1)
        torch.testing.assert_close(got["hook_attn_scores"][..., visible], dot[..., visible] / math.sqrt(hs),
                                   atol=1e-5, rtol=1e-5)


def test_weights_at_v_is_each_heads_slice_of_the_output_before_the_projection(model):
    hs = model.config.head_size
    fused = projection_inputs(model)  # [batch, pos, n_embd] per layer, from the plain (fused) forward
    for layer, attn in enumerate(attentions(model)):
        got = captured(model, layer)
        per_head = got["hook_pattern"] @ got["hook_v"]  # [batch, head, query, head_size]
        for head in range(model.config.n_head):
            diff = (per_head[0, head] - fused[layer][0, :, head * hs:(head + 1) * hs]).abs().max()
            assert diff <= 1e-5, (layer, head, float(diff))
        # and through the projection, the heads side by side give the attention's output
        side_by_side = per_head.transpose(1, 2).reshape(fused[layer].shape)
        with torch.no_grad():
            torch.testing.assert_close(attn.c_proj(side_by_side), attn.c_proj(fused[layer]), atol=1e-5, rtol=0)


def test_listening_at_any_attention_hook_point_takes_the_written_out_path(model):
    attn = attentions(model)[0]
    with torch.no_grad():
        plain, _ = model(ids())
    for point in POINTS:
        assert not attn.listening
        fired: list[torch.Size] = []
        with hooks(model, {f"transformer.h.0.attn.{point}": lambda t, fired=fired: fired.append(t.shape)}):
            assert attn.listening
            with torch.no_grad():
                listened, _ = model(ids())
        assert len(fired) == 1, point
        torch.testing.assert_close(listened, plain, atol=1e-5, rtol=1e-5)
    assert not attn.listening


def test_with_a_kv_cache_the_hooks_see_the_new_positions_against_every_key(model):
    """hook_q/k/v hold the new positions only; hook_attn_scores has a row per new query over all keys so far."""
    x, layer = ids(), model.config.n_layer - 1
    full = captured(model, layer)
    prefix = f"transformer.h.{layer}.attn."
    seen: dict[str, torch.Tensor] = {}
    cache = model.new_cache()
    with torch.no_grad():
        model(x[:, :9], cache=cache)
        with hooks(model, {prefix + p: (lambda t, p=p: seen.__setitem__(p, t.clone())) for p in POINTS}):
            model(x[:, 9:12], cache=cache)  # 3 new queries at positions 9, 10, 11
    config = model.config
    assert seen["hook_k"].shape == (1, config.n_head, 3, config.head_size)
    assert seen["hook_attn_scores"].shape == (1, config.n_head, 3, 12)
    torch.testing.assert_close(seen["hook_k"], full["hook_k"][:, :, 9:12], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(seen["hook_attn_scores"], full["hook_attn_scores"][:, :, 9:12, :12], atol=1e-5,
                               rtol=1e-5)  # the same -inf cells too: the offset mask hides the same future keys
    torch.testing.assert_close(seen["hook_pattern"], full["hook_pattern"][:, :, 9:12, :12], atol=1e-6, rtol=0)


def test_the_written_out_path_gives_the_fused_paths_gradients(model):
    """The explicit path masks the scores in place: backward must still see what the fused kernel sees."""
    x = ids()
    listen = {f"transformer.h.{i}.attn.hook_attn_scores": (lambda t: None) for i in range(model.config.n_layer)}

    def gradients(listening: bool) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        if listening:
            with hooks(model, listen):
                _, loss = model(x[:, :-1], x[:, 1:])
        else:
            _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return grads

    fused, written_out = gradients(False), gradients(True)
    assert fused.keys() == written_out.keys() and fused
    for name in fused:
        torch.testing.assert_close(written_out[name], fused[name], atol=1e-5, rtol=1e-4, msg=name)


def test_head_math_numbers_are_the_hooks_numbers(model):
    config = model.config
    layer, head, query = config.n_layer - 1, config.n_head - 1, 20
    view = head_math(model, TOKENIZER, PROMPT, layer, head, query)
    got = {name: t[0, head] for name, t in captured(model, layer).items()}  # [pos or query, ...]
    S = query + 1
    assert view.scale == 1.0 / math.sqrt(config.head_size)  # exactly, not to a tolerance
    assert view.sqrt_head_size == math.sqrt(config.head_size) and view.head_size == config.head_size
    assert view.keys.shape == view.values.shape == (S, config.head_size) and view.q.shape == (config.head_size,)
    for field in ("dot", "scores", "weights", "contribution_sizes"):
        assert getattr(view, field).shape == (S,), field
    torch.testing.assert_close(view.q, got["hook_q"][query])
    torch.testing.assert_close(view.keys, got["hook_k"][:S])
    torch.testing.assert_close(view.values, got["hook_v"][:S])
    torch.testing.assert_close(view.dot, got["hook_k"][:S] @ got["hook_q"][query])
    torch.testing.assert_close(view.scores, got["hook_attn_scores"][query, :S])
    torch.testing.assert_close(view.dot * view.scale, view.scores, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(view.weights, got["hook_pattern"][query, :S])
    assert abs(float(view.weights.sum()) - 1) <= 1e-6
    hs = config.head_size
    fused = projection_inputs(model)[layer][0, query, head * hs:(head + 1) * hs]
    assert (view.output - fused).abs().max() <= 1e-5  # the weighted sum of values is what the head outputs
    torch.testing.assert_close(view.contribution_sizes, (view.weights[:, None] * view.values).norm(dim=-1))
    labels = attention_view(model, TOKENIZER, PROMPT).labels
    assert view.labels == labels[:S] and view.query_label == labels[query] == f"{query}:{PROMPT[query]}"
    assert view.tokens[5] == "␣" and view.tokens[14] == "↵"


def test_table_is_sorted_by_weight_and_exports_as_csv(model):
    view = head_math(model, TOKENIZER, PROMPT, 0, 0)  # the last token by default
    assert view.query == len(PROMPT) - 1 and len(view.labels) == len(PROMPT)
    rows = view.table()
    assert sorted(r["position"] for r in rows) == list(range(len(PROMPT)))
    weights = [r["weight"] for r in rows]
    assert weights == sorted(weights, reverse=True)
    top = rows[0]
    assert top["token"] == view.tokens[top["position"]] and top["q_dot_k"] == float(view.dot[top["position"]])
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows))))
    assert [int(r["position"]) for r in parsed] == [r["position"] for r in rows]
    assert [r["token"] for r in parsed] == [r["token"] for r in rows]
    assert all(abs(float(p["weight"]) - r["weight"]) <= 1e-6 for p, r in zip(parsed, rows, strict=True))
    assert list(parsed[0]) == ["position", "token", "q_dot_k", "scale", "score", "weight", "contribution_size"]


def test_bars_show_q_dot_k_and_weight_per_visible_key(model):
    view = head_math(model, TOKENIZER, "aaaa a", 0, 0)  # repeated characters must keep their own bars
    fig = head_math_bars(view.labels, view.dot, view.weights, "q·k → weight")
    dots, weights = fig.data
    assert list(dots.x) == pytest.approx(view.dot.tolist()) and list(weights.x) == pytest.approx(view.weights.tolist())
    assert len(set(dots.y)) == len(view.labels) == 6 and tuple(dots.y) == tuple(weights.y)
    assert fig.layout.yaxis.type == "category"


def test_query_counts_from_zero_and_minus_one_is_the_last(model):
    assert head_math(model, TOKENIZER, PROMPT, 0, 0, 0).labels == ["0:F"]
    assert head_math(model, TOKENIZER, PROMPT, 0, 0, -1).query == len(PROMPT) - 1


@pytest.mark.parametrize("bad, match", [
    (dict(layer=2), r"layer must be a whole number in 0\.\.(0|1) for this model, got 2"),
    (dict(layer=True), "layer must be a whole number"),
    (dict(head=4), r"head must be a whole number in 0\.\.(0|3) for this model, got 4"),
    (dict(head=1.0), "head must be a whole number"),
    (dict(query=len(PROMPT)), rf"query must be a whole number in 0\.\.{len(PROMPT) - 1} \(or -1 for the last\) "
                              rf"for this prompt of {len(PROMPT)} tokens"),
    (dict(query=-len(PROMPT) - 1), "query must be a whole number"),
])
def test_a_head_or_position_the_model_lacks_is_an_input_error(model, bad, match):
    args = {"layer": 0, "head": 0, "query": -1, **bad}
    with pytest.raises(InputError, match=match):
        head_math(model, TOKENIZER, PROMPT, **args)


def test_prompts_the_model_cannot_read_are_clear_errors(model):
    with pytest.raises(GptlabError, match="The prompt is empty"):
        head_math(model, TOKENIZER, "", 0, 0)
    with pytest.raises(UnknownCharactersError, match="never seen"):
        head_math(model, TOKENIZER, "Speak, 日本", 0, 0)
    bigram = build_model(ModelConfig(kind="bigram", vocab_size=TOKENIZER.vocab_size, block_size=8))
    with pytest.raises(GptlabError, match="no attention layers.*pick an attention model"):
        head_math(bigram, TOKENIZER, PROMPT, 0, 0)


def test_a_long_prompt_is_cropped_to_the_context(model):
    long = PROMPT * 3  # longer than block_size 48
    view = head_math(model, TOKENIZER, long, 0, 0)
    assert view.dropped == len(long) - 48 and view.query == 47 and len(view.labels) == 48


def test_the_shipped_gpt_shows_its_previous_character_head():
    checkpoint = load_checkpoint(REPO / "checkpoints" / "gpt")
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    prompt = "First Citizen:\nBefore we proceed any further, hear me speak."
    attention = attention_view(model, tokenizer, prompt)
    labels = label_heads(attention.patterns, attention.tokens, attention.ids)
    previous = max((h for row in labels for h in row if h.label == "previous"), key=lambda h: h.score)
    pattern = attention.patterns[previous.layer][previous.head]
    # the row, among those with 9 or more keys to choose from, where it leans hardest on the character before
    query = int(torch.diagonal(pattern, -1)[7:].argmax()) + 8
    view = head_math(model, tokenizer, prompt, previous.layer, previous.head, query)
    assert isinstance(view, HeadMath) and view.head_size == 32 and view.scale == 1 / math.sqrt(32)
    assert view.query == query and view.order[0] == query - 1  # its largest weight goes to the previous character
    torch.testing.assert_close(view.weights, pattern[query, : query + 1])  # the keys it can see
