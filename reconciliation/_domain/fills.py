"""Fills as both sides report them, and what explains a position break. Pure, no I/O.

When a position break fires, the first question is which fill caused it. Both books may
answer `get_fills(account_id, symbol, since)`; `explain` matches the two lists — by the
venue's execution id first, then by side, quantity and price within a time window — and
says which fills the engine never booked, which the broker does not have, and which
matched but differ. Its verdict is `explained` when those fills account for the whole
gap between the two quantities, exactly; `partly_explained` when they account for some
of it; `unexplained` when no fill differs (or none could be read).
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, cast

import attrs

from reconciliation._domain.models import AssetType, OrderFill
from reconciliation._domain.values import (
    EXACT,
    exact_decimal,
    finite_decimal,
    name_text,
    utc_datetime,
    utc_only,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.breaks import BreakKey
    from reconciliation._domain.compare import Comparison
    from reconciliation._domain.models import Discrepancy, ExplanationPolicy, Snapshot

__all__ = [
    "MATCH_WINDOW",
    "Explanation",
    "Fill",
    "FillPair",
    "FillWindows",
    "Verdict",
    "explain",
    "explained",
    "fill_of",
]

Verdict = Literal["explained", "partly_explained", "unexplained"]

MATCH_WINDOW = dt.timedelta(seconds=60)
"""Two fills without a shared execution id are one if their side, quantity and price agree
and their times are at most this far apart (clocks and venues stamp fills differently)."""

_ZERO = Decimal(0)


@attrs.frozen
class Fill:
    """One execution, as a book or a broker reports it: `quantity` signed (a buy > 0).

    `fill_id` is the reporter's own id of the execution; an engine's record gives the
    venue's execution id as `venue_fill_id` when it knows it, which matches it to the
    broker's fill for certain.

    .. versionadded:: 0.1
    """

    fill_id: str = attrs.field(validator=name_text)
    order_id: str = attrs.field(validator=name_text)
    symbol: str = attrs.field(validator=name_text)
    quantity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    price: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    asset_type: AssetType = attrs.field(default=AssetType.STOCK, validator=attrs.validators.instance_of(AssetType))
    fee: Decimal = attrs.field(default=_ZERO, converter=exact_decimal, validator=finite_decimal, kw_only=True)
    venue_fill_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(name_text), kw_only=True
    )

    @property
    def side(self) -> Literal["buy", "sell"]:
        return "buy" if self.quantity > 0 else "sell"

    def describe(self) -> str:
        """`E-123 BUY 10 @ 412.30 10:31:02`."""
        return (
            f"{self.fill_id} {self.side.upper()} {self.quantity.copy_abs():f} @ {self.price:f} "
            f"{self.timestamp:%H:%M:%S}"
        )


def fill_of(record: Fill | OrderFill) -> Fill:
    """A book's fill record as a `Fill`: an `OrderFill` (the engine's message) is taken as is."""
    if isinstance(record, Fill):
        return record
    if isinstance(record, OrderFill):
        return Fill(
            record.fill_id,
            record.order_id,
            record.symbol,
            record.quantity,
            record.price,
            record.timestamp,
            record.asset_type,
            fee=record.commission,
        )
    msg = f"a fill must be a Fill or an OrderFill, not {type(record).__name__}"
    raise TypeError(msg)


@attrs.frozen
class FillPair:
    """One execution both sides report, with a different quantity or price."""

    local: Fill
    broker: Fill


@attrs.frozen
class Explanation:
    """What explains a position break: the fills behind it, and a verdict.

    `gap` is the broker's quantity minus the book's; `explained` the net quantity of the
    fills named: the broker's fills the engine never booked, less the engine's fills the
    broker does not have, plus what the differing pairs differ by. `note` says what was
    not read (a timeout, a cap, fills that could not be used).

    .. versionadded:: 0.1
    """

    verdict: Verdict
    gap: Decimal
    explained: Decimal
    missing_locally: tuple[Fill, ...] = ()
    """The broker's fills the engine never booked."""
    missing_at_broker: tuple[Fill, ...] = ()
    """The engine's fills the broker does not have."""
    differing: tuple[FillPair, ...] = ()
    note: str | None = None

    @classmethod
    def unread(cls, gap: Decimal, note: str) -> Explanation:
        """No fills could be read (`note` says why): the break is unexplained."""
        return cls("unexplained", gap, _ZERO, note=note)

    def summary(self) -> str:
        """`explained: broker fill E-123 BUY 10 @ 412.30 10:31:02 not booked`."""
        parts = [f"broker fill {fill.describe()} not booked" for fill in self.missing_locally]
        parts += [f"engine fill {fill.describe()} not at the broker" for fill in self.missing_at_broker]
        parts += [
            f"fill {pair.broker.fill_id} booked as {pair.local.quantity:f} @ {pair.local.price:f}, "
            f"the broker's {pair.broker.quantity:f} @ {pair.broker.price:f}"
            for pair in self.differing
        ]
        text = f"{self.verdict.replace('_', ' ')}: " + ("; ".join(parts) if parts else "no fill differs")
        return text if self.note is None else f"{text} ({self.note})"


