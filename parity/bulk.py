"""Bulk writers: each database's fastest way in, fed with batches of canonical rows.

A dialect names its writer in ``Dialect.WRITER``; every writer has a portable fallback
(``executemany``, ``Dialect.ROW_WRITER``) that the copy engine uses to isolate rows a bulk load
rejects, and to load every row where the database refuses the bulk path (``Dialect.bulk_refused``:
MySQL/MariaDB with ``local_infile`` off; ``Endpoint.writer``).

| writer      | database         | how                                                             |
|-------------|------------------|-----------------------------------------------------------------|
| copy        | PostgreSQL       | ``COPY ... FROM STDIN`` through psycopg 3                       |
| load_data   | MySQL / MariaDB  | ``LOAD DATA LOCAL INFILE`` from a named pipe, one per batch     |
| arrow       | DuckDB           | an Arrow table registered as a view, then ``INSERT ... SELECT`` |
| executemany | SQLite, others   | ``executemany`` in the surrounding transaction                  |

Where a writer loads a source's COPY text as it is (``Writer.TEXT_FROM``: PostgreSQL's
``COPY ... TO STDOUT``, or the lines MySQL/MariaDB make with ``Dialect.copy_line``; COPY FROM and
MariaDB's LOAD DATA read the same tab-separated, backslash-escaped lines), rows of those kinds travel
as that text (:class:`TextBatch`) and never become Python values.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, cast, overload
from uuid import UUID

from parity import log
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind
from parity.sqltext import as_sent, with_parameters
from parity.values import DECODE_ERRORS, decode_value, json_text, nearest_single

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Row = tuple[Any, ...]


class Writer:
    """Writes batches into one table through one connection, inside the caller's transaction."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {}
    """Per kind, how a canonical value is turned into what this writer's driver accepts."""

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        self.conn = conn
        self.table = table
        """The qualified, quoted table name."""
        self.columns = list(columns)
        self.types = list(types)
        prep = conn.dialect.identifier_preparer
        self.column_list = as_sent(", ".join(prep.quote(c) for c in self.columns), conn.dialect)
        """The quoted columns as SQL sent with no parameters reads (``sqltext.as_sent``)."""

    def write(self, rows: Sequence[Row]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the writer holds (a pipe, a registered view)."""

    @classmethod
    def write_once(
        cls,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        types: Sequence[CanonicalType],
        rows: Sequence[Row],
    ) -> None:
        """One batch, by a writer made for it and closed after."""
        writer = cls(conn, table, columns, types)
        try:
            writer.write(rows)
        finally:
            writer.close()

    PREPARES: ClassVar[bool] = False
    """Whether ``prepare`` does work: then the copy engine calls it on the reader's thread."""

    TEXT_FROM: ClassVar[dict[str, frozenset[Kind]]] = {}
    """Per source backend, the kinds whose text, as parity reads it from that source (PostgreSQL's
    COPY TO text; MySQL's lines of ``Dialect.copy_line``), this writer loads unchanged: a table of
    only such kinds travels as :class:`TextBatch` text and never becomes Python values."""

    @classmethod
    def take_text(cls, text: bytes, lines: int, kinds: Sequence[Kind]) -> TextBatch:
        """A batch of a source's COPY text (``TEXT_FROM``) made ready for this writer, on the reader's
        side: ``parse_text`` (which may run in a reader process) then ``text_batch``."""
        return cls.text_batch(lines, kinds, cls.parse_text(text, lines, kinds))

    @classmethod
    def parse_text(cls, text: bytes, lines: int, kinds: Sequence[Kind]) -> Any:
        """The work on a batch of a source's text that this writer needs done ahead: its result is
        plain data (picklable), sent by a reader process to ``text_batch``. The text as it is, unless
        the writer needs it otherwise."""
        return text

    @classmethod
    def text_batch(cls, lines: int, kinds: Sequence[Kind], parsed: Any) -> TextBatch:
        """The batch for ``write`` from what ``parse_text`` gave."""
        return TextBatch(parsed, lines, cls)

    PARSES_TEXT: ClassVar[bool] = False
    """Whether ``parse_text`` does heavy work (Python per value): then copy reads such batches in reader
    processes where it can (``parity.textread``)."""

    @classmethod
    def prepare(cls, rows: Sequence[Row], types: Sequence[CanonicalType]) -> Any:
        """Work on a batch that can be done ahead of ``write``, on another thread (None: nothing).
        ``write`` uses it when given a :class:`Batch` whose ``prepared`` is set."""
        return None


class Batch(list[Row]):
    """A batch of rows, with what a writer class (``by``) prepared from exactly these rows ahead of time
    (``Writer.prepare``; None when nothing was); a slice of it is a plain list again."""

    __slots__ = ("by", "prepared")

    def __init__(self, rows: Sequence[Row], prepared: Any = None, by: type[Writer] | None = None) -> None:
        super().__init__(rows)
        self.prepared = prepared
        self.by = by


class TextBatch(Sequence[Row]):
    """A batch as PostgreSQL's COPY text: tab-separated lines, ``\\N`` for NULL, backslash escapes,
    already in the form ``by`` loads (``prepared``). Its rows (strings and None) are parsed only when
    asked for: where the target refuses the batch and its rows are isolated one by one."""

    def __init__(
        self,
        text: bytes,
        count: int,
        by: type[Writer],
        prepared: Any = None,
        parse: Callable[[], list[Row]] | None = None,
    ) -> None:
        self.text = text
        self.prepared = text if prepared is None else prepared
        """What ``by`` loads: the text itself unless the writer took it otherwise (``take_text``)."""
        self.lines = count
        self.by = by
        self.parse = parse
        """The rows as the writer's row-by-row fallback takes them, where not strings (else None)."""
        self._rows: list[Row] | None = None

    def __len__(self) -> int:
        return self.lines

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        return self.rows()[index]

    def rows(self) -> list[Row]:
        if self._rows is None and self.parse is not None:
            self._rows = self.parse()
        if self._rows is None:
            lines = self.text.decode("utf-8").split("\n")[:-1]
            self._rows = [tuple(map(copy_field, line.split("\t"))) for line in lines]
        return self._rows


_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_COPY_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def copy_field(field: str) -> str | None:
    """One field of COPY text as its value: None for ``\\N``, escapes undone."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    return _COPY_ESCAPE.sub(lambda m: _COPY_UNESCAPE.get(m.group(1), m.group(1)), field)


_FORM_FEED_OR_VTAB = re.compile(rb"\\[\\fv]")
_LOAD_DATA_FORM = {b"\\\\": b"\\\\", b"\\f": b"\f", b"\\v": b"\v"}


def _prepared(rows: Sequence[Row], writer: type[Writer]) -> Any:
    """What ``writer`` itself prepared for these rows, or None (another writer's work is not used)."""
    return rows.prepared if type(rows) in (Batch, TextBatch) and rows.by is writer else None  # type: ignore[attr-defined]


def _raw(conn: Connection) -> Any:
    return conn.connection.driver_connection


_MYSQL_LINES = frozenset({*INTEGER_KINDS, Kind.DECIMAL, *STRING_KINDS, Kind.DATE, Kind.TIMESTAMP, Kind.UUID})
"""The kinds of MySQL's lines of COPY text (``Dialect.copy_line``) that COPY FROM and LOAD DATA read as the
same values; not floats (MySQL's text of them is not always exact), TIME (may exceed a day), booleans
(tinyint)."""


class ExecuteManyWriter(Writer):
    """The portable path: parameterised INSERT with executemany."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {}
    BEFORE_VALUES: ClassVar[str] = ""

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        super().__init__(conn, table, columns, types)
        style = conn.dialect.paramstyle
        marks = ", ".join(placeholder(style, i) for i in range(len(self.columns)))
        self.sql = (
            with_parameters(f"INSERT INTO {table} ({self.column_list})", conn.dialect)
            + f"{self.BEFORE_VALUES} VALUES ({marks})"
        )
        self.encoders = [self.ENCODERS.get(t.kind) for t in self.types]

    @classmethod
    def prepare(cls, rows: Sequence[Row], types: Sequence[CanonicalType]) -> Any:
        """The encoded rows (used when a subclass sets PREPARES and keeps this ``write``)."""
        return _encode_columns(rows, [cls.ENCODERS.get(t.kind) for t in types])

    def write(self, rows: Sequence[Row]) -> None:
        prepared = _prepared(rows, type(self))
        if prepared is not None:
            rows = prepared
        elif any(self.encoders):
            rows = _encode_columns(rows, self.encoders)
        cursor = self.conn.connection.cursor()
        try:
            with log.timed_sql(self.sql, "executemany"):
                cursor.executemany(self.sql, rows)
        finally:
            cursor.close()


def placeholder(paramstyle: str, index: int) -> str:
    """The driver's positional placeholder for the index-th value."""
    if paramstyle in ("format", "pyformat"):
        return "%s"
    if paramstyle in ("numeric", "named"):
        return f":{index + 1}"
    if paramstyle == "numeric_dollar":
        return f"${index + 1}"
    return "?"


def plain_decimal(value: Decimal | int | float) -> str:
    """A decimal in positional notation (never 1E+27, which some databases read as a float). An int
    (a driver's value of a DECIMAL(20,0), a BIGINT UNSIGNED) stays exact: format(int, "f") would go
    through a float (18446744073709551615 -> 18446744073709551616.000000)."""
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(value, "f")


def decimal_text(value: Any) -> str:
    """A value's text for ``excess_decimals``: a number in positional notation (a float's 1e-05 as
    0.00001), anything else (a time) as its own text."""
    if isinstance(value, Decimal) or (isinstance(value, float) and math.isfinite(value)):
        return plain_decimal(value)
    return str(value)


def _encode(row: Row, encoders: Sequence[Callable[[Any], Any] | None]) -> Row:
    return tuple(v if e is None or v is None else e(v) for v, e in zip(row, encoders, strict=True))


def _encode_columns(rows: Sequence[Row], encoders: Sequence[Callable[[Any], Any] | None]) -> Sequence[Row]:
    """``_encode`` of every row, column by column: the columns without an encoder are not touched."""
    if not rows or not any(encoders):
        return rows
    columns: list[Any] = list(zip(*rows, strict=True))
    for i, encode in enumerate(encoders):
        if encode is not None:
            columns[i] = [v if v is None else encode(v) for v in columns[i]]
    return list(zip(*columns, strict=True))


def _iso_of(v: Any, kind: type[date] | type[time], name: str) -> str:
    """A date's or a time's ISO text; what is none (DuckDB's driver gives a BC date or 24:00 as text)
    refused naming it, not as a method's complaint."""
    if not isinstance(v, kind):
        raise ValueError(f"{v!r} is no {name}")
    return v.isoformat()


def _iso(v: datetime) -> str:
    return v.isoformat(" ")


def _sqlite_float(value: Any) -> Any:
    """A float as SQLite keeps it: NaN as its text (bound as a REAL, SQLite would store NULL); what is
    no float (text an SQLite source held in a REAL column) as it is."""
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def _sqlite_single(value: Any) -> Any:
    """A 4-byte float as SQLite keeps it (a double): its exact value, which its shortest text, as
    psycopg gives a real, is not (0.1 for the real 0.100000001490116...)."""
    return _sqlite_float(nearest_single(value) if isinstance(value, float) else value)


class SQLiteWriter(ExecuteManyWriter):
    """SQLite keeps decimals exact as text, timestamps as ISO text, UUID and JSON as text, NaN as text."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {
        Kind.FLOAT: _sqlite_single,
        Kind.DOUBLE: _sqlite_float,
        Kind.BOOLEAN: int,
        Kind.DECIMAL: plain_decimal,
        Kind.DATE: lambda v: _iso_of(v, date, "date of the years 1 to 9999"),
        Kind.TIME: lambda v: _iso_of(v, time, "time of day"),
        Kind.TIMESTAMP: _iso,
        Kind.TIMESTAMPTZ: lambda v: v.astimezone(timezone.utc).isoformat(" "),
        Kind.UUID: str,
        Kind.JSON: json_text,
    }
    PREPARES = True  # encode on the reader's thread while SQLite inserts the previous batch
    PARSES_TEXT = True
    MAX_VARIABLES = 999  # SQLite's limit on a statement's parameters before 3.32
    ROWS_PER_INSERT = 50

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        super().__init__(conn, table, columns, types)
        self.per_insert = _rows_per_insert(len(self.columns))
        marks = "(" + ", ".join("?" * len(self.columns)) + ")"
        self.multi_sql = f"INSERT INTO {table} ({self.column_list}) VALUES " + ", ".join(
            [marks] * self.per_insert
        )

    @classmethod
    def prepare(cls, rows: Sequence[Row], types: Sequence[CanonicalType]) -> Any:
        """The encoded rows grouped for multi-row INSERTs: one statement per row costs SQLite a third
        more than one per ``ROWS_PER_INSERT`` rows."""
        return _grouped(list(chain.from_iterable(super().prepare(rows, types))), len(types))

    TEXT_FROM = {  # not floats (real's text is not the value psycopg gives), timestamptz, JSON, bytea
        "postgresql": frozenset(
            {*INTEGER_KINDS, Kind.DECIMAL, Kind.DOUBLE, *STRING_KINDS, Kind.DATE, Kind.TIME, Kind.TIMESTAMP}
            | {Kind.UUID, Kind.BOOLEAN}
        ),
        "mysql": _MYSQL_LINES,
        "mariadb": _MYSQL_LINES,
    }

    @classmethod
    def parse_text(cls, text: bytes, lines: int, kinds: Sequence[Kind]) -> Any:
        """The text parsed into exactly the values ``write`` would bind for the canonical rows (ISO text
        as ``isoformat`` gives it, decimals as plain text), grouped as the multi-row INSERTs take them
        (``_grouped``): no canonical value is made for a value whose text already is that form."""
        return _grouped(_sqlite_binds(text, kinds), len(kinds))

    @classmethod
    def text_batch(cls, lines: int, kinds: Sequence[Kind], parsed: Any) -> TextBatch:
        """The grouped values as the batch; its rows, where asked for, are made from them."""
        width = len(kinds)

        def rows() -> list[Row]:
            groups, rest = parsed
            flat = list(chain.from_iterable(chain(groups, rest)))
            return list(zip(*(flat[i::width] for i in range(width)), strict=True))

        return TextBatch(b"", lines, cls, prepared=tuple(parsed), parse=rows)

    def write(self, rows: Sequence[Row]) -> None:
        prepared = _prepared(rows, type(self))
        if prepared is None:
            prepared = _grouped(
                list(chain.from_iterable(_encode_columns(rows, self.encoders))), len(self.columns)
            )
        groups, rest = prepared
        cursor = self.conn.connection.cursor()
        try:
            with log.timed_sql(self.multi_sql, "executemany"):
                if groups:
                    cursor.executemany(self.multi_sql, groups)
                if rest:
                    cursor.executemany(self.sql, rest)
        finally:
            cursor.close()


def _sqlite_binds(text: bytes, kinds: Sequence[Kind]) -> list[Any]:
    """Every field of the text, row after row, as SQLite is given it: one flat list (its slices are
    the columns, and the parameters of multi-row INSERTs), no list or tuple per row."""
    width = len(kinds)
    flat: list[Any] = text.decode("utf-8").replace("\t", "\n").split("\n")  # (raw tabs and newlines
    flat.pop()  # only end fields and lines in COPY text)
    for i, kind in enumerate(kinds):
        values = flat[i::width]
        joined = "".join(values)
        if "\\" in joined:  # NULLs or escapes
            if joined.count("\\") == values.count("\\N"):  # NULLs alone (an escape is one more "\\")
                values = [None if v == "\\N" else v for v in values]
            else:
                values = [copy_field(v) if "\\" in v else v for v in values]
        flat[i::width] = _sqlite_bind_column(values, kind)
    return flat


_ISO_FRACTION = {Kind.TIME: 8, Kind.TIMESTAMP: 19}  # where the fraction starts
_INT_MAX = 2**63 - 1  # (SQLite's greatest integer)
_BOOLEAN_TEXT = {"t": 1, "f": 0}


def _sqlite_bind_column(values: list[Any], kind: Kind) -> list[Any]:
    """One column of COPY text fields (None for NULL) as SQLiteWriter binds the canonical values."""
    convert: Callable[[Any], Any] | None = None
    if kind in INTEGER_KINDS:
        # the int the canonical rows hold (and Arrow's path binds: arrowtext.load_table): its text would
        # be the same integer in a column of INTEGER, NUMERIC or REAL affinity, but text in one of none.
        # Past SQLite's 64 bits the text as it is (such an int would not bind)
        present = [int(v) for v in values if v is not None]
        if present and (max(present) > _INT_MAX or min(present) < -_INT_MAX - 1):
            return values
        if len(present) == len(values):
            return present
        found = iter(present)
        return [None if v is None else next(found) for v in values]
    if kind is Kind.DOUBLE:
        if "NaN" in values:  # (COPY text's NaN; else the fast way)
            return [v if v is None else _sqlite_float(float(v)) for v in values]
        convert = float
    elif kind is Kind.BOOLEAN:
        convert = _BOOLEAN_TEXT.__getitem__
    elif kind is Kind.CHAR:
        return [v if v is None else v.rstrip(" ") for v in values]
    elif kind in _ISO_SHAPES:
        if not _all_iso(values, kind):
            encode = SQLiteWriter.ENCODERS[kind]
            try:
                return [v if v is None else encode(decode_value(kind, v)) for v in values]
            except DECODE_ERRORS as exc:  # ('0045-03-15 BC': the chunk goes as values, the row rejected)
                raise NotText(str(exc)) from None
        start = _ISO_FRACTION.get(kind)
        if start is None:
            return values
        # isoformat: no fraction for whole seconds, else six digits (PostgreSQL trims zeros, MySQL pads)
        full = start + 7
        if ".000000\n" in "\n".join(filter(None, values)) + "\n":
            values = [v if v is None or not v.endswith(".000000") else v[:start] for v in values]
        # (most values are already whole or full: one len() each, no method call)
        return [v if v is None or (n := len(v)) == full or n == start else v.ljust(full, "0") for v in values]
    else:
        return values  # decimals (plain text), strings, UUID: their text is what is bound
    if None in values:
        return [v if v is None else convert(v) for v in values]
    return list(map(convert, values))


def _rows_per_insert(columns: int) -> int:
    return max(1, min(SQLiteWriter.ROWS_PER_INSERT, SQLiteWriter.MAX_VARIABLES // max(columns, 1)))


def _grouped(flat: list[Any], width: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Values of rows of ``width`` columns, row after row, as the parameters of the multi-row INSERTs
    and of the single-row INSERTs of the rows left over."""
    per = _rows_per_insert(width) * width
    whole = len(flat) - len(flat) % per
    return [flat[i : i + per] for i in range(0, whole, per)], [
        flat[i : i + width] for i in range(whole, len(flat), width)
    ]


def _duckdb_bc(v: Any) -> Any:
    """A day before Christ in DuckDB's spelling: PostgreSQL's text '0045-03-15 12:00:00+00 BC' (no
    Python date holds it) as '0045-03-15 (BC) 12:00:00+00', which DuckDB reads (it refused the other)."""
    if not isinstance(v, str) or not v.endswith(" BC"):
        return v
    day, _, rest = v[:-3].partition(" ")
    return f"{day} (BC) {rest}" if rest else f"{day} (BC)"


class DuckDBInsertWriter(ExecuteManyWriter):
    """Parameterised INSERT for DuckDB, which takes most Python values as they are."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {
        Kind.JSON: json_text,
        Kind.DECIMAL: plain_decimal,
        Kind.DATE: _duckdb_bc,
        Kind.TIMESTAMP: _duckdb_bc,
        Kind.TIMESTAMPTZ: _duckdb_bc,
    }


class PostgresTextInsertWriter(ExecuteManyWriter):
    """Parameterised INSERT for PostgreSQL of values it converts itself (``TextBatch.rows``), into
    GENERATED ALWAYS identity columns too, as COPY writes them."""

    BEFORE_VALUES = " OVERRIDING SYSTEM VALUE"


class PostgresInsertWriter(PostgresTextInsertWriter):
    """Parameterised INSERT for PostgreSQL (finds the rows a COPY refused); JSON goes as text."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {Kind.JSON: json_text}


class _AbortedPipelines(logging.Filter):
    """psycopg's executemany runs in a pipeline and, when a row is refused, also logs a warning that
    the pipeline was aborted, or the refusal again ('date/time field value out of range', with its
    CONTEXT): the refusal itself is raised, and copy's row isolation or sync's report handles it, so
    that warning (one per refused batch or row, on stderr where no logging is set up) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("error ignored terminating") and "Pipeline" in message)


logging.getLogger("psycopg").addFilter(_AbortedPipelines())


class MySQLTextInsertWriter(ExecuteManyWriter):
    """INSERT for MySQL/MariaDB of values it converts itself (COPY text's fields, ``TextBatch.rows``). A
    value the server stored altered with only a note (a decimal's digits past the column's scale,
    rounded) fails the batch, as LOAD DATA's warnings do; strict mode refuses the rest."""

    def write(self, rows: Sequence[Row]) -> None:
        super().write(rows)
        _refuse_altered_values(self.conn)


class MySQLInsertWriter(MySQLTextInsertWriter):
    """INSERT for MySQL/MariaDB of canonical values (used to isolate rejected rows)."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {
        Kind.TIMESTAMPTZ: lambda v: v.astimezone(timezone.utc).replace(tzinfo=None),
        Kind.DECIMAL: plain_decimal,
        Kind.UUID: str,
        Kind.JSON: json_text,
    }


def _refuse_altered_values(conn: Connection) -> None:
    """Fail when MySQL's last statement left a warning or note: a value stored altered."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute("SHOW WARNINGS")
        warnings = cursor.fetchall()
    finally:
        cursor.close()
    if warnings:
        first = warnings[0]
        raise ValueError(f"the target would alter a value: {first[2]} (MySQL {first[1]})")


class OracleWriter(ExecuteManyWriter):
    """oracledb's executemany sends the whole batch as array binds in one round trip."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {
        Kind.BOOLEAN: int,
        Kind.UUID: lambda v: v.bytes,
        Kind.JSON: json_text,
        Kind.TIME: lambda v: timedelta(
            hours=v.hour, minutes=v.minute, seconds=v.second, microseconds=v.microsecond
        ),
    }


class SQLServerWriter(ExecuteManyWriter):
    """pyodbc with ``fast_executemany``: parameters go to the server as one array per batch."""

    ENCODERS: ClassVar[dict[Kind, Callable[[Any], Any]]] = {Kind.UUID: str, Kind.JSON: json_text}

    def write(self, rows: Sequence[Row]) -> None:
        cursor: Any = self.conn.connection.cursor()
        if hasattr(cursor, "fast_executemany"):
            cursor.fast_executemany = True
        try:
            with log.timed_sql(self.sql, "mssql"):
                cursor.executemany(
                    self.sql, [_encode(r, self.encoders) for r in rows] if any(self.encoders) else rows
                )
        finally:
            cursor.close()


SQLITE_TEXT = frozenset({*INTEGER_KINDS, Kind.DECIMAL, *STRING_KINDS, Kind.DATE, Kind.TIMESTAMP})
"""The kinds whose SQLite values ``sqlite_text`` turns into COPY / LOAD DATA text (not booleans: SQLite
holds any integer there)."""


_PG_TEXT = frozenset(Kind)
"""The kinds whose text in PostgreSQL's ``COPY TO`` (``Dialect.COPY_TEXT_SETUP``: ISO dates, floats'
shortest exact digits) its ``COPY FROM`` reads as the same value: all of them. A timestamp with a zone
is written in the source session's zone with its offset (to the second, as a zone's local mean time
has it), which names the same instant whatever the target session's zone; its target column has a
zone too (a column without one cannot hold the source's values: ``types.fits``)."""


class PostgresCopyWriter(Writer):
    """``COPY FROM STDIN`` with psycopg's row writer (text format, values adapted in C)."""

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        super().__init__(conn, table, columns, types)
        self.sql = f"COPY {table} ({self.column_list}) FROM STDIN"
        self.json_columns = [i for i, t in enumerate(self.types) if t.kind is Kind.JSON]

    TEXT_FROM = {
        "mysql": _MYSQL_LINES,
        "mariadb": _MYSQL_LINES,
        "sqlite": SQLITE_TEXT,
        "postgresql": _PG_TEXT,
    }

    def write(self, rows: Sequence[Row]) -> None:
        raw = _raw(self.conn)
        cursor = raw.cursor()
        json_columns = self.json_columns
        text = _prepared(rows, type(self))
        if text is not None and raw.info.encoding != "utf-8":
            # (the text is UTF-8 whatever the source: read as the session's LATIN1, 'é' became 'Ã©';
            # till the transaction ends, which psycopg follows for the values it writes itself)
            cursor.execute("SET LOCAL client_encoding = 'UTF8'")
        with log.timed_sql(self.sql, "postgresql"), cursor.copy(self.sql) as copy:
            if text is not None:
                copy.write(text)
                return
            for row in rows:
                copy.write_row(_with_json(row, json_columns) if json_columns else row)


def _with_json(row: Row, columns: Sequence[int]) -> Row:
    values = list(row)
    for i in columns:
        if values[i] is not None:
            values[i] = json_text(values[i])
    return tuple(values)


def _mysql_field(value: Any) -> str:
    """One value in LOAD DATA's default format: tab-separated, backslash-escaped, \\N for NULL."""
    if value is None:
        return "\\N"
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, str):
        return _escaped(value, nul=True)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(" ")
    if isinstance(value, (date, time, UUID)):
        return str(value)
    if isinstance(value, (dict, list)):
        return _escaped(json_text(value), nul=True)
    return _escaped(str(value), nul=True)


def _needs_escape(text: str, nul: bool) -> bool:
    """Whether the text holds a character LOAD DATA's (``nul``) or COPY's text escapes: four or five
    scans for one character each, each a fortieth of a regular expression's one scan for all."""
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text or (nul and "\0" in text)


_NONE = type(None)


def _escaped(text: str, nul: bool) -> str:
    """LOAD DATA's backslash escapes of a string (COPY's without ``nul``: there ``\\0`` would start an
    octal escape); ``str.replace`` scans fast where ``translate`` looks up every character."""
    text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text.replace("\0", "\\0") if nul else text


_SEPARATOR = "\x1e"  # joins a column's strings to escape them at once, where no value holds it

_ESCAPED = ("\\", "\t", "\n", "\r")


def _string_column(values: Sequence[str | None], nulls: bool, nul: bool) -> list[str]:
    """A column of strings (and None) in LOAD DATA's or COPY's text (see ``_mysql_column``). The
    column's strings are joined once and searched for each character to escape (C scans): a few
    values that hold one are found by their position and escaped alone; where many do, the whole
    column is escaped at once (1M strings of which a few thousand need it: a fifth of the time)."""
    strings = [v or "" for v in values] if nulls else cast("list[str]", values)
    plain = [v if v is not None else "\\N" for v in values] if nulls else list(strings)
    joined = _SEPARATOR.join(strings)
    chars = (*_ESCAPED, "\0") if nul else _ESCAPED
    found = _positions(joined, chars, len(values) // 16)
    if found == []:
        return plain
    if joined.count(_SEPARATOR) != len(values) - 1:  # a value holds the separator: value by value
        return ["\\N" if v is None else _escaped(v, nul) if _needs_escape(v, nul) else v for v in values]
    if found is None:  # many: one translation
        parts = _escaped(joined, nul).split(_SEPARATOR)
        return ["\\N" if v is None else p for v, p in zip(values, parts, strict=True)] if nulls else parts
    index, previous = 0, 0
    for at in found:  # (the separators before each position count the values before it)
        index += joined.count(_SEPARATOR, previous, at)
        previous = at
        plain[index] = _escaped(strings[index], nul)
    return plain


def _positions(text: str, chars: Sequence[str], most: int) -> list[int] | None:
    """Where the characters occur in the text, in order; None when there are more than ``most``."""
    found: list[int] = []
    for char in chars:
        at = text.find(char)
        while at >= 0:
            if len(found) >= most:
                return None
            found.append(at)
            at = text.find(char, at + 1)
    return sorted(found)


def _mysql_column(
    values: Sequence[Any], nul_escaped: bool = True, types: set[type] | None = None
) -> list[str]:
    """One column of a batch in LOAD DATA's format: exactly ``_mysql_field`` of each value, with fast
    paths (C-level ``map``, one escape check per column) when every value has the same plain type.
    ``nul_escaped=False``: NUL stays a raw character in strings (text for COPY FROM too, where ``\\0``
    would start an octal escape; PostgreSQL refuses a NUL either way). ``types``: the values' types,
    where the caller has them already."""
    types = set(map(type, values)) if types is None else set(types)
    nulls = _NONE in types
    types.discard(_NONE)
    only = types.pop() if len(types) == 1 else None
    if only is str:
        return _string_column(values, nulls, nul_escaped)
    if only is datetime and not any(v.tzinfo is not None for v in filter(None, values)):
        # naive: isoformat(" ") as _mysql_field (called unbound: str() would look the method up)
        iso = datetime.isoformat
        if nulls:
            return [iso(v, " ") if v is not None else "\\N" for v in values]
        return list(map(iso, values, repeat(" ")))
    if only is int or only is float or only is date or only is Decimal:
        # Decimal: str() is positional unless it has an exponent, then plain_decimal (below)
        text = repr if only is float else str
    else:
        return list(map(_mysql_field, values))
    out = [text(v) if v is not None else "\\N" for v in values] if nulls else list(map(text, values))
    if only is Decimal and "E" in "".join(out):
        return list(map(_mysql_field, values))
    return out


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TIME_SHAPES = [b"00:00:00", *(b"00:00:00." + b"0" * n for n in range(1, 7))]
_ISO_SHAPES = {
    Kind.DATE: frozenset({b"0000-00-00"}),
    Kind.TIME: frozenset(_TIME_SHAPES),
    Kind.TIMESTAMP: frozenset(b"0000-00-00 " + t for t in _TIME_SHAPES),
}
"""ISO dates, times and timestamps (up to six digits of fraction) with every digit made ``0``."""


class NotText(ValueError):
    """A batch of SQLite's values that cannot go as text: its chunk is copied as values."""


class TooManyDecimals(NotText):
    """A decimal holds more decimals than the target column keeps (which it would round them to)."""


def excess_decimals(texts: Sequence[str], scale: int) -> str | None:
    """The first of a column's plain decimal texts (``\\N`` for NULL) with a non-zero digit past
    ``scale`` decimals, found in one regular expression over the column (C), or None."""
    found = re.search(rf"\.[0-9]{{{scale}}}[0-9]*?[1-9]", "\n".join(texts))
    if found is None:
        return None
    start = found.string.rfind("\n", 0, found.start()) + 1
    end = found.string.find("\n", found.end())
    return found.string[start : None if end < 0 else end]


def sqlite_text(rows: Sequence[Row], kinds: Sequence[Kind], scales: Sequence[int | None] = ()) -> bytes:
    """SQLite's rows (its own ints, floats and strings) as lines of COPY text, which LOAD DATA reads
    too: the same values as decoding them to canonical values first would give, without doing so
    where a column's values already have the form of their text (ISO dates and timestamps, decimals
    held as floats that print without an exponent); other columns are decoded (``values``)."""
    columns = []
    for i, kind in enumerate(kinds):
        values = list(map(itemgetter(i), rows))
        texts = _sqlite_column(values, kind)  # (None where a value is no str: a BLOB among them too)
        if texts is None:
            if kind in (Kind.VARCHAR, Kind.CHAR, Kind.TEXT) and any(type(v) is bytes for v in values):
                raise NotText("a BLOB in a text column")  # (refused row by row, as values: no text of it)
            try:
                texts = _mysql_column([decode_value(kind, v) for v in values], nul_escaped=False)
            except DECODE_ERRORS as exc:  # (rejected one by one, as values)
                raise NotText(f"a value its column cannot take ({exc})") from None
        scale = scales[i] if i < len(scales) else None
        if scale is not None:  # (a float into a DECIMAL a ``types:`` override makes: its plain digits)
            floats = kind in (Kind.FLOAT, Kind.DOUBLE)
            checked = (
                [decimal_text(decode_value(kind, v)) for v in values if v is not None] if floats else texts
            )
            if (value := excess_decimals(checked, scale)) is not None:
                raise TooManyDecimals(f"{value} has more decimals than the target keeps ({scale})")
        columns.append(texts)
    return _lines(columns).encode("utf-8") if columns else b""


def _sqlite_column(values: Sequence[Any], kind: Kind) -> list[str] | None:
    present = set(map(type, values))
    types = present - {_NONE}
    if types <= ({int} if kind in INTEGER_KINDS else {str} if kind in (Kind.VARCHAR, Kind.TEXT) else set()):
        return _mysql_column(values, nul_escaped=False, types=present)
    if kind is Kind.CHAR and types <= {str}:
        return _mysql_column([v if v is None else v.rstrip(" ") for v in values], nul_escaped=False)
    if kind is Kind.DECIMAL and types <= {int, float}:
        if types == {float} and None not in values:
            out = list(map(float.__repr__, values))
        else:
            out = ["\\N" if v is None else repr(v) for v in values]  # (an int's repr is its str)
        digits = "".join(out)
        return None if "e" in digits or "n" in digits else out  # an exponent, inf, nan: as Decimal
    if kind in _ISO_SHAPES and types <= {str} and _all_iso(values, kind):
        return ["\\N" if v is None else v for v in values]
    return None


def _all_iso(values: Sequence[str | None], kind: Kind) -> bool:
    """Whether every value (None aside) is an ISO date, time or timestamp: ASCII, one value a line, each
    line one of ``_ISO_SHAPES`` once its digits are made 0, and no zero year, month or day (MySQL's zero
    dates: those are decoded, and refused). All in C over the column's text (a regular expression
    costs twice as much)."""
    present = [v for v in values if v is not None]
    if not present:
        return True
    text = "\n".join(present)
    if not text.isascii():  # (other scripts' digits)
        return False
    data = text.encode("ascii")
    shapes = data.translate(_DIGITS_AS_ZERO).split(b"\n")
    if len(shapes) != len(present) or not _ISO_SHAPES[kind].issuperset(shapes):
        return False
    if kind is Kind.TIME:
        return True
    # the shapes put "-" only around the month and "0000-" only at a line's start
    lined = b"\n" + data + b"\n"
    return not (b"\n0000-" in lined or b"-00-" in lined or b"-00 " in lined or b"-00\n" in lined)


def _lines(columns: Sequence[Sequence[Any]], tab: Any = "\t", newline: Any = "\n") -> Any:
    """Rows of tab-separated fields, each line ended by a newline: the columns interleaved in C
    (text, or bytes with ``tab=b"\\t", newline=b"\\n"``)."""
    args: list[Any] = []
    for column in columns:
        args += (column, repeat(tab))
    args[-1] = repeat(newline)
    return tab[:0].join(chain.from_iterable(zip(*args, strict=False)))  # the repeats never end


def _load_data_payload(rows: Sequence[Row], binary: Sequence[int]) -> bytes:
    """A batch in LOAD DATA's format; ``binary``: the positions of the binary columns."""
    if not binary:
        if not rows:
            return b""
        # column by column (each with one fast path), then rows joined in C
        columns = [_mysql_column(values) for values in zip(*rows, strict=True)]
        return _lines(columns).encode("utf-8")
    parts = []
    for row in rows:
        fields = [
            (b"\\N" if v is None else _mysql_bytes(v)) if i in binary else _mysql_field(v).encode("utf-8")
            for i, v in enumerate(row)
        ]
        parts.append(b"\t".join(fields) + b"\n")
    return b"".join(parts)


def _mysql_bytes(value: bytes) -> bytes:
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\0", b"\\0")
    )


_PIPES = "parity-load-"
_swept = threading.Lock()


def _sweep_pipes() -> None:
    """Remove the pipes' folders of parity processes that are gone (killed: no ``close`` ran), once a
    process: ``parity-load-PID-*`` holding one FIFO, whose PID is no running process."""
    if not _swept.acquire(blocking=False):
        return
    root = tempfile.gettempdir()
    with suppress(OSError):
        for name in os.listdir(root):
            pid, _, rest = name.removeprefix(_PIPES).partition("-")
            if not (name.startswith(_PIPES) and pid.isdigit() and rest) or _running(int(pid)):
                continue
            folder = os.path.join(root, name)
            pipe = os.path.join(folder, "rows.tsv")
            with suppress(OSError):  # (a day old: a PID another container's /tmp shares is not seen here)
                if datetime.now().timestamp() - os.lstat(folder).st_mtime < 86400:
                    continue
                if os.listdir(folder) == ["rows.tsv"] and stat.S_ISFIFO(os.lstat(pipe).st_mode):
                    os.unlink(pipe)
                    os.rmdir(folder)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (another user's)
        return True
    return True


class MySQLLoadDataWriter(Writer):
    """``LOAD DATA LOCAL INFILE`` fed through a named pipe, one statement per batch.

    With LOCAL, MySQL turns data errors into warnings; any warning makes the batch fail so that the
    copy engine can isolate the rows the target cannot hold instead of storing altered values.
    """

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        super().__init__(conn, table, columns, types)
        _sweep_pipes()
        self.folder = tempfile.mkdtemp(prefix=f"{_PIPES}{os.getpid()}-")
        self.pipe = os.path.join(self.folder, "rows.tsv")
        os.mkfifo(self.pipe, 0o600)
        literal = _raw(conn).escape(self.pipe)
        self.sql = (
            f"LOAD DATA LOCAL INFILE {literal} INTO TABLE {table} CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({self.column_list})"
        )
        self.json_kinds = {i for i, t in enumerate(self.types) if t.kind is Kind.JSON}
        self.binary = [i for i, t in enumerate(self.types) if t.kind is Kind.BINARY]

    def _encode(self, rows: Sequence[Row]) -> bytes:
        return _load_data_payload(rows, self.binary)

    @classmethod
    def parse_text(cls, text: bytes, lines: int, kinds: Sequence[Kind]) -> bytes:
        """LOAD DATA reads ``\\f`` and ``\\v`` as letters: those two escapes become the raw characters
        (every other escape of COPY text means the same to both)."""
        if b"\\f" in text or b"\\v" in text:
            text = _FORM_FEED_OR_VTAB.sub(lambda m: _LOAD_DATA_FORM[m.group(0)], text)
        return text

    TEXT_FROM = {  # not booleans (t/f), bytea (hex), JSON (jsonb's spacing), timestamptz (an offset follows)
        "mysql": _MYSQL_LINES,
        "mariadb": _MYSQL_LINES,
        "sqlite": SQLITE_TEXT,
        "postgresql": frozenset(
            {
                *INTEGER_KINDS,
                Kind.DECIMAL,
                Kind.FLOAT,
                Kind.DOUBLE,
                Kind.VARCHAR,
                Kind.CHAR,
                Kind.TEXT,
                Kind.DATE,
                Kind.TIME,
                Kind.TIMESTAMP,
                Kind.UUID,
            }
        ),
    }

    PREPARES = True

    @classmethod
    def prepare(cls, rows: Sequence[Row], types: Sequence[CanonicalType]) -> bytes:
        """The payload, encoded on the reader's thread while the writer's LOAD DATA runs."""
        return _load_data_payload(rows, [i for i, t in enumerate(types) if t.kind is Kind.BINARY])

    def write(self, rows: Sequence[Row]) -> None:
        prepared = _prepared(rows, type(self))
        payload = prepared if prepared is not None else self._encode(rows)
        failure: list[BaseException] = []

        def feed() -> None:
            try:
                with open(self.pipe, "wb") as pipe:
                    pipe.write(payload)
            except BaseException as exc:  # surfaced after the statement returns
                failure.append(exc)

        feeder = threading.Thread(target=feed, name="parity-load-feed", daemon=True)
        feeder.start()
        cursor = _raw(self.conn).cursor()
        try:
            with log.timed_sql(self.sql, "mysql"):
                cursor.execute(self.sql)
            warnings = (
                cursor.connection.show_warnings() if cursor._result and cursor._result.warning_count else ()
            )
        finally:
            if feeder.is_alive():  # the statement failed before it opened the pipe: release the feeder
                with suppress(OSError):
                    os.close(os.open(self.pipe, os.O_RDONLY | os.O_NONBLOCK))  # (its write then fails)
            feeder.join(timeout=60)
            cursor.close()
        if failure:
            raise failure[0]
        if warnings:
            first = warnings[0]
            raise ValueError(f"the target would alter a value: {first[2]} (MySQL {first[1]})")

    def close(self) -> None:
        try:
            os.unlink(self.pipe)
            os.rmdir(self.folder)
        except OSError:
            pass


class DuckDBArrowWriter(Writer):
    """An Arrow table built from the batch, registered on the connection and inserted with SQL."""

    def __init__(
        self, conn: Connection, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
    ) -> None:
        import pyarrow as pa

        super().__init__(conn, table, columns, types)
        self.pa = pa
        self.schema = pa.schema([pa.field(f"c{i}", _arrow_type(pa, t)) for i, t in enumerate(self.types)])
        self.view = f"parity_batch_{id(self)}"
        selects = ", ".join(f"c{i}" for i in range(len(self.types)))
        self.sql = f"INSERT INTO {table} ({self.column_list}) SELECT {selects} FROM {self.view}"

    def write(self, rows: Sequence[Row]) -> None:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.types]
        try:
            arrays = [
                self._array(values, t, i)
                for i, (values, t) in enumerate(zip(columns, self.types, strict=True))
            ]
        except (self.pa.ArrowException, TypeError, ValueError, OverflowError):
            # a value Arrow cannot hold as the column's type (PostgreSQL's infinity comes as its text,
            # which DuckDB reads): the batch goes as parameters, which DuckDB converts itself
            DuckDBInsertWriter(self.conn, self.table, self.columns, self.types).write(rows)
            return
        batch = self.pa.Table.from_arrays(arrays, schema=self.schema)
        raw = _raw(self.conn)
        raw.register(self.view, batch)
        try:
            with log.timed_sql(self.sql, "duckdb"):
                raw.execute(self.sql)
        finally:
            with suppress(Exception):  # (in a transaction the refusal aborted: the refusal is the error)
                raw.unregister(self.view)

    def _array(self, values: Sequence[Any], ctype: CanonicalType, index: int) -> Any:
        if ctype.kind is Kind.UUID:
            values = [None if v is None else str(v) for v in values]
        elif ctype.kind is Kind.JSON:
            values = [None if v is None else json_text(v) for v in values]
        elif ctype.kind is Kind.DECIMAL:
            values = [None if v is None else plain_decimal(v) for v in values]
        return self.pa.array(values, type=self.schema.field(index).type)


def _arrow_type(pa: Any, ctype: CanonicalType) -> Any:
    mapping = {
        Kind.BOOLEAN: pa.bool_(),
        Kind.SMALLINT: pa.int16(),
        Kind.INTEGER: pa.int32(),
        Kind.BIGINT: pa.int64(),
        Kind.FLOAT: pa.float32(),
        Kind.DOUBLE: pa.float64(),
        Kind.DATE: pa.date32(),
        Kind.TIME: pa.time64("us"),
        Kind.TIMESTAMP: pa.timestamp("us"),
        Kind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        Kind.BINARY: pa.binary(),
    }
    return mapping.get(ctype.kind, pa.string())


TEXT_ROW_WRITERS: dict[str, type[ExecuteManyWriter]] = {
    "postgresql": PostgresTextInsertWriter,
    "mysql": MySQLTextInsertWriter,
    "mariadb": MySQLTextInsertWriter,
}
"""Per target backend, the INSERT writer of ``TextBatch.rows`` (strings the target converts itself);
others take ``ExecuteManyWriter``."""

WRITERS: dict[str, type[Writer]] = {
    "copy": PostgresCopyWriter,
    "load_data": MySQLLoadDataWriter,
    "arrow": DuckDBArrowWriter,
    "sqlite": SQLiteWriter,
    "mysql_insert": MySQLInsertWriter,
    "duckdb_insert": DuckDBInsertWriter,
    "postgresql_insert": PostgresInsertWriter,
    "oracle": OracleWriter,
    "mssql": SQLServerWriter,
    "executemany": ExecuteManyWriter,
}
