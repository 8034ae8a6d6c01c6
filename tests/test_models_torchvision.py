"""torchvision video networks and I3D-NL in the zoo: every shape of the K400 schedule, the real
weight file names and formats, shape-agnostic S3D/MViTv2 against the unmodified torchvision
models, and requirements that refuse exactly what fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torchvision.models import video as tv
from torchvision.models.video.mvit import MViT

from lightning_multigrid.models import (
    build_model,
    check_clip_shape,
    check_schedule,
    classifier_name,
    get_spec,
    model_requirements,
    pretrained_checkpoint_path,
)
from lightning_multigrid.models.shape_agnostic import (
    PointwiseLinear,
    ShapeAgnosticMViT,
    ShapeAgnosticS3D,
)
from lightning_multigrid.models.torchvision_zoo import _MVIT_TINY_BLOCKS
from lightning_multigrid.schedule.model_requirements import PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe
from tests.test_models_zoo import schedule_shapes

TV_TINY = ["r3d_18_tiny", "mc3_18_tiny", "r2plus1d_18_tiny", "s3d_tiny", "swin3d_tiny", "mvit_v2_s_tiny"]
NUM_CLASSES = 5
# torchvision's published files (docs of torchvision.models.video) and their transforms' constants.
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TV_FULL = {
    "r3d_18": ("r3d_18-b3b3357e.pth", KINETICS_MEAN, KINETICS_STD, 112),
    "mc3_18": ("mc3_18-a90a0ba3.pth", KINETICS_MEAN, KINETICS_STD, 112),
    "r2plus1d_18": ("r2plus1d_18-91a641e6.pth", KINETICS_MEAN, KINETICS_STD, 112),
    "s3d": ("s3d-d76dad2f.pth", KINETICS_MEAN, KINETICS_STD, 224),
    "swin3d_t": ("swin3d_t-7615ae03.pth", IMAGENET_MEAN, IMAGENET_STD, 224),
    "swin3d_s": ("swin3d_s-da41c237.pth", IMAGENET_MEAN, IMAGENET_STD, 224),
    "swin3d_b": ("swin3d_b_1k-24f7c7c6.pth", IMAGENET_MEAN, IMAGENET_STD, 224),
    "mvit_v2_s": ("mvit_v2_s-ae3be167.pth", PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD, 224),
}


def k400_schedule(num_frames: int, crop_size: int = 64) -> MultigridSchedule:
    """The Kinetics-400 SlowFast recipe's LR steps over a base clip (scaled down for tiny models)."""
    return MultigridSchedule(
        BaseRecipe(steps=[0, 94, 154, 196], max_epochs=239, num_frames=num_frames, crop_size=crop_size, batch_size=8)
    )


@pytest.fixture(scope="module")
def tiny(single_torch_thread: None) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_model(name, NUM_CLASSES) for name in [*TV_TINY, "i3d_nl_tiny"]}


@pytest.mark.parametrize("name", [*TV_TINY, "i3d_nl_tiny"])
def test_tiny_model_trains_at_every_k400_schedule_shape(name: str, tiny: dict[str, nn.Module]) -> None:
    model = tiny[name].train()
    req = model_requirements(model)
    assert req is not None and req.name == name
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    schedule = k400_schedule(req.num_frames)
    check_schedule(req, schedule)
    shapes = schedule_shapes(schedule)
    assert len(shapes) == 8 and min(t for t, _ in shapes) == req.num_frames // 4
    classifier = model.get_submodule(classifier_name(model))
    for t, s in shapes:
        model.zero_grad(set_to_none=True)
        logits = model(torch.randn(2, 3, t, s, s))
        assert logits.shape == (2, NUM_CLASSES), (name, t, s)
        logits.logsumexp(dim=1).mean().backward()
        grad = classifier.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, (name, t, s)


