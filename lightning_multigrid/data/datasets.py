"""Map-style clip datasets that decode exactly the ``(index, shape)`` a multigrid sampler asks for.

:class:`VideoClipDataset` does the work (sampling, decoding, augmentation, bad-file recovery) on a
list of :class:`VideoRecord`; one subclass per annotation format only parses its files:

* :class:`CsvVideoDataset`: Kinetics-style ``path label`` / ``path,label`` lines.
* :class:`FolderVideoDataset`: one subfolder per class (class id = rank of the sorted folder name).
* :class:`SSv2Dataset`: Something-Something v2 JSON files, TSN-style segment sampling.
* :class:`CharadesDataset`: Charades CSV with an ``actions`` column, multi-hot targets.

Items are dicts: ``"video"`` (``uint8`` ``(C, T, S, S)``, finished into the model's float input on
the training device by :func:`~.transforms.finish_clips`; with ``normalize=True`` the float
``(C, T, S, S)``, or ``[slow, fast]`` for SlowFast), ``"label"``
(``int64`` scalar, or a float multi-hot vector), ``"index"``; evaluation items add
``"video_index"``, ``"view_index"`` and ``"failed"``.

Unreadable videos (see :mod:`.failures`): in training, an item whose video cannot be decoded is
replaced by another video at the same shape. In evaluation (``"val"``, ``"test"``) nothing is
replaced, so a multi-view test never drops or duplicates a video: the item keeps its video and view
numbers, carries ``"failed": True`` and a zero placeholder clip of the right shape, and the
evaluation leaves it out and reports it. Every unreadable video is logged once per run and kept in
:attr:`VideoClipDataset.skipped_videos`, shared by all loader workers.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from ..keys import ClipShape, unpack_key
from . import transforms as T
from .decoders import DEFAULT_DECODER, VideoDecoder, VideoInfo, get_decoder
from .failures import SkippedVideos
from .frames import decoder_for, find_videos
from .list_file import parse_list_line

__all__ = [
    "DatasetFormat",
    "Split",
    "VIDEO_EXTENSIONS",
    "VideoRecord",
    "VideoClipDataset",
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
Split = Literal["train", "val", "test"]
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
#: Replacement candidates are ``(index + k * _REPLACEMENT_STEP) % len``; a prime spreads them out.
_REPLACEMENT_STEP = 7919
#: How many missing paths a setup report lists.
_REPORT_PATHS = 5


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: its path and a class id (or a tuple of class ids for multi-label)."""

    path: str
    label: int | tuple[int, ...]


