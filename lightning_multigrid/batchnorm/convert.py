"""BatchNorm grouping for multigrid training: split BN and sync BN, applied to a whole model.

Multigrid changes the per-device batch between long-cycle stages, but BatchNorm statistics should
always be computed over about ``bn_base_size`` clips (see ``schedule.MultigridSchedule.batch_norm_plan``):

* **split** (per-device batch larger than ``bn_base_size``): :class:`SplitBatchNorm3d` normalises
  ``num_splits`` groups of the batch separately (sample ``i`` goes to group ``i % num_splits``) with
  one running-statistics slot per group and the *same* affine parameters;
* **sync** (per-device batch smaller): statistics are reduced across a group of devices with a
  differentiable all-reduce (``torch.nn.SyncBatchNorm`` only runs on GPUs, this runs on any backend);
* **plain**: exactly ``nn.BatchNorm3d``.

Everything happens in place: :func:`convert_to_split_batchnorm` swaps the class of existing
``nn.BatchNorm3d`` modules, so parameters, buffers and any optimizer holding them are untouched.
Checkpoints always hold merged plain-BN tensors (the keys of ``nn.BatchNorm3d``), so a model trained
with this package loads without it.

:class:`SplitBatchNorm3d` itself (and the merging convention of split statistics) lives in
:mod:`lightning_multigrid.batchnorm.split`; the package :mod:`lightning_multigrid.batchnorm` gathers it
with the whole-model operations below, as the one import for all of it. Precise BN
(recomputing the statistics before evaluation) is :mod:`lightning_multigrid.batchnorm.precise`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lightning_multigrid.batchnorm.split import (
    SplitBatchNorm3d,
    check_positive_int,
)
from lightning_multigrid.schedule.recipe import BatchNormPlan

__all__ = [
    "apply_batchnorm_plan",
    "convert_to_split_batchnorm",
    "merge_split_statistics",
    "new_sync_groups",
    "revert_to_batchnorm",
    "set_num_splits",
    "set_sync_group",
]


def _split_bns(module: nn.Module) -> list[SplitBatchNorm3d]:
    return [m for m in module.modules() if isinstance(m, SplitBatchNorm3d)]


def convert_to_split_batchnorm(module: nn.Module) -> list[SplitBatchNorm3d]:
    """Turn every exact ``nn.BatchNorm3d`` in ``module`` into a :class:`SplitBatchNorm3d`, in place.

    Only the class changes: parameter and buffer objects stay the same (an optimizer holding them keeps
    working). Subclasses of ``nn.BatchNorm3d`` (custom norms), ``nn.SyncBatchNorm`` and other
    BatchNorm dimensions are left alone. Idempotent.

    Returns:
        All :class:`SplitBatchNorm3d` modules of ``module`` (converted now or before), in module order.
    """
    for m in module.modules():
        if type(m) is nn.BatchNorm3d:
            m.__class__ = SplitBatchNorm3d
            m._init_split_state()  # type: ignore[attr-defined,operator]
    return _split_bns(module)


def revert_to_batchnorm(module: nn.Module) -> list[nn.BatchNorm3d]:
    """Turn every :class:`SplitBatchNorm3d` back into ``nn.BatchNorm3d`` in place, merging first.

    Returns:
        The reverted modules (same objects).
    """
    reverted: list[nn.BatchNorm3d] = []
    for m in _split_bns(module):
        if type(m) is not SplitBatchNorm3d:
            continue  # a user subclass: reverting would drop its own behaviour
        m.merge_split_statistics()
        m._remove_split_state()
        m.__class__ = nn.BatchNorm3d  # type: ignore[assignment]
        reverted.append(m)
    return reverted


def set_num_splits(module: nn.Module, num_splits: int) -> list[SplitBatchNorm3d]:
    """Set the split count of every :class:`SplitBatchNorm3d` in ``module`` (merging first).

    Returns:
        The affected modules; empty if ``module`` was never converted.
    """
    check_positive_int(num_splits, "num_splits", "set_num_splits")
    bns = _split_bns(module)
    for bn in bns:
        bn.set_num_splits(num_splits)
    return bns


def merge_split_statistics(module: nn.Module) -> list[SplitBatchNorm3d]:
    """Write merged split statistics into ``running_mean``/``running_var`` of every split BN."""
    bns = _split_bns(module)
    for bn in bns:
        bn.merge_split_statistics()
    return bns


def restart_splits(module: nn.Module) -> list[SplitBatchNorm3d]:
    """Merge, then make every split start again from the merged statistics (done every epoch).

    Split buffers are not in checkpoints (merged statistics are), so restarting them at each epoch
    start is what lets a run resumed at an epoch boundary match an uninterrupted one exactly.
    """
    bns = _split_bns(module)
    for bn in bns:
        bn.merge_split_statistics()
        bn._splits_from_running()
    return bns


def split_statistics(module: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
    """The per-split running statistics of every split BN with ``num_splits > 1``, by module name.

    What a checkpoint taken mid-epoch needs, besides the merged statistics, to continue exactly.
    """
    return {
        name: (m.split_running_mean.detach().clone(), m.split_running_var.detach().clone())
        for name, m in module.named_modules()
        if isinstance(m, SplitBatchNorm3d) and m.num_splits > 1 and m.track_running_stats
    }


@torch.no_grad()
def load_split_statistics(module: nn.Module, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
    """Put back what :func:`split_statistics` returned (the split counts must already match)."""
    modules = dict(module.named_modules())
    for name, (mean, var) in stats.items():
        bn = modules.get(name)
        if not isinstance(bn, SplitBatchNorm3d) or bn.split_running_mean.shape != mean.shape:
            raise ValueError(
                f"load_split_statistics: module '{name}' is not a split BN with {mean.numel()} split "
                "statistics; the checkpoint was taken at another stage or with another model"
            )
        bn.split_running_mean.copy_(mean)
        bn.split_running_var.copy_(var)
        bn._split_stats_dirty = True


def set_sync_group(
    module: nn.Module, process_group: Any, group_size: int
) -> list[SplitBatchNorm3d]:
    """Synchronise training statistics of every split BN across the ranks of ``process_group``.

    Args:
        module: a module converted with :func:`convert_to_split_batchnorm`.
        process_group: the group of this rank (from :func:`new_sync_groups`); ignored when
            ``group_size == 1``.
        group_size: ranks in the group; ``1`` returns to local statistics.

    Returns:
        The affected modules.
    """
    check_positive_int(group_size, "group_size", "set_sync_group")
    if group_size > 1:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                f"set_sync_group: sync BN over {group_size} devices needs torch.distributed to be "
                "initialised"
            )
        if process_group is None:
            raise ValueError(
                f"set_sync_group: sync BN over {group_size} devices needs a process group "
                "(create it with new_sync_groups)"
            )
        actual = dist.get_world_size(process_group)
        if actual != group_size:
            raise ValueError(
                f"set_sync_group: the process group has {actual} ranks for this rank, expected "
                f"group_size={group_size}"
            )
    bns = _split_bns(module)
    for bn in bns:
        bn.set_sync_group(process_group, group_size)
    return bns


def new_sync_groups(group_size: int) -> Any:
    """Create contiguous groups of ``group_size`` ranks and return the one this rank belongs to.

    Every rank must call this at the same point with the same ``group_size`` (``new_group`` is a
    collective that every rank runs for every group, in the same order).

    Raises:
        RuntimeError: torch.distributed is not initialised.
        ValueError: ``group_size`` does not divide the world size.
    """
    check_positive_int(group_size, "group_size", "new_sync_groups")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("new_sync_groups: torch.distributed is not initialised")
    world, rank = dist.get_world_size(), dist.get_rank()
    if world % group_size:
        raise ValueError(
            f"new_sync_groups: group_size={group_size} does not divide the world size {world}"
        )
    mine = None
    for start in range(0, world, group_size):
        ranks = list(range(start, start + group_size))
        group = dist.new_group(ranks=ranks)
        if rank in ranks:
            mine = group
    return mine


def apply_batchnorm_plan(
    module: nn.Module, plan: BatchNormPlan, sync_groups: dict[int, Any] | None = None
) -> list[SplitBatchNorm3d]:
    """Put every ``BatchNorm3d`` of ``module`` into the mode of ``plan`` (converting in place if needed).

    Args:
        module: the model.
        plan: from ``MultigridSchedule.batch_norm_plan``.
        sync_groups: for ``"sync"`` plans, this rank's process group per group size, created on all
            ranks beforehand with :func:`new_sync_groups` (group creation is collective, so it cannot
            happen lazily on one rank).

    Returns:
        The split BN modules.
    """
    bns = convert_to_split_batchnorm(module)
    if plan.mode == "plain":
        set_sync_group(module, None, 1)
        set_num_splits(module, 1)
    elif plan.mode == "split":
        set_sync_group(module, None, 1)
        set_num_splits(module, plan.num_splits)
    elif plan.mode == "sync":
        group = (sync_groups or {}).get(plan.sync_size)
        if plan.sync_size > 1 and group is None:
            raise ValueError(
                f"apply_batchnorm_plan: sync BN over {plan.sync_size} devices needs its process group; "
                f"create it on every rank with new_sync_groups({plan.sync_size}) and pass "
                f"sync_groups={{{plan.sync_size}: group}}"
            )
        set_num_splits(module, 1)
        set_sync_group(module, group, plan.sync_size)
    else:
        raise ValueError(f"apply_batchnorm_plan: unknown BatchNormPlan.mode {plan.mode!r}")
    return bns

