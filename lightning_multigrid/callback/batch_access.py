"""Where a training batch keeps its clips: one rule for precise BN, the setup probe and tier-3
on-device resampling (:mod:`lightning_multigrid.adapters`): ``batch["video"]`` (dict batches),
``batch[0]`` (tuples and lists) or the batch itself."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["batch_input", "batch_video", "replace_batch_video"]


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
