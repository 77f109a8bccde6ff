"""The comparator: classifies each snapshot, ages its breaks, and finishes every run.

Every run ends here, however it ends — compared, failed to read, abandoned by the
watchdog or at stop — through one step (`_finish`): the breaks are aged, the result is
handed to every sink (Redis, the audit store), the askers are answered through the
ticket's `outcome`, and the kill switch is called for what ageing confirmed.

It runs inside the host engine's process and shares its GIL. A pure-Python loop gives
the GIL to other threads only every switch interval (5 ms), so a large comparison
pauses between chunks and, once `GIL_BUDGET_SECONDS` of work has passed since its last
pause, releases the GIL with `time.sleep(0)`.

A large book has a lane of its own: the first time an account's snapshot holds more than
`LARGE_RUN` positions, the comparator hands the account to its large-book lane (another
comparator actor, sharing what it remembers of each account) and from then on forwards
every message about that account there, in order; the account never comes back. A
million-position comparison then runs beside the other accounts' runs, not ahead of them. During a large run the cyclic garbage
collector is paused too: a full collection of a million-position heap holds the GIL
for 50-60 ms, and the run's own allocations would trigger it. See docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.ageing import AgeingUpdate, BreakTracker
from reconciliation._domain.compare import compare
from reconciliation._domain.fills import FillWindows, explained
from reconciliation._domain.plausibility import AnswerHistory
from reconciliation._domain.sinks import FinishedRun
from reconciliation._runtime.actor_base import ResilientActor, ticket_of
from reconciliation._runtime.messages import (
    AbandonRun,
    EscalateBreak,
    FillsRead,
    FillsWanted,
    SnapshotFailed,
    SnapshotTaken,
)
from reconciliation._runtime.observers import PROCESS_OBSERVERS, Observers
from reconciliation._runtime.results import completed_result, failed_result

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Sequence

    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.compare import Comparison
    from reconciliation._domain.models import ReconciliationConfig, ReconciliationResult, Snapshot
    from reconciliation._runtime.actor_base import Teller
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard
    from reconciliation._runtime.messages import HaltCallback, RunTicket

__all__ = [
    "GIL_BUDGET_SECONDS",
    "LARGE_RUN",
    "AccountMemory",
    "ComparatorActor",
    "GilBudget",
    "LargeBookLane",
    "paused_gc",
]

logger = logging.getLogger(__name__)

GIL_BUDGET_SECONDS = 0.0005
"""The longest the comparison holds the GIL before it lets other threads run."""

LARGE_RUN = 20_000
"""Positions (both sides) past which the comparison pauses and the collector is paused;
a smaller run takes less than the interpreter's own switch interval."""


class GilBudget:
    """A comparison's `pause`: releases the GIL once the budget since the last release is spent."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._since >= GIL_BUDGET_SECONDS:
            time.sleep(0)
            self._since = time.perf_counter()


@contextlib.contextmanager
def paused_gc(pause: bool) -> Iterator[None]:
    """No automatic cyclic collection inside the block (when `pause`); the collector's
    state is restored after it, so a host that disabled it keeps it disabled."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@attrs.frozen
class AccountMemory:
    """What the comparator remembers of each account from run to run (its answers, for
    plausibility; when its fills were last read), shared by the comparator's lanes."""

    answers: Mapping[str, AnswerHistory]
    since: Mapping[str, FillWindows]

    @classmethod
    def of(cls, accounts: Mapping[str, ReconciliationConfig], explained: Collection[str] = ()) -> AccountMemory:
        return cls(
            answers={account_id: AnswerHistory(config.plausibility) for account_id, config in accounts.items()},
            since={account_id: FillWindows() for account_id in explained if accounts[account_id].explanations.enabled},
        )


