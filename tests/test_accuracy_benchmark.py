"""benchmarks/accuracy.py (make accuracy): its statistics by hand, and a tiny real run so it cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import accuracy  # noqa: E402
import accuracy_stats  # noqa: E402


def test_paired_bootstrap_by_hand():
    # Identical results: every resample differs by 0.
    assert accuracy_stats.paired_bootstrap([[1, 0, 1]], [[1, 0, 1]], 200) == (0.0, (0.0, 0.0))
    # The variant gets every video right, the baseline none: +100 in every resample.
    assert accuracy_stats.paired_bootstrap([[0, 0], [0, 0]], [[1, 1], [1, 1]], 200) == (100.0, (100.0, 100.0))
    # Seed 0: -1 video of 4 (-25 points), seed 1: equal -> mean -12.5. No video is better in the
    # variant, so no resample is above 0; drawing seed 1 twice gives exactly 0, so the CI reaches 0.
    mean, (low, high) = accuracy_stats.paired_bootstrap([[1, 1, 0, 0], [1, 0, 1, 0]], [[1, 0, 0, 0], [1, 0, 1, 0]], 500)
    assert mean == pytest.approx(-12.5)
    assert -100.0 <= low < mean < high == 0.0
    with pytest.raises(ValueError, match="equal shape"):
        accuracy_stats.paired_bootstrap([[1, 0]], [[1, 0, 1]])


def test_time_to_accuracy_is_the_first_validation_at_the_target():
    curve = [{"train_s": 1.0, "val_top1": 0.5}, {"train_s": 2.5, "val_top1": 0.81}, {"train_s": 4.0, "val_top1": 0.9}]
    assert accuracy_stats.time_to_accuracy(curve, 0.8) == 2.5
    assert accuracy_stats.time_to_accuracy(curve, 0.9) == 4.0
    assert accuracy_stats.time_to_accuracy(curve, 0.95) is None


def test_reference_variant_is_the_reference_schedule():
    from lightning_multigrid.schedule.recipe import BaseRecipe

    # The reference keeps every short-cycle crop, rescales the frames of smaller crops (spec section 5)
    # and scales the LR linearly (section 3); the default is a different variant at S0=64.
    assert accuracy.REFERENCE == {"short_cycle_min_crop": 0, "spatial_coarsening": "rescale", "lr_scaling": "linear",
                                  "max_batch_factor": None}
    reference = BaseRecipe(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4, **accuracy.REFERENCE)
    assert reference.short_cycle_crop_factors == BaseRecipe.short_cycle_factors
    assert reference == BaseRecipe(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4)
    assert accuracy.differs_from_reference()


def test_quick_run_writes_every_field(tmp_path):
    report = accuracy.main(["--quick", "--seeds", "2", "--variants", "baseline", "reference", "--bootstrap", "100",
                            "--data-root", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"), "--quiet"])
    written = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert written["seeds"] == [0, 1] and set(written["variants"]) == {"baseline", "reference"}
    ref = written["variants"]["reference"]
    for name in ("test_top1", "train_s", "iterations", "time_to_baseline_accuracy_s"):
        assert len(ref[name]) == 2, name
    assert ref["callback_kwargs"] == accuracy.REFERENCE
    low, high = ref["test_diff_ci95_points"]
    assert low <= ref["test_diff_mean_points"] <= high
    # The mean difference is the per-seed test top-1 difference, averaged (same test videos each seed).
    diffs = [100 * (r - b) for r, b in zip(ref["test_top1"], written["variants"]["baseline"]["test_top1"])]
    assert ref["test_diff_mean_points"] == pytest.approx(sum(diffs) / 2, abs=1e-6)
    # Every epoch validated (at the base shape): the baseline's 2 epochs, the multigrid run's own.
    assert [len(c) for c in written["variants"]["baseline"]["val_curve"]] == [2, 2]
    assert all(len(c) == m for c, m in zip(ref["val_curve"], ref["max_epochs"]))
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 0
    assert report["variants"]["reference"]["iterations"] == ref["iterations"]


def test_quick_sweep(tmp_path):
    report = accuracy.main(["--sweep", "--quick", "--data-root", str(tmp_path / "data"), "--out-dir",
                            str(tmp_path / "out"), "--quiet"])
    cell = json.loads((tmp_path / "out" / "accuracy_sweep.json").read_text())["cells"][0]
    assert {"baseline", "reference", "default"} <= set(cell)
    assert cell["reference"]["test_diff_points"] == pytest.approx(
        100 * (cell["reference"]["test_top1"] - cell["baseline"]["test_top1"]))
    assert len(report["cells"]) == 1
