"""Wall-clock bookkeeping of one training run of ``benchmarks/speedup.py``, read from Lightning's
own profiler events and hooks: nothing of Lightning or of the multigrid callback is patched.

:class:`RunMonitor` is a callback (put it last in the Trainer's list) and hands the Trainer a
:class:`LightningProfiler` (``Trainer(profiler=monitor.profiler)``). Lightning reports every hook
call (``[Callback]<name>.<hook>``, ``[LightningModule]...``, ``[LightningDataModule]...``) and every
train-batch fetch (``[_TrainingEpochLoop].train_dataloader_next``) to that profiler, which timestamps
them for the monitor:

* **validation**: from Lightning's ``on_validation_model_zero_grad`` (called right before the
  validation loop, so its loader start counts) to the strategy's ``on_validation_end`` (the loop's
  last profiled call);
* **precise BN**: a callback's ``on_train_batch_end`` that moved batches to the device
  (``transfer_batch_to_device`` inside it): the multigrid callback's precise-BN pass
  (``precise_bn_calls`` counts the passes that ran batches, not validations left to the running
  statistics by the precise-BN budget);
* **wait before a training batch**: from the end of the previous training work to the first
  callback's ``on_train_batch_start``, less precise BN and the batch's finishing. Before the fit's
  first batch it is **start-up**; before an epoch's first batch it is **loader rebuild** (the
  epoch turnover, from the last ``on_train_epoch_end`` to the first ``on_train_epoch_start``, when
  the train loader was requested again in it) plus **epoch start** (the rest); before any other
  batch it is **data wait** (the train loader's ``next()``, the fetch events) plus **loop overhead**
  (the rest: Lightning's per-batch bookkeeping);
* **step**: the first callback's ``on_train_batch_start`` to this (last) callback's
  ``on_train_batch_end``, less precise BN, plus the batch's **finishing** on the device
  (``transfer_batch_to_device``: the move and the uint8-to-float normalisation), which Lightning
  runs before ``on_train_batch_start`` but which is the device's work, not a wait for the loader.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.profilers import Profiler

__all__ = ["LightningProfiler", "RunMonitor"]

_FETCH = ".train_dataloader_next"
_VAL_START = ".on_validation_model_zero_grad"
_VAL_END = ".on_validation_end"  # the strategy's, the loop's last profiled call


class LightningProfiler(Profiler):
    """A Lightning profiler that forwards each action's start and stop, timestamped, to a monitor."""

    def __init__(self, monitor: RunMonitor) -> None:
        super().__init__()
        self.monitor = monitor

    def start(self, action_name: str) -> None:
        self.monitor.action(action_name, True, time.perf_counter())

    def stop(self, action_name: str) -> None:
        self.monitor.action(action_name, False, time.perf_counter())


