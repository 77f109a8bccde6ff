"""`CcxtBroker`: a `BrokerQuery` over a ccxt exchange, sync or `ccxt.async_support`.

What a venue's answers mean is declared in the venue table (`venues.VENUES`): how a
quantity is sized, which calls list every position and read the derivatives account,
where cash and equity are, which requests a read may send. The adapter follows its
venue's profile and trusts nothing else:

- it uses the very exchange object it is given (the host's session, proxies, rate
  limiter), and while it reads, that exchange sends only the profile's reads
  (`read_only`): anything else is refused before it leaves the process and fails the run;
- numbers are the venue's own digits whether the host set `exchange.number = Decimal`
  or left ccxt's floats (`_raw.number`); a figure the venue sent but ccxt dropped (its
  Decimal mode loses figures it reads back) fails the run naming it;
- two figures the venue gives for one thing (its size and ccxt's contracts, a notional
  and the price it is valued at) must agree, or the run fails as inconsistent venue
  data, naming both, instead of reporting a break the engine's book cannot fix;
- cash and equity are the venue's own per-currency figures, never ccxt's unified
  `total` (which on Binance includes unrealised P&L), and never a missing row read as 0.
- fills (`get_fills`, what explains a position break) are ccxt's `fetch_my_trades`,
  read under the same guard, sized and typed as the positions of their market, a page at
  a time from `since` up to `max_fills`; a row the venue names another instrument in is
  left out, one it gives twice with other figures is inconsistent venue data.

Needs the `ccxt` extra: ``pip install 'reconciliation[ccxt]'``. docs/brokers.md has the
venue table and the field-by-field mapping.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from reconciliation._domain.models import AssetType, BrokerAccount, BrokerPosition
from reconciliation._domain.values import EXACT, ROUNDED, FieldValueError
from reconciliation.adapters._common import (
    BrokerDataError,
    InconsistentVenueDataError,
    LoggedOnce,
    check_account,
    check_credentials,
    described,
    read_environment,
)
from reconciliation.adapters._fills import DEFAULT_MAX_FILLS, Executions, execution, from_milliseconds, signed
from reconciliation.adapters._raw import Figure, Path, optional_number
from reconciliation.adapters.read_only import WriteRefusedError, reading
from reconciliation.adapters.venues import (
    VENUES,
    BalanceRows,
    NotionalCheck,
    PositionFields,
    VenueProfile,
    unverified,
)

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.fills import Fill

__all__ = ["SDK", "CcxtBroker", "Settings", "WriteRefusedError"]

logger = logging.getLogger(__name__)

_ASSET_TYPES = {
    "spot": AssetType.CRYPTO,
    "margin": AssetType.CRYPTO,
    "swap": AssetType.SWAP,
    "future": AssetType.FUTURE,
    "option": AssetType.OPTION,
}
"""ccxt's market `type` to the asset type of a position in it; any other is `AssetType.OTHER`."""

_CHECKED = frozenset({AssetType.SWAP, AssetType.FUTURE})
"""The asset types whose quantity a notional cross-checks (an option's notional is its premium's)."""

_SIGNS = {"long": 1, "short": -1}

_DROPPED = (
    "ccxt's Decimal mode (exchange.number = Decimal) drops figures that it reads back from its own "
    "parsed structures; the adapter reads exact figures from ccxt's default floats too"
)

_HUNDRED = Decimal(100)

_FIGURES = ("cash", "equity", "free", "used")

_PAGE = 100
"""Trades asked for per `fetch_my_trades` call (OKX and Bybit give at most 100)."""


