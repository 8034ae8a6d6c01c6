"""The `lightning-multigrid schedule` command, run as the installed console script."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

K400_ARGS = "--steps 0 94 154 196 --max-epochs 239 --num-frames 32 --crop-size 224 --batch-size 64".split()


def run(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lightning-multigrid", path=str(Path(sys.executable).parent))
    assert exe, "console script lightning-multigrid is not installed in this environment"
    return subprocess.run([exe, "schedule", *args], capture_output=True, text=True, timeout=120)


def test_k400_json_matches_spec():
    out = run(*K400_ARGS, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["max_epochs"] == 358
    assert d["lr_milestones"] == [0, 73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 343]
    assert d["lr_factors"] == [8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.08, 0.04, 0.02, 0.01, 0.01, 0.001]
    assert round(d["theoretical_speedup"], 2) == 3.42
    assert len(d["stages"]) == 13
    ft = d["stages"][-1]
    assert (ft["lr_stage"], ft["num_frames"], ft["crop_size"], ft["end_epoch"]) == (3, 32, 224, 358)
    first = d["stages"][0]
    assert {k: first[k] for k in ("lr_stage", "batch_factor", "num_frames", "crop_size", "end_epoch")} == {
        "lr_stage": 0, "batch_factor": 8, "num_frames": 8, "crop_size": 158, "end_epoch": 73}


def test_table_and_plot(tmp_path):
    png = tmp_path / "k400.png"
    out = run(*K400_ARGS, "--devices", "8", "--plot", str(png))
    assert out.returncode == 0, out.stderr
    assert "theoretical speed-up: 3.42x" in out.stdout
    assert "[0,73)" in out.stdout and "split/8" in out.stdout and "0.01 -> 0.001" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--steps", "1", "94", "--max-epochs", "239", "--num-frames", "32", "--crop-size", "224", "--batch-size", "64"], "steps:"),
        (["--steps", "0", "94", "--max-epochs", "x", "--num-frames", "32", "--crop-size", "224", "--batch-size", "64"], "--max-epochs"),
        ([*K400_ARGS[:-1], "12"], "bn_base_size"),
        ([*K400_ARGS, "--devices", "3"], "not divisible by 3 devices"),
    ],
)
def test_bad_arguments_give_one_line_errors(args, needle):
    out = run(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


def test_schedule_command_takes_custom_long_cycle_factors():
    out = subprocess.run(
        [sys.executable, "-m", "lightning_multigrid.cli", "schedule", "--steps", "0", "2", "4", "--max-epochs", "5",
         "--num-frames", "8", "--crop-size", "64", "--batch-size", "4", "--long-cycle-factors", "0.5,1", "1,1", "--json"],
        capture_output=True, text=True, check=True,
    )
    d = json.loads(out.stdout)
    # Two grids: (T=4, S=64) and (T=8, S=64) per LR stage, then fine-tuning at (8, 64).
    assert {(s["num_frames"], s["crop_size"]) for s in d["stages"]} == {(4, 64), (8, 64)}
    bad = subprocess.run(
        [sys.executable, "-m", "lightning_multigrid.cli", "schedule", "--steps", "0", "2", "--max-epochs", "5",
         "--num-frames", "8", "--crop-size", "64", "--batch-size", "4", "--long-cycle-factors", "0.5"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2 and "T_FACTOR,S_FACTOR" in bad.stderr and bad.stderr.count("\n") == 1


def test_schedule_command_previews_the_callbacks_lr_settings():
    """The LR column and JSON follow --lr-policy/--warmup-*/--cosine-end-factor, as the callback would."""
    step = json.loads(run(*K400_ARGS, "--json").stdout)
    # The step rule: the spec's factors, one per stage, the fine-tuning split's two in its stage.
    assert [s["relative_lr"] for s in step["stages"]] == [
        [8], [4], [2], [1], [0.8], [0.4], [0.2], [0.1], [0.08], [0.04], [0.02], [0.01], [0.01, 0.001]]
    assert step["lr_policy"] == {"name": "step", "warmup_epochs": 0.0, "warmup_start_factor": 0.1,
                                 "cosine_end_factor": 0.0}

    cos = json.loads(run(*K400_ARGS, "--lr-policy", "cosine", "--warmup-epochs", "5", "--warmup-start-factor", "0.2",
                         "--cosine-end-factor", "0.01", "--json").stdout)
    first, last = cos["stages"][0]["relative_lr"], cos["stages"][-1]["relative_lr"]
    # By hand: warmup from 0.2 to the cosine's value at epoch 5 of 358 times the batch factor 8,
    # then the cosine at the end of the first stage (epoch 73); the run ends at 1 x 0.01.
    at = lambda epoch, b: b * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / 358)))  # noqa: E731
    assert first == pytest.approx([0.2, at(5, 8), at(73, 8)], rel=1e-6)
    assert last == pytest.approx([at(329, 1), 0.01], rel=1e-6)
    table = run(*K400_ARGS, "--lr-policy", "cosine", "--warmup-epochs", "5").stdout
    assert "0.1 -> 7.996 -> 7.207" in table and "(cosine to 0, warmup 5 epochs from 0.1)" in table

    none = run(*K400_ARGS, "--lr-policy", "none")
    assert none.returncode == 0 and "(LR left to the module)" in none.stdout
    assert all(line.rstrip().endswith("-") for line in none.stdout.splitlines()[2:15])  # the LR column
    assert json.loads(run(*K400_ARGS, "--lr-policy", "none", "--json").stdout)["lr_policy"] is None


def test_plot_to_an_unwritable_path_is_one_line_and_prints_nothing_else(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = subprocess.run(
        [sys.executable, "-m", "lightning_multigrid.cli", "schedule", "--steps", "0", "2", "4", "--max-epochs", "5",
         "--num-frames", "8", "--crop-size", "64", "--batch-size", "4", "--plot", str(blocker / "plot.png")],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1 and "--plot" in out.stderr


def test_plot_draws_every_epoch_and_titles_the_tables_speedup(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from lightning_multigrid.schedule.multigrid import MultigridSchedule
    from lightning_multigrid.schedule.recipe import BaseRecipe
    from lightning_multigrid.schedule.report import plot_schedule

    s = MultigridSchedule(BaseRecipe(steps=[0, 2, 4], max_epochs=5, num_frames=8, crop_size=64, batch_size=4))
    captured = {}
    original = plt.close
    plt.close = lambda fig=None: captured.setdefault("fig", fig)  # keep the figure to inspect it
    try:
        plot_schedule(s, tmp_path / "p.png", world_size=1, num_samples=48)
    finally:
        plt.close = original
    fig = captured["fig"]
    for ax in fig.axes:
        multigrid, baseline = ax.get_lines()[:2]
        # The step lines reach the end of the last epoch: 8 multigrid epochs, 5 baseline epochs.
        assert multigrid.get_xdata()[-1] == 8 and baseline.get_xdata()[-1] == 5
    assert f"{s.theoretical_speedup(48, 1):.2f}x" in fig._suptitle.get_text()


def test_every_public_name_resolves():
    import lightning_multigrid

    for name in lightning_multigrid.__all__:
        assert getattr(lightning_multigrid, name) is not None, name
