"""benchmarks/loader.py --quick: structure and internal consistency of its report (never timings)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):  # noqa: ANN202 - a module
    sys.path.insert(0, str(ROOT / "benchmarks"))  # loader.py imports its sibling modules
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_grids_are_the_demo_schedule() -> None:
    bench = _load("loader")
    schedule, demo = bench.demo_schedule()
    grids = bench.schedule_grids(schedule)
    base = grids[-1]
    recipe = schedule.recipe
    assert (base["shape"].num_frames, base["shape"].crop_size, base["batch_size"]) == (
        recipe.num_frames, recipe.crop_size, recipe.batch_size)
    # Coarsest grid: the long cycle's smallest T and S with the short cycle's smallest crop.
    costs = [g["shape"].num_frames * g["shape"].crop_size ** 2 for g in grids]
    assert costs == sorted(costs) and costs[0] < costs[-1]
    for g in grids:  # the batch grows as the clip shrinks (equal clips x voxels per batch, to rounding)
        ratio = g["batch_size"] * g["shape"].num_frames * g["shape"].crop_size ** 2 / (base["batch_size"] * costs[-1])
        assert 0.5 < ratio < 2.0, g


def test_320x240_sources_measure_the_k400_grids_of_issue_20() -> None:
    # Issue 20's table: the K400 recipe's grids on 320x240 sources, both cycles (S0 = 210 keeps every
    # short-cycle crop over the 64 px floor), coarsest first in pixels per clip.
    bench = _load("loader")
    schedule, _ = bench.demo_schedule(240)
    grids = {(g["shape"].num_frames, g["shape"].crop_size, g["batch_size"]) for g in bench.schedule_grids(schedule)}
    assert grids == {(16, 210, 4), (8, 210, 8), (16, 148, 8), (16, 105, 16), (8, 148, 16), (8, 105, 32),
                     (4, 148, 32), (4, 105, 64)}
    coarse = bench.schedule_grids(schedule)[0]["shape"]
    assert coarse.jitter_range == (105, 236)  # spec section 5: [round(j_min * S / S0), j_max]


@pytest.mark.usefixtures("single_torch_thread")
def test_quick_run_reports_every_grid_input_and_stage(tmp_path: Path) -> None:
    bench = _load("loader")
    result = bench.main(["--quick", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")])
    on_disk = json.loads((tmp_path / "out" / "loader.json").read_text())
    assert on_disk["coarsest_over_base"] == pytest.approx(result["coarsest_over_base"])
    # 2 grids x (throughput, stages, per iteration) + the ratio
    assert (tmp_path / "out" / "loader.md").read_text().count("| frames |") == 7
    grids = {row["grid"] for row in result["stages"]}
    labels = {m.label for m in bench.input_modes({k: Path() for k in ("video", *(n for n, *_ in bench.STORES))}, ["pyav"])}
    assert len(grids) == 2 and set(result["coarsest_over_base"]) == labels
    for row in result["stages"]:
        assert row["total"] == pytest.approx(sum(row[s] for s in bench.STAGES))
        assert all(row[s] >= 0 for s in ("open", "convert_resize", "collate"))
    for row in result["throughput"]:
        assert row["loader_over_trainer"] == pytest.approx(row["loader_clips_per_s"] / row["trainer_clips_per_s"])
    coarse, base = result["meta"]["grids"][0], result["meta"]["grids"][-1]
    assert coarse["num_frames"] * coarse["crop_size"] ** 2 < base["num_frames"] * base["crop_size"] ** 2
    # The frame folders hold the same videos as the video input (prepare's output of train.csv).
    videos = (tmp_path / "data" / "videos_64x64" / "train.csv").read_text().split("\n")
    frames = (tmp_path / "data" / "frames_64x64_src" / "train.csv").read_text().split("\n")
    assert [line.replace(".mp4", "") for line in videos] == frames
    _check_per_iteration_rows(result, on_disk)


def _mode_names(bench) -> set[str]:  # noqa: ANN001 - the loaded module
    """Every input mode of the quick run (PyAV only among the video decoders)."""
    return {m.name for m in bench.input_modes({k: Path() for k in ("video", *(name for name, *_ in bench.STORES))}, ["pyav"])}


def _check_per_iteration_rows(result: dict, on_disk: dict) -> None:
    """Issue #20's table: per grid, input and decode place, CPU per clip and per iteration against the
    base grid (the last one) of the same input and place, recomputed here from the stage rows."""
    assert on_disk["grids"] == result["grids"]  # floats round-trip through JSON exactly
    fields = {"T", "S", "batch_size", "input", "decode_on", "cpu_ms_per_clip", "cpu_ms_per_iteration", "relative_to_base",
              "device_decode_cpu_ms_per_clip"}
    modes = {(s["input"], s["decode_on"]) for s in result["stages"]}
    assert len(result["grids"]) == len(result["stages"]) == 2 * len(modes)
    base = result["meta"]["grids"][-1]
    for row, stage in zip(result["grids"], result["stages"]):
        assert set(row) == fields
        assert row["cpu_ms_per_clip"] == stage["total"] > 0
        assert row["cpu_ms_per_iteration"] == pytest.approx(row["batch_size"] * row["cpu_ms_per_clip"])
        base_row = next(r for r in result["grids"] if (r["input"], r["decode_on"]) == (row["input"], row["decode_on"])
                        and (r["T"], r["S"], r["batch_size"]) == (base["num_frames"], base["crop_size"], base["batch_size"]))
        assert row["relative_to_base"] == pytest.approx(row["cpu_ms_per_iteration"] / base_row["cpu_ms_per_iteration"])
    assert {r["relative_to_base"] for r in result["grids"] if r["S"] == base["crop_size"]} == {1.0}
    assert {r["decode_on"] for r in result["grids"]} == {"workers", "device"}
    for row in result["grids"]:  # only device rows leave decoding to the training process
        assert (row["device_decode_cpu_ms_per_clip"] > 0) == (row["decode_on"] == "device")


@pytest.mark.usefixtures("single_torch_thread")
def test_scaled_sources_run_every_input_mode(tmp_path: Path) -> None:
    """``--video-size`` other than the demo's scales the grids (it crashed once: ClipShape.with_ was
    removed); every input mode and decode place runs at a tiny size."""
    bench = _load("loader")
    result = bench.main(["--quick", "--video-size", "96x72", "--data-dir", str(tmp_path / "data"), "--out-dir",
                         str(tmp_path / "out")])
    coarse, base = result["meta"]["grids"][0], result["meta"]["grids"][-1]
    assert base["crop_size"] == round(72 * 224 / 256) and coarse["crop_size"] < base["crop_size"]
    assert base["jitter_range"][0] == base["crop_size"]
    assert {s["input"] for s in result["stages"]} == _mode_names(bench)
    _check_per_iteration_rows(result, json.loads((tmp_path / "out" / "loader.json").read_text()))
