"""The SQL diff runs on each side: canonical row text, its hash, bucket checksums, row downloads.

A row's text joins its columns' canonical texts (``Dialect.text_*``) with ``|``. NULL renders as
``~``, which no canonical text of a non-null value equals; strings (and JSON) are prefixed with their
length in characters (``5:hello``), so a ``|`` inside a string cannot shift the fields: the text of
a row is unambiguous, and two rows hash alike only when every column renders alike.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from parity import log
from parity.dialects.base import Dialect
from parity.diff.idmap import UNMAPPED_TEXT
from parity.diff.plan import TIME_KINDS, ColumnPair, Compare, TablePlan
from parity.endpoint import Endpoint, driver_could_not_load, driver_message, mysqlclient, mysqlclient_serves
from parity.errors import ParityError
from parity.job import aggregate_row, where_clause
from parity.schema.model import Column
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind

NULL_MARKER = "~"
SEPARATOR = "|"

Expr = sa.ColumnElement[Any]


@dataclass(frozen=True)
class Reads:
    """A download of rows (``Side.rows``): its query, and how to make it again reading leniently."""

    checked: sa.Select[Any]
    lenient: Callable[[], sa.Select[Any]]


Query = sa.Executable | Reads
"""What ``Side.run`` runs."""


def column_text(
    dialect: Dialect,
    x: Any,
    native: CanonicalType,
    compare: Compare,
    charset: str | None = None,
    as_is: bool = False,
) -> Expr:
    """One column's canonical text (not NULL-safe; see ``null_safe``); ``charset``: the column's own
    character set, where the database has one per column (its strings are hashed as UTF-8);
    ``as_is``: a timestamp column whose own text is the canonical one (``Dialect.timestamp_as_text``)."""
    kind, own = compare.kind, native.kind
    if own in STRING_KINDS:
        x = dialect.column_utf8(x, charset)
    if compare.tolerance is not None:
        if kind in TIME_KINDS:
            return dialect.text_epoch_rounded(x, own is Kind.TIMESTAMPTZ, compare.tolerance)
        exact = None  # (an integer's or a decimal's own text, where a double cannot tell them apart)
        if kind is Kind.BIGINT:
            exact = dialect.text_integer(x)
        elif kind is Kind.DECIMAL:
            declared = (
                0 if own in INTEGER_KINDS else (None if native.precision is None else native.scale or 0)
            )
            exact = dialect.text_decimal(x, declared, compare.scale)
        return dialect.text_rounded(x, compare.tolerance, exact)
    if kind is Kind.BIGINT or (kind is Kind.BOOLEAN and own in INTEGER_KINDS):
        return dialect.text_integer(x)
    if kind is Kind.DECIMAL:
        declared = 0 if own in INTEGER_KINDS else (None if native.precision is None else native.scale or 0)
        return dialect.text_decimal(x, declared, compare.scale)
    if kind is Kind.DOUBLE:
        if compare.single and not (own is Kind.FLOAT and dialect.SINGLE_FLOATS):
            x = dialect.as_single(x)  # (a double against a 4-byte float)
        return dialect.text_double(x) if compare.digits is None else dialect.text_float(x, compare.digits)
    if kind is Kind.BOOLEAN:
        return dialect.text_boolean(x)
    if kind is Kind.TEXT or (kind is Kind.JSON and own is not Kind.JSON):
        return _prefixed(dialect, dialect.text_string(x, compare.strip))
    if kind is Kind.JSON:
        return _prefixed(dialect, dialect.text_json(x))
    if kind is Kind.UUID:
        return dialect.text_uuid(x, own in STRING_KINDS)
    if kind in TIME_KINDS:
        text = x if as_is else dialect.text_timestamp(x, own is Kind.TIMESTAMPTZ)
        return _fraction(dialect, text, 19, compare.fraction)
    if kind is Kind.TIME:
        return _fraction(dialect, dialect.text_time(x), 8, compare.fraction)
    renderers = {Kind.DATE: dialect.text_date, Kind.BINARY: dialect.text_binary}
    return renderers[kind](x)


def _fraction(dialect: Dialect, text: Expr, seconds_end: int, digits: int | None) -> Expr:
    """A time's text (six digits of a second after ``seconds_end`` characters) cut to ``digits``."""
    if digits is None:
        return text
    return dialect.text_prefix(text, seconds_end + (digits + 1 if digits else 0))


