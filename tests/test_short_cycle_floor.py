"""short_cycle_min_crop: the floor on short-cycle crops (issue 24), against hand-computed schedules."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from lightning_multigrid import MultigridCallback
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule, ShortCycleSlot
from lightning_multigrid.schedule.config_checks import losing_regime_warnings, validate_stages
from lightning_multigrid.schedule.recipe import DEFAULT_SHORT_CYCLE_MIN_CROP

K400 = dict(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64)
# The small recipe: slowfast_tiny at (B0, T0, S0) = (4, 16, 64), 12 epochs, steps [0, 7, 10].
SMALL = dict(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4, sampling_rate=2,
             jitter_scales=(64, 72), bn_base_size=4)


def table(s: MultigridSchedule) -> list[tuple]:
    return [(x.start_epoch, x.end_epoch, x.lr_stage, x.batch_factor, x.num_frames, x.crop_size) for x in s.stages]


def test_the_default_floor_keeps_the_k400_worked_example():
    # Spec section 3: S0=224 gives crops 112 and 158, both above 64, so nothing changes.
    floored = MultigridSchedule(BaseRecipe(**K400, short_cycle_min_crop=DEFAULT_SHORT_CYCLE_MIN_CROP))
    assert floored.lr_milestones == [0, 73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 343]
    assert floored.max_epochs == 358
    assert floored.short_cycle_slots(0) == [ShortCycleSlot(112, 2), ShortCycleSlot(158, 1), ShortCycleSlot(158, 1)]
    assert table(floored) == table(MultigridSchedule(BaseRecipe(**K400)))


def test_floor_64_at_s0_64_is_the_long_cycle_alone_by_hand():
    # Grids (b, T, S): (8, 4, 45), (4, 8, 45), (2, 8, 64), (1, 16, 64) -> avg_b [8, 4, 2, 1], sum 15.
    # Stage 0 (7 epochs): 3.733, 1.867, 0.933, 0.467; stage 1 (3 epochs): 1.6, 0.8, 0.4, 0.2.
    # iter_saving = 10 / (10 * 4 / 15) = 3.75; fine-tune = 2 / 3.75 = 0.533; scale = 18 / 10.533.
    # Cumulative ends 6.38, 9.57, 11.16, 11.96 | 14.70, 16.06, 16.75, 17.09 (empty) | 18.0.
    s = MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=64))
    assert table(s) == [
        (0, 6, 0, 8, 4, 45), (6, 10, 0, 4, 8, 45), (10, 11, 0, 2, 8, 64), (11, 12, 0, 1, 16, 64),
        (12, 15, 1, 8, 4, 45), (15, 16, 1, 4, 8, 45), (16, 17, 1, 2, 8, 64), (17, 18, 2, 1, 16, 64),
    ]
    assert s.iter_saving == pytest.approx(3.75)
    assert all(s.short_cycle_slots(e) == [ShortCycleSlot(s.stage_at(e).crop_size, 1)] for e in range(18))
    assert table(s) == table(MultigridSchedule(BaseRecipe(**SMALL, short_cycle=False)))


def test_floor_0_is_the_reference_at_s0_64():
    # The reference at S0=64 (the table): crops 32 and 45 in every stage, 18 epochs.
    s = MultigridSchedule(BaseRecipe(**SMALL))
    assert s.lr_milestones == [0, 5, 8, 10, 12, 14, 15, 16, 17]
    # Stage [10, 12) at S=64: multipliers round((64/32)^2) = 4 and round((64/45.25)^2) = 2.
    assert s.short_cycle_slots(10) == [ShortCycleSlot(32, 4), ShortCycleSlot(45, 2), ShortCycleSlot(64, 1)]


def test_a_floor_between_the_two_crops_keeps_one_slot():
    # Floor 33: crop 32 (f = 1/2) is left out, crop round(64/sqrt2) = 45 stays. Grids then average
    # two shapes: (4, 45.25)/(4, 45) -> b 8, 8; (8, 45.25)/(8, 45) -> 4, 4; (8, 45.25)/(8, 64) -> 4, 2;
    # (16, 45.25)/(16, 64) -> 2, 1. Slot multipliers: round((S / 45.25)^2) = 1 at S=45, 2 at S=64.
    s = MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=33))
    assert s.long_cycle_grids() == [
        [(8, 4, 64 / 2**0.5), (8, 4, 45)], [(4, 8, 64 / 2**0.5), (4, 8, 45)],
        [(4, 8, 64 / 2**0.5), (2, 8, 64)], [(2, 16, 64 / 2**0.5), (1, 16, 64)],
    ]
    assert s.short_cycle_slots(0) == [ShortCycleSlot(45, 1), ShortCycleSlot(45, 1)]
    assert s.short_cycle_slots(s.max_epochs - 1) == [ShortCycleSlot(45, 2), ShortCycleSlot(64, 1)]


def test_short_cycle_only_with_every_crop_under_the_floor_is_the_baseline():
    s = MultigridSchedule(BaseRecipe(**SMALL, long_cycle=False, short_cycle_min_crop=64))
    assert (s.max_epochs, s.lr_milestones) == (12, [0, 7, 10])
    s = MultigridSchedule(BaseRecipe(**SMALL, long_cycle=False))
    assert (s.max_epochs, s.lr_milestones) == (18, [0, 10, 15])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64"])
def test_bad_floor_names_the_field(bad):
    with pytest.raises(ValueError, match="short_cycle_min_crop"):
        BaseRecipe(**SMALL, short_cycle_min_crop=bad)


def test_losing_regime_warning_names_the_option():
    warnings = validate_stages(MultigridSchedule(BaseRecipe(**SMALL)))
    assert len(warnings) == 3 and "[32, 45] pixels" in warnings[0] and "short_cycle_min_crop=64" in warnings[0]
    # S0 = 64: the long cycle's 1/sqrt2 grids crop round(64 / sqrt2) = 45 pixels.
    assert "[45]-pixel crops" in warnings[1] and "spatial_coarsening='crop'" in warnings[1]
    assert "up to 8x the base LR" in warnings[2] and "lr_scaling='sqrt'" in warnings[2]
    floored = losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=64)))
    assert len(floored) == 2 and "long-cycle grids" in floored[0]
    assert len(losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=33)))) == 3
    temporal_only = [(0.25, 1.0), (0.5, 1.0), (0.5, 1.0)]
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=64,
                                                               long_cycle_factors=temporal_only))) == []
    for auto in ("auto", "crop"):  # 'auto' is 'crop' (and 'sqrt') at S0=64: full-resolution grids, no warning
        assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, short_cycle_min_crop=64,
                                                                   spatial_coarsening=auto, lr_scaling="auto"))) == []
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, long_cycle=False, short_cycle=False))) == []
    # The paper's S0 = 224: long-cycle crops 158, short-cycle crops 112 and 158, no warning.
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**K400))) == []


def test_callback_and_schedule_command_share_the_default():
    assert inspect.signature(MultigridCallback).parameters["short_cycle_min_crop"].default == DEFAULT_SHORT_CYCLE_MIN_CROP
    args = ["--steps", "0", "7", "10", "--max-epochs", "12", "--num-frames", "16", "--crop-size", "64",
            "--batch-size", "4", "--jitter-scales", "64", "72", "--json"]
    run = [sys.executable, "-m", "lightning_multigrid.cli", "schedule", *args]
    default = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    reference = json.loads(subprocess.run([*run, "--short-cycle-min-crop", "0"], capture_output=True, text=True,
                                          check=True).stdout)
    assert default["max_epochs"] == 18 and default["lr_milestones"] == [0, 6, 10, 11, 12, 15, 16, 17]
    assert [len(st["short_cycle"]) for st in default["stages"]] == [1] * 8
    assert reference["lr_milestones"] == [0, 5, 8, 10, 12, 14, 15, 16, 17]
    assert [sl["crop_size"] for sl in reference["stages"][0]["short_cycle"]] == [32, 45, 45]


def _fit(callback):
    import pytorch_lightning as pl

    from tests.toy import ToyModule

    module = ToyModule(dataset_size=48)
    pl.Trainer(max_epochs=5, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
               enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
               callbacks=[callback]).fit(module)
    return module


def test_callback_warns_in_the_losing_regime_and_the_default_trains_base_crops_only():
    # The toy clips have S0=64: the reference's short cycle uses 32 and 45 pixel crops.
    reference = MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1, short_cycle_min_crop=0)
    with pytest.warns(UserWarning, match=r"short-cycle crops of \[32, 45\] pixels.*short_cycle_min_crop=64"):
        trained = _fit(reference)
    assert {r["S"] for r in trained.records} >= {32, 45}
    default = MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = _fit(default)
    assert not [w for w in caught if "short_cycle_min_crop" in str(w.message)]
    # The long cycle's 45-pixel grids are cut at the base scale by default ('auto'): no warning.
    assert not [w for w in caught if "long-cycle grids" in str(w.message)]
    assert default.schedule.recipe.spatial_coarsening == "crop"
    assert default.schedule is not None and default.schedule.recipe.short_cycle_crop_factors == ()
    # Every training batch has its stage's base crop.
    assert all(r["S"] == default.schedule.stage_at(r["epoch"]).crop_size for r in trained.records)
    # A toy run is a short run: the warning states the iterations the Trainer then trains.
    short = [str(w.message) for w in caught if "the multigrid schedule trains" in str(w.message)]
    assert len(short) == 1 and f"trains {len(trained.records)} iterations (" in short[0], short


def test_checkpoints_from_before_the_floor_resume_where_it_changes_nothing():
    from dataclasses import replace

    from lightning_multigrid.callback.run import _check_resumed_recipe, recipe_state

    k400 = BaseRecipe(**K400, short_cycle_min_crop=64)
    old = {k: v for k, v in recipe_state(k400).items() if k != "short_cycle_min_crop"}
    _check_resumed_recipe(old, k400)  # S0=224: the floor changes nothing, so the resume goes on
    small = BaseRecipe(**SMALL, short_cycle_min_crop=64)
    old = {k: v for k, v in recipe_state(replace(small, short_cycle_min_crop=0)).items() if k != "short_cycle_min_crop"}
    with pytest.raises(ValueError, match="short_cycle_min_crop: checkpoint None vs now 64"):
        _check_resumed_recipe(old, small)  # S0=64: that checkpoint trained the short cycle
