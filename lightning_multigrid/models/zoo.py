"""Model zoo: pytorchvideo networks made safe for every clip shape a multigrid schedule produces.

Every model is built with pytorchvideo's own builders (``pytorchvideo.models.create_*``) with the
same arguments as the ``pytorchvideo.models.hub`` entry of the same name, so the state dicts match
the public ``.pyth`` checkpoints key for key. Three things are changed, none of which has weights:

* the head pools adaptively (global average) instead of with a fixed ``AvgPool3d`` sized for the
  baseline clip, so any ``(T, S)`` runs (X3D's pool sits inside its projected-pool head and is
  swapped after building);
* the head has no activation, so training sees raw logits (X3D and R(2+1)D apply Softmax by default);
* SlowFast copies the list of pathways it is given, because pytorchvideo overwrites it in place.

Each built module carries a :class:`ModelRequirements` in ``module.multigrid_requirements`` that
the multigrid callback checks every stage's clip shape against (:func:`check_clip_shape`).

The ``*_tiny`` variants use the same builders with narrow stems and one residual block per stage
(built at depth 50 and cut), for CPU tests and the demo: each has well under 1 M parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

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

# Re-exported: SlowFast pathways are packed by one function, for the data side and the model side.
from lightning_multigrid.data.transforms import pack_pathways
from lightning_multigrid.models.checkpoints import CheckpointLoadResult, load_checkpoint

__all__ = [
    "ModelRequirements",
    "ModelSpec",
    "MultiPathwayNet",
    "REQUIREMENTS_ATTR",
    "build_model",
    "check_clip_shape",
    "check_schedule",
    "get_spec",
    "list_models",
    "model_requirements",
    "pack_pathways",
    "pretrained_checkpoint_path",
]

log = logging.getLogger(__name__)

#: Attribute of a built module that holds its :class:`ModelRequirements`.
REQUIREMENTS_ATTR = "multigrid_requirements"

Family = Literal["resnet", "slowfast", "x3d", "csn", "r2plus1d"]

# Every network in the zoo downsamples space by 32 (stem conv 2 x stem pool 2 x three stride-2
# stages, or the equivalent): below that the last stage sees less than one real pixel.
_SPATIAL_STRIDE = 32


@dataclass(frozen=True)
class ModelRequirements:
    """What a network needs from its input clips, and the recipe it was designed for.

    ``num_frames`` always counts the frames the data side decodes; for SlowFast that is the
    fast pathway (the slow pathway takes every ``slowfast_alpha``-th of them).

    Attributes:
        name: zoo name (or a free label for a user's own module).
        min_frames: smallest ``T`` the network runs with (temporal pooling/striding needs it).
        frame_divisor: ``T`` must be a multiple of this (SlowFast: alpha).
        slowfast_alpha: ``None`` for single-pathway networks; otherwise the speed ratio between
            the fast and the slow pathway: the input is ``[slow, fast]`` with
            ``fast T == alpha * slow T`` (see :func:`pack_pathways`).
        min_crop_size: smallest square crop worth running (the total spatial downsampling).
        num_frames: ``T`` of the standard recipe (the checkpoint's training clips).
        crop_size: ``S`` of the standard recipe.
        sampling_rate: temporal stride between decoded frames in the standard recipe.
        checkpoint_name: file name of the pytorchvideo checkpoint in ``$TORCH_HOME/hub/checkpoints``.
        checkpoint_url: where that file is published (``None``: no public file; save your own).
    """

    name: str
    min_frames: int = 1
    frame_divisor: int = 1
    slowfast_alpha: int | None = None
    min_crop_size: int = _SPATIAL_STRIDE
    num_frames: int = 8
    crop_size: int = 224
    sampling_rate: int = 8
    checkpoint_name: str | None = None
    checkpoint_url: str | None = None

    def __post_init__(self) -> None:
        for attr in ("min_frames", "frame_divisor", "min_crop_size", "num_frames", "crop_size", "sampling_rate"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelRequirements.{attr} must be a positive int, got {value!r}")
        if self.slowfast_alpha is not None and (
            isinstance(self.slowfast_alpha, bool) or not isinstance(self.slowfast_alpha, int) or self.slowfast_alpha < 1
        ):
            raise ValueError(f"ModelRequirements.slowfast_alpha must be None or a positive int, got {self.slowfast_alpha!r}")

    @property
    def is_slowfast(self) -> bool:
        """Whether the network takes a ``[slow, fast]`` list of pathways."""
        return self.slowfast_alpha is not None


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: how to build the network and what it requires.

    Attributes:
        name: zoo name.
        family: which pytorchvideo builder family it belongs to.
        builder: the pytorchvideo ``create_*`` function.
        kwargs: builder arguments (those of the hub entry of the same name).
        requirements: what the built network needs from its clips.
        stage_depths: residual blocks kept per stage after building (``None``: all), used by the
            tiny variants because the builders only offer depths 50/101/152.
        description: one line for :func:`list_models` users.
    """

    name: str
    family: Family
    builder: Callable[..., nn.Module]
    kwargs: Mapping[str, Any]
    requirements: ModelRequirements
    stage_depths: tuple[int, ...] | None = None
    description: str = ""


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


# --------------------------------------------------------------------------------------------
# The zoo
# --------------------------------------------------------------------------------------------
def _file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _hub(urls: Mapping[str, str], key: str) -> dict[str, str]:
    return {"checkpoint_name": _file_name(urls[key]), "checkpoint_url": urls[key]}


_SLOWFAST_R101 = {"model_depth": 101, "slowfast_fusion_conv_kernel_size": (5, 1, 1)}
_SLOW = {"stem_conv_kernel_size": (1, 7, 7), "model_depth": 50}
_C2D = {
    "stem_conv_kernel_size": (1, 7, 7),
    "stage1_pool": nn.MaxPool3d,
    "stage_conv_a_kernel_size": ((1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
}
_I3D = {
    "stem_conv_kernel_size": (5, 7, 7),
    "stage1_pool": nn.MaxPool3d,
    "stage_conv_a_kernel_size": (
        (3, 1, 1),
        [(3, 1, 1), (1, 1, 1)],
        [(3, 1, 1), (1, 1, 1)],
        [(1, 1, 1), (3, 1, 1)],
    ),
}
_CSN = {"model_depth": 101, "stem_pool": nn.MaxPool3d}
_R2PLUS1D = {"dropout_rate": 0.5}
_TINY_DEPTHS = (1, 1, 1, 1)
_TINY_RESNET = {"stem_dim_out": 8, "dropout_rate": 0.0}
# I3D and C2D halve T after the first stage (a max-pool of kernel 2), so they need T >= 2.
_TEMPORAL_POOL = {"min_frames": 2}


def _specs() -> dict[str, ModelSpec]:
    s: list[ModelSpec] = [
        ModelSpec(
            "slowfast_r50", "slowfast", create_slowfast, {"model_depth": 50, "slowfast_fusion_conv_kernel_size": (7, 1, 1)},
            ModelRequirements("slowfast_r50", min_frames=4, frame_divisor=4, slowfast_alpha=4, num_frames=32,
                              crop_size=224, sampling_rate=2, **_hub(_slowfast_urls, "slowfast_r50")),
            description="SlowFast R50 8x8 (K400 76.4 top-1)",
        ),
        ModelSpec(
            "slowfast_r101", "slowfast", create_slowfast, _SLOWFAST_R101,
            ModelRequirements("slowfast_r101", min_frames=4, frame_divisor=4, slowfast_alpha=4, num_frames=32,
                              crop_size=224, sampling_rate=2, **_hub(_slowfast_urls, "slowfast_r101")),
            description="SlowFast R101 8x8 (K400 77.9 top-1)",
        ),
        ModelSpec(
            "slow_r50", "resnet", create_resnet, _SLOW,
            ModelRequirements("slow_r50", num_frames=8, crop_size=224, sampling_rate=8, **_hub(_resnet_urls, "slow_r50")),
            description="Slow R50 8x8 (K400 74.6 top-1)",
        ),
        ModelSpec(
            "i3d_r50", "resnet", create_resnet, _I3D,
            ModelRequirements("i3d_r50", num_frames=8, crop_size=224, sampling_rate=8, **_TEMPORAL_POOL,
                              **_hub(_resnet_urls, "i3d_r50")),
            description="I3D R50 8x8 (K400 73.3 top-1)",
        ),
        ModelSpec(
            "c2d_r50", "resnet", create_resnet, _C2D,
            ModelRequirements("c2d_r50", num_frames=8, crop_size=224, sampling_rate=8, **_TEMPORAL_POOL,
                              **_hub(_resnet_urls, "c2d_r50")),
            description="C2D R50 8x8 (K400 71.5 top-1)",
        ),
        ModelSpec(
            "x3d_xs", "x3d", create_x3d, {"input_clip_length": 4, "input_crop_size": 160},
            ModelRequirements("x3d_xs", num_frames=4, crop_size=160, sampling_rate=12, **_hub(_x3d_urls, "x3d_xs")),
            description="X3D-XS (K400 69.1 top-1)",
        ),
        ModelSpec(
            "x3d_s", "x3d", create_x3d, {"input_clip_length": 13, "input_crop_size": 160},
            ModelRequirements("x3d_s", num_frames=13, crop_size=160, sampling_rate=6, **_hub(_x3d_urls, "x3d_s")),
            description="X3D-S (K400 73.3 top-1)",
        ),
        ModelSpec(
            "x3d_m", "x3d", create_x3d, {"input_clip_length": 16, "input_crop_size": 224},
            ModelRequirements("x3d_m", num_frames=16, crop_size=224, sampling_rate=5, **_hub(_x3d_urls, "x3d_m")),
            description="X3D-M (K400 75.9 top-1)",
        ),
        ModelSpec(
            "x3d_l", "x3d", create_x3d, {"input_clip_length": 16, "input_crop_size": 312, "depth_factor": 5.0},
            ModelRequirements("x3d_l", num_frames=16, crop_size=312, sampling_rate=5, **_hub(_x3d_urls, "x3d_l")),
            description="X3D-L (K400 77.4 top-1)",
        ),
        ModelSpec(
            "r2plus1d_r50", "r2plus1d", create_r2plus1d, _R2PLUS1D,
            ModelRequirements("r2plus1d_r50", num_frames=16, crop_size=224, sampling_rate=4,
                              **_hub(_r2plus1d_urls, "r2plus1d_r50")),
            description="R(2+1)D R50 16x4 (K400 76.0 top-1)",
        ),
        ModelSpec(
            "csn_r101", "csn", create_csn, _CSN,
            ModelRequirements("csn_r101", num_frames=32, crop_size=224, sampling_rate=2, **_hub(_csn_urls, "csn_r101")),
            description="ir-CSN R101 32x2 (K400 77.0 top-1)",
        ),
        # ---- tiny variants: same builders, narrow stems, one block per stage --------------------
        ModelSpec(
            "slowfast_tiny", "slowfast", create_slowfast,
            {"model_depth": 50, "stem_dim_outs": (8, 2), "slowfast_channel_reduction_ratio": (4,), "dropout_rate": 0.0},
            ModelRequirements("slowfast_tiny", min_frames=4, frame_divisor=4, slowfast_alpha=4, num_frames=16,
                              crop_size=64, sampling_rate=2, checkpoint_name="SLOWFAST_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny SlowFast (alpha 4, beta 1/4) for CPU tests and demos",
        ),
        ModelSpec(
            "slow_tiny", "resnet", create_resnet, {**_SLOW, **_TINY_RESNET},
            ModelRequirements("slow_tiny", num_frames=8, crop_size=64, sampling_rate=4, checkpoint_name="SLOW_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny Slow-only ResNet for CPU tests and demos",
        ),
        ModelSpec(
            "i3d_tiny", "resnet", create_resnet, {**_I3D, **_TINY_RESNET},
            ModelRequirements("i3d_tiny", num_frames=8, crop_size=64, sampling_rate=4, **_TEMPORAL_POOL,
                              checkpoint_name="I3D_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny I3D ResNet for CPU tests and demos",
        ),
        ModelSpec(
            "c2d_tiny", "resnet", create_resnet, {**_C2D, **_TINY_RESNET},
            ModelRequirements("c2d_tiny", num_frames=8, crop_size=64, sampling_rate=4, **_TEMPORAL_POOL,
                              checkpoint_name="C2D_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny C2D ResNet for CPU tests and demos",
        ),
        ModelSpec(
            "x3d_tiny", "x3d", create_x3d,
            # depth_factor 0.2 rounds every X3D stage up to one block; a 128-wide head instead of 2048.
            {"input_clip_length": 8, "input_crop_size": 64, "depth_factor": 0.2, "width_factor": 1.0,
             "head_dim_out": 128, "dropout_rate": 0.0},
            ModelRequirements("x3d_tiny", num_frames=8, crop_size=64, sampling_rate=4, checkpoint_name="X3D_TINY.pyth"),
            description="tiny X3D for CPU tests and demos",
        ),
        ModelSpec(
            "r2plus1d_tiny", "r2plus1d", create_r2plus1d, {**_TINY_RESNET},
            ModelRequirements("r2plus1d_tiny", num_frames=8, crop_size=64, sampling_rate=4,
                              checkpoint_name="R2PLUS1D_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny R(2+1)D for CPU tests and demos",
        ),
        ModelSpec(
            "csn_tiny", "csn", create_csn, {"model_depth": 50, "stem_pool": nn.MaxPool3d, **_TINY_RESNET},
            ModelRequirements("csn_tiny", num_frames=8, crop_size=64, sampling_rate=4, checkpoint_name="CSN_TINY.pyth"),
            stage_depths=_TINY_DEPTHS,
            description="tiny ir-CSN for CPU tests and demos",
        ),
    ]
    return {spec.name: spec for spec in s}


_ZOO: dict[str, ModelSpec] = _specs()
# Arguments build_model sets itself: overriding them would break the guarantees above.
_RESERVED = ("model_num_class", "num_classes", "head_pool", "head_activation", "head_pool_kernel_size",
             "head_pool_kernel_sizes", "head_output_size")


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, full-size models first, then the tiny variants."""
    return list(_ZOO)


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for ``name``.

    Raises:
        KeyError: naming the known models when ``name`` is not one of them.
    """
    try:
        return _ZOO[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(_ZOO)}") from None


def pretrained_checkpoint_path(name: str) -> Path:
    """Where ``build_model(name, pretrained=True)`` looks for its checkpoint.

    That is ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints`` unless
    ``torch.hub.set_dir`` was called), the same place pytorchvideo's hub would download to.
    """
    req = get_spec(name).requirements
    if req.checkpoint_name is None:  # pragma: no cover - every zoo entry names a file
        raise ValueError(f"model {name!r} has no checkpoint file name")
    return Path(torch.hub.get_dir()) / "checkpoints" / req.checkpoint_name


def build_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    dropout: float | None = None,
    allow_pickle: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build a zoo network with adaptive head pooling and raw-logit output.

    Args:
        name: one of :func:`list_models`.
        num_classes: size of the classification layer.
        pretrained: load the model's standard pytorchvideo checkpoint from
            :func:`pretrained_checkpoint_path` (never downloaded). When ``num_classes`` differs from
            the checkpoint's, the classification layer is re-initialised (fine-tuning).
        checkpoint_path: load this local file instead (``.pyth``, plain state dict or Lightning
            ``.ckpt``); see :func:`~lightning_multigrid.models.checkpoints.load_checkpoint`.
        dropout: dropout before the classification layer; ``None`` keeps the recipe's value.
        allow_pickle: let a checkpoint that holds pickled Python objects be unpickled, which runs
            code from the file (off: such files are refused; see ``read_checkpoint``).
        **overrides: further keyword arguments for the pytorchvideo builder (e.g. ``norm=``,
            ``stem_dim_out=``), plus ``stage_depths=(d1, d2, d3, d4)`` to keep only the first
            ``d_i`` residual blocks of stage ``i``. Changing the architecture makes a pretrained
            checkpoint fail to load, with the mismatching keys named.

    Returns:
        The network. ``module.multigrid_requirements`` holds its :class:`ModelRequirements`;
        ``module.checkpoint_load_result`` holds the :class:`CheckpointLoadResult` when weights
        were loaded.

    Raises:
        KeyError: unknown ``name``.
        ValueError: bad arguments (both ``pretrained`` and ``checkpoint_path``, reserved overrides).
        FileNotFoundError: the checkpoint file is absent; the message names the expected path.
    """
    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"build_model({name!r}): num_classes must be a positive int, got {num_classes!r}")
    if pretrained and checkpoint_path is not None:
        raise ValueError(
            f"build_model({name!r}): give either pretrained=True or checkpoint_path, not both "
            f"(checkpoint_path={str(checkpoint_path)!r})"
        )
    reserved = sorted(set(overrides) & set(_RESERVED))
    if reserved:
        raise ValueError(
            f"build_model({name!r}): {', '.join(reserved)} cannot be overridden: heads always pool "
            "adaptively and output raw logits; use num_classes= for the class count"
        )
    stage_depths = overrides.pop("stage_depths", spec.stage_depths)
    kwargs: dict[str, Any] = {**spec.kwargs, **overrides, "model_num_class": num_classes}
    if dropout is not None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"build_model({name!r}): dropout must be in [0, 1), got {dropout}")
        kwargs["dropout_rate"] = float(dropout)
    kwargs["head_activation"] = None
    if spec.family != "x3d":
        kwargs["head_pool"] = nn.AdaptiveAvgPool3d

    requirements = spec.requirements
    if spec.family == "slowfast":
        # The fusion conv's temporal stride is what ties the pathways: it is alpha.
        alpha = int(kwargs.get("slowfast_fusion_conv_stride", (4, 1, 1))[0])
        requirements = replace(requirements, slowfast_alpha=alpha, frame_divisor=alpha, min_frames=alpha)

    # Find the weights before building: a missing file should not cost a full-size build first.
    weights: Path | None = None
    if pretrained:
        weights = pretrained_checkpoint_path(name)
        if not weights.is_file():
            where = (
                f"download {requirements.checkpoint_url} to that path"
                if requirements.checkpoint_url
                else "no public file exists for this model: save your own with "
                "torch.save({'model_state': model.state_dict()}, path)"
            )
            raise FileNotFoundError(
                f"pretrained weights for {name!r} not found: expected {weights} "
                f"(torch.hub.get_dir()/checkpoints, i.e. $TORCH_HOME/hub/checkpoints); {where}. "
                "This package never downloads."
            )
    elif checkpoint_path is not None:
        weights = Path(checkpoint_path)
        if not weights.is_file():
            raise FileNotFoundError(f"build_model({name!r}): checkpoint file not found: {weights}")

    model = spec.builder(**kwargs)
    if spec.family == "x3d":
        # X3D sizes its head's AvgPool3d from the build-time clip; replace it by a global one.
        model.blocks[-1].pool.pool = nn.AdaptiveAvgPool3d(1)
    if spec.family == "slowfast":
        model.__class__ = MultiPathwayNet
    if stage_depths is not None:
        _cut_stages(model, tuple(stage_depths), name)
    setattr(model, REQUIREMENTS_ATTR, requirements)

    if weights is not None:
        result: CheckpointLoadResult = load_checkpoint(model, weights, allow_pickle=allow_pickle)
        model.checkpoint_load_result = result
    return model


def _cut_stages(model: nn.Module, depths: tuple[int, ...], name: str) -> None:
    """Keep the first ``depths[i]`` blocks of every residual stage ``i`` (all pathways)."""
    stage_lists: list[list[ResStage]] = []
    for block in model.blocks:  # type: ignore[union-attr]
        if isinstance(block, ResStage):
            stage_lists.append([block])
        else:
            # SlowFast: one ResStage per pathway inside a MultiPathWayWithFuse.
            pathways = [m for m in getattr(block, "multipathway_blocks", []) if isinstance(m, ResStage)]
            if pathways:
                stage_lists.append(pathways)
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
# Requirements
# --------------------------------------------------------------------------------------------
def model_requirements(name_or_module: str | nn.Module) -> ModelRequirements | None:
    """The :class:`ModelRequirements` of a zoo name or a module.

    A module is looked up through its ``multigrid_requirements`` attribute, then through a
    ``.model`` attribute (e.g. a :class:`~lightning_multigrid.models.VideoClassifier`). A module of
    your own can declare its needs by setting ``module.multigrid_requirements``; without it the
    result is ``None`` (nothing known, nothing checked).

    Raises:
        KeyError: for an unknown zoo name.
    """
    if isinstance(name_or_module, str):
        return get_spec(name_or_module).requirements
    found = getattr(name_or_module, REQUIREMENTS_ATTR, None)
    if found is None:
        inner = getattr(name_or_module, "model", None)
        if isinstance(inner, nn.Module) and inner is not name_or_module:
            found = getattr(inner, REQUIREMENTS_ATTR, None)
    if found is not None and not isinstance(found, ModelRequirements):
        raise TypeError(f"{REQUIREMENTS_ATTR} must be a ModelRequirements, got {type(found).__name__}")
    return found


def check_clip_shape(requirements: ModelRequirements, num_frames: int, crop_size: int, where: str) -> None:
    """Raise if a clip of ``num_frames`` x ``crop_size`` cannot be fed to the network.

    Args:
        requirements: the network's requirements.
        num_frames: ``T`` the data side decodes (SlowFast: the fast pathway).
        crop_size: ``S``, the square crop side.
        where: what produced this shape, put first in the message, e.g.
            ``"long-cycle stage [0,73) T=8 S=158"``.

    Raises:
        ValueError: naming ``where``, the model and the violated requirement.
    """
    name = requirements.name
    problems = []
    if num_frames < requirements.min_frames:
        why = (
            f"the slow pathway needs at least 1 of every alpha={requirements.slowfast_alpha} frames"
            if requirements.is_slowfast
            else "its temporal pooling/striding needs them"
        )
        problems.append(f"T={num_frames} is below the minimum of {requirements.min_frames} frames ({why})")
    if num_frames % requirements.frame_divisor:
        why = (
            f"fast T must be alpha={requirements.slowfast_alpha} x slow T"
            if requirements.is_slowfast
            else "required by the network"
        )
        problems.append(f"T={num_frames} is not a multiple of {requirements.frame_divisor} ({why})")
    if crop_size < requirements.min_crop_size:
        problems.append(
            f"crop S={crop_size} is smaller than the network's spatial downsampling of "
            f"{requirements.min_crop_size} pixels"
        )
    if problems:
        raise ValueError(f"{where}: model {name!r} cannot run this clip shape: " + "; ".join(problems))


def check_schedule(requirements: ModelRequirements, schedule: Any) -> None:
    """Check every shape of a :class:`~lightning_multigrid.schedule.MultigridSchedule`.

    Each long-cycle stage's ``(T, S)`` and each of its short-cycle crops is passed to
    :func:`check_clip_shape`; the first failure raises, naming the stage (and slot).
    """
    for stage in schedule.stages:
        label = schedule.describe_stage(stage)
        check_clip_shape(requirements, stage.num_frames, stage.crop_size, f"long-cycle stage {label}")
        for slot_index, slot in enumerate(schedule.short_cycle_slots(stage.start_epoch)):
            check_clip_shape(
                requirements,
                stage.num_frames,
                slot.crop_size,
                f"short-cycle slot {slot_index} (S={slot.crop_size}) of long-cycle stage {label}",
            )

