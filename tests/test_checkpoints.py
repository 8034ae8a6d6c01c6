"""Checkpoint loading: pytorchvideo .pyth via the torch hub cache, local files, fine-tuning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from pytorchvideo.models import hub
from pytorchvideo.models.hub.csn import checkpoint_paths as csn_urls
from pytorchvideo.models.hub.r2plus1d import checkpoint_paths as r2plus1d_urls
from pytorchvideo.models.hub.resnet import checkpoint_paths as resnet_urls
from pytorchvideo.models.hub.slowfast import checkpoint_paths as slowfast_urls
from pytorchvideo.models.hub.x3d import checkpoint_paths as x3d_urls

from lightning_multigrid.models import (
    CheckpointLoadResult,
    VideoClassifier,
    build_model,
    get_spec,
    load_checkpoint,
    pretrained_checkpoint_path,
)
from lightning_multigrid.models.checkpoints import UnsafeCheckpointError, read_checkpoint

CLASSIFIER = ("blocks.5.proj.bias", "blocks.5.proj.weight")  # slow_tiny: stem, 4 stages, head


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TORCH_HOME; returns its hub checkpoint folder (created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # forget any earlier torch.hub.set_dir
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def save_pyth(model: torch.nn.Module, path: Path) -> Path:
    """Save ``model`` the way pytorchvideo's model zoo files are laid out."""
    torch.save({"model_state": model.state_dict(), "epoch": 196, "cfg": "TRAIN:\n  ENABLE: True\n"}, path)
    return path


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if key not in skip:
            assert torch.equal(sa[key], sb[key]), key


def test_full_size_names_point_to_the_pytorchvideo_files(torch_home: Path) -> None:
    expected = {
        "slowfast_r50": ("SLOWFAST_8x8_R50.pyth", slowfast_urls["slowfast_r50"]),
        "slowfast_r101": ("SLOWFAST_8x8_R101.pyth", slowfast_urls["slowfast_r101"]),
        "slow_r50": ("SLOW_8x8_R50.pyth", resnet_urls["slow_r50"]),
        "i3d_r50": ("I3D_8x8_R50.pyth", resnet_urls["i3d_r50"]),
        "c2d_r50": ("C2D_8x8_R50.pyth", resnet_urls["c2d_r50"]),
        "x3d_xs": ("X3D_XS.pyth", x3d_urls["x3d_xs"]),
        "x3d_s": ("X3D_S.pyth", x3d_urls["x3d_s"]),
        "x3d_m": ("X3D_M.pyth", x3d_urls["x3d_m"]),
        "x3d_l": ("X3D_L.pyth", x3d_urls["x3d_l"]),
        "r2plus1d_r50": ("R2PLUS1D_16x4_R50.pyth", r2plus1d_urls["r2plus1d_r50"]),
        "csn_r101": ("CSN_32x2_R101.pyth", csn_urls["csn_r101"]),
    }
    for name, (file_name, url) in expected.items():
        req = get_spec(name).requirements
        assert (req.checkpoint_name, req.checkpoint_url) == (file_name, url), name
        assert url.endswith("/" + file_name)
        assert pretrained_checkpoint_path(name) == torch_home / file_name


