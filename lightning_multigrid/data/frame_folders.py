"""Frame-folder input: one folder of JPEG frames per video, read like a video decoder.

A frame folder holds one image per frame, named ``<prefix><number><ext>`` with a zero-padded,
contiguous number (``000001.jpg``..., or Charades' ``<id>-000001.jpg``); frame ``i`` is the
``i``-th file in that numbering. Folders written by ``lightning-multigrid prepare`` also hold
:data:`META_NAME` (frame count, size, frame rate, naming), so probing them reads one small file
instead of listing the folder.

:class:`FrameFolderReader` implements the :class:`~.decoders.VideoDecoder` interface, so the
datasets use it wherever a record's path is a directory (see :func:`decoder_for`):

* only the ``T`` files a clip needs are opened;
* a short side of at most half the stored one is decoded in the JPEG's DCT domain (PIL's
  ``Image.draft`` scales by 1/2, 1/4 or 1/8 while decoding) and finished with one small resize:
  16 frames of 320x240 to 160x120 cost 2.4 ms of CPU here, against 5.5 ms for a full decode
  plus resize. Only for frames of at least :data:`DRAFT_MIN_PIXELS`: PIL's per-image cost
  (~50 us of header parsing in Python) outweighs the saving on small frames (per frame, 8-frame
  clips: 64x64 to 32 px 70 us with ``draft`` against 45 us for the full decode plus resize;
  128x128 to 64 px 72 against 176 us);
* other sizes are decoded at the stored size by torchvision's libjpeg-turbo decoder (one batched
  call per clip) and the clip is resized in one call, as the video decoders do: 6.9 ms for those 16 frames to
  298x224, against 12.9 ms for PIL decoding and resizing frame by frame.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import cast

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.decoder_base import VideoDecoder, VideoInfo, resized_size

from .decoder_base import BaseVideoDecoder

__all__ = [
    "FRAME_EXTENSIONS",
    "META_NAME",
    "FrameFolderInfo",
    "FrameFolderReader",
    "decoder_for",
    "find_videos",
    "is_frame_folder",
    "frame_name",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Frames this large (width x height) or larger are shrunk in the DCT domain (see the module doc).
DRAFT_MIN_PIXELS = 128 * 128
#: Written by ``prepare`` into every finished folder; its presence marks the folder as complete.
META_NAME = "frames.json"
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)(?P<ext>\.[A-Za-z]+)$")


@dataclass(frozen=True)
class FrameFolderInfo(VideoInfo):
    """:class:`~.decoders.VideoInfo` plus how frame ``i`` is named: ``prefix + str(start + i).zfill(digits) + ext``."""

    prefix: str = ""
    digits: int = 6
    start: int = 1
    ext: str = ".jpg"


def frame_name(info: FrameFolderInfo, index: int) -> str:
    """The file name of frame ``index`` (0-based) in a folder described by ``info``."""
    return f"{info.prefix}{info.start + index:0{info.digits}d}{info.ext}"


def is_frame_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding frames (a ``prepare`` marker or an image file)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    if os.path.isfile(os.path.join(path, META_NAME)):
        return True
    with os.scandir(path) as entries:
        return any(e.name.lower().endswith(FRAME_EXTENSIONS) and e.is_file() for e in entries)


def find_videos(folder: str | os.PathLike, extensions: Sequence[str]) -> list[str]:
    """Video files (by extension) and frame folders under ``folder``, sorted.

    Frame folders are not descended into: listing every frame of a large dataset would cost
    far more than the walk itself.
    """
    found = []
    for directory, subdirs, files in os.walk(os.fspath(folder)):
        subdirs.sort()
        kept = []
        for name in subdirs:
            path = os.path.join(directory, name)
            if not name.startswith(".") and is_frame_folder(path):
                found.append(path)
            elif not name.startswith("."):
                kept.append(name)
        subdirs[:] = kept
        found.extend(os.path.join(directory, f) for f in files if f.lower().endswith(tuple(extensions)))
    return sorted(found, key=lambda p: PurePath(p).parts)  # the order Path sorting gives


def decoder_for(path: str | os.PathLike, video_decoder: VideoDecoder) -> VideoDecoder:
    """The reader for ``path``: :data:`FRAME_READER` for a directory, else ``video_decoder``."""
    return FRAME_READER if os.path.isdir(path) else video_decoder


class FrameFolderReader(BaseVideoDecoder):
    """Reads frame folders through the :class:`~.decoders.VideoDecoder` interface.

    It holds no state and no open files, so one instance serves every dataset and loader worker.
    """

    name = "frames"
    decode_time_resize = True

    def probe(self, path: str | os.PathLike) -> FrameFolderInfo:
        path = os.fspath(path)
        meta_path = os.path.join(path, META_NAME)
        if os.path.isfile(meta_path):
            return _info_from_meta(meta_path)
        return _info_from_listing(path)

    def _info(self, path: str, info: VideoInfo | None) -> FrameFolderInfo:
        return info if isinstance(info, FrameFolderInfo) else self.probe(path)

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo) -> torch.Tensor:
        info = cast(FrameFolderInfo, info)  # what _info returned
        size = (info.width, info.height) if short_side is None else resized_size(info.width, info.height, short_side)
        unique = list(dict.fromkeys(indices))  # each file is read once, repeats are copied
        files = [os.path.join(path, frame_name(info, i)) for i in unique]
        try:
            halved = size[0] * 2 <= info.width and size[1] * 2 <= info.height
            if halved and info.width * info.height >= DRAFT_MIN_PIXELS:
                video = _decode_reduced(files, size)
            else:
                video = _decode_full(files, size)
        except _FrameError as exc:
            file = exc.args[0]
            index = unique[files.index(file)]
            raise VideoDecodeError(f"{file}: cannot read frame {index} ({exc.__cause__})") from exc.__cause__
        if len(unique) != len(indices):
            row = {index: k for k, index in enumerate(unique)}
            video = video[[row[i] for i in indices]]
        return video


class _FrameError(Exception):
    """Carries the file that failed; the cause is the library's error."""


