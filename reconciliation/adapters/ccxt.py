"""`CcxtBroker`: a `BrokerQuery` over a ccxt exchange, sync or `ccxt.async_support`.

Quantities are signed base units: ccxt's `contracts` is never negative (the sign is in
`side`) and counts contracts of `contractSize` base units each (OKX's BTC swap: 0.01
BTC), so a quantity is `contracts * contractSize`, negative for a short; an option keeps
its contracts. Every number comes from the venue's text: the exchange must parse into
`Decimal` (`exchange.number = Decimal`), never through float. Cash and equity come from
the venue's own balance fields (`VENUE_FIELDS`), because ccxt's unified `total` means
different things on different venues: on Binance USDⓈ-M it includes unrealised P&L.

Needs the `ccxt` extra: ``pip install 'reconciliation[ccxt]'``. docs/brokers.md has the
field-by-field mapping.
"""

from __future__ import annotations

import asyncio
import decimal
import difflib
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import attrs

from reconciliation._domain.models import AssetType, BrokerAccount, BrokerPosition
from reconciliation._domain.values import FieldValueError
from reconciliation.adapters._common import (
    BrokerDataError,
    check_account,
    check_credentials,
    described,
    exact,
    optional_exact,
    read_environment,
)

__all__ = ["SDK", "VENUE_FIELDS", "CcxtBroker", "Settings", "VenueFields"]

logger = logging.getLogger(__name__)

_FLOAT_CURE = (
    "set exchange.number = Decimal before load_markets() so that ccxt parses the venue's text "
    "into exact Decimals (markets loaded before that keep float contract sizes: reload them "
    "with load_markets(reload=True))"
)

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow],
)
"""Products of finite decimals come out exact."""

_ASSET_TYPES = {
    "spot": AssetType.CRYPTO,
    "margin": AssetType.CRYPTO,
    "swap": AssetType.SWAP,
    "future": AssetType.FUTURE,
    "option": AssetType.OPTION,
}
"""ccxt's market `type` to the asset type of a position in it."""

_SIGNS = {"long": 1, "short": -1}


def _path(value: Iterable[str | int]) -> tuple[str | int, ...]:
    return tuple(value)


def _queries(value: Iterable[Mapping[str, str]]) -> tuple[Mapping[str, str], ...]:
    return tuple(value)


@attrs.frozen
class VenueFields:
    """Where a venue's raw balance (`fetch_balance()["info"]`) keeps cash and equity.

    `rows` is the path from the raw balance to its list of per-currency rows (keys and
    list indexes); in each row, `currency` names the currency, `cash` the cash (wallet
    balance, without unrealised P&L) and `equity` the equity (cash plus unrealised P&L).
    `position_queries` are the params of each `fetch_positions(None, params)` call that
    together list every position (Bybit answers one category per call).
    """

    rows: tuple[str | int, ...] = attrs.field(converter=_path)
    currency: str
    cash: str
    equity: str
    position_queries: tuple[Mapping[str, str], ...] = attrs.field(default=({},), converter=_queries)


VENUE_FIELDS: Mapping[str, VenueFields] = {
    "binanceusdm": VenueFields(
        rows=("assets",), currency="asset", cash="walletBalance", equity="marginBalance"
    ),
    "okx": VenueFields(rows=("data", 0, "details"), currency="ccy", cash="cashBal", equity="eq"),
    "bybit": VenueFields(
        rows=("result", "list", 0, "coin"),
        currency="coin",
        cash="walletBalance",
        equity="equity",
        position_queries=(
            {"subType": "linear", "settleCoin": "USDT"},
            {"subType": "linear", "settleCoin": "USDC"},
            {"subType": "inverse"},
            {"type": "option"},
        ),
    ),
}
"""The venues whose balance fields are known, by ccxt exchange id."""


