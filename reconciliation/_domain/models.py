"""The domain's value objects: positions, balances, fills, discrepancies, results, config.

Every class is immutable, compares by value and validates at construction: a float
where money belongs, a naive datetime or an empty symbol is refused there, with the
field's name, instead of surfacing three actors later.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import attrs

from reconciliation._domain.error_text import outside_text, shown
from reconciliation._domain.plausibility import PlausibilityPolicy
from reconciliation._domain.protocols import ColumnarPositions
from reconciliation._domain.redaction import redact_url
from reconciliation._domain.values import (
    FieldTypeError,
    FieldValueError,
    decimal_mapping,
    exact_decimal,
    finite_decimal,
    finite_seconds,
    frozen_context,
    frozen_mapping,
    name_text,
    non_empty_text,
    non_negative,
    of_type,
    optional_decimal,
    optional_decimal_mapping,
    optional_finite_decimal,
    positive_seconds,
    seconds,
    utc_datetime,
    utc_only,
    whole_number,
)

if TYPE_CHECKING:
    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.fills import Explanation  # noqa: TC004 - attrs does not evaluate annotations

__all__ = [
    "CORRECTABLE_TYPES",
    "DEFAULT_SEVERITY",
    "KINDS",
    "USD_EQUIVALENTS",
    "AgeingPolicy",
    "AssetType",
    "BrokerAccount",
    "BrokerPosition",
    "CorrectionLimits",
    "CorrectionPolicy",
    "Discrepancy",
    "DiscrepancyKind",
    "DiscrepancySeverity",
    "DiscrepancyType",
    "ExplanationPolicy",
    "LocalAccount",
    "NettedSymbol",
    "OrderFill",
    "Position",
    "ReconciliationConfig",
    "ReconciliationResult",
    "Snapshot",
    "describe_subject",
    "position_asset_type",
]


class AssetType(enum.Enum):
    """What kind of instrument a position is in; with the symbol, it identifies the position.

    .. versionadded:: 0.1
    """

    STOCK = "stock"
    OPTION = "option"
    FUTURE = "future"
    """A dated future."""
    SWAP = "swap"
    """A perpetual swap (a future without expiry), as crypto derivatives venues list them."""
    CRYPTO = "crypto"
    """A spot crypto-currency holding."""
    OTHER = "other"
    """An instrument of a class the adapter does not know (a venue's newer asset class): compared
    by its venue symbol, neither dropped nor refused. See docs/brokers.md."""

    __hash__ = object.__hash__
    """A member is its own identity (an enum compares by identity): hashed in C, not by
    `Enum.__hash__` in Python, since the comparison hashes it for every non-stock position."""


class DiscrepancyType(enum.Enum):
    """What kind of difference a discrepancy is; `KINDS` says everything else about each.

    .. versionadded:: 0.1
    """

    MISSING_LOCAL = "missing_local"
    """The broker holds a position the local book does not know."""
    MISSING_BROKER = "missing_broker"
    """The local book holds a position the broker does not report."""
    QUANTITY_MISMATCH = "quantity_mismatch"
    COST_MISMATCH = "cost_mismatch"
    """Same quantity, different average cost: usually rounding or timing."""
    CASH_MISMATCH = "cash_mismatch"
    EQUITY_MISMATCH = "equity_mismatch"

    __hash__ = object.__hash__
    """Hashed in C, as `AssetType` is: a bad day's breaks are counted and looked up by type."""

    @property
    def kind(self) -> DiscrepancyKind:
        return KINDS[self]

    @property
    def is_account_level(self) -> bool:
        return KINDS[self].level == "account"


class DiscrepancySeverity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    __hash__ = object.__hash__
    """Hashed in C, as `AssetType` is."""

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical: comparable severities."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(DiscrepancySeverity)}


@attrs.frozen
class DiscrepancyKind:
    """One row of `KINDS`: what the service knows of a kind of discrepancy.

    .. versionadded:: 0.1
    """

    level: Literal["position", "account"]
    """A position's (the payload names its symbol and asset type) or the account's (symbol null;
    cash per currency names its currency)."""
    default_severity: DiscrepancySeverity
    values: Literal["quantity", "avg_cost", "cash", "total_equity"]
    """What its `local_value` and `broker_value` are."""
    tolerance: Literal["cost_tolerance_pct", "cash_tolerance", "equity_tolerance_pct"] | None
    """The `ReconciliationConfig` option within which a difference is no break; None: exact."""
    correction: Literal["fill", "avg_cost", "cash"] | None
    """What a correction books: a synthetic fill, the broker's average cost, the cash difference;
    None: never corrected."""


KINDS: Mapping[DiscrepancyType, DiscrepancyKind] = frozen_mapping(
    {
        DiscrepancyType.MISSING_LOCAL: DiscrepancyKind(
            "position", DiscrepancySeverity.CRITICAL, "quantity", None, "fill"
        ),
        DiscrepancyType.MISSING_BROKER: DiscrepancyKind(
            "position", DiscrepancySeverity.CRITICAL, "quantity", None, "fill"
        ),
        DiscrepancyType.QUANTITY_MISMATCH: DiscrepancyKind(
            "position", DiscrepancySeverity.CRITICAL, "quantity", None, "fill"
        ),
        DiscrepancyType.COST_MISMATCH: DiscrepancyKind(
            "position", DiscrepancySeverity.INFO, "avg_cost", "cost_tolerance_pct", "avg_cost"
        ),
        DiscrepancyType.CASH_MISMATCH: DiscrepancyKind(
            "account", DiscrepancySeverity.WARNING, "cash", "cash_tolerance", "cash"
        ),
        DiscrepancyType.EQUITY_MISMATCH: DiscrepancyKind(
            "account", DiscrepancySeverity.WARNING, "total_equity", "equity_tolerance_pct", None
        ),
    }
)
"""Every kind of discrepancy, one row each: adding a kind is a row here and its classifier."""

DEFAULT_SEVERITY: Mapping[DiscrepancyType, DiscrepancySeverity] = frozen_mapping(
    {kind: row.default_severity for kind, row in KINDS.items()}
)
"""The design's severity table; `ReconciliationConfig.severity_overrides` changes it."""


_an_asset_type = attrs.validators.instance_of(AssetType)


@attrs.frozen
class Position:
    """A position as the local book holds it. `quantity` is signed: short is negative.

    `avg_cost` is the average cost per unit, or None when it is unknown (a spot holding
    transferred in, a venue that does not say): an unknown cost is never compared.

    .. versionadded:: 0.1
    """

    symbol: str = attrs.field(validator=name_text)
    quantity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    avg_cost: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    asset_type: AssetType = attrs.field(default=AssetType.STOCK, validator=_an_asset_type)


@attrs.frozen
class BrokerPosition:
    """A position as the broker reports it. `quantity` is signed: short is negative.

    `avg_cost` is None when the broker gives none (then it is not compared).

    .. versionadded:: 0.1
    """

    symbol: str = attrs.field(validator=name_text)
    quantity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    avg_cost: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    market_value: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    asset_type: AssetType = attrs.field(default=AssetType.STOCK, validator=_an_asset_type)


@attrs.frozen
class LocalAccount:
    """The local book's balances.

    `cash_by_currency`, if given, is the cash held in each currency (in that currency);
    when the broker gives it too, cash is compared per currency instead of as one figure.

    .. versionadded:: 0.1
    """

    account_id: str = attrs.field(validator=name_text)
    cash: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    total_equity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    cash_by_currency: Mapping[str, Decimal] | None = attrs.field(
        default=None, converter=decimal_mapping, validator=optional_decimal_mapping, kw_only=True
    )


@attrs.frozen
class BrokerAccount:
    """The broker's balances. `cash` is the account's cash in its currency, `total_equity`
    its net liquidation value; `cash_by_currency` as in `LocalAccount`.

    .. versionadded:: 0.1
    """

    account_id: str = attrs.field(validator=name_text)
    cash: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    buying_power: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    total_equity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    margin_used: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    cash_by_currency: Mapping[str, Decimal] | None = attrs.field(
        default=None, converter=decimal_mapping, validator=optional_decimal_mapping, kw_only=True
    )


def _non_zero(_instance: object, field: attrs.Attribute[Any], value: Decimal) -> None:
    if value == 0:
        msg = f"{field.name} must not be 0: a fill always changes a position"
        raise ValueError(msg)


def _positive(_instance: object, field: attrs.Attribute[Any], value: Decimal) -> None:
    if value <= 0:
        msg = f"{field.name} must be more than 0, got {value}"
        raise ValueError(msg)


@attrs.frozen
class OrderFill:
    """An execution reported by the engine: `quantity` > 0 bought, < 0 sold.

    `multiplier` is the contract size of options and futures (100 for a US equity
    option): notional = quantity * price * multiplier.

    .. versionadded:: 0.1
    """

    order_id: str = attrs.field(validator=name_text)
    fill_id: str = attrs.field(validator=name_text)
    account_id: str = attrs.field(validator=name_text)
    symbol: str = attrs.field(validator=name_text)
    quantity: Decimal = attrs.field(converter=exact_decimal, validator=[finite_decimal, _non_zero])
    price: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    commission: Decimal = attrs.field(default=Decimal(0), converter=exact_decimal, validator=finite_decimal)
    asset_type: AssetType = attrs.field(default=AssetType.STOCK, validator=_an_asset_type)
    multiplier: Decimal = attrs.field(
        default=Decimal(1), converter=exact_decimal, validator=[finite_decimal, _positive]
    )


def describe_subject(
    symbol: str | None, asset_type: AssetType | str | None, currency: str | None
) -> str | None:
    """What a discrepancy or break is about, for people: `AAPL`, `AAPL (option)`, `EUR` (cash
    in that currency), or None for the account as a whole. `asset_type` may be its text ("stock")."""
    if symbol is None:
        return currency
    kind = asset_type.value if isinstance(asset_type, AssetType) else asset_type
    return symbol if kind in {None, AssetType.STOCK.value} else f"{symbol} ({kind})"


def position_asset_type(record: Discrepancy | BreakState) -> AssetType | None:
    """STOCK for a position-level discrepancy or break, None for an account-level one (or a bad
    type, which its own validator refuses): the default of their `asset_type`."""
    kind = record.type
    return AssetType.STOCK if isinstance(kind, DiscrepancyType) and not kind.is_account_level else None


@attrs.frozen
class Discrepancy:
    """One difference between the local book and the broker.

    `symbol` and `asset_type` identify the position; both are None for account-level
    types (cash, equity). `currency` is set on a `cash_mismatch` found comparing cash
    per currency, None otherwise. `local_value` and `broker_value` are the compared
    figures (quantity, average cost, cash or equity); None where that side has nothing.

    .. versionadded:: 0.1
    """

    type: DiscrepancyType = attrs.field(validator=attrs.validators.instance_of(DiscrepancyType))
    severity: DiscrepancySeverity = attrs.field(validator=attrs.validators.instance_of(DiscrepancySeverity))
    symbol: str | None = attrs.field()
    local_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    broker_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    account_id: str = attrs.field(validator=name_text)
    asset_type: AssetType | None = attrs.field(
        default=attrs.Factory(position_asset_type, takes_self=True), kw_only=True
    )
    currency: str | None = attrs.field(default=None, kw_only=True)
    explanation: Explanation | None = attrs.field(default=None, kw_only=True)
    """The fills behind a position break and a verdict, when both books could say
    (`get_fills`); None otherwise.

    .. versionadded:: 0.1
    """

    @symbol.validator
    def _symbol_matches_type(self, field: attrs.Attribute[Any], value: str | None) -> None:
        if self.type.is_account_level:
            if value is not None:
                msg = f"symbol must be None for an account-level {self.type.value}, got {shown(value)}"
                raise ValueError(msg)
        else:
            name_text(self, field, value)

    @asset_type.validator
    def _asset_type_matches_type(self, _field: attrs.Attribute[Any], value: object) -> None:
        if self.type.is_account_level:
            if value is not None:
                msg = f"asset_type must be None for an account-level {self.type.value}, got {shown(value)}"
                raise ValueError(msg)
        elif not isinstance(value, AssetType):
            msg = f"asset_type of a {self.type.value} must be an AssetType, not {type(value).__name__} {shown(value)}"
            raise TypeError(msg)

    @currency.validator
    def _currency_only_for_cash(self, field: attrs.Attribute[Any], value: str | None) -> None:
        if value is None:
            return
        if self.type is not DiscrepancyType.CASH_MISMATCH:
            msg = f"currency is only given for a cash_mismatch, not a {self.type.value} (got {shown(value)})"
            raise ValueError(msg)
        name_text(self, field, value)

    @explanation.validator
    def _explains_a_position(self, _field: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        from reconciliation._domain.fills import Explanation  # noqa: PLC0415 - it imports this module

        if not isinstance(value, Explanation):
            msg = f"explanation must be an Explanation or None, not {type(value).__name__}"
            raise TypeError(msg)
        if self.type.is_account_level:
            msg = f"a {self.type.value} has no fills to explain it"
            raise ValueError(msg)

    @property
    def subject(self) -> str | None:
        """What it is about, for people: `AAPL`, `AAPL (option)`, `EUR` (cash in it); None for the account."""
        return describe_subject(self.symbol, self.asset_type, self.currency)

    @property
    def key(self) -> tuple[str, DiscrepancyType, str | None, AssetType | None, str | None]:
        """What identifies a break across runs: account, type, symbol, asset type and currency."""
        return (self.account_id, self.type, self.symbol, self.asset_type, self.currency)


@attrs.frozen
class NettedSymbol:
    """A side reported one position (symbol and asset type) several times; its entries were netted into one."""

    side: Literal["local", "broker"] = attrs.field(validator=attrs.validators.in_(("local", "broker")))
    symbol: str = attrs.field(validator=name_text)
    entries: int = attrs.field(validator=whole_number(2))
    asset_type: AssetType = attrs.field(default=AssetType.STOCK, converter=AssetType, validator=_an_asset_type)


def _discrepancies(value: Iterable[Discrepancy]) -> tuple[Discrepancy, ...]:
    return tuple(value)


def _netted(value: Iterable[NettedSymbol]) -> tuple[NettedSymbol, ...]:
    return tuple(value)


def _positions(value: Iterable[Position] | ColumnarPositions) -> tuple[Position, ...] | ColumnarPositions:
    """A tuple is looked at first: a Protocol's `isinstance` walks its members (20-40 µs a call)."""
    return tuple(value) if isinstance(value, tuple) or not isinstance(value, ColumnarPositions) else value


def _broker_positions(
    value: Iterable[BrokerPosition] | ColumnarPositions,
) -> tuple[BrokerPosition, ...] | ColumnarPositions:
    return tuple(value) if isinstance(value, tuple) or not isinstance(value, ColumnarPositions) else value


@attrs.frozen
class ReconciliationResult:
    """The outcome of one run: what was compared, what differed, or why it could not run.

    .. versionadded:: 0.1
    """

    run_id: UUID
    account_id: str = attrs.field(validator=name_text)
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    discrepancies: tuple[Discrepancy, ...] = attrs.field(default=(), converter=_discrepancies)
    positions_checked: int = attrs.field(default=0, validator=whole_number(0))
    duration_ms: float = attrs.field(default=0.0, converter=seconds, validator=finite_seconds)
    """How long the run took, from its trigger to its result, in milliseconds."""
    context: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_context)
    error: str | None = attrs.field(default=None, converter=outside_text)
    """None when the run completed; otherwise why it could not, for an operator (its control
    characters written as visible escapes, `\\x00`, so that every sink carries it)."""
    netted: tuple[NettedSymbol, ...] = attrs.field(default=(), converter=_netted)
    suspect: str | None = None
    """Why the broker's answer was implausible against the account's recent history (see
    `PlausibilityPolicy`), or None: no correction acts on a suspect run.

    .. versionadded:: 0.1
    """
    next_run_due: dt.datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(utc_datetime), validator=attrs.validators.optional(utc_only)
    )
    """When the account's next periodic run is due, as of this run's end; None when it has
    none (periodic runs disabled, or a one-off run such as `reconciliation check`). A
    reader that sees this time pass by a margin without a newer result knows the account
    is stale: its service stopped or hangs.

    .. versionadded:: 0.2
    """
    is_clean: bool = attrs.field(
        init=False, default=attrs.Factory(lambda self: self.error is None and not self.discrepancies, takes_self=True)
    )
    """The run completed and found nothing to report; derived, so `attrs.evolve` keeps it true."""

    @property
    def status(self) -> Literal["ok", "failed"]:
        return "ok" if self.error is None else "failed"

    @property
    def trigger(self) -> str:
        return self.context.get("trigger", "unknown")


