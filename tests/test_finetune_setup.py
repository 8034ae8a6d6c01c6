"""Fine-tuning as a user starts it: the README does not promise weights it does not load, a load is
visible at the default log level, and weights meet the data's normalisation or are refused (issue 21)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_multigrid.data import VideoDataModule
from lightning_multigrid.models import VideoClassifier, build_model

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_readme_loads_weights_only_where_it_asks_for_them() -> None:
    assert inspect.signature(VideoClassifier).parameters["pretrained"].default is False
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    for block in blocks:
        comment = ""
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                comment = line
            elif "VideoClassifier(" in line:
                loads = "pretrained=True" in line or "checkpoint_path=" in line
                assert loads or "pretrained=True reads" not in comment, f"{comment!r} above {line!r}"


def test_a_successful_weight_load_is_shown_at_the_default_log_level(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(build_model("c2d_tiny", 4).state_dict(), path)
    code = ("import pytorch_lightning\nfrom lightning_multigrid.models import VideoClassifier\n"
            f"VideoClassifier('c2d_tiny', 4, checkpoint_path={str(path)!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"loaded (\d+)/\1 model tensors from .*weights\.pth; missing keys: none", out.stdout + out.stderr)


def _fit(module: VideoClassifier, data: VideoDataModule, tmp_path: Path) -> None:
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, max_steps=1, limit_val_batches=0,
               default_root_dir=tmp_path).fit(module, datamodule=data)


def test_weights_and_data_normalisation_must_agree(synthetic_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(build_model("c2d_tiny", 4).state_dict(), path)  # pytorchvideo's constants
    options = dict(root=str(synthetic_root), num_frames=4, crop_size=32, sampling_rate=2, jitter_scales=(32, 40),
                   batch_size=2, num_workers=0)
    # torchvision's Kinetics constants, as a recipe written for r2plus1d_18 sets them.
    torchvision = VideoDataModule(**options, mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989))
    module = VideoClassifier("c2d_tiny", 4, checkpoint_path=str(path))
    before = [p.detach().clone() for p in module.parameters()]
    with pytest.raises(ValueError, match=r"data\.mean/data\.std: the c2d_tiny weights .*weights\.pth.*mean \[0\.45, 0\.45, "
                                         r"0\.45\].*Set data\.mean: \[0\.45, 0\.45, 0\.45\] and data\.std: \[0\.225"):
        _fit(module, torchvision, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))  # refused before any step
    _fit(VideoClassifier("c2d_tiny", 4, checkpoint_path=str(path)), VideoDataModule(**options), tmp_path)  # agree
    _fit(VideoClassifier("c2d_tiny", 4), torchvision, tmp_path)  # from scratch: any normalisation
