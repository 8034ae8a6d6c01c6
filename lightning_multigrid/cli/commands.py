"""The ``lightning-multigrid`` console script (its usage text is :data:`USAGE`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lightning_multigrid.cli.parser import OneLineErrorParser
from lightning_multigrid.schedule.config_checks import validate_stages, with_batch_cap
from lightning_multigrid.schedule.lr import LrPolicy
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import (
    DEFAULT_LR_SCALING,
    DEFAULT_SHORT_CYCLE_MIN_CROP,
    DEFAULT_SPATIAL_COARSENING,
    LR_SCALING,
    SPATIAL_COARSENING,
    BaseRecipe,
    is_batch_cap,
)

__all__ = ["main", "schedule_main"]


def _factor_pair(text: str) -> tuple[float, float]:
    """``"0.25,0.7071"`` -> ``(0.25, 0.7071)`` (a long-cycle ``T factor,S factor`` pair)."""
    try:
        t, s = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'T_FACTOR,S_FACTOR', got {text!r}") from None
    return t, s


class _DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none or names its own."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default in (None, argparse.SUPPRESS) or action.default is False or action.required:
            return text
        return f"{text} (default: %(default)s)"


def _schedule_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(
        prog="lightning-multigrid schedule",
        description="Show the multigrid schedule derived from a baseline recipe.",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("--steps", type=int, nargs="+", required=True, help="baseline LR milestones, starting with 0")
    p.add_argument("--max-epochs", type=int, required=True, help="baseline epochs")
    p.add_argument("--num-frames", type=int, required=True, help="baseline frames per clip T0")
    p.add_argument("--crop-size", type=int, required=True, help="baseline crop side S0")
    p.add_argument("--batch-size", type=int, required=True, help="baseline GLOBAL batch B0")
    p.add_argument("--devices", type=int, default=1, help="number of devices (per-device batch, BN mode)")
    p.add_argument("--sampling-rate", type=int, default=1, help="baseline temporal stride r0")
    p.add_argument("--num-samples", type=int, default=None, help="training clips, for exact iteration counts")
    p.add_argument("--no-long-cycle", action="store_true", help="turn the long cycle (T, S grids) off")
    p.add_argument("--no-short-cycle", action="store_true", help="turn the short cycle (per-iteration crops) off")
    # Defaults come from BaseRecipe and LrPolicy, the definitions the callback uses too.
    for flag, kind, default, text in (
        ("--epoch-factor", float, BaseRecipe.epoch_factor, "multigrid epochs per baseline epoch of the long cycle"),
        ("--gamma", float, BaseRecipe.gamma, "LR decay at each step"),
        ("--bn-base-size", int, BaseRecipe.bn_base_size, "clips per BN group at the base shape"),
        ("--eval-freq", int, BaseRecipe.eval_freq, "validate every this many epochs (plus stage ends)"),
        ("--warmup-epochs", float, LrPolicy.warmup_epochs, "linear LR warm-up length"),
        ("--warmup-start-factor", float, LrPolicy.warmup_start_factor, "LR factor at the start of the warm-up"),
        ("--cosine-end-factor", float, LrPolicy.cosine_end_factor, "final LR factor of the cosine policy"),
    ):
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--long-cycle-factors", type=_factor_pair, nargs="+", default=None, metavar="T,S",
                   help="long-cycle grids as T_FACTOR,S_FACTOR pairs (default: 0.25,0.7071 0.5,0.7071 0.5,1 1,1)")
    p.add_argument("--short-cycle-factors", type=float, nargs=2, default=None, metavar="F",
                   help="the two short-cycle crop factors (default: 0.5 0.7071)")
    p.add_argument("--short-cycle-min-crop", type=int, default=DEFAULT_SHORT_CYCLE_MIN_CROP, metavar="PIXELS",
                   help="leave out short-cycle crops smaller than this (0: the reference, every crop)")
    p.add_argument("--spatial-coarsening", choices=SPATIAL_COARSENING, default=DEFAULT_SPATIAL_COARSENING,
                   help="'rescale' (the reference: a smaller crop of a smaller frame, same field of view), "
                        "'crop' (a smaller crop at the base scale: full resolution, smaller field of view) or "
                        "'auto' ('crop' where a grid crops under 64 pixels, else 'rescale')")
    p.add_argument("--lr-scaling", choices=LR_SCALING, default=DEFAULT_LR_SCALING,
                   help="a long-cycle grid's LR as its batch factor b times the base ('linear', the reference) "
                        "or sqrt(b) times ('sqrt'); 'auto': 'sqrt' where a grid crops under 64 pixels, else 'linear'")
    p.add_argument("--max-batch-factor", type=_batch_cap, default="auto", metavar="{auto,none,N}",
                   help="cap on the long cycle's batch factor; 'auto' (the callback's default) caps runs "
                        "under 600 iterations, which needs --num-samples (default: auto)")
    p.add_argument("--jitter-scales", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="baseline short-side rescale range (default: S0*8/7, S0*10/7)")
    # The callback's LR settings, with its defaults, for the LR column, the JSON and the plot.
    p.add_argument("--lr-policy", choices=("step", "cosine", "none"), default=LrPolicy.name,
                   help="the callback's lr_policy ('none': the module sets the LR; no LR column)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="also write a PNG plot")
    return p


def _batch_cap(text: str) -> int | str | None:
    """``--max-batch-factor``: ``auto``, ``none`` or a positive integer."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or not is_batch_cap(value):
        raise argparse.ArgumentTypeError(f"expected auto, none or an integer >= 1, got {text!r}")
    return value


