"""Settings that would silently train something else fail at setup, naming what to change (issue 11)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset, random_split

from lightning_multigrid.callback.hooks import MultigridCallback
from lightning_multigrid.sampling.sampler import MultigridBatchSampler, SeededRandomSampler
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe
from tests.toy import BASE, TinyNet, ToyClips, ToyModule


def _trainer(callback, **kw):
    kw.setdefault("max_epochs", 5)
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                      callbacks=[callback], **kw)


def _callback(**kw):
    kw.setdefault("bn_base_size", 2)
    kw.setdefault("precise_bn_batches", 1)
    # The reference schedule, as a BaseRecipe built with its own defaults gives it.
    return MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, spatial_coarsening="rescale", steps=[0, 2, 4], **kw)


def test_unset_max_epochs_is_refused():
    module = ToyModule(dataset_size=48)
    with pytest.raises(ValueError, match=r"max_epochs=1000.*Lightning's default.*BASELINE"):
        pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[_callback()]).fit(module)
    assert module.records == []


def test_baseline_epochs_argument_sets_the_recipe():
    module = ToyModule(dataset_size=48)
    cb = _callback(baseline_epochs=5)
    pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False, callbacks=[cb], num_sanity_val_steps=0).fit(module)
    assert cb.schedule.recipe.max_epochs == 5 and cb.schedule.max_epochs == 8


def test_max_steps_is_refused():
    with pytest.raises(ValueError, match=r"max_steps=10.*stop training mid-schedule"):
        _trainer(_callback(), max_steps=10).fit(ToyModule(dataset_size=48))


def test_accumulation_must_cover_whole_short_cycles():
    with pytest.raises(ValueError, match=r"accumulate_grad_batches=2.*multiple of the short cycle's 3 slots"):
        _trainer(_callback(), accumulate_grad_batches=2).fit(ToyModule(dataset_size=48))
    module = ToyModule(dataset_size=48)
    _trainer(_callback(), accumulate_grad_batches=3).fit(module)
    assert module.records


def test_lr_is_set_before_any_logger_reads_it():
    seen = []

    class EarlyReader(pl.Callback):  # listed BEFORE the multigrid callback, like LearningRateMonitor
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = ToyModule(lr=0.05, dataset_size=48)
    t = _trainer(_callback(lr_scaling="linear"))  # the spec's rule (the default at S0=64 is sqrt)
    t.callbacks.insert(0, EarlyReader())
    t.fit(module)
    assert seen == pytest.approx([r["lr"] for r in module.records])
    # Epoch 0 of the toy recipe has relative LR 8 (spec arithmetic): not the optimizer's initial 0.05.
    assert seen[0] == pytest.approx(0.4)


def test_seed_survives_lightning_distributed_sampler_injection():
    from torch.utils.data import DistributedSampler

    s = MultigridSchedule(BaseRecipe(steps=[0, 2, 4], max_epochs=5, num_frames=8, crop_size=64, batch_size=4, bn_base_size=2))
    inner = DistributedSampler(range(64), num_replicas=2, rank=0, seed=0)  # what Lightning injects
    MultigridBatchSampler(inner, batch_size=2, schedule=s, seed=17)  # as Lightning re-instantiates it
    assert inner.seed == 17
    reference = DistributedSampler(range(64), num_replicas=2, rank=0, seed=17)
    assert list(inner) == list(reference)


def test_standalone_sampler_follows_the_epoch_lightning_sets_on_its_inner_sampler():
    s = MultigridSchedule(BaseRecipe(steps=[0, 2, 4], max_epochs=5, num_frames=8, crop_size=64, batch_size=2, bn_base_size=2))
    inner = SeededRandomSampler(range(96), seed=0)
    sampler = MultigridBatchSampler(inner, batch_size=2, schedule=s)
    # Lightning calls set_epoch on batch_sampler.sampler only.
    inner.set_epoch(2)  # stage [2,3): T=4, base crop 64 (spec arithmetic)
    assert {k.shape.num_frames for batch in sampler for k in batch} == {4}
    inner.set_epoch(6)
    assert {k.shape.num_frames for batch in sampler for k in batch} == {8}


class OwnSampler(ToyModule):
    """A module whose train loader already has a MultigridBatchSampler of a plain BaseRecipe (the reference)."""

    def train_dataloader(self):
        s = MultigridSchedule(BaseRecipe(steps=[0, 2, 4], max_epochs=5, num_frames=8, crop_size=64,
                                         batch_size=2, jitter_scales=(73, 91), bn_base_size=2))
        ds = ToyClips(48)
        return DataLoader(ds, batch_sampler=MultigridBatchSampler(SeededRandomSampler(ds), 2, schedule=s))


def test_standalone_sampler_in_train_dataloader_trains_the_schedule():
    module = OwnSampler(dataset_size=48)
    _trainer(_callback()).fit(module)
    # Epoch 2 is stage [2,3) with T=4 and epoch 7 the full-size fine-tuning (spec arithmetic).
    assert {r["T"] for r in module.records if r["epoch"] == 2} == {4}
    assert {r["T"] for r in module.records if r["epoch"] == 7} == {8}


def test_own_sampler_from_another_recipe_names_the_difference():
    # The callback's defaults differ from a plain BaseRecipe's (the reference): the error says where.
    callback = MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)
    with pytest.raises(ValueError, match=r"short_cycle_min_crop: sampler 0 vs callback 64; spatial_coarsening: "
                                         r"sampler 'rescale' vs callback 'crop'"):
        _trainer(callback).fit(OwnSampler(dataset_size=48))


def test_dict_batch_without_video_fails_at_setup():
    class NoVideo(ToyModule):
        def training_step(self, batch, batch_idx):
            return super().training_step({"video": batch["clip"], **batch}, batch_idx)

        def train_dataloader(self):
            class Renamed(ToyClips):
                def __getitem__(self, key):
                    item = super().__getitem__(key)
                    item["clip"] = item.pop("video")
                    return item

            return DataLoader(Renamed(48), batch_size=2)

    module = NoVideo(dataset_size=48)
    with pytest.raises(ValueError, match=r"precise BN cannot read the train batch.*'video'.*precise_bn_forward"):
        _trainer(_callback()).fit(module)
    assert module.records == []
    # With a precise_bn_forward it trains.
    module = NoVideo(dataset_size=48)
    _trainer(_callback(precise_bn_forward=lambda m, batch: m(batch["clip"]))).fit(module)
    assert module.records


def test_fixed_size_pooling_fails_at_setup_naming_module_and_stage():
    module = ToyModule(dataset_size=48)
    module.net.pool = nn.AvgPool3d((8, 64, 64))  # a head built for the base clip only
    with pytest.raises(ValueError, match=r"stage \[0,2\) T=2 S=45.*module 'net.pool'.*adaptive pooling"):
        _trainer(_callback()).fit(module)
    assert module.records == []


class _NoForward(pl.LightningModule):
    """A user's module whose training_step calls self.net and that defines no forward()."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return nn.functional.cross_entropy(self.net(batch["video"]), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(ToyClips(48), batch_size=2)


