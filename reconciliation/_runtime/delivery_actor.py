"""The delivery actor: takes every finished run to one sink, in order, without making anyone wait.

One class for every sink (Redis, the audit store): a run is queued at once, delivered
at once if the sink answers, and otherwise kept — the queue bounded, the oldest dropped
and counted when full — while a jittered, capped backoff timer brings the actor back to
try again. A run the sink refuses for its content is set aside (logged at ERROR with its
run id, counted) so that the runs behind it are still delivered.

Given a `Journal` (the Redis sink, with a `state_dir`), a run is on disk before it counts
as queued, and what the journal holds is queued first at start; those who finish runs tell
them through a `JournalingRef`, which writes each down on the teller's thread
(docs/architecture.md, "The outbox journal").
"""

from __future__ import annotations

import logging
import queue
import random
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from reconciliation._domain.backoff import Backoff
from reconciliation._domain.correction import CorrectionEvent
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.sinks import FinishedRun, Sent, Sink, SinkUnavailableError
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.delivery import DEFAULT_BUSY_LIMIT_SECONDS, BoundedQueue, DeliveryHealth, Queued
from reconciliation._runtime.messages import TimerDue

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    import pykka

    from reconciliation._domain.sinks import Delivery, ItemCodec
    from reconciliation._runtime.clock import Clock, TimerHandle
    from reconciliation._runtime.health import HealthBoard
    from reconciliation._runtime.journal import Journal

__all__ = ["RETRY_BASE_SECONDS", "STOP_FLUSH_ATTEMPTS", "DeliveryActor", "JournalingRef"]

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.1
STOP_FLUSH_ATTEMPTS = 20
"""At stop, how many round trips may drain the queue before what is left is reported lost."""

Item = TypeVar("Item")


def queued(run: Delivery, sink: Sink[Item], journal: tuple[Journal, ItemCodec[Item]] | None) -> Queued[Item]:
    """`run` prepared for `sink`, as the queue keeps it: committed to `journal` first, if given.

    Raises:
        sqlite3.Error: the journal could not be written.
    """
    item = sink.prepare(run)
    identity, account_id = _identity(run)
    weight = max(1, sink.weight(item))
    if journal is None:
        return Queued(identity, account_id, item, weight)
    data = journal[1].encode(item)
    seq = journal[0].append(identity, account_id, data)
    return Queued(identity, account_id, item, weight, len(data), seq)


class JournalingRef(Generic[Item]):
    """Stands for a journaled delivery actor's ref to the actors that finish runs (the
    comparator, the corrector): each run or correction step is written to the journal on
    the teller's thread, then told, as one step (so the journal's order is the inbox's).
    A run the journal cannot take is told as it is, and the actor tries again (and says so)."""

    def __init__(self, ref: pykka.ActorRef[Any], sink: Sink[Item], journal: Journal, codec: ItemCodec[Item]) -> None:
        self._ref = ref
        self._sink = sink
        self._journal = (journal, codec)
        self._telling = threading.Lock()

    def tell(self, message: Any) -> None:
        if not isinstance(message, FinishedRun | CorrectionEvent):
            self._ref.tell(message)
            return
        with self._telling:
            try:
                entry = queued(message, self._sink, self._journal)
            except sqlite3.Error as error:
                logger.warning("The outbox journal did not take a run (%s): its actor tries again", describe_error(error))
                self._ref.tell(message)
            else:
                self._ref.tell(entry)


