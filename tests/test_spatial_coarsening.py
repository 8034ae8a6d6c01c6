"""spatial_coarsening: how a grid's smaller crop is taken (issue 24), against the spec and by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightning_multigrid import MultigridCallback
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule
from lightning_multigrid.schedule.config_checks import losing_regime_warnings

K400 = dict(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64)
SMALL = dict(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4, sampling_rate=2,
             jitter_scales=(64, 72), bn_base_size=4, short_cycle_min_crop=64)


def shapes(s: MultigridSchedule) -> list[list[tuple[int, int, int]]]:
    return [[(c.num_frames, c.crop_size, s.global_batch_size(e)) for c in s.clip_shapes(e)] for e in range(s.max_epochs)]


def test_rescale_is_the_spec_rule_by_hand():
    # Spec section 5: [j_min, j_max] becomes [round(j_min * crop / S0), j_max].
    s = MultigridSchedule(BaseRecipe(**K400))
    assert s.jitter_range(112) == (128, 320) and s.jitter_range(158) == (181, 320) and s.jitter_range(224) == (256, 320)
    small = MultigridSchedule(BaseRecipe(**SMALL))
    assert small.clip_shapes(0)[0].crop_size == 45 and small.clip_shapes(0)[0].jitter_range == (45, 72)


def test_crop_keeps_the_base_scale_and_changes_nothing_else():
    rescale = MultigridSchedule(BaseRecipe(**SMALL))
    crop = MultigridSchedule(BaseRecipe(**SMALL, spatial_coarsening="crop"))
    # Same arithmetic: epochs, LR milestones, and every epoch's (T, S, B).
    assert (crop.max_epochs, crop.lr_milestones) == (rescale.max_epochs, rescale.lr_milestones) == (18, [0, 6, 10, 11, 12, 15, 16, 17])
    assert shapes(crop) == shapes(rescale)
    # Every crop, 45 or 64 pixels, is cut from a frame rescaled to a short side in the base's [64, 72].
    assert {c.jitter_range for e in range(crop.max_epochs) for c in crop.clip_shapes(e)} == {(64, 72)}
    assert {c.crop_size for e in range(crop.max_epochs) for c in crop.clip_shapes(e)} == {45, 64}
    k400 = MultigridSchedule(BaseRecipe(**K400, spatial_coarsening="crop"))
    assert {c.jitter_range for c in k400.clip_shapes(0)} == {(256, 320)}  # short-cycle crops 112 and 158 too


def test_crop_is_not_warned_about_and_rescale_at_small_clips_is():
    assert any("long-cycle grids" in w for w in losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL))))
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, spatial_coarsening="crop", lr_scaling="sqrt"))) == []


@pytest.mark.parametrize("bad", ["resize", "", None, 1])
def test_bad_value_names_the_field(bad):
    with pytest.raises(ValueError, match="spatial_coarsening"):
        BaseRecipe(**SMALL, spatial_coarsening=bad)


def test_callback_and_schedule_command_share_the_default_auto():
    import inspect

    from lightning_multigrid.schedule.recipe import DEFAULT_SPATIAL_COARSENING

    assert inspect.signature(MultigridCallback).parameters["spatial_coarsening"].default == DEFAULT_SPATIAL_COARSENING == "auto"
    assert BaseRecipe(**SMALL).spatial_coarsening == "rescale"  # the recipe's own default: the reference
    callback = MultigridCallback(steps=[0, 7, 10], spatial_coarsening="crop")
    assert callback.settings.cycle["spatial_coarsening"] == "crop"
    args = ["--steps", "0", "7", "10", "--max-epochs", "12", "--num-frames", "16", "--crop-size", "64",
            "--batch-size", "4", "--jitter-scales", "64", "72", "--json"]
    run = [sys.executable, "-m", "lightning_multigrid.cli", "schedule", *args]

    def first_jitter(*extra: str) -> tuple[list, dict]:
        report = json.loads(subprocess.run([*run, *extra], capture_output=True, text=True, check=True).stdout)
        return [slot["jitter_range"] for slot in report["stages"][0]["short_cycle"]], report

    rescale, rescale_report = first_jitter("--spatial-coarsening", "rescale")
    assert rescale == [[45, 72]]  # round(64 * 45 / 64) = 45: the spec's rule
    crop, crop_report = first_jitter("--spatial-coarsening", "crop")
    assert crop == [[64, 72]]
    assert first_jitter()[0] == crop  # 'auto' at S0=64 (45-pixel grids)
    assert (rescale_report["max_epochs"], rescale_report["lr_milestones"]) == (crop_report["max_epochs"], crop_report["lr_milestones"])


def test_auto_is_crop_only_where_a_grid_crops_under_64_pixels():
    def resolved(**changes):
        return BaseRecipe(**{**SMALL, "jitter_scales": None, **changes, "spatial_coarsening": "auto"}).spatial_coarsening

    assert resolved() == "crop"  # long-cycle grids of round(64 / sqrt2) = 45 pixels
    assert resolved(crop_size=90) == "rescale"  # round(90 / sqrt2) = 64
    assert resolved(crop_size=89) == "crop"  # round(89 / sqrt2) = 63
    assert resolved(long_cycle=False) == "rescale"  # short cycle floored away: only base crops
    assert resolved(long_cycle=False, short_cycle_min_crop=0) == "crop"  # short-cycle crops 32 and 45
    assert BaseRecipe(**K400, spatial_coarsening="auto").spatial_coarsening == "rescale"  # 112, 158: the paper's