def explain(
    gap: Decimal,
    local: Iterable[Fill],
    broker: Iterable[Fill],
    *,
    window: dt.timedelta = MATCH_WINDOW,
    note: str | None = None,
) -> Explanation:
    """Match the engine's and the broker's fills of one position and explain its `gap`
    (the broker's quantity minus the book's). A fill id given twice on one side is one
    fill (the later copies are said in the note)."""
    local_fills, local_doubles = _unique(local)
    broker_fills, broker_doubles = _unique(broker)
    if local_doubles or broker_doubles:
        doubles = f"{local_doubles + broker_doubles} fills reported twice were taken once"
        note = doubles if note is None else f"{note}; {doubles}"
    pairs, local_left, broker_left = _match(local_fills, broker_fills, window)
    differing = tuple(
        FillPair(mine, theirs) for mine, theirs in pairs if (mine.quantity, mine.price) != (theirs.quantity, theirs.price)
    )
    changes = [
        *(fill.quantity for fill in broker_left),
        *(fill.quantity.copy_negate() for fill in local_left),
        *(EXACT.subtract(pair.broker.quantity, pair.local.quantity) for pair in differing),
    ]
    explained = functools.reduce(EXACT.add, changes, _ZERO)
    verdict: Verdict = "explained" if explained == gap else "partly_explained"
    if not changes:
        verdict = "unexplained"
    return Explanation(verdict, gap, explained, tuple(broker_left), tuple(local_left), differing, note)


def _unique(fills: Iterable[Fill]) -> tuple[list[Fill], int]:
    """The fills with each id once, in their order, and how many copies were left out."""
    given = list(fills)
    kept: dict[str, Fill] = {}
    for fill in given:
        kept.setdefault(fill.fill_id, fill)
    return list(kept.values()), len(given) - len(kept)


def _match(
    local: Sequence[Fill], broker: Sequence[Fill], window: dt.timedelta
) -> tuple[list[tuple[Fill, Fill]], list[Fill], list[Fill]]:
    """Pairs of one execution (by id, then by side, quantity, price and time), and what is left
    on each side, in time order."""
    by_id = {fill.fill_id: fill for fill in broker}
    pairs: list[tuple[Fill, Fill]] = []
    unmatched: list[Fill] = []
    for fill in local:
        theirs = by_id.pop(fill.venue_fill_id or fill.fill_id, None)
        if theirs is None and fill.venue_fill_id is not None:
            theirs = by_id.pop(fill.fill_id, None)
        if theirs is None:
            unmatched.append(fill)
        else:
            pairs.append((fill, theirs))
    candidates: dict[tuple[Decimal, Decimal], list[Fill]] = {}
    for theirs in by_id.values():
        candidates.setdefault((theirs.quantity, theirs.price), []).append(theirs)
    local_left: list[Fill] = []
    for fill in sorted(unmatched, key=lambda f: f.timestamp):
        near = [
            theirs
            for theirs in candidates.get((fill.quantity, fill.price), ())
            if abs(theirs.timestamp - fill.timestamp) <= window
        ]
        if not near:
            local_left.append(fill)
            continue
        theirs = min(near, key=lambda t: abs(t.timestamp - fill.timestamp))
        candidates[(fill.quantity, fill.price)].remove(theirs)
        pairs.append((fill, theirs))
    broker_left = sorted((f for group in candidates.values() for f in group), key=lambda f: f.timestamp)
    return pairs, local_left, broker_left