class CcxtBroker:
    """The broker side of one account at a ccxt venue.

    Args:
        exchange: a ccxt exchange instance (sync or `ccxt.async_support`), logged in to
            the account; used as it is (ccxt's floats or `exchange.number = Decimal`).
        account_id: the id this adapter answers for (ccxt has no account ids).
        currency: the account currency, in ccxt's code (`USDT`, `BTC`): cash and equity
            are read in it, and the config's `cash_tolerance` must be in it.
        profile: the venue's profile; default: its entry in `venues.VENUES`, else a
            generic one (`venues.unverified`), with a WARNING and a health warning.
        units: "base" (default) for quantities as the venue table sizes them, "contracts"
            to keep ccxt's contracts (for a book kept in contracts); fills are sized the same.
        max_fills: the most executions `get_fills` reads for one symbol (page after page).

    Raises:
        ValueError: an argument is invalid, the profile is another venue's, or the
            exchange holds a credential the venue's reads must not have (a Hyperliquid
            private key, with which ccxt signs writes while loading markets).
    """

    def __init__(
        self,
        exchange: Any,
        account_id: str,
        *,
        currency: str,
        profile: VenueProfile | None = None,
        units: Literal["base", "contracts"] = "base",
        max_fills: int = DEFAULT_MAX_FILLS,
    ) -> None:
        if not isinstance(account_id, str) or not account_id.strip():
            msg = f"account_id must be a non-empty str, not {account_id!r}"
            raise ValueError(msg)
        if not isinstance(currency, str) or not currency.strip():
            msg = f"currency must be a currency code such as 'USDT', not {currency!r}"
            raise ValueError(msg)
        if units not in {"base", "contracts"}:
            msg = f"units must be 'base' or 'contracts', not {units!r}"
            raise ValueError(msg)
        if isinstance(max_fills, bool) or not isinstance(max_fills, int) or max_fills < 1:
            msg = f"max_fills must be a whole number of at least 1, not {max_fills!r}"
            raise ValueError(msg)
        venue = exchange.id
        profile = profile or VENUES.get(venue) or unverified(venue)
        if profile.exchange_id != venue:
            msg = f"the profile is {profile.exchange_id}'s, but the exchange is {venue}"
            raise ValueError(msg)
        _check_read_credentials(exchange, profile)
        self._exchange = exchange
        self._account_id = account_id
        self._currency = currency
        self._units = units
        self._max_fills = max_fills
        self._profile = profile
        self._unknown = LoggedOnce(logger)
        self._is_async = inspect.iscoroutinefunction(exchange.fetch_positions)
        self._sync_calls = threading.Lock()
        self.health_warning: str | None = None
        """Why its figures are not to be trusted as a supported venue's are (None: a supported venue)."""
        if not profile.verified:
            self.health_warning = (
                f"ccxt venue {venue} is not in the venue table, so its answers are unverified: cash and "
                f"equity are both ccxt's unified total in {currency}, positions come from "
                f"{len(profile.position_queries)} fetch_positions call(s) and quantities are contracts x "
                "contract size; any GET request may be sent"
            )
            logger.warning("%s (see docs/brokers.md)", self.health_warning)

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def currency(self) -> str:
        return self._currency

    @property
    def profile(self) -> VenueProfile:
        return self._profile

    async def get_positions(self, account_id: str) -> list[BrokerPosition]:
        """Every open position of every product family the profile asks for, signed, sized as
        its venue's rule says; flat ones left out.

        Raises:
            BrokerDataError: an entry cannot be mapped, or ccxt dropped a figure the venue sent.
            InconsistentVenueDataError: two figures for one position disagree.
            WriteRefusedError: the read tried to send a request that is not a declared read.
        """
        check_account(account_id, self._account_id, "CcxtBroker")
        exchange = self._exchange
        with reading(exchange, exchange.id, self._profile.reads):
            if not exchange.markets:
                await self._call(exchange.load_markets)
            entries: list[Any] = []
            for params, optional in self._position_params():
                entries.extend(await self._optional(optional, exchange.fetch_positions, None, params))
        positions = (self._position(index, entry) for index, entry in enumerate(entries))
        return [position for position in positions if position is not None]

    async def get_account(self, account_id: str) -> BrokerAccount:
        """Cash and equity in the account currency and cash per currency, from the venue's own
        balance rows of the derivatives or unified account.

        Raises:
            BrokerDataError: the balance has no row for the currency, or a figure is missing.
            WriteRefusedError: the read tried to send a request that is not a declared read.
        """
        check_account(account_id, self._account_id, "CcxtBroker")
        exchange = self._exchange
        profile = self._profile
        with reading(exchange, exchange.id, profile.reads):
            if not profile.balances:
                balance = await self._call(exchange.fetch_balance, dict(profile.balance_params))
                return self._unified_account(balance)
            answers: dict[Mapping[str, object], Any] = {}
            for rows in profile.balances:
                if rows.params not in answers:
                    params = {k: self._currency if v == "{currency}" else v for k, v in rows.params.items()}
                    answers[rows.params] = await self._optional(rows.optional, exchange.fetch_balance, params) or {}
        return self._account(answers)

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        """The account's executions in `symbol` (ccxt's unified symbol) at or after `since`, oldest
        first, at most `max_fills`: ccxt's `fetch_my_trades`, each signed by its side and sized and
        typed as the positions in its market are.

        A page (100 trades) is asked for from `since`; a full one is followed by pages of the
        times it does not cover, after its newest fill and (until) before its oldest, so a venue
        answering the oldest trades of a window first (Binance) and one answering the newest
        first (OKX, Bybit) are both read whole; a short page, or one bringing nothing new, ends
        its stretch of time.

        Raises:
            BrokerDataError: no such market, or an execution that cannot be mapped (the message
                names it).
            InconsistentVenueDataError: one execution id given twice with different figures.
            WriteRefusedError: the read tried to send a request that is not a declared read.
        """
        check_account(account_id, self._account_id, "CcxtBroker")
        exchange = self._exchange
        where = f"{exchange.id} fills of {symbol}"
        start = int(since.timestamp() * 1000)
        with reading(exchange, exchange.id, self._profile.reads):
            if not exchange.markets:
                await self._call(exchange.load_markets)
            market = self._market(symbol, where)
            asset_type = self._asset_type(market, where)
            size = Decimal(1) if self._units == "contracts" else self._contract_size(market, asset_type, where)
            fills = Executions(where)
            windows: list[tuple[int, int | None]] = [(start, None)]
            while windows and len(fills) < self._max_fills:
                low, high = windows.pop()
                trades = await self._trades(symbol, low, high, where) or ()
                mapped = (self._fill(trade, market, asset_type, size, where) for trade in trades)
                page = [fill for fill in mapped if fill is not None]
                added = [fill for fill in page if fills.add(fill)]
                if len(page) < _PAGE or not added:
                    continue
                stamps = [int(fill.timestamp.timestamp() * 1000) for fill in page]
                if min(stamps) > low:
                    windows.append((low, min(stamps) + 1))
                windows.append((max(stamps), high))
        return fills.oldest_first(self._max_fills)

    async def _trades(self, symbol: str, low: int, high: int | None, where: str) -> Any:
        """A page of ccxt's trades from `low` (until `high`); ccxt failing on a row it cannot parse
        (a trade without a time fails ccxt's own sort) is the venue's bad row, named, not an SDK crash."""
        params = {} if high is None else {"until": high}
        try:
            return await self._call(self._exchange.fetch_my_trades, symbol, low, _PAGE, params)
        except (TypeError, ArithmeticError, KeyError, IndexError) as error:
            msg = f"{where}: ccxt could not read the venue's trades ({type(error).__name__}: {error})"
            raise BrokerDataError(msg) from error

    def _fill(
        self, trade: Mapping[str, Any], market: Mapping[str, Any], asset_type: AssetType, size: Decimal, where: str
    ) -> Fill | None:
        """One of ccxt's trades as a `Fill`; None for another instrument's (by ccxt's symbol, and by
        the venue's instrument id in the raw row where the profile says where it is)."""
        symbol = market["symbol"]
        named = Path(self._profile.fill_instrument).values(trade.get("info")) if self._profile.fill_instrument else []
        if trade.get("symbol") != symbol or (named and str(named[0]).casefold() != str(market.get("id")).casefold()):
            logger.debug("%s: a trade in %r (%r) left out", where, trade.get("symbol"), named)
            return None
        row = f"{where}: execution {trade.get('id')!r}"
        amount = optional_number(trade.get("amount"), f"{row} amount")
        price = optional_number(trade.get("price"), f"{row} price")
        if amount is None or price is None:
            msg = f"{row} has no {'amount' if amount is None else 'price'} ({trade.get('info')!r:.200})"
            raise BrokerDataError(msg)
        fee = trade.get("fee") or {}
        cost = optional_number(fee.get("cost") if isinstance(fee, Mapping) else None, f"{row} fee")
        if cost is None and self._profile.fill_fee is not None:
            raw = self._profile.fill_fee.read(trade.get("info"), row)
            cost = None if raw is None else raw.copy_negate() if self._profile.fill_fee_sign < 0 else raw
        return execution(
            row,
            fill_id=trade.get("id"),
            order_id=trade.get("order"),
            position=(symbol, asset_type),
            quantity=signed(trade.get("side"), EXACT.multiply(amount, size), row),
            price=price,
            timestamp=from_milliseconds(trade.get("timestamp"), row),
            fee=Decimal(0) if cost is None else cost,
        )

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Await an async ccxt method; run a sync one on a worker thread, one at a time."""
        if self._is_async:
            return await method(*args)

        def locked() -> Any:
            with self._sync_calls:
                return method(*args)

        return await asyncio.to_thread(locked)

    async def _optional(self, optional: bool, method: Callable[..., Any], *args: Any) -> Any:
        """`method(*args)`; for a product family the account may not have opened, nothing where
        ccxt says the account is not enabled."""
        try:
            return await self._call(method, *args)
        except importlib.import_module("ccxt.base.errors").AccountNotEnabled as exc:
            if not optional:
                raise
            logger.debug("%s %s%s: no such account (%s)", self._exchange.id, method.__name__, args, exc)
            return []

    def _position_params(self) -> Iterable[tuple[dict[str, object], bool]]:
        for query in self._profile.position_queries:
            if query.per_settle is None:
                yield dict(query.params), query.optional
                continue
            for settle in self._inverse_settle_ids():
                yield {**query.params, query.per_settle: settle}, query.optional

    def _inverse_settle_ids(self) -> list[str]:
        markets = (self._exchange.markets or {}).values()
        return sorted(
            {str(m["settleId"]) for m in markets if m.get("contract") and m.get("inverse") and m.get("settleId")}
        )

    def _position(self, index: int, entry: Mapping[str, Any]) -> BrokerPosition | None:
        venue = self._exchange.id
        symbol = entry.get("symbol")
        info = entry.get("info")
        if not isinstance(symbol, str) or not symbol:
            msg = f"{venue} position {index} has no symbol ({info!r:.200})"
            raise BrokerDataError(msg)
        where = f"{venue} position {symbol}"
        fields = self._profile.positions
        contracts = optional_number(entry.get("contracts"), f"{where} contracts")
        raw_size = None if fields is None else fields.size.read(info, where)
        if contracts is None:
            if raw_size:
                _dropped(where, "contracts", fields.size if fields else None, raw_size)
            return None
        if not contracts:
            return None
        side = self._side(entry, where, contracts, raw_size, fields)
        market = self._market(symbol, where)
        asset_type = self._asset_type(market, where)
        if fields is not None:
            _check_size(where, contracts, side, raw_size, fields)
        sized = EXACT.multiply(contracts.copy_abs(), self._contract_size(market, asset_type, where))
        if fields is not None and asset_type in _CHECKED and fields.notional is not None:
            _check_notional(where, sized, bool(market.get("inverse")), info, fields.notional)
        quantity = (contracts.copy_abs() if self._units == "contracts" else sized).copy_sign(Decimal(side))
        entry_price = optional_number(entry.get("entryPrice"), f"{where} entryPrice")
        if entry_price is None and fields is not None:
            raw_entry = fields.entry.read(info, where)
            if raw_entry:
                _dropped(where, "entryPrice", fields.entry, raw_entry)
        value = self._market_value(entry, market, asset_type, quantity, entry_price, where)
        return BrokerPosition(symbol, quantity, entry_price, value, asset_type)

    @staticmethod
    def _side(
        entry: Mapping[str, Any],
        where: str,
        contracts: Decimal,
        raw_size: Decimal | None,
        fields: PositionFields | None,
    ) -> int:
        """+1 long, -1 short: ccxt's side; the venue's signed size where ccxt gives none."""
        side = entry.get("side")
        if side in _SIGNS:
            return _SIGNS[side]
        if fields is not None and fields.signed and raw_size:
            return 1 if raw_size > 0 else -1
        msg = (
            f"{where} holds {contracts} contracts but has no side (side={side!r}): "
            "ccxt's contracts are never negative, so a long cannot be told from a short"
        )
        raise BrokerDataError(msg)

    def _market(self, symbol: str, where: str) -> Mapping[str, Any]:
        market = (self._exchange.markets or {}).get(symbol)
        if market is None:
            msg = f"{where}: no such market is loaded (load_markets(reload=True) if it is new)"
            raise BrokerDataError(msg)
        return market  # type: ignore[no-any-return]

    def _asset_type(self, market: Mapping[str, Any], where: str) -> AssetType:
        return self._unknown.asset_type(
            _ASSET_TYPES, str(market.get("type")), where, said="is in a market of type", by="symbol", per="type"
        )

    def _contract_size(self, market: Mapping[str, Any], asset_type: AssetType, where: str) -> Decimal:
        """What one of ccxt's contracts counts, by the venue's sizing rule (1: counted as sent).

        The market's contract size, parsed from the venue's instrument: never the position's,
        which ccxt derives from margin figures when it cannot read it back (its Decimal mode)."""
        if asset_type is AssetType.OPTION or self._profile.sizing == "venue_size" or not market.get("contract"):
            return Decimal(1)
        size = optional_number(market.get("contractSize"), f"{where} market contractSize")
        if size is None:
            msg = f"{where}: its market has no contractSize, so its quantity cannot be sized"
            raise BrokerDataError(msg)
        return size

    def _market_value(
        self,
        entry: Mapping[str, Any],
        market: Mapping[str, Any],
        asset_type: AssetType,
        quantity: Decimal,
        entry_price: Decimal | None,
        where: str,
    ) -> Decimal:
        """Not compared: ccxt's `notional`, signed like the position; an inverse contract's face
        value; quantity x `markPrice`; the cost value (quantity x entry price); else 0."""
        notional = optional_number(entry.get("notional"), f"{where} notional")
        if notional is not None:
            return notional.copy_abs().copy_sign(quantity)
        if market.get("inverse") and asset_type in _CHECKED and self._units == "base":
            return quantity
        mark = optional_number(entry.get("markPrice"), f"{where} markPrice")
        price = mark if mark is not None else entry_price
        if price is None:
            logger.debug("%s: no notional, mark or entry price; its market value is reported as 0", where)
            return Decimal(0)
        return EXACT.multiply(quantity, price)

    def _account(self, answers: Mapping[Mapping[str, object], Any]) -> BrokerAccount:
        venue = self._exchange.id
        account: dict[str, _Figures] = {}
        by_currency: dict[str, Decimal] = {}
        unified: Any = None
        for rows in self._profile.balances:
            balance = answers[rows.params]
            if not balance:
                continue
            unified = unified or balance
            for currency, figures in _rows(rows, balance.get("info"), venue, self._exchange.safe_currency_code):
                if rows.account:
                    account[currency] = account[currency] + figures if currency in account else figures
                if rows.per_currency and figures.cash is not None:
                    by_currency[currency] = EXACT.add(by_currency.get(currency, Decimal(0)), figures.cash)
        found = account.get(self._currency)
        if found is None:
            listed = ", ".join(sorted(account)) or "none"
            msg = f"{venue} balance has no {self._currency} row (it lists {listed})"
            raise BrokerDataError(msg)
        return BrokerAccount(
            self._account_id,
            cash=found.required("cash"),
            buying_power=found.free if found.free is not None else self._unified(unified, "free"),
            total_equity=found.required("equity"),
            margin_used=found.used if found.used is not None else self._unified(unified, "used"),
            cash_by_currency=by_currency or None,
        )

    def _unified_account(self, balance: Mapping[str, Any]) -> BrokerAccount:
        total = optional_number((balance.get("total") or {}).get(self._currency), "")
        if total is None:
            listed = ", ".join(sorted(balance.get("total") or {})) or "none"
            msg = (
                f"{self._exchange.id} balance has no total in {self._currency} (it lists {listed}); "
                "for a venue the table does not list, balance_params selects the account"
            )
            raise BrokerDataError(msg)
        return BrokerAccount(
            self._account_id, total, self._unified(balance, "free"), total, self._unified(balance, "used")
        )

    def _unified(self, balance: Mapping[str, Any] | None, kind: str) -> Decimal:
        """ccxt's unified `free` or `used` in the account currency (informational: 0 where not given)."""
        amounts = (balance or {}).get(kind) or {}
        value = optional_number(amounts.get(self._currency), f"{self._exchange.id} balance {kind} {self._currency}")
        return Decimal(0) if value is None else value


