"""torchvision's S3D and MViTv2 made to run at every clip shape, with unchanged weights.

* **S3D** ends with ``AvgPool3d((2, 7, 7))``, sized for 16+ frame 224-pixel clips, and a 1x1x1
  ``Conv3d`` classifier whose outputs are averaged. :func:`make_s3d_shape_agnostic` pools globally
  instead and computes the same classifier as a linear layer on the pooled features; at the
  native shape the pool covers the whole map, so the outputs are identical.
* **MViTv2** reads the token grid ``(T', H', W')`` from the size it was built for, so any other
  input fails to reshape. :func:`make_mvit_shape_agnostic` derives the grid from the patch
  embedding's output instead, which is what MViTv2 does for new resolutions: its relative-position
  tables are then linearly interpolated to the grid's ``2 * size - 1`` distances (torchvision's
  ``_add_rel_pos`` does this whenever the sizes differ; at the native shape nothing changes).
  MViTv1's absolute positional embeddings are not converted (that model is not in the zoo).

Both conversions swap the class of the built module, so state-dict keys stay torchvision's and
its ``.pth`` files load as they are.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.video.mvit import MViT, _unsqueeze
from torchvision.models.video.s3d import S3D

__all__ = ["PointwiseLinear", "ShapeAgnosticMViT", "ShapeAgnosticS3D", "make_mvit_shape_agnostic", "make_s3d_shape_agnostic"]


class PointwiseLinear(nn.Linear):
    """A linear layer stored as a 1x1x1 ``Conv3d`` weight ``(out, in, 1, 1, 1)``.

    It reads and writes S3D's classifier tensors under their own shape (so torchvision's file
    loads, and a class-count change is still found on the classifier) while being the
    ``nn.Linear`` that fine-tuning re-initialises.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.weight = nn.Parameter(self.weight.detach().view(out_features, in_features, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.flatten(1), self.bias)


class ShapeAgnosticS3D(S3D):
    """S3D with global average pooling before a linear classifier (same keys as torchvision's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)


def make_s3d_shape_agnostic(model: S3D) -> ShapeAgnosticS3D:
    """Convert a torchvision S3D in place (weights kept) and return it."""
    if not isinstance(model, S3D):
        raise TypeError(f"expected a torchvision S3D, got {type(model).__name__}")
    conv = model.classifier[-1]
    if not isinstance(conv, nn.Conv3d) or conv.kernel_size != (1, 1, 1):
        raise TypeError(f"S3D classifier must end with a 1x1x1 Conv3d, got {conv}")
    linear = PointwiseLinear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight)
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    model.classifier[-1] = linear
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    model.__class__ = ShapeAgnosticS3D
    return model  # type: ignore[return-value]


class ShapeAgnosticMViT(MViT):
    """MViT whose token grid comes from the input, not from the build-time size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _unsqueeze(x, 5, 2)[0]
        x = self.conv_proj(x)
        thw = (int(x.shape[2]), int(x.shape[3]), int(x.shape[4]))
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            x, thw = block(x, thw)
        x = self.norm(x)
        return self.head(x[:, 0])


def make_mvit_shape_agnostic(model: MViT) -> ShapeAgnosticMViT:
    """Convert a torchvision MViTv2 (relative positions) in place and return it.

    Raises:
        TypeError: for MViTv1, whose absolute positional embedding has a fixed token count.
    """
    if not isinstance(model, MViT):
        raise TypeError(f"expected a torchvision MViT, got {type(model).__name__}")
    if model.pos_encoding.spatial_pos is not None:
        raise TypeError("only MViTv2 (relative positions) is made shape-agnostic; MViTv1 has absolute ones")
    model.__class__ = ShapeAgnosticMViT
    return model  # type: ignore[return-value]
