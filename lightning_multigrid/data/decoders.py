"""Video decoding backends behind one small interface.

Every backend answers two questions about a file: :meth:`VideoDecoder.probe` (how many frames, how
large, how fast) and :meth:`VideoDecoder.decode` (exactly these frames, optionally with the short side
rescaled, as a ``uint8`` tensor ``(T, C, H, W)``). Only the requested frames are decoded (plus what the
codec needs to reach them). Backends are chosen by name with :func:`get_decoder`:

* ``"decord"`` (default): opens a ``decord.VideoReader`` per call (never in ``__init__``: readers
  shared with forked loader workers deadlock), resizes while decoding when that shrinks the frame.
* ``"torchcodec"``: optional, imported lazily; exact seeking, one FFmpeg thread.
* ``"pyav"``: PyAV; seeks to the keyframe before the first needed frame and decodes only as far as
  the last one; rescales in the same swscale pass that converts to RGB.

Decoders hold no open files or native handles, so they pickle to loader workers for free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol, runtime_checkable

import torch
import torchvision.transforms.v2.functional as TF

__all__ = [
    "DEFAULT_DECODER",
    "VideoInfo",
    "VideoDecoder",
    "VideoDecodeError",
    "DecoderUnavailableError",
    "DecordDecoder",
    "TorchCodecDecoder",
    "PyAVDecoder",
    "decoder_names",
    "available_decoders",
    "get_decoder",
    "resized_size",
]

DEFAULT_DECODER = "decord"


@dataclass(frozen=True)
class VideoInfo:
    """What :meth:`VideoDecoder.probe` reports about a video file."""

    num_frames: int
    width: int
    height: int
    fps: float


class VideoDecodeError(RuntimeError):
    """A file could not be decoded (missing, empty, truncated, not a video, too few frames)."""


class DecoderUnavailableError(RuntimeError):
    """The requested backend is not installed or cannot load its native libraries."""


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
    """decord backend (the default).

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
        _import_decord()  # fail at construction, not in the first worker

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        path = os.fspath(path)
        decord = _import_decord()
        try:
            reader = decord.VideoReader(path, num_threads=self.num_threads)
            num_frames = len(reader)
            fps = float(reader.get_avg_fps())
            # decord has no size accessor; frame 0 is a keyframe, so this decodes one frame.
            with decord.bridge.use_torch():
                height, width = reader[0].shape[:2]
        except Exception as exc:  # decord raises RuntimeError, DECORDError, AssertionError...
            raise VideoDecodeError(f"{path}: decord could not open the video ({_reason(exc)})") from exc
        return VideoInfo(int(num_frames), int(width), int(height), fps)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        indices = _check_indices(path, frame_indices, info.num_frames if info else None)
        size: tuple[int, int] | None = None
        if short_side is not None:
            info = info or self.probe(path)
            # Decode-time scaling only pays off when it shrinks the frame.
            if self.decode_time_resize and short_side < min(info.width, info.height):
                size = resized_size(info.width, info.height, short_side)
                if size[0] in self._bad_widths:
                    size = None
        if size is not None:
            try:
                return self._read(path, indices, size).contiguous()
            except VideoDecodeError as exc:
                # decord 0.6 fails to copy some scaled widths (16, 24, 48, 72 px: a row-padding
                # bug); remember the width and scale after decoding instead.
                if "DECORDArrayCopyFromTo" not in str(exc.__cause__):
                    raise
                self._bad_widths.add(size[0])
        return _resize_tensor(self._read(path, indices, None), short_side).contiguous()

    def _read(self, path: str, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        decord = _import_decord()
        width, height = size or (-1, -1)
        try:
            reader = decord.VideoReader(path, width=width, height=height, num_threads=self.num_threads)
            if max(indices) >= len(reader):
                raise VideoDecodeError(f"{path}: frame {max(indices)} requested, video has {len(reader)}")
            # The bridge is process-global state that other libraries change (pytorchvideo sets
            # it to torch on import); set it for this call only and get a tensor without a copy.
            with decord.bridge.use_torch():
                frames = reader.get_batch(indices)
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(f"{path}: decord failed to decode ({_reason(exc)})") from exc
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

    Args:
        num_threads: FFmpeg threads per call; its automatic count was several times slower on
            small CPUs, so the default is 1.
    """

    name = "torchcodec"

    def __init__(self, num_threads: int = 1, decode_time_resize: bool = False) -> None:
        self.num_threads = int(num_threads)
        # Frames are always resized after decoding here; the flag exists for a uniform interface.
        self.decode_time_resize = False
        _import_torchcodec()

    def _open(self, path: str):  # noqa: ANN202 - torchcodec.decoders.VideoDecoder
        decoders = _import_torchcodec()
        try:
            return decoders.VideoDecoder(
                path, seek_mode="exact", num_ffmpeg_threads=self.num_threads, dimension_order="NCHW"
            )
        except Exception as exc:
            raise VideoDecodeError(f"{path}: torchcodec could not open the video ({_reason(exc)})") from exc

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        path = os.fspath(path)
        meta = self._open(path).metadata
        num_frames = meta.num_frames
        if not num_frames:
            raise VideoDecodeError(f"{path}: torchcodec found no frames")
        fps = float(meta.average_fps or 0.0)
        return VideoInfo(int(num_frames), int(meta.width), int(meta.height), fps)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        indices = _check_indices(path, frame_indices, info.num_frames if info else None)
        decoder = self._open(path)
        try:
            video = decoder.get_frames_at(indices=indices).data
        except Exception as exc:
            raise VideoDecodeError(f"{path}: torchcodec failed to decode ({_reason(exc)})") from exc
        return _resize_tensor(video, short_side).contiguous()


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
    """PyAV backend: seek to the keyframe before the first needed frame, stop after the last.

    Frame numbers are derived from presentation timestamps (``round((pts - start) * fps)``), the
    same numbering decord and torchcodec use for constant-frame-rate video.

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
        path = os.fspath(path)
        av = _import_av()
        try:
            with av.open(path) as container:
                stream = _video_stream(container, path)
                fps = _stream_fps(stream)
                num_frames = int(stream.frames or 0)
                if num_frames <= 0:
                    # Some containers (webm) carry no frame count: count packets (demux only).
                    num_frames = sum(
                        1 for packet in container.demux(stream) if packet.size and packet.pts is not None
                    )
                width, height = stream.codec_context.width, stream.codec_context.height
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(f"{path}: PyAV could not open the video ({_reason(exc)})") from exc
        if num_frames <= 0 or width <= 0 or height <= 0:
            raise VideoDecodeError(f"{path}: PyAV found no decodable video frames")
        return VideoInfo(num_frames, int(width), int(height), fps)

    def decode(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int],
        short_side: int | None = None,
        info: VideoInfo | None = None,
    ) -> torch.Tensor:
        path = os.fspath(path)
        av = _import_av()
        indices = _check_indices(path, frame_indices, info.num_frames if info else None)
        wanted = set(indices)
        first, last = min(wanted), max(wanted)
        found: dict[int, torch.Tensor] = {}
        try:
            with av.open(path) as container:
                stream = _video_stream(container, path)
                stream.thread_count = self.num_threads
                width, height = stream.codec_context.width, stream.codec_context.height
                convert = _frame_converter(width, height, short_side, self.decode_time_resize)
                fps = _stream_fps(stream)
                start = stream.start_time or 0
                time_base = stream.time_base
                if first > 0 and time_base:
                    target = start + int(Fraction(first) / Fraction(fps).limit_denominator(1001000) / time_base)
                    container.seek(max(target, start), stream=stream, backward=True, any_frame=False)
                found = self._collect(container, stream, wanted, last, start, time_base, fps, convert)
                if first not in found and first > 0:
                    # The seek overshot (broken index): start again from the beginning.
                    container.seek(start, stream=stream, backward=True, any_frame=False)
                    found = self._collect(container, stream, wanted, last, start, time_base, fps, convert)
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(f"{path}: PyAV failed to decode ({_reason(exc)})") from exc
        missing = sorted(wanted - found.keys())
        if missing:
            raise VideoDecodeError(
                f"{path}: video ended before frame {missing[0]} ({len(found)} of {len(wanted)} "
                "requested frames decoded; truncated file?)"
            )
        video = torch.stack([found[i] for i in indices]).permute(0, 3, 1, 2)
        if short_side is not None and (short_side >= min(width, height) or not self.decode_time_resize):
            video = _resize_tensor(video, short_side)  # swscale was not asked to
        return video.contiguous()

    @staticmethod
    def _collect(container, stream, wanted, last, start, time_base, fps, convert) -> dict[int, torch.Tensor]:  # noqa: ANN001
        found: dict[int, torch.Tensor] = {}
        counter = 0
        for frame in container.decode(stream):
            if frame.pts is None or not time_base:
                index = counter  # no timestamps: count (only valid when decoding from the start)
            else:
                index = round(float((frame.pts - start) * time_base) * fps)
            counter += 1
            if index in wanted and index not in found:
                found[index] = convert(frame)
            if index >= last:
                break
        return found


