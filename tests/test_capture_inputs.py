"""Capture from a notebook: bad ids or names get an InputError saying what to pass, and a capture keeps its values
while the same model runs other forwards (no-copy capture, 641a1f3: each forward makes new tensors; the causal
bias it shares between forwards is read, never written)."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import pytest
import torch

from gptlab import InputError, ModelConfig, build_model, hook_points, run_with_cache
from gptlab.models.batch_cache import BatchKVCache

CONFIG = ModelConfig(kind="gpt", vocab_size=30, block_size=24, n_layer=2, n_head=4, n_embd=32)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(CONFIG).eval()


def ids(T: int = 20, seed: int = 1) -> torch.Tensor:
    return torch.randint(30, (2, T), generator=torch.Generator().manual_seed(seed))


BAD_IDS = {
    "None": (None, "tensor"),
    "a list": ([[1, 2, 3]], "tensor"),
    "one dimension": (torch.tensor([1, 2, 3]), r"\(batch, pos\)"),
    "three dimensions": (torch.zeros((1, 2, 3), dtype=torch.long), r"\(batch, pos\)"),
    "floats": (torch.tensor([[1.0, 2.0]]), "torch.long"),
    "booleans": (torch.tensor([[True, False]]), "torch.long"),
    "an id past the vocabulary": (torch.tensor([[1, 30]]), r"0\.\.29"),
    "a negative id": (torch.tensor([[-1, 2]]), r"0\.\.29"),
    "more positions than the context": (torch.zeros((1, 25), dtype=torch.long), "context of 24"),
}


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_token_ids_are_an_input_error_that_says_what_to_pass(model, case):
    bad, message = BAD_IDS[case]
    with pytest.raises(InputError, match=message):
        run_with_cache(model, bad)
    assert not any(p._forward_hooks for p in hook_points(model).values())


@pytest.mark.parametrize("names", [3, [3], ["transformer.h.0.attn.hook_q", None]])
def test_names_that_are_not_hook_point_names_are_an_input_error(model, names):
    with pytest.raises(InputError, match="names must be"):
        run_with_cache(model, ids(), names)


def test_int32_ids_and_an_empty_prompt_still_capture(model):
    logits, cache = run_with_cache(model, ids().int())
    assert torch.equal(logits, run_with_cache(model, ids())[0])
    logits, cache = run_with_cache(model, torch.zeros((1, 0), dtype=torch.long))
    assert logits.shape == (1, 0, 30) and cache["transformer.h.1.attn.hook_pattern"].shape == (1, 4, 0, 0)


def test_a_capture_keeps_its_values_while_the_model_runs_other_forwards(model):
    """Guard: later captures, KV-cached and batched forwards, inference mode, another dtype and a grown causal
    bias leave an earlier capture as it was."""
    _, first = run_with_cache(model, ids())
    held = {name: t.clone() for name, t in first.items()}
    with torch.no_grad():
        run_with_cache(model, ids(7, seed=2))
        cache = model.new_cache()
        model(ids(5, seed=3), cache=cache)
        model(ids(4, seed=4), cache=cache)  # an offset causal bias
        batch = BatchKVCache(CONFIG.n_layer, CONFIG.block_size)
        batch.put(0, cache, 0)
        batch.put(1, cache, 1)
        batch.begin(2)
        model(ids(1, seed=5), cache=batch)
        with torch.inference_mode():
            run_with_cache(model, ids(24, seed=6))
        run_with_cache(build_model(CONFIG).double().eval(), ids())
        run_with_cache(build_model(dataclasses.replace(CONFIG, block_size=96)).eval(), ids(90, seed=7))
    for name, t in held.items():
        assert torch.equal(first[name], t), name
    assert all(torch.equal(t, run_with_cache(model, ids())[1][name]) for name, t in held.items())


def names_and_patterns(model: torch.nn.Module, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every hook point's name and what it saw, read by the walk hook_points did before it remembered them."""
    seen: dict[str, torch.Tensor] = {}
    handles = [point.register_forward_hook(lambda _m, _i, out, path=path: seen.__setitem__(path, out.clone()))
               for path, point in model.named_modules() if path.split(".")[-1].startswith("hook_")]
    with torch.no_grad():
        model(idx)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("change", ["replace a block", "delete a block", "insert a block", "append a block"])
def test_a_capture_follows_the_models_blocks_after_they_change(change):
    """Hook points are remembered by name (641a1f3); blocks put in, taken out or moved afterwards must be captured
    under their new module paths, not missed (a replaced block's points were silently absent: names listed
    explicitly came back as an empty cache)."""
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(CONFIG, n_layer=3)).eval()
    block = type(model.transformer.h[0])(CONFIG).eval()  # built first: building registers modules
    run_with_cache(model, ids())  # the hook points are remembered now
    if change == "replace a block":
        model.transformer.h[1] = block
    elif change == "delete a block":
        del model.transformer.h[1]
    elif change == "insert a block":
        model.transformer.h.insert(0, block)
    else:
        model.transformer.h.append(block)
    expected = names_and_patterns(model, ids())
    _, cache = run_with_cache(model, ids())
    assert sorted(cache) == sorted(expected)
    assert all(torch.equal(cache[name], t) for name, t in expected.items())
    last = f"transformer.h.{len(model.transformer.h) - 1}.attn.hook_pattern"
    assert list(run_with_cache(model, ids(), [last])[1]) == [last]


def test_a_captured_model_is_freed_as_soon_as_it_is_dropped():
    """What a model remembers of its hook points holds no reference back to the model: a reference cycle would
    keep a dropped model (and the engine's weak reference to it) alive until the garbage collector runs."""
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(CONFIG, n_layer=3)).eval()
    run_with_cache(model, ids())
    model.transformer.h[1] = type(model.transformer.h[0])(CONFIG)
    run_with_cache(model, ids())  # named again
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is None
    finally:
        gc.enable()
