"""The annotation formats: one :class:`~.clip_dataset.VideoClipDataset` subclass per format, which
only parses its files into :class:`~.clip_dataset.VideoRecord` (the base class, in
:mod:`.clip_dataset`, samples, decodes, augments and recovers from bad files). The formats read
from one annotation file share :class:`SplitFileDataset`'s constructor and only parse:

* :class:`CsvVideoDataset`: Kinetics-style ``path label`` / ``path,label`` lines.
* :class:`FolderVideoDataset`: one subfolder per class (class id = rank of the sorted folder name).
* :class:`SSv2Dataset`: Something-Something v2 JSON files, TSN-style segment sampling.
* :class:`CharadesDataset`: Charades CSV with an ``actions`` column, multi-hot targets.

:data:`DATASET_FORMATS` names them, :func:`dataset_format` looks one up and :func:`build_dataset`
builds one split. This module also exports the base names (:class:`VideoClipDataset`,
:class:`VideoRecord`, :data:`Split`), so ``lightning_multigrid.data.datasets`` offers the whole
dataset API.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightning_multigrid.schedule.recipe import ClipShape

from .clip_dataset import Split, VideoClipDataset
from .frame_folders import find_videos
from .list_file import read_list_file, resolve_path
from .record_index import RecordIndex, VideoRecord, root_prefix

__all__ = [
    "DatasetFormat",
    "VIDEO_EXTENSIONS",
    "SplitFileDataset",
    "CsvVideoDataset",
    "FolderVideoDataset",
    "SSv2Dataset",
    "CharadesDataset",
    "DATASET_FORMATS",
    "build_dataset",
    "dataset_format",
]

logger = logging.getLogger(__name__)

DatasetFormat = Literal["csv", "folder", "ssv2", "charades"]
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
#: How many missing paths a setup report lists.
_REPORT_PATHS = 5


def _drop_missing(records: RecordIndex, source: str) -> RecordIndex:
    """Report (once, with a count and examples) and drop records whose file does not exist."""
    exists = np.fromiter(map(os.path.exists, records.paths()), dtype=bool, count=len(records))  # file or frame folder
    missing = [records.path(i) for i in np.flatnonzero(~exists)[:_REPORT_PATHS].tolist()]
    if missing:
        count = int((~exists).sum())
        examples = ", ".join(missing) + (", ..." if count > _REPORT_PATHS else "")
        if not exists.any():
            raise FileNotFoundError(f"{source}: none of the {count} listed videos exist (e.g. {examples})")
        logger.warning("%s: %d of %d listed videos are missing and were dropped: %s", source, count, len(records), examples)
        return records.select(exists)
    return records


class SplitFileDataset(VideoClipDataset):
    """A format whose split is one annotation file: the constructor every such format shares.

    Resolves ``split_file`` against ``root``, has :meth:`read_split` parse it into records, drops
    (and reports) records whose video is missing, and hands the rest to :class:`VideoClipDataset`.
    A subclass only parses; its own options (SSv2's ``labels_file``, Charades' ``num_classes``)
    are keyword arguments of its constructor.

    Args:
        root: directory the video paths (or ids) are relative to.
        split_file: the annotation file (absolute, or relative to ``root``).
        base_shape, split: see :class:`VideoClipDataset`.
        check_files: drop (and report) entries whose video file or frame folder does not exist.
        **options: passed on to :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split_file: str | os.PathLike,
        base_shape: ClipShape,
        split: Split = "train",
        *,
        check_files: bool = True,
        **options: Any,
    ) -> None:
        root = Path(root)
        split_path = resolve_path(root, split_file)
        if not split_path.is_file():
            raise FileNotFoundError(f"split file {split_path} does not exist")
        records = RecordIndex.of(self.read_split(root, split_path, options), root_prefix(root))
        if not records:
            raise ValueError(f"{split_path}: no videos listed")
        if check_files:
            records = _drop_missing(records, str(split_path))
        options.setdefault("source", str(split_path))
        super().__init__(records, base_shape, split, **options)

    def read_split(self, root: Path, split_path: Path, options: dict[str, Any]) -> Sequence[VideoRecord]:
        """Parse ``split_path`` into records; may set format defaults in ``options`` (classes, sampling)."""
        raise NotImplementedError


class CsvVideoDataset(SplitFileDataset):
    """Kinetics-style list: one ``path label`` per line.

    The rule: **the label is the last field** (separated by whitespace, a comma, or both) and must
    be an integer; **the path is everything before it**, so paths may hold spaces and commas
    (``videos/ride, fast.mp4 0`` is the path ``videos/ride, fast.mp4`` with label 0). A path may be
    quoted as in CSV (``"videos/a ""b"".mp4",3``; ``""`` is a quote). Blank lines and lines
    starting with ``#`` are skipped. The first other line is a header, and skipped, only when its
    last field is not an integer; anywhere else that is an error naming the line. A
    ``classes.txt`` beside ``split_file`` or in ``root`` (one name per line) gives the class names
    and count. The list is read by :func:`~.list_file.read_list_file` into a
    :class:`~.record_index.RecordIndex` (vectorised: ~2 s per million lines, so every DDP rank
    reads it itself).

    Args: see :class:`SplitFileDataset` (``split_file`` is the list file).
    """

    conventional_splits = ("train.csv", "val.csv", "test.csv")

    def read_split(self, root: Path, split_path: Path, options: dict[str, Any]) -> RecordIndex:
        if "classes" not in options:
            for candidate in (split_path.parent / "classes.txt", root / "classes.txt"):
                if candidate.is_file():
                    options["classes"] = [c.strip() for c in candidate.read_text().splitlines() if c.strip()]
                    break
        if options.get("classes") is not None and options.get("num_classes") is None:
            options["num_classes"] = len(options["classes"])
        return read_list_file(split_path, root)


