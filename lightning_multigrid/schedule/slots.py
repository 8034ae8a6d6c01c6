"""Per-iteration slot arithmetic: which short-cycle slot and batch size each batch of an epoch has.

:func:`slot_sequence` is the one definition of an epoch's batches that the sampler iterates and
counts (:func:`batches_per_epoch`, in O(1)); :func:`samples_per_rank` is the one rule for how many
clips each device sees. Functions of batch sizes only: the schedule
(:class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`) says which sizes and shapes an
epoch has. Pure Python: no torch import.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["batches_per_epoch", "samples_per_rank", "slot_sequence"]


def slot_sequence(num_indices: int, slot_batch_sizes: Sequence[int], drop_last: bool) -> list[tuple[int, int]]:
    """The ``(slot, batch size)`` of every batch an epoch of ``num_indices`` indices yields.

    Slots rotate ``0, 1, 2, 0, ...`` from the first batch of the epoch; a last partial batch is
    kept at its slot (``drop_last=False``) or dropped (``drop_last=True``). This is the single
    definition that both the sampler's iteration and its ``len()`` follow, so they cannot disagree.
    """
    if any(b < 1 for b in slot_batch_sizes):
        raise ValueError(f"slot batch sizes must be positive, got {list(slot_batch_sizes)}")
    out: list[tuple[int, int]] = []
    remaining, slot = num_indices, 0
    n_slots = len(slot_batch_sizes)
    cycle = sum(slot_batch_sizes)
    # Whole cycles in one step, then the tail slot by slot.
    full_cycles, remaining = divmod(remaining, cycle)
    out.extend((i % n_slots, slot_batch_sizes[i % n_slots]) for i in range(full_cycles * n_slots))
    while remaining > 0:
        size = slot_batch_sizes[slot]
        if remaining >= size:
            out.append((slot, size))
        elif not drop_last:
            out.append((slot, remaining))
        remaining -= size
        slot = (slot + 1) % n_slots
    return out


def batches_per_epoch(num_indices: int, slot_batch_sizes: Sequence[int], drop_last: bool) -> int:
    """Exact number of batches :func:`slot_sequence` yields, in O(1)."""
    cycle = sum(slot_batch_sizes)
    full_cycles, remaining = divmod(num_indices, cycle)
    count = full_cycles * len(slot_batch_sizes)
    for size in slot_batch_sizes:
        if remaining <= 0:
            break
        if remaining >= size or not drop_last:
            count += 1
        remaining -= size
    return count


def samples_per_rank(num_samples: int, world_size: int) -> int:
    """Clips each rank gets from a ``DistributedSampler``-style split: ``ceil(num_samples / world_size)``."""
    return -(-num_samples // world_size)
