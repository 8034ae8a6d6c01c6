"""lightning-multigrid: multigrid training (Wu et al., CVPR 2020) as a PyTorch Lightning callback.

The public API is re-exported here. Attributes are resolved lazily (PEP 562) so that pure-Python
parts such as ``lightning_multigrid.schedule.multigrid`` and the ``schedule`` command import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BaseRecipe": "lightning_multigrid.schedule.multigrid",
    "MultigridSchedule": "lightning_multigrid.schedule.multigrid",
    "Stage": "lightning_multigrid.schedule.multigrid",
    "ClipKey": "lightning_multigrid.sampling.keys",
    "ClipShape": "lightning_multigrid.schedule.recipe",
    "accepts_clip_keys": "lightning_multigrid.sampling.keys",
    "unpack_key": "lightning_multigrid.sampling.keys",
    "keyed_dataset": "lightning_multigrid.sampling.keys",
    "ShapedTransformDataset": "lightning_multigrid.adapters",
    "LrPolicy": "lightning_multigrid.schedule.lr",
    "MultigridBatchSampler": "lightning_multigrid.sampling.sampler",
    "SeededRandomSampler": "lightning_multigrid.sampling.sampler",
    "MultigridCallback": "lightning_multigrid.callback.hooks",
    "SplitBatchNorm3d": "lightning_multigrid.batchnorm.convert",
    "convert_to_split_batchnorm": "lightning_multigrid.batchnorm.convert",
    "update_bn_stats": "lightning_multigrid.batchnorm.precise",
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
