"""Video networks for multigrid training: a model zoo (pytorchvideo, I3D-NL, torchvision),
checkpoint loading, and the :class:`VideoClassifier` LightningModule."""

from lightning_multigrid.data.transforms import pack_pathways
from lightning_multigrid.models import zoo as _zoo  # noqa: F401  (registers every family)
from lightning_multigrid.models.checkpoints import (
    CheckpointLoadResult,
    classifier_name,
    load_checkpoint,
)
from lightning_multigrid.models.classifier import DefaultSGD, VideoClassifier
from lightning_multigrid.models.multiview import aggregate_views
from lightning_multigrid.models.registry import (
    ModelSpec,
    build_model,
    check_schedule,
    get_spec,
    list_models,
    model_requirements,
    pretrained_checkpoint_path,
)
from lightning_multigrid.schedule.model_requirements import ModelRequirements, check_clip_shape

__all__ = [
    "CheckpointLoadResult",
    "DefaultSGD",
    "ModelRequirements",
    "ModelSpec",
    "VideoClassifier",
    "aggregate_views",
    "build_model",
    "check_clip_shape",
    "check_schedule",
    "classifier_name",
    "get_spec",
    "list_models",
    "load_checkpoint",
    "model_requirements",
    "pack_pathways",
    "pretrained_checkpoint_path",
]
