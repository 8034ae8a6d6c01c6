"""The baseline run's LR and evaluation epochs for ``benchmarks/speedup.py``: no multigrid code in
the training loop, the very LR rule the multigrid callback follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

from lightning_multigrid.schedule.lr import LrPolicy, apply_lr_factor, read_base_lrs
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe

__all__ = ["BaselineSchedule"]


class BaselineSchedule(pl.Callback):
    """The baseline's LR and evaluation epochs, with no multigrid code in the training loop.

    The LR is set every iteration by :class:`lightning_multigrid.schedule.lr.LrPolicy` over
    ``MultigridSchedule(recipe with both cycles off)``, the very rule the multigrid callback uses, so
    both runs follow the same step rule
    (``gamma ** k`` after the ``k``-th milestone, same warmup). Validation runs only on
    ``eval_epochs`` (as many as the multigrid run has, spread evenly) so that the "total"
    wall-clock of both runs contains the same number of evaluations.
    """

    def __init__(self, recipe: BaseRecipe, warmup_epochs: float = 0.0, eval_epochs: Sequence[int] | None = None) -> None:
        self.schedule = MultigridSchedule(recipe)
        # The callback's warmup_start_factor default, so both runs warm up alike.
        self.lr = LrPolicy("step", warmup_epochs, LrPolicy.warmup_start_factor)
        self.eval_epochs = set(eval_epochs) if eval_epochs is not None else None
        self._base_lrs: list[list[float]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError("BaselineSchedule sets the LR itself; the module must not configure an LR scheduler")
        self._base_lrs = read_base_lrs(trainer.optimizers)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.eval_epochs is not None:
            epoch = trainer.current_epoch
            # Lightning validates when (epoch + 1) % check_val_every_n_epoch == 0.
            trainer.check_val_every_n_epoch = 1 if epoch in self.eval_epochs else epoch + 2

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        fraction = batch_idx / max(trainer.num_training_batches, 1)
        factor = self.lr.factor(self.schedule, trainer.current_epoch + fraction)
        apply_lr_factor(trainer.optimizers, self._base_lrs, factor)