@pytest.mark.parametrize(("name", "too_short", "frames"), [("s3d_tiny", 4, 5), ("i3d_nl_tiny", 1, 2)])
def test_minimum_frames_are_what_runs(name: str, too_short: int, frames: int, tiny: dict[str, nn.Module]) -> None:
    model = tiny[name].eval()
    req = model_requirements(model)
    assert req.min_frames == frames
    with torch.no_grad():
        model(torch.randn(1, 3, frames, 32, 32))
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, too_short, 32, 32))
    with pytest.raises(ValueError, match=f"T={too_short} is below the minimum of {frames} frames"):
        check_clip_shape(req, too_short, 32, "probe")


@pytest.mark.parametrize("name", ["r3d_18_tiny", "mc3_18_tiny", "r2plus1d_18_tiny", "swin3d_tiny", "mvit_v2_s_tiny"])
def test_single_frame_models_run_at_t1(name: str, tiny: dict[str, nn.Module]) -> None:
    req = model_requirements(tiny[name])
    assert req.min_frames == 1 and req.frame_divisor == 1
    with torch.no_grad():
        assert tiny[name].eval()(torch.randn(1, 3, 1, req.min_crop_size, req.min_crop_size)).shape == (1, NUM_CLASSES)


def test_schedule_too_short_for_s3d_names_the_stage() -> None:
    # The K400 steps over T0=16: the coarsest long-cycle grid has T=4, which S3D's pools cannot take.
    schedule = k400_schedule(16)
    first = schedule.stages[0]
    assert first.num_frames == 4
    with pytest.raises(ValueError) as info:
        check_schedule(get_spec("s3d_tiny").requirements, schedule)
    assert str(info.value).startswith(f"multigrid stage [0,{first.end_epoch}) T=4 S=")
    assert "model 's3d_tiny'" in str(info.value) and "below the minimum of 5 frames" in str(info.value)
    check_schedule(get_spec("s3d").requirements, k400_schedule(64, 224))  # its own recipe passes


# --- the weights: torchvision's file names, formats and transforms --------------------------------
@pytest.mark.parametrize("name", list(TV_FULL))
def test_full_size_entries_point_to_torchvision_files(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file_name, mean, std, crop = TV_FULL[name]
    req = get_spec(name).requirements
    assert (req.checkpoint_name, req.checkpoint_format) == (file_name, "state_dict")
    assert req.checkpoint_url == f"https://download.pytorch.org/models/{file_name}"
    assert req.mean == pytest.approx(mean) and req.std == pytest.approx(std) and req.crop_size == crop
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    assert pretrained_checkpoint_path(name) == tmp_path / "hub" / "checkpoints" / file_name
    with pytest.raises(FileNotFoundError, match=f"download https://download.pytorch.org/models/{file_name}"):
        build_model(name, 400, pretrained=True)


_TV_BUILDERS = {"r3d_18": tv.r3d_18, "mc3_18": tv.mc3_18, "r2plus1d_18": tv.r2plus1d_18, "s3d": tv.s3d,
                "swin3d_t": tv.swin3d_t, "swin3d_s": tv.swin3d_s, "swin3d_b": tv.swin3d_b, "mvit_v2_s": tv.mvit_v2_s}


@pytest.mark.parametrize("name", list(TV_FULL))
def test_full_size_state_dict_is_torchvisions(name: str) -> None:
    with torch.device("meta"):
        ours = build_model(name, 400)
        reference = _TV_BUILDERS[name]()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in reference.state_dict().items()
    }
    assert model_requirements(ours) == get_spec(name).requirements


@pytest.mark.parametrize("name", ["mc3_18", "s3d"])
def test_torchvision_file_loads_through_pretrained(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file written like torchvision's (its own model's plain state dict, its own name) loads exactly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(1)
    reference = _TV_BUILDERS[name]()
    torch.save(reference.state_dict(), folder / TV_FULL[name][0])
    same = build_model(name, 400, pretrained=True)
    assert same.checkpoint_load_result.exact
    for key, value in reference.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    fine_tune = build_model(name, 7, pretrained=True)
    cls = classifier_name(fine_tune)
    assert set(fine_tune.checkpoint_load_result.reinitialized_keys) == {f"{cls}.weight", f"{cls}.bias"}
    assert fine_tune.get_submodule(cls).out_features == 7


