"""parity sync on real databases: random mutations converge, untouched rows are never written."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.copy import copy
from parity.diff import diff
from parity.errors import ConfigError, NotFound
from parity.job import build
from parity.sync import sync
from tests.conftest import FK_CHECKS_ON, Database, fk_checks_on

SYNC_PAIRS = [
    ("sqlite", "postgresql"),
    ("postgresql", "mariadb"),
    ("mariadb", "sqlite"),
    ("duckdb", "postgresql"),
]


_JOBS: list[Any] = []
"""The jobs a test made (``job_for``), closed after it: their pools held connections until the end of
the file, past the servers' limit."""


@pytest.fixture(autouse=True)
def _close_jobs() -> Iterator[None]:
    yield
    while _JOBS:
        _JOBS.pop().close()


def job_for(source: Database, target: Database, **kw: Any) -> Any:
    job = build(source.url, target.url, source_schema=source.schema, target_schema=target.schema, **kw)
    _JOBS.append(job)
    return job


def seed(source: Database, target: Database, table: str, rows: int) -> None:
    source.sql(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL, qty INTEGER, price DECIMAL(10,2), note TEXT)",
        *(
            f"INSERT INTO {table} VALUES {', '.join(f'({i}, {chr(39)}n{i}{chr(39)}, {i % 7}, {i}.50, NULL)' for i in range(start, min(start + 200, rows + 1)))}"
            for start in range(1, rows + 1, 200)
        ),
    )
    result = copy(job_for(source, target, tables=[table]))
    assert result.ok


AUDIT = {
    "postgresql": [
        "CREATE TABLE audit (k INTEGER, op TEXT)",
        "CREATE FUNCTION audit_fn() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO {s}.audit VALUES (COALESCE(NEW.id, OLD.id), TG_OP); RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_u AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION audit_fn()",
    ],
    "mariadb": [
        "CREATE TABLE audit (k INTEGER, op TEXT)",
        "CREATE TRIGGER audit_u AFTER UPDATE ON {t} FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'UPDATE')",
        "CREATE TRIGGER audit_i AFTER INSERT ON {t} FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'INSERT')",
        "CREATE TRIGGER audit_d AFTER DELETE ON {t} FOR EACH ROW INSERT INTO audit VALUES (OLD.id, 'DELETE')",
    ],
    "sqlite": [
        "CREATE TABLE audit (k INTEGER, op TEXT)",
        "CREATE TRIGGER audit_u AFTER UPDATE ON {t} BEGIN INSERT INTO audit VALUES (NEW.id, 'UPDATE'); END",
        "CREATE TRIGGER audit_i AFTER INSERT ON {t} BEGIN INSERT INTO audit VALUES (NEW.id, 'INSERT'); END",
        "CREATE TRIGGER audit_d AFTER DELETE ON {t} BEGIN INSERT INTO audit VALUES (OLD.id, 'DELETE'); END",
    ],
}
"""Triggers that record every row the sync writes (DuckDB has no triggers; it is only a source here)."""


mutation = st.tuples(st.sampled_from(["update", "delete", "insert"]), st.integers(1, 60), st.integers(0, 3))
_names = itertools.count()


@pytest.mark.parametrize(
    ("source_name", "target_name"), SYNC_PAIRS, ids=[f"{s}-to-{t}" for s, t in SYNC_PAIRS]
)
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=st.lists(mutation, min_size=1, max_size=12))
def test_random_mutations_converge_and_untouched_rows_are_not_written(
    make_db: Callable[[str], Database],
    source_name: str,
    target_name: str,
    mutations: list[tuple[str, int, int]],
) -> None:
    source, target = make_db(source_name), make_db(target_name)
    table = f"s{next(_names)}"
    seed(source, target, table, 60)
    touched: dict[int, str] = {}
    for op, key, column in mutations:
        if op == "update":
            col = ["name", "qty", "price", "note"][column]
            value = {"name": "'zz'", "qty": "-1", "price": "0.01", "note": "'changed'"}[col]
            target.sql(f"UPDATE {table} SET {col} = {value} WHERE id = {key}")
            touched[key] = op
        elif op == "delete":
            target.sql(f"DELETE FROM {table} WHERE id = {key}")
            touched[key] = op
        else:
            extra = 1000 + key
            target.sql(
                f"DELETE FROM {table} WHERE id = {extra}",
                f"INSERT INTO {table} VALUES ({extra}, 'x', 1, 1.00, 'extra')",
            )
            touched[extra] = op
    target.sql(*(s.format(t=table, s=target.schema) for s in AUDIT[target_name]))

    result = sync(job_for(source, target, tables=[table]), extra="delete")
    assert result.ok and result.verified, result.to_dict()
    assert diff(job_for(source, target, tables=[table])).identical
    written = {row[0] for row in target.query("SELECT k FROM audit")}
    assert written <= set(touched), f"rows written that were never mutated: {written - set(touched)}"


def test_equal_values_are_not_written(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("mariadb"), make_db("postgresql")
    seed(source, target, "items", 50)
    target.sql(*(s.format(t="items", s=target.schema) for s in AUDIT["postgresql"]))
    target.sql("UPDATE items SET qty = qty WHERE id = 5")  # a write that changes no value
    target.sql("DELETE FROM audit")
    result = sync(job_for(source, target, tables=["items"]))
    assert result.verified
    assert target.query("SELECT COUNT(*) FROM audit")[0][0] == 0
    assert sum(t.updated + t.inserted + t.deleted for t in result.tables) == 0


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite"])
def test_values_go_as_the_target_column_takes_them(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A boolean into a smallint, and a UUID into a varchar: PostgreSQL refused the parameters as
    their Python types (the dry run's SQL worked), and SQLite's driver cannot bind a UUID (audit)."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE f (id INTEGER PRIMARY KEY, active BOOLEAN, u UUID)",
        "INSERT INTO f VALUES (1, true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, false, NULL),"
        " (3, true, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12')",
    )
    target.sql(
        "CREATE TABLE f (id INTEGER PRIMARY KEY, active SMALLINT, u VARCHAR(36))",
        "INSERT INTO f VALUES (1, 0, 'x'), (2, 0, NULL)",
    )
    result = sync(job_for(source, target))
    assert result.verified and (result.tables[0].inserted, result.tables[0].updated) == (1, 1)
    assert target.query("SELECT id, active, u FROM f ORDER BY id") == [
        (1, 1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (2, 0, None),
        (3, 1, "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"),
    ]


def test_times_go_into_columns_keeping_fewer_digits_of_a_second_cut_to_them(
    make_db: Callable[[str], Database],
) -> None:
    """PostgreSQL rounds 10:00:00.6 into timestamp(0) up to 10:00:01, which diff (comparing the two at
    the fewer digits, cut) took for a difference: every sync ended "still differ" (exit 1)."""
    source, target = make_db("mariadb"), make_db("postgresql")
    source.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, ts DATETIME(6), tm TIME(6))",
        "INSERT INTO t VALUES (1, '2024-01-01 10:00:00.4', '10:00:00.4'),"
        " (2, '2024-12-31 23:59:59.6', '23:59:59.96'), (3, '2024-01-01 10:00:00', NULL)",
    )
    target.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TIMESTAMP(0), tm TIME(1))")
    result = sync(job_for(source, target))
    assert result.verified and result.tables[0].inserted == 3
    assert [(i, str(ts), str(tm)) for i, ts, tm in target.query("SELECT id, ts, tm FROM t ORDER BY id")] == [
        (1, "2024-01-01 10:00:00", "10:00:00.400000"),
        (2, "2024-12-31 23:59:59", "23:59:59.900000"),
        (3, "2024-01-01 10:00:00", "None"),
    ]
    source.sql("UPDATE t SET ts = '2024-01-01 10:00:07.999' WHERE id = 3")
    changed = sync(job_for(source, target))
    assert changed.verified and changed.tables[0].updated == 1
    assert str(target.query("SELECT ts FROM t WHERE id = 3")[0][0]) == "2024-01-01 10:00:07"


def test_text_goes_into_a_uuid_column_as_a_uuid() -> None:
    """Oracle's encoder takes a UUID's bytes: text for a UUID column crashed the run (the review)."""
    import uuid

    from parity.schema.types import Kind
    from parity.sync import as_kind

    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert as_kind(u, Kind.UUID) == uuid.UUID(u) and as_kind("nope", Kind.UUID) == "nope"
    assert as_kind(True, Kind.SMALLINT) == 1 and as_kind(1, Kind.BOOLEAN) is True
    assert as_kind(5, Kind.BOOLEAN) == 5  # (no boolean: the target takes it or refuses it, as it is)


