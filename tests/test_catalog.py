"""catalog: discovery in ladder order, Hub ids from the environment, load failures kept, table rows."""

from __future__ import annotations

import shutil

import pytest

from gptlab import GptlabError
from gptlab.classroom.catalog import Catalog, discover, format_duration, format_params, hub_ids_from_env, training_time


@pytest.fixture
def shelf(tmp_path, tiny_checkpoints):
    """A checkpoints folder: gpt and bigram, a broken one, a snapshots folder and a stray file."""
    for name in ("gpt", "bigram"):
        shutil.copytree(tiny_checkpoints[name], tmp_path / name)
    shutil.copytree(tiny_checkpoints["gpt"], tmp_path / "zz-custom")
    (tmp_path / "zz-custom" / "model.safetensors").write_bytes(b"not weights")
    (tmp_path / "snapshots" / "step100").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("hi")
    return tmp_path


def test_discover_sorts_in_ladder_order_and_skips_non_models(shelf):
    assert list(discover(shelf)) == ["bigram", "gpt", "zz-custom"]
    assert discover(shelf / "missing") == {}


def test_hub_ids_come_from_a_comma_separated_list(monkeypatch):
    assert hub_ids_from_env(" a/b, ,c/d ") == ["a/b", "c/d"]
    monkeypatch.setenv("GPTLAB_HUB_MODELS", "user/gpt-small")
    assert hub_ids_from_env() == ["user/gpt-small"]


def test_load_all_keeps_failures_and_offers_the_rest(shelf):
    catalog = Catalog.from_sources(shelf).load_all()
    assert catalog.names == ["bigram", "gpt"]
    assert catalog.attention_names == ["gpt"]
    assert "not a readable safetensors" in catalog.entries["zz-custom"].error
    with pytest.raises(GptlabError, match="zz-custom"):
        catalog.get("zz-custom")
    with pytest.raises(GptlabError, match="Choose one of: bigram, gpt"):
        catalog.get("../etc")


def test_labels_and_table_show_size_and_loss(shelf):
    catalog = Catalog.from_sources(shelf, only=["gpt", "bigram"]).load_all()
    gpt = catalog.get("gpt")
    assert catalog.label("gpt") == f"gpt · {format_params(gpt.n_params)} params · val loss 2.500"
    rows = {row[0]: row for row in catalog.table()}
    assert rows["gpt"][3] == f"{gpt.n_params:,}" and rows["gpt"][6] == 2.5 and rows["gpt"][4] == "2×4×32"
    assert rows["gpt"][8] == "local folder"
    assert catalog.choices() == [(catalog.label("gpt"), "gpt"), (catalog.label("bigram"), "bigram")]
    assert catalog.default("gpt") == "gpt" and catalog.default("blocks") == "bigram"


def test_only_names_that_exist(shelf):
    with pytest.raises(GptlabError, match="nope"):
        Catalog.from_sources(shelf, only=["nope"])


def test_hub_model_offline_is_an_error_entry_not_a_crash(tmp_path):
    catalog = Catalog.from_sources(tmp_path, ["someone/never-cached-model"]).load_all()
    assert catalog.names == []
    assert "not available offline" in catalog.entries["never-cached-model"].error


def test_small_helpers():
    assert format_params(29_760) == "29.8K" and format_params(10_800_000) == "10.8M" and format_params(12) == "12"
    assert training_time({"history": [{"step": 1, "time_s": 90.0}]}) == 90.0
    assert training_time({"train_time_s": 5, "history": [{"time_s": 4}]}) == 5.0 and training_time({}) is None
    assert [format_duration(s) for s in (None, 42, 750, 7200)] == ["—", "42 s", "12.5 min", "2.0 h"]


def test_a_missing_model_names_where_it_was_looked_for(tmp_path):
    """--models gpt with a mistyped --checkpoints: the message says the folder does not exist (it said
    'but only none were found')."""
    with pytest.raises(GptlabError, match=r"no model was found \(there is no folder .*nowhere\)"):
        Catalog.from_sources(tmp_path / "nowhere", None, ["gpt"])
    with pytest.raises(GptlabError, match=r"no model was found \(looked in the checkpoint folders under "):
        Catalog.from_sources(tmp_path, None, ["gpt"])


def test_a_mistyped_local_path_is_called_one(monkeypatch, shelf):
    """'checkpoints/gtp' beside a checkpoints folder reads as a Hub id too; the message leads with the folder
    and lists what it holds."""
    from gptlab import CheckpointError, load_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(shelf.parent)
    with pytest.raises(CheckpointError, match=rf"No checkpoint folder at {shelf.name}/gtp \({shelf.name} holds: "):
        load_checkpoint(f"{shelf.name}/gtp")
