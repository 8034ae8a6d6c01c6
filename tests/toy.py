"""A toy shape-key dataset and a tiny 3D CNN for callback tests (no video decoding)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_multigrid.sampling.keys import unpack_key
from lightning_multigrid.schedule.recipe import ClipShape

BASE = ClipShape(num_frames=8, crop_size=64, stride_range=(1, 1), jitter_range=(73, 91))


class ToyClips(Dataset):
    """Deterministic clips: the label is visible as a moving bright pixel's direction."""

    accepts_clip_keys = True

    def __init__(self, n: int = 48, base_shape: ClipShape = BASE, slowfast_alpha: int | None = None) -> None:
        self.n = n
        self.base_shape = base_shape
        self.slowfast_alpha = slowfast_alpha

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, shape = unpack_key(key, self.base_shape)
        g = torch.Generator().manual_seed(index)
        t, s = shape.num_frames, shape.crop_size
        video = torch.randn(3, t, s, s, generator=g) * 0.1
        label = index % 2
        for f in range(t):
            x = (f * s // t) if label else (s - 1 - f * s // t)
            video[:, f, s // 2, x] += 3.0
        return {"video": video, "label": torch.tensor(label), "index": index}


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.conv2 = nn.Conv3d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm3d(8)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


class ToyModuleDefinition:
    """Records what every training step saw; optionally appends it to a JSON-lines file."""

    def __init__(self, lr: float = 0.05, record_path: str | None = None, dataset_size: int = 48,
                 batch_size: int = 2, num_workers: int = 0) -> None:
        super().__init__()
        self.net = TinyNet()
        self.lr = lr
        self.record_path = record_path
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.records: list[dict[str, Any]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video = batch["video"]
        splits = getattr(self.net.bn, "num_splits", 1)
        record = {
            "rank": self.global_rank, "epoch": self.current_epoch, "batch_idx": batch_idx,
            "batch": int(video.shape[0]), "T": int(video.shape[2]), "S": int(video.shape[3]),
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"], "splits": int(splits),
            "indices": [int(i) for i in batch["index"]],
        }
        self.records.append(record)
        if self.record_path:
            with open(self.record_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        loss = nn.functional.cross_entropy(self(video), batch["label"])
        self.log("train/loss", loss, batch_size=video.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["video"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        self.log("val/acc", acc, batch_size=batch["video"].shape[0], sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ToyClips(self.dataset_size), batch_size=self.batch_size, shuffle=True,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ToyClips(8), batch_size=4)


class ToyModule(ToyModuleDefinition, pl.LightningModule):
    pass


class LightningToyModule(ToyModuleDefinition, L.LightningModule):
    """The same module under ``lightning.pytorch`` (module level, so ddp_spawn can pickle it)."""


def toy_module_class(namespace: Any) -> type:
    """ToyModule for a Lightning namespace module (``pytorch_lightning`` or ``lightning.pytorch``)."""
    return ToyModule if namespace is pl else LightningToyModule


def read_records(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