def schedule_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lightning-multigrid schedule``; returns the exit code."""
    parser = _schedule_parser()
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error("--devices: must be a positive integer")
    if args.num_samples is not None and args.num_samples < 1:
        parser.error("--num-samples: must be a positive integer")
    try:
        recipe = BaseRecipe(
            steps=args.steps,
            max_epochs=args.max_epochs,
            num_frames=args.num_frames,
            crop_size=args.crop_size,
            batch_size=args.batch_size,
            sampling_rate=args.sampling_rate,
            gamma=args.gamma,
            epoch_factor=args.epoch_factor,
            long_cycle=not args.no_long_cycle,
            short_cycle=not args.no_short_cycle,
            bn_base_size=args.bn_base_size,
            eval_freq=args.eval_freq,
            short_cycle_min_crop=args.short_cycle_min_crop,
            spatial_coarsening=args.spatial_coarsening,
            lr_scaling=args.lr_scaling,
            jitter_scales=tuple(args.jitter_scales) if args.jitter_scales else None,
            **{name: value for name in ("long_cycle_factors", "short_cycle_factors")
               if (value := getattr(args, name)) is not None},
        )
        # As the callback applies it; "auto" resolves from the training clips (no cap without them).
        schedule = MultigridSchedule(with_batch_cap(recipe, args.max_batch_factor, args.num_samples, args.devices))
        lr = None if args.lr_policy == "none" else LrPolicy(
            args.lr_policy, args.warmup_epochs, args.warmup_start_factor, args.cosine_end_factor)
        # The callback's own stage checks (batch vs devices, BN splits, data size); its warnings
        # (plain-BN fallbacks) are the table's footnotes.
        validate_stages(schedule, args.devices, args.num_samples)
        from lightning_multigrid.schedule import report as schedule_report

        path = None
        if args.plot:  # first, so an unwritable path fails before anything is printed
            try:
                path = schedule_report.plot_schedule(schedule, args.plot, args.devices, args.num_samples, lr)
            except OSError as err:
                parser.error(f"--plot {args.plot}: {err.strerror or err}")
        if args.json:
            print(json.dumps(schedule_report.schedule_json(schedule, args.num_samples, args.devices, lr)))
        else:
            print(schedule_report.format_schedule_table(schedule, args.devices, args.num_samples, lr))
            if path is not None:
                print(f"plot written to {path}")
    except ValueError as err:
        parser.error(str(err))
    return 0


def _make_synthetic_main(argv: Sequence[str]) -> int:
    from lightning_multigrid.cli.make_synthetic import make_synthetic_main

    return make_synthetic_main(list(argv))


def _lightning_cli_main(argv: Sequence[str] | None) -> int:
    """``None``: the command line itself, which LightningCLI reads (given it as ``args``, it warns)."""
    from lightning_multigrid.cli.config_errors import is_user_setting_error, one_paragraph
    from lightning_multigrid.cli.lightning_cli import run_cli

    try:
        run_cli(argv)
    except (ValueError, FileNotFoundError) as err:
        if not is_user_setting_error(err):
            raise
        command = (sys.argv[1:] if argv is None else list(argv) or ["fit"])[0]
        print(one_paragraph(command, err), file=sys.stderr)
        return 2
    return 0


def _prepare_main(argv: Sequence[str]) -> int:
    from lightning_multigrid.cli.prepare import prepare_main

    return prepare_main(list(argv))


def recipes_main(argv: Sequence[str]) -> int:
    """``lightning-multigrid recipes [--copy DIR]``: the YAML recipes shipped inside the package."""
    from importlib.resources import files

    parser = OneLineErrorParser(prog="lightning-multigrid recipes", description=recipes_main.__doc__)
    parser.add_argument("--copy", metavar="DIR", default=None, help="write the recipes into DIR")
    parser.add_argument("--force", action="store_true", help="with --copy: overwrite recipes that differ in DIR")
    args = parser.parse_args(list(argv))
    recipes = sorted((p for p in files("lightning_multigrid").joinpath("configs").iterdir() if p.name.endswith(".yaml")),
                     key=lambda p: p.name)
    if args.copy is None:
        print("\n".join(p.name for p in recipes))
        return 0
    from pathlib import Path

    out = Path(args.copy)
    edited = [r.name for r in recipes if (out / r.name).is_file() and (out / r.name).read_text() != r.read_text()]
    if edited and not args.force:
        parser.error(f"--copy {out}: {', '.join(edited)} differ(s) from the shipped recipe (edited?); "
                     "nothing was written; add --force to overwrite, or copy into another directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for recipe in recipes:
            (out / recipe.name).write_text(recipe.read_text())
    except OSError as err:
        parser.error(f"--copy {out}: {err.strerror or err}")
    print(f"{len(recipes)} recipes written to {out}; run e.g. lightning-multigrid fit --config {out}/synthetic_demo.yaml")
    return 0


_SUBCOMMANDS = {"schedule": schedule_main, "make-synthetic": _make_synthetic_main, "prepare": _prepare_main,
                "recipes": recipes_main}
_LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

USAGE = """usage: lightning-multigrid COMMAND [ARGS]   (lightning-multigrid COMMAND --help for its options)

