"""The main user paths under `lightning.pytorch` (the rest of the suite runs them under
`pytorch_lightning`), in one environment with both installed (issue 13)."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from lightning_multigrid import MultigridCallback
from tests.test_callback import TOY_EPOCHS, TOY_LR
from tests.toy import read_records, toy_module_class

ROOT = Path(__file__).resolve().parent.parent
ToyModule = toy_module_class(L)
pytestmark = pytest.mark.slow


def _trainer(*callbacks, **kw):
    kw.setdefault("max_epochs", 5)
    kw.setdefault("enable_checkpointing", False)
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, callbacks=list(callbacks), **kw)


def _callback():
    # The reference's schedule and LR (the defaults at S0=64 floor the short cycle and take sqrt(b)).
    return MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, lr_scaling="linear", steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)


def test_callback_trains_the_schedule_under_lightning_pytorch():
    module = ToyModule(lr=0.05, dataset_size=48)
    _trainer(_callback()).fit(module)
    for epoch, (b, t, _) in enumerate(TOY_EPOCHS):
        rows = [r for r in module.records if r["epoch"] == epoch]
        assert rows and {r["T"] for r in rows} == {t} and {r["splits"] for r in rows} == {b}
        assert all(r["lr"] == pytest.approx(0.05 * TOY_LR[epoch]) for r in rows)


def test_mid_epoch_resume_under_lightning_pytorch(tmp_path):
    class Crash(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step >= step:
                raise RuntimeError("simulated crash")

    def fit(name, extra=(), ckpt_path=None):
        L.seed_everything(3)
        module = ToyModule(lr=0.05, dataset_size=96)
        ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / name, save_top_k=-1, every_n_train_steps=1,
                                           filename="{epoch}-{step}")
        try:
            _trainer(_callback(), ckpt, *extra, enable_checkpointing=True).fit(module, ckpt_path=ckpt_path)
        except RuntimeError as err:
            assert "simulated crash" in str(err)
        return module

    full = fit("full")
    step = next(i for i, r in enumerate(full.records) if r["epoch"] == 3 and r["batch_idx"] == 1) + 1
    fit("part", extra=[Crash()])
    resumed = fit("resumed", ckpt_path=next((tmp_path / "part").glob(f"epoch=3-step={step}.ckpt")))
    assert [{k: v for k, v in r.items() if k != "lr"} for r in resumed.records] == \
        [{k: v for k, v in r.items() if k != "lr"} for r in full.records[step:]]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ddp_ranks_agree_under_lightning_pytorch(tmp_path):
    record = tmp_path / "records.jsonl"
    module = ToyModule(dataset_size=64, batch_size=2, record_path=str(record))
    _trainer(_callback(), devices=2, strategy="ddp_spawn").fit(module)
    by_rank = collections.defaultdict(list)
    for r in read_records(record):
        by_rank[r["rank"]].append((r["epoch"], r["batch_idx"], r["batch"], r["T"], r["S"], r["splits"]))
    assert set(by_rank) == {0, 1} and by_rank[0] == by_rank[1]
    assert len({row[0] for row in by_rank[0]}) == 8


def test_video_classifier_and_datamodule_under_lightning_pytorch(tmp_path):
    from lightning_multigrid.lightning import VideoClassifier, VideoDataModule

    data = VideoDataModule(root=str(tmp_path / "data"), synthetic=True, synthetic_videos_per_class=14,
                           num_frames=8, crop_size=64, sampling_rate=2, batch_size=2, num_workers=0)
    model = VideoClassifier("x3d_tiny", num_classes=4)
    assert isinstance(model, L.LightningModule) and isinstance(data, L.LightningDataModule)
    trainer = _trainer(MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=[0, 1], bn_base_size=2, precise_bn_batches=1), max_epochs=2,
                       default_root_dir=str(tmp_path), enable_checkpointing=True, limit_val_batches=2)
    trainer.fit(model, datamodule=data)
    restored = VideoClassifier.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert type(restored) is VideoClassifier


def test_cli_recipe_under_lightning_pytorch(tmp_path):
    exe = shutil.which("lightning-multigrid", path=str(Path(sys.executable).parent))
    env = {**os.environ, "LIGHTNING_MULTIGRID_NAMESPACE": "lightning"}
    out = subprocess.run(
        [exe, "fit", "--config", str(ROOT / "examples/configs/synthetic_demo.yaml"),
         "--data.root", str(tmp_path / "data"), "--data.num_workers", "0",
         "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "2",
         "--trainer.callbacks.init_args.steps", "[0, 1]",
         "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
         "--data.synthetic_videos_per_class", "16", "--data.batch_size", "2", "--data.num_frames", "8"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # The recipe's short class names resolved in the lightning.pytorch namespace.
    assert "lightning.pytorch.loggers.CSVLogger" in next((tmp_path / "runs").rglob("config.yaml")).read_text()
    assert "multigrid/crop_size" in next((tmp_path / "runs").rglob("metrics.csv")).read_text()
