"""lightning-multigrid: multigrid training (Wu et al., CVPR 2020) as a PyTorch Lightning callback.

The public API is re-exported here. Attributes are resolved lazily (PEP 562) so that pure-Python
parts such as ``lightning_multigrid.schedule`` and the ``schedule`` command import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BaseRecipe": "lightning_multigrid.schedule",
    "MultigridSchedule": "lightning_multigrid.schedule",
    "Stage": "lightning_multigrid.schedule",
    "ClipKey": "lightning_multigrid.keys",
    "ClipShape": "lightning_multigrid.keys",
    "accepts_clip_keys": "lightning_multigrid.keys",
    "unpack_key": "lightning_multigrid.keys",
    "keyed_dataset": "lightning_multigrid.keys",
    "ShapedTransformDataset": "lightning_multigrid.adapters",
    "LrPolicy": "lightning_multigrid.lr",
    "MultigridBatchSampler": "lightning_multigrid.sampler",
    "SeededRandomSampler": "lightning_multigrid.sampler",
    "MultigridCallback": "lightning_multigrid.callback",
    "SplitBatchNorm3d": "lightning_multigrid.batchnorm",
    "convert_to_split_batchnorm": "lightning_multigrid.batchnorm",
    "update_bn_stats": "lightning_multigrid.precise_bn",
    "VideoClassifier": "lightning_multigrid.models",
    "build_model": "lightning_multigrid.models",
    "list_models": "lightning_multigrid.models",
    "load_checkpoint": "lightning_multigrid.models",
    "VideoDataModule": "lightning_multigrid.data",
    "make_synthetic_dataset": "lightning_multigrid.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_multigrid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
