"""Test helpers for host engines: a scriptable broker and captures of what is published.

Public API, like `structlog.testing`: an engine embedding the service can test its
integration without writing fakes of its own.

    broker = ScriptedBroker("ACC-1", cash=Decimal("1000"))
    broker.then_raise(ConnectionError("gateway down"))   # the next call fails
    broker.then_delay(5.0)                                # the one after hangs 5 s
    broker.then_return([None])                            # then malformed data

    with capture_published() as published:               # in-process: no Redis, no thread
        await service.start()
        result = await service.reconcile()
        assert published.results[-1]["run_id"] == str(result.run_id)

`RedisCapture` subscribes to a real (or fake) Redis instead, for tests of the wire.
`ManualClock` moves time by hand: pass it as the service's `clock`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from reconciliation._domain.models import BrokerAccount, BrokerPosition
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.observers import PROCESS_OBSERVERS
from reconciliation._wire.payloads import (
    CORRECTION_CHANNEL,
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
    correction_payload,
    encode,
    iter_payloads,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import TracebackType

    import redis

    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.observers import BookCallTiming
    from reconciliation._runtime.service import ReconciliationRuntime, ReconciliationService

__all__ = [
    "AsyncScriptedBroker",
    "ManualClock",
    "PublishedCapture",
    "RedisCapture",
    "ScriptedBroker",
    "capture_published",
    "settle",
]

Call = Literal["get_positions", "get_account"]


@attrs.frozen
class _Step:
    """One scripted call: it raises `error`, or answers after `seconds`, with `raw` if `given`."""

    error: BaseException | None = None
    seconds: float = 0.0
    raw: Any = None
    given: bool = False


class ScriptedBroker:
    """A `BrokerQuery` whose answers a test sets, and whose next calls can misbehave.

    By default it answers with `positions` and a `BrokerAccount` built from `cash`
    and `total_equity` (which defaults to the cash plus the positions' market value).
    Scripted steps apply to the next calls of the named method, in order.
    """

    def __init__(
        self,
        account_id: str,
        positions: Iterable[BrokerPosition] = (),
        *,
        cash: Decimal = Decimal(0),
        total_equity: Decimal | None = None,
    ) -> None:
        self.account_id = account_id
        self.positions: list[BrokerPosition] = list(positions)
        self.cash = cash
        self.total_equity = total_equity
        self.calls: list[tuple[Call, str]] = []
        self._steps: dict[Call, collections.deque[_Step]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def then_raise(self, error: BaseException, *, call: Call = "get_positions") -> None:
        self._add(call, _Step(error=error))

    def then_delay(self, seconds: float, *, call: Call = "get_positions") -> None:
        """The next call answers normally, but only after `seconds`."""
        self._add(call, _Step(seconds=seconds))

    def then_return(self, raw: Any, *, call: Call = "get_positions") -> None:
        """The next call answers `raw` as it is, however malformed."""
        self._add(call, _Step(raw=raw, given=True))

    def account(self) -> BrokerAccount:
        if self.total_equity is None:
            equity = self.cash + sum((p.market_value for p in self.positions), Decimal(0))
        else:
            equity = self.total_equity
        return BrokerAccount(self.account_id, self.cash, equity, equity, Decimal(0))

    def get_positions(self, account_id: str) -> Any:
        step = self._next("get_positions", account_id)
        if step.seconds:
            time.sleep(step.seconds)
        return self._answer(step, list(self.positions))

    def get_account(self, account_id: str) -> Any:
        step = self._next("get_account", account_id)
        if step.seconds:
            time.sleep(step.seconds)
        return self._answer(step, self.account())

    def _add(self, call: Call, step: _Step) -> None:
        with self._lock:
            self._steps[call].append(step)

    def _next(self, call: Call, account_id: str) -> _Step:
        with self._lock:
            self.calls.append((call, account_id))
            return self._steps[call].popleft() if self._steps[call] else _Step()

    @staticmethod
    def _answer(step: _Step, default: Any) -> Any:
        if step.error is not None:
            raise step.error
        return step.raw if step.given else default


class AsyncScriptedBroker(ScriptedBroker):
    """The same script, with `async` methods, as an asyncio broker client would have."""

    async def get_positions(self, account_id: str) -> Any:
        step = self._next("get_positions", account_id)
        if step.seconds:
            await asyncio.sleep(step.seconds)
        return self._answer(step, list(self.positions))

    async def get_account(self, account_id: str) -> Any:
        step = self._next("get_account", account_id)
        if step.seconds:
            await asyncio.sleep(step.seconds)
        return self._answer(step, self.account())


class _ChannelViews:
    """The payloads a capture holds, by channel: `messages` under the `_arrived` lock."""

    messages: list[tuple[str, dict[str, Any]]]
    _arrived: threading.Condition

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.on(RESULT_CHANNEL)

    @property
    def discrepancies(self) -> list[dict[str, Any]]:
        return self.on(DISCREPANCY_CHANNEL)

    @property
    def resolved(self) -> list[dict[str, Any]]:
        return self.on(RESOLVED_CHANNEL)

    @property
    def halts(self) -> list[dict[str, Any]]:
        return self.on(HALT_CHANNEL)

    @property
    def corrections(self) -> list[dict[str, Any]]:
        return self.on(CORRECTION_CHANNEL)

    def on(self, channel: str) -> list[dict[str, Any]]:
        """Every payload captured on `channel`, in order."""
        with self._arrived:
            return [payload for published_on, payload in self.messages if published_on == channel]


class PublishedCapture(_ChannelViews):
    """Every payload the services of this process publish, decoded, in publish order.

    Fed in-process and synchronously by the step every run leaves through (see
    `capture_published`): the payloads are the exact JSON that goes to Redis, whether
    or not Redis is reachable. Waiting uses a condition, never a sleep.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.run_results: list[ReconciliationResult] = []
        self._arrived = threading.Condition()

    def book_call_ended(self, timing: BookCallTiming) -> None:
        """The capture keeps runs, not calls."""

    def run_finished(self, run: FinishedRun) -> None:
        decoded = [(channel, json.loads(text)) for channel, text in iter_payloads(run.result, run.ageing)]
        with self._arrived:
            self.messages.extend(decoded)
            self.run_results.append(run.result)
            self._arrived.notify_all()

    def correction_event(self, event: CorrectionEvent) -> None:
        decoded = (CORRECTION_CHANNEL, json.loads(encode(correction_payload(event))))
        with self._arrived:
            self.messages.append(decoded)
            self._arrived.notify_all()

    def triggers(self) -> list[str]:
        """The trigger of each run, in order: `["startup", "post_fill", ...]`."""
        return [result.trigger for result in self.runs()]

    def runs(self) -> list[ReconciliationResult]:
        """Each run's result as it was published (severities after escalation)."""
        with self._arrived:
            return list(self.run_results)

    def wait_for_results(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first `count` result payloads; raises TimeoutError if they do not all come in time."""
        self.wait_for(lambda: len(self.run_results) >= count, timeout, f"{count} results")
        return self.results[:count]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0, what: str = "the condition") -> None:
        """Wait until `condition()` holds (it is checked after every run published).

        Raises:
            TimeoutError: it did not hold within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"{what} did not happen within {timeout} s ({len(self.run_results)} runs published)"
                    raise TimeoutError(msg)
                self._arrived.wait(remaining)


@contextlib.contextmanager
def capture_published() -> Iterator[PublishedCapture]:
    """Capture what every service in this process publishes while the block runs."""
    capture = PublishedCapture()
    PROCESS_OBSERVERS.add(capture)
    try:
        yield capture
    finally:
        PROCESS_OBSERVERS.remove(capture)


def settle(service: ReconciliationService | ReconciliationRuntime, timeout: float = 5.0) -> None:
    """Wait until every trigger fired so far has given its run (see `Runtime.settle`).

    With a `ManualClock`: `clock.advance(...)`, then `settle(service)`, then assert on what
    was published — including that nothing was, with no sleep.
    """
    service._runtime.settle(timeout)  # noqa: SLF001 - the test helper's own view of the service


class RedisCapture(_ChannelViews, contextlib.AbstractContextManager["RedisCapture"]):
    """Subscribes to every channel and keeps each payload, decoded, in arrival order.

    Use as a context manager; `wait_for_results(n)` blocks until n results arrived.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
        self._pubsub.subscribe(RESULT_CHANNEL, DISCREPANCY_CHANNEL, RESOLVED_CHANNEL, HALT_CHANNEL, CORRECTION_CHANNEL)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._arrived = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="redis-capture", daemon=True)
        self._thread.start()

    def wait_for_results(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first `count` results; raises TimeoutError if they do not all arrive in time."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while (have := sum(1 for c, _ in self.messages if c == RESULT_CHANNEL)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"{have} of {count} results arrived within {timeout} s"
                    raise TimeoutError(msg)
                self._arrived.wait(remaining)
        return self.results[:count]

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.05)
            except Exception:  # noqa: BLE001 - a capture outlives a Redis restart
                time.sleep(0.05)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            with self._arrived:
                self.messages.append((channel, json.loads(message["data"])))
                self._arrived.notify_all()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2.0)
        self._pubsub.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
