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


@pytest.mark.usefixtures("single_torch_thread")
def test_quick_run_reports_every_grid_input_and_stage(tmp_path: Path) -> None:
    bench = _load("loader")
    result = bench.main(["--quick", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")])
    on_disk = json.loads((tmp_path / "out" / "loader.json").read_text())
    assert on_disk["coarsest_over_base"] == pytest.approx(result["coarsest_over_base"])
    assert (tmp_path / "out" / "loader.md").read_text().count("| frames |") == 5  # 2 grids x (throughput, stages) + the ratio
    grids = {row["grid"] for row in result["stages"]}
    assert len(grids) == 2 and set(result["coarsest_over_base"]) == {"video/pyav", "frames"}
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
