"""The shipped models are what the README says they are: each is re-scored on the val split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptlab import TokenSplits, load_checkpoint
from gptlab.classroom.catalog import discover
from train.evaluate import full_split_loss
from train.report import END, START, render, shipped

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO / "checkpoints"
SHIPPED = sorted(p.parent for p in CHECKPOINTS.glob("*/metrics.json"))
SNAPSHOTS = sorted(p.parent for p in CHECKPOINTS.glob("*/snapshots/*/metrics.json"))


def test_the_ladder_is_shipped():
    names = {p.name for p in SHIPPED}
    assert {"bigram", "single_head", "multi_head", "blocks", "gpt"} <= names


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_recorded_val_loss_is_reproduced(folder, shakespeare_text):
    """Whole val split, every token once: must match metrics.json (the weights as shipped)."""
    checkpoint = load_checkpoint(folder)
    metrics = checkpoint.metrics
    assert "python -m train" in metrics["command"]
    splits = TokenSplits.from_ids(checkpoint.tokenizer.encode(shakespeare_text))
    loss = full_split_loss(checkpoint.model, splits.val, "cpu")
    assert loss == pytest.approx(metrics["best"]["val_loss_full"], abs=2e-3)
    assert metrics["best"]["val_loss"] == min(row["val_loss"] for row in metrics["history"])


@pytest.mark.parametrize("folder", SNAPSHOTS, ids=lambda p: f"{p.parent.parent.name}-{p.name}")
def test_snapshots_load_and_record_their_step(folder):
    checkpoint = load_checkpoint(folder)
    assert folder.name == f"step_{checkpoint.metrics['best']['step']:06d}"


def test_the_readme_table_lists_models_in_the_apps_order(tmp_path):
    """One ladder order: the README table (train.report) and the app's model list (the catalog) agree."""
    for name in ["zeta", "gpt", "aardvark", "bigram", "gpt-large", "blocks"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "metrics.json").write_text("{}")
    assert list(shipped(tmp_path)) == list(discover(tmp_path)) == ["bigram", "blocks", "gpt", "aardvark",
                                                                   "gpt-large", "zeta"]


def test_readme_table_is_generated_from_metrics():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(START) : readme.index(END) + len(END)]
    assert section == render(CHECKPOINTS, "docs/ladder.png"), "README is stale: run python -m train.report"


def test_shipped_weights_fit_the_size_budget():
    total = sum(f.stat().st_size for f in CHECKPOINTS.rglob("*.safetensors") if "training_state" not in f.name)
    # under 60 MB (57 MiB): the Space and a clone carry every shipped model and its snapshots
    assert total <= 57 * 2**20, f"checkpoints/ holds {total / 2**20:.1f} MiB of weights (budget 57 MiB)"


def test_every_shipped_config_is_json_with_a_known_kind():
    for folder in SHIPPED:
        config = json.loads((folder / "config.json").read_text())
        assert config["model"]["kind"] in {"bigram", "single_head", "multi_head", "blocks", "gpt"}