@attrs.frozen
class _Figures:
    """One currency's figures in a balance answer; None where the row does not give one, with
    what it lacks (a row that is not the account's may lack anything: it is not compared)."""

    where: str
    cash: Decimal | None
    equity: Decimal | None
    free: Decimal | None
    used: Decimal | None
    lacks: Mapping[str, str] = attrs.field(factory=dict)

    def required(self, name: Literal["cash", "equity"]) -> Decimal:
        value: Decimal | None = getattr(self, name)
        if value is None:
            msg = f"{self.where} has no {self.lacks.get(name, name)}"
            raise BrokerDataError(msg)
        return value

    def __add__(self, other: _Figures) -> _Figures:
        """Each figure summed where both rows give it, else the one given."""
        added = {
            name: mine if theirs is None else theirs if mine is None else EXACT.add(mine, theirs)
            for name in _FIGURES
            for mine, theirs in [(getattr(self, name), getattr(other, name))]
        }
        return _Figures(self.where, **added, lacks={**other.lacks, **self.lacks})


def _rows(
    rows: BalanceRows, info: object, venue: str, code_of: Callable[[str], str]
) -> Iterable[tuple[str, _Figures]]:
    """Each (currency, figures) row that `rows` finds in a raw balance answer."""
    nodes = Path(rows.path).values(info) if rows.path else [info]
    for node in nodes:
        for raw_currency, row in _currency_rows(rows, node, venue):
            currency = rows.fixed or code_of(str(raw_currency))
            where = f"{venue} balance {currency}"
            read = {
                name: None if figure is None else figure.read(row, where)
                for name in _FIGURES
                for figure in [getattr(rows, name)]
            }
            lacks = {"cash": str(rows.cash.first), "equity": str(rows.equity.first if rows.equity else "equity")}
            yield currency, _Figures(where, **read, lacks=lacks)


