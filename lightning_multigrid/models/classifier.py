"""``VideoClassifier``: a LightningModule around a zoo network (or any video network).

Batches are dicts::

    {"video": Tensor (B, C, T, H, W) or [slow, fast] for SlowFast,
     "label": int64 (B,) (single-label) or float multi-hot (B, K) (multi-label),
     "video_index": optional int (B,), which source video each clip comes from (test time),
     "failed": optional bool (B,), the clip could not be decoded (a placeholder; left out)}

A SlowFast network also accepts a single ``(B, C, T, H, W)`` tensor: it is split into pathways
here (:func:`~lightning_multigrid.data.transforms.pack_pathways`), so the data side may stay unaware of
the model. Clips arrive as float, normalised: :class:`~lightning_multigrid.data.VideoDataModule`
finishes the datasets' ``uint8`` clips on the device; ``uint8`` input is refused with a message. Multi-view testing averages the softmax (sigmoid for multi-label) scores of all clips
and crops of a video before computing video-level top-1/top-5 (mAP). Videos with a failed view are
left out of the test metrics and listed in :attr:`VideoClassifier.test_failed_videos`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MultilabelAveragePrecision

from lightning_multigrid.data.transforms import pack_pathways
from lightning_multigrid.models.checkpoints import classifier_name
from lightning_multigrid.models.multiview import (
    ViewScores,
    video_level,
    video_metrics,
    video_paths,
    without_failed,
)
from lightning_multigrid.models.normalisation import check_normalisation
from lightning_multigrid.models.optim import (
    LRSchedulerCallable,
    OptimizerCallable,
    OptimizerSetup,
    parameter_groups,
)
from lightning_multigrid.models.registry import build_model, model_requirements
from lightning_multigrid.namespace import lightning_module, rank_zero_warn, save_init_arguments
from lightning_multigrid.schedule.model_requirements import ModelRequirements

__all__ = ["DefaultSGD", "VideoClassifier", "VideoClassifierDefinition",]

Video = torch.Tensor | Sequence[torch.Tensor]


class DefaultSGD(torch.optim.SGD):
    """SGD with the SlowFast recipe's defaults: lr 0.1, momentum 0.9, Nesterov, weight decay 1e-4.

    A class (not a lambda) so that it is a valid, serialisable default for LightningCLI's
    ``OptimizerCallable`` (``--model.optimizer.lr 0.2`` works).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = True,
        dampening: float = 0.0,
    ) -> None:
        super().__init__(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
        )


if TYPE_CHECKING:  # the definition is checked as the Lightning class it becomes
    from pytorch_lightning import LightningModule as _TypingBase
else:
    _TypingBase = object


