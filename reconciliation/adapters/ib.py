"""`IBBroker`: a `BrokerQuery` over ib_async's `IB`, and `IBThread` to run one on a loop of its own.

Interactive Brokers' conventions, and what the adapter does with each:

- A stock and its options share `contract.symbol`; the symbol is `localSymbol`
  (`AAPL`, `AAPL  260116C00190000`, `ESH6`), and the asset type comes from `secType`.
- `avgCost` is per contract (price times multiplier, commissions folded in), and
  `Contract.multiplier` is a string ("100", "" for a stock): the cost is reported per
  unit, `avgCost / multiplier`; quantities stay in contracts, as IB counts them.
- ib_async parses the wire's text into floats; each number is read back as the
  float's shortest text, which is the text TWS sent (for up to 15 significant digits).
- A closed position lingers with size 0: it is left out. An FX balance held as a
  `CASH` position is cash, not a position: it is in `cash_by_currency`.
- Cash is `TotalCashValue` and equity `NetLiquidation` (both in the account's base
  currency); `CashBalance` per currency gives `cash_by_currency`.
- `get_fills` asks TWS for the account's executions since `since` (`reqExecutions`),
  keeps those of the asked `localSymbol`, signs each by its side (BOT, SLD), and takes
  its commission from the session's commission report of that execution id; quantities
  stay in contracts and prices per unit, as positions are. An FX execution (`CASH`) is
  cash, not a fill. TWS only keeps the executions of the current day (up to seven with
  its Trade Log setting): older fills are not there to read.
- ib_async's coroutines must run on the event loop of the IB connection: every call
  is handed to that loop (`asyncio.run_coroutine_threadsafe`) and its result awaited
  from whichever loop calls.

Needs the `ib` extra: ``pip install 'reconciliation[ib]'``. docs/brokers.md has the
field mapping.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import decimal
import importlib
import logging
import sys
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from reconciliation._domain.models import AssetType, BrokerAccount, BrokerPosition
from reconciliation._domain.values import EXACT, ROUNDED, positive_seconds, seconds, whole_number
from reconciliation.adapters._common import BrokerDataError, LoggedOnce, check_account, exact, exact_float
from reconciliation.adapters._fills import DEFAULT_MAX_FILLS, Executions, execution, signed

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from reconciliation._domain.fills import Fill

__all__ = ["SDK", "SEC_TYPES", "IBBroker", "IBThread", "Settings", "close_connections"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SEC_TYPES: Mapping[str, AssetType] = {
    "STK": AssetType.STOCK,
    "OPT": AssetType.OPTION,
    "FOP": AssetType.OPTION,
    "FUT": AssetType.FUTURE,
    "CONTFUT": AssetType.FUTURE,
    "CRYPTO": AssetType.CRYPTO,
}
"""IB's `secType` to the asset type of a position; `CASH` positions are cash and left out; any
other (BOND, WAR, ...) is `AssetType.OTHER`, by its `localSymbol`."""

_CASH_SEC_TYPE = "CASH"

_UNSET_DOUBLE = sys.float_info.max
"""What IB sends for a number it does not know."""

_VALUE_CURE = "ib_async hands account values over as the text TWS sent; do not convert them"

_BASE = "BASE"
"""The currency IB gives the base-currency total of a per-currency tag."""


class IBBroker:
    """The broker side of one IB account, over an ib_async `IB` that is connected to TWS or IB Gateway.

    Args:
        ib: a connected `ib_async.IB`. Its portfolio (market values) is streamed for the
            account it subscribed to at connection: connect with `account=account_id`
            when the login holds several accounts.
        account_id: the IB account (`DU7654321`).
        currency: the account's base currency, in which IB gives `TotalCashValue` and
            `NetLiquidation`.
        loop: the event loop the IB connection runs on. Default: the loop running
            where the adapter is made, else ib_async's loop of this thread. It must be
            running whenever the service reads the account (an asyncio program,
            `ib.run()`, or an `IBThread`).
        max_fills: the most executions `get_fills` gives for one symbol.
    """

    def __init__(
        self,
        ib: Any,
        account_id: str,
        *,
        currency: str = "USD",
        loop: asyncio.AbstractEventLoop | None = None,
        max_fills: int = DEFAULT_MAX_FILLS,
    ) -> None:
        if not isinstance(account_id, str) or not account_id.strip():
            msg = f"account_id must be the IB account, a non-empty str, not {account_id!r}"
            raise ValueError(msg)
        if not isinstance(currency, str) or not currency.strip():
            msg = f"currency must be the account's base currency such as 'USD', not {currency!r}"
            raise ValueError(msg)
        self._ib = ib
        self._account_id = account_id
        self._currency = currency
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = importlib.import_module("ib_async.util").getLoop()
        self._loop = loop
        self._lock = asyncio.Lock()
        self._unknown = LoggedOnce(logger)
        if isinstance(max_fills, bool) or not isinstance(max_fills, int) or max_fills < 1:
            msg = f"max_fills must be a whole number of at least 1, not {max_fills!r}"
            raise ValueError(msg)
        self._max_fills = max_fills

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def currency(self) -> str:
        """The account's base currency: the config's `cash_tolerance` must be in it."""
        return self._currency

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def get_positions(self, account_id: str) -> list[BrokerPosition]:
        """The account's open positions, freshly requested from TWS, by `localSymbol`.

        Raises:
            ConnectionError: IB is not connected, or its loop is not running.
            BrokerDataError: an entry cannot be mapped (an unknown `secType`, a bad multiplier).
        """
        check_account(account_id, self._account_id, "IBBroker")
        return await self._on_ib_loop(self._positions)

    async def get_account(self, account_id: str) -> BrokerAccount:
        """Cash (`TotalCashValue`), equity (`NetLiquidation`), `BuyingPower`, `MaintMarginReq`, cash per currency.

        Raises:
            ConnectionError: IB is not connected, or its loop is not running.
            BrokerDataError: a tag is missing, or given in another currency.
        """
        check_account(account_id, self._account_id, "IBBroker")
        return await self._on_ib_loop(self._account)

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        """The account's executions in `symbol` (a `localSymbol`) at or after `since`, oldest first,
        freshly requested from TWS.

        Raises:
            ConnectionError: IB is not connected, or its loop is not running.
            BrokerDataError: an execution cannot be mapped (the message names it).
            InconsistentVenueDataError: one execution id given twice with different figures.
        """
        check_account(account_id, self._account_id, "IBBroker")
        return await self._on_ib_loop(lambda: self._fills(symbol, since))

    async def _on_ib_loop(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `work()` on the IB connection's loop; await its result on the caller's."""
        if asyncio.get_running_loop() is self._loop:
            return await work()
        if self._loop.is_closed() or not self._loop.is_running():
            msg = (
                "the IB connection's event loop is not running, so ib_async cannot be read: run it "
                "(ib.run(), an asyncio program) or connect with reconciliation.adapters.ib.IBThread"
            )
            raise ConnectionError(msg)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), self._loop))

    def _connected(self) -> None:
        if not self._ib.isConnected():
            msg = f"IB is not connected (account {self._account_id})"
            raise ConnectionError(msg)

    async def _positions(self) -> list[BrokerPosition]:
        self._connected()
        async with self._lock:
            entries = await self._ib.reqPositionsAsync()
        portfolio = {item.contract.conId: item for item in self._ib.portfolio(self._account_id)}
        positions = (
            self._position(entry, portfolio.get(entry.contract.conId))
            for entry in entries
            if entry.account == self._account_id
        )
        return [position for position in positions if position is not None]

    def _position(self, entry: Any, held: Any) -> BrokerPosition | None:
        contract = entry.contract
        where = f"IB position {contract.localSymbol or contract.symbol} (conId {contract.conId})"
        quantity = exact_float(entry.position, f"{where} position")
        if not quantity or contract.secType == _CASH_SEC_TYPE:
            return None
        asset_type = self._unknown.asset_type(
            SEC_TYPES, contract.secType, where, said="has secType", by="localSymbol", per="secType"
        )
        if not contract.localSymbol:
            msg = f"{where} has no localSymbol to tell it from other contracts on {contract.symbol}"
            raise BrokerDataError(msg)
        multiplier = _multiplier(contract.multiplier, where)
        per_contract = (
            None if entry.avgCost == _UNSET_DOUBLE else exact_float(entry.avgCost, f"{where} avgCost")
        )
        if held is not None and held.marketValue != _UNSET_DOUBLE:
            market_value = exact_float(held.marketValue, f"{where} marketValue")
        else:
            logger.debug("%s: IB streams no portfolio value for it; reporting its cost value", where)
            market_value = EXACT.multiply(quantity, per_contract or Decimal(0))
        return BrokerPosition(
            contract.localSymbol,
            quantity,
            None if per_contract is None else ROUNDED.divide(per_contract, multiplier),
            market_value,
            asset_type,
        )

    async def _fills(self, symbol: str, since: dt.datetime) -> list[Fill]:
        self._connected()
        wanted = importlib.import_module("ib_async").ExecutionFilter(
            acctCode=self._account_id, time=since.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        )
        async with self._lock:
            entries = await self._ib.reqExecutionsAsync(wanted)
        reports = {fill.execution.execId: fill.commissionReport for fill in self._ib.fills()}
        where = f"IB fills of {symbol}"
        fills = Executions(where)
        for entry in entries:
            fill = self._fill(entry, symbol, since, reports.get(entry.execution.execId), where)
            if fill is not None:
                fills.add(fill)
        return fills.oldest_first(self._max_fills)

    def _fill(self, entry: Any, symbol: str, since: dt.datetime, report: Any, where: str) -> Fill | None:
        """One of ib_async's `Fill`s as a `Fill`; None for another account, symbol or time, or FX."""
        contract, done = entry.contract, entry.execution
        if contract.localSymbol != symbol or done.acctNumber != self._account_id or contract.secType == _CASH_SEC_TYPE:
            return None
        if not isinstance(done.time, dt.datetime) or done.time.tzinfo is None:
            msg = f"{where}: execution {done.execId!r} has the time {done.time!r}, without its time zone"
            raise BrokerDataError(msg)
        if done.time < since:
            return None
        named = f"{where}: execution {done.execId!r}"
        commission = 0.0 if report is None or report.execId != done.execId else report.commission
        return execution(
            named,
            fill_id=done.execId,
            order_id=done.permId or done.orderId,
            position=(symbol, SEC_TYPES.get(contract.secType, AssetType.OTHER)),
            quantity=signed(done.side, exact_float(done.shares, f"{named} shares"), named),
            price=exact_float(done.price, f"{named} price"),
            timestamp=done.time,
            fee=Decimal(0) if commission == _UNSET_DOUBLE else exact_float(commission, f"{named} commission"),
        )

    async def _account(self) -> BrokerAccount:
        self._connected()
        rows = await self._ib.accountSummaryAsync(self._account_id)
        values: dict[tuple[str, str], str] = {(row.tag, row.currency): row.value for row in rows}
        where = f"IB account {self._account_id}"

        def tag(name: str) -> Decimal:
            value = values.get((name, self._currency))
            if value is None:
                given = sorted(currency for tag_name, currency in values if tag_name == name)
                seen = f"given in {', '.join(given)}" if given else "not given"
                msg = f"{where} has no {name} in {self._currency} ({seen}; currency= is the base currency)"
                raise BrokerDataError(msg)
            return exact(value, f"{where} {name}", float_cure=_VALUE_CURE)

        by_currency = {
            currency: exact(value, f"{where} CashBalance {currency}", float_cure=_VALUE_CURE)
            for (name, currency), value in values.items()
            if name == "CashBalance" and currency and currency != _BASE
        }
        return BrokerAccount(
            self._account_id,
            cash=tag("TotalCashValue"),
            buying_power=tag("BuyingPower"),
            total_equity=tag("NetLiquidation"),
            margin_used=tag("MaintMarginReq"),
            cash_by_currency=by_currency or None,
        )


