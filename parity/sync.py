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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from datetime import time as time_of_day
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity import bulk
from parity.endpoint import Endpoint, blames_rows, driver_message, refuse_given_ids, switched
from parity.errors import ConfigError, ParityError
from parity.job import Job
from parity.log import logger
from parity.schema.model import Table
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind
from parity.sqltext import as_sent
from parity.values import UUID_SPELLINGS, canonical_json, uuid_spellings

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
        return all(not t.failed for t in self.tables) and self.verified is not False

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
        return self._literal(name, text) if name in self.uuid_keys else sa.literal(text, sa.String())

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
        kind = self.types[column.name].kind
        if kind is Kind.BOOLEAN:
            return sa.or_(column.is_(None), column == sa.false())
        if kind in INTEGER_KINDS:
            return sa.or_(column.is_(None), column == 0)
        return column.is_(None)

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
) -> SyncResult:
    """Make the target's selected tables equal to the source's, touching only what differs.

    With ``detect_changes``, a source whose binary log has not moved since the last successful sync
    of the same tables is skipped whole (MySQL/MariaDB); elsewhere each table's checksums are compared
    first, and identical tables download nothing.
    """
    from parity.diff import diff

    if extra == "soft-delete" and not soft_delete_column:
        raise ConfigError("--soft-delete needs the name of the column that marks a row deleted")
    batch_size = batch_size or min(job.config.defaults.batch_size, 5000)
    result = SyncResult()
    result.notes += [
        f"{name}: not in the target, not synced (parity copy makes it)" for name in job.common_tables()
    ]
    watch = _LogWatch(job) if detect_changes and not dry_run else None
    if watch is not None:
        result.notes.append(watch.note)
        if watch.unchanged():
            result.tables = [
                TableSync(t.name, t.target or t.name, skipped=watch.note) for t in job.selected()
            ]
            result.verified = True
            return result
    found = diff(job, threads=threads, table_errors=False)  # (every table compared, or no write)
    for table in found.tables:
        if table.through_map is not None:
            raise table.through_map.refusal(table.stats.target_table, "sync")
    # (a source column the target lacks is neither compared nor synced: said, not only in the diff's result)
    result.notes += [f"warning: {w} (nor synced)" for t in found.tables for w in t.warnings]
    order = _fk_order(job, [t.stats.target_table for t in found.tables])
    by_target = {t.stats.target_table: t for t in found.tables}
    targets = {t.name: t for t in _target_tables(job, order)}
    plans = {name: _TableWork(by_target[name], targets[name], soft_delete_column, extra) for name in order}
    appliers = {name: Applier(job.target, targets[name], batch_size, dry_run) for name in order}
    for name in order:
        appliers[name].uuid_keys = plans[name].uuid_keys()
        appliers[name].statements = result.statements  # (in the order they run: children's deletes first)
    outcomes = {name: TableSync(by_target[name].stats.table, name) for name in order}
    for name in order:  # before any write: every table can take its missing rows
        if missing := plans[name].missing:
            appliers[name].check_inserts(missing[0])
    started = time.perf_counter()
    for name in order:  # parents first: inserts and updates
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="upsert")
    for name in reversed(order):  # children first: deletes
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="delete")
    for name in order:  # refused inserts once more, then reported
        _apply(job, plans[name], appliers[name], outcomes[name], fk_checks, dry_run, phase="retry")
    for name in order:
        outcomes[name].seconds = round(time.perf_counter() - started, 3)
        result.tables.append(outcomes[name])
    if verify and not dry_run:
        again = diff(job, threads=threads, table_errors=False)
        left = [d for t in again.tables for d in t.differences if d.kind != "extra" or extra != "keep"]
        left = [d for d in left if not (d.kind == "extra" and extra == "soft-delete")]
        result.remaining = len(left)
        result.verified = not left
        if watch is not None and result.ok:
            watch.save()
    return result


class _LogWatch:
    """The source's log position, compared with the one saved after the last successful sync."""

    def __init__(self, job: Job) -> None:
        from parity.state import State

        self.job, self.state = job, State(job.target)
        names = sorted(f"{t.name}:{t.target or t.name}" for t in job.selected())
        signature = json.dumps(
            [job.source.redacted(), job.source.schema, job.target.redacted(), job.target.schema, names]
        )
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
        if self.position is None:
            return False
        self.state.ensure()
        with self.job.target.connect() as conn:
            saved = self.state.task(conn, self.task)
        if saved and saved.get("position") == self.position:
            self.note = (
                f"skipped: the source's binary log has not moved since the last sync ({self.position})"
            )
            return True
        return False

    def save(self) -> None:
        """Remember the position read before this sync's diff: later changes are seen next time."""
        if self.position is None:
            return
        self.state.ensure()
        with self.job.target.begin() as conn:
            self.state.start_task(conn, self.task, {"position": self.position})


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

    def key(self) -> list[str]:
        first = self.diff.differences[0] if self.diff.differences else None
        if first is None:
            return []
        return [first.names.get(k, k) for k in first.key]

    def uuid_keys(self) -> set[str]:
        """The target's key columns that hold UUIDs as text, which diff compared as UUIDs."""
        found: set[str] = set()
        for d in self.diff.differences:  # (an extra row's key may be the target's text as it is)
            for k, v in d.key.items():
                name = d.names.get(k, k)
                if isinstance(v, UUID) and self.table.column(name).type.kind in STRING_KINDS:
                    found.add(name)
        return found

    @cached_property
    def missing(self) -> list[dict[str, Any]]:
        """The rows to insert, under the target's column names."""
        return [_target_row(d.source, d.names) for d in self.diff.differences if d.kind == "missing"]


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
        outcome.errors.append(message)

    def run(batches: Iterable[tuple[Any, list[dict[str, Any]]]], refused: Refused = on_error) -> int:
        if dry_run:
            return sum(len(p) for _, p in batches)
        return run_batches(job.target, batches, fk_checks, refused)

    if phase == "upsert":
        missing = work.missing
        changed = [
            (_held_key(d), {d.names.get(c, c): d.source[c] for c in d.columns})
            for d in rows
            if d.kind == "changed"
        ]
        outcome.inserted = run(applier.inserts(missing), work.refused.keep)
        if outcome.inserted and not dry_run:
            applier.advance_sequences(list(missing[0]))
        outcome.updated = run(applier.updates(key, changed))
        return
    if phase == "retry":
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
        outcome.soft_deleted = run(applier.soft_deletes(key, work.soft_delete_column, extra))
    else:
        outcome.extra_kept = len(extra)


def _fk_order(job: Job, targets: list[str]) -> list[str]:
    from parity.schema.order import fk_order

    tables = _target_tables(job, targets)
    order, _ = fk_order(tables)
    return order


def _target_tables(job: Job, names: list[str]) -> list[Table]:
    from parity.schema.reflect import reflect

    return reflect(job.target, names)
