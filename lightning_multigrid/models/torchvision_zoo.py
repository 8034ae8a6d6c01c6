"""torchvision's video networks in the zoo, under the contract of the pytorchvideo ones.

Each full-size entry is built with torchvision's own model function (``r3d_18``, ``swin3d_t``, ...)
without weights, so its state dict is the one of torchvision's published ``.pth`` file, which
``pretrained=True`` reads from ``$TORCH_HOME/hub/checkpoints`` under torchvision's file name (the
basename of the weights enum's URL, e.g. ``r3d_18-b3b3357e.pth``). The requirements carry the
weights' own normalisation constants and crop size (from ``weights.transforms()``) so the data
side can be given the same ones.

R3D/MC3/R(2+1)D and Swin3D pool adaptively already and run at any shape. S3D and MViTv2 are
converted (:mod:`~lightning_multigrid.models.shape_agnostic`). The ``*_tiny`` entries are the
same module classes with narrow widths and few blocks, for CPU tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch.nn as nn
from torchvision.models import WeightsEnum
from torchvision.models.video import (
    MC3_18_Weights,
    MViT_V2_S_Weights,
    R2Plus1D_18_Weights,
    R3D_18_Weights,
    S3D_Weights,
    Swin3D_B_Weights,
    Swin3D_S_Weights,
    Swin3D_T_Weights,
    mc3_18,
    mvit_v2_s,
    r2plus1d_18,
    r3d_18,
    s3d,
    swin3d_b,
    swin3d_s,
    swin3d_t,
)
from torchvision.models.video.mvit import MSBlockConfig, MViT
from torchvision.models.video.resnet import (
    BasicBlock,
    Conv2Plus1D,
    Conv3DNoTemporal,
    Conv3DSimple,
    VideoResNet,
)
from torchvision.models.video.s3d import S3D, SepInceptionBlock3D, TemporalSeparableConv
from torchvision.models.video.swin_transformer import SwinTransformer3d
from torchvision.ops import Conv3dNormActivation

from lightning_multigrid.models.registry import ModelSpec, register
from lightning_multigrid.models.shape_agnostic import (
    make_mvit_shape_agnostic,
    make_s3d_shape_agnostic,
)
from lightning_multigrid.schedule.model_requirements import ModelRequirements

__all__ = ["torchvision_weights_fields"]

# VideoResNet: stem stride 2 and three stride-2 stages, no stem pool.
_RESNET_STRIDE = 16
# S3D's last max-pool has kernel 2 without padding: it needs T' >= 2 after the temporal strides
# of the stem (2) and of the third pool (2), i.e. T >= 5 (T = 4 gives 2 -> 1 -> 0 and fails).
_S3D_MIN_FRAMES = 5


def torchvision_weights_fields(weights: WeightsEnum) -> dict[str, Any]:
    """Requirement fields taken from a torchvision weights enum member.

    The file name is the basename of its URL (what ``torch.hub`` saves it as), the format a plain
    state dict, and ``mean``/``std``/``crop_size`` those of ``weights.transforms()``.
    """
    preset = weights.transforms()
    return {
        "checkpoint_name": weights.url.rsplit("/", 1)[-1],
        "checkpoint_url": weights.url,
        "checkpoint_format": "state_dict",
        "mean": tuple(float(m) for m in preset.mean),
        "std": tuple(float(s) for s in preset.std),
        "crop_size": int(preset.crop_size[0]),
    }


def _assemble_torchvision(spec: ModelSpec, num_classes: int, dropout: float | None, overrides: dict[str, Any]) -> nn.Module:
    name = spec.name
    reserved = sorted(set(overrides) & {"num_classes", "weights", "progress"})
    if reserved:
        raise ValueError(
            f"build_model({name!r}): {', '.join(reserved)} cannot be overridden: use num_classes= for the class "
            "count and pretrained=True for torchvision's weights (read from $TORCH_HOME/hub/checkpoints)"
        )
    kwargs: dict[str, Any] = {**spec.kwargs, **overrides, "num_classes": num_classes}
    if dropout is not None:
        argument = spec.extras.get("dropout_argument")
        if argument is None:
            raise ValueError(f"build_model({name!r}): this torchvision network has no dropout before its classifier")
        kwargs[argument] = float(dropout)
    model = spec.builder(**kwargs)
    convert: Callable[[nn.Module], nn.Module] | None = spec.extras.get("convert")
    return convert(model) if convert is not None else model


# ---- tiny variants: torchvision's module classes, narrow ----------------------------------------
_TINY_WIDTHS = (8, 16, 32, 64)


def _tiny_video_resnet(
    conv_makers: Sequence[type[nn.Module]], r2plus1d_stem: bool, num_classes: int = 400
) -> VideoResNet:
    """A VideoResNet with one BasicBlock per stage and widths 8..64 (torchvision's are 64..512)."""
    width = _TINY_WIDTHS[0]
    if r2plus1d_stem:  # R2Plus1dStem's layout: (1,7,7) spatial conv to 45 (here 6), then (3,1,1)
        stem = nn.Sequential(
            nn.Conv3d(3, 6, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(6), nn.ReLU(inplace=True),
            nn.Conv3d(6, width, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True),
        )
    else:  # BasicStem's layout
        stem = nn.Sequential(
            nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True)
        )
    model = VideoResNet.__new__(VideoResNet)
    nn.Module.__init__(model)
    model.inplanes = width
    model.stem = stem
    for i, (maker, planes) in enumerate(zip(conv_makers, _TINY_WIDTHS, strict=True)):
        layer = model._make_layer(BasicBlock, maker, planes, 1, stride=1 if i == 0 else 2)  # type: ignore[arg-type]
        setattr(model, f"layer{i + 1}", layer)
    model.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
    model.fc = nn.Linear(_TINY_WIDTHS[-1], num_classes)
    return model


# S3D's inception widths divided by 8; the layer sequence (and so every stride) is torchvision's.
_S3D_TINY_INCEPTION = (
    (24, 8, 12, 16, 2, 4, 4), (32, 16, 16, 24, 4, 12, 8), "pool3",
    (60, 24, 12, 26, 2, 6, 8), (64, 20, 14, 28, 3, 8, 8), (64, 16, 16, 32, 3, 8, 8),
    (64, 14, 18, 36, 4, 8, 8), (66, 32, 20, 40, 4, 16, 16), "pool2",
    (104, 32, 20, 40, 4, 16, 16), (104, 48, 24, 48, 6, 16, 16),
)


def _tiny_s3d(num_classes: int = 400, dropout: float = 0.0) -> nn.Module:
    norm = partial(nn.BatchNorm3d, eps=0.001, momentum=0.001)
    layers: list[nn.Module] = [
        TemporalSeparableConv(3, 8, 7, 2, 3, norm),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        Conv3dNormActivation(8, 8, kernel_size=1, stride=1, norm_layer=norm),
        TemporalSeparableConv(8, 24, 3, 1, 1, norm),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
    ]
    for item in _S3D_TINY_INCEPTION:
        if item == "pool3":
            layers.append(nn.MaxPool3d(kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1)))
        elif item == "pool2":
            layers.append(nn.MaxPool3d(kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0)))
        else:
            layers.append(SepInceptionBlock3D(*item, norm))  # type: ignore[misc]
    # torchvision's S3D attributes, set without building its full-width features first.
    model = S3D.__new__(S3D)
    nn.Module.__init__(model)
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=1)
    model.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Conv3d(128, num_classes, kernel_size=1, stride=1, bias=True))
    return make_s3d_shape_agnostic(model)


