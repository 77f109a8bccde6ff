"""What a correction of the local book is, and how one is derived from a break: pure, no I/O.

A correction brings one figure of the local book in line with the broker's:

- a position (`missing_local`, `missing_broker`, `quantity_mismatch`): a synthetic fill
  of the quantity difference (broker - local) at the broker's average cost, which opens
  the position for `missing_local` and closes it for `missing_broker` (at the local
  average cost, so that closing realises nothing); afterwards the position should have
  the broker's average cost (`avg_cost`). When the broker gives no average cost, the
  fill is priced at the broker's mark (market value / quantity) and `avg_cost` is None.
- an average cost (`cost_mismatch`): the broker's average cost.
- cash (`cash_mismatch`): the difference, broker - local, to add to the local cash.

A position correction moves no cash: a fill the engine missed shows as a position break
*and* a cash break, and each has its own correction. Equity is never corrected.

Corrections are derived only from a run that completed: a failed run says nothing
about either book.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from uuid import UUID

import attrs

from reconciliation._domain.compare import net_in_chunks, position_key
from reconciliation._domain.error_text import outside_text
from reconciliation._domain.fencing import Fence
from reconciliation._domain.fills import Fill
from reconciliation._domain.models import (
    CORRECTABLE_TYPES,
    AssetType,
    BrokerPosition,
    DiscrepancySeverity,
    DiscrepancyType,
    Position,
    describe_subject,
)
from reconciliation._domain.protocols import ColumnarPositions
from reconciliation._domain.values import (
    EXACT,
    non_empty_text,
    optional_decimal,
    optional_finite_decimal,
    quotient,
    utc_datetime,
    utc_only,
    whole_number,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from reconciliation._domain.fills import Explanation
    from reconciliation._domain.models import CorrectionPolicy, Discrepancy, Snapshot

__all__ = [
    "POSITION_TYPES",
    "Correction",
    "CorrectionEvent",
    "CorrectionStatus",
    "derive_correction",
    "propose_corrections",
]

POSITION_TYPES = frozenset(kind for kind in DiscrepancyType if kind.kind.correction == "fill")
"""The breaks a synthetic fill corrects."""

_PositionKey = str | tuple[str, AssetType]
_Side = TypeVar("_Side", Position, BrokerPosition)


def _correctable(_instance: object, _field: attrs.Attribute[Any], value: object) -> None:
    if value not in CORRECTABLE_TYPES:
        shown = value.value if isinstance(value, DiscrepancyType) else repr(value)
        msg = f"a {shown} cannot be corrected; correctable: {', '.join(sorted(t.value for t in CORRECTABLE_TYPES))}"
        raise ValueError(msg)


def _fills(value: Iterable[Fill] | None) -> tuple[Fill, ...]:
    return () if value is None else tuple(value)


def _correction_id(correction: Correction) -> UUID:
    return uuid.uuid5(correction.break_id, str(correction.run_id))


@attrs.frozen
class Correction:
    """One change to the local book that would bring one break's figure in line with the broker's.

    Identified by the break and the run it was derived from (`correction_id`, derived, so
    recording it twice writes it once). `local_value` and `broker_value` are the break's
    figures in that run; the change is `quantity` at `price` (a position: the synthetic
    fill, signed, buy > 0), then `avg_cost` (the average cost the position should have
    afterwards; None: keep what the fill gives), or `avg_cost` alone (a cost), or `cash`
    (the amount to add to the local cash; in `currency` when cash is kept per currency).

    .. versionadded:: 0.1
    """

    break_id: UUID
    run_id: UUID
    account_id: str = attrs.field(validator=non_empty_text)
    type: DiscrepancyType = attrs.field(validator=_correctable)
    symbol: str | None
    asset_type: AssetType | None
    currency: str | None
    local_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    broker_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    observed_at: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    """When the run that found the break read both books."""
    consecutive_runs: int = attrs.field(validator=whole_number(1))
    """How many runs in a row had seen the break, this one included."""
    quantity: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=optional_finite_decimal, kw_only=True
    )
    price: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=optional_finite_decimal, kw_only=True
    )
    avg_cost: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=optional_finite_decimal, kw_only=True
    )
    cash: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=optional_finite_decimal, kw_only=True
    )
    notional: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=optional_finite_decimal, kw_only=True
    )
    """The change's absolute value, what `CorrectionPolicy.max_notional` limits:
    |quantity| x price, |held quantity| x |cost change|, or |cash|; None when unknown."""
    fills: tuple[Fill, ...] = attrs.field(default=(), converter=_fills, kw_only=True)
    """For a break its fills explain exactly: the broker's fills the engine never booked, to book
    instead of the synthetic fill (their prices give the cost basis); empty otherwise."""
    correction_id: UUID = attrs.field(init=False, default=attrs.Factory(_correction_id, takes_self=True))

    def __attrs_post_init__(self) -> None:
        position = self.type in POSITION_TYPES
        if position != (self.quantity is not None):
            msg = f"a {self.type.value} correction {'needs' if position else 'has no'} a fill quantity"
            raise ValueError(msg)
        if (self.type is DiscrepancyType.CASH_MISMATCH) != (self.cash is not None):
            msg = f"a {self.type.value} correction {'needs' if self.cash is None else 'has no'} a cash amount"
            raise ValueError(msg)
        if self.type is DiscrepancyType.COST_MISMATCH and self.avg_cost is None:
            msg = "a cost_mismatch correction needs the broker's average cost"
            raise ValueError(msg)

    @property
    def key(self) -> tuple[str, DiscrepancyType, str | None, AssetType | None, str | None]:
        """The key of the break it corrects (see `Discrepancy.key`)."""
        return (self.account_id, self.type, self.symbol, self.asset_type, self.currency)

    @property
    def subject(self) -> str | None:
        """`AAPL`, `AAPL (option)`, `EUR`; None for the account's cash."""
        return describe_subject(self.symbol, self.asset_type, self.currency)

    def refusal(self, policy: CorrectionPolicy) -> str | None:
        """Why `policy` never lets it be applied (its value unknown, or over its limit), or None."""
        if self.notional is None:
            return "no positive price on either side, so its value is unknown: proposed, never applied"
        name, limit = "max_notional", policy.max_notional
        if self.currency is not None and self.cash is not None:
            name = f"max_notional_by_currency[{self.currency}]"
            limit = policy.max_notional_by_currency.get(self.currency)
            if limit is None and policy.max_notional is not None:
                return (
                    f"max_notional is in the account's currency and {self.currency} has no entry in "
                    "max_notional_by_currency: never applied"
                )
        if limit is not None and self.notional > limit:
            return f"its value ({self.notional:f}) exceeds {name} ({limit:f}): never applied"
        return None

    def describe(self) -> str:
        """The change, for people: `buy 50 AAPL at 189.50, average cost 189.50`, `add -4.95 to cash`."""
        if self.fills:
            return "book " + ", ".join(f"broker fill {fill.describe()}" for fill in self.fills)
        if self.quantity is not None:
            side = "buy" if self.quantity > 0 else "sell"
            text = f"{side} {self.quantity.copy_abs():f} {self.subject}"
            if self.price is not None:
                text += f" at {self.price:f}"
            if self.avg_cost is not None:
                text += f", average cost {self.avg_cost:f}"
            return text
        if self.cash is not None:
            return f"add {self.cash:f} to {'cash' if self.currency is None else f'{self.currency} cash'}"
        return f"set the average cost of {self.subject} to {self.avg_cost:f}"


