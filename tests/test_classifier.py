"""VideoClassifier: steps, metrics, multi-view testing, optimisation and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
from jsonargparse import ArgumentParser
from pytorch_lightning.callbacks import BackboneFinetuning
from torch.utils.data import DataLoader, Dataset

from lightning_multigrid.models import (
    DefaultSGD,
    VideoClassifier,
    aggregate_views,
    build_model,
    model_requirements,
)


class RandomClips(Dataset):
    """A map-style dataset of random clips: ``num_videos`` videos x ``views`` clips each."""

    def __init__(
        self,
        num_videos: int,
        num_classes: int,
        frames: int = 4,
        size: int = 32,
        views: int = 1,
        multi_label: bool = False,
        seed: int = 0,
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.videos = torch.randn(num_videos * views, 3, frames, size, size, generator=gen)
        if multi_label:
            labels = (torch.rand(num_videos, num_classes, generator=gen) > 0.5).float()
            labels[:, 0] = 1.0  # every class column needs a positive and a negative for mAP
            labels[0, :] = 0.0
        else:
            labels = torch.arange(num_videos) % num_classes
        self.labels = labels.repeat_interleave(views, dim=0)
        self.index = torch.arange(num_videos).repeat_interleave(views)
        self.with_index = views > 1

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"video": self.videos[i], "label": self.labels[i]}
        if self.with_index:
            item["video_index"] = self.index[i]
        return item


def make_trainer(tmp_path: Path, max_epochs: int = 1, **kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def loader(dataset: Dataset, batch_size: int = 4, shuffle: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)


def test_fit_two_epochs_logs_losses_and_accuracy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = VideoClassifier("slow_tiny", num_classes=6)
    trainer = make_trainer(tmp_path, max_epochs=2)
    trainer.fit(module, loader(RandomClips(8, 6), shuffle=True), loader(RandomClips(6, 6, seed=1)))
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/top1", "val/loss", "val/top1", "val/top5"):
        assert key in metrics, key
        assert torch.isfinite(metrics[key]), key
    assert 0.0 <= float(metrics["val/top1"]) <= float(metrics["val/top5"]) <= 1.0
    assert trainer.current_epoch == 2


def test_top5_is_only_logged_with_five_classes_or_more(tmp_path: Path) -> None:
    module = VideoClassifier("c2d_tiny", num_classes=3)
    trainer = make_trainer(tmp_path, limit_train_batches=1)
    trainer.fit(module, loader(RandomClips(4, 3)), loader(RandomClips(4, 3)))
    assert "val/top1" in trainer.callback_metrics
    assert "val/top5" not in trainer.callback_metrics


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_slowfast_accepts_a_tensor_or_pathways_and_leaves_them_alone() -> None:
    torch.manual_seed(0)
    module = VideoClassifier("slowfast_tiny", num_classes=4).eval()
    assert module.requirements.slowfast_alpha == 4
    video = torch.randn(2, 3, 8, 32, 32)
    pathways = [video[:, :, ::4].clone(), video]
    kept = list(pathways)
    with torch.no_grad():
        from_tensor = module(video)
        from_list = module(pathways)
    assert from_tensor.shape == from_list.shape == (2, 4)
    assert all(a is b for a, b in zip(pathways, kept, strict=True))
    batch = {"video": pathways, "label": torch.tensor([0, 3])}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)


def test_multi_view_test_averages_clips_per_video(tmp_path: Path) -> None:
    torch.manual_seed(0)
    num_videos, views, classes = 5, 3, 6
    data = RandomClips(num_videos, classes, views=views, seed=3)
    module = VideoClassifier("i3d_tiny", num_classes=classes)
    trainer = make_trainer(tmp_path)
    # batch_size 4 mixes clips of different videos in one batch, and splits videos over batches.
    trainer.test(module, loader(data, batch_size=4))

    ids, scores, labels = module.test_video_predictions
    assert ids.tolist() == list(range(num_videos))
    module.eval()
    with torch.no_grad():
        clip_scores = module(data.videos).softmax(dim=-1)
    expected = clip_scores.reshape(num_videos, views, classes).mean(dim=1)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(labels, torch.arange(num_videos) % classes)

    top1 = (expected.argmax(dim=1) == labels).float().mean()
    top5 = (expected.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
    metrics = trainer.callback_metrics
    assert float(metrics["test/top1"]) == pytest.approx(float(top1))
    assert float(metrics["test/top5"]) == pytest.approx(float(top5))
    assert "test/loss" in metrics


def test_test_without_video_index_scores_each_clip(tmp_path: Path) -> None:
    module = VideoClassifier("c2d_tiny", num_classes=5)
    trainer = make_trainer(tmp_path)
    trainer.test(module, loader(RandomClips(6, 5)))
    assert module.test_video_predictions is None
    assert {"test/top1", "test/top5", "test/loss"} <= set(trainer.callback_metrics)


def test_multi_label_uses_bce_and_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    classes = 4
    module = VideoClassifier("csn_tiny", num_classes=classes, multi_label=True, label_smoothing=0.1)
    trainer = make_trainer(tmp_path, limit_train_batches=2)
    val = RandomClips(8, classes, multi_label=True, seed=5)
    trainer.fit(module, loader(RandomClips(8, classes, multi_label=True)), loader(val))
    assert {"train/loss", "val/loss", "val/mAP"} <= set(trainer.callback_metrics)
    assert "train/top1" not in trainer.callback_metrics
    assert 0.0 <= float(trainer.callback_metrics["val/mAP"]) <= 1.0

    trainer.test(module, loader(RandomClips(4, classes, views=2, multi_label=True, seed=6)))
    assert 0.0 <= float(trainer.callback_metrics["test/mAP"]) <= 1.0
    ids, scores, _ = module.test_video_predictions
    assert scores.shape == (4, classes) and ((scores >= 0) & (scores <= 1)).all()

    # The loss is BCE-with-logits against smoothed targets.
    batch = {"video": val.videos[:2], "label": val.labels[:2]}
    module.eval()
    with torch.no_grad():
        logits = module(batch["video"])
        expected = nn.functional.binary_cross_entropy_with_logits(logits, batch["label"] * 0.9 + 0.05)
        assert torch.allclose(module._loss(logits, batch["label"]), expected)
    with pytest.raises(ValueError, match=r"'label' must be \(B, 4\) multi-hot"):
        module.training_step({"video": val.videos[:2], "label": torch.tensor([0, 1])}, 0)


def test_aggregate_views() -> None:
    index = torch.tensor([2, 0, 2, 0, 7])
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    labels = torch.tensor([1, 0, 1, 0, 1])
    ids, mean, video_labels = aggregate_views(index, scores, labels)
    assert ids.tolist() == [0, 2, 7]
    torch.testing.assert_close(mean, torch.tensor([[0.25, 0.75], [0.5, 0.5], [0.2, 0.8]]))
    assert video_labels.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"clips of video\(s\) \[2\] carry different labels"):
        aggregate_views(index, scores, torch.tensor([1, 0, 0, 0, 1]))


def test_parameter_groups_exclude_norms_biases_and_frozen_parameters() -> None:
    module = VideoClassifier("x3d_tiny", num_classes=5)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, DefaultSGD)
    assert optimizer.defaults == pytest.approx(
        {**optimizer.defaults, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
    )
    assert optimizer.defaults["nesterov"] is True
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == pytest.approx(1e-4) and no_decay["weight_decay"] == 0.0
    norm_params = {id(p) for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) for p in m.parameters()}
    assert norm_params and norm_params <= {id(p) for p in no_decay["params"]}
    assert id(module.classifier.bias) in {id(p) for p in no_decay["params"]}
    assert id(module.classifier.weight) in {id(p) for p in decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.parameters()))

    for param in module.backbone.parameters():
        param.requires_grad_(False)
    frozen = module.configure_optimizers()
    kept = [p for group in frozen.param_groups for p in group["params"]]
    assert {id(p) for p in kept} == {id(module.classifier.weight), id(module.classifier.bias)}


def test_backbone_and_classifier_partition_the_network() -> None:
    module = VideoClassifier("slowfast_tiny", num_classes=5)
    assert module.classifier is module.model.blocks[-1].proj
    backbone = {id(p) for p in module.backbone.parameters()}
    head = {id(p) for p in module.classifier.parameters()}
    assert not backbone & head
    assert backbone | head == {id(p) for p in module.model.parameters()}
    # Nothing is registered twice: the LightningModule's weights all live under "model.".
    assert all(key.startswith("model.") for key in module.state_dict())
    plain = build_model("slowfast_tiny", 5).state_dict()
    assert module.model.state_dict().keys() == plain.keys()


# train_bn=True keeps BatchNorm trainable, so those parameters are already in the optimizer.
@pytest.mark.filterwarnings("ignore:The provided params to be frozen already exist")
def test_backbone_finetuning_callback_unfreezes_later(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = VideoClassifier("slow_tiny", num_classes=4, optimizer=lambda p: torch.optim.SGD(p, lr=0.05))
    stem = module.model.blocks[0].conv.weight
    before = stem.detach().clone()
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=1, backbone_initial_ratio_lr=0.1)
    trainer = make_trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=0, callbacks=[finetuning])
    trainer.fit(module, loader(RandomClips(8, 4)))
    optimizer = trainer.optimizers[0]
    assert len(optimizer.param_groups) >= 2  # the backbone was added as a new group
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(stem) in in_optimizer
    assert not torch.equal(before, stem.detach())


def test_hyperparameters_hold_plain_values_only() -> None:
    module = VideoClassifier("slow_tiny", num_classes=3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert "optimizer" not in module.hparams and "lr_scheduler" not in module.hparams
    assert module.hparams["model"] == "slow_tiny" and module.hparams["num_classes"] == 3
    assert module.configure_optimizers().defaults["lr"] == pytest.approx(0.1)


def test_module_model_is_not_saved_and_class_count_is_checked() -> None:
    network = build_model("c2d_tiny", 3)
    module = VideoClassifier(network, num_classes=3)
    assert module.model is network and "model" not in module.hparams
    assert model_requirements(module).name == "c2d_tiny"
    with pytest.raises(ValueError, match="num_classes=4 but the network's classifier blocks.6.proj has 3 outputs"):
        VideoClassifier(network, num_classes=4)
    with pytest.raises(ValueError, match="zoo names only"):
        VideoClassifier(network, num_classes=3, pretrained=True)


def test_checkpoint_reload_does_not_need_the_pretrained_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    pyth = tmp_path / "torch_home" / "hub" / "checkpoints" / "SLOW_TINY.pyth"
    pyth.parent.mkdir(parents=True)
    torch.save({"model_state": build_model("slow_tiny", 10).state_dict()}, pyth)

    module = VideoClassifier("slow_tiny", num_classes=3, pretrained=True)
    assert module.model.checkpoint_load_result.reinitialized_keys
    trainer = make_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, loader(RandomClips(4, 3)))
    ckpt = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(ckpt)
    pyth.unlink()

    reloaded = VideoClassifier.load_from_checkpoint(ckpt)
    for key, value in module.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key
    assert torch.load(ckpt, weights_only=False)["initialized_from"] == "pretrained:slow_tiny"
    assert module.hparams["pretrained"] is True  # the live module's record is unchanged
    # The Lightning checkpoint is also a valid starting point for the bare network.
    network = build_model("slow_tiny", 3, checkpoint_path=ckpt)
    assert network.checkpoint_load_result.exact
    assert torch.equal(network.blocks[5].proj.weight, module.model.blocks[5].proj.weight)


def test_bf16_mixed_precision_step(tmp_path: Path) -> None:
    module = VideoClassifier("r2plus1d_tiny", num_classes=5)
    trainer = make_trainer(tmp_path, precision="bf16-mixed", limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, loader(RandomClips(8, 5)), loader(RandomClips(4, 5)))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert torch.isfinite(trainer.callback_metrics["val/top1"])


def test_cli_style_optimizer_and_scheduler_configuration() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(VideoClassifier, "model")
    cfg = parser.parse_args(
        [
            "--model.model=slow_tiny",
            "--model.num_classes=5",
            "--model.optimizer.lr=0.4",
            "--model.lr_scheduler=torch.optim.lr_scheduler.StepLR",
            "--model.lr_scheduler.step_size=3",
        ]
    )
    module = parser.instantiate(cfg).model
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], DefaultSGD)
    assert config["optimizer"].defaults["lr"] == pytest.approx(0.4)
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert config["lr_scheduler"]["interval"] == "epoch"


class FingerprintClassifier(VideoClassifier):
    """Logs a fingerprint of the video-level scores, which ddp_spawn cannot send back otherwise."""

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        ids, scores, _ = self.test_video_predictions
        self.log("check/videos", float(len(ids)))
        self.log("check/fingerprint", float(fingerprint(scores)))


def fingerprint(scores: torch.Tensor) -> torch.Tensor:
    weights = torch.arange(1, scores.numel() + 1, dtype=scores.dtype).reshape(scores.shape)
    return (scores * weights).sum()


@pytest.mark.slow
def test_multi_view_test_gathers_views_across_ddp_ranks(tmp_path: Path) -> None:
    # Two CPU processes: the DistributedSampler deals clips 0, 2, 4... to rank 0 and 1, 3, 5...
    # to rank 1, so every video's two views sit on different ranks and only a correct gather
    # reproduces the single-process video scores.
    torch.manual_seed(0)
    num_videos, views, classes = 6, 2, 5
    data = RandomClips(num_videos, classes, views=views, seed=11)
    module = FingerprintClassifier("c2d_tiny", num_classes=classes).eval()
    with torch.no_grad():
        expected = module(data.videos).softmax(dim=-1).reshape(num_videos, views, classes).mean(dim=1)
    labels = torch.arange(num_videos) % classes
    top1 = float((expected.argmax(dim=1) == labels).float().mean())
    top5 = float((expected.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean())

    trainer = make_trainer(tmp_path, devices=2, strategy="ddp_spawn")
    trainer.test(module, loader(data, batch_size=2))
    metrics = trainer.callback_metrics
    assert float(metrics["test/top1"]) == pytest.approx(top1)
    assert float(metrics["test/top5"]) == pytest.approx(top5)
    assert float(metrics["check/videos"]) == num_videos
    assert float(metrics["check/fingerprint"]) == pytest.approx(float(fingerprint(expected)), rel=1e-5)
