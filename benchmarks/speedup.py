"""Multigrid vs. baseline: measured wall-clock speed-up at equal accuracy (issue #6).

Run as ``python benchmarks/speedup.py [options]``. One invocation trains the same network on the same
data twice, from the same seed, base LR and optimizer:

* ``baseline``: a plain Trainer at the fixed base shape ``(B0, T0, S0)`` for ``--epochs`` epochs,
  step LR (``--gamma`` at the ``--steps`` milestones), no multigrid code at all;
* ``multigrid``: the same Trainer plus :class:`~lightning_multigrid.MultigridCallback`, which derives
  its schedule from that baseline recipe.

Data path (``--input frames``, the default): the synthetic videos are generated, converted once to
JPEG frame folders (``lightning-multigrid prepare``, resumable, into ``<data-dir>_frames``), and
both runs train on the frame folders; ``--input video`` decodes the video files instead.

Each run happens in a fresh Python process (so per-run peak memory and start-up are not shared)
and reports: training wall-clock (everything inside ``Trainer.fit`` except validation) and total
wall-clock (fit + multi-view test), iterations, peak memory, validation top-1 against elapsed
training time, final validation and multi-view test top-1. Training time is split into compute
(steps), data wait (the loader did not keep up), precise BN, loader rebuilds, epoch starts and
start-up (see :class:`RunMonitor`). Per grid (clip shape and batch): iterations, clips/s,
compute-only clips/s, data wait, and the compute efficiency against the ideal
``T0*S0^2/(T*S^2)``; the multigrid run's compute floor (schedule iterations x measured compute
time per iteration, per grid) and its training time over that floor (:mod:`speedup_grids`).
The measured speed-up (baseline training time / multigrid training time) is printed next to the
theoretical one (baseline iterations / multigrid iterations from
:class:`~lightning_multigrid.schedule.MultigridSchedule`). ``--seeds N`` repeats both runs for N
seeds and reports each seed's and the mean test top-1 difference. Results go to
``<out-dir>/speedup.json`` and ``<out-dir>/speedup.png``.

``--overhead`` adds the callback-overhead check: the callback with a single full-size long-cycle
grid and no short cycle (so every iteration has the baseline's shape and batch) against a plain
Trainer, for ``--overhead-epochs`` epochs without validation; it reports the per-iteration time
ratio of that one pair of runs.

Timings taken while other processes load the machine are noisy; the JSON records the load average
before and after each run so that a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from lightning_multigrid.data.synthetic_cli import parse_size
from lightning_multigrid.lr import LrPolicy, apply_lr_factor, read_base_lrs
from lightning_multigrid.recipe import DEFAULT_SHORT_CYCLE_MIN_CROP
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speedup_grids  # noqa: E402 - benchmarks/ sibling module

__all__ = ["RunConfig", "build_parser", "main", "make_recipe", "run_training"]

DEFAULT_OUT_DIR = "benchmarks/results"
RESULT_NAME = "speedup.json"
PLOT_NAME = "speedup.png"
_CHILD_FLAG = "--_run-config"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
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


def make_recipe(cfg: RunConfig, long_cycle: bool = True, short_cycle: bool = True, **changes: Any) -> BaseRecipe:
    """The :class:`BaseRecipe` the callback derives from ``cfg`` (global batch = per-device x devices)."""
    return BaseRecipe(
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
        # The callback's default floor on short-cycle crops, so the printed schedule is the one trained.
        **{"short_cycle_min_crop": DEFAULT_SHORT_CYCLE_MIN_CROP, **changes},
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (defaults: the CPU demo recipe, see ``docs``/the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/speedup.py",
        description="Train baseline and multigrid on the same data and report the measured speed-up.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", default="data/synthetic",
                   help="synthetic dataset directory; generated (make_synthetic_dataset) if absent or if its "
                        "manifest differs from the options below; a directory with train/val/test.csv and no "
                        "manifest is used as it is")
    d.add_argument("--num-classes", type=int, default=4, help="synthetic classes")
    d.add_argument("--videos-per-class", type=int, default=120, help="synthetic videos per class (60/20/20 split)")
    d.add_argument("--extra-test-videos", type=int, default=30,
                   help="further test-only synthetic videos per class (train/val unchanged): with the defaults "
                        "24 + 30 = 54 per class, 216 in all, so one test video is 0.46 points, under the "
                        "1-point accuracy bar")
    d.add_argument("--video-size", default="64x64",
                   help="synthetic video WIDTHxHEIGHT (square: a square crop then sees the whole action)")
    d.add_argument("--video-frames", type=int, default=32, help="frames per synthetic video")
    d.add_argument("--input", choices=("frames", "video"), default="frames",
                   help="frames: convert the videos once to JPEG frame folders (lightning-multigrid prepare) and "
                        "train both runs on those; video: decode the video files in every epoch")
    d.add_argument("--frames-dir", default=None,
                   help="where the frame folders go (default: <data-dir>_frames); redone when the videos change")
    d.add_argument("--decoder", default="pyav",
                   help="decoding backend: decord, pyav or torchcodec (pyav: ~40%% faster than decord on the tiny demo files)")
    d.add_argument("--num-workers", type=int, default=1,
                   help="loader worker processes per run (default: with --threads 1, one core computes and one "
                        "loads, as on a GPU machine the device computes and the CPU loads)")
    r = p.add_argument_group("baseline recipe")
    r.add_argument("--model", default="slowfast_tiny", help="zoo model name")
    r.add_argument("--num-frames", type=int, default=16, help="T0, frames per clip")
    r.add_argument("--crop-size", type=int, default=64, help="S0, crop side (>= 64: the short cycle uses S0/2)")
    r.add_argument("--sampling-rate", type=int, default=2, help="r0, temporal stride")
    r.add_argument("--jitter-scales", type=int, nargs=2, default=[64, 72], metavar=("MIN", "MAX"),
                   help="training short-side rescale range at S0 (the DataModule's own default, S0*8/7 .. S0*10/7, "
                        "crops the moving objects of 64 px videos out of view)")
    r.add_argument("--batch-size", type=int, default=4, help="B0 per device")
    r.add_argument("--epochs", type=int, default=24, help="baseline epochs")
    r.add_argument("--steps", type=int, nargs="+", default=[0, 14, 20], help="baseline LR milestones (start with 0)")
    r.add_argument("--gamma", type=float, default=0.1, help="LR decay at each milestone")
    r.add_argument("--lr", type=float, default=0.05, help="base LR at B0 (SGD, Nesterov momentum 0.9)")
    r.add_argument("--warmup-epochs", type=float, default=2.0, help="linear warmup, in each run's own epochs")
    r.add_argument("--weight-decay", type=float, default=1e-4)
    r.add_argument("--bn-base-size", type=int, default=4, help="multigrid: clips per BN statistics group (= B0)")
    r.add_argument("--precise-bn-batches", type=int, default=8,
                   help="multigrid: precise-BN batches (0: off); 8 x B0 = 15%% of the demo's training clips")
    r.add_argument("--eval-freq", type=int, default=3, help="multigrid: evaluations per long-cycle stage")
    r.add_argument("--test-clips", type=int, default=2, help="multi-view test: temporal clips per video")
    r.add_argument("--test-crops", type=int, default=3, choices=(1, 3), help="multi-view test: crops per video")
    h = p.add_argument_group("hardware and run")
    h.add_argument("--devices", type=int, default=1)
    h.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    h.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads per run (0: torch's default, one per core). Threads plus workers "
                        "beyond the cores make the model and the loader fight: multigrid's small grids need up to "
                        "3x the baseline's loader CPU per iteration, so it loses more (benchmarks/README.md)")
    h.add_argument("--seed", type=int, default=0, help="data and training seed (further seeds: --seeds)")
    h.add_argument("--seeds", type=int, default=1,
                   help="train both runs with seeds seed, seed+1, ... and report each seed's and the mean test "
                        "top-1 difference (timings and the tables are the first seed's)")
    h.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    h.add_argument("--overhead", action="store_true", help="also run the callback-overhead check")
    h.add_argument("--overhead-epochs", type=int, default=3, help="epochs of each overhead run (>= 2)")
    h.add_argument("--only", choices=("baseline", "multigrid"), default=None,
                   help="run one of the two trainings only (exploration; no speed-up is computed)")
    h.add_argument("--quick", action="store_true",
                   help="a tiny configuration that finishes in seconds (tests); overrides the recipe options")
    h.add_argument("--quiet", action="store_true", help="no progress lines from the runs")
    return p


def _apply_quick(args: argparse.Namespace) -> None:
    """A tiny but complete configuration: every code path runs, nothing is meaningful."""
    args.model = "slow_tiny"
    args.num_frames, args.crop_size, args.sampling_rate = 4, 64, 2
    args.batch_size, args.bn_base_size = 2, 2
    args.epochs, args.steps = 2, [0, 1]
    args.num_classes, args.videos_per_class, args.video_frames = 4, 15, 16
    args.video_size = "64x48"
    args.extra_test_videos = 0
    args.precise_bn_batches = 2
    args.test_clips, args.test_crops = 2, 1
    args.num_workers = 0
    args.threads = args.threads or 1
    args.overhead_epochs = 2



# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Generate (or reuse) the dataset; returns its path and a description for the report."""
    root = Path(args.data_dir)
    has_lists = all((root / f"{s}.csv").is_file() for s in ("train", "val", "test"))
    if has_lists and not (root / "manifest.json").is_file():
        return root, {"generated": False, "source": "existing csv dataset (no synthetic manifest)"}
    from lightning_multigrid.data.synthetic import make_synthetic_dataset

    try:
        width, height = parse_size(args.video_size)
    except argparse.ArgumentTypeError as err:
        raise SystemExit(f"--video-size: {err}") from None
    manifest = root / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    start = time.perf_counter()
    # A no-op when the same dataset is already there; otherwise (re)written.
    make_synthetic_dataset(
        root, num_classes=args.num_classes, videos_per_class=args.videos_per_class, size=(width, height),
        num_frames=args.video_frames, seed=args.seed, extra_test_per_class=args.extra_test_videos,
    )
    seconds = time.perf_counter() - start
    info = json.loads(manifest.read_text())
    info.update({"generated": manifest.stat().st_mtime_ns != before, "generation_s": round(seconds, 2)})
    return root, info


