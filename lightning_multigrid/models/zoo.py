"""The model zoo by name: every family registered, one import for all of it.

Importing this module registers the pytorchvideo networks
(:mod:`~lightning_multigrid.models.pytorchvideo_zoo`), I3D with non-local blocks
(:mod:`~lightning_multigrid.models.nonlocal_i3d`) and torchvision's video networks
(:mod:`~lightning_multigrid.models.torchvision_zoo`); the names it re-exports live in
:mod:`~lightning_multigrid.models.registry`, which owns ``build_model`` and the requirements.
"""

from __future__ import annotations

# Registration happens on import; the order is the order of list_models().
from lightning_multigrid.models import nonlocal_i3d as _nonlocal_i3d  # noqa: F401  (registers)
from lightning_multigrid.models import torchvision_zoo as _torchvision_zoo  # noqa: F401  (registers)
from lightning_multigrid.models.pytorchvideo_zoo import MultiPathwayNet, pack_pathways
from lightning_multigrid.models.registry import (
    REQUIREMENTS_ATTR,
    ModelRequirements,
    ModelSpec,
    build_model,
    check_clip_shape,
    check_schedule,
    get_spec,
    list_models,
    model_requirements,
    pretrained_checkpoint_path,
)

__all__ = [
    "REQUIREMENTS_ATTR",
    "ModelRequirements",
    "ModelSpec",
    "MultiPathwayNet",
    "build_model",
    "check_clip_shape",
    "check_schedule",
    "get_spec",
    "list_models",
    "model_requirements",
    "pack_pathways",
    "pretrained_checkpoint_path",
]
