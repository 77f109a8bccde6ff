"""Position statements as books: reconcile an end-of-day statement read from CSV or Parquet.

Prime brokers and custodians send positions as files. `StatementBroker` is a
`BrokerQuery`, and `StatementBook` a `PortfolioManager`, that answer from such a file,
read through a `ColumnMap` (which of the file's columns holds the symbol, the quantity,
the average cost, the asset type and the market value) and checked at construction,
exactly as a book's columnar answer is checked (docs/configuration.md): a file with a bad
row is refused, naming the file, the row (and its line in a CSV file) and the column,
before any run starts. Cash and equity come from a second file (`read_balances`) or from
arguments (`Balances`). Needs the `fast` extra (pyarrow).

    from reconciliation.files import Balances, ColumnMap, StatementBook, StatementBroker
    columns = ColumnMap(symbol="Symbol", quantity="Qty", avg_cost="AvgPx", asset_type="SecType",
                        asset_types={"STK": "stock", "OPT": "option", "FUT": "future"})
    broker = StatementBroker("ACC-1", "eod-positions.csv", "eod-balances.csv", columns=columns)
    book = StatementBook("ACC-1", "book.parquet", Balances(cash="1000.00", total_equity="25000.00"))

`reconciliation check --local FILE --broker FILE` does this from the command line.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from reconciliation._columnar import (
    FAST_EXTRA,
    PLAIN_DECIMAL,
    ColumnsError,
    PositionColumns,
    fast_available,
)
from reconciliation._domain.models import AssetType, BrokerAccount, LocalAccount
from reconciliation._domain.values import (
    check_exact,
    decimal_mapping,
    exact_decimal,
    finite_decimal,
    frozen_mapping,
    non_empty_text,
    optional_decimal_mapping,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

__all__ = [
    "BalanceColumns",
    "Balances",
    "ColumnMap",
    "StatementBook",
    "StatementBroker",
    "StatementError",
    "read_balances",
    "read_positions",
]

Format = Literal["csv", "parquet"]
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


class StatementError(ValueError):
    """A statement file cannot be used; the message names the file, the row and the column."""


def _asset_type(value: AssetType | str) -> AssetType:
    if isinstance(value, AssetType):
        return value
    try:
        return AssetType(value)
    except ValueError:
        known = ", ".join(kind.value for kind in AssetType)
        msg = f"unknown asset type {value!r}; known: {known}"
        raise ValueError(msg) from None


def _asset_codes(value: Mapping[str, AssetType | str]) -> Mapping[str, AssetType]:
    return frozen_mapping({str(code): _asset_type(kind) for code, kind in value.items()})


def _optional_name(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        non_empty_text(instance, field, value)


@attrs.frozen
class ColumnMap:
    """Which column of a statement holds each figure.

    Attributes:
        symbol: the instrument's symbol, as the other side names it.
        quantity: the signed quantity (short is negative), as exact decimal text in a
            CSV file, a decimal or integer column in a Parquet file.
        avg_cost: the average cost per unit; None when the statement gives none (then
            costs are not compared). An empty cell is an unknown cost.
        asset_type: the column naming each position's asset type; None: every position
            is `default_asset_type`.
        asset_types: the statement's own codes for asset types (`{"STK": "stock"}`);
            empty: the column holds `stock`, `option`, `future`, `swap` or `crypto`.
        market_value: a broker statement's market value; optional, never compared.
    """

    symbol: str = attrs.field(default="symbol", validator=non_empty_text)
    quantity: str = attrs.field(default="quantity", validator=non_empty_text)
    avg_cost: str | None = attrs.field(default="avg_cost", validator=_optional_name)
    asset_type: str | None = attrs.field(default=None, validator=_optional_name)
    asset_types: Mapping[str, AssetType] = attrs.field(factory=dict, converter=_asset_codes)
    default_asset_type: AssetType = attrs.field(default=AssetType.STOCK, converter=_asset_type)
    market_value: str | None = attrs.field(default=None, validator=_optional_name)

    def sources(self, side: Literal["local", "broker"]) -> dict[str, str]:
        """The file's column for each documented column that this map reads."""
        named = {
            "symbol": self.symbol,
            "quantity": self.quantity,
            "avg_cost": self.avg_cost,
            "asset_type": self.asset_type,
            "market_value": self.market_value if side == "broker" else None,
        }
        return {column: source for column, source in named.items() if source is not None}


