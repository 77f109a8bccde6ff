"""`AlpacaBroker`: a `BrokerQuery` over alpaca-py's `TradingClient`.

alpaca-py hands every number over as the exact text Alpaca sent, so nothing goes
through float. What the adapter fixes: a short's quantity is made negative from its
`side` ("short"), whatever sign Alpaca gives it; a crypto position keyed `BTCUSD` is
reported as `BTC/USD`, the symbol orders use; an option keeps its per-share average
price, and its quantity in contracts. The account is named by its account number
(`PA3T8N36NVJK`), not its `id` (a UUID).

`get_fills` reads the account's FILL activities (`GET /v2/account/activities/FILL`,
through the client's own session, headers and error handling), oldest first from `since`,
a page at a time: one activity is one execution (a fill or a partial fill), signed by its
side; Alpaca reports no fee with it (fees are activities of their own).

`TradingClient` is synchronous (requests): each call runs on a worker thread, so the
service's event loop never waits on the network. Needs the `alpaca` extra:
``pip install 'reconciliation[alpaca]'``. docs/brokers.md has the field mapping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import importlib
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from reconciliation._domain.models import AssetType, BrokerAccount, BrokerPosition
from reconciliation.adapters._common import (
    BrokerDataError,
    LoggedOnce,
    check_account,
    check_credentials,
    described,
    exact,
    read_environment,
)
from reconciliation.adapters._fills import DEFAULT_MAX_FILLS, Executions, execution, signed

if TYPE_CHECKING:
    from reconciliation._domain.fills import Fill

__all__ = ["CRYPTO_QUOTES", "SDK", "AlpacaBroker", "Settings", "crypto_symbol", "fill_asset_type"]

logger = logging.getLogger(__name__)

_FLOAT_CURE = (
    "alpaca-py gives exact text; build the client with its defaults (not a float-converting wrapper)"
)
_exact = functools.partial(exact, float_cure=_FLOAT_CURE)

_ASSET_TYPES = {"us_equity": AssetType.STOCK, "us_option": AssetType.OPTION, "crypto": AssetType.CRYPTO}

_SIGNS = {"long": 1, "short": -1}

CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")
"""The quote currencies of Alpaca's crypto pairs, longest first, to split `BTCUSD` into `BTC/USD`."""


_PAGE = 100
"""Activities per page: Alpaca's most."""

_FILLS = "/account/activities/FILL"

_OPTION_SYMBOL = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
"""An OCC option symbol as Alpaca writes it: `AAPL260116C00190000`."""


def fill_asset_type(symbol: str) -> AssetType:
    """The asset type of a position in `symbol`, which Alpaca's activities do not say: crypto
    has a slash (`BTC/USD`), an option is an OCC symbol, anything else is a stock."""
    if "/" in symbol:
        return AssetType.CRYPTO
    return AssetType.OPTION if _OPTION_SYMBOL.match(symbol) else AssetType.STOCK


def crypto_symbol(symbol: str) -> str:
    """`BTC/USD` for Alpaca's position symbol `BTCUSD` (a symbol with a slash is kept).

    Raises:
        BrokerDataError: no known quote currency ends the symbol.
    """
    if "/" in symbol:
        return symbol
    for quote in CRYPTO_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    msg = f"crypto position {symbol!r} does not end in a known quote currency ({', '.join(CRYPTO_QUOTES)})"
    raise BrokerDataError(msg)


