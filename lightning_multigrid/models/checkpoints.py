"""Loading network weights from local files, with fine-tuning and a precise report.

Accepted files (all read on the CPU, never downloaded):

* pytorchvideo / PySlowFast-style ``.pyth``: a dict whose ``"model_state"`` holds the state dict;
* a plain state dict (``torch.save(model.state_dict(), path)``);
* a Lightning ``.ckpt``: ``"state_dict"`` with the network under a ``model.`` prefix (as
  :class:`~lightning_multigrid.models.VideoClassifier` saves it). ``module.`` (DDP) and
  ``_orig_mod.`` (``torch.compile``) prefixes are removed too.

When the checkpoint's classification layer has another shape than the model's (a different
number of classes), that layer is re-initialised instead of loaded: this is fine-tuning. Any other
shape mismatch is an error that names the keys, because it means a different architecture.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "CheckpointLoadResult",
    "UnsafeCheckpointError",
    "classifier_name",
    "extract_state_dict",
    "load_checkpoint",
    "read_checkpoint",
]

log = logging.getLogger(__name__)

# How many key names a log line lists before abbreviating.
_MAX_LISTED = 20


@dataclass(frozen=True)
class CheckpointLoadResult:
    """What :func:`load_checkpoint` did.

    Attributes:
        source: the file (or ``"<state dict>"``) the weights came from.
        loaded_keys: model keys whose values were copied from the checkpoint.
        missing_keys: model keys the checkpoint lacks (they keep their current values); the
            re-initialised classifier keys are not listed here.
        unexpected_keys: checkpoint keys the model does not have (ignored).
        reinitialized_keys: classifier keys re-initialised because the class count differs.
        ignored_keys: keys of a Lightning checkpoint outside the network (no ``model.`` prefix).
        checkpoint_num_classes: output size of the checkpoint's classifier, when found.
        model_num_classes: output size of the model's classifier, when found.
    """

    source: str
    loaded_keys: tuple[str, ...]
    missing_keys: tuple[str, ...]
    unexpected_keys: tuple[str, ...]
    reinitialized_keys: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
    checkpoint_num_classes: int | None = None
    model_num_classes: int | None = None

    @property
    def exact(self) -> bool:
        """Every model key was loaded and every checkpoint key used."""
        return not (self.missing_keys or self.unexpected_keys or self.reinitialized_keys)

    def summary(self) -> str:
        """One line listing what was loaded, re-initialised, missing and unexpected."""
        total = len(self.loaded_keys) + len(self.missing_keys) + len(self.reinitialized_keys)
        parts = [f"loaded {len(self.loaded_keys)}/{total} model tensors from {self.source}"]
        if self.reinitialized_keys:
            parts.append(
                f"classifier re-initialised for fine-tuning ({self.checkpoint_num_classes} classes in the "
                f"checkpoint, {self.model_num_classes} in the model): {_listing(self.reinitialized_keys)}"
            )
        parts.append(f"missing keys: {_listing(self.missing_keys)}")
        parts.append(f"unexpected keys: {_listing(self.unexpected_keys)}")
        if self.ignored_keys:
            parts.append(f"ignored non-network keys: {_listing(self.ignored_keys)}")
        return "; ".join(parts)


def _listing(keys: tuple[str, ...] | list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"[{shown}]{more}"


def classifier_name(model: nn.Module) -> str | None:
    """Qualified name of the final classification ``nn.Linear`` of ``model``.

    pytorchvideo networks end with a head whose ``proj`` is the classifier (``blocks.<last>.proj``);
    for other modules the last ``nn.Linear`` registered is taken. ``None`` if there is none.
    """
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
        proj = getattr(blocks[-1], "proj", None)
        if isinstance(proj, nn.Linear):
            return f"blocks.{len(blocks) - 1}.proj"
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    return last


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled Python objects and the caller did not opt in to running them."""