Multigrid training of video models with PyTorch Lightning.

commands:
  fit, validate, test, predict
                  LightningCLI over VideoClassifier and VideoDataModule; configure MultigridCallback
                  under trainer.callbacks (e.g. fit --config synthetic_demo.yaml)
  schedule        print, plot or emit as JSON the multigrid schedule of a baseline recipe
  prepare         convert a video dataset into JPEG frame folders (faster loading)
  recipes         list the shipped recipes, or copy them: recipes --copy DIR
  make-synthetic  write the synthetic action dataset (real encoded videos and CSV splits)

options:
  -h, --help      show this message
  --version       show the version"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``lightning-multigrid <subcommand> ...``."""
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _SUBCOMMANDS:
        return _SUBCOMMANDS[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help") or not argv:
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version  # noqa: PLC0415 - the installed distribution's (pyproject's)

        print(f"lightning-multigrid {version('lightning-multigrid')}")
        return 0
    if not argv[0].startswith("-") and argv[0] not in _LIGHTNING_COMMANDS:
        known = ", ".join((*_LIGHTNING_COMMANDS, *_SUBCOMMANDS))
        print(f"lightning-multigrid: error: unknown command {argv[0]!r}; choose one of {known} (see --help)",
              file=sys.stderr)
        return 2
    return _lightning_cli_main(None if command_line else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