def _severity_table(value: Mapping[Any, Any]) -> Mapping[DiscrepancyType, DiscrepancySeverity]:
    """Accept enum members or their string values (as a TOML file gives them)."""
    if not isinstance(value, Mapping):
        msg = f"severity_overrides must be a mapping of discrepancy type to severity, not {type(value).__name__}"
        raise FieldTypeError(msg, "severity_overrides")
    table: dict[DiscrepancyType, DiscrepancySeverity] = {}
    for key, severity in value.items():
        try:
            kind = key if isinstance(key, DiscrepancyType) else DiscrepancyType(key)
        except ValueError:
            known = ", ".join(t.value for t in DiscrepancyType)
            msg = f"severity_overrides: unknown discrepancy type {shown(key)}; known: {known}"
            raise FieldValueError(msg, "severity_overrides") from None
        try:
            level = severity if isinstance(severity, DiscrepancySeverity) else DiscrepancySeverity(severity)
        except ValueError:
            known = ", ".join(s.value for s in DiscrepancySeverity)
            msg = f"severity_overrides[{kind.value!r}]: unknown severity {shown(severity)}; known: {known}"
            raise FieldValueError(msg, "severity_overrides") from None
        table[kind] = level
    return frozen_mapping(table)


_BY_RANK = sorted(DiscrepancySeverity, key=lambda s: s.rank)