def _tiny_swin3d(num_classes: int = 400, **kwargs: Any) -> nn.Module:
    options = {"stochastic_depth_prob": 0.0, **kwargs}
    return SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                             window_size=[8, 7, 7], num_classes=num_classes, **options)


def _mvit_block(heads: int, dim_in: int, dim_out: int, stride_q: int, stride_kv: int) -> MSBlockConfig:
    return MSBlockConfig(heads, dim_in, dim_out, [3, 3, 3], [3, 3, 3], [1, stride_q, stride_q], [1, stride_kv, stride_kv])


# mvit_v2_s's pattern (head width constant, q pooled and channels doubled at each stage, kv pooled
# down to the last stage's grid) with one block per stage and 16..128 channels.
_MVIT_TINY_BLOCKS = (
    _mvit_block(1, 16, 16, 1, 4),
    _mvit_block(2, 16, 32, 2, 2),
    _mvit_block(4, 32, 64, 2, 1),
    _mvit_block(8, 64, 128, 2, 1),
)


def _tiny_mvit_v2(num_classes: int = 400, dropout: float = 0.0, **kwargs: Any) -> nn.Module:
    options = {"stochastic_depth_prob": 0.0, **kwargs}
    model = MViT(spatial_size=(64, 64), temporal_size=16, block_setting=list(_MVIT_TINY_BLOCKS), residual_pool=True,
                 residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True, dropout=dropout,
                 num_classes=num_classes, **options)
    return make_mvit_shape_agnostic(model)


