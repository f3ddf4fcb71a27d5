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
here, against 2.2 s and 2.4 s through the ``sqlite3`` module and ``bulk.sqlite_text``.

The other way, into an SQLite file, in a reader process: COPY text (PostgreSQL's, or MariaDB's
lines) parsed by Arrow's CSV reader into the values ``bulk.SQLiteWriter.parse_text`` binds
(``load_table``), and inserted by the driver in C (``SQLiteLoad``): 1M rows parsed in 0.6 s against
2.1 s, and inserted in 2.5 s against 3.1-4.0 s through the ``sqlite3`` module's ``executemany`` in
the copying process (plus 0.8 s there to unmarshal its values).

This module imports pyarrow (0.1 s) and the driver: it is imported where rows are read (``textread``)
or loaded this way, not with parity.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from adbc_driver_sqlite import dbapi

from parity.bulk import copy_field
from parity.schema.types import INTEGER_KINDS, Kind
from parity.textread import ARROW_ISO, ARROW_TEXT_KINDS, NotArrow, NotArrowLoad, first_line

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


# ---- COPY text loaded into SQLite ----------------------------------------------------------------

_PARSED_AS = {**dict.fromkeys(INTEGER_KINDS, pa.int64()), Kind.DOUBLE: pa.float64(), Kind.BOOLEAN: pa.bool_()}
"""The Arrow type Arrow's CSV reader parses a kind's COPY text into; the other kinds stay strings."""

_FRACTION_AT = {Kind.TIME: 8, Kind.TIMESTAMP: 19}
"""Where an ISO time's or timestamp's fraction starts (``bulk._ISO_FRACTION``)."""


def load_table(text: bytes, lines: int, kinds: Sequence[Kind]) -> Any:
    """A batch of COPY text parsed by Arrow's CSV reader into the values ``bulk.SQLiteWriter`` binds
    for it (``parse_text``: integers, doubles and booleans as numbers, the rest as the text, escapes
    undone, CHAR's padding trimmed, ISO times with no or six digits of fraction), as an Arrow table
    for ``SQLiteLoad``; ``NotArrow`` where they would not be the same values."""
    if b"\r" in text:  # (Arrow's reader ends a line at a carriage return: COPY text escapes its own)
        raise NotArrow("a carriage return in the text")
    if text.startswith(b"\xef\xbb\xbf"):  # (Arrow's reader skips a byte order mark at its start)
        raise NotArrow("a byte order mark at the start of the text")
    if len(text) >= 2**31 - 1:  # (the reader's block size is an int32)
        raise NotArrow("a batch of 2 GiB of text or more")
    names = [f"c{i}" for i in range(len(kinds))]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(text),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(text) + 1),
            parse_options=pcsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={n: _PARSED_AS.get(k, pa.string()) for n, k in zip(names, kinds, strict=True)},
                null_values=["\\N"],
                strings_can_be_null=True,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    except (pa.ArrowException, OverflowError) as exc:  # (an integer past 64 bits, text no UTF-8 ...)
        raise NotArrow(f"Arrow cannot parse the text: {first_line(exc)}") from None
    if table.num_rows != lines:
        raise NotArrow(f"Arrow parsed {table.num_rows} rows of {lines} lines")
    return pa.table([_bound(table.column(i), kind) for i, kind in enumerate(kinds)], names=names)


def _bound(column: Any, kind: Kind) -> Any:
    """One parsed column as ``bulk._sqlite_bind_column`` binds it."""
    if column.null_count == len(column) or kind in INTEGER_KINDS:
        return column
    if kind is Kind.DOUBLE:
        if pc.any(pc.is_nan(column)).as_py():  # (kept as the text 'NaN': SQLite makes a NaN NULL)
            raise NotArrow("a NaN in a double column")
        return column
    if kind is Kind.BOOLEAN:
        return pc.cast(column, pa.int64())
    if pc.any(pc.match_substring(column, "\\")).as_py():  # escapes: undone where they are
        column = pa.array(
            [v if v is None or "\\" not in v else copy_field(v) for v in column.to_pylist()], pa.string()
        )
    if kind is Kind.CHAR:
        return pc.utf8_rtrim(column, characters=" ")
    if kind in ARROW_ISO:
        return _iso_bound(column, kind)
    return column  # decimals (plain text), strings, UUIDs


