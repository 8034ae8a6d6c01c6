"""Frame-folder input: one folder of JPEG frames per video, read like a video decoder.

A frame folder holds one image per frame, named ``<prefix><number><ext>`` with a zero-padded,
contiguous number (``000001.jpg``..., or Charades' ``<id>-000001.jpg``); frame ``i`` is the
``i``-th file in that numbering. Folders written by ``lightning-multigrid prepare`` also hold
:data:`META_NAME` (frame count, size, frame rate, naming), so probing them reads one small file
instead of listing the folder.

:class:`FrameFolderReader` implements the :class:`~.decoders.VideoDecoder` interface, so the
datasets use it wherever a record's path is a directory (see :func:`decoder_for`):

* only the ``T`` files a clip needs are opened, of the smallest stored level that covers the
  size asked for (``prepare --levels`` adds a half-size copy of every frame in ``half/``);
* decoding, cropping and resizing are :func:`~.frame_store.decode_crops`: libjpeg-turbo (DCT-scaled
  where the stored frame is at least twice the size asked for), then one antialiased resize per
  clip of only the pixels the crop needs (:meth:`FrameFolderReader.decode_crop`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import cast

from PIL import Image

from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.decoder_base import VideoDecoder, VideoInfo

from .frame_pack import PACKED_EXT, PACKED_READER, is_packed
from .frame_store import Level, StoredFramesReader

__all__ = [
    "FRAME_EXTENSIONS",
    "META_NAME",
    "FrameFolderInfo",
    "FrameFolderReader",
    "decoder_for",
    "find_videos",
    "is_frame_folder",
    "verify_frame_folder",
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
    #: Extra stored resolutions (``prepare --levels``), each in the subfolder it names.
    levels: tuple[Level, ...] = ()


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
    """Video files (by extension), frame folders and packed frame files under ``folder``, sorted.

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
        found.extend(os.path.join(directory, f) for f in files if f.lower().endswith((*extensions, PACKED_EXT)))
    return sorted(found, key=lambda p: PurePath(p).parts)  # the order Path sorting gives


def decoder_for(path: str | os.PathLike, video_decoder: VideoDecoder) -> VideoDecoder:
    """The reader for ``path``: :data:`FRAME_READER` for a directory, the packed reader of
    :mod:`.frame_pack` for a packed file, else ``video_decoder``."""
    if is_packed(path):
        return PACKED_READER
    return FRAME_READER if os.path.isdir(path) else video_decoder


class FrameFolderReader(StoredFramesReader):
    """Reads frame folders through the :class:`~.decoders.VideoDecoder` interface.

    It holds no state and no open files, so one instance serves every dataset and loader worker.
    :meth:`decode_crop` decodes only a clip's crop (see :mod:`.frame_store`); the datasets use it
    where a reader has it (:attr:`decodes_crops`).
    """

    name = "frames"

    def probe(self, path: str | os.PathLike) -> FrameFolderInfo:
        path = os.fspath(path)
        meta_path = os.path.join(path, META_NAME)
        if os.path.isfile(meta_path):
            return _info_from_meta(meta_path)
        return _info_from_listing(path)

    def _info(self, path: str, info: VideoInfo | None) -> FrameFolderInfo:
        return info if isinstance(info, FrameFolderInfo) else self.probe(path)

    def _open_store(self, path: str, info: VideoInfo) -> tuple[tuple[Level, ...], Callable[[int, str], bytes], Callable[[], None]]:
        info = cast(FrameFolderInfo, info)  # what _info returned

        def read(index: int, level: str) -> bytes:
            file = os.path.join(path, level, frame_name(info, index))
            try:
                with open(file, "rb") as handle:
                    return handle.read()
            except OSError as exc:
                raise VideoDecodeError(f"{file}: cannot read frame {index} ({exc})") from exc

        return (Level("", info.width, info.height), *info.levels), read, lambda: None

    def _frame_name(self, path: str, info: VideoInfo, index: int, level: str) -> str:
        return os.path.join(path, level, frame_name(cast(FrameFolderInfo, info), index))


def verify_frame_folder(folder: str | os.PathLike, meta: dict) -> None:
    """``prepare``'s check of a written folder described by ``meta`` (its :data:`META_NAME` content):
    exactly ``num_frames`` images per stored level, each decodable at the level's recorded size.

    Raises:
        ValueError: naming the level and file that is missing, extra, of the wrong size or truncated.
    """
    levels = [("", meta["width"], meta["height"])] + [(lv["name"], lv["width"], lv["height"]) for lv in meta.get("levels", ())]
    info = FrameFolderInfo(meta["num_frames"], meta["width"], meta["height"], meta["fps"])
    expected = [frame_name(info, i) for i in range(info.num_frames)]
    for level, width, height in levels:
        directory = os.path.join(folder, level)
        names = sorted(e.name for e in os.scandir(directory) if e.is_file())
        if names != expected:
            raise ValueError(f"wrote {len(names)} files{f' in {level}/' if level else ''}, expected {len(expected)} frames")
        for name in names:
            with Image.open(os.path.join(directory, name)) as image:
                if image.size != (width, height):
                    raise ValueError(f"{os.path.join(level, name)}: size {image.size}, expected {(width, height)}")
                image.draft("RGB", (1, 1))  # entropy-decodes every block (catches truncation) at 1/8 scale
                image.load()


def _info_from_meta(meta_path: str) -> FrameFolderInfo:
    try:
        meta = json.loads(open(meta_path).read())
        return FrameFolderInfo(
            int(meta["num_frames"]), int(meta["width"]), int(meta["height"]), float(meta.get("fps") or 0.0),
            prefix=str(meta.get("prefix", "")), digits=int(meta.get("digits", 6)),
            start=int(meta.get("start", 1)), ext=str(meta.get("ext", ".jpg")),
            levels=tuple(Level(str(lv["name"]), int(lv["width"]), int(lv["height"])) for lv in meta.get("levels", ())),
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
