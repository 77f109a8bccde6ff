"""What the break board shows: each account's last run and open breaks, kept current from the streams.

`BoardState` starts from the audit store (`seed`) and then takes every stream entry
(`apply`): a result replaces the account's last run, a discrepancy opens or refreshes
its break, a resolved notice closes it, a halt marks it. Entries are applied by what
they say happened, not by when they arrive, so replaying entries the store already
holds changes nothing: an entry older than what the board knows is ignored.

Each account is also judged alive or not (`Liveness`): a result says when the next
periodic run is due (`next_run_due`); once that time has passed by `stale_grace` without
a newer result, the account is stale (its service stopped or hangs). A one-off run
(`reconciliation check`) has no next run: its account is shown apart and forgotten
`ONE_OFF_SHOWN_FOR` after it ran.

Each account shows its owner (`Owner`): the runtime whose lease its last result entry
was made under, and the lease's token, so a takeover shows as the owner changing. A run
seeded from the audit store has no known owner.

It is plain logic, no I/O: the web app owns one and calls it from its event loop.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import attrs

from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.fencing import Fence
from reconciliation._wire.payloads import (
    CORRECTION_CHANNEL,
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
    decimal_text,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciliation._domain.breaks import BreakState
    from reconciliation._publishing.inbound import Message
    from reconciliation.audit import RunRecord

__all__ = [
    "ONE_OFF_SHOWN_FOR",
    "SEVERITY_ORDER",
    "STALE_GRACE",
    "AccountView",
    "BoardState",
    "BreakView",
    "FeedStatus",
    "Liveness",
    "Owner",
    "RunView",
]

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
"""How breaks are sorted: the most severe first."""

BreakKey = tuple[str, str | None, str | None, str | None]
"""A break within its account, as docs/payloads.md identifies it: (type, symbol, asset
type, currency). At most one break per key is open."""

STALE_GRACE = dt.timedelta(minutes=2)
"""How long past its `next_run_due` an account may go without a result before it is stale:
a run's result comes at its end, and a run may wait out a broker timeout first."""
ONE_OFF_SHOWN_FOR = dt.timedelta(hours=1)
"""How long a one-off run's account (`reconciliation check`) stays on the board."""

Status = Literal["failing", "stale", "critical", "warning", "info", "clean", "unknown"]
_BREAK_STATUS: dict[str, Status] = {"critical": "critical", "warning": "warning", "info": "info"}
_WORST_FIRST: tuple[Status, ...] = ("failing", "stale", "critical", "warning", "info", "clean", "unknown")


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@attrs.frozen
class Owner:
    """The lease a run was made under: the runtime that owned the account and its token, or none."""

    fence: Fence | None

    def __str__(self) -> str:
        """`eu-1 (token 2)`, or `no lease` for a run made without one."""
        return "no lease" if self.fence is None else f"{self.fence.runtime} (token {self.fence.token})"


@attrs.frozen
class RunView:
    """An account's last run, as the board shows it."""

    run_id: str
    status: str
    trigger: str
    timestamp: dt.datetime
    duration_ms: float
    discrepancy_count: int
    error: str | None
    next_run_due: dt.datetime | None = None
    """None: no periodic run follows it, or the payload predates the field."""
    requested_by: str | None = None
    owner: Owner | None = None
    """None: not known (a run from the audit store)."""

    @property
    def one_off(self) -> bool:
        """A run no service repeats: `reconciliation check` on two files."""
        return self.requested_by == "check" and self.next_run_due is None

    @property
    def expected_every(self) -> dt.timedelta | None:
        """The interval its periodic runs are expected at: from its end to its next run."""
        if self.next_run_due is None:
            return None
        return self.next_run_due - self.timestamp - dt.timedelta(milliseconds=self.duration_ms)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], fence: Fence | None) -> RunView:
        """The run a result payload describes, made under the lease `fence` (None: no lease)."""
        due = payload.get("next_run_due")
        return cls(
            run_id=payload["run_id"],
            status=payload["status"],
            trigger=payload["context"].get("trigger", "unknown"),
            timestamp=_moment(payload["timestamp"]),
            duration_ms=float(payload["duration_ms"]),
            discrepancy_count=payload["discrepancy_count"],
            error=payload["error"],
            next_run_due=_moment(due) if due else None,
            requested_by=payload["context"].get("requested_by"),
            owner=Owner(fence),
        )

    @classmethod
    def from_record(cls, record: RunRecord) -> RunView:
        return cls(
            run_id=str(record.run_id),
            status=record.status,
            trigger=record.context.get("trigger", "unknown"),
            timestamp=record.timestamp,
            duration_ms=record.duration_ms,
            discrepancy_count=record.discrepancy_count,
            error=record.error,
            requested_by=record.context.get("requested_by"),
        )


