"""The videos of a dataset as a few contiguous arrays: :class:`RecordIndex`.

A list of 1M :class:`VideoRecord` objects costs ~280 MiB, and every forked loader worker that reads
them copies most of it: reading a Python object writes its reference count, so copy-on-write
duplicates every page the list touches (186 MiB per worker for 1M records, measured in
``benchmarks/scale.py``). Here the paths are one UTF-8 buffer plus offsets and the labels an
integer array (multi-label: values plus offsets), so reading a record writes nothing shared: the
workers keep sharing the parent's pages. A :class:`VideoRecord` is built on access for users.

Paths are stored relative to a common ``prefix`` (the dataset root) when they are under it, so the
root is stored once, not per record; a stored path starting with ``/`` is absolute.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

__all__ = ["RecordIndex", "VideoRecord", "root_prefix"]


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: its path and a class id (or a tuple of class ids for multi-label)."""

    path: str
    label: int | tuple[int, ...]


def root_prefix(root: str | os.PathLike) -> str:
    """The string ``str(Path(root) / p)`` starts with for a normalised relative ``p``."""
    text = str(Path(root))
    if text == ".":
        return ""
    return text if text.endswith(os.sep) else text + os.sep


def _stored(path: str, prefix: str) -> str | None:
    """``path`` as stored under ``prefix``: relative to it, absolute in full, ``None`` if neither."""
    rest = path[len(prefix):]
    if path.startswith(prefix) and not rest.startswith(os.sep):
        return rest
    return path if path.startswith(os.sep) else None


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