def _currency_rows(rows: BalanceRows, node: object, venue: str) -> Iterable[tuple[object, Mapping[str, Any]]]:
    if rows.fixed is not None and isinstance(node, Mapping):
        return [(rows.fixed, node)]
    if rows.currency is None and isinstance(node, Mapping):
        return [(key, row if isinstance(row, Mapping) else {}) for key, row in node.items()]
    if rows.currency is not None and isinstance(node, Mapping) and rows.currency in node:
        return [(node[rows.currency], node)]
    if rows.currency is not None and isinstance(node, list) and all(isinstance(row, Mapping) for row in node):
        return [(row.get(rows.currency), row) for row in node]
    msg = f"{venue} balance at {rows.path or 'its top level'} is {type(node).__name__}, not the currency rows expected"
    raise BrokerDataError(msg)


def _dropped(where: str, field: str, raw: Figure | None, value: Decimal) -> None:
    msg = f"{where}: ccxt gave no {field}, but the venue sent {raw} = {value} ({_DROPPED})"
    raise BrokerDataError(msg)


def _check_size(where: str, contracts: Decimal, side: int, raw_size: Decimal | None, fields: PositionFields) -> None:
    """ccxt's contracts are the venue's size, signed like the position where the venue signs it."""
    if raw_size is None:
        return
    if raw_size.copy_abs() != contracts.copy_abs():
        msg = (
            f"inconsistent venue data: {where}: ccxt's contracts are {contracts}, but the venue's "
            f"{fields.size} is {raw_size}; the run fails rather than report a break from a quantity it cannot trust"
        )
        raise InconsistentVenueDataError(msg)
    if fields.signed and raw_size and (raw_size > 0) != (side > 0):
        held = "long" if side > 0 else "short"
        msg = f"inconsistent venue data: {where}: ccxt says {held}, but the venue's {fields.size} is {raw_size}"
        raise InconsistentVenueDataError(msg)