@attrs.frozen
class BalanceColumns:
    """Which column of a balances file holds each figure (one data row)."""

    cash: str = attrs.field(default="cash", validator=non_empty_text)
    total_equity: str = attrs.field(default="total_equity", validator=non_empty_text)
    buying_power: str = attrs.field(default="buying_power", validator=non_empty_text)
    """Read when the file has it; never compared."""
    margin_used: str = attrs.field(default="margin_used", validator=non_empty_text)
    """Read when the file has it; never compared."""


@attrs.frozen
class Balances:
    """An account's balances as a statement gives them.

    `buying_power` and `margin_used` are only reported (a broker's account has them), never
    compared; 0 when the statement does not give them.
    """

    cash: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    total_equity: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    cash_by_currency: Mapping[str, Decimal] | None = attrs.field(
        default=None, converter=decimal_mapping, validator=optional_decimal_mapping, kw_only=True
    )
    buying_power: Decimal = attrs.field(
        default=Decimal(0), converter=exact_decimal, validator=finite_decimal, kw_only=True
    )
    margin_used: Decimal = attrs.field(
        default=Decimal(0), converter=exact_decimal, validator=finite_decimal, kw_only=True
    )


def read_positions(
    path: str | os.PathLike[str],
    side: Literal["local", "broker"] = "local",
    *,
    columns: ColumnMap | None = None,
    file_format: Format | None = None,
) -> PositionColumns:
    """A statement's positions, checked: every row, or an error naming the first bad one.

    Args:
        path: a CSV file (a header row, then one position per row) or a Parquet file.
        side: "local" (the engine's book) or "broker" (which also reads market values).
        columns: which column holds what; by default the documented names.
        file_format: "csv" or "parquet"; by default from the suffix (.csv, .txt, .parquet, .pq).

    Raises:
        StatementError: the file cannot be read, a column is missing or given twice, or a
            value is bad; the message names the file, the row and the column.
    """
    mapping = columns or ColumnMap()
    where = Path(path)
    kind = _format_of(where, file_format)
    sources = mapping.sources(side)
    table, row_label = _read_csv(where, sources) if kind == "csv" else _read_parquet(where, sources)
    canonical = _canonical(table, mapping, sources, where, row_label)
    from reconciliation._columnar.input import columns_from_table  # noqa: PLC0415 - needs pyarrow

    try:
        return columns_from_table(canonical, side, call=str(where), row_label=row_label, column_names=sources)
    except ColumnsError as exc:
        raise StatementError(str(exc)) from exc


def read_balances(
    path: str | os.PathLike[str],
    *,
    columns: BalanceColumns | None = None,
    file_format: Format | None = None,
) -> Balances:
    """An account's balances from a CSV or Parquet file of one data row.

    Raises:
        StatementError: naming the file, and the column of a missing or bad value.
    """
    mapping = columns or BalanceColumns()
    where = Path(path)
    kind = _format_of(where, file_format)
    wanted = {"cash": mapping.cash, "total_equity": mapping.total_equity}
    optional = {"buying_power": mapping.buying_power, "margin_used": mapping.margin_used}
    table, _ = _read_csv(where, wanted, optional) if kind == "csv" else _read_parquet(where, wanted, optional)
    if table.num_rows != 1:
        msg = f"{where}: a balances file has exactly one data row, this one has {table.num_rows}"
        raise StatementError(msg)
    values: dict[str, Decimal] = {}
    for field, source in {**wanted, **optional}.items():
        if source not in table.column_names:
            continue
        value = table.column(source)[0].as_py()
        try:
            values[field] = _balance(value)
        except (TypeError, ValueError) as exc:
            msg = f"{where}: column {source!r}: {exc}"
            raise StatementError(msg) from exc
    return Balances(
        values["cash"],
        values["total_equity"],
        buying_power=values.get("buying_power", Decimal(0)),
        margin_used=values.get("margin_used", Decimal(0)),
    )


