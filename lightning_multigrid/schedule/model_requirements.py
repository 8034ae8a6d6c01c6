"""What a network needs from its clips: one torch-free home for model requirements.

:class:`ModelRequirements` is declared by every zoo entry (:mod:`lightning_multigrid.models.registry`)
and by any network of your own (set ``module.multigrid_requirements``); :func:`find_requirements`
is the one lookup (the module or any submodule, e.g. a ``LightningModule``'s network), and
:func:`check_clip_shape` the one check, used by the config checks
(:func:`~lightning_multigrid.schedule.config_checks.validate_stages`), the model zoo and the
callback's setup probe. Pure Python: no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "PYTORCHVIDEO_MEAN",
    "PYTORCHVIDEO_STD",
    "REQUIREMENTS_ATTR",
    "ModelRequirements",
    "check_clip_shape",
    "find_requirements",
]

#: Attribute of a built module that holds its :class:`ModelRequirements`.
REQUIREMENTS_ATTR = "multigrid_requirements"

# Every network in the zoo downsamples space by 32 (stem conv 2 x stem pool 2 x three stride-2
# stages, or the equivalent): below that the last stage sees less than one real pixel.
_SPATIAL_STRIDE = 32

# The normalisation pytorchvideo's Kinetics checkpoints were trained with (also the data side's
# default), on frames scaled to [0, 1].
PYTORCHVIDEO_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
PYTORCHVIDEO_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


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
        checkpoint_name: file name of the checkpoint in ``$TORCH_HOME/hub/checkpoints``: the
            library's own name (pytorchvideo ``.pyth``, torchvision ``<arch>-<hash>.pth``).
        checkpoint_url: where that file is published (``None``: no public file; save your own).
        checkpoint_format: ``"pyth"`` (a dict whose ``model_state`` is the state dict, as
            pytorchvideo publishes) or ``"state_dict"`` (a plain state dict, as torchvision does).
        mean, std: per-channel normalisation of ``[0, 1]`` frames the weights were trained
            with; give them to the data side (``VideoDataModule(mean=..., std=...)``, ``data.mean``
            in a recipe) when starting from those weights.
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
    checkpoint_format: Literal["pyth", "state_dict"] = "pyth"
    mean: tuple[float, float, float] = PYTORCHVIDEO_MEAN
    std: tuple[float, float, float] = PYTORCHVIDEO_STD

    def __post_init__(self) -> None:
        for attr in ("min_frames", "frame_divisor", "min_crop_size", "num_frames", "crop_size", "sampling_rate"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelRequirements.{attr} must be a positive int, got {value!r}")
        if self.slowfast_alpha is not None and (
            isinstance(self.slowfast_alpha, bool) or not isinstance(self.slowfast_alpha, int) or self.slowfast_alpha < 1
        ):
            raise ValueError(f"ModelRequirements.slowfast_alpha must be None or a positive int, got {self.slowfast_alpha!r}")
        if self.checkpoint_format not in ("pyth", "state_dict"):
            raise ValueError(f"ModelRequirements.checkpoint_format must be 'pyth' or 'state_dict', got {self.checkpoint_format!r}")
        for attr in ("mean", "std"):
            value = getattr(self, attr)
            if len(value) != 3 or (attr == "std" and min(value) <= 0):
                raise ValueError(f"ModelRequirements.{attr} needs 3 values (RGB){', all positive' if attr == 'std' else ''}, got {value!r}")

    @property
    def checkpoint_layout(self) -> str:
        """How a file of this model's checkpoint format is written (for messages)."""
        if self.checkpoint_format == "pyth":
            return "torch.save({'model_state': model.state_dict()}, path)"
        return "torch.save(model.state_dict(), path)"

    @property
    def is_slowfast(self) -> bool:
        """Whether the network takes a ``[slow, fast]`` list of pathways."""
        return self.slowfast_alpha is not None


def find_requirements(module: Any) -> ModelRequirements | None:
    """The :class:`ModelRequirements` a module declares: its own ``multigrid_requirements`` or the
    first submodule's (``module.modules()`` order, so a ``VideoClassifier``'s network is found);
    ``None`` when none declares any (nothing known, nothing checked).

    Raises:
        TypeError: ``multigrid_requirements`` holds something else.
    """
    for sub in module.modules() if hasattr(module, "modules") else [module]:
        found = getattr(sub, REQUIREMENTS_ATTR, None)
        if found is not None:
            if not isinstance(found, ModelRequirements):
                raise TypeError(f"{REQUIREMENTS_ATTR} must be a ModelRequirements, got {type(found).__name__}")
            return found
    return None


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
