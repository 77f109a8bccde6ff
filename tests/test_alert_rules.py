"""The Prometheus alert rules shipped in docs/prometheus: valid, tested by promtool, on metrics that exist.

`promtool` comes with Debian's `prometheus` package, which .ci/run installs; without it
these tests are skipped on a developer's machine but fail in CI (`CI=true`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from reconciliation.metrics import ReconciliationMetrics

RULES_DIR = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
RULES = RULES_DIR / "reconciliation.rules.yml"
RULE_TESTS = RULES_DIR / "reconciliation.rules.test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the alert rules cannot be tested in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _alerts(text: str, key: str) -> set[str]:
    """The names after `key:` in a YAML file (no YAML parser among the test dependencies)."""
    return set(re.findall(rf"^\s*-?\s*{key}:\s*(\w+)\s*$", text, flags=re.MULTILINE))


def test_promtool_finds_the_rules_valid() -> None:
    checked = subprocess.run(  # noqa: S603 - promtool on our own file
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    tested = subprocess.run(  # noqa: S603 - promtool on our own file
        [_promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True, check=False, cwd=RULES_DIR
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_rule_has_a_unit_test() -> None:
    alerts = _alerts(RULES.read_text(), "alert")

    assert alerts
    assert alerts - _alerts(RULE_TESTS.read_text(), "alertname") == set()


def test_every_metric_a_rule_reads_is_exported_from_the_start() -> None:
    registry = CollectorRegistry()
    ReconciliationMetrics(registry)
    exported = {sample.name for family in registry.collect() for sample in family.samples} | {
        family.name + suffix for family in registry.collect() for suffix in ("", "_total")
    }

    read = set(re.findall(r"\breconciliation_\w+", RULES.read_text()))

    assert read
    assert read - exported == set()
