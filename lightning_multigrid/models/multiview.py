"""Multi-view testing: every view (clip and crop) of a video scored, then averaged per video.

:class:`~lightning_multigrid.models.VideoClassifier` keeps each test clip's scores, label and
video id in a :class:`ViewScores` buffer, gathers them from every rank at the end of the test
epoch and averages them per video (:func:`aggregate_views`). A clip marked ``"failed"`` (a
placeholder for a video that could not be decoded) is dropped from its batch
(:func:`without_failed`), and its video is left out of the metrics entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multilabel_average_precision

__all__ = ["ViewScores", "aggregate_views", "video_level", "video_metrics", "video_paths", "without_failed"]


class ViewScores:
    """One test epoch's per-clip scores, labels and video ids, and the ids of failed views' videos."""

    def __init__(self) -> None:
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.index: list[torch.Tensor] = []
        self.failed: list[torch.Tensor] = []

    def add(self, scores: torch.Tensor, labels: torch.Tensor, video_index: Any) -> None:
        """Keep one batch of clips (``video_index``: their videos' ids, any integer array)."""
        self.scores.append(scores)
        self.labels.append(labels.detach())
        self.index.append(torch.as_tensor(video_index, device=scores.device).long().reshape(-1))


def without_failed(batch: dict[str, Any]) -> tuple[dict[str, Any] | None, torch.Tensor | None]:
    """The batch minus items marked ``"failed"`` (``None`` when all are), and the failed items' video ids.

    The ids are ``None`` when nothing failed or the batch has no ``"video_index"``.
    """
    failed = batch.get("failed")
    if failed is None:
        return batch, None
    failed = torch.as_tensor(failed, dtype=torch.bool).reshape(-1)
    failed_ids = None
    if "video_index" in batch and bool(failed.any()):
        index = torch.as_tensor(batch["video_index"]).long().reshape(-1)
        failed_ids = index[failed.to(index.device)]
    if not bool(failed.any()):
        return batch, failed_ids
    if bool(failed.all()):
        return None, failed_ids
    keep = ~failed

    def select(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == keep.shape[0]:
            return value[keep.to(value.device)]
        if isinstance(value, list):
            return [select(v) for v in value]
        return value

    return {key: select(value) for key, value in batch.items()}, failed_ids


def video_level(
    views: ViewScores, gather: Callable[[torch.Tensor], torch.Tensor], failed_videos: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every rank's views (``gather``, a collective), minus videos with a failed view, averaged per video."""
    scores = gather(torch.cat(views.scores))
    labels = gather(torch.cat(views.labels))
    index = gather(torch.cat(views.index))
    if failed_videos:  # a video with any failed view is left out entirely
        evaluated = ~torch.isin(index, torch.tensor(list(failed_videos), device=index.device))
        scores, labels, index = scores[evaluated], labels[evaluated], index[evaluated]
    return aggregate_views(index, scores, labels)


def video_metrics(
    scores: torch.Tensor, target: torch.Tensor, multi_label: bool, num_classes: int, topk: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Video-level ``test/mAP`` (multi-label) or ``test/top{k}`` accuracies."""
    if multi_label:
        return {"test/mAP": multilabel_average_precision(scores, target, num_labels=num_classes)}
    return {
        f"test/top{k}": multiclass_accuracy(scores, target, num_classes=num_classes, top_k=k, average="micro")
        for k in topk
    }


def aggregate_views(
    index: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average the scores of all clips (views) of each video.

    Args:
        index: ``(N,)`` video index of each clip.
        scores: ``(N, K)`` per-clip scores.
        labels: ``(N,)`` or ``(N, K)`` per-clip labels (equal for all clips of a video).

    Returns:
        ``(video_ids, video_scores, video_labels)`` sorted by video id.

    Raises:
        ValueError: when clips of one video carry different labels.
    """
    video_ids, inverse = torch.unique(index, return_inverse=True)
    sums = scores.new_zeros((len(video_ids), scores.shape[1])).index_add_(0, inverse, scores)
    counts = torch.bincount(inverse, minlength=len(video_ids)).to(scores.dtype).unsqueeze(1)
    video_labels = labels.new_zeros((len(video_ids), *labels.shape[1:]))
    video_labels[inverse] = labels
    differs = (video_labels[inverse] != labels).reshape(labels.shape[0], -1).any(dim=1)
    if bool(differs.any()):
        bad = sorted({int(v) for v in index[differs].tolist()})[:10]
        raise ValueError(f"multi-view test: clips of video(s) {bad} carry different labels")
    return video_ids, sums / counts, video_labels


def video_paths(loaders: Any, video_ids: list[int]) -> list[str | int]:
    """The test dataset's paths of ``video_ids`` (the ids themselves where it has no ``records``)."""
    loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
    records = getattr(getattr(loader, "dataset", None), "records", None)
    if records is None:
        return list(video_ids)
    return [records[i].path for i in video_ids]
