"""Packed frame stores: one file per video holding its JPEG frames (and levels) and an offset index.

Frame folders hold one file per frame: Kinetics-400 becomes ~70M files, which shared filesystems
refuse or serve slowly. ``lightning-multigrid prepare --layout packed`` writes each video as one
``<name>`` :data:`PACKED_EXT` file instead; reading a clip is one ``open`` and ``T`` positioned reads.

Layout (little-endian)::

    MAGIC (8 bytes) | header length n (uint64) | header: n bytes of UTF-8 JSON | frame bytes

The header is the frame folder's metadata (``num_frames``, ``width``, ``height``, ``fps``, ``levels``,
...) plus ``"offsets"``: for each level name (``""`` = full frames) ``num_frames + 1`` offsets into
the frame bytes, so frame ``i`` of a level is ``bytes[offsets[i]:offsets[i + 1]]``.

:class:`PackedFramesReader` implements the :class:`~.decoders.VideoDecoder` interface (and
:meth:`~PackedFramesReader.decode_crop`), decoding with :func:`~.frame_store.decode_crops` exactly as
the frame-folder reader does, so both layouts give the same pixels.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from .decode_errors import VideoDecodeError
from .decoder_base import VideoInfo
from .frame_store import Level, StoredFramesReader

__all__ = ["MAGIC", "PACKED_EXT", "PackedInfo", "PackedFramesReader", "PACKED_READER", "is_packed", "pack_frames"]

PACKED_EXT = ".mgframes"
MAGIC = b"LMGPACK1"
_PREFIX = struct.Struct("<8sQ")


@dataclass(frozen=True)
class PackedInfo(VideoInfo):
    """:class:`~.decoders.VideoInfo` plus the packed file's levels and byte offsets."""

    levels: tuple[Level, ...] = ()
    offsets: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)
    data_start: int = 0


def is_packed(path: str | os.PathLike) -> bool:
    return os.fspath(path).endswith(PACKED_EXT)


def pack_frames(target: str | os.PathLike, meta: dict[str, Any], frames: Mapping[str, Sequence[bytes]]) -> int:
    """Write ``frames`` (per level name, ``""`` first: each frame's encoded bytes) and ``meta`` as one
    packed file at ``target``; returns its size in bytes."""
    offsets: dict[str, list[int]] = {}
    position = 0
    for level, encoded in frames.items():
        if len(encoded) != meta["num_frames"]:
            raise ValueError(f"level {level!r}: {len(encoded)} frames, expected {meta['num_frames']}")
        offsets[level] = [position]
        for data in encoded:
            position += len(data)
            offsets[level].append(position)
    header = json.dumps({**meta, "offsets": offsets}).encode()
    with open(target, "wb") as handle:
        handle.write(_PREFIX.pack(MAGIC, len(header)))
        handle.write(header)
        for encoded in frames.values():
            for data in encoded:
                handle.write(data)
    return os.path.getsize(target)


class PackedFramesReader(StoredFramesReader):
    """Reads packed frame files (:data:`PACKED_EXT`); no state, so one instance serves every worker."""

    name = "packed"

    def probe(self, path: str | os.PathLike) -> PackedInfo:
        path = os.fspath(path)
        try:
            with open(path, "rb") as handle:
                return _read_header(path, handle.read(_PREFIX.size), handle)
        except OSError as exc:
            raise VideoDecodeError(f"{path}: cannot read the packed frame file ({exc})") from exc

    def _info(self, path: str, info: VideoInfo | None) -> PackedInfo:
        return info if isinstance(info, PackedInfo) else self.probe(path)

    def _open_store(self, path: str, info: VideoInfo) -> tuple[tuple[Level, ...], Callable[[int, str], bytes], Callable[[], None]]:
        info = cast(PackedInfo, info)
        try:
            fd = os.open(path, os.O_RDONLY)  # one open per clip, then one positioned read per frame
        except OSError as exc:
            raise VideoDecodeError(f"{path}: cannot open ({exc})") from exc

        def read(index: int, level: str) -> bytes:
            start, end = info.offsets[level][index], info.offsets[level][index + 1]
            data = os.pread(fd, end - start, info.data_start + start)
            if len(data) != end - start:
                raise ValueError(f"file ends inside frame {index} ({len(data)} of {end - start} bytes)")
            return data

        return (Level("", info.width, info.height), *info.levels), read, lambda: os.close(fd)

    def _frame_name(self, path: str, info: VideoInfo, index: int, level: str) -> str:
        return f"{path} (level {level!r})" if level else path


def _read_header(path: str, prefix: bytes, handle: Any) -> PackedInfo:
    if len(prefix) != _PREFIX.size or prefix[:8] != MAGIC:
        raise VideoDecodeError(f"{path}: not a packed frame file (no {MAGIC!r} header)")
    length = _PREFIX.unpack(prefix)[1]
    try:
        meta = json.loads(handle.read(length))
        levels = tuple(Level(str(lv["name"]), int(lv["width"]), int(lv["height"])) for lv in meta.get("levels", ()))
        offsets = {str(k): [int(o) for o in v] for k, v in meta["offsets"].items()}
        count = int(meta["num_frames"])
        if any(len(offsets.get(name, ())) != count + 1 for name in ["", *(lv.name for lv in levels)]):
            raise ValueError("offsets do not match num_frames and levels")
        return PackedInfo(count, int(meta["width"]), int(meta["height"]), float(meta.get("fps") or 0.0),
                          levels=levels, offsets=offsets, data_start=_PREFIX.size + length)
    except (ValueError, KeyError, TypeError) as exc:
        raise VideoDecodeError(f"{path}: unreadable packed header ({type(exc).__name__}: {exc})") from exc


PACKED_READER = PackedFramesReader()


def packed_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a packed file (its frame folder metadata and offsets), as written."""
    with open(path, "rb") as handle:
        prefix = handle.read(_PREFIX.size)
        _read_header(os.fspath(path), prefix, handle)  # validates
        handle.seek(_PREFIX.size)
        return json.loads(handle.read(_PREFIX.unpack(prefix)[1]))


def pack_folder(folder: str | os.PathLike, target: str | os.PathLike, meta: dict[str, Any]) -> int:
    """Pack a verified frame folder written by ``prepare`` (its frames named ``000001.jpg``..., levels
    in subfolders as ``meta`` lists them) into ``target``, read it back and compare every frame's bytes.
    Returns the packed file's size.

    Raises:
        ValueError: the read-back differs (names the level and frame).
    """
    names = [f"{i + 1:06d}{meta.get('ext', '.jpg')}" for i in range(meta["num_frames"])]
    frames: dict[str, list[bytes]] = {}
    for level in ["", *(lv["name"] for lv in meta.get("levels", ()))]:
        frames[level] = []
        for name in names:
            with open(os.path.join(folder, level, name), "rb") as handle:
                frames[level].append(handle.read())
    size = pack_frames(target, meta, frames)
    info = PACKED_READER.probe(target)
    with open(target, "rb") as handle:
        for level, encoded in frames.items():
            for index, data in enumerate(encoded):
                start = info.offsets[level][index]
                if os.pread(handle.fileno(), len(data), info.data_start + start) != data:
                    raise ValueError(f"{target}: level {level!r} frame {index} differs after packing")
    return size
