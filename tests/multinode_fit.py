"""One node of a two-node CPU run, started by ``torchrun`` from ``tests/test_multinode.py``.

``python -m torch.distributed.run --nnodes 2 --nproc-per-node 1 --node-rank R --master-addr
127.0.0.1 --master-port P tests/multinode_fit.py OUT NAME [CKPT]``: trains the toy module with
``MultigridCallback`` as ``Trainer(num_nodes=2, devices=1, strategy="ddp")`` (gloo), appending what
every step saw to ``OUT/NAME.jsonl``; a checkpoint after batch 1 of epoch 5 (mid-epoch, split
BatchNorm) goes to ``OUT/NAME/mid_epoch.ckpt``; the final weights go to ``OUT/NAME-rank<R>.pt``. With ``CKPT`` it resumes from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from lightning_multigrid.callback import MultigridCallback
from tests.toy import ToyModule


class SaveMidEpoch(pl.Callback):
    """Saves the checkpoint the resume test starts from (as ModelCheckpoint would, after the batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # noqa: ANN001, ANN201
        if (trainer.current_epoch, batch_idx) == (5, 1):
            trainer.save_checkpoint(self.path)


def main(out: str, name: str, ckpt_path: str | None = None) -> None:
    pl.seed_everything(7)
    module = ToyModule(lr=0.05, dataset_size=96, batch_size=2, record_path=str(Path(out) / f"{name}.jsonl"))
    checkpoints = SaveMidEpoch(Path(out) / name / "mid_epoch.ckpt")
    trainer = pl.Trainer(
        max_epochs=5, accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=2), checkpoints],
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    torch.save(module.state_dict(), Path(out) / f"{name}-rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
