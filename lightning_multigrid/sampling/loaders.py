"""Building the loaders multigrid needs from the user's train loader.

* :meth:`LoaderSource.train_loader`: the user's loader rebuilt around a
  :class:`~lightning_multigrid.sampling.sampler.MultigridBatchSampler` (same workers, collate, pinning...),
  with this package's own distributed split so ``use_distributed_sampler=False`` works; it lives
  for the whole fit (:class:`MultigridDataLoader`);
* :meth:`LoaderSource.precise_bn_loader`: batches at a stage's base shape, no short cycle, for precise BN.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lightning_multigrid.sampling.keys import ClipKey, keyed_dataset
from lightning_multigrid.sampling.sampler import MultigridBatchSampler, SeededRandomSampler
from lightning_multigrid.schedule.multigrid import MultigridSchedule

__all__ = ["MultigridDataLoader", "LoaderSource", "check_train_loader"]

# DataLoader attributes carried over when the train loader is rebuilt around the batch sampler.
_LOADER_ATTRIBUTES = (
    "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
    "generator", "persistent_workers", "pin_memory_device", "in_order",
)


class MultigridDataLoader(DataLoader):
    """A ``DataLoader`` around a :class:`MultigridBatchSampler` that lives for the whole fit.

    Its ``sampler`` is the batch sampler's index sampler (a ``DistributedSampler`` under DDP), so
    Lightning sees a distributed loader and does not re-instantiate it around its own sampler
    (which would drop this package's seed and rebuild the loader, and its workers, at each stage).
    Moving the batch sampler to another epoch changes ``len()``.

    With workers, batches come from one :class:`_EpochStream` for the whole fit: its workers load
    the next epoch's first batches while this epoch's last ones train, so an epoch start costs no
    loader latency (a plain loader, persistent workers or not, starts every epoch empty; with 36
    short multigrid epochs that was ~5 % of the demo's training time). Each epoch still yields
    exactly the batch sampler's batches for that epoch; the stream is rebuilt whenever the epoch
    asked for is not the one it has ready (a resume, or an epoch cut short by ``limit_train_batches``).
    """

    _stream: _EpochStream | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.num_workers == 0:
            return super().__iter__()
        sampler: MultigridBatchSampler = self.batch_sampler  # type: ignore[assignment]
        epoch, start = sampler.epoch, sampler.start_batch
        count = len(sampler) - start
        sampler.start_batch = 0  # a mid-epoch start applies to its own epoch only
        if self._stream is None or self._stream.position != (epoch, start):
            self.close()
            self._stream = _EpochStream(self, epoch, start)
        return self._stream.take(epoch, count)

    def close(self) -> None:
        """Stop the stream's workers (the next epoch starts a new stream)."""
        self._stream = None

    @property  # type: ignore[override]
    def sampler(self) -> Any:
        return self.batch_sampler.sampler  # type: ignore[union-attr]

    @sampler.setter
    def sampler(self, value: Any) -> None:
        # DataLoader.__init__ assigns its default sampler; the batch sampler's is the real one.
        pass


class _EpochStream:
    """One DataLoader iteration over this and every following epoch's batches, in order."""

    def __init__(self, loader: MultigridDataLoader, epoch: int, start: int) -> None:
        self.position = (epoch, start)  # the next batch it will deliver: (epoch, batch index)
        batches = _following_epochs(loader.batch_sampler, epoch, start)  # type: ignore[arg-type]
        kwargs = _loader_kwargs(loader)
        kwargs.pop("persistent_workers", None)  # the iteration itself lasts the fit
        self._iterator = iter(DataLoader(loader.dataset, batch_sampler=batches, **kwargs))  # type: ignore[arg-type]

    def take(self, epoch: int, count: int) -> Iterator[Any]:
        start = self.position[1]
        for done in range(1, count + 1):
            batch = next(self._iterator)
            # Set before the yield: Lightning stops at len() and never asks past an epoch's last batch.
            self.position = (epoch + 1, 0) if done == count else (epoch, start + done)
            yield batch


def _following_epochs(sampler: MultigridBatchSampler, epoch: int, start: int) -> Iterator[list[ClipKey]]:
    """The batches of ``epoch`` from batch ``start``, then of every later epoch, from copies of the
    samplers (Lightning keeps setting the epoch of the loader's own sampler)."""
    batches = copy.copy(sampler)
    batches.sampler = copy.copy(sampler.sampler)
    for e in range(epoch, sampler.schedule.max_epochs):
        batches.set_epoch(e)
        batches.start_batch = start if e == epoch else 0
        yield from batches


def check_train_loader(loader: Any) -> tuple[Any, int]:
    """The key-aware view of the loader's dataset (``None`` if it has none: tier 3 of
    :mod:`lightning_multigrid.adapters`) and its per-device batch size, or a clear error."""
    if not isinstance(loader, DataLoader):
        raise TypeError(
            "MultigridCallback needs a single torch DataLoader as the train loader, got "
            f"{type(loader).__name__}; combined or iterable loaders cannot take a batch sampler"
        )
    dataset = loader.dataset
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"MultigridCallback needs a map-style train dataset; {type(dataset).__name__} is iterable "
            "(pytorchvideo's video datasets are: use lightning_multigrid.data datasets instead)"
        )
    batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
    if not batch_size:
        raise ValueError("MultigridCallback: cannot tell the train loader's batch size")
    return keyed_dataset(dataset), int(batch_size)


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    kwargs = {name: getattr(loader, name) for name in _LOADER_ATTRIBUTES if hasattr(loader, name)}
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    else:
        kwargs.pop("persistent_workers", None)
    return kwargs


@dataclass(frozen=True)
class LoaderSource:
    """What this rank's loaders are built from: the user's loader (workers, collate, pinning...),
    its key-aware dataset view, the schedule, the seed and this rank's place among the devices."""

    template: DataLoader
    dataset: Any
    schedule: MultigridSchedule
    seed: int
    world_size: int = 1
    rank: int = 0

    def train_loader(self, batch_size: int, epoch: int, start_batch: int = 0) -> MultigridDataLoader:
        """The template rebuilt around a batch sampler for ``epoch``, with this package's own
        distributed split (so ``use_distributed_sampler=False`` works).

        The last partial batch is always dropped: it would be the only batch whose size the BN
        splits do not divide, and DDP ranks must agree on batch counts anyway.
        """
        inner: Any
        if self.world_size > 1:
            inner = DistributedSampler(self.dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                       seed=self.seed)
        else:
            inner = SeededRandomSampler(self.dataset, seed=self.seed)
        inner.set_epoch(epoch)
        batch_sampler = MultigridBatchSampler(inner, batch_size=batch_size, drop_last=True, schedule=self.schedule,
                                              epoch=epoch, seed=self.seed, start_batch=start_batch)
        return MultigridDataLoader(self.dataset, batch_sampler=batch_sampler, **_loader_kwargs(self.template))

    def precise_bn_loader(self, epoch: int, num_batches: int, shape_epoch: int | None = None) -> DataLoader | None:
        """Up to ``num_batches`` batches at the base shape and batch of ``shape_epoch`` (default
        ``epoch``; no short cycle); ``None`` if the dataset is smaller than one batch. The order is a
        pure function of ``(seed, epoch, rank)``."""
        schedule, dataset, template = self.schedule, self.dataset, self.template
        shape_epoch = epoch if shape_epoch is None else shape_epoch
        base_shape = schedule.base_shape(shape_epoch)
        batch_size = schedule.per_device_batch_size(shape_epoch, self.world_size)
        n = len(dataset)
        count = min(num_batches, n // batch_size)
        if count == 0:
            return None
        generator = torch.Generator().manual_seed(self.seed + 7919 * epoch + self.rank)
        order = torch.randperm(n, generator=generator).tolist()
        batches = [[ClipKey(i, base_shape) for i in order[b * batch_size : (b + 1) * batch_size]] for b in range(count)]
        kwargs = _loader_kwargs(template)
        kwargs.pop("persistent_workers", None)  # a one-off loader
        # Starting workers costs more than it saves for a few batches.
        kwargs["num_workers"] = min(template.num_workers, count // 2)
        if kwargs["num_workers"] == 0:
            kwargs.pop("prefetch_factor", None)
        return DataLoader(dataset, batch_sampler=batches, **kwargs)
