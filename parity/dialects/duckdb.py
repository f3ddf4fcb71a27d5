"""DuckDB: an embedded analytical database; no identity columns and no FKs added after the fact.

Reflection reads DuckDB's own catalog functions (duckdb_columns(), duckdb_constraints(),
duckdb_indexes()) because duckdb-engine's PostgreSQL-flavoured reflection does not work on DuckDB 1.x+.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind
from parity.values import decode_value

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


class DuckDB(Dialect):
    HOLDS_ENDLESS_TIMES = True
    TABLE_NAMES_IGNORE_CASE = True
    COLUMN_NAMES_IGNORE_CASE = True
    names = ("duckdb",)
    SINGLE_FLOATS = True
    schemes = {"duckdb": "duckdb"}

    TRANSACTIONAL_DDL = True
    WRITER = "arrow"
    ROW_WRITER = "duckdb_insert"
    NATIVE_KINDS = frozenset(Kind) - {Kind.JSON, Kind.CHAR}
    SESSION_SETUP = ("SET TimeZone = 'UTC'",)
    SAVEPOINTS = False
    READS_TIME_TEXT = True
    FK_SEES_OWN_STATEMENT = False
    BINARY_LITERAL = "from_hex('{hex}')"

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.VARCHAR: "VARCHAR({length})",
        Kind.CHAR: "VARCHAR({length})",
        Kind.TEXT: "VARCHAR",
        Kind.DOUBLE: "DOUBLE",
    }
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {
        Kind.VARCHAR: CanonicalType(Kind.TEXT),
        Kind.CHAR: CanonicalType(Kind.TEXT),
    }
    UNBOUNDED_DECIMAL = None
    MAX_DECIMAL_PRECISION = 38
    MAX_DECIMAL_SCALE = 38
    HAS_IDENTITY = False
    ALTER_ADD_FOREIGN_KEY = False
    FK_ACTIONS = frozenset({"RESTRICT", "NO ACTION"})
    NARROW_PARAMETERS = True

    def configure_engine(self, engine: Any) -> None:
        # duckdb_engine quotes DuckDB's reserved keywords only; a column named "by", "at" or "values"
        # (keywords of other categories) broke CREATE TABLE and every statement naming it
        preparer = engine.dialect.identifier_preparer
        preparer.reserved_words = set(preparer.reserved_words) | _keywords()

    @staticmethod
    def _catalog(conn: Connection, sql: str, table: str, schema: str | None, **params: Any) -> list[Any]:
        """The rows of a catalog query about one table: ``{where}`` in ``sql`` picks it (in the schema,
        or the current one), as do ``:table`` and ``:schema``."""
        where = "schema_name = COALESCE(:schema, current_schema()) AND table_name = :table"
        return list(
            conn.execute(sa.text(sql.format(where=where)), {"schema": schema, "table": table, **params})
        )

    def columns(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        rows = self._catalog(
            conn,
            "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns()"
            " WHERE {where} ORDER BY column_index",
            table,
            schema,
        )
        if not rows:
            raise sa.exc.NoSuchTableError(table)
        computed = "SELECT column_name, generation_expression FROM information_schema.columns"
        computed += " WHERE table_schema = COALESCE(:schema, current_schema()) AND table_name = :table"
        generated: dict[str, str] = dict(
            self._catalog(conn, computed + " AND is_generated = 'ALWAYS'", table, schema)
        )
        return [
            {
                "name": r[0],
                "type": r[1],
                "nullable": r[2],
                "default": None if r[0] in generated else r[3],
                "autoincrement": False,
                **(
                    {"computed": {"sqltext": generated[r[0]], "persisted": False}}
                    if r[0] in generated
                    else {}
                ),
            }
            for r in rows
        ]

    FK_SEES_OWN_DELETES = False

    def changed_only_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        """In a table an FK references, the columns of its key, unique constraints and indexes: DuckDB
        updates them as a delete and an insert, which the FK refuses even when the value stays."""
        schema = target.schema
        referenced = self._catalog(
            conn,
            "SELECT 1 FROM duckdb_constraints() WHERE schema_name = COALESCE(:schema, current_schema())"
            " AND constraint_type = 'FOREIGN KEY' AND referenced_table = :table",
            table,
            schema,
        )
        if not referenced:
            return set()
        indexed = set(self.primary_key(conn, table, schema))
        indexed.update(c for _, cols in self.unique_constraints(conn, table, schema) for c in cols)
        indexed.update(c for ix in self.indexes(conn, table, schema) for c in ix["column_names"] if c)
        return indexed

    def check_constraints(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        rows = self._catalog(
            conn,
            "SELECT constraint_name, expression FROM duckdb_constraints()"
            " WHERE {where} AND constraint_type = 'CHECK' ORDER BY constraint_index",
            table,
            schema,
        )
        return [{"name": None, "sqltext": r[1]} for r in rows]

    def _constraints(self, conn: Connection, table: str, schema: str | None, kind: str) -> list[Any]:
        return self._catalog(
            conn,
            "SELECT constraint_name, constraint_column_names, referenced_table, referenced_column_names"
            " FROM duckdb_constraints() WHERE {where} AND constraint_type = :kind ORDER BY constraint_index",
            table,
            schema,
            kind=kind,
        )

    def primary_key(self, conn: Connection, table: str, schema: str | None) -> tuple[str, ...]:
        rows = self._constraints(conn, table, schema, "PRIMARY KEY")
        return tuple(rows[0][1]) if rows else ()

    def unique_constraints(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        return [(r[0], tuple(r[1])) for r in self._constraints(conn, table, schema, "UNIQUE")]

    def foreign_keys(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        return [
            {
                "name": r[0],
                "constrained_columns": list(r[1]),
                "referred_table": r[2],
                "referred_columns": list(r[3]),
                "referred_schema": schema,
            }
            for r in self._constraints(conn, table, schema, "FOREIGN KEY")
        ]

    def indexes(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        rows = self._catalog(
            conn,
            "SELECT index_name, is_unique, expressions FROM duckdb_indexes() WHERE {where}",
            table,
            schema,
        )
        out = []
        for name, unique, expressions in rows:
            cols = [c.strip().strip("'").strip('"') for c in str(expressions).strip("[]").split(",")]
            plain = all(re.fullmatch(r"[^()\s+*/-]+|[^()]*", c) for c in cols)
            out.append({"name": name, "unique": bool(unique), "column_names": cols if plain else [None]})
        return out

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        return duckdb_type(str(column["type"]))

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        return "nextval(" in str(column.get("default") or "").lower()

    def fraction_digits(self, sa_type: Any) -> int | None:
        return (
            _FRACTIONS.get(str(sa_type), 6) if isinstance(sa_type, str) else super().fraction_digits(sa_type)
        )

    def table_names(self, conn: Connection, schema: str | None) -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = COALESCE(:schema, current_schema())"
            ),
            {"schema": schema},
        ).scalars()
        return list(rows)

    # ---- diff ----------------------------------------------------------------------------------------

    TIME_FORMAT = "%H:%M:%S.%f"
    TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

    def settle(self, endpoint: Endpoint) -> None:
        with endpoint.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        if kind not in (Kind.VARCHAR, Kind.TEXT, Kind.CHAR):
            return column == value
        # (a NOCASE or NOACCENT column's = matches 'a' for 'A': its bytes do not)
        return sa.and_(column == value, sa.func.encode(column) == sa.func.encode(value))

    def text_length(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.strlen(x)  # bytes

    def int_div(self, a: Any, b: Any) -> sa.ColumnElement[Any]:
        return a.op("//", precedence=8)(b)  # "/" is floating-point division here

    def format_time(self, x: Any, fmt: str) -> sa.ColumnElement[Any]:
        return sa.func.strftime(x, sa.literal(fmt))

    def text_time(self, x: Any) -> sa.ColumnElement[Any]:
        on_a_day = sa.cast(sa.literal("2000-01-01"), sa.Date()) + x  # strftime takes no TIME
        text = self.format_time(on_a_day, self.TIME_FORMAT or "")
        end = sa.cast(sa.literal("24:00:00"), sa.Time())  # (the end of a day, as PostgreSQL keeps it)
        return sa.case((x == end, sa.literal("24:00:00.000000")), else_=text)

    _INFINITE = "parity: an infinite date or timestamp"

    def read_checked(self, x: Any, kind: Kind) -> Any:
        """Dates and timestamps, but an infinite one fails the read: its driver gives infinity as the
        largest value (9999-12-31), -infinity as the least (0001-01-01), which copy would write as such."""
        if kind not in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
            return self.read_exactly(x, kind)
        finite = sa.or_(x.is_(None), sa.func.isfinite(x))  # (isfinite(NULL) is NULL: no error for it)
        checked = sa.case((finite, x), else_=sa.func.error(sa.literal(self._INFINITE)))
        return checked.label(x.name)

    def read_leniently(self, x: Any, kind: Kind) -> Any:
        if kind not in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
            return self.read_exactly(x, kind)
        return sa.cast(x, sa.Text()).label(x.name)  # ('infinity': taken where the target reads it)

    def read_refused(self, exc: BaseException) -> bool:
        return self._INFINITE in str(exc)

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.case(*self._odd_times(x), else_=super().text_date(x))

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.case(*self._odd_times(x), else_=super().text_timestamp(x, with_zone))

    def _odd_times(self, x: Any) -> list[tuple[Any, Any]]:
        """Infinity and -infinity as their text, and a day before Christ in PostgreSQL's text (DuckDB's
        '0045-03-15 (BC) 10:00:00' as '0045-03-15 10:00:00 BC'), as PostgreSQL hashes them (strftime
        gives infinity a date, and the year 45 BC as -44)."""
        bc = sa.func.replace(self.text(x), sa.literal(" (BC)"), sa.literal("")).concat(sa.literal(" BC"))
        first_day = sa.cast(sa.literal("0001-01-01"), sa.Date())  # (year() is 45 for 45 BC)
        return [(sa.func.isinf(x), self.text(x)), (sa.cast(x, sa.Date()) < first_day, bc)]

    def text_decoder(self, kind: Kind) -> Callable[[Any], Any] | None:
        return functools.partial(_time_text, kind) if kind in _DATES else None

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.func.epoch_us(x) / sa.literal(1e6, sa.Double())

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        hex15 = sa.func.substr(sa.func.sha256(text), 1, 15)
        return sa.cast(sa.literal("0x").concat(hex15), sa.BigInteger())


_DATES = (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


def _time_text(kind: Kind, v: Any) -> Any:
    """A date or timestamp the driver gave as text (a day before Christ; read as text, ``read_leniently``)
    decoded, or as PostgreSQL's text of it: infinity as 'infinity', '0045-03-15 (BC)' as '0045-03-15 BC'."""
    if not isinstance(v, str) or v in ("infinity", "-infinity"):
        return v
    if " (BC)" in v:
        return v.replace(" (BC)", "") + " BC"
    return decode_value(kind, v)


