"""MultigridCallback on one device: shapes, batch sizes, LR, BN splits, validation, checkpoints."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_multigrid.batchnorm import SplitBatchNorm3d
from lightning_multigrid.callback import MultigridCallback
from lightning_multigrid.sampler import epoch_clip_shapes
from tests.toy import TinyNet, ToyModule

STEPS = [0, 2, 4]  # baseline: 5 epochs -> several long-cycle stages


def trainer(callback, max_epochs=5, **kw):
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback], num_sanity_val_steps=0, **kw,
    )


def make_callback(**kw):
    kw.setdefault("bn_base_size", 2)
    kw.setdefault("precise_bn_batches", 2)
    return MultigridCallback(steps=STEPS, **kw)


def test_shapes_batches_lr_and_bn_follow_the_schedule():
    pl.seed_everything(0)
    module = ToyModule(lr=0.05, dataset_size=48, batch_size=2)
    bn_params = {id(p) for p in module.net.bn.parameters()}
    n_params = len(list(module.parameters()))
    cb = make_callback()
    t = trainer(cb)
    t.fit(module)
    s = cb.schedule
    assert s is not None and t.max_epochs == s.max_epochs and s.max_epochs > 5
    records = module.records
    assert {r["epoch"] for r in records} == set(range(s.max_epochs))
    for epoch in range(s.max_epochs):
        rows = [r for r in records if r["epoch"] == epoch]
        shapes = epoch_clip_shapes(s, epoch)
        sizes = s.epoch_batch_sizes(epoch)
        stage = s.stage_at(epoch)
        for r in rows:
            slot = r["batch_idx"] % len(shapes)
            assert (r["T"], r["S"], r["batch"]) == (shapes[slot].num_frames, shapes[slot].crop_size, sizes[slot])
            frac = epoch + r["batch_idx"] / len(rows)
            assert r["lr"] == pytest.approx(0.05 * s.lr_factor(frac))
            assert r["splits"] == max(1, stage.batch_factor * 2 // 2)
        used = [i for r in rows for i in r["indices"]]
        assert len(used) == len(set(used))  # every index at most once per epoch
    # Several stages seen, and BN split counts really changed.
    assert len({r["splits"] for r in records}) > 1
    assert len({(r["T"], r["S"]) for r in records}) >= 4
    # In place: no new parameters, and plain BN again after fit.
    assert len(list(module.parameters())) == n_params
    assert {id(p) for p in module.net.bn.parameters()} == bn_params
    assert type(module.net.bn) is torch.nn.BatchNorm3d


def test_checkpoint_loads_into_plain_model_strict(tmp_path):
    pl.seed_everything(0)
    module = ToyModule(dataset_size=32)
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    stopper = StopAt(2)
    t = trainer(make_callback(), enable_checkpointing=True)
    t.callbacks.extend([ckpt_cb, stopper])
    t.fit(module)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    plain = TinyNet()
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    plain.load_state_dict(state, strict=True)
    assert "MultigridCallback" in "".join(ckpt["callbacks"])


class StopAt(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epoch:
            trainer.should_stop = True


def test_split_bn_is_in_place_during_training():
    module = ToyModule(dataset_size=32)
    seen = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((type(pl_module.net.bn), pl_module.net.bn.num_splits, batch["video"].shape[0]))

    t = trainer(make_callback())
    t.callbacks.append(Probe())
    t.fit(module)
    assert all(cls is SplitBatchNorm3d for cls, _, _ in seen)
    # Split count = per-device base batch / bn_base_size, whatever the short-cycle slot's size.
    assert {k for _, k, _ in seen} >= {1, 2}


def test_eval_epochs_follow_schedule():
    module = ToyModule(dataset_size=48)
    evaluated = []

    class Probe(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            evaluated.append(trainer.current_epoch)

    cb = make_callback()
    t = trainer(cb)
    t.callbacks.append(Probe())
    t.fit(module)
    assert evaluated == cb.schedule.eval_epochs()


def test_cosine_policy_scales_with_batch_factor():
    module = ToyModule(lr=0.1, dataset_size=48)
    cb = make_callback(lr_policy="cosine")
    trainer(cb).fit(module)
    first = module.records[0]
    assert first["lr"] == pytest.approx(0.1 * cb.schedule.stage_at(0).batch_factor)


def test_long_cycle_only_and_short_cycle_only_run():
    for kw in ({"short_cycle": False}, {"long_cycle": False}):
        module = ToyModule(dataset_size=48)
        cb = make_callback(**kw)
        trainer(cb).fit(module)
        assert module.records and cb.schedule.max_epochs == max(r["epoch"] for r in module.records) + 1


# --------------------------------------------------------------------------------------------
# setup-time validation
# --------------------------------------------------------------------------------------------
def test_batch_not_divisible_by_bn_splits_fails_at_setup():
    module = ToyModule(dataset_size=96, batch_size=3)
    with pytest.raises(ValueError, match=r"stage \[6,7\) T=8 S=64 b=1: .*per-device batch 3 is not a multiple of bn_base_size=2"):
        trainer(make_callback()).fit(module)
    assert module.records == []


def test_dataset_without_shape_keys_is_refused():
    class Plain(ToyModule):
        def train_dataloader(self):
            ds = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 64, 64), torch.zeros(8, dtype=torch.long))
            return torch.utils.data.DataLoader(ds, batch_size=2)

    with pytest.raises(TypeError, match="does not accept \\(index, shape\\) keys"):
        trainer(make_callback()).fit(Plain())


def test_lr_scheduler_conflict_is_refused():
    class WithScheduler(ToyModule):
        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

    with pytest.raises(ValueError, match="StepLR"):
        trainer(make_callback()).fit(WithScheduler())


def test_slowfast_alpha_checked_at_setup():
    from tests.toy import BASE, ToyClips

    class Alpha(ToyModule):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(ToyClips(48, BASE, slowfast_alpha=4), batch_size=2)

    # T0=8: the coarsest grid has T=2, not divisible by alpha=4.
    with pytest.raises(ValueError, match="T=2 is not divisible by the dataset's SlowFast alpha=4"):
        trainer(make_callback()).fit(Alpha())


def test_model_requirements_checked_at_setup():
    from lightning_multigrid.models import model_requirements

    module = ToyModule(dataset_size=16)
    module.net.multigrid_requirements = model_requirements("i3d_r50")
    with pytest.raises(ValueError, match=r"multigrid stage \[0,\d+\) T=1"):
        # T0=4: the coarsest grid has T=1, below I3D's minimum.
        trainer(make_callback(num_frames=4)).fit(module)


def test_dataset_smaller_than_a_batch_fails_at_setup():
    with pytest.raises(ValueError, match=r"stage \[0,\d+\) .*needs 32 clips per device .* only 16"):
        trainer(make_callback()).fit(ToyModule(dataset_size=16))


def test_baseline_max_epochs_required():
    with pytest.raises(ValueError, match="max_epochs"):
        pl.Trainer(max_epochs=-1, accelerator="cpu", logger=False, callbacks=[make_callback()],
                   enable_progress_bar=False).fit(ToyModule())
