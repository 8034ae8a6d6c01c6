"""VideoDataModule: setup, loaders with 0 and 2 workers, multi-view test, synthetic generation, CLI typing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser

from lightning_multigrid.data import VideoDataModule
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _module(root: Path, **kwargs) -> VideoDataModule:  # noqa: ANN003
    options = {"num_frames": 8, "crop_size": 42, "sampling_rate": 4, "batch_size": 2, "num_workers": 0}
    options.update(kwargs)
    return VideoDataModule(root=str(root), **options)


def test_flip_default_follows_the_dataset(synthetic_root: Path, tmp_path: Path) -> None:
    assert VideoDataModule(root=str(tmp_path)).random_flip is True  # a plain csv dataset flips
    assert VideoDataModule(root=str(synthetic_root)).random_flip is False  # found its manifest
    assert VideoDataModule(format="ssv2", root=str(tmp_path)).random_flip is False
    assert VideoDataModule(root=str(synthetic_root), random_flip=True).random_flip is True  # explicit wins


def test_setup_and_loaders_without_workers(synthetic_root: Path) -> None:
    dm = _module(synthetic_root, test_num_clips=2, test_num_crops=3)
    with pytest.raises(RuntimeError, match="setup"):
        _ = dm.train_dataset
    dm.setup("fit")
    assert dm.num_classes == 4 and dm.classes == ["move_left", "move_right", "grow", "shrink"]
    assert dm.base_shape == ClipShape(8, 42, (4, 4), (48, 60))  # jitter (round(42*8/7), round(42*10/7))
    assert dm.train_dataset.random_flip is False  # the root holds a generated set: direction is a label
    loader = dm.train_dataloader()
    assert loader.drop_last and loader.batch_size == 2 and len(loader) == 4
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert batch["video"].shape == (2, 3, 8, 42, 42) and batch["label"].shape == (2,)
        assert batch["video"].dtype == torch.uint8
    assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(8))
    val = next(iter(dm.val_dataloader()))
    assert val["video"].shape == (2, 3, 8, 42, 42)
    dm.setup("test")
    test_loader = dm.test_dataloader()
    assert len(test_loader.dataset) == 4 * 6
    views = [b for b in test_loader]
    assert torch.cat([b["video_index"] for b in views]).tolist() == sorted(list(range(4)) * 6)
    assert torch.cat([b["view_index"] for b in views]).tolist() == list(range(6)) * 4


@pytest.mark.slow
def test_loaders_with_two_workers_survive_a_bad_file(
    synthetic_root: Path, broken_videos: dict[str, Path], tmp_path: Path
) -> None:
    lines = (synthetic_root / "train.csv").read_text().splitlines()
    lines.insert(3, f"{broken_videos['text']} 1")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    dm = _module(
        synthetic_root,
        train_split=str(tmp_path / "train.csv"),
        num_workers=2,
        persistent_workers=True,
        prefetch_factor=1,
        slowfast_alpha=4,
        max_failure_rate=0.5,
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 9
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers and loader.prefetch_factor == 1
    torch.manual_seed(0)
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert batch["video"].dtype == torch.uint8  # workers deliver raw clips ...
        slow, fast = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)["video"]  # ... finished here
        assert fast.shape == (2, 3, 8, 42, 42) and slow.shape == (2, 3, 2, 42, 42) and fast.dtype == torch.float32
    assert 3 not in [i for b in batches for i in b["index"].tolist()]  # the bad line was replaced
    # A multigrid-style batch of ClipKeys through the same workers.
    keyed = torch.utils.data.DataLoader(
        dm.train_dataset,
        batch_sampler=[[ClipKey(i, ClipShape(4, 30, (1, 8), (34, 60))) for i in range(4)]],
        **dm.loader_options(),
    )
    slow, fast = dm.finish_batch(next(iter(keyed)))["video"]
    assert fast.shape == (4, 3, 4, 30, 30) and slow.shape == (4, 3, 1, 30, 30)


def test_synthetic_generation_in_prepare_data(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    dm = VideoDataModule(
        root=str(root),
        synthetic=True,
        synthetic_num_classes=2,
        synthetic_videos_per_class=3,
        synthetic_size=(32, 24),
        synthetic_num_frames=8,
        num_frames=4,
        crop_size=21,
        sampling_rate=2,
        batch_size=2,
        num_workers=0,
    )
    assert not root.exists()  # nothing happens before prepare_data
    dm.prepare_data()
    assert json.loads((root / "manifest.json").read_text())["size"] == [32, 24]
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.train_dataset.random_flip is False  # direction-defined classes
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 21, 21)


def test_disabled_splits_and_setup_stages(synthetic_root: Path) -> None:
    dm = _module(synthetic_root, val_split=None, num_classes=4)
    dm.setup("fit")
    assert dm.val_dataloader() == []
    with pytest.raises(RuntimeError, match="val_split is None"):
        _ = dm.val_dataset
    dm.setup("validate")
    with pytest.raises(ValueError, match="unknown stage"):
        dm.setup("training")


def test_folder_format_shares_training_classes(synthetic_root: Path, tmp_path: Path) -> None:
    # val holds only two of the four classes: its labels must still follow the training classes.
    (tmp_path / "val" / "shrink").mkdir(parents=True)
    (tmp_path / "val" / "move_left").mkdir(parents=True)
    for name in ("shrink", "move_left"):
        source = next((synthetic_root / "videos" / name).glob("*.mp4"))
        (tmp_path / "val" / name / source.name).symlink_to(source)
    (tmp_path / "train").symlink_to(synthetic_root / "videos")
    dm = _module(tmp_path, format="folder", train_split="train", val_split="val", test_split=None)
    dm.setup("validate")
    classes = dm.train_dataset.classes
    assert dm.num_classes == 4 and dm.classes == classes
    labels = {Path(r.path).parent.name: r.label for r in dm.val_dataset.records}
    assert labels == {name: classes.index(name) for name in ("shrink", "move_left")}


def test_folder_format_has_its_own_split_defaults(synthetic_root: Path, tmp_path: Path) -> None:
    (tmp_path / "train").symlink_to(synthetic_root / "videos")
    dm = _module(tmp_path, format="folder")  # no split named: the split folders train/, val/, test/
    assert dm.splits == {"train": "train", "val": "val", "test": "test"}
    with pytest.raises(FileNotFoundError, match=r"val.*does not exist.*val_split='\.'.*or None for no val split"):
        dm.setup("fit")
    flat = _module(synthetic_root / "videos", format="folder", train_split=".", val_split=None, test_split=None)
    flat.setup("fit")
    assert flat.train_dataset.num_videos == len(list((synthetic_root / "videos").rglob("*.mp4")))


def test_invalid_arguments_are_named(synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        _module(synthetic_root, format="kinetics")
    with pytest.raises(ValueError, match="jitter_range"):
        _module(synthetic_root, jitter_scales=(30, 60))
    with pytest.raises(ValueError, match="num_frames: SlowFast.*slowfast_alpha=3"):
        _module(synthetic_root, slowfast_alpha=3)
    with pytest.raises(ValueError, match="root"):
        VideoDataModule()
    with pytest.raises(ValueError, match="unknown backend"):
        _module(synthetic_root, decoder="ffmpeg")


def test_missing_videos_reported_at_setup(synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = (synthetic_root / "val.csv").read_text().splitlines() + ["videos/none/absent.mp4 0"]
    (tmp_path / "val.csv").write_text("\n".join(lines) + "\n")
    dm = _module(synthetic_root, val_split=str(tmp_path / "val.csv"))
    with caplog.at_level(logging.WARNING):
        dm.setup("validate")
    assert "1 of 5 listed videos are missing" in caplog.text and "absent.mp4" in caplog.text
    assert len(dm.val_dataset) == 4


def test_init_arguments_are_typed_for_lightning_cli(synthetic_root: Path) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(VideoDataModule, "data")
    config = parser.parse_args(
        ["--data.root", str(synthetic_root), "--data.crop_size", "42", "--data.jitter_scales", "[48, 60]",
         "--data.num_workers", "0", "--data.format", "csv", "--data.slowfast_alpha", "4"]
    )
    dm = VideoDataModule(**config.data.as_dict())
    assert dm.base_shape.jitter_range == (48, 60) and dm.slowfast_alpha == 4
    with pytest.raises(Exception, match="format"):
        parser.parse_args(["--data.format", "kinetics"])
