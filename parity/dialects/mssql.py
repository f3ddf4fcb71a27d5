"""SQL Server: N-types for unicode, DATETIME2 and DATETIMEOFFSET; diff hashes UTF-8 through HASHBYTES.

SQLAlchemy's own dialect module is imported where it is used: importing it costs every run's
start-up a few hundredths of a second, and most runs never touch this database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind, from_sqlalchemy

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


class SQLServer(Dialect):
    MAX_IN_LIST = 1000  # (thousands of values in one list tire its planner: error 8623)
    COLUMN_NAMES_IGNORE_CASE = True
    names = ("mssql",)
    schemes = {"mssql": "mssql+pyodbc", "sqlserver": "mssql+pyodbc"}
    driver_hint = "pip install 'parity[mssql]' (pyodbc and an ODBC driver) or 'parity[mssql-pymssql]'"
    MAX_CASE_DEPTH = 9  # (SQL Server nests CASE 10 deep at most: error 125)
    REFERENCES_ELSEWHERE = (
        "SELECT DISTINCT SCHEMA_NAME(c.schema_id), c.name FROM sys.foreign_keys f"
        " JOIN sys.tables c ON c.object_id = f.parent_object_id"
        " JOIN sys.tables r ON r.object_id = f.referenced_object_id"
        " WHERE SCHEMA_NAME(r.schema_id) = :schema AND r.name IN :tables AND SCHEMA_NAME(c.schema_id) <> :schema"
    )
    TEXT_KEYS_FOLD = True
    HOLDS_NAN = False

    def exact_collation(self, sa_dialect: Any) -> str | None:
        """Binary by code point: 'a' and 'A' two keys (SQL Server pads every comparison: 'a ' stays 'a')."""
        return "Latin1_General_100_BIN2"

    def rtrim_chars(self, x: Any, chars: str) -> sa.ColumnElement[Any]:
        if chars == " ":  # (RTRIM of two arguments is SQL Server 2022's; of one, it trims spaces only)
            return sa.func.rtrim(x)
        return super().rtrim_chars(x, chars)

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.BOOLEAN: "BIT",
        Kind.DOUBLE: "FLOAT(53)",
        Kind.VARCHAR: "NVARCHAR({length})",
        Kind.CHAR: "NCHAR({length})",
        Kind.TEXT: "NVARCHAR(max)",
        Kind.TIME: "TIME(6)",
        Kind.TIMESTAMP: "DATETIME2(6)",
        Kind.TIMESTAMPTZ: "DATETIMEOFFSET(6)",
        Kind.BINARY: "VARBINARY(max)",
        Kind.UUID: "UNIQUEIDENTIFIER",
        Kind.JSON: "NVARCHAR(max)",
    }
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {Kind.JSON: CanonicalType(Kind.TEXT)}
    UNBOUNDED_DECIMAL = None
    MAX_VARCHAR = 4000
    MAX_CHAR = 4000
    SIZED_BINARY = "VARBINARY({length})"
    MAX_IDENTIFIER = 128
    WRITER = "mssql"
    ROW_WRITER = "mssql"
    BINARY_LITERAL = "0x{hex}"

    BOOLEAN_LITERALS = ("1", "0")

    def _generated(self, conn: Connection, target: Endpoint, table: str, which: str) -> set[str]:
        """The table's columns for which ``which`` (a condition on sys.columns) holds."""
        names = conn.execute(
            sa.text(f"SELECT name FROM sys.columns WHERE object_id = OBJECT_ID(:table) AND ({which})"),
            {"table": target.qualified(table)},
        ).scalars()
        return set(names)

    def fixed_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        # an IDENTITY column takes no UPDATE at all, a computed one neither
        return self._generated(conn, target, table, "is_identity = 1 OR is_computed = 1")

    def explicit_ids_sql(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> tuple[str, str] | None:
        """IDENTITY_INSERT while rows give the table's identity column (it refuses them else)."""
        identity = {n.casefold() for n in self._generated(conn, target, table, "is_identity = 1")}
        if not identity & {c.casefold() for c in columns}:
            return None
        qualified = target.qualified(table)
        return f"SET IDENTITY_INSERT {qualified} ON", f"SET IDENTITY_INSERT {qualified} OFF"

    TEMPORARY_PREFIX = "#"
    UPSERT_BY_MERGE = True

    def create_staging(self, staging: str, columns: str, source: str) -> list[str]:
        # the UNION keeps SELECT INTO from giving the copy the source's IDENTITY property
        empty = f"SELECT {columns} FROM {source} WHERE 1 = 0"
        return [
            f"DROP TABLE IF EXISTS {staging}",
            f"SELECT {columns} INTO {staging} FROM {source} WHERE 1 = 0 UNION ALL {empty}",
        ]

    def fraction_digits(self, sa_type: Any) -> int | None:
        # DATETIME keeps thirds of a millisecond (3 digits, rounded), SMALLDATETIME whole minutes
        fixed = {"DATETIME": 3, "SMALLDATETIME": 0}.get(type(sa_type).__name__)
        return fixed if fixed is not None else super().fraction_digits(sa_type)

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        from sqlalchemy.dialects import mssql

        t = column["type"]
        if isinstance(t, mssql.DATETIMEOFFSET):  # SQLAlchemy reflects it with timezone=False
            return CanonicalType(Kind.TIMESTAMPTZ)
        return from_sqlalchemy(t)

    # ---- diff ----------------------------------------------------------------------------------------
    # HASHBYTES('SHA2_256', ...) over the row's text converted to UTF-8 (a _UTF8
    # collation, SQL Server 2019+), so the bytes hashed are the ones every other database hashes.

    CAST_TEXT: ClassVar[sa.types.TypeEngine[Any]] = sa.NVARCHAR(None)
    UTF8_COLLATION: ClassVar[str] = "Latin1_General_100_CI_AS_SC_UTF8"
    """Any _UTF8 collation: only its encoding matters, the text is hashed, never compared."""

    DATE_FORMAT = "yyyy-MM-dd"
    TIME_FORMAT = r"hh\:mm\:ss\.ffffff"
    TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss.ffffff"

    def concat(self, *parts: Any) -> sa.ColumnElement[Any]:
        return sa.func.concat(*parts)

    NULL_PROPAGATES = False  # CONCAT() treats NULL as ''

    BINARY_COLLATION: ClassVar[str] = "Latin1_General_100_BIN2"

    def text_prefix(self, text: Any, length: int) -> sa.ColumnElement[Any]:
        return sa.func.left(text, length)

    def text_slice(self, text: Any, start: int, length: int) -> sa.ColumnElement[Any]:
        return sa.func.substring(text, start, length)

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        if kind not in (Kind.VARCHAR, Kind.TEXT, Kind.CHAR):
            return column == value
        exact = sa.collate(column, self.BINARY_COLLATION) == value
        if kind is not Kind.CHAR:  # = ignores trailing spaces: a character after them counts them
            end = sa.literal(".")
            padded = sa.collate((column + end).self_group(), self.BINARY_COLLATION)
            exact = sa.and_(exact, padded == value + end)
        return sa.and_(column == value, exact)

    def text_length(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.datalength(self.utf8(x))

    def utf8(self, text: Any) -> sa.ColumnElement[Any]:
        """The text as UTF-8 bytes in a VARCHAR, as every other database hashes and measures it."""
        return sa.cast(sa.collate(text, self.UTF8_COLLATION), sa.VARCHAR(None))

    def round(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.round(x, 0)

    def log2(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.log(x, 2)

    def format_time(self, x: Any, fmt: str) -> sa.ColumnElement[Any]:
        return sa.func.format(x, sa.literal(fmt))

    def in_utc(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.switchoffset(x, sa.literal("+00:00"))

    def text_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.case((x == 1, sa.literal("1")), else_=sa.literal("0"))

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        micros = sa.func.datediff_big(sa.literal_column("microsecond"), sa.literal("1970-01-01"), x)
        return micros / sa.literal(1e6, sa.Double())

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.lower(sa.func.convert(sa.literal_column("VARCHAR(max)"), x, 2))

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        digest = sa.func.hashbytes(sa.literal("SHA2_256"), self.utf8(text))
        high56 = sa.cast(sa.func.substring(digest, 1, 7), sa.BigInteger())
        nibble = self.int_div(sa.cast(sa.func.substring(digest, 8, 1), sa.Integer()), 16)
        return high56 * 16 + nibble

    def hash_sum(self, h: Any) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.cast(h, sa.Numeric(38, 0)))