class CorrectionStatus(enum.Enum):
    """What happened to a correction; each is published and recorded once per correction.

    .. versionadded:: 0.1
    """

    PROPOSED = "proposed"
    """Derived for a break of a correctable type (again whenever the break's figures change)."""
    CONFIRMED = "confirmed"
    """`confirm_after_runs` runs in a row have seen the break: `apply` applies it now;
    `propose` changes nothing (this is what it would apply)."""
    REFUSED = "refused"
    """Confirmed, but its value exceeds `max_notional` (or is unknown under it): never
    applied; the break is escalated to critical."""
    HELD = "held"
    """Confirmed, but not applied: a limit on applied corrections was reached, or another
    runtime holds the account's lease. Published for the first correction held in a spell
    (the alert, once; health says it for as long as it lasts). Proposals go on; a held
    correction is applied once allowed, if its break persists."""
    APPLIED = "applied"
    """The book's `apply_correction` returned."""
    UNKNOWN = "unknown"
    """`apply_correction` did not answer in time: whether it changed the book is unknown, so
    nothing more is applied for the break until the call returns and a run read after it."""
    APPLIED_LATE = "applied_late"
    """An `apply_correction` that had not answered in time returned after all."""
    FAILED = "failed"
    """`apply_correction` raised (what the book reports it changed, if anything, is in the
    reason): the break stays open, and a later run, read after the failure, that still
    confirms it tries again."""
    VERIFIED = "verified"
    """The run after the application no longer saw the break."""
    UNRESOLVED = "unresolved"
    """The run after the application still saw it: escalated to critical, and never
    corrected again automatically."""


