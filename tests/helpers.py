"""Shared test helpers: waiting for the pipeline without sleeping on timers."""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciliation.messages import Peers, PeersChanged, PeersRequest
from reconciliation.service import ReconciliationService


def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail the test with `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"{what} did not happen within {timeout} s"
            raise AssertionError(msg)
        time.sleep(0.005)


def settle(service: ReconciliationService) -> None:
    """Wait until every actor has handled what it was told before this call.

    An ask is handled after every message already queued, so asking the supervisor,
    then each actor in pipeline order, is a barrier for what flows down the pipeline.
    """
    peers: Peers = service.ref.ask(PeersRequest(), timeout=5)
    for role in ("debouncer", "scheduler", "fetcher", "comparator", "scheduler", "publisher"):
        getattr(peers, role).ask(PeersChanged(peers), timeout=5)
