"""The interface shared by the decoding backends: what a probe reports, sizes, index checks, and
:class:`BaseVideoDecoder`, which each backend (and the frame-folder reader of :mod:`.frame_folders`)
extends with its own ``_decode``.

See :mod:`.decoders` for the backends and :mod:`.video_index` for what "frame i" means.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torchvision.transforms.v2.functional as TF

from .decode_errors import VideoDecodeError
from .video_index import FrameIndex, build_frame_index

__all__ = [
    "BaseVideoDecoder",
    "VideoDecoder",
    "VideoInfo",
    "check_decoded_shape",
    "check_indices",
    "expected_frame_size",
    "frames_are_indexed",
    "indexed_info",
    "log_fallback",
    "probe_video",
    "resize_tensor",
    "resized_size",
    "timestamps_agree",
]

logger = logging.getLogger("lightning_multigrid.data.decoders")
#: Seconds by which a backend's frame timestamp may differ from the index's (container rounding).
_TIMESTAMP_TOLERANCE = 1e-3


@dataclass(frozen=True)
class VideoInfo:
    """What :meth:`VideoDecoder.probe` reports about a video file.

    ``width`` and ``height`` are the display size (after rotation metadata); ``index`` is the
    :class:`~.frame_index.FrameIndex` the numbers come from (``None`` when built by hand).
    """

    num_frames: int
    width: int
    height: int
    fps: float
    index: FrameIndex | None = field(default=None, compare=False, repr=False)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count (FFmpeg's decoded frames), display size and frame rate of ``path``.

    Raises:
        VideoDecodeError: not a video, no video stream, no decodable frame (names file and reason).
    """
    index = build_frame_index(path)
    return VideoInfo(index.num_frames, index.width, index.height, index.fps, index=index)


def indexed_info(path: str, info: VideoInfo | None) -> VideoInfo:
    return info if info is not None and info.index is not None else probe_video(path)


def timestamps_agree(path: str, index: FrameIndex, count: int, timestamps: Callable[[], Sequence[float]]) -> bool:
    """Whether a backend numbers ``path``'s frames as the index does (count and timestamps)."""
    expected = index.timestamps
    if expected is None or index.rotation or count != index.num_frames:
        return False
    try:
        got = [float(t) for t in timestamps()]
    except Exception:  # noqa: BLE001 - a backend that cannot say is not trusted
        return False
    if len(got) != len(expected):
        return False
    return all(abs((g - got[0]) - e) <= _TIMESTAMP_TOLERANCE for g, e in zip(got, expected))


def frames_are_indexed(index: FrameIndex, indices: Sequence[int], seconds: Sequence[float]) -> bool:
    """Whether decoded frames carry the presentation times (seconds) the index gives ``indices``."""
    if index.pts is None or len(seconds) != len(indices):
        return False
    return all(abs(float(t) - index.pts[i] * index.time_base) <= _TIMESTAMP_TOLERANCE for i, t in zip(indices, seconds))


def log_fallback(backend: str, path: str, index: FrameIndex) -> None:
    why = (
        "rotated" if index.rotation else "truncated" if index.truncated
        else "frames without usable timestamps" if index.pts is None else "frame count or timestamps disagree"
    )
    logger.debug("%s: decoding with PyAV instead of %s (%s)", path, backend, why)


@runtime_checkable
class VideoDecoder(Protocol):
    """The interface every backend implements."""

    name: str

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        """Frame count, size and frame rate of ``path``; raises :class:`VideoDecodeError`."""
        ...

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        """Decode ``frame_indices`` (any order, repeats allowed) as ``uint8`` ``(T, C, H, W)``.

        Args:
            path: the video file.
            frame_indices: 0-based frame numbers in ``[0, num_frames)``.
            short_side: rescale so the shorter side is this many pixels (see :func:`resized_size`);
                ``None`` keeps the source size.
            info: the file's :class:`VideoInfo` if the caller already has it (saves a probe).
        """
        ...


