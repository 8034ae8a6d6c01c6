"""Clip sampling and augmentation on ``uint8`` video tensors ``(T, C, H, W)``.

Temporal functions return frame indices (so only those frames are decoded); spatial functions work
on decoded tensors with :mod:`torchvision.transforms.v2.functional`. All randomness comes from
torch's global RNG (or an explicit ``generator``), so a DataLoader's per-worker seeding makes a run
reproducible and a given ``torch.manual_seed`` gives the same clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "randint",
    "clip_indices",
    "random_clip_indices",
    "uniform_clip_indices",
    "segment_indices",
    "random_short_side",
    "random_crop",
    "random_crop_origin",
    "center_crop",
    "spatial_crop",
    "spatial_crop_origin",
    "random_horizontal_flip",
    "normalize_clips",
    "normalize_video",
    "finish_clips",
    "pack_pathways",
]

DEFAULT_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
DEFAULT_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


def randint(low: int, high: int, generator: torch.Generator | None = None) -> int:
    """A uniform integer in ``[low, high]`` (both inclusive) from torch's RNG."""
    if high < low:
        raise ValueError(f"randint: empty range [{low}, {high}]")
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


# --------------------------------------------------------------------------------------------
# Temporal sampling (returns frame indices)
# --------------------------------------------------------------------------------------------
def clip_indices(num_video_frames: int, num_frames: int, stride: int, start: int) -> list[int]:
    """The ``num_frames`` indices of the window of ``num_frames * stride`` frames starting at ``start``.

    The reference's rule (spec section 4): the indices are ``linspace(start, start + T*r - 1, T)``,
    clamped to the video and truncated to integers (its ``.long()``). The window, not the first-to-
    last index distance, is what a clip spans, so a coarse clip at the top stride ``r0 * T0 // T``
    covers exactly the baseline's ``T0 * r0`` frames. A window longer than the video repeats the
    last frame (clamping keeps motion direction intact, where looping would jump back).
    """
    if num_video_frames < 1:
        raise ValueError(f"video has no frames ({num_video_frames})")
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames and stride must be positive, got {num_frames}, {stride}")
    last = num_video_frames - 1
    end = start + num_frames * stride - 1
    if num_frames == 1:
        points = [float(start)]
    else:
        step = (end - start) / (num_frames - 1)
        points = [start + i * step for i in range(num_frames)]
    # Clamp, then truncate toward zero as torch's .long() does.
    return [int(min(max(p, 0.0), float(last))) for p in points]


def random_clip_indices(
    num_video_frames: int,
    num_frames: int,
    stride_range: tuple[int, int],
    generator: torch.Generator | None = None,
) -> tuple[list[int], int]:
    """Training sampling: a stride drawn uniformly from ``stride_range`` (inclusive), then a window
    of ``num_frames * stride`` frames at a uniformly random start (see :func:`clip_indices`).

    Returns:
        ``(indices, stride)``.
    """
    stride = randint(stride_range[0], stride_range[1], generator)
    start = randint(0, max(num_video_frames - num_frames * stride, 0), generator)
    return clip_indices(num_video_frames, num_frames, stride, start), stride


def uniform_clip_indices(
    num_video_frames: int, num_frames: int, stride: int, clip_index: int, num_clips: int
) -> list[int]:
    """Test sampling: window ``clip_index`` of ``num_clips`` evenly spaced windows of
    ``num_frames * stride`` frames (one clip: the centre window)."""
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} outside [0, {num_clips})")
    delta = max(num_video_frames - num_frames * stride, 0)
    start = delta // 2 if num_clips == 1 else round(delta * clip_index / (num_clips - 1))
    return clip_indices(num_video_frames, num_frames, stride, start)


def segment_indices(
    num_video_frames: int,
    num_frames: int,
    train: bool,
    clip_index: int = 0,
    num_clips: int = 1,
    generator: torch.Generator | None = None,
) -> list[int]:
    """TSN-style sampling (Something-Something): ``num_frames`` equal segments over the whole video.

    Training draws one random frame per segment; testing takes the middle frame of every
    segment, or with ``num_clips > 1`` the frame at ``(clip_index + 0.5) / num_clips`` of it.
    """
    if num_video_frames < 1:
        raise ValueError(f"video has no frames ({num_video_frames})")
    seg = num_video_frames / num_frames
    last = num_video_frames - 1
    out = []
    for i in range(num_frames):
        lo = int(seg * i)
        hi = max(int(seg * (i + 1)) - 1, lo)
        if train:
            index = randint(lo, hi, generator)
        else:
            index = int(seg * i + seg * (clip_index + 0.5) / num_clips)
        out.append(min(index, last))
    return out


