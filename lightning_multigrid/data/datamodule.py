"""``VideoDataModule``: the datasets and loaders for training, validation and multi-view testing.

The training loader is a plain shuffled ``DataLoader`` at the base shape; the multigrid callback
replaces its batching with a shape-aware batch sampler over :attr:`VideoDataModule.train_dataset`
(see :meth:`VideoDataModule.loader_options` for the settings to reuse). Validation runs at the
base shape with one centre view; testing yields ``test_num_clips * test_num_crops`` views per video.

Loader workers only decode and crop: batches travel as ``uint8`` and are finished (float, normalised
with :attr:`VideoDataDefinition.mean`/``std``, SlowFast pathways packed) on the training device by
:meth:`VideoDataDefinition.transfer_batch_to_device`, the one place Lightning moves every batch of
training, validation, testing, prediction, and the multigrid callback's precise BN and shape probe.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.utils.data import DataLoader

from lightning_multigrid.data.clip_dataset import Split, VideoClipDataset
from lightning_multigrid.data.datasets import DatasetFormat, build_dataset, dataset_format
from lightning_multigrid.schedule.recipe import ClipShape

from ..namespace import lightning_module, save_init_arguments
from .decoders import DEFAULT_DECODER, get_decoder
from .device_decode import EncodedBatch, collate_clips, decode_batch
from .failures import SkippedVideos, report_skipped_videos, run_record_dir
from .synthetic import is_synthetic_dataset, make_synthetic_dataset
from .transforms import DEFAULT_MEAN, DEFAULT_STD, finish_clips

__all__ = ["VideoDataModule", "VideoDataDefinition"]

logger = logging.getLogger(__name__)

_DEFAULT_SYNTHETIC_DIR = "data/synthetic"


if TYPE_CHECKING:  # the definition is checked as the Lightning class it becomes
    from pytorch_lightning import LightningDataModule as _TypingBase
else:
    _TypingBase = object


class VideoDataDefinition(_TypingBase):
    """Video clip datasets in one of four annotation formats, or a generated synthetic set.

    Args:
        format: ``"csv"`` (Kinetics-style list), ``"folder"`` (one subfolder per class),
            ``"ssv2"`` (Something-Something v2 JSON) or ``"charades"`` (multi-label CSV).
        root: dataset directory; split paths may be relative to it. With ``synthetic`` it is
            where the synthetic set is written (default ``data/synthetic``).
        train_split, val_split, test_split: list files (default ``train.csv``, ...; folder format:
            subfolders holding the class folders, default ``train``, ``val``, ``test``, ``"."`` for
            ``root`` itself); ``None`` disables that split.
        labels_file: SSv2 labels JSON (default: ``labels.json`` beside the split file).
        decoder: decoding backend, ``"decord"``, ``"torchcodec"`` or ``"pyav"``.
        num_frames: ``T0``, frames per clip of the base shape.
        crop_size: ``S0``, square crop side of the base shape.
        sampling_rate: ``r0``, temporal stride of the base shape.
        jitter_scales: training short-side rescale range; default
            ``(round(S0 * 8 / 7), round(S0 * 10 / 7))``.
        test_num_clips: temporal views per video in testing.
        test_num_crops: spatial views per video in testing (1 or 3).
        slowfast_alpha: return ``[slow, fast]`` pathways with this speed ratio.
        num_classes: number of classes (needed for Charades' multi-hot targets, default 157);
            otherwise taken from the data after :meth:`setup`.
        batch_size: per-device base batch size (the multigrid callback scales it).
        num_workers: loader worker processes.
        pin_memory: pin batches for GPU transfer; default: whether CUDA is available.
        persistent_workers: keep workers between epochs (needs ``num_workers > 0``).
        prefetch_factor: batches prefetched per worker (needs ``num_workers > 0``).
        max_failure_rate: fraction of failed video loads per process that stops training.
        random_flip: horizontal flips in training; default off for SSv2 and the synthetic set
            (``synthetic=True``, or a ``root`` that holds a generated set's manifest), whose
            classes depend on left/right direction; on otherwise.
        mean, std: per-channel normalisation, applied on the training device (the datasets
            deliver ``uint8`` clips; see :meth:`transfer_batch_to_device`).
        synthetic: generate the synthetic dataset into ``root`` in :meth:`prepare_data` if absent
            and train on it (format ``csv``).
        synthetic_num_classes, synthetic_videos_per_class, synthetic_size, synthetic_num_frames,
            synthetic_seed: parameters of the generated set (``synthetic_size`` is ``(W, H)``).
        decode_on: ``"workers"`` (default): loader workers decode and crop. ``"device"``: workers
            only read the stored JPEG frames and choose each clip's frames and crop; the batch is
            decoded, cropped and resized on the training device (:mod:`.device_decode`), also for
            evaluation, precise BN and the multigrid probe. Needs frame folders or packed files.
    """

    def __init__(
        self,
        format: DatasetFormat = "csv",
        root: str | None = None,
        train_split: str | None = "train.csv",
        val_split: str | None = "val.csv",
        test_split: str | None = "test.csv",
        labels_file: str | None = None,
        decoder: str = DEFAULT_DECODER,
        num_frames: int = 8,
        crop_size: int = 224,
        sampling_rate: int = 8,
        jitter_scales: tuple[int, int] | None = None,
        test_num_clips: int = 1,
        test_num_crops: int = 1,
        slowfast_alpha: int | None = None,
        num_classes: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        max_failure_rate: float = 0.1,
        random_flip: bool | None = None,
        mean: tuple[float, float, float] = DEFAULT_MEAN,
        std: tuple[float, float, float] = DEFAULT_STD,
        synthetic: bool = False,
        synthetic_num_classes: int = 4,
        synthetic_videos_per_class: int = 20,
        synthetic_size: tuple[int, int] = (64, 48),
        synthetic_num_frames: int = 32,
        synthetic_seed: int = 0,
        decode_on: Literal["workers", "device"] = "workers",
    ) -> None:
        super().__init__()
        # An unset num_classes stays out of the hparams: Lightning refuses to log a module and a
        # datamodule whose shared keys differ (VideoClassifier(num_classes=4) vs None here).
        save_init_arguments(self, locals(), ignore=("num_classes",) if num_classes is None else ())
        format_class = dataset_format(format)  # an unknown format fails here, listing the known ones
        if synthetic and format != "csv":
            raise ValueError(f"synthetic data is a csv dataset; got format={format!r}")
        if root is None and not synthetic:
            raise ValueError("root: a dataset directory is required (or set synthetic=True)")
        for name, value in (("batch_size", batch_size), ("num_frames", num_frames), ("crop_size", crop_size),
                            ("sampling_rate", sampling_rate), ("test_num_clips", test_num_clips)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if jitter_scales is None:
            jitter_scales = (round(crop_size * 8 / 7), round(crop_size * 10 / 7))
        # Validates jitter vs crop (and raises naming the field) before any file is touched.
        self.base_shape = ClipShape(num_frames, crop_size, (sampling_rate, sampling_rate), (int(jitter_scales[0]), int(jitter_scales[1])))
        if slowfast_alpha is not None and num_frames % slowfast_alpha:
            raise ValueError(
                f"num_frames: SlowFast needs T0 divisible by slowfast_alpha={slowfast_alpha}, got {num_frames}"
            )
        get_decoder(decoder)  # an unavailable backend is reported now, not in a worker
        self.format = format
        self.root = Path(root if root is not None else _DEFAULT_SYNTHETIC_DIR)
        self.splits: dict[Split, str | None] = {"train": train_split, "val": val_split, "test": test_split}
        if format == "folder":  # its own defaults: the split folders "train", "val", "test", not list files
            for part, given in self.splits.items():
                if given == f"{part}.csv":
                    self.splits[part] = part
        self.labels_file = labels_file
        self.decoder = decoder
        self.test_num_clips = test_num_clips
        self.test_num_crops = test_num_crops
        self.slowfast_alpha = slowfast_alpha
        self._num_classes = num_classes
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self.max_failure_rate = max_failure_rate
        if random_flip is None:
            # Left/right direction is part of the label in SSv2 and in the synthetic set (also when
            # it is passed as a plain csv ``root``): flipping would silently swap classes.
            random_flip = format_class.default_random_flip and not synthetic and not is_synthetic_dataset(self.root)
        self.random_flip = random_flip
        self.mean, self.std = tuple(mean), tuple(std)
        self.synthetic = synthetic
        self._synthetic_args: dict[str, Any] = {
            "num_classes": synthetic_num_classes,
            "videos_per_class": synthetic_videos_per_class,
            "size": tuple(synthetic_size),
            "num_frames": synthetic_num_frames,
            "seed": synthetic_seed,
        }
        if decode_on not in ("workers", "device"):
            raise ValueError(f"decode_on must be 'workers' or 'device', got {decode_on!r}")
        self.decode_on = decode_on
        self.datasets: dict[Split, VideoClipDataset] = {}
        self.classes: list[str] | None = None
        self._record_run: tuple[Any, Path] | None = None  # (trainer, its record directory)

    # ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic dataset (once; a no-op when it is already there)."""
        if self.synthetic:
            make_synthetic_dataset(self.root, **self._synthetic_args)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (``fit``: train + val, ``validate``, ``test``/``predict``)."""
        if self.synthetic:
            self.prepare_data()  # a no-op after prepare_data; covers direct setup() calls
        wanted: dict[str | None, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: ("train", "val", "test"),
        }
        if stage not in wanted:
            raise ValueError(f"setup: unknown stage {stage!r}")
        splits = list(wanted[stage])
        self.skipped_videos_dir  # noqa: B018 - every rank, now: a new run's record directory is a collective
        # Other splits take the training split's classes (folder format) and class count.
        if self.format == "folder" and "train" not in self.datasets and self.splits["train"] is not None:
            if "train" not in splits:
                splits.insert(0, "train")
        for split in splits:
            if split in self.datasets:
                continue
            split_file = self.splits[split]
            if split_file is None:
                if split == "train" and stage == "fit":
                    raise ValueError("train_split: required for fitting")
                continue
            self.datasets[split] = self._build(split, split_file)
        if self._num_classes is None:
            built = [self.datasets[s] for s in ("train", "val", "test") if s in self.datasets]
            if built:
                self._num_classes = max(d.num_classes for d in built)
        for dataset in self.datasets.values():
            if dataset.classes is not None:
                self.classes = dataset.classes
                break

    def _build(self, split: Split, split_file: str | None) -> VideoClipDataset:
        options: dict[str, Any] = {
            "decoder": self.decoder,
            "slowfast_alpha": self.slowfast_alpha,
            "test_num_clips": self.test_num_clips,
            "test_num_crops": self.test_num_crops,
            "random_flip": self.random_flip,
            "max_failure_rate": self.max_failure_rate,
            "mean": self.mean,
            "std": self.std,
        }
        if self.decode_on != "workers":  # only then: datasets of other formats need not know the option
            options["decode_on"] = self.decode_on
        if self._num_classes is not None:
            options["num_classes"] = self._num_classes
        run_dir = self.skipped_videos_dir
        if run_dir is not None:  # one record per split, shared by every worker and DDP rank of the run
            options["skipped_dir"] = run_dir / self._record_name(split)
        if self.format == "folder" and split != "train" and "train" in self.datasets:
            options["classes"] = self.datasets["train"].classes
        return build_dataset(
            self.format, self.root, split_file, split, self.base_shape, labels_file=self.labels_file, **options
        )

    # ----------------------------------------------------------------------------------------
    @property
    def skipped_videos_dir(self) -> Path | None:
        """Where this run records unreadable videos and writes ``skipped_videos.json``:
        ``<trainer.log_dir>/skipped_videos/<run id>`` (``None`` without a Trainer: each dataset
        then keeps a temporary record). See :func:`.failures.run_record_dir`."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        if self._record_run is None or self._record_run[0] is not trainer:
            self._record_run = (trainer, run_record_dir(trainer))
            for split, dataset in self.datasets.items():  # datasets built for another run start afresh
                dataset.skipped_videos = SkippedVideos(self._record_run[1] / self._record_name(split))
        return self._record_run[1]

    def _record_name(self, split: Split) -> str:
        """The split and the dataset's identity: a record is never read by another dataset."""
        identity = f"{self.format}|{self.root.resolve()}|{self.splits[split]}"
        return f"{split}-{hashlib.sha1(identity.encode()).hexdigest()[:10]}"

    def report_skipped_videos(self, stage: str) -> Path | None:
        """Log the unreadable videos of every split and save them to ``skipped_videos.json`` in
        :attr:`skipped_videos_dir` (rank zero)."""
        if getattr(getattr(self, "trainer", None), "global_rank", 0) != 0:
            return None
        return report_skipped_videos(self.datasets.values(), self.skipped_videos_dir, stage)

    @property
    def num_classes(self) -> int:
        """Number of classes (from the argument, or from the data after :meth:`setup`)."""
        if self._num_classes is None:
            raise RuntimeError("num_classes is known after setup() (or pass num_classes=)")
        return self._num_classes

    @property
    def train_dataset(self) -> VideoClipDataset:
        """The training dataset (accepts :class:`~lightning_multigrid.sampling.keys.ClipKey` keys)."""
        return self._dataset("train")

    @property
    def val_dataset(self) -> VideoClipDataset:
        return self._dataset("val")

    @property
    def test_dataset(self) -> VideoClipDataset:
        return self._dataset("test")

    def _dataset(self, split: Split) -> VideoClipDataset:
        if split not in self.datasets:
            if self.splits[split] is None:
                raise RuntimeError(f"{split}_split is None: there is no {split} dataset")
            raise RuntimeError(f"the {split} dataset is built by setup(); call setup() first")
        return self.datasets[split]

    def loader_options(self) -> dict[str, Any]:
        """The ``DataLoader`` keyword arguments every loader of this module uses (no batching)."""
        options: dict[str, Any] = {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
            "collate_fn": collate_clips,  # default_collate, and encoded clips for decode_on="device"
        }
        if self.num_workers > 0 and self.prefetch_factor is not None:
            options["prefetch_factor"] = self.prefetch_factor
        return options

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset, batch_size=self.batch_size, shuffle=True, drop_last=True, **self.loader_options()
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.splits["val"] is None:
            return []
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False, **self.loader_options())

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=self.batch_size, shuffle=False, **self.loader_options())

    # ----------------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the batch, then finish its ``uint8`` clips there (:meth:`finish_batch`).

        This hook rather than ``on_after_batch_transfer``: Lightning runs one implementation of each
        hook, the DataModule's when both define it, so taking ``transfer_batch_to_device`` leaves a
        LightningModule's own ``on_after_batch_transfer`` (e.g. GPU augmentation) running, on float
        clips.
        """
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)  # type: ignore[misc]
        return self.finish_batch(batch, device)

    def finish_batch(self, batch: Any, device: torch.device | str = "cpu") -> Any:
        """A dict batch whose ``"video"`` is ``uint8`` with the model's float input in its place
        (:func:`~.transforms.finish_clips` with this module's mean, std and SlowFast alpha); any other
        batch unchanged. Encoded clips (``decode_on="device"``) are decoded on ``device`` first
        (:func:`~.device_decode.decode_batch`); clips that fail there are zeros and, in evaluation
        batches, marked ``"failed"``."""
        if isinstance(batch, dict) and isinstance(batch.get("video"), EncodedBatch):
            video, failed = decode_batch(batch["video"], device)
            batch = {**batch, "video": video}
            if failed and isinstance(batch.get("failed"), torch.Tensor):
                batch["failed"] = batch["failed"].clone()
                batch["failed"][failed] = True
        if isinstance(batch, dict) and isinstance(batch.get("video"), torch.Tensor) and batch["video"].dtype == torch.uint8:
            return {**batch, "video": finish_clips(batch["video"], self.mean, self.std, self.slowfast_alpha)}
        return batch


class VideoDataModule(VideoDataDefinition, lightning_module.LightningDataModule):  # type: ignore[misc,name-defined]
    __doc__ = VideoDataDefinition.__doc__