def read_checkpoint(path: str | PathLike[str], *, allow_pickle: bool = False) -> Any:
    """``torch.load`` a local checkpoint onto the CPU, tensors only unless the caller opts in.

    The file is read with ``weights_only=True``: tensors, containers and plain values only, so
    nothing in the file can run code. A file that pickles other objects (e.g. a Lightning
    ``.ckpt`` whose hyper-parameters hold classes) is refused with :class:`UnsafeCheckpointError`
    naming the file and the classes it holds. Unpickling such a file runs whatever code those
    objects name, so it happens only with ``allow_pickle=True`` (``build_model(...,
    allow_pickle=True)``), and only for files you trust.

    Raises:
        FileNotFoundError: naming the path when there is no such file.
        ValueError: an empty file, a file that is not a checkpoint, or a damaged one.
        UnsafeCheckpointError: the file holds pickled objects and ``allow_pickle`` is false.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    _check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, KeyError, RuntimeError) as err:  # damaged past its header (torch's own messages are bare)
        raise ValueError(f"checkpoint {path} cannot be read: damaged or truncated file? ({type(err).__name__}: {err})") from err
    except pickle.UnpicklingError as err:
        if allow_pickle:
            log.warning("checkpoint %s holds pickled objects; unpickling it as allow_pickle=True asks", path)
            return torch.load(path, map_location="cpu", weights_only=False)
        raise UnsafeCheckpointError(
            f"checkpoint {path} holds pickled Python objects ({_pickled_globals(path, err)}), not only "
            "tensors; loading it would run code named in the file, so it was refused. If you trust "
            "the file, pass allow_pickle=True (build_model / load_checkpoint / read_checkpoint), or "
            "re-save only its weights: torch.save({'model_state': model.state_dict()}, path)"
        ) from None


def _check_checkpoint_file(path: Path) -> None:
    """Refuse an empty file, or one that is neither of torch.save's formats (a zip archive, or a
    legacy pickle, which starts with the pickle protocol byte 0x80), before unpickling advice applies."""
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise ValueError(f"checkpoint {path} is empty (0 bytes): an interrupted download or save? Fetch or save it again")
    if head != b"PK\x03\x04" and head[:1] != b"\x80":
        raise ValueError(
            f"{path} is not a checkpoint (not a file written by torch.save: it starts with {head!r}); "
            "check the path"
        )


def _pickled_globals(path: Path, err: BaseException) -> str:
    """The classes/functions a checkpoint would import, read without executing anything."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - fall back to the loader's own message
        names = re.findall(r"GLOBAL ([\w.]+)", str(err))
    return ", ".join(sorted(set(names))[:_MAX_LISTED]) if names else type(err).__name__


