"""Oracle: NUMBER for integers and decimals, DATE carries a time, no TIME type. Thin-mode oracledb.

SQLAlchemy's own dialect module is imported where it is used: importing it costs every run's
start-up a few hundredths of a second, and most runs never touch this database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind, from_sqlalchemy

if TYPE_CHECKING:
    from parity.endpoint import Endpoint

_IDENTITY_COLUMNS = """SELECT i.column_name, i.generation_type, c.default_on_null,
    s.last_number, s.cache_size, s.increment_by
  FROM all_tab_identity_cols i
  JOIN all_tab_columns c ON c.owner = i.owner AND c.table_name = i.table_name AND c.column_name = i.column_name
  JOIN all_sequences s ON s.sequence_owner = i.owner AND s.sequence_name = i.sequence_name
  WHERE i.owner = COALESCE(:owner, SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA')) AND i.table_name = :name"""
"""A table's identity columns: how each is generated, and where its sequence stands (``last_number``:
the next number no session has cached yet)."""


def identity_rows(rows: Sequence[Any], normalize: Callable[[str], str]) -> list[Any]:
    """Rows of ``_IDENTITY_COLUMNS`` with the column names as SQLAlchemy names them (lower case for
    Oracle's upper case), as plain records (a result Row is read-only)."""
    return [SimpleNamespace(**{**row._asdict(), "column_name": normalize(row.column_name)}) for row in rows]


class Oracle(Dialect):
    MAX_IN_LIST = 1000  # (a longer list is refused: ORA-01795)
    names = ("oracle",)
    schemes = {"oracle": "oracle+oracledb"}
    driver_hint = "pip install 'parity[oracle]'"
    REFERENCES_ELSEWHERE = (
        "SELECT DISTINCT c.owner, c.table_name FROM all_constraints c JOIN all_constraints p"
        " ON p.owner = c.r_owner AND p.constraint_name = c.r_constraint_name"
        " WHERE c.constraint_type = 'R' AND p.owner = :schema AND p.table_name IN :tables AND c.owner <> :schema"
    )

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.BOOLEAN: "NUMBER(1)",
        Kind.SMALLINT: "NUMBER(5)",
        Kind.INTEGER: "NUMBER(10)",
        Kind.BIGINT: "NUMBER(19)",
        Kind.DECIMAL: "NUMBER({precision},{scale})",
        Kind.FLOAT: "BINARY_FLOAT",
        Kind.DOUBLE: "BINARY_DOUBLE",
        Kind.VARCHAR: "VARCHAR2({length} CHAR)",
        Kind.CHAR: "CHAR({length} CHAR)",
        Kind.TEXT: "CLOB",
        Kind.TIME: "INTERVAL DAY(0) TO SECOND(6)",
        Kind.TIMESTAMP: "TIMESTAMP(6)",
        Kind.TIMESTAMPTZ: "TIMESTAMP(6) WITH TIME ZONE",
        Kind.UUID: "RAW(16)",
    }
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {
        Kind.SMALLINT: CanonicalType(Kind.INTEGER),
        Kind.INTEGER: CanonicalType(Kind.BIGINT),
        Kind.BIGINT: CanonicalType(Kind.DECIMAL, precision=19, scale=0),
        Kind.DATE: CanonicalType(Kind.TIMESTAMP),
    }
    """NUMBER(p) reads back as the smallest kind that holds every p-digit value; DATE carries a time."""

    UNBOUNDED_DECIMAL = "NUMBER"
    MAX_DECIMAL_SCALE = 127
    MAX_VARCHAR = 4000
    MAX_CHAR = 2000
    SIZED_BINARY = "RAW({length})"
    MAX_SIZED_BINARY = 2000
    MAX_IDENTIFIER = 128
    WRITER = "oracle"
    ROW_WRITER = "oracle"
    BINARY_LITERAL = "HEXTORAW('{hex}')"

    BOOLEAN_LITERALS = ("1", "0")

    def _identity_columns(self, conn: Connection, target: Endpoint, table: str) -> list[Any]:
        denormalize, normalize = conn.dialect.denormalize_name, conn.dialect.normalize_name
        owner = denormalize(target.schema) if target.schema else None
        rows = conn.execute(sa.text(_IDENTITY_COLUMNS), {"owner": owner, "name": denormalize(table)}).all()
        return identity_rows(rows, normalize)

    def fixed_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        return {
            r.column_name
            for r in self._identity_columns(conn, target, table)
            if r.generation_type == "ALWAYS"
        }

    def ids_never_written(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        return self.fixed_columns(conn, target, table)  # (ALWAYS: no INSERT gives it a value either)

    def numbers_nulls(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        return {
            r.column_name for r in self._identity_columns(conn, target, table) if r.default_on_null == "YES"
        }

    def advance_sequences(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> None:
        """An identity column's sequence goes past the column's largest value (``START WITH LIMIT VALUE``,
        12c+), unless it is surely past it already: beyond the numbers sessions may hold cached."""
        from parity.endpoint import execute_raw

        qualified = target.qualified(table)
        for row in self._identity_columns(conn, target, table):
            if row.column_name not in columns or row.generation_type != "BY DEFAULT":
                continue  # (ALWAYS: no row gave it a value)
            column = target.quote(row.column_name)
            largest = conn.exec_driver_sql(f"SELECT MAX({column}) FROM {qualified}").scalar()
            cached = (row.cache_size or 0) * row.increment_by
            if largest is None or row.increment_by < 0 or largest < row.last_number - cached:
                continue
            on_null = " ON NULL" if row.default_on_null == "YES" else ""
            execute_raw(  # (DDL: Oracle commits the transaction here, so this comes last)
                conn,
                f"ALTER TABLE {qualified} MODIFY ({column} GENERATED BY DEFAULT{on_null} AS IDENTITY"
                " (START WITH LIMIT VALUE))",
            )

    TEMPORARY_PREFIX = "ORA$PTT"
    UPSERT_BY_MERGE = True

    def create_staging(self, staging: str, columns: str, source: str) -> list[str]:
        # a private temporary table (18c+): gone at commit, and its CREATE commits nothing
        return [
            f"CREATE PRIVATE TEMPORARY TABLE {staging} ON COMMIT DROP DEFINITION"
            f" AS SELECT {columns} FROM {source} WHERE 1 = 0"
        ]

    def fraction_digits(self, sa_type: Any) -> int | None:
        if type(sa_type).__name__ == "DATE":  # (Oracle's DATE keeps whole seconds)
            return 0
        return super().fraction_digits(sa_type)

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        from sqlalchemy.dialects import oracle

        t = column["type"]
        if isinstance(t, oracle.NUMBER) and t.scale == 0 and t.precision is not None:
            if t.precision == 1:
                return CanonicalType(Kind.BOOLEAN)
            for limit, kind in ((4, Kind.SMALLINT), (9, Kind.INTEGER), (18, Kind.BIGINT)):
                if t.precision <= limit:
                    return CanonicalType(kind)
        if isinstance(t, oracle.NUMBER):  # SQLAlchemy's NUMBER is also an Integer: never let it read as one
            if t.precision is None:
                return CanonicalType(Kind.DECIMAL)
            return CanonicalType(Kind.DECIMAL, precision=t.precision, scale=t.scale or 0)
        if isinstance(t, oracle.BINARY_FLOAT):
            return CanonicalType(Kind.FLOAT)
        if isinstance(t, oracle.DATE):
            return CanonicalType(Kind.TIMESTAMP)
        if isinstance(t, oracle.RAW) and t.length == 16:
            return CanonicalType(Kind.UUID)
        if isinstance(t, oracle.INTERVAL):
            return CanonicalType(Kind.TIME)
        return from_sqlalchemy(t)

    # ---- diff ----------------------------------------------------------------------------------------
    # SHA-256 through STANDARD_HASH (12c+), text through TO_CHAR formats. Oracle stores '' as NULL, so an
    # empty string elsewhere always differs from Oracle's NULL.

    DATE_FORMAT = "YYYY-MM-DD"
    TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF6"
    _UUID_PARTS = r"(.{8})(.{4})(.{4})(.{4})(.{12})"

    def text(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.to_char(x)

    NULL_PROPAGATES = False  # '' is NULL, and || ignores NULLs

    def text_length(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.lengthb(x)

    def int_div(self, a: Any, b: Any) -> sa.ColumnElement[Any]:
        return sa.func.floor(a.op("/", precedence=8)(b))  # NUMBER division keeps the fraction

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        if scale is None:
            return self.rtrim_chars(sa.func.to_char(x, sa.literal("FM" + "9" * 30 + "0." + "9" * 30)), ".")
        fraction = "." + "0" * scale if scale else ""
        return sa.func.to_char(x, sa.literal("FM" + "9" * (37 - scale) + "0" + fraction))

    def as_double(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.to_binary_double(x)

    def to_single(self, d: Any) -> sa.ColumnElement[Any]:
        return sa.func.to_binary_float(d)

    def log10(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.log(10, x)

    def log2(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.log(2, x)

    def text_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        return self.text_integer_boolean(x)  # (a NUMBER(1): 5 is no true)

    def text_time(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.regexp_substr(sa.func.to_char(x), sa.literal(r"\d{2}:\d{2}:\d{2}\.\d{6}"))

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        from sqlalchemy.dialects import oracle

        utc = sa.func.sys_extract_utc(x) if with_zone else sa.cast(x, oracle.TIMESTAMP())
        return self.format_time(utc, self.TIMESTAMP_FORMAT)

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        from sqlalchemy.dialects import oracle

        # (a TIMESTAMP's difference is an INTERVAL DAY TO SECOND, its seconds with their fraction; a
        # DATE's, which it was, kept whole seconds only)
        utc = sa.func.sys_extract_utc(x) if with_zone else sa.cast(x, oracle.TIMESTAMP())
        since = utc - sa.literal_column("TIMESTAMP '1970-01-01 00:00:00'")
        parts = [(sa.extract(p, since), n) for p, n in (("day", 86400), ("hour", 3600), ("minute", 60))]
        return sum((part * n for part, n in parts), sa.extract("second", since))

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.lower(sa.func.rawtohex(x))

    def text_uuid(self, x: Any, native_string: bool) -> sa.ColumnElement[Any]:
        if native_string:
            return super().text_uuid(x, native_string)
        dashed = sa.literal(r"\1-\2-\3-\4-\5")
        return sa.func.regexp_replace(self.text_binary(x), sa.literal(self._UUID_PARTS), dashed)

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        hex15 = sa.func.substr(sa.func.rawtohex(sa.func.standard_hash(text, sa.literal("SHA256"))), 1, 15)
        return sa.func.to_number(hex15, sa.literal("X" * 15))
