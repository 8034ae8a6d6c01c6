"""Video data pipeline: decoders, clip datasets honouring ``(index, shape)`` keys, transforms,
a synthetic dataset generator and a LightningDataModule.

Modules: :mod:`.clip_dataset` (:class:`VideoClipDataset`, the base every format extends),
:mod:`.datasets` (the annotation formats and :func:`build_dataset`),
:mod:`.decoders` (the backends; their shared base and interface in :mod:`.decoder_base`),
:mod:`.frame_folders` (frame folders; a video file's frame index is :mod:`.video_index`), :mod:`.record_index` (video lists as arrays),
:mod:`.transforms`, :mod:`.failures` (unreadable videos),
:mod:`.synthetic` (the generator; its ``make-synthetic`` command is in :mod:`lightning_multigrid.cli`),
:mod:`.prepare` (conversion to frame folders) and :mod:`.datamodule`.

``VideoDataModule`` is imported on first use, so that dataset-only users (and spawned loader
workers) do not pay for importing Lightning; so is ``make_synthetic_main``, the ``make-synthetic``
command, kept importable here for users although it lives in :mod:`lightning_multigrid.cli.make_synthetic`.
"""

from typing import TYPE_CHECKING, Any

from lightning_multigrid.data.clip_dataset import Split, VideoClipDataset
from lightning_multigrid.data.datasets import (
    DATASET_FORMATS,
    VIDEO_EXTENSIONS,
    CharadesDataset,
    CsvVideoDataset,
    DatasetFormat,
    FolderVideoDataset,
    SplitFileDataset,
    SSv2Dataset,
    build_dataset,
    dataset_format,
)
from lightning_multigrid.data.decode_errors import DecoderUnavailableError, VideoDecodeError
from lightning_multigrid.data.decoder_base import VideoDecoder, VideoInfo, resized_size
from lightning_multigrid.data.decoders import (
    DEFAULT_DECODER,
    DecordDecoder,
    PyAVDecoder,
    TorchCodecDecoder,
    available_decoders,
    decoder_names,
    get_decoder,
)
from lightning_multigrid.data.record_index import VideoRecord

from .record_index import RecordIndex
from .synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from .synthetic import is_synthetic_dataset, make_synthetic_dataset
from .transforms import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    center_crop,
    clip_indices,
    finish_clips,
    normalize_clips,
    normalize_video,
    pack_pathways,
    random_clip_indices,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    segment_indices,
    spatial_crop,
    uniform_clip_indices,
)

if TYPE_CHECKING:
    from .datamodule import VideoDataModule


def __getattr__(name: str) -> Any:
    if name == "VideoDataModule":
        from .datamodule import VideoDataModule

        return VideoDataModule
    if name == "make_synthetic_main":  # the command line sits above the data layer
        from ..cli.make_synthetic import make_synthetic_main

        return make_synthetic_main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VideoDataModule",
    "VIDEO_EXTENSIONS",
    "CharadesDataset",
    "CsvVideoDataset",
    "DatasetFormat",
    "FolderVideoDataset",
    "Split",
    "SplitFileDataset",
    "SSv2Dataset",
    "VideoClipDataset",
    "VideoRecord",
    "RecordIndex",
    "DATASET_FORMATS",
    "build_dataset",
    "dataset_format",
    "DEFAULT_DECODER",
    "DecordDecoder",
    "DecoderUnavailableError",
    "PyAVDecoder",
    "TorchCodecDecoder",
    "VideoDecodeError",
    "VideoDecoder",
    "VideoInfo",
    "available_decoders",
    "decoder_names",
    "get_decoder",
    "resized_size",
    "SYNTHETIC_CLASS_NAMES",
    "is_synthetic_dataset",
    "make_synthetic_dataset",
    "make_synthetic_main",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "center_crop",
    "clip_indices",
    "finish_clips",
    "normalize_clips",
    "normalize_video",
    "pack_pathways",
    "random_clip_indices",
    "random_crop",
    "random_horizontal_flip",
    "random_short_side",
    "segment_indices",
    "spatial_crop",
    "uniform_clip_indices",
]
