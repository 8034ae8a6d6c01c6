"""Setup-time checks that need the model: one forward pass per distinct clip length.

:func:`probe_forward` runs the model once per distinct T at its smallest crop, so that fixed-size
pooling, or a batch format precise BN cannot read, fails at setup, not at epoch 140. The checks that
need no model or data are pure and live in :mod:`lightning_multigrid.schedule.config_checks`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import torch

from lightning_multigrid.callback.batch_access import batch_input, batch_video
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import ClipShape

__all__ = ["probe_forward", "default_forward", "check_base_clips", "check_forward_defined", "uses_compile"]


def _probe_shapes(schedule: MultigridSchedule) -> list[tuple[ClipShape, str]]:
    """Per distinct T, the smallest crop used with it (pooling fails there first) and its stage."""
    smallest: dict[int, tuple[ClipShape, str]] = {}
    for stage in schedule.stages:
        for shape in schedule.clip_shapes(stage.start_epoch):
            best = smallest.get(shape.num_frames)
            if best is None or shape.crop_size < best[0].crop_size:
                smallest[shape.num_frames] = (shape, schedule.describe_stage(stage))
    return [smallest[t] for t in sorted(smallest)]


def _eager() -> Any:
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def probe_forward(
    module: torch.nn.Module,
    dataset: Any,
    schedule: MultigridSchedule,
    collate: Callable[[list[Any]], Any],
    to_device: Callable[[Any], Any],
    forward: Callable[[Any, Any], Any],
    reshape: Callable[[Any, ClipShape], None] | None = None,
) -> None:
    """Run one clip per distinct T (at its smallest crop) through ``forward(module, batch)``.

    ``reshape(batch, shape)`` turns a base-shape batch into ``shape`` in place (tier-3 datasets).
    Eval mode under ``no_grad``, with all RNG states restored, so training is unchanged. A failure
    names the stage, the shape, the innermost module that failed, and the usual fix.
    """
    modes = [(m, m.training) for m in module.modules()]
    rng = (random.getstate(), torch.get_rng_state())
    active: list[str] = []
    names = {m: n for n, m in module.named_modules()}

    def enter(m: torch.nn.Module, _: Any) -> None:
        active.append(names.get(m, type(m).__name__))

    def leave(m: torch.nn.Module, _: Any, __: Any) -> None:
        active.pop()

    handles = [h for m in module.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        module.eval()
        for shape, stage in _probe_shapes(schedule):
            active.clear()
            batch = to_device(collate([dataset[ClipKey(0, shape)]]))
            if reshape is not None:  # tier-3 datasets return base-shape clips
                reshape(batch, shape)
            try:
                # Eager even under torch.compile: the probe's hooks and batch of one are not worth graphs.
                with torch.no_grad(), _eager():
                    forward(module, batch)
            except NotImplementedError as err:
                raise ValueError(_no_forward(module)) from err
            except KeyError as err:
                raise ValueError(
                    f"MultigridCallback: precise BN cannot read the train batch ({err!r} missing). The default "
                    "feeds batch['video'] (dict batches) or batch[0] (tuples) to the module; pass "
                    "MultigridCallback(precise_bn_forward=lambda module, batch: module(<input>)), or "
                    "precise_bn_batches=0"
                ) from err
            except (RuntimeError, ValueError, TypeError) as err:
                if "uint8" in str(err):
                    raise  # raw clips reached the model: the model's own message says which fix applies
                where = active[-1] if active else type(module).__name__
                raise ValueError(
                    f"MultigridCallback: the model cannot take multigrid stage {stage}'s clips "
                    f"(T={shape.num_frames}, crop {shape.crop_size}): module '{where}' failed with: {err}. "
                    "Fixed-size pooling (e.g. pytorchvideo's default AvgPool3d heads) cannot take smaller "
                    "clips: use adaptive pooling (nn.AdaptiveAvgPool3d(1)), build the model with "
                    "lightning_multigrid.models (shape-agnostic heads), or change long_cycle_factors"
                ) from err
    finally:
        for h in handles:
            h.remove()
        for m, was_training in modes:
            m.training = was_training
        random.setstate(rng[0])
        torch.set_rng_state(rng[1])


def default_forward(module: torch.nn.Module, batch: Any) -> Any:
    """Feed a training batch's input (:func:`~lightning_multigrid.callback.batch_access.batch_input`) to the module."""
    return module(batch_input(batch))


def _no_forward(module: torch.nn.Module) -> str:
    return (
        f"MultigridCallback: {type(module).__name__} defines no forward(), which precise BN and the setup "
        "probe call (as module(batch['video'])). Define forward(self, x) in it (e.g. return self.net(x)), or "
        "pass MultigridCallback(precise_bn_forward=lambda module, batch: module.net(batch['video'])), or "
        "precise_bn_batches=0"
    )


def check_forward_defined(module: torch.nn.Module, custom_forward: bool, precise_bn_batches: int) -> None:
    """Refuse at setup a module without its own ``forward()`` when precise BN will call it.

    A LightningModule whose ``training_step`` calls ``self.net(x)`` trains to the end and then fails
    in precise BN with a bare ``NotImplementedError`` (also with ``probe_shapes=False``).
    """
    if custom_forward or precise_bn_batches == 0:
        return
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return  # precise BN has nothing to do, so never calls the module
    owner = next(c for c in type(module).__mro__ if "forward" in vars(c))
    if owner.__module__.split(".")[0] in ("torch", "pytorch_lightning", "lightning"):
        raise ValueError(_no_forward(module))


def uses_compile(module: torch.nn.Module) -> bool:
    """Whether ``module`` or a submodule was wrapped by ``torch.compile`` (Lightning marks a
    compiled LightningModule with ``_compiler_ctx``; a compiled submodule is an ``OptimizedModule``)."""
    if getattr(module, "_compiler_ctx", None):
        return True
    return any(hasattr(m, "_orig_mod") for m in module.modules())


def check_base_clips(dataset: Any, base: ClipShape, collate: Any) -> None:
    """Refuse a tier-3 dataset whose clips are not the base shape the run was given.

    Its clips are resampled from the declared ``(T0, S0)``: clips of another size would be silently
    stretched (upsampled clips cost several times the compute) or cropped. One item is read.
    """
    try:
        video = batch_video(collate([dataset[0]]))
    except TypeError:
        return  # not one clip tensor (e.g. SlowFast pathways): the resampling step reports that
    _, _, t, h, w = video.shape
    if (t, h, w) != (base.num_frames, base.crop_size, base.crop_size):
        raise ValueError(
            f"MultigridCallback: the train dataset {type(dataset).__name__} ignores clip keys, so its clips are "
            f"resampled from the declared base shape T={base.num_frames}, crop {base.crop_size}x{base.crop_size}, "
            f"but its first clip is T={t}, {h}x{w}. Declare the clips' real shape (the dataset's base_shape, or "
            f"MultigridCallback(num_frames={t}, crop_size={h})) or make the dataset return that shape"
        )