class FolderVideoDataset(VideoClipDataset):
    """Videos in one subfolder per class: ``<root>/<split_dir>/<class>/**/<video>``.

    Args:
        root: dataset directory.
        split_dir: subdirectory holding the class folders (e.g. ``"train"``); ``None``: ``root``.
        base_shape, split: see :class:`VideoClipDataset`.
        classes: class names in label order; default: the sorted subfolder names. Pass the
            training split's classes to the other splits so their labels agree.
        **options: passed on to :class:`VideoClipDataset`.
    """

    conventional_splits = ("train", "val", "test")

    def __init__(
        self,
        root: str | os.PathLike,
        split_dir: str | os.PathLike | None,
        base_shape: ClipShape,
        split: Split = "train",
        classes: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        directory = resolve_path(Path(root), split_dir) if split_dir else Path(root)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"video folder {directory} does not exist: the folder format reads <root>/<split folder>/<class>/"
                f"<video> with the {split} split's folder named by {split}_split (default {split!r}); pass "
                f"{split}_split='.' when the class folders are in {root} itself, or None for no {split} split"
            )
        if classes is None:
            classes = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise ValueError(f"{directory}: no class subfolders")
        records: list[VideoRecord] = []
        for label, name in enumerate(classes):
            folder = directory / name
            if not folder.is_dir():
                continue  # a class without videos in this split
            records.extend(VideoRecord(p, label) for p in find_videos(folder, VIDEO_EXTENSIONS))
        if not records:
            raise ValueError(f"{directory}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in the class folders")
        options.setdefault("num_classes", len(classes))
        options.setdefault("source", str(directory))
        super().__init__(records, base_shape, split, classes=classes, **options)


_BRACKETS = re.compile(r"[\[\]]")


