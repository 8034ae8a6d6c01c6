"""The console script as a new user meets it: usage, version, unknown commands, one-paragraph
setting errors naming the config key, and `recipes --copy` that keeps edited files (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightning_multigrid.cli import main
from lightning_multigrid.schedule import BaseRecipe
from tests.test_cli_recipes import ROOT, cli

COMMANDS = ("fit", "validate", "test", "predict", "schedule", "prepare", "recipes", "make-synthetic")


def test_help_is_plain_usage_listing_every_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: lightning-multigrid COMMAND")
    assert "`" not in text  # no RST markup
    for command in COMMANDS:
        assert re.search(rf"\b{re.escape(command)}\b", text), command
    assert "--version" in text


def test_unknown_command_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown command 'trian'" in err
    for command in COMMANDS:
        assert command in err


def test_version(capsys: pytest.CaptureFixture) -> None:
    from lightning_multigrid import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lightning-multigrid {__version__}"


def test_schedule_help_gives_every_flag_help_and_its_default(capsys: pytest.CaptureFixture) -> None:
    from lightning_multigrid.cli.commands import _schedule_parser

    parser = _schedule_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag, default in (("--gamma", "0.1"), ("--epoch-factor", "1.5"), ("--bn-base-size", "8"), ("--eval-freq", "3"),
                          ("--warmup-epochs", "0.0"), ("--cosine-end-factor", "0.0"), ("--lr-policy", "step")):
        options = text[text.index("options:"):]
        block = options[options.index(f"\n  {flag} ") + 1:]
        block = block[: block.index("\n  -")] if "\n  -" in block else block
        assert f"(default: {default})" in " ".join(block.split()), flag


def test_crop_factor_message_is_rounded_and_names_the_fix() -> None:
    from lightning_multigrid.cli.config_errors import config_keys

    with pytest.raises(ValueError) as info:
        BaseRecipe(steps=[0, 5], max_epochs=8, num_frames=8, crop_size=40, batch_size=8)
    message = str(info.value)
    assert "0.7071067811865475" not in message
    assert re.search(r"S factor 0\.7071 gives crop 28 < 32; use crop_size >= 46", message), message
    keys = config_keys(message)
    assert "init_args.long_cycle_factors" in keys and "data.crop_size (--data.crop_size)" in keys


def test_setting_error_through_fit_is_one_paragraph_naming_the_key(tmp_path: Path) -> None:
    out = cli(
        "fit", "--config", str(ROOT / "examples/configs/synthetic_demo.yaml"),
        "--data.root", str(tmp_path / "data"), "--data.num_workers", "0", "--data.synthetic_videos_per_class", "3",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "4",
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    error = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, out.stderr[-3000:]
    assert "max_epochs: must exceed the last step 7, got 4" in error[0]
    assert "trainer.max_epochs" in error[0] and "init_args.steps" in error[0]


def test_synthetic_recipe_logs_several_times_an_epoch() -> None:
    import yaml

    text = (ROOT / "lightning_multigrid/configs/synthetic_demo.yaml").read_text()  # examples/configs links here
    assert text.count("log_every_n_steps:") == 1, "a repeated key: YAML keeps only one"
    config = yaml.safe_load(text)
    data = config["data"]
    # Training clips per epoch at the base shape (the generated set keeps most videos for training).
    steps_per_epoch = data["synthetic_num_classes"] * data["synthetic_videos_per_class"] // 2 // data["batch_size"]
    every = config["trainer"].get("log_every_n_steps", 50)  # Lightning's default
    assert every * 4 <= steps_per_epoch, f"log_every_n_steps={every}, {steps_per_epoch} steps an epoch"


def test_recipes_copy_keeps_edited_files_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "recipes"
    assert main(["recipes", "--copy", str(out)]) == 0
    assert main(["recipes", "--copy", str(out)]) == 0  # unchanged copies are simply rewritten ...
    shipped = (out / "finetune.yaml").read_text()
    (out / "finetune.yaml").write_text(shipped + "# my edit\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # ... but never an edited one
        main(["recipes", "--copy", str(out)])
    assert exit_info.value.code == 2
    assert "finetune.yaml" in capsys.readouterr().err and "--force" not in (out / "finetune.yaml").read_text()
    assert (out / "finetune.yaml").read_text().endswith("# my edit\n")
    assert main(["recipes", "--copy", str(out), "--force"]) == 0
    assert (out / "finetune.yaml").read_text() == shipped


def test_readme_recipe_table_lists_every_packaged_recipe() -> None:
    shipped = sorted(p.name for p in (ROOT / "lightning_multigrid" / "configs").glob("*.yaml"))
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `([\w.]+\.yaml)` \|", readme, flags=re.MULTILINE)
    assert sorted(table) == shipped