def _decode_reduced(files: list[str], size: tuple[int, int]) -> torch.Tensor:
    """Frames shrunk by at least half: PIL decodes at 1/2, 1/4 or 1/8 scale in the DCT domain
    (``draft`` picks the largest reduction that keeps both sides >= ``size``), then a small resize.

    Returns a ``(T, C, H, W)`` view of ``(T, H, W, C)`` memory: the crop slices it and
    collation into the batch copies it once, so a contiguous copy here would be one more full pass.
    """
    out = np.empty((len(files), size[1], size[0], 3), dtype=np.uint8)
    for row, file in enumerate(files):
        try:
            with Image.open(file) as image:
                image.draft("RGB", size)
                rgb = image.convert("RGB")
            if rgb.size != size:
                rgb = rgb.resize(size, Image.Resampling.BILINEAR)  # antialiased when shrinking, like TF.resize
            out[row] = np.asarray(rgb)
        except (OSError, ValueError) as exc:
            raise _FrameError(file) from exc
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def _decode_full(files: list[str], size: tuple[int, int]) -> torch.Tensor:
    """Frames kept, enlarged or shrunk by less than half: libjpeg-turbo through torchvision at the
    stored size, then one resize of the whole clip (the video decoders' rescale).

    JPEGs are decoded in one batched call (16 64x64 frames: 0.57 ms of CPU against 0.72 ms one by
    one); on an error each file is decoded alone, so that the message names the broken one.
    """
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg  # noqa: PLC0415 - heavy import

    data = []
    for file in files:
        try:
            with open(file, "rb") as handle:
                data.append(torch.frombuffer(bytearray(handle.read()), dtype=torch.uint8))
        except OSError as exc:
            raise _FrameError(file) from exc
    try:
        if all(f.lower().endswith((".jpg", ".jpeg")) for f in files):
            frames = decode_jpeg(data, mode=ImageReadMode.RGB)
        else:
            frames = [decode_image(d, mode=ImageReadMode.RGB) for d in data]
    except (RuntimeError, ValueError):
        frames = []
        for file, encoded in zip(files, data):
            try:
                frames.append(decode_image(encoded, mode=ImageReadMode.RGB))
            except (RuntimeError, ValueError) as exc:
                raise _FrameError(file) from exc
    return _resize_clip(torch.stack(frames), size)


def _resize_clip(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if (video.shape[-1], video.shape[-2]) == size:
        return video
    return TF.resize(video, [size[1], size[0]], antialias=True)


def _info_from_meta(meta_path: str) -> FrameFolderInfo:
    try:
        meta = json.loads(open(meta_path).read())
        return FrameFolderInfo(
            int(meta["num_frames"]), int(meta["width"]), int(meta["height"]), float(meta.get("fps") or 0.0),
            prefix=str(meta.get("prefix", "")), digits=int(meta.get("digits", 6)),
            start=int(meta.get("start", 1)), ext=str(meta.get("ext", ".jpg")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VideoDecodeError(f"{meta_path}: unreadable frame-folder metadata ({type(exc).__name__}: {exc})") from exc


def _info_from_listing(path: str) -> FrameFolderInfo:
    """Infer the naming from the folder's image files (folders not written by ``prepare``)."""
    try:
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(FRAME_EXTENSIONS))
    except OSError as exc:
        raise VideoDecodeError(f"{path}: cannot list the frame folder ({exc})") from exc
    if not names:
        raise VideoDecodeError(f"{path}: no frame images ({', '.join(FRAME_EXTENSIONS)}) in the folder")
    first, last = _NUMBERED.match(names[0]), _NUMBERED.match(names[-1])
    if first is None or last is None:
        raise VideoDecodeError(f"{path}: frame files must be numbered like 000001.jpg; found {names[0]!r}")
    prefix, ext = first["prefix"], first["ext"]
    start, digits = int(first["number"]), len(first["number"])
    pattern = FrameFolderInfo(len(names), 0, 0, 0.0, prefix=prefix, digits=digits, start=start, ext=ext)
    # Sorted zero-padded names are contiguous exactly when the last one is start + count - 1.
    if last["prefix"] != prefix or names[-1] != frame_name(pattern, len(names) - 1):
        raise VideoDecodeError(
            f"{path}: frame files are not numbered contiguously ({names[0]} .. {names[-1]} for {len(names)} files)"
        )
    try:
        with Image.open(os.path.join(path, names[0])) as image:
            width, height = image.size
    except OSError as exc:
        raise VideoDecodeError(f"{path}/{names[0]}: unreadable first frame ({exc})") from exc
    return FrameFolderInfo(len(names), width, height, 0.0, prefix=prefix, digits=digits, start=start, ext=ext)


FRAME_READER: VideoDecoder = FrameFolderReader()
