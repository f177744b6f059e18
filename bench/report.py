"""Render results (the dict also written to results.json) as RESULTS.md, and the README's copy of the targets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"

TITLES = {
    "matmul": "1. Machine limit: float32 matmul",
    "training": "2. Training throughput: gptlab vs the tutorial-style reference",
    "quality": "3. Time to quality (CPU preset on Tiny Shakespeare)",
    "generation": "4. Generation at batch 1",
    "capture": "5. Attention capture",
    "app": "6. The app on loopback",
    "class": "6b. A class presses Generate together (on loopback)",
    "live": "7. Watch it learn (live training on one thread)",
    "ablation": "8. Knocking heads out in the app",
    "peer": "9. Beside nanoGPT (optional: --peer-nanogpt PATH)",
}


def met_cell(row: dict[str, Any], quick: bool) -> str:
    if not row.get("target"):
        return ""
    if row["met"] is None:
        return "n/a (quick run)" if quick else "not measured"
    return "met" if row["met"] else "**not met**"


def value_cell(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        return "—"
    text = f"{value:,}" if isinstance(value, int) or float(value).is_integer() else f"{value:g}"
    return f"{text} {row['unit']}".strip()


def table(rows: list[dict[str, Any]], quick: bool) -> list[str]:
    lines = ["| what | measured | target | met | threads | load (1 min) | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {value_cell(r)} | {r['target']} | {met_cell(r, quick)} | {r['threads']} | "
                     f"{r['load1']} | {r['note']} |")
    return lines


def profile_lines(p: dict[str, Any]) -> list[str]:
    phases = ", ".join(f"{k} {100 * v:.0f}%" for k, v in p["phase_share"].items())
    step_ms = 1e3 * sum(p["phases_s"].values())
    lines = ["", f"**Profile of one classic-size gptlab training step** (torch.profiler, {p['steps']} step(s), "
             f"{step_ms:.0f} ms/step): {phases}. Matmuls (mm/addmm/bmm) take {100 * p['matmul_share']:.0f}% "
             "of operator self time" + (f" at {p['matmul_gflops']:.0f} GFLOP/s." if p["matmul_gflops"] else "."),
             "", "| operator | self ms/step | calls/step | share |", "|---|---|---|---|"]
    for op in p["top_ops"]:
        lines.append(f"| `{op['op']}` | {op['self_ms']:.1f} | {op['calls']} | {100 * op['share']:.1f}% |")
    return lines


def targets_table(results: dict[str, Any]) -> list[str]:
    """Every row that has a target: the table at the top of RESULTS.md, quoted in the README."""
    quick = results["mode"] == "quick"
    lines = ["| what | measured | target | met |", "|---|---|---|---|"]
    for name in TITLES:
        for r in results["sections"].get(name, {}).get("rows", []):
            if r["target"]:
                lines.append(f"| {r['what']} | {value_cell(r)} | {r['target']} | {met_cell(r, quick)} |")
    return lines


def readme_block(results: dict[str, Any]) -> str:
    """The README's speed table, between its bench markers."""
    m = results["machine"]
    loads = [m["load_at_start"][0], m.get("load_at_end", [None])[0]]
    head = (f"From `bench/RESULTS.md`, last written by `{results.get('command', 'python -m bench')}` "
            f"({results['finished']}; {m['cores']} cores, {m['threads']} threads, 1-minute load {loads[0]} at the "
            f"start and {loads[1]} at the end). Sections that run did not measure keep their own run, date and load, "
            "and every row its own load, there:")
    return "\n".join([README_START, head, "", *targets_table(results), "", README_END])


def update_readme(readme: Path, results: dict[str, Any]) -> bool:
    """Replace the block between the bench markers; False when the README has no markers."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _m: readme_block(results), text, count=1), encoding="utf-8")
    return True


def render(results: dict[str, Any]) -> str:
    quick = results["mode"] == "quick"
    m = results["machine"]
    lines = [
        "# gptlab speed benchmark",
        "",
        f"`{results['command']}` on {results['finished']}, {results['wall_s']:.0f} s."
        + (" **Quick smoke run: tiny sizes, nothing judged against the targets.**" if quick else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} PyTorch threads, SIMD {', '.join(m['simd']) or '?'};"
        f" torch {m['torch']}, Python {m['python']}; {m['platform']}."
        + (f" GPU: {m['cuda']}." if m.get("cuda") else ""),
        f"Load averages (1/5/15 min) at start {m['load_at_start']}, at end {m.get('load_at_end')}. Every row "
        "records the threads it used and the 1-minute load while it ran (this benchmark's own threads count "
        "towards it: about the thread count when the machine is otherwise quiet).",
        "",
        "## Targets",
        "",
        *targets_table(results),
    ]
    for name, title in TITLES.items():
        section = results["sections"].get(name)
        if section is None:
            continue
        lines += ["", f"## {title}", ""]
        if "error" in section:
            lines.append(f"Failed: `{section['error']}`")
            continue
        lines += table(section["rows"], quick)
        if section.get("experiment_rows"):
            lines += ["", "What else was tried (classic size, gptlab, paired ratios):", ""]
            lines += table(section["experiment_rows"], quick)
        if section.get("profile"):
            lines += profile_lines(section["profile"])
        for note in section.get("notes", []):
            lines += ["", note]
        if section.get("measured"):  # a section kept from an earlier --only run says which run it was
            when = section["measured"]
            lines += ["", f"This section: `{when['command']}`, finished {when['finished']}, 1-minute load "
                          f"{when['load_end']} at its end."]
    return "\n".join(lines) + "\n"
