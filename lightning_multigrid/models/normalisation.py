"""Loaded weights and the data's normalisation must agree.

A network fine-tuned from published weights sees the clips normalised as in its pre-training, or
its first layers see shifted inputs: changing ``model.model`` in a recipe (e.g. ``slow_r50`` to
torchvision's ``r2plus1d_18``) without changing ``data.mean``/``data.std`` would otherwise train on
silently mis-normalised clips. :func:`check_normalisation` refuses that at setup, naming the values
to set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_normalisation"]

_TOLERANCE = 1e-3  # published constants are given to 3-4 digits


def _differs(a: Sequence[float], b: Sequence[float]) -> bool:
    return any(abs(float(x) - float(y)) > _TOLERANCE for x, y in zip(a, b))


def _show(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def check_normalisation(hparams: Any, requirements: Any, datamodule: Any) -> None:
    """Raise ``ValueError`` when weights were loaded and ``datamodule`` normalises with other
    constants than those the weights were trained with.

    Args:
        hparams: the classifier's hyper-parameters (``model``, ``pretrained``, ``checkpoint_path``);
            without loaded weights nothing is checked (a network trained from scratch takes any).
        requirements: the network's :class:`~lightning_multigrid.models.ModelRequirements`
            (``None``: nothing declared, nothing to check).
        datamodule: the Trainer's datamodule; one without ``mean``/``std`` is not checked.
    """
    weights = hparams.get("checkpoint_path") or ("pretrained" if hparams.get("pretrained") else None)
    if weights is None:
        return
    model_name = hparams.get("model")
    mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
    if requirements is None or mean is None or std is None:
        return
    if _differs(mean, requirements.mean) or _differs(std, requirements.std):
        raise ValueError(
            f"data.mean/data.std: the {model_name} weights ({weights}) were trained on clips normalised with "
            f"mean {_show(requirements.mean)}, std {_show(requirements.std)}, but the data normalises with mean "
            f"{_show(mean)}, std {_show(std)}. Set data.mean: {_show(requirements.mean)} and data.std: "
            f"{_show(requirements.std)} (VideoDataModule(mean=..., std=...)), as the model's recipe does"
        )