class RecordIndex(Sequence[VideoRecord]):
    """Video records in contiguous arrays (see the module docstring); a read-only sequence.

    Args:
        paths: the stored paths, UTF-8, concatenated (``uint8``).
        offsets: ``int64``, one more than the records: path ``i`` is ``paths[offsets[i]:offsets[i+1]]``.
        labels: ``int64`` class ids, one per record, or the concatenated ids of multi-label records.
        label_offsets: ``None`` for one label per record; else like ``offsets``, into ``labels``.
        prefix: prepended to every stored path that is not absolute.
    """

    def __init__(self, paths: np.ndarray, offsets: np.ndarray, labels: np.ndarray,
                 label_offsets: np.ndarray | None = None, prefix: str = "") -> None:
        self._paths = np.ascontiguousarray(paths, dtype=np.uint8)
        self._offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self._labels = np.ascontiguousarray(labels, dtype=np.int64)
        self._label_offsets = None if label_offsets is None else np.ascontiguousarray(label_offsets, dtype=np.int64)
        self.prefix = prefix
        count = len(self._offsets) - 1
        label_count = count if self._label_offsets is None else len(self._label_offsets) - 1
        if count < 0 or label_count != count:
            raise ValueError(f"RecordIndex: {count} paths but {label_count} labels")
        self._paths.flags.writeable = False  # shared by forked workers: nobody may write
        self._labels.flags.writeable = False

    # ------------------------------------------------------------------------------------------
    @classmethod
    def of(cls, records: Iterable[VideoRecord] | RecordIndex, prefix: str = "") -> RecordIndex:
        """``records`` itself if it is an index, else an index of them (stored under ``prefix``)."""
        if isinstance(records, RecordIndex):
            return records
        items = list(records)
        return cls.from_paths([r.path for r in items], [r.label for r in items], prefix)

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike], labels: Sequence[int | tuple[int, ...]], prefix: str = "") -> RecordIndex:
        """An index of full ``paths`` and their labels; tuples make it multi-label (ints become 1-tuples)."""
        full = [str(os.fspath(p)) for p in paths]  # a record may hold a Path
        maybe = [_stored(p, prefix) for p in full]
        stored = [s for s in maybe if s is not None]
        if len(stored) < len(maybe):
            prefix, stored = "", full  # a relative path outside the prefix: store all in full
        encoded = [s.encode("utf-8", "surrogateescape") for s in stored]
        offsets = _offsets(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
        buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if all(not isinstance(lab, tuple) for lab in labels):
            return cls(buffer, offsets, np.asarray(labels, dtype=np.int64), None, prefix)
        groups = [lab if isinstance(lab, tuple) else (lab,) for lab in labels]
        values = np.asarray([int(c) for g in groups for c in g], dtype=np.int64)
        return cls(buffer, offsets, values, _offsets(np.asarray([len(g) for g in groups], dtype=np.int64)), prefix)

    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> VideoRecord: ...
    @overload
    def __getitem__(self, i: slice) -> RecordIndex: ...
    def __getitem__(self, i: int | slice) -> VideoRecord | RecordIndex:
        if isinstance(i, slice):
            return self.select(np.arange(len(self))[i])
        return VideoRecord(self.path(i), self.label(i))

    def __iter__(self) -> Iterator[VideoRecord]:
        for i in range(len(self)):
            yield self[i]

    def _position(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for {n} records")
        return i + n if i < 0 else int(i)

    def path(self, i: int) -> str:
        """The full path of record ``i``."""
        i = self._position(i)
        text = self._paths[self._offsets[i]:self._offsets[i + 1]].tobytes().decode("utf-8", "surrogateescape")
        return text if not self.prefix or text.startswith(os.sep) else self.prefix + text

    def label(self, i: int) -> int | tuple[int, ...]:
        """The class id of record ``i`` (a tuple of ids in a multi-label index)."""
        i = self._position(i)
        if self._label_offsets is None:
            return int(self._labels[i])
        return tuple(int(c) for c in self._labels[self._label_offsets[i]:self._label_offsets[i + 1]])

    def paths(self) -> Iterator[str]:
        return (self.path(i) for i in range(len(self)))

    @property
    def multi_label(self) -> bool:
        return self._label_offsets is not None

    @property
    def label_values(self) -> np.ndarray:
        """Every class id of every record (read-only), for checks over the whole dataset."""
        return self._labels

    def record_of_label_value(self, position: int) -> int:
        """The record holding ``label_values[position]``."""
        if self._label_offsets is None:
            return position
        return int(np.searchsorted(self._label_offsets, position, side="right") - 1)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        extra = 0 if self._label_offsets is None else self._label_offsets.nbytes
        return self._paths.nbytes + self._offsets.nbytes + self._labels.nbytes + extra

    # ------------------------------------------------------------------------------------------
    def select(self, which: np.ndarray) -> RecordIndex:
        """The records at the integer positions (or where the boolean mask is true) ``which``, in order."""
        which = np.asarray(which)
        positions = np.flatnonzero(which) if which.dtype == bool else which.astype(np.int64)
        starts, ends = self._offsets[positions], self._offsets[positions + 1]
        paths = self.gather(self._paths, starts, ends)
        if self._label_offsets is None:
            return RecordIndex(paths, _offsets(ends - starts), self._labels[positions], None, self.prefix)
        lstarts, lends = self._label_offsets[positions], self._label_offsets[positions + 1]
        return RecordIndex(paths, _offsets(ends - starts), self.gather(self._labels, lstarts, lends),
                           _offsets(lends - lstarts), self.prefix)

    @staticmethod
    def gather(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``concatenate([values[s:e] for s, e in zip(starts, ends)])`` without a Python loop."""
        lengths = ends - starts
        if len(starts) < 2 or bool(np.all(starts[1:] >= ends[:-1])):
            # Ranges in order: one byte mask (a bool per value, not an int64 position per value),
            # alternating runs of skipped and kept values.
            bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
            bounds[0], bounds[1:-1:2], bounds[2:-1:2], bounds[-1] = 0, starts, ends, len(values)
            keep = np.zeros(len(bounds) - 1, dtype=bool)
            keep[1::2] = True
            return values[np.repeat(keep, np.diff(bounds))]
        # Position k of the output reads values[starts[r] + (k - out_start[r])] for its range r.
        step = np.repeat(starts - _offsets(lengths)[:-1], lengths)
        return values[step + np.arange(int(lengths.sum()), dtype=np.int64)]

    def __repr__(self) -> str:
        kind = "multi-label" if self.multi_label else "single-label"
        return f"RecordIndex({len(self)} {kind} records, {self.nbytes / 2**20:.1f} MiB, prefix={self.prefix!r})"
