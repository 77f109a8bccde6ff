"""What a host gets from `pip install`: the metadata in pyproject.toml, a version, and types its mypy sees."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import reconciliation
from reconciliation._runtime.service import ReconciliationService

ROOT = Path(__file__).resolve().parent.parent

HOST = """\
from reconciliation import ReconcileRequest, ReconciliationConfig, ReconciliationService

config = ReconciliationConfig("ACC-1")
reveal_type(config.interval_seconds)
reveal_type(ReconciliationService.reconcile)
request = ReconcileRequest("ACC-1", requested_by="risk")
account: int = config.account_id
"""


def test_the_version_is_the_installed_distributions() -> None:
    assert reconciliation.__version__ == importlib.metadata.version("reconciliation")


def test_the_metadata_is_pep_621_and_setup_cfg_configures_nothing() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")

    assert project["name"] == "reconciliation"
    assert project["scripts"] == {"reconciliation": "reconciliation._cli.main:main"}
    assert {"postgres", "demo", "bench", "board", "metrics", "test"} <= set(project["optional-dependencies"])
    assert setup_cfg.sections() == []


def test_a_hosts_mypy_sees_the_installed_package_and_its_types(tmp_path: Path) -> None:
    (tmp_path / "host.py").write_text(HOST)

    checked = subprocess.run(  # noqa: S603 - this interpreter's mypy, fixed arguments
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "host.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert "import-not-found" not in checked.stdout, checked.stdout
    assert "import-untyped" not in checked.stdout, checked.stdout
    assert re.search(r'host.py:4: note: Revealed type is "(builtins\.)?float"', checked.stdout)  # mypy 2 drops "builtins."
    assert "ReconciliationResult" in checked.stdout.splitlines()[1]
    assert (
        'host.py:7: error: Incompatible types in assignment (expression has type "str", variable has type "int")'
        in checked.stdout
    )
    assert checked.stdout.count("error:") == 1, checked.stdout


FIRST_USE = """\
import sys
import reconciliation
print(sorted(m for m in sys.modules if m.split(".")[0] in {"pykka", "redis"}))
from reconciliation import *
print(sorted(set(reconciliation.__all__) - set(globals())))
"""


def test_the_public_names_are_imported_at_their_first_use_each_from_its_module() -> None:
    shown = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=60, check=True
    )

    assert shown.stdout.splitlines() == ["[]", "[]"], shown.stderr
    assert sorted(" ".join(reconciliation._HOMES.values()).split()) == sorted(reconciliation.__all__)
    assert reconciliation.ReconciliationService is ReconciliationService
    assert "ReconciliationService" in dir(reconciliation)
    with pytest.raises(AttributeError, match="has no attribute 'ReconciliationServce'"):
        _ = reconciliation.ReconciliationServce
