"""What the break board shows: each account's last run and open breaks, kept current from the streams.

`BoardState` starts from the audit store (`seed`) and then takes every stream entry
(`apply`): a result replaces the account's last run, a discrepancy opens or refreshes
its break, a resolved notice closes it, a halt marks it. Entries are applied by what
they say happened, not by when they arrive, so replaying entries the store already
holds changes nothing: an entry older than what the board knows is ignored.

It is plain logic, no I/O: the web app owns one and calls it from its event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._cli.safe_text import safe_text
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

__all__ = ["SEVERITY_ORDER", "AccountView", "BoardState", "BreakView", "FeedStatus", "RunView"]

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
"""How breaks are sorted: the most severe first."""

BreakKey = tuple[str, str | None]
"""A break within its account: (type, symbol). At most one break per key is open."""


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


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

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunView:
        return cls(
            run_id=payload["run_id"],
            status=payload["status"],
            trigger=payload["context"].get("trigger", "unknown"),
            timestamp=_moment(payload["timestamp"]),
            duration_ms=float(payload["duration_ms"]),
            discrepancy_count=payload["discrepancy_count"],
            error=payload["error"],
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

    @property
    def key(self) -> BreakKey:
        return (self.type, self.symbol)

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
        )


@attrs.frozen
class AccountView:
    account_id: str
    last_run: RunView | None
    breaks: tuple[BreakView, ...]
    """Most severe first, then oldest first."""


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


class BoardState:
    """Every account's last run and open breaks; `version` grows with every change."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self.version = 0
        self.feed = FeedStatus(live=False, detail="connecting to Redis")

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
        changed = {
            RESULT_CHANNEL: self._result,
            DISCREPANCY_CHANNEL: self._discrepancy,
            RESOLVED_CHANNEL: self._resolved,
            HALT_CHANNEL: self._halt,
            CORRECTION_CHANNEL: self._correction,
        }[message.channel](account, payload)
        if changed:
            self.version += 1
        return changed

    def accounts(self) -> list[AccountView]:
        """Every account, by id, each with its open breaks, most severe then oldest first."""
        return [
            AccountView(account_id, account.last_run, tuple(sorted(account.breaks.values(), key=BreakView.sort_key)))
            for account_id, account in sorted(self._accounts.items())
        ]

    def open_break(self, break_id: str) -> BreakView | None:
        return next(
            (view for account in self._accounts.values() for view in account.breaks.values() if view.break_id == break_id),
            None,
        )

    @staticmethod
    def _result(account: _Account, payload: Mapping[str, Any]) -> bool:
        run = RunView.from_payload(payload)
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
        key = (payload["type"], payload["symbol"])
        known = account.breaks.get(key)
        if known is not None and seen < known.last_seen:
            return False
        first_seen = payload.get("first_seen")
        account.breaks[key] = BreakView(
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
            halted=known.halted if known is not None and known.break_id == payload.get("break_id") else False,
        )
        return True

    @staticmethod
    def _resolved(account: _Account, payload: Mapping[str, Any]) -> bool:
        key = (payload["type"], payload["symbol"])
        known = account.breaks.get(key)
        if known is None:
            return False
        same_break = known.break_id is None or known.break_id == payload["break_id"]
        if not same_break or _moment(payload["resolved_at"]) < known.last_seen:
            return False
        del account.breaks[key]
        return True

    @staticmethod
    def _correction(_account: _Account, _payload: Mapping[str, Any]) -> bool:
        """A correction changes the board only through the runs that follow it."""
        return False

    @staticmethod
    def _halt(account: _Account, payload: Mapping[str, Any]) -> bool:
        key = (payload["type"], payload["symbol"])
        known = account.breaks.get(key)
        seen = _moment(payload["timestamp"])
        if known is not None and known.break_id not in {None, payload["break_id"]}:
            return False
        if known is not None and seen < known.last_seen:
            account.breaks[key] = attrs.evolve(known, halted=True)
            return True
        account.breaks[key] = BreakView(
            account_id=payload["account_id"],
            type=payload["type"],
            symbol=payload["symbol"],
            severity=payload["severity"],
            local_value=payload["local_value"],
            broker_value=payload["broker_value"],
            first_seen=_moment(payload["first_seen"]),
            last_seen=seen,
            consecutive_runs=payload["consecutive_runs"],
            break_id=payload["break_id"],
            halted=True,
        )
        return True
