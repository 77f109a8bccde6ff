"""The collector policy a running runtime holds: what it changes, and that it undoes it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from decimal import Decimal

import fakeredis
import pytest

from reconciliation import Account, InMemoryPortfolio, ReconciliationConfig, ReconciliationRuntime
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.collector import (
    DEFAULT_THRESHOLDS,
    FULL_COLLECTION_THRESHOLD,
    POLICY,
    CollectorPolicy,
)
from reconciliation.paper import PaperBroker


@pytest.fixture(autouse=True)
def collector_as_cpython_starts() -> Iterator[None]:
    """Each test starts from CPython's defaults and leaves the collector as it found it."""
    enabled, thresholds, frozen = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    gc.enable()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if frozen:
        gc.freeze()
    if not enabled:
        gc.disable()


def test_while_held_the_objects_alive_are_frozen_and_full_collections_wait_longer() -> None:
    policy = CollectorPolicy()
    policy.hold()
    held = gc.get_freeze_count(), gc.get_threshold()
    policy.release()

    assert held[0] > 0
    assert held[1] == (DEFAULT_THRESHOLDS[0], DEFAULT_THRESHOLDS[1], FULL_COLLECTION_THRESHOLD)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == DEFAULT_THRESHOLDS


def test_the_settings_last_until_the_last_holder_releases() -> None:
    policy = CollectorPolicy()
    policy.hold()
    policy.hold()
    policy.release()
    one_left = gc.get_freeze_count(), gc.get_threshold()[2]
    policy.release()
    policy.release()

    assert one_left[0] > 0
    assert one_left[1] == FULL_COLLECTION_THRESHOLD
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, DEFAULT_THRESHOLDS)
    assert policy.holders == 0


def test_a_disabled_collector_is_left_alone() -> None:
    gc.disable()
    policy = CollectorPolicy()
    policy.hold()
    held = gc.get_freeze_count(), gc.get_threshold(), gc.isenabled()
    policy.release()

    assert held == (0, DEFAULT_THRESHOLDS, False)


def test_thresholds_of_the_hosts_own_are_kept() -> None:
    gc.set_threshold(5000, 20, 50)
    policy = CollectorPolicy()
    policy.hold()
    held = gc.get_threshold()
    policy.release()

    assert held == (5000, 20, 50)
    assert gc.get_threshold() == (5000, 20, 50)


def test_objects_the_host_froze_stay_frozen_after_the_last_release() -> None:
    gc.freeze()
    policy = CollectorPolicy()
    policy.hold()
    policy.release()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == DEFAULT_THRESHOLDS


def test_thresholds_the_host_changed_while_held_are_not_overwritten() -> None:
    policy = CollectorPolicy()
    policy.hold()
    gc.set_threshold(700, 10, 25)
    policy.release()

    assert gc.get_threshold() == (700, 10, 25)


def test_a_runtime_holds_the_policy_from_start_to_stop() -> None:
    runtime = ReconciliationRuntime(
        [Account(ReconciliationConfig("GC"), InMemoryPortfolio("GC", Decimal(1000)), PaperBroker("GC", Decimal(1000)))],
        fakeredis.FakeRedis(),
        clock=ManualClock(),
    )
    asyncio.run(runtime.start())
    running = POLICY.holders, gc.get_threshold()[2], gc.get_freeze_count() > 0
    asyncio.run(runtime.stop())
    asyncio.run(runtime.stop())

    assert running == (1, FULL_COLLECTION_THRESHOLD, True)
    assert POLICY.holders == 0
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, DEFAULT_THRESHOLDS)