@attrs.frozen
class BreakView:
    """An open break, as the board shows it."""

    account_id: str
    type: str
    symbol: str | None
    severity: str
    local_value: str | None
    broker_value: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    consecutive_runs: int
    break_id: str | None
    halted: bool = False
    asset_type: str | None = None
    currency: str | None = None

    @property
    def key(self) -> BreakKey:
        return (self.type, self.symbol, self.asset_type, self.currency)

    @property
    def difference(self) -> str | None:
        """broker - local, a missing side counted as 0; None when a value is not a number."""
        try:
            broker = Decimal(self.broker_value or 0)
            local = Decimal(self.local_value or 0)
        except InvalidOperation:
            return None
        return decimal_text(broker - local) if (broker - local).is_finite() else None

    def sort_key(self) -> tuple[int, dt.datetime, str, str]:
        """Most severe first, then oldest first (the longest open)."""
        return (SEVERITY_ORDER.get(self.severity, len(SEVERITY_ORDER)), self.first_seen, self.type, self.symbol or "")

    @classmethod
    def from_state(cls, state: BreakState) -> BreakView:
        return cls(
            account_id=state.account_id,
            type=state.type.value,
            symbol=state.symbol,
            severity=state.severity.value,
            local_value=decimal_text(state.local_value),
            broker_value=decimal_text(state.broker_value),
            first_seen=state.first_seen,
            last_seen=state.last_seen,
            consecutive_runs=state.consecutive_runs,
            break_id=str(state.break_id),
            halted=state.halted_run_id is not None,
            asset_type=None if state.asset_type is None else state.asset_type.value,
            currency=state.currency,
        )


@attrs.frozen
class Liveness:
    """Whether an account's runs still come: `overdue_by` past its next run's due time."""

    stale: bool
    overdue_by: dt.timedelta | None = None
    expected_every: dt.timedelta | None = None

    @classmethod
    def of(cls, run: RunView | None, now: dt.datetime, grace: dt.timedelta) -> Liveness:
        if run is None or run.next_run_due is None:
            return cls(stale=False)
        overdue = now - run.next_run_due
        return cls(stale=overdue > grace, overdue_by=overdue, expected_every=run.expected_every)

    def since_last_run(self, run: RunView) -> dt.timedelta:
        return (self.overdue_by or dt.timedelta()) + (run.next_run_due or run.timestamp) - run.timestamp


@attrs.frozen
class AccountView:
    account_id: str
    last_run: RunView | None
    breaks: tuple[BreakView, ...]
    """Most severe first, then oldest first."""
    liveness: Liveness = Liveness(stale=False)

    @property
    def status(self) -> Status:
        """What is worst about it: failing, stale, its most severe break, or clean."""
        if self.last_run is not None and self.last_run.status == "failed":
            return "failing"
        if self.liveness.stale:
            return "stale"
        if self.breaks:
            return _BREAK_STATUS.get(self.breaks[0].severity, "warning")
        return "unknown" if self.last_run is None else "clean"

    def sort_key(self) -> tuple[int, str]:
        """Worst first: failing, stale, critical, warning, info, clean; then by id."""
        return (_WORST_FIRST.index(self.status), self.account_id)


@attrs.frozen
class FeedStatus:
    """Whether the board is following the streams, and what it last had to say about it."""

    live: bool
    detail: str
    malformed: int = 0
    last_malformed: str | None = None
    """`<stream> <id>: <why>` of the last malformed entry skipped."""


