"""A user's setting refused by one of this package's checks, reached through the LightningCLI: one
paragraph naming the config key to change, instead of a long traceback.

Our checks raise ``ValueError`` (or ``FileNotFoundError`` for a path) with a message that starts
with the setting's name (``"max_epochs: must exceed the last step 7, got 4"``). :func:`config_keys`
maps that name to where a recipe sets it: the Trainer, the MultigridCallback entry under
``trainer.callbacks``, ``data.*`` or ``model.*`` (by the signatures of the classes the CLI builds).
"""

from __future__ import annotations

import inspect
import re
import traceback
from pathlib import Path

__all__ = ["config_keys", "is_user_setting_error", "one_paragraph"]

_PACKAGE = Path(__file__).resolve().parents[1]  # the package root: errors raised anywhere in it
_CALLBACK = "the MultigridCallback entry under trainer.callbacks: init_args.{name} (--trainer.callbacks+=... on the command line)"
# Settings the Trainer owns, whose callback counterpart a message about them also concerns.
_TRAINER = {"max_epochs": "trainer.max_epochs (--trainer.max_epochs=N), or the baseline LR milestones in " + _CALLBACK.format(name="steps")}


def is_user_setting_error(error: BaseException) -> bool:
    """A ``ValueError``/``FileNotFoundError`` raised by this package's own code (not a library's)."""
    if not isinstance(error, (ValueError, FileNotFoundError)) or error.__traceback__ is None:
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_PACKAGE)


def config_keys(message: str) -> str | None:
    """Where a recipe sets the setting a message starts with (``"name: ..."``) and any setting its
    fix names (``"use crop_size >= 46"``), or ``None``."""
    match = re.match(r"(?:MultigridCallback: )?`?(\w+)`?[:=]", message)
    names = ([match.group(1)] if match else []) + re.findall(r"\b(\w+) ?>?= ?\d", message)
    places = [place for name in dict.fromkeys(names) if (place := _config_key(name))]
    return "; ".join(places) or None


def _config_key(name: str) -> str | None:
    from lightning_multigrid.callback import MultigridCallback  # noqa: PLC0415 - the CLI's classes, loaded late
    from lightning_multigrid.data import VideoDataModule  # noqa: PLC0415
    from lightning_multigrid.models import VideoClassifier  # noqa: PLC0415

    if name in _TRAINER:
        return _TRAINER[name]
    places = []
    if name in inspect.signature(VideoDataModule).parameters:
        places.append(f"data.{name} (--data.{name})")
    if name in inspect.signature(VideoClassifier).parameters:
        places.append(f"model.{name} (--model.{name})")
    if name in inspect.signature(MultigridCallback).parameters:
        places.append(_CALLBACK.format(name=name))
    return " or ".join(places) or None


def one_paragraph(command: str, error: BaseException) -> str:
    """``"lightning-multigrid fit: error: <message>. Change <key> ..."`` for the console."""
    message = str(error).strip().rstrip(".")
    keys = config_keys(message)
    where = f" Change it in the config: {keys}." if keys else ""
    return f"lightning-multigrid {command}: error: {message}.{where}"
