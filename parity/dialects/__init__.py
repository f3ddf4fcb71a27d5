"""One adapter per database, registered by SQLAlchemy's dialect name."""

from __future__ import annotations

from parity.dialects.base import Dialect
from parity.dialects.duckdb import DuckDB
from parity.dialects.mssql import SQLServer
from parity.dialects.mysql import MySQL, MySQLOnly
from parity.dialects.oracle import Oracle
from parity.dialects.postgresql import PostgreSQL
from parity.dialects.sqlite import SQLite

ADAPTERS: tuple[type[Dialect], ...] = (SQLite, DuckDB, PostgreSQL, MySQL, Oracle, SQLServer)

REGISTRY: dict[str, type[Dialect]] = {name: cls for cls in ADAPTERS for name in cls.names}
REGISTRY["mysql"] = MySQLOnly

SCHEMES: dict[str, str] = {scheme: full for cls in ADAPTERS for scheme, full in cls.schemes.items()}


def for_name(name: str) -> Dialect:
    """The adapter for a SQLAlchemy dialect name (``engine.dialect.name``)."""
    return REGISTRY[name]()


__all__ = ["REGISTRY", "SCHEMES", "Dialect", "for_name"]
