"""SQLite: types are declarations, so parity reads the declared type itself rather than the affinity."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind


class SQLite(Dialect):
    names = ("sqlite",)
    schemes = {"sqlite": "sqlite"}

    FK_CHECKS = ("PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys=ON")
    WRITER = "sqlite"
    ROW_WRITER = "sqlite"
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
        Kind.FLOAT: "FLOAT",
        Kind.DOUBLE: "DOUBLE",
        Kind.TIMESTAMPTZ: "TIMESTAMPTZ",
    }
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {Kind.FLOAT: CanonicalType(Kind.DOUBLE)}
    MAX_DECIMAL_PRECISION = 1000
    MAX_DECIMAL_SCALE = 1000
    MAX_CHAR = 1_000_000
    ALTER_ADD_FOREIGN_KEY = False
    INLINE_FK_NEEDS_TARGET = False
    HAS_IDENTITY = True

    _DECLARED = re.compile(r"^\s*([A-Z_ ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

    def boolean_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        declared = self._declared_types(conn, table, schema).get(column["name"], "")
        return declared_type(declared)

    def _declared_types(self, conn: Connection, table: str, schema: str | None) -> dict[str, str]:
        quote = conn.dialect.identifier_preparer.quote
        prefix = f"{quote(schema)}." if schema else ""
        rows = conn.exec_driver_sql(f"PRAGMA {prefix}table_xinfo({quote(table)})").all()
        return {row[1]: (row[2] or "").upper() for row in rows}

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        return primary_key == (column["name"],) and str(column["type"]).upper() == "INTEGER"

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
        return [n for n in sa.inspect(conn).get_table_names(schema=schema) if not n.startswith("sqlite_")]


_SIMPLE = {
    "BOOLEAN": Kind.BOOLEAN,
    "BOOL": Kind.BOOLEAN,
    "BIGINT": Kind.BIGINT,
    "INT8": Kind.BIGINT,
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
    "JSONB": Kind.JSON,
    "BLOB": Kind.BINARY,
    "BYTEA": Kind.BINARY,
    "FLOAT": Kind.DOUBLE,
    "REAL": Kind.DOUBLE,
    "DOUBLE": Kind.DOUBLE,
    "DOUBLE PRECISION": Kind.DOUBLE,
}


def declared_type(declared: str) -> CanonicalType:
    """Map an SQLite declared type to canonical, following SQLite's own affinity rules as the fallback."""
    match = SQLite._DECLARED.match(declared.upper())
    name = match.group(1).strip() if match else declared.upper()
    first = int(match.group(2)) if match and match.group(2) else None
    second = int(match.group(3)) if match and match.group(3) else None
    if name in _SIMPLE:
        return CanonicalType(_SIMPLE[name])
    if name in ("DECIMAL", "NUMERIC", "NUMBER"):
        if first is None:
            return CanonicalType(Kind.DECIMAL)
        return CanonicalType(Kind.DECIMAL, precision=first, scale=second or 0)
    if "INT" in name:
        return CanonicalType(Kind.INTEGER)
    if "CHAR" in name and "VAR" not in name and first:
        return CanonicalType(Kind.CHAR, length=first)
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return CanonicalType(Kind.VARCHAR, length=first) if first else CanonicalType(Kind.TEXT)
    if "REAL" in name or "FLOA" in name or "DOUB" in name:
        return CanonicalType(Kind.DOUBLE)
    if name == "" or "BLOB" in name:
        return CanonicalType(Kind.TEXT) if name == "" else CanonicalType(Kind.BINARY)
    return CanonicalType(Kind.DECIMAL)
