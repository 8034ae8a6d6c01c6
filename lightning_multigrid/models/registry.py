"""The model registry: names, what each network needs from its clips, and one ``build_model``.

Every zoo entry is a :class:`ModelSpec` registered by its family's module
(:mod:`~lightning_multigrid.models.pytorchvideo_zoo`, :mod:`~lightning_multigrid.models.nonlocal_i3d`,
:mod:`~lightning_multigrid.models.torchvision_zoo`). The family assembles the network; this
module owns what is common to all of them: argument checks, finding the weight file before
building, loading it (classifier re-initialised for a new class count), and the
:class:`ModelRequirements` that the multigrid callback checks every stage's clip shape against
(:func:`check_clip_shape`). Each built module carries them in ``module.multigrid_requirements``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from lightning_multigrid.models.checkpoints import CheckpointLoadResult, load_checkpoint

__all__ = [
    "PYTORCHVIDEO_MEAN",
    "PYTORCHVIDEO_STD",
    "REQUIREMENTS_ATTR",
    "ModelRequirements",
    "ModelSpec",
    "build_model",
    "check_clip_shape",
    "check_schedule",
    "get_spec",
    "list_models",
    "model_requirements",
    "pretrained_checkpoint_path",
    "register",
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


#: ``assemble(spec, num_classes, dropout, overrides)`` -> the network with its requirements set.
Assembler = Callable[["ModelSpec", int, "float | None", dict[str, Any]], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: how to build the network and what it requires.

    Attributes:
        name: zoo name.
        family: the module family that assembles it (``"resnet"``, ``"slowfast"``, ``"x3d"``,
            ``"csn"``, ``"r2plus1d"``, ``"i3d_nl"``, ``"torchvision"``).
        builder: the library's constructor (pytorchvideo ``create_*``, torchvision model function).
        kwargs: builder arguments (those of the hub / torchvision entry of the same name).
        requirements: what the built network needs from its clips.
        assemble: builds the network from this spec (the family's own function).
        stage_depths: residual blocks kept per stage after building (``None``: all), used by the
            tiny pytorchvideo variants because the builders only offer depths 50/101/152.
        description: one line for :func:`list_models` users.
        extras: family-specific settings (e.g. non-local block positions).
    """

    name: str
    family: str
    builder: Callable[..., nn.Module]
    kwargs: Mapping[str, Any]
    requirements: ModelRequirements
    assemble: Assembler
    stage_depths: tuple[int, ...] | None = None
    description: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_tiny(self) -> bool:
        """A CPU-test variant (listed after the full-size models)."""
        return self.name.endswith("_tiny")


_ZOO: dict[str, ModelSpec] = {}


def register(*specs: ModelSpec) -> None:
    """Add zoo entries (each family module registers its own at import)."""
    for spec in specs:
        if spec.name in _ZOO:
            raise ValueError(f"model {spec.name!r} is registered twice")
        _ZOO[spec.name] = spec


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, full-size models first, then the tiny variants."""
    return [n for n, s in _ZOO.items() if not s.is_tiny] + [n for n, s in _ZOO.items() if s.is_tiny]


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for ``name``.

    Raises:
        KeyError: naming the known models when ``name`` is not one of them.
    """
    try:
        return _ZOO[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def pretrained_checkpoint_path(name: str) -> Path:
    """Where ``build_model(name, pretrained=True)`` looks for its checkpoint.

    That is ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints`` unless
    ``torch.hub.set_dir`` was called), the same place pytorchvideo's hub and torchvision's
    weight enums download to, under the file name they use.
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
    """Build a zoo network whose head pools adaptively and outputs raw logits.

    Args:
        name: one of :func:`list_models`.
        num_classes: size of the classification layer.
        pretrained: load the model's standard checkpoint (pytorchvideo ``.pyth`` or torchvision
            ``.pth``, under the library's own file name) from :func:`pretrained_checkpoint_path`
            (never downloaded). When ``num_classes`` differs from the checkpoint's, the
            classification layer is re-initialised (fine-tuning).
        checkpoint_path: load this local file instead (``.pyth``, plain state dict or Lightning
            ``.ckpt``); see :func:`~lightning_multigrid.models.checkpoints.load_checkpoint`.
        dropout: dropout before the classification layer; ``None`` keeps the recipe's value.
        allow_pickle: let the checkpoint hold pickled Python objects, which runs code from the file
            (off: such a file is refused, naming it and this opt-in; only for files you trust).
        **overrides: further keyword arguments for the family's builder (pytorchvideo: e.g.
            ``norm=``, ``stem_dim_out=``, ``stage_depths=(d1, d2, d3, d4)``; torchvision: the
            model class's arguments, e.g. ``stochastic_depth_prob=``). Changing the architecture
            makes a pretrained checkpoint fail to load, with the mismatching keys named.

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
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"build_model({name!r}): dropout must be in [0, 1), got {dropout}")

    # Find the weights before building: a missing file should not cost a full-size build first.
    weights: Path | None = None
    if pretrained:
        weights = pretrained_checkpoint_path(name)
        if not weights.is_file():
            req = spec.requirements
            where = (
                f"download {req.checkpoint_url} to that path"
                if req.checkpoint_url
                else f"no public file exists for this model: save your own with {req.checkpoint_layout}"
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

    model = spec.assemble(spec, num_classes, dropout, dict(overrides))
    if not isinstance(getattr(model, REQUIREMENTS_ATTR, None), ModelRequirements):
        setattr(model, REQUIREMENTS_ATTR, spec.requirements)
    if weights is not None:
        result: CheckpointLoadResult = load_checkpoint(model, weights, allow_pickle=allow_pickle)
        model.checkpoint_load_result = result  # type: ignore[assignment]
    return model


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
    """Check every shape of a :class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`: each stage's
    short-cycle crops and base crop go through :func:`check_clip_shape`; the first failure raises,
    naming the stage. The same check as the callback's (:func:`lightning_multigrid.schedule.config_checks.validate_stages`).
    """
    from lightning_multigrid.schedule.config_checks import validate_stages

    validate_stages(schedule, requirements=requirements)
