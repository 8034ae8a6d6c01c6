"""Batch sampling for multigrid: per-iteration clip shapes with an exact length.

:class:`MultigridBatchSampler` turns a stream of indices into batches of
:class:`~lightning_multigrid.sampling.keys.ClipKey`, following the short cycle of the long-cycle stage its
epoch belongs to. It is a ``torch.utils.data.BatchSampler`` subclass taking ``sampler`` as its
first argument, so Lightning can inject a ``DistributedSampler`` (with ``use_distributed_sampler``)
by re-instantiating it with the same keyword arguments.

DDP safety follows from construction: the batch sizes and shapes depend only on the schedule and
the epoch, never on the indices, and a ``DistributedSampler`` gives every rank the same number of
indices, so every rank yields the same number of batches with the same shape sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import BatchSampler, Sampler

from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import ClipShape
from lightning_multigrid.schedule.slots import batches_per_epoch, slot_sequence

__all__ = ["MultigridBatchSampler", "SeededRandomSampler"]


class SeededRandomSampler(Sampler[int]):
    """A random permutation that is a pure function of ``(seed, epoch)``.

    ``RandomSampler`` draws a fresh seed every epoch, which makes a resumed run differ from an
    uninterrupted one; this sampler does not. Call :meth:`set_epoch` before each epoch (Lightning
    does it for ``batch_sampler.sampler``).
    """

    def __init__(self, data_source: Sized, seed: int = 0, shuffle: bool = True) -> None:
        self.num_samples = len(data_source)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class MultigridBatchSampler(BatchSampler):
    """Yields lists of ``ClipKey(index, shape)`` following the multigrid schedule.

    Within an epoch, batch ``i`` uses short-cycle slot ``i % 3`` (restarting every epoch); its
    size is ``slot.batch_multiplier * stage.batch_factor * batch_size``. Every index the inner
    sampler yields is used exactly once, except with ``drop_last=True`` where the indices after
    the last *full* batch of the slot sequence are dropped (fewer than one slot batch). The shapes
    and sizes depend only on ``(schedule, epoch)``, so all DDP ranks agree.

    The epoch follows the inner sampler: Lightning calls ``set_epoch`` on
    ``batch_sampler.sampler`` (never on the batch sampler), so when the inner sampler has an
    ``epoch`` (``DistributedSampler``, :class:`SeededRandomSampler`) that is the epoch used.
    A loader's length is fixed when Lightning builds it, so without :class:`MultigridCallback`
    (which rebuilds the loader at stage changes) use ``reload_dataloaders_every_n_epochs=1``.

    Args:
        sampler: the per-rank index sampler (a ``DistributedSampler`` under DDP).
        batch_size: the per-device *baseline* batch (``B0 / world_size``).
        drop_last: drop the last partial batch (training default).
        schedule: the multigrid schedule; required.
        epoch: the epoch to start with (when the inner sampler has no ``epoch``).
        seed: if given, set on the inner sampler (Lightning's injected ``DistributedSampler``
            would otherwise shuffle with ``PL_GLOBAL_SEED`` instead of this seed).
        start_batch: skip this many batches of the first epoch iterated (a mid-epoch resume
            continues where the checkpoint was taken); later epochs start at batch 0.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sized,
        batch_size: int,
        drop_last: bool = True,
        *,
        schedule: MultigridSchedule | None = None,
        epoch: int = 0,
        seed: int | None = None,
        start_batch: int = 0,
    ) -> None:
        if schedule is None:
            raise ValueError(
                "MultigridBatchSampler needs `schedule=`; it cannot be rebuilt from "
                "(sampler, batch_size, drop_last) alone. Build it inside `train_dataloader()` so "
                "Lightning captures its arguments, or let MultigridCallback build it."
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        # BatchSampler.__init__ validates batch_size/drop_last and stores them.
        super().__init__(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.schedule = schedule
        self._epoch = int(epoch)
        if hasattr(sampler, "set_epoch"):
            # Lightning re-instantiates this class around a fresh DistributedSampler (epoch 0) and
            # reads len() before it calls set_epoch: the inner sampler must start at our epoch.
            sampler.set_epoch(self._epoch)  # type: ignore[union-attr]
        self.seed = seed
        if seed is not None and hasattr(sampler, "seed"):
            sampler.seed = int(seed)  # type: ignore[union-attr]
        self.start_batch = int(start_batch)

    @property
    def epoch(self) -> int:
        """The epoch this sampler yields for: the inner sampler's when it tracks one."""
        inner = getattr(self.sampler, "epoch", None)
        return int(inner) if isinstance(inner, int) else self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch``; also forwards to the inner sampler when it has ``set_epoch``."""
        self._epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)  # type: ignore[union-attr]

    @property
    def clip_shapes(self) -> list[ClipShape]:
        """The shape of each short-cycle slot in this epoch."""
        return self.schedule.clip_shapes(self.epoch)

    @property
    def slot_batch_sizes(self) -> list[int]:
        """Per-device batch size of each short-cycle slot in this epoch."""
        return self.schedule.slot_batch_sizes(self.epoch, self.batch_size)

    def __iter__(self) -> Iterator[list[ClipKey]]:  # type: ignore[override]  # keys, not ints
        shapes = self.clip_shapes
        skip, self.start_batch = self.start_batch, 0
        indices = list(self.sampler)  # type: ignore[arg-type]
        position = 0
        for batch, (slot, size) in enumerate(slot_sequence(len(indices), self.slot_batch_sizes, self.drop_last)):
            if batch >= skip:
                shape = shapes[slot]
                yield [ClipKey(int(i), shape) for i in indices[position : position + size]]
            position += size

    def __len__(self) -> int:
        return batches_per_epoch(len(self.sampler), self.slot_batch_sizes, self.drop_last)  # type: ignore[arg-type]
