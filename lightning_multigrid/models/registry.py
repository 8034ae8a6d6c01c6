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
from typing import Any

import torch
import torch.nn as nn

from lightning_multigrid.models.checkpoints import CheckpointLoadResult, load_checkpoint
from lightning_multigrid.schedule.config_checks import validate_stages
from lightning_multigrid.schedule.model_requirements import (
    REQUIREMENTS_ATTR,
    ModelRequirements,
    find_requirements,
)

__all__ = [
    "ModelSpec",
    "build_model",
    "check_schedule",
    "get_spec",
    "list_models",
    "model_requirements",
    "pretrained_checkpoint_path",
    "register",
]

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

    A module is looked up with :func:`~lightning_multigrid.schedule.model_requirements.find_requirements`
    (its own ``multigrid_requirements`` or its first submodule's, e.g. a
    :class:`~lightning_multigrid.models.VideoClassifier`'s network). A module of your own can
    declare its needs by setting ``module.multigrid_requirements``; without it the result is
    ``None`` (nothing known, nothing checked).

    Raises:
        KeyError: for an unknown zoo name.
    """
    if isinstance(name_or_module, str):
        return get_spec(name_or_module).requirements
    return find_requirements(name_or_module)


def check_schedule(requirements: ModelRequirements, schedule: Any) -> None:
    """Check every shape of a :class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`: each stage's
    short-cycle crops and base crop go through :func:`check_clip_shape`; the first failure raises,
    naming the stage. The same check as the callback's (:func:`lightning_multigrid.schedule.config_checks.validate_stages`).
    """
    validate_stages(schedule, requirements=requirements)
