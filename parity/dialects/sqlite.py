"""SQLite: types are declarations, so parity reads the declared type itself rather than the affinity."""

from __future__ import annotations

import bisect
import contextlib
import decimal
import functools
import hashlib
import math
import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import TINY, Dialect, inspector
from parity.schema.model import Table
from parity.schema.types import INTEGER_KINDS, CanonicalType, Kind
from parity.values import BOOLEAN_TEXT, UUID_SPELLINGS, decode_value, jsonb_text, nearest_single

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


NUMERIC_DATES = ("julianday", "unixepoch", "unixepoch_ms")
"""How an SQLite file may hold dates and times as numbers (SQLite's date functions read the first two):
days since noon of 24 November 4714 BC, seconds since 1970-01-01 00:00:00 UTC, or milliseconds since
then (as Prisma writes its DateTime fields)."""

_MOMENTS = (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


class SQLite(Dialect):
    ANALYZE = "ANALYZE {table}"
    TABLE_NAMES_IGNORE_CASE = True
    COLUMN_NAMES_IGNORE_CASE = True
    names = ("sqlite",)
    schemes = {"sqlite": "sqlite"}

    FK_CHECKS = ("PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys=OFF")
    # (SQLite checks no FK unless a connection asks, and parity's never do: after a block with checks
    # off, a pooled connection is left as it was found; "ON" there made the tables copied after it
    # refuse rows whose parents a --where left out, which SQLite otherwise keeps: the audit)
    WRITER = "sqlite"
    KEY_TABLE = (
        "DROP TABLE IF EXISTS temp.{table}",
        "CREATE TEMP TABLE {table} AS SELECT 0 AS n, {keys} FROM {source} LIMIT 0",
    )
    KEY_TABLE_IN_SCHEMA = False  # (temp: the connection's own, found first by an unqualified name)
    ROW_WRITER = "sqlite"
    PARALLEL_CHUNKS = False
    ANY_VALUE_ANYWHERE = True
    INTEGER_BOOLEANS = True
    NATIVE_KINDS = frozenset(
        {
            Kind.SMALLINT,
            Kind.INTEGER,
            Kind.BIGINT,
            Kind.FLOAT,
            Kind.DOUBLE,
            Kind.VARCHAR,
            Kind.TEXT,
            Kind.BINARY,
        }
    )

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.INTEGER: "INT4",  # (SQLite reads INTEGER and INT as 64-bit: see declared_type)
        Kind.FLOAT: "FLOAT",
        Kind.DOUBLE: "DOUBLE",
        Kind.TIMESTAMPTZ: "TIMESTAMPTZ",
        Kind.JSON: "JSON_TEXT",  # TEXT affinity: a column declared JSON has NUMERIC's, which made a JSON
    }  # number a REAL (15 digits) and JSON text '1.0' the number 1.0
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {Kind.FLOAT: CanonicalType(Kind.DOUBLE)}
    UUID_AS_TEXT = True
    MAX_DECIMAL_PRECISION = 1000
    MAX_DECIMAL_SCALE = 1000
    MAX_CHAR = 1_000_000
    ALTER_ADD_FOREIGN_KEY = False
    INLINE_FK_NEEDS_TARGET = False
    HAS_IDENTITY = True

    _DECLARED = re.compile(r"^\s*([A-Z_ ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

    EXACT_NUMERIC_DIGITS = 15
    """SQLite's NUMERIC affinity keeps 15 significant digits; wider decimals are declared with TEXT
    affinity (``DECIMAL_TEXT(p,s)``) so that their values stay exact."""

    BOOLEAN_LITERALS = ("1", "0")

    def _decimal(self, ctype: CanonicalType) -> tuple[str, str | None]:
        if ctype.precision is None:
            return "DECIMAL_TEXT", None
        if ctype.precision > self.EXACT_NUMERIC_DIGITS:
            return f"DECIMAL_TEXT({ctype.precision},{ctype.scale or 0})", None
        return super()._decimal(ctype)

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        declared = self._declared_types(conn, table, schema).get(column["name"], "")
        return declared_type(declared)

    def wider_than_declared(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> bool:
        declared = self._declared_types(conn, table, schema).get(column["name"], "")
        match = self._DECLARED.match(declared)
        return (match.group(1).strip() if match else declared) in _SIXTY_FOUR_BIT

    def _declared_types(self, conn: Connection, table: str, schema: str | None) -> dict[str, str]:
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""
        rows = conn.exec_driver_sql(f"PRAGMA {prefix}table_xinfo({quote(table)})").all()
        return {row[1]: (row[2] or "").upper() for row in rows}

    def _create_sql(self, conn: Connection, table: str, schema: str | None) -> str:
        quote = conn.dialect.identifier_preparer.quote
        master = f"{quote(schema)}.sqlite_master" if schema else "sqlite_master"
        query = sa.text(f"SELECT sql FROM {master} WHERE type = 'table' AND name = :name COLLATE NOCASE")
        return conn.execute(query, {"name": table}).scalar() or ""

    def primary_key_nulls(
        self, conn: Connection, table: str, schema: str | None, primary_key: tuple[str, ...]
    ) -> tuple[str, ...]:
        """SQLite keeps NULL in a primary key's columns not declared NOT NULL (a bug it keeps for old
        files), except in the rowid's alias and in a WITHOUT ROWID or STRICT table."""
        if not primary_key:
            return ()
        if re.search(
            r"\b(without\s+rowid|strict)\b", self._create_sql(conn, table, schema).rsplit(")", 1)[-1], re.I
        ):
            return ()
        return () if self._rowid_alias(conn, table, schema, primary_key) else primary_key

    def _rowid_alias(
        self, conn: Connection, table: str, schema: str | None, primary_key: tuple[str, ...]
    ) -> str | None:
        """The column that is the rowid: a lone ``INTEGER PRIMARY KEY`` (not ``INTEGER PRIMARY KEY DESC``,
        a quirk SQLite keeps) of a table with a rowid; None where there is none."""
        if (
            len(primary_key) != 1
            or self._declared_types(conn, table, schema).get(primary_key[0]) != "INTEGER"
        ):
            return None
        sql = self._create_sql(conn, table, schema)
        if re.search(r"\bwithout\s+rowid\b", sql.rsplit(")", 1)[-1], re.IGNORECASE):
            return None
        return None if re.search(r"\bprimary\s+key\s+desc\b", sql, re.IGNORECASE) else primary_key[0]

    LENIENT_KINDS = (Kind.VARCHAR, Kind.CHAR, Kind.TEXT)

    def read_leniently(self, x: Any, kind: Kind) -> Any:
        if kind not in self.LENIENT_KINDS:
            return self.read_exactly(x, kind)
        return sa.cast(x, sa.LargeBinary()).label(x.name)  # (text that is no UTF-8: its row rejected)

    def read_refused(self, exc: BaseException) -> bool:
        return _NOT_UTF8 in str(exc)

    def not_text(self, columns: Sequence[Any]) -> sa.ColumnElement[bool] | None:
        """A number or a BLOB in one of the columns (ADBC gives them as text: a REAL as SQLite spells
        it, to 15 digits). SQLite orders NULL, numbers, text, BLOBs: a value under '' is a number, one
        from x'' up a BLOB (two comparisons a value cost half of typeof(): 1M rows, 0.14 s a column)."""
        empty_text = sa.bindparam("parity_no_text", "", type_=sa.String())
        empty_blob = sa.bindparam("parity_no_blob", b"", type_=sa.LargeBinary())
        return sa.or_(
            *(
                sa.or_(
                    sa.type_coerce(c, sa.String()) < empty_text,
                    sa.type_coerce(c, sa.LargeBinary()) >= empty_blob,
                )
                for c in columns
            )
        )

    def primary_key(self, conn: Connection, table: str, schema: str | None) -> tuple[str, ...]:
        """From the table's PRAGMA, which takes its name in any case, as SQLite does (SQLAlchemy's
        reflection does not: 'K' for the table 'k' raised NoSuchTableError)."""
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""  # (pk: the column's place in the key)
        rows = conn.exec_driver_sql(f"PRAGMA {prefix}table_xinfo({quote(table)})").all()
        return tuple(row[1] for row in sorted((r for r in rows if r[5]), key=lambda r: r[5]))

    def numbers_nulls(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        key = self.primary_key(conn, table, target.schema)
        alias = self._rowid_alias(conn, table, target.schema, key)
        return set() if alias is None else {alias}

    def columns(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        columns = super().columns(conn, table, schema)
        alias = self._rowid_alias(conn, table, schema, self.primary_key(conn, table, schema))
        return [{**c, "rowid": c["name"] == alias} for c in columns]

    def savepoint(self, conn: Connection) -> Any:
        """Python's sqlite3 begins a transaction only before an INSERT, UPDATE or DELETE: a SAVEPOINT
        before that begins one of SQLite's own, which its RELEASE commits (a chunk's batches would each
        be committed, and a chunk rolled back would leave them). The transaction is begun first."""
        raw = conn.connection.driver_connection
        if isinstance(raw, sqlite3.Connection) and not raw.in_transaction:
            raw.execute("BEGIN")
        return conn.begin_nested()

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        """The rowid's alias (``columns``): ``INT PRIMARY KEY`` is none, though SQLAlchemy calls it INTEGER."""
        return bool(column.get("rowid"))

    def fraction_digits(self, sa_type: Any) -> int | None:
        return None  # (a declaration only: the values are text, or numbers, of any precision)

    numeric_dates: str | None = None
    """How a number in a DATE, DATETIME or TIMESTAMP column is read (the URL's ``?numeric_dates=``,
    one of ``NUMERIC_DATES``); None: a number there is no date (copy rejects its row)."""

    def moment(self, x: Any) -> Any:
        """``x``, or where it holds a number and ``numeric_dates`` says how to read one, the ISO text of
        that moment (to the millisecond, as SQLite's strftime writes it); a number out of SQLite's range,
        or a Unix time with a part of a millisecond (which strftime would round), stays itself, to be
        refused with its reason. (Julian days, fractions of a day, are read to the millisecond, as
        SQLite's date functions read them.)"""
        if self.numeric_dates is None:
            return x
        number = sa.type_coerce(x, sa.Float())
        fmt = sa.literal("%Y-%m-%d %H:%M:%f", sa.String())
        epoch = sa.literal("unixepoch", sa.String())
        milliseconds = {"unixepoch": number * sa.literal(1000.0, sa.Float()), "unixepoch_ms": number}
        text = {
            "julianday": lambda: sa.func.strftime(fmt, number),
            "unixepoch": lambda: sa.func.strftime(fmt, number, epoch),
            "unixepoch_ms": lambda: sa.func.strftime(fmt, number / sa.literal(1000.0, sa.Float()), epoch),
        }[self.numeric_dates]()
        held: list[Any] = [sa.func.typeof(x).in_([sa.literal("integer"), sa.literal("real")])]
        if self.numeric_dates in milliseconds:  # (a double's error is far below a microsecond here)
            ms = milliseconds[self.numeric_dates]
            whole = sa.func.abs(ms - sa.func.round(ms)) < sa.literal(0.001, sa.Float())
            held.append(sa.or_(sa.func.typeof(x) == sa.literal("integer"), whole))
        return sa.case((sa.and_(*held), sa.func.coalesce(text, x)), else_=x)

    def read_value(self, x: Any, kind: Kind) -> Any:
        return self.moment(x) if kind in _MOMENTS else x

    def readable(self, table: Table, schema: str | None) -> Any:
        """With ``numeric_dates``, a subquery named as the table whose dates are their moments: a
        condition (``--where``) compares them as dates (SQLite takes any number for less than any
        text: a month's rows were none of them, and sync --delete would delete the target's)."""
        raw = super().readable(table, schema)
        if self.numeric_dates is None or not any(c.type.kind in _MOMENTS for c in table.columns):
            return raw
        columns = [self.read_value(raw.c[c.name], c.type.kind).label(c.name) for c in table.columns]
        return sa.select(*columns).subquery(table.name)

    def since_value(self, x: Any, kind: Kind) -> Any:
        """A time held as text ordered as its moment: '2024-05-01T12:30' after '2024-05-01 12:00' (as
        text, 'T' sorts after ' ', and a column holding both spellings hid rows from --since)."""
        if kind not in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
            return x
        return sa.case((sa.func.typeof(x) == "text", sa.func.replace(x, "T", " ")), else_=x)

    def int_div(self, a: Any, b: Any) -> sa.ColumnElement[Any]:
        """Whole buckets of a key that holds a REAL too (2.5 in an INT column: its bucket was 1.5,
        which no bucket of the level is, and --stats counted the row nowhere)."""
        return sa.cast(a.op("/", precedence=8)(b), sa.Integer())

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        if kind not in (Kind.VARCHAR, Kind.TEXT, Kind.CHAR):
            return column == value
        return sa.and_(column == value, sa.collate(column, "BINARY") == value)  # (a NOCASE column)

    def text_decoder(self, kind: Kind) -> Callable[[Any], Any] | None:
        # (a column of no declared type is text to parity, and holds the numbers it was given as numbers)
        return _number_as_text if kind in (Kind.TEXT, Kind.VARCHAR, Kind.CHAR) else None

    INDEXES_AGAIN = True

    def index_there(self, error: BaseException) -> bool:
        return str(error).startswith("index ") and str(error).endswith(" already exists")

    def table_notes(self, conn: Connection, table: str, schema: str | None) -> list[str]:
        prefix = f"{conn.dialect.identifier_preparer.quote(schema)}." if schema else ""
        rows = conn.exec_driver_sql(f"SELECT sql FROM {prefix}sqlite_master WHERE tbl_name = ?", (table,))
        texts = [str(sql) for (sql,) in rows if sql]
        found = sorted({m.group(1).upper() for t in texts for m in _COLLATE.finditer(t)} - {"BINARY"})
        return [
            f"{table}: COLLATE {c} is not carried over: in the target its text compares, sorts and is held"
            " unique as written (a unique key may take 'a' beside 'A')"
            for c in found
        ]

    def key_spellings(self, kind: Kind) -> Callable[[Any], list[str]] | None:
        spellings = {
            Kind.DATE: _day_spellings,
            Kind.TIMESTAMP: _moment_spellings,
            Kind.TIMESTAMPTZ: _zoned_spellings,
        }
        return spellings.get(kind)

    def key_loosely(self, column: Any, kind: Kind, value: Any) -> sa.ColumnElement[Any] | None:
        # held in a spelling of its own ('Z', an offset, '.5', no seconds): its text starts with its day,
        # or the day before or after where an offset moves it (an index serves the range), and its
        # canonical text (as diff hashes it: ``partition_value``) is the value's
        if kind not in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ) or isinstance(value, str):
            return None
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        day = value.date() if isinstance(value, datetime) else value
        conditions = [self.partition_value(column, kind) == sa.literal(_bound_text(value, kind), sa.String())]
        with contextlib.suppress(OverflowError):
            conditions.append(column >= sa.literal((day - timedelta(days=1)).isoformat(), sa.String()))
        with contextlib.suppress(OverflowError):
            conditions.append(column < sa.literal((day + timedelta(days=2)).isoformat(), sa.String()))
        return sa.and_(*conditions)

    def foreign_keys(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's, with the actions SQLite's PRAGMA gives: SQLAlchemy reads them from the table's
        SQL, and of an FK written on its column (``p_id INTEGER REFERENCES p(id) ON DELETE CASCADE``)
        it gave none, so the copy's FK neither cascaded nor set NULL."""
        found = super().foreign_keys(conn, table, schema)
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""
        rows = conn.exec_driver_sql(f"PRAGMA {prefix}foreign_key_list({quote(table)})").all()
        actions: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
        for fk_id in sorted({r[0] for r in rows}):
            parts = sorted((r for r in rows if r[0] == fk_id), key=lambda r: r[1])
            actions[(parts[0][2].lower(), tuple(r[3].lower() for r in parts))] = (parts[0][6], parts[0][5])
        for fk in found:
            key = (fk["referred_table"].lower(), tuple(c.lower() for c in fk["constrained_columns"]))
            on_delete, on_update = actions.get(key, ("NO ACTION", "NO ACTION"))
            options = dict(fk.get("options") or {})
            for name, action in (("ondelete", on_delete), ("onupdate", on_update)):
                if action and action.upper() != "NO ACTION":
                    options.setdefault(name, action.upper())
            fk["options"] = options
        return found

    def indexes(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's indexes, with the columns each holds in descending order, which SQLAlchemy does
        not reflect from SQLite."""
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""
        found = super().indexes(conn, table, schema)
        for ix in found:
            if ix.get("name") and all(ix.get("column_names") or [None]):
                info = conn.exec_driver_sql(f"PRAGMA {prefix}index_xinfo({quote(ix['name'])})").all()
                descending = {r[2]: ("desc",) for r in info if r[5] and r[3] and r[2] is not None}
                if descending:
                    ix["column_sorting"] = descending
        return found

    def unique_constraints(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """Column-level UNIQUE lives only in SQLite's automatic indexes, which SQLAlchemy leaves out."""
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""
        out: dict[tuple[str, ...], str | None] = {
            cols: name for name, cols in super().unique_constraints(conn, table, schema)
        }
        for row in conn.exec_driver_sql(f"PRAGMA {prefix}index_list({quote(table)})").all():
            if row[3] == "u":
                info = conn.exec_driver_sql(f"PRAGMA {prefix}index_info({quote(row[1])})").all()
                cols = tuple(r[2] for r in sorted(info))
                out.setdefault(cols, None)
        return [(name, cols) for cols, name in out.items()]

    def table_names(self, conn: Connection, schema: str | None) -> list[str]:
        return [n for n in inspector(conn).get_table_names(schema=schema) if not n.startswith("sqlite_")]

    # ---- diff ----------------------------------------------------------------------------------------
    # SQLite has no SHA-256, and keeps decimals, times and UUIDs as whatever was inserted (text or numbers),
    # so diff registers deterministic Python functions (DIFF_FUNCTIONS, below) on each connection and
    # renders those kinds through them.

    PYTHON_FUNCTIONS = True

    def prepare_connection(self, conn: Connection) -> None:
        record = conn.connection
        if not record.info.get("parity_diff_functions"):
            raw: Any = record.driver_connection
            register_diff_functions(raw)
            raw.text_factory = _text_or_bytes
            encoding = raw.execute("PRAGMA encoding").fetchone()[0]
            if encoding != "UTF-8":  # (hash60 is given the text's bytes, which are the file's encoding)
                codec = {"UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}.get(encoding, "utf-16")
                raw.create_function(
                    "parity_hash60", 1, functools.partial(_hash60_of, codec), deterministic=True
                )
            record.info["parity_diff_functions"] = True

    def text_length(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.length(sa.cast(x, sa.LargeBinary()))  # bytes of the UTF-8 text

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        return sa.func.parity_decimal(x, -1 if scale is None else scale)

    def text_float(self, x: Any, digits: int) -> sa.ColumnElement[Any]:
        return sa.func.parity_float(x, digits)

    def text_double(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.parity_double(x)

    def as_single(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.parity_single(x)

    def text_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        # (a boolean held as text, as old Rails wrote them: 't' and 'f' ... read as copy reads them)
        spelled = sa.func.lower(sa.func.trim(x))
        texts = {
            value: [sa.literal(t) for t, v in BOOLEAN_TEXT.items() if v is value] for value in (True, False)
        }
        held_as_text = sa.func.typeof(x) == sa.literal("text")
        return sa.case(
            (sa.and_(held_as_text, spelled.in_(texts[True])), sa.literal("1")),
            (sa.and_(held_as_text, spelled.in_(texts[False])), sa.literal("0")),
            else_=self.text_integer_boolean(x),
        )

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        # (a date with a time of day other than midnight, or text no date, as its own text)
        x = self.moment(x)
        return sa.case((sa.func.julianday(x) == sa.func.julianday(sa.func.date(x)), sa.func.date(x)), else_=x)

    def text_time(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.parity_time(x)

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.func.parity_timestamp(self.moment(x), int(with_zone))

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.func.parity_epoch(self.moment(x), int(with_zone))

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.case((x.is_not(None), super().text_binary(x)))  # hex(NULL) is '', not NULL

    def text_uuid(self, x: Any, native_string: bool) -> sa.ColumnElement[Any]:
        return sa.func.parity_uuid(x)

    JSON_HASHED_AS_JSONB = True
    ROUNDS_DECIMALS = False

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.parity_json(x)

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        # (its bytes: text that is no UTF-8, which SQLite keeps, could not be passed to Python as text)
        return sa.func.parity_hash60(sa.cast(text, sa.LargeBinary()))

    def hash_sum(self, h: Any) -> sa.ColumnElement[Any]:
        return sa.func.parity_sum(h)

    def period_slack(self, kind: Kind) -> timedelta:
        # (text with an offset of up to a day sorts by its local time; a day's text by its separator)
        return timedelta(0) if kind is Kind.DATE else timedelta(days=1)

    def partition_value(self, x: Any, kind: Kind) -> sa.ColumnElement[Any]:
        # stored text varies ('T' or ' ', with or without fractions): compare canonical text
        return self.text_date(x) if kind is Kind.DATE else self.text_timestamp(x, kind is Kind.TIMESTAMPTZ)

    def partition_bound(self, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        return sa.literal(_bound_text(value, kind))

    def partition_window(
        self, value: Any, bounds: Sequence[Any], indices: Sequence[int], kind: Kind
    ) -> sa.ColumnElement[Any] | None:
        # (a CASE would call parity_timestamp() once per comparison: several times a row)
        texts = "\n".join(_bound_text(b, kind) for b in bounds)
        return sa.func.parity_window(value, texts, ",".join(map(str, indices)))


_SIXTY_FOUR_BIT = ("INTEGER", "INT")
"""Declared integer names that SQLite's users take for 64-bit (a rowid is one): read as bigint."""

_SIMPLE = {
    "BOOLEAN": Kind.BOOLEAN,
    "BOOL": Kind.BOOLEAN,
    **dict.fromkeys(_SIXTY_FOUR_BIT, Kind.BIGINT),  # (a 32-bit column elsewhere would refuse their values)
    "BIGINT": Kind.BIGINT,
    "INT8": Kind.BIGINT,
    "INT4": Kind.INTEGER,
    "MEDIUMINT": Kind.INTEGER,
    "SMALLINT": Kind.SMALLINT,
    "INT2": Kind.SMALLINT,
    "TINYINT": Kind.SMALLINT,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "DATETIME": Kind.TIMESTAMP,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMPTZ": Kind.TIMESTAMPTZ,
    "TIMESTAMP WITH TIME ZONE": Kind.TIMESTAMPTZ,
    "UUID": Kind.UUID,
    "GUID": Kind.UUID,
    "JSON": Kind.JSON,
    "JSON_TEXT": Kind.JSON,
    "JSONB": Kind.JSON,
    "BLOB": Kind.BINARY,
    "BYTEA": Kind.BINARY,
    "FLOAT": Kind.DOUBLE,
    "REAL": Kind.DOUBLE,
    "DOUBLE": Kind.DOUBLE,
    "DOUBLE PRECISION": Kind.DOUBLE,
}


def _text_or_bytes(raw: bytes) -> str | bytes:
    """SQLite's text as Python's, or its bytes where they are no UTF-8 (diff then reports the row)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


_NOT_UTF8 = "Could not decode to UTF-8"
"""Python's sqlite3 reading text that is no UTF-8 (SQLite stores whatever bytes it is given)."""


def declared_type(declared: str) -> CanonicalType:
    """Map an SQLite declared type to canonical, following SQLite's own affinity rules as the fallback."""
    match = SQLite._DECLARED.match(declared.upper())
    name = match.group(1).strip() if match else declared.upper()
    first = int(match.group(2)) if match and match.group(2) else None
    second = int(match.group(3)) if match and match.group(3) else None
    if name in _SIMPLE:
        return CanonicalType(_SIMPLE[name])
    if name in ("DECIMAL", "NUMERIC", "NUMBER", "DECIMAL_TEXT"):
        if first is None:
            return CanonicalType(Kind.DECIMAL)
        return CanonicalType(Kind.DECIMAL, precision=first, scale=second or 0)
    if "INT" in name:  # (another spelling: 'UNSIGNED BIG INT', 'INT64', 'INT UNSIGNED', 'BIGINT UNSIGNED')
        plain = name.replace("UNSIGNED", "").strip()
        kind = _SIMPLE.get(plain, Kind.BIGINT)
        if "UNSIGNED" in name:  # one size up, as MySQL's (SQLite holds at most a signed 64-bit value)
            kind = {Kind.SMALLINT: Kind.INTEGER, Kind.INTEGER: Kind.BIGINT}.get(kind, Kind.BIGINT)
        return CanonicalType(kind if kind in INTEGER_KINDS else Kind.BIGINT)
    if "BINARY" in name or "BYTES" in name:
        return CanonicalType(Kind.BINARY, length=first)
    if "CHAR" in name and "VAR" not in name and first:
        return CanonicalType(Kind.CHAR, length=first)
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return CanonicalType(Kind.VARCHAR, length=first) if first else CanonicalType(Kind.TEXT)
    if "REAL" in name or "FLOA" in name or "DOUB" in name:
        return CanonicalType(Kind.DOUBLE)
    if name == "" or "BLOB" in name:
        return CanonicalType(Kind.TEXT) if name == "" else CanonicalType(Kind.BINARY)
    return CanonicalType(Kind.DECIMAL)


# ---- diff: the functions SQLite lacks, registered per connection --------------------------------------


def _md5(text: str | bytes | None) -> str | None:
    if text is None:
        return None
    return hashlib.md5(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def _hash60_of(codec: str, text: str | bytes | None) -> int | None:
    """``_hash60`` of text given as the bytes of a file of another encoding than UTF-8 (UTF-16)."""
    if isinstance(text, bytes):
        text = text.decode(codec, "surrogatepass")
    return _hash60(text)


def _hash60(text: str | bytes | None) -> int | None:
    """The first 15 hex digits of SHA-256 of the UTF-8 text, as every other database computes it."""
    if text is None:
        return None
    digest = hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).digest()
    return int.from_bytes(digest[:8], "big") >> 4


class _ExactSum:
    """sum() of 60-bit hashes without SQLite's 64-bit overflow error; the total comes back as text."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += int(value)

    def finalize(self) -> str:
        return str(self.total)


_WIDE = decimal.Context(prec=2000)


def _decimal(x: Any, scale: int) -> str | None:
    """Like the other databases' decimal text; a value with more decimals than ``scale`` stays as it is."""
    if x is None:
        return None
    kind = type(x)
    if kind is int or kind is float:  # (most are: their shortest text, without Decimal's cost)
        text = repr(x) if kind is float else str(x)
        if "e" not in text and "n" not in text:  # (no exponent, no inf, no nan)
            whole, _, decimals = text.partition(".")
            return _decimal_text(whole, decimals, scale)
    try:
        d = decimal.Decimal(repr(x)) if isinstance(x, float) else decimal.Decimal(str(x).strip())
    except decimal.InvalidOperation:
        return str(x)
    if not d.is_finite():  # (Infinity, NaN: in PostgreSQL's spelling; quantize() raised, which stopped
        return format(d, "f")  # the query)
    d = abs(d) if d == 0 else d
    if scale < 0:
        text = format(d, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    exact = d.quantize(decimal.Decimal(1).scaleb(-scale), context=_WIDE)
    return format(exact if exact == d else d, "f")


def _decimal_text(whole: str, decimals: str, scale: int) -> str:
    """``_decimal`` of a number written without an exponent, as its whole part and its decimals."""
    decimals = decimals.rstrip("0")
    if whole == "-0" and not decimals:
        whole = "0"
    if scale < 0:
        return f"{whole}.{decimals}" if decimals else whole
    if len(decimals) <= scale:
        return f"{whole}.{decimals.ljust(scale, '0')}" if scale else whole
    return f"{whole}.{decimals}"  # (more decimals than the scale: as it is, which no other side's text is)


def _float(x: Any, digits: int) -> str | None:
    """The same arithmetic as Dialect.text_float, in Python."""
    if x is None:
        return None
    d = _number_or_text(x)
    if isinstance(d, str):
        return d
    if d == 0:
        return "0"
    if not math.isfinite(d) or abs(d) < TINY:
        return repr(d)
    exponent = math.floor(math.log10(abs(d)))
    return f"{round(d / math.pow(10.0, exponent - (digits - 1)))}e{exponent}"


def _number_or_text(x: Any) -> float | str:
    """A REAL column's value as a float; text that is no number (SQLite keeps 'n/a' in a REAL column)
    as it is, which no number's text is: its row is compared in Python and reported as it is (the
    function raised, and stopped the diff with no word of the row)."""
    try:
        return float(x)
    except (ValueError, TypeError):
        return str(x)


def _double(x: Any) -> str | None:
    """Dialect.text_double's text, in Python."""
    if x is None:
        return None
    d = _number_or_text(x)
    if isinstance(d, str):
        return d
    if d == 0:
        return "0"
    if not math.isfinite(d):
        return repr(d)
    fraction, exponent = math.frexp(abs(d))  # (0.5 <= fraction < 1)
    sign = "-" if d < 0 else ""
    return f"{sign}{int(fraction * 2.0**53)}p{exponent - 53}"


def _number_as_text(v: Any) -> Any:
    """A number in a text column as SQLite's text of it (``CAST(3 AS TEXT)``, as diff hashes it)."""
    return str(v) if type(v) is int or type(v) is float else v


def _spelled(texts: list[str]) -> list[str]:
    """``UUID_SPELLINGS`` texts: the distinct ones, the first again in the places left."""
    texts = list(dict.fromkeys(texts))[:UUID_SPELLINGS]
    return texts + [texts[0]] * (UUID_SPELLINGS - len(texts))


_COLLATE = re.compile(r"\bCOLLATE\s+[\"'`\[]?(\w+)", re.IGNORECASE)


def _day_spellings(value: Any) -> list[str]:
    """A date as SQLite may hold it: alone, or at midnight (which diff takes as the date); text is the
    spelling the table holds (read from it: ``RowDiff.held``), or no date: as it is."""
    if isinstance(value, str):
        return _spelled([value])
    try:
        day = decode_value(Kind.DATE, value).isoformat()
    except (ValueError, TypeError):  # (text that is no date: as it is)
        return _spelled([str(value)])
    return _spelled([day, f"{day} 00:00:00", f"{day}T00:00:00", f"{day} 00:00:00.000", f"{day}T00:00:00.000",
                     f"{day} 00:00:00.000000"])  # fmt: skip


def _moment_spellings(value: Any) -> list[str]:
    """A timestamp as SQLite may hold it: with ' ' or 'T', and its part of a second as Python, ISO 8601
    and SQLite's strftime('%f') write it (none where it has none, milliseconds, microseconds); text is
    the spelling the table holds, or no timestamp: as it is."""
    if isinstance(value, str):
        return _spelled([value])
    try:
        moment = decode_value(Kind.TIMESTAMP, value)
    except (ValueError, TypeError):  # (text that is no timestamp: as it is)
        return _spelled([str(value)])
    micro = moment.microsecond
    fractions = [f".{micro:06d}"]
    if micro % 1000 == 0:
        fractions.insert(0, f".{micro // 1000:03d}")
    if micro == 0:
        fractions.insert(0, "")
    day, time_of_day = moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S")
    return _spelled([f"{day}{sep}{time_of_day}{f}" for f in fractions for sep in (" ", "T")])


def _zoned_spellings(value: Any) -> list[str]:
    """A moment with its time zone as SQLite may hold it in UTC ('+00:00' or 'Z' after the time, with
    ' ' or 'T'); one held at another offset is found by ``key_loosely``."""
    if isinstance(value, str):
        return _spelled([value])
    try:
        moment = decode_value(Kind.TIMESTAMPTZ, value).astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, TypeError, AttributeError):
        return _spelled([str(value)])
    plain = [t for t in _moment_spellings(moment) if "T" not in t][:2]  # (as Python writes it, and ISO)
    return _spelled([f"{t}{zone}" for t in plain for zone in ("+00:00", "Z")])


def _guarded(kind: Kind, render: Callable[[Any], str]) -> Callable[[Any], str | None]:
    def function(x: Any) -> str | None:
        if x is None:
            return None
        try:
            return render(decode_value(kind, x))
        except (ValueError, TypeError):
            return str(x)  # differs from any canonical text: the row is compared in Python

    return function


_TIMESTAMPS = [
    _guarded(kind, lambda v: v.replace(tzinfo=None).isoformat(" ", "microseconds"))
    for kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
]


def _timestamp(x: Any, with_zone: int) -> str | None:
    if type(x) is str:  # (most are: the guarded decode's result, in a third of its time, as diff's
        if len(x) == 26 and x[10] == " " and x[19] == "." and x[20:].isdigit():  # (canonical already,
            return x  # or no timestamp: as fromisoformat() would give it back, or fail on it)
        try:  # partitions by a period ask it of each row several times)
            v = datetime.fromisoformat(x)
        except ValueError:
            return x
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v.isoformat(" ", "microseconds")
    return _TIMESTAMPS[1 if with_zone else 0](x)


def _bound_text(value: Any, kind: Kind) -> str:
    if kind is Kind.DATE:
        return str(value.isoformat())
    return str(value.replace(tzinfo=None).isoformat(" ", "microseconds"))


@functools.lru_cache(maxsize=16)
def _window_bounds(bounds: str, indices: str) -> tuple[list[str], list[int]]:
    return bounds.split("\n"), [int(i) for i in indices.split(",")]


def _window(value: str | None, bounds: str, indices: str) -> int | None:
    """``Dialect.partition_window``: as the balanced CASE over the bounds, which compares text as
    SQLite does (by its UTF-8 bytes, which order as Python's code points)."""
    if value is None:
        return None
    lows, at = _window_bounds(bounds, indices)
    return at[max(0, bisect.bisect_right(lows, value) - 1)]


_EPOCH = datetime(1970, 1, 1)


def _epoch(x: Any, with_zone: int) -> float | None:
    if x is None:
        return None
    kind = Kind.TIMESTAMPTZ if with_zone else Kind.TIMESTAMP
    return (decode_value(kind, x).replace(tzinfo=None) - _EPOCH).total_seconds()


DIFF_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "md5": (1, _md5),
    "parity_hash60": (1, _hash60),
    "parity_decimal": (2, _decimal),
    "parity_float": (2, _float),
    "parity_double": (1, _double),
    "parity_single": (1, lambda x: None if x is None else nearest_single(float(x))),
    "parity_time": (1, _guarded(Kind.TIME, lambda v: v.isoformat("microseconds"))),
    "parity_timestamp": (2, _timestamp),
    "parity_epoch": (2, _epoch),
    "parity_window": (3, _window),
    "parity_uuid": (1, _guarded(Kind.UUID, str)),
    "parity_json": (1, _guarded(Kind.JSON, jsonb_text)),
}
"""name -> (number of arguments, function); all deterministic, so SQLite may use them anywhere."""


def register_diff_functions(connection: sqlite3.Connection) -> None:
    for name, (arity, function) in DIFF_FUNCTIONS.items():
        connection.create_function(name, arity, function, deterministic=True)
    connection.create_aggregate("parity_sum", 1, _ExactSum)  # type: ignore[arg-type]
