"""Real encoded files made with the ``ffmpeg`` program, and ffmpeg's own decode of them (the oracle).

Each file is 64x48 (48x64 when rotated), at most 60 frames, from ffmpeg's ``testsrc2`` pattern with
its hue turned every frame (so a neighbouring frame never passes for the right one).

How the awkward files come about:

* ``vfr.mp4``: ``select`` keeps an irregular subset of 30 fps frames and ``-fps_mode passthrough``
  keeps their timestamps, so frame intervals vary (as in phone captures).
* ``jitter.mp4``: ``setpts`` moves every odd frame 0.6 frame periods late: ``round(pts * fps)``
  gives frames 0, 2, 2, 4, 4, ... (two frames claim one number, others none).
* ``bframes.avi``: H.264 with B-frames in AVI, which stores no presentation timestamps.
* ``dropped.avi``: ffmpeg's AVI muxer keeps AVI's constant rate by writing an empty chunk and index
  entry for every frame period the timestamps skip; keeping 1 frame in 4 at time base 1/30 gives
  15 real frames and a header count of 57 (what capture cards write for dropped frames).
* ``rotated*.mp4``: re-muxed with ``rotate=90`` (180, 270), which ffmpeg 5.1 writes as a display matrix.
* ``trimmed.mp4``: cut with ``-ss 0.5 -c copy``: the packets from the keyframe before the cut are
  kept (the decoder needs them) and an edit list hides their frames: 8 packets more than frames.
* ``truncated.*``: the first 60 % of a complete file (MP4 with its index in front, AVI, WebM).
* ``audio_only.mp4``, ``text.mp4``: no video stream; not a media file at all.
* ``size_WxH.mp4``: portrait and landscape frame sizes (:data:`ODD_SIZES`), 72x128 among them,
  which decord 0.6 decodes with 4 bytes per pixel.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: testsrc2 with its hue turned every frame: neighbouring frames always differ (testsrc2 alone
#: repeats frames at this size).
_SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=15,hue=H=n*0.7"]
_SOURCE_30FPS = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=2,hue=H=n*0.7"]
_X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class RealFile:
    """One made file and what a correct reader must do with it."""

    path: Path
    #: ``"exact"``: every frame ffmpeg outputs; ``"prefix"``: a truncated file, its intact first
    #: frames (the damaged tail may be refused); ``"refuse"``: no video to decode.
    expect: str
    display_size: tuple[int, int] = (64, 48)


# name -> (ffmpeg output arguments, expectation, display size); ``None`` marks files made otherwise.
_RECIPES: dict[str, tuple[list[str], str, tuple[int, int]]] = {
    "cfr.mp4": ([*_SOURCE, "-frames:v", "40", *_X264, "-g", "12", "-bf", "2"], "exact", (64, 48)),
    "vfr.mp4": (
        [*_SOURCE_30FPS, "-vf", r"select='not(mod(n\,3))+eq(n\,4)+eq(n\,5)'", "-fps_mode", "passthrough", *_X264, "-bf", "2"],
        "exact", (64, 48),
    ),
    "jitter.mp4": (
        [*_SOURCE, "-frames:v", "40", "-vf", r"settb=1/1000,setpts='(N+0.6*mod(N\,2))/(15*TB)'",
         "-fps_mode", "passthrough", "-enc_time_base", "1/1000", "-video_track_timescale", "1000",
         *_X264, "-bf", "2"],
        "exact", (64, 48),
    ),
    "bframes.avi": ([*_SOURCE, "-frames:v", "40", *_X264, "-g", "12", "-bf", "2"], "exact", (64, 48)),
    "dropped.avi": (
        [*_SOURCE_30FPS, "-vf", r"select='not(mod(n\,4))'",
         "-fps_mode", "passthrough", "-enc_time_base", "1/30", "-c:v", "mpeg4"],
        "exact", (64, 48),
    ),
    "longgop.mp4": ([*_SOURCE, "-frames:v", "60", *_X264, "-g", "60", "-bf", "3"], "exact", (64, 48)),
    "vp9.webm": ([*_SOURCE, "-frames:v", "40", "-c:v", "libvpx-vp9", "-g", "12", "-b:v", "200k"], "exact", (64, 48)),
    "faststart.mp4": ([*_SOURCE, "-frames:v", "40", *_X264, "-g", "12", "-movflags", "+faststart"], "exact", (64, 48)),
    "audio_only.mp4": (["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"], "refuse", (0, 0)),
}
#: Frame sizes decord 0.6 mishandles or might (72 px wide: 4 bytes per pixel) beside ones it gets
#: right, portrait and landscape: ``size_WxH.mp4``, 20 H.264 frames each.
ODD_SIZES = [(72, 128), (80, 128), (104, 128), (128, 72), (406, 240), (48, 64)]
for _w, _h in ODD_SIZES:
    _RECIPES[f"size_{_w}x{_h}.mp4"] = (
        ["-f", "lavfi", "-i", f"testsrc2=size={_w}x{_h}:rate=15,hue=H=n*0.7", "-frames:v", "20", *_X264, "-bf", "2"],
        "exact", (_w, _h),
    )
#: Truncated copies: name -> (complete source file, fraction of bytes kept).
_TRUNCATED = {"truncated.mp4": "faststart.mp4", "truncated.avi": "bframes.avi", "truncated.webm": "vp9.webm"}


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_real_files(directory: Path) -> dict[str, RealFile]:
    """Write every test file into ``directory`` (about 150 kB in all)."""
    files: dict[str, RealFile] = {}
    for name, (args, expect, size) in _RECIPES.items():
        _ffmpeg(*args, str(directory / name))
        files[name] = RealFile(directory / name, expect, size)
    for angle, name in ((90, "rotated.mp4"), (180, "rotated180.mp4"), (270, "rotated270.mp4")):
        _ffmpeg("-i", str(directory / "cfr.mp4"), "-c", "copy", "-metadata:s:v:0", f"rotate={angle}", str(directory / name))
        files[name] = RealFile(directory / name, "exact", (64, 48) if angle == 180 else (48, 64))
    _ffmpeg("-ss", "0.5", "-i", str(directory / "cfr.mp4"), "-c", "copy", str(directory / "trimmed.mp4"))
    files["trimmed.mp4"] = RealFile(directory / "trimmed.mp4", "exact", (64, 48))
    for name, source in _TRUNCATED.items():
        data = (directory / source).read_bytes()
        (directory / name).write_bytes(data[: len(data) * 6 // 10])
        files[name] = RealFile(directory / name, "prefix", files[source].display_size)
    (directory / "text.mp4").write_text("this is not a video\n")
    files["text.mp4"] = RealFile(directory / "text.mp4", "refuse", (0, 0))
    return files


def ffmpeg_frames(path: Path, display_size: tuple[int, int]) -> np.ndarray:
    """Every frame ffmpeg's decoder outputs, in order, display orientation: ``(N, H, W, 3)`` uint8.

    ``-fps_mode passthrough`` stops ffmpeg from duplicating or dropping frames to a constant rate;
    decoding errors of a damaged tail are tolerated as ffmpeg tolerates them.
    """
    result = subprocess.run(
        ["ffmpeg", "-v", "quiet", "-i", str(path), "-an", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=False,
    )
    width, height = display_size
    frame_bytes = width * height * 3
    count = len(result.stdout) // frame_bytes
    return np.frombuffer(result.stdout[: count * frame_bytes], dtype=np.uint8).reshape(count, height, width, 3)
