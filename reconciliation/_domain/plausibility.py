"""Whether a broker's answer is plausible against the account's recent history. Pure, no I/O.

A broker's answer is evidence, not truth: a glitching gateway answers `[]` for a book of
200 positions, or a cash balance ten times the usual. Each completed run's answer is
judged against the median of the account's recent plausible answers (before there are
any, against the engine's own book): an answer that adds or drops more than the policy's
fractions at once is *suspect*. A suspect run is published and recorded as usual, with
the reason, but no correction is derived from it or confirmed or verified by it.

A clean run — the broker agrees with the book — is plausible whatever it shows, and so
is every plausible run taken into the history; a suspect one is not, so two glitches in
a row are judged against the same history and are both suspect.
"""

from __future__ import annotations

import collections
import statistics
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from reconciliation._domain.values import EXACT, exact_decimal, finite_decimal, non_negative, whole_number

if TYPE_CHECKING:
    from reconciliation._domain.models import Snapshot

__all__ = ["AnswerFigures", "AnswerHistory", "PlausibilityPolicy"]


@attrs.frozen
class PlausibilityPolicy:
    """When a broker's answer is too unlike the account's recent ones to act on (docs/configuration.md).

    .. versionadded:: 0.1
    """

    max_position_change: Decimal = attrs.field(
        default=Decimal("0.5"), converter=exact_decimal, validator=[finite_decimal, non_negative]
    )
    """The largest fraction of the usual number of positions an answer may add or drop at once."""
    min_position_change: int = attrs.field(default=3, validator=whole_number(0))
    """A change of fewer positions than this is never suspect (a small book's normal day)."""
    max_notional_change: Decimal = attrs.field(
        default=Decimal("0.5"), converter=exact_decimal, validator=[finite_decimal, non_negative]
    )
    """The largest move of the gross notional (the sum of |market value|) at once, as a fraction
    of the account's usual size (|cash| plus gross notional): a new account's first purchases
    are not suspect."""
    max_cash_change: Decimal = attrs.field(
        default=Decimal("0.5"), converter=exact_decimal, validator=[finite_decimal, non_negative]
    )
    """The largest move of cash at once, as a fraction of the account's usual size (|cash| plus
    gross notional)."""
    history_runs: int = attrs.field(default=5, validator=whole_number(1, 1000))
    """How many recent plausible answers the usual figures are the median of."""


@attrs.frozen
class AnswerFigures:
    """What an answer is judged by: its number of positions, gross notional and cash."""

    positions: int
    gross_notional: Decimal | None
    """None when not known (the engine's book has no market values; a columnar answer)."""
    cash: Decimal

    @property
    def size(self) -> Decimal:
        """The account's size as this answer shows it: |cash| plus the gross notional when known."""
        return EXACT.add(self.cash.copy_abs(), self.gross_notional or Decimal(0))

    @classmethod
    def of_broker(cls, snapshot: Snapshot) -> AnswerFigures:
        side = snapshot.broker_positions
        if not isinstance(side, tuple):  # columns (a snapshot holds a tuple or columns)
            return cls(len(side), None, snapshot.broker_account.cash)
        gross = Decimal(0)
        held = 0
        for position in side:
            if position.quantity:
                held += 1
                gross = EXACT.add(gross, position.market_value.copy_abs())
        return cls(held, gross, snapshot.broker_account.cash)

    @classmethod
    def of_book(cls, snapshot: Snapshot) -> AnswerFigures:
        side = snapshot.local_positions
        held = sum(1 for p in side if p.quantity) if isinstance(side, tuple) else len(side)
        return cls(held, None, snapshot.local_account.cash)


class AnswerHistory:
    """One account's recent plausible broker answers. Not thread-safe: its actor owns it."""

    def __init__(self, policy: PlausibilityPolicy) -> None:
        self._policy = policy
        self._recent: collections.deque[AnswerFigures] = collections.deque(maxlen=policy.history_runs)

    def judge(self, snapshot: Snapshot, *, clean: bool) -> str | None:
        """Why the run's broker answer is suspect, or None when it is plausible (and then kept)."""
        figures = AnswerFigures.of_broker(snapshot)
        reason = None if clean else self._implausible(figures, list(self._recent) or [AnswerFigures.of_book(snapshot)])
        if reason is None:
            self._recent.append(figures)
        return reason

    def _implausible(self, now: AnswerFigures, recent: list[AnswerFigures]) -> str | None:
        policy = self._policy
        usual_positions = statistics.median_low(f.positions for f in recent)
        moved = abs(now.positions - usual_positions)
        if moved >= max(policy.min_position_change, 1) and moved > policy.max_position_change * usual_positions:
            return f"it holds {now.positions} positions where recent answers held {usual_positions}"
        size = statistics.median_low(f.size for f in recent)
        notionals = [f.gross_notional for f in recent if f.gross_notional is not None]
        if now.gross_notional is not None and notionals:
            usual_notional = statistics.median_low(notionals)
            if EXACT.subtract(now.gross_notional, usual_notional).copy_abs() > EXACT.multiply(
                policy.max_notional_change, size
            ):
                return f"its gross notional is {now.gross_notional:f} where recent answers had {usual_notional:f}"
        usual_cash = statistics.median_low(f.cash for f in recent)
        if EXACT.subtract(now.cash, usual_cash).copy_abs() > EXACT.multiply(policy.max_cash_change, size):
            return f"its cash is {now.cash:f} where recent answers had {usual_cash:f}"
        return None
