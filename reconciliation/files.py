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
import itertools
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
from reconciliation._domain.error_text import shown
from reconciliation._domain.models import AssetType, BrokerAccount, LocalAccount
from reconciliation._domain.values import (
    check_exact,
    decimal_mapping,
    exact_decimal,
    finite_decimal,
    frozen_mapping,
    non_empty_text,
    optional_decimal_mapping,
    whole_number,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

__all__ = [
    "MAX_CELL_BYTES",
    "BalanceColumns",
    "Balances",
    "ColumnMap",
    "StatementBook",
    "StatementBroker",
    "StatementError",
    "StatementLimits",
    "read_balances",
    "read_positions",
]

Format = Literal["csv", "parquet"]
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


MAX_CELL_BYTES = 1_024
"""The longest value a statement's cell may hold, in bytes of UTF-8: a 256-character symbol in any
script fits, and so does any number; a longer one is refused before it is expanded."""

_LIMITS_DOC = "docs/configuration.md, Limits"
_BALANCE_ROWS_READ = 1_000
"""How many rows of a balances file are read to say how many it has (it should have one)."""


class StatementError(ValueError):
    """A statement file cannot be used; the message names the file, the row and the column."""


@attrs.frozen
class StatementLimits:
    """How large a position statement may be. Each is far beyond a real statement, and each is
    checked before the rows it would cost are read or compared: a file past one is refused
    (`StatementError`, naming the limit), so a short file cannot expand into gigabytes.

    Attributes:
        max_rows: rows (positions, before netting) in one file. A Parquet file's count is read
            from its metadata, before any row; a CSV file is read a block at a time and
            refused at the first row past it.
        max_symbols: distinct symbols in one file.
        max_entries_per_symbol: rows one symbol may have in one file (lots, legs, venues,
            netted into one position).
    """

    max_rows: int = attrs.field(default=2_000_000, validator=whole_number(1))
    max_symbols: int = attrs.field(default=1_000_000, validator=whole_number(1))
    max_entries_per_symbol: int = attrs.field(default=1_000, validator=whole_number(1))


@attrs.define
class _TooManyRowsError(Exception):
    """A file has more rows than its reader was asked to read (`count`: at least that many)."""

    count: int


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


_optional_name: Callable[[Any, attrs.Attribute[Any], Any], Any] = attrs.validators.optional(non_empty_text)


@attrs.frozen
class ColumnMap:
    """Which column of a statement holds each figure.

    Attributes:
        symbol: the instrument's symbol, as the other side names it.
        quantity: the signed quantity (short is negative), as exact decimal text in a
            CSV file, a decimal or integer column in a Parquet file.
        avg_cost: the average cost per unit; None when the statement gives none (then
            costs are not compared). An empty cell is an unknown cost.
        asset_type: the column naming each position's asset type: by default
            `asset_type`, read when the file has it; None: never read, every position is
            `default_asset_type`.
        asset_types: the statement's own codes for asset types (`{"STK": "stock"}`);
            empty: the column holds `stock`, `option`, `future`, `swap` or `crypto`.
        market_value: a broker statement's market value: by default `market_value`,
            read when a broker's file has it; never compared.

    A file with a column that looks like a figure this map does not read (`AssetType`,
    `SecType`, `MktVal`, ...) is refused, naming the column and the mapping that reads
    it: an option silently read as a stock would be a false break.
    """

    symbol: str = attrs.field(default="symbol", validator=non_empty_text)
    quantity: str = attrs.field(default="quantity", validator=non_empty_text)
    avg_cost: str | None = attrs.field(default="avg_cost", validator=_optional_name)
    asset_type: str | None = attrs.field(default="asset_type", validator=_optional_name)
    asset_types: Mapping[str, AssetType] = attrs.field(factory=dict, converter=_asset_codes)
    default_asset_type: AssetType = attrs.field(default=AssetType.STOCK, converter=_asset_type)
    market_value: str | None = attrs.field(default="market_value", validator=_optional_name)

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

    def sources_in(self, side: Literal["local", "broker"], header: list[str], path: Path) -> dict[str, str]:
        """The columns to read from a file with this header: an optional column left at its
        documented name is read when the file has it.

        Raises:
            StatementError: the file has a column that looks like a figure this map does not
                read; the message names it and the mapping to use.
        """
        sources = {
            column: source
            for column, source in self.sources(side).items()
            if not (column in _OPTIONAL_AT_DEFAULT and source == column and source not in header)
        }
        read = set(sources.values())
        for name in header:
            field = _LOOKALIKES.get(re.sub(r"[^a-z]", "", name.lower()))
            if name in read or field is None or field in sources or (field == "market_value" and side == "local"):
                continue
            mapped = f'{field} = "{name}"'
            msg = (
                f"{path}: column {name!r} looks like the {field.replace('_', ' ')}, which is not read "
                f"({_UNREAD[field]}): map it — {mapped} in [{side}] of check's --config, or "
                f'ColumnMap({field}="{name}") — or rename the column'
            )
            raise StatementError(msg)
        return sources


_OPTIONAL_AT_DEFAULT = frozenset({"asset_type", "market_value"})
"""Columns read when a file has them under their documented name, unless the map says None."""
_LOOKALIKES = {
    "assettype": "asset_type",
    "sectype": "asset_type",
    "securitytype": "asset_type",
    "assetclass": "asset_type",
    "instrumenttype": "asset_type",
    "avgcost": "avg_cost",
    "averagecost": "avg_cost",
    "avgpx": "avg_cost",
    "avgprice": "avg_cost",
    "costbasis": "avg_cost",
    "marketvalue": "market_value",
    "mktval": "market_value",
    "mktvalue": "market_value",
}
"""A column name, lower case and letters only, that holds a figure: never ignored silently."""
_UNREAD = {
    "asset_type": "every position would be read as the default asset type, a stock",
    "avg_cost": "costs would not be compared",
    "market_value": "market values would not be reported",
}


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
    limits: StatementLimits | None = None,
) -> PositionColumns:
    """A statement's positions, checked: every row, or an error naming the first bad one.

    Args:
        path: a CSV file (a header row, then one position per row) or a Parquet file.
        side: "local" (the engine's book) or "broker" (which also reads market values).
        columns: which column holds what; by default the documented names.
        file_format: "csv" or "parquet"; by default from the suffix (.csv, .txt, .parquet, .pq).
        limits: how large the file may be; by default `StatementLimits()`.

    Raises:
        StatementError: the file cannot be read, is larger than `limits` allow, a column is
            missing or given twice, or a value is bad; the message names the file, the row
            and the column.
    """
    mapping = columns or ColumnMap()
    bounds = limits or StatementLimits()
    where = Path(path)
    kind = _format_of(where, file_format)
    sources = mapping.sources_in(side, _header_of(where, kind), where)
    try:
        read = _read_csv if kind == "csv" else _read_parquet
        table, row_label = read(where, sources, max_rows=bounds.max_rows)
    except _TooManyRowsError as exc:
        count = f"{exc.count:,} rows" if kind == "parquet" else f"more than {bounds.max_rows:,} rows"
        msg = (
            f"{where}: {count}: a statement may have at most {bounds.max_rows:,} "
            f"(limits.max_rows; {_LIMITS_DOC})"
        )
        raise StatementError(msg) from None
    _symbols_within(table.column(sources["symbol"]), bounds, where)
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
    try:
        read = _read_csv if kind == "csv" else _read_parquet
        table, _ = read(where, wanted, optional, max_rows=_BALANCE_ROWS_READ)
    except _TooManyRowsError as exc:
        count = f"{exc.count:,}" if kind == "parquet" else f"more than {_BALANCE_ROWS_READ:,}"
        msg = f"{where}: a balances file has exactly one data row, this one has {count}"
        raise StatementError(msg) from None
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
        limits: StatementLimits | None = None,
    ) -> None:
        self.account_id = account_id
        self.positions = read_positions(positions, self.side, columns=columns, limits=limits)
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
        limits: how large the position file may be (`StatementLimits`).

    Raises:
        StatementError: a file is unreadable, too large or has a bad row (named).
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


