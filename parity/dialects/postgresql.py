"""PostgreSQL: exact types for nearly everything; COPY for bulk paths."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from parity.dialects.base import Dialect
from parity.schema.model import Column
from parity.schema.types import STRING_KINDS, Kind

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


def _column_list_end(text: str) -> int:
    """Where the column list of a compiled ``INSERT INTO t (a, b) ...`` ends (after its ``)``): the first
    parenthesis pair outside double-quoted names."""
    depth, quoted = 0, False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted  # (a doubled "" inside a name toggles twice)
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")" and depth == 1:
            return i + 1
    raise ValueError(f"no column list in {text[:80]!r}")


for _insert in (sa.sql.dml.Insert, postgresql.Insert):
    _insert.argument_for("postgresql", "overriding_system_value", False)

    @compiles(_insert, "postgresql")
    def _overriding(element: Any, compiler: Any, **kw: Any) -> str:
        """``OVERRIDING SYSTEM VALUE`` after the column list of an INSERT marked by ``explicit_values``."""
        text: str = compiler.visit_insert(element, **kw)
        if not element.dialect_options["postgresql"]["overriding_system_value"]:
            return text
        end = _column_list_end(text)
        return f"{text[:end]} OVERRIDING SYSTEM VALUE{text[end:]}"


class PostgreSQL(Dialect):
    ANALYZE = "ANALYZE {table}"

    def reserve_ids(
        self, conn: Connection, target: Endpoint, table: str, column: str, count: int
    ) -> list[int] | None:
        """From the column's sequence (serial or identity), as many values as rows, in one query (NULLs
        where the column has none): COPY then writes the rows with them (COPY gives even a GENERATED
        ALWAYS column the values it reads). The sequence is found once, by a subquery (an InitPlan):
        in the call's argument, PostgreSQL looked it up for every row (20,000 IDs: 75 ms, against 9)."""
        taken = sa.text(
            "SELECT nextval((SELECT CAST(pg_get_serial_sequence(:table, :column) AS regclass)))"
            " FROM generate_series(1, :count)"
        )
        ids = (
            conn.execute(taken, {"table": target.qualified(table), "column": column, "count": count})
            .scalars()
            .all()
        )
        return None if not ids or ids[0] is None else sorted(ids)

    @contextmanager
    def planned_anew(self, conn: Connection, probes: bool = False) -> Iterator[None]:
        """The driver prepares a statement run five times, and the server may then keep a generic plan:
        made while a table being loaded was small, a sequential scan of it, query after query (natural
        keys looked for in a copy: 200,000 rows did not end in four minutes). And no parallel workers:
        starting them took 20 ms of each such query's 25 ms. For the block only (``SET LOCAL``, then
        back): for the whole transaction, the foreign keys' checks of every row written were planned
        anew too (250,000 rows: 2.6 s more). ``probes``: no hash or merge join, no sequential scan (20,000
        IDs looked up in the ID map, 1.25M pairs: a hash join over the table's 400,000 took 0.43 s, index
        probes 0.13 s; the map grows by as many with each batch)."""
        names = ["max_parallel_workers_per_gather"]
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        if probes:
            for name in ("enable_hashjoin", "enable_mergejoin", "enable_seqscan"):
                conn.exec_driver_sql(f"SET LOCAL {name} = off")
                names.append(name)
        if _from_12(conn):  # (plan_cache_mode is PostgreSQL 12's)
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
            names.append("plan_cache_mode")
        yield  # (not after an error: the transaction, or the savepoint the error rolls back, ends them)
        for name in names:
            conn.exec_driver_sql(f"SET LOCAL {name} TO DEFAULT")

    def compares_exactly(self, conn: Connection, table: sa.TableClause, columns: Sequence[str]) -> bool:
        """Columns of text or varchar under a deterministic collation compare their bytes, columns of no
        collation (numbers, dates) their values (a char(n) ignores trailing spaces; citext, a domain of
        text or a nondeterministic collation may fold more)."""
        found = _catalog_columns(conn, table, columns)
        return set(found) == set(columns) and all(exact for _, exact in found.values())

    def key_rows(
        self, conn: Connection, table: sa.TableClause, columns: Sequence[str]
    ) -> sa.FromClause | None:
        """``unnest`` of one array a column, ``WITH ORDINALITY``, which the planner joins to the key's
        index (20,000 keys of two columns in 0.1 s, where an OR of 180 keys' equalities took 4 ms). Each
        array is of its column's own type as the catalog spells it: a citext, a domain, a collation of
        its own compare as the column does."""
        spelled = {name: spelling for name, (spelling, _) in _catalog_columns(conn, table, columns).items()}
        if set(spelled) != set(columns):
            return None
        arrays = [
            sa.bindparam(f"k{i}", type_=postgresql.ARRAY(_Spelled(spelled[c]))) for i, c in enumerate(columns)
        ]
        names = [f"k{i}" for i in range(len(columns))]
        return sa.func.unnest(*arrays).table_valued(*names, with_ordinality="n").render_derived()

    def bind_key_rows(
        self, conn: Connection, rows: sa.FromClause, keys: Sequence[tuple[Any, ...]]
    ) -> dict[str, Any]:
        return {f"k{i}": list(values) for i, values in enumerate(zip(*keys, strict=True))}

    def update_rows(
        self,
        conn: Connection,
        table: sa.TableClause,
        keys: Sequence[str],
        changed: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> int | None:
        """One UPDATE ... FROM ``unnest`` of one array a column, each of its column's own type (as
        ``key_rows``): psycopg's pipelined executemany of an UPDATE took 40 us a row (200,000 rows:
        8 s). None where the catalog lacks a column."""
        columns = [*keys, *changed]
        spelled = {name: spelling for name, (spelling, _) in _catalog_columns(conn, table, columns).items()}
        if set(spelled) != set(columns) or not rows:
            return None
        names = [*(f"k{i}" for i in range(len(keys))), *(f"v{i}" for i in range(len(changed)))]
        arrays = [
            sa.bindparam(n, type_=postgresql.ARRAY(_Spelled(spelled[c])))
            for n, c in zip(names, columns, strict=True)
        ]
        given = sa.func.unnest(*arrays).table_valued(*names).render_derived(name="r")
        match = sa.and_(*(table.c[c] == given.c[f"k{i}"] for i, c in enumerate(keys)))
        update = sa.update(table).where(match).values({c: given.c[f"v{i}"] for i, c in enumerate(changed)})
        values = {n: list(column) for n, column in zip(names, zip(*rows, strict=True), strict=True)}
        return int(conn.execute(update, values).rowcount)

    HOLDS_ENDLESS_TIMES = True
    names = ("postgresql",)
    SINGLE_FLOATS = True
    schemes = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
    driver_hint = "pip install 'psycopg[binary]'"

    TRANSACTIONAL_DDL = True
    WRITER = "copy"
    ROW_WRITER = "postgresql_insert"
    TRUNCATE_TOGETHER = True
    REFERENCES_ELSEWHERE = (
        "SELECT DISTINCT n.nspname, c.relname FROM pg_catalog.pg_constraint k"
        " JOIN pg_catalog.pg_class c ON c.oid = k.conrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_class r ON r.oid = k.confrelid"
        " JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace"
        " WHERE k.contype = 'f' AND rn.nspname = :schema AND r.relname IN :tables AND n.nspname <> :schema"
    )
    FAILED_SAVEPOINTS = 2000  # (of max_locks_per_transaction 64 x max_connections 100 by default: 6,400)
    FK_CHECKS = ("SET session_replication_role = replica", "SET session_replication_role = DEFAULT")
    BINARY_LITERAL = "'\\x{hex}'::bytea"
    NATIVE_KINDS = frozenset(k for k in Kind if k is not Kind.CHAR)
    SESSION_SETUP = ("SET TIME ZONE 'UTC'",)

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.DECIMAL: "NUMERIC({precision},{scale})",
        Kind.BINARY: "BYTEA",
        Kind.JSON: "JSONB",
    }
    MAX_DECIMAL_PRECISION = 1000
    MAX_DECIMAL_SCALE = 1000
    MAX_VARCHAR = 10485760
    MAX_CHAR = 10485760
    UNCHECKED_FOREIGN_KEY = "{sql} NOT VALID"

    def advance_sequences(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> None:
        """Each sequence of these columns goes past the column's largest value (COPY writes ids even into
        GENERATED ALWAYS columns); a sequence already further on stays where it is."""
        quote, table = target.quote, target.qualified(table)
        with_sequence = conn.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) AND attnum > 0"
                " AND NOT attisdropped"
                " AND pg_get_serial_sequence(CAST(:table AS text), attname::text) IS NOT NULL"
            ),
            {"table": table},
        ).scalars()
        for column in set(with_sequence) & set(columns):
            largest = f"SELECT MAX({quote(column)}) AS v FROM {table}".replace(":", "\\:")
            conn.execute(
                sa.text(
                    f"SELECT setval(s.seqrelid, m.v + 1, false) FROM pg_sequence s, ({largest}) m"
                    " WHERE s.seqrelid = CAST(pg_get_serial_sequence(CAST(:table AS text), :column) AS regclass)"
                    " AND m.v IS NOT NULL"
                    " AND m.v + 1 > COALESCE(pg_sequence_last_value(s.seqrelid) + s.seqincrement, s.seqstart)"
                ),
                {"table": table, "column": column},
            )

    def fixed_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        return set(
            conn.execute(
                sa.text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:table AS regclass)"
                    " AND attnum > 0 AND NOT attisdropped AND (attidentity = 'a' OR attgenerated <> '')"
                ),
                {"table": target.qualified(table)},
            ).scalars()
        )

    def create_staging(self, staging: str, columns: str, source: str) -> list[str]:
        return [
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {columns} FROM {source} WHERE 1 = 0"
        ]

    def breaks_foreign_key(self, error: BaseException) -> bool:
        return getattr(error, "sqlstate", None) == "23503"

    def already_there(self, error: BaseException) -> bool:
        return getattr(error, "sqlstate", None) == "42710"  # duplicate_object

    def explicit_values(self, stmt: Any) -> Any:
        return stmt.with_dialect_options(postgresql_overriding_system_value=True)

    _CAST = re.compile(r"::[a-z_ ]+(\[\])?(\(\d+(,\d+)?\))?$", re.IGNORECASE)

    def taken_names(self, conn: Connection, schema: str | None) -> set[str]:
        classes = sa.table("pg_class", sa.column("relname"), sa.column("relnamespace"), schema="pg_catalog")
        spaces = sa.table("pg_namespace", sa.column("oid"), sa.column("nspname"), schema="pg_catalog")
        space = sa.literal(schema) if schema else sa.func.current_schema()
        query = (
            sa.select(classes.c.relname)
            .select_from(classes.join(spaces, spaces.c.oid == classes.c.relnamespace))
            .where(spaces.c.nspname == space)
        )
        return {row[0] for row in conn.execute(query)}

    def estimated_rows(self, conn: Connection, table: str, schema: str | None) -> int | None:
        classes = sa.table(
            "pg_class", sa.column("relname"), sa.column("relnamespace"), sa.column("reltuples"),
            schema="pg_catalog",
        )  # fmt: skip
        spaces = sa.table("pg_namespace", sa.column("oid"), sa.column("nspname"), schema="pg_catalog")
        space = sa.literal(schema) if schema else sa.func.current_schema()
        query = (
            sa.select(classes.c.reltuples)
            .select_from(classes.join(spaces, spaces.c.oid == classes.c.relnamespace))
            .where(classes.c.relname == table, spaces.c.nspname == space)
        )
        rows = conn.execute(query).scalar()
        return None if rows is None or rows < 0 else int(rows)  # -1: never analysed

    def strip_default(self, text: str) -> str:
        while self._CAST.search(text):
            text = self._CAST.sub("", text).strip()
        return text

    # ---- diff ----------------------------------------------------------------------------------------

    DIFF_SETUP = ("SELECT set_config('enable_sort', 'off', true), set_config('DateStyle', 'ISO', true)",)
    """The planner cannot know that ``(id - lo) / width`` has few values: without enable_sort off it
    sorts every row (spilling to disk) to group them, where a hash aggregate of a few hundred buckets
    is cheap. DateStyle: the ISO text the cast ``text_timestamp`` relies on, the session's order of a
    date's fields kept (a ``--where`` literal such as '01/02/2024' read as the user's session reads it).
    (One statement: one round trip.)"""
    DEFERS_KEYS = True

    def read_value(self, x: Any, kind: Kind) -> Any:
        # a char(n)'s padding taken off in the server, as its value is taken (``values._char``): the
        # text of COPY TO carries it, which a target column of another string type would keep
        return sa.cast(x, sa.Text()) if kind is Kind.CHAR else x

    COPY_TEXT_SETUP = (
        "SET LOCAL client_encoding = 'UTF8'",
        "SET LOCAL DateStyle = 'ISO'",  # (ISO text out; a --where literal's field order as the session's)
        "SET LOCAL extra_float_digits = 3",  # floats exact (shortest exact text from PostgreSQL 12 on)
    )
    DATE_FORMAT = "YYYY-MM-DD"
    TIME_FORMAT = "HH24:MI:SS.US"
    TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.US"

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        if scale is None and declared is None:
            return self.text(sa.func.trim_scale(x))
        return super().text_decimal(x, declared, scale)

    def compared(self, x: Any, column: Column) -> Any:
        # a string type of no declared length may be one text's operators do not take ("char", name:
        # "operator is not unique: text || "char""): as text, which costs a varchar nothing
        if column.type.kind in STRING_KINDS and column.native_type == "VARCHAR":
            return sa.cast(x, sa.Text())
        return x

    def output_text(self, x: Any, native: str = "") -> sa.ColumnElement[Any]:
        # the type's output function, as COPY writes it: inet's text cast adds the netmask ('::1/128')
        return sa.case((x.is_(None), sa.null()), else_=sa.func.concat(x))  # (concat() of NULL is '')

    def log2(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.ln(x) / sa.literal(math.log(2), sa.Double())  # (log() of a double is base 10)

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.encode(x, sa.literal("hex"))

    JSON_HASHED_AS_JSONB = True

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        # (a json text holding \u0000, which jsonb refuses: as it is, its rows compared in Python)
        text = self.text(x)
        nul = sa.func.strpos(text, sa.literal("\\u0000")) > 0
        return sa.case((nul, text), else_=self.text(sa.cast(x, postgresql.JSONB())))

    DECODES = True
    DECODE_FENCE = True

    def located_sums(self, h: Any, offset: Any, bits: int) -> list[sa.ColumnElement[Any]]:
        # offset * h would overflow bigint: its high and low 30 bits apart (each product < 2**(bits+30))
        low = sa.literal(2**30 - 1, sa.BigInteger())
        high = h.op(">>")(sa.literal(30, sa.Integer()))
        return [sa.func.sum(h), sa.func.sum(offset * high), sa.func.sum(offset * h.op("&")(low))]

    def located_totals(self, values: Sequence[Any], bits: int) -> tuple[int, int]:
        total, high, low = (int(v or 0) for v in values)
        return total, (high << 30) + low

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        if kind not in (Kind.VARCHAR, Kind.TEXT, Kind.CHAR):
            return column == value
        # (a nondeterministic collation's = matches 'a' for 'A': "C" compares the characters; of the
        # text, as an enum or inet takes no collation)
        return sa.and_(column == value, sa.collate(sa.cast(column, sa.Text()), "C") == value)

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        # (to_char() of infinity is NULL, and of a date before Christ that date's year after: its text)
        before = sa.cast(x, postgresql.DATE()) < sa.literal_column(_FIRST_DAY)
        return sa.case((before, self.text(x)), else_=sa.func.coalesce(super().text_date(x), self.text(x)))

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        # (to_char() of infinity is NULL, and it writes a year before Christ as the year after: 0045 BC as
        # 0045; the text says BC)
        formatted: sa.ColumnElement[Any] = sa.case(
            (sa.cast(x, postgresql.DATE()) < sa.literal_column(_FIRST_DAY), self.text(x)),
            else_=sa.func.coalesce(super().text_timestamp(x, with_zone), self.text(x)),
        )
        if with_zone:  # (the steps below on its UTC time, or on the value and then its UTC time, cost more)
            return formatted
        # the text cast under DateStyle ISO (DIFF_SETUP), its fraction padded to six digits over a
        # template (rpad() costs as much as to_char()): half to_char()'s cost for whole seconds, a
        # tenth less with a fraction; to_char() for years outside 1-9999 AD (five digits, BC) and
        # infinity (whose to_char() is NULL: the cast's text). The value is cast to timestamp first:
        # the job file may call a date or a timestamptz a timestamp (a timestamp's own cast is free).
        stamp = sa.cast(x, postgresql.TIMESTAMP())
        text = sa.cast(stamp, sa.Text())
        whole = stamp == sa.func.date_trunc(sa.literal_column("'second'"), stamp)
        template: sa.ColumnElement[str] = sa.literal_column("'0000-00-00 00:00:00.000000'")
        padded = sa.case(
            (whole, text.concat(sa.literal_column("'.000000'"))),
            else_=sa.func.overlay(template, text, sa.literal_column("1")),
        )
        usual = sa.and_(stamp >= sa.literal_column(_FIRST_YEAR), stamp < sa.literal_column(_PAST_9999))
        return sa.case((usual, padded), else_=formatted)

    LENIENT_LOADERS = True
    READS_TIME_TEXT = True

    def lenient_loaders(self, conn: Connection) -> None:
        from psycopg.types import datetime as pgdatetime

        raw: Any = conn.connection.driver_connection
        adapters = raw.adapters
        loaders = {
            "date": pgdatetime.DateLoader,
            "time": pgdatetime.TimeLoader,
            "timestamp": pgdatetime.TimestampLoader,
            "timestamptz": pgdatetime.TimestamptzLoader,
        }
        for name, base in loaders.items():
            adapters.register_loader(name, _or_text(base))

    def inner_tables(self, conn: Connection, schema: str | None) -> dict[str, str]:
        rows = conn.execute(
            sa.text(
                "SELECT c.relname, p.relname FROM pg_catalog.pg_inherits i"
                " JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_catalog.pg_class p ON p.oid = i.inhparent"
                " WHERE c.relnamespace = p.relnamespace AND c.relnamespace ="
                " (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = coalesce(:schema, current_schema()))"
            ),
            {"schema": schema},
        )
        return {child: parent for child, parent in rows}

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        # the first 8 bytes of the digest in hex, cast to BIT(60): its first 15 hex digits, as elsewhere
        # (hex of 8 bytes instead of 32 costs PostgreSQL a tenth less of a whole row checksum)
        digest = sa.func.sha256(sa.func.convert_to(text, sa.literal_column("'UTF8'")))
        hex16 = sa.func.encode(sa.func.substring(digest, 1, 8), sa.literal_column("'hex'"))
        return sa.cast(sa.cast(sa.literal("x").concat(hex16), postgresql.BIT(60)), sa.BigInteger())


_FIRST_YEAR, _PAST_9999 = "TIMESTAMP '0001-01-01 00:00:00'", "TIMESTAMP '10000-01-01 00:00:00'"
_FIRST_DAY = "DATE '0001-01-01'"
"""The years whose timestamps PostgreSQL's text cast writes as ``YYYY-MM-DD HH:MM:SS[.f]``."""


def _or_text(loader: type[Any]) -> type[Any]:
    """A psycopg loader that gives the text of a value it cannot load (infinity, a year past 9999)."""
    from psycopg import DataError

    class OrText(loader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except DataError:
                return bytes(data).decode()

    return OrText


def _catalog_columns(
    conn: Connection, table: sa.TableClause, columns: Sequence[str]
) -> dict[str, tuple[str, bool]]:
    """Of the table's ``columns``: each one's type as the catalog spells it (``format_type``), and
    whether it compares exactly as Python does (``Dialect.compares_exactly``)."""
    # (nondeterministic collations are PostgreSQL 12's)
    deterministic = "coalesce(l.collisdeterministic, true)" if _from_12(conn) else "true"
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation = 0"
            f" OR (a.atttypid IN ('text'::regtype, 'varchar'::regtype) AND {deterministic})"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_collation l ON l.oid = a.attcollation"
            " WHERE c.relname = :table AND n.nspname = coalesce(:schema, current_schema())"
            " AND a.attname = ANY(:columns) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"table": table.name, "schema": table.schema, "columns": list(columns)},
    ).all()
    return {name: (spelling, bool(exact)) for name, spelling, exact in rows}


def _from_12(conn: Connection) -> bool:
    return (conn.dialect.server_version_info or (0,)) >= (12,)


class _Spelled(sa.types.UserDefinedType[Any]):
    """A type as the catalog spells it (``format_type``), for a cast to the column's own type."""

    cache_ok = True

    def __init__(self, spelling: str) -> None:
        self.spelling = spelling

    def get_col_spec(self, **kw: Any) -> str:
        return self.spelling
