"""The shortest complete program: add MultigridCallback to an existing Trainer.

    python examples/add_callback.py                # one CPU process
    python examples/add_callback.py --devices 2    # two CPU processes (DDP, gloo)

Your Trainer keeps its BASELINE settings (max_epochs, per-device batch size in the DataModule,
base clip shape in the dataset); the callback turns them into multigrid training. The only
requirement on your data is a map-style dataset that accepts ``(index, shape)`` keys, which
``VideoDataModule``'s datasets do.
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch

from lightning_multigrid import MultigridCallback, VideoClassifier
from lightning_multigrid.data import VideoDataModule


class BatchCounter(pl.Callback):
    """Counts training batches per epoch on every rank and prints them at the end (rank 0)."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counts.append(0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.counts[-1] += 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        counts = trainer.strategy.all_gather(torch.tensor(self.counts))
        counts = counts.reshape(trainer.world_size, -1).tolist()
        if trainer.is_global_zero:
            for rank, per_epoch in enumerate(counts):
                print(f"rank {rank}: batches per epoch {per_epoch} (total {sum(per_epoch)})")
            print("equal per-rank batch counts:", all(c == counts[0] for c in counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--data-dir", default="data/synthetic_example")
    args = parser.parse_args()

    pl.seed_everything(0)
    data = VideoDataModule(
        root=args.data_dir, synthetic=True, synthetic_videos_per_class=40,
        num_frames=16, crop_size=64, sampling_rate=2, batch_size=2, num_workers=1,
    )
    model = VideoClassifier("x3d_tiny", num_classes=4)
    trainer = pl.Trainer(
        max_epochs=6,  # the baseline's epochs
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        callbacks=[MultigridCallback(steps=[0, 3, 5], bn_base_size=2, precise_bn_batches=4), BatchCounter()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=data)


if __name__ == "__main__":
    main()
