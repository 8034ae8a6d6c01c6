"""The optimizer side of :class:`~lightning_multigrid.models.VideoClassifier`.

:class:`OptimizerSetup` holds the three settings ``configure_optimizers`` needs (the optimizer and
scheduler callables, and whether normalisation parameters and biases skip weight decay) and
builds from them; :func:`parameter_groups` is the weight-decay split of the reference recipe.
The default optimizer, :class:`~lightning_multigrid.models.classifier.DefaultSGD`, stays in
:mod:`~lightning_multigrid.models.classifier`, the ``class_path`` the shipped configs name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

__all__ = ["LRSchedulerCallable", "OptimizerCallable", "OptimizerSetup", "parameter_groups"]

# LightningCLI's OptimizerCallable / LRSchedulerCallable, spelled out so that neither namespace is needed.
OptimizerCallable = Callable[[Iterable], torch.optim.Optimizer]
LRSchedulerCallable = Callable[
    [torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
]


def parameter_groups(model: nn.Module, zero_decay_norm_bias: bool = True) -> list[dict[str, Any]]:
    """Trainable parameters of ``model`` split into a weight-decay group and a no-decay group.

    Normalisation parameters and biases (every parameter with fewer than 2 dimensions) go
    to the no-decay group when ``zero_decay_norm_bias``. Frozen parameters are left out, so
    ``BackboneFinetuning`` can add the backbone later. Empty groups are dropped.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if zero_decay_norm_bias and param.ndim <= 1 else decay).append(param)
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if not groups:
        raise ValueError("VideoClassifier: no trainable parameters (everything has requires_grad=False)")
    return groups


@dataclass(frozen=True)
class OptimizerSetup:
    """What ``configure_optimizers`` returns, from the classifier's three optimisation settings.

    Attributes:
        optimizer: called with the parameter groups.
        lr_scheduler: called with the optimizer; stepped every epoch (``None``: constant LR).
        zero_decay_norm_bias: see :func:`parameter_groups`.
    """

    optimizer: OptimizerCallable
    lr_scheduler: LRSchedulerCallable | None = None
    zero_decay_norm_bias: bool = True

    def configure(self, model: nn.Module) -> Any:
        """The optimizer over ``model``'s :func:`parameter_groups`, with its scheduler config if any."""
        optimizer = self.optimizer(parameter_groups(model, self.zero_decay_norm_bias))
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}
