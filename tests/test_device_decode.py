"""decode_on="device": workers read encoded frames, the training process decodes the batch. On the CPU
the result must be the worker path's pixels (the oracle: the worker path, itself tested against
Pillow in test_frame_store.py), for training crops (flips included), test views, and through a
multigrid fit with precise BN, validation and the setup probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_multigrid.callback import MultigridCallback
from lightning_multigrid.data import VideoDataModule
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.data.device_decode import (
    EncodedBatch,
    EncodedClip,
    collate_clips,
    decode_batch,
)
from lightning_multigrid.data.prepare import PrepareOptions, prepare_dataset
from lightning_multigrid.models import VideoClassifier
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=["folders", "packed"])
def store(request: pytest.FixtureRequest, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"store_{request.param}")
    prepare_dataset(synthetic_root, out, PrepareOptions(layout=request.param, levels=["half"], progress=False, workers=1))
    return out


def _pairs(store: Path, split: str, shape: ClipShape, **options) -> tuple[CsvVideoDataset, CsvVideoDataset]:  # noqa: ANN003
    make = lambda place: CsvVideoDataset(store, f"{split}.csv", shape, split, decode_on=place, **options)  # noqa: E731
    return make("workers"), make("device")


def test_training_clips_equal_the_worker_path(store: Path) -> None:
    shape = ClipShape(4, 20, (1, 3), (20, 48))  # short sides from the half level (24) and the full one (48)
    workers, device = _pairs(store, "train", shape, random_flip=True)
    items = []
    for i in range(len(workers)):
        torch.manual_seed(i)
        expected = workers[ClipKey(i, shape)]
        torch.manual_seed(i)
        items.append(device[ClipKey(i, shape)])
        assert isinstance(items[-1]["video"], EncodedClip) and items[-1]["index"] == expected["index"]
        video, failed = decode_batch(EncodedBatch([items[-1]["video"]]), CPU)
        assert not failed and torch.equal(video[0], expected["video"]), i  # same library: equal
    assert {item["video"].flip for item in items} == {True, False}  # both flip draws were exercised
    batch = collate_clips(items)
    assert isinstance(batch["video"], EncodedBatch) and batch["label"].shape == (len(items),)
    assert decode_batch(batch["video"], CPU)[0].shape == (len(items), 3, 4, 20, 20)


def test_test_views_equal_the_worker_path(store: Path) -> None:
    shape = ClipShape(4, 40, (2, 2), (40, 40))
    workers, device = _pairs(store, "test", shape, test_num_clips=2, test_num_crops=3)
    batch = collate_clips([device[i] for i in range(6)])
    video, failed = decode_batch(batch["video"], CPU)
    assert not failed
    for i in range(6):
        assert torch.equal(video[i], workers[i]["video"])


def test_undecodable_frames_become_failed_zeros(store: Path) -> None:
    shape = ClipShape(4, 40, (2, 2), (40, 40))
    _, device = _pairs(store, "val", shape)
    good, bad = device[0]["video"], device[1]["video"]
    bad.frames = [b"\xff\xd8 not a jpeg" for _ in bad.frames]
    video, failed = decode_batch(EncodedBatch([good, bad]), CPU)
    assert failed == [1] and not video[1].any() and video[0].any()


def test_video_files_are_refused_at_setup(synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match=r"decode_on='device' needs frame folders.*\.mp4 is a video file"):
        CsvVideoDataset(synthetic_root, "train.csv", ClipShape(4, 32), "train", decode_on="device")
    with pytest.raises(ValueError, match="decode_on must be"):
        VideoDataModule(root=str(synthetic_root), decode_on="gpu")


def test_multigrid_fit_decodes_on_the_device(store: Path, tmp_path: Path) -> None:
    """Training, the shape probe, precise BN and validation all receive decoded, normalised clips of
    the grid's shape; the evaluation equals the worker path's (same pixels, same model)."""
    settings = {"root": str(store), "num_frames": 4, "crop_size": 32, "sampling_rate": 2, "jitter_scales": (32, 40),
                "batch_size": 2, "num_workers": 0}
    seen: list[tuple[int, ...]] = []
    results = {}
    for place in ("workers", "device"):
        pl.seed_everything(0, workers=True)
        dm = VideoDataModule(decode_on=place, **settings)
        module = VideoClassifier("c2d_tiny", num_classes=4)
        if place == "device":
            module.model.register_forward_pre_hook(lambda net, args: seen.append(tuple(args[0].shape)))
        callback = MultigridCallback(steps=[0, 1], bn_base_size=2, precise_bn_batches=2, short_cycle=False,
                                     long_cycle_factors=[(0.5, 1.0), (1.0, 1.0)], seed=0, log_schedule=False)
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             callbacks=[callback], default_root_dir=tmp_path / place)
        trainer.fit(module, datamodule=dm)
        results[place] = (trainer.global_step, trainer.validate(module, datamodule=dm, verbose=False))
    assert results["device"][0] == results["workers"][0] > 0
    assert results["device"][1][0] == pytest.approx(results["workers"][1][0])  # same clips, same training
    assert {s[2] for s in seen} == {2, 4} and {s[3] for s in seen} == {32}  # T of both long-cycle stages
