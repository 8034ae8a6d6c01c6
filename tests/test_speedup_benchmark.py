"""benchmarks/speedup.py runs both trainings end to end (tiny --quick configuration)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import DEFAULT_SHORT_CYCLE_MIN_CROP, BaseRecipe

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
    report = bench.main(["--quick", "--quiet", "--overhead", "--seeds", "2", "--data-dir", str(tmp_path / "data"),
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
    assert mg["iterations"] <= base["iterations"]
    assert mg["precise_bn_calls"] > 0 and base["precise_bn_calls"] == 0
    # The theoretical figure is the schedule's, for this dataset.
    cfg = report["config"]
    recipe = dict(
        steps=cfg["steps"], max_epochs=cfg["epochs"], num_frames=cfg["num_frames"], crop_size=cfg["crop_size"],
        batch_size=cfg["batch_size"] * cfg["devices"], sampling_rate=cfg["sampling_rate"], bn_base_size=cfg["bn_base_size"],
        short_cycle_min_crop=DEFAULT_SHORT_CYCLE_MIN_CROP)  # the callback's default, which the run used
    clips = report["data"]["num_train_clips"]
    # A quick run is far under 600 iterations even capped at 4, so the default max_batch_factor caps at 2.
    assert MultigridSchedule(BaseRecipe(**recipe, max_batch_factor=4)).iterations(clips, cfg["devices"]) < 600
    schedule = MultigridSchedule(BaseRecipe(**recipe, max_batch_factor=2))
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
    _check_data_path_grids_floor_and_seeds(bench, report, cfg)


def _check_data_path_grids_floor_and_seeds(bench, report, cfg) -> None:  # noqa: ANN001
    """The new fields: structure and internal consistency only (never timings)."""
    # Default path: generate, prepare frame folders, and train both runs on those.
    data = report["data"]
    assert cfg["data_dir"] == str(Path(data["frames_dir"]).resolve()) and data["videos_converted"] == 60
    assert (Path(data["frames_dir"]) / "train.csv").is_file()
    t0, s0, b0 = cfg["num_frames"], cfg["crop_size"], cfg["batch_size"]
    for name, run in report["runs"].items():
        grids = report["grids"][name]
        assert sum(g["iterations"] for g in grids) == run["iterations"]
        for g in grids:
            # The schedule's own count per grid is what was trained.
            assert g["schedule_iterations"] == g["iterations"]
            t, s = g["num_frames"], g["crop_size"]
            assert g["ideal_ratio"] == pytest.approx(t0 * s0**2 / (t * s**2))
            assert g["efficiency"] == pytest.approx(g["compute_ratio"] / g["ideal_ratio"])
            assert g["wait_over_step"] == pytest.approx(g["wait_s"] / (g["step_s_per_iteration"] * g["iterations"]), rel=1e-2)
        base = next(g for g in grids if (g["num_frames"], g["crop_size"], g["batch_size"]) == (t0, s0, b0))
        assert base["compute_ratio"] == pytest.approx(1.0) and base["efficiency_reference"] == "own base grid"
        # Every second of training is in exactly one bucket.
        parts = ("step_s", "data_wait_s", "loop_overhead_s", "precise_bn_s", "loader_rebuild_s", "epoch_start_wait_s",
                 "startup_s", "other_s")
        assert sum(run[p] for p in parts) == pytest.approx(run["train_s"], rel=1e-9)
        assert all(run[p] >= 0 for p in parts[:-1])
    assert len(report["grids"]["multigrid"]) > 1 and len(report["grids"]["baseline"]) == 1
    budget = report["time_budget"]
    grids = report["grids"]["multigrid"]
    assert budget["compute_floor_s"] == pytest.approx(
        sum(g["schedule_iterations"] * g["step_s_per_iteration"] for g in grids))
    # The schedule's iterations equal the trained ones, so the floor is the measured step time.
    assert budget["compute_floor_s"] == pytest.approx(report["runs"]["multigrid"]["step_s"], abs=0.01)
    assert budget["train_over_floor"] == pytest.approx(budget["train_s"] / budget["compute_floor_s"])
    seeds = report["seeds"]
    assert [e["seed"] for e in seeds["seeds"]] == [cfg["seed"], cfg["seed"] + 1]
    first = seeds["seeds"][0]
    assert first["baseline_test_top1"] == report["runs"]["baseline"]["test_top1"]
    diffs = [e["multigrid_test_top1"] - e["baseline_test_top1"] for e in seeds["seeds"]]
    assert [e["test_top1_difference"] for e in seeds["seeds"]] == pytest.approx(diffs)
    assert seeds["mean_test_top1_difference"] == pytest.approx(sum(diffs) / 2)
    text = bench.format_report(report)
    assert "compute floor" in text and "mean" in text and "efficiency" in text
