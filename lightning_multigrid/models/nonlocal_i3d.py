"""I3D with non-local blocks (I3D-NL R50, Wang et al., CVPR 2018): the paper's third model family.

The network is pytorchvideo's I3D R50 (``create_resnet`` with the ``i3d_r50`` hub arguments) with
pytorchvideo's own :class:`~pytorchvideo.layers.nonlocal_net.NonLocal` layer added after some
residual blocks, as in the SlowFast reference config ``Kinetics/c2/I3D_NLN_8x8_R50``:

* ``NONLOCAL.LOCATION [[[]], [[1, 3]], [[1, 3, 5]], [[]]]``: after blocks 1 and 3 of res3 and
  blocks 1, 3 and 5 of res4 (every other block), none in res2 and res5;
* ``INSTANTIATION: softmax``, inner width half the block's output width, and a ``[1, 2, 2]``
  max-pool on the key/value side (the reference default ``NONLOCAL.POOL``);
* the block's final BN starts at zero (``ZERO_INIT_FINAL_BN``), so each non-local block begins
  as the identity and an I3D R50 checkpoint gives the same outputs before training.

The non-local block is attached to its residual block (``res_blocks.<i>.nonlocal_block``), so
every other key is the one of ``i3d_r50``: an ``I3D_8x8_R50.pyth`` loads into ``i3d_nl_r50``
with only the non-local tensors reported missing (the reference initialises I3D-NL that way).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from pytorchvideo.layers.nonlocal_net import NonLocal, create_nonlocal
from pytorchvideo.models.resnet import ResBlock, create_resnet
from pytorchvideo.models.weight_init import init_net_weights

from lightning_multigrid.models.pytorchvideo_zoo import (
    I3D_KWARGS,
    TEMPORAL_POOL,
    TINY_RESNET_KWARGS,
    assemble_pytorchvideo,
    res_stages,
)
from lightning_multigrid.models.registry import ModelSpec, register
from lightning_multigrid.schedule.model_requirements import ModelRequirements

__all__ = ["NONLOCAL_LOCATIONS", "ResBlockWithNonLocal", "add_nonlocal_blocks"]

#: Blocks followed by a non-local block, per residual stage res2..res5 (I3D_NLN_8x8_R50).
NONLOCAL_LOCATIONS: tuple[tuple[int, ...], ...] = ((), (1, 3), (1, 3, 5), ())
# Key/value max-pool of the non-local blocks (temporal, height, width).
_NONLOCAL_POOL = (1, 2, 2)


class ResBlockWithNonLocal(ResBlock):
    """pytorchvideo's ``ResBlock`` followed by a non-local block (kept as ``nonlocal_block``)."""

    nonlocal_block: NonLocal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlocal_block(super().forward(x))


def add_nonlocal_blocks(
    model: nn.Module,
    locations: Sequence[Sequence[int]] = NONLOCAL_LOCATIONS,
    pool: tuple[int, int, int] = _NONLOCAL_POOL,
    instantiation: str = "softmax",
) -> None:
    """Attach a non-local block after the residual blocks named in ``locations`` (per stage).

    Locations beyond a stage's (possibly cut) depth are skipped. The blocks get pytorchvideo's
    ResNet initialisation with their final BN at zero, so they start as the identity.
    """
    stages = res_stages(model)
    if len(locations) != len(stages):
        raise ValueError(f"non-local locations need {len(stages)} stages, got {len(locations)}")
    for stage_locations, (stage,) in zip(locations, stages, strict=True):
        for index in stage_locations:
            if index >= len(stage.res_blocks):
                continue
            block = stage.res_blocks[index]
            width = block.branch2.conv_c.out_channels
            nonlocal_block = create_nonlocal(dim_in=width, dim_inner=width // 2, pool_size=pool,
                                             instantiation=instantiation)
            nonlocal_block.norm.block_final_bn = True  # zeroed by init_net_weights
            init_net_weights(nonlocal_block, style="resnet")
            block.__class__ = ResBlockWithNonLocal
            block.nonlocal_block = nonlocal_block


def _assemble_i3d_nl(spec: ModelSpec, num_classes: int, dropout: float | None, overrides: dict[str, Any]) -> nn.Module:
    locations = overrides.pop("nonlocal_locations", spec.extras["nonlocal_locations"])
    model = assemble_pytorchvideo(spec, num_classes, dropout, overrides)
    add_nonlocal_blocks(model, locations)
    return model


_spec = partial(ModelSpec, family="i3d_nl", builder=create_resnet, assemble=_assemble_i3d_nl)

register(
    _spec(
        name="i3d_nl_r50",
        kwargs=I3D_KWARGS,
        requirements=ModelRequirements(
            "i3d_nl_r50", num_frames=8, crop_size=224, sampling_rate=8, checkpoint_name="I3D_NL_8x8_R50.pyth",
            **TEMPORAL_POOL,
        ),
        extras={"nonlocal_locations": NONLOCAL_LOCATIONS},
        description="I3D-NL R50 8x8, non-local blocks in res3/res4 (K400 74.0 top-1 in the SlowFast zoo)",
    ),
    _spec(
        name="i3d_nl_tiny",
        kwargs={**I3D_KWARGS, **TINY_RESNET_KWARGS},
        requirements=ModelRequirements(
            "i3d_nl_tiny", num_frames=8, crop_size=64, sampling_rate=4, checkpoint_name="I3D_NL_TINY.pyth",
            **TEMPORAL_POOL,
        ),
        # Two blocks in res3/res4 so block 1 of each carries a non-local block, as in the full model.
        stage_depths=(1, 2, 2, 1),
        extras={"nonlocal_locations": NONLOCAL_LOCATIONS},
        description="tiny I3D-NL for CPU tests and demos",
    ),
)
