"""``lightning-multigrid prepare SRC OUT``: convert a video dataset into frame folders.

Every video of the listed splits becomes ``OUT/<its path relative to SRC, without extension>/``
holding ``000001.jpg``, ``000002.jpg``, ... (frame ``i`` of the video, in presentation order, every
decoded frame once) and :data:`~.frame_folders.META_NAME`. The split files are rewritten under ``OUT`` to
point at the folders, so ``OUT`` is a dataset of the same format (``build_dataset(format, OUT, ...)``).

* Parallel over processes; one thread per process (decoding and JPEG encoding are serial work).
* Resumable: a video is written into ``.tmp-<name>-<pid>`` beside its target and renamed into
  place after verification; the metadata file inside is the done-marker. A re-run skips finished
  folders and removes temp folders an interruption left behind.
* Unreadable videos are skipped and listed in ``OUT/prepare_report.json``; as in training, the run
  stops once more than ``max_failure_rate`` of the dataset's videos (and at least ``min_failures``)
  are unreadable, the rule and defaults of training (:mod:`lightning_multigrid.data.failures`).
* Verification: the folder holds exactly the frames decoded, and every JPEG decodes.

Frames are stored as decoded (coded orientation: rotation metadata is not applied, as PyAV and
``ffmpeg -noautorotate`` return them). JPEG frame folders rather than a short-GOP re-encode: on the
synthetic 320x240 set they load 2.2x (coarsest grid) and 1.5x (base grid) cheaper per clip than a
GOP-4 h264 copy, at 6.7x its disk (``benchmarks/prepare_cost.py``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.decoder_base import resized_size

from .frame_folders import META_NAME, FrameFolderInfo, frame_name
from .prepare_layout import frame_folder_of, load_split, split_names, write_split
from .video_index import one_swscale_thread

__all__ = ["PrepareOptions", "PrepareSummary", "bytes_per_hour", "prepare_dataset"]

REPORT_NAME = "prepare_report.json"
OPTIONS_NAME = "prepare_options.json"
_TMP_PREFIX = ".tmp-"
# The failure-rate rule of training, with training's defaults (one rule for both).
_DATASET_DEFAULTS = inspect.signature(VideoClipDataset.__init__).parameters


@dataclass
class PrepareOptions:
    """How frames are written: ``short_side`` (``None``: the source size; never enlarged), JPEG ``quality``."""

    format: str = "csv"
    splits: list[str] | None = None
    labels_file: str | None = None
    short_side: int | None = None
    quality: int = 90
    workers: int = max(1, os.cpu_count() or 1)
    max_failure_rate: float = _DATASET_DEFAULTS["max_failure_rate"].default
    min_failures: int = _DATASET_DEFAULTS["min_failures"].default
    progress: bool = True


@dataclass
class PrepareSummary:
    """What a run did; also written to ``OUT/prepare_report.json``."""

    videos: int = 0
    converted: int = 0
    skipped_done: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    frames_written: int = 0
    bytes_written: int = 0
    video_seconds: float = 0.0
    seconds: float = 0.0
    split_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    source: str
    target: str


# --------------------------------------------------------------------------------------------
# One video (runs in a worker process)
# --------------------------------------------------------------------------------------------
def convert_video(source: str, target: str, short_side: int | None, quality: int) -> dict[str, Any]:
    """Write ``source``'s frames into the folder ``target`` (atomically); returns its metadata."""
    import av  # noqa: PLC0415 - worker-side import
    from PIL import Image  # noqa: PLC0415

    final = Path(target)
    tmp = final.parent / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            stream.thread_count = 1  # the worker processes are the parallelism
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            count, width, height = 0, 0, 0
            for frame in container.decode(stream):
                if count == 0:
                    width, height = frame.width, frame.height
                    if short_side is not None and short_side < min(width, height):
                        width, height = resized_size(width, height, short_side)
                # AREA averages every source pixel when shrinking.
                rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA",
                                     **one_swscale_thread())
                Image.fromarray(rgb.to_ndarray()).save(tmp / f"{count + 1:06d}.jpg", quality=quality)
                count += 1
            declared = int(stream.frames or 0)
        if count == 0:
            raise ValueError("no decodable frames")
        meta = {"num_frames": count, "width": width, "height": height, "fps": fps, "prefix": "", "digits": 6,
                "start": 1, "ext": ".jpg", "declared_frames": declared, "quality": quality, "short_side": short_side}
        _verify(tmp, meta)
        meta["bytes"] = sum(f.stat().st_size for f in tmp.iterdir())
        (tmp / META_NAME).write_text(json.dumps(meta))  # last file written: the done-marker
        if final.exists():
            shutil.rmtree(final)  # an unfinished folder from an older layout
        os.rename(tmp, final)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _verify(folder: Path, meta: dict[str, Any]) -> None:
    """Exactly ``num_frames`` JPEGs, each decodable at the recorded size."""
    from PIL import Image  # noqa: PLC0415

    names = sorted(p.name for p in folder.iterdir())
    info = FrameFolderInfo(meta["num_frames"], meta["width"], meta["height"], meta["fps"])
    expected = [frame_name(info, i) for i in range(info.num_frames)]
    if names != expected:
        raise ValueError(f"wrote {len(names)} files, expected {len(expected)} frames")
    for name in names:
        with Image.open(folder / name) as image:
            if image.size != (info.width, info.height):
                raise ValueError(f"{name}: size {image.size}, expected {(info.width, info.height)}")
            image.draft("RGB", (1, 1))  # entropy-decodes every block (catches truncation) at 1/8 scale
            image.load()