def _balance(value: object) -> Decimal:
    """A balance as exact as a position's figures: plain decimal text, a decimal or an integer."""
    if value is None or (isinstance(value, str) and not value.strip()):
        msg = "missing"
        raise ValueError(msg)
    if isinstance(value, str):
        if not re.fullmatch(PLAIN_DECIMAL, value):
            msg = f"{value!r} is not a plain decimal number (digits with an optional sign and decimal point)"
            raise ValueError(msg)
        value = Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    check_exact("the value", value)
    return value  # type: ignore[return-value]


class _Statement:
    side: Literal["local", "broker"]

    def __init__(
        self,
        account_id: str,
        positions: str | os.PathLike[str],
        balances: Balances | str | os.PathLike[str],
        *,
        columns: ColumnMap | None = None,
        balance_columns: BalanceColumns | None = None,
    ) -> None:
        self.account_id = account_id
        self.positions = read_positions(positions, self.side, columns=columns)
        self.balances = (
            balances if isinstance(balances, Balances) else read_balances(balances, columns=balance_columns)
        )

    def get_positions(self, account_id: str) -> PositionColumns:
        self._check_account(account_id)
        return self.positions

    def _check_account(self, asked: str) -> None:
        if asked != self.account_id:
            msg = f"{type(self).__name__} holds the statement of account {self.account_id!r}, not {asked!r}"
            raise ValueError(msg)


class StatementBroker(_Statement):
    """A `BrokerQuery` answering from a broker's position statement and balances.

    The files are read and checked once, at construction (`StatementError` if they are
    bad), and the same answer is given for every run. Args as for `StatementBook`.
    """

    side = "broker"

    def get_account(self, account_id: str) -> BrokerAccount:
        self._check_account(account_id)
        balances = self.balances
        return BrokerAccount(
            account_id,
            balances.cash,
            balances.buying_power,
            balances.total_equity,
            balances.margin_used,
            cash_by_currency=balances.cash_by_currency,
        )


class StatementBook(_Statement):
    """A `PortfolioManager` answering from a position file of the engine's own book.

    Read and checked once, at construction, like `StatementBroker`.

    Args:
        account_id: the account the statement is of.
        positions: the position file (CSV or Parquet, see `read_positions`).
        balances: the balances, or a file of them (see `read_balances`).
        columns: which column of the position file holds what.
        balance_columns: which column of the balances file holds what.

    Raises:
        StatementError: a file is unreadable or has a bad row (named).
    """

    side = "local"

    def get_account(self, account_id: str) -> LocalAccount:
        self._check_account(account_id)
        balances = self.balances
        return LocalAccount(
            account_id, balances.cash, balances.total_equity, cash_by_currency=balances.cash_by_currency
        )


def _format_of(path: Path, file_format: Format | None) -> Format:
    if not fast_available():
        msg = f"reading {path} needs the fast extra: {FAST_EXTRA}"
        raise StatementError(msg)
    if file_format is not None:
        if file_format not in ("csv", "parquet"):
            msg = f"{path}: unknown file format {file_format!r}; use 'csv' or 'parquet'"
            raise StatementError(msg)
        return file_format
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        msg = f"{path}: cannot tell the format from the suffix {path.suffix!r}; name it .csv or .parquet"
        raise StatementError(msg)
    return kind


def _header_checked(path: Path, names: list[str], wanted: Mapping[str, str], what: str = "position") -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        msg = f"{path}: the header names column {repeated[0]!r} {names.count(repeated[0])} times; each column once"
        raise StatementError(msg)
    missing = [
        repr(source) if source == column else f"{source!r} ({column})"
        for column, source in wanted.items()
        if source not in names
    ]
    if missing:
        msg = (
            f"{path}: no column {', '.join(missing)} in this {what} file; its columns are "
            f"{', '.join(map(repr, names)) or 'none'}"
        )
        raise StatementError(msg)


