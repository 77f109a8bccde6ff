"""A click `CliRunner` that keeps stderr apart from stdout on every click the project admits."""

from __future__ import annotations

import inspect
from typing import Any

from click.testing import CliRunner


def stderr_apart(**kwargs: Any) -> CliRunner:
    """click 8.2 captures stderr apart by default and removed `mix_stderr`; 8.1 (our lowest)
    mixes the two unless told not to."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        kwargs["mix_stderr"] = False
    return CliRunner(**kwargs)
