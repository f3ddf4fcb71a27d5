"""Bulk and row writers' SQL per dialect, compiled without a server (Oracle, SQL Server included)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from parity import bulk
from parity.dialects import for_name
from parity.schema.types import CanonicalType, Kind

URLS = {
    "oracle": "oracle+oracledb://u:p@localhost:1521/?service_name=x",
    "mssql": "mssql+pyodbc://u:p@localhost/db",
    "postgresql": "postgresql+psycopg://u:p@localhost/db",
    "mysql": "mysql+pymysql://u:p@localhost/db",
    "sqlite": "sqlite://",
}
TYPES = [CanonicalType(Kind.INTEGER), CanonicalType(Kind.VARCHAR, length=10), CanonicalType(Kind.UUID)]


def dialect_only(name: str) -> Any:
    """What a writer reads from a connection at construction: only the SQLAlchemy dialect."""
    url = sa.engine.make_url(URLS[name])
    # without its driver imported a dialect assumes "named"; pyodbc itself is qmark
    options = {"paramstyle": "qmark"} if name == "mssql" else {}
    return SimpleNamespace(dialect=url.get_dialect()(**options))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("oracle", 'INSERT INTO "order history" (id, "select", u) VALUES (:1, :2, :3)'),
        ("mssql", "INSERT INTO [order history] (id, [select], u) VALUES (?, ?, ?)"),
        ("postgresql", 'INSERT INTO "order history" (id, "select", u) VALUES (%s, %s, %s)'),
        ("mysql", "INSERT INTO `order history` (id, `select`, u) VALUES (%s, %s, %s)"),
        ("sqlite", 'INSERT INTO "order history" (id, "select", u) VALUES (?, ?, ?)'),
    ],
)
def test_row_writer_statement(name: str, expected: str) -> None:
    conn = dialect_only(name)
    table = conn.dialect.identifier_preparer.quote("order history")
    writer = bulk.WRITERS[for_name(name).ROW_WRITER](conn, table, ["id", "select", "u"], TYPES)
    assert writer.sql == expected


def test_oracle_and_sql_server_writers_encode_values_their_drivers_take() -> None:
    import uuid
    from datetime import time

    value = uuid.uuid4()
    oracle = bulk.WRITERS[for_name("oracle").WRITER].ENCODERS
    assert oracle[Kind.UUID](value) == value.bytes  # RAW(16)
    assert oracle[Kind.BOOLEAN](True) == 1  # NUMBER(1)
    assert oracle[Kind.TIME](time(1, 2, 3, 4)).total_seconds() == 3723.000004  # INTERVAL DAY TO SECOND
    assert bulk.WRITERS[for_name("mssql").WRITER].ENCODERS[Kind.UUID](value) == str(value)


def test_postgresql_copy_statement() -> None:
    conn = dialect_only("postgresql")
    writer = bulk.PostgresCopyWriter(conn, '"s"."t"', ["a", "Mixed Case"], TYPES[:2])
    assert writer.sql == 'COPY "s"."t" (a, "Mixed Case") FROM STDIN'
