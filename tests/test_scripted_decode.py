"""The engine's scripted steps (gptlab.generate.scripted): the model's own logits and cache for every model they
take, the model's forward for every model they must not take, and prefills beside the decode change no token."""

from __future__ import annotations

import pytest
import torch
from conftest import train_tiny
from test_batched_generation import crowd, wait_for
from torch import nn

from gptlab import GenerationSettings, ModelConfig, build_model, generate_ids
from gptlab.generate import GenerationEngine
from gptlab.generate.scripted import scripted_steps_for
from gptlab.hooks import hooks
from gptlab.models.batch_cache import BatchKVCache

SCRIPTED = {  # every switch the step reads, each on its own against the shipped gpt's settings
    "rope-relu2": dict(pos="rope", mlp="relu2"),
    "learned-gelu": dict(pos="learned", mlp="gelu"),
    "qk-norm": dict(pos="rope", mlp="relu2", qk_norm=True),
    "no-bias": dict(pos="rope", mlp="relu2", bias=False),
    "tied": dict(pos="learned", mlp="gelu", tie_weights=True),
    "blocks": dict(kind="blocks", pos="learned", mlp="gelu"),
}


def model_of(name: str, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(3)
    settings = {"kind": "gpt", **SCRIPTED[name]}
    model = build_model(ModelConfig(vocab_size=40, n_layer=2, n_head=3, n_embd=24, block_size=16, **settings))
    for p in model.parameters():  # nothing left at its initial zero or one: every weight and bias counts
        p.data.add_(0.1 * torch.randn_like(p))
    return model.eval().to(dtype)


def batch_of(model: nn.Module, lengths: list[int]) -> tuple[BatchKVCache, list[list[int]]]:
    g = torch.Generator().manual_seed(5)
    rows = [torch.randint(0, model.config.vocab_size, (n,), generator=g).tolist() for n in lengths]
    batch = BatchKVCache(model.config.n_layer, model.config.block_size)
    with torch.no_grad():
        for i, ids in enumerate(rows):
            kv = model.new_cache()
            model(torch.tensor([ids]), cache=kv)
            batch.put(i, kv)
    return batch, rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(SCRIPTED))
def test_the_scripted_step_gives_the_models_own_logits_and_cache(name, dtype):
    """Rows of 1, 4, 6 and 15 tokens (the last fills the context of 16 at once, the third after nine steps): over
    nine steps, past the runs after which TorchScript's executor optimises a function, the scripted step's logits
    and the keys and values it writes equal those of the model's forward on a copy of the cache, to the last bit
    (same ops in the same order)."""
    model = model_of(name, dtype)
    steps = scripted_steps_for(model)
    assert steps is not None, "this model should take the scripted step"
    ours, _ = batch_of(model, [1, 4, 6, 15])
    theirs, _ = batch_of(model, [1, 4, 6, 15])
    with torch.no_grad():
        for t in range(9):
            n = 4 if t == 0 else 3  # the full row drops out after one step
            idx = torch.tensor([[(5 * t + 7 * r) % 40] for r in range(n)])
            got = steps.decode(idx, ours, 0, n)
            want = model(idx, cache=theirs.rows_view(0, n))[0]
            assert got.dtype == want.dtype and torch.equal(got, want), (got - want).abs().max()
    for a, b in zip(ours.storage, theirs.storage, strict=True):
        assert torch.equal(a.k, b.k) and torch.equal(a.v, b.v)
    assert ours.lengths == theirs.lengths


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(SCRIPTED))
@pytest.mark.parametrize("length", [1, 9, 16])
def test_the_scripted_prefill_gives_the_models_own_logits_and_cache(name, dtype, length):
    """Three prompts of 1, 9 or 16 tokens (the whole context) from position 0: the scripted prefill's logits and
    every layer's keys and values equal those of the model's forward with a fresh cache, to the last bit."""
    model = model_of(name, dtype)
    idx = torch.randint(0, 40, (3, length), generator=torch.Generator().manual_seed(length))
    for _ in range(3):  # and again once TorchScript's executor has optimised it
        got, ours = scripted_steps_for(model).prefill(idx)
        theirs = model.new_cache()
        with torch.no_grad():
            want, _ = model(idx, cache=theirs)
        assert torch.equal(got, want) and ours.length == theirs.length == length
        for a, b in zip(ours.layers, theirs.layers, strict=True):
            assert torch.equal(a.k, b.k) and torch.equal(a.v, b.v)