@pytest.mark.parametrize("probe_shapes", [True, False])
def test_module_without_forward_is_refused_at_setup_with_the_fix(probe_shapes):
    module = _NoForward()
    with pytest.raises(ValueError, match=r"_NoForward defines no forward\(\).*Define forward.*precise_bn_forward") as info:
        _trainer(_callback(probe_shapes=probe_shapes)).fit(module)
    assert "pooling" not in str(info.value)
    assert module.steps == 0  # before the first training step
    # The fix named in the message trains.
    module = _NoForward()
    _trainer(_callback(probe_shapes=probe_shapes, precise_bn_forward=lambda m, b: m.net(b["video"])), max_steps=-1, limit_train_batches=2).fit(module)
    assert module.steps > 0


@pytest.mark.parametrize("wrap", ["subset", "random_split", "concat"])
def test_subset_and_concat_of_keyed_datasets_train(wrap):
    class Wrapped(ToyModule):
        def train_dataloader(self):
            full = ToyClips(96)
            if wrap == "subset":
                ds = Subset(full, list(range(0, 96, 2)))
            elif wrap == "random_split":
                ds, _ = random_split(full, [48, 48], generator=torch.Generator().manual_seed(0))
            else:
                ds = ConcatDataset([ToyClips(24), ToyClips(24)])
            return DataLoader(ds, batch_size=2)

    module = Wrapped(dataset_size=48)
    _trainer(_callback()).fit(module)
    assert {r["T"] for r in module.records if r["epoch"] == 2} == {4}
    if wrap == "subset":  # the Subset's indices map to the even clips of the full dataset
        assert all(i % 2 == 0 for r in module.records for i in r["indices"])


