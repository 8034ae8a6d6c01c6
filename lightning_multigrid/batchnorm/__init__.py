"""BatchNorm for multigrid: split BN (:mod:`.split`), whole-model conversion and grouping
(:mod:`.convert`) and precise BN (:mod:`.precise`).

The public names are re-exported here, so ``from lightning_multigrid.batchnorm import
SplitBatchNorm3d`` keeps working.
"""

from lightning_multigrid.batchnorm.convert import (
    apply_batchnorm_plan,
    convert_to_split_batchnorm,
    merge_split_statistics,
    new_sync_groups,
    revert_to_batchnorm,
    set_num_splits,
    set_sync_group,
)
from lightning_multigrid.batchnorm.precise import update_bn_stats
from lightning_multigrid.batchnorm.split import SplitBatchNorm3d, merge_moments

__all__ = [
    "SplitBatchNorm3d",
    "apply_batchnorm_plan",
    "convert_to_split_batchnorm",
    "merge_moments",
    "merge_split_statistics",
    "new_sync_groups",
    "revert_to_batchnorm",
    "set_num_splits",
    "set_sync_group",
    "update_bn_stats",
]
