"""Columns in, `PositionColumns` out: a columnar batch checked as strictly as `Position` objects.

A book may answer `get_positions` with an Arrow table, a polars DataFrame or anything
else that exports an Arrow stream. Its columns (names fixed, extra columns ignored):

| column | type | rule |
|---|---|---|
| `symbol` | string (any Arrow string type, or dictionary of strings) | required; no nulls, not blank |
| `quantity` | decimal, integer, or exact decimal text | required; no nulls; signed |
| `avg_cost` | decimal, integer, or exact decimal text | required; null = unknown (not compared) |
| `asset_type` | string: `stock`, `option`, `future`, `swap`, `crypto` | optional (all `stock`); no nulls |
| `market_value` | decimal, integer, or exact decimal text | optional, broker side only; no nulls; never compared |

A float column is refused, as a float field is; so is a decimal made from a float, text
that is not a plain decimal number (`-12.50`: no exponent, no thousands separator), and
a value too long for a 76-digit decimal. Every error names the call, the row (from 0,
as the entries of a list are counted, unless the caller labels rows itself) with its
symbol, and the column. The values are never rounded: decimals become scaled integers
(`DecimalColumn`), and `exact` gives back each original value, digits and exponent
included (the text of a text column, the `Decimal` of an object).
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciliation._columnar.columns import (
    ASSET_TYPE_ORDER,
    PLAIN_DECIMAL,
    ColumnsError,
    DecimalColumn,
    PositionColumns,
)
from reconciliation._domain.compare import CHUNK_SIZE
from reconciliation._domain.models import AssetType, BrokerPosition, Position
from reconciliation._domain.values import MAX_DECIMAL_PLACES, MAX_NAME_LENGTH, check_exact, check_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence  # noqa: TC004 - attrs does not evaluate annotations

    import numpy.typing as npt

__all__ = [
    "LIMIT",
    "aligned",
    "as_table",
    "columns_from_batch",
    "columns_from_objects",
    "columns_from_table",
    "rows_as_objects",
    "taken",
]

LIMIT = 2**62
"""The largest magnitude a scaled integer may have: the difference of two still fits in 64 bits."""

MAX_DIGITS = 76
"""The most digits a decimal value may have in a column (Arrow's decimal256)."""

_FLOAT_DIGITS = 15
"""A decimal of at most 15 significant digits cannot be a Decimal made from a float (see
`values.made_from_float`): only values with more are checked one by one."""

_VISIBLE_ASCII = "[!-~]"
_UNCARRIABLE = r"[\x00-\x1f\x7f-\x{9f}\x{2028}\x{2029}\x{202a}-\x{202e}\x{2066}-\x{2069}]"
"""`values.UNCARRIABLE` in RE2's syntax (valid UTF-8 holds no surrogate)."""
_POWERS = np.array([10**k for k in range(19)], dtype=np.int64)
_CODE_OF: dict[AssetType, int] = {kind: code for code, kind in enumerate(ASSET_TYPE_ORDER)}
_ASSET_TYPE_VALUES = pa.array([kind.value for kind in ASSET_TYPE_ORDER], pa.string())


def _row(index: int) -> str:
    return f"row {index}"


def columns_from_batch(
    raw: object,
    side: Literal["local", "broker"],
    *,
    call: str,
    row_label: Callable[[int], str] = _row,
) -> PositionColumns:
    """`raw` (a `PositionColumns`, or anything exporting an Arrow stream) checked and made columns.

    Raises:
        ColumnsError: naming the call, the row and the column of the first bad value.
    """
    if isinstance(raw, PositionColumns):
        if raw.side == side:
            return raw
        return attrs.evolve(
            raw, side=side, market_values=raw.market_values if side == "broker" else None, source=None
        )
    try:
        table = pa.table(raw)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        msg = f"{call} returned a {type(raw).__name__} that is not a readable Arrow table: {exc}"
        raise ColumnsError(msg) from exc
    return columns_from_table(table, side, call=call, row_label=row_label)


def columns_from_table(
    table: Any,
    side: Literal["local", "broker"],
    *,
    call: str,
    row_label: Callable[[int], str] = _row,
    column_names: Mapping[str, str] | None = None,
) -> PositionColumns:
    """A pyarrow Table with the columns documented above, checked and made `PositionColumns`.

    `column_names` gives, for an error message, the name a column had where it came from
    (a statement's `Qty` for `quantity`).

    Raises:
        ColumnsError: naming the call, the row and the column of the first bad value.
    """
    names: list[str] = list(table.column_names)
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        msg = f"{call}: column {repeated[0]!r} appears {names.count(repeated[0])} times; each column once"
        raise ColumnsError(msg)
    missing = [name for name in ("symbol", "quantity", "avg_cost") if name not in names]
    if missing:
        msg = (
            f"{call}: no column {', '.join(map(repr, missing))} "
            f"(the columns are {', '.join(map(repr, names)) or 'none'}; see docs/configuration.md)"
        )
        raise ColumnsError(msg)
    checker = _Checker(call, row_label, column_names or {})
    symbols = checker.symbols(table.column("symbol"))
    checker.symbols_known = symbols
    asset_types = (
        checker.asset_types(table.column("asset_type"))
        if "asset_type" in names
        else np.full(len(symbols), _CODE_OF[AssetType.STOCK], dtype=np.int8)
    )
    quantity = checker.decimals(table.column("quantity"), "quantity", nullable=False)
    avg_cost = checker.decimals(table.column("avg_cost"), "avg_cost", nullable=True)
    market_values = (
        checker.decimals(table.column("market_value"), "market_value", nullable=False, keep=False).exact
        if side == "broker" and "market_value" in names
        else None
    )
    return PositionColumns(side, symbols, asset_types, quantity, avg_cost, market_values, table=table)


@attrs.define
class _Checker:
    """Checks one batch's columns, naming the call, the row and the column of what it refuses."""

    _call: str
    _row_label: Callable[[int], str]
    _column_names: Mapping[str, str]
    symbols_known: Any = None

    def fail(self, row: int | None, column: str, problem: str) -> ColumnsError:
        where = self._call
        if row is not None:
            where += f" {self._row_label(row)}"
            if self.symbols_known is not None:
                where += f" (symbol {self.symbols_known[row].as_py()!r})"
        return ColumnsError(f"{where}, column {self._column_names.get(column, column)!r}: {problem}")

    def symbols(self, array: Any) -> Any:
        if not len(array):
            return pa.chunked_array([], pa.string())
        kind = array.type
        if pa.types.is_dictionary(kind):
            array = array.cast(kind.value_type)
            kind = array.type
        if pa.types.is_string_view(kind):
            array = array.cast(pa.large_string())
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise self.fail(None, "symbol", f"expected text, got a {kind} column")
        try:
            array.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise self.fail(None, "symbol", f"the text is not valid UTF-8 ({exc})") from exc
        self._no_nulls(array, "symbol", "missing: every position needs a symbol")
        blank_candidates = np.flatnonzero(
            np.logical_not(pc.match_substring_regex(array, _VISIBLE_ASCII).to_numpy(zero_copy_only=False))
        )
        for row in blank_candidates.tolist():
            if not array[row].as_py().strip():
                raise self.fail(row, "symbol", f"must not be empty, got {array[row].as_py()!r}")
        self._carriable(array)
        too_long = pc.greater(pc.utf8_length(array), MAX_NAME_LENGTH)
        if pc.any(too_long).as_py():
            row = _first_true(too_long)
            symbol = array[row].as_py()
            raise self.fail(
                row,
                "symbol",
                f"is {len(symbol)} characters long ({symbol[:40]!r}...): at most {MAX_NAME_LENGTH} "
                "are accepted (docs/configuration.md, Limits)",
            )
        return array

    def _carriable(self, symbols: Any) -> None:
        """Refuse the first symbol with a character of `values.UNCARRIABLE` (a NUL, an ESC, ...)."""
        uncarriable = pc.match_substring_regex(symbols, _UNCARRIABLE)
        if pc.any(uncarriable).as_py():
            row = _first_true(uncarriable)
            try:
                check_name("symbol", symbols[row].as_py())
            except ValueError as exc:
                raise self.fail(row, "symbol", str(exc).removeprefix("symbol ")) from exc

    def asset_types(self, array: Any) -> npt.NDArray[np.int8]:
        if not len(array):
            return np.zeros(0, np.int8)
        kind = array.type
        value_type = kind.value_type if pa.types.is_dictionary(kind) else kind
        if not (
            pa.types.is_string(value_type)
            or pa.types.is_large_string(value_type)
            or pa.types.is_string_view(value_type)
        ):
            raise self.fail(None, "asset_type", f"expected text ({_known_types()}), got a {kind} column")
        if pa.types.is_string_view(value_type):
            array = array.cast(pa.large_string())
        codes = pc.index_in(array, value_set=_ASSET_TYPE_VALUES)
        if codes.null_count:
            row = _first_null(codes)
            given = array[row].as_py()
            problem = "missing" if given is None else f"unknown asset type {given!r}"
            raise self.fail(row, "asset_type", f"{problem}; known: {_known_types()}")
        return np.asarray(codes.to_numpy(), dtype=np.int8)

    def decimals(self, array: Any, column: str, *, nullable: bool, keep: bool = True) -> DecimalColumn:
        """`array` checked as exact numbers; `keep=False` drops the scaled integers (for a
        column only ever read back exactly, such as market values) once they are checked."""
        kind = array.type
        if pa.types.is_null(kind) and (nullable or not len(array)):
            return DecimalColumn(
                (np.zeros(len(array), np.int64),), 0, _nones, known=np.zeros(len(array), np.bool_)
            )
        if not nullable:
            self._no_nulls(array, column, "missing: every position needs one")
        if pa.types.is_floating(kind):
            valid = np.flatnonzero(array.is_valid().to_numpy(zero_copy_only=False))
            row = int(valid[0]) if valid.size else None
            try:
                check_exact(column, array[row].as_py() if row is not None else float("nan"))
            except (TypeError, ValueError) as exc:
                raise self.fail(row, column, f"a {kind} column: {exc}") from exc
        if pa.types.is_decimal(kind):
            return self._checked(_decimal_column(array, kind.scale, _arrow_exact(array)), column, keep=keep)
        if pa.types.is_integer(kind):
            return _integer_column(array)
        if pa.types.is_dictionary(kind):
            return self.decimals(array.cast(kind.value_type), column, nullable=nullable, keep=keep)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return self._text(array, column, keep=keep)
        raise self.fail(None, column, f"expected decimals, integers or decimal text, got a {kind} column")

    def _no_nulls(self, array: Any, column: str, problem: str) -> None:
        if array.null_count:
            raise self.fail(_first_null(array), column, problem)

    def _text(self, array: Any, column: str, *, keep: bool) -> DecimalColumn:
        """Plain decimal text (`-12.50`, `.5`, `+3`) parsed exactly; anything else refused."""
        if pa.types.is_string_view(array.type):
            array = array.cast(pa.large_string())
        plain = pc.match_substring_regex(array, f"^{PLAIN_DECIMAL}$")
        bad = pc.invert(pc.fill_null(plain, pa.scalar(value=True)))
        if pc.any(bad).as_py():
            row = _first_true(bad)
            raise self.fail(
                row,
                column,
                f"{array[row].as_py()!r} is not a plain decimal number "
                "(digits with an optional sign and decimal point: no exponent, separator or currency)",
            )
        dot = pc.find_substring(array, ".")
        length = pc.utf8_length(array)
        fraction = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(length, dot), 1))
        scale = pc.max(fraction).as_py() or 0
        signed = pc.or_(pc.starts_with(array, "-"), pc.starts_with(array, "+"))
        signs = pc.cast(signed, pa.int32())
        digits = pc.subtract(pc.subtract(length, signs), pc.cast(pc.greater_equal(dot, 0), pa.int32()))
        own = pc.fill_null(pc.greater(digits, MAX_DIGITS), pa.scalar(value=False))
        if pc.any(own).as_py():
            row = _first_true(own)
            raise self.fail(
                row,
                column,
                f"{array[row].as_py()!r} has too many digits: a value may have at most {MAX_DIGITS}",
            )
        whole = pc.subtract(digits, fraction)
        needed = pc.add(whole, scale)
        if (pc.max(needed).as_py() or 0) > MAX_DIGITS:
            longest, largest = (
                _first_true(pc.equal(fraction, scale)),
                _first_true(pc.equal(needed, pc.max(needed))),
            )
            raise self.fail(
                longest,
                column,
                f"{array[longest].as_py()!r} has {scale} digits after the point and "
                f"{self._row_label(largest)} ({array[largest].as_py()!r}) {pc.max(whole).as_py()} before it: "
                f"together more than the {MAX_DIGITS} digits a column holds",
            )
        precision = max(1, pc.max(needed).as_py() or 1)
        target = pa.decimal128(38, scale) if precision <= 38 else pa.decimal256(MAX_DIGITS, scale)
        return self._checked(
            _decimal_column(pc.cast(array, target), scale, _arrow_exact(array)), column, keep=keep
        )

    def _checked(self, column_data: DecimalColumn, column: str, *, keep: bool = True) -> DecimalColumn:
        """`column_data`, once every value that could be a Decimal made from a float is checked."""
        rows = np.concatenate(
            [
                start + np.flatnonzero(np.abs(part) >= _POWERS[_FLOAT_DIGITS])
                for part, start in zip(column_data.parts, column_data.starts, strict=False)
            ]
            or [np.zeros(0, np.intp)]
        )
        if column_data.fits is not None:
            rows = np.union1d(rows, np.flatnonzero(~column_data.fits))
        if column_data.known is not None:
            rows = rows[column_data.known[rows]]
        if rows.size:
            fits = np.ones(len(rows), np.bool_) if column_data.fits is None else column_data.fits[rows]
            rows = rows[~_at_most_digits(column_data.gather(rows), fits, _FLOAT_DIGITS)]
        if column_data.scale > MAX_DECIMAL_PLACES:
            rows = np.arange(len(column_data), dtype=np.intp)
            if column_data.known is not None:
                rows = rows[column_data.known]
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = rows[start : start + CHUNK_SIZE].astype(np.intp)
            for row, value in zip(chunk.tolist(), column_data.exact(chunk), strict=True):
                try:
                    check_exact(column, value)
                except (TypeError, ValueError) as exc:
                    raise self.fail(row, column, str(exc)) from exc
        if keep:
            return column_data
        return DecimalColumn((), column_data.scale, column_data.exact)


