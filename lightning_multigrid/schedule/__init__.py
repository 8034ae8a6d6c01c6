"""The multigrid schedule, pure Python (no torch): everything decided before a clip is decoded.

:mod:`.recipe` (the baseline recipe and the schedule's records), :mod:`.multigrid`
(:class:`MultigridSchedule`: long and short cycle arithmetic), :mod:`.slots` (each batch's slot),
:mod:`.lr` (the LR policy), :mod:`.config_checks` (setup checks that need no model) and
:mod:`.report` (the ``schedule`` command's table, JSON and plot).

The schedule's names are re-exported here, so ``from lightning_multigrid.schedule import
MultigridSchedule`` keeps working.
"""

from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import (
    DEFAULT_LONG_CYCLE_FACTORS,
    DEFAULT_SHORT_CYCLE_FACTORS,
    MIN_CROP_SIZE,
    SQRT2,
    BaseRecipe,
    BatchNormPlan,
    ClipShape,
    ShortCycleSlot,
    Stage,
)
from lightning_multigrid.schedule.slots import batches_per_epoch, samples_per_rank, slot_sequence

__all__ = [
    "DEFAULT_LONG_CYCLE_FACTORS",
    "DEFAULT_SHORT_CYCLE_FACTORS",
    "MIN_CROP_SIZE",
    "SQRT2",
    "ClipShape",
    "BaseRecipe",
    "Stage",
    "ShortCycleSlot",
    "BatchNormPlan",
    "MultigridSchedule",
    "batches_per_epoch",
    "samples_per_rank",
    "slot_sequence",
]