def _prefixed(dialect: Dialect, text: Expr) -> Expr:
    return dialect.concat(dialect.text_integer(dialect.text_length(text)), sa.literal(":"), text)


def null_safe(dialect: Dialect, x: Any, column: Column, compare: Compare, text: Expr) -> Expr:
    """The text, or the NULL marker: COALESCE where the text of NULL is NULL, else CASE."""
    if not column.nullable:
        return text
    by_case = compare.kind is Kind.BOOLEAN and column.type.kind is Kind.BOOLEAN and compare.tolerance is None
    if dialect.NULL_PROPAGATES and not by_case:
        return sa.func.coalesce(text, sa.literal(NULL_MARKER))
    return sa.case((x.is_(None), sa.literal(NULL_MARKER)), else_=text)


def charsets(endpoint: Endpoint, table: str) -> dict[str, str | None]:
    """The table's columns' character sets, where the database has one per column (MySQL, MariaDB)."""
    if not endpoint.dialect.CHARSET_PER_COLUMN:
        return {}
    with endpoint.connect() as conn:
        return endpoint.dialect.column_charsets(conn, table, endpoint.schema)


_NO_MIN = frozenset({Kind.BOOLEAN, Kind.UUID})
"""Kinds some database has no min() of."""


class Side:
    """One side of a table pair: its table, and the SQL expressions and queries diff runs on it."""

    def __init__(
        self, endpoint: Endpoint, plan: TablePlan, role: str, charsets: dict[str, str | None] | None = None
    ) -> None:
        """``charsets``: the table's columns' character sets, where they have their own (``charsets``)."""
        self.endpoint = endpoint
        self.role = role
        self.dialect = endpoint.dialect
        table = plan.source if role == "source" else plan.target
        self.table_name = table.name
        self.key_columns = [self._column(p) for p in plan.keys]
        self.columns = [self._column(p) for p in plan.columns]
        everything = [*self.key_columns, *self.columns]
        self.sa_table: Any = self.dialect.readable(table, endpoint.schema)  # (--where reads it so too)
        self.types = [c.type for c in everything]
        where = plan.where if role == "source" else (plan.target_where or plan.where)
        self.where: list[Any] = [where_clause(where)] if where else []
        self.through = plan.through_map if role == "target" else None
        through = plan.through_map
        if through is not None and through.shadowed and role == "source":  # (the target reads each of
            own = next(p.source.name for p in plan.keys if p.target.name == through.own)  # their rows
            self.where.append(sa.column(own).not_in(list(through.shadowed)))  # as the least ID's)
        if self.through is not None and self.through.translates:  # (conditions read IDs as the source's)
            self.sa_table = self.through.translated(table.name, table.column_names, endpoint.schema)
        self.read_columns = [self.sa_table.c[c.name] for c in everything]
        if plan.first_key is not None:  # (diff --first: the rows up to the source's Nth key, each side)
            self.where.append(self.sa_table.c[self.key_columns[0].name] <= plan.first_key)
        """The compared columns as read (keys first), of the table or of its view through the ID map."""
        self.charsets = charsets or {}
        self.row_hash = self.dialect.hash60(self._text([*plan.keys, *plan.columns]))
        self.key_hash = self.dialect.hash60(self._text(plan.keys))
        self.key = self.sa_table.c[self.key_columns[0].name]
        self._one_at_a_time: Any = threading.Lock() if self.dialect.PYTHON_FUNCTIONS else nullcontext()
        """Where the database calls Python for diff's functions (SQLite), its queries run one at a time:
        each call takes the GIL, and threads querying at once spent their time handing it over (80,000
        rows took 15 s with 4 threads, 11 s with one)."""

    @cached_property
    def mysqlclient(self) -> bool:
        """MySQL/MariaDB is queried through mysqlclient (C), not PyMySQL: reading checksum rows and
        rows in Python costs PyMySQL several times as much."""
        return mysqlclient_serves(self.endpoint)

    def _column(self, pair: ColumnPair) -> Column:
        return pair.source if self.role == "source" else pair.target

    def _text(self, pairs: Sequence[ColumnPair]) -> Expr:
        parts: list[Any] = []
        for pair in pairs:
            column = self._column(pair)
            x: Any = self.sa_table.c[column.name]
            if column.read_as_text:  # (inet, interval ...: their text)
                x = self.dialect.output_text(x, column.native_type)
            x = self.dialect.compared(x, column)
            if parts:
                parts.append(sa.literal(SEPARATOR))
            charset = self.charsets.get(column.name)
            as_is = self.dialect.timestamp_as_text(column)
            text = column_text(self.dialect, x, column.type, pair.compare, charset, as_is)
            part = null_safe(self.dialect, x, column, pair.compare, text)
            unmapped = self._unmapped(column.name)
            if unmapped is not None:  # (a reference the ID map does not hold: no source ID's text)
                part = sa.case((unmapped == 1, self.dialect.concat(sa.literal("?"), part)), else_=part)
            parts.append(part)
        return self.dialect.concat(*parts) if len(parts) > 1 else parts[0]

    def _unmapped(self, column: str) -> Expr | None:
        """The flag of a reference the ID map does not hold, where the column is one (``idmap``)."""
        return None if self.through is None else self.through.flag(self.sa_table, column)

    # ---- conditions --------------------------------------------------------------------------------

    def key_range(self, lo: int, hi: int) -> Expr:
        return sa.and_(
            self.key >= sa.literal(lo, sa.BigInteger()), self.key < sa.literal(hi, sa.BigInteger())
        )

    @property
    def wide_key(self) -> Expr:
        """The key for arithmetic on it: in BIGINT where a parameter takes the type of the column it
        meets (DuckDB's INTEGER key: 2000000000 - -2000000000 overflowed INT32 and stopped the diff)."""
        return sa.cast(self.key, sa.BigInteger()) if self.dialect.NARROW_PARAMETERS else self.key

    def range_bucket(self, base: int, width: int) -> Expr:
        offset = self.wide_key - sa.literal(base, sa.BigInteger())
        if width == 1 and not self.dialect.ANY_VALUE_ANYWHERE:  # (SQLite's key may hold 2.5: whole buckets)
            return offset
        return self.dialect.int_div(offset, sa.literal(width, sa.BigInteger()))

    def range_offset(self, base: int, width: int) -> Expr:
        """A key's offset in its bucket of ``width`` keys counted from ``base`` (keys are ``>= base``)."""
        return (self.wide_key - sa.literal(base, sa.BigInteger())) % sa.literal(width, sa.BigInteger())

    def hash_bucket(self, modulus: int) -> Expr:
        return self.key_hash % sa.literal(modulus, sa.BigInteger())

    def hash_in(self, modulus: int, residues: Sequence[int]) -> Expr:
        return self.bucket_in(self.hash_bucket(modulus), residues)

    @staticmethod
    def bucket_in(bucket: Expr, numbers: Sequence[int]) -> Expr:
        """``bucket IN (...)``, the numbers written into the SQL (integers parity made, up to a thousand:
        as bound parameters they cost the drivers more than the query)."""
        values = [int(n) for n in numbers]
        return bucket.in_(sa.bindparam("buckets", values, expanding=True, literal_execute=True))

    # ---- queries -------------------------------------------------------------------------------------

    def checksums(self, bucket: Expr, conditions: Sequence[Expr], key_bounds: bool = False) -> sa.Select[Any]:
        """count(*) and the sum of row hashes per bucket, for the rows meeting every condition; with
        ``key_bounds``, then the lowest and the highest key in the bucket too."""
        keys = [self.key.label("k")] if key_bounds else []
        inner = (
            sa.select(bucket.label("b"), self.row_hash.label("h"), *keys)
            .select_from(self.sa_table)
            .where(*self.where, *conditions)
            .subquery("s")
        )
        bounds = [sa.func.min(inner.c.k), sa.func.max(inner.c.k)] if key_bounds else []
        query = sa.select(inner.c.b, sa.func.count(), self.dialect.hash_sum(inner.c.h), *bounds).group_by(
            inner.c.b
        )
        return query.order_by(sa.null()) if self.dialect.GROUP_BY_SORTS else query

    def located_checksums(
        self, bucket: Expr, offset: Expr, bits: int, conditions: Sequence[Expr]
    ) -> sa.Select[Any]:
        """Like ``checksums``, with the dialect's ``located_sums`` over each row's offset in its bucket."""
        inner = (
            sa.select(bucket.label("b"), offset.label("o"), self.row_hash.label("h"))
            .select_from(self.sa_table)
            .where(*self.where, *conditions)
        )
        if self.dialect.DECODE_FENCE:
            inner = inner.offset(0)
        s = inner.subquery("s")
        sums = self.dialect.located_sums(s.c.h, s.c.o, bits)
        query = sa.select(s.c.b, sa.func.count(), *sums).group_by(s.c.b)
        return query.order_by(sa.null()) if self.dialect.GROUP_BY_SORTS else query

    def rows(self, conditions: Sequence[Expr], hashed: bool = False) -> Reads:
        """The rows as they are compared in Python: keys first, JSON as text (drivers parse it, or not);
        with ``hashed``, the row's hash last. Read as copy reads them (``Dialect.read_checked``): where
        the driver would give a value as another one (DuckDB's infinity as 9999-12-31), the query
        fails, and ``run`` reads the rows again as ``Dialect.read_leniently`` does (its text)."""
        return Reads(
            self._rows(conditions, hashed, self.dialect.read_checked),
            lambda: self._rows(conditions, hashed, self.dialect.read_leniently),
        )

    def _rows(
        self, conditions: Sequence[Expr], hashed: bool, read: Callable[[Any, Kind], Any]
    ) -> sa.Select[Any]:
        as_text = {c.name: c.native_type for c in [*self.key_columns, *self.columns] if c.read_as_text}
        selected = [
            self.dialect.text(x).label(x.name)
            if t.kind is Kind.JSON
            else self.dialect.output_text(x, as_text[x.name]).label(x.name)
            if x.name in as_text
            else read(x, t.kind)
            for x, t in zip(self.read_columns, self.types, strict=True)
        ]
        for i, x in enumerate(self.read_columns):  # (a reference the ID map does not hold: as text)
            unmapped = self._unmapped(x.name)
            if unmapped is not None:
                text = self.dialect.id_text(x)
                marked = self.dialect.concat(sa.literal(UNMAPPED_TEXT), text)
                selected[i] = sa.case((unmapped == 1, marked), else_=text).label(x.name)
        if hashed:
            selected.append(self.row_hash.label("parity_row_hash"))
        return sa.select(*selected).select_from(self.sa_table).where(*self.where, *conditions)

    def bounds(self, column: str, conditions: Sequence[Expr], kind: Kind | None = None) -> sa.Select[Any]:
        """The least and the greatest value of a column; ``kind``: read as copy reads that kind
        (``Dialect.read_value``: an SQLite date held as a number, as its moment's text)."""
        x: Any = sa.column(column)
        if kind is not None:
            x = self.dialect.read_value(x, kind)
        return aggregate_row(self.sa_table, [sa.func.min(x), sa.func.max(x)], [*self.where, *conditions])

    def null_keys(self, example: bool = False) -> sa.Select[Any]:
        """How many rows have a NULL in a key column; ``example``: the key of one of them."""
        nulls = sa.or_(*(self.sa_table.c[c.name].is_(None) for c in self.key_columns))
        if example:
            columns = [self.sa_table.c[c.name] for c in self.key_columns]
            return sa.select(*columns).where(*self.where, nulls).limit(1)
        return sa.select(sa.func.count()).select_from(self.sa_table).where(*self.where, nulls)

    def duplicate_keys(self, examples: int = 5) -> sa.Select[Any]:
        """Keys held by more than one row, grouped by the key's hash (collation plays no part)."""
        columns = [self.sa_table.c[c.name] for c in self.key_columns]
        inner = sa.select(self.key_hash.label("parity_key_hash"), *columns).where(*self.where).subquery("s")
        # (PostgreSQL has no min() of a boolean or a uuid: their examples are shown as text)
        keys = [
            sa.func.min(sa.cast(inner.c[c.name], sa.String) if c.type.kind in _NO_MIN else inner.c[c.name])
            for c in self.key_columns
        ]
        count = sa.func.count()
        return sa.select(*keys, count).group_by(inner.c.parity_key_hash).having(count > 1).limit(examples)

    def run(self, query: Query) -> list[Any]:
        """Run one query on this side; a database error becomes one line naming the table and database."""
        try:
            if not isinstance(query, Reads):
                return self._fetch(query)
            try:
                return self._fetch(query.checked)
            except sa.exc.DBAPIError as exc:
                if not self.dialect.read_refused(exc):
                    raise
                return self._fetch(query.lenient())
        except sa.exc.DBAPIError as exc:
            raise ParityError(
                f"diff of table '{self.table_name}' failed on {self.endpoint.redacted()}: {driver_message(exc)}"
            ) from exc

    def _fetch(self, query: sa.Executable) -> list[Any]:
        if self.mysqlclient and not self.dialect.DIFF_SETUP and isinstance(query, sa.ClauseElement):
            with self.endpoint.mysqlclient_session() as raw:
                driver: Any = mysqlclient()
                dialect, backend = self.endpoint.engine.dialect, self.endpoint.backend
                return fetch_raw(raw, query, dialect, backend, driver.Error)
        try:
            return self._run(query, lenient=False)
        except sa.exc.DataError as exc:  # a value the driver cannot make (PostgreSQL's infinity): as text
            if not (self.dialect.LENIENT_LOADERS and driver_could_not_load(exc)):
                raise
            return self._run(query, lenient=True)

    def _run(self, query: sa.Executable, lenient: bool) -> list[Any]:
        with self.endpoint.reading(lenient) as conn, self._one_at_a_time:
            self.dialect.prepare_connection(conn)
            for statement in self.dialect.DIFF_SETUP:
                conn.exec_driver_sql(statement)
            if conn.dialect.driver in RAW_DRIVERS and isinstance(query, sa.ClauseElement):
                backend, errors = conn.engine.url.get_backend_name(), conn.dialect.loaded_dbapi.Error
                return fetch_raw(conn.connection, query, conn.dialect, backend, errors)
            return list(conn.execute(query).all())