class SSv2Dataset(SplitFileDataset):
    """Something-Something v2: ``<root>/<id>.webm`` (or ``.mp4``) with the official JSON files.

    Labels come from the labels JSON (``{"template name": "id"}``) by the split entry's
    ``template`` with its ``[something]`` brackets removed. Sampling is TSN-style segments and
    horizontal flipping is off by default (several classes are left/right specific).

    Args:
        *args: ``root`` (the video directory), ``split_file`` (split JSON, a list of
            ``{"id": ..., "template": ...}``), ``base_shape``, ``split``: see :class:`SplitFileDataset`.
        labels_file: labels JSON; default ``labels.json`` or
            ``something-something-v2-labels.json`` beside ``split_file``.
        **options: ``check_files`` and the :class:`VideoClipDataset` options.
    """

    default_random_flip = False  # "pushing something left" flipped is "pushing something right"
    conventional_splits = ("something-something-v2-train.json", "something-something-v2-validation.json",
                           "train.json", "validation.json")

    def __init__(self, *args: Any, labels_file: str | os.PathLike | None = None, **options: Any) -> None:
        self.labels_file = labels_file  # read by read_split, which the base constructor calls
        super().__init__(*args, **options)

    def read_split(self, root: Path, split_path: Path, options: dict[str, Any]) -> list[VideoRecord]:
        labels_path = self._labels_path(root, split_path, self.labels_file)
        classes_by_name = self._read_json(labels_path, dict)
        try:
            label_of = {name: int(i) for name, i in classes_by_name.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{labels_path}: expected {{'template name': 'id'}} with integer ids") from None
        classes = [""] * len(label_of)
        for name, i in label_of.items():
            if 0 <= i < len(classes):
                classes[i] = name
        records = []
        for n, entry in enumerate(self._read_json(split_path, list)):
            if not isinstance(entry, dict) or "id" not in entry:
                raise ValueError(f"{split_path}: entry {n} has no 'id'")
            if "template" not in entry:
                raise ValueError(f"{split_path}: entry {n} (id {entry['id']}) has no 'template' (unlabelled split?)")
            template = _BRACKETS.sub("", str(entry["template"]))
            if template not in label_of:
                raise ValueError(f"{split_path}: entry {n}: template {template!r} not in {labels_path}")
            records.append(VideoRecord(str(self._video_path(root, str(entry["id"]))), label_of[template]))
        options.setdefault("sampling", "segment")
        options.setdefault("num_classes", len(label_of))
        options.setdefault("classes", classes)
        return records

    @staticmethod
    def _labels_path(root: Path, split_path: Path, labels_file: str | os.PathLike | None) -> Path:
        if labels_file is not None:
            return resolve_path(root, labels_file)
        for name in ("labels.json", "something-something-v2-labels.json"):
            if (split_path.parent / name).is_file():
                return split_path.parent / name
        raise FileNotFoundError(f"{split_path}: no labels_file given and no labels.json beside it")

    @staticmethod
    def _read_json(path: Path, kind: type) -> Any:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(data, kind):
            raise ValueError(f"{path}: expected a JSON {kind.__name__}, got {type(data).__name__}")
        return data

    @staticmethod
    def _video_path(root: Path, video_id: str) -> Path:
        for ext in (".webm", ".mp4"):
            if (root / f"{video_id}{ext}").is_file():
                return root / f"{video_id}{ext}"
        if (root / video_id).is_dir():
            return root / video_id  # a frame folder, as the reference reads SSv2
        return root / f"{video_id}.webm"


class CharadesDataset(SplitFileDataset):
    """Charades-style multi-label CSV: columns ``id`` and ``actions`` ("c092 11.90 21.20;c147 0.00 12.60").

    Targets are multi-hot over ``num_classes`` (157 for Charades) from every action of the video;
    videos are ``<root>/<id>.mp4`` or frame folders ``<root>/<id>/``.

    Args:
        *args: ``root`` (the video directory), ``split_file`` (the CSV), ``base_shape``, ``split``:
            see :class:`SplitFileDataset`.
        num_classes: size of the multi-hot target.
        **options: ``check_files`` and the :class:`VideoClipDataset` options.
    """

    conventional_splits = ("Charades_v1_train.csv", "Charades_v1_test.csv", "train.csv", "test.csv")

    def __init__(self, *args: Any, num_classes: int = 157, **options: Any) -> None:
        super().__init__(*args, num_classes=num_classes, multi_label=True, **options)

    def read_split(self, root: Path, split_path: Path, options: dict[str, Any]) -> list[VideoRecord]:
        records = []
        with split_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"id", "actions"} <= set(reader.fieldnames):
                raise ValueError(f"{split_path}: needs columns 'id' and 'actions', has {reader.fieldnames}")
            for row in reader:
                ids = self.parse_actions(row["actions"] or "", f"{split_path}:{reader.line_num}")
                # Charades is distributed as videos and as frame folders (<root>/<id>/<id>-000001.jpg).
                folder = root / row["id"]
                records.append(VideoRecord(str(folder if folder.is_dir() else root / f"{row['id']}.mp4"), ids))
        return records

    @staticmethod
    def parse_actions(text: str, where: str = "actions") -> tuple[int, ...]:
        """``"c092 11.90 21.20;c147 0.00 12.60"`` -> ``(92, 147)`` (sorted, unique)."""
        ids = set()
        for part in text.split(";"):
            part = part.strip()
            if not part:
                continue
            name = part.split()[0]
            if not re.fullmatch(r"c\d+", name):
                raise ValueError(f"{where}: bad action {part!r} (expected 'cNNN start end')")
            ids.add(int(name[1:]))
        return tuple(sorted(ids))


def build_dataset(
    format: DatasetFormat,
    root: str | os.PathLike,
    split_file: str | os.PathLike | None,
    split: Split,
    base_shape: ClipShape,
    labels_file: str | os.PathLike | None = None,
    **options: Any,
) -> VideoClipDataset:
    """Build the dataset of ``format`` for one split.

    Args:
        format: a key of :data:`DATASET_FORMATS` (``"csv"``, ``"folder"``, ``"ssv2"``, ``"charades"``).
        root: the directory video paths are relative to.
        split_file: the split's list file (csv, ssv2, charades) or subfolder (folder; ``None`` = root).
        split: ``"train"``, ``"val"`` or ``"test"``.
        base_shape: the default clip shape.
        labels_file: SSv2 labels JSON.
        **options: passed to the dataset class (decoder, slowfast_alpha, test_num_clips,
            num_classes, classes, random_flip, max_failure_rate, ...).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    cls = dataset_format(format)
    if format != "folder" and split_file is None:
        raise ValueError(f"format {format!r} needs a split file for split {split!r}")
    if format == "ssv2":
        options["labels_file"] = labels_file
    if options.get("num_classes", 0) is None:
        options.pop("num_classes")  # the format's own count (Charades: 157)
    return cls(root, split_file, base_shape, split, **options)  # type: ignore[arg-type]


#: The annotation formats by name: the one list every part of the package reads.
DATASET_FORMATS: dict[str, type[VideoClipDataset]] = {
    "csv": CsvVideoDataset,
    "folder": FolderVideoDataset,
    "ssv2": SSv2Dataset,
    "charades": CharadesDataset,
}


def dataset_format(name: str) -> type[VideoClipDataset]:
    """The dataset class of an annotation format, or an error listing the formats."""
    cls = DATASET_FORMATS.get(name)
    if cls is None:
        raise ValueError(f"format must be one of {', '.join(DATASET_FORMATS)}; got {name!r}")
    return cls