def _header_of(path: Path, kind: Format) -> list[str]:
    """The names of a file's columns: a CSV file's header row, a Parquet file's schema."""
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        if kind == "csv":
            with path.open(encoding="utf-8-sig", newline="") as file:
                return next(csv.reader(file), [])
        return list(pq.read_schema(path).names)
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise StatementError(_unreadable(path, exc)) from exc


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
    path: Path, wanted: Mapping[str, str], optional: Mapping[str, str] | None = None, *, max_rows: int
) -> tuple[Any, Callable[[int], str]]:
    """The columns named in `wanted` and `optional`, every one as text (so that numbers are
    parsed exactly), empty cells as nulls; each data row labelled with its line (the header
    is line 1). Read a block at a time: past `max_rows`, or at a cell longer than
    `MAX_CELL_BYTES`, nothing more is read.

    Raises:
        _TooManyRowsError: more than `max_rows` data rows.
    """
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.csv as pacsv  # noqa: PLC0415

    invalid: list[Any] = []

    def refuse(row: Any) -> str:
        invalid.append(row)
        return "skip"

    header = _header_of(path, "csv")
    if not header:
        msg = f"{path}: empty: a statement starts with a header row naming its columns"
        raise StatementError(msg)
    _header_checked(path, header, wanted, "position" if optional is None else "balances")
    kept = [name for name in header if name in {*wanted.values(), *(optional or {}).values()}]
    batches = []
    rows = 0
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=refuse),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(kept, pa.string()),
                include_columns=kept,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            _invalid_row(path, invalid)
            _cells_within(batch, rows, path, _csv_row)
            rows += batch.num_rows
            if rows > max_rows:
                raise _TooManyRowsError(rows)
            batches.append(batch)
        _invalid_row(path, invalid)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    return table, _csv_row