class VideoClassifierDefinition(_TypingBase):
    """Video classification with a zoo network (pytorchvideo, I3D-NL, torchvision) or your own.

    Args:
        model: a zoo name (see :func:`~lightning_multigrid.models.list_models`) or a network. A
            network of your own may carry ``multigrid_requirements`` (see ``ModelRequirements``);
            it is not saved in the hyper-parameters, so pass it again to ``load_from_checkpoint``
            (as ``optimizer`` and ``lr_scheduler``, which are not saved either).
        num_classes: number of classes (labels, for multi-label).
        multi_label: sigmoid/BCE with mAP instead of softmax/cross-entropy with top-k accuracy.
        pretrained: start from the model's published checkpoint (pytorchvideo ``.pyth`` or torchvision
            ``.pth``, under the library's file name) in ``$TORCH_HOME/hub/checkpoints``.
        checkpoint_path: start from this local checkpoint instead.
        allow_pickle: let ``checkpoint_path`` hold pickled Python objects, which runs code from the
            file (off: such a file is refused with a message; only for files you trust).
        dropout: dropout before the classifier (``None``: the recipe's).
        model_kwargs: further builder arguments for a zoo model (e.g. ``{"stem_dim_out": 16}``).
        optimizer: called with the parameter groups; default :class:`DefaultSGD`.
        lr_scheduler: called with the optimizer; stepped every epoch (``None``: constant LR).
        label_smoothing: label smoothing of the loss (multi-label: targets pulled towards 0.5).
        zero_decay_norm_bias: put normalisation parameters and biases in a group without weight
            decay (the reference recipe).
    """

    def __init__(
        self,
        model: str | nn.Module,
        num_classes: int,
        multi_label: bool = False,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        dropout: float | None = None,
        model_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerCallable = DefaultSGD,
        lr_scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        zero_decay_norm_bias: bool = True,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__()
        # The optimizer and scheduler callables stay out of the hyper-parameters: a checkpoint
        # holding classes or closures cannot be read with torch.load(weights_only=True), which
        # load_from_checkpoint uses by default (LightningCLI records them in its config.yaml).
        ignore = ("optimizer", "lr_scheduler") + (("model",) if isinstance(model, nn.Module) else ())
        save_init_arguments(self, locals(), ignore=ignore)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"VideoClassifier: label_smoothing must be in [0, 1), got {label_smoothing}")

        if isinstance(model, str):
            self.model = build_model(
                model,
                num_classes,
                pretrained=pretrained,
                checkpoint_path=checkpoint_path,
                dropout=dropout,
                allow_pickle=allow_pickle,
                **(model_kwargs or {}),
            )
        elif isinstance(model, nn.Module):
            if pretrained or checkpoint_path is not None or model_kwargs:
                raise ValueError(
                    "VideoClassifier: pretrained, checkpoint_path and model_kwargs apply to zoo names only; "
                    "load weights into your own network before passing it"
                )
            self.model = model
        else:
            raise TypeError(f"VideoClassifier: model must be a zoo name or an nn.Module, got {type(model).__name__}")

        self._classifier_name = classifier_name(self.model)
        if self._classifier_name is None:
            raise ValueError("VideoClassifier: the network has no nn.Linear classification layer")
        out_features = self.classifier.out_features
        if out_features != num_classes:
            raise ValueError(
                f"VideoClassifier: num_classes={num_classes} but the network's classifier "
                f"{self._classifier_name} has {out_features} outputs"
            )
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.label_smoothing = label_smoothing
        self.optimization = OptimizerSetup(optimizer, lr_scheduler, zero_decay_norm_bias)
        self.topk = (1, 5) if num_classes >= 5 else (1,)

        if multi_label:
            self.val_metrics = MetricCollection({"mAP": MultilabelAveragePrecision(num_labels=num_classes)}, prefix="val/")
            self.test_metrics = MetricCollection({"mAP": MultilabelAveragePrecision(num_labels=num_classes)}, prefix="test/")
        else:
            self.train_top1 = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")
            self.val_metrics = self._accuracy_metrics("val/")
            self.test_metrics = self._accuracy_metrics("test/")
        self._test_views = ViewScores()
        #: Video-level results of the last multi-view test: ``(video_ids, scores, labels)``.
        self.test_video_predictions: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        #: Videos the last multi-view test could not evaluate (a view failed to decode): their
        #: paths where the test dataset has ``records`` (a :class:`~lightning_multigrid.data.VideoClipDataset`),
        #: else their video ids.
        self.test_failed_videos: list[str | int] = []

    def _accuracy_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection(
            {f"top{k}": MulticlassAccuracy(num_classes=self.num_classes, top_k=k, average="micro") for k in self.topk},
            prefix=prefix,
        )

    def setup(self, stage: str) -> None:
        """Refuse loaded weights whose normalisation differs from the datamodule's."""
        check_normalisation(getattr(self, "hparams", {}), self.requirements, getattr(self._trainer, "datamodule", None))

    # ----------------------------------------------------------------------------------------
    # Network parts
    # ----------------------------------------------------------------------------------------
    @property
    def requirements(self) -> ModelRequirements | None:
        """The network's clip-shape requirements (``None`` for an undeclared network)."""
        return model_requirements(self.model)

    @property
    def classifier(self) -> nn.Linear:
        """The final classification layer."""
        return self.model.get_submodule(self._classifier_name or "")  # type: ignore[return-value]

    @property
    def backbone(self) -> nn.Module:
        """Everything but :attr:`classifier`, as one module (for ``BackboneFinetuning``).

        Built on access and not registered, so the checkpoint holds each weight once, under
        ``model.``.
        """
        parts: list[nn.Module] = []
        parent: nn.Module = self.model
        for atom in (self._classifier_name or "").split("."):
            parts.extend(child for name, child in parent.named_children() if name != atom)
            parent = parent.get_submodule(atom)
        return nn.ModuleList(parts)

    def forward(self, video: Video) -> torch.Tensor:
        """Raw logits ``(B, num_classes)``."""
        return self.model(self._prepare(video))

    def _prepare(self, video: Video) -> torch.Tensor | list[torch.Tensor]:
        parts = [video] if isinstance(video, torch.Tensor) else list(video)
        if any(isinstance(p, torch.Tensor) and p.dtype == torch.uint8 for p in parts):
            # Raw clips would train on 0..255 values without any error further down.
            raise TypeError(
                "VideoClassifier: got uint8 clips; the datasets deliver raw uint8 clips that are finished "
                "(float, normalised) on the device: VideoDataModule does it as it moves each batch; with "
                "your own loader call dataset.finish(batch['video'].to(device)) (or "
                "lightning_multigrid.data.finish_clips), or build the dataset with normalize=True"
            )
        req = self.requirements
        if isinstance(video, torch.Tensor):
            if req is not None and req.is_slowfast:
                return pack_pathways(video, req.slowfast_alpha)  # type: ignore[arg-type]
            return video
        return list(video)

    # ----------------------------------------------------------------------------------------
    # Steps
    # ----------------------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            target = labels.to(logits.dtype)
            if self.label_smoothing:
                target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
            return F.binary_cross_entropy_with_logits(logits, target)
        if labels.is_floating_point():
            # Soft targets (e.g. mixup): cross-entropy against a distribution.
            return F.cross_entropy(logits, labels.to(logits.dtype), label_smoothing=self.label_smoothing)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def _metric_target(self, labels: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return (labels > 0.5).long()
        return labels.argmax(dim=-1) if labels.dim() == 2 else labels

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.detach().float()
        return logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)

    def _check_batch(self, batch: Any) -> tuple[Video, torch.Tensor]:
        if not isinstance(batch, dict) or "video" not in batch or "label" not in batch:
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise TypeError(f"VideoClassifier: a batch must be a dict with 'video' and 'label', got {got}")
        labels = batch["label"]
        if self.multi_label and (labels.dim() != 2 or labels.shape[1] != self.num_classes):
            raise ValueError(
                f"VideoClassifier(multi_label=True): 'label' must be (B, {self.num_classes}) multi-hot, "
                f"got shape {tuple(labels.shape)}"
            )
        return batch["video"], labels

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video, labels = self._check_batch(batch)
        logits = self(video)
        loss = self._loss(logits, labels)
        size = labels.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        if not self.multi_label:
            self.train_top1(self._scores(logits), self._metric_target(labels))
            self.log("train/top1", self.train_top1, on_step=True, on_epoch=True, batch_size=size)
        return loss

    def _evaluation_step(
        self, batch: dict[str, Any], stage: str
    ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor] | None:
        """Log ``{stage}/loss`` of a batch without its failed items: ``(batch, scores, labels)``,
        ``None`` when every item failed. Failed items' video ids go to the multi-view test."""
        kept, failed_ids = without_failed(batch)
        if failed_ids is not None:
            self._test_views.failed.append(failed_ids.to(self.device))
        if kept is None:
            return None
        video, labels = self._check_batch(kept)
        logits = self(video)
        loss = self._loss(logits, labels)
        size = labels.shape[0]
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=size, sync_dist=True)
        return kept, self._scores(logits), labels

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        step = self._evaluation_step(batch, "val")
        if step is not None:
            _, scores, labels = step
            self.val_metrics.update(scores, self._metric_target(labels))
            self.log_dict(self.val_metrics, on_epoch=True, batch_size=labels.shape[0])

    def on_test_epoch_start(self) -> None:
        self._test_views = ViewScores()
        self.test_video_predictions = None
        self.test_failed_videos = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        step = self._evaluation_step(batch, "test")
        if step is None:
            return
        batch, scores, labels = step
        if "video_index" in batch:
            # Multi-view: keep every clip's scores; metrics come per video at the epoch end.
            self._test_views.add(scores, labels, batch["video_index"])
        else:
            self.test_metrics.update(scores, self._metric_target(labels))
            self.log_dict(self.test_metrics, on_epoch=True, batch_size=labels.shape[0])

    def on_train_epoch_end(self) -> None:
        self._report_skipped_videos(f"epoch {self.current_epoch}")

    def on_validation_epoch_end(self) -> None:
        self._report_skipped_videos(f"validation, epoch {self.current_epoch}")

    def _report_skipped_videos(self, stage: str) -> None:
        """The datamodule's summary of unreadable videos, logged and saved beside the run."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        report = getattr(datamodule, "report_skipped_videos", None)
        if callable(report):
            report(stage)

    def on_test_epoch_end(self) -> None:
        self._report_skipped_videos("test")
        views = self._test_views
        local = torch.cat(views.failed) if views.failed else torch.zeros(0, dtype=torch.long, device=self.device)
        failed = self._gather(local)  # every rank calls it: a collective under DDP
        failed_ids = sorted({int(v) for v in failed.tolist()})
        self.test_failed_videos = video_paths(getattr(self._trainer, "test_dataloaders", None), failed_ids)
        if self.test_failed_videos:
            rank_zero_warn(
                f"multi-view test: {len(self.test_failed_videos)} video(s) could not be decoded and are not "
                f"in the test metrics ({self.test_failed_videos[:20]}"
                f"{', ...' if len(self.test_failed_videos) > 20 else ''}; see the data's skipped_videos.json)"
            )
        if not views.index:
            return
        self.log("test/failed_videos", float(len(self.test_failed_videos)), sync_dist=False)
        video_ids, video_scores, video_labels = video_level(views, self._gather, failed_ids)
        self.test_video_predictions = (video_ids.cpu(), video_scores.cpu(), video_labels.cpu())
        target = self._metric_target(video_labels)
        values = video_metrics(video_scores, target, self.multi_label, self.num_classes, self.topk)
        # Every rank holds the same gathered values, so no further reduction is needed.
        self.log_dict(values, sync_dist=False)
        views.scores, views.labels, views.index = [], [], []

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate ``tensor`` over all ranks along dim 0 (ranks may hold different lengths)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return tensor
        length = torch.tensor([tensor.shape[0]], device=tensor.device)
        lengths = torch.as_tensor(self.all_gather(length)).reshape(-1)
        longest = int(lengths.max())
        pad = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
        gathered = torch.as_tensor(self.all_gather(torch.cat([tensor, pad])))
        return torch.cat([gathered[rank, : int(n)] for rank, n in enumerate(lengths)])

    # ----------------------------------------------------------------------------------------
    # Optimisation
    # ----------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """The model's trainable parameters in a weight-decay and a no-decay group (see
        :func:`~lightning_multigrid.models.optim.parameter_groups`)."""
        return parameter_groups(self.model, self.optimization.zero_decay_norm_bias)

    def configure_optimizers(self) -> Any:
        return self.optimization.configure(self.model)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The weights are in the state dict: rebuilding from the checkpoint must not need the
        # original pretrained/initial file, which may be absent where the checkpoint is loaded.
        hparams = checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY)
        if isinstance(hparams, dict) and (hparams.get("pretrained") or hparams.get("checkpoint_path")):
            source = hparams.get("checkpoint_path") or f"pretrained:{hparams.get('model')}"
            checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = dict(hparams, pretrained=False, checkpoint_path=None)
            checkpoint["initialized_from"] = str(source)


class VideoClassifier(VideoClassifierDefinition, lightning_module.LightningModule):  # type: ignore[misc,name-defined]
    __doc__ = VideoClassifierDefinition.__doc__