class AlpacaBroker:
    """The broker side of one Alpaca account.

    Args:
        client: an alpaca-py `TradingClient` logged in to the account (models or
            `raw_data=True` dicts both work).
        account_id: the account number (`TradeAccount.account_number`), which
            `get_account` checks the client is logged in to.
        max_fills: the most executions `get_fills` keeps for one symbol.
        max_activities: the most FILL activities (of every symbol) one `get_fills` reads.
    """

    def __init__(
        self,
        client: Any,
        account_id: str,
        *,
        max_fills: int = DEFAULT_MAX_FILLS,
        max_activities: int = 10 * DEFAULT_MAX_FILLS,
    ) -> None:
        if not isinstance(account_id, str) or not account_id.strip():
            msg = f"account_id must be the account number, a non-empty str, not {account_id!r}"
            raise ValueError(msg)
        for name, value in (("max_fills", max_fills), ("max_activities", max_activities)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a whole number of at least 1, not {value!r}"
                raise ValueError(msg)
        self._client = client
        self._account_id = account_id
        self._max_fills = max_fills
        self._max_activities = max_activities
        self._unknown = LoggedOnce(logger)

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def currency(self) -> str:
        """Alpaca accounts are in USD."""
        return "USD"

    async def get_positions(self, account_id: str) -> list[BrokerPosition]:
        """Every open position, signed; crypto as `BASE/QUOTE`, options per share.

        Raises:
            BrokerDataError: an entry cannot be mapped (unknown side or asset class, no market value).
        """
        check_account(account_id, self._account_id, "AlpacaBroker")
        entries = await asyncio.to_thread(self._client.get_all_positions)
        positions = (self._position(index, entry) for index, entry in enumerate(entries))
        return [position for position in positions if position is not None]

    async def get_account(self, account_id: str) -> BrokerAccount:
        """`cash`, `equity`, `buying_power` and `initial_margin` of the account.

        Raises:
            BrokerDataError: the client is logged in to another account, or a field is missing.
        """
        check_account(account_id, self._account_id, "AlpacaBroker")
        account = await asyncio.to_thread(self._client.get_account)
        number = _field(account, "account_number")
        if number != self._account_id:
            msg = (
                f"the Alpaca client is logged in to account number {number!r} "
                f"(id {_field(account, 'id')}), not {self._account_id!r}"
            )
            raise BrokerDataError(msg)
        where = f"Alpaca account {number}"
        return BrokerAccount(
            self._account_id,
            cash=_exact(_field(account, "cash"), f"{where} cash"),
            buying_power=_exact(_field(account, "buying_power"), f"{where} buying_power"),
            total_equity=_exact(_field(account, "equity"), f"{where} equity"),
            margin_used=_exact(_field(account, "initial_margin"), f"{where} initial_margin"),
        )

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        """The account's executions in `symbol` at or after `since`, oldest first: its FILL
        activities, a page at a time, at most `max_activities` of them read.

        Raises:
            BrokerDataError: an activity cannot be mapped (the message names it).
            InconsistentVenueDataError: one activity id given twice with different figures.
        """
        check_account(account_id, self._account_id, "AlpacaBroker")
        return await asyncio.to_thread(self._fills, symbol, since)

    def _fills(self, symbol: str, since: dt.datetime) -> list[Fill]:
        where = f"Alpaca fills of {symbol}"
        asset_type = fill_asset_type(symbol)
        fills = Executions(where)
        query: dict[str, Any] = {"after": since.isoformat(), "direction": "asc"}
        read = 0
        while len(fills) < self._max_fills and read < self._max_activities:
            query["page_size"] = min(_PAGE, self._max_activities - read)
            page = self._client.get(_FILLS, query)
            if not isinstance(page, list):
                msg = f"{where}: Alpaca answered {type(page).__name__}, not a list of activities"
                raise BrokerDataError(msg)
            page = page[: query["page_size"]]
            read += len(page)
            for row in page:
                fill = _activity_fill(row, symbol, asset_type, where)
                if fill is not None:
                    fills.add(fill)
            if len(page) < query["page_size"]:
                break
            query["page_token"] = _field(page[-1], "id")
        if read >= self._max_activities:
            logger.warning("%s: stopped after %d activities (max_activities)", where, read)
        return fills.oldest_first(self._max_fills)

    def _position(self, index: int, entry: Any) -> BrokerPosition | None:
        symbol = _field(entry, "symbol")
        if not isinstance(symbol, str) or not symbol:
            msg = f"Alpaca position {index} has no symbol"
            raise BrokerDataError(msg)
        where = f"Alpaca position {symbol}"
        quantity = _exact(_field(entry, "qty"), f"{where} qty")
        if not quantity:
            return None
        side = _field(entry, "side")
        if side not in _SIGNS:
            msg = f"{where} has side {side!r}, neither 'long' nor 'short'"
            raise BrokerDataError(msg)
        asset_type = self._unknown.asset_type(
            _ASSET_TYPES, str(_field(entry, "asset_class")), where, said="is of asset class", by="symbol", per="class"
        )
        return BrokerPosition(
            crypto_symbol(symbol) if asset_type is AssetType.CRYPTO else symbol,
            quantity.copy_abs().copy_sign(Decimal(_SIGNS[side])),
            _exact(_field(entry, "avg_entry_price"), f"{where} avg_entry_price"),
            _exact(_field(entry, "market_value"), f"{where} market_value"),
            asset_type,
        )


def _activity_fill(row: object, symbol: str, asset_type: AssetType, where: str) -> Fill | None:
    """One FILL activity as a `Fill`; None for another symbol's.

    Its side and types are read with alpaca-py's own enums; its numbers as the exact text
    Alpaca sent (alpaca-py's `TradeActivity` model makes them floats, and wants an
    `account_id` and an `order_status` the Trading API's activities do not carry).
    """
    if not isinstance(row, Mapping):
        msg = f"{where}: an activity is {type(row).__name__}, not an object"
        raise BrokerDataError(msg)
    traded = row.get("symbol")
    if not isinstance(traded, str) or not traded:
        msg = f"{where}: activity {row.get('id')!r} has no symbol"
        raise BrokerDataError(msg)
    if traded.replace("/", "") != symbol.replace("/", "") or (asset_type is not AssetType.CRYPTO and traded != symbol):
        return None
    enums = importlib.import_module("alpaca.trading.enums")
    named = f"{where}: activity {row.get('id')!r}"
    try:
        kind = enums.ActivityType(row.get("activity_type"))
        enums.TradeActivityType(row.get("type"))
        side = enums.OrderSide(row.get("side"))
        when = dt.datetime.fromisoformat(str(row.get("transaction_time")))
    except ValueError as error:
        msg = f"{named}: {error}"
        raise BrokerDataError(msg) from None
    if kind is not enums.ActivityType.FILL:
        msg = f"{named} is a {kind.value} activity, not a FILL"
        raise BrokerDataError(msg)
    if when.tzinfo is None:
        msg = f"{named} has the time {row.get('transaction_time')!r}, without its time zone"
        raise BrokerDataError(msg)
    quantity = _exact(row.get("qty"), f"{named} qty")
    return execution(
        named,
        fill_id=row.get("id"),
        order_id=row.get("order_id"),
        position=(symbol, asset_type),
        quantity=signed(side.value, quantity, named),
        price=_exact(row.get("price"), f"{named} price"),
        timestamp=when,
        fee=Decimal(0),
    )


def _field(entry: Any, name: str) -> Any:
    """A field of an alpaca-py model or of its raw dict; an enum as its value."""
    value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
    return getattr(value, "value", value)


SDK = "alpaca.trading.client"  # what Settings needs: pip install 'reconciliation[alpaca]'

_CREDENTIALS = ("api_key", "secret_key")


@attrs.frozen(kw_only=True)
class Settings:
    """An `AlpacaBroker` as a TOML table names it (`adapter = "alpaca"`): paper or live trading,
    and the environment variables holding the API key and secret."""

    venue: Literal["paper", "live"]
    credentials: Mapping[str, str] = attrs.field(factory=dict)
    """`api_key` and `secret_key`, each to an environment variable's name."""

    @credentials.validator
    def _key_and_secret(self, field: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
        check_credentials(field, value, known=_CREDENTIALS, required=_CREDENTIALS)

    def broker(self, account_id: str) -> AlpacaBroker:
        """The account's broker, logged in with the credentials read from the environment now.

        Raises:
            MissingCredentialError: a variable is not set.
        """
        secrets = read_environment(self.credentials)
        client = importlib.import_module(SDK).TradingClient(
            secrets["api_key"], secrets["secret_key"], paper=self.venue == "paper"
        )
        return AlpacaBroker(client, account_id)

    def __str__(self) -> str:
        return f"alpaca {self.venue} ({described(self.credentials)})"