_DUCK = {
    "BOOLEAN": Kind.BOOLEAN,
    "TINYINT": Kind.SMALLINT,
    "SMALLINT": Kind.SMALLINT,
    "UTINYINT": Kind.SMALLINT,
    "INTEGER": Kind.INTEGER,
    "USMALLINT": Kind.INTEGER,
    "BIGINT": Kind.BIGINT,
    "UINTEGER": Kind.BIGINT,
    "FLOAT": Kind.FLOAT,
    "DOUBLE": Kind.DOUBLE,
    "VARCHAR": Kind.TEXT,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMP_S": Kind.TIMESTAMP,  # (seconds, milliseconds: DuckDB's fraction_digits; its nanoseconds
    "TIMESTAMP_MS": Kind.TIMESTAMP,  # are no Python value, and stay text)
    "TIMESTAMP WITH TIME ZONE": Kind.TIMESTAMPTZ,
    "BLOB": Kind.BINARY,
    "UUID": Kind.UUID,
    "JSON": Kind.JSON,
}


_FRACTIONS = {"TIMESTAMP_S": 0, "TIMESTAMP_MS": 3}
"""The digits of a second of DuckDB's timestamps that keep fewer than six."""


@cache
def _keywords() -> frozenset[str]:
    """DuckDB's keywords that are not unreserved (read once)."""
    import duckdb

    with duckdb.connect() as conn:
        rows = conn.execute(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'"
        )
        return frozenset(name for (name,) in rows.fetchall())


def duckdb_type(text: str) -> CanonicalType | None:
    match = re.match(r"^DECIMAL\((\d+),\s*(\d+)\)$", text)
    if match:
        return CanonicalType(Kind.DECIMAL, precision=int(match.group(1)), scale=int(match.group(2)))
    if text in ("HUGEINT", "UBIGINT"):
        return CanonicalType(Kind.DECIMAL, precision=39 if text == "HUGEINT" else 20, scale=0)
    if text.startswith("VARCHAR("):
        return CanonicalType(Kind.VARCHAR, length=int(text[8:-1]))
    kind = _DUCK.get(text)
    return CanonicalType(kind) if kind else None


@cache
def register_alembic() -> None:
    """Let Alembic's operations (add column and the like) compile for DuckDB; Alembic is imported only
    when a schema change needs it (it costs a tenth of a second at start-up)."""
    from alembic.ddl.impl import DefaultImpl

    type("AlembicDuckDBImpl", (DefaultImpl,), {"__dialect__": "duckdb"})
