"""The model recipes (I3D-NL, torchvision R(2+1)D-18, Swin3D-T): every shape of each recipe's own
multigrid schedule is one its model accepts, and the data side gets the weights' normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightning_multigrid.models import check_schedule, get_spec
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["k400_i3d_nl_r50_multigrid", "k400_r2plus1d_18_multigrid", "k400_swin3d_t_multigrid"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_matches_its_model(recipe: str) -> None:
    config = yaml.safe_load((ROOT / "examples" / "configs" / f"{recipe}.yaml").read_text())
    data, trainer = config["data"], config["trainer"]
    req = get_spec(config["model"]["model"]).requirements
    # The base clip is the one the weights were trained with, normalised as they were.
    assert (data["num_frames"], data["crop_size"], data["sampling_rate"]) == (
        req.num_frames, req.crop_size, req.sampling_rate)
    assert tuple(data.get("mean", req.mean)) == pytest.approx(req.mean)
    assert tuple(data.get("std", req.std)) == pytest.approx(req.std)
    callback = next(c for c in trainer["callbacks"] if "MultigridCallback" in c["class_path"])
    schedule = MultigridSchedule(BaseRecipe(
        steps=callback["init_args"]["steps"], max_epochs=trainer["max_epochs"], num_frames=data["num_frames"],
        crop_size=data["crop_size"], batch_size=data["batch_size"] * trainer["devices"]))
    check_schedule(req, schedule)
    assert schedule.theoretical_speedup() > 1.5
