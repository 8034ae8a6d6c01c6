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
    with pytest.warns(UserWarning, match=r"2 video\(s\) could not be decoded.*\[0, 4\]"):
        trainer.test(module, DataLoader(dataset, batch_size=4))
    assert module.test_failed_videos == [0, 4]
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
    report = json.loads((tmp_path / "run" / "skipped_videos" / "skipped_videos.json").read_text())
    assert [list(v) for v in report.values()] == [[str(root / first)]]
    # The record is the run's, shared by every worker and rank: it lives under the run directory.
    assert data.datasets["test"].skipped_videos.directory == tmp_path / "run" / "skipped_videos" / "test"