# ---- the entries -----------------------------------------------------------------------------
_spec = partial(ModelSpec, family="torchvision", kwargs={}, assemble=_assemble_torchvision)
_RESNET: dict[str, Any] = {"min_crop_size": _RESNET_STRIDE, "num_frames": 16, "sampling_rate": 2}
_SWIN: dict[str, Any] = {"num_frames": 32, "sampling_rate": 2}
_TINY_FILE: dict[str, Any] = {"checkpoint_format": "state_dict", "crop_size": 64}
_WITH_DROPOUT: dict[str, Any] = {"dropout_argument": "dropout"}


def _full(name: str, builder: Callable[..., nn.Module], weights: WeightsEnum, description: str,
          extras: dict[str, Any] | None = None, **requirements: Any) -> ModelSpec:
    fields = {**torchvision_weights_fields(weights), **requirements}
    return _spec(name=name, builder=builder, requirements=ModelRequirements(name, **fields),
                 extras=extras or {}, description=description)


def _tiny(name: str, builder: Callable[..., nn.Module], description: str,
          extras: dict[str, Any] | None = None, **requirements: Any) -> ModelSpec:
    fields = {**_TINY_FILE, "checkpoint_name": f"{name}.pth", **requirements}
    return _spec(name=name, builder=builder, requirements=ModelRequirements(name, **fields),
                 extras=extras or {}, description=description)


register(
    _full("r3d_18", r3d_18, R3D_18_Weights.KINETICS400_V1, "torchvision R3D-18 16x2 (K400 63.2 top-1)", **_RESNET),
    _full("mc3_18", mc3_18, MC3_18_Weights.KINETICS400_V1, "torchvision MC3-18 16x2 (K400 64.0 top-1)", **_RESNET),
    _full("r2plus1d_18", r2plus1d_18, R2Plus1D_18_Weights.KINETICS400_V1,
          "torchvision R(2+1)D-18 16x2 (K400 67.5 top-1)", **_RESNET),
    # Trained on 64-frame clips at 15 fps in torchvision's reference recipe (evaluated with 128).
    _full("s3d", s3d, S3D_Weights.KINETICS400_V1, "torchvision S3D, shape-agnostic head (K400 68.4 top-1)",
          extras={**_WITH_DROPOUT, "convert": make_s3d_shape_agnostic}, min_frames=_S3D_MIN_FRAMES,
          num_frames=64, sampling_rate=2),
    _full("swin3d_t", swin3d_t, Swin3D_T_Weights.KINETICS400_V1, "torchvision Swin3D-T 32x2 (K400 77.7 top-1)", **_SWIN),
    _full("swin3d_s", swin3d_s, Swin3D_S_Weights.KINETICS400_V1, "torchvision Swin3D-S 32x2 (K400 79.5 top-1)", **_SWIN),
    _full("swin3d_b", swin3d_b, Swin3D_B_Weights.KINETICS400_V1, "torchvision Swin3D-B 32x2 (K400 79.4 top-1)", **_SWIN),
    _full("mvit_v2_s", mvit_v2_s, MViT_V2_S_Weights.KINETICS400_V1,
          "torchvision MViTv2-S 16x4, shape-agnostic (K400 80.8 top-1)",
          extras={**_WITH_DROPOUT, "convert": make_mvit_shape_agnostic}, num_frames=16, sampling_rate=4),
    _tiny("r3d_18_tiny", partial(_tiny_video_resnet, [Conv3DSimple] * 4, False), "tiny R3D for CPU tests",
          min_crop_size=_RESNET_STRIDE, num_frames=16, sampling_rate=2),
    _tiny("mc3_18_tiny", partial(_tiny_video_resnet, [Conv3DSimple] + [Conv3DNoTemporal] * 3, False),
          "tiny MC3 for CPU tests", min_crop_size=_RESNET_STRIDE, num_frames=16, sampling_rate=2),
    _tiny("r2plus1d_18_tiny", partial(_tiny_video_resnet, [Conv2Plus1D] * 4, True), "tiny R(2+1)D-18 for CPU tests",
          min_crop_size=_RESNET_STRIDE, num_frames=16, sampling_rate=2),
    _tiny("s3d_tiny", _tiny_s3d, "tiny S3D (shape-agnostic) for CPU tests", extras=_WITH_DROPOUT,
          min_frames=_S3D_MIN_FRAMES, num_frames=32, sampling_rate=2),
    _tiny("swin3d_tiny", _tiny_swin3d, "tiny Swin3D for CPU tests", num_frames=16, sampling_rate=2),
    _tiny("mvit_v2_s_tiny", _tiny_mvit_v2, "tiny MViTv2 (shape-agnostic) for CPU tests", extras=_WITH_DROPOUT,
          num_frames=16, sampling_rate=4),
)