# --------------------------------------------------------------------------------------------
# Spatial
# --------------------------------------------------------------------------------------------
def random_short_side(
    jitter_range: tuple[int, int], even: bool = True, generator: torch.Generator | None = None
) -> int:
    """A short-side size drawn uniformly from ``jitter_range`` (inclusive).

    With ``even`` the draw is among the even sizes of the range when it has any, because
    decode-time scalers produce even sizes (see :func:`~.decoders.resized_size`); the result
    then is exactly the size decoded and always inside the range.
    """
    lo, hi = int(jitter_range[0]), int(jitter_range[1])
    if even:
        first_even = lo + (lo % 2)
        if first_even <= hi:
            return first_even + 2 * randint(0, (hi - first_even) // 2, generator)
    return randint(lo, hi, generator)


def _check_fits(height: int, width: int, size: int) -> tuple[int, int]:
    if height < size or width < size:
        raise ValueError(f"crop {size}x{size} does not fit a {height}x{width} frame")
    return height, width


def random_crop(video: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``size x size`` crop, the same for every frame."""
    top, left = random_crop_origin(video.shape[-2], video.shape[-1], size, generator)
    return video[..., top : top + size, left : left + size]


def random_crop_origin(height: int, width: int, size: int, generator: torch.Generator | None = None) -> tuple[int, int]:
    """``(top, left)`` of :func:`random_crop` in a ``height x width`` frame, drawn before decoding so a
    reader can decode only the crop (the same draws, so the same crop)."""
    _check_fits(height, width, size)
    top = randint(0, height - size, generator)
    left = randint(0, width - size, generator)
    return top, left


def center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` crop."""
    return spatial_crop(video, size, 1, 3)


def spatial_crop(video: torch.Tensor, size: int, crop_index: int, num_crops: int) -> torch.Tensor:
    """Test crop ``crop_index`` of ``num_crops`` (1 or 3) along the long side.

    One crop is the centre; three are left/centre/right for landscape frames (top/centre/bottom
    for portrait ones), each centred on the short side.
    """
    top, left = spatial_crop_origin(video.shape[-2], video.shape[-1], size, crop_index, num_crops)
    return video[..., top : top + size, left : left + size]


def spatial_crop_origin(height: int, width: int, size: int, crop_index: int, num_crops: int) -> tuple[int, int]:
    """``(top, left)`` of :func:`spatial_crop` in a ``height x width`` frame (known before decoding)."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if not 0 <= crop_index < num_crops:
        raise ValueError(f"crop_index {crop_index} outside [0, {num_crops})")
    _check_fits(height, width, size)
    position = 1 if num_crops == 1 else crop_index  # 0: start, 1: centre, 2: end of the long side
    top, left = (height - size) // 2, (width - size) // 2
    if width >= height:
        left = (0, (width - size) // 2, width - size)[position]
    else:
        top = (0, (height - size) // 2, height - size)[position]
    return top, left


def random_horizontal_flip(
    video: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror all frames left-right with probability ``p``.

    Do not use it for classes defined by left/right direction (Something-Something, the
    synthetic moving/rotating classes): flipping changes their label.
    """
    if p > 0 and torch.rand((1,), generator=generator).item() < p:
        return video.flip(-1)
    return video


def normalize_clips(
    video: torch.Tensor,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> torch.Tensor:
    """``uint8`` clips ``(..., C, T, H, W)`` (one clip or a batch) -> ``float32`` ``(x / 255 - mean) / std``.

    Runs where ``video`` is: on the training device, the loader workers only decode and crop, and
    move ``uint8`` (4x fewer bytes than ``float32``). One multiply and one subtract per element.
    """
    if video.dtype != torch.uint8:
        raise TypeError(f"normalize_clips expects uint8 clips, got {video.dtype}")
    channels = len(mean)
    if video.dim() < 4 or video.shape[-4] != channels or len(std) != channels:
        raise ValueError(
            f"normalize_clips: expected (..., C={channels}, T, H, W) clips and {channels} std values, "
            f"got shape {tuple(video.shape)} and std {tuple(std)}"
        )
    mean64 = torch.as_tensor(mean, dtype=torch.float64)
    std64 = torch.as_tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std64)).to(torch.float32).view(channels, 1, 1, 1).to(video.device)
    shift = (mean64 / std64).to(torch.float32).view(channels, 1, 1, 1).to(video.device)
    return video.to(torch.float32).mul_(scale).sub_(shift)


def normalize_video(
    video: torch.Tensor,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> torch.Tensor:
    """``uint8`` ``(T, C, H, W)`` -> ``float32`` ``(C, T, H, W)``, scaled to [0, 1] then standardised."""
    if video.dtype != torch.uint8:
        raise TypeError(f"normalize_video expects uint8 frames, got {video.dtype}")
    return normalize_clips(video.permute(1, 0, 2, 3), mean, std)


def finish_clips(
    video: torch.Tensor,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
    slowfast_alpha: int | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """The model's input from ``uint8`` clips ``(C, T, H, W)`` or ``(B, C, T, H, W)``.

    :func:`normalize_clips`, then SlowFast's ``[slow, fast]`` (:func:`pack_pathways`) when
    ``slowfast_alpha`` is set. The one function for both places clips are finished: the training
    device (:class:`~.datamodule.VideoDataModule` moves ``uint8`` batches and finishes them there)
    and a dataset built with ``normalize=True`` (finished in the loader worker).
    """
    out = normalize_clips(video, mean, std)
    return pack_pathways(out, slowfast_alpha) if slowfast_alpha else out


def pack_pathways(video: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """Split a ``(C, T, H, W)`` (or batched ``(B, C, T, H, W)``) clip into SlowFast's ``[slow, fast]``.

    The slow pathway takes ``T // alpha`` frames evenly spread over the clip,
    ``linspace(0, T-1, T // alpha)`` truncated to integers: PySlowFast's rule, with which the public
    SlowFast checkpoints were trained (every alpha-th frame would shift the slow clip early).

    Raises:
        ValueError: ``T`` is not a positive multiple of ``alpha`` (the fast pathway must be exactly
            ``alpha`` times the slow one).
    """
    time_dim = video.dim() - 3
    t = video.shape[time_dim]
    if alpha < 1 or t < alpha or t % alpha:
        raise ValueError(
            f"pack_pathways: T={t} frames is not a positive multiple of alpha={alpha} (SlowFast's fast "
            "pathway has alpha times the slow one's frames)"
        )
    index = torch.linspace(0, t - 1, t // alpha, device=video.device).long()
    return [video.index_select(time_dim, index), video]
