"""A component's state moves only as the transition table allows; stopped is final."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from reconciliation._runtime.actor_base import ResilientActor
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.health import TRANSITIONS, ComponentState, HealthBoard


class Worker(ResilientActor):
    component = "worker"

    def handle(self, message: Any) -> Any:
        return message


def test_every_state_has_its_transitions() -> None:
    assert set(TRANSITIONS) == set(ComponentState)


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        (ComponentState.RUNNING, ComponentState.DEGRADED, True),
        (ComponentState.DEGRADED, ComponentState.RUNNING, True),
        (ComponentState.DEGRADED, ComponentState.STOPPED, True),
        (ComponentState.RUNNING, ComponentState.RUNNING, False),
        (ComponentState.STOPPED, ComponentState.RUNNING, False),
        (ComponentState.STOPPED, ComponentState.DEGRADED, False),
    ],
)
def test_the_transition_table(before: ComponentState, after: ComponentState, allowed: bool) -> None:
    assert before.may_become(after) is allowed


def test_a_failure_reported_after_the_stop_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    board = HealthBoard()
    worker = Worker(board=board, clock=ManualClock())
    worker.on_stop()

    with caplog.at_level(logging.WARNING):
        worker.degrade("a send that ended after the stop")

    assert board.read().components["worker"].state is ComponentState.STOPPED
    assert "refused to go from stopped to degraded" in caplog.text