def _frame_converter(width: int, height: int, short_side: int | None, shrink: bool = True) -> Callable:
    """RGB conversion, shrinking in the same swscale pass when that is asked for.

    One reformatter serves all frames of a call: ``frame.to_ndarray(width=...)`` would build a
    new swscale context per frame, which costs more than decoding the frame.
    """
    from av.video.reformatter import VideoReformatter  # noqa: PLC0415 - av is imported lazily

    reformatter = VideoReformatter()
    new_w, new_h = width, height
    if shrink and short_side is not None and short_side < min(width, height):
        new_w, new_h = resized_size(width, height, short_side)

    def convert(frame) -> torch.Tensor:  # noqa: ANN001
        rgb = reformatter.reformat(frame, width=new_w, height=new_h, format="rgb24")
        return torch.from_numpy(rgb.to_ndarray())

    return convert


def _video_stream(container, path: str):  # noqa: ANN001, ANN202
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: no video stream")
    return container.streams.video[0]


def _stream_fps(stream) -> float:  # noqa: ANN001
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return fps if math.isfinite(fps) and fps > 0 else 30.0


def _import_av():  # noqa: ANN202 - returns a module
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a hard dependency
        raise DecoderUnavailableError("decoder 'pyav' is not installed: pip install av") from exc
    return av


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip().rstrip(":")


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