def _invalid_row(path: Path, invalid: list[Any]) -> None:
    """Refuse the first row with more or fewer fields than the header, naming its line."""
    if invalid:
        row = invalid[0]
        line = f"line {row.number}" if row.number is not None else "a row"
        msg = (
            f"{path}: {line} has {row.actual_columns} fields, the header {row.expected_columns}: {row.text!r}"
        )
        raise StatementError(msg)


def _cells_within(batch: Any, first_row: int, path: Path, row_label: Callable[[int], str]) -> None:
    """Refuse a text cell of more than `MAX_CELL_BYTES` (a dictionary column: its values, before
    they are expanded), naming its row and column."""
    import numpy as np  # noqa: PLC0415 - the fast extra's
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        chunks = column.chunks if hasattr(column, "chunks") else [column]
        for chunk, start in zip(chunks, itertools.accumulate(map(len, chunks), initial=first_row), strict=False):
            values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
            if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) or not len(values):
                continue
            lengths = pc.binary_length(values)
            if (pc.max(lengths).as_py() or 0) <= MAX_CELL_BYTES:
                continue
            longest = int(np.argmax(lengths.to_numpy(zero_copy_only=False)))
            row = longest if values is chunk else _first(pc.equal(chunk.indices, longest))
            msg = (
                f"{path} {row_label(start + row)}, column {name!r}: a value of {lengths[longest].as_py():,} "
                f"bytes ({values[longest].as_py()[:40]!r}...): at most {MAX_CELL_BYTES:,} are read ({_LIMITS_DOC})"
            )
            raise StatementError(msg)


def _first(mask: Any) -> int:
    import numpy as np  # noqa: PLC0415 - the fast extra's

    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _csv_row(index: int) -> str:
    return f"row {index + 1} (line {index + 2})"


def _parquet_row(index: int) -> str:
    return f"row {index + 1}"


def _read_parquet(
    path: Path, wanted: Mapping[str, str], optional: Mapping[str, str] | None = None, *, max_rows: int
) -> tuple[Any, Callable[[int], str]]:
    """The columns named in `wanted` and `optional`: the row count is read from the file's
    metadata first, and text columns are read dictionary-encoded, their values checked
    against `MAX_CELL_BYTES` before anything expands them. One file is read as a
    `ParquetFile`, not by `read_table`, whose dataset layer imports pandas (when installed):
    about a second of a command's start-up on a loaded machine.

    Raises:
        _TooManyRowsError: more than `max_rows` rows.
    """
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    names = schema.names
    _header_checked(path, names, wanted, "position" if optional is None else "balances")
    if metadata.num_rows > max_rows:
        raise _TooManyRowsError(metadata.num_rows)
    present = [source for source in {**wanted, **(optional or {})}.values() if source in names]
    text = [
        name
        for name in present
        if pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type)
    ]
    try:
        with pq.ParquetFile(path, metadata=metadata, read_dictionary=text) as file:
            table = file.read(columns=present)
    except (OSError, pa.ArrowException) as exc:
        raise StatementError(_unreadable(path, exc)) from exc
    _cells_within(table, 0, path, _parquet_row)
    expanded = {
        name: column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for name, column in zip(table.column_names, table.columns, strict=True)
    }
    return pa.table(expanded), _parquet_row


def _symbols_within(symbols: Any, limits: StatementLimits, path: Path) -> None:
    """Refuse a file with more distinct symbols, or more rows of one symbol, than `limits` allow."""
    import pyarrow.compute as pc  # noqa: PLC0415 - the fast extra's

    if not len(symbols):
        return
    counted = pc.value_counts(pc.drop_null(symbols))
    if len(counted) > limits.max_symbols:
        msg = (
            f"{path}: {len(counted):,} distinct symbols: a statement may have at most "
            f"{limits.max_symbols:,} (limits.max_symbols; {_LIMITS_DOC})"
        )
        raise StatementError(msg)
    counts = counted.field("counts")
    most = pc.max(counts).as_py() or 0
    if most > limits.max_entries_per_symbol:
        symbol = counted.field("values")[pc.index(counts, most).as_py()].as_py()
        msg = (
            f"{path}: symbol {shown(symbol)} has {most:,} rows: a statement may list one symbol at most "
            f"{limits.max_entries_per_symbol:,} times (limits.max_entries_per_symbol; {_LIMITS_DOC})"
        )
        raise StatementError(msg)


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
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.compute as pc  # noqa: PLC0415

    known = list(mapping.asset_types)
    values = pa.array([mapping.asset_types[code].value for code in known], pa.string())
    index = pc.index_in(codes, value_set=pa.array(known, pa.string()))
    unknown = pc.and_(pc.is_null(index), pc.is_valid(codes))
    if pc.any(unknown).as_py():
        row = _first(unknown)
        msg = (
            f"{path} {row_label(row)}, column {source!r}: unknown code {codes[row].as_py()!r}; "
            f"the codes are {', '.join(map(repr, known))}"
        )
        raise StatementError(msg)
    return values.take(index)
