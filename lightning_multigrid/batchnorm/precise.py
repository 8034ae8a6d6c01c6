"""Precise BN: recompute BatchNorm statistics as the average of per-batch statistics.

The reference recomputes them over ~200 batches at the current base shape before every evaluation
(spec section 4): running averages collected while the shape, batch and BN split count changed
would not describe the final network. Works on plain, split and sync BatchNorm alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lightning_multigrid.batchnorm.split import SplitBatchNorm3d, check_positive_int

__all__ = ["update_bn_stats"]


def _default_forward(model: nn.Module, batch: Any) -> Any:
    return model(batch)


def update_bn_stats(
    model: nn.Module,
    batches: Iterable[Any],
    num_batches: int = 200,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> int:
    """Recompute BatchNorm running statistics as the average of per-batch statistics ("precise BN").

    Every BatchNorm with running statistics (plain, split, sync) is reset and fed up to
    ``num_batches`` batches in train mode under ``torch.no_grad`` with ``momentum=None`` (torch's
    cumulative average: after ``n`` batches the running statistics are the mean of the ``n`` per-batch
    statistics, i.e. momentum 1 averaging). Split BNs accumulate per-split statistics, which are then
    merged; sync BNs keep their device group (every rank of a group must feed the same number of
    batches, as in training). If torch.distributed is initialised, the results are averaged over all
    ranks, so every rank holds the same statistics (every rank must call this). Afterwards every split
    starts from the final merged statistics, and momentum, ``num_batches_tracked`` and every module's
    train/eval mode are restored. On error the previous statistics are restored.

    Args:
        model: the model.
        batches: an iterable of batches (e.g. a train loader at the base shape).
        num_batches: use at most this many batches.
        forward: ``forward(model, batch)``; defaults to ``model(batch)`` (pass one for dict batches or
            SlowFast pathway lists).

    Returns:
        The number of batches used (0 if the model has no BatchNorm with running statistics).

    Raises:
        ValueError: ``batches`` yielded no batch.
    """
    check_positive_int(num_batches, "num_batches", "update_bn_stats")
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    run = forward if forward is not None else _default_forward
    modes = [(m, m.training) for m in model.modules()]
    saved = [
        (
            bn,
            bn.momentum,
            {k: v.clone() for k, v in bn._buffers.items() if v is not None},
            bn.__dict__.get("_split_stats_dirty"),
        )
        for bn in bns
    ]
    used = 0
    succeeded = False
    try:
        model.train()
        for bn in bns:
            bn.momentum = None
            bn.reset_running_stats()
        with torch.no_grad():
            for batch in itertools.islice(batches, num_batches):
                run(model, batch)
                used += 1
        if used == 0:
            raise ValueError(
                "update_bn_stats: `batches` yielded no batch; precise BN needs at least one"
            )
        for bn in bns:
            if isinstance(bn, SplitBatchNorm3d):
                bn.merge_split_statistics()
        _average_across_ranks(bns)
        for bn in bns:
            if isinstance(bn, SplitBatchNorm3d):
                bn._splits_from_running()
        succeeded = True
    finally:
        with torch.no_grad():
            for bn, momentum, buffers, dirty in saved:
                bn.momentum = momentum
                # The training counter is not precise BN's business; statistics are, unless we failed.
                restore = (
                    buffers
                    if not succeeded
                    else {"num_batches_tracked": buffers["num_batches_tracked"]}
                )
                for name, value in restore.items():
                    current = bn._buffers[name]
                    if current is not None and current.shape == value.shape:
                        current.copy_(value)
                    elif current is not None:
                        current.data = value
                if not succeeded and dirty is not None:
                    bn._split_stats_dirty = dirty
        for m, was_training in modes:
            m.training = was_training
    return used


@torch.no_grad()
def _average_across_ranks(bns: list[_BatchNorm]) -> None:
    """Average running statistics over all ranks with one all-reduce."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    if world == 1:
        return
    tensors = [t for bn in bns for t in (bn.running_mean, bn.running_var) if t is not None]
    flat = torch.cat([t.reshape(-1).double() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