RAW_DRIVERS = frozenset({"psycopg", "pymysql"})
"""Drivers whose rows diff fetches with their own cursor: diff's columns are untyped (SQLAlchemy would
not convert a value) and its parameters are ints, strings, dates and datetimes both drivers take as
they are; skipping a SQLAlchemy Row per row saves a tenth of a dense diff's time."""


def fetch_raw(
    dbapi_conn: Any, query: sa.ClauseElement, dialect: sa.Dialect, where: str, errors: type[Exception]
) -> list[Any]:
    """All rows of the query as the driver's tuples, logged like SQLAlchemy's statements: on a DB-API
    connection of SQLAlchemy's driver for ``dialect`` (its paramstyle), or of mysqlclient (the same
    style as PyMySQL's); the driver's ``errors`` become SQLAlchemy's DBAPIError."""
    statement, params = _sql_and_params(query, dialect)
    cursor = dbapi_conn.cursor()
    try:
        with log.timed_sql(statement, where):
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    except errors as exc:  # (as SQLAlchemy raises it: its DataError for a DataError)
        raise sa.exc.DBAPIError.instance(statement, params, exc, errors) from exc
    finally:
        cursor.close()


_COMPILED: weakref.WeakKeyDictionary[sa.Dialect, Any] = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()


def _sql_and_params(query: sa.ClauseElement, dialect: sa.Dialect) -> tuple[str, Any]:
    """The statement's text and the driver's parameters. The compiled form is kept per dialect under
    the query's cache key, as SQLAlchemy keeps its own: diff's queries differ mostly by their bound
    values, and compiling a row hash anew cost a diff of 1M rows half a second of CPU."""
    key = query._generate_cache_key()
    if key is None:  # (a construct SQLAlchemy cannot cache)
        compiled: Any = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params, statement, names = compiled.params, compiled.string, compiled.positiontup
    else:
        with _COMPILED_LOCK:
            cache = _COMPILED.get(dialect)
            if cache is None:
                cache = _COMPILED[dialect] = sa.util.LRUCache(200)
        compiled = cache.get(key.key)
        if compiled is None:
            compiled = cache[key.key] = query.compile(dialect=dialect, cache_key=key)
        values = compiled.construct_params(extracted_parameters=key.bindparams, escape_names=False)
        expanded = compiled.construct_expanded_state(values)  # (IN lists written out)
        params, statement, names = expanded.parameters, expanded.statement, expanded.positiontup
    if dialect.positional:
        params = tuple(params[name] for name in names or ())
    return statement, params