@attrs.define
class _Account:
    last_run: RunView | None = None
    breaks: dict[BreakKey, BreakView] = attrs.Factory(dict)


@attrs.define(kw_only=True)
class BoardState:
    """Every account's last run and open breaks; `version` grows with every change.

    Args:
        stale_grace: how long past its next run's due time an account goes stale.
        one_off_shown_for: how long a one-off run's account stays.
    """

    stale_grace: dt.timedelta = STALE_GRACE
    one_off_shown_for: dt.timedelta = ONE_OFF_SHOWN_FOR
    version: int = attrs.field(init=False, default=0)
    feed: FeedStatus = attrs.field(init=False, default=FeedStatus(live=False, detail="connecting to Redis"))
    _accounts: dict[str, _Account] = attrs.field(init=False, factory=dict)
    _judged: tuple[frozenset[str], frozenset[str]] = attrs.field(init=False, default=(frozenset(), frozenset()))

    def seed(self, account_id: str, last_run: RunRecord | None, open_breaks: list[BreakState]) -> None:
        """What the audit store holds for an account: the starting point."""
        account = self._accounts.setdefault(account_id, _Account())
        if last_run is not None:
            account.last_run = RunView.from_record(last_run)
        for state in open_breaks:
            view = BreakView.from_state(state)
            account.breaks[view.key] = view
        self.version += 1

    def set_feed(self, status: FeedStatus) -> None:
        self.feed = attrs.evolve(status, malformed=self.feed.malformed, last_malformed=self.feed.last_malformed)
        self.version += 1

    def apply(self, message: Message) -> bool:
        """Take one stream entry; True if the board changed."""
        if message.payload is None:
            self.feed = attrs.evolve(
                self.feed,
                malformed=self.feed.malformed + 1,
                last_malformed=f"{message.stream} {message.entry_id}: {safe_text(message.problem)}",
            )
            self.version += 1
            return True
        payload = message.payload
        account = self._accounts.setdefault(payload["account_id"], _Account())
        if message.channel == RESULT_CHANNEL:
            changed = self._result(account, payload, message.fence)
        elif message.channel == CORRECTION_CHANNEL:
            changed = False  # a correction changes the board only through the runs that follow it
        else:
            changed = {
                DISCREPANCY_CHANNEL: self._discrepancy,
                RESOLVED_CHANNEL: self._resolved,
                HALT_CHANNEL: self._halt,
            }[message.channel](account, payload)
        if changed:
            self.version += 1
        return changed

    def accounts(self, now: dt.datetime | None = None) -> list[AccountView]:
        """Every account a service runs, worst first (`AccountView.sort_key`), each with its
        open breaks, most severe then oldest first; judged alive or not at `now` (by default now)."""
        now = now or dt.datetime.now(dt.UTC)
        return sorted((view for view in self._views(now) if not _one_off(view)), key=AccountView.sort_key)

    def one_offs(self, now: dt.datetime | None = None) -> list[AccountView]:
        """The accounts of one-off runs (`reconciliation check`) of the last `one_off_shown_for`, newest first."""
        now = now or dt.datetime.now(dt.UTC)
        return sorted(
            (view for view in self._views(now) if _one_off(view) and now - _ran_at(view) <= self.one_off_shown_for),
            key=_ran_at,
            reverse=True,
        )

    def judge(self, now: dt.datetime) -> bool:
        """Look again at which accounts are stale and which one-offs expired: True (and a
        new version) if that changed since the last look, so that the page shows it."""
        runs = [(account_id, account.last_run) for account_id, account in self._accounts.items()]
        judged = (
            frozenset(account_id for account_id, run in runs if Liveness.of(run, now, self.stale_grace).stale),
            frozenset(
                account_id
                for account_id, run in runs
                if run is not None and run.one_off and now - run.timestamp > self.one_off_shown_for
            ),
        )
        if judged == self._judged:
            return False
        self._judged = judged
        self.version += 1
        return True

    def _views(self, now: dt.datetime) -> list[AccountView]:
        return [
            AccountView(
                account_id,
                account.last_run,
                tuple(sorted(account.breaks.values(), key=BreakView.sort_key)),
                Liveness.of(account.last_run, now, self.stale_grace),
            )
            for account_id, account in self._accounts.items()
        ]

    def open_break(self, break_id: str) -> BreakView | None:
        return next(
            (view for account in self._accounts.values() for view in account.breaks.values() if view.break_id == break_id),
            None,
        )

    @staticmethod
    def _result(account: _Account, payload: Mapping[str, Any], fence: Fence | None) -> bool:
        run = RunView.from_payload(payload, fence)
        if account.last_run is not None and run.timestamp < account.last_run.timestamp:
            return False
        account.last_run = run
        if run.status == "ok" and payload["is_clean"]:
            for key in [key for key, view in account.breaks.items() if view.last_seen <= run.timestamp]:
                del account.breaks[key]
        return True

    @staticmethod
    def _discrepancy(account: _Account, payload: Mapping[str, Any]) -> bool:
        seen = _moment(payload["timestamp"])
        key = _key(payload)
        known = account.breaks.get(key)
        if known is not None and seen < known.last_seen:
            return False
        halted = known is not None and known.halted and known.break_id == payload.get("break_id")
        account.breaks[key] = _sighted(payload, known, seen, halted=halted)
        return True

    @staticmethod
    def _resolved(account: _Account, payload: Mapping[str, Any]) -> bool:
        key = _key_of(account, payload)
        known = account.breaks.get(key)
        if known is None:
            return False
        same_break = known.break_id is None or known.break_id == payload["break_id"]
        if not same_break or _moment(payload["resolved_at"]) < known.last_seen:
            return False
        del account.breaks[key]
        return True

    @staticmethod
    def _halt(account: _Account, payload: Mapping[str, Any]) -> bool:
        key = _key_of(account, payload)
        known = account.breaks.get(key)
        seen = _moment(payload["timestamp"])
        if known is not None and known.break_id not in {None, payload["break_id"]}:
            return False
        if known is not None and seen < known.last_seen:
            account.breaks[key] = attrs.evolve(known, halted=True)
            return True
        account.breaks[key] = _sighted(payload, known, seen, halted=True)
        return True


