"""A multi-view test over a list with undecodable videos: each good video evaluated once, the bad ones reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_multigrid.data import VideoClipDataset, VideoRecord
from lightning_multigrid.models import VideoClassifier
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_multi_view_test_reports_undecodable_videos_and_evaluates_the_rest_once(
    synthetic_root: Path, broken_videos: dict[str, Path], tmp_path: Path
) -> None:
    good = [VideoRecord(str(p), k % 4) for k, p in enumerate(sorted((synthetic_root / "videos").rglob("*.mp4")))]
    records = good[:6]
    records.insert(0, VideoRecord(str(broken_videos["text"]), 1))  # first: its views fail back to back
    records.insert(4, VideoRecord(str(broken_videos["empty"]), 2))
    dataset = VideoClipDataset(
        records, ClipShape(4, 32, (2, 2), (32, 32)), "test", test_num_clips=2, test_num_crops=3, max_failure_rate=0.3,
        normalize=True,  # a plain DataLoader into the model: the worker finishes the clips
    )
    torch.manual_seed(0)
    module = VideoClassifier("c2d_tiny", num_classes=4)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    with pytest.warns(UserWarning, match=r"2 video\(s\) could not be decoded.*broken"):
        trainer.test(module, DataLoader(dataset, batch_size=4))
    assert module.test_failed_videos == [records[0].path, records[4].path]  # paths, not dataset indices
    ids, scores, labels = module.test_video_predictions
    assert ids.tolist() == [1, 2, 3, 5, 6, 7]  # every other video, once
    assert labels.tolist() == [records[i].label for i in ids.tolist()]
    assert float(trainer.callback_metrics["test/failed_videos"]) == 2.0
    assert sorted(dataset.skipped_videos.entries()) == sorted([str(broken_videos["text"]), str(broken_videos["empty"])])


@pytest.mark.slow
def test_loader_workers_share_one_record_of_unreadable_videos(
    synthetic_root: Path, broken_videos: dict[str, Path], tmp_path: Path
) -> None:
    good = [VideoRecord(str(p), 0) for p in sorted((synthetic_root / "videos").rglob("*.mp4"))][:4]
    bad = [VideoRecord(str(broken_videos[name]), 0) for name in ("text", "empty")]
    records = [bad[0], *good[:2], bad[1], *good[2:]]
    dataset = VideoClipDataset(
        records, ClipShape(4, 32, (2, 2), (32, 32)), "test", test_num_clips=2, max_failure_rate=0.4,
        skipped_dir=tmp_path / "skipped",
    )
    for _epoch in range(2):  # fresh (non-persistent) workers each epoch
        batches = list(DataLoader(dataset, batch_size=3, num_workers=2))
        failed = torch.cat([b["video_index"][b["failed"]] for b in batches]).tolist()
        assert sorted(failed) == [0, 0, 3, 3]
        assert torch.cat([b["video_index"] for b in batches]).tolist() == [v for v in range(6) for _ in range(2)]
    # Both workers wrote to the parent's record: two distinct videos, however often they were read.
    assert sorted(dataset.skipped_videos.entries()) == sorted(r.path for r in bad)


def test_datamodule_records_and_reports_skipped_videos_beside_the_run(synthetic_root: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from lightning_multigrid.data import VideoDataModule

    # A copy of the synthetic set whose first test video is unreadable.
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    first = (root / "test.csv").read_text().splitlines()[0].rsplit(" ", 1)[0]
    (root / first).write_text("not a video")
    data = VideoDataModule(root=str(root), format="csv", num_frames=4, crop_size=32, sampling_rate=2,
                           jitter_scales=(32, 40), batch_size=2, num_workers=0, test_num_clips=1, test_num_crops=1)
    module = VideoClassifier("c2d_tiny", num_classes=4)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path / "run")
    with pytest.warns(UserWarning, match="could not be decoded"):
        trainer.test(module, datamodule=data)
    run_dir = data.skipped_videos_dir
    report = json.loads((run_dir / "skipped_videos.json").read_text())
    assert [list(v) for v in report.values()] == [[str(root / first)]]
    # The record is the run's, shared by every worker and rank: it lives under the run directory.
    assert run_dir.parent == tmp_path / "run" / "skipped_videos"
    assert data.datasets["test"].skipped_videos.directory.parent == run_dir
    assert module.test_failed_videos == [str(root / first)]


def _broken_copy(synthetic_root: Path, root: Path) -> str:
    """A copy of the synthetic set at ``root`` whose first training video is not a video."""
    import shutil

    shutil.copytree(synthetic_root, root)
    first = (root / "train.csv").read_text().splitlines()[0].rsplit(" ", 1)[0]
    (root / first).write_text("not a video")
    return str(root / first)


def test_failure_records_belong_to_one_run_and_one_dataset(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Dataset A with a broken file, then a clean dataset B, from the same working directory: B
    reports nothing and A's record does not count towards B's max_failure_rate."""
    import logging

    from lightning_multigrid.data import VideoDataModule

    monkeypatch.chdir(tmp_path)  # the default_root_dir of both runs, as for a user who runs twice
    broken = _broken_copy(synthetic_root, tmp_path / "dsA")
    options = dict(format="csv", num_frames=4, crop_size=32, sampling_rate=2, jitter_scales=(32, 40),
                   batch_size=2, num_workers=0, val_split=None, max_failure_rate=0.0)

    def fit(root: str) -> VideoDataModule:
        data = VideoDataModule(root=root, **options)
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, max_steps=1)
        data.trainer = trainer
        data.setup("fit")
        return data

    data_a = fit(str(tmp_path / "dsA"))
    index = next(i for i, r in enumerate(data_a.train_dataset.records) if r.path == broken)
    data_a.train_dataset.min_failures = 2  # one failure is tolerated: A records it and goes on
    data_a.train_dataset[index]
    assert list(data_a.train_dataset.skipped_videos.entries()) == [broken]

    data_b = fit(str(synthetic_root))  # clean
    assert len(data_b.train_dataset.skipped_videos) == 0
    assert data_b.skipped_videos_dir != data_a.skipped_videos_dir
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert data_b.report_skipped_videos("epoch 0") is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # With max_failure_rate=0 and min_failures=1, a single inherited entry would stop B.
    data_b.train_dataset.min_failures = 1
    data_b.train_dataset.skipped_videos.check(data_b.train_dataset.num_videos, 0.0, 1, "dsB", "none")


def test_each_skipped_video_is_announced_once_with_its_split(
    synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from lightning_multigrid.data import VideoDataModule

    broken = _broken_copy(synthetic_root, tmp_path / "data")
    data = VideoDataModule(root=str(tmp_path / "data"), format="csv", num_frames=4, crop_size=32, sampling_rate=2,
                           jitter_scales=(32, 40), batch_size=2, num_workers=0, max_failure_rate=0.5)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path / "run")
    data.trainer = trainer
    data.setup("fit")
    index = next(i for i, r in enumerate(data.train_dataset.records) if r.path == broken)
    with caplog.at_level(logging.WARNING):
        data.train_dataset[index]
        for epoch in range(3):
            data.report_skipped_videos(f"epoch {epoch}")
    lines = [r.getMessage() for r in caplog.records]
    assert sum(broken in line for line in lines) == 1  # the path once, when it failed, with its split
    assert "(train split): unreadable video" in next(line for line in lines if broken in line)
    summaries = [line for line in lines if "new unreadable" in line]
    source = data.train_dataset.source
    assert summaries == [f"[epoch 0] train split ({source}): 1 new unreadable video(s), 1 in all "
                         f"(listed in {data.skipped_videos_dir / 'skipped_videos.json'})"]
