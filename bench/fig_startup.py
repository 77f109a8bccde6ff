"""Start-up: `reconciliation --help` as a user runs it, against `python -c "import click"`.

Each run is a whole process (the installed `reconciliation` script, its output thrown
away), the two interleaved, so the figure is what a user waits for: the interpreter,
click, and whatever the command imports before it can show its help. The target is
twice the floor: the help imports the group alone, never a command's module.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from _harness import Row, Sample, interleave

__all__ = ["startup_row"]

TARGET = 2.0


def startup_row(repeats: int) -> Row:
    script = Path(sysconfig.get_path("scripts")) / "reconciliation"
    commands = {"help": [str(script), "--help"], "click": [sys.executable, "-c", "import click"]}
    times = interleave(
        {name: lambda command=command: _run(command) for name, command in commands.items()},
        repeats,
        warmup=2,
        collect=False,
    )
    started, floor = Sample(times["help"], "ms"), Sample(times["click"], "ms")
    ratio = started.median / floor.median
    return Row(
        figure="`reconciliation --help` start-up, a whole process",
        measured=started.text(),
        baseline=f'`python -c "import click"`: {floor.text()}',
        ratio=f"{ratio:.2f}x",
        target=f"≤ {TARGET:g}x",
        met=ratio <= TARGET,
    )


def _run(command: list[str]) -> None:
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
