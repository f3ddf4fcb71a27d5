"""``parity sync``: diff, then apply only what differs, then diff again to prove the target equal.

Missing rows are inserted, changed rows get an UPDATE of exactly the columns that differ, extra rows
are left alone and reported unless the user asked, in words, to ``--delete`` them or to mark them in
a ``--soft-delete`` column. Inserts and updates go parents-first, deletes children-first; each batch is
a transaction of its own, and a failed batch rolls back and is reported while other tables go on.
``--dry-run`` prints the SQL (valid for the target, values inlined for reading) and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from datetime import time as time_of_day
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity import bulk
from parity.collector import collected_less
from parity.dialects.base import Dialect
from parity.diff.idmap import UNMAPPED_TEXT, ThroughMap
from parity.diff.result import RowDiff, TableDiff
from parity.endpoint import Endpoint, blames_rows, driver_message, refuse_given_ids, switched
from parity.errors import ConfigError, DataError, ParityError
from parity.job import Job
from parity.log import logger
from parity.remap import IdMaps, RemapSpec, RemapWriter, fix_late_references
from parity.schema.model import Table
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind
from parity.sqltext import as_sent
from parity.state import SYNC_WAITS, State
from parity.values import DECODE_ERRORS, UUID_SPELLINGS, canonical_json, decode_value, no_nan, uuid_spellings

Extra = Literal["keep", "delete", "soft-delete"]


@dataclass
class TableSync:
    table: str
    target: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    soft_deleted: int = 0
    extra_kept: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    """Why the table was skipped without a diff (its signature did not change), if it was."""
    error: str | None = None
    """Why the table could not be synced (diff could not compare it, or a table it references), if so:
    the other tables are synced, and the run fails."""

    seconds: float = 0.0


@dataclass
class SyncResult:
    tables: list[TableSync] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    """With dry_run: the SQL that would run, in order."""

    verified: bool | None = None
    """After applying: True when a second diff found the tables identical."""

    remaining: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not t.failed and not t.error for t in self.tables) and self.verified is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verified": self.verified,
            "remaining": self.remaining,
            "tables": [t.__dict__ for t in self.tables],
            "notes": self.notes,
        }


_SA_TYPES: dict[Kind, Callable[[CanonicalType], sa.types.TypeEngine[Any]]] = {
    Kind.BOOLEAN: lambda t: sa.Boolean(),
    Kind.SMALLINT: lambda t: sa.SmallInteger(),
    Kind.INTEGER: lambda t: sa.Integer(),
    Kind.BIGINT: lambda t: sa.BigInteger(),
    Kind.DECIMAL: lambda t: sa.Numeric(t.precision, t.scale),
    Kind.FLOAT: lambda t: sa.Float(),
    Kind.DOUBLE: lambda t: sa.Double(),
    Kind.DATE: lambda t: sa.Date(),
    Kind.TIME: lambda t: sa.Time(),
    Kind.TIMESTAMP: lambda t: sa.DateTime(),
    Kind.TIMESTAMPTZ: lambda t: sa.DateTime(timezone=True),
    Kind.BINARY: lambda t: sa.LargeBinary(),
}


def as_kind(value: Any, kind: Kind) -> Any:
    """A source's value as the target column's kind takes it, where a mapping pairs compatible kinds
    the driver would send as the other (PostgreSQL refused a boolean for a smallint, and a UUID for a
    varchar; SQLite's driver cannot bind a UUID)."""
    if isinstance(value, bool):
        return int(value) if kind in INTEGER_KINDS or kind is Kind.DECIMAL else value
    if isinstance(value, int) and kind is Kind.BOOLEAN and value in (0, 1):
        return bool(value)
    if isinstance(value, UUID) and kind in STRING_KINDS:
        return str(value)
    if isinstance(value, str) and kind is Kind.UUID:
        try:
            return UUID(value)
        except ValueError:
            return value  # (the target refuses it, as any value it cannot hold)
    return value


def _float_literal(value: float, ctype: CanonicalType, dialect: Dialect) -> Any:
    """NaN or an infinity as SQL the target reads: SQLite's 9e999 (its NaN is kept as the text 'NaN',
    as copy writes it); elsewhere the text cast to the column's type."""
    text = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if dialect.ANY_VALUE_ANYWHERE:
        return sa.literal(text) if text == "NaN" else sa.literal_column("9e999" if value > 0 else "-9e999")
    return sa.cast(sa.literal(text), literal_type(ctype))


_ENDLESS_KINDS = frozenset({Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ})


def _endless_time(value: Any) -> bool:
    """Whether a date or timestamp is PostgreSQL's text of infinity or of a day before Christ (no Python
    date holds them: its driver gives their text)."""
    return isinstance(value, str) and (value in ("infinity", "-infinity") or value.endswith(" BC"))


_CHECKED_KINDS = frozenset(
    {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.JSON, Kind.DECIMAL}
    | {Kind.FLOAT, Kind.DOUBLE, Kind.BOOLEAN, Kind.UUID}
)
"""Kinds whose values a database would change to take them, or refuse without naming the row
(``Applier.refusal``)."""


def _excess(value: Any, scale: int) -> bool:
    """Whether a number has non-zero digits past ``scale`` decimals."""
    try:
        number = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else value)
        )
    except (ArithmeticError, ValueError, TypeError):
        return False
    if not number.is_finite():
        return False
    exponent = number.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent < -scale


def _whole_or_refused(value: Any) -> Any:
    """An integer column's value, or, where it is no whole number (SQLite's 2.7 in an INTEGER), text that
    every database refuses for an integer, naming it: PostgreSQL and MariaDB would round 2.7 to 3."""
    if isinstance(value, (float, Decimal)):
        finite = math.isfinite(value) if isinstance(value, float) else value.is_finite()
        if not finite or value != int(value):
            return f"{value} (not a whole number)"
    return value


def literal_type(ctype: CanonicalType) -> sa.types.TypeEngine[Any]:
    """A SQLAlchemy type able to render a canonical value as a literal (for --dry-run)."""
    return _SA_TYPES.get(ctype.kind, lambda t: sa.String())(ctype)