def test_missing_pretrained_file_names_the_path_and_the_url(torch_home: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        build_model("slowfast_r50", 400, pretrained=True)
    message = str(info.value)
    assert str(torch_home / "SLOWFAST_8x8_R50.pyth") in message
    assert slowfast_urls["slowfast_r50"] in message
    with pytest.raises(FileNotFoundError, match="no public file exists for this model"):
        build_model("slow_tiny", 5, pretrained=True)


def test_pretrained_round_trip_through_the_hub_cache(torch_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(1)
    source = build_model("slow_tiny", 10)
    save_pyth(source, torch_home / "SLOW_TINY.pyth")
    with caplog.at_level(logging.INFO, logger="lightning_multigrid.models.checkpoints"):
        loaded = build_model("slow_tiny", 10, pretrained=True)
    assert_same_weights(source, loaded)
    result = loaded.checkpoint_load_result
    assert isinstance(result, CheckpointLoadResult)
    assert result.exact and result.source == str(torch_home / "SLOW_TINY.pyth")
    assert len(result.loaded_keys) == len(source.state_dict())
    assert "missing keys: none; unexpected keys: none" in caplog.text


def test_pretrained_fine_tuning_reinitialises_the_classifier(torch_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(2)
    source = build_model("slow_tiny", 10)
    with torch.no_grad():
        source.blocks[5].proj.bias.fill_(3.0)  # distinguishable from a fresh zero bias
    save_pyth(source, torch_home / "SLOW_TINY.pyth")
    with caplog.at_level(logging.INFO, logger="lightning_multigrid.models.checkpoints"):
        tuned = build_model("slow_tiny", 3, pretrained=True)
    result = tuned.checkpoint_load_result
    assert result.reinitialized_keys == CLASSIFIER
    assert (result.checkpoint_num_classes, result.model_num_classes) == (10, 3)
    assert result.missing_keys == () and result.unexpected_keys == ()
    assert not result.exact
    assert tuned.blocks[5].proj.weight.shape == (3, source.blocks[5].proj.in_features)
    assert torch.equal(tuned.blocks[5].proj.bias, torch.zeros(3))
    assert 0 < tuned.blocks[5].proj.weight.std() < 0.05  # pytorchvideo's N(0, 0.01) init
    backbone = {k: v for k, v in source.state_dict().items() if k not in CLASSIFIER}
    for key, value in tuned.state_dict().items():
        if key not in CLASSIFIER:
            assert torch.equal(value, backbone[key]), key
    assert "classifier re-initialised for fine-tuning (10 classes in the checkpoint, 3 in the model)" in caplog.text
    assert "blocks.5.proj.weight" in caplog.text


def test_real_hub_architecture_loads_through_pretrained(torch_home: Path) -> None:
    # A checkpoint written from pytorchvideo's own hub builder (X3D-XS, the smallest full model)
    # loads into the zoo's model without a single missing or unexpected key.
    torch.manual_seed(3)
    reference = hub.x3d_xs()
    save_pyth(reference, torch_home / "X3D_XS.pyth")
    ours = build_model("x3d_xs", 400, pretrained=True)
    assert ours.checkpoint_load_result.exact
    assert_same_weights(reference, ours)
    # ... and as a starting point for fine-tuning on another label set.
    tuned = build_model("x3d_xs", 5, pretrained=True)
    assert tuned.checkpoint_load_result.reinitialized_keys == ("blocks.5.proj.bias", "blocks.5.proj.weight")


@pytest.mark.parametrize("layout", ["pyth", "plain", "lightning", "ddp"])
def test_checkpoint_path_layouts(layout: str, tmp_path: Path) -> None:
    torch.manual_seed(4)
    source = build_model("c2d_tiny", 6)
    state = source.state_dict()
    if layout == "pyth":
        blob = {"model_state": state}
    elif layout == "plain":
        blob = state
    elif layout == "lightning":
        blob = {
            "state_dict": {**{f"model.{k}": v for k, v in state.items()}, "train_top1.tp": torch.zeros(1)},
            "epoch": 3,
            "hyper_parameters": {"model": "c2d_tiny", "num_classes": 6},
        }
    else:
        blob = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / f"weights.{layout}"
    torch.save(blob, path)
    loaded = build_model("c2d_tiny", 6, checkpoint_path=path)
    assert_same_weights(source, loaded)
    result = loaded.checkpoint_load_result
    assert result.exact
    assert result.ignored_keys == (("train_top1.tp",) if layout == "lightning" else ())


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = build_model("slow_tiny", 4)
    state = model.state_dict()
    dropped = "blocks.1.res_blocks.0.branch2.norm_a.running_var"
    del state[dropped]
    state["blocks.9.extra.weight"] = torch.ones(2)
    with caplog.at_level(logging.WARNING, logger="lightning_multigrid.models.checkpoints"):
        result = load_checkpoint(build_model("slow_tiny", 4), state)
    assert result.missing_keys == (dropped,)
    assert result.unexpected_keys == ("blocks.9.extra.weight",)
    assert result.source == "<state dict>"
    assert f"missing keys: [{dropped}]" in caplog.text
    assert "unexpected keys: [blocks.9.extra.weight]" in caplog.text
    with pytest.raises(RuntimeError, match="strict checkpoint loading failed"):
        load_checkpoint(build_model("slow_tiny", 4), state, strict=True)


def test_architecture_mismatch_raises_with_the_keys(tmp_path: Path) -> None:
    path = save_pyth(build_model("slow_tiny", 4, stem_dim_out=16), tmp_path / "wide.pyth")
    with pytest.raises(ValueError) as info:
        build_model("slow_tiny", 4, checkpoint_path=path)
    message = str(info.value)
    assert "blocks.0.conv.weight: checkpoint (16, 3, 1, 7, 7) vs model (8, 3, 1, 7, 7)" in message
    assert "blocks.5.proj" not in message  # the classifier has the same shape here


def test_classifier_mismatch_can_be_refused(tmp_path: Path) -> None:
    state = build_model("slow_tiny", 4).state_dict()
    with pytest.raises(ValueError, match=r"blocks.5.proj.weight: checkpoint \(4, 256\) vs model \(2, 256\)"):
        load_checkpoint(build_model("slow_tiny", 2), state, reinit_classifier=False)


def test_unrelated_checkpoint_is_refused(tmp_path: Path) -> None:
    # PySlowFast's own key names do not match pytorchvideo's.
    state = {"s1.pathway0_stem.conv.weight": torch.zeros(64, 3, 1, 7, 7)}
    with pytest.raises(ValueError, match="none of the checkpoint's 1 keys match the model"):
        load_checkpoint(build_model("slow_tiny", 4), state)
    path = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(ValueError, match=r"no state dict found.*top-level keys: \[weights\]"):
        build_model("slow_tiny", 4, checkpoint_path=path)
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*absent.pyth"):
        build_model("slow_tiny", 4, checkpoint_path=tmp_path / "absent.pyth")


def _touch_marker(path: str) -> str:
    """What the crafted checkpoint below runs when it is unpickled: it creates ``path``."""
    Path(path).touch()
    return path


class _RunsCodeWhenUnpickled:
    """A hyper-parameter whose unpickling calls :func:`_touch_marker` (any code could run there)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (_touch_marker, (self.marker,))


def test_checkpoint_that_runs_code_is_refused_unless_the_user_opts_in(tmp_path: Path) -> None:
    source = build_model("csn_tiny", 3)
    marker = tmp_path / "code_ran"
    path = tmp_path / "crafted.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()},
            "hyper_parameters": {"x": _RunsCodeWhenUnpickled(marker)},
        },
        path,
    )
    refusal = r"crafted\.ckpt holds pickled Python objects \(.*_touch_marker.*\).*allow_pickle=True"
    with pytest.raises(UnsafeCheckpointError, match=refusal):
        build_model("csn_tiny", 3, checkpoint_path=path)
    with pytest.raises(UnsafeCheckpointError, match=refusal):
        load_checkpoint(build_model("csn_tiny", 3), path)
    with pytest.raises(UnsafeCheckpointError, match=refusal):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match=refusal):
        VideoClassifier("csn_tiny", 3, checkpoint_path=str(path))
    assert not marker.exists()  # the default path never unpickled the object

    loaded = build_model("csn_tiny", 3, checkpoint_path=path, allow_pickle=True)
    assert marker.exists()  # the opt-in really unpickles (this is what the refusal protects from)
    assert_same_weights(source, loaded)
    marker.unlink()
    assert_same_weights(source, VideoClassifier("csn_tiny", 3, checkpoint_path=str(path), allow_pickle=True).model)
    assert marker.exists()


def test_files_that_are_not_checkpoints_are_named_as_such(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pth is empty \(0 bytes\)"):
        read_checkpoint(empty)
    for text in ("hello world\n", "(dp0\nS'a'\np1\n.", "model weights: see README\n"):  # text, even pickle-like text
        path = tmp_path / "notes.pth"
        path.write_text(text)
        with pytest.raises(ValueError, match=r"notes\.pth is not a checkpoint") as info:
            read_checkpoint(path)
        assert "allow_pickle" not in str(info.value)
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated\.pth cannot be read: damaged or truncated"):
        read_checkpoint(truncated)
    assert torch.equal(read_checkpoint(good)["w"], torch.ones(2))
