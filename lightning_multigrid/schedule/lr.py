"""The learning-rate policy: the relative LR at a fractional epoch, and setting it on optimizers.

One definition used by :class:`~lightning_multigrid.MultigridCallback` and by the benchmarks' baseline
runs, so both follow the same rule:

* ``step`` reproduces the reference: :meth:`MultigridSchedule.lr_factor`, piecewise constant over the
  schedule's LR milestones (``gamma**stage * b``);
* ``cosine`` decays from 1 to ``cosine_end_factor`` over the multigrid epochs and keeps the long
  cycle's scaling by the stage's batch factor (``BaseRecipe.lr_scaling``; the reference silently
  dropped it);
* warmup ramps linearly from ``warmup_start_factor`` to the scheduled value at ``warmup_epochs``
  (multigrid epochs, fractional allowed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lightning_multigrid.schedule.multigrid import MultigridSchedule

__all__ = ["LrPolicy", "REFERENCE_LR", "read_base_lrs", "apply_lr_factor"]


@dataclass(frozen=True)
class LrPolicy:
    """How the relative LR follows the schedule (see the module docstring)."""

    name: Literal["step", "cosine"] = "step"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    cosine_end_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in ("step", "cosine"):
            raise ValueError(f"lr_policy must be 'step' or 'cosine', got {self.name!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")

    def factor(self, schedule: MultigridSchedule, epoch: float) -> float:
        """Relative LR (multiply by the base LR) at the fractional ``epoch``."""
        if epoch < self.warmup_epochs:
            end = self._scheduled(schedule, self.warmup_epochs)
            return self.warmup_start_factor + (end - self.warmup_start_factor) * epoch / self.warmup_epochs
        return self._scheduled(schedule, epoch)

    def _scheduled(self, schedule: MultigridSchedule, epoch: float) -> float:
        if self.name == "step":
            return schedule.lr_factor(epoch)
        stage = schedule.stage_at(min(int(epoch), schedule.max_epochs - 1))
        progress = min(max(epoch / schedule.max_epochs, 0.0), 1.0)
        end = self.cosine_end_factor
        scale = schedule.recipe.lr_batch_scale(stage.batch_factor)
        return scale * (end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress)))


#: The reference's rule (step, no warmup), the default wherever a policy is optional.
REFERENCE_LR = LrPolicy()


def read_base_lrs(optimizers: Sequence[Any]) -> list[list[float]]:
    """Each param group's base LR (``initial_lr`` if a scheduler set one), per optimizer.

    Read at fit start, before a resumed optimizer state overwrites ``lr`` with a scaled value.
    """
    return [[float(g.get("initial_lr", g["lr"])) for g in opt.param_groups] for opt in optimizers]


def apply_lr_factor(optimizers: Sequence[Any], base_lrs: list[list[float]], factor: float) -> None:
    """Set every param group's LR to its base LR times ``factor``."""
    for opt, bases in zip(optimizers, base_lrs):
        for group, base in zip(opt.param_groups, bases):
            group["lr"] = base * factor
