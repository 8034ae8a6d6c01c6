"""One training run of ``benchmarks/speedup.py``, in its own process: ``python speedup_run.py CONFIG RESULT``.

:class:`RunConfig` is everything the run needs (written to JSON by the parent); :func:`run_training`
trains (and tests) once and returns the measurements of :class:`~speedup_monitor.RunMonitor`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_schedule import BaselineSchedule  # noqa: E402 - benchmarks/ sibling modules
from speedup_monitor import RunMonitor  # noqa: E402

from lightning_multigrid.schedule.config_checks import with_batch_cap  # noqa: E402
from lightning_multigrid.schedule.recipe import (  # noqa: E402
    DEFAULT_LR_SCALING,
    DEFAULT_SHORT_CYCLE_MIN_CROP,
    DEFAULT_SPATIAL_COARSENING,
    BaseRecipe,
)

__all__ = ["RunConfig", "make_recipe", "run_training"]


@dataclass
class RunConfig:
    """Everything one training run needs; serialised to JSON for the child process.

    ``kind`` is ``"baseline"``, ``"multigrid"``, ``"overhead-plain"`` or ``"overhead-callback"``.
    ``batch_size`` is per device; ``epochs`` and ``steps`` are the baseline recipe's.
    """

    kind: str
    data_dir: str
    model: str
    num_classes: int
    num_frames: int
    crop_size: int
    sampling_rate: int
    batch_size: int
    epochs: int
    steps: list[int]
    gamma: float
    lr: float
    warmup_epochs: float
    weight_decay: float
    bn_base_size: int
    precise_bn_batches: int
    eval_freq: int
    devices: int
    accelerator: str
    num_workers: int
    threads: int | None
    decoder: str
    seed: int
    test_num_clips: int
    test_num_crops: int
    jitter_scales: list[int] | None = None
    eval_epochs: list[int] = field(default_factory=list)
    validate: bool = True
    test: bool = True
    verbose: bool = True


def make_recipe(cfg: RunConfig, long_cycle: bool = True, short_cycle: bool = True, num_samples: int | None = None,
                **changes: Any) -> BaseRecipe:
    """The :class:`BaseRecipe` the callback derives from ``cfg`` (global batch = per-device x devices);
    ``max_batch_factor`` (in ``changes``) defaults to the callback's ``"auto"``, resolved on ``num_samples``
    training clips (no cap without them)."""
    cap_setting = changes.pop("max_batch_factor", "auto")
    recipe = BaseRecipe(
        steps=cfg.steps,
        max_epochs=cfg.epochs,
        num_frames=cfg.num_frames,
        crop_size=cfg.crop_size,
        batch_size=cfg.batch_size * cfg.devices,
        sampling_rate=cfg.sampling_rate,
        gamma=cfg.gamma,
        long_cycle=long_cycle,
        short_cycle=short_cycle,
        bn_base_size=cfg.bn_base_size,
        eval_freq=cfg.eval_freq,
        # The callback's defaults (short-cycle floor, spatial coarsening, LR scaling), so the printed
        # schedule is the one trained.
        **{"short_cycle_min_crop": DEFAULT_SHORT_CYCLE_MIN_CROP, "spatial_coarsening": DEFAULT_SPATIAL_COARSENING,
           "lr_scaling": DEFAULT_LR_SCALING, **changes},
    )
    return with_batch_cap(recipe, cap_setting, num_samples, cfg.devices)


def run_training(cfg: RunConfig) -> dict[str, Any]:
    """Train (and test) once as ``cfg.kind`` says; returns the measurements. Runs in the child."""
    import functools
    import logging
    import resource
    import warnings

    import torch

    from lightning_multigrid.callback.hooks import MultigridCallback
    from lightning_multigrid.data.datamodule import VideoDataModule
    from lightning_multigrid.models import DefaultSGD, VideoClassifier

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Lightning's start-up banners and the callback's per-epoch precise-BN lines would bury the
    # progress lines; the parent prints the schedule table itself.
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = VideoDataModule(
        format="csv", root=cfg.data_dir, decoder=cfg.decoder, num_frames=cfg.num_frames, crop_size=cfg.crop_size,
        sampling_rate=cfg.sampling_rate, jitter_scales=tuple(cfg.jitter_scales) if cfg.jitter_scales else None,
        test_num_clips=cfg.test_num_clips, test_num_crops=cfg.test_num_crops,
        num_classes=cfg.num_classes, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
        # The synthetic classes are defined by left/right direction: flipping would change labels.
        random_flip=False,
    )
    module = VideoClassifier(
        cfg.model, cfg.num_classes,
        optimizer=functools.partial(DefaultSGD, lr=cfg.lr, weight_decay=cfg.weight_decay),
    )
    monitor = RunMonitor(cfg.kind, verbose=cfg.verbose)
    callbacks: list[pl.Callback] = []
    multigrid: MultigridCallback | None = None
    if cfg.kind == "multigrid":
        multigrid = MultigridCallback(
            steps=cfg.steps, gamma=cfg.gamma, warmup_epochs=cfg.warmup_epochs, bn_base_size=cfg.bn_base_size,
            precise_bn_batches=cfg.precise_bn_batches, eval_freq=cfg.eval_freq, seed=cfg.seed,
            log_schedule=False,
        )
        callbacks.append(multigrid)
    elif cfg.kind == "overhead-callback":
        # One full-size long-cycle grid, no short cycle, epoch_factor 1: the baseline's shapes,
        # batches and epochs, but every piece of the callback (sampler, split BN, LR, logging) runs.
        multigrid = MultigridCallback(
            steps=cfg.steps, gamma=cfg.gamma, warmup_epochs=cfg.warmup_epochs, bn_base_size=cfg.bn_base_size,
            precise_bn_batches=0, eval_freq=cfg.eval_freq, seed=cfg.seed, epoch_factor=1.0,
            long_cycle_factors=[(1.0, 1.0)], short_cycle=False, follow_eval_schedule=False, log_schedule=False,
        )
        callbacks.append(multigrid)
    else:  # baseline and overhead-plain: no multigrid code in the loop
        callbacks.append(BaselineSchedule(make_recipe(cfg, long_cycle=False, short_cycle=False), cfg.warmup_epochs,
                                          eval_epochs=cfg.eval_epochs if cfg.validate else None))
    # Last, so a batch's step time includes every other callback's batch-end work; the start of a
    # batch is the first callback's hook, which the monitor's profiler sees.
    callbacks = [*callbacks, monitor]

    trainer = pl.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=callbacks, limit_val_batches=1.0 if cfg.validate else 0,
        profiler=monitor.profiler,
    )
    on_gpu = torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    monitor.fit_started()
    trainer.fit(module, datamodule=datamodule)
    monitor.fit_finished()
    test_metrics: dict[str, float] = {}
    test_s = 0.0
    if cfg.test:
        start = time.perf_counter()
        results = trainer.test(module, datamodule=datamodule, verbose=False)
        test_s = time.perf_counter() - start
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    result = monitor.summary()
    result.update(
        kind=cfg.kind,
        world_size=trainer.world_size,
        global_rank=trainer.global_rank,
        # The epochs trained: the callback restores the Trainer's (baseline) max_epochs at teardown.
        max_epochs=multigrid.schedule.max_epochs if multigrid and multigrid.schedule else int(trainer.max_epochs or 0),
        num_train_clips=len(datamodule.train_dataset),
        test_s=test_s,
        total_s=result["fit_s"] + test_s,
        test_top1=test_metrics.get("test/top1"),
        test_metrics=test_metrics,
        test_views_per_video=cfg.test_num_clips * cfg.test_num_crops,
        device=str(trainer.strategy.root_device),
        torch_threads=torch.get_num_threads(),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_worker_rss_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
    )
    if multigrid is not None and multigrid.schedule is not None:
        result["schedule"] = multigrid.schedule.to_dict(num_samples=len(datamodule.train_dataset),
                                                        world_size=trainer.world_size)
    return result


def _child_main(config_path: str, result_path: str) -> int:
    cfg = RunConfig(**json.loads(Path(config_path).read_text()))
    result = run_training(cfg)
    if result.get("global_rank", 0) == 0:
        Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
