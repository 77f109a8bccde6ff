"""The venue table: one declared profile per ccxt venue the adapter supports.

A profile says, for one ccxt exchange id, everything `CcxtBroker` must not guess:

- how a position's quantity is sized (`sizing`): ccxt's contracts times the contract
  size, or the venue's size as sent (Deribit already gives its USD face value);
- which `fetch_positions` calls list every position, across product families, and
  which `fetch_balance` calls read the derivatives or unified account (not spot);
- where the venue's raw answer keeps each figure: cash, equity, buying power and
  margin per currency; the position's size, entry price, and a notional with the
  price it is valued at, which cross-check the quantity;
- which requests a read may send (`reads`): the adapter refuses any other before it
  leaves the process (`read_only`);
- which credentials a read needs (Hyperliquid: the wallet address alone).

Adding a venue is adding its profile here and its recorded payloads to the tests
(tests/fixtures/brokers/). A ccxt venue without a profile still works, with a
generic one (`unverified`): ccxt's unified balance total, one `fetch_positions()`
call, any GET, a WARNING and a health warning. docs/brokers.md prints this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

import attrs

from reconciliation._domain.values import FrozenMapping
from reconciliation.adapters._raw import Figure
from reconciliation.adapters.read_only import Read

__all__ = [
    "VENUES",
    "BalanceRows",
    "NotionalCheck",
    "PositionFields",
    "PositionQuery",
    "VenueProfile",
    "unverified",
]

Sizing = Literal["contracts_x_size", "venue_size"]
"""`contracts_x_size`: ccxt's contracts times the contract size (base units for a linear
contract, USD face value for an inverse one); `venue_size`: ccxt's contracts as they are,
because the venue's size is already the quantity (Deribit: USD face value for an inverse
future, base units for a linear one)."""

NotionalUnit = Literal["quote", "base", "settle"]
"""The currency a venue's notional is in: `settle` is the quote currency for a linear
contract and the base currency for an inverse one."""


def _params(value: Mapping[str, object]) -> Mapping[str, object]:
    return FrozenMapping(value)


def _figure(value: Figure | str) -> Figure:
    return value if isinstance(value, Figure) else Figure(value)


@attrs.frozen
class PositionQuery:
    """The params of one `fetch_positions(None, params)` call.

    With `per_settle`, the call is made once per settle currency of the loaded inverse
    contract markets, with that currency's venue id in the param `per_settle` names
    (Bitget's COIN-FUTURES are asked one margin coin at a time).
    """

    params: Mapping[str, object] = attrs.field(factory=dict, converter=_params)
    per_settle: str | None = None
    optional: bool = False
    """A product family the account may never have opened: ccxt's `AccountNotEnabled` then
    means it holds nothing there (any other error still fails the run)."""


@attrs.frozen
class NotionalCheck:
    """A notional the venue gives with a position, and the price it is valued at: with the
    quantity they must agree within `tolerance_pct`, or the run fails as inconsistent."""

    notional: Figure = attrs.field(converter=_figure)
    price: Figure = attrs.field(converter=_figure)
    unit: NotionalUnit
    tolerance_pct: Decimal = Decimal(2)


@attrs.frozen
class PositionFields:
    """Where a position's raw entry (ccxt's `info`) keeps the venue's own figures.

    `size` is the figure ccxt turns into `contracts` (equal to it, signed like the
    position when `signed`); `entry` the entry price ccxt reads; `notional`, if any, a
    second figure for the quantity.
    """

    size: Figure = attrs.field(converter=_figure)
    signed: bool
    entry: Figure = attrs.field(converter=_figure)
    notional: NotionalCheck | None = None


@attrs.frozen(kw_only=True)
class BalanceRows:
    """The balances one `fetch_balance(params)` call reads, from its raw answer (`info`).

    `path` leads to the rows (empty: the whole answer; it may match several places):
    a list of rows whose `currency` field names their currency, one such row, rows keyed
    by currency (`currency` None), or one row in the currency `fixed`. In each row,
    `cash` is the cash (wallet balance: without unrealised P&L), `equity` the equity
    (cash plus unrealised P&L), `free` and `used` the buying power and the margin in use
    (informational; ccxt's unified figures where not given). Rows of one currency found
    twice are added up. `account` rows give the account currency's cash and equity;
    `per_currency` rows give the cash per currency. A param value `{currency}` is the
    account's currency. `optional` as in `PositionQuery`.
    """

    params: Mapping[str, object] = attrs.field(factory=dict, converter=_params)
    path: str = ""
    currency: str | None = None
    fixed: str | None = None
    cash: Figure = attrs.field(converter=_figure)
    equity: Figure | None = attrs.field(default=None, converter=attrs.converters.optional(_figure))
    free: Figure | None = attrs.field(default=None, converter=attrs.converters.optional(_figure))
    used: Figure | None = attrs.field(default=None, converter=attrs.converters.optional(_figure))
    account: bool = True
    per_currency: bool = True
    optional: bool = False

    @equity.validator
    def _account_rows_give_equity(self, _field: attrs.Attribute[Figure | None], value: Figure | None) -> None:
        if self.account and value is None:
            msg = "rows that give the account's figures (account=True) must name its equity"
            raise ValueError(msg)


def _queries(value: Iterable[PositionQuery | Mapping[str, object]]) -> tuple[PositionQuery, ...]:
    return tuple(query if isinstance(query, PositionQuery) else PositionQuery(query) for query in value)


def _reads(value: Iterable[Read | str]) -> tuple[Read, ...]:
    """`Read`s, each given as one or as its text (`GET /api/*`)."""
    return tuple(read if isinstance(read, Read) else Read(*read.partition(" ")[::2]) for read in value)


@attrs.frozen(kw_only=True)
class VenueProfile:
    """One venue of the table. See the module's docstring; docs/brokers.md shows every profile."""

    exchange_id: str
    name: str
    sizing: Sizing = "contracts_x_size"
    position_queries: tuple[PositionQuery, ...] = attrs.field(default=({},), converter=_queries)
    positions: PositionFields | None = None
    balances: tuple[BalanceRows, ...] = ()
    """Empty: ccxt's unified `total` of `fetch_balance(balance_params)` for cash and equity."""
    balance_params: Mapping[str, object] = attrs.field(factory=dict, converter=_params)
    reads: tuple[Read, ...] = attrs.field(converter=_reads)
    credentials: tuple[str, ...] | None = None
    """What a read needs, when it is not what ccxt requires to trade; the others are refused."""
    fill_instrument: str | None = None
    """Where a trade's raw row (`info`) names the venue's instrument id: ccxt labels some venues'
    trades with the symbol asked for whatever instrument the row is in (Kraken Futures, Binance
    COIN-M), so a row naming another instrument is left out (None: ccxt's symbol is trusted)."""
    fill_fee: Figure | None = attrs.field(default=None, converter=attrs.converters.optional(_figure))
    """Where a trade's raw row keeps its fee, read where ccxt gives none (its Decimal mode drops
    fees); `fill_fee_sign` makes it what the account paid (OKX sends a fee paid as negative)."""
    fill_fee_sign: Literal[1, -1] = 1
    verified: bool = True
    """Its answers were checked against payloads recorded from the venue (tests/fixtures/brokers/)."""


_BINANCE_BALANCE = BalanceRows(
    path="assets",
    currency="asset",
    cash="walletBalance",
    equity="marginBalance",
    free="availableBalance",
    used="initialMargin",
)
_BINANCE_CURRENCIES = ("GET /sapi/v1/capital/config/getall", "GET /sapi/v1/margin/allPairs")
"""Private spot-wallet reads ccxt's Binance makes while loading markets, whatever the product."""

_PROFILES = (
    VenueProfile(
        exchange_id="binanceusdm",
        name="Binance USDⓈ-M futures",
        positions=PositionFields(
            size="positionAmt",
            signed=True,
            entry="entryPrice",
            notional=NotionalCheck(notional="notional", price="markPrice", unit="quote"),
        ),
        balances=(_BINANCE_BALANCE,),
        reads=("GET /fapi/*", *_BINANCE_CURRENCIES),
        fill_instrument="symbol",
        fill_fee="commission",
    ),
    VenueProfile(
        exchange_id="binancecoinm",
        name="Binance COIN-M futures",
        positions=PositionFields(
            size="positionAmt",
            signed=True,
            entry="entryPrice",
            notional=NotionalCheck(notional="notionalValue", price="markPrice", unit="base"),
        ),
        balances=(_BINANCE_BALANCE,),
        reads=("GET /dapi/*", *_BINANCE_CURRENCIES),
        fill_instrument="symbol",
        fill_fee="commission",
    ),
    VenueProfile(
        exchange_id="okx",
        name="OKX (trading account)",
        positions=PositionFields(
            size="pos",
            signed=False,
            entry="avgPx",
            notional=NotionalCheck(notional="notionalUsd", price="markPx", unit="quote"),
        ),
        balances=(
            BalanceRows(
                path="data.0.details",
                currency="ccy",
                cash="cashBal",
                equity="eq",
                free="availBal",
                used="frozenBal",
            ),
        ),
        reads=("GET /api/v5/*",),
        fill_instrument="instId",
        fill_fee="fee",
        fill_fee_sign=-1,
    ),
    VenueProfile(
        exchange_id="bybit",
        name="Bybit (unified or classic derivatives account)",
        position_queries=(
            {"subType": "linear", "settleCoin": "USDT"},
            {"subType": "linear", "settleCoin": "USDC"},
            {"subType": "inverse"},
            {"type": "option"},
        ),
        positions=PositionFields(
            size="size",
            signed=False,
            entry="avgPrice|entryPrice",
            notional=NotionalCheck(notional="positionValue", price="avgPrice|entryPrice", unit="settle"),
        ),
        balances=(
            BalanceRows(
                path="result.list.0",
                fixed="USD",
                cash="totalWalletBalance",
                equity="totalEquity",
                free="totalAvailableBalance",
                used="totalInitialMargin",
                per_currency=False,
            ),
            BalanceRows(
                path="result.list.0.coin",
                currency="coin",
                cash="walletBalance",
                equity="equity",
                free="availableToWithdraw",
                used="totalPositionIM",
            ),
        ),
        reads=("GET /v5/*",),
        fill_instrument="symbol",
        fill_fee="execFee",
    ),
    VenueProfile(
        exchange_id="deribit",
        name="Deribit",
        sizing="venue_size",
        positions=PositionFields(
            size="size",
            signed=True,
            entry="average_price",
            notional=NotionalCheck(notional="size_currency", price="mark_price", unit="base"),
        ),
        balances=(
            BalanceRows(
                path="summaries",
                currency="currency",
                cash="balance",
                equity="equity",
                free="available_funds",
                used="initial_margin",
            ),
        ),
        reads=("GET /api/v2/public/*", "GET /api/v2/private/get_*"),
        fill_instrument="instrument_name",
    ),
    VenueProfile(
        exchange_id="krakenfutures",
        name="Kraken Futures",
        positions=PositionFields(size="size", signed=False, entry="price"),
        balances=(
            BalanceRows(
                path="accounts.flex",
                fixed="USD",
                cash="balanceValue",
                equity="portfolioValue",
                free="availableMargin",
                used="initialMargin",
                per_currency=False,
            ),
            BalanceRows(path="accounts.flex.currencies", cash="quantity", account=False),
            BalanceRows(
                path="accounts.f[iv]_*",
                currency="currency",
                cash="balances.*",
                equity="auxiliary.pv",
                free="auxiliary.af",
                used="marginRequirements.im",
            ),
        ),
        reads=("GET /derivatives/api/v3/*",),
        fill_instrument="symbol",
    ),
    VenueProfile(
        exchange_id="hyperliquid",
        name="Hyperliquid (perpetuals)",
        positions=PositionFields(size="position.szi", signed=True, entry="position.entryPx"),
        balances=(
            BalanceRows(
                fixed="USDC",
                cash="marginSummary.accountValue - assetPositions.*.position.unrealizedPnl",
                equity="marginSummary.accountValue",
                free="withdrawable",
                used="marginSummary.totalMarginUsed",
            ),
        ),
        reads=("POST /info",),
        credentials=("walletAddress",),
    ),
    VenueProfile(
        exchange_id="bitget",
        name="Bitget futures (classic account)",
        position_queries=(
            {"productType": "USDT-FUTURES"},
            {"productType": "USDC-FUTURES"},
            PositionQuery({"productType": "COIN-FUTURES"}, per_settle="marginCoin"),
        ),
        positions=PositionFields(size="total", signed=False, entry="openPriceAvg"),
        balances=tuple(
            BalanceRows(
                params={"type": "swap", "productType": product},
                currency="marginCoin",
                cash="accountEquity - unrealizedPL",
                equity="accountEquity",
                free="available",
                used="locked",
            )
            for product in ("USDT-FUTURES", "USDC-FUTURES", "COIN-FUTURES")
        ),
        reads=("GET /api/v2/*", "GET /api/v3/*"),
        fill_instrument="symbol",
    ),
    VenueProfile(
        exchange_id="gate",
        name="Gate futures (USDT- and BTC-settled perpetuals, USDT delivery)",
        position_queries=(
            {},
            PositionQuery({"settle": "btc"}, optional=True),
            PositionQuery({"type": "future", "settle": "usdt"}, optional=True),
        ),
        positions=PositionFields(
            size="size",
            signed=True,
            entry="entry_price",
            notional=NotionalCheck(notional="value", price="mark_price", unit="settle"),
        ),
        balances=tuple(
            BalanceRows(
                params=params,
                currency="currency",
                cash="total",
                equity="total + unrealised_pnl",
                free="available",
                used="position_margin + order_margin",
                optional=optional,
            )
            for params, optional in (
                ({"type": "swap"}, False),
                ({"type": "swap", "settle": "btc"}, True),
                ({"type": "future", "settle": "usdt"}, True),
            )
        ),
        reads=("GET /api/v4/*",),
        fill_instrument="contract",
    ),
    VenueProfile(
        exchange_id="kucoinfutures",
        name="KuCoin Futures",
        positions=PositionFields(
            size="currentQty",
            signed=True,
            entry="avgEntryPrice",
            notional=NotionalCheck(notional="markValue", price="markPrice", unit="settle"),
        ),
        balances=(
            BalanceRows(
                params={"code": "{currency}"},
                path="data",
                currency="currency",
                cash="marginBalance",
                equity="accountEquity",
                free="availableBalance",
                used="positionMargin + orderMargin",
            ),
        ),
        reads=("GET /api/*",),
        fill_instrument="symbol",
    ),
    VenueProfile(
        exchange_id="coinbase",
        name="Coinbase (US derivatives: CFM futures)",
        positions=PositionFields(size="number_of_contracts", signed=False, entry="avg_entry_price"),
        balances=(
            BalanceRows(
                params={"type": "future"},
                path="balance_summary",
                fixed="USD",
                cash="cfm_usd_balance.value",
                equity="cfm_usd_balance.value + unrealized_pnl.value",
                free="futures_buying_power.value",
                used="initial_margin.value",
            ),
        ),
        reads=("GET /v2/*", "GET /api/v3/brokerage/*"),
        fill_instrument="product_id",
    ),
)

VENUES: Mapping[str, VenueProfile] = FrozenMapping({profile.exchange_id: profile for profile in _PROFILES})
"""The supported ccxt venues, by ccxt exchange id."""


def unverified(
    exchange_id: str,
    *,
    position_queries: Iterable[Mapping[str, object]] = ({},),
    balance_params: Mapping[str, object] | None = None,
) -> VenueProfile:
    """The generic profile of a ccxt venue the table does not list: contracts times size, the
    given `fetch_positions` calls (default: one, with no params), ccxt's unified `total` of
    `fetch_balance(balance_params)` as both cash and equity, and any GET request."""
    return VenueProfile(
        exchange_id=exchange_id,
        name=f"{exchange_id} (not verified)",
        position_queries=tuple(PositionQuery(params) for params in position_queries),
        balance_params=balance_params or {},
        reads=("GET *",),
        verified=False,
    )
