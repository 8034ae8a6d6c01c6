"""lr_scaling: how a long-cycle grid's LR follows its batch factor (issue 24), against the spec and by hand."""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys

import pytest

from lightning_multigrid import MultigridCallback
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule
from lightning_multigrid.schedule.config_checks import losing_regime_warnings
from lightning_multigrid.schedule.lr import LrPolicy
from lightning_multigrid.schedule.recipe import DEFAULT_LR_SCALING

K400 = dict(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64)
SMALL = dict(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4, sampling_rate=2,
             jitter_scales=(64, 72), bn_base_size=4, short_cycle_min_crop=64, spatial_coarsening="crop")


def test_linear_is_the_spec_table_and_the_recipe_default():
    # Spec section 3's worked example: relative LR 8, 4, 2, 1 | 0.8 ... | 0.01, 0.001.
    s = MultigridSchedule(BaseRecipe(**K400))
    assert s.recipe.lr_scaling == "linear"
    assert s.lr_factors == pytest.approx([8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.08, 0.04, 0.02, 0.01, 0.01, 0.001])


def test_sqrt_takes_the_square_root_of_each_batch_factor_by_hand():
    linear = MultigridSchedule(BaseRecipe(**K400))
    s = MultigridSchedule(BaseRecipe(**K400, lr_scaling="sqrt"))
    r8, r4, r2 = math.sqrt(8), 2.0, math.sqrt(2)
    assert s.lr_factors == pytest.approx([r8, r4, r2, 1, 0.1 * r8, 0.2, 0.1 * r2, 0.1,
                                          0.01 * r8, 0.02, 0.01 * r2, 0.01, 0.01, 0.001])
    # Nothing but the LR changes: epochs, milestones and every epoch's batch.
    assert (s.max_epochs, s.lr_milestones) == (linear.max_epochs, linear.lr_milestones)
    assert [s.global_batch_size(e) for e in range(s.max_epochs)] == [linear.global_batch_size(e) for e in range(s.max_epochs)]


def test_cosine_keeps_the_chosen_scaling():
    s = MultigridSchedule(BaseRecipe(**SMALL, lr_scaling="sqrt"))
    cosine = LrPolicy("cosine")
    # Epoch 0: cos(0) = 1, so the factor is the first grid's scale alone: sqrt(8) for b = 8.
    assert s.stages[0].batch_factor == 8
    assert cosine.factor(s, 0.0) == pytest.approx(math.sqrt(8))
    assert LrPolicy("cosine").factor(MultigridSchedule(BaseRecipe(**SMALL, lr_scaling="linear")), 0.0) == pytest.approx(8)


def test_auto_is_sqrt_only_where_a_grid_crops_under_64_pixels():
    def resolved(**changes):
        return BaseRecipe(**{**SMALL, "jitter_scales": None, **changes, "lr_scaling": "auto"}).lr_scaling

    assert resolved() == "sqrt"  # long-cycle grids of round(64 / sqrt2) = 45 pixels
    assert resolved(crop_size=90) == "linear"  # round(90 / sqrt2) = 64
    assert resolved(crop_size=89) == "sqrt"  # 63
    assert BaseRecipe(**K400, lr_scaling="auto").lr_scaling == "linear"  # crops 112 and 158: the paper's rule


@pytest.mark.parametrize("bad", ["square", "", None, 2])
def test_bad_value_names_the_field(bad):
    with pytest.raises(ValueError, match="lr_scaling"):
        BaseRecipe(**SMALL, lr_scaling=bad)


def test_linear_at_small_clips_is_warned_about_and_sqrt_is_not():
    warned = losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, lr_scaling="linear")))
    assert any("lr_scaling='sqrt'" in w and "up to 8x" in w for w in warned)
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**SMALL, lr_scaling="sqrt"))) == []
    assert losing_regime_warnings(MultigridSchedule(BaseRecipe(**K400))) == []  # the paper's regime


def test_callback_and_schedule_command_share_the_default_auto():
    assert inspect.signature(MultigridCallback).parameters["lr_scaling"].default == DEFAULT_LR_SCALING == "auto"
    assert MultigridCallback(steps=[0, 7, 10], lr_scaling="sqrt").settings.cycle["lr_scaling"] == "sqrt"
    args = ["--steps", "0", "7", "10", "--max-epochs", "12", "--num-frames", "16", "--crop-size", "64",
            "--batch-size", "4", "--json"]

    def first_lr(*extra: str) -> list[float]:
        out = subprocess.run([sys.executable, "-m", "lightning_multigrid.cli", "schedule", *args, *extra],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)["stages"][0]["relative_lr"]

    assert first_lr("--lr-scaling", "linear") == [8.0]
    assert first_lr("--lr-scaling", "sqrt") == pytest.approx([math.sqrt(8)])
    assert first_lr() == pytest.approx([math.sqrt(8)])  # 'auto' at S0=64


@pytest.mark.parametrize("field, reference, other", [("lr_scaling", "linear", "sqrt"),
                                                     ("spatial_coarsening", "rescale", "crop"),
                                                     ("max_batch_factor", None, 4)])
def test_checkpoints_from_before_an_option_resume_as_the_reference(field, reference, other):
    from lightning_multigrid.callback.run import _check_resumed_recipe, recipe_state

    settings = {**SMALL, field: reference}
    old = {k: v for k, v in recipe_state(BaseRecipe(**settings)).items() if k != field}
    _check_resumed_recipe(old, BaseRecipe(**settings))  # the reference's rule, as before the option
    with pytest.raises(ValueError, match=field):
        _check_resumed_recipe(old, BaseRecipe(**{**settings, field: other}))


def test_short_runs_are_warned_about():
    from lightning_multigrid.schedule.config_checks import FEW_ITERATIONS, validate_stages

    def warned(num_samples):
        return [w for w in validate_stages(s, num_samples=num_samples) if "iterations (" in w]

    s = MultigridSchedule(BaseRecipe(**SMALL, lr_scaling="sqrt"))
    assert FEW_ITERATIONS == 600
    # The demo task's 192 clips at 12 baseline epochs: 258 multigrid iterations, 576 baseline (48 x 12),
    # as the sweep's run printed them.
    assert len(warned(192)) == 1 and "trains 258 iterations (192 clips; the baseline 576)" in warned(192)[0]
    assert warned(384)  # 516 iterations: lost 4.1 points
    assert not warned(576)  # 774 iterations: within 0.5
    assert not [w for w in validate_stages(s) if "iterations (" in w]  # unknown data size: no claim
