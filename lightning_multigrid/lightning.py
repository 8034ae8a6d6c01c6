"""This package's Lightning classes for the ``lightning.pytorch`` namespace (``import lightning as L``).

``L.Trainer`` accepts only ``lightning.pytorch`` modules, so users of that namespace import from here::

    import lightning as L
    from lightning_multigrid import MultigridCallback
    from lightning_multigrid.lightning import VideoClassifier, VideoDataModule

The classes are the same definitions as :mod:`lightning_multigrid`'s (see
:mod:`lightning_multigrid.namespace`); the callback works under either namespace as it is.
"""

from __future__ import annotations

from lightning_multigrid.data.datamodule import VideoDataDefinition
from lightning_multigrid.models.classifier import VideoClassifierDefinition
from lightning_multigrid.namespace import namespaced_class

__all__ = ["VideoClassifier", "VideoDataModule"]

VideoDataModule = namespaced_class(VideoDataDefinition, "VideoDataModule", "LightningDataModule", "lightning", __name__)
VideoClassifier = namespaced_class(VideoClassifierDefinition, "VideoClassifier", "LightningModule", "lightning", __name__)
