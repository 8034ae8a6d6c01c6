"""The :class:`SplitBatchNorm3d` module: ``nn.BatchNorm3d`` with split or synchronised statistics.

The whole-model operations (converting a network in place, applying a schedule's
``BatchNormPlan``, creating sync groups) are in :mod:`lightning_multigrid.batchnorm.convert`; the
package :mod:`lightning_multigrid.batchnorm` gathers the public names of both.

Merging convention: split ``k`` keeps, like torch, a running mean ``m_k`` and a running *unbiased*
variance ``v_k``. Merged statistics follow the law of total variance applied to the stored values:
``mean = mean_k(m_k)`` and ``var = mean_k(v_k) + popvar_k(m_k)`` (population variance over the
``k`` splits). For equal groups and *biased* group variances this is exactly the full-batch mean and
biased variance; with torch's unbiased per-group variances (``n`` values per group and channel) the
merged variance is ``full biased variance + mean_k(biased v_k) / (n - 1)``, i.e. within ``1/(n-1)``
relative of it, the same order as torch's own biased/unbiased difference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SplitBatchNorm3d", "check_positive_int", "merge_moments"]

_SPLIT_BUFFERS = ("split_running_mean", "split_running_var")
_SPLIT_ATTRS = ("num_splits", "sync_group", "sync_size", "_split_stats_dirty")


def merge_moments(means: Tensor, variances: Tensor) -> tuple[Tensor, Tensor]:
    """Merge per-group statistics of equal-size groups (law of total variance).

    Args:
        means: ``(k, C)`` group means.
        variances: ``(k, C)`` group variances.

    Returns:
        ``(mean, var)`` of shape ``(C,)``: the mean of the means, and the mean of the variances plus
        the population variance of the means. Computed in float64 and returned in the input dtype,
        so merging ``k`` identical groups returns them unchanged.
    """
    if means.shape != variances.shape or means.dim() != 2:
        raise ValueError(
            f"merge_moments: means and variances must both be (k, C), got {tuple(means.shape)} "
            f"and {tuple(variances.shape)}"
        )
    m = means.double()
    mean = m.mean(0)
    var = variances.double().mean(0) + (m - mean).square().mean(0)
    return mean.to(means.dtype), var.to(variances.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over a process group; the gradient is summed the same way (every output uses every input)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def check_positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


class SplitBatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` with split (per-group) or synchronised (cross-device) statistics.

    With ``num_splits == 1`` and no sync group it *is* ``nn.BatchNorm3d`` (same code path, bit for bit).
    With ``num_splits = k > 1``, training normalises the ``k`` groups ``x[g::k]`` separately and keeps
    their running statistics in the non-persistent buffers ``split_running_mean`` and
    ``split_running_var`` of shape ``(k * C,)`` (split ``g`` at ``[g*C:(g+1)*C]``). ``running_mean`` and
    ``running_var`` hold the merged statistics: they are refreshed on ``eval()``, on ``state_dict()``,
    before the split count changes and by :meth:`merge_split_statistics`, so evaluation and checkpoints
    always see merged, plain-BN tensors. ``weight`` and ``bias`` are shared by all splits.

    With a sync group of ``sync_size > 1`` ranks, training statistics are computed over the union of
    the group's batches (differentiably); evaluation uses the running statistics as usual.

    Args:
        num_features: channels ``C``.
        *args: forwarded to ``nn.BatchNorm3d``.
        num_splits: initial number of splits.
        **kwargs: forwarded to ``nn.BatchNorm3d``.
    """

    # Set by _init_split_state (also on modules converted in place, which skip __init__).
    num_splits: int
    sync_size: int
    sync_group: Any
    split_running_mean: Tensor
    split_running_var: Tensor
    _split_stats_dirty: bool

    def __init__(self, num_features: int, *args: Any, num_splits: int = 1, **kwargs: Any) -> None:
        super().__init__(num_features, *args, **kwargs)
        self._init_split_state()
        self.set_num_splits(num_splits)

    # ------------------------------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------------------------------
    def _init_split_state(self) -> None:
        """Add the split/sync state to a module that is (or just became) a ``SplitBatchNorm3d``."""
        self.num_splits = 1
        self.sync_group = None
        self.sync_size = 1
        # True while the split buffers hold updates that running_mean/var do not reflect yet.
        self._split_stats_dirty = False
        if self.track_running_stats:
            ref = self.running_mean
            assert ref is not None
            # Non-persistent: state_dict() keeps exactly the keys of nn.BatchNorm3d. Empty at k == 1
            # (the running buffers are the statistics then), resized in place when k changes so that
            # anything holding the buffer objects (e.g. DDP's buffer broadcast) keeps seeing them.
            self.register_buffer("split_running_mean", ref.new_empty(0), persistent=False)
            self.register_buffer("split_running_var", ref.new_empty(0), persistent=False)
        else:
            self.register_buffer("split_running_mean", None, persistent=False)
            self.register_buffer("split_running_var", None, persistent=False)

    def _remove_split_state(self) -> None:
        for name in _SPLIT_BUFFERS:
            self._buffers.pop(name, None)
            self._non_persistent_buffers_set.discard(name)
        for name in _SPLIT_ATTRS:
            self.__dict__.pop(name, None)

    def reset_running_stats(self) -> None:
        """Reset the running statistics, split ones included."""
        super().reset_running_stats()
        split_mean = self._buffers.get("split_running_mean")
        split_var = self._buffers.get("split_running_var")
        if split_mean is not None and split_var is not None:
            split_mean.zero_()
            split_var.fill_(1)
        if "_split_stats_dirty" in self.__dict__:
            self._split_stats_dirty = False

    @torch.no_grad()
    def _splits_from_running(self) -> None:
        """Make every split start from the (merged) running statistics."""
        if not self.track_running_stats:
            return
        k = self.num_splits
        for split_name, running_name in zip(
            _SPLIT_BUFFERS, ("running_mean", "running_var"), strict=True
        ):
            split: Tensor = getattr(self, split_name)
            running: Tensor = getattr(self, running_name)
            new = running.repeat(k) if k > 1 else running.new_empty(0)
            if split.shape == new.shape and split.dtype == new.dtype and split.device == new.device:
                split.copy_(new)
            else:
                split.data = new
        self._split_stats_dirty = False

    @torch.no_grad()
    def merge_split_statistics(self) -> None:
        """Write the merged split statistics into ``running_mean``/``running_var``.

        A no-op when there is nothing new to merge (one split, or no training step since the last
        merge), so statistics loaded or recomputed into the running buffers are never overwritten by
        stale split statistics.
        """
        if self.num_splits == 1 or not self.track_running_stats or not self._split_stats_dirty:
            return
        k = self.num_splits
        mean, var = merge_moments(
            self.split_running_mean.view(k, -1), self.split_running_var.view(k, -1)
        )
        self.running_mean.copy_(mean)  # type: ignore[union-attr]
        self.running_var.copy_(var)  # type: ignore[union-attr]
        self._split_stats_dirty = False

    def set_num_splits(self, num_splits: int) -> None:
        """Change the split count: merge, then every new split starts from the merged statistics."""
        check_positive_int(num_splits, "num_splits", "SplitBatchNorm3d.set_num_splits")
        if num_splits > 1 and self.sync_size > 1:
            raise ValueError(
                f"SplitBatchNorm3d.set_num_splits: cannot split into {num_splits} groups while "
                f"statistics are synchronised across {self.sync_size} devices; call "
                "set_sync_group(module, None, 1) first"
            )
        if num_splits == self.num_splits:
            return
        self.merge_split_statistics()
        self.num_splits = num_splits
        self._splits_from_running()

    def set_sync_group(self, process_group: Any, group_size: int) -> None:
        """Synchronise training statistics across ``group_size`` ranks (``None, 1``: local stats)."""
        check_positive_int(group_size, "group_size", "SplitBatchNorm3d.set_sync_group")
        if group_size > 1 and self.num_splits > 1:
            raise ValueError(
                f"SplitBatchNorm3d.set_sync_group: cannot synchronise across {group_size} devices "
                f"while the batch is split into {self.num_splits} groups; call set_num_splits(1) first"
            )
        self.sync_group = process_group if group_size > 1 else None
        self.sync_size = group_size

    # ------------------------------------------------------------------------------------------
    # nn.Module hooks
    # ------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> SplitBatchNorm3d:
        if not mode:
            # Evaluation must use merged statistics.
            self.merge_split_statistics()
        return super().train(mode)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        # Merging only rewrites running_mean/var, which split training does not read, so saving
        # never changes how training continues; checkpoints hold plain-BN tensors.
        self.merge_split_statistics()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if prefix + "running_mean" in state_dict or prefix + "running_var" in state_dict:
            # Loaded statistics are merged ones: every split restarts from them.
            self._splits_from_running()

    def __getstate__(self) -> dict:
        # Process groups cannot be pickled or deep-copied: a copy (e.g. an EMA model) uses local
        # statistics until set_sync_group is called on it.
        state = super().__getstate__()
        if state.get("sync_group") is not None:
            state["sync_group"] = None
            state["sync_size"] = 1
        return state

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}, sync_size={self.sync_size}"

    # ------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------
    def forward(self, input: Tensor) -> Tensor:
        if self.num_splits == 1 and (self.sync_size == 1 or not self.training):
            return super().forward(input)
        self._check_input_dim(input)
        if not self.training and self.running_mean is not None:
            self.merge_split_statistics()  # no-op after eval(), which already merged
            return super().forward(input)
        factor = self._exponential_average_factor()
        if self.sync_size > 1:
            return self._forward_sync(input, factor)
        return self._forward_split(input, factor)

    def _exponential_average_factor(self) -> float:
        """Count the batch and return the running-average factor, exactly as ``_BatchNorm`` does."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        return factor

    def _forward_split(self, input: Tensor, factor: float) -> Tensor:
        k, n, c = self.num_splits, input.shape[0], self.num_features
        update = self.training and self.track_running_stats
        run_mean = self.split_running_mean if update else None
        run_var = self.split_running_var if update else None
        if update:
            self._split_stats_dirty = True
        if n % k == 0:
            # Sample i = a*k + g lands in channel block g: (N, C, ...) -> (N/k, k*C, ...) is a view.
            x = input.reshape(n // k, k * c, *input.shape[2:])
            weight = self.weight.repeat(k) if self.weight is not None else None
            bias = self.bias.repeat(k) if self.bias is not None else None
            y = F.batch_norm(x, run_mean, run_var, weight, bias, True, factor, self.eps)
            return y.reshape(input.shape)
        # A partial batch: groups differ in size, normalise each on its own.
        outputs, order = [], []
        for g in range(k):
            part = input[g::k]
            if part.shape[0] == 0:
                continue  # fewer samples than splits: this split sees no data
            block = slice(g * c, (g + 1) * c)
            outputs.append(
                F.batch_norm(
                    part,
                    run_mean[block] if run_mean is not None else None,
                    run_var[block] if run_var is not None else None,
                    self.weight,
                    self.bias,
                    True,
                    factor,
                    self.eps,
                )
            )
            order.append(torch.arange(g, n, k, device=input.device))
        inverse = torch.argsort(torch.cat(order))
        return torch.cat(outputs).index_select(0, inverse)

    def _forward_sync(self, input: Tensor, factor: float) -> Tensor:
        c = self.num_features
        dims = [0, *range(2, input.dim())]
        # Statistics in at least float32; per-rank (mean, biased var) are exact two-pass values and
        # are combined in float64, which is as stable as a Welford merge and needs one all-reduce.
        x = input if input.dtype in (torch.float32, torch.float64) else input.float()
        local_var, local_mean = torch.var_mean(x, dim=dims, correction=0)
        count = input.numel() // max(c, 1)
        mean64 = local_mean.double()
        packed = torch.cat(
            [
                mean64 * count,
                (local_var.double() + mean64.square()) * count,
                mean64.new_full((1,), float(count)),
            ]
        )
        total = _AllReduceSum.apply(packed, self.sync_group)
        n = total[2 * c]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean.square()).clamp_min(0)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                unbiased = var * n / (n - 1).clamp_min(1)
                rm, rv = self.running_mean, self.running_var
                assert rm is not None and rv is not None
                rm.mul_(1 - factor).add_(mean.to(rm.dtype), alpha=factor)
                rv.mul_(1 - factor).add_(unbiased.to(rv.dtype), alpha=factor)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        if self.weight is not None:
            scale = scale * self.weight.to(x.dtype)
        shift = -mean.to(x.dtype) * scale
        if self.bias is not None:
            shift = shift + self.bias.to(x.dtype)
        shape = (1, c) + (1,) * (input.dim() - 2)
        return torch.addcmul(shift.view(shape), x, scale.view(shape)).to(input.dtype)

