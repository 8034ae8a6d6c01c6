"""The one contract between the sampler and the datasets: ``(index, shape)`` keys.

Data flows one way: the schedule decides a shape, :class:`~lightning_multigrid.sampling.sampler.MultigridBatchSampler`
yields lists of :class:`ClipKey`, and a dataset decodes exactly ``key.shape`` for ``key.index``.
A dataset that honours keys sets ``accepts_clip_keys = True`` and still accepts a plain ``int``
(meaning its own base shape), so it keeps working with a stock ``DataLoader``.

Everything here is plain Python (no torch), picklable, hashable and cheap to send to loader workers.
"""

from __future__ import annotations

import bisect
import numbers
from typing import Any, NamedTuple

from lightning_multigrid.schedule.recipe import ClipShape

__all__ = [
    "KeyedView",
    "ClipKey",
    "unpack_key",
    "accepts_clip_keys",
    "keyed_dataset",
    "ACCEPTS_CLIP_KEYS",
]

#: Attribute a dataset sets to ``True`` to declare that ``__getitem__`` accepts :class:`ClipKey`.
ACCEPTS_CLIP_KEYS = "accepts_clip_keys"


class ClipKey(NamedTuple):
    """What the sampler yields and the dataset receives: decode ``index`` at ``shape``."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: key.index reads well
    shape: ClipShape


def unpack_key(key: Any, default_shape: ClipShape) -> tuple[int, ClipShape]:
    """Split a dataset key into ``(index, shape)``.

    Accepts a plain integer (numpy and 0-d torch integers included), meaning ``default_shape``,
    or a :class:`ClipKey` / ``(index, ClipShape)`` pair. Anything else raises ``TypeError`` saying
    what was received, instead of the reference's silent mis-unpacking.
    """
    if isinstance(key, tuple):
        if len(key) != 2 or not isinstance(key[1], ClipShape):
            raise TypeError(
                f"dataset key must be an int or an (index, ClipShape) pair, got a tuple {key!r}"
            )
        return _as_index(key[0]), key[1]
    return _as_index(key), default_shape


def _as_index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        # 0-d integer tensors are not numbers.Integral but support __index__.
        try:
            return int(value.__index__())
        except (AttributeError, TypeError):
            raise TypeError(f"dataset index must be an integer, got {type(value).__name__} {value!r}") from None
    return int(value)


def accepts_clip_keys(dataset: Any) -> bool:
    """Whether ``dataset`` accepts :class:`ClipKey` itself or through :func:`keyed_dataset`."""
    return keyed_dataset(dataset) is not None


def keyed_dataset(dataset: Any) -> Any:
    """A view of ``dataset`` whose ``__getitem__`` accepts :class:`ClipKey`, or ``None``.

    A dataset that declares ``accepts_clip_keys = True`` is returned as is. ``Subset`` (what
    ``random_split`` returns) and ``ConcatDataset`` index their inner datasets with the key itself,
    which breaks (``indices[ClipKey]``), so they are wrapped in views that map the key's index and
    forward the shape, recursively, when every dataset inside is key-aware.
    """
    if bool(getattr(dataset, ACCEPTS_CLIP_KEYS, False)):
        return dataset
    from torch.utils.data import ConcatDataset, Subset  # keys stay importable without torch

    if isinstance(dataset, Subset):
        inner = keyed_dataset(dataset.dataset)
        return None if inner is None else _KeyedSubset(dataset, inner)
    if isinstance(dataset, ConcatDataset):
        inners = [keyed_dataset(d) for d in dataset.datasets]
        return None if any(d is None for d in inners) else _KeyedConcat(dataset, inners)
    return None


class KeyedView:
    """Common part of the views that take ``(index, shape)`` keys for a wrapped dataset: length and
    the inner dataset's attributes (``base_shape``, ``slowfast_alpha``...)."""

    accepts_clip_keys = True

    def __init__(self, wrapped: Any, first_inner: Any) -> None:
        self.wrapped = wrapped
        self._first_inner = first_inner

    def __len__(self) -> int:
        return len(self.wrapped)

    def __getattr__(self, name: str) -> Any:
        # base_shape, slowfast_alpha, ... come from the (first) inner dataset.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._first_inner, name)

    @staticmethod
    def _split(key: Any) -> tuple[int, ClipShape | None]:
        """``(index, shape)``; the shape is ``None`` for a plain index (the inner's own default)."""
        return unpack_key(key, None)  # type: ignore[arg-type]

    @staticmethod
    def _join(index: int, shape: ClipShape | None) -> Any:
        return index if shape is None else ClipKey(index, shape)


class _KeyedSubset(KeyedView):
    def __init__(self, subset: Any, inner: Any) -> None:
        super().__init__(subset, inner)
        self.indices = subset.indices

    def __getitem__(self, key: Any) -> Any:
        index, shape = self._split(key)
        return self._first_inner[self._join(int(self.indices[index]), shape)]


class _KeyedConcat(KeyedView):
    def __init__(self, concat: Any, inners: list[Any]) -> None:
        super().__init__(concat, inners[0])
        self.inners = inners
        self.cumulative_sizes = list(concat.cumulative_sizes)

    def __getitem__(self, key: Any) -> Any:
        index, shape = self._split(key)
        if index < 0:
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        offset = index - (self.cumulative_sizes[which - 1] if which else 0)
        return self.inners[which][self._join(offset, shape)]
