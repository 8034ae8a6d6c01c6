"""Datasets that know nothing of multigrid train under the callback in each tier (issue 14)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_multigrid.adapters import ShapedTransformDataset, resample_clips
from lightning_multigrid.callback.hooks import MultigridCallback
from lightning_multigrid.schedule.recipe import ClipShape
from tests.test_callback import TOY_EPOCHS
from tests.toy import ToyModule

BASE = ClipShape(8, 64, (1, 1), (73, 91))


class UserClips(Dataset):
    """A user's dataset: fixed 8-frame 64x64 clips, optionally passed through ``self.transform``."""

    def __init__(self, n: int = 48) -> None:
        self.n = n
        self.transform = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(int(index))
        video = torch.rand(3, 8, 64, 64, generator=g)
        if self.transform is not None:
            video = self.transform(video)
        return {"video": video, "label": torch.tensor(index % 2), "index": index}


def _check_schedule_followed(records):
    # Shapes and batch sizes of the toy recipe, by hand (see tests/test_callback.py).
    for epoch, (b, t, s_base) in enumerate(TOY_EPOCHS):
        rows = [r for r in records if r["epoch"] == epoch]
        assert rows
        crops = [32, 45, s_base]
        sizes = [2 * b * round((s_base / 32) ** 2), 2 * b * round((s_base / (64 / 2**0.5)) ** 2), 2 * b]
        for r in rows:
            slot = r["batch_idx"] % 3
            assert (r["T"], r["S"], r["batch"]) == (t, crops[slot], sizes[slot])


def _fit(module, **kw):
    cb = MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1, **kw)
    pl.Trainer(max_epochs=5, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, num_sanity_val_steps=0, callbacks=[cb]).fit(module)
    return cb


def test_tier2_transform_dataset_trains_the_schedule():
    def make_transform(shape: ClipShape):
        def transform(video):
            index = torch.linspace(0, video.shape[1] - 1, shape.num_frames).long()
            video = video[:, index]
            return torch.nn.functional.interpolate(video, size=(shape.crop_size, shape.crop_size))
        return transform

    class Tier2(ToyModule):
        def train_dataloader(self):
            return DataLoader(ShapedTransformDataset(UserClips(48), make_transform, BASE), batch_size=2)

    module = Tier2(dataset_size=48)
    _fit(module)
    _check_schedule_followed(module.records)


def test_tier3_unchanged_dataset_is_resampled_on_the_device():
    class Tier3(ToyModule):
        def train_dataloader(self):
            return DataLoader(UserClips(48), batch_size=2)

    module = Tier3(dataset_size=48)
    with pytest.raises(ValueError, match="pass `num_frames=`"):
        _fit(Tier3(dataset_size=48))
    cb = _fit(module, num_frames=8, crop_size=64)
    _check_schedule_followed(module.records)
    assert cb.schedule.max_epochs == 8


def test_resample_clips_follows_the_stride_rule_and_keeps_the_field_of_view():
    # Frame f of every clip has value f, so the chosen frames can be read back after resizing.
    video = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 3, 8, 64, 64).contiguous()
    g = torch.Generator().manual_seed(0)
    # T=2 at the top stride 4 (r0=1): the window is the whole 8-frame clip -> linspace(0, 7, 2) = [0, 7].
    out = resample_clips(video, BASE, ClipShape(2, 32, (4, 4)), g)
    assert out.shape == (2, 3, 2, 32, 32)
    assert out[:, :, :, 5, 7].unique(dim=0).tolist() == [[[0.0, 7.0]] * 3]
    # Stride 1: a window of T*1 = 4 frames at a random start, consecutive frames.
    out = resample_clips(video, BASE, ClipShape(4, 64, (1, 1)), g)
    for clip in out[:, 0, :, 0, 0].tolist():
        assert clip == [clip[0] + i for i in range(4)] and 0 <= clip[0] <= 4