def _check_notional(where: str, sized: Decimal, inverse: bool, info: object, check: NotionalCheck) -> None:
    """The venue's notional and the price it is valued at must give the quantity, within the tolerance."""
    notional = check.notional.read(info, where)
    price = check.price.read(info, where)
    if not notional or not price:
        return
    in_base = check.unit == "base" or (check.unit == "settle" and inverse)
    if in_base:
        expected = ROUNDED.divide(sized, price) if inverse else sized
    else:
        expected = sized if inverse else EXACT.multiply(sized, price)
    gap = EXACT.subtract(expected, notional.copy_abs()).copy_abs()
    largest = max(expected, notional.copy_abs())
    if EXACT.multiply(gap, _HUNDRED) <= EXACT.multiply(largest, check.tolerance_pct):
        return
    quantity = f"{sized} {'(face value)' if inverse else '(base units)'}"
    msg = (
        f"inconsistent venue data: {where}: a quantity of {quantity} at {check.price} {price} is "
        f"{expected.normalize():f}, but the venue's {check.notional} is {notional}; the run fails rather "
        "than report a break from a quantity it cannot trust"
    )
    raise InconsistentVenueDataError(msg)


def _check_read_credentials(exchange: Any, profile: VenueProfile) -> None:
    """Refuse an exchange holding a credential its venue's reads must not have."""
    if profile.credentials is None:
        return
    required = getattr(exchange, "requiredCredentials", {}) or {}
    extra = [key for key, needed in required.items() if needed and key not in profile.credentials and getattr(exchange, key, None)]
    if extra:
        msg = (
            f"{exchange.id} reads with {', '.join(profile.credentials)} alone, but this exchange also holds "
            f"{', '.join(extra)}, with which ccxt signs and sends requests that are not reads (on Hyperliquid: "
            "approveBuilderFee and setReferrer while loading markets): give CcxtBroker an exchange made with "
            f"{', '.join(profile.credentials)} only"
        )
        raise ValueError(msg)