def test_what_the_step_must_not_compute_goes_to_the_models_forward():
    """None (the model's forward) for the attention-only rungs, a hook anywhere, dropout in training mode and a
    module the step does not know; the step again once they are gone."""
    model = model_of("rope-relu2")
    assert scripted_steps_for(model) is not None
    for kind, heads in (("single_head", 1), ("multi_head", 2)):
        rung = build_model(ModelConfig(kind=kind, vocab_size=40, n_layer=1, n_head=heads, n_embd=16, block_size=8))
        assert scripted_steps_for(rung.eval()) is None, kind
    with hooks(model, {"transformer.h.1.attn.hook_z": lambda z: z * 0}):
        assert scripted_steps_for(model) is None
    handle = model.transformer.h[0].mlp.register_forward_hook(lambda *_: None)
    assert scripted_steps_for(model) is None
    handle.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert scripted_steps_for(model) is None
    finally:
        handle.remove()
    dropout = build_model(ModelConfig(kind="gpt", vocab_size=40, n_layer=1, n_head=2, n_embd=16, block_size=8,
                                      dropout=0.1))
    assert scripted_steps_for(dropout.train()) is None and scripted_steps_for(dropout.eval()) is not None
    dropout.eval().transformer.h[0].attn.train()  # a part of an eval model back in training mode
    assert scripted_steps_for(dropout) is None


class Doubled(nn.Module):
    def forward(self, x):
        return 2 * x


def _swap(model, path: str, module: nn.Module) -> nn.Module:
    parent, name = model.get_submodule(path.rpartition(".")[0]), path.rpartition(".")[2]
    old = getattr(parent, name)
    setattr(parent, name, module)
    return old


@pytest.mark.parametrize("path, replacement", [
    ("transformer.h.1.mlp.act", lambda: nn.SiLU()),
    ("transformer.h.0.ln_2", lambda: nn.LayerNorm(24, eps=1e-3)),
    ("lm_head", lambda: nn.Linear(24, 40)),  # a bias the scripted head would not add
    ("transformer.drop", lambda: Doubled()),
    ("hook_embed", lambda: Doubled()),
    ("transformer.h.1.hook_resid_post", lambda: Doubled()),
    ("transformer.h.0.attn.hook_z", lambda: Doubled()),
    ("transformer.h.0.attn.resid_dropout", lambda: Doubled()),
    ("transformer.h.1.mlp.dropout", lambda: Doubled()),
    ("transformer.h.0.attn.c_proj", lambda: nn.Identity()),
    ("transformer.h.0.attn", lambda: __import__("gptlab").models.attention.CausalSelfAttention(
        ModelConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=24, block_size=16, pos="rope", mlp="relu2"))),
])
def test_a_replaced_module_anywhere_keeps_the_models_forward(path, replacement):
    """Any module other than the one GPT.__init__ puts there (another type, setting, or head count) means the
    model's forward; put the original back and the step returns."""
    model = model_of("rope-relu2")
    original = _swap(model, path, replacement())
    assert scripted_steps_for(model) is None, path
    _swap(model, path, original)
    assert scripted_steps_for(model) is not None


