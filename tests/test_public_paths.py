"""Every import path a user may have written keeps working: the package's public names, the
namespaces' classes, each module path the README, the docs, the examples and the shipped recipes
name, and the console command's entry point (the package was regrouped into subpackages; see
docs/architecture.md)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

import lightning_multigrid

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
USER_TEXTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.py")),
              *sorted((ROOT / "examples").rglob("*.yaml")), *sorted((ROOT / "lightning_multigrid" / "configs").glob("*.yaml"))]
# Paths users of the flat layout imported from, kept by the subpackages' __init__ files.
FORMER_PATHS = [
    "lightning_multigrid.schedule.MultigridSchedule",
    "lightning_multigrid.schedule.BaseRecipe",
    "lightning_multigrid.schedule.Stage",
    "lightning_multigrid.batchnorm.SplitBatchNorm3d",
    "lightning_multigrid.batchnorm.convert_to_split_batchnorm",
    "lightning_multigrid.batchnorm.update_bn_stats",
    "lightning_multigrid.callback.MultigridCallback",
    "lightning_multigrid.cli.main",
    "lightning_multigrid.adapters.ShapedTransformDataset",
    "lightning_multigrid.adapters.resample_clips",
    "lightning_multigrid.data.make_synthetic_main",
]


def resolve(path: str) -> object:
    """The module ``path`` names, or the attribute of the longest importable module prefix."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def named_paths() -> list[str]:
    found = set()
    for text_file in USER_TEXTS:
        found.update(re.findall(r"\blightning_multigrid(?:\.[A-Za-z_]\w*)+", text_file.read_text()))
    return sorted(found)


@pytest.mark.parametrize("module", ["lightning_multigrid", "lightning_multigrid.data", "lightning_multigrid.lightning",
                                    "lightning_multigrid.pytorch_lightning", "lightning_multigrid.models"])
def test_every_exported_name_resolves(module: str):
    mod = importlib.import_module(module)
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"


def test_the_texts_users_read_name_paths_that_import():
    paths = named_paths()
    assert "lightning_multigrid.adapters" in paths and "lightning_multigrid.data" in paths  # the README's
    for path in paths:
        resolve(path)


@pytest.mark.parametrize("path", FORMER_PATHS)
def test_former_paths_still_import(path: str):
    assert resolve(path) is not None


def test_former_paths_are_the_same_objects():
    assert resolve("lightning_multigrid.callback.MultigridCallback") is lightning_multigrid.MultigridCallback
    assert resolve("lightning_multigrid.schedule.MultigridSchedule") is lightning_multigrid.MultigridSchedule
    assert resolve("lightning_multigrid.batchnorm.SplitBatchNorm3d") is lightning_multigrid.SplitBatchNorm3d


def test_console_command_entry_point_is_the_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["lightning-multigrid"].partition(":")
    main = getattr(importlib.import_module(module), attr)
    assert main is resolve("lightning_multigrid.cli.commands.main")
    assert main(["--help"]) == 0


def test_file_paths_in_the_docs_exist():
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for path in re.findall(r"\blightning_multigrid/[\w/]+\.py\b", doc.read_text()):
            assert (ROOT / path).is_file(), f"{doc.name}: {path}"