def extract_state_dict(checkpoint: Mapping[str, Any], source: str = "<state dict>") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Find the network's state dict inside a loaded checkpoint.

    Returns:
        ``(state_dict, ignored_keys)``: tensors keyed as in the bare network, and the keys of a
        Lightning checkpoint that lie outside the network.

    Raises:
        ValueError: naming the top-level keys when no state dict can be found.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source}: expected a dict-like checkpoint, got {type(checkpoint).__name__}")
    ignored: list[str] = []
    if isinstance(checkpoint.get("model_state"), Mapping):
        state = dict(checkpoint["model_state"])
    elif isinstance(checkpoint.get("state_dict"), Mapping):
        state = dict(checkpoint["state_dict"])
        state = {_strip_wrappers(k): v for k, v in state.items()}
        if any(k.startswith("model.") for k in state):
            ignored = sorted(k for k in state if not k.startswith("model."))
            state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = dict(checkpoint)
    else:
        keys = ", ".join(map(str, list(checkpoint)[:10]))
        raise ValueError(
            f"{source}: no state dict found: expected a 'model_state' (pytorchvideo .pyth) or 'state_dict' "
            f"(Lightning .ckpt) entry, or a plain state dict of tensors; top-level keys: [{keys}]"
        )
    state = {_strip_wrappers(k): v for k, v in state.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    ignored += sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return state, ignored


def _strip_wrappers(key: str) -> str:
    # torch.compile wraps the module as `_orig_mod`, anywhere in the path.
    return key.replace("_orig_mod.", "")


def load_checkpoint(
    model: nn.Module,
    checkpoint: str | PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = False,
    reinit_classifier: bool = True,
    allow_pickle: bool = False,
) -> CheckpointLoadResult:
    """Load weights into ``model``, re-initialising its classifier when the class count differs.

    Args:
        model: the network (a pytorchvideo ``Net`` or any module).
        checkpoint: a local file path, or an already loaded checkpoint / state dict.
        strict: raise if any model key is missing or any checkpoint key is unexpected.
        reinit_classifier: when the classifier's shape differs, re-initialise it (fine-tuning);
            if ``False`` that mismatch raises like any other.
        allow_pickle: let a file holding pickled Python objects be unpickled (runs code from
            the file; see :func:`read_checkpoint`). Off by default.

    Returns:
        A :class:`CheckpointLoadResult`; its :meth:`~CheckpointLoadResult.summary` is also logged
        (as a warning when keys are missing or unexpected).

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file holds pickled objects and ``allow_pickle`` is false.
        ValueError: shapes differ outside the classifier (the keys and shapes are named), or no
            checkpoint key matches the model at all.
        RuntimeError: ``strict`` and keys are missing or unexpected.
    """
    if isinstance(checkpoint, Mapping):
        source, raw = "<state dict>", checkpoint
    else:
        source, raw = str(checkpoint), read_checkpoint(checkpoint, allow_pickle=allow_pickle)
    state, ignored = extract_state_dict(raw, source)
    own = model.state_dict()

    cls = classifier_name(model)
    cls_keys = {f"{cls}.weight", f"{cls}.bias"} & set(own) if cls is not None else set()
    model_classes = int(own[f"{cls}.weight"].shape[0]) if f"{cls}.weight" in own else None
    ckpt_classes = (
        int(state[f"{cls}.weight"].shape[0]) if cls is not None and f"{cls}.weight" in state else None
    )

    mismatched: list[str] = []
    classifier_mismatch = False
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            if key in cls_keys and reinit_classifier:
                classifier_mismatch = True
            else:
                mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
    if mismatched:
        raise ValueError(
            f"{source}: {len(mismatched)} tensor(s) have a different shape than in the model (a different "
            f"architecture or builder overrides?): " + "; ".join(mismatched[:_MAX_LISTED])
        )
    reinit = sorted(cls_keys) if classifier_mismatch else []
    usable = {k: v for k, v in state.items() if k not in reinit}
    if own and not any(k in own for k in usable):
        sample = ", ".join(list(state)[:5])
        raise ValueError(
            f"{source}: none of the checkpoint's {len(state)} keys match the model (checkpoint keys start "
            f"[{sample}], model keys start [{', '.join(list(own)[:5])}]); PySlowFast checkpoints name "
            "layers differently from pytorchvideo"
        )

    incompatible = model.load_state_dict(usable, strict=False)
    if reinit:
        _reset_linear(model.get_submodule(cls))  # type: ignore[arg-type]
    missing = tuple(k for k in incompatible.missing_keys if k not in reinit)
    result = CheckpointLoadResult(
        source=source,
        loaded_keys=tuple(k for k in usable if k in own),
        missing_keys=missing,
        unexpected_keys=tuple(incompatible.unexpected_keys),
        reinitialized_keys=tuple(reinit),
        ignored_keys=tuple(ignored),
        checkpoint_num_classes=ckpt_classes,
        model_num_classes=model_classes,
    )
    if strict and (result.missing_keys or result.unexpected_keys):
        raise RuntimeError(f"strict checkpoint loading failed: {result.summary()}")
    if result.missing_keys or result.unexpected_keys:
        if _is_rank_zero():
            log.warning("%s", result.summary())
    else:  # through Lightning's rank-zero logger, which users see at its default level
        from lightning_multigrid.namespace import rank_zero_info  # noqa: PLC0415 - lightning loads late

        rank_zero_info(result.summary())
    return result


@torch.no_grad()
def _reset_linear(layer: nn.Module) -> None:
    # pytorchvideo's own initialisation of a classification layer (init_net_weights).
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"classifier must be an nn.Linear to be re-initialised, got {type(layer).__name__}")
    layer.weight.normal_(mean=0.0, std=0.01)
    if layer.bias is not None:
        layer.bias.zero_()


def _is_rank_zero() -> bool:
    """Whether this process logs (Lightning's rank-zero rule, in whichever namespace is installed)."""
    from lightning_multigrid.namespace import lightning_module

    return getattr(lightning_module.utilities.rank_zero_only, "rank", 0) == 0
