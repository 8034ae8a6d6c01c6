"""Video data pipeline: decoders, clip datasets honouring ``(index, shape)`` keys, transforms,
a synthetic dataset generator and a LightningDataModule.

Modules: :mod:`.clip_dataset` (:class:`VideoClipDataset`, the base every format extends),
:mod:`.datasets` (the annotation formats, :func:`build_dataset`, and the base names again),
:mod:`.decoders` (the backends; their shared base and interface in :mod:`.decoder_base`),
:mod:`.frames` (frame folders), :mod:`.transforms`, :mod:`.failures` (unreadable videos),
:mod:`.synthetic` (the generator; its ``make-synthetic`` command in :mod:`.synthetic_cli`),
:mod:`.prepare` (conversion to frame folders) and :mod:`.datamodule`.

``VideoDataModule`` is imported on first use, so that dataset-only users (and spawned loader
workers) do not pay for importing Lightning.
"""

from typing import TYPE_CHECKING, Any

from ..cli.make_synthetic import make_synthetic_main
from .datasets import (
    DATASET_FORMATS,
    VIDEO_EXTENSIONS,
    CharadesDataset,
    CsvVideoDataset,
    DatasetFormat,
    FolderVideoDataset,
    Split,
    SplitFileDataset,
    SSv2Dataset,
    VideoClipDataset,
    VideoRecord,
    build_dataset,
    dataset_format,
)
from .decoders import (
    DEFAULT_DECODER,
    DecoderUnavailableError,
    DecordDecoder,
    PyAVDecoder,
    TorchCodecDecoder,
    VideoDecodeError,
    VideoDecoder,
    VideoInfo,
    available_decoders,
    decoder_names,
    get_decoder,
    resized_size,
)
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
