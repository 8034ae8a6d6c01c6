"""max_batch_factor: a cap on the long cycle's batch factor for short runs (issue 24), against the spec's
worked example by hand and against the iterations real training runs counted."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import warnings

import pytest

from lightning_multigrid import MultigridCallback
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule
from lightning_multigrid.schedule.config_checks import (
    FEW_ITERATIONS,
    resolve_batch_cap,
    short_run_batch_cap,
    validate_stages,
)

K400 = dict(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64)
# The demo recipe of benchmarks/speedup.py with the callback's defaults (S0=64: long cycle only, sqrt LR).
DEMO = dict(steps=[0, 7, 10], max_epochs=12, num_frames=16, crop_size=64, batch_size=4, sampling_rate=2,
            jitter_scales=(64, 72), bn_base_size=4, short_cycle_min_crop=64, spatial_coarsening="auto",
            lr_scaling="auto")


def table(s: MultigridSchedule) -> list[tuple]:
    return [(x.start_epoch, x.end_epoch, x.lr_stage, x.batch_factor, x.num_frames, x.crop_size) for x in s.stages]


def test_the_reference_has_no_cap_and_the_golden_table_holds():
    s = MultigridSchedule(BaseRecipe(**K400))
    assert s.recipe.max_batch_factor is None
    assert s.lr_factors == pytest.approx([8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.08, 0.04, 0.02, 0.01, 0.01, 0.001])


def test_a_cap_splits_the_same_epochs_into_more_steps_by_hand():
    # Spec section 3's worked example capped at 4: the b=8 grids train at b=4 (256 clips, not 512),
    # with the LR of b=4 (linear rule); every other number stays.
    reference = MultigridSchedule(BaseRecipe(**K400))
    s = MultigridSchedule(BaseRecipe(**K400, max_batch_factor=4))
    assert s.lr_factors == pytest.approx([4, 4, 2, 1, 0.4, 0.4, 0.2, 0.1, 0.04, 0.04, 0.02, 0.01, 0.01, 0.001])
    assert (s.max_epochs, s.lr_milestones) == (reference.max_epochs, reference.lr_milestones)
    assert [row[:3] + row[4:] for row in table(s)] == [row[:3] + row[4:] for row in table(reference)]
    assert [x.batch_factor for x in s.stages] == [min(x.batch_factor, 4) for x in reference.stages]
    assert s.global_batch_size(0) == 4 * 64 and reference.global_batch_size(0) == 8 * 64
    # With the square-root rule the capped grid takes sqrt(4) = 2 (the demo recipe, 8 -> 4).
    demo = MultigridSchedule(BaseRecipe(**DEMO, max_batch_factor=4))
    assert demo.stages[0].batch_factor == 4 and demo.lr_factors[0] == pytest.approx(2.0)


@pytest.mark.parametrize(("clips", "epochs", "steps", "measured", "cap"), [
    # Iterations the Trainer counted in the issue-24 runs (benchmarks/lab/diag.jsonl): uncapped, then
    # capped at 4, then at 2; the cap 'auto' chooses (the first that reaches FEW_ITERATIONS, else 2).
    (192, 12, [0, 7, 10], {None: 258, 4: 312, 2: 480}, 2),
    (384, 12, [0, 7, 10], {None: 516, 4: 624}, 4),
    (192, 24, [0, 14, 20], {None: 552, 4: 660}, 4),
    (576, 12, [0, 7, 10], {None: 774}, None),
])
def test_auto_caps_the_runs_measured_short_and_only_those(clips, epochs, steps, measured, cap):
    recipe = BaseRecipe(**{**DEMO, "max_epochs": epochs, "steps": steps})
    for value, iterations in measured.items():
        assert MultigridSchedule(dataclasses.replace(recipe, max_batch_factor=value)).iterations(clips) == iterations
    assert FEW_ITERATIONS == 600
    assert short_run_batch_cap(recipe, clips) == cap


def test_auto_leaves_real_recipes_and_the_benchmarks_alone():
    # The K400 recipe on Kinetics' 240k clips, make accuracy's 576 clips: long runs, no cap.
    assert short_run_batch_cap(BaseRecipe(**K400), 240_000, world_size=8) is None
    assert short_run_batch_cap(BaseRecipe(**DEMO), 576) is None
    # No long cycle, no batch factor to cap; a recipe whose factors are all <= 2 has nothing to gain.
    assert short_run_batch_cap(BaseRecipe(**DEMO, long_cycle=False), 48) is None
    flat = BaseRecipe(**DEMO, long_cycle_factors=[(0.5, 1.0), (1.0, 1.0)])
    assert max(x.batch_factor for x in MultigridSchedule(flat).stages) == 2
    assert short_run_batch_cap(flat, 48) is None


def test_auto_keeps_a_resumed_runs_cap_then_the_samplers():
    recipe = BaseRecipe(**DEMO)  # 192 clips: short_run_batch_cap says 2
    assert resolve_batch_cap(recipe, 192, 1, None, None) == 2
    assert resolve_batch_cap(recipe, 192, 1, {"max_batch_factor": 4}, None) == 4  # what the checkpoint trained
    assert resolve_batch_cap(recipe, 192, 1, {"lr_scaling": "sqrt"}, None) is None  # a checkpoint from before
    assert resolve_batch_cap(recipe, 192, 1, None, BaseRecipe(**DEMO)) is None  # the user's own sampler: uncapped
    assert resolve_batch_cap(recipe, None, 1, None, None) is None  # unknown dataset size


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_bad_values_name_the_field(bad):
    with pytest.raises(ValueError, match="max_batch_factor"):
        BaseRecipe(**K400, max_batch_factor=bad)
    if bad != "4":
        with pytest.raises(ValueError, match="max_batch_factor"):
            MultigridCallback(steps=[0, 7, 10], max_batch_factor=bad)
    with pytest.raises(ValueError, match="max_batch_factor"):
        BaseRecipe(**K400, max_batch_factor="auto")  # resolved by the callback, which knows the data


def test_capped_short_runs_say_so_and_uncapped_ones_name_the_option():
    def short(recipe: BaseRecipe) -> list[str]:
        return [w for w in validate_stages(MultigridSchedule(recipe), num_samples=192) if "trains" in w]

    (capped,) = short(BaseRecipe(**DEMO, max_batch_factor=2))
    assert "trains 480 iterations (192 clips; the baseline 576)" in capped and "capped at 2" in capped
    (uncapped,) = short(BaseRecipe(**DEMO))
    assert "trains 258 iterations" in uncapped and "max_batch_factor='auto'" in uncapped


def test_the_schedule_command_resolves_auto_like_the_callback():
    args = ["--steps", "0", "7", "10", "--max-epochs", "12", "--num-frames", "16", "--crop-size", "64",
            "--batch-size", "4", "--json"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lightning_multigrid.cli", "schedule", *args, *extra],
                              capture_output=True, text=True)

    def factors(*extra: str) -> list[int]:
        out = run(*extra)
        assert out.returncode == 0, out.stderr
        return [st["batch_factor"] for st in json.loads(out.stdout)["stages"]]

    assert max(factors()) == 8  # no --num-samples: the run's length is unknown, no cap
    assert max(factors("--num-samples", "192")) == 2
    assert max(factors("--num-samples", "576")) == 8
    assert max(factors("--num-samples", "192", "--max-batch-factor", "none")) == 8
    assert max(factors("--max-batch-factor", "4")) == 4
    bad = run("--max-batch-factor", "0")
    assert bad.returncode == 2 and "--max-batch-factor" in bad.stderr


def _fit(callback: MultigridCallback, **trainer: object):
    import pytorch_lightning as pl

    from tests.toy import ToyModule

    module = ToyModule(dataset_size=48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pl.Trainer(max_epochs=5, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                   callbacks=[callback], **trainer).fit(module)
    return module, [str(w.message) for w in caught]


def test_callback_default_caps_a_toy_run_and_none_keeps_the_reference():
    assert inspect.signature(MultigridCallback).parameters["max_batch_factor"].default == "auto"
    # The toy's S0=64 leaves the long cycle alone (default floor), so every batch is b x B0 = b x 2.
    common = dict(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)
    # 48 clips, batch 2: a few dozen iterations, so 'auto' caps at 2 (4 still leaves it under 600).
    default = MultigridCallback(**common)
    trained, caught = _fit(default)
    assert default.schedule is not None and default.schedule.recipe.max_batch_factor == 2
    assert {r["batch"] for r in trained.records if r["epoch"] == 0} == {2 * 2}
    assert max(r["batch"] for r in trained.records) == 2 * 2
    assert [m for m in caught if "capped at 2" in m and f"trains {len(trained.records)} iterations" in m], caught
    reference = MultigridCallback(**common, max_batch_factor=None)
    trained_ref, _ = _fit(reference)
    assert reference.schedule is not None and reference.schedule.recipe.max_batch_factor is None
    assert {r["batch"] for r in trained_ref.records if r["epoch"] == 0} == {8 * 2}
    # The same epochs either way, in more steps capped.
    assert reference.schedule.max_epochs == default.schedule.max_epochs
    assert len(trained.records) > len(trained_ref.records)


def test_a_capped_run_resumes_mid_epoch_like_the_uninterrupted_run(tmp_path):
    """'auto' resolves once per run: a resumed fit takes the cap from its checkpoint, and trains what the
    uninterrupted run trained (batches, shapes, LR, weights)."""
    import pytorch_lightning as pl

    from tests.test_resume import Crash, _assert_same_tail
    from tests.toy import ToyModule

    def fit(name, extra=(), ckpt_path=None):
        pl.seed_everything(123)
        module = ToyModule(lr=0.05, dataset_size=96, batch_size=2)
        callback = MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / name, save_top_k=-1, every_n_train_steps=1,
                                            filename="{epoch}-{step}")
        trainer = pl.Trainer(max_epochs=5, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, deterministic=True,
                             callbacks=[callback, ckpt, *extra])
        try:
            trainer.fit(module, ckpt_path=ckpt_path)
        except RuntimeError as err:  # the simulated crash
            assert "crash after step" in str(err)
        return module, callback

    full, callback = fit("full")
    assert callback.schedule is not None and callback.schedule.recipe.max_batch_factor == 2
    step = next(i for i, r in enumerate(full.records) if r["epoch"] == 3 and r["batch_idx"] == 1) + 1
    fit("part", extra=[Crash(step)])
    resumed, callback = fit("resumed", ckpt_path=next((tmp_path / "part").glob(f"epoch=3-step={step}.ckpt")))
    assert callback.schedule is not None and callback.schedule.recipe.max_batch_factor == 2
    _assert_same_tail(full, resumed, step)


def test_the_schedule_table_says_when_the_factor_is_capped():
    from lightning_multigrid.schedule.report import format_schedule_table

    capped = format_schedule_table(MultigridSchedule(BaseRecipe(**DEMO, max_batch_factor=2)), num_samples=192)
    assert "capped at 2 (max_batch_factor)" in capped
    assert "capped" not in format_schedule_table(MultigridSchedule(BaseRecipe(**DEMO)), num_samples=192)
