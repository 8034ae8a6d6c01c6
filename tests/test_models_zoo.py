"""Model zoo: every model runs at every shape a (scaled) multigrid schedule produces."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from pytorchvideo.models import hub

from lightning_multigrid.models import (
    ModelRequirements,
    build_model,
    check_clip_shape,
    check_schedule,
    get_spec,
    list_models,
    model_requirements,
    pack_pathways,
)
from lightning_multigrid.models.pytorchvideo_zoo import MultiPathwayNet
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe

FULL = [
    "slowfast_r50",
    "slowfast_r101",
    "slow_r50",
    "i3d_r50",
    "c2d_r50",
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "r2plus1d_r50",
    "csn_r101",
]
TINY = ["slowfast_tiny", "slow_tiny", "i3d_tiny", "c2d_tiny", "x3d_tiny", "r2plus1d_tiny", "csn_tiny", "i3d_nl_tiny"]
# Registered by other families (I3D-NL, torchvision), tested in test_models_torchvision.py too.
OTHER_FULL = ["i3d_nl_r50", "r3d_18", "mc3_18", "r2plus1d_18", "s3d", "swin3d_t", "swin3d_s", "swin3d_b", "mvit_v2_s"]
OTHER_TINY = ["r3d_18_tiny", "mc3_18_tiny", "r2plus1d_18_tiny", "s3d_tiny", "swin3d_tiny", "mvit_v2_s_tiny"]
NUM_CLASSES = 7

# The Kinetics-400 SlowFast recipe's LR steps, scaled to small clips (T0=16, S0=64).
SMALL_SCHEDULE = MultigridSchedule(
    BaseRecipe(steps=[0, 94, 154, 196], max_epochs=239, num_frames=16, crop_size=64, batch_size=8)
)


def schedule_shapes(schedule: MultigridSchedule) -> list[tuple[int, int]]:
    """Every distinct (T, S) of the long-cycle stages and their short-cycle slots, in order."""
    shapes: list[tuple[int, int]] = []
    for stage in schedule.stages:
        for slot in schedule.short_cycle_slots(stage.start_epoch):
            shape = (stage.num_frames, slot.crop_size)
            if shape not in shapes:
                shapes.append(shape)
    return shapes


def model_input(req: ModelRequirements, video: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    return pack_pathways(video, req.slowfast_alpha) if req.is_slowfast else video


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_model(name, NUM_CLASSES) for name in TINY}


def test_list_models_has_the_zoo() -> None:
    assert list_models() == FULL + OTHER_FULL + TINY + OTHER_TINY


def test_schedule_covers_the_expected_shapes() -> None:
    # (T, S): the four long-cycle grids and the short-cycle crops 32 and 45.
    assert sorted(schedule_shapes(SMALL_SCHEDULE)) == sorted(
        [(4, 32), (4, 45), (8, 32), (8, 45), (8, 64), (16, 32), (16, 45), (16, 64)]
    )


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_runs_every_schedule_shape(name: str, tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models[name]
    req = model_requirements(model)
    assert req is not None and req.name == name
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    check_schedule(req, SMALL_SCHEDULE)
    model.train()
    for t, s in schedule_shapes(SMALL_SCHEDULE):
        model.zero_grad(set_to_none=True)
        video = torch.randn(2, 3, t, s, s)
        logits = model(model_input(req, video))
        assert logits.shape == (2, NUM_CLASSES), (name, t, s)
        logits.logsumexp(dim=1).mean().backward()
        grad = model.get_submodule(f"blocks.{len(model.blocks) - 1}.proj").weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, (name, t, s)


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_outputs_raw_logits(name: str, tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models[name].eval()
    req = model_requirements(model)
    head = model.blocks[-1]
    assert head.activation is None
    pool = head.pool.pool if name.startswith("x3d") else head.pool
    if name.startswith("slowfast"):
        pool = model.blocks[-2].pool[0]
    assert isinstance(pool, nn.AdaptiveAvgPool3d)
    with torch.no_grad():
        # Scale the classifier up so that logits are clearly not probabilities.
        head.proj.weight.mul_(100.0)
        logits = model(model_input(req, torch.randn(2, 3, req.num_frames, 48, 48)))
        head.proj.weight.div_(100.0)
    assert (logits < 0).any()
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))


def test_slowfast_does_not_mutate_the_callers_list(tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models["slowfast_tiny"].eval()
    assert isinstance(model, MultiPathwayNet)
    video = torch.randn(1, 3, 8, 48, 48)
    pathways = pack_pathways(video, 4)
    slow, fast = pathways
    with torch.no_grad():
        first = model(pathways)
        second = model(pathways)
    assert pathways[0] is slow and pathways[1] is fast
    assert torch.equal(first, second)
    with torch.no_grad():
        assert torch.equal(model(tuple(pathways)), first)
    with pytest.raises(TypeError, match="pack_pathways"):
        model(video)


def test_pack_pathways() -> None:
    video = torch.arange(16.0).reshape(1, 1, 16, 1, 1).expand(2, 3, 16, 4, 4)
    slow, fast = pack_pathways(video, 4)
    assert fast is video
    assert slow.shape == (2, 3, 4, 4, 4)
    # PySlowFast's rule: linspace(0, T-1, T/alpha) truncated to integers.
    assert slow[0, 0, :, 0, 0].tolist() == [0.0, 5.0, 10.0, 15.0]
    unbatched_slow, _ = pack_pathways(video[0], 4)
    assert unbatched_slow.shape == (3, 4, 4, 4)
    with pytest.raises(ValueError, match="T=6 frames is not a positive multiple of alpha=4"):
        pack_pathways(torch.zeros(1, 3, 6, 4, 4), 4)


# --- requirements match what actually runs ----------------------------------------------------
@pytest.mark.parametrize(("name", "frames"), [("i3d_tiny", 1), ("c2d_tiny", 1), ("i3d_nl_tiny", 1)])
def test_temporal_pool_models_need_two_frames(name: str, frames: int, tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models[name].eval()
    req = model_requirements(model)
    assert req.min_frames == 2
    with torch.no_grad():
        model(torch.randn(1, 3, 2, 32, 32))  # the minimum runs
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, frames, 32, 32))
    with pytest.raises(ValueError, match="T=1 is below the minimum of 2 frames"):
        check_clip_shape(req, frames, 32, "probe")


@pytest.mark.parametrize("name", ["slow_tiny", "x3d_tiny", "r2plus1d_tiny", "csn_tiny"])
def test_single_frame_models_run_at_t1(name: str, tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models[name].eval()
    req = model_requirements(model)
    assert req.min_frames == 1 and req.frame_divisor == 1 and req.slowfast_alpha is None
    check_clip_shape(req, 1, 32, "probe")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 1, 32, 32)).shape == (1, NUM_CLASSES)


def test_slowfast_requirements_match_the_network(tiny_models: dict[str, nn.Module]) -> None:
    model = tiny_models["slowfast_tiny"].eval()
    req = model_requirements(model)
    assert (req.slowfast_alpha, req.frame_divisor, req.min_frames) == (4, 4, 4)
    with torch.no_grad():
        model([torch.randn(1, 3, 1, 32, 32), torch.randn(1, 3, 4, 32, 32)])  # slow T=1 runs
        # A fast pathway that is not alpha x slow breaks the lateral connections.
        with pytest.raises(RuntimeError):
            model([torch.randn(1, 3, 1, 32, 32), torch.randn(1, 3, 6, 32, 32)])
    with pytest.raises(ValueError, match="T=6 is not a multiple of 4"):
        check_clip_shape(req, 6, 32, "probe")
    with pytest.raises(ValueError, match="below the minimum of 4 frames"):
        check_clip_shape(req, 2, 32, "probe")


def test_slowfast_alpha_follows_the_fusion_stride() -> None:
    model = build_model("slowfast_tiny", 3, slowfast_fusion_conv_stride=(2, 1, 1))
    req = model_requirements(model)
    assert (req.slowfast_alpha, req.frame_divisor, req.min_frames) == (2, 2, 2)
    with torch.no_grad():
        assert model.eval()(pack_pathways(torch.randn(1, 3, 4, 32, 32), 2)).shape == (1, 3)


def test_check_clip_shape_names_where_and_why() -> None:
    req = get_spec("slowfast_r50").requirements
    check_clip_shape(req, 32, 224, "baseline")
    where = "long-cycle stage [0,73) T=8 S=158"
    with pytest.raises(ValueError) as info:
        check_clip_shape(req, 6, 158, where)
    message = str(info.value)
    assert message.startswith(where + ": model 'slowfast_r50'")
    assert "T=6 is not a multiple of 4" in message
    with pytest.raises(ValueError, match=r"crop S=16 is smaller than the network's spatial downsampling of 32"):
        check_clip_shape(get_spec("x3d_xs").requirements, 4, 16, "short-cycle slot 0")


def test_check_schedule_names_the_offending_stage() -> None:
    # T0=4: the coarsest long-cycle grid has T=1, which I3D's temporal max-pool cannot take.
    schedule = MultigridSchedule(
        BaseRecipe(steps=[0, 10, 20], max_epochs=30, num_frames=4, crop_size=64, batch_size=8)
    )
    first = schedule.stages[0]
    assert first.num_frames == 1
    with pytest.raises(ValueError) as info:
        check_schedule(get_spec("i3d_tiny").requirements, schedule)
    assert f"multigrid stage [0,{first.end_epoch}) T=1 S=45" in str(info.value)
    assert "i3d_tiny" in str(info.value)
    # SlowFast: T0=8 gives T=2 and T=4 grids; T=2 is below alpha.
    schedule = MultigridSchedule(
        BaseRecipe(steps=[0, 10, 20], max_epochs=30, num_frames=8, crop_size=64, batch_size=8)
    )
    with pytest.raises(ValueError, match=r"multigrid stage \[0,\d+\) T=2 S=45 b=8: model 'slowfast_tiny'"):
        check_schedule(get_spec("slowfast_tiny").requirements, schedule)
    check_schedule(get_spec("x3d_tiny").requirements, schedule)


def test_model_requirements_lookup(tiny_models: dict[str, nn.Module]) -> None:
    assert model_requirements("x3d_xs") == get_spec("x3d_xs").requirements
    assert model_requirements(tiny_models["csn_tiny"]).name == "csn_tiny"

    class Holder(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

    assert model_requirements(Holder(tiny_models["slow_tiny"])).name == "slow_tiny"
    assert model_requirements(nn.Linear(2, 2)) is None
    own = nn.Linear(2, 2)
    own.multigrid_requirements = ModelRequirements("mine", min_frames=3)
    assert model_requirements(own).min_frames == 3
    with pytest.raises(KeyError, match="unknown model 'resnet9000'.*slowfast_r50"):
        model_requirements("resnet9000")


def test_requirements_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="ModelRequirements.min_frames must be a positive int"):
        ModelRequirements("x", min_frames=0)
    with pytest.raises(ValueError, match="slowfast_alpha"):
        ModelRequirements("x", slowfast_alpha=0)


def test_build_model_argument_errors() -> None:
    with pytest.raises(KeyError, match="known models"):
        build_model("nope", 3)
    with pytest.raises(ValueError, match="head_pool cannot be overridden"):
        build_model("slow_tiny", 3, head_pool=nn.AvgPool3d)
    with pytest.raises(ValueError, match="either pretrained=True or checkpoint_path"):
        build_model("slow_tiny", 3, pretrained=True, checkpoint_path="x.pyth")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_model("slow_tiny", 0)
    with pytest.raises(ValueError, match=r"stage_depths\[2\]=9 must be in \[1, 6\]"):
        build_model("slow_tiny", 3, stage_depths=(1, 1, 9, 1))


def test_overrides_reach_the_builder() -> None:
    model = build_model("slow_tiny", 3, stem_dim_out=16, stage_depths=(1, 2, 1, 1), dropout=0.3)
    assert model.blocks[0].conv.out_channels == 16
    assert [len(model.blocks[i].res_blocks) for i in range(1, 5)] == [1, 2, 1, 1]
    assert model.blocks[-1].dropout.p == pytest.approx(0.3)
    assert build_model("slow_tiny", 3, dropout=0.0).blocks[-1].dropout is None


# --- full-size models: structure on the meta device (no memory, no compute) --------------------
_HUB_BUILDERS = {name: getattr(hub, name) for name in FULL}


@pytest.mark.parametrize("name", FULL)
def test_full_size_model_matches_the_hub_and_runs_multigrid_shapes(name: str) -> None:
    spec = get_spec(name)
    req = spec.requirements
    with torch.device("meta"):
        ours = build_model(name, 400)
        reference = _HUB_BUILDERS[name]()
    # Same keys and shapes as pytorchvideo's hub model: the public checkpoint loads as is.
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in reference.state_dict().items()
    }
    assert ours.blocks[-1].activation is None
    assert model_requirements(ours) == req
    # The recipe's own multigrid schedule: coarsest grid with the smallest short-cycle crop, and
    # the base shape. A fixed-size head pool (the pytorchvideo default) fails the former.
    schedule = MultigridSchedule(
        BaseRecipe(steps=[0, 94, 154, 196], max_epochs=239, num_frames=req.num_frames, crop_size=req.crop_size, batch_size=8)
    )
    try:
        check_schedule(req, schedule)
    except ValueError as err:
        # Each recipe's own schedule must pass (SlowFast: T0=32 gives T=8, 16, 32, multiples of alpha).
        pytest.fail(f"{name}: {err}")
    shapes = schedule_shapes(schedule)
    smallest = min(shapes, key=lambda ts: ts[0] * ts[1] ** 2)
    ours.train()
    for t, s in (smallest, (req.num_frames, req.crop_size)):
        video = torch.empty(2, 3, t, s, s, device="meta")
        assert ours(model_input(req, video)).shape == (2, 400), (name, t, s)


# --- I3D-NL: I3D R50 with pytorchvideo NonLocal blocks in res3/res4 ---------------------------
def _nonlocal_positions(model: nn.Module) -> list[list[int]]:
    from pytorchvideo.models.resnet import ResStage

    stages = [b for b in model.blocks if isinstance(b, ResStage)]
    return [[i for i, block in enumerate(s.res_blocks) if hasattr(block, "nonlocal_block")] for s in stages]


def test_i3d_nl_r50_has_the_reference_nonlocal_layout() -> None:
    from pytorchvideo.layers.nonlocal_net import NonLocal

    with torch.device("meta"):
        ours = build_model("i3d_nl_r50", 400)
        i3d = hub.i3d_r50()
    # SlowFast's I3D_NLN_8x8_R50: NONLOCAL.LOCATION [[[]], [[1, 3]], [[1, 3, 5]], [[]]].
    assert _nonlocal_positions(ours) == [[], [1, 3], [1, 3, 5], []]
    blocks = [m for m in ours.modules() if isinstance(m, NonLocal)]
    assert len(blocks) == 5
    for block in blocks:
        width = block.conv_out.out_channels
        assert block.instantiation == "softmax" and block.conv_theta.out_channels == width // 2
        assert block.pool.kernel_size == (1, 2, 2) and width in (512, 1024)
    # Every other key is i3d_r50's: the public I3D checkpoint initialises it.
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items() if ".nonlocal_block." not in k}
    assert own == {k: tuple(v.shape) for k, v in i3d.state_dict().items()}
    assert ours.blocks[-1].activation is None and model_requirements(ours).min_frames == 2


def test_i3d_checkpoint_initialises_i3d_nl_as_the_same_function(tmp_path) -> None:
    """Non-local blocks start as the identity (zero final BN): I3D weights give I3D's outputs."""
    torch.manual_seed(0)
    i3d = build_model("i3d_tiny", 4, stage_depths=(1, 2, 2, 1)).eval()
    with torch.no_grad():  # non-trivial BN statistics, so eval mode is not the identity either
        for m in i3d.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "I3D_TINY.pyth"
    torch.save({"model_state": i3d.state_dict()}, path)
    nl = build_model("i3d_nl_tiny", 4, checkpoint_path=path).eval()
    assert _nonlocal_positions(nl) == [[], [1], [1], []]
    result = nl.checkpoint_load_result
    assert result.missing_keys and all(".nonlocal_block." in k for k in result.missing_keys)
    assert not result.unexpected_keys and not result.reinitialized_keys
    video = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.allclose(nl(video), i3d(video), atol=1e-6)
        # ... and the blocks do act once their final BN is no longer zero.
        for name, module in nl.named_modules():
            if name.endswith("nonlocal_block.norm"):
                module.weight.fill_(1.0)
        assert not torch.allclose(nl(video), i3d(video), atol=1e-3)
