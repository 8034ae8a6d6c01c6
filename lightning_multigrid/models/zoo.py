"""The model zoo by name: importing this module registers every family with :mod:`.registry`.

The pytorchvideo networks (:mod:`~lightning_multigrid.models.pytorchvideo_zoo`, registered first
through the non-local module's import), I3D with non-local blocks
(:mod:`~lightning_multigrid.models.nonlocal_i3d`) and torchvision's video networks
(:mod:`~lightning_multigrid.models.torchvision_zoo`), in the order :func:`list_models` gives.
:mod:`lightning_multigrid.models` imports this module, so any import from the package sees the
whole zoo; ``build_model`` and the rest of the registry's names live in :mod:`.registry`.
"""

from __future__ import annotations

# Registration happens on import; the order is the order of list_models().
from lightning_multigrid.models import nonlocal_i3d, pytorchvideo_zoo, torchvision_zoo

__all__ = ["FAMILIES"]

#: The modules that registered their networks, in registration order.
FAMILIES = (pytorchvideo_zoo, nonlocal_i3d, torchvision_zoo)