def _iso_bound(column: Any, kind: Kind) -> Any:
    """ISO text as ``isoformat`` gives it: no fraction for a whole second, else six digits (PostgreSQL
    trims its zeros, MySQL pads them); other text (BC, a year past 9999, a zero date) is decoded by
    the ``sqlite3`` module's path, so ``NotArrow``."""
    if not pc.all(pc.match_substring_regex(column, f"^{ARROW_ISO[kind]}$")).as_py():
        raise NotArrow(f"a {kind.value} that is not ISO text")
    if kind is not Kind.TIME and pc.any(pc.match_substring_regex(column, _ZERO_DATE)).as_py():
        raise NotArrow(f"a zero {kind.value}")
    start = _FRACTION_AT.get(kind)
    if start is None:
        return column
    whole = pc.ends_with(column, ".000000")
    if pc.any(whole).as_py():
        column = pc.if_else(whole, pc.utf8_slice_codeunits(column, 0, start), column)
    length, full = pc.binary_length(column), start + 7
    short = pc.and_(pc.not_equal(length, start), pc.less(length, full))
    if not pc.any(short).as_py():
        return column
    return pc.if_else(short, pc.utf8_rpad(column, width=full, padding="0"), column)


class SQLiteLoad:
    """A reader process's transaction on an SQLite file through ADBC's driver (``textread.LoadSpec``):
    each table bound to a prepared INSERT and inserted in C, the chunk's state row, one commit. Its own
    connection, in a process that opens the file through no other SQLite library (SQLite's locks are
    POSIX locks, which two libraries in one process do not see); ``BEGIN IMMEDIATE`` waits for the
    copy's other writers up to a minute, as parity's connections do. Any error of the driver's is
    ``NotArrowLoad``: the copy writes the chunk again through the ``sqlite3`` module, which isolates
    refused rows."""

    def __init__(self, path: str) -> None:
        uri = path if path.startswith("file:") else f"file:{quote(path)}"
        self.conn: Any = None
        self.cursor: Any = None
        self.open = False
        try:
            self.conn = dbapi.connect(uri, autocommit=True)
            self.cursor = self.conn.cursor()
            for statement in ("PRAGMA busy_timeout = 60000", "PRAGMA foreign_keys = OFF", "BEGIN IMMEDIATE"):
                self.cursor.execute(statement)  # (FKs: parity's SQLite connections check none either)
            self.open = True
        except dbapi.Error as exc:
            self.close()
            raise NotArrowLoad(f"ADBC cannot write the database: {first_line(exc)}") from None

    def insert(self, sql: str, rows: Any) -> None:
        """The rows of a ``load_table`` table, bound to ``sql`` (an INSERT of a parameter a column)."""
        try:
            self.cursor.executemany(sql, rows)
        except dbapi.Error as exc:
            raise NotArrowLoad(f"the target refused a batch ({first_line(exc)})") from None

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        try:
            self.cursor.execute(sql, tuple(params))
        except dbapi.Error as exc:
            raise NotArrowLoad(f"the target refused the chunk's state ({first_line(exc)})") from None

    def commit(self) -> None:
        try:
            self.cursor.execute("COMMIT")
        except dbapi.Error as exc:
            raise NotArrowLoad(f"the chunk's commit failed ({first_line(exc)})") from None
        self.open = False

    def close(self) -> None:
        """Roll back what was not committed, and close."""
        try:
            if self.open:
                self.open = False
                self.cursor.execute("ROLLBACK")
        except dbapi.Error:
            pass  # (its connection's close rolls it back)
        finally:
            try:
                if self.cursor is not None:
                    self.cursor.close()
            finally:
                if self.conn is not None:
                    self.conn.close()
