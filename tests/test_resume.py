"""Crash and resume at any point trains exactly what the uninterrupted run trains (issue 11).

The oracle is an uninterrupted run with the same seed: for checkpoints at a stage boundary, at a
non-boundary epoch and mid-epoch, with precise BN off and on, the resumed run must see the same
batches (indices, shapes, batch sizes), BN split counts and LR per iteration, and end with the same
weights, BN buffers and global step.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_multigrid.callback.hooks import MultigridCallback
from tests.toy import ToyModule

pytestmark = pytest.mark.slow

# Baseline [0,2,4] x 5 epochs -> stages [0,2) [2,3) [3,5) [5,6) [6,7) [7,8) (spec arithmetic).
STAGE_ENDS = [2, 3, 5, 6, 7, 8]


class SimulatedCrash(RuntimeError):
    pass


class Crash(pl.Callback):
    """Raise at the start of the batch after global step ``step`` (its checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise SimulatedCrash(f"crash after step {trainer.global_step}")


def _fit(tmp_path, name, precise_bn, extra=(), ckpt_path=None, every_n_train_steps=None, num_workers=0):
    pl.seed_everything(123)
    module = ToyModule(lr=0.05, dataset_size=96, batch_size=2, num_workers=num_workers)
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path / name, save_top_k=-1, every_n_train_steps=every_n_train_steps,
        filename="{epoch}-{step}", save_on_train_epoch_end=True,
    )
    trainer = pl.Trainer(
        max_epochs=5, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=True,
        callbacks=[MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=precise_bn), ckpt, *extra],
    )
    try:
        trainer.fit(module, ckpt_path=ckpt_path)
    except SimulatedCrash:
        pass
    return module, trainer


@pytest.fixture(scope="module", params=[0, 2], ids=["precise_bn_off", "precise_bn_on"])
def uninterrupted(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    module, trainer = _fit(tmp, "full", request.param)
    return request.param, module, trainer


def _assert_same_tail(full, resumed, first_step):
    want = full.records[first_step:]
    assert len(resumed.records) == len(want)
    for got, exp in zip(resumed.records, want):
        assert got["lr"] == pytest.approx(exp["lr"], rel=1e-12)
        assert {k: v for k, v in got.items() if k != "lr"} == {k: v for k, v in exp.items() if k != "lr"}
    for (name, a), (name_b, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert name == name_b
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("stop_epoch", [1, 3], ids=["stage_boundary", "inside_stage"])
def test_resume_from_end_of_epoch(tmp_path, uninterrupted, stop_epoch):
    precise_bn, full, full_trainer = uninterrupted
    assert [r["epoch"] for r in full.records][-1] == STAGE_ENDS[-1] - 1
    # Epoch 1 is the last epoch of stage [0,2) (the next one has other shapes); epoch 3 is inside [3,5).
    assert (stop_epoch + 1 in STAGE_ENDS) == (stop_epoch == 1)
    steps_before = sum(1 for r in full.records if r["epoch"] <= stop_epoch)
    _fit(tmp_path, "part", precise_bn, extra=[Crash(steps_before)])
    ckpt = next((tmp_path / "part").glob(f"epoch={stop_epoch}-step={steps_before}.ckpt"))
    resumed, trainer = _fit(tmp_path, "resumed", precise_bn, ckpt_path=ckpt)
    assert resumed.records[0]["epoch"] == stop_epoch + 1 and resumed.records[0]["batch_idx"] == 0
    _assert_same_tail(full, resumed, steps_before)
    assert trainer.global_step == full_trainer.global_step == len(full.records)


def test_resume_after_the_last_batch_of_an_epoch(tmp_path, uninterrupted):
    """A step checkpoint after an epoch's last batch: Lightning moves on to the next epoch."""
    precise_bn, full, _ = uninterrupted
    step = sum(1 for r in full.records if r["epoch"] <= 3)
    _fit(tmp_path, "part", precise_bn, extra=[Crash(step)], every_n_train_steps=1)
    ckpt = next((tmp_path / "part").glob(f"epoch=3-step={step}.ckpt"))
    resumed, _ = _fit(tmp_path, "resumed", precise_bn, ckpt_path=ckpt)
    assert (resumed.records[0]["epoch"], resumed.records[0]["batch_idx"]) == (4, 0)
    _assert_same_tail(full, resumed, step)


@pytest.mark.parametrize("num_workers", [0, 2], ids=["in_process", "workers"])
def test_resume_mid_epoch(tmp_path, uninterrupted, num_workers):
    """With workers, batches come from a stream that runs ahead into later epochs: the crashed run's
    stream and the resumed run's new one must still give exactly the uninterrupted run's batches."""
    precise_bn, full, full_trainer = uninterrupted
    # Mid-epoch in a split-BN stage: after batch 1 of epoch 3 (stage [3,5), 8 clips per BN split group).
    position = next(i for i, r in enumerate(full.records) if r["epoch"] == 3 and r["batch_idx"] == 1)
    assert full.records[position]["splits"] == 8
    step = position + 1
    _fit(tmp_path, "part", precise_bn, extra=[Crash(step)], every_n_train_steps=1, num_workers=num_workers)
    ckpt = next((tmp_path / "part").glob(f"epoch=3-step={step}.ckpt"))
    resumed, trainer = _fit(tmp_path, "resumed", precise_bn, ckpt_path=ckpt, num_workers=num_workers)
    assert (resumed.records[0]["epoch"], resumed.records[0]["batch_idx"]) == (3, 2)
    _assert_same_tail(full, resumed, step)
    assert trainer.global_step == full_trainer.global_step
