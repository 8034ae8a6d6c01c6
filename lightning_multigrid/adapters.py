"""Multigrid for datasets that know nothing of ``(index, shape)`` keys: three tiers.

1. **Key-aware** datasets (``accepts_clip_keys = True``, see :mod:`lightning_multigrid.keys`) decode
   exactly the grid's shape: the data cost shrinks with the grid. ``Subset``/``ConcatDataset`` of
   them work as they are.
2. **Datasets that take a transform**: :class:`ShapedTransformDataset` sets the dataset's transform
   for each item's grid shape (the idea of timm's scheduled transforms), so a few lines adapt a
   dataset: its decode still costs the base shape's, its transform (resize, crop, frame choice)
   produces the grid's shape.
3. **Datasets that cannot change**: they return base-shape clips; the batch sampler still scales
   the batch, and :class:`~lightning_multigrid.MultigridCallback` resamples each batch on the training
   device to the grid's shape with :func:`resample_clips` (the compute saving holds, the data cost
   does not shrink). The callback picks this tier by itself for a dataset without keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lightning_multigrid.keys import ClipShape, KeyedView, unpack_key

__all__ = ["ShapedTransformDataset", "BaseShapeDataset", "check_base_clips", "resample_clips", "batch_input", "batch_video", "replace_batch_video"]


class ShapedTransformDataset(torch.utils.data.Dataset):
    """Tier 2: ``dataset.<attribute> = make_transform(shape)`` before each item is read.

    Args:
        dataset: a map-style dataset that applies ``dataset.<attribute>`` (e.g. ``transform``) to
            the clip it decodes.
        make_transform: builds the transform for a :class:`ClipShape` (frames to keep, crop size,
            rescale range); called once per shape and cached.
        base_shape: the shape a plain integer index means (the baseline's).
        attribute: the dataset's transform attribute.
    """

    accepts_clip_keys = True

    def __init__(
        self,
        dataset: Any,
        make_transform: Callable[[ClipShape], Callable[..., Any]],
        base_shape: ClipShape,
        attribute: str = "transform",
    ) -> None:
        if not hasattr(dataset, attribute):
            raise TypeError(f"ShapedTransformDataset: {type(dataset).__name__} has no `{attribute}` attribute to set")
        self.dataset = dataset
        self.make_transform = make_transform
        self.base_shape = base_shape
        self.attribute = attribute
        self._transforms: dict[ClipShape, Callable[..., Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        index, shape = unpack_key(key, self.base_shape)
        transform = self._transforms.get(shape)
        if transform is None:
            transform = self._transforms[shape] = self.make_transform(shape)
        setattr(self.dataset, self.attribute, transform)
        return self.dataset[index]


class BaseShapeDataset(KeyedView, torch.utils.data.Dataset):
    """Tier 3: reads a key's index from a dataset that always returns its base-shape clip."""

    def __init__(self, dataset: Any, base_shape: ClipShape) -> None:
        super().__init__(dataset, dataset)
        self.base_shape = base_shape

    @property
    def dataset(self) -> Any:
        return self.wrapped

    def __getitem__(self, key: Any) -> Any:
        index, _ = unpack_key(key, self.base_shape)
        return self.wrapped[index]


def check_base_clips(dataset: Any, base: ClipShape, collate: Any) -> None:
    """Refuse a tier-3 dataset whose clips are not the base shape the run was given.

    Its clips are resampled from the declared ``(T0, S0)``: clips of another size would be silently
    stretched (upsampled clips cost several times the compute) or cropped. One item is read.
    """
    try:
        video = batch_video(collate([dataset[0]]))
    except TypeError:
        return  # not one clip tensor (e.g. SlowFast pathways): the resampling step reports that
    _, _, t, h, w = video.shape
    if (t, h, w) != (base.num_frames, base.crop_size, base.crop_size):
        raise ValueError(
            f"MultigridCallback: the train dataset {type(dataset).__name__} ignores clip keys, so its clips are "
            f"resampled from the declared base shape T={base.num_frames}, crop {base.crop_size}x{base.crop_size}, "
            f"but its first clip is T={t}, {h}x{w}. Declare the clips' real shape (the dataset's base_shape, or "
            f"MultigridCallback(num_frames={t}, crop_size={h})) or make the dataset return that shape"
        )


def batch_input(batch: Any) -> Any:
    """The model input of a batch: ``batch["video"]``, ``batch[0]`` or the batch itself (one rule for
    precise BN, the setup probe and on-device resampling)."""
    if isinstance(batch, dict):
        return batch["video"]
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def batch_video(batch: Any) -> torch.Tensor:
    """The clip tensor of a batch (:func:`batch_input`), which must be one ``(B, C, T, H, W)`` tensor."""
    video = batch_input(batch)
    if not isinstance(video, torch.Tensor) or video.dim() != 5:
        raise TypeError(
            "on-device resampling needs the batch's clips as one (B, C, T, H, W) tensor in batch['video'] "
            f"or batch[0]; got {type(video).__name__}"
        )
    return video


def replace_batch_video(batch: Any, video: torch.Tensor) -> None:
    """Put ``video`` back where :func:`batch_video` found it, in place (the hooks cannot return a batch)."""
    if isinstance(batch, dict):
        batch["video"] = video
    elif isinstance(batch, list):
        batch[0] = video
    else:
        raise TypeError(
            f"on-device resampling changes the batch in place, which a {type(batch).__name__} batch does not "
            "allow: return dict or list samples from the dataset"
        )


def resample_clips(video: torch.Tensor, base: ClipShape, shape: ClipShape, generator: torch.Generator) -> torch.Tensor:
    """Base-shape clips ``(B, C, T0, S0, S0)`` resampled on their device to ``shape``.

    Time: the grid's stride rule within the base clip. A stride ``r`` drawn per clip from
    ``shape.stride_range`` covers a window of ``T * r / r0`` of the base clip's frames (a base clip
    at stride ``r0`` spans ``T0 * r0`` frames, so at the top stride the window is the whole clip),
    at a random start, ``linspace`` over the window as the reference's window rule.
    Space: the base crop is resized to ``shape.crop_size``: the same field of view, i.e. the low end
    of the grid's rescale range ``[j_min * S / S0, j_max]``.
    """
    b, _, t0, h, w = video.shape
    r0 = base.stride_range[0]
    out_t = []
    for i in range(b):
        lo, hi = shape.stride_range
        stride = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        window = min(t0, max(shape.num_frames, shape.num_frames * stride // r0))
        start = int(torch.randint(0, t0 - window + 1, (1,), generator=generator))
        index = torch.linspace(start, start + window - 1, shape.num_frames).long().to(video.device)
        out_t.append(video[i].index_select(1, index))
    clips = torch.stack(out_t)
    if (h, w) == (shape.crop_size, shape.crop_size):
        return clips
    c, t = clips.shape[1], clips.shape[2]
    flat = clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    size = (shape.crop_size, shape.crop_size)
    resized = F.interpolate(flat.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.to(clips.dtype).reshape(b, t, c, *size).permute(0, 2, 1, 3, 4).contiguous()
