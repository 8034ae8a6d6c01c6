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
from collections.abc import Callable

import torch

from .decode_errors import DecoderUnavailableError, VideoDecodeError
from .decode_errors import reason as _reason
from .decoder_base import (
    BaseVideoDecoder,
    VideoDecoder,
    VideoInfo,
    frames_are_indexed,
    log_fallback,
    resize_tensor,
    resized_size,
    timestamps_agree,
)
from .video_index import FrameIndex, import_av, one_swscale_thread, read_frames, rotate_to_display

__all__ = [
    "DEFAULT_DECODER",
    "DecordDecoder",
    "TorchCodecDecoder",
    "PyAVDecoder",
    "decoder_names",
    "available_decoders",
    "get_decoder",
]

DEFAULT_DECODER = "decord"

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# decord
# --------------------------------------------------------------------------------------------
class DecordDecoder(BaseVideoDecoder):
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

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo) -> torch.Tensor:
        index: FrameIndex = info.index  # type: ignore[assignment]
        if index.pts is None or index.rotation:
            log_fallback(self.name, path, index)
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
            except _WrongLayout:
                # decord 0.6 returns 4- or 6-channel rows for some widths (16, 24, 48, 72 px);
                # remember the width and scale after decoding instead.
                self._bad_widths.add(size[0])
        if not scaled and info.width not in self._bad_widths:
            try:
                video = self._read(path, indices, None, index)
            except _WrongLayout:  # the same bug at the source width (a 72x128 portrait clip)
                self._bad_widths.add(info.width)
                video = None
            video = None if video is None else resize_tensor(video, short_side)
        if video is None:
            log_fallback(self.name, path, index)
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
            if not timestamps_agree(path, index, count, lambda: reader.get_frame_timestamp(list(range(count)))[:, 0]):
                return None
            # The bridge is process-global state that other libraries change (pytorchvideo sets
            # it to torch on import); set it for this call only and get a tensor without a copy.
            with decord.bridge.use_torch():
                frames = reader.get_batch(indices)
        except Exception as exc:
            if "DECORDArrayCopyFromTo" in str(exc):  # frames not of 3 bytes per pixel: see _WrongLayout
                raise _WrongLayout(path) from exc
            raise VideoDecodeError(f"{path}: decord failed to decode ({_reason(exc)})") from exc
        expected = (len(indices), height, width, 3) if size else (len(indices), index.height, index.width, 3)
        if tuple(frames.shape) != expected:
            logger.info("%s: decord returned frames of shape %s, expected %s; decoding with PyAV",
                        path, tuple(frames.shape), expected)
            return None  # not the probe's RGB frames (seen with rotated files and odd widths)
        return frames.permute(0, 3, 1, 2)


class _WrongLayout(Exception):
    """decord's frames are not ``(H, W, 3)`` rows: for some frame widths (16, 24, 48, 72 px,
    e.g. a 72x128 portrait clip) decord 0.6 decodes 4 or 6 bytes per pixel, which its batch copy
    refuses and its single-frame reads return as ``(H, W, 4)`` arrays: never pixels to use."""


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
class TorchCodecDecoder(BaseVideoDecoder):
    """torchcodec backend (optional dependency, imported lazily).

    torchcodec needs the system FFmpeg libraries (Debian: ``libavcodec59 libavformat59
    libavutil57 libswscale6 ...``); both problems are reported at construction with the fix.
    Used only where its frame count agrees with the index and every returned frame carries the
    timestamp the index gives that frame number (else PyAV decodes). Not exercised by the tests
    where torchcodec is not installed.

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

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo) -> torch.Tensor:
        index: FrameIndex = info.index  # type: ignore[assignment]
        video = None if index.pts is None or index.rotation else self._read(path, indices, index)
        if video is None:
            log_fallback(self.name, path, index)
            return self._fallback.decode(path, indices, short_side, info)
        return resize_tensor(video, short_side).contiguous()

    def _read(self, path: str, indices: list[int], index: FrameIndex) -> torch.Tensor | None:
        decoders = _import_torchcodec()
        try:
            decoder = decoders.VideoDecoder(
                path, seek_mode="exact", num_ffmpeg_threads=self.num_threads, dimension_order="NCHW"
            )
            if int(decoder.metadata.num_frames or 0) != index.num_frames:
                return None
            frames = decoder.get_frames_at(indices=indices)
            # Each returned frame must carry the timestamp of the frame the index numbers so.
            return frames.data if frames_are_indexed(index, indices, frames.pts_seconds.tolist()) else None
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
class PyAVDecoder(BaseVideoDecoder):
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
        import_av()

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo) -> torch.Tensor:
        index: FrameIndex = info.index  # type: ignore[assignment]
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
            video = resize_tensor(video, short_side)  # swscale was not asked to
        return video.contiguous()


def _frame_converter(index: FrameIndex, short_side: int | None) -> Callable:
    """RGB conversion in display orientation, shrinking in the same swscale pass if asked.

    One reformatter serves all frames of a call: ``frame.to_ndarray(width=...)`` would build a
    new swscale context per frame, which costs more than decoding the frame.
    """
    from av.video.reformatter import VideoReformatter  # noqa: PLC0415 - av is imported lazily

    reformatter = VideoReformatter()
    threads = one_swscale_thread()  # one decode per loader worker: swscale threads only add cost
    width, height = index.width, index.height
    if short_side is not None:
        width, height = resized_size(width, height, short_side)
    if index.rotation in (90, 270):
        width, height = height, width  # the coded frame is the display frame turned by 90 degrees

    def convert(frame) -> torch.Tensor:  # noqa: ANN001
        rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24", **threads)
        return rotate_to_display(torch.from_numpy(rgb.to_ndarray()), index.rotation)

    return convert


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
