"""Golden and property tests of the schedule arithmetic (spec section 3-5)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe
from lightning_multigrid.schedule.slots import batches_per_epoch, slot_sequence

K400 = dict(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64)
I3D = dict(steps=[0, 44, 88, 118], max_epochs=128, num_frames=8, crop_size=224, batch_size=64)


def test_schedule_module_does_not_import_torch():
    code = "import sys, lightning_multigrid.schedule.multigrid; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_k400_worked_example_number_for_number():
    s = MultigridSchedule(BaseRecipe(**K400))
    table = [(st.start_epoch, st.end_epoch, st.lr_stage, (st.batch_factor, st.num_frames, st.crop_size)) for st in s.stages]
    assert table == [
        (0, 73, 0, (8, 8, 158)), (73, 110, 0, (4, 16, 158)), (110, 142, 0, (2, 16, 224)), (142, 158, 0, (1, 32, 224)),
        (158, 205, 1, (8, 8, 158)), (205, 228, 1, (4, 16, 158)), (228, 248, 1, (2, 16, 224)), (248, 259, 1, (1, 32, 224)),
        (259, 291, 2, (8, 8, 158)), (291, 308, 2, (4, 16, 158)), (308, 322, 2, (2, 16, 224)), (322, 329, 2, (1, 32, 224)),
        (329, 358, 3, (1, 32, 224)),
    ]
    assert s.stages[-1].is_finetune and not any(x.is_finetune for x in s.stages[:-1])
    assert s.lr_milestones == [0, 73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 343]
    expected_lr = [8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.08, 0.04, 0.02, 0.01, 0.01, 0.001]
    assert s.lr_factors == pytest.approx(expected_lr)
    assert s.max_epochs == 358
    assert s.iter_saving == pytest.approx(5.75)
    assert round(s.theoretical_speedup(), 2) == 3.42
    # Exact counts for K400 on 8 GPUs: the baseline's 897,684 iterations are reproduced exactly.
    assert s.baseline_iterations(240436, world_size=8) == 897_684
    # The spec's 262,272 multigrid iterations are the reference's len() *estimate*
    # (floor(n / mean slot batch) per epoch); counting batch by batch gives 261,991.
    estimate = sum(int(30055 / (sum(s.epoch_batch_sizes(e, 8)) / 3)) for e in range(s.max_epochs))
    assert estimate == 262_272
    assert s.iterations(240436, world_size=8) == 261_991
    assert round(s.theoretical_speedup(240436, world_size=8), 2) == 3.43


def test_i3d_worked_example():
    s = MultigridSchedule(BaseRecipe(**I3D))
    assert [(x.batch_factor, x.num_frames, x.crop_size) for x in s.stages[:4]] == [(8, 2, 158), (4, 4, 158), (2, 4, 224), (1, 8, 224)]
    assert [x.end_epoch for x in s.stages] == [32, 48, 62, 69, 101, 117, 131, 138, 160, 171, 181, 186, 192]
    assert s.lr_milestones == [0, 32, 48, 62, 69, 101, 117, 131, 138, 160, 171, 181, 186, 189]
    assert s.max_epochs == 192


def test_ablations_speedups():
    long_only = MultigridSchedule(BaseRecipe(**K400, short_cycle=False))
    short_only = MultigridSchedule(BaseRecipe(**K400, long_cycle=False))
    assert round(long_only.theoretical_speedup(), 2) == 2.19
    assert round(short_only.theoretical_speedup(), 2) == 1.56
    # Long cycle alone works (the reference crashed building its fine-tuning phase).
    assert long_only.stages[-1].is_finetune and long_only.stages[-1].num_frames == 32
    assert long_only.short_cycle_slots(0)[0].batch_multiplier == 1 and len(long_only.short_cycle_slots(0)) == 1


def test_short_cycle_only_scales_milestones():
    s = MultigridSchedule(BaseRecipe(**K400, long_cycle=False))
    assert s.lr_milestones == [0, 141, 231, 294]
    assert s.max_epochs == 358
    assert s.lr_factors == pytest.approx([1, 0.1, 0.01, 0.001])
    assert {(x.batch_factor, x.num_frames, x.crop_size) for x in s.stages} == {(1, 32, 224)}


def test_no_cycle_is_the_baseline():
    s = MultigridSchedule(BaseRecipe(**K400, long_cycle=False, short_cycle=False))
    assert s.max_epochs == 239 and s.lr_milestones == [0, 94, 154, 196]
    assert s.theoretical_speedup() == pytest.approx(1.0)


def test_short_cycle_slots_and_degenerate_sqrt2_stages():
    s = MultigridSchedule(BaseRecipe(**K400))
    full = s.short_cycle_slots(150)  # stage (1, 32, 224)
    assert [(x.crop_size, x.batch_multiplier) for x in full] == [(112, 4), (158, 2), (224, 1)]
    coarse = s.short_cycle_slots(0)  # stage (8, 8, 158): the reference's (2x, 1x, 1x)
    assert [(x.crop_size, x.batch_multiplier) for x in coarse] == [(112, 2), (158, 1), (158, 1)]


def test_stride_jitter_and_batch():
    s = MultigridSchedule(BaseRecipe(**K400, sampling_rate=2))
    assert s.recipe.jitter_scales == (256, 320)
    assert s.stride_range(0) == (2, 8)  # T=8: r0 * (32 // 8)
    assert s.stride_range(100) == (2, 4)
    assert s.stride_range(150) == (2, 2)
    assert s.jitter_range(112) == (128, 320)
    assert s.jitter_range(224) == (256, 320)
    assert s.global_batch_size(0) == 512
    assert s.per_device_batch_size(0, world_size=8) == 64
    with pytest.raises(ValueError, match="not divisible by 3 devices"):
        s.per_device_batch_size(0, world_size=3)


def test_lr_factor_step_cosine_warmup():
    from lightning_multigrid.schedule.lr import LrPolicy

    s = MultigridSchedule(BaseRecipe(**K400))
    assert s.lr_factor(0) == 8 and s.lr_factor(72.99) == 8 and s.lr_factor(73) == 4
    assert s.lr_factor(342.5) == pytest.approx(0.01) and s.lr_factor(343) == pytest.approx(0.001)
    # Warmup ramps linearly to the scheduled (scaled) LR at its end: 0.1 -> 8 over 10 epochs.
    warm = LrPolicy("step", warmup_epochs=10, warmup_start_factor=0.1)
    assert warm.factor(s, 0) == pytest.approx(0.1)
    assert warm.factor(s, 5) == pytest.approx(0.1 + (8 - 0.1) / 2)
    assert warm.factor(s, 80) == pytest.approx(4)
    # Cosine keeps the long-cycle scaling by batch factor: b * (1 + cos(pi * e / 358)) / 2.
    cosine = LrPolicy("cosine")
    assert cosine.factor(s, 0) == pytest.approx(8)
    assert cosine.factor(s, 179) == pytest.approx(8 * 0.5)  # [158,205) has b=8; cos(pi/2) = 0
    assert cosine.factor(s, s.max_epochs - 1e-9) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="lr_policy"):
        LrPolicy("linear")  # type: ignore[arg-type]


def test_eval_epochs_follow_reference_rule():
    s = MultigridSchedule(BaseRecipe(**K400))
    evals = s.eval_epochs()
    # The last epoch of every stage and of training qualifies.
    for stage in s.stages:
        assert stage.end_epoch - 1 in evals
    assert evals[-1] == 357
    # Stage [0,73): period 73 // 3 + 1 = 25 -> epochs 72, 47, 22.
    assert [e for e in evals if e < 73] == [22, 47, 72]


def test_batch_norm_plan_validates_instead_of_truncating():
    s = MultigridSchedule(BaseRecipe(**K400))
    assert s.batch_norm_plan(64).mode == "split" and s.batch_norm_plan(64).num_splits == 8
    assert s.batch_norm_plan(8).mode == "plain"
    with pytest.raises(ValueError, match="not a multiple of bn_base_size=8"):
        s.batch_norm_plan(12)
    sync = s.batch_norm_plan(4, world_size=2)
    assert (sync.mode, sync.sync_size) == ("sync", 2)
    fallback = s.batch_norm_plan(4, world_size=1)
    assert fallback.mode == "plain" and "world size" in fallback.reason
    assert s.batch_norm_plan(3, world_size=8).mode == "plain"


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(steps=[1, 94]), "steps"),
        (dict(steps=[0, 94, 94]), "steps"),
        (dict(max_epochs=196), "max_epochs"),
        (dict(steps=[0]), "steps"),  # the long cycle needs an LR stage before the last milestone
        (dict(long_cycle_factors=[(1.5, 1.0)]), "long_cycle_factors"),
        (dict(long_cycle_factors=[(0.0, 1.0)]), "long_cycle_factors"),
        (dict(num_frames=2, long_cycle_factors=[(0.1, 1.0)]), "long_cycle_factors"),
        (dict(crop_size=48), "short_cycle_factors"),
        (dict(crop_size=16), "crop_size"),
        (dict(short_cycle_factors=[0.5]), "short_cycle_factors"),
        (dict(gamma=0.0), "gamma"),
        (dict(epoch_factor=0), "epoch_factor"),
        (dict(batch_size=0), "batch_size"),
        (dict(jitter_scales=(100, 320)), "jitter_scales"),
    ],
)
def test_invalid_inputs_name_the_argument(change, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        MultigridSchedule(BaseRecipe(**{**K400, **change}))


def test_a_single_milestone_works_without_the_long_cycle():
    schedule = MultigridSchedule(BaseRecipe(**{**K400, "steps": [0], "long_cycle": False}))
    assert schedule.lr_milestones == [0] and schedule.max_epochs == int(239 * 1.5)  # short cycle: x epoch_factor


def test_slot_sequence_matches_batches_per_epoch_exhaustively():
    for sizes in ([4, 2, 1], [2, 1, 1], [3], [5, 3, 1]):
        for n in range(0, 40):
            for drop_last in (True, False):
                seq = slot_sequence(n, sizes, drop_last)
                assert len(seq) == batches_per_epoch(n, sizes, drop_last)
                used = sum(b for _, b in seq)
                assert used == n if not drop_last else n - used < sizes[len(seq) % len(sizes)]
                assert [slot for slot, _ in seq] == [i % len(sizes) for i in range(len(seq))]


recipes = st.builds(
    lambda steps, tail, t0, s0, ef, lc, sc: BaseRecipe(
        steps=steps, max_epochs=steps[-1] + tail, num_frames=t0, crop_size=s0, batch_size=8,
        epoch_factor=ef, long_cycle=lc, short_cycle=sc,
    ),
    # Realistic stage lengths: a 1-epoch LR stage can round every coarse grid away.
    steps=st.lists(st.integers(6, 60), min_size=1, max_size=4).map(lambda d: [0] + [sum(d[: i + 1]) for i in range(len(d))]),
    tail=st.integers(3, 60),
    t0=st.sampled_from([4, 8, 16, 32]),
    s0=st.sampled_from([64, 112, 160, 224]),
    ef=st.sampled_from([1.0, 1.5, 2.0]),
    lc=st.booleans(),
    sc=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(recipes)
def test_properties(recipe):
    s = MultigridSchedule(recipe)
    ends = [x.end_epoch for x in s.stages]
    assert all(b > a for a, b in zip(ends, ends[1:])), "stage ends increase"
    assert all(x.start_epoch < x.end_epoch for x in s.stages), "no empty stage"
    assert s.stages[0].start_epoch == 0 and s.max_epochs == ends[-1]
    assert all(a.end_epoch == b.start_epoch for a, b in zip(s.stages, s.stages[1:])), "stages tile"
    assert s.lr_milestones[0] == 0 and all(b > a for a, b in zip(s.lr_milestones, s.lr_milestones[1:]))
    assert len(s.lr_factors) == len(s.lr_milestones)
    if recipe.long_cycle:
        # Total epochs = round(max_epochs * epoch_factor), up to the rounding of the cumulative end.
        assert abs(s.max_epochs - recipe.max_epochs * recipe.epoch_factor) <= 0.5 + 1e-9
        # Before rounding, every factor of an LR stage gets the same number of iterations.
        grids = s.long_cycle_grids()
        avg_b = [sum(g[0] for g in grid) / len(grid) for grid in grids]
        for k in range(len(recipe.steps) - 1):
            length = recipe.steps[k + 1] - recipe.steps[k]
            iters = [length * b / sum(avg_b) / b for b in avg_b]
            assert max(iters) - min(iters) < 1e-9
    realistic = recipe.epoch_factor <= 1.5 and recipe.max_epochs - recipe.steps[-1] <= recipe.steps[-1]
    if (recipe.long_cycle or recipe.short_cycle) and realistic:
        # Not a theorem for any recipe: epoch_factor=2 with a fine-tuning tail longer than all LR
        # stages together spends more full-shape epochs than the coarse grids save.
        assert s.theoretical_speedup() > 1
    elif not (recipe.long_cycle or recipe.short_cycle):
        assert s.theoretical_speedup() == pytest.approx(1)
    for e in range(s.max_epochs):
        lo, hi = s.stride_range(e)
        assert 1 <= lo <= hi
        assert math.isfinite(s.lr_factor(e + 0.5))
    assert s.is_eval_epoch(s.max_epochs - 1)


# --------------------------------------------------------------------------------------------
# Golden schedules of the reference's own SSv2 and Charades recipes, derived by hand from the spec
# (section 3) for T0=64, S0=224: grid b values (16,8,8) (8,4,4) (8,4,2) (4,2,1), avg_b sum 23,
# iter_saving 5.75; see the per-stage arithmetic in the comments.
# --------------------------------------------------------------------------------------------
def _per_epoch_lr(pieces):
    """[(end_epoch, factor), ...] piecewise-constant LR -> one factor per epoch."""
    out, start = [], 0
    for end, factor in pieces:
        out += [factor] * (end - start)
        start = end
    return out


def test_ssv2_recipe_drops_a_zero_epoch_stage_and_keeps_the_reference_finetune_lr():
    # SSv2: steps [0,14,18], 22 epochs. x = 33 / 19.6232 = 1.68168; cumulative ends
    # 10.92, 16.38, 21.16, 23.54 | 26.66, 28.22, 29.59, 30.27 | 33.00 -> 11,16,21,24 | 27,28,30,30 | 33:
    # the last long-cycle stage of LR stage 1, (1, 64, 224), rounds to 0 epochs and is dropped.
    s = MultigridSchedule(BaseRecipe(steps=[0, 14, 18], max_epochs=22, num_frames=64, crop_size=224, batch_size=16))
    assert [(x.start_epoch, x.end_epoch, x.lr_stage, x.batch_factor, x.num_frames, x.crop_size) for x in s.stages] == [
        (0, 11, 0, 8, 16, 158), (11, 16, 0, 4, 32, 158), (16, 21, 0, 2, 32, 224), (21, 24, 0, 1, 64, 224),
        (24, 27, 1, 8, 16, 158), (27, 28, 1, 4, 32, 158), (28, 30, 1, 2, 32, 224), (30, 33, 2, 1, 64, 224),
    ]
    # Fine-tuning [30,33), midpoint (30+33)//2 = 31. First half: gamma**1 * b(last grid) = 0.1, as the
    # reference's LRS[-2] (not 0.2, the LR of the last *kept* stage); second half gamma**2 = 0.01.
    expected = _per_epoch_lr([(11, 8), (16, 4), (21, 2), (24, 1), (27, 0.8), (28, 0.4), (30, 0.2), (31, 0.1), (33, 0.01)])
    assert [s.lr_factor(e) for e in range(s.max_epochs)] == pytest.approx(expected)
    assert s.max_epochs == 33


def test_charades_recipe_golden():
    # Charades: steps [0,41,49], 57 epochs. x = 85.5 / 52.2464 = 1.636478; cumulative ends
    # 31.12, 46.68, 60.29, 67.10 | 73.17, 76.20, 78.86, 80.19 | 85.50000000000001 -> ... 80 | 86.
    s = MultigridSchedule(BaseRecipe(steps=[0, 41, 49], max_epochs=57, num_frames=64, crop_size=224, batch_size=16))
    assert [x.end_epoch for x in s.stages] == [31, 47, 60, 67, 73, 76, 79, 80, 86]
    assert [(x.batch_factor, x.num_frames, x.crop_size) for x in s.stages[4:8]] == [(8, 16, 158), (4, 32, 158), (2, 32, 224), (1, 64, 224)]
    # Fine-tuning [80,86) split at (80+86)//2 = 83.
    expected = _per_epoch_lr([(31, 8), (47, 4), (60, 2), (67, 1), (73, 0.8), (76, 0.4), (79, 0.2), (80, 0.1), (83, 0.1), (86, 0.01)])
    assert [s.lr_factor(e) for e in range(s.max_epochs)] == pytest.approx(expected)


def test_k400_per_epoch_lr_factors():
    s = MultigridSchedule(BaseRecipe(**K400))
    # The spec's table, expanded epoch by epoch (not only milestones).
    expected = _per_epoch_lr([(73, 8), (110, 4), (142, 2), (158, 1), (205, 0.8), (228, 0.4), (248, 0.2), (259, 0.1),
                              (291, 0.08), (308, 0.04), (322, 0.02), (329, 0.01), (343, 0.01), (358, 0.001)])
    assert [s.lr_factor(e) for e in range(s.max_epochs)] == pytest.approx(expected)


def test_validation_epochs_thin_the_schedule_and_keep_the_final_epoch():
    s = MultigridSchedule(BaseRecipe(**I3D))
    # By hand: [0,32) period 32//3+1 = 11 -> 9, 20, 31; [32,48) period 6 -> 35, 41, 47;
    # [48,62) period 5 -> 51, 56, 61; [62,69) period 3 -> 62, 65, 68.
    assert s.eval_epochs()[:12] == [9, 20, 31, 35, 41, 47, 51, 56, 61, 62, 65, 68]
    assert s.validation_epochs(1) == s.eval_epochs()
    every5 = s.validation_epochs(5)
    assert every5[:2] == [41, 62]  # the 5th and 10th eval epochs
    assert every5[-1] == s.max_epochs - 1 == 191
    assert len(every5) == len(s.eval_epochs()) // 5 + 1


def test_short_cycle_only_evaluates_every_eval_period():
    # Short cycle only: 128 * 1.5 = 192 epochs, no long-cycle stages; the reference's EVAL_PERIOD rule.
    s = MultigridSchedule(BaseRecipe(**I3D, long_cycle=False))
    assert s.max_epochs == 192
    assert s.eval_epochs(10) == [9, 19, 29, 39, 49, 59, 69, 79, 89, 99, 109, 119, 129, 139, 149, 159, 169, 179, 189, 191]
    assert s.validation_epochs(1) == list(range(192))


def test_the_schedule_answers_its_per_epoch_questions():
    """Slots, shapes, base shape and slot batches of the fine-tuning stage, by hand: crops
    round(64 * 0.5) = 32 and round(64 / sqrt 2) = 45, then S0 = 64; batch multipliers
    round((64/32)^2) = 4 and round((64/45.25)^2) = 2, then 1."""
    from lightning_multigrid.schedule.slots import samples_per_rank

    s = MultigridSchedule(BaseRecipe(steps=[0, 4, 8], max_epochs=10, num_frames=8, crop_size=64, batch_size=4,
                                     sampling_rate=2))
    last = s.max_epochs - 1
    assert s.stage_at(last).is_finetune and s.num_slots == 3
    assert [c.crop_size for c in s.clip_shapes(last)] == [32, 45, 64]
    assert {c.num_frames for c in s.clip_shapes(last)} == {8}
    assert s.base_shape(last) == s.clip_shapes(last)[-1] and s.base_shape(last).crop_size == 64
    assert [s.batch_slot(i) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert s.slot_batch_sizes(last, 4) == [16, 8, 4]
    assert s.epoch_batch_sizes(last, world_size=2) == s.slot_batch_sizes(last, 2) == [8, 4, 2]
    assert (samples_per_rank(10, 3), samples_per_rank(9, 3), samples_per_rank(1, 4)) == (4, 3, 1)
    no_short = MultigridSchedule(BaseRecipe(steps=[0, 4, 8], max_epochs=10, num_frames=8, crop_size=64,
                                            batch_size=4, sampling_rate=2, short_cycle=False))
    assert no_short.num_slots == 1 and [no_short.batch_slot(i) for i in range(3)] == [0, 0, 0]