def test_extra_rows_are_kept_unless_asked(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("mariadb")
    seed(source, target, "items", 10)
    target.sql("INSERT INTO items VALUES (99, 'extra', 1, 1.00, NULL)")
    kept = sync(job_for(source, target, tables=["items"]))
    assert kept.tables[0].extra_kept == 1 and kept.verified
    assert target.query("SELECT COUNT(*) FROM items WHERE id = 99")[0][0] == 1
    target.sql("ALTER TABLE items ADD COLUMN gone BOOLEAN")
    marked = sync(job_for(source, target, tables=["items"]), extra="soft-delete", soft_delete_column="gone")
    assert marked.tables[0].soft_deleted == 1
    assert target.query("SELECT id FROM items WHERE gone")[0][0] == 99
    target.sql(
        "ALTER TABLE items ADD COLUMN gone_at DATETIME(6)", "INSERT INTO items (id, name) VALUES (98, 'x')"
    )
    at = sync(job_for(source, target, tables=["items"]), extra="soft-delete", soft_delete_column="gone_at")
    assert at.tables[0].soft_deleted == 2
    first = target.query("SELECT id, gone_at FROM items WHERE gone_at IS NOT NULL ORDER BY id")
    again = sync(job_for(source, target, tables=["items"]), extra="soft-delete", soft_delete_column="gone_at")
    assert again.tables[0].soft_deleted == 0  # (marked again, they lost the time they were deleted at)
    assert target.query("SELECT id, gone_at FROM items WHERE gone_at IS NOT NULL ORDER BY id") == first
    deleted = sync(job_for(source, target, tables=["items"]), extra="delete")
    assert deleted.tables[0].deleted == 2 and deleted.verified
    assert target.query("SELECT COUNT(*) FROM items WHERE id IN (98, 99)")[0][0] == 0


@pytest.mark.parametrize(
    ("target_name", "column", "kind"),
    [("postgresql", "gone", "BOOLEAN"), ("mariadb", "gone_at", "DATETIME(6)"), ("sqlite", "gone", "INTEGER")],
)
def test_a_row_back_in_the_source_is_unmarked(
    make_db: Callable[[str], Database], target_name: str, column: str, kind: str
) -> None:
    """A row deleted from the source, marked deleted in the target (--soft-delete), then inserted in
    the source again kept its mark for good, and the sync said identical (the audit): a row back in
    the source is a row not deleted, with its other values or the same ones."""
    source, target = make_db("sqlite"), make_db(target_name)
    seed(source, target, "items", 10)
    target.sql(f"ALTER TABLE items ADD COLUMN {column} {kind}")

    def synced(**kw: Any) -> Any:
        return sync(
            job_for(source, target, tables=["items"]), extra="soft-delete", soft_delete_column=column, **kw
        )

    source.sql("DELETE FROM items WHERE id IN (2, 3, 4)")
    assert synced().tables[0].soft_deleted == 3
    marked = {"BOOLEAN": column, "INTEGER": f"{column} <> 0"}.get(kind, f"{column} IS NOT NULL")
    assert [r[0] for r in target.query(f"SELECT id FROM items WHERE {marked} ORDER BY id")] == [2, 3, 4]
    source.sql("INSERT INTO items VALUES (2, 'n2', 2, 2.50, NULL), (3, 'back', 3, 3.50, NULL)")
    planned = synced(dry_run=True)
    revivals = [s for s in planned.statements if column in s and "items.id = 4" not in s]
    assert planned.tables[0].updated == 2 and len(revivals) == 2, planned.statements
    done = synced()
    assert (done.tables[0].updated, done.tables[0].soft_deleted) == (2, 0) and done.verified
    assert [r[0] for r in target.query(f"SELECT id FROM items WHERE {marked} ORDER BY id")] == [4]
    assert target.query("SELECT name FROM items WHERE id = 3")[0][0] == "back"
    assert synced().tables[0].updated == 0
    steady = synced(dry_run=True)  # (row 4, marked already: not again; the dry run printed it every time)
    assert (steady.tables[0].soft_deleted, steady.tables[0].updated, steady.statements) == (0, 0, [])


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_values_the_target_would_change_are_refused_as_copy_refuses_them(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """An SQLite source holds what its target cannot: 12.345 for a decimal(10,2), a time of day in a
    DATE, text that is no JSON in a JSON column. Sync wrote 12.35, the date alone, and the text as
    a JSON string, and diff then found 'abc' equal to that string (the audit): each row is refused
    with its reason, the others written, and diff still sees them differ."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE jj (id INTEGER PRIMARY KEY, meta JSON, amt NUMERIC(10,2), born DATE)",
        "INSERT INTO jj VALUES (1, '{}', 1.5, '2020-01-01'), (2, 'null', 2, '2020-01-02'), (3, '[1]', 3, '2020-01-03')",
    )
    assert copy(job_for(source, target, tables=["jj"])).ok
    source.sql(
        "UPDATE jj SET meta = 'not json' WHERE id = 1",
        "UPDATE jj SET amt = 12.345 WHERE id = 2",
        "UPDATE jj SET born = '2020-01-01 12:00:00' WHERE id = 3",
        "INSERT INTO jj VALUES (4, 'abc', 1, '2021-01-01'), (5, '{\"a\": 1}', 5.25, '2021-01-05')",
    )
    before = target.query("SELECT id, meta, amt, born FROM jj ORDER BY id")
    for dry_run in (True, False):
        result = sync(job_for(source, target, tables=["jj"]), dry_run=dry_run)
        table = result.tables[0]
        assert (table.inserted, table.updated, table.failed) == (1, 0, 4), table
        reasons = sorted(table.errors)
        assert "'not json' is no JSON" in reasons[0] and "'abc' is no JSON" in reasons[3], reasons
        assert "amt: 12.345 has more decimals than the target keeps (2)" in reasons[1], reasons
        assert "born: " in reasons[2] and "is a date and a time of day" in reasons[2], reasons
        if dry_run:
            assert target.query("SELECT id, meta, amt, born FROM jj ORDER BY id") == before
    assert target.query("SELECT id, amt FROM jj WHERE id IN (2, 5) ORDER BY id") == [
        (2, Decimal("2.00")),
        (5, Decimal("5.25")),
    ]
    found = diff(job_for(source, target, tables=["jj"]))
    assert {(d.kind, d.key["id"]) for d in found.tables[0].differences} == {
        ("changed", 1),
        ("changed", 2),
        ("changed", 3),
        ("missing", 4),
    }


def test_text_in_an_sqlite_real_column_is_a_difference_and_a_refused_row(
    make_db: Callable[[str], Database],
) -> None:
    """'n/a' in an SQLite REAL column stopped diff and sync with "user-defined function raised
    exception", naming no row (the audit): diff reports the row changed, and sync refuses it with
    its key and column; a row the target itself refuses is named by its key too."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE rr (id INTEGER PRIMARY KEY, score REAL, ok BOOLEAN, t TEXT)",
        "INSERT INTO rr VALUES (1, 1.5, 1, 'a'), (2, 2.5, 0, 'b'), (3, 3.5, 1, 'c')",
    )
    assert copy(job_for(source, target, tables=["rr"])).ok
    source.sql(
        "UPDATE rr SET score = 'n/a' WHERE id = 2",
        "UPDATE rr SET ok = 5 WHERE id = 3",
        "INSERT INTO rr VALUES (4, 4.5, 0, 'x' || char(0))",  # (PostgreSQL's own refusal)
    )
    found = diff(job_for(source, target, tables=["rr"]))
    assert {(d.kind, d.key["id"], d.columns) for d in found.tables[0].differences} == {
        ("changed", 2, ("score",)),
        ("changed", 3, ("ok",)),
        ("missing", 4, ()),
    }
    result = sync(job_for(source, target, tables=["rr"]))
    assert result.tables[0].failed == 3 and not result.verified
    reasons = sorted(result.tables[0].errors)
    assert 'rr {"id": 2}: score: ' in reasons[0] and "'n/a'" in reasons[0], reasons
    assert 'rr {"id": 3}: ok: ' in reasons[1], reasons
    assert reasons[2].startswith('rr {"id": 4}: ') and "NUL" in reasons[2], reasons
    assert target.query("SELECT id, score, ok FROM rr ORDER BY id") == [
        (1, 1.5, True),
        (2, 2.5, False),
        (3, 3.5, True),
    ]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_an_sqlite_blob_in_a_text_column_is_a_refused_row(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """sync wrote an SQLite BLOB in a TEXT column into PostgreSQL as the text '\\x41' (copy rejects
    such a row): it is refused now, with its key and column."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE bt (id INTEGER PRIMARY KEY, t TEXT)", "INSERT INTO bt VALUES (1, 'a')")
    assert copy(job_for(source, target, tables=["bt"])).ok
    source.sql("INSERT INTO bt VALUES (2, x'41')", "UPDATE bt SET t = x'00ff' WHERE id = 1")
    result = sync(job_for(source, target, tables=["bt"]))
    assert result.tables[0].failed == 2 and not result.verified
    reasons = sorted(result.tables[0].errors)
    assert all("a BLOB, not text" in why for why in reasons) and len(reasons) == 2, reasons
    assert target.query("SELECT id, t FROM bt ORDER BY id") == [(1, "a")]


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb", "mariadb"])
def test_infinite_days_and_days_before_christ_are_synced_where_the_target_holds_them(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """PostgreSQL's 'infinity' and '0045-03-15 BC' come as their text (no Python date holds them):
    sync refused every such row as "Invalid isoformat string", PostgreSQL into PostgreSQL too. They
    are written where the target holds them (PostgreSQL, DuckDB: in its spelling), and refused with
    their keys elsewhere."""
    source, target, printed = make_db("postgresql"), make_db(target_name), make_db(target_name)
    source.sql(
        "CREATE TABLE ev (id int PRIMARY KEY, d date, ts timestamp)",
        "INSERT INTO ev VALUES (1, '2020-01-01', '2020-01-01 10:00:00')",
    )
    assert (
        copy(job_for(source, target, tables=["ev"])).ok and copy(job_for(source, printed, tables=["ev"])).ok
    )
    source.sql(
        "INSERT INTO ev VALUES (2, 'infinity', '-infinity'), (3, '0045-03-15 BC', '0001-12-31 23:59:59.5 BC')",
        "UPDATE ev SET d = '0100-01-01 BC' WHERE id = 1",
    )
    if target_name != "mariadb":  # (the dry run's SQL runs as printed: the text in the target's spelling)
        printed.sql(*sync(job_for(source, printed, tables=["ev"]), dry_run=True).statements)
        assert diff(job_for(source, printed, tables=["ev"])).identical
    result = sync(job_for(source, target, tables=["ev"]))
    table = result.tables[0]
    if target_name == "mariadb":
        assert (table.inserted, table.updated, table.failed) == (0, 0, 3) and not result.verified
        assert sorted(table.errors) == [
            'ev {"id": 1}: d: 0100-01-01 BC is no date mariadb holds',
            'ev {"id": 2}: d: infinity is no date mariadb holds',
            'ev {"id": 3}: d: 0045-03-15 BC is no date mariadb holds',
        ], table.errors
        return
    assert (table.inserted, table.updated, table.failed) == (2, 1, 0), table.errors
    assert result.verified and diff(job_for(source, target, tables=["ev"])).identical


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite", "duckdb"])
def test_the_dry_run_prints_nan_and_infinity_as_sql_that_runs(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """The dry run printed NaN and the infinities bare ('SET f=nan', 'VALUES (1, inf)'), which no
    database reads (the audit): run as printed, its SQL makes the target equal to the source."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE fl (id int PRIMARY KEY, f float8)",
        "INSERT INTO fl VALUES (3, 1)",
    )
    assert copy(job_for(source, target, tables=["fl"])).ok
    source.sql(
        "INSERT INTO fl VALUES (1, 'NaN'), (2, '-Infinity'), (4, 'Infinity')",
        "UPDATE fl SET f = 'NaN' WHERE id = 3",
    )
    printed = sync(job_for(source, target, tables=["fl"]), dry_run=True).statements
    assert not any("nan" in s.lower().replace("'nan'", "") for s in printed), printed
    target.sql(*printed)
    assert diff(job_for(source, target, tables=["fl"])).identical


def test_nan_and_infinity_are_refused_rows_into_mariadb_in_the_dry_run_too(
    make_db: Callable[[str], Database],
) -> None:
    """MariaDB holds no NaN and no infinity. The dry run printed ``SET x=nan`` and ``VALUES (2, inf)``,
    SQL that does not run, and counted them to apply; the run itself refused them by the driver's
    words: both now refuse those rows before any SQL, with their keys, as copy does."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE fl (id int PRIMARY KEY, x float8, y float8)",
        "INSERT INTO fl VALUES (1, 0, 1.5), (3, 1, 1)",
    )
    assert copy(job_for(source, target, tables=["fl"])).ok
    source.sql(
        "UPDATE fl SET x = 'NaN' WHERE id = 1",
        "UPDATE fl SET y = 2 WHERE id = 3",
        "INSERT INTO fl VALUES (2, 2.5, '-Infinity')",
    )
    for dry_run in (True, False):
        result = sync(job_for(source, target, tables=["fl"]), dry_run=dry_run)
        table = result.tables[0]
        assert (table.inserted, table.updated, table.failed) == (0, 1, 2), table
        assert sorted(table.errors) == [
            'fl {"id": 1}: x: nan is no number mariadb holds (no NaN, no infinity)',
            'fl {"id": 2}: y: -inf is no number mariadb holds (no NaN, no infinity)',
        ]
        if dry_run:
            assert not any("nan" in s or "inf" in s for s in result.statements), result.statements
    assert target.query("SELECT id, x, y FROM fl ORDER BY id") == [(1, 0.0, 1.5), (3, 1.0, 2.0)]


@pytest.mark.parametrize("target_name", ["sqlite", "postgresql", "mariadb"])
def test_dry_run_changes_nothing_and_prints_runnable_sql(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    source, target = make_db("sqlite"), make_db(target_name)
    seed(source, target, "items", 20)
    target.sql(
        "UPDATE items SET name = 'it''s changed', price = 9.99 WHERE id = 3",
        "DELETE FROM items WHERE id = 4",
        "INSERT INTO items VALUES (77, 'extra', 1, 1.00, NULL)",
    )
    before = target.query("SELECT id, name, qty, price, note FROM items ORDER BY id")
    result = sync(job_for(source, target, tables=["items"]), dry_run=True, extra="delete")
    assert target.query("SELECT id, name, qty, price, note FROM items ORDER BY id") == before
    assert len(result.statements) == 3
    assert any(
        s.startswith("UPDATE") and "name=" in s.replace(" ", "") and "price" in s for s in result.statements
    )
    target.sql(*(s.rstrip(";") for s in result.statements))
    assert diff(job_for(source, target, tables=["items"])).identical


def test_parents_are_inserted_before_children(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id))",
    )
    assert copy(job_for(source, target)).ok
    source.sql("INSERT INTO parent VALUES (1, 'p')", "INSERT INTO child VALUES (10, 1)")
    result = sync(job_for(source, target))
    assert result.verified, result.to_dict()
    source.sql("DELETE FROM child", "DELETE FROM parent")
    result = sync(job_for(source, target), extra="delete")
    assert result.verified and target.query("SELECT COUNT(*) FROM parent")[0][0] == 0


def test_killed_sync_converges_when_run_again(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("postgresql")
    seed(source, target, "items", 3000)
    target.sql("UPDATE items SET qty = -5", "DELETE FROM items WHERE id > 2500")
    args = [
        sys.executable,
        "-m",
        "parity",
        "sync",
        source.url,
        target.url,
        "-t",
        "items",
        "--batch-size",
        "1",
    ]
    args += ["--target-schema", target.schema] if target.schema else []
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if target.query("SELECT COUNT(*) FROM items WHERE id <= 2500 AND qty <> -5")[0][0] > 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "sync finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partly = target.query("SELECT COUNT(*) FROM items WHERE qty = -5")[0][0]
    assert 0 < partly < 2500
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert diff(job_for(source, target, tables=["items"])).identical


def test_unselected_tables_are_not_touched(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("sqlite")
    seed(source, target, "a", 5)
    seed(source, target, "b", 5)
    target.sql("UPDATE a SET qty = 100", "UPDATE b SET qty = 100")
    assert sync(job_for(source, target, tables=["a"])).verified
    assert target.query("SELECT COUNT(*) FROM b WHERE qty = 100")[0][0] == 5
    with sa.create_engine(target.url).connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM a WHERE qty = 100").scalar() == 0


def test_sync_of_all_tables_syncs_those_the_target_holds_and_names_the_others(
    make_db: Callable[[str], Database],
) -> None:
    """As scsc-mysql-sync.md's users know it: without named tables, the common tables are synced; the
    source's others are named, not an error that stopped the whole run. A table named is still one."""
    source, target = make_db("mariadb"), make_db("mariadb")
    seed(source, target, "a", 5)
    source.sql("CREATE TABLE only_here (id INTEGER PRIMARY KEY)", "INSERT INTO only_here VALUES (1)")
    target.sql("UPDATE a SET qty = 100")
    result = sync(job_for(source, target))
    assert [t.table for t in result.tables] == ["a"] and result.verified
    assert target.query("SELECT COUNT(*) FROM a WHERE qty = 100")[0][0] == 0
    assert any("only_here: not in the target, not synced" in note for note in result.notes), result.notes
    assert "only_here" not in target.tables()
    with pytest.raises(NotFound, match="only_here"):
        sync(job_for(source, target, tables=["a", "only_here"]))
    source.sql("DROP TABLE a")
    with pytest.raises(ConfigError, match="no table to sync: the target holds none of the source's"):
        sync(job_for(source, target, include=["only*"]))


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_fix_applies_a_stored_diff_run_and_skips_conflicts(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db(target_name)
    seed(source, target, "items", 30)
    target.sql(
        "UPDATE items SET name = 'changed', price = 1.00 WHERE id IN (3, 4)",
        "DELETE FROM items WHERE id = 5",
        "INSERT INTO items VALUES (99, 'extra', 1, 1.00, NULL)",
    )
    found = diff(job_for(source, target, tables=["items"]), output="_parity_discrepancies")
    assert not found.identical
    target.sql("UPDATE items SET name = 'moved on' WHERE id = 4")  # changed again after the diff

    review = fix(job_for(source, target, tables=["items"]), found.run_id)
    assert (review.inserted, review.updated, review.deleted) == (1, 1, 0)
    assert target.query("SELECT COUNT(*) FROM items WHERE id = 5")[0][0] == 0  # nothing applied yet
    assert any("UPDATE" in s for s in review.statements)

    applied = fix(job_for(source, target, tables=["items"]), found.run_id, apply=True, delete=True)
    assert (applied.inserted, applied.updated, applied.deleted) == (1, 1, 1)
    assert (
        len(applied.conflicts) == 1
        and "moved on" not in applied.conflicts[0]
        and "name" in applied.conflicts[0]
    )
    rows = dict(target.query("SELECT id, name FROM items WHERE id IN (3, 4, 5, 99)"))
    assert rows == {3: "n3", 4: "moved on", 5: "n5"}
    again = fix(job_for(source, target, tables=["items"]), found.run_id, apply=True, delete=True)
    assert (again.inserted, again.updated, again.deleted, again.already) == (0, 0, 0, 3)
    assert len(again.conflicts) == 1  # (id 4, still changed by someone else)


def test_fix_reads_rows_again_a_chunk_of_keys_at_a_time(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """fix read each row of the diff again with a query of its own on each side (8,500 rows into
    DuckDB took two minutes); it reads them a chunk of keys a query, each row matched to its key as
    read: keys a collation takes for one ('a', 'A') stay apart, and keys not there are not found."""
    import parity.fix as fix_module
    from parity.fix import fix

    monkeypatch.setattr(fix_module, "FETCHED_AT_ONCE", 3)
    source, target = make_db("postgresql"), make_db("mariadb")
    for db in (source, target):
        db.sql("CREATE TABLE k (k VARCHAR(10) PRIMARY KEY, v INTEGER)")
    source.sql("INSERT INTO k VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), ('e', 5), ('F', 6), ('g', 7)")
    target.sql("INSERT INTO k VALUES ('A', 1), ('b', 20), ('c', 3), ('e', 50), ('f', 6), ('h', 8), ('i', 9)")
    found = diff(job_for(source, target, tables=["k"]), output="_parity_discrepancies")
    fixed = fix(job_for(source, target, tables=["k"]), found.run_id, apply=True, delete=True)
    assert (fixed.inserted, fixed.updated, fixed.deleted, fixed.conflicts) == (4, 2, 4, []), fixed
    assert sorted(target.query("SELECT k, v FROM k")) == sorted(source.query("SELECT k, v FROM k"))


def test_fix_names_a_column_edited_since_the_diff_as_the_source_does(
    make_db: Callable[[str], Database],
) -> None:
    """Under --map s=s_t, a changed row's conflict named the source's column (s), an extra row's the
    target's (s_t) (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, s INTEGER)", "INSERT INTO t VALUES (1, 1)")
    target.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, s_t INTEGER)", "INSERT INTO t VALUES (1, 2), (2, 2)")
    options = {"map": {"s": "s_t"}}
    found = diff(job_for(source, target, table_options=options), output="_parity_discrepancies")
    target.sql("UPDATE t SET s_t = 3")
    applied = fix(job_for(source, target, table_options=options), found.run_id, apply=True, delete=True)
    assert sorted(applied.conflicts) == [
        't {"id": 1}: changed in the target since the diff (s)',
        't {"id": 2}: changed in the target since the diff (s)',
    ]


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb"])
def test_fix_reads_the_target_as_the_diff_compared_it(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """Audit findings on fix: a JSON column was always "changed in the target since the diff" (the
    diff recorded {"a": 0}, fix read {"a":0}); a row whose one changed column the application set
    right was taken as done, its other column left wrong; an extra row edited since the diff was
    deleted; a source column the target lacks crashed it (Unconsumed column names); and a rerun
    found conflicts in columns of other types (numeric(12,2) against (14,4), boolean against an
    integer), as it compared their texts."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON, name VARCHAR(10), qty INTEGER,"
        " amt NUMERIC(12,2), flag BOOLEAN, note TEXT)",
        """INSERT INTO t VALUES (1, '{"a": 1}', 'n1', 1, 1.50, true, 'x'), (2, '{"a": 2}', 'n2', 2, 2.50, false, 'x'),"""
        """ (3, '{"a": 3}', 'n3', 3, 3.50, true, 'x')""",
    )
    target.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON, name VARCHAR(10), qty INTEGER,"
        " amt NUMERIC(14,4), flag SMALLINT)",
        """INSERT INTO t VALUES (1, '{"a": 0}', 'n1', 1, 1.5, 1), (2, '{"a": 2}', 'old', 0, 2.5, 0),"""
        """ (4, '{"a": 4}', 'n4', 4, 4.5, 1)""",
    )
    found = diff(job_for(source, target), output="_parity_discrepancies")
    assert not found.identical
    target.sql("UPDATE t SET name = 'n2' WHERE id = 2", "UPDATE t SET qty = 40 WHERE id = 4")
    applied = fix(job_for(source, target), found.run_id, apply=True, delete=True)
    assert (applied.inserted, applied.updated, applied.deleted) == (1, 2, 0), applied.conflicts
    assert applied.conflicts == ['t {"id": 4}: changed in the target since the diff (qty)']
    assert target.query("SELECT id, qty FROM t ORDER BY id") == [(1, 1), (2, 2), (3, 3), (4, 40)]
    again = fix(job_for(source, target), found.run_id, apply=True)
    assert (again.inserted, again.updated, again.already, again.conflicts) == (0, 0, 3, [])


def test_fix_deletes_extra_rows_of_sqlite_decimals_and_reads_jsonb_strings(
    make_db: Callable[[str], Database],
) -> None:
    """The review: SQLite gives 2.00 as 2, which was taken for an edit since the diff (so no extra
    row was ever deleted); and a jsonb holding a JSON string ("hello") crashed fix (psycopg gives it
    as hello, which is no JSON text)."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, amount NUMERIC(12,2))", "INSERT INTO p VALUES (1, 1.00)"
    )
    target.sql(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, amount NUMERIC(12,2))",
        "INSERT INTO p VALUES (1, 1.00), (2, 2.00), (3, 2.50)",
    )
    found = diff(job_for(source, target), output="_parity_discrepancies")
    applied = fix(job_for(source, target), found.run_id, apply=True, delete=True)
    assert (applied.deleted, applied.conflicts) == (2, [])
    pg = make_db("postgresql")
    source.sql(
        "CREATE TABLE j (id INTEGER PRIMARY KEY, doc JSONB)",
        """INSERT INTO j VALUES (1, '"hello"'), (2, '123')""",
    )
    pg.sql(
        "CREATE TABLE j (id INTEGER PRIMARY KEY, doc JSONB)",
        """INSERT INTO j VALUES (1, '"bye"'), (2, '"123"')""",
    )
    found = diff(job_for(source, pg, tables=["j"]), output="_parity_discrepancies")
    applied = fix(job_for(source, pg, tables=["j"]), found.run_id, apply=True)
    assert (applied.updated, applied.conflicts) == (2, [])
    assert diff(job_for(source, pg, tables=["j"])).identical


@pytest.mark.parametrize("target_name", ["duckdb", "postgresql"])
def test_fix_deletes_extra_rows_holding_infinity_or_a_day_before_christ(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """Fix read DuckDB's BC date as '0045-03-15 (BC)' and stopped on it ("Invalid isoformat string");
    its infinity as 9999-12-31, an edit since the diff (the row was kept); PostgreSQL's, a DataError."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db(target_name)
    source.sql("CREATE TABLE o (id INTEGER PRIMARY KEY, d DATE)", "INSERT INTO o VALUES (7, '2020-01-02')")
    bc = "(BC)" if target_name == "duckdb" else "BC"
    target.sql(
        "CREATE TABLE o (id INTEGER PRIMARY KEY, d DATE)",
        f"INSERT INTO o VALUES (1, 'infinity'), (2, '-infinity'), (3, '0045-03-15 {bc}'), (7, '2020-01-01')",
    )
    found = diff(job_for(source, target, tables=["o"]), output="_parity_discrepancies")
    applied = fix(job_for(source, target, tables=["o"]), found.run_id, apply=True, delete=True)
    assert (applied.updated, applied.deleted, applied.conflicts) == (1, 3, [])
    assert diff(job_for(source, target, tables=["o"])).identical


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite", "mariadb", "duckdb"])
def test_a_uuid_held_as_text_in_another_spelling_is_the_same_key_at_any_table_size(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """SQL hashed a UUID held as text in its own spelling (no dashes, braces, upper case) and Python
    compared it as a UUID: past one download the two spellings fell in different segments, each row
    was missing and extra, and fix --delete deleted half of the target (the audit)."""
    import uuid

    from parity.fix import fix

    keys = [uuid.UUID(int=i * 7919 + (i << 100)) for i in range(1, 3001)]
    spellings = [lambda u: u.hex, lambda u: "{" + str(u).upper() + "}", lambda u: f"urn:uuid:{u}", str,
                 lambda u: f"URN:UUID:{str(u).upper()}"]  # fmt: skip
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql("CREATE TABLE u (k UUID PRIMARY KEY, v INTEGER)")
    target.sql("CREATE TABLE u (k VARCHAR(60) PRIMARY KEY, v INTEGER)")
    for start in range(0, len(keys), 500):
        chunk = range(start, min(start + 500, len(keys)))
        source.sql("INSERT INTO u VALUES " + ", ".join(f"('{keys[i]}', {i})" for i in chunk))
        target.sql(
            "INSERT INTO u VALUES " + ", ".join(f"('{spellings[i % 5](keys[i])}', {i})" for i in chunk)
        )
    found = diff(job_for(source, target, tables=["u"]))
    assert found.identical and found.tables[0].stats.rows_downloaded == 0
    held = {i: spellings[i % 5](keys[i]) for i in (1234, 2001)}
    target.sql(f"UPDATE u SET v = -1 WHERE k = '{held[1234]}'", f"DELETE FROM u WHERE k = '{held[2001]}'")
    found = diff(job_for(source, target, tables=["u"]), output="_parity_discrepancies")
    assert sorted((d.kind, d.key["k"]) for d in found.differences) == [
        ("changed", keys[1234]), ("missing", keys[2001])
    ]  # fmt: skip
    applied = fix(job_for(source, target, tables=["u"]), found.run_id, apply=True, delete=True)
    assert (applied.inserted, applied.updated, applied.deleted) == (1, 1, 0)
    assert diff(job_for(source, target, tables=["u"])).identical


@pytest.mark.parametrize("case", ["duckdb nocase target", "postgresql nondeterministic source"])
def test_fix_changes_only_the_row_of_its_key_where_a_collation_ignores_case(
    make_db: Callable[[str], Database], case: str
) -> None:
    """Fix matched keys with =, which a case-insensitive collation (DuckDB's NOCASE, PostgreSQL's
    nondeterministic ICU collations) holds true of 'a' and 'A': its DELETE of 'A' deleted 'a' too, its
    UPDATE of 'a' updated 'A', and its INSERT took the source's 'a' for 'A' (the audit)."""
    from parity.fix import fix

    if case.startswith("duckdb"):
        source, target = make_db("postgresql"), make_db("duckdb")
        source.sql("CREATE TABLE n (k VARCHAR(10) PRIMARY KEY, v INTEGER)",
                   "INSERT INTO n VALUES ('a', 1), ('b', 2), ('c', 3)")  # fmt: skip
        target.sql("CREATE TABLE n (k VARCHAR COLLATE NOCASE NOT NULL, v INTEGER)",
                   "INSERT INTO n VALUES ('A', 1), ('a', 1), ('b', 20), ('B', 2), ('c', 3)")  # fmt: skip
        expected = [("a", 1), ("b", 2), ("c", 3)]
    else:
        source, target = make_db("postgresql"), make_db("sqlite")
        source.sql("CREATE COLLATION IF NOT EXISTS parity_ci (provider = icu, locale = 'und-u-ks-level2',"
                   " deterministic = false)",
                   "CREATE TABLE n (k VARCHAR(10) COLLATE parity_ci NOT NULL, v INTEGER)",
                   "INSERT INTO n VALUES ('a', 1), ('A', 7), ('b', 2)")  # fmt: skip
        target.sql(
            "CREATE TABLE n (k TEXT PRIMARY KEY, v INTEGER)", "INSERT INTO n VALUES ('a', 1), ('b', 2)"
        )
        expected = [("A", 7), ("a", 1), ("b", 2)]
    found = diff(job_for(source, target, tables=["n"], table_options={"key": ["k"]}),
                 output="_parity_discrepancies")  # fmt: skip
    assert not found.identical
    fixed = fix(job_for(source, target, tables=["n"], table_options={"key": ["k"]}),
                found.run_id, apply=True, delete=True)  # fmt: skip
    assert fixed.conflicts == []
    assert sorted(tuple(r) for r in target.query("SELECT k, v FROM n")) == expected


def test_fix_finds_sqlite_date_and_timestamp_keys_in_the_spellings_diff_takes_as_one(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite holds '2020-06-02T00:00:00' as it was given, and diff takes it for 2020-06-02 00:00:00;
    fix looked the key up as '2020-06-02 00:00:00', found no row, and called the extra row deleted
    already and the changed one gone (exit 0, the target unchanged; the audit)."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql("CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
               "INSERT INTO ts VALUES ('2020-01-01 10:00', 1), ('2020-03-29 01:30:00.5', 2)",
               "CREATE TABLE ds (d DATE PRIMARY KEY, v INTEGER)", "INSERT INTO ds VALUES ('2020-01-02', 1)")  # fmt: skip
    target.sql("CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
               "INSERT INTO ts VALUES ('2020-01-01T10:00:00', 1), ('2020-03-29T01:30:00.500', 20),"
               " ('2020-06-02T00:00:00', 3)",
               "CREATE TABLE ds (d DATE PRIMARY KEY, v INTEGER)",
               "INSERT INTO ds VALUES ('2020-01-02T00:00:00', 5), ('2020-01-03 00:00:00.000', 6)")  # fmt: skip
    found = diff(job_for(source, target, tables=["ts", "ds"]), output="_parity_discrepancies")
    assert sorted(d.kind for d in found.differences) == ["changed", "changed", "extra", "extra"]
    fixed = fix(job_for(source, target, tables=["ts", "ds"]), found.run_id, apply=True, delete=True)
    assert (fixed.updated, fixed.deleted, fixed.already, fixed.conflicts) == (2, 2, 0, [])
    assert target.query("SELECT t, v FROM ts ORDER BY t") == [
        ("2020-01-01T10:00:00", 1),
        ("2020-03-29T01:30:00.500", 2),
    ]
    assert diff(job_for(source, target, tables=["ts", "ds"])).identical


def test_fix_and_sync_find_sqlite_timestamp_keys_in_any_spelling_diff_takes_as_the_value(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite holds '2020-06-02 10:00:00Z', '2020-06-03 01:00:00+02:00' (the day before, in UTC),
    '2020-06-04T10:00:00.5' and '2020-06-05 10:00' as given, and diff takes each for its moment; fix and
    sync looked them up in six spellings of their own, found none, and changed nothing (fix said the
    rows were gone; sync left them differing)."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql("CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
               "INSERT INTO ts VALUES ('2020-06-02 10:00', 1), ('2020-06-02 23:00', 2),"
               " ('2020-06-04 10:00:00.5', 3), ('2020-06-05 10:00', 4), ('2020-06-07 10:00:00.12345', 5)",
               "CREATE TABLE ds (d DATE PRIMARY KEY, v INTEGER)", "INSERT INTO ds VALUES ('2020-01-02', 1)")  # fmt: skip
    held = ["2020-06-02 10:00:00Z", "2020-06-03 01:00:00+02:00", "2020-06-04T10:00:00.5", "2020-06-05 10:00",
            "2020-06-07 10:00:00.12345Z"]  # fmt: skip
    target.sql("CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
               *(f"INSERT INTO ts VALUES ('{t}', 9)" for t in held),
               "INSERT INTO ts VALUES ('2020-06-06 00:00:00-01:00', 7)",
               "CREATE TABLE ds (d DATE PRIMARY KEY, v INTEGER)",
               "INSERT INTO ds VALUES ('2020-01-02T00:00Z', 5), ('2020-01-03T00:00:00.0', 6)")  # fmt: skip
    tables = ["ts", "ds"]
    found = diff(job_for(source, target, tables=tables), output="_parity_discrepancies")
    assert sorted(d.kind for d in found.differences) == ["changed"] * 6 + ["extra"] * 2
    fixed = fix(job_for(source, target, tables=tables), found.run_id, apply=True, delete=True)
    assert (fixed.updated, fixed.deleted, fixed.already, fixed.conflicts) == (6, 2, 0, [])
    assert target.query("SELECT t, v FROM ts ORDER BY v") == list(zip(held, [1, 2, 3, 4, 5], strict=True))
    assert target.query("SELECT d, v FROM ds") == [("2020-01-02T00:00Z", 1)]
    assert diff(job_for(source, target, tables=tables)).identical
    # sync alike, through the keys diff read: it changes each row by the spelling the target holds
    source.sql("UPDATE ts SET v = v + 10", "UPDATE ds SET v = 20")
    synced = sync(job_for(source, target, tables=tables))
    assert {t.table: t.updated for t in synced.tables} == {"ts": 5, "ds": 1}
    assert target.query("SELECT t, v FROM ts ORDER BY v") == list(
        zip(held, [11, 12, 13, 14, 15], strict=True)
    )
    assert diff(job_for(source, target, tables=tables)).identical


def test_fix_takes_no_row_for_a_key_diff_could_not_read_as_that_key(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite's timestamp function takes '...00.1234567' for the moment '...00.123456', which diff
    refuses as a key (finer than a microsecond): one row missing, another extra. fix's loose lookup
    found the extra row for the missing key, called it there already, and deleted it: the target lost
    the row (the review)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(
        "CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
        "INSERT INTO ts VALUES ('2020-06-09 10:00:00.123456', 1)",
    )
    target.sql(
        "CREATE TABLE ts (t TIMESTAMP PRIMARY KEY, v INTEGER)",
        "INSERT INTO ts VALUES ('2020-06-09T10:00:00.1234567', 2)",
    )
    found = diff(job_for(source, target, tables=["ts"]), output="_parity_discrepancies")
    assert sorted(d.kind for d in found.differences) == ["extra", "missing"]
    fixed = fix(job_for(source, target, tables=["ts"]), found.run_id, apply=True, delete=True)
    assert (fixed.inserted, fixed.deleted, fixed.conflicts) == (1, 1, [])
    assert target.query("SELECT t, v FROM ts") == [("2020-06-09 10:00:00.123456", 1)]


@pytest.mark.parametrize(("source_name", "target_name"), [("postgresql", "postgresql"), ("sqlite", "duckdb")])
def test_fix_finds_a_text_key_with_trailing_spaces_diff_compared_against_a_char(
    make_db: Callable[[str], Database], source_name: str, target_name: str
) -> None:
    """Against a CHAR key, diff compares text keys without their trailing spaces ('b ' is 'b'); fix
    looked 'b' up in the side that holds 'b ' and called the row gone (the audit)."""
    from parity.fix import fix

    source, target = make_db(source_name), make_db(target_name)
    pad_source = source_name == "sqlite"  # (SQLite's CHAR holds what it is given: 'b ')
    source.sql("CREATE TABLE ch (k CHAR(5) PRIMARY KEY, v INTEGER)",
               f"INSERT INTO ch VALUES ('a', 1), ('{'b ' if pad_source else 'b'}', 2)")  # fmt: skip
    target.sql("CREATE TABLE ch (k VARCHAR(5) PRIMARY KEY, v INTEGER)",
               f"INSERT INTO ch VALUES ('a', 1), ('{'b' if pad_source else 'b '}', 20)")  # fmt: skip
    found = diff(job_for(source, target, tables=["ch"]), output="_parity_discrepancies")
    assert [(d.kind, d.columns) for d in found.differences] == [("changed", ("v",))]
    fixed = fix(job_for(source, target, tables=["ch"]), found.run_id, apply=True)
    assert (fixed.updated, fixed.conflicts) == (1, [])
    assert diff(job_for(source, target, tables=["ch"])).identical
    # sync alike: it changes the row by the key the target holds
    source.sql("UPDATE ch SET v = 3 WHERE v = 2")
    synced = sync(job_for(source, target, tables=["ch"]))
    assert synced.tables[0].updated == 1 and diff(job_for(source, target, tables=["ch"])).identical


def test_sync_changes_rows_by_keys_of_types_that_take_no_collation_or_are_no_dates(
    make_db: Callable[[str], Database],
) -> None:
    """The exact key test (a collation's = takes 'a' for 'A') put COLLATE on an enum, which takes none;
    SQLite's date spellings decoded a key that is no date, and stopped sync (the review)."""
    pg, pg2 = make_db("postgresql"), make_db("postgresql")
    for db in (pg, pg2):
        db.sql(f"CREATE TYPE {db.schema}_mood AS ENUM ('happy', 'sad')",
               f"CREATE TABLE m (k {db.schema}_mood PRIMARY KEY, v INTEGER)",
               "INSERT INTO m VALUES ('happy', 1), ('sad', 2)")  # fmt: skip
    pg.sql("UPDATE m SET v = 20 WHERE k = 'sad'")
    assert sync(job_for(pg, pg2, tables=["m"])).tables[0].updated == 1
    source, lite = make_db("sqlite"), make_db("sqlite")
    for db in (source, lite):
        db.sql(
            "CREATE TABLE d (day DATE PRIMARY KEY, v INTEGER)",
            "INSERT INTO d VALUES ('unknown', 1), ('2020-01-02', 2)",
        )
    source.sql("UPDATE d SET v = 10")
    synced = sync(job_for(source, lite, tables=["d"]))
    assert synced.tables[0].updated == 2 and diff(job_for(source, lite, tables=["d"])).identical


def test_fix_deletes_no_extra_row_the_source_holds_by_then(make_db: Callable[[str], Database]) -> None:
    """An extra row was deleted whatever the source held by then: a key the diff took for another,
    or a row inserted since, was lost from the target."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql("CREATE TABLE e (id INTEGER PRIMARY KEY, v INTEGER)", "INSERT INTO e VALUES (1, 1)")
    target.sql(
        "CREATE TABLE e (id INTEGER PRIMARY KEY, v INTEGER)", "INSERT INTO e VALUES (1, 1), (2, 2), (3, 3)"
    )
    found = diff(job_for(source, target, tables=["e"]), output="_parity_discrepancies")
    source.sql("INSERT INTO e VALUES (2, 2)")
    fixed = fix(job_for(source, target, tables=["e"]), found.run_id, apply=True, delete=True)
    assert fixed.deleted == 1
    assert [c.split(": ")[-1] for c in fixed.conflicts] == ["the source holds it as the target does"]
    assert [r[0] for r in target.query("SELECT id FROM e ORDER BY id")] == [1, 2]
    # a row outside the diff's --where is no reason to keep one inside it (the review)
    source.sql("CREATE TABLE r (id INTEGER PRIMARY KEY, region VARCHAR(2))", "INSERT INTO r VALUES (5, 'us')")
    target.sql("CREATE TABLE r (id INTEGER PRIMARY KEY, region VARCHAR(2))", "INSERT INTO r VALUES (5, 'eu')")
    where = {"where": "region = 'eu'"}
    found = diff(job_for(source, target, tables=["r"], table_options=where), output="_parity_discrepancies")
    assert [d.kind for d in found.differences] == ["extra"]
    fixed = fix(
        job_for(source, target, tables=["r"], table_options=where), found.run_id, apply=True, delete=True
    )
    assert (fixed.deleted, fixed.conflicts) == (1, [])


def test_fix_and_diff_take_decimals_wider_than_28_digits_and_unsigned_bigints(
    make_db: Callable[[str], Database],
) -> None:
    """The audit: a numeric(38,10) changed, or in an extra row, crashed fix even in its dry run
    (Decimal.quantize in the default 28-digit context); and a MariaDB BIGINT UNSIGNED (a
    decimal(20,0) that its driver gives as an int) crashed any diff that found a row differing."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE wd (id INTEGER PRIMARY KEY, d NUMERIC(38,10), n NUMERIC(20,0))",
        "INSERT INTO wd VALUES (1, 12345678901234567890.1234567891, 18446744073709551615), (2, 1.5, 5)",
    )
    target.sql(
        "CREATE TABLE wd (id INTEGER PRIMARY KEY, d DECIMAL(38,10), n BIGINT UNSIGNED)",
        "INSERT INTO wd VALUES (1, 12345678901234567890.1234567890, 18446744073709551615), (2, 1.5, 6),"
        " (3, 98765432109876543210.5, 7)",
    )
    found = diff(job_for(source, target), output="_parity_discrepancies")
    assert sorted((d.kind, d.key["id"]) for d in found.tables[0].differences) == [
        ("changed", 1),
        ("changed", 2),
        ("extra", 3),
    ]
    applied = fix(job_for(source, target), found.run_id, apply=True, delete=True)
    assert (applied.updated, applied.deleted, applied.conflicts) == (2, 1, [])
    assert diff(job_for(source, target)).identical


@pytest.mark.serial  # (the binlog position is the server's: another test's writes move it)
def test_unmoved_binlog_skips_the_whole_database(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("mariadb"), make_db("sqlite")
    seed(source, target, "items", 20)
    target.sql("UPDATE items SET qty = 42 WHERE id = 1")
    first = sync(job_for(source, target, tables=["items"]))
    assert first.verified and first.tables[0].updated == 1
    assert "binary log position" in first.notes[0]
    second = sync(job_for(source, target, tables=["items"]))
    assert second.tables[0].skipped and "has not moved" in second.tables[0].skipped
    # the target changed on its own: the unmoved log is no reason to skip (it was: the drift stayed)
    target.sql("UPDATE items SET qty = 7 WHERE id = 3")
    drifted = sync(job_for(source, target, tables=["items"]))
    assert drifted.tables[0].skipped is None and drifted.tables[0].updated == 1 and drifted.verified
    assert "the target changed since the last sync" in drifted.notes[0]
    assert sync(job_for(source, target, tables=["items"])).tables[0].skipped
    # another sync of the same tables (a condition, --delete): not skipped, its rows were never compared
    target.sql("INSERT INTO items (id, name) VALUES (1000, 'extra')")
    other = sync(job_for(source, target, tables=["items"], table_options={"where": "id > 1"}))
    assert other.tables[0].skipped is None and other.tables[0].extra_kept == 1
    deleting = sync(job_for(source, target, tables=["items"]), extra="delete")
    assert deleting.tables[0].skipped is None and deleting.tables[0].deleted == 1
    source.sql("UPDATE items SET qty = 43 WHERE id = 2")
    third = sync(job_for(source, target, tables=["items"]))
    assert third.tables[0].skipped is None and third.tables[0].updated == 1 and third.verified


def test_without_a_binlog_parity_says_it_compares_checksums(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("postgresql")
    seed(source, target, "items", 5)
    result = sync(job_for(source, target, tables=["items"]))
    assert result.verified and "no binary log" in result.notes[0]
    same_server = make_db("mariadb"), make_db("mariadb")
    seed(*same_server, "items", 5)
    result = sync(job_for(*same_server, tables=["items"]))
    assert "share a server" in result.notes[0] and result.tables[0].skipped is None


def test_fix_updates_and_deletes_by_the_exact_key_whatever_the_collation(
    make_db: Callable[[str], Database],
) -> None:
    """MariaDB's default collation finds 'B' and 'c ' by 'b' and 'c': deleting the extra 'B' must
    leave 'b' alone, and updating 'c' must not touch 'c '."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql("CREATE TABLE s3 (k VARCHAR(10) PRIMARY KEY, v INTEGER)")
    source.sql("INSERT INTO s3 VALUES ('b', 5), ('c', 6), ('d', 7)")
    target.sql("CREATE TABLE s3 (k VARCHAR(10), v INTEGER) COLLATE utf8mb4_unicode_ci")
    target.sql("INSERT INTO s3 VALUES ('b', 5), ('B', 6), ('c', 1), ('c ', 7), ('d', 7)")
    found = diff(job_for(source, target, tables=["s3"]), output="_parity_discrepancies")
    assert {(d.kind, d.key["k"]) for d in found.differences} == {
        ("extra", "B"),
        ("extra", "c "),
        ("changed", "c"),
    }

    applied = fix(job_for(source, target, tables=["s3"]), found.run_id, apply=True, delete=True)
    assert (applied.updated, applied.deleted, applied.conflicts) == (1, 2, [])
    assert sorted(target.query("SELECT k, v FROM s3")) == [("b", 5), ("c", 6), ("d", 7)]
    assert diff(job_for(source, target, tables=["s3"])).identical


def test_fix_inserts_rows_the_target_took_for_extra_ones_after_deleting_those(
    make_db: Callable[[str], Database],
) -> None:
    """The audit: 'a' is refused by a unique key holding 'a ' (the collation ignores trailing spaces
    and case), which --delete then deleted: the target lost both, until fix ran again. And one row
    refused failed its whole batch, the good rows in it left out. Refused inserts are now tried again
    after the deletes, and a refused batch is run again row by row."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE pk (k VARCHAR(10) PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO pk VALUES ('a', 'x'), ('b', 'x'), ('c', 'x'), ('e', 'far too long'), ('f', 'x')",
    )
    target.sql(
        "CREATE TABLE pk (k VARCHAR(10) PRIMARY KEY, v VARCHAR(5)) COLLATE utf8mb4_unicode_ci",
        "INSERT INTO pk VALUES ('a ', 'y'), ('B', 'x'), ('c', 'x')",
    )
    found = diff(job_for(source, target, tables=["pk"]), output="_parity_discrepancies")
    assert {(d.kind, d.key["k"]) for d in found.differences} == {
        ("missing", "a"),
        ("missing", "b"),
        ("missing", "e"),
        ("missing", "f"),
        ("extra", "a "),
        ("extra", "B"),
    }
    shown = fix(job_for(source, target, tables=["pk"]), found.run_id, apply=False, delete=True).statements
    assert [st.split()[0] for st in shown] == ["DELETE", "DELETE", "INSERT", "INSERT", "INSERT", "INSERT"]
    # (the dry run's SQL runs as printed: the deletes first, as fix applies them; the audit ran an
    # INSERT printed first, and MariaDB refused it as the key 'a ' held)
    applied = fix(job_for(source, target, tables=["pk"]), found.run_id, apply=True, delete=True)
    assert (applied.inserted, applied.deleted, applied.failed) == (3, 2, 1)
    assert "too long" in applied.errors[0].lower() or "data" in applied.errors[0].lower()
    assert sorted(target.query("SELECT k, v FROM pk")) == [("a", "x"), ("b", "x"), ("c", "x"), ("f", "x")]


def test_sync_inserts_rows_the_target_took_for_extra_ones_after_deleting_those(
    make_db: Callable[[str], Database],
) -> None:
    """As fix: 'a' refused beside an extra 'a ' (a collation ignoring trailing spaces and case) that
    --delete then deleted; the sync ended with neither and said "still differ" until run again."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE pk (k VARCHAR(10) PRIMARY KEY, v INTEGER)", "INSERT INTO pk VALUES ('a', 1), ('b', 2)"
    )
    target.sql(
        "CREATE TABLE pk (k VARCHAR(10) PRIMARY KEY, v INTEGER) COLLATE utf8mb4_unicode_ci",
        "INSERT INTO pk VALUES ('a ', 1), ('B', 2)",
    )
    result = sync(job_for(source, target), extra="delete")
    table = result.tables[0]
    assert (table.inserted, table.deleted, table.failed, result.verified) == (2, 2, 0, True)
    assert sorted(target.query("SELECT k, v FROM pk")) == [("a", 1), ("b", 2)]


def test_a_dry_run_deletes_the_rows_whose_keys_new_rows_take_before_inserting_those(
    make_db: Callable[[str], Database],
) -> None:
    """The dry run printed INSERT 'Key1' before DELETE 'key1', which MariaDB's collation takes for
    one key: its SQL failed as printed ('Duplicate entry', the audit); the sync itself inserted, was
    refused, deleted and inserted again. Both now delete such a row first, and run as printed."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE codes (code VARCHAR(10) PRIMARY KEY, n INT)", "INSERT INTO codes VALUES ('Key1', 1)"
    )
    target.sql(
        "CREATE TABLE codes (code VARCHAR(10) PRIMARY KEY, n INT)", "INSERT INTO codes VALUES ('key1', 1)"
    )
    planned = sync(job_for(source, target), extra="delete", dry_run=True)
    printed = [s for s in planned.statements if s.startswith(("INSERT", "DELETE"))]
    assert [s.split()[0] for s in printed] == ["DELETE", "INSERT"], planned.statements
    target.sql(*(s.rstrip(";") for s in printed))  # (as printed, it runs)
    assert target.query("SELECT code, n FROM codes") == [("Key1", 1)]
    target.sql("DELETE FROM codes", "INSERT INTO codes VALUES ('key1', 1)")
    result = sync(job_for(source, target), extra="delete")
    table = result.tables[0]
    assert (table.inserted, table.deleted, table.failed, result.verified) == (1, 1, 0, True)
    assert target.query("SELECT code FROM codes") == [("Key1",)]


def test_an_update_keeps_the_source_s_value_of_a_column_mariadb_sets_on_update(
    make_db: Callable[[str], Database],
) -> None:
    """A MariaDB target's ``ON UPDATE CURRENT_TIMESTAMP`` column: sync updated the changed columns only,
    MariaDB set that one to the time of the sync, and the sync ended "1 rows still differ" (the audit)."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE t1 (id INT PRIMARY KEY, name VARCHAR(20), upd TIMESTAMP NOT NULL)",
        "INSERT INTO t1 VALUES (1, 'a', '2020-01-01 00:00:00'), (2, 'b', '2020-01-02 00:00:00')",
    )
    target.sql(
        "CREATE TABLE t1 (id INT PRIMARY KEY, name VARCHAR(20),"
        " upd TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
        "INSERT INTO t1 VALUES (1, 'a', '2020-01-01 00:00:00'), (2, 'old', '2020-01-02 00:00:00')",
    )
    result = sync(job_for(source, target))
    assert result.verified and [t.updated for t in result.tables] == [1], result.to_dict()
    assert [tuple(r) for r in target.query("SELECT id, name, upd FROM t1 ORDER BY id")] == [
        (1, "a", datetime(2020, 1, 1)),
        (2, "b", datetime(2020, 1, 2)),
    ]


def test_a_batch_every_row_of_which_is_refused_stops_its_rerun_row_by_row(
    make_db: Callable[[str], Database],
) -> None:
    """The review: a CHECK that every row breaks was run again a transaction a row, each reporting
    the same error (3,000 rows: 2.9 s against 0.4 s). The rerun stops after REFUSED_IN_A_ROW rows
    refused in a row, the rest reported with them."""
    from parity.sync import REFUSED_IN_A_ROW

    source, target = make_db("sqlite"), make_db("postgresql")
    rows = REFUSED_IN_A_ROW + 150
    source.sql("CREATE TABLE ck (id INTEGER PRIMARY KEY, v INTEGER)")
    source.sql("INSERT INTO ck VALUES " + ", ".join(f"({i}, {-i})" for i in range(1, rows + 1)))
    target.sql("CREATE TABLE ck (id INTEGER PRIMARY KEY, v INTEGER CHECK (v > 0))")
    result = sync(job_for(source, target), verify=False)
    table = result.tables[0]
    assert (table.inserted, table.failed) == (0, rows)
    assert len(table.errors) == REFUSED_IN_A_ROW + 1 and "150 rows not tried" in table.errors[-1]


def test_a_row_a_check_refuses_on_mariadb_fails_alone(make_db: Callable[[str], Database]) -> None:
    """The review: MariaDB's CHECK violation comes as an OperationalError, not an IntegrityError:
    the rerun row by row was skipped, and one bad row failed its batch's nine good ones."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE ck (id INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO ck VALUES " + ", ".join(f"({i}, {-1 if i == 4 else i})" for i in range(1, 11)),
    )
    target.sql("CREATE TABLE ck (id INTEGER PRIMARY KEY, v INTEGER CHECK (v > 0))")
    table = sync(job_for(source, target), verify=False).tables[0]
    assert (table.inserted, table.failed) == (9, 1)


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_sync_refuses_a_number_that_is_not_whole_for_an_integer_column(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """SQLite's 2.7 in an INTEGER column: PostgreSQL and MariaDB rounded it to 3 as sync wrote it (the
    review). The row is refused now, naming the value, and the others are applied."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE wn (id INTEGER PRIMARY KEY, n INTEGER)", "INSERT INTO wn VALUES (1, 2.7), (2, 5)"
    )
    target.sql("CREATE TABLE wn (id INTEGER PRIMARY KEY, n INTEGER)")
    table = sync(job_for(source, target), verify=False).tables[0]
    assert (table.inserted, table.failed) == (1, 1)
    assert "2.7" in " ".join(table.errors) or "column 'n'" in " ".join(
        table.errors
    )  # (MariaDB's names the column)
    assert target.query("SELECT id, n FROM wn") == [(2, 5)]


def test_sync_says_which_source_columns_the_target_lacks(make_db: Callable[[str], Database]) -> None:
    """The column was left out without a word, and "verified: identical" followed (the audit)."""
    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(
        "CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER, v TEXT)", "INSERT INTO c VALUES (1, 1, 'x')"
    )
    target.sql("CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER)")
    result = sync(job_for(source, target))
    assert result.tables[0].inserted == 1
    assert any("c.v" in note and "nor synced" in note for note in result.notes), result.notes


@pytest.mark.parametrize("declared", ["TEXT", "UUID"])
@pytest.mark.parametrize("spellings", ["usual", "own"])
def test_fix_sync_and_record_find_uuid_keys_held_as_text_in_any_spelling(
    make_db: Callable[[str], Database], spellings: str, declared: str
) -> None:
    """diff pairs a PostgreSQL uuid with SQLite's text of it in upper case, without dashes or in braces;
    fix, sync and --record looked the row up by its lower-case text: every changed row was a conflict
    ("gone from the target"), sync updated nothing and said nothing, --record said missing (the audit
    and the review). Spellings of no fixed form ('urn:uuid:', mixed case, spaces around) are found by
    the text the target holds (sync, which has it) or by their hex digits (fix, --record). A column
    SQLite declares UUID holds text too: sync updated and deleted none of its rows in upper case."""
    import uuid

    from parity.fix import fix

    ids = [
        uuid.UUID(int=n * 2**100 + n + (0xABC << 40)) for n in (1, 2, 3)
    ]  # (hex digits that are no number:
    # SQLite gives a column declared UUID numeric affinity)
    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql(
        "CREATE TABLE ut (id UUID PRIMARY KEY, v INTEGER)",
        "INSERT INTO ut VALUES " + ", ".join(f"('{u}', {n})" for n, u in enumerate(ids)),
    )
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(str(ids[2])))
    held = (
        [str(ids[0]).upper(), ids[1].hex, "{" + str(ids[2]) + "}"]
        if spellings == "usual"
        else [f"urn:uuid:{ids[0]}", f" {ids[1]} ", mixed]
    )

    def drift() -> None:
        target.sql(
            "DROP TABLE IF EXISTS ut",
            f"CREATE TABLE ut (id {declared} PRIMARY KEY, v INTEGER)",
            f"INSERT INTO ut VALUES ('{held[0]}', 10), ('{held[1]}', 1), ('{held[2]}', 12),"
            f" ('{str(uuid.UUID(int=9)).upper()}', 9)",
        )

    drift()
    found = diff(job_for(source, target), output="_parity_discrepancies")
    assert {(d.kind, str(d.key["id"])) for d in found.differences} == {
        ("changed", str(ids[0])),
        ("changed", str(ids[2])),
        ("extra", str(uuid.UUID(int=9))),
    }
    record = diff(job_for(source, target), record=str(ids[0]))
    assert [d.kind for d in record.differences] == ["changed"]
    applied = fix(job_for(source, target), found.run_id, apply=True, delete=True)
    assert (applied.updated, applied.deleted, applied.conflicts) == (2, 1, [])
    assert diff(job_for(source, target)).identical
    drift()
    synced = sync(job_for(source, target), extra="delete")
    assert (synced.tables[0].updated, synced.tables[0].deleted, synced.verified) == (2, 1, True)


@pytest.mark.parametrize("declared", ["TEXT", "UUID"])
def test_soft_delete_takes_a_uuid_held_as_text_in_any_spelling_as_its_key(
    make_db: Callable[[str], Database], declared: str
) -> None:
    """A marked row's key read from the target ('urn:uuid:...', upper case) was compared as text with
    diff's UUIDs: an extra row marked deleted was unmarked again by the next sync, and the check
    after the sync said a row still differed."""
    import uuid

    kept, gone = uuid.UUID(int=(1 << 100) + (0xABC << 40)), uuid.UUID(int=(2 << 100) + (0xDEF << 40))
    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql("CREATE TABLE us (id UUID PRIMARY KEY, v INTEGER)", f"INSERT INTO us VALUES ('{kept}', 1)")
    target.sql(
        f"CREATE TABLE us (id {declared} PRIMARY KEY, v INTEGER, gone INTEGER)",
        f"INSERT INTO us VALUES ('{str(kept).upper()}', 2, 1), ('urn:uuid:{gone}', 3, NULL)",
    )
    first = sync(job_for(source, target), extra="soft-delete", soft_delete_column="gone")
    assert (first.tables[0].updated, first.tables[0].soft_deleted, first.verified) == (1, 1, True)
    assert target.query("SELECT v, gone FROM us ORDER BY v") == [(1, 0), (3, 1)]
    again = sync(job_for(source, target), extra="soft-delete", soft_delete_column="gone", dry_run=True)
    assert (again.tables[0].updated, again.tables[0].soft_deleted) == (0, 0)


def test_fix_changes_the_table_the_diff_compared_with_columns_matched_as_diff_matched_them(
    make_db: Callable[[str], Database],
) -> None:
    """A run of ``-t ti:ti_r`` stores ti_r beside ti: fix changes ti_r (never a table named ti in the
    target), finds its ID column as the diff did, and refuses another target. A discrepancy table of an
    earlier parity (without that column) gets it."""
    from parity.errors import ConfigError
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE ti (id INTEGER PRIMARY KEY, a VARCHAR(10))", "INSERT INTO ti VALUES (1, 'x'), (2, 'y')"
    )
    target.sql(
        "CREATE TABLE ti_r (ID INTEGER PRIMARY KEY, a VARCHAR(10))", "INSERT INTO ti_r VALUES (1, 'old')"
    )
    target.sql(
        "CREATE TABLE ti (id INTEGER PRIMARY KEY, a VARCHAR(10))", "INSERT INTO ti VALUES (1, 'x'), (9, 'z')"
    )
    target.sql(
        "CREATE TABLE recon (run_id VARCHAR(32) NOT NULL, diffed_at DATETIME NOT NULL, table_name VARCHAR(255) NOT NULL,"
        " `key` TEXT NOT NULL, kind VARCHAR(8) NOT NULL, column_name VARCHAR(255), source_value TEXT, target_value TEXT)"
    )
    found = diff(job_for(source, target, tables=["ti:ti_r"]), output="recon")
    assert {(d.kind, d.key["id"]) for d in found.differences} == {("changed", 1), ("missing", 2)}
    with pytest.raises(ConfigError, match="compared table 'ti' with 'ti_r', not 'ti'"):
        fix(job_for(source, target, tables=["ti:ti"]), found.run_id, table="recon")
    applied = fix(job_for(source, target), found.run_id, apply=True, table="recon")
    assert (applied.inserted, applied.updated, applied.conflicts) == (1, 1, [])
    assert sorted(target.query("SELECT ID, a FROM ti_r")) == [(1, "x"), (2, "y")]
    assert sorted(target.query("SELECT id, a FROM ti")) == [(1, "x"), (9, "z")]


@pytest.mark.parametrize(
    ("source_name", "target_name"), [("postgresql", "mariadb"), ("mariadb", "postgresql")]
)
def test_the_sql_a_dry_run_prints_runs_as_printed(
    make_db: Callable[[str], Database], source_name: str, target_name: str
) -> None:
    """Timestamps with a zone print as UTC text every session reads alike: MariaDB's DATETIME took
    '+00:00' for an error; a value without its offset meant the session's zone to PostgreSQL."""
    from parity.fix import fix

    source, target = make_db(source_name), make_db(target_name)
    zoned = "TIMESTAMP WITH TIME ZONE" if source_name == "postgresql" else "DATETIME(6)"
    source.sql(f"CREATE TABLE z (id INTEGER PRIMARY KEY, at {zoned}, note VARCHAR(10))")
    source.sql("INSERT INTO z VALUES (1, '2024-01-02 16:00:00', 'a'), (2, '2024-06-01 08:30:00.5', 'b')")
    copy(job_for(source, target, tables=["z"]))
    target.sql("UPDATE z SET at = NULL, note = 'x' WHERE id = 1", "DELETE FROM z WHERE id = 2")
    found = diff(job_for(source, target, tables=["z"]), output="_parity_discrepancies")
    review = fix(job_for(source, target, tables=["z"]), found.run_id)
    assert len(review.statements) == 2
    zone = ["SET TIME ZONE 'America/New_York'"] if target_name == "postgresql" else []
    target.sql(*zone, *review.statements)  # (one session)
    assert diff(job_for(source, target, tables=["z"])).identical


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_dry_run_prints_the_deletes_of_children_before_their_parents_as_they_run(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """The statements came table by table, parents first: the DELETE of a parent row before that of
    its child, which a target checking its FK refused when the printed script was run (the audit)."""
    source, target = make_db("sqlite"), make_db(target_name)
    for db in (source, target):
        db.sql("CREATE TABLE p (id INTEGER PRIMARY KEY)",
               "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id))")  # fmt: skip
    target.sql("INSERT INTO p VALUES (1)", "INSERT INTO c VALUES (1, 1)")
    review = sync(job_for(source, target, tables=["p", "c"]), dry_run=True, extra="delete")
    deletes = [s for s in review.statements if s.startswith("DELETE")]
    assert [s.split()[2].rsplit(".", 1)[-1] for s in deletes] == ["c", "p"]
    target.sql(*review.statements)  # (one session, the FK checked)
    assert target.query("SELECT count(*) FROM p") == [(0,)]


@pytest.mark.parametrize("target_name", list(FK_CHECKS_ON))
def test_sync_without_fk_checks_turns_them_on_again(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """--no-fk-checks switches them off for its statements only: the pooled connections have them on."""
    source, target = make_db("sqlite"), make_db(target_name)
    seed(source, target, "items", 30)
    target.sql("DELETE FROM items WHERE id IN (3, 4)", "UPDATE items SET name = 'x' WHERE id = 5")
    job = job_for(source, target, tables=["items"])
    try:
        sync(job, fk_checks=False)
        assert fk_checks_on(job.target)
    finally:
        job.close()
    assert diff(job_for(source, target, tables=["items"])).identical


def test_sync_and_its_dry_run_write_ids_into_generated_always_identity(
    make_db: Callable[[str], Database],
) -> None:
    """PostgreSQL refuses an id for a GENERATED ALWAYS column unless the INSERT says OVERRIDING SYSTEM
    VALUE: sync inserted none of the missing rows, and its dry run printed SQL that failed. After the
    inserts, the next id the table numbers comes after theirs."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE g (id INTEGER PRIMARY KEY, name VARCHAR(10))")
    source.sql("INSERT INTO g VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    target.sql(
        "CREATE TABLE g (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name VARCHAR(10))",
        "INSERT INTO g (name) VALUES ('a')",
    )
    review = sync(job_for(source, target, tables=["g"]), dry_run=True)
    assert len(review.statements) == 2 and all("OVERRIDING SYSTEM VALUE" in s for s in review.statements)
    target.sql(review.statements[0].rstrip(";"))
    result = sync(job_for(source, target, tables=["g"]))
    assert result.verified and result.tables[0].inserted == 1
    assert target.query("SELECT id, name FROM g ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    target.sql("INSERT INTO g (name) VALUES ('d')")  # (the sequence went past the ids sync wrote)
    assert target.query("SELECT id FROM g WHERE name = 'd'") == [(4,)]


def test_sync_and_fix_leave_columns_the_target_computes_to_it(make_db: Callable[[str], Database]) -> None:
    """The target computes ``total`` (the source holds it as a plain column): sync inserts and updates
    the rows without it, which PostgreSQL refused outright, and so does fix."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, price DECIMAL(8,2), qty INT, total DECIMAL(12,2))",
        "INSERT INTO t VALUES (1, 2.50, 4, 10.00), (2, 1.00, 1, 1.00), (3, 2.00, 2, 4.00)",
    )
    target.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(8,2), qty INT,"
        " total DECIMAL(12,2) GENERATED ALWAYS AS (price * qty) STORED)",
        "INSERT INTO t (id, price, qty) VALUES (1, 2.50, 4), (2, 9.00, 1)",
    )
    result = sync(job_for(source, target, tables=["t"]))
    assert result.verified and (result.tables[0].inserted, result.tables[0].updated) == (1, 1)
    assert target.query("SELECT id, total FROM t ORDER BY id") == [(1, 10), (2, 1), (3, 4)]
    source.sql("UPDATE t SET qty = 5, total = 10.00 WHERE id = 2", "INSERT INTO t VALUES (4, 1.00, 1, 1.00)")
    found = diff(job_for(source, target, tables=["t"]), output="_parity_discrepancies")
    applied = fix(job_for(source, target, tables=["t"]), found.run_id, apply=True)
    assert (applied.inserted, applied.updated, applied.failed) == (1, 1, 0)
    assert target.query("SELECT id, total FROM t ORDER BY id") == [(1, 10), (2, 5), (3, 4), (4, 1)]


def test_fix_writes_a_mariadb_float_whole(make_db: Callable[[str], Database]) -> None:
    """fix read the source's rows with a plain SELECT, where MariaDB sends a FLOAT as 6 digits:
    123456.8 was written as 123457. It reads them as copy and diff do, exactly."""
    from parity.fix import fix

    source, target = make_db("mariadb"), make_db("postgresql")
    source.sql("CREATE TABLE ff (id INTEGER PRIMARY KEY, f FLOAT)")  # (MariaDB's REAL is a DOUBLE)
    target.sql("CREATE TABLE ff (id INTEGER PRIMARY KEY, f REAL)")
    source.sql("INSERT INTO ff VALUES (1, 123456.8), (2, 1.000004)")
    found = diff(job_for(source, target, tables=["ff"]), output="_parity_discrepancies")
    assert len(found.tables[0].differences) == 2
    fix(job_for(source, target, tables=["ff"]), found.run_id, apply=True)
    stored = dict(target.query("SELECT id, f FROM ff"))
    assert stored == {1: pytest.approx(123456.8, rel=1e-7), 2: pytest.approx(1.000004, rel=1e-7)}
    assert diff(job_for(source, target, tables=["ff"])).identical


def test_a_table_that_cannot_be_compared_fails_alone(make_db: Callable[[str], Database]) -> None:
    """A table whose source holds a key twice stopped the whole sync, the other tables' changes not
    applied (the audit): it fails alone, with the tables that reference it, and the run exits 2."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE dupt (k INTEGER, v TEXT)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, k INTEGER)",
        "CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO dupt VALUES (1, 'a'), (1, 'b')",
        "INSERT INTO child VALUES (1, 1)",
        "INSERT INTO other VALUES (1, 'new'), (2, 'added')",
    )
    target.sql(
        "CREATE TABLE dupt (k INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, k INTEGER REFERENCES dupt (k))",
        "CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO dupt VALUES (1, 'a')",
        "INSERT INTO other VALUES (1, 'old')",
    )
    result = sync(job_for(source, target, tables=["dupt", "child", "other"]))
    by_name = {t.target: t for t in result.tables}
    assert "duplicate" in (by_name["dupt"].error or ""), by_name["dupt"]
    assert by_name["child"].error == "not synced: it references table 'dupt', which failed"
    assert by_name["other"].error is None and (by_name["other"].inserted, by_name["other"].updated) == (1, 1)
    assert not result.ok and result.verified
    assert target.query("SELECT id, v FROM other ORDER BY id") == [(1, "new"), (2, "added")]
    assert target.query("SELECT COUNT(*) FROM child") == [(0,)]


def test_a_conflict_names_its_key_as_written(make_db: Callable[[str], Database]) -> None:
    """A conflict's key was printed with JSON escapes, {"code": "\\u00c9mile"} for Émile (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE who (code VARCHAR(20) PRIMARY KEY, v INTEGER)", "INSERT INTO who VALUES ('Émile', 1)"
    )
    assert copy(job_for(source, target, tables=["who"])).ok
    source.sql("UPDATE who SET v = 2")
    found = diff(job_for(source, target, tables=["who"]), output="_parity_discrepancies")
    target.sql("UPDATE who SET v = 3")  # (changed there after the diff)
    applied = fix(job_for(source, target, tables=["who"]), found.run_id, apply=True)
    assert len(applied.conflicts) == 1 and '"code": "Émile"' in applied.conflicts[0], applied.conflicts


def test_sync_reports_its_diff_s_progress(make_db: Callable[[str], Database]) -> None:
    """A sync of a large table said nothing until it ended: its diff's progress goes to the caller (the
    CLI draws a bar per table, as diff's)."""
    source, target = make_db("sqlite"), make_db("postgresql")
    seed(source, target, "items", 500)
    target.sql("UPDATE items SET qty = 99 WHERE id = 7")
    reports: list[Any] = []
    result = sync(job_for(source, target, tables=["items"]), progress=reports.append)
    assert result.verified and result.tables[0].updated == 1
    assert reports and reports[-1].table == "items" and reports[-1].done == reports[-1].total == 500


def test_fix_applies_only_the_tables_it_is_given(make_db: Callable[[str], Database]) -> None:
    """``fix --run latest -t b`` changed table a too: every table of the run was applied, whatever
    -t, --include or --exclude said (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("sqlite")
    for db, v in ((source, 1), (target, 2)):
        db.sql(*(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, v INTEGER)" for t in ("a", "b", "a1")))
        db.sql(*(f"INSERT INTO {t} VALUES (1, {v})" for t in ("a", "b", "a1")))
    found = diff(job_for(source, target), output="_parity_discrepancies")
    assert fix(job_for(source, target, tables=["b"]), found.run_id, apply=True).updated == 1
    assert fix(job_for(source, target, exclude=["a"]), found.run_id, apply=True).updated == 1
    assert [target.query(f"SELECT v FROM {t}") for t in ("a", "b", "a1")] == [[(2,)], [(1,)], [(1,)]]
    assert fix(job_for(source, target, include=["a*"]), found.run_id, apply=True).updated == 1
    assert target.query("SELECT v FROM a") == [(1,)]


def test_fix_names_the_rows_it_refuses_and_fails(make_db: Callable[[str], Database]) -> None:
    """fix refused a date with a time of day as sync does, but said nothing of it: "applied: 1
    inserts", exit 0, the row never named (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE fy (id INTEGER PRIMARY KEY, d DATE)", "INSERT INTO fy VALUES (1, '2024-01-01')")
    assert copy(job_for(source, target, tables=["fy"])).ok
    source.sql("INSERT INTO fy VALUES (2, '2024-01-02 10:30'), (3, '2024-01-03')")
    found = diff(job_for(source, target, tables=["fy"]), output="_parity_discrepancies")
    applied = fix(job_for(source, target, tables=["fy"]), found.run_id, apply=True)
    assert (applied.inserted, applied.failed) == (1, 1), applied
    assert len(applied.errors) == 1 and applied.errors[0].startswith('fy {"id": 2}: d: '), applied.errors
    assert target.query("SELECT id FROM fy ORDER BY id") == [(1,), (3,)]