def _at_most_digits(
    scaled: npt.NDArray[np.int64], fits: npt.NDArray[np.bool_], digits: int
) -> npt.NDArray[np.bool_]:
    """Which fitting values have at most `digits` significant digits once trailing zeros are dropped."""
    value = np.abs(scaled)
    for _ in range(18):
        divisible = fits & (value != 0) & (value % 10 == 0)
        if not divisible.any():
            break
        value = np.where(divisible, value // 10, value)
    short: npt.NDArray[np.bool_] = fits & (value < _POWERS[digits])
    return short


def _known_types() -> str:
    return ", ".join(kind.value for kind in ASSET_TYPE_ORDER)


def _first_true(mask: Any) -> int:
    return int(np.flatnonzero(pc.fill_null(mask, pa.scalar(value=False)).to_numpy(zero_copy_only=False))[0])


def _first_null(array: Any) -> int:
    return int(np.flatnonzero(np.logical_not(array.is_valid().to_numpy(zero_copy_only=False)))[0])


def _nones(rows: npt.NDArray[np.intp]) -> list[Decimal | None]:
    return [None] * len(rows)


def taken(array: Any, rows: npt.NDArray[np.integer[Any]]) -> list[Any]:
    """The Python values of `array` (an Array or ChunkedArray) at `rows`, in their order.

    Taken chunk by chunk: Arrow's take on a ChunkedArray of decimals first joins the
    chunks, which costs a copy of the whole column for every call."""
    chunks = _chunks(array)
    if len(chunks) == 1:
        values: list[Any] = chunks[0].take(pa.array(rows, pa.int64())).to_pylist()
        return values
    found: list[Any] = [None] * len(rows)
    start = 0
    for chunk in chunks:
        end = start + len(chunk)
        inside = np.flatnonzero((rows >= start) & (rows < end))
        if inside.size:
            picked = chunk.take(pa.array(rows[inside] - start, pa.int64())).to_pylist()
            for index, value in zip(inside.tolist(), picked, strict=True):
                found[index] = value
        start = end
    return found


def _arrow_exact(array: Any) -> Callable[[npt.NDArray[np.intp]], list[Decimal | None]]:
    """The exact values of `array` at some rows: its decimals, integers or decimal text as `Decimal`s."""

    def exact(rows: npt.NDArray[np.intp]) -> list[Decimal | None]:
        return [
            None if value is None else value if type(value) is Decimal else Decimal(value)
            for value in taken(array, rows)
        ]

    return exact


def _decimal_column(
    array: Any, scale: int, exact: Callable[[npt.NDArray[np.intp]], list[Decimal | None]]
) -> DecimalColumn:
    """An Arrow decimal column's unscaled integers, read in place from each chunk's buffer
    (little-endian two's complement, 32 to 256 bits): the low 64 bits of each value, which
    are the value where it fits."""
    parts = [_decimal_words(chunk) for chunk in _chunks(array)]
    lengths = [len(part[0]) for part in parts]
    known = _joined([part[2] for part in parts], lengths)
    fits = _joined([part[1] for part in parts], lengths, known)
    column = DecimalColumn(tuple(part[0] for part in parts), scale, exact, fits=fits, known=known)
    return _rescaled(column, 0) if scale < 0 else column


def _chunks(array: Any) -> list[Any]:
    return list(array.chunks) if isinstance(array, pa.ChunkedArray) else [array]


def _decimal_words(
    chunk: Any,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
    """One chunk's low words, where they hold the value (None: everywhere), where it is known."""
    width = chunk.type.byte_width // 8
    count = len(chunk)
    known = None if not chunk.null_count else chunk.is_valid().to_numpy(zero_copy_only=False)
    if width == 0:
        words = np.frombuffer(chunk.buffers()[1], dtype="<i4", count=chunk.offset + count)[chunk.offset :]
        return words.astype(np.int64), None, known
    words = np.frombuffer(chunk.buffers()[1], dtype="<i8", count=(chunk.offset + count) * width)
    words = words[chunk.offset * width :].reshape(count, width)
    scaled = words[:, 0]
    fitting = (scaled <= LIMIT) & (scaled >= -LIMIT)
    if width > 1:
        sign = scaled >> 63
        for word in range(1, width):
            fitting &= words[:, word] == sign
    return scaled, None if fitting.all() else fitting, known


def _joined(
    masks: list[npt.NDArray[np.bool_] | None], lengths: list[int], known: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.bool_] | None:
    """Per-chunk masks (None: all True) as one mask, or None if it is all True; with `known`,
    True too where the value is unknown (a `fits` mask: an unknown value fits)."""
    if all(mask is None for mask in masks):
        return None
    joined = np.concatenate(
        [
            np.ones(length, np.bool_) if mask is None else mask
            for mask, length in zip(masks, lengths, strict=True)
        ]
    )
    return joined if known is None else joined | ~known


def _integer_column(array: Any) -> DecimalColumn:
    known = None if not array.null_count else array.is_valid().to_numpy(zero_copy_only=False)
    parts: list[npt.NDArray[np.int64]] = []
    masks: list[npt.NDArray[np.bool_] | None] = []
    for chunk in _chunks(array.fill_null(0)):
        if pa.types.is_uint64(chunk.type):
            unsigned = chunk.to_numpy()
            fitting = unsigned <= LIMIT
            scaled = unsigned.view(np.int64)
        else:
            scaled = chunk.cast(pa.int64()).to_numpy()
            fitting = (scaled <= LIMIT) & (scaled >= -LIMIT)
        parts.append(scaled)
        masks.append(None if fitting.all() else fitting)
    fits = _joined(masks, [len(part) for part in parts], known)
    return DecimalColumn(tuple(parts), 0, _arrow_exact(array), fits=fits, known=known)


def _rescaled(column: DecimalColumn, scale: int) -> DecimalColumn:
    """`column` at a larger `scale`; a value that would pass `LIMIT` no longer fits."""
    shift = scale - column.scale
    if shift == 0:
        return column
    fits = np.ones(len(column), np.bool_) if column.fits is None else column.fits.copy()
    parts = []
    for part, start in zip(column.parts, column.starts, strict=False):
        part_fits = fits[start : start + len(part)]
        if shift >= len(_POWERS):
            part_fits &= part == 0
            parts.append(np.zeros_like(part))
        else:
            factor = _POWERS[shift]
            part_fits &= (part <= LIMIT // factor) & (part >= -(LIMIT // factor))
            parts.append(np.where(part_fits, part, 0) * factor)
    if column.known is not None:
        fits |= ~column.known
    return DecimalColumn(
        tuple(parts), scale, column.exact, fits=None if fits.all() else fits, known=column.known
    )


def aligned(first: DecimalColumn, second: DecimalColumn) -> tuple[DecimalColumn, DecimalColumn]:
    """Both columns at the larger of their scales, so that their integers compare as their values."""
    scale = max(first.scale, second.scale)
    return _rescaled(first, scale), _rescaled(second, scale)


def columns_from_objects(
    entries: Sequence[Position] | Sequence[BrokerPosition],
    side: Literal["local", "broker"],
    *,
    pause: Callable[[], object] | None = None,
) -> PositionColumns:
    """Validated position objects as columns; `source` keeps the objects for their exact values
    (a validated symbol is Unicode text, which Arrow holds: `values.UNCARRIABLE`)."""
    symbols: list[str] = []
    codes: list[int] = []
    quantities: list[Decimal | None] = []
    costs: list[Decimal | None] = []
    code_of = _CODE_OF
    for chunk in _object_chunks(entries, pause):
        symbols.extend([entry.symbol for entry in chunk])
        codes.extend([code_of[entry.asset_type] for entry in chunk])
        quantities.extend([entry.quantity for entry in chunk])
        costs.extend([entry.avg_cost for entry in chunk])
    return PositionColumns(
        side,
        pa.chunked_array([pa.array(symbols, pa.string())]),
        np.asarray(codes, dtype=np.int8),
        _from_decimals(quantities),
        _from_decimals(costs),
        source=entries,
    )


def _object_chunks(
    entries: Sequence[Position] | Sequence[BrokerPosition], pause: Callable[[], object] | None
) -> Iterator[Sequence[Position] | Sequence[BrokerPosition]]:
    if pause is None:
        yield entries
        return
    for start in range(0, len(entries), CHUNK_SIZE * 10):
        yield entries[start : start + CHUNK_SIZE * 10]
        pause()


def _from_decimals(values: list[Decimal | None]) -> DecimalColumn:
    """Exact `Decimal`s (or None) as a scaled column: through Arrow at the scale of the longest
    fraction, or one by one where a value is too long for it."""

    def exact(rows: npt.NDArray[np.intp]) -> list[Decimal | None]:
        return [values[row] for row in rows.tolist()]

    scale = _scale_of(itertools.islice(values, 1024))
    for attempt in range(2):
        try:
            array = pa.array(values, pa.decimal128(38, scale))
        except (pa.ArrowInvalid, OverflowError):
            if attempt == 0:
                scale = _scale_of(values)
            continue
        return _decimal_column(array, scale, exact)
    return _one_by_one(values, min(scale, 18), exact)


def _scale_of(values: Iterable[Decimal | None]) -> int:
    """The most digits after the point among `values` (0 for whole numbers)."""
    exponents = [value.as_tuple().exponent for value in values if value is not None]
    smallest = min((exponent for exponent in exponents if isinstance(exponent, int)), default=0)
    return max(0, -smallest)


def _one_by_one(
    values: list[Decimal | None], scale: int, exact: Callable[[npt.NDArray[np.intp]], list[Decimal | None]]
) -> DecimalColumn:
    count = len(values)
    scaled = np.zeros(count, np.int64)
    fits = np.ones(count, np.bool_)
    known = np.ones(count, np.bool_)
    factor = 10**scale
    for row, value in enumerate(values):
        if value is None:
            known[row] = False
            continue
        numerator, denominator = value.as_integer_ratio()
        whole, rest = divmod(numerator * factor, denominator)
        if rest or abs(whole) > LIMIT:
            fits[row] = False
        else:
            scaled[row] = whole
    return DecimalColumn(
        (scaled,),
        scale,
        exact,
        fits=None if fits.all() else fits,
        known=None if known.all() else known,
    )


def as_table(columns: PositionColumns) -> Any:
    """The columns as an Arrow table under the documented names: the table they were read
    from, or one made from their objects (exact decimal text)."""
    if columns.table is not None:
        return columns.table
    entries = rows_as_objects(columns, np.arange(len(columns), dtype=np.intp))
    table = {
        "symbol": pa.array([entry.symbol for entry in entries], pa.string()),
        "quantity": pa.array([format(entry.quantity, "f") for entry in entries], pa.string()),
        "avg_cost": pa.array(
            [None if entry.avg_cost is None else format(entry.avg_cost, "f") for entry in entries],
            pa.string(),
        ),
        "asset_type": pa.array([entry.asset_type.value for entry in entries], pa.string()),
    }
    if columns.side == "broker":
        table["market_value"] = pa.array([format(entry.market_value, "f") for entry in entries], pa.string())
    return pa.table(table)


def rows_as_objects(columns: PositionColumns, rows: npt.NDArray[np.intp]) -> list[Any]:
    """The positions at `rows` as `Position` (local) or `BrokerPosition` objects, exact.

    A broker batch without market values gives 0 for them: they are never compared.
    """
    if columns.source is not None:
        source = columns.source
        return [source[row] for row in rows.tolist()]
    symbols = taken(columns.symbols, rows)
    kinds = [ASSET_TYPE_ORDER[code] for code in columns.asset_types[rows].tolist()]
    quantities = cast("list[Decimal]", columns.quantity.exact(rows))
    costs = columns.avg_cost.exact(rows)
    if columns.side == "local":
        return [
            Position(symbol, quantity, cost, kind)
            for symbol, quantity, cost, kind in zip(symbols, quantities, costs, kinds, strict=True)
        ]
    values = cast(
        "list[Decimal]",
        columns.market_values(rows) if columns.market_values is not None else [Decimal(0)] * len(rows),
    )
    return [
        BrokerPosition(symbol, quantity, cost, value, kind)
        for symbol, quantity, cost, value, kind in zip(symbols, quantities, costs, values, kinds, strict=True)
    ]


def rows_of_symbols(columns: PositionColumns, symbols: Iterable[str]) -> list[Any]:
    """The positions (as `rows_as_objects` gives them) whose symbol is one of `symbols`."""
    wanted = pa.array(sorted(set(symbols)), pa.string())
    found = pc.is_in(columns.symbols, value_set=wanted)
    rows = np.flatnonzero(pc.fill_null(found, pa.scalar(value=False)).to_numpy(zero_copy_only=False)).astype(np.intp)
    return rows_as_objects(columns, rows)


if sys.byteorder != "little":  # pragma: no cover - Arrow's buffers are read as little-endian
    msg = "the columnar comparison reads Arrow decimal buffers as little-endian"
    raise ImportError(msg)
