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
    p.add_argument("--patch", default="", help="short_off_from_lr_stage=K | short_off_finetune")
    p.add_argument("--tag", required=True)
    p.add_argument("--task", default="actions")
    p.add_argument("--extra-test", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--out", default="benchmarks/lab/results.jsonl")
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
    if a.kind == "baseline":
        cfg.eval_epochs = list(range(a.epochs))  # the val curve (is it still rising in the last LR stage?)
    # The reference schedule unless the variant says otherwise (the package default floors short-cycle crops).
    extra = {"short_cycle_min_crop": 0, "spatial_coarsening": "rescale", **json.loads(a.kwargs)} if a.kind == "multigrid" else {}
    import lightning_multigrid.callback.hooks as cb  # where speedup_run imports it from
    from lightning_multigrid.schedule import MultigridSchedule
    from lightning_multigrid.schedule.recipe import ShortCycleSlot
    if extra:
        original = cb.MultigridCallback
        cb.MultigridCallback = functools.partial(original, **extra)  # type: ignore[misc]
    if a.patch:
        name, _, value = a.patch.partition("=")
        orig = MultigridSchedule.short_cycle_slots

        def slots(self, epoch):  # type: ignore[no-untyped-def]
            st = self.stage_at(epoch)
            off = (name == "short_off_from_lr_stage" and st.lr_stage >= int(value)) or (
                name == "short_off_finetune" and st.is_finetune)
            return [ShortCycleSlot(st.crop_size, 1)] if off else orig(self, epoch)
        MultigridSchedule.short_cycle_slots = slots  # type: ignore[method-assign]
    start = time.time()
    r = speedup_run.run_training(cfg)
    row = {"tag": a.tag, "task": a.task, "lr": a.lr, "kind": a.kind, "kwargs": extra, "patch": a.patch, "vpc": a.videos_per_class,
           "epochs": a.epochs, "steps": a.steps, "seed": a.seed, "test_top1": r.get("test_top1"),
           "final_val": r.get("final_val_top1"), "iterations": r.get("iterations"), "train_s": r.get("train_s"),
           "wall_s": time.time() - start, "num_train": r.get("num_train_clips"),
           "evals": [(e["epoch"], e["val_top1"]) for e in r.get("evaluations", [])]}
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("RESULT", json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