def test_a_patched_forward_keeps_the_models_forward(monkeypatch):
    """A forward replaced on one module or on its class is the model's forward now: not the scripted step's."""
    from gptlab.models.gpt import MLP

    model = model_of("rope-relu2")
    monkeypatch.setattr(model.transformer.h[0].mlp, "forward", lambda x: x * 0)
    assert scripted_steps_for(model) is None
    monkeypatch.undo()
    assert scripted_steps_for(model) is not None
    monkeypatch.setattr(MLP, "forward", lambda self, x: x * 0)
    assert scripted_steps_for(model) is None


def test_a_replaced_module_is_decoded_as_the_model_computes_it(tiny_text):
    """The engine reads the model as it is now: with one MLP's activation swapped, its tokens are still
    generate_ids's, and no step was scripted."""
    model, tok = train_tiny(ModelConfig(kind="gpt", n_layer=2, n_head=2, n_embd=16, block_size=16, pos="rope",
                                        mlp="relu2"), tiny_text, steps=10)
    model.transformer.h[1].mlp.act = nn.Tanh()
    jobs = [(tok.encode(p), GenerationSettings(max_new_tokens=30, seed=i)) for i, p in enumerate(["Fir", "Be"])]
    engine = GenerationEngine(model)
    assert crowd(engine, jobs) == [list(generate_ids(model, ids, s)) for ids, s in jobs]
    assert engine.scripted_steps == 0


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_prefills_beside_the_decode_change_no_rows_tokens(tiny_text, pos):
    """Twelve rows of different prompt lengths on a context of 16: rows restart at different steps, their
    prefills run beside the other rows' decode, and every row still gets generate_ids's tokens."""
    model, tok = train_tiny(ModelConfig(kind="gpt", n_layer=2, n_head=2, n_embd=16, block_size=16, pos=pos,
                                        mlp="relu2"), tiny_text, steps=10)
    text = "Before we proceed any further, hear me speak."
    jobs = [(tok.encode(text[: 1 + 3 * i]), GenerationSettings(max_new_tokens=45, temperature=0.9, seed=70 + i))
            for i in range(12)]
    engine = GenerationEngine(model)
    assert crowd(engine, jobs) == [list(generate_ids(model, ids, s)) for ids, s in jobs]
    assert engine.overlapped_steps > 0 and engine.scripted_steps > 0


def test_the_scripted_race_draws_what_sample_rows_draws():
    """Rows of one setting drawn by the scripted loop: the same tokens, and every generator left in the same
    state, as sample_rows's own loop; a greedy setting touches no generator either way."""
    from gptlab.sampling import sample_rows

    steps = scripted_steps_for(model_of("rope-relu2"))
    logits = torch.randn(7, 40, generator=torch.Generator().manual_seed(11))
    settings = [GenerationSettings(temperature=t, top_k=k, top_p=p)
                for t, k, p in [(0.8, 0, 1.0), (0.8, 0, 1.0), (1.3, 5, 1.0), (0.8, 0, 1.0), (1.0, 0, 0.7),
                                (0.0, 0, 1.0), (1.3, 5, 1.0)]]
    mine = [torch.Generator().manual_seed(100 + r) for r in range(7)]
    theirs = [torch.Generator().manual_seed(100 + r) for r in range(7)]
    for _ in range(5):
        assert sample_rows(logits, settings, mine, race=steps.race) == sample_rows(logits, settings, theirs)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(mine, theirs, strict=True))


