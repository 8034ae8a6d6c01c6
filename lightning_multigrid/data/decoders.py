"""Video decoding backends behind one small interface, all numbering frames the same way.

Every backend answers two questions about a file: :meth:`VideoDecoder.probe` (how many frames, how
large in display orientation, how fast) and :meth:`VideoDecoder.decode` (exactly these frames,
optionally with the short side rescaled, as a ``uint8`` tensor ``(T, C, H, W)``).

**One rule for "frame i", one orientation, in every backend** (details in :mod:`.frame_index`):
frame ``i`` is the ``i``-th frame FFmpeg's decoder outputs (``ffmpeg -i F -fps_mode passthrough``),
in display orientation (rotation metadata applied, as players show it). :meth:`probe` indexes the
file with one PyAV demux pass in every backend, so all backends report the same frame count and
display size. A truncated file's damaged tail is not counted: its intact frames are.

**A wrong frame is worse than a refused video.** decord 0.6 returns wrong frames after seeks in
some AVIs, decodes a truncated file's garbage tail, and mishandles rotated files; torchcodec numbers
frames by its own scan. So a fast backend decodes a file only when its own frame count and
timestamps agree with the index (MP4/MKV/WebM with unique timestamps, intact, unrotated); every
other file (AVI, truncated, rotated, or any disagreement) is decoded by the PyAV reader of
:mod:`.frame_index`, which counts decoded frames. Files that cannot be decoded raise
:class:`VideoDecodeError` naming the file and the reason (not a video, audio only, no frames, ...).

Backends are chosen by name with :func:`get_decoder`:

* ``"decord"`` (default): opens a ``decord.VideoReader`` per call (never in ``__init__``: readers
  shared with forked loader workers deadlock), resizes while decoding when that shrinks the frame.
* ``"torchcodec"``: optional, imported lazily; exact seeking, one FFmpeg thread.
* ``"pyav"``: seeks by timestamp where timestamps identify frames, else decodes from the start and
  counts; rescales in the same swscale pass that converts to RGB.

Decoders hold no open files or native handles, so they pickle to loader workers for free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torchvision.transforms.v2.functional as TF

from .decode_errors import DecoderUnavailableError, VideoDecodeError
from .decode_errors import reason as _reason
from .frame_index import FrameIndex, build_frame_index, read_frames, rotate_to_display

__all__ = [
    "DEFAULT_DECODER",
    "VideoInfo",
    "VideoDecoder",
    "VideoDecodeError",
    "DecoderUnavailableError",
    "probe_video",
    "DecordDecoder",
    "TorchCodecDecoder",
    "PyAVDecoder",
    "decoder_names",
    "available_decoders",
    "get_decoder",
    "resized_size",
]

DEFAULT_DECODER = "decord"

logger = logging.getLogger(__name__)
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


def _indexed(path: str, info: VideoInfo | None) -> VideoInfo:
    return info if info is not None and info.index is not None else probe_video(path)


def _timestamps_agree(path: str, index: FrameIndex, count: int, timestamps: Callable[[], Sequence[float]]) -> bool:
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


def _log_fallback(backend: str, path: str, index: FrameIndex) -> None:
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


def _check_indices(path: str, frame_indices: Sequence[int], num_frames: int | None) -> list[int]:
    indices = [int(i) for i in frame_indices]
    if not indices:
        raise ValueError(f"{path}: no frame indices requested")
    if min(indices) < 0 or (num_frames is not None and max(indices) >= num_frames):
        raise VideoDecodeError(
            f"{path}: frame indices {min(indices)}..{max(indices)} outside [0, {num_frames})"
        )
    return indices


def _resize_tensor(video: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """Post-decode rescale for backends that cannot resize while decoding."""
    if short_side is None:
        return video
    height, width = video.shape[-2:]
    new_w, new_h = resized_size(width, height, short_side)
    if (new_w, new_h) == (width, height):
        return video
    return TF.resize(video, [new_h, new_w], antialias=True)


# --------------------------------------------------------------------------------------------
# decord
# --------------------------------------------------------------------------------------------
class DecordDecoder:
    """decord backend (the default), used only where it numbers frames as the index does.

    Args:
        num_threads: decoder threads per call; 1 is fastest inside loader workers, which already
            run in parallel (decord's 0 means "all cores").
        decode_time_resize: shrink frames while decoding (``False``: decode at the source size
            and resize afterwards, e.g. to compare the two).
    """

    name = "decord"

    def __init__(self, num_threads: int = 1, decode_time_resize: bool = True) -> None:
        self.num_threads = int(num_threads)
        self.decode_time_resize = decode_time_resize
        self._bad_widths: set[int] = set()
        self._fallback = PyAVDecoder(num_threads, decode_time_resize)
        _import_decord()  # fail at construction, not in the first worker

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        return probe_video(path)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        info = _indexed(path, info)
        index: FrameIndex = info.index  # type: ignore[assignment]
        indices = _check_indices(path, frame_indices, info.num_frames)
        if index.pts is None or index.rotation:
            _log_fallback(self.name, path, index)
            return self._fallback.decode(path, indices, short_side, info)
        size: tuple[int, int] | None = None
        # Decode-time scaling only pays off when it shrinks the frame.
        if short_side is not None and self.decode_time_resize and short_side < min(info.width, info.height):
            size = resized_size(info.width, info.height, short_side)
            if size[0] in self._bad_widths:
                size = None
        video, scaled = None, False
        if size is not None:
            try:
                video, scaled = self._read(path, indices, size, index), True
            except VideoDecodeError as exc:
                # decord 0.6 fails to copy some scaled widths (16, 24, 48, 72 px: a row-padding
                # bug); remember the width and scale after decoding instead.
                if "DECORDArrayCopyFromTo" not in str(exc.__cause__):
                    raise
                self._bad_widths.add(size[0])
        if not scaled:
            video = self._read(path, indices, None, index)
            video = None if video is None else _resize_tensor(video, short_side)
        if video is None:
            _log_fallback(self.name, path, index)
            return self._fallback.decode(path, indices, short_side, info)
        return video.contiguous()

    def _read(
        self, path: str, indices: list[int], size: tuple[int, int] | None, index: FrameIndex
    ) -> torch.Tensor | None:
        """decord's frames, or ``None`` when its frame numbering differs from the index's."""
        decord = _import_decord()
        width, height = size or (-1, -1)
        try:
            reader = decord.VideoReader(path, width=width, height=height, num_threads=self.num_threads)
            count = len(reader)
            if not _timestamps_agree(path, index, count, lambda: reader.get_frame_timestamp(list(range(count)))[:, 0]):
                return None
            # The bridge is process-global state that other libraries change (pytorchvideo sets
            # it to torch on import); set it for this call only and get a tensor without a copy.
            with decord.bridge.use_torch():
                frames = reader.get_batch(indices)
        except Exception as exc:
            raise VideoDecodeError(f"{path}: decord failed to decode ({_reason(exc)})") from exc
        if frames.shape[-1] != 3:
            return None  # decord returned something other than RGB (seen with rotated files)
        return frames.permute(0, 3, 1, 2)


def _import_decord():  # noqa: ANN202 - returns a module
    try:
        import decord
    except ImportError as exc:  # pragma: no cover - decord is a hard dependency
        raise DecoderUnavailableError(
            "decoder 'decord' is not installed: pip install decord (or use decoder='pyav')"
        ) from exc
    return decord


# --------------------------------------------------------------------------------------------
# torchcodec
# --------------------------------------------------------------------------------------------
class TorchCodecDecoder:
    """torchcodec backend (optional dependency, imported lazily).

    torchcodec needs the system FFmpeg libraries (Debian: ``libavcodec59 libavformat59
    libavutil57 libswscale6 ...``); both problems are reported at construction with the fix.
    Used only where its frame count and timestamps agree with the index (else PyAV).

    Args:
        num_threads: FFmpeg threads per call; its automatic count was several times slower on
            small CPUs, so the default is 1.
    """

    name = "torchcodec"

    def __init__(self, num_threads: int = 1, decode_time_resize: bool = False) -> None:
        self.num_threads = int(num_threads)
        # Frames are always resized after decoding here; the flag exists for a uniform interface.
        self.decode_time_resize = False
        self._fallback = PyAVDecoder(num_threads, decode_time_resize)
        _import_torchcodec()

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        return probe_video(path)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        info = _indexed(path, info)
        index: FrameIndex = info.index  # type: ignore[assignment]
        indices = _check_indices(path, frame_indices, info.num_frames)
        video = None if index.pts is None or index.rotation else self._read(path, indices, index)
        if video is None:
            _log_fallback(self.name, path, index)
            return self._fallback.decode(path, indices, short_side, info)
        return _resize_tensor(video, short_side).contiguous()

    def _read(self, path: str, indices: list[int], index: FrameIndex) -> torch.Tensor | None:
        decoders = _import_torchcodec()
        try:
            decoder = decoders.VideoDecoder(
                path, seek_mode="exact", num_ffmpeg_threads=self.num_threads, dimension_order="NCHW"
            )
            count = int(decoder.metadata.num_frames or 0)
            starts = lambda: decoder.get_frames_at(indices=list(range(count))).pts_seconds.tolist()  # noqa: E731
            if count != index.num_frames or not _timestamps_agree(path, index, count, starts):
                return None
            return decoder.get_frames_at(indices=indices).data
        except Exception as exc:
            raise VideoDecodeError(f"{path}: torchcodec failed to decode ({_reason(exc)})") from exc


def _import_torchcodec():  # noqa: ANN202 - returns a module
    try:
        import torchcodec.decoders as decoders
    except ImportError as exc:
        raise DecoderUnavailableError(
            "decoder 'torchcodec' is not installed: pip install 'lightning-multigrid[torchcodec]' "
            f"(or choose decoder='decord' or 'pyav'); import said: {_reason(exc)}"
        ) from exc
    except (OSError, RuntimeError) as exc:
        raise DecoderUnavailableError(
            "decoder 'torchcodec' is installed but cannot load the FFmpeg libraries it needs; "
            "install system FFmpeg (Debian: apt-get install libavcodec59 libavformat59 libavutil57 "
            f"libavdevice59 libavfilter8 libswscale6 libswresample4); loader said: {_reason(exc)}"
        ) from exc
    return decoders


# --------------------------------------------------------------------------------------------
# PyAV
# --------------------------------------------------------------------------------------------
class PyAVDecoder:
    """PyAV backend: the reference reader of :mod:`.frame_index` (counts decoded frames).

    Seeks to the keyframe before the first wanted frame where timestamps identify frames, else
    decodes from the start; stops after the last wanted frame; rotates to display orientation.

    Args:
        num_threads: codec threads per call.
        decode_time_resize: shrink frames in the RGB conversion (``False``: convert at the source
            size and resize afterwards).
    """

    name = "pyav"

    def __init__(self, num_threads: int = 1, decode_time_resize: bool = True) -> None:
        self.num_threads = int(num_threads)
        self.decode_time_resize = decode_time_resize
        _import_av()

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        return probe_video(path)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        info = _indexed(path, info)
        index: FrameIndex = info.index  # type: ignore[assignment]
        indices = _check_indices(path, frame_indices, info.num_frames)
        wanted = set(indices)
        shrink = self.decode_time_resize and short_side is not None and short_side < min(info.width, info.height)
        convert = _frame_converter(index, short_side if shrink else None)
        try:
            found = read_frames(path, index, wanted, convert, self.num_threads)
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(f"{path}: PyAV failed to decode ({_reason(exc)})") from exc
        missing = sorted(wanted - found.keys())
        if missing:
            raise VideoDecodeError(
                f"{path}: the decoder output no frame {missing[0]} ({len(found)} of {len(wanted)} "
                f"requested frames decoded; the file lists {info.num_frames}: damaged or truncated file?)"
            )
        video = torch.stack([found[i] for i in indices]).permute(0, 3, 1, 2)
        if short_side is not None and not shrink:
            video = _resize_tensor(video, short_side)  # swscale was not asked to
        return video.contiguous()


def _frame_converter(index: FrameIndex, short_side: int | None) -> Callable:
    """RGB conversion in display orientation, shrinking in the same swscale pass if asked.

    One reformatter serves all frames of a call: ``frame.to_ndarray(width=...)`` would build a
    new swscale context per frame, which costs more than decoding the frame.
    """
    from av.video.reformatter import VideoReformatter  # noqa: PLC0415 - av is imported lazily

    reformatter = VideoReformatter()
    width, height = index.width, index.height
    if short_side is not None:
        width, height = resized_size(width, height, short_side)
    if index.rotation in (90, 270):
        width, height = height, width  # the coded frame is the display frame turned by 90 degrees

    def convert(frame) -> torch.Tensor:  # noqa: ANN001
        rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24")
        return rotate_to_display(torch.from_numpy(rgb.to_ndarray()), index.rotation)

    return convert


def _import_av():  # noqa: ANN202 - returns a module
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a hard dependency
        raise DecoderUnavailableError("decoder 'pyav' is not installed: pip install av") from exc
    return av


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
_DECODERS: dict[str, type] = {
    "decord": DecordDecoder,
    "torchcodec": TorchCodecDecoder,
    "pyav": PyAVDecoder,
}


def decoder_names() -> list[str]:
    """All backend names :func:`get_decoder` knows, installed or not."""
    return list(_DECODERS)


def available_decoders() -> list[str]:
    """The backend names that can be constructed in this environment."""
    names = []
    for name in _DECODERS:
        try:
            get_decoder(name)
        except DecoderUnavailableError:
            continue
        names.append(name)
    return names


def get_decoder(name: str = DEFAULT_DECODER, num_threads: int = 1, decode_time_resize: bool = True) -> VideoDecoder:
    """Construct the decoding backend called ``name`` (see :func:`decoder_names`).

    Args:
        name: ``"decord"``, ``"torchcodec"`` or ``"pyav"``.
        num_threads: decoder threads per call (1 suits loader workers).
        decode_time_resize: let backends that can shrink frames while decoding do so
            (decord, pyav); torchcodec always resizes after decoding.

    Raises:
        ValueError: unknown name.
        DecoderUnavailableError: the backend's package or native libraries are missing.
    """
    try:
        cls = _DECODERS[name]
    except KeyError:
        raise ValueError(f"decoder: unknown backend {name!r}; choose one of {decoder_names()}") from None
    return cls(num_threads=num_threads, decode_time_resize=decode_time_resize)
