"""Time-budgeted runs of a preset's variants, one after another, scored like the benchmark.

    python scripts/sweep_preset.py gpt-mini 150 '{"ctx128": {"model.block_size": 128}, "b32": {"batch_size": 32}}'

Prints one JSON line per variant: the best checkpoint's loss on the whole val split, the
20-batch figure the run saw, steps, and the load. docs/TRAINING.md's sweep table came from it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Options  # noqa: E402
from bench.quality import corpus, timed_run  # noqa: E402


def main(preset: str, budget: float, variants: dict[str, dict]) -> None:
    with tempfile.TemporaryDirectory(prefix="gptlab-sweep-") as tmp:
        data = corpus(Options())
        for name, overrides in variants.items():
            workdir = Path(tmp) / name
            workdir.mkdir()
            run = timed_run(preset, budget, Options(workdir=workdir), data, **overrides)
            print(json.dumps({"name": name, "overrides": overrides, "whole_val_split": run["best"]["val_loss_full"],
                              "val_20_batches": run["best"]["val_loss"], "steps": run["history"][-1]["step"],
                              "load_end": run["load_end"]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]))