def _optional_whole_number(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{field.name} must be a whole number of runs or None, not {type(value).__name__} {shown(value)}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{field.name} must be at least 1 run, got {value}"
        raise ValueError(msg)


def _optional_severity(value: DiscrepancySeverity | str | None) -> DiscrepancySeverity | None:
    if value is None or isinstance(value, DiscrepancySeverity):
        return value
    try:
        return DiscrepancySeverity(value)
    except ValueError:
        known = ", ".join(s.value for s in DiscrepancySeverity)
        msg = f"escalate_to: unknown severity {shown(value)}; known: {known}"
        raise ValueError(msg) from None


@attrs.frozen
class AgeingPolicy:
    """When an ageing break is escalated, and when it halts trading. All off by default.

    A break is escalated once it has persisted `escalate_after_runs` consecutive runs
    or `escalate_after_seconds` since it was first seen, whichever comes first: to
    `escalate_to`, or one level up when that is None. Escalation never lowers a severity.

    The kill switch (`halt_after_runs`, None = off) fires once for a break whose
    severity, after escalation, is CRITICAL and that has persisted that many
    consecutive runs; again only if the break resolves and comes back.

    .. versionadded:: 0.1
    """

    escalate_after_runs: int | None = attrs.field(default=None, validator=_optional_whole_number)
    escalate_after_seconds: float | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(seconds),
        validator=attrs.validators.optional(positive_seconds),
    )
    escalate_to: DiscrepancySeverity | None = attrs.field(default=None, converter=_optional_severity)
    halt_after_runs: int | None = attrs.field(default=None, validator=_optional_whole_number)

    @escalate_to.validator
    def _needs_a_threshold(self, _field: attrs.Attribute[Any], value: DiscrepancySeverity | None) -> None:
        if value is not None and self.escalate_after_runs is None and self.escalate_after_seconds is None:
            msg = "escalate_to needs escalate_after_runs or escalate_after_seconds"
            raise ValueError(msg)

    def severity_after(
        self, classified: DiscrepancySeverity, consecutive_runs: int, age: dt.timedelta
    ) -> DiscrepancySeverity:
        """The severity of a break of `classified` severity at this age."""
        due = (self.escalate_after_runs is not None and consecutive_runs >= self.escalate_after_runs) or (
            self.escalate_after_seconds is not None and age.total_seconds() >= self.escalate_after_seconds
        )
        if not due:
            return classified
        target = self.escalate_to or _BY_RANK[min(classified.rank + 1, len(_BY_RANK) - 1)]
        return max(classified, target, key=lambda s: s.rank)

    def halts(self, severity: DiscrepancySeverity, consecutive_runs: int) -> bool:
        """Whether a break of this severity and persistence qualifies for the kill switch."""
        return (
            self.halt_after_runs is not None
            and severity is DiscrepancySeverity.CRITICAL
            and consecutive_runs >= self.halt_after_runs
        )