def _event_id(event: CorrectionEvent) -> UUID:
    return uuid.uuid5(event.correction.correction_id, event.status.value)


@attrs.frozen
class CorrectionEvent:
    """A step in a correction's life, as it is published and recorded: what, when, by whom.

    .. versionadded:: 0.1
    """

    status: CorrectionStatus = attrs.field(validator=attrs.validators.instance_of(CorrectionStatus))
    correction: Correction = attrs.field(validator=attrs.validators.instance_of(Correction))
    mode: Literal["propose", "apply"] = attrs.field(validator=attrs.validators.in_(("propose", "apply")))
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    actor: str = attrs.field(validator=non_empty_text)
    """Who: the process that derived or applied it (`reconciliation@host:pid`)."""
    confirm_after_runs: int = attrs.field(validator=whole_number(1))
    severity: DiscrepancySeverity = attrs.field(validator=attrs.validators.instance_of(DiscrepancySeverity))
    """The break's severity then; critical for a refused or unresolved correction."""
    reason: str | None = attrs.field(default=None, converter=outside_text)
    """Why it was refused, failed or did not resolve."""
    verification_run_id: UUID | None = None
    """The run that checked an applied correction (verified, unresolved)."""
    fence: Fence | None = attrs.field(default=None, eq=False)
    """The lease the step was taken under (its account's owner and token then), when known;
    carried by the stream entry, not recorded by the audit store."""
    event_id: UUID = attrs.field(init=False, default=attrs.Factory(_event_id, takes_self=True))

    @property
    def account_id(self) -> str:
        return self.correction.account_id


def derive_correction(
    discrepancy: Discrepancy,
    *,
    break_id: UUID,
    run_id: UUID,
    consecutive_runs: int,
    local: Position | None,
    broker: BrokerPosition | None,
) -> Correction:
    """The correction of one break; `local` and `broker` are its position on each side, netted
    (None where a side holds none; not needed for cash).

    Raises:
        ValueError: the type cannot be corrected (equity), or a side's position is missing.
    """
    values: dict[str, Any] = {}
    kind = discrepancy.type
    if kind is DiscrepancyType.CASH_MISMATCH:
        if discrepancy.local_value is None or discrepancy.broker_value is None:
            msg = "a cash_mismatch has both figures"
            raise ValueError(msg)
        cash = EXACT.subtract(discrepancy.broker_value, discrepancy.local_value)
        values = {"cash": cash, "notional": cash.copy_abs()}
    elif kind is DiscrepancyType.COST_MISMATCH:
        if local is None or broker is None:
            msg = f"both sides' positions of {discrepancy.subject} are needed"
            raise ValueError(msg)
        if local.avg_cost is None or broker.avg_cost is None:
            msg = f"a cost_mismatch of {discrepancy.subject} has both average costs"
            raise ValueError(msg)
        change = EXACT.subtract(broker.avg_cost, local.avg_cost).copy_abs()
        values = {"avg_cost": broker.avg_cost, "notional": EXACT.multiply(local.quantity.copy_abs(), change)}
    elif kind is DiscrepancyType.MISSING_BROKER:
        if local is None:
            msg = f"the local position of {discrepancy.subject} is missing"
            raise ValueError(msg)
        values = _fill(-local.quantity, local.avg_cost, None, (local.avg_cost,))
    elif kind in POSITION_TYPES:
        if broker is None:
            msg = f"the broker's position of {discrepancy.subject} is missing"
            raise ValueError(msg)
        held_quantity = Decimal(0) if local is None else local.quantity
        quantity = EXACT.subtract(broker.quantity, held_quantity)
        mark = quotient(broker.market_value, broker.quantity) if broker.quantity else None
        evidence = (broker.avg_cost, mark, None if local is None else local.avg_cost)
        fills = _bookable(discrepancy.explanation)
        values = _fill(
            quantity,
            broker.avg_cost if broker.avg_cost is not None else mark,
            None if fills else broker.avg_cost,
            (*evidence, *(fill.price for fill in fills)),
        )
        values["fills"] = fills
    return Correction(
        break_id=break_id,
        run_id=run_id,
        account_id=discrepancy.account_id,
        type=kind,
        symbol=discrepancy.symbol,
        asset_type=discrepancy.asset_type,
        currency=discrepancy.currency,
        local_value=discrepancy.local_value,
        broker_value=discrepancy.broker_value,
        observed_at=discrepancy.timestamp,
        consecutive_runs=consecutive_runs,
        **values,
    )


