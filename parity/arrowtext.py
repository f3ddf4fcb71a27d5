"""SQLite's rows as COPY text made in C: read by ADBC's SQLite driver into Arrow batches, and turned
into lines by Arrow's compute kernels, with no Python object per value.

The text is the one ``bulk.sqlite_text`` makes of the same rows (a float decimal aside: Arrow writes
3.0 as ``3``, Python as ``3.0``, the same number). Where it could not be (a value the driver gives
otherwise than parity reads it), the reading stops with ``textread.NotArrow`` and the caller reads
the rows through the ``sqlite3`` module instead:

- ADBC types each column from the first batch's values and fails on a later value of another type
  (an INTEGER column that holds a REAL further on): ``NotArrow``.
- A column typed as text gives a number or a BLOB in it as text (SQLite's own spelling of a REAL,
  which keeps 15 digits): a query of ``SQLite.not_text`` finds such a value first.
- A column whose Arrow type is not its kind's (text in an INTEGER column, a REAL in a decimal past
  2**53, which a double does not hold exactly), a date that is not ISO text, a decimal written with an
  exponent, or past what the target keeps: ``NotArrow``.

A SELECT of 1M rows of six columns (bench/copy_bench.py's ``orders``): 1.1 s read and 1.0 s made text
here, against 2.2 s and 2.4 s through the ``sqlite3`` module and ``bulk.sqlite_text``. This module
imports pyarrow (0.1 s) and the driver: it is imported where rows are read (``textread``), not with
parity.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from adbc_driver_sqlite import dbapi

from parity.schema.types import INTEGER_KINDS, Kind
from parity.textread import ARROW_ISO, ARROW_TEXT_KINDS, NotArrow

_ZERO_DATE = r"^0000-|-00(?:-| |$)"
"""MySQL's zero dates (a zero year, month or day), which ``bulk._all_iso`` sends to be decoded."""

_EXACT = 2**53
"""Doubles hold every integer below this; an integer past it may have come from SQLite's INTEGER."""

_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def database_uri(path: str) -> str:
    """The SQLite URI ADBC opens a file of ``sqlite3.connect``'s arguments by, read-only; a ``file:``
    URI the user gave as it is."""
    return path if path.startswith("file:") else f"file:{quote(path)}?mode=ro"


def batches(
    uri: str,
    sql: str,
    params: Sequence[Any],
    kinds: Sequence[Kind],
    size: int,
    scales: Sequence[int | None],
    guard: tuple[str, Any] | None = None,
) -> Generator[tuple[bytes, int], None, None]:
    """The rows of ``sql`` as batches of COPY text: (text, rows); ``NotArrow`` where they cannot be,
    or where the ``guard`` query (SQL, parameters: ``SQLite.not_text``) finds a row, which it runs
    first in the same read transaction (the driver's connection is not in autocommit)."""
    try:
        conn = dbapi.connect(uri)
    except Exception as exc:
        raise NotArrow(f"ADBC cannot open the database: {exc}") from None
    try:
        cursor = conn.cursor()
        try:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(size)})
            try:
                if guard is not None and _found(cursor, *guard):
                    raise NotArrow("a number or a BLOB in a column of text")
                cursor.execute(sql, tuple(params) or None)
                reader = cursor.fetch_record_batch()
            except NotArrow:
                raise
            except Exception as exc:
                raise NotArrow(f"ADBC cannot read the rows: {exc}") from None
            while (batch := _next(reader)) is not None:
                if batch.num_rows:
                    yield batch_text(batch, kinds, scales), batch.num_rows
        finally:
            cursor.close()
    finally:
        conn.close()


def _found(cursor: Any, sql: str, params: Sequence[Any]) -> bool:
    cursor.execute(sql, tuple(params) or None)
    return cursor.fetchone() is not None


def _next(reader: Any) -> Any:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except Exception as exc:  # (a value of another type than the column's first ones: ADBC's own error)
        raise NotArrow(f"ADBC cannot read the rows: {exc}") from None


def batch_text(batch: Any, kinds: Sequence[Kind], scales: Sequence[int | None] = ()) -> bytes:
    """An Arrow batch as lines of COPY text (tab-separated, backslash-escaped, ``\\N`` for NULL)."""
    columns = [
        _column_text(batch.column(i), kind, scales[i] if i < len(scales) else None)
        for i, kind in enumerate(kinds)
    ]
    lines = pc.binary_join_element_wise(*columns, "\t") if len(columns) > 1 else columns[0]
    return _data(pc.binary_join_element_wise(lines, "", "\n"))


def _column_text(column: Any, kind: Kind, scale: int | None) -> Any:
    if column.null_count == len(column):
        return pc.fill_null(pa.nulls(len(column), pa.string()), "\\N")
    kind_of = column.type
    if kind in INTEGER_KINDS and pa.types.is_integer(kind_of):
        text = pc.cast(column, pa.string())
    elif kind is Kind.DECIMAL and (pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of)):
        text = _decimal_text(column)
    elif kind in ARROW_TEXT_KINDS and (pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of)):
        text = _string_text(column, kind)
    else:
        raise NotArrow(f"a {kind.value} column came as {kind_of}")
    if (
        scale is not None
        and pc.any(pc.match_substring_regex(text, rf"\.[0-9]{{{scale}}}[0-9]*?[1-9]")).as_py()
    ):
        raise NotArrow(f"more decimals than the target keeps ({scale})")  # (bulk.excess_decimals)
    return pc.fill_null(text, "\\N")


def _decimal_text(column: Any) -> Any:
    if pa.types.is_floating(column.type):
        largest = pc.max(pc.abs(column)).as_py()
        if largest is None or not largest < _EXACT:  # (an integer past it may have been rounded)
            raise NotArrow("a decimal held as a double past 2**53")
    text = pc.cast(column, pa.string())
    if pc.any(pc.match_substring_regex(text, "[a-z]")).as_py():  # 1e+21, inf, nan: as bulk does
        raise NotArrow("a decimal written with an exponent, or not a number")
    return text


def _string_text(column: Any, kind: Kind) -> Any:
    try:  # (ADBC passes SQLite's text on unchecked: text that is no UTF-8 is the module's to refuse)
        column.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise NotArrow(f"text that is no UTF-8 ({exc})") from None
    if kind in ARROW_ISO:
        if not pc.all(pc.match_substring_regex(column, f"^{ARROW_ISO[kind]}$")).as_py():
            raise NotArrow(f"a {kind.value} that is not ISO text")
        if kind is not Kind.TIME and pc.any(pc.match_substring_regex(column, _ZERO_DATE)).as_py():
            raise NotArrow(f"a zero {kind.value}")
        return column
    if kind is Kind.CHAR:  # (bulk._sqlite_column: a CHAR's padding is not its value)
        column = pc.utf8_rtrim(column, characters=" ")
    data = column.buffers()[2]
    held = b"" if data is None else memoryview(data).tobytes()
    for char, escaped in _ESCAPES:
        if char.encode() in held:  # (a C scan of the column's bytes: few columns hold one)
            column = pc.replace_substring(column, char, escaped)
    return column


def _data(lines: Any) -> bytes:
    """The bytes of a string array without nulls, end to end: the lines."""
    import pyarrow as pa

    wide = pa.types.is_large_string(lines.type)
    offsets = memoryview(lines.buffers()[1]).cast("q" if wide else "i")
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[start:end].tobytes()
