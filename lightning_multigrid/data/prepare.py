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
* Sharded: ``--shard I/N`` converts one of N disjoint parts (one machine each, into one shared
  OUT or copied together), with its own progress and report; ``--merge`` then writes the split
  files and the merged report, the same OUT as one run (:mod:`.prepare_shard`).

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
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.decoder_base import resized_size

from .frame_folders import META_NAME, verify_frame_folder
from .frame_pack import PACKED_EXT, pack_folder
from .frame_store import LEVEL_DIRS, half_size
from .prepare_layout import (
    TMP_PREFIX,
    Job,
    finished_meta,
    finished_output,
    load_split,
    remove_stale_temps,
    split_names,
    video_jobs,
    write_splits,
)
from .prepare_shard import Shard, merged_report, shard_reports
from .progress import Progress
from .video_index import one_swscale_thread

__all__ = ["PrepareOptions", "PrepareSummary", "bytes_per_hour", "merge_shards", "prepare_dataset"]

REPORT_NAME = "prepare_report.json"
OPTIONS_NAME = "prepare_options.json"
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
    #: Extra stored resolutions (names of :data:`~.frame_store.LEVEL_DIRS`), read by clips that fit them.
    levels: list[str] = field(default_factory=list)
    #: ``"folders"`` (one JPEG file per frame) or ``"packed"`` (one file per video, see :mod:`.frame_pack`).
    layout: str = "folders"
    workers: int = max(1, os.cpu_count() or 1)
    max_failure_rate: float = _DATASET_DEFAULTS["max_failure_rate"].default
    min_failures: int = _DATASET_DEFAULTS["min_failures"].default
    progress: bool = True
    shard: str | None = None  # "I/N": convert only this part (see .prepare_shard)


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


# --------------------------------------------------------------------------------------------
# One video (runs in a worker process)
# --------------------------------------------------------------------------------------------
def convert_video(source: str, target: str, short_side: int | None, quality: int,
                  levels: tuple[str, ...] = (), packed: bool = False) -> dict[str, Any]:
    """Write ``source``'s frames into the folder ``target`` (atomically); returns its metadata.

    ``levels`` (``"half"``) also writes each frame at half the short side into that subfolder.
    ``packed``: the verified folder becomes the one packed file ``target`` (:mod:`.frame_pack`)."""
    import av  # noqa: PLC0415 - worker-side import
    from PIL import Image  # noqa: PLC0415

    final = Path(target)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for level in levels:
        (tmp / level).mkdir()
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
                image = Image.fromarray(rgb.to_ndarray())
                image.save(tmp / f"{count + 1:06d}.jpg", quality=quality)
                for level in levels:  # BOX averages every stored pixel, as AREA did
                    image.resize(half_size(width, height), Image.Resampling.BOX).save(
                        tmp / level / f"{count + 1:06d}.jpg", quality=quality)
                count += 1
            declared = int(stream.frames or 0)
        if count == 0:
            raise ValueError("no decodable frames")
        meta = {"num_frames": count, "width": width, "height": height, "fps": fps, "prefix": "", "digits": 6,
                "start": 1, "ext": ".jpg", "declared_frames": declared, "quality": quality, "short_side": short_side}
        if levels:
            meta["levels"] = [{"name": level, "width": half_size(width, height)[0], "height": half_size(width, height)[1]}
                              for level in levels]
        verify_frame_folder(tmp, meta)
        meta["bytes"] = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        if packed:  # the packed file appears by rename, complete and verified: it is its own done-marker
            del meta["bytes"]  # the folder's; the file's size is what the report counts
            meta["bytes"] = pack_folder(tmp, tmp.with_name(tmp.name + PACKED_EXT), meta)
            os.replace(tmp.with_name(tmp.name + PACKED_EXT), final)
            shutil.rmtree(tmp)
            return meta
        (tmp / META_NAME).write_text(json.dumps(meta))  # last file written: the done-marker
        if final.exists():
            shutil.rmtree(final)  # an unfinished folder from an older layout
        os.rename(tmp, final)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.with_name(tmp.name + PACKED_EXT).unlink(missing_ok=True)
        raise


