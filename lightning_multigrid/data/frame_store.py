"""Decoding a clip's crop from stored JPEG frames at a cost that scales with the crop (issue #20).

Every multigrid grid feeds the model the same pixels per iteration (``B x T x S^2``), but a loader
that decodes each stored frame whole, resizes the whole frame and then crops pays per frame, and
the small grids read 4x more frames per iteration. Three things make a frame's cost follow the
pixels it delivers:

* **levels**: ``prepare --levels`` also stores every frame at half the short side
  (:data:`LEVEL_DIRS`, a subfolder of the frame folder, or a second index in a packed file). A
  clip reads the smallest stored level whose short side is at least the jittered short side it
  asks for (never one it would have to enlarge where a larger level exists): Huffman decoding,
  which no DCT scaling shrinks, costs per stored byte, and the half level has a quarter of them.
* **crop before resize**: the crop is chosen in the coordinates of the rescaled frame (the same
  random draws as cropping the rescaled frame), mapped back onto the stored level to whole pixels
  (:func:`crop_region`), and only that region is copied and resized to ``S x S`` in one call per
  clip. (Pillow's exact ``resize(box=...)`` was tried: per pixel it is 2-3x slower than
  torchvision's antialiased resize of the whole frame, see benchmarks/README.md.)
* **DCT scaling**: a stored frame at least twice the size asked for is decoded at 1/2, 1/4 or
  1/8 scale by libjpeg-turbo (``simplejpeg``'s ``min_width``/``min_height``).

:func:`decode_crops` is the one implementation; :class:`~.frames.FrameFolderReader` and the packed
reader of :mod:`.frame_pack` hand it the encoded bytes of the chosen level.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from .decode_errors import VideoDecodeError
from .decoder_base import BaseVideoDecoder, VideoInfo, check_indices, resized_size
from .device_decode import EncodedClip

__all__ = ["LEVEL_DIRS", "CropPlan", "FrameDecodeError", "Level", "StoredFramesReader", "choose_level", "crop_region",
           "decode_crops", "plan_crop", "decode_jpeg_rgb", "half_size"]

#: Extra stored levels, by name: the subfolder (frame folders) or index key (packed files) holding them.
LEVEL_DIRS = ("half",)


@dataclass(frozen=True)
class Level:
    """One stored resolution of a video's frames: ``name`` ("" for the full frames) and its size."""

    name: str
    width: int
    height: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def half_size(width: int, height: int) -> tuple[int, int]:
    """The half level's size: :func:`~.decoder_base.resized_size` at half the short side (even sides)."""
    return resized_size(width, height, max(1, min(width, height) // 2))


def choose_level(levels: Sequence[Level], size: tuple[int, int]) -> Level:
    """The smallest level covering ``size`` (``(width, height)`` asked for): both sides at least as
    large. If none does (an enlargement), the largest level: nothing smaller is ever enlarged."""
    covering = [lv for lv in levels if lv.width >= size[0] and lv.height >= size[1]]
    if covering:
        return min(covering, key=lambda lv: lv.width * lv.height)
    return max(levels, key=lambda lv: lv.width * lv.height)


def crop_region(size: tuple[int, int], box: tuple[int, int, int], level: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop ``box`` = ``(top, left, side)`` of a frame rescaled to ``size`` = ``(width, height)``,
    as whole pixels of the same frame stored at ``level`` = ``(width, height)``: ``(y0, y1, x0, x1)``.

    Edges are rounded to the nearest stored pixel, so the region resized to ``side x side`` is the
    crop of the rescaled frame to within half a stored pixel of position and scale (the documented
    training transform; :func:`decode_crops`' test compares it with a full decode, resize and crop).
    """
    top, left, side = box
    scale_x, scale_y = level[0] / size[0], level[1] / size[1]
    x0, x1 = round(left * scale_x), round((left + side) * scale_x)
    y0, y1 = round(top * scale_y), round((top + side) * scale_y)
    return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)


def decode_jpeg_rgb(data: bytes, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB ``(H, W, 3)`` of a JPEG (libjpeg-turbo through ``simplejpeg``; Pillow for other images or
    without ``simplejpeg``); with ``min_size`` (``(width, height)``) the JPEG may be decoded at 1/2,
    1/4 or 1/8 scale in the DCT domain, keeping both sides >= ``min_size``."""
    if _simplejpeg is not None and data[:2] == b"\xff\xd8":
        if min_size is None:
            return _simplejpeg.decode_jpeg(data, colorspace="RGB")
        return _simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=min_size[0], min_height=min_size[1])
    with Image.open(io.BytesIO(data)) as image:
        if min_size is not None:
            image.draft("RGB", min_size)
        return np.asarray(image.convert("RGB"))


class FrameDecodeError(Exception):
    """A stored frame that cannot be decoded: ``args`` are its index and level; the cause is the library's error."""


@dataclass(frozen=True)
class CropPlan:
    """Where a clip's pixels come from: the stored ``level``, the rescaled ``size`` (width, height) the
    request means, the ``region`` (y0, y1, x0, x1) of the level to cut, and the ``out`` (height,
    width) it is resized to. ``scaled``: decode at a DCT scale (the region then refers to it)."""

    level: Level
    size: tuple[int, int]
    box: tuple[int, int, int] | None
    scaled: bool

    def region(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The region in a decoded frame of ``width x height`` (the level, or its DCT-scaled decode)."""
        if self.box is None:
            return 0, height, 0, width
        return crop_region(self.size, self.box, (width, height))

    @property
    def out(self) -> tuple[int, int]:
        return (self.size[1], self.size[0]) if self.box is None else (self.box[2], self.box[2])


def plan_crop(levels: Sequence[Level], short_side: int | None, box: tuple[int, int, int] | None,
              dct_scaling: bool = True) -> CropPlan:
    """The :class:`CropPlan` of frames rescaled to ``short_side`` (``None``: the full level's size) and
    cut to ``box`` = ``(top, left, side)`` in the rescaled frame (``None``: the whole frame)."""
    full = levels[0]
    size = (full.width, full.height) if short_side is None else resized_size(full.width, full.height, short_side)
    if box is not None and (box[0] < 0 or box[1] < 0 or box[0] + box[2] > size[1] or box[1] + box[2] > size[0]):
        raise ValueError(f"crop {box} (top, left, side) outside the {size[0]}x{size[1]} rescaled frame")
    level = choose_level(levels, size)
    # DCT scaling only where the level is at least twice the size asked for (otherwise it cannot shrink).
    scaled = dct_scaling and level.width >= 2 * size[0] and level.height >= 2 * size[1]
    return CropPlan(level, size, box, scaled)


def decode_crops(read: Callable[[int, str], bytes], indices: Sequence[int], levels: Sequence[Level],
                 short_side: int | None, box: tuple[int, int, int] | None = None) -> torch.Tensor:
    """``uint8`` ``(T, C, H, W)``: frames ``indices`` rescaled to ``short_side`` (``None``: the full
    level's size), then cut to ``box`` = ``(top, left, side)`` in the rescaled frame's coordinates
    (``None``: the whole frame; see :func:`crop_region` for how a box maps onto stored pixels).

    ``read(index, level_name)`` returns the encoded bytes of one stored frame; ``levels[0]`` is the
    full level. Repeated indices are decoded once. The clip is resized in one call (torchvision's
    antialiased bilinear, as the video decoders rescale).
    """
    plan = plan_crop(levels, short_side, box)
    unique = list(dict.fromkeys(indices))
    frames = []
    for index in unique:
        try:
            frames.append(decode_jpeg_rgb(read(index, plan.level.name), plan.size if plan.scaled else None))
        except (OSError, ValueError, RuntimeError) as exc:
            raise FrameDecodeError(index, plan.level.name) from exc
    height, width = frames[0].shape[:2]
    if any(f.shape[:2] != (height, width) for f in frames):
        raise ValueError(f"frames of one clip differ in size: {sorted({f.shape[:2] for f in frames})}")
    y0, y1, x0, x1 = plan.region(width, height)
    # One copy of only the region's pixels, then one resize of the clip touching only those.
    clip = torch.from_numpy(np.stack([f[y0:y1, x0:x1] for f in frames])).permute(0, 3, 1, 2)
    # Contiguous (T, C, H, W): collating the item's (C, T, H, W) view of channels-last memory costs
    # more than this copy of the output pixels (16 frames at 210 px, 4 clips: 11.2 vs 4.7 ms).
    clip = _resize_clip(clip, plan.out).contiguous()
    if len(unique) != len(indices):
        position = {index: k for k, index in enumerate(unique)}
        clip = clip[[position[i] for i in indices]]
    return clip


class StoredFramesReader(BaseVideoDecoder):
    """What the frame-folder and packed readers share: :meth:`decode_crop` and :meth:`encoded_crop`
    over a subclass's :meth:`_open_store` (the levels and a reader of one frame's bytes)."""

    decode_time_resize = True
    decodes_crops = True

    def _open_store(self, path: str, info: VideoInfo) -> tuple[tuple[Level, ...], Callable[[int, str], bytes], Callable[[], None]]:
        """``(levels, read(index, level), close())`` of the store at ``path``."""
        raise NotImplementedError

    def _frame_name(self, path: str, info: VideoInfo, index: int, level: str) -> str:
        """How messages name one stored frame."""
        raise NotImplementedError

    def decode_crop(self, path: str | os.PathLike, frame_indices: Sequence[int], short_side: int | None,
                    box: tuple[int, int, int], info: VideoInfo | None = None) -> torch.Tensor:
        """:meth:`decode` then the crop ``box`` = ``(top, left, side)`` of the rescaled frames, decoding
        and resizing only what the crop needs (:func:`decode_crops`)."""
        path = os.fspath(path)
        info = self._info(path, info)
        return self._decode(path, check_indices(path, frame_indices, info.num_frames), short_side, info, box)

    def encoded_crop(self, path: str | os.PathLike, frame_indices: Sequence[int], short_side: int | None,
                     box: tuple[int, int, int], info: VideoInfo | None = None) -> EncodedClip:
        """The clip :meth:`decode_crop` would give, left encoded for :func:`~.device_decode.decode_batch`:
        only the chosen level's bytes are read (no DCT scaling: the device decodes at full scale)."""
        path = os.fspath(path)
        info = self._info(path, info)
        indices = check_indices(path, frame_indices, info.num_frames)
        levels, read, close = self._open_store(path, info)
        try:
            plan = plan_crop(levels, short_side, box, dct_scaling=False)
            encoded = {i: read(i, plan.level.name) for i in dict.fromkeys(indices)}  # repeats read once
            frames = [encoded[i] for i in indices]
        except ValueError as exc:
            raise VideoDecodeError(f"{path}: {exc}") from exc
        finally:
            close()
        return EncodedClip(frames, plan.region(plan.level.width, plan.level.height), plan.out)

    def _decode(self, path: str, indices: list[int], short_side: int | None, info: VideoInfo,
                box: tuple[int, int, int] | None = None) -> torch.Tensor:
        levels, read, close = self._open_store(path, info)
        try:
            return decode_crops(read, indices, levels, short_side, box)
        except FrameDecodeError as exc:
            index, level = exc.args
            name = self._frame_name(path, info, index, level)
            raise VideoDecodeError(f"{name}: cannot read frame {index} ({exc.__cause__})") from exc.__cause__
        except ValueError as exc:  # frames of different sizes, a crop outside the frame, a short file
            raise VideoDecodeError(f"{path}: {exc}") from exc
        finally:
            close()


def _resize_clip(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``clip`` ``(T, C, H, W)`` resized to ``size`` = ``(height, width)`` (a no-op at that size)."""
    if tuple(clip.shape[-2:]) == size:
        return clip
    return TF.resize(clip, list(size), antialias=True)


try:  # wheels bundle libjpeg-turbo for Linux, macOS and Windows; Pillow is the fallback
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    _simplejpeg = None
