"""The dataset side of ``prepare``: which videos a source dataset lists, and the split files of the output.

Source splits are parsed by the training dataset classes themselves (one parser per format), so
``prepare`` converts exactly the videos training would read. The output keeps the source layout:
``csv`` lists are rewritten with frame-folder paths, ``ssv2`` JSON and ``charades`` CSV rows are kept
for the videos that were converted (their ids name the folders), and ``folder`` layouts keep every
class folder so that labels (ranks of the sorted class names) do not shift.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.datasets import DATASET_FORMATS, build_dataset, dataset_format

from .frame_folders import FRAME_READER, META_NAME
from .frame_pack import PACKED_EXT, is_packed, packed_meta

TMP_PREFIX = ".tmp-"  # temp folders and files of unfinished videos

__all__ = ["DEFAULT_SPLITS", "Job", "TMP_PREFIX", "finished_meta", "finished_output", "frame_folder_of", "load_split",
           "remove_stale_temps", "split_names", "video_jobs", "write_split", "write_splits"]

#: Split files used when none are given: the conventional names that exist under SRC.
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {name: cls.conventional_splits for name, cls in DATASET_FORMATS.items()}


@dataclass(frozen=True)
class Job:
    """One video to convert: its file and the frame folder it becomes."""

    source: str
    target: str


# --------------------------------------------------------------------------------------------
# Reading the source splits, writing the output's
# --------------------------------------------------------------------------------------------
def split_names(fmt: str, src: Path, splits: list[str] | None) -> list[str]:
    """The splits to convert: ``splits`` if given, else the conventional names found under ``src``."""
    if splits:
        return list(splits)
    dataset_format(fmt)  # an unknown format fails here, listing the known ones
    found = [s for s in DEFAULT_SPLITS[fmt] if (src / s).exists()]
    if fmt == "folder" and not found:
        return ["."]  # the class folders sit in SRC itself
    if not found:
        raise FileNotFoundError(
            f"{src}: none of the default {fmt} split files exist ({', '.join(DEFAULT_SPLITS[fmt])}); "
            "name them with --splits"
        )
    return found


def load_split(fmt: str, src: Path, split: str, labels_file: str | None) -> VideoClipDataset:
    """The split's records, parsed by the training dataset class itself (one parser per format)."""
    from lightning_multigrid.schedule.recipe import ClipShape  # noqa: PLC0415

    extra: dict[str, Any] = {"check_files": False} if fmt != "folder" else {}
    return build_dataset(fmt, src, split, "train", ClipShape(1, 1), labels_file=labels_file,  # type: ignore[arg-type]
                         decoder=FRAME_READER, **extra)


def frame_folder_of(src: Path, out: Path, video: str) -> Path:
    """Where ``video`` (a file under ``src``) goes: its relative path under ``out``, without extension."""
    path = Path(video)
    try:
        relative = path.resolve().relative_to(src.resolve())
    except ValueError:
        raise ValueError(f"{video}: outside the source directory {src}; prepare needs paths under SRC") from None
    if path.is_dir():
        raise ValueError(f"{video}: already a frame folder")
    return out / relative.with_suffix("")


def write_split(fmt: str, src: Path, out: Path, split: str, dataset: VideoClipDataset,
                done: Callable[[str], bool], labels_file: str | None = None, suffix: str = "") -> list[Path]:
    """Write the split file(s) under OUT pointing at the finished frame folders (or, with ``suffix``,
    the packed files: the folder path plus that extension)."""
    written: list[Path] = []
    if fmt == "folder":
        directory = Path(dataset.source)
        for name in dataset.classes or []:  # every class folder, so labels keep their rank
            (out / directory.resolve().relative_to(src.resolve()) / name).mkdir(parents=True, exist_ok=True)
        return written
    split_in = Path(split) if Path(split).is_absolute() else src / split
    split_out = out / split_in.resolve().relative_to(src.resolve())
    split_out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        lines = [f"{frame_folder_of(src, out, r.path).relative_to(out).as_posix()}{suffix} {r.label}"
                 for r in dataset.records if done(r.path)]
        split_out.write_text("\n".join(lines) + "\n")
        for classes in (split_in.parent / "classes.txt", src / "classes.txt"):
            if classes.is_file():
                destination = out / classes.resolve().relative_to(src.resolve())
                shutil.copyfile(classes, destination)
                written.append(destination)
    elif fmt == "ssv2":
        entries = json.loads(split_in.read_text())
        kept = [e for e in entries if (out / str(e["id"]) / META_NAME).is_file()]
        split_out.write_text(json.dumps(kept))
        labels = Path(labels_file) if labels_file else None
        labels = labels if labels is None or labels.is_absolute() else src / labels
        for candidate in ([labels] if labels else [split_in.parent / n for n in ("labels.json", "something-something-v2-labels.json")]):
            if candidate.is_file():
                destination = out / candidate.resolve().relative_to(src.resolve())
                shutil.copyfile(candidate, destination)
                written.append(destination)
    else:  # charades
        with split_in.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if (out / row["id"] / META_NAME).is_file()]
            fields = reader.fieldnames or []
        with split_out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return [split_out, *written]