CORRECTABLE_TYPES: frozenset[DiscrepancyType] = frozenset(kind for kind, row in KINDS.items() if row.correction)
"""What a correction may change: the position types and cash. Never equity, which is
derived from them (and from prices): correct its causes, not the figure."""


def _correction_types(value: Iterable[DiscrepancyType | str]) -> frozenset[DiscrepancyType]:
    """Accept enum members or their string values (as a TOML file gives them)."""
    if isinstance(value, str | DiscrepancyType):
        value = (value,)
    kinds: set[DiscrepancyType] = set()
    for kind in value:
        try:
            kinds.add(kind if isinstance(kind, DiscrepancyType) else DiscrepancyType(kind))
        except ValueError:
            known = ", ".join(sorted(t.value for t in CORRECTABLE_TYPES))
            msg = f"types: unknown discrepancy type {kind!r}; correctable: {known}"
            raise ValueError(msg) from None
    return frozenset(kinds)


def _only_correctable(_instance: object, _field: attrs.Attribute[Any], value: frozenset[DiscrepancyType]) -> None:
    if not value:
        msg = "types must name at least one discrepancy type; to turn correction off, set correction=None"
        raise ValueError(msg)
    refused = sorted(kind.value for kind in value - CORRECTABLE_TYPES)
    if refused:
        msg = (
            f"types: {', '.join(refused)} cannot be corrected: equity is derived from the positions, "
            "cash and prices, so correct those instead"
        )
        raise ValueError(msg)