class DeliveryActor(ResilientActor, Generic[Item]):
    """Feeds one `Sink`. Its component name is `delivery:<sink name>`."""

    recovers_after_clean_run = False

    def __init__(  # noqa: PLR0913 - its sink, bounds and collaborators, each a keyword
        self,
        *,
        sink: Sink[Item],
        max_runs: int,
        max_batch_weight: int,
        retry_max_seconds: float,
        board: HealthBoard,
        clock: Clock,
        max_bytes: int | None = None,
        journal: tuple[Journal, ItemCodec[Item]] | None = None,
        busy_limit_seconds: float = DEFAULT_BUSY_LIMIT_SECONDS,
    ) -> None:
        super().__init__(board=board, clock=clock)
        self.component = f"delivery:{sink.name}"
        self._sink = sink
        self._queue: BoundedQueue[Item] = BoundedQueue(max_runs, max_bytes)
        self._journal = journal
        self._max_batch_weight = max_batch_weight
        self._backoff = Backoff(RETRY_BASE_SECONDS, retry_max_seconds, give_up_after_seconds=None)
        self._failures = 0
        """Attempts in a row the sink refused."""
        self._retry: TimerHandle | None = None
        self._delivered = 0
        self._set_aside = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None
        self._last_delivery_at: dt.datetime | None = None
        self._reachable = True
        self._busy_since: dt.datetime | None = None
        self._busy_limit_seconds = busy_limit_seconds

    def started(self) -> None:
        if self._journal is not None:
            self._replay(*self._journal)
        self._attempt()
        self._post_delivery()

    def _replay(self, journal: Journal, codec: ItemCodec[Item]) -> None:
        """Queue what the journal kept from before (a crash, a stop with Redis away), in order."""
        if journal.problem is not None:
            self.degrade(journal.problem)
        for entry in journal.entries():
            try:
                item = codec.decode(entry.data)
            except ValueError as error:
                self._set_aside += 1
                self._forget([entry.seq])
                logger.error(  # noqa: TRY400 - the reason is enough; the runs behind it go on
                    "Run %s of %s in the outbox journal %s is unreadable (%s): set aside",
                    entry.run_id,
                    entry.account_id,
                    journal.path,
                    error,
                    extra={"run_id": entry.run_id, "account_id": entry.account_id, "sink": self._sink.name},
                )
                continue
            weight = max(1, self._sink.weight(item))
            self._enqueue(Queued(entry.run_id, entry.account_id, item, weight, len(entry.data), entry.seq))
        if self._queue:
            logger.info(
                "%d runs kept in the outbox journal %s are delivered to %s first, in order",
                len(self._queue),
                journal.path,
                self._sink.name,
            )

    def handle(self, message: Any) -> Any:
        if isinstance(message, Queued):  # from a `JournalingRef`: already journaled
            self._enqueue(message)
        elif isinstance(message, FinishedRun | CorrectionEvent):
            self._accept(message)
        elif isinstance(message, TimerDue):
            self._retry = None
        else:
            logger.warning("The %s actor ignored an unexpected %s", self.component, type(message).__name__)
        if self._retry is None:
            self._attempt()
        self._post_delivery()

    def _accept(self, run: Delivery) -> None:
        try:
            self._enqueue(queued(run, self._sink, self._journal))
        except sqlite3.Error as error:
            identity, account_id = _identity(run)
            self._journal_failed(f"run {identity} of {account_id} is kept in memory only", error)
            self._enqueue(queued(run, self._sink, None))

    def _enqueue(self, entry: Queued[Item]) -> None:
        dropped = self._queue.append(entry)
        for lost in dropped:
            logger.error(
                "The %s queue is full (%d runs or %d bytes): dropped run %s of %s undelivered; %d runs lost so far",
                self._sink.name,
                self._queue.max_runs,
                self._queue.size,
                lost.run_id,
                lost.account_id,
                self._queue.dropped,
                extra={"run_id": lost.run_id, "account_id": lost.account_id, "sink": self._sink.name},
            )
        self._forget(lost.seq for lost in dropped)

    def _forget(self, seqs: Iterable[int | None]) -> None:
        """Delete journal entries the queue is done with (delivered, dropped, set aside)."""
        done = [seq for seq in seqs if seq is not None]
        if self._journal is None or not done:
            return
        try:
            self._journal[0].remove(done)
        except sqlite3.Error as error:
            self._journal_failed(f"{len(done)} entries done with stay in it (a re-send is a no-op)", error)

    def _journal_failed(self, consequence: str, error: sqlite3.Error) -> None:
        journal = self._journal[0] if self._journal is not None else None
        text = f"the outbox journal {journal.path if journal else ''} failed ({describe_error(error)}): {consequence}"
        logger.error("%s", text)
        self.degrade(text)

    def _attempt(self) -> None:
        """Deliver what is queued, oldest first, until the queue is empty or the sink fails."""
        while self._queue:
            batch = self._queue.head(self._max_batch_weight)
            try:
                sent = self._round_trip(batch)
            except SinkUnavailableError as error:
                self._unavailable(str(error))
                return
            if sent.delivered:
                self._last_delivery_at = self._clock.now()
            elif sent.refused is None:
                self._unavailable(f"{self._sink.name} took nothing of {len(batch)} runs")
                return
        self._reachable = True
        failures, self._failures = self._failures, 0
        if failures:
            logger.info("%s is available again after %d failed attempts", self._sink.name, failures)
            self._recovered()

    def _round_trip(self, batch: list[Queued[Item]]) -> Sent:
        """Send `batch` (the queue's head), take off the queue what the sink has and what it refused.

        Posted as busy while the call lasts: a call stalled past the limit shows in health
        as unreachable though this actor cannot say so (it is in the call).

        Raises:
            SinkUnavailableError: the sink took nothing, now.
        """
        self._busy_since = self._clock.now()
        self._post_delivery()
        try:
            sent = self._sink.send([entry.item for entry in batch])
        finally:
            self._busy_since = None
        self._delivered += sent.delivered
        self._forget(entry.seq for entry in self._queue.pop(sent.delivered))
        if sent.refused is not None:
            (refused,) = self._queue.pop(1)
            self._forget([refused.seq])
            self._set_aside += 1
            logger.error(
                "Run %s of %s was set aside: %s refused it (%s); the runs behind it go on",
                refused.run_id,
                refused.account_id,
                self._sink.name,
                sent.refused,
                extra={"run_id": refused.run_id, "account_id": refused.account_id, "sink": self._sink.name},
            )
        return sent

    def _unavailable(self, reason: str) -> None:
        self._failures += 1
        delay = self._backoff.delay(self._failures, uniform=random.uniform)
        self._reachable = False
        self._last_error = f"{reason} ({len(self._queue)} runs waiting)"
        self._last_error_at = self._clock.now()
        if self._failures == 1:
            logger.warning("%s is unavailable: %s; retrying with backoff", self._sink.name, self._last_error)
            self.degrade(self._last_error)
        else:
            logger.debug("%s still unavailable; next attempt in %.2f s", self._sink.name, delay)
        me = self.actor_ref
        self._retry = self._clock.call_later(delay, lambda: tell(me, TimerDue()))

    def fail_run(self, message: Any, reason: str) -> None:
        if isinstance(message, FinishedRun | CorrectionEvent | Queued):
            self._set_aside += 1
            identity, account_id = (
                (message.run_id, message.account_id) if isinstance(message, Queued) else _identity(message)
            )
            logger.error(
                "Run %s of %s could not be queued for %s: %s", identity, account_id, self._sink.name, reason
            )
        self._post_delivery()

    def stopping(self) -> None:
        """Deliver what the sink will still take, report what is left, release the sink."""
        if self._retry is not None:
            self._retry.cancel()
        for _ in range(STOP_FLUSH_ATTEMPTS):
            if not self._queue:
                break
            try:
                sent = self._round_trip(self._queue.head(self._max_batch_weight))
            except SinkUnavailableError as error:
                self._last_error = describe_error(error)
                break
            if not (sent.delivered or sent.refused):
                break
        kept = sum(1 for entry in self._queue if entry.seq is not None)
        if kept:
            logger.warning(
                "Stopping with %d runs not delivered to %s (%s): kept in the outbox journal %s, "
                "they are delivered first at the next start",
                kept,
                self._sink.name,
                self._last_error,
                self._journal[0].path if self._journal else "",
            )
        if len(self._queue) > kept:
            logger.error(
                "Stopping with %d runs (%d items) not delivered to %s: %s",
                len(self._queue) - kept,
                self._queue.weight,
                self._sink.name,
                self._last_error,
            )
        self._post_delivery()
        self._sink.close()
        if self._journal is not None:
            self._journal[0].close()

    @property
    def sink_name(self) -> str:
        return self._sink.name

    def incoming(self) -> int:
        """Messages waiting in this actor's inbox (runs, mostly), read from another thread."""
        inbox = self.actor_inbox
        return inbox.qsize() if isinstance(inbox, queue.Queue) else 0

    def cut_off(self) -> None:
        """Close the sink from another thread (stop gave up waiting): a send stalled on it
        ends with an error, and nothing is sent afterwards. Never raises: whatever closing
        raises is logged, and stop goes on to the next actor."""
        try:
            self._sink.close()
        except Exception as error:  # noqa: BLE001 - stop() must not raise
            logger.warning("Cutting off %s raised %s; the stop goes on", self._sink.name, describe_error(error))

    def _post_delivery(self) -> None:
        self._board.post(
            DeliveryHealth(
                sink=self._sink.name,
                queued_runs=len(self._queue),
                queued_items=self._queue.weight,
                delivered_runs=self._delivered,
                dropped_runs=self._queue.dropped,
                set_aside_runs=self._set_aside,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                last_delivery_at=self._last_delivery_at,
                reachable=self._reachable,
                busy_since=self._busy_since,
                busy_limit_seconds=self._busy_limit_seconds,
            )
        )


def _identity(item: Delivery) -> tuple[str, str]:
    """How the queue and the logs name an item: its run id (a correction's: `correction <event id>`)
    and its account."""
    if isinstance(item, CorrectionEvent):
        return f"correction {item.event_id}", item.account_id
    return str(item.result.run_id), item.result.account_id