@pytest.mark.parametrize("name", [*TV_TINY, "i3d_nl_tiny"])
def test_tiny_checkpoint_in_its_family_format_loads(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     tiny: dict[str, nn.Module]) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    req = get_spec(name).requirements
    path = pretrained_checkpoint_path(name)
    path.parent.mkdir(parents=True)
    state = tiny[name].state_dict()
    torch.save({"model_state": state} if req.checkpoint_format == "pyth" else state, path)
    assert path.name == (f"{name}.pth" if name in TV_TINY else "I3D_NL_TINY.pyth")
    loaded = build_model(name, NUM_CLASSES, pretrained=True)
    assert loaded.checkpoint_load_result.exact
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


# --- shape-agnostic S3D and MViTv2: the original outputs at the native shape ----------------------
def _equal_outputs(ours: nn.Module, original: nn.Module, shape: tuple[int, int]) -> None:
    original.load_state_dict(ours.state_dict())
    ours.eval(), original.eval()
    video = torch.randn(2, 3, shape[0], shape[1], shape[1])
    with torch.no_grad():
        expected, got = original(video), ours(video)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), (got - expected).abs().max()


def test_shape_agnostic_mvit_matches_torchvision_at_its_native_shape(tiny: dict[str, nn.Module]) -> None:
    ours = tiny["mvit_v2_s_tiny"]
    assert isinstance(ours, ShapeAgnosticMViT)
    original = MViT(spatial_size=(64, 64), temporal_size=16, block_setting=list(_MVIT_TINY_BLOCKS),
                    residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True,
                    num_classes=NUM_CLASSES)
    assert type(original) is MViT
    _equal_outputs(ours, original, (16, 64))
    # The unmodified model cannot take the coarser grids that the converted one runs.
    with torch.no_grad(), pytest.raises(RuntimeError):
        original(torch.randn(1, 3, 8, 45, 45))


def test_shape_agnostic_s3d_matches_torchvision_at_its_native_shape() -> None:
    torch.manual_seed(0)
    ours = build_model("s3d", 400)
    assert isinstance(ours, ShapeAgnosticS3D) and isinstance(ours.classifier[1], PointwiseLinear)
    original = tv.s3d()
    assert type(original) is tv.S3D
    # Native: 16 frames of 224 px end in the (2, 7, 7) map its AvgPool3d was sized for.
    _equal_outputs(ours, original, (16, 224))


def test_converted_mvit_keeps_relative_positions_and_interpolates_them(tiny: dict[str, nn.Module]) -> None:
    model = copy.deepcopy(tiny["mvit_v2_s_tiny"]).eval()
    first = model.blocks[0].attn
    # Tables sized for the native 8x16x16 token grid (2 * 16 - 1 spatial, 2 * 8 - 1 temporal).
    assert tuple(first.rel_pos_h.shape)[0] == 31 and tuple(first.rel_pos_t.shape)[0] == 15
    # At another grid the tables are resampled: changing them changes the output there too.
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = model(video)
        first.rel_pos_h.mul_(5.0)
        assert not torch.allclose(model(video), before)


def test_dropout_only_where_the_network_has_one() -> None:
    assert build_model("s3d_tiny", 3, dropout=0.3).classifier[0].p == pytest.approx(0.3)
    assert build_model("mvit_v2_s_tiny", 3, dropout=0.1).head[0].p == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no dropout before its classifier"):
        build_model("r3d_18_tiny", 3, dropout=0.5)
    with pytest.raises(ValueError, match="weights cannot be overridden"):
        build_model("r3d_18_tiny", 3, weights="DEFAULT")


def test_callback_refuses_a_schedule_s3d_cannot_take_at_setup() -> None:
    """The callback checks the built network's own requirements before the first epoch."""
    from tests.test_callback import make_callback, trainer
    from tests.toy import ToyModule

    module = ToyModule(dataset_size=64)
    module.net.multigrid_requirements = model_requirements(build_model("s3d_tiny", 2))
    # T0=16: the coarsest grid has T=4, one frame short of S3D's minimum.
    with pytest.raises(ValueError, match=r"multigrid stage \[0,\d+\) T=4 .*model 's3d_tiny'.*minimum of 5 frames"):
        trainer(make_callback(num_frames=16)).fit(module)
