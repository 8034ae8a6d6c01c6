"""Decoding on the training device (issue #20): loader workers read encoded JPEG frames and choose
each clip's frames and crop; the training process decodes the whole batch where the model runs.

``VideoDataModule(decode_on="device")`` (frame folders or packed files written by ``prepare``):

* a worker's item holds an :class:`EncodedClip` (the ``T`` frames' JPEG bytes, the crop region in
  the stored level's pixels, the output size, the flip), drawn with the same random numbers as
  the worker path, so a seed gives the same clips either way;
* :func:`collate_clips` batches them (plain tensors as ``default_collate`` does);
* :func:`decode_batch` runs in ``transfer_batch_to_device`` (training, evaluation, precise BN and
  the multigrid probe all pass there): one batched ``torchvision.io.decode_jpeg`` for every frame of
  the batch on the device, then per clip the region is cut, resized to ``S x S`` (antialiased,
  as the workers do) and flipped. On CUDA the decode is followed by an explicit synchronisation:
  torchvision's batched GPU decode on GPUs with a hardware JPEG engine was reported to ignore
  stream order and corrupt memory (vision#9606); waiting for it costs little against a training
  step. On the CPU the same path gives the worker path's pixels (libjpeg-turbo both), tested.

A frame that cannot be decoded here cannot be swapped for another video as a worker would: its
clip becomes zeros, is logged, and in evaluation batches is marked ``"failed"`` (left out).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import default_collate

__all__ = ["EncodedBatch", "EncodedClip", "collate_clips", "decode_batch"]

logger = logging.getLogger("lightning_multigrid.data.device_decode")


@dataclass
class EncodedClip:
    """One clip as a worker leaves it for the device: ``frames`` (``T`` JPEG byte strings; ``None``
    for an evaluation placeholder), the ``region`` ``(y0, y1, x0, x1)`` to cut from each decoded
    frame, the ``out`` size ``(height, width)`` it is resized to, and whether it is ``flip``-ped."""

    frames: list[bytes] | None
    region: tuple[int, int, int, int]
    out: tuple[int, int]
    flip: bool = False
    num_frames: int = 0

    def __post_init__(self) -> None:
        if self.frames is not None:
            self.num_frames = len(self.frames)


@dataclass
class EncodedBatch:
    """Collated :class:`EncodedClip` objects (a list: clips keep their own regions)."""

    clips: list[EncodedClip]

    def to(self, *args: Any, **kwargs: Any) -> EncodedBatch:  # Lightning moves batches with .to()
        return self

    def __len__(self) -> int:
        return len(self.clips)


def collate_clips(items: Sequence[dict[str, Any]]) -> Any:
    """``default_collate``, except that :class:`EncodedClip` videos become one :class:`EncodedBatch`."""
    if items and isinstance(items[0], dict) and isinstance(items[0].get("video"), EncodedClip):
        rest = default_collate([{k: v for k, v in item.items() if k != "video"} for item in items])
        return {**rest, "video": EncodedBatch([item["video"] for item in items])}
    return default_collate(list(items))


def decode_batch(batch: EncodedBatch, device: torch.device | str) -> tuple[torch.Tensor, list[int]]:
    """``uint8`` ``(B, C, T, S, S)`` on ``device`` from an :class:`EncodedBatch`, and the positions of
    clips that could not be decoded (zeros in the result)."""
    device = torch.device(device)
    clips = batch.clips
    out = clips[0].out
    if any(c.out != out for c in clips):
        raise ValueError(f"clips of one batch differ in output size: {sorted({c.out for c in clips})}")
    frames = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for c in clips if c.frames for data in c.frames]
    try:
        decoded = _decode(frames, device)
        failed: list[int] = []
    except RuntimeError:  # find the broken clips; the others are still decoded together
        decoded, failed = _decode_clipwise(clips, device)
    result = torch.zeros(len(clips), 3, max(c.num_frames for c in clips), *out, dtype=torch.uint8, device=device)
    position = 0
    for row, clip in enumerate(clips):
        if not clip.frames:
            continue
        count, position = clip.num_frames, position + clip.num_frames
        if row in failed:
            continue
        y0, y1, x0, x1 = clip.region
        video = torch.stack(decoded[position - count : position])[..., y0:y1, x0:x1]
        if tuple(video.shape[-2:]) != out:
            video = TF.resize(video, list(out), antialias=True)
        result[row] = (video.flip(-1) if clip.flip else video).permute(1, 0, 2, 3)
    return result, failed


def _decode(frames: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg  # noqa: PLC0415 - heavy import

    if not frames:
        return []
    if device.type == "cuda":
        decoded = decode_jpeg(frames, mode=ImageReadMode.RGB, device=device)
        torch.cuda.current_stream(device).synchronize()  # vision#9606: do not trust stream order
        return list(decoded)
    return [f.to(device) for f in decode_jpeg(frames, mode=ImageReadMode.RGB)]


def _decode_clipwise(clips: list[EncodedClip], device: torch.device) -> tuple[list[torch.Tensor], list[int]]:
    decoded: list[torch.Tensor] = []
    failed = []
    for row, clip in enumerate(clips):
        if not clip.frames:
            continue
        tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in clip.frames]
        try:
            decoded.extend(_decode(tensors, device))
        except RuntimeError as exc:
            logger.warning("device decoding: clip %d of the batch has an undecodable frame (%s); zeros instead", row, exc)
            failed.append(row)
            decoded.extend([torch.zeros(0, dtype=torch.uint8)] * clip.num_frames)
    return decoded, failed
