"""This package's Lightning classes for the ``pytorch_lightning`` namespace (``import pytorch_lightning as pl``).

The mirror of :mod:`lightning_multigrid.lightning`; with the default settings these are the very
classes :mod:`lightning_multigrid` exports.
"""

from __future__ import annotations

from lightning_multigrid.data.datamodule import VideoDataDefinition
from lightning_multigrid.models.classifier import VideoClassifierDefinition
from lightning_multigrid.namespace import namespaced_class

__all__ = ["VideoClassifier", "VideoDataModule"]

VideoDataModule = namespaced_class(VideoDataDefinition, "VideoDataModule", "LightningDataModule", "pytorch_lightning", __name__)
VideoClassifier = namespaced_class(VideoClassifierDefinition, "VideoClassifier", "LightningModule", "pytorch_lightning", __name__)
