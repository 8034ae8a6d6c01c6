"""benchmarks/speedup.py runs both trainings end to end (tiny --quick configuration)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("speedup_benchmark", ROOT / "benchmarks" / "speedup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_benchmark_reports_both_runs(tmp_path):
    bench = load_benchmark()
    report = bench.main(["--quick", "--quiet", "--overhead", "--data-dir", str(tmp_path / "data"),
                         "--out-dir", str(tmp_path / "out")])
    on_disk = json.loads((tmp_path / "out" / "speedup.json").read_text())
    assert on_disk["runs"].keys() == report["runs"].keys() == {"baseline", "multigrid"}
    assert (tmp_path / "out" / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    base, mg = report["runs"]["baseline"], report["runs"]["multigrid"]
    for run in (base, mg):
        assert run["iterations"] > 0 and run["train_s"] > 0 and run["total_s"] >= run["train_s"]
        assert 0 <= run["final_val_top1"] <= 1 and 0 <= run["test_top1"] <= 1
        assert 0 <= run["data_wait_fraction"] <= 1
        assert run["peak_rss_mib"] > 0
    assert mg["iterations"] < base["iterations"]
    assert mg["precise_bn_calls"] > 0 and base["precise_bn_calls"] == 0
    # The theoretical figure is the schedule's, for this dataset.
    cfg = report["config"]
    schedule = MultigridSchedule(BaseRecipe(
        steps=cfg["steps"], max_epochs=cfg["epochs"], num_frames=cfg["num_frames"], crop_size=cfg["crop_size"],
        batch_size=cfg["batch_size"] * cfg["devices"], sampling_rate=cfg["sampling_rate"], bn_base_size=cfg["bn_base_size"]))
    assert mg["max_epochs"] == schedule.max_epochs
    speedup = report["speedup"]
    assert speedup["theoretical_speedup"] == pytest.approx(
        schedule.theoretical_speedup(report["data"]["num_train_clips"], cfg["devices"]), rel=1e-6)
    assert speedup["measured_speedup"] == pytest.approx(base["train_s"] / mg["train_s"], rel=1e-6)
    # Both runs trained exactly the iterations the schedule predicts (no shortcuts, exact len()).
    assert speedup["iterations_match_schedule"] is True
    # The overhead pair trained the same iterations at the base shape; the ratio is theirs.
    overhead = report["overhead"]
    assert overhead["iterations"] > 0
    assert overhead["ratio"] == pytest.approx(
        overhead["callback_s_per_iteration"] / overhead["plain_s_per_iteration"], rel=1e-6)
    assert "callback overhead" in bench.format_report(report)
