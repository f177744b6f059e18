"""The load script in a short, bounded form: a small class against the app, zero failures, flat memory."""

from __future__ import annotations

import json
import shutil

import pytest

from bench import load


def test_only_loopback_is_ever_targeted():
    for url in ["http://127.0.0.1:7860", "http://localhost:1", "http://[::1]:7860/", "http://127.8.9.10"]:
        assert load.require_loopback(url) == url.rstrip("/")
    for url in ["http://10.0.0.1:7860", "http://0.0.0.0:7860", "https://example.com", "http://192.168.1.2",
                "http://127.0.0.1.example.com", "not a url"]:
        with pytest.raises(SystemExit, match="must be on loopback"):
            load.require_loopback(url)
    with pytest.raises(SystemExit, match="must be on loopback"):
        load.main(["--url", "http://10.1.2.3:7860", "--users", "1", "--seconds", "1"])


def test_percentile_is_nearest_rank():
    assert load.percentile([], 95) is None
    assert load.percentile([3.0], 50) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert load.percentile(values, 50) == 50.0 and load.percentile(values, 95) == 95.0


@pytest.mark.slow
def test_a_small_class_is_served_without_failures(tiny_checkpoints, tmp_path):
    shelf = tmp_path / "shelf"
    for name, folder in tiny_checkpoints.items():
        shutil.copytree(folder, shelf / name)
    result = load.run_load(users=8, seconds=10, checkpoints=str(shelf), think=(0.2, 1.0), request_timeout=60,
                           prompts=["First Citizen:\n", "All:\nSpeak, speak.", "You are all resolved"])
    load.write_results(result, tmp_path / "load.json", tmp_path / "LOAD.md")

    assert result["failed"] == 0, result["errors"]
    assert result["users_stuck"] == 0
    assert result["ran_s"] < 10 + 60 + 30  # stopped by itself
    assert result["served"] <= result["max_requests"]
    for endpoint, row in result["per_endpoint"].items():
        assert row["served"] >= 1, endpoint  # the mix reached every endpoint
        assert row["p95_s"] is not None and row["p95_s"] < 60
    mem = result["memory"]
    assert mem["peak_rss_mib"] > 50 and len(mem["rss_samples_mib"]) >= 10
    # flat memory: the last quarter's mean stays within 20% (plus 32 MiB of allocator slack) of the first's
    assert mem["rss_last_quarter_mib"] <= mem["rss_first_quarter_mib"] * 1.2 + 32, mem
    assert json.loads((tmp_path / "load.json").read_text())["served"] == result["served"]
    assert "requests served" in (tmp_path / "LOAD.md").read_text()