class CcxtBroker:
    """The broker side of one account at a ccxt venue.

    Args:
        exchange: a ccxt exchange instance (sync or `ccxt.async_support`) with
            `exchange.number = Decimal`, logged in to the account.
        account_id: the id this adapter answers for (ccxt has no account ids).
        currency: the account currency: cash and equity are read in it (e.g. "USDT").
        fields: where this venue's balance keeps cash and equity; default: the entry
            of `VENUE_FIELDS` for `exchange.id`. A venue without one falls back to
            ccxt's unified `total` for both cash and equity (logged at WARNING): on a
            venue whose total includes unrealised P&L, cash is then off by that.
        units: "base" (default) for quantities in base units, "contracts" to keep
            ccxt's contracts (for a book kept in contracts).

    Raises:
        ValueError: the exchange parses numbers into floats, or an argument is invalid.
    """

    def __init__(
        self,
        exchange: Any,
        account_id: str,
        *,
        currency: str,
        fields: VenueFields | None = None,
        units: Literal["base", "contracts"] = "base",
    ) -> None:
        if getattr(exchange, "number", None) is not Decimal:
            msg = (
                f"CcxtBroker needs exact numbers, but {exchange.id} parses them with "
                f"{getattr(exchange, 'number', None)!r}: {_FLOAT_CURE}"
            )
            raise ValueError(msg)
        if not isinstance(account_id, str) or not account_id.strip():
            msg = f"account_id must be a non-empty str, not {account_id!r}"
            raise ValueError(msg)
        if not isinstance(currency, str) or not currency.strip():
            msg = f"currency must be a currency code such as 'USDT', not {currency!r}"
            raise ValueError(msg)
        if units not in {"base", "contracts"}:
            msg = f"units must be 'base' or 'contracts', not {units!r}"
            raise ValueError(msg)
        self._exchange = exchange
        self._account_id = account_id
        self._currency = currency
        self._units = units
        self._fields = fields if fields is not None else VENUE_FIELDS.get(exchange.id)
        if self._fields is None:
            logger.warning(
                "ccxt venue %s has no known balance fields: cash and equity are both its unified "
                "total %s, which on some venues includes unrealised P&L; pass fields=VenueFields(...)",
                exchange.id,
                currency,
            )
        self._is_async = inspect.iscoroutinefunction(exchange.fetch_positions)
        self._sync_calls = threading.Lock()

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def currency(self) -> str:
        return self._currency

    async def get_positions(self, account_id: str) -> list[BrokerPosition]:
        """Every open position, signed, in base units (options in contracts); flat ones left out.

        Raises:
            BrokerDataError: an entry cannot be mapped (no side, an unknown market, a float).
        """
        check_account(account_id, self._account_id, "CcxtBroker")
        if not self._exchange.markets:
            await self._call(self._exchange.load_markets)
        queries = self._fields.position_queries if self._fields is not None else ({},)
        entries: list[Any] = []
        for params in queries:
            entries.extend(await self._call(self._exchange.fetch_positions, None, dict(params)))
        positions = (self._position(index, entry) for index, entry in enumerate(entries))
        return [position for position in positions if position is not None]

    async def get_account(self, account_id: str) -> BrokerAccount:
        """Cash and equity from the venue's balance fields; buying power and margin from ccxt's free and used.

        Raises:
            BrokerDataError: the balance has no row for the currency, or a field is missing.
        """
        check_account(account_id, self._account_id, "CcxtBroker")
        balance = await self._call(self._exchange.fetch_balance)
        venue = self._exchange.id
        free = self._unified(balance, "free")
        used = self._unified(balance, "used")
        if self._fields is None:
            total = self._unified(balance, "total")
            return BrokerAccount(self._account_id, total, free, total, used)
        rows = _rows(balance, self._fields, venue)
        by_currency = {str(row.get(self._fields.currency)): row for row in rows}
        row = by_currency.get(self._currency)
        if row is None:
            msg = f"{venue} balance has no {self._currency} row (it lists {', '.join(sorted(by_currency)) or 'none'})"
            raise BrokerDataError(msg)
        where = f"{venue} balance {self._currency}"
        return BrokerAccount(
            self._account_id,
            cash=exact(row.get(self._fields.cash), f"{where} {self._fields.cash}", float_cure=_FLOAT_CURE),
            buying_power=free,
            total_equity=exact(
                row.get(self._fields.equity), f"{where} {self._fields.equity}", float_cure=_FLOAT_CURE
            ),
            margin_used=used,
            cash_by_currency={
                currency: exact(
                    entry.get(self._fields.cash),
                    f"{venue} balance {currency} {self._fields.cash}",
                    float_cure=_FLOAT_CURE,
                )
                for currency, entry in by_currency.items()
            },
        )

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Await an async ccxt method; run a sync one on a worker thread, one at a time."""
        if self._is_async:
            return await method(*args)

        def locked() -> Any:
            with self._sync_calls:
                return method(*args)

        return await asyncio.to_thread(locked)

    def _unified(self, balance: Mapping[str, Any], kind: str) -> Decimal:
        amounts = balance.get(kind) or {}
        value = amounts.get(self._currency, 0)
        return exact(value, f"{self._exchange.id} balance {kind} {self._currency}", float_cure=_FLOAT_CURE)

    def _position(self, index: int, entry: Mapping[str, Any]) -> BrokerPosition | None:
        venue = self._exchange.id
        symbol = entry.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            msg = f"{venue} position {index} has no symbol ({entry.get('info')!r:.200})"
            raise BrokerDataError(msg)
        where = f"{venue} position {symbol}"
        contracts = exact(entry.get("contracts"), f"{where} contracts", float_cure=_FLOAT_CURE)
        if not contracts:
            return None
        side = entry.get("side")
        if side not in _SIGNS:
            msg = (
                f"{where} holds {contracts} contracts but has no side (side={side!r}): "
                "ccxt's contracts are never negative, so a long cannot be told from a short"
            )
            raise BrokerDataError(msg)
        market = self._market(symbol, where)
        asset_type = _ASSET_TYPES.get(str(market.get("type")))
        if asset_type is None:
            msg = f"{where} is in a market of type {market.get('type')!r}, which the adapter does not map"
            raise BrokerDataError(msg)
        size = self._contract_size(entry, market, asset_type, where)
        quantity = _EXACT.multiply(contracts.copy_abs(), size).copy_sign(Decimal(_SIGNS[side]))
        return BrokerPosition(
            symbol,
            quantity,
            optional_exact(entry.get("entryPrice"), f"{where} entryPrice", float_cure=_FLOAT_CURE),
            self._market_value(entry, market, quantity, where),
            asset_type,
        )

    def _market(self, symbol: str, where: str) -> Mapping[str, Any]:
        markets = self._exchange.markets or {}
        market = markets.get(symbol)
        if market is None:
            msg = f"{where}: no such market is loaded (load_markets(reload=True) if it is new)"
            raise BrokerDataError(msg)
        return market  # type: ignore[no-any-return]

    def _contract_size(
        self, entry: Mapping[str, Any], market: Mapping[str, Any], asset_type: AssetType, where: str
    ) -> Decimal:
        if asset_type is AssetType.OPTION or self._units == "contracts" or not market.get("contract"):
            return Decimal(1)
        size = entry.get("contractSize")
        if size is None:
            size = market.get("contractSize")
        return exact(size, f"{where} contractSize", float_cure=_FLOAT_CURE)

    def _market_value(
        self, entry: Mapping[str, Any], market: Mapping[str, Any], quantity: Decimal, where: str
    ) -> Decimal:
        """ccxt's `notional`, signed like the position; else, for an inverse contract, its face
        value (the quantity, in the quote currency); else quantity times `markPrice`."""
        notional = optional_exact(entry.get("notional"), f"{where} notional", float_cure=_FLOAT_CURE)
        if notional is not None:
            return notional.copy_abs().copy_sign(quantity)
        if market.get("inverse") and self._units == "base":
            return quantity
        mark = exact(entry.get("markPrice"), f"{where} notional and markPrice", float_cure=_FLOAT_CURE)
        return _EXACT.multiply(quantity, mark)


def _rows(balance: Mapping[str, Any], fields: VenueFields, venue: str) -> Sequence[Mapping[str, Any]]:
    """The per-currency rows at `fields.rows` in the raw balance."""
    node: Any = balance.get("info")
    for step in fields.rows:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            path = "".join(f"[{part!r}]" for part in fields.rows)
            msg = f"{venue} balance has no info{path} (stopped at {step!r})"
            raise BrokerDataError(msg) from None
    if not isinstance(node, list) or not all(isinstance(row, Mapping) for row in node):
        msg = f"{venue} balance rows are {type(node).__name__}, not a list of currency rows"
        raise BrokerDataError(msg)
    return node


SDK = "ccxt"  # what Settings needs: pip install 'reconciliation[ccxt]'


@attrs.frozen(kw_only=True)
class Settings:
    """A `CcxtBroker` as a TOML table names it (`adapter = "ccxt"`): the venue's ccxt exchange id,
    the currency cash and equity are read in, and the environment variables holding the
    credentials the venue requires, all checked against ccxt when the settings are made."""

    venue: str = attrs.field()
    currency: str
    credentials: Mapping[str, str] = attrs.field(factory=dict)
    """Each ccxt credential field (`apiKey`, `secret`, `password`, ...) to an environment variable's name."""
    options: Mapping[str, Any] = attrs.field(factory=dict)
    """Passed to the exchange's constructor (non-secret settings, such as `recvWindow`); a
    credential's key (`apiKey`, `secret`, ...) is refused here."""
    sandbox: bool = False
    units: Literal["base", "contracts"] = "base"

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
        required = tuple(key for key, needs in needed.items() if needs)
        check_credentials(field, value, known=tuple(needed), required=required)

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

        Raises:
            MissingCredentialError: a variable is not set.
        """
        secrets = read_environment(self.credentials)
        exchange = getattr(importlib.import_module(SDK), self.venue)({**self.options, **secrets})
        exchange.number = Decimal
        if self.sandbox:
            exchange.set_sandbox_mode(True)
        return CcxtBroker(exchange, account_id, currency=self.currency, units=self.units)

    def __str__(self) -> str:
        return f"ccxt {self.venue}{' sandbox' if self.sandbox else ''} ({described(self.credentials)})"
