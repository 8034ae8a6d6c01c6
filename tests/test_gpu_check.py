"""benchmarks/gpu_check.py --tiny --device cpu: every part runs and reports consistently (never timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_loader_benchmark import _load


@pytest.mark.usefixtures("single_torch_thread")
def test_tiny_cpu_run_reports_demand_supply_and_the_decode_check(tmp_path: Path) -> None:
    check = _load("gpu_check")
    result = check.main(["--tiny", "--device", "cpu", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path)])
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == result
    grids = {row["grid"] for row in result["demand"]}
    assert len(grids) == 2 and len(result["demand"]) == 2 * 4  # fp32/bf16 x channels_last_3d off/on per grid
    assert {(r["bf16"], r["channels_last_3d"]) for r in result["demand"]} == {(a, b) for a in (False, True) for b in (False, True)}
    assert all(r["train_clips_per_s"] > 0 for r in result["demand"])
    assert {(r["grid"], r["decode_on"]) for r in result["supply"]} == {(g, p) for g in grids for p in ("workers", "device")}
    for row in result["supply"]:
        best = max(r["train_clips_per_s"] for r in result["demand"] if r["grid"] == row["grid"])
        assert row["best_train_clips_per_s"] == best
        assert row["supply_over_demand"] == pytest.approx(row["loader_clips_per_s"] / best)
    # On the CPU the "device" decode is libjpeg-turbo itself: twice equal, and equal to the reference.
    assert result["decode_twice"] == {"frames": 64, "twice_mismatched_frames": 0, "max_abs_diff_vs_cpu": 0, "ok": True}
    assert result["meta"]["cpu_count"] >= 1 and result["meta"]["device"] == "cpu"
