"""Every code block of the README runs in a test, as written.

Python blocks run here (in a scratch directory). Of the shell blocks, the `schedule` block must be
the command's own output, and every `lightning-multigrid` line runs: `recipes` for real, `fit` /
`test` up to the parsed configuration (`--print_config`), since they need a dataset and GPUs; the
synthetic recipe also trains end to end in `test_cli_recipes.py`. The `make` lines must name
Makefile targets (`make -n`), and `pip install .[extra]` an extra the package declares.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_TEXT = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README_TEXT, flags=re.S)
SHELL_LINES = [
    line.split(" #")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", README_TEXT, flags=re.S)
    for line in block.splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
CLI_LINES = [line for line in SHELL_LINES if line.startswith("lightning-multigrid ")]


def _console_script() -> str:
    exe = shutil.which("lightning-multigrid", path=str(Path(sys.executable).parent))
    assert exe, "console script lightning-multigrid is not installed in this environment"
    return exe


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__readme__"})


def test_readme_schedule_block_is_the_commands_output():
    found = re.search(r"```\n\$ lightning-multigrid (schedule [^\n]*)\n(.*?)```", README_TEXT, flags=re.S)
    assert found, "the README's schedule example is missing"
    command, shown = found.groups()
    out = subprocess.run([_console_script(), *shlex.split(command)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = [line.rstrip() for line in out.stdout.strip().splitlines()]
    assert printed == [line.rstrip() for line in shown.strip().splitlines()]


def test_readme_names_its_cli_commands():
    assert {shlex.split(line)[1] for line in CLI_LINES} >= {"fit", "test"}


@pytest.mark.parametrize("line", CLI_LINES)
def test_readme_cli_line_runs(line, tmp_path):
    args = shlex.split(line)[1:]
    if args[0] in ("fit", "validate", "test", "predict"):
        args.append("--print_config")
    out = subprocess.run([_console_script(), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "args parameter is intended" not in out.stderr  # the command line reaches LightningCLI as sys.argv
    for flag, value in zip(args, args[1:]):
        if flag.startswith("--") and "." in flag:  # a command-line override reaches the configuration
            assert f"{flag[2:].split('.')[-1]}: {value}" in out.stdout


def test_readme_make_and_pip_lines_name_what_exists():
    make_targets = [shlex.split(line)[1] for line in SHELL_LINES if line.startswith("make ")]
    assert {"demo", "test"} <= set(make_targets)
    for target in make_targets:
        dry = subprocess.run(["make", "-n", target], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"
    extras = importlib.metadata.metadata("lightning-multigrid").get_all("Provides-Extra") or []
    pip_lines = [line for line in SHELL_LINES if line.startswith("pip install")]
    assert pip_lines
    for line in pip_lines:
        for extra in re.findall(r"\[(\w+)\]", line):
            assert extra in extras, f"{line!r}: the package has no extra {extra!r}"


# -- the README's argument table is MultigridCallback's signature ------------------------------------
#: Callback arguments that shape only the run, not the schedule: the `schedule` command has no flag for
#: them (baseline_epochs is its --max-epochs; long_cycle/short_cycle are --no-long-cycle/--no-short-cycle).
RUN_ONLY = {"precise_bn_batches", "precise_bn_budget", "follow_eval_schedule", "baseline_epochs", "seed",
            "precise_bn_forward", "probe_shapes", "log_schedule"}


def _argument_table() -> dict[str, str]:
    section = README_TEXT.split("## MultigridCallback arguments", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for row in re.findall(r"^\| (`.*?) \| (.*?) \|", section, flags=re.M):
        names = re.findall(r"`(\w+)`", row[0])
        defaults = row[1].split(", ") if len(names) > 1 else [row[1]]
        if len(defaults) != len(names):  # one default for all the row's names
            defaults = [row[1]] * len(names)
        for name, default in zip(names, defaults):
            assert name not in table, f"{name} is in the README's argument table twice"
            table[name] = default
    return table


def _literal(text: str):
    """A README default as a value: `"step"`, 0.1, True, 1/√2, (1/4, 1/√2), ...; None when it is prose."""
    try:
        return eval(text.strip("`").replace("√2", "2 ** 0.5"), {})  # noqa: S307 - the README's own cells
    except (SyntaxError, NameError, TypeError):
        return None


def test_readme_argument_table_is_the_callbacks_signature():
    import inspect

    from lightning_multigrid import MultigridCallback

    params = {name: p for name, p in inspect.signature(MultigridCallback.__init__).parameters.items() if name != "self"}
    table = _argument_table()
    assert list(table) == list(params), "the README's table lists MultigridCallback's arguments in order"
    for name, shown in table.items():
        default = params[name].default
        if default is inspect.Parameter.empty:
            assert shown == "required", name
        elif default is None:  # derived at run time: the table says from what
            assert _literal(shown) is None, f"{name}: the README gives {shown!r} for a default that is derived"
        elif isinstance(default, (str, bool)):
            assert _literal(shown) == default, f"{name}: README {shown!r}, signature {default!r}"
        else:  # numbers, and the cycle factors ("(1/4, 1/√2), ..." is a tuple of pairs)
            flat = lambda v: [float(x) for x in re.findall(r"[-\d.e]+", repr(v))]  # noqa: E731
            assert flat(_literal(shown)) == pytest.approx(flat(default), rel=1e-4), \
                f"{name}: README {shown!r}, signature {default!r}"


def test_schedule_command_takes_every_schedule_setting_of_the_callback():
    import inspect

    from lightning_multigrid import MultigridCallback
    from lightning_multigrid.cli.commands import _schedule_parser

    flags = {option for action in _schedule_parser()._actions for option in action.option_strings}
    params = set(inspect.signature(MultigridCallback.__init__).parameters) - {"self"} - RUN_ONLY
    renamed = {"long_cycle": "--no-long-cycle", "short_cycle": "--no-short-cycle"}
    missing = {p for p in params if renamed.get(p, "--" + p.replace("_", "-")) not in flags}
    assert not missing, f"`lightning-multigrid schedule` has no flag for {sorted(missing)}"