class Applier:
    """Turns one table's differences into batched INSERT / UPDATE / DELETE statements on the target."""

    def __init__(self, endpoint: Endpoint, table: Table, batch_size: int, dry_run: bool) -> None:
        self.endpoint, self.table, self.batch_size, self.dry_run = endpoint, table, batch_size, dry_run
        self.types = {c.name: c.type for c in table.columns}
        writer = bulk.WRITERS[endpoint.dialect.ROW_WRITER]
        self.encoders = {c.name: writer.ENCODERS.get(c.type.kind) for c in table.columns}
        self.sa_table = sa.table(
            table.name,
            *(sa.column(c.name, literal_type(c.type)) for c in table.columns),
            schema=endpoint.schema,
        )
        """Typed columns, to print values as literals."""
        self.exec_table = sa.table(
            table.name, *(sa.column(c.name) for c in table.columns), schema=endpoint.schema
        )
        """Untyped columns, to execute with values the driver takes as they are (already encoded)."""
        self.statements: list[str] = []
        self.failures: list[str] = []
        """Rows refused before any write (``refusal``), each with its key and reason."""
        self.uuid_keys: set[str] = set()
        """Key columns holding UUIDs as text, which diff compares as UUIDs (``key_match``)."""
        self.computed = {c.name for c in table.columns if c.generated}
        """Columns the target computes: never written to (their values follow the others')."""
        self.cuts = {
            c.name: 10 ** (6 - c.fraction)
            for c in table.columns
            if c.fraction is not None
            and c.fraction < 6
            and c.type.kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.TIME)
        }
        """Time columns keeping fewer digits of a second: the microseconds a value's are cut to (as diff
        compares them), not rounded as PostgreSQL would (the sync's check then found them still apart)."""

    def advance_sequences(self, columns: Sequence[str]) -> None:
        """After inserts: the target's next generated ids come after the ones written (``Dialect``)."""
        endpoint = self.endpoint
        with endpoint.begin() as conn:
            endpoint.dialect.advance_sequences(conn, endpoint, self.table.name, columns)

    def held(self, column: str, value: Any) -> Any:
        """The value as the target column holds it: a time cut to the digits of a second it keeps."""
        unit = self.cuts.get(column)
        if unit is not None and isinstance(value, (datetime, time_of_day)):
            return value.replace(microsecond=value.microsecond - value.microsecond % unit)
        return value

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Why the target cannot take a row's values as they are, as copy refuses them (its rejects),
        or None: a date with a time of day, JSON text that is no JSON, a decimal with more decimals
        than the column keeps. Written, PostgreSQL cut the time and rounded the decimal, and the JSON
        went in as a JSON string: values neither side had, or that diff then found equal."""
        for column, given in row.items():
            ctype = self.types.get(column)
            if given is None or ctype is None:
                continue
            if (
                type(given) is bytes
                and ctype.kind in STRING_KINDS
                and not self.endpoint.dialect.ANY_VALUE_ANYWHERE  # (SQLite keeps it, as copy)
            ):
                return f"{column}: {given!r} is no {ctype.kind.value} (a BLOB, not text)"
            if ctype.kind not in _CHECKED_KINDS:
                continue
            if ctype.kind is Kind.BOOLEAN and self.endpoint.dialect.INTEGER_BOOLEANS:
                continue  # (MySQL's and SQLite's booleans hold any integer: 2 arrives as it is)
            if ctype.kind in _ENDLESS_KINDS and _endless_time(given):
                if self.endpoint.dialect.HOLDS_ENDLESS_TIMES:
                    continue  # (its text, which the target reads)
                return f"{column}: {given} is no {ctype.kind.value} {self.endpoint.backend} holds"
            try:
                value = decode_value(ctype.kind, as_kind(given, ctype.kind))
            except DECODE_ERRORS as exc:  # (the value named, as copy's rejects name it)
                said, shown = str(exc), repr(given)
                return (
                    f"{column}: {said}"
                    if shown[:20] in said
                    else f"{column}: {shown} is no {ctype.kind.value} ({said})"
                )
            if type(value) is float and not math.isfinite(value) and not self.endpoint.dialect.HOLDS_NAN:
                return no_nan(column, value, self.endpoint.backend)
            if (
                ctype.kind is Kind.DECIMAL
                and ctype.scale is not None
                and not self.endpoint.dialect.ANY_VALUE_ANYWHERE  # (SQLite keeps 12.345 whole, as copy)
                and _excess(value, ctype.scale)
            ):
                return f"{column}: {value} has more decimals than the target keeps ({ctype.scale})"
        return None

    def refused(
        self, rows: Sequence[Any], values: Callable[[Any], dict[str, Any]], key: Callable[[Any], Any]
    ) -> list[Any]:
        """The rows the target can take (``refusal``); the others are failures, with their reasons."""
        kept = []
        for row in rows:
            why = self.refusal(values(row))
            if why is None:
                kept.append(row)
            else:
                self.failures.append(
                    f"{self.table.name} {json.dumps(key(row), default=str, ensure_ascii=False)}: {why}"
                )
        return kept

    def named(self, params: dict[str, Any], message: str) -> str:
        """A refused row's message, led by its key (the table's, from the statement's parameters:
        the key it is found by, or the values it inserts), as ``refused`` leads its own."""
        key = {n[2:]: v for n, v in params.items() if n.startswith("k_") and n[2:] in self.types}
        key |= {  # (a key held in spellings: its first)
            n[2:-2]: v
            for n, v in params.items()
            if n.startswith("k_") and n.endswith("_0") and n[2:-2] in self.types
        }
        key = key or {c: params[f"v_{c}"] for c in self.table.key() if f"v_{c}" in params}
        if not key:
            return message
        shown = json.dumps(key, default=str, ensure_ascii=False)
        return f"{self.table.name} {shown}: {message}"

    def encode(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        ctype = self.types.get(column)
        if ctype is not None:
            value = as_kind(value, ctype.kind)
            if ctype.kind in INTEGER_KINDS and not self.endpoint.dialect.ANY_VALUE_ANYWHERE:
                value = _whole_or_refused(value)
        value = self.held(column, value)
        encoder = self.encoders.get(column)
        try:
            return value if encoder is None else encoder(value)
        except (ValueError, TypeError, ArithmeticError):  # (SQLite's 'abc' in a DECIMAL: as it is, which
            return value  # the target refuses, as any value it cannot hold, or keeps as SQLite does)

    def _key_clause(self, key: Sequence[str], values: dict[str, Any] | None = None) -> Any:
        """``key = :k_key`` for execution, or ``key = <literal>`` for printing."""
        if not key:  # never an UPDATE or DELETE of every row
            raise ParityError(f"{self.sa_table.name}: no key to update or delete rows by")
        equals = self.endpoint.dialect.key_equals
        if values is None:
            return sa.and_(
                *(
                    self.exec_table.c[k].in_([sa.bindparam(f"k_{k}_{i}") for i in range(UUID_SPELLINGS)])
                    if self._spellings(k)
                    else equals(self.exec_table.c[k], sa.bindparam(f"k_{k}"), self.types[k].kind)
                    for k in key
                )
            )
        return sa.and_(
            *(
                self.sa_table.c[k].in_([self._spelled(k, t) for t in dict.fromkeys(spellings(values[k]))])
                if (spellings := self._spellings(k))
                else equals(self.sa_table.c[k], self._literal(k, values[k]), self.types[k].kind)
                for k in key
            )
        )

    def key_params(self, key: Sequence[str], values: dict[str, Any]) -> dict[str, Any]:
        """The parameters of ``_key_clause`` for one row's key."""
        params = {}
        for k in key:
            if spellings := self._spellings(k):
                params.update({f"k_{k}_{i}": t for i, t in enumerate(spellings(values[k]))})
            else:
                params[f"k_{k}"] = self.encode(k, values[k])
        return params

    def key_match(self, column: Any, name: str, value: Any) -> Any:
        """``Dialect.key_equals`` of the column and a value, bound; a key held in spellings diff takes
        as one (``_spellings``) in each of them (an index still serves)."""
        if spellings := self._spellings(name):
            return column.in_([self._spelled(name, t) for t in spellings(value)])
        return self.endpoint.dialect.key_equals(
            column, sa.literal(self.encode(name, value)), self.types[name].kind
        )

    def _spellings(self, name: str) -> Callable[[Any], list[Any]] | None:
        """The ``UUID_SPELLINGS`` texts a key column may hold its value in that diff pairs with it: a
        UUID held as text that diff compares as a UUID (``uuid_keys``), SQLite's dates and timestamps
        with 'T' or digits of a second (``Dialect.key_spellings``); None where it holds one."""
        if name in self.uuid_keys:
            return uuid_spellings
        ctype = self.types.get(name)
        return None if ctype is None else self.endpoint.dialect.key_spellings(ctype.kind)

    def _spelled(self, name: str, text: Any) -> Any:
        if name in self.uuid_keys and self.types[name].kind is not Kind.UUID:
            return self._literal(name, text)
        return sa.literal(text, sa.String())  # (SQLite's UUID column holds text: as it is)

    def uuid_match(self, column: Any, value: Any) -> Any:
        """A UUID held as text in any spelling Python's ``uuid.UUID`` reads ('urn:uuid:...', any case,
        spaces around), by its hex digits: no index serves it, so it comes after ``key_match``."""
        try:
            digits = (value if isinstance(value, UUID) else UUID(str(value).strip())).hex
        except ValueError:
            return column == sa.literal(str(value))
        return self.endpoint.dialect.uuid_digits(column) == sa.literal(digits)

    def _literal(self, column: str, value: Any) -> Any:
        if value is None:
            return sa.null()
        value = self.held(column, value)
        if isinstance(value, (bytes, bytearray)):
            return sa.literal_column(self.endpoint.dialect.BINARY_LITERAL.format(hex=bytes(value).hex()))
        ctype = self.types.get(column, CanonicalType(Kind.TEXT))
        if isinstance(value, float) and not math.isfinite(value):  # (printed bare: 'nan', no SQL)
            return _float_literal(value, ctype, self.endpoint.dialect)
        if ctype.kind in _ENDLESS_KINDS and _endless_time(value):  # (its text, as the target spells it)
            encoder = self.encoders.get(column)
            return sa.cast(sa.literal(value if encoder is None else encoder(value)), literal_type(ctype))
        if isinstance(value, datetime) and (value.tzinfo is not None or ctype.kind is Kind.TIMESTAMPTZ):
            # the text a session in any time zone reads alike: UTC with its offset, or, where the column
            # holds UTC without a zone (MySQL's DATETIME, a TIMESTAMP column), UTC without one
            utc = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
            if ctype.kind is not Kind.TIMESTAMPTZ or not self.endpoint.dialect.STORES_TIME_ZONE:
                return sa.literal(utc.replace(tzinfo=None), sa.DateTime())
            value = utc
        return sa.literal(_printable(value), literal_type(ctype))

    def check_inserts(self, row: dict[str, Any]) -> list[str]:
        """The columns an INSERT of such a row gives (the ones the target computes left out); a
        DataError where the target numbers one of them itself and takes no value for it
        (``Dialect.ids_never_written``: Oracle's GENERATED ALWAYS)."""
        columns = [c for c in row if c not in self.computed]
        remedy = "the missing rows cannot be inserted with their own; make the column GENERATED BY DEFAULT"
        refuse_given_ids(self.endpoint, self.table.name, self._never_written, columns, remedy)
        return columns

    @cached_property
    def _never_written(self) -> set[str]:
        with self.endpoint.connect() as conn:
            return self.endpoint.dialect.ids_never_written(conn, self.endpoint, self.table.name)

    def inserts(self, rows: list[dict[str, Any]]) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        rows = self.refused(
            rows, lambda row: row, lambda row: {k: row.get(k) for k in self.table.key()} or row
        )
        if not rows:
            return
        columns = self.check_inserts(rows[0])
        switch = None
        if self.dry_run:  # (the printed SQL runs as printed: with what lets it give the ids)
            with self.endpoint.connect() as conn:
                switch = self.endpoint.dialect.explicit_ids_sql(conn, self.endpoint, self.table.name, columns)
        explicit = self.endpoint.dialect.explicit_values
        stmt = explicit(sa.insert(self.exec_table).values({c: sa.bindparam(f"v_{c}") for c in columns}))
        stmt = stmt.execution_options(**{EXPLICIT_IDS: tuple(columns)})
        params = [{f"v_{c}": self.encode(c, row.get(c)) for c in columns} for row in rows]

        def shown(row: dict[str, Any]) -> Any:
            return explicit(
                sa.insert(self.sa_table).values({c: self._literal(c, row.get(c)) for c in columns})
            )

        if switch:
            self.statements.append(f"{switch[0]};")
        yield from self._batched(stmt, params, rows, shown)
        if switch:
            self.statements.append(f"{switch[1]};")

    def updates(
        self, key: Sequence[str], changes: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        """UPDATE only the changed columns; rows changing the same set of columns share a statement."""
        changes = self.refused(changes, lambda change: change[1], lambda change: change[0])
        if not changes:
            return
        groups: dict[tuple[str, ...], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for key_values, values in changes:
            written = {c: v for c, v in values.items() if c not in self.computed}
            if written:
                groups.setdefault(tuple(sorted(written)), []).append((key_values, written))
        for columns, members in groups.items():
            stmt = (
                sa.update(self.exec_table)
                .where(self._key_clause(key))
                .values({c: sa.bindparam(f"v_{c}") for c in columns})
            )
            params = [
                {
                    **self.key_params(key, kv),
                    **{f"v_{c}": self.encode(c, vals[c]) for c in columns},
                }
                for kv, vals in members
            ]

            def shown(row: dict[str, Any], columns: tuple[str, ...] = columns) -> Any:
                assignments = {c: self._literal(c, row[c]) for c in columns}
                return sa.update(self.sa_table).where(self._key_clause(key, row)).values(assignments)

            yield from self._batched(stmt, params, [{**kv, **vals} for kv, vals in members], shown)

    def deletes(
        self, key: Sequence[str], keys: list[dict[str, Any]]
    ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        if not keys:
            return
        stmt = sa.delete(self.exec_table).where(self._key_clause(key))
        params = [self.key_params(key, kv) for kv in keys]
        yield from self._batched(
            stmt, params, keys, lambda row: sa.delete(self.sa_table).where(self._key_clause(key, row))
        )

    def soft_deletes(
        self, key: Sequence[str], column: str, keys: list[dict[str, Any]]
    ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        if not keys:
            return
        marker = _soft_delete_value(self.types[column])
        stmt = (
            sa.update(self.exec_table)
            .where(self._key_clause(key), self._unmarked(self.exec_table.c[column]))
            .values({column: sa.bindparam(f"v_{column}")})
        )
        params = [{**self.key_params(key, kv), f"v_{column}": self.encode(column, marker)} for kv in keys]

        def shown(row: dict[str, Any]) -> Any:
            return (
                sa.update(self.sa_table)
                .where(self._key_clause(key, row), self._unmarked(self.sa_table.c[column]))
                .values({column: self._literal(column, marker)})
            )

        yield from self._batched(stmt, params, keys, shown)

    def _unmarked(self, column: Any) -> Any:
        """A row not marked deleted yet: marked again, it lost the time it was deleted at (a rerun)."""
        return _unmarked(column, self.types[column.name].kind)

    def revivals(
        self, key: Sequence[str], column: str, keys: list[dict[str, Any]]
    ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        """Rows marked deleted (``soft_deletes``) whose source rows are there again: unmarked (false, 0
        or NULL, as the column's kind has it)."""
        if not keys:
            return
        cleared = _not_deleted_value(self.types[column])
        stmt = (
            sa.update(self.exec_table)
            .where(self._key_clause(key), sa.not_(self._unmarked(self.exec_table.c[column])))
            .values({column: sa.bindparam(f"v_{column}")})
        )
        params = [{**self.key_params(key, kv), f"v_{column}": cleared} for kv in keys]

        def shown(row: dict[str, Any]) -> Any:
            return (
                sa.update(self.sa_table)
                .where(self._key_clause(key, row), sa.not_(self._unmarked(self.sa_table.c[column])))
                .values({column: self._literal(column, cleared)})
            )

        yield from self._batched(stmt, params, keys, shown)

    def _batched(
        self,
        stmt: Any,
        params: list[dict[str, Any]],
        readable: list[dict[str, Any]],
        shown: Callable[[dict[str, Any]], Any],
    ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
        for start in range(0, len(params), self.batch_size):
            batch = params[start : start + self.batch_size]
            if self.dry_run:
                self.statements.extend(
                    self.render(shown(row)) for row in readable[start : start + self.batch_size]
                )
            yield stmt, batch

    def render(self, stmt: Any) -> str:
        """A statement whose values are literals, compiled for the target (printed, never executed)."""
        dialect = self.endpoint.engine.dialect
        try:
            return f"{as_sent(str(stmt.compile(dialect=dialect, compile_kwargs={'literal_binds': True})), dialect)};"
        except Exception as exc:  # a value SQLAlchemy cannot inline (rare): show it beside the statement
            logger.info("cannot inline values (%s)", exc)
            return f"{stmt.compile(dialect=dialect)}; -- {stmt.compile(dialect=dialect).params!r}"


def _printable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return canonical_json(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def _unmarked(column: Any, kind: Kind) -> Any:
    """The condition of a row a soft-delete column does not mark deleted."""
    if kind is Kind.BOOLEAN:
        return sa.or_(column.is_(None), column == sa.false())
    if kind in INTEGER_KINDS:
        return sa.or_(column.is_(None), column == 0)
    return column.is_(None)


def _not_deleted_value(ctype: CanonicalType) -> Any:
    """What a soft-delete column holds for a row not deleted: false, 0, or NULL (a timestamp)."""
    if ctype.kind is Kind.BOOLEAN:
        return False
    return 0 if ctype.kind in INTEGER_KINDS else None


@dataclass
class _Marked:
    """A table's rows that a soft-delete column marks deleted (``_marked``)."""

    columns: list[str] = field(default_factory=list)
    """The target's key columns."""
    present: list[dict[str, Any]] = field(default_factory=list)
    """The keys of those whose source rows are there (all but diff's extra rows): to unmark."""
    keys: set[tuple[str, ...]] = field(default_factory=set)
    """Every marked row's key (``text``): not marked again, so a dry run counts what a run does."""
    uuids: frozenset[str] = frozenset()
    """Key columns diff compares as UUIDs: held as text in any spelling ('urn:uuid:...', upper case),
    each the UUID it reads as, as diff's keys are."""

    def text(self, key: dict[str, Any]) -> tuple[str, ...]:
        """A key's values as text, by column name: the same key, read by diff or straight from the
        target (a key may hold other columns too)."""
        return tuple(_uuid_text(key[c]) if c in self.uuids else str(key[c]) for c in sorted(self.columns))

    def holds(self, keys: set[tuple[str, ...]], key: dict[str, Any]) -> bool:
        """Whether ``key`` (a row's, by target column, maybe with other columns) is among ``keys``."""
        return self.text(key) in keys


def _uuid_text(value: Any) -> str:
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value).strip()))
    except ValueError:
        return str(value)


def _marked(job: Job, found: TableDiff, column: str | None) -> _Marked:
    """The target's rows a soft-delete ``column`` marks deleted, and those whose keys the source holds
    (every marked row but the extra ones diff found), to unmark. Where the source has a column of that
    name, diff compared it and sync sets it as the source has it: none. None for a table not compared
    to the end. A table read through the ID map is read so here too: its keys are the source's IDs, as
    diff's extra rows' are, and only the rows the copy wrote are read (never the live target's own)."""
    if not column or found.limited or found.stats.error:
        return _Marked()
    from parity.diff.plan import plan_table
    from parity.diff.sql import Side

    spec = next(t for t in job.selected() if (t.target or t.name) == found.stats.target_table)
    plan = replace(plan_table(job.source, job.target, spec), through_map=found.through_map)
    if column not in plan.target.column_names or any(p.target.name == column for p in plan.columns):
        return _Marked()
    side = Side(job.target, plan, "target")
    marker = side.sa_table.c[column]
    rows = side.run(side.rows([sa.not_(_unmarked(marker, plan.target.column(column).type.kind))]))
    names = [p.target.name for p in plan.keys]
    marked = _Marked(names, uuids=frozenset(p.target.name for p in plan.keys if p.compare.kind is Kind.UUID))
    extra = {marked.text(_target_row(d.key, d.names)) for d in found.differences if d.kind == "extra"}
    keys = [dict(zip(names, row[: len(names)], strict=True)) for row in rows]
    marked.present = [k for k in keys if marked.text(k) not in extra]
    marked.keys = {marked.text(k) for k in keys}
    return marked


def _soft_delete_value(ctype: CanonicalType) -> Any:
    """What marks a row deleted: true for a boolean column, the current time for a timestamp."""
    if ctype.kind is Kind.BOOLEAN:
        return True
    if ctype.kind is Kind.TIMESTAMPTZ:
        return datetime.now(timezone.utc)
    if ctype.kind is Kind.TIMESTAMP:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if ctype.kind in (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT):
        return 1
    raise ConfigError(f"--soft-delete needs a boolean, integer or timestamp column, not {ctype}")


Refused = Callable[[Any, list[dict[str, Any]], str], None]
"""Told of rows the target refused: the statement, the rows' parameters, and the database's reason."""


@dataclass
class RefusedInserts:
    """Inserts the target refused, kept to be tried once more after the deletes (a row whose key the
    target takes for an extra row's: 'a' for 'a ' where the collation ignores trailing spaces and
    case, which --delete deletes), then reported."""

    rows: list[tuple[Any, list[dict[str, Any]], str]] = field(default_factory=list)

    def keep(self, stmt: Any, params: list[dict[str, Any]], message: str) -> None:
        self.rows.append((stmt, params, message))

    def again(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The batches to try once more, forgotten here (those refused again are kept again)."""
        batches = [(stmt, params) for stmt, params, _ in self.rows]
        self.rows.clear()
        return batches

    def report(self, on_error: Refused) -> None:
        for stmt, params, message in self.rows:
            on_error(stmt, params, message)


def run_batches(
    endpoint: Endpoint,
    batches: Iterable[tuple[Any, list[dict[str, Any]]]],
    fk_checks: bool,
    on_error: Refused,
) -> int:
    """Run each batch in its own transaction; a batch the target refuses for a row's fault (a key
    taken, a value it cannot hold; not the statement itself, a lost connection, a timeout:
    ``endpoint.blames_rows``) is rolled back and run again a row at a time, each in a transaction of
    its own, so that the rows it takes are written and each one it refuses is reported (one refused
    row failed its whole batch of a thousand). A rerun whose first ``REFUSED_IN_A_ROW`` rows are all
    refused stops there, the rest reported with them untried (a CHECK every row breaks: a
    transaction a row, for nothing)."""
    done = 0
    for stmt, params in batches:
        try:
            done += _execute(endpoint, stmt, params, fk_checks)
        except sa.exc.DBAPIError as exc:
            if len(params) == 1 or not blames_rows(exc):
                on_error(stmt, params, driver_message(exc))
                continue
            in_a_row = 0
            for i, row in enumerate(params):
                if in_a_row == REFUSED_IN_A_ROW:
                    rest = params[i:]
                    on_error(
                        stmt,
                        rest,
                        f"{len(rest)} rows not tried, after {i} refused in a row: {driver_message(exc)}",
                    )
                    break
                try:
                    done += _execute(endpoint, stmt, [row], fk_checks)
                    in_a_row = 0
                except sa.exc.DBAPIError as refused:
                    in_a_row += 1
                    on_error(stmt, [row], driver_message(refused))
    return done


REFUSED_IN_A_ROW = 100
"""How many rows of a refused batch, each refused on its own, stop its rerun row by row."""


def _execute(endpoint: Endpoint, stmt: Any, params: list[dict[str, Any]], fk_checks: bool) -> int:
    with (
        endpoint.connect() as conn,
        conn.begin(),
        _fk_checks(conn, endpoint, fk_checks),
        _explicit_ids(conn, endpoint, stmt),
    ):
        result = conn.execute(stmt, params)
        return max(result.rowcount, 0) if result.rowcount not in (-1, None) else len(params)


EXPLICIT_IDS = "parity_explicit_ids"
"""The execution option of an INSERT that names the columns it gives values to (``_explicit_ids``)."""


def _explicit_ids(conn: Connection, endpoint: Endpoint, stmt: Any) -> AbstractContextManager[None]:
    """For an INSERT that gives its columns' values: whatever the database needs to take them even where
    it numbers the column itself (``Dialect.explicit_ids``)."""
    columns = stmt.get_execution_options().get(EXPLICIT_IDS)
    if not columns:
        return nullcontext()
    return endpoint.dialect.explicit_ids(conn, endpoint, stmt.table.name, columns)


@contextmanager
def _fk_checks(conn: Connection, endpoint: Endpoint, enabled: bool) -> Iterator[None]:
    """FK checks off for the batch's statements when not ``enabled``, and on again before the
    connection goes back to the pool (MySQL's switch is the session's; PostgreSQL's too, once committed)."""
    switch = endpoint.dialect.FK_CHECKS
    if enabled or not switch:
        yield
        return
    with switched(conn, switch, if_off_fails="ignore"):
        yield


@collected_less()
def sync(
    job: Job,
    *,
    dry_run: bool = False,
    extra: Extra = "keep",
    soft_delete_column: str | None = None,
    batch_size: int | None = None,
    fk_checks: bool = True,
    verify: bool = True,
    threads: int | None = None,
    detect_changes: bool = True,
    progress: Callable[[Any], None] | None = None,
    remap_ids: bool = False,
) -> SyncResult:
    """Make the target's selected tables equal to the source's, touching only what differs.

    With ``detect_changes``, a source whose binary log has not moved since the last successful sync
    of the same tables is skipped whole (MySQL/MariaDB); elsewhere each table's checksums are compared
    first, and identical tables download nothing. With ``remap_ids`` (or a job that sets
    ``remap_ids``), tables whose IDs the target assigned are written through its ID map (``_MappedIds``).
    ``progress``: called with the diff's progress reports (rows settled per table), as ``diff`` calls it.
    """
    from parity.diff import diff

    if extra == "soft-delete" and not soft_delete_column:
        raise ConfigError("--soft-delete needs the name of the column that marks a row deleted")
    job.target.check_writable()
    remap_ids = remap_ids or job.config.defaults.remap_ids
    batch_size = batch_size or min(job.config.defaults.batch_size, 5000)
    result = SyncResult()
    result.notes += [
        f"{name}: not in the target, not synced (parity copy makes it)" for name in job.common_tables()
    ]
    settings = {"extra": extra, "soft_delete": soft_delete_column, "remap_ids": remap_ids}
    watch = _LogWatch(job, settings) if detect_changes and not dry_run else None
    if watch is not None:
        unchanged = watch.unchanged()
        result.notes.append(watch.note)
        if unchanged:
            result.tables = [
                TableSync(t.name, t.target or t.name, skipped=watch.note) for t in job.selected()
            ]
            result.verified = True
            return result
    found = diff(  # (a table whose keys diff cannot compare fails alone)
        job, threads=threads, table_errors=(DataError,), remap_ids=remap_ids, progress=progress
    )
    for table in found.tables:
        if table.through_map is not None and not table.through_map.translates:
            raise table.through_map.refusal(table.stats.target_table, "sync")
    failed = _failed_tables(job, found.tables)
    result.tables += [
        TableSync(t.stats.table, t.stats.target_table, error=failed[t.stats.target_table])
        for t in found.tables
        if t.stats.target_table in failed
    ]
    found.tables = [t for t in found.tables if t.stats.target_table not in failed]
    # (a source column the target lacks is neither compared nor synced: said, not only in the diff's result)
    result.notes += [
        f"warning: {w}" + (" (nor synced)" if "not compared" in w else "")
        for t in found.tables
        for w in t.warnings
    ]
    result.tables += write_differences(
        job,
        found.tables,
        result.statements,
        dry_run=dry_run,
        extra=extra,
        soft_delete_column=soft_delete_column,
        batch_size=batch_size,
        fk_checks=fk_checks,
    )
    if verify and not dry_run and found.tables:
        again = diff(job, threads=threads, table_errors=(DataError,), remap_ids=remap_ids)
        again.tables = [t for t in again.tables if t.stats.target_table not in failed]
        left = [
            d
            for t in again.tables
            for d in t.differences
            if d.kind != "extra" or (extra != "keep" and not _references_only(t.through_map))
        ]
        left = [d for d in left if not (d.kind == "extra" and extra == "soft-delete")]
        column = soft_delete_column if extra == "soft-delete" else None
        marked = [m for t in again.tables for m in _marked(job, t, column).present]
        result.remaining = len(left) + len(marked)
        result.verified = not left and not marked
        if watch is not None and result.ok and result.verified:  # (else the next sync must not skip)
            watch.save()
    return result


def _failed_tables(job: Job, found: list[TableDiff]) -> dict[str, str]:
    """The tables diff could not compare (keys held twice, a column it cannot read ...), with why,
    and the tables that reference one of them, which wait for it (as copy leaves a failed table's
    children): by target name. The others are synced."""
    failed = {t.stats.target_table: t.stats.error for t in found if t.stats.error}
    if not failed:
        return {}
    rest = [t.stats.target_table for t in found if t.stats.target_table not in failed]
    tables = {t.name: t for t in _target_tables(job, rest)} if rest else {}
    waiting = True
    while waiting:
        waiting = False
        for name, table in tables.items():
            parent = next((fk.ref_table for fk in table.foreign_keys if fk.ref_table in failed), None)
            if name not in failed and parent is not None and parent != name:
                failed[name] = f"not synced: it references table '{parent}', which failed"
                waiting = True
    return {name: str(why) for name, why in failed.items()}


def write_differences(
    job: Job,
    found: list[TableDiff],
    statements: list[str],
    *,
    dry_run: bool,
    extra: Extra,
    soft_delete_column: str | None = None,
    batch_size: int,
    fk_checks: bool = True,
) -> list[TableSync]:
    """Write the differences of these tables into the target (``dry_run``: their SQL into
    ``statements``, in the order it runs): parents first inserts and updates, then the references
    waiting for rows inserted after their own, then children first the extra rows (``extra``), then
    refused inserts once more. Tables read through the ID map are written through it. (sync, and fix
    of a run diffed through the map.)"""
    order = _fk_order(job, [t.stats.target_table for t in found])
    by_target = {t.stats.target_table: t for t in found}
    targets = {t.name: t for t in _target_tables(job, order)}
    for name in order if extra == "soft-delete" and soft_delete_column else ():  # before any write
        if soft_delete_column not in targets[name].column_names:
            raise ConfigError(
                f"--soft-delete {soft_delete_column}: target table '{name}' has no such column"
                " (add it, or sync that table without --soft-delete)"
            )
    plans = {name: _TableWork(by_target[name], targets[name], soft_delete_column, extra) for name in order}
    if extra == "soft-delete":
        for name in order:
            plans[name].marked = _marked(job, by_target[name], soft_delete_column)
    with job.target.connect() as conn:
        for name in order:
            plans[name].auto_updated = job.target.dialect.auto_updated(conn, name, job.target.schema)
    appliers = {name: Applier(job.target, targets[name], batch_size, dry_run) for name in order}
    for name in order:
        appliers[name].uuid_keys = plans[name].uuid_keys(job.target.dialect)
        appliers[name].statements = statements  # (in the order they run: children's deletes first)
    outcomes = {name: TableSync(by_target[name].stats.table, name) for name in order}
    for name in order:  # before any write: every table can take its missing rows
        if missing := plans[name].missing:
            appliers[name].check_inserts(missing[0])
    started = time.perf_counter()
    coming = {name: plans[name].new_ids() for name in order}
    for name in order:
        plans[name].coming = coming
    for name in order:  # parents first: inserts and updates
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="upsert")
    for name in order:  # through the ID map: the references to rows inserted after their own (a cycle)
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="late")
    for name in reversed(order):  # children first: deletes
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="delete")
    for name in order:  # refused inserts once more, then reported
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="retry")
    for name in order:
        outcomes[name].failed += len(appliers[name].failures)
        outcomes[name].errors += appliers[name].failures
        outcomes[name].seconds = round(time.perf_counter() - started, 3)
    return [outcomes[name] for name in order]


class _LogWatch:
    """The source's log position, compared with the one saved after the last successful sync."""

    def __init__(self, job: Job, settings: dict[str, Any]) -> None:
        """``settings``: the sync's own (extra rows, the ID map), which, like each table's (its target,
        key, columns, where ...), make another sync: a change of them is no unmoved run to skip."""
        self.job, self.state = job, State(job.target)
        tables = sorted((t.model_dump(mode="json", exclude_none=True) for t in job.selected()), key=str)
        endpoints = [job.source.redacted(), job.source.schema, job.target.redacted(), job.target.schema]
        signature = json.dumps([*endpoints, tables, settings], sort_keys=True, default=str)
        self.task = "sync:" + hashlib.sha1(signature.encode()).hexdigest()[:24]
        self.position = self._read_position()
        if self.position is None:
            self.note = "change detection: the source has no binary log; comparing table checksums"
        elif _same_server(job.source, job.target):
            self.position = None
            self.note = "change detection: source and target share a server (parity's writes move its log); comparing table checksums"
        else:
            self.note = "change detection: binary log position " + self.position

    def _read_position(self) -> str | None:
        with self.job.source.connect() as conn:
            return self.job.source.dialect.log_position(conn)

    def unchanged(self) -> bool:
        """Whether the source's log has not moved since the last sync and the target's tables still
        hold what it left (their row count and row-hash sum): the target may change on its own."""
        if self.position is None:
            return False
        self.state.ensure()
        with self.job.target.connect() as conn:
            saved = self.state.task(conn, self.task)
        if not saved or saved.get("position") != self.position:
            return False
        if saved.get("target") != self._target_sums():
            self.note += "; the target changed since the last sync"
            return False
        self.note = (
            f"skipped: the source's binary log has not moved since the last sync ({self.position}), "
            "and the target's tables hold what it left"
        )
        return True

    def save(self) -> None:
        """Remember the position read before this sync's diff (later changes are seen next time), and
        the sums of the target's tables as the sync left them."""
        if self.position is None:
            return
        sums = self._target_sums()
        self.state.ensure()
        with self.job.target.begin() as conn:
            self.state.start_task(conn, self.task, {"position": self.position, "target": sums})

    def _target_sums(self) -> list[list[str]]:
        """Per table, the target's row count and sum of row hashes (diff's, as one aggregate): one
        read of the target's tables, none of the source's."""
        from parity.diff.plan import plan_table
        from parity.diff.sql import Side

        sums = []
        for spec in self.job.selected():
            side = Side(self.job.target, plan_table(self.job.source, self.job.target, spec), "target")
            rows = side.run(side.checksums(sa.literal(0), []))
            sums.append([spec.name, *(str(v) for v in (rows[0][1:] if rows else (0, 0)))])
        return sums


def _same_server(a: Endpoint, b: Endpoint) -> bool:
    return (
        a.backend == b.backend
        and (a.url.host, a.url.port) == (b.url.host, b.url.port)
        and a.url.host is not None
    )


@dataclass
class _TableWork:
    diff: Any
    table: Table
    soft_delete_column: str | None
    extra: Extra
    refused: RefusedInserts = field(default_factory=RefusedInserts)
    coming: dict[str, set[str]] = field(default_factory=dict)
    """The source's IDs of the rows this sync inserts, per target table with IDs of its own read
    through the ID map (shared by the tables): a reference to one may wait for it (a cycle)."""
    late: RemapSpec | None = None
    """Set as the table's new rows are written with references waiting for rows inserted after them."""
    waiting_updates: list[Any] = field(default_factory=list)
    """Changed rows whose new references are to rows of a table inserted after this one's updates."""
    retry_new: list[dict[str, Any]] = field(default_factory=list)
    """New rows whose natural key a changed row of this sync gives up: inserted after the updates."""
    after_deletes: list[dict[str, Any]] = field(default_factory=list)
    """New rows whose key an extra row to delete holds in another case (``_after_deletes``)."""
    marked: _Marked = field(default_factory=_Marked)
    """With ``--soft-delete``: the rows marked deleted, those among them to unmark (``_marked``)."""
    auto_updated: set[str] = field(default_factory=set)
    """Target columns the database sets itself when a row changes (``Dialect.auto_updated``): an
    UPDATE sets them to the source's values too, else MySQL's ON UPDATE rewrote them."""

    def key(self) -> list[str]:
        first = self.diff.differences[0] if self.diff.differences else None
        if first is None:
            return []
        return [first.names.get(k, k) for k in first.key]

    def uuid_keys(self, dialect: Dialect) -> set[str]:
        """The target's key columns that hold UUIDs as text, which diff compared as UUIDs."""
        found: set[str] = set()
        for d in self.diff.differences:  # (an extra row's key may be the target's text as it is)
            for k, v in d.key.items():
                name = d.names.get(k, k)
                if isinstance(v, UUID) and dialect.holds_uuid_as_text(self.table.column(name).type.kind):
                    found.add(name)
        return found

    @cached_property
    def missing(self) -> list[dict[str, Any]]:
        """The rows to insert, under the target's column names."""
        return [_target_row(d.source, d.names) for d in self.diff.differences if d.kind == "missing"]

    @property
    def through(self) -> ThroughMap | None:
        """How the table's IDs meet the source's, where diff read it through the ID map."""
        through = self.diff.through_map
        return through if through is not None and through.translates else None

    def new_ids(self) -> set[str]:
        """The source's IDs of the rows to insert, in a table with IDs of its own read through the map."""
        own = self.through.own if self.through is not None else None
        return {str(row[own]) for row in self.missing if row.get(own) is not None} if own else set()


def _target_row(values: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in values.items()}


def _held_key(d: Any) -> dict[str, Any]:
    """A changed or extra row's key as the target holds it, under the target's names: a UUID held as
    text in a spelling of its own ('urn:uuid:...', mixed case), a text with the trailing spaces diff
    did not compare (against a CHAR), SQLite's date held as text in a spelling of its own
    (``RowDiff.held``), is found as it is."""
    key = _target_row(d.key, d.names)
    if d.target is None:
        return key
    return {
        k: d.held[k] if k in d.held else d.target.get(k, v) if isinstance(v, UUID | str) else v
        for k, v in key.items()
    }


def _after_deletes(work: _TableWork, key: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The missing rows to insert with the other inserts, and those to insert after the deletes: with
    ``--delete``, a missing row whose key an extra row holds in another case or with trailing spaces
    (one key to a target that collates so): inserted first, the target refused it, and a dry run's SQL
    did not run as printed."""
    missing = work.missing
    if work.extra != "delete" or not key:
        return missing, []

    def folded(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(v.casefold().rstrip(" ") if isinstance(v, str) else v for v in (row.get(k) for k in key))

    extra = {folded(_held_key(d)) for d in work.diff.differences if d.kind == "extra"}
    if not extra:
        return missing, []
    first = [row for row in missing if folded(row) not in extra]
    return first, [row for row in missing if folded(row) in extra]


def _apply(
    job: Job,
    work: _TableWork,
    applier: Applier,
    outcome: TableSync,
    fk_checks: bool,
    dry_run: bool,
    phase: str,
) -> None:
    rows = work.diff.differences
    key = work.key()

    def on_error(stmt: Any, params: list[dict[str, Any]], message: str) -> None:
        outcome.failed += len(params)
        outcome.errors.append(applier.named(params[0], message) if len(params) == 1 else message)

    def run(batches: Iterable[tuple[Any, list[dict[str, Any]]]], refused: Refused = on_error) -> int:
        if dry_run:
            return sum(len(p) for _, p in batches)
        return run_batches(job.target, batches, fk_checks, refused)

    if work.through is not None:  # (its map read only for a phase with work)
        if phase == "retry":
            work.refused.report(on_error)  # (inserts the target refused: reported, not tried again)
        elif phase == "late":
            if work.late is not None or work.waiting_updates or work.retry_new:
                _MappedIds(job, work, applier, outcome, dry_run).apply(phase, key, run)
        elif phase == "upsert" or any(d.kind == "extra" for d in rows):
            _MappedIds(job, work, applier, outcome, dry_run).apply(phase, key, run)
        return
    if phase == "upsert":
        missing, work.after_deletes = _after_deletes(work, key)
        kept = work.auto_updated  # (set as the source has them, or the database would set them anew)
        changed = [
            (
                _held_key(d),
                {
                    d.names.get(c, c): d.source[c]
                    for c in d.source
                    if c in d.columns or d.names.get(c, c) in kept
                },
            )
            for d in rows
            if d.kind == "changed"
        ]
        marked, revive = work.marked, work.marked.present
        if work.soft_delete_column and revive:  # (a changed row marked deleted: unmarked by its UPDATE)
            column = work.soft_delete_column
            cleared = _not_deleted_value(applier.types[column])
            back = {marked.text(k) for k in revive}
            for row_key, values in changed:
                if marked.holds(back, row_key):
                    values[column] = cleared
            changing = {marked.text(row_key) for row_key, _ in changed}
            revive = [k for k in revive if marked.text(k) not in changing]
        outcome.inserted = run(applier.inserts(missing), work.refused.keep)
        if outcome.inserted and not dry_run:
            applier.advance_sequences(list(missing[0]))
        outcome.updated = run(applier.updates(key, changed))
        if work.soft_delete_column and revive:
            outcome.updated += run(applier.revivals(marked.columns, work.soft_delete_column, revive))
        return
    if phase == "late":
        return
    if phase == "retry":
        if work.after_deletes:  # (their keys are the deleted rows' in the target's collation)
            inserted = run(applier.inserts(work.after_deletes), work.refused.keep)
            outcome.inserted += inserted
            if inserted and not dry_run:
                applier.advance_sequences(list(work.after_deletes[0]))
        if work.refused.rows and outcome.deleted:
            inserted = run(work.refused.again(), work.refused.keep)
            outcome.inserted += inserted
            if inserted:
                applier.advance_sequences(list(work.missing[0]))
        work.refused.report(on_error)
        return
    extra = [_held_key(d) for d in rows if d.kind == "extra"]
    if work.extra == "delete":
        outcome.deleted = run(applier.deletes(key, extra))
    elif work.extra == "soft-delete" and work.soft_delete_column:
        marked = work.marked  # (marked before: not again, so that a dry run counts what the run does)
        extra = [k for k in extra if not marked.holds(marked.keys, k)] if marked.keys else extra
        outcome.soft_deleted = run(applier.soft_deletes(key, work.soft_delete_column, extra))
    else:
        outcome.extra_kept = len(extra)


class _MappedIds:
    """One phase of a table read through the ID map (``sync --remap-ids``): the source's IDs in its
    keys and references become the target's, read from ``_parity_id_map`` as the phase starts (after
    the parents' inserts); a missing row of a table with IDs of its own is inserted as copy inserts it
    (``RemapWriter``: the target assigns the ID, the map records it); a deleted row's map entry goes."""

    def __init__(
        self, job: Job, work: _TableWork, applier: Applier, outcome: TableSync, dry_run: bool
    ) -> None:
        assert work.through is not None
        self.job, self.work, self.applier, self.outcome, self.dry_run = job, work, applier, outcome, dry_run
        self.through = work.through
        self.table = applier.table.name
        self.state = State(job.target, waits=SYNC_WAITS)
        self.maps: dict[str, dict[str, Any]] = {}
        self.stuck: dict[str, set[str]] = {}
        """NOT NULL references of new rows to rows this sync inserts (``_late``), by column."""
        self.load()

    def forget_dangling(self) -> int:
        """Take back the map entries whose target rows are gone (deleted by the target's application,
        or by a sync killed before it took them back): a target that gives a deleted row's ID again
        would have its new row read as the copy's. Returns how many."""
        own = self.through.own
        if own is None or self.dry_run:
            return 0
        m = self.state.id_map
        table = sa.table(self.table, sa.column(own), schema=self.job.target.schema)
        there = sa.exists().where(table.c[own] == sa.cast(m.c.new_id, sa.BigInteger()))  # (by its key)
        with self.job.target.begin() as conn:
            gone = conn.execute(sa.delete(m).where(m.c.table_name == self.table, ~there)).rowcount
        if gone:
            self.load()
        return int(gone or 0)

    def load(self) -> None:
        """The map's old -> new IDs of the table's IDs and of each reference's parent, as now."""
        maps = IdMaps(self.state)
        with self.job.target.connect() as conn:
            self.maps = {c: maps.of(conn, parent) for c, parent in self.through.references.items()}
            if self.through.own:
                self.maps[self.through.own] = maps.of(conn, self.table)

    def apply(self, phase: str, key: list[str], run: Callable[..., int]) -> None:
        rows = self.work.diff.differences
        if phase == "upsert" and self.dry_run and rows:
            assigned = f"; the target assigns {self.through.own} of a new row, and the run records it there"
            self.applier.statements.append(
                f"-- {self.table}: IDs through _parity_id_map{assigned if self.through.own else ''}"
                " (review: run by hand, this SQL would not record them)"
            )
        if phase == "upsert":
            self.forget_dangling()
            if not self.dry_run:  # (the diff found what they were to set: changed rows, updated below)
                with self.job.target.begin() as conn:
                    self.state.forget_waits(conn, self.table)
            self.outcome.inserted = self.insert(self.work.missing, run)
            if self.outcome.inserted and not self.dry_run:
                self.load()  # (an update may point at a row just inserted, of this table too)
            self.outcome.updated = self.update([d for d in rows if d.kind == "changed"], key, run)
            self.outcome.updated += self.revive(rows, run)
        elif phase == "late":
            if self.work.retry_new:
                again, self.work.retry_new = self.work.retry_new, []
                self.outcome.inserted += self.write_new(again, final=True)
                self.load()
            if self.work.late is not None:
                _, left = fix_late_references(self.job.target, self.table, self.work.late, IdMaps(self.state))
                if left:
                    self.outcome.failed += left
                    self.outcome.errors.append(
                        f"{self.table}: {left} new rows keep NULL in a reference to a row the target refused"
                    )
            waiting, self.work.waiting_updates = self.work.waiting_updates, []
            self.outcome.updated += self.update(waiting, key, run, late=True)
        elif phase == "delete":
            extra = [
                k
                for d in rows
                if d.kind == "extra" and self.through.own and (k := self.target_key(_held_key(d))) is not None
            ]
            self.outcome.extra_kept = sum(d.kind == "extra" for d in rows) - len(extra)
            if self.work.extra == "delete":
                self.outcome.deleted = run(self.applier.deletes(key, extra))
                if not self.dry_run:
                    self.forget_deleted(extra)
            elif self.work.extra == "soft-delete" and self.work.soft_delete_column:
                column, marked = self.work.soft_delete_column, self.work.marked
                unmarked = [  # (marked before: not again, so that a dry run counts what the run does)
                    k
                    for d in rows
                    if d.kind == "extra"
                    and not marked.holds(marked.keys, _target_row(d.key, d.names))
                    and (k := self.target_key(_held_key(d))) is not None
                ]
                self.outcome.soft_deleted = run(self.applier.soft_deletes(key, column, unmarked))
            else:
                self.outcome.extra_kept += len(extra)

    def revive(self, rows: list[Any], run: Callable[..., int]) -> int:
        """With ``--soft-delete``: the rows marked deleted whose source rows are there again, unmarked by
        their new IDs; the count of those that were no changed row (updated already)."""
        column, marked = self.work.soft_delete_column, self.work.marked
        if not column or not marked.present:
            return 0
        keys = [k for k in map(self.target_key, marked.present) if k is not None]
        changed = {marked.text(_target_row(d.key, d.names)) for d in rows if d.kind == "changed"}
        done = run(self.applier.revivals(marked.columns, column, keys))
        return max(0, done - sum(1 for k in marked.present if marked.text(k) in changed))

    def update(self, rows: list[Any], key: list[str], run: Callable[..., int], late: bool = False) -> int:
        """Changed rows, by their new IDs and with their references translated; one whose new
        reference is to a row of a table inserted after this one's waits for the late phase (``late``:
        this is it, and a reference still without its row, refused, fails the row with its reason)."""
        changed, waiting = [], []
        for d in rows:
            target_key = self.target_key(_held_key(d))
            changes = {d.names.get(c, c): d.source[c] for c in d.columns}
            values, why = self.target_values(changes, new=self.dry_run)  # (a dry run inserted no parent)
            why = why or (self._unheld(changes) if self.dry_run else None)
            if why and not self.dry_run and not late and self._coming(changes):
                self.work.waiting_updates.append(d)
                continue
            if target_key is None or why:
                self.fail(d.key, why or "its ID is not in the ID map any more")
                continue
            changed.append((target_key, values))
            waiting.append(self._waits(changes))
        if self.dry_run:
            updates = list(zip(changed, waiting, strict=True))
            return self.printed(updates, lambda c: self.applier.updates(key, c), run)
        return run(self.applier.updates(key, changed))

    def _coming(self, values: dict[str, Any]) -> bool:
        """Whether every reference in the values the map lacks is to a row this sync inserts later."""
        unknown = [
            (c, str(values[c]))
            for c in self.through.references
            if values.get(c) is not None and str(values[c]) not in self.maps[c]
        ]
        return bool(unknown) and all(
            v in self.work.coming.get(self.through.references[c], set()) for c, v in unknown
        )

    def fail(self, key: Any, why: str) -> None:
        self.outcome.failed += 1
        self.outcome.errors.append(f"{self.table} {json.dumps(key, default=str, ensure_ascii=False)}: {why}")

    def target_key(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """A key with the source's IDs (or a target's ``unmapped:N``) as the target holds it; None
        where the map does not hold one."""
        out = dict(key)
        for column, value in key.items():
            ids = self.maps.get(column)
            if ids is None or value is None:
                continue
            if isinstance(value, str) and value.startswith(UNMAPPED_TEXT):
                out[column] = int(value[len(UNMAPPED_TEXT) :])
            elif (new := ids.get(str(value))) is not None:
                out[column] = new
            else:
                return None
        return out

    def target_values(self, values: dict[str, Any], new: bool = False) -> tuple[dict[str, Any], str | None]:
        """The values with their references (and IDs) as the target's, or why one cannot be; ``new``:
        a row to insert (its own ID is the target's to give, and a reference may be to a row this run
        inserts, which ``RemapWriter`` maps as it goes)."""
        out = dict(values)
        for column, ids in self.maps.items():
            value = values.get(column)
            if value is None or (new and column == self.through.own):
                continue
            found = ids.get(str(value))
            if found is None and not new:
                parent = self.through.references.get(column, self.table)
                return out, f"{column}={value}: no row with that ID in the ID map of {parent}"
            out[column] = value if found is None else found
        return out, None

    def insert(self, rows: list[dict[str, Any]], run: Callable[..., int]) -> int:
        own = self.through.own
        kept = []
        for row in rows:  # (values the target would change, refused by their source key, as elsewhere)
            why = self.applier.refusal(row)
            if why is None:
                kept.append(row)
                continue
            self.fail({c: row.get(c) for c in self.work.key()}, why)
            if own is not None and row.get(own) is not None:  # (a row referencing it waits for nothing)
                self.work.coming.get(self.table, set()).discard(str(row[own]))
        rows = kept
        if not rows:
            return 0
        if own is None:  # (a table of references only: written as any table, its references translated)
            ready = []
            for row in rows:
                values, why = self.target_values(row, new=self.dry_run)
                why = why or (self._unheld(row) if self.dry_run else None)
                if why:
                    self.fail({c: row.get(c) for c in self.work.key()}, why)
                else:
                    ready.append((values, self._waits(row)))
            if self.dry_run:
                return self.printed(ready, self.applier.inserts, run)
            return run(self.applier.inserts([values for values, _ in ready]), self.work.refused.keep)
        if self.dry_run:  # (the target assigns the IDs: printed without them)
            shown = []
            for row in rows:
                why = self._unheld(row, inserted=True)
                if why:
                    self.fail({c: row.get(c) for c in self.work.key()}, why)
                else:
                    shown.append((_without(self.target_values(row, new=True)[0], own), self._waits(row)))
            return self.printed(shown, self.applier.inserts, run)
        return self.write_new(rows)

    def printed(
        self, rows: list[tuple[Any, bool]], statements: Callable[[list[Any]], Any], run: Callable[..., int]
    ) -> int:
        """A dry run's statements of these rows, each with whether it waits for a row inserted above
        (``_waits``); those that wait commented out: the run takes the new ID from the map, and here
        the source's is in its place (run as printed, it would name another row)."""
        waiting = [r for r, waits in rows if waits]
        done = run(statements([r for r, waits in rows if not waits]))
        if waiting:
            self.applier.statements.append(
                f"-- {self.table}: {len(waiting)} rows reference rows inserted above, whose new IDs the run "
                "takes from the map (here the source's IDs, commented out):"
            )
            before = len(self.applier.statements)
            done += run(statements(waiting))
            self.applier.statements[before:] = [  # (every line: a value's line break ends a comment)
                "\n".join(f"-- {line}" for line in s.splitlines()) for s in self.applier.statements[before:]
            ]
        return done

    def _unheld(self, values: dict[str, Any], inserted: bool = False) -> str | None:
        """Why the sync refuses a row, as its dry run says it: a reference to a row that neither the ID
        map holds nor this sync inserts (``inserted``: a row of its own ID, said as ``RemapWriter``
        says it)."""
        for column, parent in self.through.references.items():
            value = values.get(column)
            if value is None or str(value) in self.maps[column]:
                continue
            if str(value) not in self.work.coming.get(parent, set()):
                where = f"was copied into {parent}" if inserted else f"in the ID map of {parent}"
                return f"{column}={value}: no row with that ID {where}"
        return None

    def _waits(self, values: dict[str, Any]) -> bool:
        """Whether a reference in the (source's) values is to a row the map does not hold yet."""
        return any(
            values.get(c) is not None and str(values[c]) not in self.maps[c] for c in self.through.references
        )

    def write_new(self, rows: list[dict[str, Any]], final: bool = False) -> int:
        """Rows of a table with IDs of its own, written as copy writes them. A map entry left by a row
        deleted from the target since is taken back; one whose row is there (outside the compared rows:
        another condition) is a failure, not a second row. A row refused as its natural key is the
        row of another source row whose natural key this sync changes is written again in the late
        phase, after the updates (``final``: this is it)."""
        own = self.through.own
        assert own is not None
        columns = [c for c in rows[0] if c not in self.applier.computed]
        types = [self.applier.types[c] for c in columns]
        written = 0
        with self.job.target.begin() as conn:
            rows = self._take_back_stale(conn, rows)
            rows, late = self._late(rows)
            spec = RemapSpec(own, self._natural_key(), dict(self.through.references), late)
            leaving = self._leaving()
            maps = IdMaps(self.state)
            writer = RemapWriter(
                conn,
                self.job.target,
                self.table,
                columns,
                types,
                spec,
                maps,
                shared_natural=False,
                shares=lambda old: old not in leaving,
            )

            refused: list[tuple[Any, str]] = []

            def reject(row: tuple[Any, ...], why: str) -> None:
                refused.append((row[columns.index(own)], why))

            rows = _parents_first(
                rows, own, [c for c, p in self.through.references.items() if p == self.table]
            )
            size = self.applier.batch_size
            for start in range(0, len(rows), size):
                batch = [
                    tuple(
                        self.applier.held(c, as_kind(row.get(c), t.kind))
                        for c, t in zip(columns, types, strict=True)
                    )
                    for row in rows[start : start + size]
                ]
                written += writer.write(batch, reject)[0]
        freed = set() if final else self._natural_changing()
        by_id = {str(row.get(own)): row for row in rows}
        for old, why in refused:
            if writer.taken_by.get(str(old)) in freed and str(old) in by_id:
                self.work.retry_new.append(by_id[str(old)])
            else:
                self.fail({own: old}, self._why_stuck(by_id.get(str(old)), why))
        if late:  # (a second write of the table, in the late phase, adds its own)
            held = self.work.late
            self.work.late = spec if held is None else replace(spec, late=held.late | spec.late)
        self._update_matched(writer.matched)
        return written

    def _why_stuck(self, row: dict[str, Any] | None, why: str) -> str:
        """The reason a new row was refused, naming the cycle where a NOT NULL reference waited for a
        row this sync inserts after it (the writer says only that its parent has no new ID)."""
        for column, coming in self.stuck.items():
            value = None if row is None else row.get(column)
            if why.startswith(f"{column}=") and "no row with that ID" in why and str(value) in coming:
                parent = self.through.references[column]
                return (
                    f"{column}={value}: a row of {parent} this sync inserts after it (a cycle), and "
                    f"{column} is NOT NULL: it cannot wait for that row's new ID"
                )
        return why

    def _natural_changing(self) -> set[str]:
        """The source IDs of this sync's changed rows whose natural key changes."""
        own, natural = self.through.own, set(self._natural_key())
        if own is None or not natural:
            return set()
        return {
            str(_target_row(d.source, d.names).get(own))
            for d in self.work.diff.differences
            if d.kind == "changed" and natural & {d.names.get(c, c) for c in d.columns}
        }

    def _update_matched(self, matched: set[str]) -> None:
        """New source rows mapped to a target row by their natural key take that row (copy leaves
        it as it was): its values become the source's in the late phase, once every new row has its
        ID (else the run's own check finds them changed, and only the next sync converges)."""
        own = self.through.own
        if not matched or own is None:
            return
        for d in self.work.diff.differences:
            if d.kind == "missing" and str(_target_row(d.source, d.names).get(own)) in matched:
                columns = tuple(c for c in d.source if c not in d.key and d.names.get(c, c) != own)
                self.work.waiting_updates.append(
                    RowDiff(d.table, d.key, "changed", columns, d.source, None, d.names)
                )

    def _late(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], frozenset[str]]:
        """The references of new rows that may wait for a row this sync inserts after them (a cycle,
        within the table or across tables): written NULL, then set (``fix_late_references``) once
        all tables' rows are in; a nullable column only. A row whose such reference is to no row,
        mapped or coming, is refused here (written, it would keep NULL)."""
        own = self.through.own
        assert own is not None
        late, lost = set(), set()
        for column, parent in self.through.references.items():
            unknown = {str(r[column]) for r in rows if r.get(column) is not None} - set(self.maps[column])
            coming = unknown & self.work.coming.get(parent, set())
            if coming and self.applier.table.column(column).nullable:
                late.add(column)
                lost |= {(column, v) for v in unknown - coming}
            elif coming:  # (a parent written before it, of this table, is found; else refused: why)
                self.stuck[column] = coming
        if not lost:
            return rows, frozenset(late)
        kept = []
        for row in rows:
            gone = next((c for c in late if (c, str(row.get(c))) in lost), None)
            if gone is None:
                kept.append(row)
            else:
                parent = self.through.references[gone]
                self.fail(
                    {own: row.get(own)},
                    f"{gone}={row[gone]}: no row with that ID in the ID map of {parent}",
                )
        return kept, frozenset(late)

    def _natural_key(self) -> tuple[str, ...]:
        """The table's ``natural_key`` (target names): a new row whose natural key the target holds is
        mapped to that row, as copy maps it, not inserted beside it."""
        name = self.work.diff.stats.table
        spec = next((t for t in self.job.selected() if t.name == name), None)
        return tuple(spec.map.get(c, c) for c in spec.natural_key or ()) if spec else ()

    def _leaving(self) -> set[str]:
        """The source IDs (text) whose target rows this sync takes from their natural key: rows gone
        from the source, and rows changing a natural-key column. A new row whose natural key matches
        the target row of another source row shares it (as copy maps such rows) unless that row is one
        of these (then it would be two rows in one)."""
        own = self.through.own
        natural = set(self._natural_key())
        if own is None:
            return set()
        return {
            str(_target_row(d.key, d.names).get(own))
            for d in self.work.diff.differences
            if d.kind == "extra" or (d.kind == "changed" and natural & {d.names.get(c, c) for c in d.columns})
        }

    def _take_back_stale(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        own = self.through.own
        assert own is not None
        stale = {str(r[own]): self.maps[own][str(r[own])] for r in rows if str(r[own]) in self.maps[own]}
        if not stale:
            return rows
        there = self._present(conn, list(stale.values()))
        holders = Counter(map(str, self.maps[own].values()))
        # (a row the map gives several source rows, this one's natural key changed since: the share
        # ends, and the row stays the others'; ``ThroughMap.split``)
        split = {old for old, new in stale.items() if new in there and holders[str(new)] > 1}
        for old, new in stale.items():
            if new in there and old not in split:
                self.fail({own: old}, f"the target's row {own}={new} holds its ID, outside the compared rows")
        self._forget(conn, [old for old, new in stale.items() if new not in there or old in split])
        return [r for r in rows if stale.get(str(r[own])) not in there or str(r[own]) in split]

    def _present(self, conn: Connection, news: list[Any]) -> set[Any]:
        """Those of the target's IDs whose rows are there."""
        own = self.through.own
        assert own is not None
        table = sa.table(self.table, sa.column(own), schema=self.job.target.schema)
        found: set[Any] = set()
        for start in range(0, len(news), 500):
            chosen = sa.select(table.c[own]).where(table.c[own].in_(news[start : start + 500]))
            found.update(conn.execute(chosen).scalars())
        return found

    def _forget(self, conn: Connection, olds: list[str]) -> None:
        m = self.state.id_map
        for start in range(0, len(olds), 500):
            gone = olds[start : start + 500]
            conn.execute(sa.delete(m).where(m.c.table_name == self.table, m.c.old_id.in_(gone)))

    def forget_deleted(self, keys: list[dict[str, Any]]) -> None:
        """The map entries of the rows deleted (those still there, refused, keep theirs)."""
        own = self.through.own
        if own is None or not keys:
            return
        news = [k[own] for k in keys if own in k]
        with self.job.target.begin() as conn:
            there = self._present(conn, news)
            gone = [str(n) for n in news if n not in there]  # (every source row that shared the row:
            m = self.state.id_map  # their entries pointed a later row of a reused ID at it)
            for start in range(0, len(gone), 500):
                chunk = gone[start : start + 500]
                conn.execute(sa.delete(m).where(m.c.table_name == self.table, m.c.new_id.in_(chunk)))


def _references_only(through: ThroughMap | None) -> bool:
    """A table read through the ID map that has no IDs of its own: nothing records which of its rows
    the copy wrote, so its extra rows are kept, not deleted (one may be the live target's, under a
    parent matched by its natural key), and do not count against the sync."""
    return through is not None and through.translates and not through.own


def _parents_first(rows: list[dict[str, Any]], own: str, references: list[str]) -> list[dict[str, Any]]:
    """New rows of a table referencing itself, each after the new rows it references (whose new IDs
    it takes); rows of a cycle among them stay in their order (refused, with the reason)."""
    if not references:
        return rows
    index = {str(row[own]): i for i, row in enumerate(rows)}
    waits_for: dict[int, set[int]] = {}
    children: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        parents = {
            index[str(row[c])] for c in references if row.get(c) is not None and str(row[c]) in index
        } - {i}
        waits_for[i] = parents
        for parent in parents:
            children.setdefault(parent, []).append(i)
    ready = [i for i in range(len(rows)) if not waits_for[i]]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for child in children.get(i, []):
            waits_for[child].discard(i)
            if not waits_for[child]:
                ready.append(child)
    placed = set(order)
    return [rows[i] for i in order] + [row for i, row in enumerate(rows) if i not in placed]


def _without(values: dict[str, Any], column: str) -> dict[str, Any]:
    return {c: v for c, v in values.items() if c != column}


def _fk_order(job: Job, targets: list[str]) -> list[str]:
    from parity.schema.order import fk_order

    tables = _target_tables(job, targets)
    order, _ = fk_order(tables)
    return order


def _target_tables(job: Job, names: list[str]) -> list[Table]:
    from parity.schema.reflect import reflect

    return reflect(job.target, names)
