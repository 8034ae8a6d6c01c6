"""The pytorchvideo zoo: its networks made safe for every clip shape a multigrid schedule produces.

Every model is built with pytorchvideo's own builders (``pytorchvideo.models.create_*``) with the
same arguments as the ``pytorchvideo.models.hub`` entry of the same name, so the state dicts match
the public ``.pyth`` checkpoints key for key. Three things are changed, none of which has weights:

* the head pools adaptively (global average) instead of with a fixed ``AvgPool3d`` sized for the
  baseline clip, so any ``(T, S)`` runs (X3D's pool sits inside its projected-pool head and is
  swapped after building);
* the head has no activation, so training sees raw logits (X3D and R(2+1)D apply Softmax by default);
* SlowFast copies the list of pathways it is given, because pytorchvideo overwrites it in place.

The ``*_tiny`` variants use the same builders with narrow stems and one residual block per stage
(built at depth 50 and cut), for CPU tests and the demo: each has well under 1 M parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from pytorchvideo.models.csn import create_csn
from pytorchvideo.models.hub.csn import checkpoint_paths as _csn_urls
from pytorchvideo.models.hub.r2plus1d import checkpoint_paths as _r2plus1d_urls
from pytorchvideo.models.hub.resnet import checkpoint_paths as _resnet_urls
from pytorchvideo.models.hub.slowfast import checkpoint_paths as _slowfast_urls
from pytorchvideo.models.hub.x3d import checkpoint_paths as _x3d_urls
from pytorchvideo.models.net import Net
from pytorchvideo.models.r2plus1d import create_r2plus1d
from pytorchvideo.models.resnet import ResStage, create_resnet
from pytorchvideo.models.slowfast import create_slowfast
from pytorchvideo.models.x3d import create_x3d

# The one SlowFast packing rule, for the data and the model side.
from lightning_multigrid.models.registry import ModelSpec, register
from lightning_multigrid.schedule.model_requirements import REQUIREMENTS_ATTR, ModelRequirements

__all__ = ["I3D_KWARGS", "TEMPORAL_POOL", "TINY_RESNET_KWARGS", "MultiPathwayNet", "assemble_pytorchvideo", "res_stages"]

class MultiPathwayNet(Net):
    """pytorchvideo's ``Net`` for multi-pathway (SlowFast) input that leaves its input alone.

    pytorchvideo's multi-pathway blocks write each pathway's output back into the list they
    receive, so a caller that reuses its ``[slow, fast]`` list (multi-view testing, logging, a
    second forward) would find it replaced by feature maps. The list is copied once here. The
    class is swapped onto the built ``Net`` so the state dict keys stay pytorchvideo's own.
    """

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if isinstance(x, torch.Tensor):
            raise TypeError(
                "SlowFast takes a list [slow, fast] of pathway tensors, got a single tensor of shape "
                f"{tuple(x.shape)}; build it with lightning_multigrid.models.pack_pathways(video, alpha)"
            )
        return super().forward(list(x))


# Arguments assemble_pytorchvideo sets itself: overriding them would break the guarantees above.
_RESERVED = ("model_num_class", "num_classes", "head_pool", "head_activation", "head_pool_kernel_size",
             "head_pool_kernel_sizes", "head_output_size")


def assemble_pytorchvideo(spec: ModelSpec, num_classes: int, dropout: float | None, overrides: dict[str, Any]) -> nn.Module:
    """Build ``spec`` with its pytorchvideo builder, adaptive head pooling and raw-logit output.

    ``overrides`` are further builder arguments, plus ``stage_depths=(d1, d2, d3, d4)`` to keep
    only the first ``d_i`` residual blocks of stage ``i``.
    """
    name = spec.name
    reserved = sorted(set(overrides) & set(_RESERVED))
    if reserved:
        raise ValueError(
            f"build_model({name!r}): {', '.join(reserved)} cannot be overridden: heads always pool "
            "adaptively and output raw logits; use num_classes= for the class count"
        )
    stage_depths = overrides.pop("stage_depths", spec.stage_depths)
    kwargs: dict[str, Any] = {**spec.kwargs, **overrides, "model_num_class": num_classes}
    if dropout is not None:
        kwargs["dropout_rate"] = float(dropout)
    kwargs["head_activation"] = None
    if spec.family != "x3d":
        kwargs["head_pool"] = nn.AdaptiveAvgPool3d

    requirements = spec.requirements
    if spec.family == "slowfast":
        # The fusion conv's temporal stride is what ties the pathways: it is alpha.
        alpha = int(kwargs.get("slowfast_fusion_conv_stride", (4, 1, 1))[0])
        requirements = replace(requirements, slowfast_alpha=alpha, frame_divisor=alpha, min_frames=alpha)

    model = spec.builder(**kwargs)
    if spec.family == "x3d":
        # X3D sizes its head's AvgPool3d from the build-time clip; replace it by a global one.
        model.blocks[-1].pool.pool = nn.AdaptiveAvgPool3d(1)  # type: ignore[index,union-attr]
    if spec.family == "slowfast":
        model.__class__ = MultiPathwayNet
    if stage_depths is not None:
        _cut_stages(model, tuple(stage_depths), name)
    setattr(model, REQUIREMENTS_ATTR, requirements)
    return model


def res_stages(model: nn.Module) -> list[list[ResStage]]:
    """The residual stages of a pytorchvideo ResNet-like network, each as its list of pathways."""
    stage_lists: list[list[ResStage]] = []
    for block in model.blocks:  # type: ignore[union-attr]
        if isinstance(block, ResStage):
            stage_lists.append([block])
        else:
            # SlowFast: one ResStage per pathway inside a MultiPathWayWithFuse.
            pathways = [m for m in getattr(block, "multipathway_blocks", []) if isinstance(m, ResStage)]
            if pathways:
                stage_lists.append(pathways)
    return stage_lists


def _cut_stages(model: nn.Module, depths: tuple[int, ...], name: str) -> None:
    """Keep the first ``depths[i]`` blocks of every residual stage ``i`` (all pathways)."""
    stage_lists = res_stages(model)
    if len(depths) != len(stage_lists):
        raise ValueError(f"build_model({name!r}): stage_depths needs {len(stage_lists)} values, got {depths}")
    for i, (depth, stages) in enumerate(zip(depths, stage_lists, strict=True)):
        for stage in stages:
            available = len(stage.res_blocks)
            if not 1 <= depth <= available:
                raise ValueError(
                    f"build_model({name!r}): stage_depths[{i}]={depth} must be in [1, {available}]"
                )
            # The first block carries the stride and channel change, so cutting after it keeps shapes.
            stage.res_blocks = stage.res_blocks[:depth]


# --------------------------------------------------------------------------------------------
# The zoo
# --------------------------------------------------------------------------------------------
def _file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _hub(urls: Mapping[str, str], key: str) -> dict[str, Any]:
    return {"checkpoint_name": _file_name(urls[key]), "checkpoint_url": urls[key]}


_SLOWFAST_R101: dict[str, Any] = {"model_depth": 101, "slowfast_fusion_conv_kernel_size": (5, 1, 1)}
_SLOW: dict[str, Any] = {"stem_conv_kernel_size": (1, 7, 7), "model_depth": 50}
_C2D: dict[str, Any] = {
    "stem_conv_kernel_size": (1, 7, 7),
    "stage1_pool": nn.MaxPool3d,
    "stage_conv_a_kernel_size": ((1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
}
I3D_KWARGS: dict[str, Any] = {
    "stem_conv_kernel_size": (5, 7, 7),
    "stage1_pool": nn.MaxPool3d,
    "stage_conv_a_kernel_size": (
        (3, 1, 1),
        [(3, 1, 1), (1, 1, 1)],
        [(3, 1, 1), (1, 1, 1)],
        [(1, 1, 1), (3, 1, 1)],
    ),
}
_CSN: dict[str, Any] = {"model_depth": 101, "stem_pool": nn.MaxPool3d}
_R2PLUS1D: dict[str, Any] = {"dropout_rate": 0.5}
_TINY_DEPTHS = (1, 1, 1, 1)
TINY_RESNET_KWARGS: dict[str, Any] = {"stem_dim_out": 8, "dropout_rate": 0.0}
# I3D and C2D halve T after the first stage (a max-pool of kernel 2), so they need T >= 2.
TEMPORAL_POOL: dict[str, Any] = {"min_frames": 2}


_spec = partial(ModelSpec, assemble=assemble_pytorchvideo)
# Clip requirements shared by several published models.
_8X8: dict[str, Any] = {"num_frames": 8, "crop_size": 224, "sampling_rate": 8}
_SLOWFAST_8X8: dict[str, Any] = {"min_frames": 4, "frame_divisor": 4, "slowfast_alpha": 4, "num_frames": 32,
                                 "crop_size": 224, "sampling_rate": 2}


def _published(
    name: str, family: str, builder: Any, description: str, urls: Mapping[str, str], kwargs: dict[str, Any],
    **requirements: Any,
) -> ModelSpec:
    """A model with published Kinetics-400 weights: ``urls[name]`` (pytorchvideo's hub) is its checkpoint."""
    return _spec(name, family, builder, kwargs, ModelRequirements(name, **requirements, **_hub(urls, name)),
                 description=description)


def _x3d(name: str, description: str, num_frames: int, crop_size: int, sampling_rate: int, **kwargs: Any) -> ModelSpec:
    """A published X3D: its builder takes the clip length and crop it was trained at."""
    return _published(
        name, "x3d", create_x3d, description, _x3d_urls,
        {"input_clip_length": num_frames, "input_crop_size": crop_size, **kwargs},
        num_frames=num_frames, crop_size=crop_size, sampling_rate=sampling_rate,
    )


def _tiny(
    name: str,
    family: str,
    builder: Any,
    what: str,
    kwargs: dict[str, Any],
    stage_depths: tuple[int, ...] | None = _TINY_DEPTHS,
    **requirements: Any,
) -> ModelSpec:
    """A tiny variant for CPU tests and demos: 8x4 clips of 64 pixels unless ``requirements`` say
    otherwise, no published weights (checkpoint ``<NAME>.pyth``), one block per stage by default."""
    requirements = {"num_frames": 8, "crop_size": 64, "sampling_rate": 4, "checkpoint_name": f"{name.upper()}.pyth",
                    **requirements}
    return _spec(name, family, builder, kwargs, ModelRequirements(name, **requirements), stage_depths=stage_depths,
                 description=f"tiny {what} for CPU tests and demos")


def _specs() -> list[ModelSpec]:
    return [
        _published(
            "slowfast_r50", "slowfast", create_slowfast, "SlowFast R50 8x8 (K400 76.4 top-1)", _slowfast_urls,
            {"model_depth": 50, "slowfast_fusion_conv_kernel_size": (7, 1, 1)}, **_SLOWFAST_8X8,
        ),
        _published(
            "slowfast_r101", "slowfast", create_slowfast, "SlowFast R101 8x8 (K400 77.9 top-1)", _slowfast_urls,
            _SLOWFAST_R101, **_SLOWFAST_8X8,
        ),
        _published("slow_r50", "resnet", create_resnet, "Slow R50 8x8 (K400 74.6 top-1)", _resnet_urls, _SLOW, **_8X8),
        _published(
            "i3d_r50", "resnet", create_resnet, "I3D R50 8x8 (K400 73.3 top-1)", _resnet_urls, I3D_KWARGS,
            **_8X8, **TEMPORAL_POOL,
        ),
        _published(
            "c2d_r50", "resnet", create_resnet, "C2D R50 8x8 (K400 71.5 top-1)", _resnet_urls, _C2D, **_8X8, **TEMPORAL_POOL
        ),
        _x3d("x3d_xs", "X3D-XS (K400 69.1 top-1)", num_frames=4, crop_size=160, sampling_rate=12),
        _x3d("x3d_s", "X3D-S (K400 73.3 top-1)", num_frames=13, crop_size=160, sampling_rate=6),
        _x3d("x3d_m", "X3D-M (K400 75.9 top-1)", num_frames=16, crop_size=224, sampling_rate=5),
        _x3d("x3d_l", "X3D-L (K400 77.4 top-1)", num_frames=16, crop_size=312, sampling_rate=5, depth_factor=5.0),
        _published(
            "r2plus1d_r50", "r2plus1d", create_r2plus1d, "R(2+1)D R50 16x4 (K400 76.0 top-1)", _r2plus1d_urls, _R2PLUS1D,
            num_frames=16, crop_size=224, sampling_rate=4,
        ),
        _published(
            "csn_r101", "csn", create_csn, "ir-CSN R101 32x2 (K400 77.0 top-1)", _csn_urls, _CSN,
            num_frames=32, crop_size=224, sampling_rate=2,
        ),
        # ---- tiny variants: same builders, narrow stems, one block per stage --------------------
        _tiny(
            "slowfast_tiny", "slowfast", create_slowfast, "SlowFast (alpha 4, beta 1/4)",
            {"model_depth": 50, "stem_dim_outs": (8, 2), "slowfast_channel_reduction_ratio": (4,), "dropout_rate": 0.0},
            min_frames=4, frame_divisor=4, slowfast_alpha=4, num_frames=16, sampling_rate=2,
        ),
        _tiny("slow_tiny", "resnet", create_resnet, "Slow-only ResNet", {**_SLOW, **TINY_RESNET_KWARGS}),
        _tiny("i3d_tiny", "resnet", create_resnet, "I3D ResNet", {**I3D_KWARGS, **TINY_RESNET_KWARGS}, **TEMPORAL_POOL),
        _tiny("c2d_tiny", "resnet", create_resnet, "C2D ResNet", {**_C2D, **TINY_RESNET_KWARGS}, **TEMPORAL_POOL),
        _tiny(
            "x3d_tiny", "x3d", create_x3d, "X3D",
            # depth_factor 0.2 rounds every X3D stage up to one block; a 128-wide head instead of 2048.
            {"input_clip_length": 8, "input_crop_size": 64, "depth_factor": 0.2, "width_factor": 1.0,
             "head_dim_out": 128, "dropout_rate": 0.0},
            stage_depths=None,
        ),
        _tiny("r2plus1d_tiny", "r2plus1d", create_r2plus1d, "R(2+1)D", {**TINY_RESNET_KWARGS}),
        _tiny("csn_tiny", "csn", create_csn, "ir-CSN", {"model_depth": 50, "stem_pool": nn.MaxPool3d, **TINY_RESNET_KWARGS}),
    ]


register(*_specs())
