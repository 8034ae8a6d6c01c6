"""The clip dataset every annotation format builds on: :class:`VideoClipDataset` over a list of
:class:`VideoRecord`, decoding exactly the ``(index, shape)`` a multigrid sampler asks for.

It does the work (sampling, decoding, augmentation, bad-file recovery); the formats of
:mod:`.datasets` only parse their annotation files into records.

Items are dicts: ``"video"`` (``uint8`` ``(C, T, S, S)``, finished into the model's float input on
the training device by :func:`~.transforms.finish_clips`; with ``normalize=True`` the float
``(C, T, S, S)``, or ``[slow, fast]`` for SlowFast), ``"label"`` (``int64`` scalar, or a float
multi-hot vector), ``"index"``; evaluation items add
``"video_index"``, ``"view_index"`` and ``"failed"``.

Unreadable videos (see :mod:`.failures`): in training, an item whose video cannot be decoded is
replaced by another video at the same shape. In evaluation (``"val"``, ``"test"``) nothing is
replaced, so a multi-view test never drops or duplicates a video: the item keeps its video and view
numbers, carries ``"failed": True`` and a zero placeholder clip of the right shape, and the
evaluation leaves it out and reports it. Every unreadable video is logged once per run and kept in
:attr:`VideoClipDataset.skipped_videos`, shared by all loader workers.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_multigrid.data.decoder_base import VideoDecoder, VideoInfo, resized_size
from lightning_multigrid.data.decoders import DEFAULT_DECODER, get_decoder
from lightning_multigrid.sampling.keys import unpack_key
from lightning_multigrid.schedule.recipe import ClipShape

from . import transforms as T
from .device_decode import EncodedClip
from .failures import SkippedVideos
from .frame_folders import decoder_for
from .frame_pack import is_packed
from .record_index import RecordIndex, VideoRecord

__all__ = ["DEFAULT_PROBE_CACHE_SIZE", "Split", "VideoClipDataset"]

# The messages keep the logger name they always had (users filter on it).
logger = logging.getLogger("lightning_multigrid.data.datasets")

Split = Literal["train", "val", "test"]
#: Replacement candidates are ``(index + k * _REPLACEMENT_STEP) % len``; a prime spreads them out.
_REPLACEMENT_STEP = 7919
#: Videos whose probe each process remembers by default (see ``probe_cache_size``).
DEFAULT_PROBE_CACHE_SIZE = 4096


class VideoClipDataset(Dataset):
    """Clips from a list of videos, decoded at the shape each key asks for.

    Args:
        records: the videos and their labels: a :class:`~.record_index.RecordIndex` (kept as it
            is), or :class:`VideoRecord` objects (stored as one). :attr:`records` is the index;
            reading it in forked loader workers copies nothing.
        base_shape: the shape of a plain integer key (baseline ``T0``, ``S0``, stride, jitter).
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
        probe_cache_size: how many videos' probes each process remembers, least recently used
            dropped first (an entry is ~1-3 KiB: frame count, size, keyframe and frame-time
            tables; the default bounds it near 10 MiB per loader worker). Datasets larger than
            this re-probe most clips of a shuffled epoch (one demux pass per video file; frame
            folders read their small metadata file).
        classes: optional class names, kept as :attr:`classes`.
        source: names the annotation file in messages.
        decode_on: ``"workers"`` (default) decode in the loader workers; ``"device"``: items hold
            an :class:`~.device_decode.EncodedClip` (the frames' JPEG bytes and the crop), decoded
            batch-wise on the training device (:mod:`.device_decode`; frame folders and packed files
            written by ``prepare`` only).
        skipped_dir: directory where unreadable videos are recorded, shared by all loader workers
            (``None``: a private temporary directory). Pass a run directory to keep the record.
    """

    accepts_clip_keys = True

    #: Horizontal flip in training unless ``random_flip`` says otherwise (False where left/right
    #: is part of the label, as in Something-Something).
    default_random_flip: bool = True
    #: The split files (or folders) a dataset of this format conventionally has, which
    #: ``lightning-multigrid prepare`` converts when no split is named.
    conventional_splits: tuple[str, ...] = ()

    def __init__(
        self,
        records: Sequence[VideoRecord] | RecordIndex,
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
        probe_cache_size: int = DEFAULT_PROBE_CACHE_SIZE,
        classes: Sequence[str] | None = None,
        source: str = "",
        skipped_dir: str | os.PathLike | None = None,
        decode_on: Literal["workers", "device"] = "workers",
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
        if decode_on not in ("workers", "device"):
            raise ValueError(f"{self.source}: decode_on must be 'workers' or 'device', got {decode_on!r}")
        if decode_on == "device":
            _check_device_decodable(records, self.source, normalize)
        self.decode_on = decode_on
        if multi_label and num_classes is None:
            raise ValueError(f"{self.source}: multi-label targets need num_classes")
        self.records = RecordIndex.of(records)
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
        if probe_cache_size < 0:
            raise ValueError(f"{self.source}: probe_cache_size must be >= 0, got {probe_cache_size}")
        self.cache_probes = cache_probes
        self.probe_cache_size = probe_cache_size if cache_probes else 0
        # Per-process state (each loader worker has its own copy), least recently used first.
        self._info_cache: OrderedDict[str, VideoInfo] = OrderedDict()

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

    def _placeholder(self, shape: ClipShape) -> torch.Tensor | list[torch.Tensor] | EncodedClip:
        """A zero clip of the shape a decoded view would have (it keeps the batch collatable)."""
        if self.decode_on == "device":
            return EncodedClip(None, (0, 0, 0, 0), (shape.crop_size, shape.crop_size), num_frames=shape.num_frames)
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
        values = self.records.label_values
        return int(values.max()) + 1 if len(values) else 0

    def _check_labels(self) -> None:
        values = self.records.label_values
        bad = np.flatnonzero((values < 0) | (values >= self.num_classes))
        if len(bad):
            record = self.records[self.records.record_of_label_value(int(bad[0]))]
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
        if info is not None:
            self._info_cache.move_to_end(path)
            return info
        info = decoder_for(path, self.decoder).probe(path)
        if info.num_frames < 1:
            raise ValueError(f"{path}: video has no frames")
        if self.probe_cache_size:
            self._info_cache[path] = info
            if len(self._info_cache) > self.probe_cache_size:
                self._info_cache.popitem(last=False)
        return info

    def _load(self, record: VideoRecord, view: int, shape: ClipShape) -> torch.Tensor | list[torch.Tensor] | EncodedClip:
        # A directory is a frame folder (see .frame_folders), read by the frame reader.
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
            if getattr(decoder, "decodes_crops", False):  # decodes only the crop (see .frame_store)
                height, width = resized_size(info.width, info.height, short_side)[::-1]
                box = (*T.random_crop_origin(height, width, crop), crop)
                if self.decode_on == "device":  # the same draws, the flip's included, decoded later
                    flip = self.random_flip and torch.rand((1,)).item() < 0.5
                    return self._encoded(decoder, record.path, indices, short_side, box, info, flip)
                frames = decoder.decode_crop(record.path, indices, short_side, box, info=info)  # type: ignore[attr-defined]
            else:
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
            if getattr(decoder, "decodes_crops", False):  # decodes only the view (see .frame_store)
                height, width = resized_size(info.width, info.height, crop)[::-1]
                box = (*T.spatial_crop_origin(height, width, crop, crop_index, self.test_num_crops), crop)
                if self.decode_on == "device":
                    return self._encoded(decoder, record.path, indices, crop, box, info, False)
                frames = decoder.decode_crop(record.path, indices, crop, box, info=info)  # type: ignore[attr-defined]
            else:
                frames = decoder.decode(record.path, indices, short_side=crop, info=info)
                frames = T.spatial_crop(frames, crop, crop_index, self.test_num_crops)
        if frames.shape[0] != num_frames:
            raise ValueError(f"{record.path}: decoder returned {frames.shape[0]} of {num_frames} frames")
        video = frames.permute(1, 0, 2, 3)  # (C, T, H, W), still uint8
        return self.finish(video) if self.normalize else video

    def _encoded(self, decoder: VideoDecoder, path: str, indices: list[int], short_side: int,
                 box: tuple[int, int, int], info: VideoInfo, flip: bool) -> EncodedClip:
        clip = decoder.encoded_crop(path, indices, short_side, box, info=info)  # type: ignore[attr-defined]
        clip.flip = flip
        return clip

    def _report_failure(self, path: str, exc: Exception) -> str:
        """Record an unreadable video (logged once per run), apply the failure-rate rule.

        Returns ``"path: reason"`` for messages.
        """
        # Decoder messages start with the path, which the report names anyway.
        reason = str(exc).removeprefix(f"{path}: ") or type(exc).__name__
        if self.skipped_videos.add(path, reason):
            instead = "using another video" if self.is_train else "left out of the evaluation and reported"
            logger.warning("%s (%s split): unreadable video %s (%s); %s", self.source, self.split, path, reason, instead)
        self.skipped_videos.check(
            self.num_videos, self.max_failure_rate, self.min_failures, self.source, f"{path} ({reason})"
        )
        return f"{path}: {reason}"


def _check_device_decodable(records: Sequence[VideoRecord], source: str, normalize: bool) -> None:
    """Device decoding reads stored JPEG frames: fail at setup, naming a video that is not one."""
    if normalize:
        raise ValueError(f"{source}: decode_on='device' finishes clips on the device; normalize=True cannot apply")
    for record in records:
        if not (is_packed(record.path) or os.path.isdir(record.path)):
            raise ValueError(
                f"{source}: decode_on='device' needs frame folders or packed files (lightning-multigrid prepare); "
                f"{record.path} is a video file"
            )
