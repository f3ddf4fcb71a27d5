"""parity.pgcopy.copy_out: COPY TO STDOUT read with libpq's calls, against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from parity.pgcopy import copy_out
from tests.conftest import Database

ROWS = 20_000


@pytest.fixture
def raw(pg_db: Database) -> Iterator[Any]:
    """A psycopg connection whose search path is the test's schema (set for the session, not in a
    transaction a rollback would undo), which holds ``t`` (id, note with characters to escape)."""
    pg_db.sql(
        "CREATE TABLE t (id integer PRIMARY KEY, note text)",
        f"INSERT INTO t SELECT g, CASE WHEN mod(g, 7) = 0 THEN NULL ELSE 'n' || g || E'\\t\\\\x\\n' END"
        f" FROM generate_series(1, {ROWS}) g",
    )
    connection = pg_db.engine.raw_connection()
    try:
        conn = connection.driver_connection
        assert isinstance(conn, psycopg.Connection)
        conn.commit()
        yield conn
    finally:
        connection.close()


def by_psycopg(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> bytes:
    with conn.cursor() as cursor, cursor.copy(sql, params) as copy:
        return b"".join(bytes(block) for block in copy)


def test_copy_out_gives_the_rows_psycopg_gives_one_line_each(raw: psycopg.Connection[Any]) -> None:
    sql = "COPY (SELECT id, note FROM t WHERE id >= %(lo)s AND id < %(hi)s ORDER BY id) TO STDOUT"
    params = {"lo": 101, "hi": 15_101}
    parts = list(copy_out(raw, sql, params))
    rows = [row for part in parts for row in part]
    assert len(rows) == 15_000 and all(row.endswith(b"\n") and row.count(b"\n") == 1 for row in rows)
    assert b"".join(rows) == by_psycopg(raw, sql, params)
    assert rows[0] == b"101\tn101\\t\\\\x\\n\n" and rows[102] == b"203\t\\N\n"


def test_a_copy_left_early_leaves_the_connection_usable(raw: psycopg.Connection[Any]) -> None:
    rows = copy_out(raw, "COPY (SELECT id, note FROM t ORDER BY id) TO STDOUT", {})
    first = next(rows)
    rows.close()  # the rest is read and dropped
    assert first[0].startswith(b"1\t")
    assert raw.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)


def test_an_error_in_the_middle_of_a_copy_is_raised(raw: psycopg.Connection[Any]) -> None:
    sql = "COPY (SELECT id, 1 / (id - %(zero_at)s) FROM t ORDER BY id) TO STDOUT"
    got: list[bytes] = []
    with pytest.raises(psycopg.errors.DivisionByZero):
        for part in copy_out(raw, sql, {"zero_at": ROWS - 10}):
            got += part
    assert len(got) < ROWS - 10  # the rows before the error may have come, never one past it
    raw.rollback()
    assert raw.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)


def test_an_error_before_the_copy_starts_is_raised(raw: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        list(copy_out(raw, "COPY (SELECT * FROM no_such_table) TO STDOUT", {}))
    raw.rollback()
    assert raw.execute("SELECT 1").fetchone() == (1,)


def test_a_copy_left_at_its_last_rows_leaves_the_connection_usable(raw: psycopg.Connection[Any]) -> None:
    """The last rows and the end of the COPY often arrive together: a consumer that stops there must
    not read past the end (libpq would say no COPY is in progress, and leave the result unread)."""
    rows = copy_out(raw, "COPY (SELECT id FROM t WHERE id <= 5) TO STDOUT", {})
    assert next(rows) == [b"1\n", b"2\n", b"3\n", b"4\n", b"5\n"]
    rows.close()
    assert raw.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)


def test_a_parameter_at_bigints_least_value_is_bound_whole(raw: psycopg.Connection[Any]) -> None:
    """A chunk's lower bound of -2**63 (a table whose key starts there) is written into the COPY as
    ``(-9223372036854775808)::BIGINT``: without the parentheses the cast comes first, out of range; a
    literal ``%%`` stays a percent sign."""
    sql = "COPY (SELECT id, '100%%' FROM t WHERE id >= %(lo)s::BIGINT AND id < %(hi)s::BIGINT) TO STDOUT"
    rows = [line for block in copy_out(raw, sql, {"lo": -(2**63), "hi": 3}) for line in block]
    assert rows == [b"1\t100%\n", b"2\t100%\n"]
