"""Each supported ccxt venue as its recorded answers show it, and the book that matches them.

The answers are in tests/fixtures/brokers/<venue>/ (README.md names the source of each
file); `Venue` says what an engine's book holds when it agrees with them, where the
venue's own figures for a position are (to make them disagree), and what a full read
asks the venue for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
from adapter_fixtures import Book
from recorded_ccxt import RecordedRoutes, recorded_exchange

from reconciliation import AssetType, Position
from reconciliation.adapters.ccxt import CcxtBroker

__all__ = ["VENUES", "Venue", "venue_broker"]

SWAP, FUTURE = AssetType.SWAP, AssetType.FUTURE


def _no_change(_routes: RecordedRoutes) -> None:
    """The recorded answers as they are."""


@attrs.frozen
class Venue:
    """One supported venue: its recorded answers (by ccxt id) and what agrees with them."""

    id: str
    currency: str
    positions: tuple[Position, ...]
    cash: str
    equity: str
    cash_by_currency: Mapping[str, str]
    credentials: Mapping[str, str] = attrs.field(factory=lambda: {"apiKey": "recorded-key", "secret": "recorded-secret"})
    config: Mapping[str, Any] = attrs.field(factory=dict)
    """ReconciliationConfig options (a cash tolerance in the account's currency)."""
    positions_file: str = ""
    """The recorded positions answer, and where in it the first position's raw entry is."""
    entry_at: tuple[str | int, ...] = ()
    size_field: str = ""
    """The venue's size (what ccxt turns into contracts) in that entry."""
    notional_field: str | None = None
    """The venue's notional in that entry, where it gives one that cross-checks the quantity."""
    reads: tuple[str, ...] = ()
    """Paths a full read must ask for: markets, positions, the derivatives account's balance."""
    variant: Callable[[RecordedRoutes], None] = _no_change
    """How the tests serve the recorded answers (README.md says why where they differ)."""

    def __str__(self) -> str:
        return self.id

    def book(self, account_id: str) -> Book:
        return Book(
            account_id,
            self.positions,
            cash=self.cash,
            total_equity=self.equity,
            cash_by_currency=dict(self.cash_by_currency),
        )


def _okx_mark_implied_by_notional(routes: RecordedRoutes) -> None:
    """ccxt's recorded OKX position has markPx 4786.46, which its own notionalUsd (341.51 for
    0.01 BTC) contradicts: served with the mark that notionalUsd implies."""

    def consistent(answer: Any) -> Any:
        answer["data"][0]["markPx"] = "34151.30010779638"
        return answer

    routes.replace("account_positions_swap_linear.json", consistent)


VENUES: tuple[Venue, ...] = (
    Venue(
        id="binanceusdm",
        currency="USDT",
        positions=(Position("WLD/USDT:USDT", "5", "2.3483", SWAP),),
        cash="23.72469206",
        equity="23.72469206",
        cash_by_currency={"USDT": "23.72469206"},
        positions_file="fapi_v3_positionRisk.json",
        entry_at=(0,),
        size_field="positionAmt",
        notional_field="notional",
        reads=("/fapi/v1/exchangeInfo", "/fapi/v3/positionRisk", "/fapi/v3/account"),
    ),
    Venue(
        id="binancecoinm",
        currency="BTC",
        positions=(Position("BTC/USD:BTC", "200", "37643.10000021", SWAP),),
        cash="0.01250000",
        equity="0.01256413",
        cash_by_currency={"BTC": "0.0125", "APT": "0"},
        config={"cash_tolerance": "0.0001"},
        positions_file="dapi_v1_positionRisk.json",
        entry_at=(0,),
        size_field="positionAmt",
        notional_field="notionalValue",
        reads=("/dapi/v1/exchangeInfo", "/dapi/v1/positionRisk", "/dapi/v1/account"),
    ),
    Venue(
        id="okx",
        currency="USDT",
        positions=(Position("BTC/USDT:USDT", "0.01", "34131.1", SWAP),),
        cash="94.42612990333333",
        equity="99.89469657000001",
        cash_by_currency={"USDT": "94.42612990333333"},
        credentials={"apiKey": "recorded-key", "secret": "recorded-secret", "password": "recorded-passphrase"},
        positions_file="account_positions_swap_linear.json",
        entry_at=("data", 0),
        size_field="pos",
        notional_field="notionalUsd",
        reads=("/api/v5/public/instruments", "/api/v5/account/positions", "/api/v5/account/balance"),
        variant=_okx_mark_implied_by_notional,
    ),
    Venue(
        id="bybit",
        currency="USD",
        positions=(Position("ETH/USDT:USDT", "0.5", "1073.85", SWAP),),
        cash="18070.43799271",
        equity="18070.32797922",
        cash_by_currency={"BTC": "0.805994"},
        positions_file="position_list_linear.json",
        entry_at=("result", "list", 0),
        size_field="size",
        notional_field="positionValue",
        reads=("/v5/market/instruments-info", "/v5/position/list", "/v5/account/wallet-balance"),
    ),
    Venue(
        id="deribit",
        currency="BTC",
        positions=(Position("BTC/USD:BTC", "50", "7440.18", SWAP),),
        cash="302.60065765",
        equity="302.61869214",
        cash_by_currency={"BTC": "302.60065765", "ETH": "100"},
        config={"cash_tolerance": "0.0001"},
        positions_file="private_get_positions.json",
        entry_at=("result", 0),
        size_field="size",
        notional_field="size_currency",
        reads=("/api/v2/public/get_instruments", "/api/v2/private/get_positions", "/api/v2/private/get_account_summaries"),
    ),
    Venue(
        id="krakenfutures",
        currency="USD",
        positions=(
            Position("BTC/USD:BTC", "-8000", "27523.749993345933", SWAP),
            Position("ETH/USD:ETH", "12000", "1750.25", SWAP),
        ),
        cash="0.0",
        equity="0.0",
        cash_by_currency={"XRP": "11.0"},
        credentials={"apiKey": "recorded-key", "secret": "cmVjb3JkZWQtc2VjcmV0"},
        positions_file="derivatives_api_v3_openpositions.json",
        entry_at=("openPositions", 0),
        size_field="size",
        reads=(
            "/derivatives/api/v3/instruments",
            "/derivatives/api/v3/openpositions",
            "/derivatives/api/v3/accounts",
        ),
    ),
    Venue(
        id="hyperliquid",
        currency="USDC",
        positions=(Position("ETH/USDC:USDC", "0.2259", "2213.9", SWAP),),
        cash="100.0",
        equity="100.0",
        cash_by_currency={"USDC": "100.0"},
        credentials={"walletAddress": "0x1111111111111111111111111111111111111111"},
        positions_file="info_clearinghouseState.json",
        entry_at=("assetPositions", 0),
        size_field="position.szi",
        reads=("/info",),
    ),
    Venue(
        id="bitget",
        currency="USDT",
        positions=(Position("BTC/USDT:USDT", "0.002", "37355.5", SWAP),),
        cash="0",
        equity="0",
        cash_by_currency={"USDT": "0"},
        credentials={"apiKey": "recorded-key", "secret": "recorded-secret", "password": "recorded-passphrase"},
        positions_file="mix_position_all-position_USDT-FUTURES.json",
        entry_at=("data", 0),
        size_field="total",
        reads=("/api/v2/mix/market/contracts", "/api/v2/mix/position/all-position", "/api/v2/mix/account/accounts"),
    ),
    Venue(
        id="gate",
        currency="USDT",
        positions=(Position("BTC/USDT:USDT", "0.0001", "46030.3", SWAP),),
        cash="12.51345151332",
        equity="25.828551513326",
        cash_by_currency={"USDT": "12.51345151332"},
        positions_file="futures_usdt_positions.json",
        entry_at=(0,),
        size_field="size",
        notional_field="value",
        reads=("/api/v4/futures/usdt/contracts", "/api/v4/futures/usdt/positions", "/api/v4/futures/usdt/accounts"),
    ),
    Venue(
        id="kucoinfutures",
        currency="BTC",
        positions=(Position("ETH/USDT:USDT", "0.02", "4182.1", SWAP),),
        cash="0.00005",
        equity="0.00005",
        cash_by_currency={"BTC": "0.00005"},
        credentials={"apiKey": "recorded-key", "secret": "recorded-secret", "password": "recorded-passphrase"},
        config={"cash_tolerance": "0.00001"},
        positions_file="api_v1_positions.json",
        entry_at=("data", 0),
        size_field="currentQty",
        notional_field="markValue",
        reads=("/api/v1/contracts/active", "/api/v1/positions", "/api/v1/account-overview"),
    ),
    Venue(
        id="coinbase",
        currency="USD",
        positions=(Position("BTC/USD:USD-240426", "0.02", "70980", FUTURE),),
        cash="8000.00",
        equity="8150.00",
        cash_by_currency={"USD": "8000.00"},
        positions_file="brokerage_cfm_positions.json",
        entry_at=("positions", 0),
        size_field="number_of_contracts",
        reads=(
            "/api/v3/brokerage/market/products",
            "/api/v3/brokerage/cfm/positions",
            "/api/v3/brokerage/cfm/balance_summary",
        ),
    ),
)


def venue_broker(
    venue: Venue, *, asynchronous: bool = False, decimal_mode: bool = False, **options: Any
) -> tuple[CcxtBroker, RecordedRoutes]:
    """A `CcxtBroker` over the venue's ccxt exchange answering from its recordings, as the tests serve them."""
    exchange, routes = recorded_exchange(
        venue.id, asynchronous=asynchronous, decimal_mode=decimal_mode, **dict(venue.credentials)
    )
    venue.variant(routes)
    return CcxtBroker(exchange, f"{venue.id}-main", currency=venue.currency, **options), routes


def entry_of(answer: Any, venue: Venue) -> Any:
    """The first position's raw entry in the venue's recorded positions answer."""
    node = answer
    for step in venue.entry_at:
        node = node[step]
    return node


def scaled(value: Any, factor: int) -> Any:
    """`value` (a venue's number, as text or JSON number) times `factor`, in the same form."""
    scaled_value = Decimal(str(value)) * factor
    return str(scaled_value) if isinstance(value, str) else float(scaled_value)
