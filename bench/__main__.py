"""``python -m bench [--quick] [--only SECTION ...] [--out DIR] [--peer-nanogpt PATH]``: run the benchmark, write
the results."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

# Before gradio or huggingface_hub are imported: no telemetry, no network lookups.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from gptlab.cli import run_cli  # noqa: E402
from gptlab.errors import GptlabError  # noqa: E402

from . import ablation, app_bench, capture, class_load, generation, live, matmul, peer, quality, report, training  # noqa: E402, E501
from .common import Options, load, machine  # noqa: E402
from .nanogpt import check_checkout  # noqa: E402

SECTIONS = {"matmul": matmul, "training": training, "quality": quality, "generation": generation,
            "capture": capture, "app": app_bench, "class": class_load, "live": live,
            "ablation": ablation}
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run at tiny sizes (under a minute; CI runs it)")
    parser.add_argument("--only", action="append", choices=[*SECTIONS, "peer"], metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}; the others keep "
                             "their numbers from the existing results.json")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for RESULTS.md and results.json (default: bench/, or bench/quick/ with --quick)")
    parser.add_argument("--threads", type=int, default=0, help="PyTorch threads (default: one per core)")
    parser.add_argument("--peer-nanogpt", type=Path, default=None, metavar="PATH",
                        help="also run section 'peer': an unmodified nanoGPT checkout you fetched (git clone "
                             "https://github.com/karpathy/nanoGPT) beside gptlab, at equal wall time and shapes")
    args = parser.parse_args(argv)
    if args.only and "peer" in args.only and args.peer_nanogpt is None:
        parser.error("--only peer needs --peer-nanogpt PATH (a nanoGPT checkout)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peer_nanogpt is not None:
        try:  # before any section runs: a wrong folder should not cost an hour of benchmarking first
            args.peer_nanogpt = check_checkout(args.peer_nanogpt)
        except GptlabError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    names = list(dict.fromkeys(args.only or SECTIONS))
    if args.peer_nanogpt is not None and "peer" not in names:
        names.append("peer")
    out = args.out or (HERE / "quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(Options(threads=args.threads).thread_count)
    mode = "quick" if args.quick else "full"
    previous = out / "results.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    results = old if args.only else {}
    if results.get("mode") != mode:
        results = {"sections": {}}
    if "peer" not in names and old.get("mode") == mode and "peer" in old.get("sections", {}):
        results["sections"]["peer"] = old["sections"]["peer"]  # optional: kept until a run with --peer-nanogpt
    started = time.perf_counter()
    results |= {"mode": mode, "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": machine()}
    failed = []
    with tempfile.TemporaryDirectory(prefix="gptlab-bench-") as tmp:
        options = Options(quick=args.quick, threads=args.threads, workdir=Path(tmp), peer_nanogpt=args.peer_nanogpt)
        for name in names:
            print(f"bench: {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                section = SECTIONS.get(name, peer).run(options, results["sections"])
            except Exception as exc:  # one broken section must not lose the others' numbers
                traceback.print_exc()
                section = {"error": f"{type(exc).__name__}: {exc}"[:500], "rows": []}
                failed.append(name)
            section["seconds"] = time.perf_counter() - t0
            section["measured"] = {"command": results["command"], "load_end": load()[0],
                                   "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
            results["sections"][name] = section
            print(f"bench: {name} took {section['seconds']:.1f} s (load {section['measured']['load_end']})",
                  flush=True)
    results["machine"]["load_at_end"] = list(load())
    results["wall_s"] = time.perf_counter() - started
    results["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    (out / "RESULTS.md").write_text(report.render(results), encoding="utf-8")
    if mode == "full" and out == HERE and report.update_readme(HERE.parent / "README.md", results):
        print("bench: README.md's speed table updated")
    print(f"bench: wrote {out / 'RESULTS.md'} and results.json in {results['wall_s']:.0f} s")
    if failed:
        print(f"bench: failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