def _sighted(payload: Mapping[str, Any], known: BreakView | None, seen: dt.datetime, *, halted: bool) -> BreakView:
    """The break a discrepancy or halt payload shows, seen at `seen`; what the payload leaves
    out (a payload of an earlier version) kept from the `known` break."""
    first_seen = payload.get("first_seen")
    return BreakView(
        account_id=payload["account_id"],
        type=payload["type"],
        symbol=payload["symbol"],
        severity=payload["severity"],
        local_value=payload["local_value"],
        broker_value=payload["broker_value"],
        first_seen=_moment(first_seen) if first_seen else (known.first_seen if known else seen),
        last_seen=seen,
        consecutive_runs=payload.get("consecutive_runs", known.consecutive_runs + 1 if known else 1),
        break_id=payload.get("break_id", known.break_id if known else None),
        halted=halted,
        asset_type=payload.get("asset_type"),
        currency=payload.get("currency"),
    )


def _key(payload: Mapping[str, Any]) -> BreakKey:
    return (payload["type"], payload["symbol"], payload.get("asset_type"), payload.get("currency"))


def _key_of(account: _Account, payload: Mapping[str, Any]) -> BreakKey:
    """The key of the open break the payload names by its `break_id`, else its own key
    (a payload of an earlier version may lack the asset type and currency)."""
    break_id = payload.get("break_id")
    found = next((key for key, view in account.breaks.items() if break_id and view.break_id == break_id), None)
    return found or _key(payload)


def _one_off(view: AccountView) -> bool:
    return view.last_run is not None and view.last_run.one_off


def _ran_at(view: AccountView) -> dt.datetime:
    return view.last_run.timestamp if view.last_run is not None else dt.datetime.min.replace(tzinfo=dt.UTC)
