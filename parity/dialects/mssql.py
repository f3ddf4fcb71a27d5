"""SQL Server: N-types for unicode, DATETIME2 and DATETIMEOFFSET, no fast md5 (see the diff hash)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind, from_sqlalchemy


class SQLServer(Dialect):
    names = ("mssql",)
    schemes = {"mssql": "mssql+pyodbc", "sqlserver": "mssql+pyodbc"}
    driver_hint = "pip install 'parity[mssql]' (pyodbc and an ODBC driver) or 'parity[mssql-pymssql]'"

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

    def boolean_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        t = column["type"]
        if isinstance(t, mssql.DATETIMEOFFSET):  # SQLAlchemy reflects it with timezone=False
            return CanonicalType(Kind.TIMESTAMPTZ)
        return from_sqlalchemy(t)
