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
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.datasets import DATASET_FORMATS, build_dataset, dataset_format

from .frame_folders import FRAME_READER, META_NAME

__all__ = ["DEFAULT_SPLITS", "frame_folder_of", "load_split", "split_names", "write_split"]

#: Split files used when none are given: the conventional names that exist under SRC.
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {name: cls.conventional_splits for name, cls in DATASET_FORMATS.items()}


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
                done: Callable[[str], bool], labels_file: str | None = None) -> list[Path]:
    """Write the split file(s) under OUT pointing at the finished frame folders."""
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
        lines = [f"{frame_folder_of(src, out, r.path).relative_to(out).as_posix()} {r.label}" for r in dataset.records if done(r.path)]
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
