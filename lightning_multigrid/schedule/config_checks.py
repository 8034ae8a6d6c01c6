"""Pure setup-time validation (no torch, no trainer): a configuration that cannot work fails before
the first step, naming the stage. One definition used by :class:`~lightning_multigrid.MultigridCallback`,
the ``lightning-multigrid schedule`` command and :func:`lightning_multigrid.models.check_schedule`.

* :func:`validate_stages`: every stage's batch against the data, the devices and the BN splits,
  SlowFast's alpha and the model's declared requirements;
* :func:`check_trainer_flags`, :func:`check_accumulation`, :func:`baseline_epochs`, :func:`check_lr_schedulers`: Trainer and
  module settings that would silently train something other than the schedule.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from lightning_multigrid.schedule.model_requirements import ModelRequirements, check_clip_shape
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import (
    DEFAULT_SHORT_CYCLE_MIN_CROP,
    BaseRecipe,
    BatchNormPlan,
    is_batch_cap,
)
from lightning_multigrid.schedule.slots import batches_per_epoch, samples_per_rank

__all__ = ["stage_bn_plans", "validate_stages", "losing_regime_warnings", "short_run_batch_cap", "resolve_batch_cap", "with_batch_cap",
           "check_batch_cap_setting", "check_trainer_flags", "check_accumulation", "baseline_epochs", "check_lr_schedulers"]

#: Lightning's ``max_epochs`` when none is given: never a baseline recipe, almost always a mistake.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


def stage_bn_plans(schedule: MultigridSchedule, world_size: int) -> list[BatchNormPlan]:
    """The BatchNorm plan of every stage (plain BN everywhere without the long cycle)."""
    plans = []
    for stage in schedule.stages:
        if not schedule.recipe.long_cycle:
            plans.append(BatchNormPlan("plain"))
            continue
        try:
            per_device = schedule.per_device_batch_size(stage.start_epoch, world_size)
            plans.append(schedule.batch_norm_plan(per_device, world_size))
        except ValueError as err:
            raise ValueError(f"stage {schedule.describe_stage(stage)}: {err}") from None
    return plans


def validate_stages(
    schedule: MultigridSchedule,
    world_size: int = 1,
    num_samples: int | None = None,
    slowfast_alpha: int | None = None,
    requirements: ModelRequirements | None = None,
) -> list[str]:
    """Raise ``ValueError`` naming the first stage that cannot run; return warnings to show.

    Args:
        schedule: the multigrid schedule.
        world_size: number of devices.
        num_samples: training clips (``None``: skip the data-size check).
        slowfast_alpha: the dataset's SlowFast alpha (T must be a multiple of it).
        requirements: the model's ``ModelRequirements`` (``None``: skip the model check).
    """
    warnings = [
        f"stage {schedule.describe_stage(stage)}: plain BN ({plan.reason})"
        for stage, plan in zip(schedule.stages, stage_bn_plans(schedule, world_size))
        if plan.reason
    ]
    warnings += losing_regime_warnings(schedule)
    per_rank = None if num_samples is None else samples_per_rank(num_samples, world_size)
    for stage in schedule.stages:
        where = f"multigrid stage {schedule.describe_stage(stage)}"
        sizes = schedule.epoch_batch_sizes(stage.start_epoch, world_size)
        if per_rank is not None and batches_per_epoch(per_rank, sizes, drop_last=True) == 0:
            raise ValueError(
                f"{where}: the first short-cycle batch needs {sizes[0]} clips per device but the train "
                f"dataset has only {per_rank} per device; use more data or a smaller batch_size"
            )
        if slowfast_alpha and stage.num_frames % slowfast_alpha:
            raise ValueError(
                f"{where}: T={stage.num_frames} is not divisible by the dataset's SlowFast alpha={slowfast_alpha}; "
                "change num_frames or long_cycle_factors"
            )
        if requirements is not None:
            for shape in schedule.clip_shapes(stage.start_epoch):
                check_clip_shape(requirements, shape.num_frames, shape.crop_size, where)
    if num_samples is not None:
        warnings += _few_iterations_warning(schedule, num_samples, world_size)
    return warnings


#: Multigrid runs shorter than this many iterations were measured to lose accuracy at S0=64 (issue 24,
#: demo task, lr_scaling='sqrt': 258, 516 and 552 iterations lost 6.9, 4.1 and 0.7 points; 774 and more
#: lost at most 0.5). The loss follows the run's steps, not the steps of an epoch.
FEW_ITERATIONS = 600
#: The caps :func:`short_run_batch_cap` tries, in order. Measured (issue 24, demo task, seed 0 unless
#: said): capped at 4, the three short runs above gained 0.3 (seed 1: 0.4), 1.1 and 0.6 points instead of
#: losing 6.9, 4.1 and 0.7; capped at 2, the 258-iteration run (then 480) gained 7.5 (seed 1: 4.3).
SHORT_RUN_BATCH_CAPS = (4, 2)


def short_run_batch_cap(recipe: BaseRecipe, num_samples: int, world_size: int = 1) -> int | None:
    """The long-cycle batch-factor cap of ``max_batch_factor="auto"`` (the callback's default).

    ``None`` (the reference's factors) where the uncapped run has at least :data:`FEW_ITERATIONS`
    iterations on ``num_samples`` clips; else the first cap of :data:`SHORT_RUN_BATCH_CAPS` that
    brings it there, or the last. The epochs stay the reference's: the coarse grids only take
    more, smaller steps (the clips per epoch, so the compute, do not change).
    """
    if not recipe.long_cycle:
        return None
    uncapped = MultigridSchedule(dataclasses.replace(recipe, max_batch_factor=None))
    if uncapped.iterations(num_samples, world_size) >= FEW_ITERATIONS:
        return None
    top = max(stage.batch_factor for stage in uncapped.stages)
    caps = [cap for cap in SHORT_RUN_BATCH_CAPS if cap < top]
    for cap in caps:
        capped = MultigridSchedule(dataclasses.replace(recipe, max_batch_factor=cap))
        if capped.iterations(num_samples, world_size) >= FEW_ITERATIONS:
            return cap
    return caps[-1] if caps else None


def check_batch_cap_setting(value: Any) -> None:
    """The callback's ``max_batch_factor``: ``"auto"``, ``None`` or an integer >= 1."""
    if value != "auto" and not is_batch_cap(value):
        raise ValueError(f"max_batch_factor must be 'auto', None or an integer >= 1, got {value!r}")


def resolve_batch_cap(recipe: BaseRecipe, num_samples: int | None, world_size: int,
                      resumed: dict[str, Any] | None, sampler: BaseRecipe | None) -> int | None:
    """``max_batch_factor="auto"`` for one fit: the cap in a resumed run's checkpoint (``resumed``, its
    recipe state; none in checkpoints from before the option), else that of the train loader's own
    sampler, else :func:`short_run_batch_cap` on ``num_samples`` clips (none if the size is unknown)."""
    if resumed is not None:
        return resumed.get("max_batch_factor")
    if sampler is not None:
        return sampler.max_batch_factor
    return None if num_samples is None else short_run_batch_cap(recipe, num_samples, world_size)


def with_batch_cap(recipe: BaseRecipe, setting: int | Literal["auto"] | None, num_samples: int | None, world_size: int,
                   resumed: dict[str, Any] | None = None, sampler: BaseRecipe | None = None) -> BaseRecipe:
    """``recipe`` with a ``max_batch_factor`` setting applied: ``"auto"`` resolved by
    :func:`resolve_batch_cap`, ``None`` or an integer as given (the callback, the schedule command
    and the benchmarks all apply it here)."""
    if setting == "auto":
        return dataclasses.replace(recipe, max_batch_factor=resolve_batch_cap(recipe, num_samples, world_size, resumed, sampler))
    return dataclasses.replace(recipe, max_batch_factor=setting)


def _few_iterations_warning(schedule: MultigridSchedule, num_samples: int, world_size: int) -> list[str]:
    total = round(schedule.iterations(num_samples, world_size))
    if total >= FEW_ITERATIONS:
        return []
    baseline = round(schedule.baseline_iterations(num_samples, world_size))
    cap = schedule.recipe.max_batch_factor
    if cap is not None and cap <= SHORT_RUN_BATCH_CAPS[0]:
        # Capped as max_batch_factor='auto' caps: measured to keep the baseline's accuracy; say so once.
        return [
            f"a short run: the multigrid schedule trains {total} iterations ({num_samples} clips; the baseline "
            f"{baseline}) with the long cycle's batch factor capped at {cap} (max_batch_factor). Uncapped, runs "
            f"under {FEW_ITERATIONS} iterations ended 0.7-6.9 points below the baseline; capped, 0.3-7.5 above "
            f"(benchmarks/README.md, issue 24). More data or epochs give the uncapped speed-up back"
        ]
    return [
        f"the multigrid schedule trains {total} iterations ({num_samples} clips; the baseline {baseline}). At S0=64 "
        f"runs of 258-552 iterations ended 0.7-6.9 points below the baseline, from 774 on within 0.5 "
        f"(benchmarks/README.md, issue 24): the coarse grids' fewer, larger steps need a run long enough to "
        f"pay off. Under {FEW_ITERATIONS} iterations, use max_batch_factor='auto' (the default: it caps the "
        f"batch factor at 4 or 2 here, and kept the baseline's accuracy), more data or epochs, or a smaller batch_size"
    ]


def losing_regime_warnings(schedule: MultigridSchedule) -> list[str]:
    """Where the schedule is in a regime measured to lose accuracy, say so and name the option."""
    r = schedule.recipe
    floor = DEFAULT_SHORT_CYCLE_MIN_CROP
    warnings = []
    coarse, small = r.small_crops(floor)
    if small:
        warnings.append(
            f"short-cycle crops of {list(small)} pixels (S0={r.crop_size}): with a stride-32 backbone their final "
            f"feature map is 1x1, and on such small clips the short cycle cost 8-17 points of test top-1 against "
            f"the baseline where the long cycle alone cost none (benchmarks/README.md, issue 24); "
            f"short_cycle_min_crop={floor} (the default) leaves these crops out"
        )
    if coarse and r.spatial_coarsening == "rescale":  # "crop" keeps the full resolution
        warnings.append(
            f"long-cycle grids of {list(coarse)}-pixel crops cut from frames rescaled by S/S0 (S0={r.crop_size}, "
            f"spatial_coarsening='rescale'): detail that only the full resolution shows is lost there. On a "
            f"task whose classes are stripes 3-4.5 px apart at 64 px, these grids cost 34 points of test "
            f"top-1 against the baseline (0.349 vs 0.691), and the same grids cut at the base scale, "
            f"spatial_coarsening='crop' (the default 'auto' here), gained 30 (0.994; benchmarks/README.md, issue 24)"
        )
    top = max((stage.batch_factor for stage in schedule.stages), default=1) if r.long_cycle else 1
    if (coarse or small) and r.lr_scaling == "linear" and top > 1:
        warnings.append(
            f"the long cycle scales the LR linearly with the batch factor, up to {top}x the base LR, on small "
            f"clips (S0={r.crop_size}, lr_scaling='linear'). At S0=64 the coarsest grid's 8x diverged in its "
            f"first epochs and left 3 training seeds of 5 far below the baseline; lr_scaling='sqrt' "
            f"(the default 'auto' here, {top**0.5:.2g}x) trained all 5 (benchmarks/README.md, issue 24)"
        )
    return warnings


def check_trainer_flags(max_steps: int, accumulate_grad_batches: Any) -> None:
    """Refuse Trainer settings that would silently train something other than the schedule."""
    if max_steps not in (-1, None):
        raise ValueError(
            f"MultigridCallback: Trainer(max_steps={max_steps}) would stop training mid-schedule: multigrid "
            "changes the batch size every stage, so a step count is not a fixed amount of data. Remove "
            "max_steps; the length is set by Trainer(max_epochs=<baseline epochs>)"
        )
    if not isinstance(accumulate_grad_batches, int):
        raise ValueError(
            "MultigridCallback: a schedule of gradient accumulation is not supported (each optimizer step "
            "must cover whole short cycles); use a constant Trainer(accumulate_grad_batches=N)"
        )


def check_accumulation(accumulate_grad_batches: int, num_slots: int) -> None:
    """Refuse gradient accumulation that does not cover whole short cycles of ``num_slots`` slots (the
    schedule's: short-cycle crops left out by the floor are not slots)."""
    if accumulate_grad_batches > 1 and accumulate_grad_batches % num_slots:
        raise ValueError(
            f"MultigridCallback: accumulate_grad_batches={accumulate_grad_batches} mixes short-cycle shapes "
            f"whose pairing shifts every optimizer step; use a multiple of the short cycle's {num_slots} "
            f"slots (e.g. {num_slots * max(1, accumulate_grad_batches // num_slots)}), 1, or short_cycle=False"
        )


def baseline_epochs(given: int | None, trainer_max_epochs: int | None) -> int:
    """The baseline recipe's epochs: ``given`` (the callback's ``baseline_epochs``) or the Trainer's."""
    epochs = given or trainer_max_epochs
    if epochs is None or epochs < 1 or (given is None and epochs == LIGHTNING_DEFAULT_MAX_EPOCHS):
        raise ValueError(
            f"MultigridCallback: Trainer(max_epochs={trainer_max_epochs}) is not a baseline recipe "
            f"({LIGHTNING_DEFAULT_MAX_EPOCHS} is Lightning's default when max_epochs is unset). Set "
            "Trainer(max_epochs=...) to the BASELINE number of epochs (the callback derives the "
            "multigrid epochs), or pass MultigridCallback(baseline_epochs=...)"
        )
    return int(epochs)


def check_lr_schedulers(lr_policy: str | None, scheduler_names: list[str]) -> str | None:
    """Refuse LR schedulers that would fight the callback's LR; the warning for ``lr_policy=None``."""
    if lr_policy is None:
        return (
            "MultigridCallback(lr_policy=None): the LR is left to your scheduler, so the long cycle's "
            "linear LR scaling by batch factor is not applied"
        )
    if scheduler_names:
        raise ValueError(
            f"MultigridCallback(lr_policy={lr_policy!r}) sets the LR every iteration, but the module "
            f"also configures LR scheduler(s): {', '.join(scheduler_names)}. Remove them from "
            "configure_optimizers, or pass lr_policy=None to keep yours (without the long cycle's LR scaling)."
        )
    return None