def _worker(job: Job, short_side: int | None, quality: int, levels: tuple[str, ...] = (),
            packed: bool = False) -> tuple[Job, dict[str, Any] | None, str]:
    try:
        return job, convert_video(job.source, job.target, short_side, quality, levels, packed), ""
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
    if options.layout not in ("folders", "packed"):
        raise ValueError(f"layout: must be 'folders' or 'packed', got {options.layout!r}")
    if options.layout == "packed" and options.format not in ("csv", "folder"):
        raise ValueError(f"layout: 'packed' needs the csv or folder format ({options.format} names videos by folder id)")
    unknown = sorted(set(options.levels) - set(LEVEL_DIRS))
    if unknown:
        raise ValueError(f"levels: unknown {unknown}; known: {list(LEVEL_DIRS)}")
    if options.short_side is not None and options.short_side < 2:
        raise ValueError(f"short_side: must be >= 2, got {options.short_side}")
    shard = Shard.parse(options.shard) if options.shard else None
    src_path, out_path = Path(src), Path(out)
    if not src_path.is_dir():
        raise FileNotFoundError(f"SRC {src_path} is not a directory")
    started = time.perf_counter()
    out_path.mkdir(parents=True, exist_ok=True)
    datasets = {split: load_split(options.format, src_path, split, options.labels_file)
                for split in split_names(options.format, src_path, options.splits)}
    summary = PrepareSummary()
    suffix = PACKED_EXT if options.layout == "packed" else ""
    jobs = video_jobs(datasets, src_path, out_path, suffix)
    if shard is not None:
        jobs = {source: job for source, job in jobs.items() if shard.owns(Path(job.target).relative_to(out_path).as_posix())}
    _check_settings(out_path, options)  # after the splits parsed: a typo must not pin the settings
    summary.videos = len(jobs)
    remove_stale_temps(out_path, None if shard is None else {job.target for job in jobs.values()})
    todo = []
    for job in jobs.values():
        if finished_output(job.target):
            summary.skipped_done += 1
            _account(summary, finished_meta(job.target))
        elif not os.path.isfile(job.source):
            summary.missing.append(job.source)  # as in training: reported, not counted as a failure
        else:
            todo.append(job)
    try:
        _run(todo, options, summary, f"prepare {shard}" if shard else "prepare")
    finally:
        if shard is None:  # shards leave the split files to the merge
            summary.split_files = write_splits(options.format, datasets, jobs, src_path, out_path, options.labels_file,
                                               suffix)
        summary.seconds = time.perf_counter() - started
        report = {**asdict(summary), "options": asdict(options), "bytes_per_video_hour": bytes_per_hour(summary)}
        (out_path / (REPORT_NAME if shard is None else shard.report_name)).write_text(json.dumps(report, indent=2) + "\n")
    return summary


def merge_shards(src: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions | None = None) -> PrepareSummary:
    """After every ``prepare --shard I/N`` run into ``out``: write the split files and
    ``prepare_report.json`` (the shards' totals), as one unsharded run would have.

    Raises:
        ValueError, FileNotFoundError: a shard has not reported, reports of different ``N``, other settings.
    """
    options = options or PrepareOptions()
    src_path, out_path = Path(src), Path(out)
    reports = shard_reports(out_path)
    datasets = {split: load_split(options.format, src_path, split, options.labels_file)
                for split in split_names(options.format, src_path, options.splits)}
    settings = json.loads((out_path / OPTIONS_NAME).read_text()) if (out_path / OPTIONS_NAME).is_file() else {}
    if settings.get("format", options.format) != options.format:
        raise ValueError(f"{out_path} was prepared as format {settings['format']!r}; --merge got --format {options.format}")
    totals = merged_report(reports)
    summary = PrepareSummary(**{k: v for k, v in totals.items() if k != "shard_seconds"}, seconds=max(totals["shard_seconds"]))
    suffix = PACKED_EXT if settings.get("layout") == "packed" else ""  # the shards' layout, not the flag's
    summary.split_files = write_splits(options.format, datasets, video_jobs(datasets, src_path, out_path, suffix),
                                       src_path, out_path, options.labels_file, suffix)
    report = {**asdict(summary), "options": {**asdict(options), **settings}, "bytes_per_video_hour": bytes_per_hour(summary),
              "shards": len(reports), "shard_seconds": totals["shard_seconds"]}
    (out_path / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return summary


def bytes_per_hour(summary: PrepareSummary) -> float | None:
    """Disk bytes per hour of source video (frames / fps summed over the converted videos)."""
    return summary.bytes_written * 3600 / summary.video_seconds if summary.video_seconds > 0 else None


def _check_settings(out: Path, options: PrepareOptions) -> None:
    settings: dict[str, Any] = {"format": options.format, "short_side": options.short_side, "quality": options.quality}
    if options.levels:  # only then: an OUT prepared before levels existed resumes as it was
        settings["levels"] = list(options.levels)
    if options.layout != "folders":
        settings["layout"] = options.layout
    path = out / OPTIONS_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(f"{out} was prepared with {previous}; this run asks for {settings}: use another OUT")
    else:  # written whole or not at all: shards may start at the same time
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(settings) + "\n")
        os.replace(temporary, path)


def _account(summary: PrepareSummary, meta: dict[str, Any]) -> None:
    summary.frames_written += meta["num_frames"]
    summary.bytes_written += meta.get("bytes", 0)
    if meta.get("fps"):
        summary.video_seconds += meta["num_frames"] / meta["fps"]


def _run(todo: list[Job], options: PrepareOptions, summary: PrepareSummary, name: str) -> None:
    progress = Progress(len(todo), options.progress, name)
    attempts = 0

    def record(job: Job, meta: dict[str, Any] | None, error: str) -> None:
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
                record(*_worker(job, options.short_side, options.quality, tuple(options.levels), options.layout == "packed"))
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


def _top_up(pool: ProcessPoolExecutor, pending: set[Future], queue: Iterable[Job], size: int, options: PrepareOptions) -> None:
    """Keep a few jobs queued per worker (not all: a stop must not wait for the whole dataset)."""
    for job in queue:
        pending.add(pool.submit(_worker, job, options.short_side, options.quality, tuple(options.levels),
                                   options.layout == "packed"))
        if len(pending) >= size:
            return