def _bookable(explanation: Explanation | None) -> tuple[Fill, ...]:
    """The fills to book to correct a break by its cause: those of an exactly explained break
    that only the broker has; none otherwise (then a synthetic fill corrects it)."""
    if (
        explanation is None
        or explanation.verdict != "explained"
        or explanation.missing_at_broker
        or explanation.differing
    ):
        return ()
    return explanation.missing_locally


def _fill(
    quantity: Decimal, price: Decimal | None, avg_cost: Decimal | None, evidence: tuple[Decimal | None, ...]
) -> dict[str, Any]:
    """A synthetic fill of `quantity` at `price`, valued at the largest positive price of the
    `evidence` (the book's and the broker's costs and marks): a zero or missing price never
    makes a large change look small. With no positive price, its value is unknown (None)."""
    prices = [value for value in evidence if value is not None and value > 0]
    notional = EXACT.multiply(quantity.copy_abs(), max(prices)) if prices else None
    return {"quantity": quantity, "price": price, "avg_cost": avg_cost, "notional": notional}


def propose_corrections(
    snapshot: Snapshot,
    breaks: Iterable[tuple[Discrepancy, UUID, int]],
    *,
    run_id: UUID,
) -> tuple[Correction, ...]:
    """The correction of each break (discrepancy, break id, consecutive runs) of a correctable
    type, from the books the run compared; other types are left out.

    Linear in the snapshot's positions, read once for all the breaks.
    """
    wanted = [
        (entry, None if d.symbol is None or d.asset_type is None else position_key(d.symbol, d.asset_type))
        for entry in breaks
        if (d := entry[0]).type in CORRECTABLE_TYPES
    ]
    keys = {key for _, key in wanted if key is not None}
    local = _netted(snapshot.local_positions, keys, "local")
    broker = _netted(snapshot.broker_positions, keys, "broker")
    return tuple(
        derive_correction(
            discrepancy,
            break_id=break_id,
            run_id=run_id,
            consecutive_runs=consecutive_runs,
            local=None if key is None else local.get(key),
            broker=None if key is None else broker.get(key),
        )
        for (discrepancy, break_id, consecutive_runs), key in wanted
    )


def _netted(
    side: Sequence[_Side] | ColumnarPositions, keys: set[_PositionKey], name: Literal["local", "broker"]
) -> dict[_PositionKey, _Side]:
    """The positions of `keys` on one side (of a side given as columns, only their symbols'
    entries are read), netted as the comparison nets them; a flat one is no position."""
    if isinstance(side, ColumnarPositions):
        side = cast("Sequence[_Side]", side.entries_of({key if isinstance(key, str) else key[0] for key in keys}))
    entries = [entry for entry in side if position_key(entry.symbol, entry.asset_type) in keys]
    netted, _ = net_in_chunks([entries], name)
    return {key: position for key, position in netted.items() if position.quantity}
