"""Daemon workers for plain broker calls: reused when idle, never queued behind a hung call."""

from __future__ import annotations

import functools
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


def test_no_more_calls_run_at_once_than_the_pool_size() -> None:
    workers = DaemonWorkers("test-bounded", size=2)
    gate = threading.Event()
    running = []
    lock = threading.Lock()
    peak = [0]

    def call() -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        gate.wait(5)
        with lock:
            running.pop()

    futures = [workers.submit(call) for _ in range(10)]
    time.sleep(0.05)
    assert workers.threads == 2
    gate.set()
    for future in futures:
        future.result(timeout=5)
    assert peak[0] == 2
    workers.close()


def test_a_released_hung_call_gives_its_turn_to_the_calls_waiting_behind_it() -> None:
    workers = DaemonWorkers("test-release", size=1)
    hang = threading.Event()
    hung = workers.submit(lambda: hang.wait(10))
    waiting = workers.submit(lambda: "served")
    eventually(hung.running, what="the hung call running")
    assert not waiting.done()
    workers.release(hung)
    assert waiting.result(timeout=5) == "served"
    assert workers.threads == 2
    hang.set()
    hung.result(timeout=5)
    deadline = time.monotonic() + 5
    while workers.threads > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert workers.threads == 1
    workers.close()


def test_releasing_a_call_that_has_returned_changes_nothing() -> None:
    workers = DaemonWorkers("test-release-done", size=1)
    done = workers.submit(lambda: 1)
    done.result(timeout=5)
    workers.release(done)
    assert workers.submit(lambda: 2).result(timeout=5) == 2
    assert workers.threads == 1
    workers.close()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        DaemonWorkers("test", size=0)


def test_a_call_released_before_it_started_is_not_made() -> None:
    workers = DaemonWorkers("test-release-waiting", size=1)
    hang = threading.Event()
    workers.submit(lambda: hang.wait(10))
    made = []
    waiting = workers.submit(lambda: made.append(1))
    workers.release(waiting)
    assert waiting.cancelled()
    hang.set()
    assert workers.submit(lambda: "next").result(timeout=5) == "next"
    assert made == []
    workers.close()


def test_the_accounts_take_turns_so_one_that_floods_the_pool_delays_another_by_one_call() -> None:
    workers = DaemonWorkers("test-turns", size=1)
    hold = threading.Event()
    order: list[str] = []
    first = workers.submit(lambda: hold.wait(10), "A")
    eventually(first.running, what="the first call of A running")
    flood = [workers.submit(functools.partial(order.append, f"A{i}"), "A") for i in range(5)]
    other = workers.submit(functools.partial(order.append, "B"), "B")
    hold.set()
    for future in [*flood, other]:
        future.result(timeout=5)
    assert order == ["A0", "B", "A1", "A2", "A3", "A4"]
    workers.close()


def test_calls_waiting_behind_slow_ones_get_a_thread_of_their_own() -> None:
    workers = DaemonWorkers("test-slow", size=1, slow_seconds=0.05)
    hold = threading.Event()
    slow = workers.submit(lambda: hold.wait(10), "SLOW")
    eventually(slow.running, what="the slow call running")
    assert workers.submit(lambda: "served", "HEALTHY").result(timeout=5) == "served"
    assert not slow.done()
    hold.set()
    slow.result(timeout=5)
    workers.close()


def test_slow_calls_never_take_the_pool_past_its_thread_cap() -> None:
    workers = DaemonWorkers("test-cap", size=1, slow_seconds=0.01, max_threads=2)
    hold = threading.Event()
    slow = [workers.submit(lambda: hold.wait(10), f"SLOW-{i}") for i in range(2)]
    for future in slow:
        eventually(future.running, what="a slow call running")
    waiting = workers.submit(lambda: "served", "HEALTHY")
    time.sleep(0.1)
    assert not waiting.done()
    assert workers.threads == 2
    hold.set()
    assert waiting.result(timeout=5) == "served"
    workers.close()


def test_a_pool_capped_below_its_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be capped at 1"):
        DaemonWorkers("test", size=2, max_threads=1)


def test_closing_cancels_the_calls_still_waiting() -> None:
    workers = DaemonWorkers("test-close-waiting", size=1)
    hold = threading.Event()
    running = workers.submit(lambda: hold.wait(10))
    eventually(running.running, what="the first call running")
    waiting = workers.submit(lambda: "never")
    workers.close()
    assert waiting.cancelled()
    hold.set()
    assert running.result(timeout=5) is True
