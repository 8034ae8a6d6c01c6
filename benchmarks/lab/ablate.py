"""Lab tool for issue 24's ablations: one multigrid (or baseline) training of benchmarks/speedup.py's
recipe with extra MultigridCallback arguments (JSON) and optional schedule patches.

    python benchmarks/lab/ablate.py --videos-per-class 120 --epochs 12 --steps 0 7 10 \
        --kind multigrid --kwargs '{"short_cycle": false}' --tag long_only
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import speedup  # noqa: E402
import speedup_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos-per-class", type=int, default=120)
    p.add_argument("--num-classes", type=int, default=8)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--steps", type=int, nargs="+", default=[0, 7, 10])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", default="multigrid")
    p.add_argument("--kwargs", default="{}")
    p.add_argument("--patch", default="", help="short_off_from_lr_stage=K | short_off_finetune | lr_cap=F | batch_cap=N | sqrt_batch_cap=N | lr_sqrt | sqrt_first_stage")
    p.add_argument("--warmup", type=float, default=None, help="multigrid warmup epochs (default: the benchmark's)")
    p.add_argument("--tag", required=True)
    p.add_argument("--task", default="actions")
    p.add_argument("--extra-test", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--out", default="benchmarks/lab/results.jsonl")
    p.add_argument("--bn-base-size", type=int, default=None, help="default: the benchmark's")
    p.add_argument("--trace", default="", help="JSONL of per-iteration loss, LR and gradient norm")
    p.add_argument("--clip", type=float, default=None, help="Trainer(gradient_clip_val=...), by norm")
    a = p.parse_args()
    data_dir = f"data/issue24_{a.task}_c{a.num_classes}_v{a.videos_per_class}_x{a.extra_test}"
    # The data seed is always 0 (the same videos for every training seed).
    args = speedup.build_parser().parse_args([
        "--data-dir", data_dir, "--num-classes", str(a.num_classes), "--videos-per-class", str(a.videos_per_class),
        "--epochs", str(a.epochs), "--steps", *map(str, a.steps), "--seed", "0", "--lr", str(a.lr),
        "--extra-test-videos", str(a.extra_test)])
    if a.task == "actions":
        data, _ = speedup.prepare_data(args)
    else:
        from lightning_multigrid.data.synthetic import make_synthetic_dataset
        data = make_synthetic_dataset(data_dir, num_classes=a.num_classes, videos_per_class=a.videos_per_class,
                                      size=(64, 64), num_frames=32, seed=0, extra_test_per_class=a.extra_test,
                                      task=a.task)
    train_dir, _ = speedup.frame_folders(data, args)
    cfg = speedup_run.RunConfig(
        kind=a.kind, data_dir=str(train_dir.resolve()), model=args.model, num_classes=a.num_classes,
        num_frames=args.num_frames, crop_size=args.crop_size, sampling_rate=args.sampling_rate,
        jitter_scales=list(args.jitter_scales), batch_size=args.batch_size, epochs=a.epochs, steps=a.steps,
        gamma=args.gamma, lr=args.lr, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
        bn_base_size=args.bn_base_size, precise_bn_batches=args.precise_bn_batches, eval_freq=args.eval_freq,
        devices=1, accelerator="cpu", num_workers=1, threads=1, decoder=args.decoder, seed=a.seed,
        test_num_clips=args.test_clips, test_num_crops=args.test_crops, verbose=True)
    if a.bn_base_size is not None:
        cfg.bn_base_size = a.bn_base_size
    if a.warmup is not None:
        cfg.warmup_epochs = a.warmup
    if a.kind == "baseline":
        cfg.eval_epochs = list(range(a.epochs))  # the val curve (is it still rising in the last LR stage?)
    # The reference schedule unless the variant says otherwise (the package default floors short-cycle crops).
    extra = {"short_cycle_min_crop": 0, "spatial_coarsening": "rescale", "lr_scaling": "linear", "max_batch_factor": None,
             **json.loads(a.kwargs)} if a.kind == "multigrid" else {}
    import lightning_multigrid.callback.hooks as cb  # where speedup_run imports it from
    from lightning_multigrid.schedule import MultigridSchedule
    from lightning_multigrid.schedule.recipe import ShortCycleSlot
    if extra:
        original = cb.MultigridCallback
        cb.MultigridCallback = functools.partial(original, **extra)  # type: ignore[misc]
    if a.patch.startswith(("batch_cap=", "sqrt_batch_cap=")):
        import dataclasses
        bcap = int(a.patch.partition("=")[2])
        # Run sqrt_batch_cap with lr_scaling='sqrt': the LR follows the square root of the capped factor.
        lr_cap = bcap ** 0.5 if a.patch.startswith("sqrt") else bcap

        def cap_batches(self):  # type: ignore[no-untyped-def]
            self.stages = [dataclasses.replace(s, batch_factor=min(s.batch_factor, bcap)) for s in self.stages]
        patch_lr_factors(MultigridSchedule, lambda g, k, f: g**k * min(f / g**k, lr_cap), before=cap_batches)
    elif a.patch == "lr_sqrt":  # square-root instead of linear scaling by the batch factor
        patch_lr_factors(MultigridSchedule, lambda g, k, f: g**k * (f / g**k) ** 0.5)
    elif a.patch == "sqrt_first_stage":  # run with lr_scaling='linear': sqrt(b) in LR stage 0 only
        patch_lr_factors(MultigridSchedule, lambda g, k, f: f**0.5 if k == 0 else f)
    elif a.patch.startswith("lr_cap="):
        cap, lr_factor = float(a.patch.partition("=")[2]), MultigridSchedule.lr_factor
        MultigridSchedule.lr_factor = lambda self, epoch: min(lr_factor(self, epoch), cap)  # type: ignore[method-assign]
    elif a.patch:
        name, _, value = a.patch.partition("=")
        orig = MultigridSchedule.short_cycle_slots

        def slots(self, epoch):  # type: ignore[no-untyped-def]
            st = self.stage_at(epoch)
            off = (name == "short_off_from_lr_stage" and st.lr_stage >= int(value)) or (
                name == "short_off_finetune" and st.is_finetune)
            return [ShortCycleSlot(st.crop_size, 1)] if off else orig(self, epoch)
        MultigridSchedule.short_cycle_slots = slots  # type: ignore[method-assign]
    if a.trace:
        trace_iterations(a.trace)
    if a.clip is not None:
        trainer_cls = speedup_run.pl.Trainer

        class ClippedTrainer(trainer_cls):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                super().__init__(*args, gradient_clip_val=a.clip, **kwargs)
        speedup_run.pl.Trainer = ClippedTrainer
    start = time.time()
    r = speedup_run.run_training(cfg)
    row = {"tag": a.tag, "task": a.task, "lr": a.lr, "kind": a.kind, "kwargs": extra, "patch": a.patch, "clip": a.clip, "warmup": cfg.warmup_epochs, "vpc": a.videos_per_class,
           "epochs": a.epochs, "steps": a.steps, "seed": a.seed, "test_top1": r.get("test_top1"),
           "final_val": r.get("final_val_top1"), "iterations": r.get("iterations"), "train_s": r.get("train_s"),
           "wall_s": time.time() - start, "num_train": r.get("num_train_clips"),
           "evals": [(e["epoch"], e["val_top1"]) for e in r.get("evaluations", [])]}
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("RESULT", json.dumps(row), flush=True)


def patch_lr_factors(schedule_cls, transform, before=None) -> None:  # type: ignore[no-untyped-def]
    """Rewrite each long-cycle LR segment's factor as ``transform(gamma, lr_stage, factor)`` after the
    schedule builds it (``before`` may change the stages first)."""
    build = schedule_cls._build_long_cycle

    def patched(self):  # type: ignore[no-untyped-def]
        build(self)
        if before is not None:
            before(self)
        k = [next(s.lr_stage for s in self.stages if s.start_epoch <= m < s.end_epoch) for m in self.lr_milestones]
        self.lr_factors = [transform(self.recipe.gamma, ki, f) for ki, f in zip(k, self.lr_factors)]
    schedule_cls._build_long_cycle = patched


def trace_iterations(path: str) -> None:
    """Record each training iteration's loss, batch size, LR and gradient norm (diagnostics only)."""
    import torch

    from lightning_multigrid.models import VideoClassifier
    out = open(path, "w")
    step, after = VideoClassifier.training_step, VideoClassifier.on_after_backward

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        loss = step(self, batch, batch_idx)
        self._trace = {"epoch": self.current_epoch, "batch": batch_idx, "loss": float(loss),
                       "size": int(batch["label"].shape[0]), "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        return loss

    def on_after_backward(self):  # type: ignore[no-untyped-def]
        after(self)
        grads = [p.grad.norm() for p in self.parameters() if p.grad is not None]
        weights = [p.norm() for p in self.parameters()]
        self._trace.update(grad=float(torch.stack(grads).norm()), weight=float(torch.stack(weights).norm()))
        out.write(json.dumps(self._trace) + "\n")
        out.flush()
    VideoClassifier.training_step, VideoClassifier.on_after_backward = training_step, on_after_backward


if __name__ == "__main__":
    main()