def test_sqlite_moments_held_at_an_offset_or_with_a_t_are_found_by_fix_sync_and_record(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite holds 10:00 UTC as '2024-01-01 12:00:00+02:00': diff paired it with the source's row, and
    fix then called it gone from the target and left the extra row (exit 1); --record found no target
    row for a moment held at an offset, nor for a timestamp held with a 'T' (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(
        "CREATE TABLE z (k TIMESTAMPTZ PRIMARY KEY, v INTEGER)",
        "INSERT INTO z VALUES ('2024-01-01 10:00:00+00:00', 1), ('2024-01-01 11:00:00+00:00', 2)",
        "CREATE TABLE w (k TIMESTAMP PRIMARY KEY, v INTEGER)",
        "INSERT INTO w VALUES ('2024-01-01 01:40:50', 1)",
    )

    def drift() -> None:
        target.sql(
            "DROP TABLE IF EXISTS z",
            "CREATE TABLE z (k TIMESTAMPTZ PRIMARY KEY, v INTEGER)",
            "INSERT INTO z VALUES ('2024-01-01 12:00:00+02:00', 99), ('2024-01-01 13:00:00+02:00', 2),"
            " ('2024-01-01 14:00:00+02:00', 5)",
        )

    drift()
    target.sql(
        "CREATE TABLE w (k TIMESTAMP PRIMARY KEY, v INTEGER)",
        "INSERT INTO w VALUES ('2024-01-01T01:40:50', 1)",
    )
    for table, key in (("z", "2024-01-01 11:00:00+00:00"), ("w", "2024-01-01 01:40:50")):
        record = diff(job_for(source, target, tables=[table]), record=key)
        assert record.tables[0].stats.target_rows == 1 and record.identical, (table, record.tables[0].stats)
    found = diff(job_for(source, target, tables=["z"]), output="_parity_discrepancies")
    applied = fix(job_for(source, target, tables=["z"]), found.run_id, apply=True, delete=True)
    assert (applied.updated, applied.deleted, applied.conflicts) == (1, 1, []), applied
    assert diff(job_for(source, target, tables=["z"])).identical
    drift()
    synced = sync(job_for(source, target, tables=["z"]), extra="delete")
    assert (synced.tables[0].updated, synced.tables[0].deleted, synced.verified) == (1, 1, True)


def test_binary_and_time_keys_are_copied_fixed_and_recorded(make_db: Callable[[str], Database]) -> None:
    """A bytea key: MariaDB's CREATE TABLE failed (a BLOB key needs a length), fix bound the stored hex
    as text ("operator does not exist: bytea = character varying") or found no row, and --record took
    neither hex nor a TIME key (the audit)."""
    from parity.fix import fix

    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE bk (k BYTEA PRIMARY KEY, v INTEGER)",
        "INSERT INTO bk VALUES ('\\x00', 1), ('\\x01ff', 2), ('\\x02', 3)",
        "CREATE TABLE tk (k TIME PRIMARY KEY, v INTEGER)",
        "INSERT INTO tk VALUES ('00:00:15', 1)",
    )
    assert copy(job_for(source, target)).ok
    target.sql(
        "UPDATE bk SET v = 9 WHERE k = 0x01ff",
        "DELETE FROM bk WHERE k = 0x02",
        "INSERT INTO bk VALUES (0x03, 4)",
    )
    found = diff(job_for(source, target, tables=["bk"]), output="_parity_discrepancies")
    assert len(found.differences) == 3
    applied = fix(job_for(source, target, tables=["bk"]), found.run_id, apply=True, delete=True)
    assert (applied.inserted, applied.updated, applied.deleted, applied.failed) == (1, 1, 1, 0), applied
    assert diff(job_for(source, target, tables=["bk"])).identical
    for table, key in (("bk", "01ff"), ("bk", "0x01ff"), ("tk", "00:00:15")):
        record = diff(job_for(source, target, tables=[table]), record=key)
        assert record.tables[0].record is not None and record.tables[0].stats.target_rows == 1, key


def test_fix_names_each_row_the_target_refuses_by_its_table_and_key(
    make_db: Callable[[str], Database],
) -> None:
    """Rows PostgreSQL refused (a text too long for VARCHAR(4)) were told as five lines of its message,
    no table, no key, and the others not at all (the audit)."""
    from parity.fix import fix

    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE fl (id INTEGER PRIMARY KEY, v TEXT)",
               "INSERT INTO fl VALUES " + ", ".join(f"({i}, 'toolongvalue')" for i in range(1, 9)))  # fmt: skip
    target.sql("CREATE TABLE fl (id INTEGER PRIMARY KEY, v VARCHAR(4))", "INSERT INTO fl VALUES (1, 'ok')")
    found = diff(job_for(source, target), output="_parity_discrepancies")
    applied = fix(job_for(source, target), found.run_id, apply=True)
    assert applied.failed == 8 and len(applied.errors) == 8, applied
    assert sorted(applied.errors)[0].startswith('fl {"id": 1}: value too long'), applied.errors


def test_a_refused_value_is_named_in_its_reason(make_db: Callable[[str], Database]) -> None:
    """ "d: day is out of range for month" named no value (the audit): the reason holds it, as copy's."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE dd (id INTEGER PRIMARY KEY, d DATE)", "INSERT INTO dd VALUES (1, '2021-01-01')")
    assert copy(job_for(source, target, tables=["dd"])).ok
    source.sql("INSERT INTO dd VALUES (2, '2021-02-30')")
    result = sync(job_for(source, target, tables=["dd"]))
    assert result.tables[0].errors == [
        "dd {\"id\": 2}: d: '2021-02-30' is no date (day is out of range for month)"
    ], result.tables[0].errors
