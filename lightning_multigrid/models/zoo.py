"""The model zoo by name: every family registered, one import for all of it.

Importing this module registers the pytorchvideo networks
(:mod:`~lightning_multigrid.models.pytorchvideo_zoo`), I3D with non-local blocks
(:mod:`~lightning_multigrid.models.nonlocal_i3d`) and torchvision's video networks
(:mod:`~lightning_multigrid.models.torchvision_zoo`); it re-exports every public name of
:mod:`~lightning_multigrid.models.registry` (which owns ``build_model`` and the requirements),
plus :class:`MultiPathwayNet` and ``pack_pathways``.
"""

from __future__ import annotations

# Registration happens on import; the order is the order of list_models().
from lightning_multigrid.models import nonlocal_i3d as _nonlocal_i3d  # noqa: F401  (registers)
from lightning_multigrid.models import registry as _registry
from lightning_multigrid.models import torchvision_zoo as _torchvision_zoo  # noqa: F401  (registers)
from lightning_multigrid.models.pytorchvideo_zoo import MultiPathwayNet, pack_pathways
from lightning_multigrid.models.registry import *  # noqa: F403  (exactly registry.__all__)

__all__ = ["MultiPathwayNet", "pack_pathways"]
__all__ += _registry.__all__
