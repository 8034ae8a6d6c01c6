"""What "frame i" of a video file means, and a PyAV reader that honours it.

**The rule.** Frame ``i`` is the ``i``-th frame FFmpeg's decoder outputs for the file's main video
stream, the frame ``ffmpeg -i F -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -`` writes
``i``-th: every decoded frame once, in presentation order, whatever the timestamps say. Frame
rates, ``round(pts * fps)`` and the container's frame count play no part, because they are wrong
for variable-frame-rate files, jittery timestamps, AVIs with B-frames (AVI has no presentation
timestamps) and AVIs whose index lists empty "dropped frame" entries (the header then counts them).

Frames are shown in display orientation, as players and ``ffmpeg`` (auto-rotation on) show them:
a display-matrix rotation of 90/180/270 degrees is applied, so a portrait phone clip is portrait.

**Counting.** :func:`build_frame_index` demuxes the file once (no decoding beyond the first frame):
the frame count is the number of non-empty video packets that are not marked "discard" (frames an
edit list hides, e.g. before the start of a clip cut with ``ffmpeg -ss ... -c copy``), which is
what the decoder outputs for well-formed files. A truncated file (a packet flagged corrupt, or a read error) is counted by
decoding instead, and only up to the last frame the decoder outputs *before* the first damaged
packet: those frames are exactly FFmpeg's first frames, while what follows is the garbage tail,
which is refused rather than returned.

**Seeking.** Where every packet carries a unique presentation timestamp (MP4, MKV, WebM, not AVI),
frame ``i`` is the packet with the ``i``-th smallest timestamp, so :func:`read_frames` can seek to
the keyframe before the first wanted frame and name decoded frames by their timestamp. Any
surprise (an unknown or non-increasing timestamp, a missed frame) falls back to decoding from the
start and counting, which is always right.
"""

from __future__ import annotations

import bisect
import functools
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .decode_errors import DecoderUnavailableError, VideoDecodeError, reason

__all__ = ["FrameIndex", "FrameTimes", "build_frame_index", "import_av", "one_swscale_thread", "open_video", "read_frames", "rotate_to_display"]

#: Formats whose packet timestamps are decode-order counters, not presentation times.
_NO_PRESENTATION_TIMESTAMPS = ("avi",)


@dataclass(frozen=True)
class FrameTimes:
    """Presentation timestamps of frames ``0..count-1`` (increasing), stored compactly.

    Probes are cached per video and per loader worker, so a constant-rate stream is kept as
    ``first + i * step`` (three numbers) and only an irregular one as an int64 array.
    """

    first: int
    step: int
    count: int
    irregular: array | None = None

    @classmethod
    def from_sorted(cls, pts: list[int]) -> FrameTimes:
        step = pts[1] - pts[0] if len(pts) > 1 else 1
        if all(p == pts[0] + i * step for i, p in enumerate(pts)):
            return cls(pts[0], step, len(pts))
        return cls(pts[0], 0, len(pts), array("q", pts))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return self.irregular[i] if self.irregular is not None else self.first + i * self.step

    def number_of(self, pts: int) -> int | None:
        """The frame number whose timestamp is ``pts``, or ``None``."""
        if self.irregular is not None:
            i = bisect.bisect_left(self.irregular, pts)
            return i if i < self.count and self.irregular[i] == pts else None
        i, rest = divmod(pts - self.first, self.step)
        return i if rest == 0 and 0 <= i < self.count else None


@dataclass(frozen=True)
class FrameIndex:
    """One demux pass over a video stream (see the module docstring for the rules).

    Attributes:
        num_frames: frames the decoder outputs (see "Counting").
        width, height: display size (after rotation).
        fps: average frame rate (informational only; never used to number frames).
        rotation: counter-clockwise display rotation in degrees (0, 90, 180 or 270).
        pts: presentation timestamps of frames ``0..num_frames-1`` (sorted) when frames can be
            found by timestamp, else ``None``.
        keyframe_pts: sorted timestamps of keyframes (seek targets), when ``pts`` is set.
        time_base: seconds per timestamp unit.
        truncated: the file ends in a damaged packet or a read error (count made by decoding).
        container_frames: the frame count the container header states (0 if none).
        format_name: the demuxer's name (``"avi"``, ``"mov,mp4,m4a,3gp,3g2,mj2"``, ...).
    """

    num_frames: int
    width: int
    height: int
    fps: float
    rotation: int = 0
    pts: FrameTimes | None = None
    keyframe_pts: array = field(default_factory=lambda: array("q"))
    time_base: float = 0.0
    truncated: bool = False
    container_frames: int = 0
    format_name: str = ""

    @property
    def timestamps(self) -> list[float] | None:
        """Presentation times in seconds, relative to frame 0, when known."""
        if self.pts is None:
            return None
        return [(self.pts[i] - self.pts.first) * self.time_base for i in range(len(self.pts))]