def video_jobs(datasets: dict[str, VideoClipDataset], src: Path, out: Path, suffix: str = "") -> dict[str, Job]:
    """One job per listed video (by source path), refusing two videos that map to one output; ``suffix``
    is the packed layout's file extension (``""``: frame folders)."""
    jobs: dict[str, Job] = {}
    owners: dict[str, str] = {}  # target folder -> source video
    for dataset in datasets.values():
        for source in dataset.records.paths():
            if source in jobs:
                continue  # listed by several splits
            target = str(frame_folder_of(src, out, source)) + suffix
            if owners.setdefault(target, source) != source:
                raise ValueError(f"{owners[target]} and {source} would both become {target}; rename one")
            jobs[source] = Job(source, target)
    return jobs


def write_splits(fmt: str, datasets: dict[str, VideoClipDataset], jobs: dict[str, Job], src: Path, out: Path,
                 labels_file: str | None = None, suffix: str = "") -> list[str]:
    """Every split's files under OUT, listing the videos whose output is finished; their paths under OUT."""
    done = {j.source for j in jobs.values() if finished_output(j.target)}
    written: list[str] = []
    for split, dataset in datasets.items():
        for file in write_split(fmt, src, out, split, dataset, done.__contains__, labels_file, suffix):
            if str(file.relative_to(out)) not in written:
                written.append(str(file.relative_to(out)))
    return written


# --------------------------------------------------------------------------------------------
# Finished and unfinished outputs (resume)
# --------------------------------------------------------------------------------------------
def finished_output(target: str) -> bool:
    """Whether ``target`` (a frame folder, or a packed file) was completed by an earlier run."""
    return os.path.isfile(target) if is_packed(target) else os.path.isfile(os.path.join(target, META_NAME))


def finished_meta(target: str) -> dict[str, Any]:
    """The metadata of a finished output; ``bytes`` is what it takes on disk (a packed file: its size)."""
    if is_packed(target):
        return {**packed_meta(target), "bytes": os.path.getsize(target)}
    return json.loads((Path(target) / META_NAME).read_text())


def _temp_owner(directory: str, name: str) -> tuple[str, str]:
    """The outputs a temp entry ``.tmp-<name>-<pid>[.mgframes]`` may belong to (folder, packed file)."""
    base = name[len(TMP_PREFIX):].removesuffix(PACKED_EXT)
    folder = os.path.join(directory, base.rpartition("-")[0])
    return folder, folder + PACKED_EXT


def remove_stale_temps(out: Path, targets: set[str] | None = None) -> None:
    """Delete the temp folders (and packed files) an interrupted run left, only those of ``targets``'
    videos when given (other shards may be writing theirs); finished frame folders are not entered
    (listing every frame of a large dataset would dominate a resumed run's start)."""
    def stale(directory: str, name: str) -> bool:
        return name.startswith(TMP_PREFIX) and (
            targets is None or any(owner in targets for owner in _temp_owner(directory, name)))

    for directory, subdirs, files in os.walk(out):
        for name in files:
            if stale(directory, name):
                os.unlink(os.path.join(directory, name))
        kept = []
        for name in subdirs:
            path = os.path.join(directory, name)
            if name.startswith(TMP_PREFIX):
                if stale(directory, name):
                    shutil.rmtree(path, ignore_errors=True)
            elif not os.path.isfile(os.path.join(path, META_NAME)):
                kept.append(name)
        subdirs[:] = kept