def _optional_count(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        whole_number(0)(instance, field, value)


def _optional_non_negative(_instance: object, field: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None and value < 0:
        msg = f"{field.name} must not be negative, got {value}"
        raise ValueError(msg)


@attrs.frozen
class CorrectionLimits:
    """How much corrections may change the book in all: per run and per rolling 24 hours, a
    count and a total notional of applied corrections (None: no such limit). Reaching one
    stops applying — proposals go on — until the window moves past it.

    .. versionadded:: 0.1
    """

    per_run: int | None = attrs.field(default=10, validator=_optional_count)
    per_day: int | None = attrs.field(default=50, validator=_optional_count)
    notional_per_run: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=[optional_finite_decimal, _optional_non_negative]
    )
    notional_per_day: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=[optional_finite_decimal, _optional_non_negative]
    )


def _amounts(value: Mapping[str, Decimal | int | str] | None) -> Mapping[str, Decimal]:
    converted = decimal_mapping(value)
    return frozen_mapping({}) if converted is None else converted


@attrs.frozen
class CorrectionPolicy:
    """When the service corrects the local book, and how far. See docs/configuration.md.

    A break of one of `types` gets a correction (see `reconciliation.Correction`) that
    is published and recorded. Once `confirm_after_runs` consecutive runs have seen the
    break, `mode="apply"` hands the correction to the book's `apply_correction` and
    runs a reconciliation at once to check it; `mode="propose"` (a dry run) changes
    nothing. A correction whose absolute value exceeds `max_notional`, or is unknown (no
    positive price on either side), is never applied: the break is escalated to critical
    instead. Nothing is applied from a suspect run, beyond the `limits`, or by a runtime
    that does not hold the account's lease.

    .. versionadded:: 0.1
    """

    mode: Literal["propose", "apply"] = attrs.field(
        default="propose", validator=attrs.validators.in_(("propose", "apply"))
    )
    confirm_after_runs: int = attrs.field(default=2, validator=whole_number(1))
    types: frozenset[DiscrepancyType] = attrs.field(
        default=CORRECTABLE_TYPES, converter=_correction_types, validator=_only_correctable
    )
    max_notional: Decimal | None = attrs.field(
        default=None, converter=optional_decimal, validator=[optional_finite_decimal, _optional_non_negative]
    )
    """The largest absolute value a correction may have, in the account's currency: |quantity|
    x the larger of the book's and the broker's price for a position, the amount for cash,
    |quantity| x the cost change for a cost. None: no limit."""
    max_notional_by_currency: Mapping[str, Decimal] = attrs.field(
        factory=dict, converter=_amounts, validator=optional_decimal_mapping, kw_only=True
    )
    """For cash kept per currency: the largest correction of a currency's cash, in it. Under
    `max_notional`, a currency without an entry is never corrected (its value in the
    account's currency is unknown)."""
    limits: CorrectionLimits = attrs.field(factory=CorrectionLimits, validator=of_type(CorrectionLimits), kw_only=True)
    """How much the account's corrections may change its book in all."""
    unexplained: Literal["correct", "leave"] = attrs.field(
        default="correct", validator=attrs.validators.in_(("correct", "leave")), kw_only=True
    )
    """A position break its fills do not explain exactly (when both books say their fills):
    `correct` it by a synthetic fill, as any break; or `leave` it to a person. An exactly
    explained one is corrected by booking the fills the engine missed."""