def _worker(job: _Job, short_side: int | None, quality: int) -> tuple[_Job, dict[str, Any] | None, str]:
    try:
        return job, convert_video(job.source, job.target, short_side, quality), ""
    except Exception as exc:  # noqa: BLE001 - reported per video; the run goes on
        return job, None, f"{type(exc).__name__}: {exc}".strip()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def prepare_dataset(src: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions | None = None) -> PrepareSummary:
    """Convert the videos of ``src`` (a dataset of ``options.format``) into frame folders under ``out``.

    Raises:
        RuntimeError: too many videos failed (the report is still written; finished folders stay).
        ValueError, FileNotFoundError: bad options, an ``out`` prepared with other settings.
    """
    options = options or PrepareOptions()
    if not 1 <= options.quality <= 100:
        raise ValueError(f"quality: must be in [1, 100], got {options.quality}")
    if options.short_side is not None and options.short_side < 2:
        raise ValueError(f"short_side: must be >= 2, got {options.short_side}")
    src_path, out_path = Path(src), Path(out)
    if not src_path.is_dir():
        raise FileNotFoundError(f"SRC {src_path} is not a directory")
    started = time.perf_counter()
    out_path.mkdir(parents=True, exist_ok=True)
    datasets = {split: load_split(options.format, src_path, split, options.labels_file)
                for split in split_names(options.format, src_path, options.splits)}
    summary = PrepareSummary()
    jobs: dict[str, _Job] = {}
    owners: dict[str, str] = {}  # target folder -> source video
    for dataset in datasets.values():
        for record in dataset.records:
            if record.path in jobs:
                continue  # listed by several splits
            target = str(frame_folder_of(src_path, out_path, record.path))
            if owners.setdefault(target, record.path) != record.path:
                raise ValueError(f"{owners[target]} and {record.path} would both become {target}; rename one")
            jobs[record.path] = _Job(record.path, target)
    _check_settings(out_path, options)  # after the splits parsed: a typo must not pin the settings
    summary.videos = len(jobs)
    _remove_stale_temps(out_path)
    todo = []
    for job in jobs.values():
        if (Path(job.target) / META_NAME).is_file():
            summary.skipped_done += 1
            _account(summary, json.loads((Path(job.target) / META_NAME).read_text()))
        elif not os.path.isfile(job.source):
            summary.missing.append(job.source)  # as in training: reported, not counted as a failure
        else:
            todo.append(job)
    try:
        _run(todo, options, summary)
    finally:
        done = {j.source for j in jobs.values() if (Path(j.target) / META_NAME).is_file()}
        for split, dataset in datasets.items():
            files = write_split(options.format, src_path, out_path, split, dataset, done.__contains__, options.labels_file)
            summary.split_files.extend(str(f.relative_to(out_path)) for f in files if str(f.relative_to(out_path)) not in summary.split_files)
        summary.seconds = time.perf_counter() - started
        report = {**asdict(summary), "options": asdict(options), "bytes_per_video_hour": bytes_per_hour(summary)}
        (out_path / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return summary


def bytes_per_hour(summary: PrepareSummary) -> float | None:
    """Disk bytes per hour of source video (frames / fps summed over the converted videos)."""
    return summary.bytes_written * 3600 / summary.video_seconds if summary.video_seconds > 0 else None


def _check_settings(out: Path, options: PrepareOptions) -> None:
    settings = {"format": options.format, "short_side": options.short_side, "quality": options.quality}
    path = out / OPTIONS_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(f"{out} was prepared with {previous}; this run asks for {settings}: use another OUT")
    else:
        path.write_text(json.dumps(settings) + "\n")


def _remove_stale_temps(out: Path) -> None:
    """Delete the temp folders an interrupted run left; finished frame folders are not entered
    (listing every frame of a large dataset would dominate a resumed run's start)."""
    for directory, subdirs, _ in os.walk(out):
        kept = []
        for name in subdirs:
            path = os.path.join(directory, name)
            if name.startswith(_TMP_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
            elif not os.path.isfile(os.path.join(path, META_NAME)):
                kept.append(name)
        subdirs[:] = kept


def _account(summary: PrepareSummary, meta: dict[str, Any]) -> None:
    summary.frames_written += meta["num_frames"]
    summary.bytes_written += meta.get("bytes", 0)
    if meta.get("fps"):
        summary.video_seconds += meta["num_frames"] / meta["fps"]


def _run(todo: list[_Job], options: PrepareOptions, summary: PrepareSummary) -> None:
    progress = _Progress(len(todo), options.progress)
    attempts = 0

    def record(job: _Job, meta: dict[str, Any] | None, error: str) -> None:
        nonlocal attempts
        attempts += 1
        if meta is None:
            summary.failed.append({"path": job.source, "error": error})
        else:
            summary.converted += 1
            _account(summary, meta)
        progress.update(len(summary.failed))
        failures = len(summary.failed)
        total = max(summary.videos, 1)
        if failures >= max(1, options.min_failures) and failures > options.max_failure_rate * total:
            raise RuntimeError(
                f"prepare: {failures} of {total} videos failed ({failures / total:.0%} > "
                f"max_failure_rate={options.max_failure_rate:g}); last: {job.source} ({error}). "
                f"Finished folders are kept; see {REPORT_NAME}."
            )

    try:
        if options.workers <= 1:
            for job in todo:
                record(*_worker(job, options.short_side, options.quality))
            return
        with ProcessPoolExecutor(max_workers=options.workers) as pool:
            pending: set[Future] = set()
            queue = iter(todo)
            try:
                _top_up(pool, pending, queue, 2 * options.workers, options)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        record(*future.result())
                    _top_up(pool, pending, queue, 2 * options.workers, options)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        progress.close()


def _top_up(pool: ProcessPoolExecutor, pending: set[Future], queue: Iterable[_Job], size: int, options: PrepareOptions) -> None:
    """Keep a few jobs queued per worker (not all: a stop must not wait for the whole dataset)."""
    for job in queue:
        pending.add(pool.submit(_worker, job, options.short_side, options.quality))
        if len(pending) >= size:
            return


class _Progress:
    """tqdm on stderr when installed, else a plain line every few percent."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.count, self.enabled, self._bar = total, 0, enabled and total > 0, None
        self._start, self._last = time.perf_counter(), -1
        if self.enabled:
            try:
                from tqdm import tqdm  # noqa: PLC0415

                self._bar = tqdm(total=total, unit="video", desc="prepare", file=sys.stderr)
            except ImportError:
                pass

    def update(self, failed: int) -> None:
        self.count += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(failed=failed, refresh=False)
            self._bar.update(1)
            return
        percent = 100 * self.count // self.total
        if percent // 5 != self._last // 5 or self.count == self.total:
            self._last = percent
            rate = self.count / max(time.perf_counter() - self._start, 1e-9)
            print(f"prepare: {self.count}/{self.total} videos ({percent}%), {failed} failed, {rate:.1f} videos/s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