class RunMonitor(pl.Callback):
    """Training vs. validation time, loader waits and per-shape step times of one fit (module doc)."""

    def __init__(self, name: str, verbose: bool = True) -> None:
        self.name, self.verbose = name, verbose
        self.profiler = LightningProfiler(self)
        self.shapes: dict[tuple[int, int, int], dict[str, float]] = {}
        self.evaluations: list[dict[str, float]] = []
        self.val_s = self.precise_bn_s = self.wait_s = self.step_s = self.startup_s = 0.0
        self.rebuild_s = self.epoch_start_wait_s = self.finish_s = self.loop_s = 0.0
        self.precise_bn_calls = self.rebuild_calls = self.iterations = self.clips = 0
        self._load = [0.0, 0.0]
        self._fit_start = self._fit_end = self._val_start = 0.0
        self._mark = 0.0  # end of the last piece of training work
        self._mark_pbn = self._mark_rebuild = 0.0  # precise BN and rebuild totals at that mark
        self._batch_start = self._batch_pbn = self._batch_wait = self._batch_finish = 0.0
        self._pending_loader = self._pending_finish = 0.0  # fetch / finishing time since the mark
        self._step_times: list[float] = []
        self._trainer: Any = None
        self._in_fit = self._in_training = self._in_validation = False
        self._open: dict[str, float] = {}  # profiled actions in progress -> start time
        self._first_batch_hook: float | None = None
        self._batch_end_moved = False  # a batch went to the device inside a callback's batch end
        self._epoch_end: float | None = None
        self._reloaded = False

    # -- profiler events -------------------------------------------------------------------------
    def action(self, name: str, starting: bool, now: float) -> None:
        """One profiled action starting or stopping (see the module doc for what each one means)."""
        if not self._in_fit:
            return
        if starting:
            self._open[name] = now
            self._on_start(name, now)
            return
        began = self._open.pop(name, now)
        self._on_stop(name, now, now - began)

    def _on_start(self, name: str, now: float) -> None:
        callback_hook = name.startswith("[Callback]")
        if callback_hook and name.endswith(".on_train_batch_start") and self._first_batch_hook is None:
            self._first_batch_hook = now
        elif callback_hook and name.endswith(".on_train_epoch_start") and self._epoch_end is not None:
            if self._reloaded:
                self.rebuild_s += now - self._epoch_end
                self.rebuild_calls += 1
            self._epoch_end, self._reloaded = None, False
        elif name.endswith(_VAL_START):
            self._val_start = now
            self._in_validation = True
        elif name.endswith(".transfer_batch_to_device") and self._inside_batch_end():
            self._batch_end_moved = True
        elif name.endswith(".train_dataloader") and self._epoch_end is not None:
            self._reloaded = True

    def _on_stop(self, name: str, now: float, seconds: float) -> None:
        if name.endswith(_FETCH):
            if self._in_training:
                self._pending_loader += seconds
        elif name.endswith(".transfer_batch_to_device"):
            if self._in_training and not self._in_validation and not self._inside_batch_end():
                self._pending_finish += seconds
        elif name.startswith("[Callback]") and name.endswith(".on_train_batch_end"):
            if self._batch_end_moved:  # precise BN ran in this hook
                self.precise_bn_s += seconds
                self.precise_bn_calls += 1
                self._batch_end_moved = False
        elif name.startswith("[Callback]") and name.endswith(".on_train_epoch_end"):
            self._epoch_end = now
        elif name.startswith("[Strategy]") and name.endswith(_VAL_END) and self._in_validation:
            self._validation_done(now)

    def _inside_batch_end(self) -> bool:
        return any(n.startswith("[Callback]") and n.endswith(".on_train_batch_end") for n in self._open)

    def _validation_done(self, end: float) -> None:
        seconds = end - self._val_start
        train_elapsed = self._val_start - self._fit_start - self.val_s
        self._in_validation = False
        self.val_s += seconds
        self._mark, self._mark_pbn, self._mark_rebuild = end, self.precise_bn_s, self.rebuild_s
        self._pending_finish = self._pending_loader = 0.0  # validation's own
        self._record_eval(self._trainer, train_elapsed, seconds)

    # -- fit -------------------------------------------------------------------------------------
    def fit_started(self) -> None:
        self._load[0] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        self._fit_start = self._mark = time.perf_counter()
        self._in_fit = True

    def fit_finished(self) -> None:
        self._fit_end = time.perf_counter()
        self._in_fit = False
        self._load[1] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.profiler is not self.profiler:
            raise RuntimeError("RunMonitor: give the Trainer its profiler (Trainer(profiler=monitor.profiler))")
        self._trainer = trainer

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_training = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_training = False

    # -- batches ---------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        # The first callback's hook started the batch (this one may run later in the list).
        now = self._first_batch_hook if self._first_batch_hook is not None else time.perf_counter()
        self._first_batch_hook = None
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
        b, t, s = int(video.shape[0]), int(video.shape[2]), int(video.shape[-1])
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

    def _record_eval(self, trainer: Any, train_elapsed: float, seconds: float) -> None:
        top1 = trainer.callback_metrics.get("val/top1")
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

    # -- result ----------------------------------------------------------------------------------
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
        accounted = self.step_s + self.wait_s + self.loop_s + self.precise_bn_s
        return {
            "fit_s": fit_s,
            "train_s": train_s,
            "val_s": self.val_s,
            "setup_and_teardown_s": fit_s - self.val_s - accounted,
            "startup_s": self.startup_s,
            "loader_rebuild_s": self.rebuild_s,
            "setup_data_calls": self.rebuild_calls,
            "epoch_start_wait_s": self.epoch_start_wait_s,
            # Training time outside all of the above (epoch ends after the last batch, teardown).
            "other_s": train_s - accounted - self.startup_s - self.rebuild_s - self.epoch_start_wait_s,
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


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
