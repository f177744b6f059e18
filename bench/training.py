"""Section 2, training throughput: gptlab's training step against the tutorial-style reference.

Each contender trains in a process of its own, the way it would run: gptlab with the process
settings of ``python -m train`` (train/runtime.py), the tutorial as a plain script. They take
turns, one at a time (A B, B A, ...), on the same sizes; we report the median tokens/s of each
and the median of the per-round ratios. A third process runs gptlab's code with default process
settings, separating what the code gains from what the settings gain. Model FLOPs utilisation
(MFU) divides the model's FLOPs per second by the measured matmul peak.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gptlab import ModelConfig, build_model, count_parameters, get_batch
from gptlab.settings import with_values
from train.optim import make_optimizers
from train.runtime import tune_cpu_process

from . import tutorial_reference as tutorial
from .common import VOCAB, Options, Row, judge, median
from .matmul import SQUARE, gflops
from .models import SIZES, Size

FLOPS_FORMULA = (
    "FLOPs per token = 6·N + 12·L·C·T (forward + backward), N = parameters that enter a matmul "
    "(all but the token and position embedding tables), L layers, C width, T context; the "
    "attention term counts the full T×T score matrix as nanoGPT and PaLM do (causal masking "
    "could skip half of it)."
)


RETIRED = ("information, no target: the ≥ 2× target was retired in issue 16 (a profile put it below the matmul "
           "floor at this size); section 3's whole-split val loss within 150 s and 15 min carries gpt-mini's targets")


def matmul_parameters(model: torch.nn.Module) -> int:
    """Parameters outside embedding tables: those that enter a matmul (a table lookup costs no FLOPs)."""
    tables = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    return count_parameters(model) - tables


def flops_per_token(model: torch.nn.Module, config: ModelConfig) -> float:
    """Training FLOPs per token by the formula in FLOPS_FORMULA."""
    return 6 * matmul_parameters(model) + 12 * config.n_layer * config.n_embd * config.block_size


def reference_model(config: ModelConfig) -> tutorial.GPTLanguageModel:
    return tutorial.GPTLanguageModel(config.vocab_size, config.n_embd, config.n_head, config.n_layer,
                                     config.block_size, config.dropout)


def random_tokens(n: int = 200_000, seed: int = 0) -> torch.Tensor:
    """Token ids to train on: speed does not depend on what the text says."""
    return torch.randint(VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def gptlab_step(size: Size, options: Options, data: torch.Tensor, compile_model: bool = False,
                dropout: float | None = None, optimizer: str = "adamw") -> tuple[Callable[[], float], torch.nn.Module,
                                                                                 dict]:
    """One optimizer step the way train/loop.py takes it: a tensor gather for the batch, forward,
    backward, gradient clipping, the optimizers of train/optim.py (AdamW like the tutorial, or the
    preset's own choice), zero_grad."""
    changes = {"optimizer": optimizer} | ({} if dropout is None else {"model.dropout": dropout})
    train_config = with_values(size.train_config(options), changes)
    config = train_config.model
    torch.manual_seed(0)
    model = build_model(config)
    optimizers = make_optimizers(model, train_config)
    generator = torch.Generator().manual_seed(1)
    batch, block = train_config.batch_size, config.block_size
    forward = torch.compile(model) if compile_model else model
    model.train()
    phases = {"batch": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step() -> float:
        t0 = time.perf_counter()
        x, y = get_batch(data, batch, block, generator)
        t1 = time.perf_counter()
        _, loss = forward(x, y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
        for opt in optimizers:
            opt.step()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[name] += dt
        return batch * block

    return step, model, phases


def tutorial_step(size: Size, options: Options, data: torch.Tensor) -> tuple[Callable[[], float], torch.nn.Module]:
    """One step of the tutorial's training loop, with the tutorial's get_batch and AdamW."""
    train_config = size.train_config(options)
    config = train_config.model
    torch.manual_seed(0)
    model = reference_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr)
    batch, block = train_config.batch_size, config.block_size
    model.train()

    def step() -> float:
        xb, yb = tutorial.get_batch(data, batch, block)
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return batch * block

    return step, model


def tokens_per_s(step: Callable[[], float], steps: int) -> float:
    start, tokens = time.perf_counter(), 0.0
    for _ in range(steps):
        tokens += step()
    return tokens / (time.perf_counter() - start)


def side_by_side(contenders: dict[str, Callable[[], float]], repeats: int, steps: int) -> dict[str, Any]:
    """Warm each up with one step, then time rounds of `steps` steps, alternating the order."""
    for step in contenders.values():
        step()
    return _rounds({name: (lambda n, s=step: tokens_per_s(s, n)) for name, step in contenders.items()}, repeats, steps)


def _rounds(rate: dict[str, Callable[[int], float]], repeats: int, steps: int) -> dict[str, Any]:
    names = list(rate)
    rates: dict[str, list[float]] = {n: [] for n in names}
    loads: list[float] = []
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            rates[name].append(rate[name](steps))
        loads.append(Row("", None, "").load1)
    return {"rates": rates, "median": {n: median(v) for n, v in rates.items()}, "load1": loads}


@dataclass(frozen=True)
class Contender:
    """One training step to time in a process of its own."""

    code: str  # "gptlab" or "tutorial"
    size: str  # a key of SIZES
    tuned: bool  # True: the process settings python -m train applies (train/runtime.py)
    optimizer: str = "adamw"


def _serve(conn, contender: Contender, options: Options) -> None:
    """Child process: build the step, warm it up, then time `steps` steps whenever asked."""
    torch.set_num_threads(options.thread_count)
    settings = tune_cpu_process() if contender.tuned else {}
    data = random_tokens()
    size = SIZES[contender.size]
    step = (gptlab_step(size, options, data, optimizer=contender.optimizer)[0] if contender.code == "gptlab"
            else tutorial_step(size, options, data)[0])
    step()
    conn.send(settings)
    while (steps := conn.recv()) is not None:
        conn.send(tokens_per_s(step, steps))


def side_by_side_processes(contenders: dict[str, Contender], options: Options, repeats: int,
                           steps: int) -> dict[str, Any]:
    """Like side_by_side, with each contender in its own process; only one runs at a time."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no settings inherited
    workers, settings = {}, {}
    try:
        for name, contender in contenders.items():
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, contender, options), daemon=True)
            process.start()
            settings[name] = parent.recv()  # what took effect; built and warmed up before the next starts
            workers[name] = (process, parent)

        def ask(name: str) -> Callable[[int], float]:
            def rate(n: int) -> float:
                workers[name][1].send(n)
                return workers[name][1].recv()
            return rate

        return {**_rounds({name: ask(name) for name in contenders}, repeats, steps), "process_settings": settings}
    finally:
        for process, conn in workers.values():
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of round-by-round ratios: a neighbour's burst slows both sides of a round alike."""
    return median([x / y for x, y in zip(a, b, strict=True)])


def throughput(options: Options, peak_gflops: float) -> tuple[list[Row], dict[str, Any]]:
    # (rounds, steps per round): a classic-size step takes seconds, a gpt-mini step tens of milliseconds
    plan = {"gpt-mini": (2, 3), "classic": (2, 2)} if options.quick else {"gpt-mini": (7, 20), "classic": (5, 2)}
    rows, raw = [], {}
    for name, size in SIZES.items():
        n_rounds, n_steps = plan[name]
        config = size.model_config(options)
        model, reference = build_model(config), reference_model(config)
        # like for like: the same matmuls (a rotary preset has no position table, the tutorial has one)
        assert matmul_parameters(model) == matmul_parameters(reference), "the comparison must be like for like"
        contenders = {"gptlab": Contender("gptlab", name, tuned=True),
                      "tutorial": Contender("tutorial", name, tuned=False),
                      "gptlab, default process": Contender("gptlab", name, tuned=False)}
        preset_optimizer = size.train_config(options).optimizer
        if preset_optimizer != "adamw":  # the preset trains with another optimizer: time that step too
            contenders[f"gptlab {preset_optimizer}"] = Contender("gptlab", name, True, preset_optimizer)
        result = side_by_side_processes(contenders, options, n_rounds, n_steps)
        rates, medians = result["rates"], result["median"]
        ratio = paired_ratio(rates["gptlab"], rates["tutorial"])
        code_ratio = paired_ratio(rates["gptlab, default process"], rates["tutorial"])
        fpt = flops_per_token(model, config)
        mfu = {k: v * fpt / (peak_gflops * 1e9) for k, v in medians.items()}
        shape = f"{config.n_layer}L/{config.n_head}H/{config.n_embd}C/T{config.block_size}, batch " \
                f"{size.batch(options)}, dropout {config.dropout}, {config.mlp}, {config.pos} positions"
        load = median(result["load1"])
        rows += [
            Row(f"{name} ({shape}): gptlab", round(medians["gptlab"]), "tokens/s", load1=load,
                note="in a process with python -m train's settings (train/runtime.py)"),
            Row(f"{name}: tutorial reference", round(medians["tutorial"]), "tokens/s", load1=load,
                note="in a plain process, as the tutorial's script runs"),
            Row(f"{name}: gptlab / tutorial (both AdamW)", round(ratio, 2), "×",
                f"≥ {size.target_ratio}×" if size.target_ratio else "",
                judge(ratio, size.target_ratio, True, options) if size.target_ratio else None, load1=load,
                note="" if size.target_ratio else RETIRED),
            Row(f"{name}: gptlab / tutorial, both in a plain process (the code alone)", round(code_ratio, 2), "×",
                load1=load, note=f"gptlab {round(medians['gptlab, default process']):,} tokens/s without the "
                                 "process settings"),
            Row(f"{name}: MFU gptlab (tutorial {mfu['tutorial']:.0%})", round(100 * mfu["gptlab"], 1), "%",
                "≥ 60%" if name == "classic" else "",
                judge(100 * mfu["gptlab"], 60, True, options) if name == "classic" else None, load1=load),
        ]
        if preset_optimizer != "adamw":
            other = f"gptlab {preset_optimizer}"
            other_ratio = paired_ratio(rates[other], rates["tutorial"])
            rows.append(Row(f"{name}: gptlab with the preset's {preset_optimizer} / tutorial", round(other_ratio, 2),
                            "×", load1=load, note=f"{round(medians[other]):,} tokens/s; Newton-Schulz "
                            "matmuls add to each step, the preset takes them for faster learning per step"))
        raw[name] = {**result, "ratio": ratio, "code_ratio": code_ratio, "flops_per_token": fpt, "mfu": mfu,
                     "params": count_parameters(model), "config": config.to_dict(), "batch": size.batch(options)}
    return rows, raw


def profile(options: Options, steps: int) -> dict[str, Any]:
    """Where a classic-size gptlab training step spends its time: phases, then the top operators."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    size = SIZES["classic"]
    step, _, phases = gptlab_step(size, options, random_tokens())
    step()  # warm-up, and the optimizer allocates its state
    for key in phases:
        phases[key] = 0.0
    with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(steps):
            step()
    total = sum(phases.values())
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    self_total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    matmul = [e for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
    matmul_us = sum(e.self_cpu_time_total for e in matmul)
    matmul_flops = sum(e.flops for e in matmul)
    return {
        "steps": steps,
        "phases_s": {k: v / steps for k, v in phases.items()},
        "phase_share": {k: v / total for k, v in phases.items()},
        "top_ops": [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / steps, "calls": e.count // steps,
                     "share": e.self_cpu_time_total / self_total} for e in top],
        "matmul_share": matmul_us / self_total,
        "matmul_gflops": matmul_flops / (matmul_us * 1e-6) / 1e9 if matmul_us else None,
    }


def experiments(options: Options) -> tuple[list[Row], dict[str, Any]]:
    """What else was tried on the classic size: torch.compile, one thread, no dropout."""
    data = random_tokens()
    size = SIZES["classic"]
    rows, raw = [], {}
    eager, _, _ = gptlab_step(size, options, data)
    try:
        start = time.perf_counter()
        compiled, _, _ = gptlab_step(size, options, data, compile_model=True)
        compiled()  # compilation happens at the first call
        compile_s = time.perf_counter() - start
        result = side_by_side({"compiled": compiled, "eager": eager}, 3, 2)
        ratio = paired_ratio(result["rates"]["compiled"], result["rates"]["eager"])
        rows.append(Row(f"classic: torch.compile / eager (compile took {compile_s:.0f} s)", round(ratio, 2), "×"))
        raw["compile"] = {**result, "ratio": ratio, "compile_s": compile_s}
    except Exception as exc:  # a missing compiler surfaces as many exception types
        rows.append(Row("classic: torch.compile", None, "", note=f"failed: {type(exc).__name__}: {exc}"[:200]))
        raw["compile"] = {"error": repr(exc)[:500]}
    no_dropout, _, _ = gptlab_step(size, options, data, dropout=0.0)
    result = side_by_side({"dropout 0": no_dropout, "dropout 0.2": eager}, 3, 2)
    ratio = paired_ratio(result["rates"]["dropout 0"], result["rates"]["dropout 0.2"])
    rows.append(Row("classic: dropout 0 / dropout 0.2 (what dropout still costs)", round(ratio, 2), "×",
                    note="with dropout 0, attention takes PyTorch's fused CPU kernel"))
    raw["dropout"] = {**result, "ratio": ratio}
    threads = torch.get_num_threads()
    if threads > 1:
        rate_n = tokens_per_s(eager, 2)
        torch.set_num_threads(1)
        try:
            rate_1 = tokens_per_s(eager, 2)
        finally:
            torch.set_num_threads(threads)
        rows.append(Row(f"classic: {threads} threads / 1 thread", round(rate_n / rate_1, 2), "×"))
        raw["threads"] = {f"{threads}": rate_n, "1": rate_1}
    return rows, raw


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    peak = done.get("matmul", {}).get("peak_gflops")
    if not peak:  # run alone (--only training): measure the peak here
        peak = gflops(SQUARE, SQUARE, SQUARE, 3, 0.3) if not options.quick else gflops(256, 256, 256, 2, 0.02)
    rows, raw = throughput(options, peak)
    result: dict[str, Any] = {"rows": [r.to_dict() for r in rows], "raw": raw, "peak_gflops": peak,
                              "notes": [FLOPS_FORMULA]}
    result["profile"] = in_tuned_process(options, profile, options, 1 if options.quick else 3)
    if options.quick:
        result["notes"].append("--quick: torch.compile, thread and dropout experiments skipped (compiling alone "
                               "takes longer than the whole smoke run).")
    else:
        exp_rows, result["experiments"] = in_tuned_process(options, experiments, options)
        result["experiment_rows"] = [r.to_dict() for r in exp_rows]
    return result


def _tuned_child(threads: int) -> None:
    torch.set_num_threads(threads)
    tune_cpu_process()


def in_tuned_process(options: Options, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a fresh process with python -m train's settings, as gptlab trains."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_tuned_child, initargs=(options.thread_count,)) as pool:
        return pool.apply(fn, args)
