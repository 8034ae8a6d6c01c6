"""LightningCLI recipes: every recipe parses; the synthetic one trains end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "examples" / "configs").glob("*.yaml"))


def cli(*args: str, timeout: int = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lightning-multigrid", path=str(Path(sys.executable).parent))
    assert exe
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_every_recipe_is_there():
    names = {p.stem for p in RECIPES}
    assert {"synthetic_demo", "k400_slowfast_r50_baseline", "k400_slowfast_r50_multigrid", "k400_i3d_r50_multigrid",
            "k400_x3d_m_multigrid", "ssv2_slowfast_r50_multigrid", "charades_slowfast_r50_multigrid", "finetune"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses(recipe):
    out = cli("fit", "--config", str(recipe), "--print_config")
    assert out.returncode == 0, out.stderr[-2000:]
    config = yaml.safe_load(out.stdout)
    assert config["model"]["num_classes"] >= 2
    assert "num_classes" not in config["data"]  # linked from model.num_classes, named once
    callbacks = [c["class_path"] for c in config["trainer"].get("callbacks") or []]
    if "baseline" in recipe.stem:
        assert not any("MultigridCallback" in c for c in callbacks)
    else:
        assert any("MultigridCallback" in c for c in callbacks)


def test_k400_multigrid_recipe_schedule_matches_spec():
    """The K400 multigrid recipe's callback settings give the spec's schedule (358 epochs)."""
    from lightning_multigrid.schedule.multigrid import MultigridSchedule
    from lightning_multigrid.schedule.recipe import BaseRecipe

    config = yaml.safe_load((ROOT / "examples/configs/k400_slowfast_r50_multigrid.yaml").read_text())
    cb = next(c for c in config["trainer"]["callbacks"] if "MultigridCallback" in c["class_path"])
    data, trainer = config["data"], config["trainer"]
    s = MultigridSchedule(BaseRecipe(
        steps=cb["init_args"]["steps"], max_epochs=trainer["max_epochs"], num_frames=data["num_frames"],
        crop_size=data["crop_size"], batch_size=data["batch_size"] * trainer["devices"]))
    assert s.max_epochs == 358 and round(s.theoretical_speedup(), 2) == 3.42


@pytest.mark.slow
def test_synthetic_demo_recipe_runs_end_to_end(tmp_path):
    out = cli(
        "fit", "--config", str(ROOT / "examples/configs/synthetic_demo.yaml"),
        "--data.root", str(tmp_path / "data"), "--data.num_workers", "0",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
        # Smaller than the recipe so the suite stays short; the full recipe is the same code path.
        "--data.synthetic_videos_per_class", "24", "--data.batch_size", "2", "--data.test_num_clips", "1",
        cwd=tmp_path, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "MultigridCallback: baseline" in log and "`Trainer.fit` stopped: `max_epochs=" in log
    metrics = next((tmp_path / "runs").rglob("metrics.csv")).read_text()
    assert "multigrid/crop_size" in metrics and "val/loss" in metrics
    assert next((tmp_path / "runs").rglob("*.ckpt"), None) is not None


def test_make_synthetic_bad_args_one_line(tmp_path):
    out = cli("make-synthetic", str(tmp_path / "x"), "--classes", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_recipes_ship_inside_the_package(tmp_path):
    """After a non-editable install the recipes are package data: `recipes --copy` writes them out."""
    shipped = sorted(p.name for p in (ROOT / "lightning_multigrid" / "configs").glob("*.yaml"))
    assert shipped == sorted(p.name for p in RECIPES) and "synthetic_demo.yaml" in shipped
    out = cli("recipes", "--copy", str(tmp_path / "recipes"))
    assert out.returncode == 0, out.stderr
    for name in shipped:
        assert (tmp_path / "recipes" / name).read_text() == (ROOT / "lightning_multigrid" / "configs" / name).read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"configs/*.yaml"' in pyproject  # package data, so wheels carry them