SDK = "ccxt"  # what Settings needs: pip install 'reconciliation[ccxt]'


@attrs.frozen(kw_only=True)
class Settings:
    """A `CcxtBroker` as a TOML table names it (`adapter = "ccxt"`): the venue's ccxt exchange id,
    the currency cash and equity are read in, and the environment variables holding the
    credentials its reads require, all checked against ccxt and the venue table when the
    settings are made."""

    venue: str = attrs.field()
    currency: str
    credentials: Mapping[str, str] = attrs.field(factory=dict)
    """Each ccxt credential field (`apiKey`, `secret`, `password`, `walletAddress`, ...) to an environment variable's name."""
    options: Mapping[str, Any] = attrs.field(factory=dict)
    """Passed to the exchange's constructor (non-secret settings, such as `recvWindow`); a
    credential's key (`apiKey`, `secret`, ...) is refused here."""
    sandbox: bool = False
    units: Literal["base", "contracts"] = "base"
    position_queries: tuple[Mapping[str, Any], ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    """For a venue the table does not list: the params of each fetch_positions call (default: one, without)."""
    balance_params: Mapping[str, Any] | None = attrs.field(default=None)
    """For a venue the table does not list: the params of fetch_balance that select the derivatives account."""

    @venue.validator
    def _an_exchange_id(self, field: attrs.Attribute[Any], value: str) -> None:
        exchanges = importlib.import_module(SDK).exchanges
        if value not in exchanges:
            close = difflib.get_close_matches(value, exchanges, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"{value!r} is not a ccxt exchange id{hint}"
            raise FieldValueError(msg, field.name)

    @credentials.validator
    def _the_venues_credentials(self, field: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
        needed = getattr(importlib.import_module(SDK), self.venue)().requiredCredentials
        profile = VENUES.get(self.venue)
        if profile is not None and profile.credentials is not None:
            for key in value:
                if needed.get(key) and key not in profile.credentials:
                    msg = (
                        f"{self.venue} reads with {', '.join(profile.credentials)} alone: leave {key} out "
                        "(ccxt signs requests that are not reads with it)"
                    )
                    raise FieldValueError(msg, field.name, key)
            required: tuple[str, ...] = profile.credentials
        else:
            required = tuple(key for key, needs in needed.items() if needs)
        check_credentials(field, value, known=tuple(needed), required=required)

    @position_queries.validator
    @balance_params.validator
    def _only_unverified_calls(self, field: attrs.Attribute[Any], value: object) -> None:
        if value is not None and self.venue in VENUES:
            msg = f"the venue table names {self.venue}'s calls; {field.name} is for a venue it does not list"
            raise FieldValueError(msg, field.name)

    def profile(self) -> VenueProfile:
        """The venue's profile: its entry in the table, else the generic one with these settings' calls."""
        return VENUES.get(self.venue) or unverified(
            self.venue, position_queries=self.position_queries or ({},), balance_params=self.balance_params
        )
    @options.validator
    def _no_credential_in_options(self, field: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
        credentials = getattr(importlib.import_module(SDK), self.venue)().requiredCredentials
        for key in value:
            if key in credentials:
                msg = (
                    f"a credential, never an option: name the environment variable holding it in "
                    f'credentials = {{ {key} = "..." }} (if the value is a secret, it is in this file now: rotate it)'
                )
                raise FieldValueError(msg, field.name, key)

    def broker(self, account_id: str) -> CcxtBroker:
        """The account's broker, its exchange logged in with the credentials read from the environment now.

        ccxt's default floats are kept: the adapter reads them back exactly, and ccxt's
        Decimal mode drops figures.

        Raises:
            MissingCredentialError: a variable is not set.
        """
        secrets = read_environment(self.credentials)
        exchange = getattr(importlib.import_module(SDK), self.venue)({**self.options, **secrets})
        if self.sandbox:
            exchange.set_sandbox_mode(True)
        return CcxtBroker(exchange, account_id, currency=self.currency, units=self.units, profile=self.profile())

    def __str__(self) -> str:
        return f"ccxt {self.venue}{' sandbox' if self.sandbox else ''} ({described(self.credentials)})"
