"""Setup-time checks: a configuration that cannot work fails before the first step, naming the stage.

* :func:`validate_stages`: every stage's batch against the data, the devices and the BN splits,
  SlowFast's alpha and the model's declared requirements (pure: no trainer, no data loading).
* :func:`check_trainer_flags`: Trainer settings that would silently break the schedule.
* :func:`probe_forward`: one forward pass per distinct clip length at its smallest crop, so that
  fixed-size pooling or a batch format precise BN cannot read fails now, not at epoch 140.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from lightning_multigrid.keys import ClipKey, ClipShape
from lightning_multigrid.sampler import epoch_clip_shapes
from lightning_multigrid.schedule import BatchNormPlan, MultigridSchedule, batches_per_epoch

__all__ = [
    "stage_bn_plans",
    "validate_stages",
    "check_trainer_flags",
    "probe_forward",
    "find_requirements",
    "default_forward",
]


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
    requirements: Any = None,
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
    per_rank = None if num_samples is None else -(-num_samples // world_size)
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
            from lightning_multigrid.models import check_clip_shape

            for shape in epoch_clip_shapes(schedule, stage.start_epoch):
                check_clip_shape(requirements, shape.num_frames, shape.crop_size, where)
    return warnings


def check_trainer_flags(max_steps: int, accumulate_grad_batches: Any, short_cycle: bool, num_slots: int) -> None:
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
    if short_cycle and accumulate_grad_batches > 1 and accumulate_grad_batches % num_slots:
        raise ValueError(
            f"MultigridCallback: accumulate_grad_batches={accumulate_grad_batches} mixes short-cycle shapes "
            f"whose pairing shifts every optimizer step; use a multiple of the short cycle's {num_slots} "
            f"slots (e.g. {num_slots * max(1, accumulate_grad_batches // num_slots)}), 1, or short_cycle=False"
        )


def find_requirements(module: torch.nn.Module) -> Any:
    """The first ``multigrid_requirements`` attribute on the module or a submodule (zoo models set it)."""
    for sub in module.modules():
        requirements = getattr(sub, "multigrid_requirements", None)
        if requirements is not None:
            return requirements
    return None


def _probe_shapes(schedule: MultigridSchedule) -> list[tuple[ClipShape, str]]:
    """Per distinct T, the smallest crop used with it (pooling fails there first) and its stage."""
    smallest: dict[int, tuple[ClipShape, str]] = {}
    for stage in schedule.stages:
        for shape in epoch_clip_shapes(schedule, stage.start_epoch):
            best = smallest.get(shape.num_frames)
            if best is None or shape.crop_size < best[0].crop_size:
                smallest[shape.num_frames] = (shape, schedule.describe_stage(stage))
    return [smallest[t] for t in sorted(smallest)]


def probe_forward(
    module: torch.nn.Module,
    dataset: Any,
    schedule: MultigridSchedule,
    collate: Callable[[list[Any]], Any],
    to_device: Callable[[Any], Any],
    forward: Callable[[Any, Any], Any],
) -> None:
    """Run one clip per distinct T (at its smallest crop) through ``forward(module, batch)``.

    Eval mode under ``no_grad``, with all RNG states restored, so training is unchanged. A failure
    names the stage, the shape, the innermost module that failed, and the usual fix.
    """
    modes = [(m, m.training) for m in module.modules()]
    rng = (random.getstate(), torch.get_rng_state())
    active: list[str] = []
    names = {m: n for n, m in module.named_modules()}

    def enter(m: torch.nn.Module, _: Any) -> None:
        active.append(names.get(m, type(m).__name__))

    def leave(m: torch.nn.Module, _: Any, __: Any) -> None:
        active.pop()

    handles = [h for m in module.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        module.eval()
        for shape, stage in _probe_shapes(schedule):
            active.clear()
            batch = to_device(collate([dataset[ClipKey(0, shape)]]))
            try:
                with torch.no_grad():
                    forward(module, batch)
            except KeyError as err:
                raise ValueError(
                    f"MultigridCallback: precise BN cannot read the train batch ({err!r} missing). The default "
                    "feeds batch['video'] (dict batches) or batch[0] (tuples) to the module; pass "
                    "MultigridCallback(precise_bn_forward=lambda module, batch: module(<input>)), or "
                    "precise_bn_batches=0"
                ) from err
            except (RuntimeError, ValueError, TypeError) as err:
                where = active[-1] if active else type(module).__name__
                raise ValueError(
                    f"MultigridCallback: the model cannot take multigrid stage {stage}'s clips "
                    f"(T={shape.num_frames}, crop {shape.crop_size}): module '{where}' failed with: {err}. "
                    "Fixed-size pooling (e.g. pytorchvideo's default AvgPool3d heads) cannot take smaller "
                    "clips: use adaptive pooling (nn.AdaptiveAvgPool3d(1)), build the model with "
                    "lightning_multigrid.models (shape-agnostic heads), or change long_cycle_factors"
                ) from err
    finally:
        for h in handles:
            h.remove()
        for m, was_training in modes:
            m.training = was_training
        random.setstate(rng[0])
        torch.set_rng_state(rng[1])


def default_forward(module: torch.nn.Module, batch: Any) -> Any:
    """Feed a training batch to the module: ``batch["video"]``, ``batch[0]`` or the batch itself."""
    if isinstance(batch, dict):
        return module(batch["video"])
    if isinstance(batch, (list, tuple)):
        return module(batch[0])
    return module(batch)
