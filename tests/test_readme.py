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