def test_second_fit_starts_from_the_baseline_again():
    module = ToyModule(dataset_size=48)
    cb = _callback()
    t = _trainer(cb)
    t.fit(module)
    assert t.max_epochs == 5 and t.check_val_every_n_epoch == 1 and t.reload_dataloaders_every_n_epochs == 0
    t2 = _trainer(cb)
    t2.fit(ToyModule(dataset_size=48))
    assert cb.schedule.max_epochs == 8  # derived from the baseline 5 again, not from 8
    assert BASE.num_frames == 8


class _PidClips(ToyClips):
    def __getitem__(self, key):
        import os

        item = super().__getitem__(key)
        item["pid"] = os.getpid()
        return item


def test_workers_persist_across_stage_changes():
    pids_by_epoch: dict[int, set[int]] = {}

    class Persistent(ToyModule):
        clips = _PidClips(48)  # kept, as a DataModule keeps its train_dataset

        def train_dataloader(self):
            return DataLoader(self.clips, batch_size=2, num_workers=2, persistent_workers=True)

        def training_step(self, batch, batch_idx):
            pids_by_epoch.setdefault(self.current_epoch, set()).update(int(p) for p in batch["pid"])
            return super().training_step(batch, batch_idx)

    module = Persistent(dataset_size=48)
    cb = _callback()
    _trainer(cb).fit(module)
    # 8 epochs over 6 stages (5 stage changes), all served by the same two worker processes.
    assert sorted(pids_by_epoch) == list(range(8))
    assert len(set().union(*pids_by_epoch.values())) == 2
    # ... while the shapes and batch counts still follow each stage (T of epoch 2 and 7 by hand).
    assert {r["T"] for r in module.records if r["epoch"] == 2} == {4}
    assert {r["T"] for r in module.records if r["epoch"] == 7} == {8}


def test_precise_bn_batches_follow_the_budget():
    used = []

    import lightning_multigrid.batchnorm.precise as precise_bn_module

    original = precise_bn_module.update_bn_stats

    def counting(model, batches, num_batches, forward):
        used.append(len(list(batches)))
        return original(model, batches, num_batches, forward)

    precise_bn_module.update_bn_stats = counting
    try:
        # 96 clips; budget 0.5 of the run's iterations, at most 4 batches a call, 8 validations.
        cb = _callback(precise_bn_batches=4, precise_bn_budget=0.5)
        _trainer(cb).fit(ToyModule(dataset_size=96))
    finally:
        precise_bn_module.update_bn_stats = original
    total = int(0.5 * cb.schedule.iterations(96))
    # The final validation gets its 4 first; the other 7 share the rest, at most 4 each.
    assert total >= 4 + 7 and used == [min(4, (total - 4) // 7)] * 7 + [4]


def test_precise_bn_budget_goes_to_the_final_validation_first():
    from lightning_multigrid.callback.run import precise_bn_allocation

    # The demo: 472 iterations, 3 % budget = 14 batches, at most 8 a call, 21 validations.
    assert precise_bn_allocation(21, 472, 8, 0.03) == (0, 8)
    # K400 on 8 GPUs (spec: 261,991 iterations per rank over ~40 evaluations): 7,859 batches.
    assert precise_bn_allocation(40, 261_991, 200, 0.03) == (196, 200)
    assert precise_bn_allocation(1, 10, 200, 0.03) == (0, 1)


@pytest.mark.parametrize("limit", [None, 3], ids=["whole_epochs", "limit_train_batches"])
def test_loader_workers_deliver_each_epochs_own_batches(limit):
    """Workers load ahead across epoch ends (one stream for the fit); every epoch must still get
    exactly the batches the in-process loader gives it, also when epochs are cut short."""
    runs = {}
    for workers in (0, 2):
        pl.seed_everything(0)
        # 96 clips: stage [3,5) has 4 batches an epoch, so a limit of 3 cuts epoch 3 and epoch 4
        # (same stage, same loader) must not continue from epoch 3's undelivered batch.
        module = ToyModule(dataset_size=96, num_workers=workers)
        _trainer(_callback(), limit_train_batches=limit).fit(module)
        runs[workers] = [(r["epoch"], r["batch_idx"], r["T"], r["S"], r["indices"]) for r in module.records]
    assert len({r[0] for r in runs[0]}) == 8 and runs[2] == runs[0]