def import_av():  # noqa: ANN202 - returns a module
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a hard dependency
        raise DecoderUnavailableError("decoder 'pyav' is not installed: pip install av") from exc
    return av


@functools.cache
def one_swscale_thread() -> dict[str, int]:
    """Keyword arguments for ``reformat`` that keep swscale to one thread.

    PyAV >= 17 converts with several threads by default (``threads=0``: auto), which costs more
    than it saves on video-sized frames inside loader or ``prepare`` workers (measured in
    ``benchmarks/profile_decoders.py``); older versions have no such argument.
    """
    av = import_av()
    return {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}


def open_video(path: str):  # noqa: ANN201 - (container, stream)
    """Open ``path`` with PyAV; raise :class:`~.decoders.VideoDecodeError` naming the reason."""
    av = import_av()
    try:
        container = av.open(path)
    except Exception as exc:
        raise VideoDecodeError(f"{path}: not a readable video container ({reason(exc)})") from exc
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoDecodeError(f"{path}: no video stream (the file holds: {', '.join(kinds)})")
    # The stream ffmpeg and decord pick (av_find_best_stream): not an attached cover picture.
    return container, container.streams.best("video") or container.streams.video[0]


def _decoded(container, stream) -> Iterator:  # noqa: ANN001
    """Frames in decoder output order; stops before the first damaged packet, without flushing.

    Not flushing after damage keeps the output an exact prefix of FFmpeg's own output: frames the
    decoder still holds for reordering could be preceded by a garbage frame in FFmpeg's numbering.
    """
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:
                return
            if packet.size == 0:
                if packet.pts is None and packet.dts is None:
                    break  # PyAV's end-of-stream marker: flush below
                continue  # an empty index entry (AVI "dropped frame"): the decoder outputs nothing
            yield from codec.decode(packet)
    except Exception:  # noqa: BLE001 - a read or decode error ends the usable part of the file
        return
    try:
        yield from codec.decode(None)
    except Exception:  # noqa: BLE001
        return


def _rotation(frame) -> int:  # noqa: ANN001
    angle = int(round(frame.rotation or 0)) % 360  # PyAV >= 14.1: counter-clockwise degrees
    return angle if angle in (0, 90, 180, 270) else 0


def build_frame_index(path: str | os.PathLike) -> FrameIndex:
    """Demux ``path`` once and index its frames (see the module docstring).

    Raises:
        VideoDecodeError: not a video, no video stream (e.g. audio only), or no decodable frame;
            the message names the file and the reason.
    """
    path = os.fspath(path)
    container, stream = open_video(path)
    with container:
        stream.thread_count = 1
        format_name = container.format.name
        time_base = float(stream.time_base) if stream.time_base else 0.0
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        first = None
        pts: list[int | None] = []
        keyframes: list[int] = []
        truncated = False
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    truncated = True
                    break
                if packet.size == 0:
                    continue
                if packet.is_keyframe and packet.pts is not None:
                    keyframes.append(packet.pts)  # a seek target even when its frame is not shown
                if packet.is_discard:
                    continue  # decoded only as a reference: an edit list (a cut) hides its frame
                pts.append(packet.pts)
                if first is None:
                    # Decode until the first frame appears: it gives the display rotation and size.
                    for frame in stream.codec_context.decode(packet):
                        first = first or frame
        except Exception:  # noqa: BLE001 - a read error mid-file: the file is truncated
            truncated = True
        container_frames = int(stream.frames or 0)
    if first is None:
        # The decoder may buffer a few packets (B-frames) or the file may hold no decodable frame.
        first = next(_iter_decoded(path), None)
    if first is None:
        raise VideoDecodeError(f"{path}: no decodable video frame")
    num_frames = len(pts)
    if truncated:
        num_frames = sum(1 for _ in _iter_decoded(path))
    if num_frames <= 0:
        raise VideoDecodeError(f"{path}: no decodable video frame")
    rotation = _rotation(first)
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    by_timestamp = (
        format_name not in _NO_PRESENTATION_TIMESTAMPS
        and time_base > 0
        and None not in pts
        and len(set(pts)) == len(pts)
        and bool(keyframes)
        and not truncated
    )
    if fps <= 0 and by_timestamp and num_frames > 1:
        fps = (num_frames - 1) / ((max(pts) - min(pts)) * time_base)  # type: ignore[type-var, operator]
    return FrameIndex(
        num_frames=num_frames,
        width=int(width),
        height=int(height),
        fps=fps if fps > 0 else 30.0,
        rotation=rotation,
        pts=FrameTimes.from_sorted(sorted(pts)) if by_timestamp else None,  # type: ignore[type-var, arg-type]
        keyframe_pts=array("q", sorted(keyframes) if by_timestamp else []),
        time_base=time_base,
        truncated=truncated,
        container_frames=container_frames,
        format_name=format_name,
    )


