"""Daemon workers for plain broker calls: reused when idle, never queued behind a hung call."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import eventually

from reconciliation._runtime.workers import DaemonWorkers


def test_a_call_returns_its_value() -> None:
    workers = DaemonWorkers("test")
    assert workers.submit(lambda: 42).result(timeout=2) == 42
    workers.close()


def test_a_call_that_raises_hands_the_error_to_whoever_waits() -> None:
    workers = DaemonWorkers("test")

    def fail() -> None:
        msg = "gateway down"
        raise ConnectionError(msg)

    with pytest.raises(ConnectionError, match="gateway down"):
        workers.submit(fail).result(timeout=2)
    workers.close()


def test_an_idle_thread_is_reused() -> None:
    workers = DaemonWorkers("test")
    first = workers.submit(threading.get_ident).result(timeout=2)
    eventually(lambda: workers._idle == 1, what="the thread becoming idle")
    assert workers.submit(threading.get_ident).result(timeout=2) == first
    workers.close()


def test_a_hung_call_does_not_hold_up_the_next_one() -> None:
    workers = DaemonWorkers("test")
    release = threading.Event()
    workers.submit(release.wait)
    started = time.monotonic()
    assert workers.submit(lambda: "answered").result(timeout=2) == "answered"
    assert time.monotonic() - started < 1
    release.set()
    workers.close()


def test_the_threads_are_daemons_and_end_after_close() -> None:
    workers = DaemonWorkers("test-ends")
    workers.submit(lambda: None).result(timeout=2)
    assert all(t.daemon for t in threading.enumerate() if t.name == "test-ends")
    workers.close()
    eventually(
        lambda: not any(t.name == "test-ends" for t in threading.enumerate()), what="the threads ending"
    )


def test_submitting_after_close_is_an_error() -> None:
    workers = DaemonWorkers("test")
    workers.close()
    with pytest.raises(RuntimeError, match="closed"):
        workers.submit(lambda: None)