def _read_csv(
    path: Path, wanted: Mapping[str, str], optional: Mapping[str, str] | None = None
) -> tuple[Any, Callable[[int], str]]:
    """Every column as text (so that numbers are parsed exactly), empty cells as nulls; each
    data row labelled with its line (the header is line 1)."""
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.csv as pacsv  # noqa: PLC0415

    invalid: list[Any] = []

    def refuse(row: Any) -> str:
        invalid.append(row)
        return "skip"

    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            header = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    if not header:
        msg = f"{path}: empty: a statement starts with a header row naming its columns"
        raise StatementError(msg)
    _header_checked(path, header, wanted, "position" if optional is None else "balances")
    text_columns = {name: pa.string() for name in header}

    def read(*, threads: bool) -> Any:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=refuse),
            convert_options=pacsv.ConvertOptions(
                column_types=text_columns, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )

    try:
        table = read(threads=True)
        if invalid and invalid[0].number is None:
            invalid.clear()
            table = read(threads=False)  # only a single-threaded read tells the line of a malformed row
    except (OSError, pa.ArrowInvalid) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    if invalid:
        row = invalid[0]
        line = f"line {row.number}" if row.number is not None else "a row"
        msg = (
            f"{path}: {line} has {row.actual_columns} fields, the header {row.expected_columns}: {row.text!r}"
        )
        raise StatementError(msg)
    return table, _csv_row


def _csv_row(index: int) -> str:
    return f"row {index + 1} (line {index + 2})"


def _parquet_row(index: int) -> str:
    return f"row {index + 1}"


def _read_parquet(
    path: Path, wanted: Mapping[str, str], optional: Mapping[str, str] | None = None
) -> tuple[Any, Callable[[int], str]]:
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    _header_checked(path, names, wanted, "position" if optional is None else "balances")
    present = [source for source in {**wanted, **(optional or {})}.values() if source in names]
    try:
        table = pq.read_table(path, columns=present)
    except (OSError, pa.ArrowException) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    return table, _parquet_row


def _unreadable(path: Path, exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
    return f"{path}: cannot be read: {reason}"


def _canonical(
    table: Any, mapping: ColumnMap, sources: Mapping[str, str], path: Path, row_label: Callable[[int], str]
) -> Any:
    """The statement's columns under the documented names, asset type codes made asset types."""
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's

    columns = {column: table.column(source) for column, source in sources.items()}
    if "avg_cost" not in columns:
        columns["avg_cost"] = pa.nulls(table.num_rows, pa.string())
    if "asset_type" in columns and mapping.asset_types:
        columns["asset_type"] = _decoded(
            columns["asset_type"], mapping, sources["asset_type"], path, row_label
        )
    elif "asset_type" not in columns and mapping.default_asset_type is not AssetType.STOCK:
        columns["asset_type"] = pa.array([mapping.default_asset_type.value] * table.num_rows, pa.string())
    return pa.table(columns)


def _decoded(codes: Any, mapping: ColumnMap, source: str, path: Path, row_label: Callable[[int], str]) -> Any:
    """The statement's asset type codes as asset type values; an unknown code is refused."""
    import numpy as np  # noqa: PLC0415 - the fast extra's
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    known = list(mapping.asset_types)
    values = pa.array([mapping.asset_types[code].value for code in known], pa.string())
    index = pc.index_in(codes, value_set=pa.array(known, pa.string()))
    unknown = pc.and_(pc.is_null(index), pc.is_valid(codes))
    if pc.any(unknown).as_py():
        row = int(np.flatnonzero(unknown.to_numpy(zero_copy_only=False))[0])
        msg = (
            f"{path} {row_label(row)}, column {source!r}: unknown code {codes[row].as_py()!r}; "
            f"the codes are {', '.join(map(repr, known))}"
        )
        raise StatementError(msg)
    return values.take(index)