def frame_folders(video_root: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The dataset as JPEG frame folders (``lightning-multigrid prepare``), converted once.

    Resumable and skipped when done; redone from scratch when the synthetic videos changed (their
    manifest is kept beside the frames). Both runs train on the result: the same data path.
    """
    import shutil

    from lightning_multigrid.data.prepare import PrepareOptions, prepare_dataset

    out = Path(args.frames_dir) if args.frames_dir else video_root.with_name(video_root.name + "_frames")
    manifest = video_root / "manifest.json"
    source = manifest.read_text() if manifest.is_file() else None
    stamp = out / "source_manifest.json"
    if source is not None and out.exists() and (not stamp.is_file() or stamp.read_text() != source):
        shutil.rmtree(out)  # frames of other videos
    start = time.perf_counter()
    summary = prepare_dataset(video_root, out, PrepareOptions(format="csv", progress=False))
    if source is not None:
        stamp.write_text(source)
    return out, {"frames_dir": str(out), "prepare_s": round(time.perf_counter() - start, 2),
                 "videos_converted": summary.converted, "videos_already_done": summary.skipped_done,
                 "frames_bytes": summary.bytes_written}


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


def _num_classes(root: Path) -> int:
    classes = root / "classes.txt"
    if classes.is_file():
        return _count_lines(classes)
    labels = [int(line.rsplit(None, 1)[-1].rsplit(",", 1)[-1]) for line in (root / "train.csv").read_text().splitlines() if line.strip()]
    return max(labels) + 1


# --------------------------------------------------------------------------------------------
# The child process: one training run
# --------------------------------------------------------------------------------------------
def run_training(cfg: RunConfig) -> dict[str, Any]:
    """Train (and test) once as ``cfg.kind`` says; returns the measurements. Runs in the child."""
    import functools
    import logging
    import resource
    import warnings

    import torch

    from lightning_multigrid.callback import MultigridCallback
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
    if multigrid is not None and cfg.precise_bn_batches:
        monitor.wrap_precise_bn(multigrid)
    monitor.wrap_batch_finishing(datamodule)
    monitor.wrap_loader_next()
    # The monitor stamps a batch's start before and its end after every other callback's work.
    callbacks = [_BatchStartStamp(monitor), *callbacks, monitor]

    trainer = pl.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=callbacks, limit_val_batches=1.0 if cfg.validate else 0,
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


class BaselineSchedule(pl.Callback):
    """The baseline's LR and evaluation epochs, with no multigrid code in the training loop.

    The LR is set every iteration by :class:`lightning_multigrid.lr.LrPolicy` over
    ``MultigridSchedule(recipe with both cycles off)``, the very rule the multigrid callback uses, so
    both runs follow the same step rule
    (``gamma ** k`` after the ``k``-th milestone, same warmup). Validation runs only on
    ``eval_epochs`` (as many as the multigrid run has, spread evenly) so that the "total"
    wall-clock of both runs contains the same number of evaluations.
    """

    def __init__(self, recipe: BaseRecipe, warmup_epochs: float = 0.0, eval_epochs: Sequence[int] | None = None) -> None:
        self.schedule = MultigridSchedule(recipe)
        # The callback's warmup_start_factor default, so both runs warm up alike.
        self.lr = LrPolicy("step", warmup_epochs, LrPolicy.warmup_start_factor)
        self.eval_epochs = set(eval_epochs) if eval_epochs is not None else None
        self._base_lrs: list[list[float]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError("BaselineSchedule sets the LR itself; the module must not configure an LR scheduler")
        self._base_lrs = read_base_lrs(trainer.optimizers)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.eval_epochs is not None:
            epoch = trainer.current_epoch
            # Lightning validates when (epoch + 1) % check_val_every_n_epoch == 0.
            trainer.check_val_every_n_epoch = 1 if epoch in self.eval_epochs else epoch + 2

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        fraction = batch_idx / max(trainer.num_training_batches, 1)
        factor = self.lr.factor(self.schedule, trainer.current_epoch + fraction)
        apply_lr_factor(trainer.optimizers, self._base_lrs, factor)


class RunMonitor(pl.Callback):
    """Wall-clock bookkeeping of one fit: training vs. validation time, loader waits, shapes.

    * validation time: the whole validation loop (its loader start included), timed by wrapping
      ``fit_loop.epoch_loop.val_loop.run`` (hooks would miss the loader start, which Lightning
      does before ``on_validation_start``);
    * the wait before each training batch: the time from the end of the previous training work
      (previous batch, validation, or the start of training) to ``on_train_batch_start``, less
      any precise-BN time in between. Before the fit's first batch it is **start-up** (Lightning's
      and the callback's setup, the first loader and its workers); before an epoch's first batch it
      is **loader rebuild** (``fit_loop.setup_data``, timed by wrapping it) plus **epoch start**
      (the rest: epoch-end hooks, worker start-up or restart, the first batch); before any other
      batch it is **data wait** (the loader did not keep up);
    * step time: ``on_train_batch_start`` to ``on_train_batch_end`` (this callback is last, so the
      other callbacks' per-batch work counts), less precise BN, which is reported on its own, plus
      the batch's **finishing on the device** (``VideoDataModule.transfer_batch_to_device``: the
      move and the uint8-to-float normalisation, timed by wrapping it). Lightning runs it before
      ``on_train_batch_start``, but it is the training device's work, not a wait for the loader:
      on a GPU it is a few microseconds, on this CPU ~2 ms a batch. It is reported on its own too
      (``finish_s``) and left out of the data wait;
    * of the time between two batches, **data wait** is what the train loader's ``next()`` took
      (timed by wrapping the DataLoader iterators' ``__next__``: waiting for a worker's batch and
      receiving it), the rest is **loop overhead** (Lightning's own per-batch bookkeeping and
      hooks before ``on_train_batch_start``), reported on its own.
    """

    def __init__(self, name: str, verbose: bool = True) -> None:
        self.name = name
        self.verbose = verbose
        self.shapes: dict[tuple[int, int, int], dict[str, float]] = {}
        self.evaluations: list[dict[str, float]] = []
        self.val_s = 0.0
        self.precise_bn_s = 0.0
        self.precise_bn_calls = 0
        self.iterations = 0
        self.clips = 0
        self.wait_s = 0.0
        self.step_s = 0.0
        self.startup_s = 0.0
        self.rebuild_s = 0.0  # fit_loop.setup_data after its first call
        self.rebuild_calls = 0
        self.epoch_start_wait_s = 0.0
        self._setup_data_calls = 0
        self._mark_rebuild = 0.0
        self._fit_start = 0.0
        self._fit_end = 0.0
        self._train_end = 0.0
        self._mark = 0.0  # end of the last piece of training work
        self._mark_pbn = 0.0
        self._batch_start = 0.0
        self._batch_pbn = 0.0
        self._batch_wait = 0.0
        self._load = [0.0, 0.0]
        self._step_times: list[float] = []
        self.finish_s = 0.0
        self.loop_s = 0.0
        self._pending_loader = 0.0  # train-loader next() time since the last mark
        self._in_training = False
        self._in_validation = False
        self._pending_finish = 0.0  # finishing time since the last mark (training batches only)
        self._batch_finish = 0.0
        self._in_precise_bn = False

    # -- instrumentation ---------------------------------------------------------------------
    def wrap_precise_bn(self, callback: Any) -> None:
        """Time the multigrid callback's precise-BN passes (an instance attribute wraps the method)."""
        original = callback._precise_bn

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._in_precise_bn = True
            try:
                return original(*args, **kwargs)
            finally:
                self._in_precise_bn = False
                self.precise_bn_s += time.perf_counter() - start
                self.precise_bn_calls += 1

        callback._precise_bn = timed

    def wrap_loader_next(self) -> None:
        """Time every DataLoader iterator's ``__next__`` that serves a training batch."""
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        original = _BaseDataLoaderIter.__next__

        def timed(iterator: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(iterator)
            finally:
                if self._in_training and not self._in_validation and not self._in_precise_bn:
                    self._pending_loader += time.perf_counter() - start

        _BaseDataLoaderIter.__next__ = timed  # type: ignore[method-assign]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_training = True

    def wrap_batch_finishing(self, datamodule: Any) -> None:
        """Time the DataModule's ``transfer_batch_to_device`` of training batches (see the class doc)."""
        original = datamodule.transfer_batch_to_device

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if not self._in_precise_bn:
                    self._pending_finish += time.perf_counter() - start

        datamodule.transfer_batch_to_device = timed

    def fit_started(self) -> None:
        self._load[0] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        self._fit_start = self._mark = time.perf_counter()

    def fit_finished(self) -> None:
        self._fit_end = time.perf_counter()
        self._load[1] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        loop = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "val_loop", None)
        if loop is None or not hasattr(loop, "run"):  # pragma: no cover - other Lightning versions
            raise RuntimeError("RunMonitor: cannot find trainer.fit_loop.epoch_loop.val_loop to time validation")
        original = loop.run

        def timed_run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            train_elapsed = start - self._fit_start - self.val_s
            self._in_validation = True
            try:
                return original(*args, **kwargs)
            finally:
                self._in_validation = False
                end = time.perf_counter()
                self.val_s += end - start
                self._mark, self._mark_pbn, self._mark_rebuild = end, self.precise_bn_s, self.rebuild_s
                self._pending_finish = self._pending_loader = 0.0  # validation's own
                self._record_eval(trainer, train_elapsed, end - start)

        loop.run = timed_run
        setup_data = trainer.fit_loop.setup_data

        def timed_setup_data(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return setup_data(*args, **kwargs)
            finally:
                self._setup_data_calls += 1
                if self._setup_data_calls > 1:  # the first build belongs to start-up
                    self.rebuild_s += time.perf_counter() - start
                    self.rebuild_calls += 1

        trainer.fit_loop.setup_data = timed_setup_data

    # -- hooks ---------------------------------------------------------------------------------
    def batch_started(self, batch_idx: int) -> None:
        """Called by :class:`_BatchStartStamp`, the first callback, at ``on_train_batch_start``."""
        now = time.perf_counter()
        self._batch_finish, self._pending_finish = self._pending_finish, 0.0
        loader, self._pending_loader = self._pending_loader, 0.0
        wait = max(0.0, now - self._mark - (self.precise_bn_s - self._mark_pbn) - self._batch_finish)
        self._batch_wait = 0.0
        if self.iterations == 0:
            self.startup_s += wait
        elif batch_idx == 0:
            self.epoch_start_wait_s += max(0.0, wait - (self.rebuild_s - self._mark_rebuild))
        else:
            self._batch_wait = min(loader, wait)
            self.loop_s += wait - self._batch_wait
        self._batch_start, self._batch_pbn = now, self.precise_bn_s

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        step = max(0.0, now - self._batch_start - (self.precise_bn_s - self._batch_pbn)) + self._batch_finish
        self.finish_s += self._batch_finish
        video = batch["video"]
        video = video[-1] if isinstance(video, (list, tuple)) else video
        b, _, t, s = int(video.shape[0]), int(video.shape[1]), int(video.shape[2]), int(video.shape[-1])
        row = self.shapes.setdefault((t, s, b), {"iterations": 0, "clips": 0, "step_s": 0.0, "wait_s": 0.0})
        row["iterations"] += 1
        row["clips"] += b
        row["step_s"] += step
        row["wait_s"] += self._batch_wait
        self._step_times.append(step)
        self.iterations += 1
        self.clips += b
        self.step_s += step
        self.wait_s += self._batch_wait
        self._mark, self._mark_pbn, self._mark_rebuild = now, self.precise_bn_s, self.rebuild_s
        self._pending_finish = self._pending_loader = 0.0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_end = time.perf_counter()
        self._in_training = False

    def _record_eval(self, trainer: pl.Trainer, train_elapsed: float, seconds: float) -> None:
        metrics = trainer.callback_metrics
        top1 = metrics.get("val/top1")
        record = {
            "epoch": int(trainer.current_epoch),
            "train_elapsed_s": round(train_elapsed, 3),
            "val_s": round(seconds, 3),
            "val_top1": float(top1) if top1 is not None else None,
            "iterations": self.iterations,
        }
        self.evaluations.append(record)
        if self.verbose and trainer.is_global_zero:
            acc = f"{record['val_top1']:.3f}" if record["val_top1"] is not None else "n/a"
            print(f"[{self.name}] epoch {record['epoch']:3d}  train {train_elapsed:7.1f}s  "
                  f"iterations {self.iterations:5d}  val top-1 {acc}", flush=True)

    # -- result --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        fit_s = self._fit_end - self._fit_start
        train_s = fit_s - self.val_s
        shapes = []
        for (t, s, b), row in sorted(self.shapes.items(), key=lambda kv: (-kv[0][0] * kv[0][1] ** 2, kv[0][2])):
            busy = row["step_s"] + row["wait_s"]
            shapes.append({
                "num_frames": t, "crop_size": s, "batch_size": b, "iterations": row["iterations"],
                "clips": row["clips"], "step_s": round(row["step_s"], 3), "wait_s": round(row["wait_s"], 3),
                "clips_per_s": row["clips"] / busy if busy > 0 else None,
                "compute_clips_per_s": row["clips"] / row["step_s"] if row["step_s"] > 0 else None,
                "wait_fraction": row["wait_s"] / busy if busy > 0 else None,
            })
        final = next((e["val_top1"] for e in reversed(self.evaluations) if e["val_top1"] is not None), None)
        return {
            "fit_s": fit_s,
            "train_s": train_s,
            "val_s": self.val_s,
            "setup_and_teardown_s": fit_s - self.val_s - self.step_s - self.wait_s - self.loop_s - self.precise_bn_s,
            "startup_s": self.startup_s,
            "loader_rebuild_s": self.rebuild_s,
            "setup_data_calls": self.rebuild_calls,
            "epoch_start_wait_s": self.epoch_start_wait_s,
            # Training time outside all of the above (epoch ends after the last batch, teardown).
            "other_s": train_s - self.step_s - self.wait_s - self.loop_s - self.precise_bn_s - self.startup_s
            - self.rebuild_s - self.epoch_start_wait_s,
            "loop_overhead_s": self.loop_s,
            "step_s": self.step_s,
            "finish_s": self.finish_s,
            "data_wait_s": self.wait_s,
            "data_wait_fraction": self.wait_s / train_s if train_s > 0 else None,
            "precise_bn_s": self.precise_bn_s,
            "precise_bn_calls": self.precise_bn_calls,
            "iterations": self.iterations,
            "clips": self.clips,
            "seconds_per_iteration": train_s / self.iterations if self.iterations else None,
            "median_step_s": _median(self._step_times) if self._step_times else None,
            "shapes": shapes,
            "evaluations": self.evaluations,
            "final_val_top1": final,
            "load_average": [round(v, 2) for v in self._load],
        }


class _BatchStartStamp(pl.Callback):
    """First in the callback list, so a batch's step time includes every callback's batch-start work."""

    def __init__(self, monitor: RunMonitor) -> None:
        self.monitor = monitor

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.monitor.batch_started(batch_idx)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --------------------------------------------------------------------------------------------
# The parent process: plan, run both, report
# --------------------------------------------------------------------------------------------
def _run_child(cfg: RunConfig, workdir: Path) -> dict[str, Any]:
    """Run one training in a fresh interpreter (isolated timing and peak memory)."""
    config_path = workdir / f"{cfg.kind}.config.json"
    result_path = workdir / f"{cfg.kind}.result.json"
    config_path.write_text(json.dumps(asdict(cfg)))
    result_path.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), _CHILD_FLAG, str(config_path), str(result_path)],
        # pytorchvideo's import-time deprecation warnings are noise here.
        env={**os.environ, "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore::FutureWarning")},
    )
    if proc.returncode != 0 or not result_path.is_file():
        raise RuntimeError(f"the {cfg.kind} run failed (exit code {proc.returncode}); see its output above")
    result = json.loads(result_path.read_text())
    result["process_s"] = time.perf_counter() - start
    return result


