"""The two Lightning namespaces: ``pytorch_lightning`` and ``lightning.pytorch``.

Both distributions ship the same Trainer under two import names, and a Trainer of one namespace
rejects a ``LightningModule`` / ``LightningDataModule`` of the other. So:

* :class:`~lightning_multigrid.MultigridCallback` works under either (Lightning duck-types callbacks);
* ``VideoClassifier`` and ``VideoDataModule`` exist once per namespace, built from one definition:
  ``from lightning_multigrid import VideoClassifier`` gives the default namespace's classes and
  ``from lightning_multigrid.lightning import VideoClassifier`` the ``lightning.pytorch`` ones.

The default namespace is ``pytorch_lightning`` when installed, else ``lightning.pytorch``; the
environment variable ``LIGHTNING_MULTIGRID_NAMESPACE`` (``pytorch_lightning`` or ``lightning``)
overrides it, also for the ``lightning-multigrid`` command.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["NAMESPACES", "ENV_VAR", "default_namespace", "import_namespace", "lightning_module",
           "Callback", "rank_zero_info", "rank_zero_warn"]

#: Import names of the two namespaces, in order of preference.
NAMESPACES = ("pytorch_lightning", "lightning.pytorch")
ENV_VAR = "LIGHTNING_MULTIGRID_NAMESPACE"
_ALIASES = {"pytorch_lightning": "pytorch_lightning", "pl": "pytorch_lightning",
            "lightning": "lightning.pytorch", "lightning.pytorch": "lightning.pytorch"}


def import_namespace(name: str) -> ModuleType:
    """``pytorch_lightning`` or ``lightning.pytorch`` (aliases: ``pl``, ``lightning``), with a clear error."""
    module = _ALIASES.get(name)
    if module is None:
        raise ValueError(f"{ENV_VAR}={name!r}: use 'pytorch_lightning' or 'lightning'")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = "pytorch-lightning" if module == "pytorch_lightning" else "lightning"
        raise ImportError(f"{module} is not installed (`pip install {package}`): {err}") from err


def default_namespace() -> ModuleType:
    """The namespace this package's default classes build on (see the module docstring)."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return import_namespace(chosen)
    errors = []
    for name in NAMESPACES:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            errors.append(f"{name}: {err}")
    raise ImportError(
        "lightning-multigrid needs Lightning 2.x: `pip install pytorch-lightning` or `pip install lightning` "
        f"({'; '.join(errors)})"
    )


#: The default namespace (``pytorch_lightning`` or ``lightning.pytorch``).
lightning_module: ModuleType = default_namespace()
Callback = lightning_module.Callback
rank_zero_info = lightning_module.utilities.rank_zero_info
rank_zero_warn = lightning_module.utilities.rank_zero_warn


def save_init_arguments(obj: object, init_locals: dict, ignore: tuple[str, ...] = ()) -> None:
    """``save_hyperparameters()`` for a class whose ``__init__`` lives in a namespace-neutral base.

    Lightning collects init arguments from frames whose class derives from its own
    ``HyperparametersMixin``, which the shared definition cannot; so the arguments are passed
    explicitly, and ``load_from_checkpoint`` gets them back as keyword arguments.
    """
    import inspect

    # The class whose __init__ is running (its `super()` call puts it in the frame), not a subclass's.
    defining = init_locals.get("__class__", type(obj))
    params = inspect.signature(defining.__init__).parameters  # type: ignore[misc]
    hparams = {k: init_locals[k] for k in params if k != "self" and k in init_locals and k not in ignore}
    obj.save_hyperparameters(hparams)  # type: ignore[attr-defined]
    obj._hparams_name = "kwargs"  # type: ignore[attr-defined]


def namespaced_class(definition: type, name: str, lightning_base: str, namespace: str, module: str) -> type:
    """``definition`` on top of ``namespace``'s ``lightning_base`` class, published as ``module.<name>``.

    The default namespace's class is the one :mod:`lightning_multigrid` exports, so each namespace
    has exactly one class (pickling and ``load_from_checkpoint`` find it by module and name).
    """
    ns = import_namespace(namespace)
    if ns is lightning_module:
        return getattr(importlib.import_module(definition.__module__), name)
    return type(name, (definition, getattr(ns, lightning_base)), {"__doc__": definition.__doc__, "__module__": module})