class VideoClipDataset(Dataset):
    """Clips from a list of videos, decoded at the shape each key asks for.

    Args:
        records: the videos and their labels.
        base_shape: the shape used for a plain integer key (the baseline ``T0``, ``S0``,
            ``(r0, r0)`` stride range and jitter range).
        split: ``"train"`` samples randomly (stride from the shape's ``stride_range``, short side
            from its ``jitter_range``, random crop and flip); ``"val"`` takes one centre view;
            ``"test"`` yields ``test_num_clips * test_num_crops`` views per video, one per item.
        decoder: backend name (see :func:`~.decoders.get_decoder`) or a decoder instance.
        num_classes: size of the multi-hot target (required with ``multi_label``).
        multi_label: labels are tuples of class ids; targets are float multi-hot vectors.
        sampling: ``"stride"`` (clips of ``T`` frames at a stride) or ``"segment"`` (TSN: ``T``
            segments over the whole video; the stride range is then unused).
        slowfast_alpha: SlowFast's speed ratio: ``num_frames`` must be a multiple of it, and
            :meth:`finish` (or ``normalize=True``) packs ``[slow, fast]`` (:func:`~.transforms.pack_pathways`).
        test_num_clips: temporal views per video in test mode (evenly spaced).
        test_num_crops: spatial views per video in test mode, 1 (centre) or 3 (along the long side).
        mean, std: per-channel normalisation of frames scaled to [0, 1], applied by :meth:`finish`.
        normalize: ``False`` (default): items hold the ``uint8`` clip, so loader workers only decode
            and crop and move 4x fewer bytes; :class:`~.datamodule.VideoDataModule` finishes each
            batch on the training device, and a loader of your own calls
            ``dataset.finish(batch["video"].to(device))``. ``True``: items hold the finished float
            clip (normalised, SlowFast pathways packed), computed in the worker.
        random_flip: horizontal flip in training; ``None``: the format's default
            (:attr:`default_random_flip`; off for direction-defined classes).
        max_failure_rate: raise once more than this fraction of the dataset's videos turned out
            unreadable during the run (counted per distinct video, over all loader workers and
            epochs; see :mod:`.failures`).
        min_failures: unreadable videos tolerated whatever the fraction (one bad file in a tiny
            list must not stop a run).
        max_retries: replacement videos tried after a failed load before giving up on the item.
        decoder_threads: threads per decode call (1 inside loader workers).
        cache_probes: remember each video's frame count and size per process (saves one file
            open per clip after the first visit; turn off for a cold-read benchmark).
        classes: optional class names, kept as :attr:`classes`.
        source: names the annotation file in messages.
        skipped_dir: directory where unreadable videos are recorded, shared by all loader workers
            (``None``: a private temporary directory). Pass a run directory to keep the record.
    """

    accepts_clip_keys = True

    #: Horizontal flip in training unless ``random_flip`` says otherwise (False where left/right
    #: is part of the label, as in Something-Something).
    default_random_flip: bool = True

    def __init__(
        self,
        records: Sequence[VideoRecord],
        base_shape: ClipShape,
        split: Split = "train",
        decoder: str | VideoDecoder = DEFAULT_DECODER,
        num_classes: int | None = None,
        multi_label: bool = False,
        sampling: Literal["stride", "segment"] = "stride",
        slowfast_alpha: int | None = None,
        test_num_clips: int = 1,
        test_num_crops: int = 1,
        mean: Sequence[float] = T.DEFAULT_MEAN,
        std: Sequence[float] = T.DEFAULT_STD,
        normalize: bool = False,
        random_flip: bool | None = None,
        max_failure_rate: float = 0.1,
        min_failures: int = 3,
        max_retries: int = 5,
        decoder_threads: int = 1,
        cache_probes: bool = True,
        classes: Sequence[str] | None = None,
        source: str = "",
        skipped_dir: str | os.PathLike | None = None,
    ) -> None:
        self.source = source or type(self).__name__
        if split not in ("train", "val", "test"):
            raise ValueError(f"{self.source}: split must be 'train', 'val' or 'test', got {split!r}")
        if sampling not in ("stride", "segment"):
            raise ValueError(f"{self.source}: sampling must be 'stride' or 'segment', got {sampling!r}")
        if not isinstance(base_shape, ClipShape):
            raise TypeError(f"{self.source}: base_shape must be a ClipShape, got {type(base_shape).__name__}")
        if test_num_clips < 1:
            raise ValueError(f"{self.source}: test_num_clips must be >= 1, got {test_num_clips}")
        if test_num_crops not in (1, 3):
            raise ValueError(f"{self.source}: test_num_crops must be 1 or 3, got {test_num_crops}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"{self.source}: max_failure_rate must be in [0, 1], got {max_failure_rate}")
        if slowfast_alpha is not None and slowfast_alpha < 1:
            raise ValueError(f"{self.source}: slowfast_alpha must be a positive int, got {slowfast_alpha}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"{self.source}: mean and std need 3 values (RGB), got {mean}, {std}")
        if not records:
            raise ValueError(f"{self.source}: no videos")
        if multi_label and num_classes is None:
            raise ValueError(f"{self.source}: multi-label targets need num_classes")
        self.records = list(records)
        self.split: Split = split
        self.slowfast_alpha = slowfast_alpha
        self.base_shape = base_shape
        self._check_shape(base_shape)
        self.decoder: VideoDecoder = (
            get_decoder(decoder, num_threads=decoder_threads) if isinstance(decoder, str) else decoder
        )
        self.multi_label = multi_label
        self.num_classes = num_classes if num_classes is not None else self._infer_num_classes()
        self._check_labels()
        self.sampling = sampling
        self.test_num_clips = test_num_clips if split == "test" else 1
        self.test_num_crops = test_num_crops if split == "test" else 1
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.normalize = normalize
        self.random_flip = self.default_random_flip if random_flip is None else random_flip
        self.max_failure_rate = max_failure_rate
        self.min_failures = min_failures
        #: Unreadable videos of this run, shared by all processes (see :mod:`.failures`).
        self.skipped_videos = SkippedVideos(skipped_dir)
        self.max_retries = max_retries
        self.classes = list(classes) if classes is not None else None
        self.cache_probes = cache_probes
        # Per-process state (each loader worker has its own copy).
        self._info_cache: dict[str, VideoInfo] = {}

    # ----------------------------------------------------------------------------------------
    @property
    def num_videos(self) -> int:
        return len(self.records)

    @property
    def num_views(self) -> int:
        """Items per video: ``test_num_clips * test_num_crops`` in test mode, else 1."""
        return self.test_num_clips * self.test_num_crops

    @property
    def is_train(self) -> bool:
        return self.split == "train"

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, shape = unpack_key(key, self.base_shape)
        self._check_shape(shape)
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"{self.source}: index {index} out of range for {size} items")
        video_index, view = divmod(index % size, self.num_views)
        if not self.is_train:
            return self._evaluation_item(video_index, view, shape)
        last_reason = ""
        for attempt in range(self.max_retries + 1):
            # Replacements keep the view and the shape, so the batch stays uniform.
            candidate = (video_index + attempt * _REPLACEMENT_STEP) % self.num_videos
            record = self.records[candidate]
            try:
                video = self._load(record, view, shape)
            except Exception as exc:  # noqa: BLE001 - any decode problem must not kill a worker
                last_reason = self._report_failure(record.path, exc)
                continue
            return {"video": video, "label": self._target(record), "index": candidate * self.num_views + view}
        raise RuntimeError(
            f"{self.source}: item {index} and {self.max_retries} replacement videos all failed to "
            f"load; last error: {last_reason}"
        )

    def _evaluation_item(self, video_index: int, view: int, shape: ClipShape) -> dict[str, Any]:
        """The view itself, or a placeholder marked ``"failed"``: evaluation never swaps videos."""
        record = self.records[video_index]
        failed = False
        try:
            video = self._load(record, view, shape)
        except Exception as exc:  # noqa: BLE001 - reported, and the item says so
            self._report_failure(record.path, exc)
            failed = True
            video = self._placeholder(shape)
        return {
            "video": video,
            "label": self._target(record),
            "index": video_index * self.num_views + view,
            "video_index": video_index,
            "view_index": view,
            "failed": failed,
        }

    def _placeholder(self, shape: ClipShape) -> torch.Tensor | list[torch.Tensor]:
        """A zero clip of the shape a decoded view would have (it keeps the batch collatable)."""
        video = torch.zeros(3, shape.num_frames, shape.crop_size, shape.crop_size, dtype=torch.uint8)
        return self.finish(video) if self.normalize else video

    def finish(self, video: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The model's input from this dataset's ``uint8`` clips ``(C, T, H, W)`` or a batch of them:
        normalised with :attr:`mean` and :attr:`std`, packed into ``[slow, fast]`` with
        ``slowfast_alpha`` (see :func:`~.transforms.finish_clips`). Call it on the training device."""
        return T.finish_clips(video, self.mean, self.std, self.slowfast_alpha)

    # ----------------------------------------------------------------------------------------
    def _check_shape(self, shape: ClipShape) -> None:
        alpha = self.slowfast_alpha
        if alpha and shape.num_frames % alpha:
            raise ValueError(
                f"{self.source}: SlowFast needs num_frames divisible by slowfast_alpha={alpha}; "
                f"shape {shape} has T={shape.num_frames}"
            )

    def _infer_num_classes(self) -> int:
        labels = [r.label for r in self.records]
        flat = [c for lab in labels for c in (lab if isinstance(lab, tuple) else (lab,))]
        return max(flat, default=-1) + 1

    def _check_labels(self) -> None:
        for record in self.records:
            ids = record.label if isinstance(record.label, tuple) else (record.label,)
            if any(not 0 <= c < self.num_classes for c in ids):
                raise ValueError(
                    f"{self.source}: label {record.label} of {record.path} outside [0, {self.num_classes})"
                )

    def _target(self, record: VideoRecord) -> torch.Tensor:
        if self.multi_label:
            target = torch.zeros(self.num_classes, dtype=torch.float32)
            ids = record.label if isinstance(record.label, tuple) else (record.label,)
            if ids:
                target[list(ids)] = 1.0
            return target
        return torch.tensor(record.label, dtype=torch.int64)

    def probe(self, path: str) -> VideoInfo:
        """The decoder's :class:`~.decoders.VideoInfo` for ``path``, cached per process."""
        info = self._info_cache.get(path)
        if info is None:
            info = decoder_for(path, self.decoder).probe(path)
            if info.num_frames < 1:
                raise ValueError(f"{path}: video has no frames")
            if self.cache_probes:
                self._info_cache[path] = info
        return info

    def _load(self, record: VideoRecord, view: int, shape: ClipShape) -> torch.Tensor | list[torch.Tensor]:
        # A directory is a frame folder (see .frames), read by the frame reader.
        decoder = decoder_for(record.path, self.decoder)
        if not os.path.exists(record.path):
            raise FileNotFoundError(f"{record.path}: no such file")
        if os.path.isfile(record.path) and os.path.getsize(record.path) == 0:
            raise ValueError(f"{record.path}: empty file")
        info = self.probe(record.path)
        n, num_frames, crop = info.num_frames, shape.num_frames, shape.crop_size
        if self.is_train:
            if self.sampling == "segment":
                indices = T.segment_indices(n, num_frames, train=True)
            else:
                indices, _ = T.random_clip_indices(n, num_frames, shape.stride_range)
            short_side = T.random_short_side(shape.jitter_range or (crop, crop))
            frames = decoder.decode(record.path, indices, short_side=short_side, info=info)
            frames = T.random_crop(frames, crop)
            if self.random_flip:
                frames = T.random_horizontal_flip(frames)
        else:
            clip, crop_index = divmod(view, self.test_num_crops)
            if self.sampling == "segment":
                indices = T.segment_indices(n, num_frames, False, clip, self.test_num_clips)
            else:
                indices = T.uniform_clip_indices(n, num_frames, shape.stride_range[0], clip, self.test_num_clips)
            frames = decoder.decode(record.path, indices, short_side=crop, info=info)
            frames = T.spatial_crop(frames, crop, crop_index, self.test_num_crops)
        if frames.shape[0] != num_frames:
            raise ValueError(f"{record.path}: decoder returned {frames.shape[0]} of {num_frames} frames")
        video = frames.permute(1, 0, 2, 3)  # (C, T, H, W), still uint8
        return self.finish(video) if self.normalize else video

    def _report_failure(self, path: str, exc: Exception) -> str:
        """Record an unreadable video (logged once per run), apply the failure-rate rule.

        Returns ``"path: reason"`` for messages.
        """
        # Decoder messages start with the path, which the report names anyway.
        reason = str(exc).removeprefix(f"{path}: ") or type(exc).__name__
        if self.skipped_videos.add(path, reason):
            instead = "using another video" if self.is_train else "left out of the evaluation and reported"
            logger.warning("%s: unreadable video %s (%s); %s", self.source, path, reason, instead)
        self.skipped_videos.check(
            self.num_videos, self.max_failure_rate, self.min_failures, self.source, f"{path} ({reason})"
        )
        return f"{path}: {reason}"


# --------------------------------------------------------------------------------------------
# Annotation formats
# --------------------------------------------------------------------------------------------
def _resolve(root: Path, path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path


def _drop_missing(records: list[VideoRecord], source: str) -> list[VideoRecord]:
    """Report (once, with a count and examples) and drop records whose file does not exist."""
    kept = [r for r in records if os.path.exists(r.path)]  # a file or a frame folder
    missing = [r.path for r in records if not os.path.exists(r.path)]
    if missing:
        examples = ", ".join(missing[:_REPORT_PATHS]) + (", ..." if len(missing) > _REPORT_PATHS else "")
        if not kept:
            raise FileNotFoundError(f"{source}: none of the {len(missing)} listed videos exist (e.g. {examples})")
        logger.warning("%s: %d of %d listed videos are missing and were dropped: %s", source, len(missing), len(records), examples)
    return kept


class CsvVideoDataset(VideoClipDataset):
    """Kinetics-style list: one ``path label`` per line.

    The rule: **the label is the last field** (separated by whitespace, a comma, or both) and must
    be an integer; **the path is everything before it**, so paths may hold spaces and commas
    (``videos/ride, fast.mp4 0`` is the path ``videos/ride, fast.mp4`` with label 0). A path may be
    quoted as in CSV (``"videos/a ""b"".mp4",3``; ``""`` is a quote). Blank lines and lines
    starting with ``#`` are skipped. The first other line is a header, and skipped, only when its
    last field is not an integer; anywhere else that is an error naming the line. A
    ``classes.txt`` beside ``split_file`` or in ``root`` (one name per line) gives the class names
    and count.

    Args:
        root: directory the video paths are relative to.
        split_file: the list file (absolute, or relative to ``root``).
        base_shape, split: see :class:`VideoClipDataset`.
        check_files: drop (and report) lines whose video file does not exist.
        **options: passed on to :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split_file: str | os.PathLike,
        base_shape: ClipShape,
        split: Split = "train",
        check_files: bool = True,
        **options: Any,
    ) -> None:
        root = Path(root)
        split_path = _resolve(root, split_file)
        records = self.parse(root, split_path)
        if check_files:
            records = _drop_missing(records, str(split_path))
        if "classes" not in options:
            for candidate in (split_path.parent / "classes.txt", root / "classes.txt"):
                if candidate.is_file():
                    options["classes"] = [c.strip() for c in candidate.read_text().splitlines() if c.strip()]
                    break
        if options.get("classes") is not None and options.get("num_classes") is None:
            options["num_classes"] = len(options["classes"])
        options.setdefault("source", str(split_path))
        super().__init__(records, base_shape, split, **options)

    @staticmethod
    def parse(root: Path, split_path: Path) -> list[VideoRecord]:
        """Read the list file into records (paths resolved against ``root``)."""
        if not split_path.is_file():
            raise FileNotFoundError(f"split file {split_path} does not exist")
        records: list[VideoRecord] = []
        first = True
        for lineno, raw in enumerate(split_path.read_text().splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{split_path}:{lineno}"
            path, label = parse_list_line(line, where)
            try:
                label_id = int(label)
            except ValueError:
                if first:
                    first = False
                    continue  # a header such as "path,label"
                raise ValueError(
                    f"{where}: label {label!r} is not an integer (the label is the last whitespace- or "
                    f"comma-separated field; quote a path that ends in such a field), line {line!r}"
                ) from None
            first = False
            if label_id < 0:
                raise ValueError(f"{where}: label {label_id} is negative")
            records.append(VideoRecord(str(_resolve(root, path)), label_id))
        if not records:
            raise ValueError(f"{split_path}: no videos listed")
        return records


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

    def __init__(
        self,
        root: str | os.PathLike,
        split_dir: str | os.PathLike | None,
        base_shape: ClipShape,
        split: Split = "train",
        classes: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        directory = _resolve(Path(root), split_dir) if split_dir else Path(root)
        if not directory.is_dir():
            raise FileNotFoundError(f"video folder {directory} does not exist")
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


class SSv2Dataset(VideoClipDataset):
    """Something-Something v2: ``<root>/<id>.webm`` (or ``.mp4``) with the official JSON files.

    Labels come from the labels JSON (``{"template name": "id"}``) by the split entry's
    ``template`` with its ``[something]`` brackets removed. Sampling is TSN-style segments and
    horizontal flipping is off by default (several classes are left/right specific).

    Args:
        root: the video directory.
        split_file: split JSON, a list of ``{"id": ..., "template": ...}`` (absolute or relative
            to ``root``).
        base_shape, split: see :class:`VideoClipDataset`.
        labels_file: labels JSON; default ``labels.json`` or
            ``something-something-v2-labels.json`` beside ``split_file``.
        check_files: drop (and report) entries without a video file.
        **options: passed on to :class:`VideoClipDataset`.
    """

    default_random_flip = False  # "pushing something left" flipped is "pushing something right"

    def __init__(
        self,
        root: str | os.PathLike,
        split_file: str | os.PathLike,
        base_shape: ClipShape,
        split: Split = "train",
        labels_file: str | os.PathLike | None = None,
        check_files: bool = True,
        **options: Any,
    ) -> None:
        root = Path(root)
        split_path = _resolve(root, split_file)
        labels_path = self._labels_path(root, split_path, labels_file)
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
        if not records:
            raise ValueError(f"{split_path}: no videos listed")
        if check_files:
            records = _drop_missing(records, str(split_path))
        options.setdefault("sampling", "segment")
        options.setdefault("num_classes", len(label_of))
        options.setdefault("source", str(split_path))
        super().__init__(records, base_shape, split, classes=classes, **options)

    @staticmethod
    def _labels_path(root: Path, split_path: Path, labels_file: str | os.PathLike | None) -> Path:
        if labels_file is not None:
            return _resolve(root, labels_file)
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


class CharadesDataset(VideoClipDataset):
    """Charades-style multi-label CSV: columns ``id`` and ``actions`` ("c092 11.90 21.20;c147 0.00 12.60").

    Targets are multi-hot over ``num_classes`` (157 for Charades) from every action of the video;
    videos are ``<root>/<id>.mp4``.

    Args:
        root: the video directory.
        split_file: the CSV (absolute or relative to ``root``).
        base_shape, split: see :class:`VideoClipDataset`.
        num_classes: size of the multi-hot target.
        check_files: drop (and report) rows without a video file.
        **options: passed on to :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split_file: str | os.PathLike,
        base_shape: ClipShape,
        split: Split = "train",
        num_classes: int = 157,
        check_files: bool = True,
        **options: Any,
    ) -> None:
        root = Path(root)
        split_path = _resolve(root, split_file)
        if not split_path.is_file():
            raise FileNotFoundError(f"split file {split_path} does not exist")
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
        if not records:
            raise ValueError(f"{split_path}: no videos listed")
        if check_files:
            records = _drop_missing(records, str(split_path))
        options.setdefault("source", str(split_path))
        super().__init__(records, base_shape, split, num_classes=num_classes, multi_label=True, **options)

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