class BaseVideoDecoder:
    """What every backend shares (a template for :class:`VideoDecoder`): :meth:`probe` indexes the
    file (:func:`probe_video`), and :meth:`decode` resolves the path and the file's
    :class:`VideoInfo`, checks the indices, then calls the backend's :meth:`_decode`.
    """

    name: str
    decode_time_resize: bool

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        """Frame count, size and frame rate of ``path``; raises :class:`VideoDecodeError`."""
        return probe_video(path)

    def decode(self, path: str | os.PathLike, frame_indices: Sequence[int], short_side: int | None = None,
               info: VideoInfo | None = None) -> torch.Tensor:
        """:meth:`VideoDecoder.decode` (the interface, documented there)."""
        path = os.fspath(path)
        info = self._info(path, info)
        indices = check_indices(path, frame_indices, info.num_frames)
        video = self._decode(path, indices, short_side, info)
        check_decoded_shape(path, self.name, video, len(indices), info, short_side)
        return video

    def _info(self, path: str, info: VideoInfo | None) -> VideoInfo:
        """The caller's ``info`` if this backend can use it, else a fresh probe."""
        return indexed_info(path, info)

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo) -> torch.Tensor:
        """Decode the checked ``indices`` of ``path`` as ``uint8`` ``(T, C, H, W)``."""
        raise NotImplementedError


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The ``(width, height)`` every backend produces for a requested ``short_side``.

    The short side is ``short_side`` rounded up to an even number and the long side keeps the
    aspect ratio, rounded to the nearest even number: decode-time scalers of h264 streams need
    even sizes, and using the same rule in every backend keeps their outputs identical in shape.
    The short side never ends below ``short_side``, so a crop of that size always fits.
    """
    if short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    short = short_side + (short_side % 2)
    if width <= height:
        long = max(2, 2 * round(height * short / width / 2))
        return short, max(long, short)
    long = max(2, 2 * round(width * short / height / 2))
    return max(long, short), short


def check_indices(path: str, frame_indices: Sequence[int], num_frames: int | None) -> list[int]:
    indices = [int(i) for i in frame_indices]
    if not indices:
        raise ValueError(f"{path}: no frame indices requested")
    if min(indices) < 0 or (num_frames is not None and max(indices) >= num_frames):
        raise VideoDecodeError(
            f"{path}: frame indices {min(indices)}..{max(indices)} outside [0, {num_frames})"
        )
    return indices


def expected_frame_size(info: VideoInfo, short_side: int | None) -> tuple[int, int]:
    """``(height, width)`` of every frame a backend must return for the probed ``info``."""
    width, height = (info.width, info.height) if short_side is None else resized_size(info.width, info.height, short_side)
    return height, width


def check_decoded_shape(path: str, backend: str, video: torch.Tensor, count: int, info: VideoInfo,
                        short_side: int | None) -> None:
    """Refuse, naming the file, frames whose count, layout or size differ from the probe's.

    A last line of defence: a backend whose frames do not match the probe (decord 0.6 returns
    4-channel rows for some widths) must never hand the dataset reinterpreted pixels.
    """
    expected = (count, 3, *expected_frame_size(info, short_side))
    if tuple(video.shape) != expected or video.dtype != torch.uint8:
        raise VideoDecodeError(
            f"{path}: {backend} returned frames of shape {tuple(video.shape)} ({video.dtype}), expected "
            f"{expected} (uint8) from the probe; decode this file with decoder='pyav' or re-encode it"
        )


def resize_tensor(video: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """Post-decode rescale for backends that cannot resize while decoding."""
    if short_side is None:
        return video
    height, width = video.shape[-2:]
    new_w, new_h = resized_size(width, height, short_side)
    if (new_w, new_h) == (width, height):
        return video
    return TF.resize(video, [new_h, new_w], antialias=True)