@attrs.frozen
class ExplanationPolicy:
    """How the fills behind a position break are read, when both books implement `get_fills`
    (docs/configuration.md).

    .. versionadded:: 0.1
    """

    enabled: bool = attrs.field(default=True, validator=of_type(bool))
    lookback_seconds: float = attrs.field(default=86_400.0, converter=seconds, validator=positive_seconds)
    """Fills are read from the run before the break was first seen, but never further back than this."""
    max_fills: int = attrs.field(default=1_000, validator=whole_number(1, 1_000_000))
    """Fills read per side and position; more are left out, and the explanation says so."""
    max_breaks: int = attrs.field(default=1_000, validator=whole_number(1, 1_000_000))
    """Position breaks explained per run, the most severe first."""
    timeout_seconds: float = attrs.field(default=5.0, converter=seconds, validator=positive_seconds)
    """The longest a run waits for both books' fills; then its breaks go out unexplained, saying so."""
    match_window_seconds: float = attrs.field(default=60.0, converter=seconds, validator=finite_seconds)
    """Fills without a shared execution id are one if side, quantity and price agree within this."""


def _non_negative_amounts(
    instance: object, field: attrs.Attribute[Any], value: Mapping[str, Decimal]
) -> None:
    optional_decimal_mapping(instance, field, value)
    for currency, amount in value.items():
        if amount < 0:
            msg = f"{field.name}[{shown(currency)}] must not be negative, got {amount}"
            raise FieldValueError(msg, field.name, currency)