def _explainable(discrepancy: Discrepancy) -> bool:
    """A break of a position's quantity: what fills can explain (not cost, cash or equity)."""
    return discrepancy.type.kind.values == "quantity" and discrepancy.symbol is not None


class FillWindows:
    """From when to read each break's fills, for one account: from the read of the run before
    the break was first seen (the last that saw its position clean), less the match window
    (clocks differ), and never further back than the policy's lookback. Not thread-safe:
    its actor owns it."""

    def __init__(self) -> None:
        self._last_read: dt.datetime | None = None
        self._since: dict[BreakKey, dt.datetime] = {}

    def wanted(
        self, discrepancies: Iterable[Discrepancy], snapshot: Snapshot, policy: ExplanationPolicy
    ) -> tuple[tuple[str, AssetType, dt.datetime], ...]:
        """(symbol, asset type, since) of the breaks to explain, the most severe first, at most
        `policy.max_breaks`."""
        floor = snapshot.read_started_at - dt.timedelta(seconds=policy.lookback_seconds)
        margin = dt.timedelta(seconds=policy.match_window_seconds)
        breaks = sorted(filter(_explainable, discrepancies), key=lambda d: -d.severity.rank)[: policy.max_breaks]
        return tuple(
            (cast("str", d.symbol), cast("AssetType", d.asset_type), self._from(d.key, floor, margin))
            for d in breaks
        )

    def _from(self, key: BreakKey, floor: dt.datetime, margin: dt.timedelta) -> dt.datetime:
        since = self._since.get(key, self._last_read)
        return floor if since is None else max(since - margin, floor)

    def seen(self, ageing: AgeingUpdate, read_started_at: dt.datetime) -> None:
        """A run was aged: its new breaks date from the run before; ended ones are forgotten."""
        for sighting in ageing.ended:
            self._since.pop(sighting.discrepancy.key, None)
        if self._last_read is not None:
            for sighting in ageing.sightings:
                if sighting.consecutive_runs == 1:
                    self._since[sighting.discrepancy.key] = self._last_read
        self._last_read = read_started_at


def explained(
    comparison: Comparison,
    positions: Iterable[tuple[str, AssetType, dt.datetime]],
    local: Mapping[tuple[str, AssetType], Sequence[Fill]],
    broker: Mapping[tuple[str, AssetType], Sequence[Fill]],
    note: str | None,
    *,
    window: dt.timedelta,
) -> Comparison:
    """`comparison` with an explanation on the break of each of `positions` (those whose fills
    were asked for): from both sides' fills, or, where a side could not say, unexplained with
    `note`."""
    asked = {(symbol, asset_type) for symbol, asset_type, _ in positions}
    changed = []
    for discrepancy in comparison.discrepancies:
        position = (cast("str", discrepancy.symbol), cast("AssetType", discrepancy.asset_type))
        if position in asked and _explainable(discrepancy):
            gap = EXACT.subtract(discrepancy.broker_value or _ZERO, discrepancy.local_value or _ZERO)
            mine, theirs = local.get(position), broker.get(position)
            explanation = (
                Explanation.unread(gap, note or "a book could not say its fills")
                if mine is None or theirs is None
                else explain(gap, mine, theirs, window=window, note=note)
            )
            changed.append(attrs.evolve(discrepancy, explanation=explanation))
        else:
            changed.append(discrepancy)
    return attrs.evolve(comparison, discrepancies=tuple(changed))
