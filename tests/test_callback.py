"""MultigridCallback on one device: shapes, batch sizes, LR, BN splits, validation, checkpoints."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lightning_multigrid.batchnorm.split import SplitBatchNorm3d
from lightning_multigrid.callback.hooks import MultigridCallback
from tests.toy import TinyNet, ToyModule

STEPS = [0, 2, 4]  # baseline: 5 epochs -> several long-cycle stages


def trainer(callback, max_epochs=5, **kw):
    kw.setdefault("enable_checkpointing", False)
    kw.setdefault("logger", False)
    return pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback, *kw.pop("callbacks", [])], num_sanity_val_steps=0, **kw,
    )


def make_callback(**kw):
    kw.setdefault("bn_base_size", 2)
    kw.setdefault("precise_bn_batches", 2)
    kw.setdefault("lr_scaling", "linear")  # the spec's LR (the default at S0=64 is sqrt)
    return MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=STEPS, **kw)


# The toy recipe (T0=8, S0=64, B0=2, steps [0,2,4], 5 baseline epochs) by hand from the spec:
# stages [0,2) (b8,T2,S45) [2,3) (b2,T4,S64) [3,5) (b8,T2,S45) [5,6) (b4,T4,S45) [6,7) (b1,T8,S64)
# [7,8) fine-tune (b1,T8,S64); relative LR per epoch 8, 8, 2, 0.8, 0.8, 0.4, 0.1, 0.01 (the
# fine-tuning phase [7,8) has an empty first half).
TOY_EPOCHS = [(8, 2, 45), (8, 2, 45), (2, 4, 64), (8, 2, 45), (8, 2, 45), (4, 4, 45), (1, 8, 64), (1, 8, 64)]
TOY_LR = [8, 8, 2, 0.8, 0.8, 0.4, 0.1, 0.01]


def test_shapes_batches_lr_and_bn_follow_the_schedule():
    pl.seed_everything(0)
    module = ToyModule(lr=0.05, dataset_size=48, batch_size=2)
    bn_params = {id(p) for p in module.net.bn.parameters()}
    n_params = len(list(module.parameters()))
    cb = make_callback()
    t = trainer(cb)
    t.fit(module)
    assert cb.schedule.max_epochs == 8
    assert t.max_epochs == 5  # the Trainer's setting is restored at teardown (a second fit works)
    records = module.records
    assert sorted({r["epoch"] for r in records}) == list(range(8))
    for epoch, (b, t_base, s_base) in enumerate(TOY_EPOCHS):
        rows = [r for r in records if r["epoch"] == epoch]
        # Short cycle: crops round(64/2)=32 and round(64/sqrt2)=45, then the base crop; batch
        # multipliers round((S/(f*64))**2) of the per-device base batch 2*b.
        crops = [32, 45, s_base]
        sizes = [2 * b * round((s_base / 32) ** 2), 2 * b * round((s_base / (64 / math.sqrt(2))) ** 2), 2 * b]
        for r in rows:
            slot = r["batch_idx"] % 3
            assert (r["T"], r["S"], r["batch"]) == (t_base, crops[slot], sizes[slot]), (epoch, r)
            assert r["lr"] == pytest.approx(0.05 * TOY_LR[epoch])
            assert r["splits"] == b  # per-device base batch 2*b / bn_base_size 2, whatever the slot
        used = [i for r in rows for i in r["indices"]]
        assert len(used) == len(set(used))  # every index at most once per epoch
    # In place: no new parameters, and plain BN again after fit.
    assert len(list(module.parameters())) == n_params
    assert {id(p) for p in module.net.bn.parameters()} == bn_params
    assert type(module.net.bn) is torch.nn.BatchNorm3d


def test_checkpoint_loads_into_plain_model_strict(tmp_path):
    pl.seed_everything(0)
    module = ToyModule(dataset_size=32)
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    stopper = StopAt(2)
    t = trainer(make_callback(), callbacks=[ckpt_cb, stopper], enable_checkpointing=True)
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
    module = ToyModule(dataset_size=48)
    seen = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((trainer.current_epoch, type(pl_module.net.bn), pl_module.net.bn.num_splits))

    t = trainer(make_callback())
    t.callbacks.append(Probe())
    t.fit(module)
    assert all(cls is SplitBatchNorm3d for _, cls, _ in seen)
    # Split count = per-device base batch 2*b / bn_base_size 2 = b of the epoch's stage (by hand).
    assert {(e, k) for e, _, k in seen} == {(e, b) for e, (b, _, _) in enumerate(TOY_EPOCHS)}


# Baseline [0,4,8] x 12 epochs (T0=8, S0=64): stages [0,3) [3,5) [5,7) | [7,11) [11,13) [13,14)
# [14,15) | fine-tune [15,18); the (1,8,64) stage of LR stage 0 rounds to 0 epochs. Eval epochs by
# the reference rule (period = len//3 + 1 per stage): 0,2 | 3,4 | 5,6 | 8,10 | 11,12 | 13 | 14 | 15,17.
LONG_STEPS = [0, 4, 8]
LONG_EVALS = [0, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 17]


def _validated_epochs(cb, **trainer_kw):
    evaluated, bn_updates = [], []

    class Probe(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            evaluated.append(trainer.current_epoch)

    module = ToyModule(dataset_size=32)
    t = trainer(cb, max_epochs=12, **trainer_kw)
    t.callbacks.append(Probe())
    import lightning_multigrid.batchnorm.precise as precise_bn_module

    original = precise_bn_module.update_bn_stats

    def counting(model, *args, **kwargs):
        bn_updates.append(t.current_epoch)
        return original(model, *args, **kwargs)

    precise_bn_module.update_bn_stats = counting
    try:
        t.fit(module)
    finally:
        precise_bn_module.update_bn_stats = original
    return evaluated, bn_updates


def test_eval_epochs_follow_schedule():
    # A budget large enough for every validation (the allocation itself is tested in test_callback_setup).
    cb = MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=LONG_STEPS, bn_base_size=2, precise_bn_batches=1, precise_bn_budget=1.0)
    evaluated, bn_updates = _validated_epochs(cb)
    assert evaluated == LONG_EVALS
    assert bn_updates == LONG_EVALS  # precise BN only where a validation follows


def test_check_val_every_n_epoch_thins_the_schedule_and_keeps_the_final_epoch():
    # A budget large enough for every validation (the allocation itself is tested in test_callback_setup).
    cb = MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=LONG_STEPS, bn_base_size=2, precise_bn_batches=1, precise_bn_budget=1.0)
    evaluated, bn_updates = _validated_epochs(cb, check_val_every_n_epoch=2)
    # Every 2nd eval epoch, plus the final epoch (17) which is always validated.
    assert evaluated == bn_updates == [2, 4, 6, 10, 12, 14, 17]


def test_cosine_policy_scales_with_batch_factor():
    module = ToyModule(lr=0.1, dataset_size=48)
    cb = make_callback(lr_policy="cosine")
    trainer(cb).fit(module)
    counts = {e: sum(1 for r in module.records if r["epoch"] == e) for e in range(8)}
    for r in module.records:
        # Every batch: base LR x stage batch factor x half-cosine over the 8 multigrid epochs.
        progress = (r["epoch"] + r["batch_idx"] / counts[r["epoch"]]) / 8
        b = TOY_EPOCHS[r["epoch"]][0]
        assert r["lr"] == pytest.approx(0.1 * b * 0.5 * (1 + math.cos(math.pi * progress)))


def test_long_cycle_only_and_short_cycle_only_run():
    for kw, epochs in (({"short_cycle": False}, 8), ({"long_cycle": False}, 7)):
        module = ToyModule(dataset_size=48)
        cb = make_callback(**kw)
        trainer(cb).fit(module)
        # Short cycle only: int(5 * 1.5) = 7 epochs of the base shape and batch.
        assert cb.schedule.max_epochs == epochs == max(r["epoch"] for r in module.records) + 1
        if not kw.get("long_cycle", True):
            assert {(r["T"], r["splits"]) for r in module.records} == {(8, 1)}


# --------------------------------------------------------------------------------------------
# setup-time validation
# --------------------------------------------------------------------------------------------
def test_batch_not_divisible_by_bn_splits_fails_at_setup():
    module = ToyModule(dataset_size=96, batch_size=3)
    with pytest.raises(ValueError, match=r"stage \[6,7\) T=8 S=64 b=1: .*per-device batch 3 is not a multiple of bn_base_size=2"):
        trainer(make_callback()).fit(module)
    assert module.records == []


def test_dataset_without_shape_keys_needs_the_base_shape():
    class Plain(ToyModule):
        def train_dataloader(self):
            ds = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 64, 64), torch.zeros(8, dtype=torch.long))
            return torch.utils.data.DataLoader(ds, batch_size=2)

    # Without keys the clips are resampled on the device (tier 3), which needs the base shape.
    with pytest.raises(ValueError, match="pass `num_frames=` or give the train dataset a `base_shape`"):
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


def test_logged_shapes_are_the_trained_ones_at_every_logging_step(tmp_path):
    """The callback logs only where the logger writes (log_every_n_steps); what it logs there is the
    shape and batch the step trained on (the module's own records are the oracle)."""
    pl.seed_everything(0)
    module = ToyModule(dataset_size=32)
    logger = pl.loggers.CSVLogger(tmp_path, name="run")
    t = trainer(make_callback(), logger=logger, log_every_n_steps=3)
    t.fit(module)
    import csv

    rows = [r for r in csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))) if r.get("multigrid/crop_size")]
    # Lightning writes a step's values when the number of steps done so far, counting it, is a multiple of 3.
    expected = [rec for g, rec in enumerate(module.records) if (g + 1) % 3 == 0]
    assert len(module.records) > 6 and len(rows) == len(expected)
    for row, rec in zip(rows, expected):
        assert (float(row["multigrid/num_frames"]), float(row["multigrid/crop_size"])) == (rec["T"], rec["S"])
        assert float(row["multigrid/batch_size"]) == rec["batch"]


def test_keyless_dataset_whose_clips_differ_from_its_declared_base_shape_is_refused_at_setup():
    from lightning_multigrid.schedule.recipe import ClipShape
    from tests.toy import BASE, ToyClips

    class Declared(ToyClips):  # ignores keys (tier 3); declares 16x112, delivers 8x64 clips
        accepts_clip_keys = False

        def __getitem__(self, index):
            return super().__getitem__((index, BASE))

    class Mismatched(ToyModule):
        def train_dataloader(self):
            dataset = Declared(48, ClipShape(16, 112, (1, 1), (128, 160)))
            return torch.utils.data.DataLoader(dataset, batch_size=2)

    module = Mismatched(dataset_size=48)
    with pytest.raises(ValueError, match=r"declared base shape T=16, crop 112x112, but its first clip is T=8, 64x64"):
        trainer(make_callback()).fit(module)
    assert module.records == []