class ComparatorActor(ResilientActor):
    component = "comparator"

    def __init__(  # noqa: PLR0913 - its collaborators, each a keyword
        self,
        *,
        accounts: Mapping[str, ReconciliationConfig],
        trackers: Mapping[str, BreakTracker],
        sinks: Mapping[str, Sequence[Teller]],
        board: HealthBoard,
        clock: Clock,
        on_halt: HaltCallback | None = None,
        observers: Observers | None = None,
        read_fills: Callable[[FillsWanted], None] | None = None,
        explained: Collection[str] = (),
        memory: AccountMemory | None = None,
        large_lane: Teller | None = None,
    ) -> None:
        """`sinks` maps each account to the actors its finished runs go to: its delivery
        actors and, when it has a `CorrectionPolicy`, the corrector. The `explained`
        accounts' books both say their fills: `read_fills` has them read (the fetcher
        answers `FillsRead`) before a run with position breaks is finished. `memory` is
        shared with the `large_lane`, the comparator large books are handed to (None: this
        is that lane, or there is none)."""
        super().__init__(board=board, clock=clock)
        self._observers = observers or Observers()
        self._accounts = accounts
        self._trackers = trackers
        self._sinks = sinks
        self._on_halt = on_halt
        memory = memory or AccountMemory.of(accounts, explained)
        self._answers = memory.answers
        self._read_fills = read_fills
        self._since = memory.since
        self._large_lane = large_lane
        self._moved: set[str] = set()
        """The accounts handed to the large-book lane."""

    def handle(self, message: Any) -> Any:
        if self._large_lane is not None and self._for_large_lane(message):
            self._large_lane.tell(message)
        elif isinstance(message, SnapshotTaken):
            if message.ticket.outcome.done():
                return
            snapshot = message.snapshot
            large = len(snapshot.local_positions) + len(snapshot.broker_positions) > LARGE_RUN
            with paused_gc(large):
                comparison = compare(
                    snapshot, self._accounts[snapshot.account_id], pause=GilBudget() if large else None
                )
                suspect = self._answers[snapshot.account_id].judge(snapshot, clean=not comparison.discrepancies)
                wanted = self._fills_wanted(message.ticket, snapshot, comparison, suspect)
                if wanted is not None and self._read_fills is not None:
                    self._read_fills(wanted)
                    return
                self._complete(message.ticket, snapshot, comparison, suspect)
        elif isinstance(message, FillsRead):
            wanted = message.wanted
            if wanted.ticket.outcome.done():
                return
            config = self._accounts[wanted.ticket.account_id].explanations
            comparison = explained(
                wanted.comparison,
                wanted.positions,
                message.local,
                message.broker,
                message.note,
                window=dt.timedelta(seconds=config.match_window_seconds),
            )
            self._complete(wanted.ticket, wanted.snapshot, comparison, wanted.suspect)
        elif isinstance(message, SnapshotFailed | AbandonRun):
            if message.ticket.outcome.done():
                return
            self._finish(message.ticket, failed_result(message.ticket, message.reason, self._clock.monotonic()))
        elif isinstance(message, EscalateBreak):
            self._trackers[message.account_id].escalate(message.break_id)
        else:
            logger.warning("The comparator ignored an unexpected %s", type(message).__name__)

    def _for_large_lane(self, message: Any) -> bool:
        """Whether the message is about an account of the large-book lane, or makes it one."""
        ticket = ticket_of(message)
        account_id = message.account_id if isinstance(message, EscalateBreak) else ticket and ticket.account_id
        if account_id in self._moved:
            return True
        if not isinstance(message, SnapshotTaken):
            return False
        snapshot = message.snapshot
        if len(snapshot.local_positions) + len(snapshot.broker_positions) <= LARGE_RUN:
            return False
        logger.info(
            "Account %s holds more than %d positions: it is compared in the large-book lane from now on",
            snapshot.account_id,
            LARGE_RUN,
        )
        self._moved.add(snapshot.account_id)
        return True

    def _fills_wanted(
        self, ticket: RunTicket, snapshot: Snapshot, comparison: Comparison, suspect: str | None
    ) -> FillsWanted | None:
        """What to read to explain the run's position breaks, if its account's books say their fills."""
        windows = self._since.get(snapshot.account_id)
        if windows is None:
            return None
        policy = self._accounts[snapshot.account_id].explanations
        positions = windows.wanted(comparison.discrepancies, snapshot, policy)
        return FillsWanted(ticket, snapshot, comparison, suspect, positions) if positions else None

    def _complete(
        self, ticket: RunTicket, snapshot: Snapshot, comparison: Comparison, suspect: str | None
    ) -> None:
        result = completed_result(ticket, comparison, snapshot.taken_at, self._clock.monotonic(), suspect=suspect)
        self._finish(ticket, result, snapshot)

    def _finish(self, ticket: RunTicket, result: ReconciliationResult, snapshot: Snapshot | None = None) -> None:
        """The one way out of the pipeline: age, hand to every sink, answer, halt."""
        ageing = self._trackers[result.account_id].observe(result)
        windows = self._since.get(result.account_id)
        if windows is not None and snapshot is not None:
            windows.seen(ageing, snapshot.read_started_at)
        result = ageing.escalate(result)
        corrected = self._accounts[result.account_id].correction is not None
        self._emit(ticket, FinishedRun(result, ageing, snapshot if corrected else None, ticket.fence))
        for confirmed in ageing.halts:
            self._halt(confirmed, result)

    def _emit(self, ticket: RunTicket, run: FinishedRun) -> None:
        PROCESS_OBSERVERS.run_finished(run)
        self._observers.run_finished(run)
        for sink in self._sinks[run.result.account_id]:
            sink.tell(run)
        ticket.outcome.set_result(run.result)

    def fail_run(self, message: Any, reason: str) -> None:
        """Finishing failed (a bug, or a tracker that refused the result): the run still
        leaves, failed and unaged, so nobody waits for it and every sink hears of it."""
        ticket = ticket_of(message)
        if ticket is None or ticket.outcome.done():
            return
        result = failed_result(ticket, reason, self._clock.monotonic())
        self._emit(
            ticket,
            FinishedRun(
                result, AgeingUpdate(run_id=result.run_id, account_id=result.account_id), fence=ticket.fence
            ),
        )

    def _halt(self, confirmed: BreakState, result: ReconciliationResult) -> None:
        logger.critical(
            "Kill switch: %s%s on %s has persisted %d runs since %s (run %s)",
            confirmed.type.value,
            f" {confirmed.symbol}" if confirmed.symbol else "",
            confirmed.account_id,
            confirmed.consecutive_runs,
            confirmed.first_seen.isoformat(),
            result.run_id,
            extra={"run_id": str(result.run_id), "account_id": confirmed.account_id},
        )
        if self._on_halt is None:
            return
        try:
            self._on_halt(confirmed, result)
        except BaseException:
            logger.exception("The host's kill-switch callback failed for run %s", result.run_id)


class LargeBookLane(ComparatorActor):
    """The comparator of the accounts with large books (see the module docstring)."""

    component = "comparator:large"