def test_a_fresh_engine_that_prefills_on_two_threads_makes_one_storage(tiny_text):
    """The first step of a new engine prefills prompts of several lengths on two threads: both find the cache's
    storage not made yet. Over 40 fresh engines of 8 readers released together, every reader gets
    generate_ids's tokens (before the storage was made under a lock, about 1 in 10 such engines gave a row
    zero keys, or every reader a TypeError)."""
    import threading

    model, tok = train_tiny(ModelConfig(kind="gpt", n_layer=4, n_head=2, n_embd=16, block_size=16, pos="rope",
                                        mlp="relu2"), tiny_text, steps=5)
    text = "First Citizen: Before we proceed"
    jobs = [(tok.encode(text[: 5 + i % 3]), GenerationSettings(max_new_tokens=4, temperature=0.0))
            for i in range(8)]
    expected = [list(generate_ids(model, ids, s)) for ids, s in jobs]
    for _ in range(40):
        engine, got = GenerationEngine(model), [None] * len(jobs)
        barrier = threading.Barrier(len(jobs))

        def read(i, engine=engine, got=got, barrier=barrier):
            barrier.wait()
            try:
                got[i] = list(engine.stream(*jobs[i]))
            except Exception as exc:  # noqa: BLE001 - compared below
                got[i] = exc

        threads = [threading.Thread(target=read, args=(i,)) for i in range(len(jobs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert got == expected


def test_a_failed_step_leaves_nothing_in_the_cache_for_later_requests(tiny_text):
    """A request that fails on NaN weights writes NaN keys into the cache storage; once the weights are mended
    in place, later requests on the same engine get generate_ids's tokens (the mask's -inf does not cancel a
    NaN left past a row's length, so the engine starts a fresh cache after a failed step)."""
    from gptlab import GptlabError

    model, tok = train_tiny(ModelConfig(kind="gpt", n_layer=2, n_head=2, n_embd=16, block_size=16, pos="rope",
                                        mlp="relu2"), tiny_text, steps=5)
    engine = GenerationEngine(model)
    long_prompt = tok.encode("Before we proceed any further")[-14:]
    weight = model.transformer.wte.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight[long_prompt[3]] = float("nan")
    with pytest.raises(GptlabError):
        list(engine.stream(long_prompt, GenerationSettings(max_new_tokens=3, seed=1)))
    wait_for(lambda: engine._thread is None)
    assert not any(layer.k is not None and layer.k.isnan().any() for layer in engine.cache.storage)
    with torch.no_grad():
        weight.copy_(saved)
    # a short row where the failed one was, and a longer one beside it: the short row's scores then reach past
    # its own length, over the positions the failed request left
    jobs = [(tok.encode("Fir"), GenerationSettings(max_new_tokens=40, seed=2)),
            (tok.encode("First Citizen"), GenerationSettings(max_new_tokens=40, seed=3))]
    assert crowd(engine, jobs) == [list(generate_ids(model, ids, s)) for ids, s in jobs]


def test_a_warnings_filter_that_raises_does_not_turn_the_scripted_steps_off():
    """A process whose code turns warnings into errors after importing gptlab (pytest -W error, a strict
    notebook): compiling the steps meets torch.jit.script's deprecation warning, which must not make the
    engine fall back to the model's forward for good (a fresh process: this one has compiled them already)."""
    import subprocess
    import sys

    code = ("import warnings, torch; from gptlab import ModelConfig, build_model; "
            "from gptlab.generate.scripted import scripted_steps_for; warnings.simplefilter('error'); "
            "m = build_model(ModelConfig(kind='gpt', vocab_size=20, n_layer=1, n_head=2, n_embd=16, block_size=8)); "
            "print(scripted_steps_for(m.eval()) is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_an_attention_with_its_own_dropout_in_training_mode_is_not_scripted_and_is_refused():
    """model.train() with every dropout module's p set to 0 still leaves each attention's own dropout number,
    which its fused kernel (and the CPU's written-out path) applies in training mode: the scripted steps would
    not, so the model's forward is the one, and the engine refuses it as it refuses any dropout in training."""
    from gptlab import SettingsError

    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gpt", vocab_size=40, n_layer=1, n_head=2, n_embd=16, block_size=8,
                                    dropout=0.1)).train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    assert scripted_steps_for(model) is None
    with pytest.raises(SettingsError, match="training mode with dropout 0.1"):
        next(GenerationEngine(model).stream([1, 2], GenerationSettings(max_new_tokens=2)))
    model.eval()
    assert scripted_steps_for(model) is not None