def _run_pair(cfg: RunConfig, only: str | None, workdir: Path, log: Any) -> dict[str, dict[str, Any]]:
    """Baseline then multigrid (or ``only`` one of them) at ``cfg.seed``."""
    runs = {}
    for kind in ("baseline", "multigrid"):
        if only and kind != only:
            continue
        log(f"== {kind} (seed {cfg.seed}): {cfg.model}, (B0, T0, S0) = ({cfg.batch_size * cfg.devices}, "
            f"{cfg.num_frames}, {cfg.crop_size}), baseline {cfg.epochs} epochs, steps {cfg.steps}")
        runs[kind] = _run_child(RunConfig(**{**asdict(cfg), "kind": kind}), workdir)
    return runs


def _grid_report(cfg: RunConfig, schedule: MultigridSchedule, num_train: int, runs: dict[str, Any]) -> dict[str, Any]:
    """Per run, the per-grid table (efficiency against the base grid; see :mod:`speedup_grids`)."""
    base = (cfg.num_frames, cfg.crop_size, cfg.batch_size)
    expected = {
        "baseline": {base: int(schedule.baseline_iterations(num_train, cfg.devices))},
        "multigrid": speedup_grids.schedule_grid_iterations(schedule, num_train, cfg.devices),
    }
    own = next((r for r in runs.get("baseline", {}).get("shapes", [])
                if (r["num_frames"], r["crop_size"], r["batch_size"]) == base), None)
    reference = own["compute_clips_per_s"] if own else None
    per_iteration = own["step_s"] / own["iterations"] if own and own["iterations"] else None
    return {name: speedup_grids.grid_table(run["shapes"], base, expected[name], reference, per_iteration)
            for name, run in runs.items()}


