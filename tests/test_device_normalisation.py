"""uint8 batches: workers deliver raw clips, the training device finishes them (float, normalised, packed).

The expectation is computed by hand, ``(x / 255 - mean) / std`` per channel in float64, from the raw
``uint8`` clip; it is never taken from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import default_collate

from lightning_multigrid.callback.hooks import MultigridCallback
from lightning_multigrid.data import VideoDataModule
from lightning_multigrid.models import VideoClassifier

pytestmark = pytest.mark.usefixtures("single_torch_thread")

MEAN, STD = (0.40, 0.50, 0.60), (0.20, 0.25, 0.30)  # not the defaults: the module's own must be used
CPU = torch.device("cpu")


def _by_hand(raw: torch.Tensor) -> torch.Tensor:
    """``(..., C, T, H, W)`` uint8 -> float32 ``(x / 255 - mean) / std``, computed in float64."""
    shape = (3, 1, 1, 1)
    mean = torch.tensor(MEAN, dtype=torch.float64).view(shape)
    std = torch.tensor(STD, dtype=torch.float64).view(shape)
    return ((raw.to(torch.float64) / 255.0 - mean) / std).to(torch.float32)


def _module(root: Path, **options) -> VideoDataModule:  # noqa: ANN003
    settings = {"num_frames": 8, "crop_size": 42, "sampling_rate": 4, "batch_size": 2, "num_workers": 0}
    return VideoDataModule(root=str(root), mean=MEAN, std=STD, **{**settings, **options})


def test_uint8_batches_become_the_normalised_input_on_the_device(synthetic_root: Path) -> None:
    dm = _module(synthetic_root)
    dm.setup("fit")
    raw = next(iter(dm.val_dataloader()))
    assert raw["video"].dtype == torch.uint8 and raw["video"].shape == (2, 3, 8, 42, 42)
    moved = dm.transfer_batch_to_device(raw, CPU, 0)
    assert moved["video"].dtype == torch.float32
    torch.testing.assert_close(moved["video"], _by_hand(raw["video"]))
    assert torch.equal(moved["label"], raw["label"])
    # A direct dataset user: normalize=True gives the same float clip, computed in the worker.
    eager = type(dm.val_dataset)(dm.root, "val.csv", dm.base_shape, "val", mean=MEAN, std=STD, normalize=True)
    torch.testing.assert_close(eager[0]["video"], moved["video"][0])
    # ... and so does finish() applied by hand after moving a raw batch.
    torch.testing.assert_close(dm.val_dataset.finish(raw["video"]), moved["video"])


def test_slowfast_pathways_are_packed_on_the_device(synthetic_root: Path) -> None:
    dm = _module(synthetic_root, slowfast_alpha=4)
    dm.setup("fit")
    raw = default_collate([dm.val_dataset[0], dm.val_dataset[1]])
    assert raw["video"].dtype == torch.uint8 and raw["video"].shape == (2, 3, 8, 42, 42)
    slow, fast = dm.transfer_batch_to_device(raw, CPU, 0)["video"]
    expected = _by_hand(raw["video"])
    torch.testing.assert_close(fast, expected)
    # PySlowFast's slow pathway: frames linspace(0, 7, 2) = [0, 7] of the fast one.
    torch.testing.assert_close(slow, expected[:, :, [0, 7]])


def test_the_classifier_refuses_raw_clips() -> None:
    module = VideoClassifier("c2d_tiny", num_classes=4)
    with pytest.raises(TypeError, match=r"uint8 clips.*dataset.finish"):
        module(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))


@pytest.mark.slow
def test_training_precise_bn_and_the_setup_probe_see_normalised_clips(synthetic_root: Path, tmp_path: Path) -> None:
    """Every forward of a multigrid fit (training, the shape probe, precise BN, validation) gets
    float clips in the normalised range; a raw clip would have made the classifier raise."""
    pl.seed_everything(0, workers=True)
    dm = _module(synthetic_root, num_frames=4, crop_size=64, sampling_rate=2, jitter_scales=(64, 64))
    module = VideoClassifier("c2d_tiny", num_classes=4)
    seen: list[tuple[bool, torch.dtype, float, float]] = []

    def record(net: torch.nn.Module, args: tuple) -> None:
        video = args[0][-1] if isinstance(args[0], (list, tuple)) else args[0]
        seen.append((net.training, video.dtype, float(video.min()), float(video.max())))

    module.model.register_forward_pre_hook(record)
    callback = MultigridCallback(
        steps=[0, 1], bn_base_size=2, precise_bn_batches=2, short_cycle=False, long_cycle_factors=[(0.5, 1.0), (1.0, 1.0)], seed=0, log_schedule=False
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[callback], default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    low = min((0 - m) / s for m, s in zip(MEAN, STD)) - 1e-5
    high = max((1 - m) / s for m, s in zip(MEAN, STD)) + 1e-5
    assert all(dtype == torch.float32 and low <= lo and hi <= high for _, dtype, lo, hi in seen)
    # Training forwards, plus the eval-mode probe/validation ones, plus precise BN's (train mode,
    # outside training steps): more forwards than training iterations in both modes.
    assert sum(training for training, *_ in seen) > trainer.global_step
    assert any(not training for training, *_ in seen)