def _iter_decoded(path: str) -> Iterator:
    container, stream = open_video(path)
    with container:
        stream.thread_count = 1
        yield from _decoded(container, stream)


def read_frames(
    path: str,
    index: FrameIndex,
    wanted: set[int],
    convert: Callable[[object], torch.Tensor],
    num_threads: int = 1,
) -> dict[int, torch.Tensor]:
    """Decode the frames numbered ``wanted`` (see the module docstring) with PyAV.

    Returns the frames found, converted by ``convert``; a frame missing from the result does not
    exist in the file (the caller reports it).
    """
    first, last = min(wanted), max(wanted)
    if index.pts is not None and first > 0:
        found = _read_by_timestamp(path, index, wanted, convert, num_threads)
        if found is not None:
            return found
    return _read_counting(path, wanted, last, convert, num_threads)


def _read_counting(path: str, wanted: set[int], last: int, convert: Callable, num_threads: int) -> dict[int, torch.Tensor]:
    found: dict[int, torch.Tensor] = {}
    container, stream = open_video(path)
    with container:
        stream.thread_count = num_threads
        for number, frame in enumerate(_decoded(container, stream)):
            if number in wanted:
                found[number] = convert(frame)
            if number >= last:
                break
    return found


def _read_by_timestamp(
    path: str, index: FrameIndex, wanted: set[int], convert: Callable, num_threads: int
) -> dict[int, torch.Tensor] | None:
    """Seek to the keyframe before the first wanted frame; ``None`` when anything is off."""
    assert index.pts is not None
    first, last = min(wanted), max(wanted)
    keyframe = index.keyframe_pts[max(0, bisect.bisect_right(index.keyframe_pts, index.pts[first]) - 1)]
    found: dict[int, torch.Tensor] = {}
    previous = -1
    container, stream = open_video(path)
    with container:
        stream.thread_count = num_threads
        try:
            container.seek(keyframe, stream=stream, backward=True, any_frame=False)
        except Exception:  # noqa: BLE001 - an unseekable file: count from the start instead
            return None
        for frame in _decoded(container, stream):
            if frame.pts is not None and frame.pts < max(keyframe, index.pts.first):
                continue  # an open-GOP leading frame of the previous GOP, or one before the edit list's start
            number = None if frame.pts is None else index.pts.number_of(frame.pts)
            if number is None or number <= previous:
                return None  # a timestamp the index does not know, or out of order
            if previous < 0 and number > first:
                return None  # the seek landed past the first wanted frame
            previous = number
            if number in wanted:
                found[number] = convert(frame)
            if number >= last:
                break
    return found if found.keys() == wanted else None


def rotate_to_display(frame: torch.Tensor, rotation: int) -> torch.Tensor:
    """Turn an ``(H, W, C)`` coded frame into display orientation (counter-clockwise degrees)."""
    return torch.rot90(frame, rotation // 90, dims=(0, 1)) if rotation else frame