def _multiplier(text: str, where: str) -> Decimal:
    """`Contract.multiplier` ("100", "50", "" for none) as a positive Decimal."""
    if not text:
        return Decimal(1)
    try:
        multiplier = Decimal(text)
    except decimal.InvalidOperation:
        multiplier = Decimal(0)
    if not multiplier.is_finite() or multiplier <= 0:
        msg = f"{where} has the multiplier {text!r}, not a positive number"
        raise BrokerDataError(msg)
    return multiplier


class IBThread:
    """An ib_async `IB` connected on an event loop of its own, which a daemon thread runs.

    For a program whose own loop is busy with other things (`reconciliation run`), or a
    synchronous one: the IB loop runs all the time, so TWS's messages and `IBBroker`'s
    calls are always served.

        connection = IBThread("127.0.0.1", 7497, client_id=17, account="DU7654321")
        broker = IBBroker(connection.start(), "DU7654321", loop=connection.loop)
        ...
        connection.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        *,
        account: str = "",
        timeout: float = 10.0,
        readonly: bool = True,
    ) -> None:
        self._host, self._port, self._client_id = host, port, client_id
        self._account, self._timeout, self._readonly = account, timeout, readonly
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"ib-{host}:{port}#{client_id}", daemon=True
        )
        self._ib: Any = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def ib(self) -> Any:
        return self._ib

    def start(self) -> Any:
        """Start the loop and connect; the connected `IB`.

        Raises:
            ConnectionError: TWS did not accept the connection within `timeout` seconds.
        """
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        try:
            self._ib = future.result(self._timeout + 5)
        except Exception as exc:
            self.stop()
            msg = (
                f"could not connect to IB at {self._host}:{self._port} (client id {self._client_id}): {exc!r}"
            )
            raise ConnectionError(msg) from exc
        return self._ib

    def stop(self) -> None:
        """Disconnect, stop the loop and its thread. Safe to call twice."""
        if self._loop.is_closed():
            return
        if self._ib is not None:
            self._loop.call_soon_threadsafe(self._ib.disconnect)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread.is_alive():
            self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _connect(self) -> Any:
        ib = importlib.import_module("ib_async").IB()
        await ib.connectAsync(
            self._host,
            self._port,
            clientId=self._client_id,
            timeout=self._timeout,
            readonly=self._readonly,
            account=self._account,
        )
        return ib


SDK = "ib_async"  # what Settings needs: pip install 'reconciliation[ib]'

_connections: list[IBThread] = []
"""The connections `Settings.broker` opened, closed at exit (or by `close_connections`)."""


@attrs.frozen(kw_only=True)
class Settings:
    """An `IBBroker` as a TOML table names it (`adapter = "ib"`): where TWS or IB Gateway listens,
    this connection's client id and the account's base currency. TWS holds the login."""

    host: str = "127.0.0.1"
    port: int = attrs.field(validator=whole_number(0))
    client_id: int = attrs.field(validator=whole_number(0))
    """Unique per API connection to this TWS."""
    currency: str = "USD"
    timeout_seconds: float = attrs.field(default=10.0, converter=seconds, validator=positive_seconds)
    """How long to wait for TWS to accept the connection."""

    def broker(self, account_id: str) -> IBBroker:
        """The account's broker, over a connection of its own (an `IBThread`) that is closed at exit.

        Raises:
            ConnectionError: TWS did not accept the connection in time.
        """
        connection = IBThread(
            self.host, self.port, self.client_id, account=account_id, timeout=self.timeout_seconds
        )
        ib = connection.start()
        if not _connections:
            atexit.register(close_connections)
        _connections.append(connection)
        return IBBroker(ib, account_id, currency=self.currency, loop=connection.loop)

    def __str__(self) -> str:
        return f"ib {self.host}:{self.port} client {self.client_id}"


def close_connections() -> None:
    """Disconnect every IB connection that `Settings.broker` opened, and stop its thread."""
    while _connections:
        _connections.pop().stop()