def _time_budget(run: dict[str, Any] | None, grids: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The multigrid run's training time against its compute floor, and what the rest went to."""
    if not run or not grids:
        return {}
    floor = speedup_grids.compute_floor(grids)
    parts = ("step_s", "data_wait_s", "loop_overhead_s", "precise_bn_s", "loader_rebuild_s", "epoch_start_wait_s",
             "startup_s", "other_s")
    return {
        "compute_floor_s": floor,
        "train_s": run["train_s"],
        "train_over_floor": run["train_s"] / floor if floor > 0 else None,
        "precise_bn_fraction": run["precise_bn_s"] / run["train_s"] if run["train_s"] > 0 else None,
        **{part: run[part] for part in parts},
    }


def _baseline_eval_epochs(epochs: int, count: int) -> list[int]:
    """``count`` evaluation epochs spread evenly over ``epochs``, the last epoch always included."""
    count = max(1, min(count, epochs))
    return sorted({max(0, math.ceil((i + 1) * epochs / count) - 1) for i in range(count)})


def _speedups(args: argparse.Namespace, cfg: RunConfig, num_train: int, base: dict | None, mg: dict | None) -> dict[str, Any]:
    schedule = MultigridSchedule(make_recipe(cfg, epoch_factor=1.5))
    world = cfg.devices
    out: dict[str, Any] = {
        "theoretical_speedup": schedule.theoretical_speedup(num_train, world),
        "theoretical_speedup_large_dataset": schedule.theoretical_speedup(None, world),
        "expected_baseline_iterations": int(schedule.baseline_iterations(num_train, world)),
        "expected_multigrid_iterations": int(schedule.iterations(num_train, world)),
        "multigrid_epochs": schedule.max_epochs,
    }
    if base and mg:
        out["measured_speedup"] = base["train_s"] / mg["train_s"]
        out["measured_speedup_total"] = base["total_s"] / mg["total_s"]
        out["measured_over_theoretical"] = out["measured_speedup"] / out["theoretical_speedup"]
        out["iterations_match_schedule"] = (
            base["iterations"] == out["expected_baseline_iterations"]
            and mg["iterations"] == out["expected_multigrid_iterations"]
        )
        if base.get("test_top1") is not None and mg.get("test_top1") is not None:
            out["test_top1_difference"] = mg["test_top1"] - base["test_top1"]
    return out


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def format_report(report: dict[str, Any]) -> str:
    """The printed summary: one column per run, then the speed-ups and the per-shape throughput."""
    runs = {k: report["runs"][k] for k in ("baseline", "multigrid") if k in report["runs"]}
    rows = [
        ("training wall-clock (s)", lambda r: _fmt(r["train_s"])),
        ("  of which compute (steps, s)", lambda r: _fmt(r["step_s"])),
        ("  of which data wait (s)", lambda r: _fmt(r["data_wait_s"])),
        ("  of which loop overhead (s)", lambda r: _fmt(r.get("loop_overhead_s"))),
        ("  of which precise BN (s)", lambda r: _fmt(r["precise_bn_s"])),
        ("  of which loader rebuilds (s)", lambda r: _fmt(r["loader_rebuild_s"])),
        ("  of which epoch starts (s)", lambda r: _fmt(r["epoch_start_wait_s"])),
        ("  of which start-up (s)", lambda r: _fmt(r["startup_s"])),
        ("  of which other (s)", lambda r: _fmt(r["other_s"])),
        ("data-wait fraction", lambda r: _fmt(r["data_wait_fraction"], ".1%")),
        ("validation (s), passes", lambda r: f"{_fmt(r['val_s'])}, {len(r['evaluations'])}"),
        ("multi-view test (s)", lambda r: _fmt(r["test_s"])),
        ("total wall-clock (s)", lambda r: _fmt(r["total_s"])),
        ("epochs", lambda r: str(r["max_epochs"])),
        ("iterations", lambda r: str(r["iterations"])),
        ("clips seen", lambda r: str(r["clips"])),
        ("s / iteration", lambda r: _fmt(r["seconds_per_iteration"], ".3f")),
        ("peak RSS main / worker (MiB)", lambda r: f"{_fmt(r['peak_rss_mib'], '.0f')} / {_fmt(r['peak_worker_rss_mib'], '.0f')}"),
        ("peak GPU memory (MiB)", lambda r: _fmt(r["peak_gpu_mib"], ".0f")),
        ("final val top-1", lambda r: _fmt(r["final_val_top1"], ".3f")),
        (f"test top-1 ({report['config']['test_num_clips']}x{report['config']['test_num_crops']} views)",
         lambda r: _fmt(r["test_top1"], ".3f")),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{'':{width}}" + "".join(f"{name:>14}" for name in runs)]
    for label, get in rows:
        lines.append(f"{label:{width}}" + "".join(f"{get(r):>14}" for r in runs.values()))
    s = report["speedup"]
    lines.append("")
    lines.append(f"theoretical speed-up (iterations, this dataset): {s['theoretical_speedup']:.2f}x "
                 f"({s['expected_baseline_iterations']} / {s['expected_multigrid_iterations']}); "
                 f"large-dataset limit {s['theoretical_speedup_large_dataset']:.2f}x")
    if "measured_speedup" in s:
        lines.append(f"measured speed-up (training wall-clock): {s['measured_speedup']:.2f}x   "
                     f"measured / theoretical: {s['measured_over_theoretical']:.2f}   "
                     f"total incl. evaluation: {s['measured_speedup_total']:.2f}x")
        if "test_top1_difference" in s:
            diff = s["test_top1_difference"]
            videos = report.get("data", {}).get("num_test_videos")
            per_video = f" (one test video = {100 / videos:.2f} points)" if videos else ""
            # The acceptance bar of issue #6: multigrid no worse than the baseline minus 1 point.
            verdict = "within" if diff >= -0.01 - 1e-6 else "NOT within"
            lines.append(f"test top-1 multigrid - baseline: {100 * diff:+.2f} points{per_video}: "
                         f"{verdict} the 1-point bar")
    lines.append("")
    lines.append("per grid; efficiency = (compute-only clips/s over the base grid's) / ideal T0*S0^2/(T*S^2):")
    for name, grids in report.get("grids", {}).items():
        lines.extend(speedup_grids.format_grids(name, grids))
    budget = report.get("time_budget")
    if budget:
        lines.append(
            f"multigrid compute floor {budget['compute_floor_s']:.1f}s (schedule iterations x measured compute "
            f"s/iteration per grid); training {budget['train_s']:.1f}s = {_fmt(budget['train_over_floor'], '.3f')} x "
            f"floor; precise BN {_fmt(budget['precise_bn_fraction'], '.1%')} of training"
        )
    seeds = report.get("seeds", {}).get("seeds", [])
    if len(seeds) > 1:
        lines.append("test top-1 difference per seed (multigrid - baseline): " + ", ".join(
            f"seed {e['seed']}: {_fmt(None if e['test_top1_difference'] is None else 100 * e['test_top1_difference'], '+.2f')}"
            for e in seeds) + f"; mean {_fmt(_points(report['seeds']['mean_test_top1_difference']), '+.2f')} points")
    if "overhead" in report:
        o = report["overhead"]
        lines.append("")
        lines.append(
            f"callback overhead at a fixed shape ({o['epochs']} epochs, {o['iterations']} iterations each): "
            f"s/iteration plain {o['plain_s_per_iteration']:.4f}, callback {o['callback_s_per_iteration']:.4f}, "
            f"ratio {o['ratio']:.3f} (median step ratio {o['median_step_ratio']:.3f})"
        )
    return "\n".join(lines)


def _points(value: float | None) -> float | None:
    return None if value is None else 100 * value


def plot_curves(report: dict[str, Any], path: Path) -> Path:
    """PNG of validation top-1 against elapsed training wall-clock for both runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, style in (("baseline", "o-"), ("multigrid", "s-")):
        run = report["runs"].get(name)
        if not run:
            continue
        points = [(e["train_elapsed_s"] / 60, e["val_top1"]) for e in run["evaluations"] if e["val_top1"] is not None]
        if points:
            xs, ys = zip(*points)
            test = run.get("test_top1")
            label = f"{name} (test top-1 {test:.3f})" if test is not None else name
            ax.plot(xs, ys, style, markersize=3, label=label)
    s = report["speedup"]
    title = "validation top-1 vs. training wall-clock"
    if "measured_speedup" in s:
        title += f"\nmeasured speed-up {s['measured_speedup']:.2f}x (theoretical {s['theoretical_speedup']:.2f}x)"
    ax.set_title(title)
    ax.set_xlabel("training wall-clock (min, validation excluded)")
    ax.set_ylabel("val top-1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _overhead(cfg: RunConfig, epochs: int, workdir: Path, log: Any) -> dict[str, Any]:
    """Callback vs. plain Trainer at the base shape, no validation, one run each."""
    runs = {}
    for kind in ("overhead-plain", "overhead-callback"):
        # Two milestones: the long cycle needs an LR stage before the last one (its single grid
        # is the base shape, so both runs train identical shapes, batches and epochs).
        sub = RunConfig(**{**asdict(cfg), "kind": kind, "epochs": epochs, "steps": [0, epochs - 1],
                           "validate": False, "test": False, "eval_epochs": []})
        log(f"== {kind}: {epochs} epochs at T={cfg.num_frames} S={cfg.crop_size} B={cfg.batch_size}")
        runs[kind] = _run_child(sub, workdir)
    plain, cb = runs["overhead-plain"], runs["overhead-callback"]
    if plain["iterations"] != cb["iterations"]:
        raise RuntimeError(f"overhead runs differ in iterations: plain {plain['iterations']}, callback {cb['iterations']}")
    return {
        "epochs": epochs,
        "iterations": plain["iterations"],
        "plain_s_per_iteration": plain["seconds_per_iteration"],
        "callback_s_per_iteration": cb["seconds_per_iteration"],
        "ratio": cb["seconds_per_iteration"] / plain["seconds_per_iteration"],
        "median_step_ratio": cb["median_step_s"] / plain["median_step_s"],
        "plain": plain,
        "callback": cb,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the report (also written to ``<out-dir>/speedup.json``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        _apply_quick(args)
    if args.overhead and args.overhead_epochs < 2:
        parser.error(f"--overhead-epochs: at least 2 (an LR stage and the final one), got {args.overhead_epochs}")
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    wall_start = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    data_dir, data_info = prepare_data(args)
    num_classes = _num_classes(data_dir)
    num_train = _count_lines(data_dir / "train.csv")
    train_dir = data_dir
    if args.input == "frames":
        train_dir, frames_info = frame_folders(data_dir, args)
        data_info.update(frames_info)
        log(f"frame folders: {train_dir} (prepared in {frames_info['prepare_s']:.1f}s, "
            f"{frames_info['videos_converted']} videos converted)")
    cfg = RunConfig(
        kind="baseline", data_dir=str(train_dir.resolve()), model=args.model, num_classes=num_classes,
        num_frames=args.num_frames, crop_size=args.crop_size, sampling_rate=args.sampling_rate,
        jitter_scales=list(args.jitter_scales) if args.jitter_scales else None, batch_size=args.batch_size,
        epochs=args.epochs, steps=list(args.steps), gamma=args.gamma, lr=args.lr,
        warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay, bn_base_size=args.bn_base_size,
        precise_bn_batches=args.precise_bn_batches, eval_freq=args.eval_freq, devices=args.devices,
        accelerator=args.accelerator, num_workers=args.num_workers, threads=args.threads, decoder=args.decoder,
        seed=args.seed, test_num_clips=args.test_clips, test_num_crops=args.test_crops, verbose=not args.quiet,
    )
    schedule = MultigridSchedule(make_recipe(cfg))  # validates the recipe before any training
    cfg.eval_epochs = _baseline_eval_epochs(cfg.epochs, len(schedule.eval_epochs()))
    log(f"data: {data_dir} ({num_train} training clips, {num_classes} classes)"
        + (f", generated in {data_info['generation_s']:.1f}s" if data_info.get("generated") else ""))
    if not args.quiet and args.only != "baseline":
        from lightning_multigrid.schedule_report import format_schedule_table

        print(format_schedule_table(schedule, cfg.devices, num_train), flush=True)

    runs: dict[str, dict[str, Any]] = {}
    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="speedup-") as tmp:
        workdir = Path(tmp)
        for seed in range(args.seed, args.seed + max(1, args.seeds)):
            seed_runs = _run_pair(RunConfig(**{**asdict(cfg), "seed": seed}), args.only, workdir, log)
            runs = runs or seed_runs  # timings and tables: the first seed's
            per_seed.append({"seed": seed, **{f"{k}_test_top1": r.get("test_top1") for k, r in seed_runs.items()},
                             **({"measured_speedup": seed_runs["baseline"]["train_s"] / seed_runs["multigrid"]["train_s"]}
                                if len(seed_runs) == 2 else {})})
        overhead = _overhead(cfg, args.overhead_epochs, workdir, log) if args.overhead else None

    report: dict[str, Any] = {
        "command": "python benchmarks/speedup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("kind", "verbose", "validate", "test")},
        "data": {**data_info, "path": str(data_dir), "num_train_clips": num_train,
                 "num_val_videos": _count_lines(data_dir / "val.csv"),
                 "num_test_videos": _count_lines(data_dir / "test.csv")},
        "runs": runs,
        "speedup": _speedups(args, cfg, num_train, runs.get("baseline"), runs.get("multigrid")),
        "machine": {"cpu_count": os.cpu_count(), "platform": sys.platform},
    }
    report["grids"] = _grid_report(cfg, schedule, num_train, runs)
    report["time_budget"] = _time_budget(runs.get("multigrid"), report["grids"].get("multigrid"))
    report["seeds"] = speedup_grids.seeds_summary(per_seed)
    if overhead is not None:
        report["overhead"] = overhead
    report["wall_clock_s"] = time.perf_counter() - wall_start
    json_path = out_dir / RESULT_NAME
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png_path = plot_curves(report, out_dir / PLOT_NAME)
    if not args.quiet:
        print()
        print(format_report(report))
        print(f"\nwrote {json_path} and {png_path} ({report['wall_clock_s']:.0f}s in all)")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == _CHILD_FLAG:
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    main()