def _audit_target(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """A file path, or a sqlite:/// or postgresql:// URL."""
    non_empty_text(instance, field, value)
    scheme, separator, _ = str(value).partition("://")
    if separator and scheme.lower() not in {"sqlite", "postgresql", "postgres"}:
        msg = (
            f"{field.name}: unknown URL scheme {scheme[:40]!r} in {redact_url(str(value))!r:.200}; "
            "use a file path, sqlite:/// or postgresql://"
        )
        raise FieldValueError(msg, field.name)


def _path_text(value: object) -> object:
    """A path given as `pathlib.Path` (any `os.PathLike` of text) is kept as its text."""
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else value
    return value


def _state_dir(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """A directory path: visible text without a NUL (whether it can be written is checked at start)."""
    non_empty_text(instance, field, value)
    if "\0" in str(value):
        msg = f"{field.name} must not contain a NUL character, got {shown(value)}"
        raise FieldValueError(msg, field.name)


DEFAULT_OUTBOX_MAX_BYTES = 256 * 1024 * 1024
MAX_OUTBOX_BYTES = 2**40
"""The most bytes a delivery queue may be asked to hold (1 TiB): a bound, not a size to aim for."""

REDIS_MAX_INTEGER = 2**63 - 1
"""The largest integer argument Redis accepts (a signed 64-bit integer)."""

MAX_QUEUED_RUNS = 1_000_000
"""The most runs a delivery queue may be asked to hold while its sink is down."""


def _correction_policy(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """attrs' `instance_of`, with the value shown bounded (it may come from a hostile config)."""
    if value is not None and not isinstance(value, CorrectionPolicy):
        msg = f"correction must be a CorrectionPolicy or None, got {type(value).__name__} {shown(value)}"
        raise FieldTypeError(msg, field.name)


USD_EQUIVALENTS: frozenset[str] = frozenset(
    {"USD", "USDT", "USDC", "FDUSD", "BUSD", "DAI", "TUSD", "USDP", "PYUSD", "USDE", "USDS"}
)
"""The currencies the default `cash_tolerance` (in USD) applies to: USD and its stablecoins, 1:1."""

_DEFAULT_CASH_TOLERANCE = Decimal("1.00")
"""The design's default cash tolerance, in USD. Kept as this very object, so that a config can tell
it from a tolerance it was given (even the same amount): `cash_tolerance_is_default`."""


@attrs.frozen
class ReconciliationConfig:
    """How, when and how strictly one account is reconciled. See docs/configuration.md.

    .. versionadded:: 0.1
    """

    account_id: str = attrs.field(validator=name_text)
    interval_seconds: float = attrs.field(default=300, converter=seconds, validator=positive_seconds)
    post_fill_delay_seconds: float = attrs.field(default=5.0, converter=seconds, validator=finite_seconds)
    cash_tolerance: Decimal = attrs.field(
        default=_DEFAULT_CASH_TOLERANCE, converter=exact_decimal, validator=[finite_decimal, non_negative]
    )
    """The default, 1.00, is in USD (and USD stablecoins); set, it is in the account's currency and
    applies to every currency of the account that `cash_tolerance_by_currency` does not name."""
    equity_tolerance_pct: Decimal = attrs.field(
        default=Decimal("0.1"), converter=exact_decimal, validator=[finite_decimal, non_negative]
    )
    """Percent of the broker's equity: Decimal("0.1") is 0.1 %."""
    cost_tolerance_pct: Decimal = attrs.field(
        default=Decimal(0), converter=exact_decimal, validator=[finite_decimal, non_negative], kw_only=True
    )
    """Percent of the broker's average cost: 0 compares costs exactly."""
    cash_tolerance_by_currency: Mapping[str, Decimal] = attrs.field(
        factory=dict, converter=_amounts, validator=_non_negative_amounts, kw_only=True
    )
    """When cash is compared per currency, the tolerance of a currency (in it); others use `cash_tolerance`."""
    enabled: bool = attrs.field(default=True, validator=of_type(bool))
    broker_timeout_seconds: float = attrs.field(default=30.0, converter=seconds, validator=positive_seconds)
    severity_overrides: Mapping[DiscrepancyType, DiscrepancySeverity] = attrs.field(
        factory=dict, converter=_severity_table
    )
    post_fill_max_wait_seconds: float = attrs.field(
        default=attrs.Factory(lambda self: max(60.0, self.post_fill_delay_seconds), takes_self=True),
        converter=seconds,
        validator=finite_seconds,
    )
    """The longest a steady stream of fills can postpone the post-fill run; by default
    the larger of 60 s and `post_fill_delay_seconds`."""
    stream_maxlen: int = attrs.field(default=10_000, validator=whole_number(1, REDIS_MAX_INTEGER))
    """Approximate length at which the durable Redis streams are capped."""
    outbox_max_runs: int = attrs.field(default=1_000, validator=whole_number(1, MAX_QUEUED_RUNS))
    """How many undelivered runs the publisher keeps while Redis is unreachable."""
    outbox_max_bytes: int = attrs.field(default=DEFAULT_OUTBOX_MAX_BYTES, validator=whole_number(1, MAX_OUTBOX_BYTES))
    """How many bytes of undelivered payloads the publisher keeps (in memory, and in the journal
    with `state_dir`); past either bound the oldest run is dropped, counted and logged."""
    state_dir: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(_path_text), validator=attrs.validators.optional(_state_dir)
    )
    """A directory of this host where runs waiting for Redis are journaled (SQLite, WAL), so that a
    crash loses none of them: they are delivered first at the next start. None: kept in memory only."""
    publish_retry_max_seconds: float = attrs.field(
        default=30.0, converter=seconds, validator=positive_seconds
    )
    """The longest pause between two attempts to reach an unreachable Redis."""
    ageing: AgeingPolicy = attrs.field(
        factory=AgeingPolicy, validator=of_type(AgeingPolicy)
    )
    """When a persisting break is escalated, and when it halts trading (off by default)."""
    audit_store: str | None = attrs.field(default=None, validator=attrs.validators.optional(_audit_target))
    """Where runs and breaks are recorded: a SQLite file path or a postgresql:// URL; None: nowhere."""
    audit_backlog_max_runs: int = attrs.field(default=10_000, validator=whole_number(1, MAX_QUEUED_RUNS))
    """How many runs wait for an unavailable audit store before the oldest is dropped (and logged)."""
    correction: CorrectionPolicy | None = attrs.field(default=None, validator=_correction_policy)
    """Auto-correction of the local book (off: None). See `CorrectionPolicy`."""
    explanations: ExplanationPolicy = attrs.field(
        factory=ExplanationPolicy, validator=of_type(ExplanationPolicy), kw_only=True
    )
    """How the fills behind a position break are read and matched (books with `get_fills`)."""
    plausibility: PlausibilityPolicy = attrs.field(
        factory=PlausibilityPolicy, validator=of_type(PlausibilityPolicy), kw_only=True
    )
    """When a broker's answer is suspect: too unlike the account's recent ones to act on."""

    @post_fill_max_wait_seconds.validator
    def _max_wait_covers_delay(self, field: attrs.Attribute[Any], value: float) -> None:
        if value < self.post_fill_delay_seconds:
            msg = (
                f"post_fill_max_wait_seconds ({value}) must be at least "
                f"post_fill_delay_seconds ({self.post_fill_delay_seconds})"
            )
            raise FieldValueError(msg, field.name)

    def severity_of(self, kind: DiscrepancyType) -> DiscrepancySeverity:
        return self.severity_overrides.get(kind, DEFAULT_SEVERITY[kind])

    @property
    def cash_tolerance_is_default(self) -> bool:
        """`cash_tolerance` was not given: it is the design's 1.00 USD."""
        return self.cash_tolerance is _DEFAULT_CASH_TOLERANCE

    def has_cash_tolerance_in(self, currency: str) -> bool:
        """Whether the config names a cash tolerance in `currency`: its own entry, a `cash_tolerance`
        set explicitly, or the default for USD and its stablecoins."""
        return (
            currency in self.cash_tolerance_by_currency
            or not self.cash_tolerance_is_default
            or currency in USD_EQUIVALENTS
        )

    def cash_tolerance_of(self, currency: str) -> Decimal:
        """The cash tolerance in `currency`: its entry in `cash_tolerance_by_currency`, else
        `cash_tolerance`; 0 (compared exactly) for a currency the config names none in
        (`has_cash_tolerance_in`), as the default 1.00 is in USD."""
        if currency in self.cash_tolerance_by_currency:
            return self.cash_tolerance_by_currency[currency]
        return self.cash_tolerance if self.has_cash_tolerance_in(currency) else Decimal(0)


@attrs.frozen
class Snapshot:
    """Both sides of one account, read at (about) the same moment, already validated.

    Either side's positions are objects, or columns when the book answered with a
    columnar batch (`ColumnarPositions`).
    """

    account_id: str = attrs.field(validator=name_text)
    local_positions: tuple[Position, ...] | ColumnarPositions = attrs.field(converter=_positions)
    local_account: LocalAccount
    broker_positions: tuple[BrokerPosition, ...] | ColumnarPositions = attrs.field(converter=_broker_positions)
    broker_account: BrokerAccount
    taken_at: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    read_started_at: dt.datetime = attrs.field(
        default=attrs.Factory(lambda self: self.taken_at, takes_self=True),
        converter=utc_datetime,
        validator=utc_only,
        kw_only=True,
    )
    """When the first of its reads began (`taken_at`: when the last ended): a correction is
    judged only by runs whose reads began after it was applied."""
