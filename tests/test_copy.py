"""parity copy on real databases: fidelity across every pair, modes, rejects, bad input, resume."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import parity.copy as copy_module
import parity.remap as remap_module
from parity import bulk, textread
from parity.copy import copy
from parity.diff import diff
from parity.endpoint import driver_message
from parity.errors import ConfigError, DataError, NotFound, ParityError
from parity.job import build
from parity.schema.model import Column, Table
from parity.schema.plan import plan_schema
from parity.schema.types import CanonicalType, Kind
from parity.values import decode_rows
from tests.conftest import ALL_BACKENDS, BACKENDS, FK_CHECKS_ON, Database, fk_checks_on, fresh_name, sa_url

# ---- helpers ------------------------------------------------------------------------------------


def job_for(source: Database, target: Database, **kw: Any) -> Any:
    return build(source.url, target.url, source_schema=source.schema, target_schema=target.schema, **kw)


def read_back(
    db: Database, table: str, columns: Sequence[str], types: Sequence[CanonicalType]
) -> list[tuple[Any, ...]]:
    """Every row of a table, as canonical values, ordered by the first column."""
    endpoint = db.endpoint()
    t = sa.table(table, *(sa.column(c) for c in columns), schema=db.schema)
    with endpoint.connect() as conn:
        rows = conn.execute(sa.select(*t.c).order_by(t.c[columns[0]])).all()
    decoded = decode_rows(types, rows)
    native = endpoint.dialect.NATIVE_KINDS
    assert native is not None
    # JSON read back as its text (values.JsonText): compared as the value it holds
    json_columns = [i for i, t in enumerate(types) if t.kind is Kind.JSON]
    return [
        tuple(json.loads(v) if i in json_columns and isinstance(v, str) else v for i, v in enumerate(row))
        for row in decoded
    ]


def create_canonical(db: Database, table: Table) -> None:
    """Create a table from parity's neutral model with parity's own DDL for that database."""
    endpoint = db.endpoint("target")
    plan = plan_schema([table], endpoint.dialect, endpoint.engine.dialect, {}, schema=db.schema)
    with endpoint.begin() as conn:
        for step in plan.steps:
            conn.exec_driver_sql(step.sql)


def insert_canonical(
    db: Database, table: str, columns: list[str], types: list[CanonicalType], rows: list[tuple[Any, ...]]
) -> None:
    endpoint = db.endpoint("target")
    with endpoint.begin() as conn:
        writer = bulk.WRITERS[endpoint.dialect.ROW_WRITER](conn, endpoint.qualified(table), columns, types)
        writer.write(rows)
        writer.close()


def reasons_by_id(rejects: Path) -> dict[Any, str]:
    """The reason of each row of a rejects file, by the row's id."""
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    return {r["row"]["id"]: r["reason"] for r in records}


def copy_closed(job: Any, **kw: Any) -> Any:
    """Copy, then close the job (its connection pools), whatever happened."""
    try:
        return copy(job, **kw)
    finally:
        job.close()


def copy_ok(job: Any, **kw: Any) -> Any:
    """Copy, assert every table went well, and close the job."""
    result = copy_closed(job, **kw)
    failed = [(t.table, t.error) for t in result.tables if t.status != "ok"]
    assert not failed, failed
    return result


# ---- the demo -----------------------------------------------------------------------------------


def test_demo_copies_into_every_backend(demo_db: Database, backend: Database) -> None:
    result = copy_ok(job_for(demo_db, backend))
    counts = {t.target: t.rows_written for t in result.tables}
    with sqlite3.connect(demo_db.url.removeprefix("sqlite:///")) as src:
        for table, written in counts.items():
            expected = src.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
            assert written == expected, table
            assert backend.query(f"SELECT COUNT(*) FROM {backend.q(table)}")[0][0] == expected, table
    assert sum(t.rejected for t in result.tables) == 0
    history = backend.query(f"SELECT {backend.q('select')} FROM {backend.q('order history')} WHERE id = 1")
    assert history[0][0] in ("new", "paid", "shipped", "delivered", "cancelled")


@pytest.mark.parametrize("target_name", BACKENDS)
def test_copy_twice_in_replace_mode_is_idempotent(
    demo_db: Database, make_db: Callable[[str], Database], target_name: str
) -> None:
    """Replace twice (the FK cycle exists in the target the second time), then merge twice: DuckDB's
    FKs see no deletes of their own transaction, and refuse an update of an indexed column (an email
    under a unique constraint) of a referenced row even to its own value: both failed every table."""
    target = make_db(target_name)
    first = copy_ok(job_for(demo_db, target), mode="replace")
    second = copy_ok(job_for(demo_db, target), mode="replace")
    counts = {t.target: t.rows_written for t in first.tables}
    assert {t.target: t.rows_written for t in second.tables} == counts
    for _ in range(2):
        merged = copy_ok(job_for(demo_db, target), mode="merge")
        assert {t.target: t.rows_written for t in merged.tables} == counts
        # a new email for a customer no order references, a new name for one referenced
        demo_db.sql(
            "UPDATE customers SET email = 'moved' || id || '@example.com'"
            " WHERE id = (SELECT MIN(id) FROM customers WHERE id NOT IN (SELECT customer_id FROM orders))",
            "UPDATE customers SET name = 'renamed' WHERE id = (SELECT MIN(customer_id) FROM orders)",
        )
    assert target.query("SELECT COUNT(*) FROM customers WHERE email LIKE 'moved%' OR name = 'renamed'") == [
        (2,)
    ]
    for table, expected in counts.items():
        assert target.query(f"SELECT COUNT(*) FROM {target.q(table)}")[0][0] == expected, table
    if target_name == "postgresql":  # identities continue after the copied keys
        target.sql("INSERT INTO customers (email, name) VALUES ('new@example.com', 'new')")
        assert target.query("SELECT id FROM customers WHERE email = 'new@example.com'")[0][0] == 201


# ---- fidelity: every canonical type across every pair -------------------------------------------

FIDELITY_COLUMNS: list[tuple[str, CanonicalType]] = [
    ("id", CanonicalType(Kind.INTEGER)),
    ("b", CanonicalType(Kind.BOOLEAN)),
    ("si", CanonicalType(Kind.SMALLINT)),
    ("i", CanonicalType(Kind.INTEGER)),
    ("bi", CanonicalType(Kind.BIGINT)),
    ("d", CanonicalType(Kind.DECIMAL, precision=38, scale=10)),
    ("m", CanonicalType(Kind.DECIMAL, precision=12, scale=2)),
    ("f", CanonicalType(Kind.DOUBLE)),
    ("vc", CanonicalType(Kind.VARCHAR, length=40)),
    ("c", CanonicalType(Kind.CHAR, length=8)),
    ("t", CanonicalType(Kind.TEXT)),
    ("dt", CanonicalType(Kind.DATE)),
    ("tm", CanonicalType(Kind.TIME)),
    ("ts", CanonicalType(Kind.TIMESTAMP)),
    ("tz", CanonicalType(Kind.TIMESTAMPTZ)),
    ("bin", CanonicalType(Kind.BINARY)),
    ("u", CanonicalType(Kind.UUID)),
    ("j", CanonicalType(Kind.JSON)),
]

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), _text)


_zones = st.just(timezone.utc) | st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
"""UTC, or any whole-minute offset a zone has had (-14:00 to +14:00)."""

EDGE_ROWS = [
    (
        1,
        False,
        -(2**15),
        2**31 - 1,
        -(2**63),
        Decimal("-9999999999999999999999999999.9999999999"),
        Decimal("0.01"),
        -1.5e-300,
        "",
        "😀",
        "long text 😀 é \\ \t end " * 4000,  # (100,000 characters, 4-byte ones among them)
        date(1969, 12, 31),
        time_of_day(23, 59, 59, 999999),
        datetime(2038, 1, 19, 3, 14, 8, 1),
        datetime(1901, 12, 13, 20, 45, 52, 999999, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        bytes(range(256)),
        uuid.UUID("00000000-0000-4000-8000-000000000000"),
        {"k": "😀", "n": None, "t": True},
    ),
    (
        2,
        True,
        0,
        0,
        0,
        Decimal(0),
        Decimal("-0.50"),
        0.0,
        " ",
        "a",
        "\\N",
        date(1000, 1, 1),
        time_of_day(0),
        datetime(1970, 1, 1),
        datetime(2100, 2, 28, 23, 0, tzinfo=timezone(timedelta(hours=14))),
        b"",
        None,
        {},
    ),
    (3, *([None] * (len(FIDELITY_COLUMNS) - 1))),
]
"""Rows at the edges: dates before 1970 and past 2038, long text, 4-byte characters, the extreme
integers, empty string against NULL, zones away from UTC."""


def _decimal(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Exact decimals of up to ``precision`` digits (Decimal("nE-s") is exact; arithmetic would round)."""
    bound = 10**precision - 1
    return st.integers(-bound, bound).map(lambda n: Decimal(f"{n}E-{scale}"))


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "b": st.booleans(),
    "si": st.integers(-(2**15), 2**15 - 1),
    "i": st.integers(-(2**31), 2**31 - 1),
    "bi": st.integers(-(2**63), 2**63 - 1),
    "d": _decimal(38, 10),
    "m": _decimal(12, 2),
    "f": st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_subnormal=False).filter(
        lambda x: x != 0 or str(x) == "0.0"
    ),
    "vc": _text,
    "c": st.text(
        st.characters(min_codepoint=33, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)), max_size=8
    ),
    "t": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300),
    "dt": st.dates(date(1000, 1, 1), date(9999, 12, 31)),
    "tm": st.times(),
    "ts": st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 30)),
    "tz": st.datetimes(datetime(1000, 1, 2), datetime(9999, 12, 30), timezones=_zones),
    "bin": st.binary(max_size=64),
    "u": st.uuids(version=4),
    "j": st.dictionaries(st.text("abcdefgh", min_size=1, max_size=5), _json_leaf, max_size=4),
}


def _row(draw: Callable[..., Any], ident: int) -> tuple[Any, ...]:
    return (ident, *(draw(st.one_of(st.none(), VALUES[name])) for name, _ in FIDELITY_COLUMNS[1:]))


@st.composite
def fidelity_rows(draw: Callable[..., Any]) -> list[tuple[Any, ...]]:
    count = draw(st.integers(1, 12))
    return [_row(draw, i) for i in range(1, count + 1)]


_counter = itertools.count()


@settings(
    max_examples=int(os.environ.get("PARITY_FIDELITY_EXAMPLES", "4")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=fidelity_rows())
@example(rows=EDGE_ROWS)
def test_every_canonical_type_arrives_exactly(
    pair: tuple[Database, Database], rows: list[tuple[Any, ...]]
) -> None:
    source, target = pair
    name = f"fid{next(_counter)}"
    columns = [c for c, _ in FIDELITY_COLUMNS]
    types = [t for _, t in FIDELITY_COLUMNS]
    model = Table(
        name, tuple(Column(c, t, nullable=(c != "id")) for c, t in FIDELITY_COLUMNS), primary_key=("id",)
    )
    create_canonical(source, model)
    insert_canonical(source, name, columns, types, rows)
    from_source = read_back(source, name, columns, types)
    assert from_source == [_expected(r) for r in rows]
    copy_ok(job_for(source, target, tables=[name]), mode="replace")
    assert read_back(target, name, columns, types) == from_source
    job = job_for(source, target, tables=[name])
    try:
        found = diff(job)
    finally:
        job.close()
    # the issue's oracle: what copy wrote, diff finds identical, downloading no row (JSON included)
    assert found.identical and found.tables[0].stats.rows_downloaded == 0, found.tables[0].stats


def count_text_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each batch made as text (``bulk.TextBatch``) from now on, listed as they are made."""
    carried: list[int] = []

    class Counted(_TEXT_BATCH):
        def __init__(self, text: bytes, count: int, by: type[bulk.Writer], **kw: Any) -> None:
            super().__init__(text, count, by, **kw)
            carried.append(count)

    monkeypatch.setattr(bulk, "TextBatch", Counted)
    return carried


_TEXT_BATCH = bulk.TextBatch

TRICKY_TEXT = ["", "\\N", "a\tb\nc\rd\\e", "\f\v\b\\f\\v", "\\\\\\", "😀 ü \u2028", "x\\", "\x1f\x7f", "\\."]
TEXT_PAIRS = [
    ("postgresql", "mariadb", bulk.MySQLLoadDataWriter),
    ("mariadb", "postgresql", bulk.PostgresCopyWriter),
    ("postgresql", "postgresql", bulk.PostgresCopyWriter),
    ("mariadb", "mariadb", bulk.MySQLLoadDataWriter),
    ("sqlite", "postgresql", bulk.PostgresCopyWriter),
    ("sqlite", "mariadb", bulk.MySQLLoadDataWriter),
    ("postgresql", "sqlite", bulk.SQLiteWriter),
    ("mariadb", "sqlite", bulk.SQLiteWriter),
]


@settings(
    max_examples=int(os.environ.get("PARITY_FIDELITY_EXAMPLES", "4")) * 3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=fidelity_rows())
@pytest.mark.parametrize(
    ("source_name", "target_name", "writer"),
    TEXT_PAIRS,
    ids=[
        "pg-to-mariadb",
        "mariadb-to-pg",
        "pg-to-pg",
        "mariadb-to-mariadb",
        "sqlite-to-pg",
        "sqlite-to-mariadb",
        "pg-to-sqlite",
        "mariadb-to-sqlite",
    ],
)
def test_text_of_the_source_goes_to_the_target_exactly(
    make_db: Callable[[str], Database],
    source_name: str,
    target_name: str,
    writer: type[bulk.Writer],
    rows: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Columns whose text the target's bulk load reads as the source gives it (PostgreSQL's COPY TO text
    into LOAD DATA; MySQL's text protocol, escaped, into COPY FROM) travel as that text, never as Python
    values: the escapes, NULL against '' and '\\N', and every such kind arrive exactly."""
    source, target = make_db(source_name), make_db(target_name)
    kinds = writer.TEXT_FROM[source_name]
    keep = [i for i, (_, t) in enumerate(FIDELITY_COLUMNS) if t.kind in kinds]
    chosen = [FIDELITY_COLUMNS[i] for i in keep]
    columns = [c for c, _ in chosen]
    types = [t for _, t in chosen]
    rows = [tuple(r[i] for i in keep) for r in rows]
    t = columns.index("t")
    rows += [
        (100 + n, *(v if i != t else text for i, v in enumerate(rows[0][1:], 1)))
        for n, text in enumerate(TRICKY_TEXT)
    ]
    name = f"txt{next(_counter)}"
    model = Table(name, tuple(Column(c, t, nullable=(c != "id")) for c, t in chosen), primary_key=("id",))
    create_canonical(source, model)
    insert_canonical(source, name, columns, types, rows)
    carried = count_text_batches(monkeypatch)
    copy_ok(job_for(source, target, tables=[name]), mode="replace")
    assert sum(carried) == len(rows)  # the text path carried every row
    from_source = read_back(source, name, columns, types)
    assert read_back(target, name, columns, types) == from_source
    if target_name == "sqlite":  # what SQLite stores (its types and text) is what the values path stores
        by_values = make_db("sqlite")
        with monkeypatch.context() as values_only:
            values_only.setattr(bulk.SQLiteWriter, "TEXT_FROM", {})
            copy_ok(job_for(source, by_values, tables=[name]), mode="replace")
        stored = f"SELECT {', '.join(f'typeof({c}), {c}' for c in columns)} FROM {name} ORDER BY id"
        assert target.query(stored) == by_values.query(stored)


@pytest.mark.parametrize(
    ("first", "second", "cast"),
    [("latin1", "latin1", False), ("latin1", "utf8mb4", True), ("ucs2", "ucs2", True)],
)
def test_mariadb_lines_from_string_columns_of_one_or_two_character_sets(
    mariadb_db: Database,
    pg_db: Database,
    first: str,
    second: str,
    cast: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Columns sharing one character set that mixes with utf8mb4 (a UUID's text) go into the line as
    they are; columns of two, or of ucs2, are each cast to utf8mb4. Either way, rows with and without
    characters to escape arrive exactly."""
    mariadb_db.sql(
        f"CREATE TABLE words (id INTEGER PRIMARY KEY, a VARCHAR(40) CHARACTER SET {first},"
        f" b TEXT CHARACTER SET {second}, u UUID)"
    )
    values = ["café", "tab\there", "back\\slash", "line\nbreak\r", "plain", "\\N", ""]
    rows = [
        (n, a, b, uuid.UUID(int=n * 7919) if n % 3 else None)
        for n, (a, b) in enumerate(itertools.product([*values, None], repeat=2))
    ]
    with mariadb_db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO words VALUES (:id, :a, :b, :u)"),
            [{"id": n, "a": a, "b": b, "u": None if u is None else str(u)} for n, a, b, u in rows],
        )
    lines: list[Any] = []
    made = type(mariadb_db.endpoint().dialect).copy_line

    def noted(self: Any, columns: Sequence[Any], kinds: Sequence[Kind], charsets: Any) -> Any:
        line = made(self, columns, kinds, charsets)
        lines.append(str(line.compile(dialect=mariadb_db.engine.dialect)))
        return line

    monkeypatch.setattr(type(mariadb_db.endpoint().dialect), "copy_line", noted)
    copy_ok(job_for(mariadb_db, pg_db))
    # (the UUID is cast in both forms of the line, escaped or not: IFNULL() of a UUID gives a UUID)
    assert lines and all((line.count("CAST") > 2) is cast for line in lines)
    assert pg_db.query("SELECT id, a, b, u FROM words ORDER BY id") == rows


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite"])  # (SQLite: in a reader process)
def test_a_chunk_whose_line_mariadb_cannot_make_is_copied_again_as_values(
    mariadb_db: Database,
    make_db: Callable[[str], Database],
    target_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MariaDB's CONCAT() gives NULL for a line over max_allowed_packet: the rows already loaded from
    that chunk are rolled back and the chunk is copied again as values, each row exactly once."""
    pg_db = make_db(target_name)
    monkeypatch.setattr(textread, "ROWS_FROM", 0)
    mariadb_db.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO items SELECT seq, CONCAT('n', seq) FROM seq_1_to_50",
    )
    dialect = type(mariadb_db.endpoint().dialect)
    made = dialect.copy_line
    texts: list[int] = []

    def line_null_at_row_37(self: Any, columns: Sequence[Any], kinds: Sequence[Kind], charsets: Any) -> Any:
        texts.append(1)
        return sa.case((columns[0] == 37, sa.null()), else_=made(self, columns, kinds, charsets))

    monkeypatch.setattr(dialect, "copy_line", line_null_at_row_37)
    progress: list[int] = []
    result = copy_ok(
        job_for(mariadb_db, pg_db),
        batch_size=10,
        workers=1,
        progress=lambda t, done, total: progress.append(done),
    )
    assert texts  # the text path was tried
    assert progress[-1] == 50 and max(progress) == 50  # the rolled-back attempt's rows do not count
    assert (result.tables[0].rows_read, result.tables[0].rows_written) == (50, 50)
    assert pg_db.query("SELECT COUNT(*), COUNT(DISTINCT id), MIN(name), MAX(id) FROM items") == [
        (50, 50, "n1", 50)
    ]


def test_a_long_mariadb_string_to_escape_is_copied_as_a_value_not_through_replace(
    mariadb_db: Database, pg_db: Database
) -> None:
    """MariaDB's REPLACE() costs the square of its matches: a 256 KB text of short lines took 7 s to make
    its line (the audit). Past 1 KB such a string makes no line (NULL), and its chunk goes as values."""
    mariadb_db.sql(
        "CREATE TABLE nl (id INTEGER PRIMARY KEY, body LONGTEXT)",
        "INSERT INTO nl VALUES (1, REPEAT('ab\\n', 20000)), (2, 'short\\tone'), (3, REPEAT('x', 5000))",
    )
    ep = mariadb_db.endpoint()
    table = sa.table("nl", sa.column("id"), sa.column("body"))
    line = ep.dialect.copy_line([table.c.id, table.c.body], [Kind.INTEGER, Kind.TEXT], {"body": "utf8mb4"})
    with ep.connect() as conn:
        lines = [r[0] for r in conn.execute(sa.select(line).select_from(table).order_by(table.c.id))]
    assert lines[0] is None and lines[1] == "2\tshort\\tone" and lines[2] == "3\t" + "x" * 5000
    copy_ok(job_for(mariadb_db, pg_db))
    assert pg_db.query("SELECT id, md5(body) FROM nl ORDER BY id") == mariadb_db.query(
        "SELECT id, md5(body) FROM nl ORDER BY id"
    )


def test_mariadb_is_read_through_pymysql_where_mysqlclient_is_missing(
    mariadb_db: Database, pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("parity.endpoint.mysqlclient", lambda: None)
    mariadb_db.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), at DATETIME(6), ok BOOLEAN)",
        "INSERT INTO items VALUES (1, 'a\\tb', '2024-02-29 12:00:00.000001', 1), (2, NULL, NULL, 0)",
    )
    copy_ok(job_for(mariadb_db, pg_db))
    assert pg_db.query("SELECT id, name, at, ok FROM items ORDER BY id") == [
        (1, "a\tb", datetime(2024, 2, 29, 12, 0, 0, 1), True),
        (2, None, None, False),
    ]


@pytest.mark.serial  # (SET GLOBAL local_infile, and the server's count of LOAD DATA statements)
@pytest.mark.parametrize("remap", [False, True])
def test_a_server_refusing_load_data_gets_the_rows_by_insert_and_says_so(
    remap: bool, make_db: Callable[[str], Database]
) -> None:
    """A server with local_infile off (MySQL 8's default) refuses LOAD DATA LOCAL INFILE: the copy
    finds it out once, before any row, loads every table by INSERT, attempts no LOAD DATA, and its
    result says so; with --remap-ids the new IDs are those the INSERTs were given."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT, price NUMERIC(10, 2))",
        "CREATE TABLE notes (id SERIAL PRIMARY KEY, item_id INTEGER REFERENCES items (id), body TEXT)",
        "INSERT INTO items SELECT g, 'item ' || g, g / 4.0 FROM generate_series(1, 1500) g",
        "INSERT INTO notes SELECT g, 1501 - g, E'tab\\there' FROM generate_series(1, 1500) g",
    )
    if remap:
        target.sql(
            "CREATE TABLE items (id INTEGER AUTO_INCREMENT PRIMARY KEY, name TEXT, price DECIMAL(10, 2))",
            "CREATE TABLE notes (id INTEGER AUTO_INCREMENT PRIMARY KEY, item_id INTEGER REFERENCES items (id),"
            " body TEXT)",
            "INSERT INTO items (id, name) VALUES (7000, 'there before')",
        )
    loads = "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'COM_LOAD'"
    before = int(target.query(loads)[0][0])
    target.sql("SET GLOBAL local_infile = 0")
    try:
        result = copy_ok(job_for(source, target), batch_size=200, mode="append", remap_ids=remap)
        assert int(target.query(loads)[0][0]) == before
    finally:
        target.sql("SET GLOBAL local_infile = 1")
    assert [w for w in result.warnings if "local_infile is OFF" in w and "INSERT" in w]
    extra = 1 if remap else 0
    assert target.query("SELECT COUNT(*), SUM(price), COUNT(DISTINCT name) FROM items") == [
        (1500 + extra, Decimal(sum(range(1, 1501))) / 4, 1500 + extra)
    ]
    pairs = target.query("SELECT i.name, n.body FROM notes n JOIN items i ON i.id = n.item_id ORDER BY n.id")
    assert pairs == [(f"item {1501 - g}", "tab\there") for g in range(1, 1501)]
    if remap:
        assert target.query("SELECT MIN(id) FROM items WHERE name <> 'there before'") == [(7001,)]


def test_the_pipes_a_killed_copy_into_mariadb_left_are_removed_by_the_next(
    make_db: Callable[[str], Database], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOAD DATA reads from a named pipe in a folder of its own; a copy killed with SIGKILL leaves
    them: the next copy removes those of processes that are gone, and no other."""
    import tempfile

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    pid = int(gone.stdout)
    for name in (f"parity-load-{pid}-k1", f"parity-load-{os.getpid()}-live", "parity-load-old"):
        (tmp_path / name).mkdir()
        os.mkfifo(tmp_path / name / "rows.tsv")
    (tmp_path / f"parity-load-{pid}-k2").mkdir()  # (not a pipe in it: not parity's)
    (tmp_path / f"parity-load-{pid}-k2" / "rows.tsv").write_text("")
    (tmp_path / f"parity-load-{pid}-new").mkdir()  # (made within the day: a PID another container's)
    os.mkfifo(tmp_path / f"parity-load-{pid}-new" / "rows.tsv")
    for name in (
        f"parity-load-{pid}-k1",
        f"parity-load-{pid}-k2",
        f"parity-load-{os.getpid()}-live",
        "parity-load-old",
    ):
        os.utime(tmp_path / name, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(bulk, "_swept", threading.Lock())
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(*KEYED)
    copy_ok(job_for(source, target))
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("parity-load-")} == {
        f"parity-load-{pid}-k2",
        f"parity-load-{pid}-new",
        f"parity-load-{os.getpid()}-live",
        "parity-load-old",
    }
    assert target.query("SELECT COUNT(*) FROM `lines`") == [(3,)]


def _expected(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The canonical form of a generated row (CHAR loses trailing spaces everywhere)."""
    return tuple(
        v.rstrip(" ") if name == "c" and isinstance(v, str) else v
        for (name, _), v in zip(FIDELITY_COLUMNS, row, strict=True)
    )


# ---- modes ---------------------------------------------------------------------------------------


@pytest.fixture
def small(make_db: Callable[[str], Database]) -> Database:
    db = make_db("sqlite")
    db.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, price DECIMAL(8,2))",
        "INSERT INTO items VALUES (1, 'one', 1.10), (2, 'two', 2.20), (3, 'three', 3.30)",
    )
    return db


EXTRA_ROW = "INSERT INTO items (id, name, price) VALUES (9, 'extra', 9.90)"


@pytest.mark.parametrize("target_name", ALL_BACKENDS)
def test_modes(small: Database, make_db: Callable[[str], Database], target_name: str) -> None:
    """Replace, merge (MERGE on Oracle and SQL Server) and replace again, into a table whose id the
    target numbers (but DuckDB's): the ids are the source's, and the next the target gives comes after."""
    target = make_db(target_name)
    copy_ok(job_for(small, target))
    if target_name == "mssql":
        target.sql("SET IDENTITY_INSERT items ON", EXTRA_ROW, "SET IDENTITY_INSERT items OFF")
    else:
        target.sql(EXTRA_ROW)
    small.sql("UPDATE items SET price = 2.25 WHERE id = 2", "INSERT INTO items VALUES (4, 'four', 4.40)")

    copy_ok(job_for(small, target), mode="merge")
    rows = target.query("SELECT id, name, price FROM items ORDER BY id")
    assert [(r[0], r[1], Decimal(str(r[2]))) for r in rows] == [
        (1, "one", Decimal("1.10")),
        (2, "two", Decimal("2.25")),
        (3, "three", Decimal("3.30")),
        (4, "four", Decimal("4.40")),
        (9, "extra", Decimal("9.90")),
    ]
    copy_ok(job_for(small, target), mode="replace")
    assert [r[0] for r in target.query("SELECT id FROM items ORDER BY id")] == [1, 2, 3, 4]
    if target_name != "duckdb":  # (no identity columns)
        target.sql("INSERT INTO items (name) VALUES ('new')")
        assert target.query("SELECT id FROM items WHERE name = 'new'")[0][0] > 4


def test_append_mode_adds_rows(small: Database, pg_db: Database) -> None:
    """Appending twice into a table without a key adds the rows twice, as asked; the second run says
    so, as nothing in the target refuses a row copied before (a table with a key does)."""
    pg_db.sql("CREATE TABLE items (id INTEGER, name VARCHAR(20) NOT NULL, price NUMERIC(8,2))")
    first = copy_ok(job_for(small, pg_db), mode="append")
    assert first.warnings == []
    again = copy_ok(job_for(small, pg_db), mode="append")
    assert pg_db.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM items")[0] == (6, 3)
    assert any("items has no key and holds rows already" in w for w in again.warnings), again.warnings
    # (and when this copy last ended: a run killed after it recorded its end, and made again, appends
    # again; the audit)
    assert any(
        re.search(r"this copy last ended .* at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", w) for w in again.warnings
    )
    pg_db.sql("DELETE FROM items", "ALTER TABLE items ADD PRIMARY KEY (id)")
    copy_ok(job_for(small, pg_db), mode="append")
    keyed = copy_closed(job_for(small, pg_db), mode="append")
    assert keyed.tables[0].rejected == 3  # (refused, and said why: its keys are there)
    assert keyed.warnings == [
        "items: 3 rows refused as keys the target holds already (append adds rows): --mode merge updates"
        " them, --mode replace copies the table anew"
    ]


def test_a_table_without_a_key_is_replaced_and_appended(
    make_db: Callable[[str], Database], backend: Database
) -> None:
    """No primary key, rows alike among them: replace leaves the source's rows however often it runs,
    append adds them again; one chunk, read whole."""
    source = make_db("postgresql")
    source.sql(
        "CREATE TABLE log (at DATE, msg TEXT)",
        "INSERT INTO log SELECT DATE '2024-01-01' + mod(g, 3), 'm' || mod(g, 2) FROM generate_series(1, 300) g",
    )
    counted = "SELECT msg, COUNT(*) FROM log GROUP BY msg ORDER BY msg"
    for _ in range(2):
        copy_ok(job_for(source, backend), mode="replace", batch_size=64, workers=4)
        assert backend.query(counted) == [("m0", 150), ("m1", 150)]
    copy_ok(job_for(source, backend), mode="append", batch_size=64)
    assert backend.query(counted) == [("m0", 300), ("m1", 300)]


def test_merge_without_key_asks_for_one(make_db: Callable[[str], Database], pg_db: Database) -> None:
    source = make_db("sqlite")
    source.sql("CREATE TABLE log (at TEXT, msg TEXT)", "INSERT INTO log VALUES ('a', 'b')")
    with pytest.raises(DataError, match="merge needs a key"):
        copy(job_for(source, pg_db), mode="merge")
    assert pg_db.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'log'") == [(0,)]
    copy_ok(job_for(source, pg_db), mode="append")
    with pytest.raises(DataError, match=r"needs a primary key or unique constraint on \(at\)"):
        copy(job_for(source, pg_db, table_options={"key": ["at"]}), mode="merge")
    pg_db.sql("CREATE UNIQUE INDEX log_at ON log (at)")
    source.sql("UPDATE log SET msg = 'changed'")
    result = copy_ok(job_for(source, pg_db, table_options={"key": ["at"]}), mode="merge")
    assert result.tables[0].rows_written == 1
    assert pg_db.query("SELECT at, msg FROM log") == [("a", "changed")]


def test_limit_and_where(small: Database, duckdb_db: Database) -> None:
    copy_ok(job_for(small, duckdb_db, table_options={"where": "price > 1.5"}))
    assert [r[0] for r in duckdb_db.query("SELECT id FROM items ORDER BY id")] == [2, 3]
    other = build(small.url, duckdb_db.url, tables=["items:items2"])
    copy_ok(other, limit=1)
    assert duckdb_db.query("SELECT COUNT(*) FROM items2")[0][0] == 1


def test_a_where_the_source_cannot_run_is_an_error_before_any_ddl(small: Database, pg_db: Database) -> None:
    """It failed each table, after the target's tables (and parity's state) had been made."""
    with pytest.raises(ConfigError, match=r"table 'items': its where \(no_such_column > 1\) cannot run"):
        copy_closed(job_for(small, pg_db, table_options={"where": "no_such_column > 1"}))
    made = "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"
    assert pg_db.query(made, s=pg_db.schema or "public") == [(0,)]  # (nor _parity_state)


def test_no_schema_names_the_columns_and_tables_the_target_lacks(small: Database, pg_db: Database) -> None:
    """It named only the table, and its advice would add a column to a live table where map: is
    what is needed."""
    pg_db.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, title VARCHAR(20), price NUMERIC(8,2))")
    with pytest.raises(DataError, match=r"lacks columns items\.name \(where it names them otherwise, map:"):
        copy_closed(job_for(small, pg_db), schema=False)
    pg_db.sql("DROP TABLE items")
    with pytest.raises(DataError, match=r"lacks tables items; run without --no-schema"):
        copy_closed(job_for(small, pg_db), schema=False)


def test_target_that_cannot_hold_values_fails_before_any_row(small: Database, pg_db: Database) -> None:
    pg_db.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(2) NOT NULL, price NUMERIC(8,2))")
    with pytest.raises(DataError, match=r"items\.name"):
        copy(job_for(small, pg_db))
    assert pg_db.query("SELECT COUNT(*) FROM items")[0][0] == 0


def test_rows_of_copy_text_that_the_target_refuses_are_isolated(
    small: Database, pg_db: Database, mariadb_db: Database, tmp_path: Path
) -> None:
    """PostgreSQL -> MariaDB as COPY text: a refused batch is parsed back into rows and isolated."""
    copy_ok(job_for(small, pg_db))
    pg_db.sql("UPDATE items SET name = 'tab\there \\N' WHERE id = 3")
    mariadb_db.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, price DECIMAL(8,2))",
        "INSERT INTO items VALUES (100, 'two', 0)",
    )
    rejects = tmp_path / "rejects.jsonl"
    table = copy(job_for(pg_db, mariadb_db), mode="append", rejects_file=str(rejects)).tables[0]
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 1)
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["row"] for r in records] == [{"id": 2, "name": "two", "price": "2.20"}]
    assert mariadb_db.query("SELECT id, name, price FROM items ORDER BY id") == [
        (1, "one", Decimal("1.10")),
        (3, "tab\there \\N", Decimal("3.30")),
        (100, "two", Decimal("0.00")),
    ]


@pytest.mark.parametrize("target_name", ["sqlite", "postgresql", "mariadb"])
def test_rejected_rows_are_isolated_and_reported(
    small: Database,
    make_db: Callable[[str], Database],
    target_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = make_db(target_name)
    target.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, price DECIMAL(8,2))"
    )
    target.sql("INSERT INTO items VALUES (100, 'two', 0)")
    rejects = tmp_path / "rejects.jsonl"
    result = copy(job_for(small, target), mode="append", rejects_file=str(rejects))
    table = result.tables[0]
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 1)
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["row"]["name"] for r in records] == ["two"]
    assert records[0]["reason"]
    assert records[0]["run_id"] == result.run_id and records[0]["run_at"]  # (the file is appended to)
    again = copy(job_for(small, target), mode="append", rejects_file=str(rejects))
    runs = [json.loads(line)["run_id"] for line in rejects.read_text().splitlines()]
    assert again.run_id != result.run_id and runs.count(again.run_id) == 3
    assert sorted(r[0] for r in target.query("SELECT id FROM items")) == [1, 3, 100]
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]  # no "pipeline aborted" noise


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_statement_the_target_refuses_fails_the_table_not_its_rows(
    small: Database, make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """An insert that fails whatever the row (here a trigger reading a table that is not there: SQLSTATE
    class 42) was taken, row by row, for every row's refusal: all rows went to the rejects file and the
    table said ok. Now such an error fails the table, and no row is rejected."""
    target = make_db(target_name)
    target.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2))")
    if target_name == "postgresql":
        target.sql(
            "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO no_such_log VALUES (NEW.id); RETURN NEW; END $$",
            "CREATE TRIGGER audit BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit()",
        )
    else:
        target.sql(
            "CREATE TRIGGER audit BEFORE INSERT ON items FOR EACH ROW INSERT INTO no_such_log VALUES (NEW.id)"
        )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(job_for(small, target), mode="append", rejects_file=str(rejects)).tables
    assert table.status == "failed" and "no_such_log" in (table.error or "")
    assert table.rejected == 0 and not rejects.exists()


@pytest.mark.parametrize("mode", ["append", "merge"])
@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_server_failure_fails_the_table_not_the_row_it_met(
    small: Database, make_db: Callable[[str], Database], target_name: str, mode: str, tmp_path: Path
) -> None:
    """A server failing a write for a reason of its own (PostgreSQL out of shared memory, SQLSTATE
    class 53; MariaDB's table full, error 1114) was taken for the refusal of the rows that met
    it: under load, a 1M-row copy rejected 28,467 rows as "out of shared memory" and said ok. Now it
    fails the table, no row is rejected, and a run once the server is well copies every row. (A
    trigger raises the server's own error code on the row with id 2.)"""
    target = make_db(target_name)
    target.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2))")
    if target_name == "postgresql":
        target.sql(
            "CREATE FUNCTION strain() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 2 THEN"
            " RAISE EXCEPTION 'out of shared memory' USING ERRCODE = '53200'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER strain BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION strain()",
        )
    else:
        target.sql(
            "CREATE TRIGGER strain BEFORE INSERT ON items FOR EACH ROW IF NEW.id = 2 THEN SIGNAL SQLSTATE"
            " 'HY000' SET MYSQL_ERRNO = 1114, MESSAGE_TEXT = 'The table is full'; END IF"
        )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(job_for(small, target), mode=mode, rejects_file=str(rejects)).tables
    assert table.status == "failed" and "for no row's fault" in (table.error or "")
    assert table.rejected == 0 and not rejects.exists()
    assert target.query("SELECT COUNT(*) FROM items") == [(0,)]
    target.sql("DROP TRIGGER strain" + (" ON items" if target_name == "postgresql" else ""))
    (table,) = copy_closed(job_for(small, target), mode=mode, rejects_file=str(rejects)).tables
    assert table.status == "ok" and sorted(r[0] for r in target.query("SELECT id FROM items")) == [1, 2, 3]


@pytest.mark.parametrize("source_name", ["postgresql", "mariadb"])
def test_a_large_table_is_planned_from_its_statistics_without_counting_its_rows(
    source_name: str, make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics that say "large" stand in for count(*): chunks and the progress bar's total come from
    them. Stale statistics (rows added since) lose no row, and the bar ends at the rows there were."""
    source, target = make_db(source_name), make_db("sqlite")
    q = source.q
    source.sql(f"CREATE TABLE {q('items')} ({q('id')} INTEGER PRIMARY KEY, {q('n')} INTEGER)")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO items VALUES (:id, :n)"), [{"id": i, "n": i * 3} for i in range(1, 301)]
        )
    source.sql("ANALYZE items" if source_name == "postgresql" else "ANALYZE TABLE items")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO items VALUES (:id, :n)"), [{"id": i, "n": i * 3} for i in range(301, 501)]
        )
    endpoint = source.endpoint()
    with endpoint.connect() as conn:
        estimate = endpoint.dialect.estimated_rows(conn, "items", endpoint.schema)
    # PostgreSQL's statistics are of before the second insert; InnoDB counts rows as they come
    assert estimate is not None and (
        100 <= estimate < 500 if source_name == "postgresql" else estimate >= 100
    )
    monkeypatch.setattr(copy_module, "ESTIMATED_FROM", 100)
    counted: list[str] = []

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "count(" in statement.lower() and "items" in statement.lower():
            counted.append(statement)

    reports: list[tuple[int, int]] = []
    try:
        copy_ok(
            job_for(source, target),
            batch_size=50,
            progress=lambda t, done, total: reports.append((done, total)),
        )
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)
    assert not counted
    assert reports[0] == (0, estimate) and reports[-1] == (500, 500)
    assert target.query("SELECT COUNT(*), SUM(n) FROM items") == [(500, 3 * sum(range(1, 501)))]


@pytest.mark.parametrize(("workers", "chunks"), [(1, 5), (2, 6), (4, 8)])
def test_a_table_copied_in_parallel_is_cut_into_chunks_its_workers_share_evenly(
    workers: int,
    chunks: int,
    pg_db: Database,
    make_db: Callable[[str], Database],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 rows in batches of 20 make 5 chunks of 10 batches: on 2 workers the last one went alone, a
    core idle for a fifth of the table. They are now as many as a multiple of the workers (a chunk
    still holds at most about 10 batches), and each holds its share of the rows."""
    pg_db.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)",
        "INSERT INTO items SELECT g, g * 3 FROM generate_series(1, 1000) g",
    )
    target = make_db("postgresql")
    ran: list[tuple[int | None, int | None]] = []
    run = copy_module._ChunkRunner.run

    def counted(self: Any, chunk: Any) -> tuple[int, int, int, int]:
        ran.append((chunk.lo, chunk.hi))
        return run(self, chunk)

    monkeypatch.setattr(copy_module._ChunkRunner, "run", counted)
    copy_ok(job_for(pg_db, target), batch_size=20, workers=workers)
    assert len(ran) == chunks
    widths = {hi - lo for lo, hi in ran if lo is not None and hi is not None}
    assert len(widths) == 1 and widths.pop() <= 200
    assert target.query("SELECT COUNT(*), SUM(n) FROM items") == [(1000, 3 * sum(range(1, 1001)))]


@pytest.mark.parametrize("workers", [1, 4])
def test_tables_are_copied_at_once_each_after_the_tables_it_references(
    workers: int, pg_db: Database, make_db: Callable[[str], Database]
) -> None:
    """Tables are copied as many at once as the workers, a table once those it references are copied:
    with 4 workers, 'a' waits in its progress for 'b' to start (never, one table after the other), and
    'c' starts only once 'a', which it references, holds all its rows; with 1, one after the other."""
    pg_db.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, n INTEGER)",
        "CREATE TABLE c (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id))",
        "INSERT INTO a SELECT g, g FROM generate_series(1, 300) g",
        "INSERT INTO b SELECT g, g FROM generate_series(1, 300) g",
        "INSERT INTO c SELECT g, g FROM generate_series(1, 300) g",
    )
    target = make_db("postgresql")
    b_started = threading.Event()
    seen: list[str] = []
    a_rows_when_c_started: list[int] = []
    lock = threading.Lock()

    def progress(table: str, done: int, total: int) -> None:
        with lock:
            first = table not in seen
            seen.append(table)
        if not first:
            return
        if table == "b":
            b_started.set()
        elif table == "a" and workers > 1:
            assert b_started.wait(30), "'b' did not start while 'a' was being copied"
        elif table == "c":
            a_rows_when_c_started.append(target.query("SELECT COUNT(*) FROM a")[0][0])

    result = copy_ok(job_for(pg_db, target), workers=workers, batch_size=50, progress=progress)
    assert [t.target for t in result.tables] == sorted(t.target for t in result.tables)
    assert a_rows_when_c_started == [300]
    if workers == 1:  # (each table's reports together: none began before the one before it ended)
        assert [t for t, _ in itertools.groupby(seen)] == ["a", "b", "c"]
    for name in ("a", "b", "c"):
        assert target.query(f"SELECT COUNT(*), SUM(id) FROM {name}") == [(300, sum(range(1, 301)))]


def test_ctrl_c_while_tables_are_copied_at_once_builds_no_keys_and_a_rerun_finishes(
    pg_db: Database, make_db: Callable[[str], Database]
) -> None:
    """Ctrl-C in one table's copy: the table copied beside it commits the chunks it was copying but does
    not go on to build its keys (an index of a large table may take minutes; Ctrl-C waited for it), and
    the run made again finishes both."""
    pg_db.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, n INTEGER)",
        "INSERT INTO a SELECT g, g FROM generate_series(1, 200) g",
        "INSERT INTO b SELECT g, g FROM generate_series(1, 200) g",
    )
    target = make_db("postgresql")
    interrupted = threading.Event()

    def progress(table: str, done: int, total: int) -> None:
        if done < 200:
            return
        if table == "a":
            interrupted.set()
            raise KeyboardInterrupt
        assert interrupted.wait(30)
        time.sleep(0.5)  # (the copy is halted meanwhile)

    with pytest.raises(KeyboardInterrupt):
        copy_closed(job_for(pg_db, target), workers=4, progress=progress)
    assert target.query("SELECT COUNT(*) FROM b") == [(200,)]
    assert _primary_key(target, "b") == []  # (built after the rows: not after Ctrl-C)
    copy_ok(job_for(pg_db, target))
    assert _primary_key(target, "a") == _primary_key(target, "b") == ["id"]
    for name in ("a", "b"):
        assert target.query(f"SELECT COUNT(*), SUM(n) FROM {name}") == [(200, sum(range(1, 201)))]


def test_a_stopped_run_is_void_once_another_run_copies_its_tables(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """The audit: a nightly run stopped with one table not copied; the operator copied that table
    alone (-t); the next night's run resumed the stopped one and skipped every table, the one copied
    by the other run too: nothing reloaded, exit 0, the target a day old. A run that starts anew now
    voids the stopped runs of its tables."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER)",
        "INSERT INTO customers VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO orders VALUES (1, 5), (2, 0)",
    )
    target.sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER CHECK (qty > 0))")
    rejects = str(tmp_path / "rejects.jsonl")
    night = copy_closed(job_for(source, target), mode="replace", max_rejects=0, rejects_file=rejects)
    assert {t.table: t.status for t in night.tables} == {"customers": "ok", "orders": "failed"}
    source.sql("UPDATE orders SET qty = 1 WHERE id = 2")
    copy_ok(job_for(source, target, tables=["orders"]), mode="replace")  # (the operator: that table alone)
    source.sql("UPDATE customers SET name = 'changed' WHERE id = 1", "DELETE FROM orders WHERE id = 2")
    next_night = copy_ok(job_for(source, target), mode="replace", max_rejects=0, rejects_file=rejects)
    assert {t.table: t.rows_written for t in next_night.tables} == {"customers": 2, "orders": 1}
    assert target.query("SELECT name FROM customers WHERE id = 1") == [("changed",)]
    assert target.query("SELECT id FROM orders") == [(1,)]


def test_an_append_run_again_into_duckdb_finds_the_rows_there_by_one_query(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """DuckDB has no savepoints: each row of a refused batch was found by trials of its own, a few ms
    each (an append of 36,000 rows run again took 207 s, the audit). Rows whose key the target holds
    are now found by one query a batch, and only the others are tried."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(1, 301)),
    )
    copy_ok(job_for(source, target), mode="append")
    source.sql("INSERT INTO t VALUES (301, 'new')")
    rejects = tmp_path / "rejects.jsonl"
    again = copy_ok(job_for(source, target), mode="append", batch_size=50, rejects_file=str(rejects))
    assert (again.tables[0].rows_written, again.tables[0].rejected) == (1, 300)
    reasons = reasons_by_id(rejects)
    assert len(reasons) == 300 and all("is in the target already" in r for r in reasons.values())
    assert target.query("SELECT COUNT(*) FROM t")[0][0] == 301


def test_source_rows_sharing_a_natural_key_are_copied_as_one_chunk(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """The audit: rows sharing a natural key in chunks copied at once could not see each other's
    rows, each wrote its own (19,999 rows for 19,500 slugs with 2 workers, 19,500 with one)."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL, label TEXT)")
    rows = [(i, f"s{i % 20}" if i % 100 < 20 else f"u{i}", f"l{i}") for i in range(1, 1201)]
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tags VALUES (:i, :s, :l)"),
            [{"i": i, "s": s, "l": label} for i, s, label in rows],
        )
    target.sql(
        "CREATE TABLE tags (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, slug VARCHAR(20) UNIQUE, label TEXT)"
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}', schema: {target.schema}}}\n"
        "tables:\n  - {name: tags, natural_key: [slug], remap_ids: true}\n"
    )
    result = copy_ok(build(config_file=str(job_file)), mode="append", workers=4, batch_size=10)
    distinct = len({s for _, s, _ in rows})
    assert target.query("SELECT COUNT(*) FROM tags")[0][0] == distinct
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (distinct, len(rows) - distinct)
    assert any("share a natural key (slug)" in w for w in result.warnings)


def test_a_stopped_run_is_resumed_only_with_the_ids_it_wrote(make_db: Callable[[str], Database]) -> None:
    """The audit: a --remap-ids copy stopped, then run again without --remap-ids, resumed its tables
    and wrote the rest of the rows with the source's IDs, pointing at the live target's own rows."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), qty INTEGER)",
        "INSERT INTO customers VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO orders VALUES (1, 1, 5), (2, 2, 0)",
    )
    target.sql(
        "CREATE TABLE customers (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " customer_id INTEGER REFERENCES customers (id), qty INTEGER CHECK (qty > 0))",
        "INSERT INTO customers (name) VALUES ('live 1'), ('live 2')",
    )
    stopped = copy_closed(job_for(source, target), mode="append", remap_ids=True, max_rejects=0)
    assert {t.table: t.status for t in stopped.tables} == {"customers": "ok", "orders": "failed"}
    source.sql("UPDATE orders SET qty = 1 WHERE id = 2")
    otherwise = copy_closed(job_for(source, target), mode="append")
    (orders,) = [t for t in otherwise.tables if t.table == "orders"]
    assert orders.status == "failed" and "--remap-ids" in (orders.error or "")
    assert target.query("SELECT COUNT(*) FROM orders")[0][0] == 0
    copy_ok(job_for(source, target), mode="append", remap_ids=True)
    rows = target.query("SELECT c.name, o.qty FROM orders o JOIN customers c ON c.id = o.customer_id")
    assert sorted(rows) == [("a", 5), ("b", 1)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_a_table_past_max_rejects_fails_and_keeps_nothing_of_its_chunk(
    small: Database, make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Appending rows that are all there already: with --max-rejects 1 the table stops at the second
    refused row (instead of isolating every row) and the rows of its chunk are rolled back; the rejects
    file records only the rows of chunks that commit (as the summary counts them)."""
    target = make_db(target_name)
    target.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, price DECIMAL(8,2))")
    target.sql("INSERT INTO items VALUES (1, 'one', 1.10), (3, 'three', 3.30)")
    rejects = tmp_path / "rejects.jsonl"
    result = copy(job_for(small, target), mode="append", rejects_file=str(rejects), max_rejects=1)
    table = result.tables[0]
    assert table.status == "failed"
    assert table.error and "more than 1 rows refused" in table.error
    assert sorted(r[0] for r in target.query("SELECT id FROM items")) == [1, 3]  # not row 2
    assert not rejects.exists()
    again = copy(job_for(small, target), mode="append", max_rejects=2, rejects_file=str(rejects))
    assert (again.tables[0].status, again.tables[0].rows_written, again.tables[0].rejected) == ("ok", 1, 2)
    assert len(rejects.read_text().splitlines()) == 2


# ---- resume after kill -9 -------------------------------------------------------------------------

ROWS = 120_000


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_killed_copy_resumes_to_the_same_result(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    source = make_db("sqlite")
    path = source.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n DECIMAL(12,2))")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)", ((i, f"row {i}", f"{i}.25") for i in range(1, ROWS + 1))
        )
    target = make_db(target_name)
    args = [
        sys.executable,
        "-m",
        "parity",
        "copy",
        source.url,
        target.url,
        "--batch-size",
        "1000",
        "--workers",
        "1",
        "--mode",
        "append",
        "--rejects",
        str(tmp_path / "rejects.jsonl"),  # (not in the working directory)
    ]
    if target.schema:
        args += ["--target-schema", target.schema]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            done = target.query("SELECT COUNT(*) FROM _parity_state WHERE chunk <> ''")[0][0]
        except sa.exc.DBAPIError:
            done = 0
        if done >= 1:  # (killed early: a fast machine ends the 12 chunks in a blink)
            break
        time.sleep(0.05)
    assert proc.poll() is None, (
        f"copy finished before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    )
    assert len(_in_session(proc.pid)) >= 2  # the copy and its fork server (readers come and go)
    os.kill(proc.pid, signal.SIGKILL)  # the copy alone: what it started (reader processes) must end too
    proc.wait()
    deadline = time.monotonic() + 10
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _in_session(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert left == []
    partial = target.query("SELECT COUNT(*) FROM big")[0][0]
    assert 0 < partial < ROWS

    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)["tables"][0]
    assert summary["rejected"] == 0  # no row of the killed run's chunks was there already
    assert summary["rows_written"] + summary["skipped"] == ROWS
    count, distinct, total = target.query("SELECT COUNT(*), COUNT(DISTINCT id), SUM(n) FROM big")[0]
    assert (count, distinct) == (ROWS, ROWS)
    assert Decimal(str(total)) == sum(Decimal(f"{i}.25") for i in range(1, ROWS + 1))
    assert _primary_key(target, "big") == ["id"]  # built after the rows, by the rerun where it was killed


_KILLED_AFTER_CREATE_TABLE = """
import os, signal, sys
import parity.schema.apply as apply
run = apply.execute_raw
def killing(conn, sql, *args, **kwargs):
    done = run(conn, sql, *args, **kwargs)
    if sql.lstrip().startswith("CREATE TABLE"):
        os.kill(os.getpid(), signal.SIGKILL)  # (as kill -9 between the table and its indexes)
    return done
apply.execute_raw = killing
from parity.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(("target_name", "merge"), [("mariadb", False), ("sqlite", False), ("sqlite", True)])
def test_a_copy_killed_between_a_table_and_its_indexes_builds_them_when_run_again(
    make_db: Callable[[str], Database], target_name: str, merge: bool
) -> None:
    """Where each DDL statement commits on its own, a copy killed after CREATE TABLE left the table
    without its indexes; the rerun found the table there and copied into it, exit 0, the unique index
    lost for good (the audit). A merge by that index's column was refused on every rerun (the review)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE a (id INTEGER PRIMARY KEY, handle VARCHAR(20) NOT NULL, country VARCHAR(2))",
               "CREATE UNIQUE INDEX ux_a_handle ON a (handle)", "CREATE INDEX ix_a_country ON a (country)",
               "INSERT INTO a VALUES (1, 'x', 'fr'), (2, 'y', 'de')")  # fmt: skip
    args = ["copy", source.url, target.url, *(["--target-schema", target.schema] if target.schema else [])]
    args += ["--mode", "merge", "-k", "handle"] if merge else []
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_CREATE_TABLE, *args], capture_output=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    with target.endpoint().connect() as conn:
        assert sa.inspect(conn).get_indexes("a", schema=target.schema) == []  # (what the kill left)
    rerun = subprocess.run(
        [sys.executable, "-m", "parity", *args], capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    with target.endpoint().connect() as conn:
        built = {
            (ix["name"], bool(ix["unique"])) for ix in sa.inspect(conn).get_indexes("a", schema=target.schema)
        }
        left = target.query("SELECT COUNT(*) FROM _parity_state WHERE task LIKE 'keys %'")[0][0]
    assert built == {("ux_a_handle", True), ("ix_a_country", False)} and left == 0
    assert target.query("SELECT COUNT(*) FROM a")[0][0] == 2


def live_processes(match: Callable[[list[str]], bool]) -> list[int]:
    """The live processes whose /proc stat fields after the name (state, ppid, pgrp, session, ...)
    match."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and match(fields):
                found.append(int(entry))
    return found


def _in_session(session: int) -> list[int]:
    """The live processes of a session (a killed copy's reader processes and their fork server)."""
    return live_processes(lambda fields: int(fields[3]) == session)


def _primary_key(db: Database, table: str) -> list[str]:
    with db.endpoint().connect() as conn:
        return list(sa.inspect(conn).get_pk_constraint(table, schema=db.schema)["constrained_columns"])


KEYED = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, n INTEGER)",
    "CREATE INDEX orders_n ON orders (n)",
    "INSERT INTO orders VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 10)",
    "CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders (id), q INTEGER)",
    "INSERT INTO lines VALUES (1, 1, 5), (2, 1, 6), (3, 3, 7)",
)


def _foreign_keys(db: Database, table: str) -> list[tuple[list[str], str]]:
    with db.endpoint().connect() as conn:
        fks = sa.inspect(conn).get_foreign_keys(table, schema=db.schema)
    return [(fk["constrained_columns"], fk["referred_table"]) for fk in fks]


def test_postgresql_builds_the_keys_of_a_table_it_creates_after_its_rows(
    make_db: Callable[[str], Database], pg_db: Database
) -> None:
    source = make_db("sqlite")
    source.sql(*KEYED)
    result = copy_ok(job_for(source, pg_db))
    steps = {(s.table, s.action): s.sql for s in result.schema.steps}
    assert [s.action for s in result.schema.steps if s.table == "orders"] == [
        "create table",
        *["add key"] * 3,
    ]
    for table in ("orders", "lines"):
        created = steps[(table, "create table")]
        assert "PRIMARY KEY" not in created and "UNIQUE" not in created and "REFERENCES" not in created
    assert "REFERENCES" in steps[("lines", "add foreign key")]
    assert _primary_key(pg_db, "orders") == ["id"] and _primary_key(pg_db, "lines") == ["id"]
    assert _foreign_keys(pg_db, "lines") == [(["order_id"], "orders")]
    with pytest.raises(sa.exc.IntegrityError):  # the FK is there and holds
        pg_db.sql("INSERT INTO lines VALUES (9, 99, 1)")
    with pg_db.endpoint().connect() as conn:
        inspector = sa.inspect(conn)
        uniques = inspector.get_unique_constraints("orders", schema=pg_db.schema)
        indexes = inspector.get_indexes("orders", schema=pg_db.schema)
    assert [u["column_names"] for u in uniques] == [["code"]]
    assert [i["column_names"] for i in indexes if not i.get("unique")] == [["n"]]
    assert pg_db.query(
        "SELECT COUNT(*) FROM _parity_state WHERE task LIKE 'keys %' OR task LIKE 'fks %'"
    ) == [(0,)]
    # merged tables need their key while loading (ON CONFLICT): not deferred
    other = make_db("postgresql")
    merged = copy_ok(job_for(source, other), mode="merge")
    assert "add key" not in {s.action for s in merged.schema.steps}
    assert _primary_key(other, "orders") == ["id"]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_foreign_keys_to_tables_given_new_ids_come_after_the_rows_in_postgresql(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """A table PostgreSQL gets from a copy that gives its parent new IDs gets its FK to it after its
    rows: the ID map finds each row's parent (a row whose parent got none is rejected), not the
    target's check of every row. Its own keys come with it (the rows are looked for by them); the FK
    is there at the end. MariaDB gets the FK with the table (InnoDB would build its index after)."""
    source = make_db("sqlite")
    source.sql(*KEYED, "INSERT INTO lines VALUES (4, 42, 8)")  # (SQLite keeps an orphan: no FK checks)
    target = make_db(target_name)
    rejects = tmp_path / "rejects.jsonl"
    result = copy_ok(job_for(source, target), remap_ids=True, rejects_file=str(rejects))
    steps = {(s.table, s.action): s.sql for s in result.schema.steps}
    after = target_name == "postgresql"
    assert ("REFERENCES" in steps[("lines", "create table")]) is not after
    assert (("lines", "add foreign key") in steps) is after
    assert "PRIMARY KEY" in steps[("lines", "create table")]
    assert [(t.table, t.rows_written, t.rejected) for t in result.tables] == [
        ("orders", 3, 0),
        ("lines", 3, 1),
    ]
    assert list(reasons_by_id(rejects).items()) == [
        (4, "order_id=42: no row with that ID was copied into orders")
    ]
    assert _foreign_keys(target, "lines") == [(["order_id"], "orders")]
    lines = target.endpoint().engine.dialect.identifier_preparer.quote("lines")  # (MariaDB's keyword)
    assert target.query(
        f"SELECT o.code, l.q FROM {lines} l JOIN orders o ON o.id = l.order_id ORDER BY l.q"
    ) == [("a", 5), ("a", 6), ("c", 7)]
    with pytest.raises(sa.exc.IntegrityError):  # the FK holds
        target.sql(f"INSERT INTO {lines} (order_id, q) VALUES (999, 1)")


def test_keys_left_to_build_by_a_failed_finish_are_built_by_the_next_run(
    make_db: Callable[[str], Database], pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys to build are recorded with the CREATE TABLE; a run that loads the rows but fails before
    building them leaves them recorded, and the next run (nothing left to load) builds them."""
    source = make_db("sqlite")
    source.sql(*KEYED)
    from parity.state import State

    def broken(*args: Any, **kw: Any) -> None:
        raise sa.exc.OperationalError("finish", {}, Exception("connection lost"))

    with monkeypatch.context() as failing:
        failing.setattr(State, "finish_task", broken)
        first = copy(job_for(source, pg_db))
    assert [t.status for t in first.tables] == ["failed", "failed"]
    assert pg_db.query("SELECT COUNT(*) FROM orders") == [(3,)]
    assert _primary_key(pg_db, "orders") == []  # rolled back with the failed finish
    assert _foreign_keys(pg_db, "lines") == []  # waits for a run in which every table succeeds
    assert pg_db.query("SELECT COUNT(*) FROM lines") == [(0,)]  # (its parent table failed: not loaded)
    again = copy_ok(job_for(source, pg_db))
    assert [t.rows_written for t in again.tables] == [0, 3]  # every chunk of orders was done
    assert _primary_key(pg_db, "orders") == ["id"]
    assert _foreign_keys(pg_db, "lines") == [(["order_id"], "orders")]
    assert pg_db.query("SELECT COUNT(*) FROM orders") == [(3,)]


def test_unknown_table_is_a_clean_error(small: Database, pg_db: Database) -> None:
    from parity.errors import NotFound

    with pytest.raises(NotFound, match="did you mean 'items'"):
        copy(build(small.url, pg_db.url, tables=["itemz"], target_schema=pg_db.schema))


def test_uuid_values_are_uuid_objects() -> None:
    from parity.values import decode_value

    value = uuid.uuid4()
    assert decode_value(Kind.UUID, str(value)) == value
    assert decode_value(Kind.UUID, value.bytes) == value


# ---- migrating into a live database: new IDs, natural keys, the ID map ---------------------------


def test_a_table_referencing_itself_loads_in_generations_where_its_fk_cannot_be_switched_off(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """DuckDB checks an FK as each statement ends, against the rows before it, and has no FK checks to
    switch off: a parent and its child in one write were refused, so a table referencing itself that
    the user had made failed whole. Parents come after their children here, across batches."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql("CREATE TABLE emp (id INTEGER PRIMARY KEY, manager_id INTEGER, name VARCHAR(20))")
    rows = [(i, None if i == 600 else min(600, i * 2), f"e{i}") for i in range(1, 601)]
    rows += [(601, 99999, "orphan"), (602, 602, "own manager")]
    with source.endpoint().begin() as conn:
        conn.exec_driver_sql("INSERT INTO emp VALUES (?, ?, ?)", rows)
    target.sql(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, manager_id INTEGER REFERENCES emp (id), name VARCHAR)"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = copy_ok(job_for(source, target), schema=False, batch_size=50, rejects_file=str(rejects))
    table = result.tables[0]
    assert (table.rows_read, table.rows_written, table.rejected) == (602, 600, 2)
    assert target.query("SELECT id, manager_id, name FROM emp ORDER BY id") == rows[:600]
    reasons = reasons_by_id(rejects)
    assert reasons.keys() == {601, 602}
    assert "does not hold (id=99999)" in reasons[601] and "the row itself" in reasons[602]
    # replace empties it a generation at a time (DuckDB refused to delete a row with its referrer)
    again = copy_ok(job_for(source, target), schema=False, batch_size=50, mode="replace")
    assert (again.tables[0].rows_written, again.tables[0].rejected) == (600, 2)
    assert target.query("SELECT id, manager_id, name FROM emp ORDER BY id") == rows[:600]
    # append run again: rows already there are rejected (found first: no savepoints to find them under)
    twice = copy_ok(job_for(source, target), schema=False, batch_size=50, mode="append")
    assert (twice.tables[0].rows_written, twice.tables[0].rejected) == (0, 602)
    assert target.query("SELECT count(*) FROM emp") == [(600,)]
    # a row the target refuses fails the table: tried on another connection, as DuckDB's refused rows
    # are found, its parents written in this transaction are not there, so it would be taken as refused
    checked = make_db("duckdb")
    checked.sql(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, manager_id INTEGER REFERENCES emp (id), "
        "name VARCHAR CHECK (name <> 'e7'))"
    )
    failed = copy_closed(job_for(source, checked), schema=False, batch_size=50).tables[0]
    assert failed.status == "failed" and "CHECK constraint failed" in failed.error
    assert checked.query("SELECT count(*) FROM emp") == [(0,)]


@pytest.fixture(params=["held", "looked up"])
def parent_maps(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a copy finds parents' new IDs: their maps read whole and held (``IdMaps.parent``), or
    none held (no room), each batch's looked up in ``_parity_id_map``."""
    if request.param == "looked up":
        monkeypatch.setattr(remap_module, "HELD_BYTES", 0)
    return str(request.param)


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql", "sqlite"])
def test_remap_ids_through_a_self_reference_and_a_cycle(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path, parent_maps: str
) -> None:
    """A parent row copied after its child (a self-reference, a cycle of two tables, a row that is its
    own parent): the child is written with NULL there and gets the parent's new ID at the end. A rerun
    writes nothing and changes nothing."""
    source = make_db("sqlite")
    source.sql(
        "CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " parent_id INTEGER REFERENCES categories(id))",
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL, captain_id INTEGER REFERENCES people(id))",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " team_id INTEGER NOT NULL REFERENCES teams(id))",
        "INSERT INTO categories VALUES (1, 'root', NULL), (2, 'child of 5', 5), (3, 'a', 1), (4, 'b', 3),"
        " (5, 'late parent', 1), (6, 'its own parent', 6)",
        "INSERT INTO teams VALUES (1, 'red', 2), (2, 'blue', NULL), (3, 'green', 1)",
        "INSERT INTO people VALUES (1, 'ann', 3), (2, 'bob', 1), (3, 'cy', 2)",
    )
    target = make_db(target_name)
    copy_ok(job_for(source, target), limit=0)  # the tables, empty; then rows of the target's own
    target.sql("INSERT INTO teams (id, name) VALUES (1000, 'theirs')")
    for table, last in (("categories", "NULL"), ("teams", "NULL"), ("people", "1000")):
        target.sql(*(f"INSERT INTO {table} VALUES ({i}, 'theirs{i}', {last})" for i in range(1, 51)))
    if target_name == "postgresql":
        for table in ("categories", "teams", "people"):
            target.sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1000)")
    id_map = tmp_path / "ids.json"
    result = copy_ok(job_for(source, target), remap_ids=True, export_id_map=str(id_map))
    assert {t.table: t.rows_written for t in result.tables} == {"categories": 6, "teams": 3, "people": 3}
    ids = {table: {int(k): v for k, v in m.items()} for table, m in json.loads(id_map.read_text()).items()}
    assert all(new > 50 for m in ids.values() for new in m.values())  # the target assigned new IDs

    def holds(table: str, parent_column: str, parent_table: str) -> None:
        old = source.query(f"SELECT id, name, {parent_column} FROM {table} ORDER BY id")
        new = dict(
            (r[0], (r[1], r[2])) for r in target.query(f"SELECT id, name, {parent_column} FROM {table}")
        )
        for old_id, name, parent in old:
            want = None if parent is None else ids[parent_table][parent]
            assert new[ids[table][old_id]] == (name, want), (table, old_id)

    holds("categories", "parent_id", "categories")
    holds("teams", "captain_id", "people")
    holds("people", "team_id", "teams")
    before = target.query("SELECT id, parent_id FROM categories ORDER BY id")
    again = copy_ok(job_for(source, target), remap_ids=True)
    assert all(t.rows_written == 0 for t in again.tables)
    assert target.query("SELECT id, parent_id FROM categories ORDER BY id") == before


def test_late_references_left_by_a_stopped_run_are_set_by_the_next(
    sqlite_db: Database, pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The references that wait for later rows are derived from the source at the end of each run:
    a run that stopped before setting them leaves NULLs that the next run sets."""
    sqlite_db.sql(
        "CREATE TABLE nodes (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES nodes(id))",
        "INSERT INTO nodes VALUES (1, 3), (2, 1), (3, NULL), (4, 4)",
    )
    with monkeypatch.context() as stopped:
        stopped.setattr(copy_module, "_fix_late_references", lambda *args: None)
        copy_ok(job_for(sqlite_db, pg_db), remap_ids=True)
    assert pg_db.query("SELECT COUNT(*) FROM nodes WHERE parent_id IS NULL") == [(3,)]  # 1 and 4 wait
    copy_ok(job_for(sqlite_db, pg_db), remap_ids=True)
    pairs = pg_db.query(
        "SELECT m.old_id, p.old_id FROM nodes n JOIN _parity_id_map m ON m.table_name = 'nodes'"
        " AND CAST(m.new_id AS BIGINT) = n.id LEFT JOIN _parity_id_map p ON p.table_name = 'nodes'"
        " AND CAST(p.new_id AS BIGINT) = n.parent_id ORDER BY m.old_id"
    )
    assert pairs == [("1", "3"), ("2", "1"), ("3", None), ("4", "4")]


def test_remap_ids_through_a_self_reference_in_parallel_chunks(
    pg_db: Database, mariadb_db: Database, parent_maps: str
) -> None:
    """Chunks of a self-referencing table run at once: a row whose parent is in another chunk gets it
    when that chunk's IDs are committed (or at the end), never an ID another chunk has not committed."""
    pg_db.sql(
        "CREATE TABLE tree (id serial PRIMARY KEY, label text NOT NULL, parent_id integer REFERENCES tree(id))",
        "INSERT INTO tree (label) SELECT 'n' || g FROM generate_series(1, 2000) g",
        "UPDATE tree SET parent_id = CASE WHEN mod(id, 10) = 0 THEN NULL ELSE mod(id * 7919, 2000) + 1 END",
    )
    mariadb_db.sql(
        "CREATE TABLE tree (id INTEGER AUTO_INCREMENT PRIMARY KEY, label TEXT NOT NULL, parent_id INTEGER)"
    )
    mariadb_db.sql("INSERT INTO tree (label) VALUES " + ", ".join(f"('theirs{i}')" for i in range(300)))
    result = copy_ok(job_for(pg_db, mariadb_db), mode="append", remap_ids=True, batch_size=100, workers=4)
    assert result.tables[0].rows_written == 2000
    ids = {
        int(old): int(new)
        for old, new in mariadb_db.query(
            "SELECT old_id, new_id FROM _parity_id_map WHERE table_name = 'tree'"
        )
    }
    source = pg_db.query("SELECT id, label, parent_id FROM tree")
    target = {r[0]: (r[1], r[2]) for r in mariadb_db.query("SELECT id, label, parent_id FROM tree")}
    for old_id, label, parent in source:
        assert target[ids[old_id]] == (label, None if parent is None else ids[parent]), old_id
    assert mariadb_db.query("SELECT COUNT(*) FROM _parity_state WHERE task LIKE 'late %%'") == [(0,)]


def test_remap_ids_for_every_table_passes_over_tables_it_cannot_renumber(
    sqlite_db: Database, pg_db: Database
) -> None:
    """--remap-ids refused the whole run where one table had a composite key, after creating the
    tables. Now such a table is copied as it is (its references to renumbered rows rewritten); a table
    whose own remap_ids cannot be done is refused before any DDL."""
    sqlite_db.sql(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)",
        "CREATE TABLE lines (order_id INTEGER REFERENCES orders(id), n INTEGER, PRIMARY KEY (order_id, n))",
        "INSERT INTO orders VALUES (7, 'a'), (9, 'b')",
        "INSERT INTO lines VALUES (7, 1), (7, 2), (9, 1)",
    )
    pg_db.sql(
        "CREATE TABLE orders (id SERIAL PRIMARY KEY, note TEXT)", "INSERT INTO orders (note) VALUES ('x')"
    )
    refused = build(sqlite_db.url, pg_db.url, target_schema=pg_db.schema, tables=["orders", "lines"],
                    table_options={"remap_ids": True})  # fmt: skip
    with pytest.raises(DataError, match="table 'lines': remap_ids needs a single auto-increment"):
        copy_closed(refused, mode="append")
    assert pg_db.query(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'lines'"
    ) == [(0,)]  # (refused before any DDL)
    copy_ok(job_for(sqlite_db, pg_db), mode="append", remap_ids=True)
    rows = pg_db.query("SELECT o.note, l.n FROM lines l JOIN orders o ON o.id = l.order_id ORDER BY 1, 2")
    assert rows == [("a", 1), ("a", 2), ("b", 1)]
    assert sorted(r[0] for r in pg_db.query("SELECT id FROM orders")) == [1, 2, 3]  # (renumbered)


@pytest.mark.parametrize("name", ["postgresql", "sqlite"])
def test_a_table_copied_onto_itself_is_refused(
    make_db: Callable[[str], Database], name: str, tmp_path: Path
) -> None:
    """The same database, schema and table on both sides: replace emptied the table (read 0, written 0,
    ok). Now the copy is refused before anything is written; into another table or schema it goes."""
    from parity.errors import ConfigError

    db = make_db(name)
    db.sql("CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO m VALUES (1, 'a'), (2, 'b')")
    urls = [db.url]
    if name in ("sqlite", "duckdb"):  # (another path, and a hard link: one file under two names)
        scheme, path = db.url.split(":///", 1)
        os.link(path, tmp_path / "alias")
        urls = [f"{scheme}:///{os.path.relpath(path)}", f"{scheme}:///{tmp_path / 'alias'}"]
    for mode, url in itertools.product(("replace", "append"), urls):
        job = build(db.url, url, source_schema=db.schema, target_schema=db.schema, tables=["m"])
        try:
            with pytest.raises(ConfigError, match="'m' is both the source and the target"):
                copy(job, mode=mode)
        finally:
            job.close()
    assert db.query("SELECT COUNT(*) FROM m") == [(2,)]
    copy_ok(build(db.url, db.url, source_schema=db.schema, target_schema=db.schema, tables=["m:m2"]))
    assert db.query("SELECT COUNT(*) FROM m2") == [(2,)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_remap_ids_in_batches_maps_every_row_to_its_own_new_id(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path, parent_maps: str
) -> None:
    """--remap-ids wrote a row at a time (100k rows in 90 s). A batch now goes in one INSERT of many rows
    whose new IDs come back in the rows' order (SQLAlchemy's insertmanyvalues), and into PostgreSQL and
    MariaDB by their bulk path (COPY with IDs taken from the sequence; LOAD DATA, which numbers its
    rows in order): four times as fast again. A batch holding a row the target refuses is written
    again a row at a time. Every old ID maps to the row holding its values, children follow, and the
    refused row is rejected alone."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INTEGER)",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id), body TEXT)",
    )
    with source.engine.begin() as conn:
        rows = [{"i": i * 3, "n": f"item {i * 3}", "q": i} for i in range(1, 1001)]
        conn.execute(sa.text("INSERT INTO items VALUES (:i, :n, :q)"), rows)
        conn.execute(sa.text("INSERT INTO notes VALUES (:i, :i, :n)"), rows)
    target.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTO_INCREMENT, name VARCHAR(20) NOT NULL UNIQUE, qty INTEGER)"
        if target_name
        == "mariadb"  # (an INTEGER key: notes.item_id is made INTEGER too, as MariaDB's FKs need)
        else "CREATE TABLE items (id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, qty INTEGER)"
        if target_name == "postgresql"
        else "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(20) NOT NULL UNIQUE, qty INTEGER)",
        "INSERT INTO items (name, qty) VALUES ('item 1500', 0), ('first', 0)",  # (item 1500 is refused)
    )
    rejects = tmp_path / "rejects.jsonl"
    job = job_for(source, target)
    numbered: list[str] = []  # (the statements that give a bulk load its IDs: one a batch)

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "nextval(" in statement or "LAST_INSERT_ID()" in statement:
            numbered.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = {
            t.table: t for t in copy(job, remap_ids=True, batch_size=128, rejects_file=str(rejects)).tables
        }
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        job.close()
    assert len(numbered) >= (8 if target_name != "sqlite" else 0), numbered
    assert (result["items"].rows_written, result["items"].rejected) == (999, 1)
    assert (result["notes"].rows_written, result["notes"].rejected) == (999, 1)
    mapped = target.query(
        "SELECT m.old_id, i.name, i.qty FROM _parity_id_map m JOIN items i ON i.id = CAST(m.new_id AS INTEGER)"
        " WHERE m.table_name = 'items'"
    )
    assert len(mapped) == 999 and all(
        name == f"item {old}" and qty * 3 == int(old) for old, name, qty in mapped
    )
    children = target.query("SELECT n.body, i.name FROM notes n JOIN items i ON i.id = n.item_id")
    assert len(children) == 999 and all(body == name for body, name in children)
    again = copy_ok(job_for(source, target), remap_ids=True, batch_size=128, max_rejects=10)  # (a rerun
    assert [(t.rows_written, t.skipped) for t in again.tables] == [(0, 999), (0, 999)]  # plans nothing new)


def test_remap_ids_refuses_a_not_null_reference_to_rows_copied_later(
    sqlite_db: Database, pg_db: Database
) -> None:
    sqlite_db.sql(
        "CREATE TABLE nodes (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES nodes(id))",
        "INSERT INTO nodes VALUES (1, 1)",
    )
    with pytest.raises(DataError, match="parent_id to 'nodes' waits for new IDs"):
        copy(job_for(sqlite_db, pg_db), remap_ids=True)


def test_remap_ids_into_duckdb_needs_a_key_it_numbers(small: Database, duckdb_db: Database) -> None:
    """DuckDB has no identity columns: remapping into a table parity would create is refused before any
    DDL; into a table whose key defaults to a sequence, rows get the sequence's IDs (DuckDB has no
    savepoints either: that path failed on its first row), and a second run writes nothing."""
    with pytest.raises(DataError, match="remap_ids needs the target to assign IDs"):
        copy(job_for(small, duckdb_db), remap_ids=True)
    assert duckdb_db.query("SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = 'items'") == [(0,)]
    duckdb_db.sql(
        "CREATE SEQUENCE item_ids START 100",
        "CREATE TABLE items (id BIGINT PRIMARY KEY DEFAULT nextval('item_ids'), name VARCHAR(20), price DECIMAL(8,2))",
    )
    first = copy_ok(job_for(small, duckdb_db), remap_ids=True)
    assert first.tables[0].rows_written == 3
    assert duckdb_db.query("SELECT id, name FROM items ORDER BY id") == [
        (100, "one"),
        (101, "two"),
        (102, "three"),
    ]
    again = copy_ok(job_for(small, duckdb_db), remap_ids=True)
    assert (again.tables[0].rows_written, again.tables[0].skipped) == (0, 3)


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql", "sqlite"])
def test_remap_ids_with_natural_keys(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path, parent_maps: str
) -> None:
    source = make_db("sqlite")
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug VARCHAR(40) NOT NULL UNIQUE, name TEXT)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repository_id INTEGER NOT NULL REFERENCES repositories(id),"
        " hash VARCHAR(40) NOT NULL, UNIQUE (hash, repository_id))",
        "INSERT INTO repositories VALUES (1, 'alpha', 'A'), (2, 'beta', 'B'), (3, 'gamma', 'C')",
        "INSERT INTO commits VALUES (10, 1, 'a1'), (11, 1, 'a2'), (12, 3, 'c1'), (13, 2, 'b1')",
    )
    target = make_db(target_name)
    # the target is live: it has its own rows and its own IDs already
    copy_ok(job_for(source, target), limit=0)
    target.sql(
        *(f"INSERT INTO repositories (id, slug, name) VALUES ({i}, 'other{i}', 'x')" for i in range(1, 101))
    )
    target.sql("UPDATE repositories SET slug = 'gamma' WHERE id = 50")
    if target_name == "postgresql":
        target.sql("SELECT setval(pg_get_serial_sequence('repositories', 'id'), 100)")
    job_file = tmp_path / "job.yaml"
    schema = f", schema: {target.schema}" if target.schema else ""
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}'{schema}}}\n"
        "tables:\n"
        "  - {name: repositories, remap_ids: true, natural_key: [slug]}\n"
        "  - {name: commits, remap_ids: true, natural_key: [hash, repository_id]}\n"
    )
    id_map = tmp_path / "ids.json"
    result = copy_ok(build(config_file=str(job_file)), export_id_map=str(id_map))
    written = {t.table: (t.rows_written, t.skipped) for t in result.tables}
    assert written == {"repositories": (2, 1), "commits": (4, 0)}

    mapping = json.loads(id_map.read_text())
    repos = mapping["repositories"]
    assert repos["3"] == 50
    assert {repos["1"], repos["2"]} == {101, 102}
    rows = target.query(
        "SELECT c.hash, r.slug FROM commits c JOIN repositories r ON r.id = c.repository_id ORDER BY c.hash"
    )
    assert [tuple(r) for r in rows] == [("a1", "alpha"), ("a2", "alpha"), ("b1", "beta"), ("c1", "gamma")]
    assert set(mapping["commits"]) == {"10", "11", "12", "13"}

    again = copy_ok(build(config_file=str(job_file)))
    assert {t.table: (t.rows_written, t.skipped) for t in again.tables} == {
        "repositories": (0, 3),
        "commits": (0, 4),
    }
    assert target.query("SELECT COUNT(*) FROM commits")[0][0] == 4
    # a natural key naming no column matched no row, every row written again (audit): now an error
    job_file.write_text(job_file.read_text().replace("natural_key: [slug]", "natural_key: [slugg]"))
    with pytest.raises(ParityError, match=r"slugg.*did you mean 'slug'"):
        copy_closed(build(config_file=str(job_file)))
    assert target.query("SELECT COUNT(*) FROM repositories")[0][0] == 102


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql", "sqlite"])
def test_rows_of_natural_keys_the_target_lacks_are_written_together_not_looked_for_one_by_one(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """The target asked for each row's natural key before it wrote the row: 50,000 rows took 17-21 s
    into PostgreSQL and MariaDB. A batch none of whose keys the target holds (a query per several
    hundred keys says) is written as one, as rows without natural keys are; and a batch holding some
    too (its query gives their rows: those are mapped, the others written as one)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL UNIQUE, label TEXT)")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tags VALUES (:i, :s, :l)"),
            [{"i": i, "s": f"tag-{i}", "l": f"label {i}"} for i in range(1, 2001)],
        )
    copy_ok(job_for(source, target), limit=0)
    target.sql("INSERT INTO tags (id, slug, label) VALUES (1, 'live', 'x'), (2, 'tag-1500', 'held')")
    if target_name == "postgresql":
        target.sql("SELECT setval(pg_get_serial_sequence('tags', 'id'), 100)")
    options = {"natural_key": ["slug"], "remap_ids": True}
    lookups: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        url, target_url = conn.engine.url, target.engine.url
        target_side = (url.get_backend_name(), url.database) == (
            target_url.get_backend_name(),
            target_url.database,
        )
        if target_side and statement.lstrip().upper().startswith("SELECT") and "tags.slug" in statement:
            lookups.append(statement)  # (the target's lookups: not the source's reads and checks)

    job = job_for(source, target, table_options=options)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = copy_closed(job, batch_size=500)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert result.tables[0].status == "ok", result.tables[0].error
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (1999, 1)
    # a query a batch, which gives each held key's row too (MariaDB, SQLite: the keys in a temporary
    # table); and where the key does not compare exactly (SQLite cannot tell), a check after each write
    assert len(lookups) == (8 if target_name == "sqlite" else 4), lookups
    rows = target.query("SELECT m.old_id, t.slug, t.label FROM _parity_id_map m JOIN tags t"
                        " ON t.id = CAST(m.new_id AS INTEGER) WHERE m.table_name = 'tags'")  # fmt: skip
    assert len(rows) == 2000
    assert all(slug == f"tag-{old}" for old, slug, _ in rows)
    assert {label for old, _, label in rows if old == "1500"} == {"held"}
    again = copy_ok(job_for(source, target, table_options=options), batch_size=500)
    assert (again.tables[0].rows_written, again.tables[0].skipped) == (0, 2000)
    assert target.query("SELECT COUNT(*) FROM tags")[0][0] == 2001


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_a_merge_by_natural_key_matches_a_batchs_rows_together(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Merge by a natural key: a batch's keys are looked for in one query, the rows of keys the target
    holds update them (which keep their own IDs), the others are inserted together. A key two target
    rows hold is rejected; a row without a key is inserted. Row by row, each row took a query to look
    for its key and one or two to write it (50,000 rows into PostgreSQL: 34 s)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(10), name TEXT)")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO items VALUES (:i, :c, :n)"),
            [{"i": i, "c": f"c{i}" if i <= 300 else None, "n": f"new {i}"} for i in range(1, 302)],
        )
    target.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(10), name TEXT)",
        "CREATE INDEX items_code ON items (code)",  # (not unique: c7 is two rows)
        "INSERT INTO items VALUES (1000, 'c5', 'old five'), (1001, 'c7', 'old seven'), (1002, 'c7', 'twin')",
    )
    looked_alone: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        alone = "LIMIT" in statement and re.search(r"WHERE (\w+\.)?items\.code = ", statement)  # (_matches)
        if conn.engine.url.get_backend_name() == target_name and alone:
            looked_alone.append(statement)

    rejects = tmp_path / "rejects.jsonl"
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        job = job_for(source, target, table_options={"natural_key": ["code"]})
        result = copy_ok(job, mode="merge", batch_size=1000, rejects_file=str(rejects))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert looked_alone == []
    assert [(t.rows_written, t.rejected, t.skipped) for t in result.tables] == [(300, 1, 0)]
    assert list(reasons_by_id(rejects).items()) == [
        (7, "natural key code=c7 matches 2 rows in the target: which to update?")
    ]
    rows = target.query("SELECT id, code, name FROM items WHERE id >= 1000 OR id IN (1, 6, 301) ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, "c1", "new 1"),
        (6, "c6", "new 6"),
        (301, None, "new 301"),
        (1000, "c5", "new 5"),  # (updated: its own ID kept)
        (1001, "c7", "old seven"),
        (1002, "c7", "twin"),
    ]
    assert target.query("SELECT COUNT(*) FROM items") == [(302,)]
    source.sql("DELETE FROM items WHERE id = 301")  # (inserted again, its ID would send the batch row by row)
    updates: list[str] = []

    def updating(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        mine = statement.lstrip().startswith("UPDATE") and "_parity_state" not in statement
        if conn.engine.url.get_backend_name() == target_name and mine:
            updates.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", updating)
    try:
        again = copy_ok(job_for(source, target, table_options={"natural_key": ["code"]}), mode="merge")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", updating)
    # (299 rows updated by one statement: MariaDB's joined to a table of them, PostgreSQL's to arrays of
    # them, SQLite's run for each by the driver)
    shape = {"mariadb": " JOIN ", "postgresql": "unnest(", "sqlite": "= ?"}[target_name]
    assert len(updates) == 1 and shape in updates[0]
    assert [(t.rows_written, t.rejected) for t in again.tables] == [(299, 1)]
    assert target.query("SELECT COUNT(*) FROM items") == [(302,)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            "(1, 'Zz', 'first'), (2, 'zz', 'second'), (3, 'q', 'x')",
            [(1, "Zz", "second"), (3, "q", "x"), (1000, "ab", "old")],
        ),
        (
            "(1, 'AB', 'first'), (2, 'aB', 'second'), (3, 'q', 'x')",
            [(3, "q", "x"), (1000, "ab", "second")],
        ),
    ],
    ids=["two-new", "two-held"],
)
def test_a_merge_by_natural_key_writes_keys_mariadb_takes_as_one_in_order(
    make_db: Callable[[str], Database], rows: str, expected: list[tuple[Any, ...]]
) -> None:
    """Two rows of a batch whose keys MariaDB's collation takes as one: both new ('Zz', 'zz'), found
    one after their write (its GROUP BY); or both the key of one row it holds ('AB', 'aB' of 'ab'),
    which their update together (in no order) counts as one row matched for two. Either way the batch
    goes again a row at a time, the later row's values last, as a merge in order writes them."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(10), name TEXT)",
        f"INSERT INTO items VALUES {rows}",
    )
    target.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(10), name TEXT)",
        "CREATE INDEX items_code ON items (code)",
        "INSERT INTO items VALUES (1000, 'ab', 'old')",
    )
    result = copy_ok(job_for(source, target, table_options={"natural_key": ["code"]}), mode="merge")
    assert [(t.rows_written, t.rejected) for t in result.tables] == [(3, 0)]
    assert [tuple(r) for r in target.query("SELECT id, code, name FROM items ORDER BY id")] == expected


@pytest.mark.parametrize("natural_key", [["sha"], ["sha", "repo"]], ids=["one-column", "two-columns"])
def test_postgresql_looks_for_a_batchs_natural_keys_in_one_query(
    make_db: Callable[[str], Database], natural_key: list[str]
) -> None:
    """PostgreSQL takes a batch's keys as one array a column (``= ANY``; ``unnest`` for several
    columns): a query to look for 2,000 keys, where 180 keys a query took 12 (4 ms a query). A key
    the target holds is still found."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE commits (id INTEGER PRIMARY KEY, sha VARCHAR(40) NOT NULL, repo INTEGER NOT NULL,"
               " UNIQUE (sha, repo))")  # fmt: skip
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO commits VALUES (:i, :s, :r)"),
            [{"i": i, "s": f"{i:040x}", "r": i % 7} for i in range(1, 4001)],
        )
    copy_ok(job_for(source, target), limit=0)
    target.sql(f"INSERT INTO commits (id, sha, repo) VALUES (9000, '{3000:040x}', {3000 % 7})")
    target.sql("SELECT setval(pg_get_serial_sequence('commits', 'id'), 10000)")
    queries: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        arrays = "unnest(" in statement and re.search(r"\bcommits\b", statement)
        postgresql = conn.engine.url.get_backend_name() == "postgresql"
        if postgresql and arrays:
            queries.append(statement)
        elif postgresql and "LIMIT" in statement and "_parity_id_map" not in statement:
            singles.append(statement)  # (not the ID map's one look for the table's pairs)

    singles: list[str] = []
    options = {"natural_key": natural_key, "remap_ids": True}
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = copy_closed(job_for(source, target, table_options=options), batch_size=2000)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert result.tables[0].status == "ok", result.tables[0].error
    # each batch looked for in one query, which gives the second the row of the key the target holds;
    # no row looked for alone, no check after a write: a varchar compares exactly
    assert len(queries) == 2 and not any("HAVING" in q for q in queries) and singles == []
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (3999, 1)
    assert target.query("SELECT COUNT(*), COUNT(DISTINCT sha) FROM commits") == [(4000, 4000)]
    rows = target.query("SELECT m.old_id, t.id FROM _parity_id_map m JOIN commits t ON t.id = CAST(m.new_id AS INTEGER)"
                        " WHERE m.table_name = 'commits' AND m.old_id = '3000'")  # fmt: skip
    assert rows == [("3000", 9000)]


def test_postgresql_looks_for_natural_keys_as_their_column_compares_them(
    make_db: Callable[[str], Database],
) -> None:
    """A citext key compares without case: its keys are looked for as citext ('ab' is the target's
    'AB'), and 'Gh', 'gH', both new and written together, are found to be one key after the write
    (citext does not compare exactly: the GROUP BY check runs) and become one row."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE codes (id INTEGER PRIMARY KEY, code VARCHAR(5) NOT NULL, name TEXT)",
        "INSERT INTO codes VALUES (1, 'ab', 'one'), (2, 'cd', 'two'), (3, 'Gh', 'four'), (4, 'gH', 'five'),"
        " (5, 'ef', 'three')",
    )
    # (no unique index: the target's refusal would tell 'Gh' and 'gH' apart, not parity)
    target.sql("CREATE EXTENSION IF NOT EXISTS citext SCHEMA public",
               "CREATE TABLE codes (id SERIAL PRIMARY KEY, code public.citext NOT NULL, name TEXT)",
               "CREATE INDEX codes_code ON codes (code)",
               "INSERT INTO codes (code, name) VALUES ('AB', 'live')")  # fmt: skip
    options = {"natural_key": ["code"], "remap_ids": True}
    # batches of two: 'ab' and 'cd' (one held: row by row), 'Gh' and 'gH' (written together, then
    # found to be one key and written again row by row), 'ef'
    result = copy_ok(job_for(source, target, table_options=options), schema=False, batch_size=2)
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (3, 2)
    assert target.query("SELECT code, name FROM codes ORDER BY id") == [
        ("AB", "live"),
        ("cd", "two"),
        ("Gh", "four"),
        ("ef", "three"),
    ]


def test_a_mariadb_login_without_temporary_tables_looks_for_natural_keys_in_lists(
    make_db: Callable[[str], Database],
) -> None:
    """MariaDB's key rows are a temporary table: a login that may not make one (no CREATE TEMPORARY
    TABLES) looks for a batch's keys in lists of equalities instead, with the same result."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL UNIQUE, label TEXT)")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tags VALUES (:i, :s, 'l')"),
            [{"i": i, "s": f"tag-{i}"} for i in range(1, 301)],
        )
    copy_ok(job_for(source, target), limit=0)
    target.sql("INSERT INTO tags (id, slug, label) VALUES (1000, 'tag-150', 'held')")
    url = sa_url(target.url)
    user, password = fresh_name(), uuid.uuid4().hex
    target.sql(
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
        f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON `{url.database}`.* TO '{user}'@'127.0.0.1'",
    )
    joined: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "STRAIGHT_JOIN" in statement or "TEMPORARY" in statement:
            joined.append(statement)

    login = url.set(username=user, password=password).render_as_string(hide_password=False)
    options = {"natural_key": ["slug"], "remap_ids": True}
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = copy_closed(build(source.url, login, table_options=options), batch_size=100)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        target.sql(f"DROP USER '{user}'@'127.0.0.1'")
    assert result.tables[0].status == "ok", result.tables[0].error
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (299, 1)
    assert [s for s in joined if "STRAIGHT_JOIN" in s] == []  # (the key rows' one try each, refused:)
    made = [s for s in joined if s.startswith("CREATE TEMPORARY TABLE _parity_keys_") and "FROM tags" in s]
    assert len(made) == 1  # (the natural keys' rows: the ID map's are not made, no IDs looked up)
    rows = target.query("SELECT m.old_id, t.label FROM _parity_id_map m JOIN tags t ON t.id = CAST(m.new_id AS INTEGER)"
                        " WHERE m.table_name = 'tags' AND m.old_id = '150'")  # fmt: skip
    assert rows == [("150", "held")]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
@pytest.mark.parametrize("code", ["INTEGER", "VARCHAR(20)"])
def test_rows_of_new_natural_keys_compared_exactly_need_no_check_after_their_write(
    make_db: Callable[[str], Database], code: str, target_name: str
) -> None:
    """Numbers are equal in the target as in Python, and so is PostgreSQL's varchar or text under a
    deterministic collation (its bytes), and MariaDB's under a binary collation that does not pad (the
    one parity gives the keys of a source that compares exactly): no GROUP BY after a batch of such
    keys."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(f"CREATE TABLE parts (id INTEGER PRIMARY KEY, code {code} NOT NULL UNIQUE, name TEXT)")
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO parts VALUES (:i, :c, 'p')"), [{"i": i, "c": i * 7} for i in range(1, 301)]
        )
    grouped: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "parts.code \nHAVING count(*)" in statement and conn.engine.url.get_backend_name() == target_name:
            grouped.append(statement)  # (the target's, not the source's check of shared keys)

    job = job_for(source, target, table_options={"natural_key": ["code"]})
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = copy_closed(job, batch_size=100)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert (result.tables[0].status, result.tables[0].rows_written) == ("ok", 300)
    assert grouped == []
    assert target.query("SELECT COUNT(DISTINCT code) FROM parts")[0][0] == 300


@pytest.mark.parametrize("remap", [True, False], ids=["remap-ids", "own-ids"])
def test_rows_written_together_whose_keys_the_target_collates_as_one_are_one_row(
    make_db: Callable[[str], Database], remap: bool
) -> None:
    """Rows whose natural keys differ in Python but not in MariaDB's collation (case, trailing
    spaces), written together as the target held neither: the second is the first's row, as it is
    where each row is looked for before it is written."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL, label TEXT)",
        "INSERT INTO tags VALUES (1, 'Foo', 'a'), (2, 'foo', 'b'), (3, 'bar ', 'c'), (4, 'bar', 'd'),"
        " (5, 'baz', 'e')",
    )
    target.sql(
        "CREATE TABLE tags (id INTEGER AUTO_INCREMENT PRIMARY KEY, slug VARCHAR(20) NOT NULL, label TEXT,"
        " KEY (slug)) COLLATE utf8mb4_general_ci"
    )
    options = {"natural_key": ["slug"], "remap_ids": remap}
    result = copy_ok(job_for(source, target, table_options=options), mode="append")
    assert (result.tables[0].rows_written, result.tables[0].skipped) == (3, 2)
    rows = target.query("SELECT slug, label FROM tags ORDER BY label")
    assert [tuple(r) for r in rows] == [("Foo", "a"), ("bar ", "c"), ("baz", "e")]
    if remap:
        mapped = target.query(
            "SELECT m.old_id, t.label FROM _parity_id_map m JOIN tags t ON t.id = m.new_id ORDER BY m.old_id"
        )
        assert [tuple(r) for r in mapped] == [("1", "a"), ("2", "a"), ("3", "c"), ("4", "c"), ("5", "e")]


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_a_child_copied_alone_is_rewritten_through_the_map_an_earlier_run_made(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Parents remapped by one run, their children copied by a later one with --remap-ids: the
    references were written as the source had them, pointing at the live target's other rows. The
    later run's --export-id-map held the children's map alone; it holds the parents' too (as
    sqlite-to-mariadb-migration.md's id_mappings.json holds every mapping)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(40) NOT NULL)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " customer_id INTEGER NOT NULL REFERENCES customers (id), total INTEGER)",
        "INSERT INTO customers VALUES (1, 'a@x'), (2, 'b@x')",
        "INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 2, 30)",
    )
    copy_ok(job_for(source, target, tables=["customers"]))  # (the live target holds these two ...)
    target.sql("UPDATE customers SET email = concat('live-', email)")
    copy_ok(job_for(source, target, tables=["customers"]), remap_ids=True)  # (... and gets 3 and 4)
    new = dict(target.query("SELECT email, id FROM customers WHERE email NOT LIKE 'live-%'"))
    assert sorted(new.values()) == [3, 4]
    id_map = tmp_path / "ids.json"
    result = copy_ok(job_for(source, target, tables=["orders"]), remap_ids=True, export_id_map=str(id_map))
    assert result.tables[0].rows_written == 3
    rows = target.query("SELECT c.email, o.total FROM orders o JOIN customers c ON c.id = o.customer_id")
    assert sorted(rows) == [("a@x", 10), ("b@x", 20), ("b@x", 30)]
    exported = json.loads(id_map.read_text())
    assert list(exported) == ["orders", "customers"]
    assert exported["customers"] == {"1": new["a@x"], "2": new["b@x"]}


def test_a_child_copied_alone_finds_its_parents_map_under_the_name_the_job_gives_them(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """The parents copied into a table of another name (the job file's target:), then the child
    alone (-t): the map was looked for under the parents' source name, and the references were
    written as they were."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE products (id INTEGER PRIMARY KEY AUTOINCREMENT, sku VARCHAR(10) NOT NULL)",
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " product_id INTEGER NOT NULL REFERENCES products (id))",
        "INSERT INTO products VALUES (1, 'p1'), (2, 'p2')",
        "INSERT INTO items VALUES (1, 2), (2, 1)",
    )
    target.sql(
        "CREATE TABLE catalog (id INTEGER PRIMARY KEY AUTO_INCREMENT, sku VARCHAR(10) NOT NULL)",
        "INSERT INTO catalog VALUES (1, 'live1'), (2, 'live2')",
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}'}}\n"
        "tables:\n  - {name: products, target: catalog, remap_ids: true}\n  - {name: items, remap_ids: true}\n"
    )
    copy_ok(build(config_file=str(job_file), tables=["products"]))
    copy_ok(build(config_file=str(job_file), tables=["items"]))
    rows = target.query("SELECT i.id, c.sku FROM items i JOIN catalog c ON c.id = i.product_id")
    assert sorted(sku for _, sku in rows) == ["p1", "p2"]


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_foreign_keys_only_the_target_declares_order_the_load_and_are_rewritten(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """A SQLite source declaring no FKs, into a live target that does: the children ('commits' sorts
    first) were loaded before their parents and all refused as orphans, and with --remap-ids they
    kept their parents' old IDs, which named the live target's other rows (the audit's repro)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repo INTEGER, hash TEXT)",
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug TEXT)",
        "INSERT INTO repositories VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO commits VALUES (1, 1, 'h1'), (2, 2, 'h2'), (3, 2, 'h3')",
    )
    identity = "AUTO_INCREMENT" if target_name == "mariadb" else "GENERATED BY DEFAULT AS IDENTITY"
    target.sql(
        f"CREATE TABLE repositories (id INTEGER {identity} PRIMARY KEY, slug VARCHAR(20) UNIQUE)",
        f"CREATE TABLE commits (id INTEGER {identity} PRIMARY KEY,"
        " repository_id INTEGER REFERENCES repositories (id), hash VARCHAR(20))",
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}', schema: {target.schema or '~'}}}\n"
        "tables:\n  - {name: commits, map: {repo: repository_id}}\n  - {name: repositories}\n"
    )
    plain = copy_ok(build(config_file=str(job_file)), mode="append")
    assert [(t.table, t.rows_written, t.rejected) for t in plain.tables] == [
        ("repositories", 2, 0),
        ("commits", 3, 0),
    ]
    target.sql("DELETE FROM commits", "DELETE FROM repositories")
    restart = "AUTO_INCREMENT = 1" if target_name == "mariadb" else "ALTER COLUMN id RESTART WITH 1"
    target.sql(f"ALTER TABLE repositories {restart}", "INSERT INTO repositories (slug) VALUES ('x'), ('y')")
    assert sorted(target.query("SELECT id FROM repositories")) == [(1,), (2,)]  # (the old IDs: live rows)
    copy_ok(build(config_file=str(job_file)), mode="append", remap_ids=True)
    rows = target.query("SELECT c.hash, r.slug FROM commits c JOIN repositories r ON r.id = c.repository_id")
    assert sorted(rows) == [("h1", "a"), ("h2", "b"), ("h3", "b")]


def test_remap_ids_into_a_duckdb_table_referencing_itself_writes_parents_first(
    make_db: Callable[[str], Database], parent_maps: str
) -> None:
    """A manager with a higher ID than their staff was written NULL, to be set at the end, which
    DuckDB refused (it updates a referenced row as a delete and an insert): the table failed, every
    run. The rows now come parents first, so each reference is written with its new ID at once."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql(
        "CREATE TABLE staff (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT,"
        " manager_id INTEGER REFERENCES staff (id))",
        "INSERT INTO staff VALUES "
        + ", ".join(f"({i}, 'n{i}', {'NULL' if i == 40 else i + 1})" for i in range(1, 41)),
    )
    target.sql(
        "CREATE SEQUENCE staff_ids START 300",
        "CREATE TABLE staff (id BIGINT PRIMARY KEY DEFAULT nextval('staff_ids'), name VARCHAR,"
        " manager_id BIGINT REFERENCES staff (id))",
    )
    result = copy_ok(job_for(source, target), remap_ids=True, batch_size=7)
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (40, 0)
    pairs = target.query("SELECT s.name, m.name FROM staff s LEFT JOIN staff m ON m.id = s.manager_id")
    assert sorted(pairs) == sorted((f"n{i}", None if i == 40 else f"n{i + 1}") for i in range(1, 41))
    again = copy_ok(job_for(source, target), remap_ids=True, batch_size=7)
    assert (again.tables[0].rows_written, again.tables[0].skipped) == (0, 40)


def test_a_duckdb_table_referencing_itself_rejects_rows_alone(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """Review findings on tables DuckDB checks an FK to itself in (written in generations): a value
    refused in Python (a date that is none) failed the table, not its row; an FK clause spelled in
    capitals was not recognised; with remapped IDs, a row referencing itself was written NULL, to be
    set at the end, which DuckDB refused every run; and a natural key's rows came children first."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY AUTOINCREMENT, boss INTEGER REFERENCES emp (id), hired DATE,"
        " code TEXT)",
        "INSERT INTO emp VALUES (1, 3, '2020-01-01', 'a'), (2, 2, '2020-01-01', 'b'),"
        " (3, NULL, '2020-01-01', 'c'), (4, 3, '2020-02-30', 'd'), (5, 2, '2020-01-01', 'e')",
    )
    target.sql(
        "CREATE TABLE emp (id BIGINT PRIMARY KEY, boss BIGINT REFERENCES EMP (ID), hired DATE, code VARCHAR)"
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_ok(job_for(source, target), schema=False, rejects_file=str(rejects)).tables
    assert (table.rows_written, table.rejected) == (2, 3)  # (2 references itself, 5 references 2)
    assert target.query("SELECT id FROM emp ORDER BY id") == [(1,), (3,)]
    reasons = reasons_by_id(rejects)
    assert reasons[4].startswith("hired: '2020-02-30' is no date") and "the row itself" in reasons[2]

    # a natural key (no new IDs): the rows still come parents first
    target.sql("DELETE FROM emp WHERE id = 1", "DELETE FROM emp")
    natural = copy_ok(job_for(source, target, table_options={"natural_key": ["code"]}), schema=False).tables[
        0
    ]
    assert natural.rows_written == 2 and target.query("SELECT id FROM emp ORDER BY id") == [(1,), (3,)]

    # new IDs: the row referencing itself is rejected, not written to be set later, and a rerun is ok
    remapped = make_db("duckdb")
    remapped.sql(
        "CREATE SEQUENCE ids START 100",
        "CREATE TABLE emp (id BIGINT PRIMARY KEY DEFAULT nextval('ids'), boss BIGINT REFERENCES emp (id),"
        " hired DATE, code VARCHAR)",
    )
    for _ in range(2):
        (table,) = copy_ok(job_for(source, remapped), schema=False, remap_ids=True).tables
    assert (table.rows_written, table.skipped, table.rejected) == (0, 2, 3)
    bosses = dict(remapped.query("SELECT e.code, b.code FROM emp e LEFT JOIN emp b ON b.id = e.boss"))
    assert bosses == {"a": "c", "c": None}  # (e references b, which references itself: both rejected)


def test_a_natural_key_no_index_serves_is_warned_of(make_db: Callable[[str], Database]) -> None:
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(10))", "INSERT INTO t VALUES (1, 'a')")
    target.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(10))")
    options = {"natural_key": ["code"]}
    result = copy_ok(job_for(source, target, table_options=options), schema=False)
    assert any("no index of the target begins with its natural key (code)" in w for w in result.warnings)
    target.sql("CREATE INDEX t_code ON t (code)")
    result = copy_ok(job_for(source, target, table_options=options), schema=False)
    assert not any("natural key" in w for w in result.warnings) and result.tables[0].skipped == 1


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_merge_updates_rows_of_tables_whose_references_or_natural_keys_are_remapped(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Merge was ignored on the path that rewrites references and matches natural keys: a rerun
    rejected every row of a table referencing a remapped one as a duplicate key (examples/job.yaml's
    orders), and skipped a row matched by its natural key, its change lost."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE)",
        "CREATE TABLE products (id INTEGER PRIMARY KEY, sku VARCHAR(10) NOT NULL UNIQUE, title VARCHAR(20))",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),"
        " status VARCHAR(10))",
        "INSERT INTO customers VALUES (1, 'a@x'), (2, 'b@x')",
        "INSERT INTO products VALUES (1, 'p1', 'one'), (2, 'p2', 'two')",
        "INSERT INTO orders VALUES (1, 1, 'new'), (2, 2, 'new')",
    )
    job_file = tmp_path / "job.yaml"
    schema = f", schema: {target.schema}" if target.schema else ""
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}'{schema}}}\n"
        "tables:\n"
        "  - {name: customers, remap_ids: true, natural_key: [email]}\n"
        "  - {name: products, natural_key: [sku], mode: merge}\n"
        "  - {name: orders, mode: merge}\n"
    )
    copy_ok(build(config_file=str(job_file)))
    target.sql("UPDATE products SET id = id + 100")  # (a live target: its own IDs for the same SKUs)
    source.sql(
        "UPDATE orders SET status = 'sent' WHERE id = 1",
        "UPDATE products SET title = 'uno' WHERE id = 1",
        "INSERT INTO orders VALUES (3, 2, 'new')",
        "INSERT INTO products VALUES (3, 'p3', 'three')",
    )
    again = copy_ok(build(config_file=str(job_file)))
    counts = {t.table: (t.rows_written, t.skipped, t.rejected) for t in again.tables}
    assert counts == {"customers": (0, 2, 0), "products": (3, 0, 0), "orders": (3, 0, 0)}
    assert target.query("SELECT id, status FROM orders ORDER BY id") == [(1, "sent"), (2, "new"), (3, "new")]
    assert target.query("SELECT id, sku, title FROM products ORDER BY sku") == [
        (101, "p1", "uno"),
        (102, "p2", "two"),
        (3, "p3", "three"),
    ]
    customers = dict(target.query("SELECT email, id FROM customers"))
    assert target.query("SELECT customer_id FROM orders WHERE id = 3") == [(customers["b@x"],)]


@pytest.mark.parametrize("target_name", list(FK_CHECKS_ON))
def test_fk_checks_are_back_on_after_a_self_referencing_table(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A self-referencing table loads with FK checks off; the pooled connection it loaded on has them
    on again (PostgreSQL's switch back was rolled back with the pool's reset: the next tables on that
    connection loaded orphans)."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, manager_id INTEGER REFERENCES emp (id))",
        "INSERT INTO emp VALUES (1, NULL), (2, 1)",
    )
    job = job_for(source, target)
    try:
        result = copy(job, workers=1, mode="merge")  # (merge: keys first, so the rows load with checks off)
        assert result.tables[0].rows_written == 2
        assert fk_checks_on(job.target)
    finally:
        job.close()


@pytest.mark.parametrize("target_name", ["mariadb", "sqlite", "postgresql"])
def test_merge_of_several_tables(make_db: Callable[[str], Database], target_name: str) -> None:
    """Each table merges through a staging table of its own (the second met the first's columns)."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE t1 (id INTEGER PRIMARY KEY, a VARCHAR(5))",
        "CREATE TABLE t2 (id INTEGER PRIMARY KEY, b INTEGER, c VARCHAR(5))",
        "INSERT INTO t1 VALUES (1, 'x')",
        "INSERT INTO t2 VALUES (1, 2, 'y')",
    )
    for _ in range(2):  # (the second run merges into what the first created)
        result = copy_ok(job_for(source, target), mode="merge")
        assert [t.rows_written for t in result.tables] == [1, 1]
    assert target.query("SELECT b, c FROM t2") == [(2, "y")]


def test_a_name_with_a_percent_sign_is_created_as_written(make_db: Callable[[str], Database]) -> None:
    """DDL runs with no parameters: a '%' is not doubled as SQLAlchemy doubles it for ``%s`` drivers."""
    from parity.schema.apply import schema_apply

    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        'CREATE TABLE w (id INTEGER PRIMARY KEY, "%(s)s" TEXT)', 'CREATE INDEX "idx %s" ON w ("%(s)s")'
    )
    job = job_for(source, target)
    try:
        schema_apply(job)
    finally:
        job.close()
    names = target.query(  # (in its schema: another test's or user's 'w' may be in another)
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'w' AND table_schema = :s",
        s=target.schema or "public",
    )
    assert sorted(n for (n,) in names) == ["%(s)s", "id"]


@pytest.mark.parametrize("target_name", ["sqlite", "duckdb"])
def test_integers_of_a_decimal_column_arrive_exactly(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A BIGINT UNSIGNED (a decimal(20,0) to parity) comes from MariaDB as ints: exact, not through a
    float (the JSON column sends the rows as values, not as the server's text)."""
    source, target = make_db("mariadb"), make_db(target_name)
    source.sql(
        "CREATE TABLE u (id INTEGER PRIMARY KEY, ub BIGINT UNSIGNED, j JSON)",
        "INSERT INTO u VALUES (1, 18446744073709551615, '{}'), (2, 9007199254740993, NULL)",
    )
    copy_ok(job_for(source, target))
    rows = dict(target.query("SELECT id, ub FROM u"))
    assert {k: Decimal(str(v)) for k, v in rows.items()} == {1: 18446744073709551615, 2: 9007199254740993}


@pytest.mark.parametrize("target_name", ["sqlite", "postgresql"])
def test_keys_at_the_ends_of_bigint_and_a_value_that_is_no_number(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """The last chunk is open-ended (a bound past BIGINT's largest key overflowed), and text in a
    NUMERIC column rejects its row alone (it failed the table), naming the value."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE a_big (id BIGINT PRIMARY KEY, v INTEGER)",
        "INSERT INTO a_big VALUES (-9223372036854775808, 1), (1, 2), (9223372036854775807, 3)",
        "CREATE TABLE b_bad (id INTEGER PRIMARY KEY, amount NUMERIC(10,2))",
        "INSERT INTO b_bad VALUES (1, 12.5), (2, 'n/a')",
        "CREATE TABLE c_good (id INTEGER PRIMARY KEY)",
        "INSERT INTO c_good VALUES (1)",
    )
    job = job_for(source, target)
    try:
        result = {t.table: t for t in copy(job, batch_size=1).tables}  # (chunks of 10 rows at most)
    finally:
        job.close()
    assert (result["a_big"].status, result["a_big"].rows_written) == ("ok", 3)
    assert (result["c_good"].status, result["c_good"].rows_written) == ("ok", 1)
    assert (result["b_bad"].status, result["b_bad"].rows_written, result["b_bad"].rejected) == ("ok", 1, 1)
    assert sorted(v for (v,) in target.query("SELECT v FROM a_big")) == [1, 2, 3]


def test_digits_past_the_target_scale_are_refused_not_rounded(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """MariaDB rounds them with a note: LOAD DATA's batch fails on it, and the rows the INSERTs that
    isolate the refused rows would store rounded are refused too."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql("CREATE TABLE dec (id INTEGER PRIMARY KEY, d NUMERIC)")
    source.sql(
        "INSERT INTO dec VALUES (1, 123456789012345678901234567890.123456789012345), (2, -1e-20), (3, 1.5)"
    )
    result = copy_closed(job_for(source, target), rejects_file=str(tmp_path / "rejects.jsonl")).tables[0]
    assert (result.rows_written, result.rejected) == (1, 2)
    assert [Decimal(v) for (v,) in target.query("SELECT d FROM `dec`")] == [Decimal("1.5")]


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb", "mariadb"])
def test_decimals_past_the_scale_a_target_keeps_are_rejected_not_rounded(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite keeps 9.999 in a DECIMAL(5,2); PostgreSQL and DuckDB rounded it to 10.00 without a word
    (MariaDB warns, which already refused it). Now such a row is rejected, naming the column and the
    value, on the text path and on the values path (a BLOB column sends the table as values); an
    unbounded PostgreSQL numeric into DuckDB's DECIMAL(38,10) likewise."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE d (id INTEGER PRIMARY KEY, m DECIMAL(5,2), t DECIMAL(6,3))",
        "INSERT INTO d VALUES (1, 9.999, 1.5), (2, 1.25, 2.0001), (3, '3.14159', 1), (4, 2.5, 2.0), (5, NULL, 0.125)",
        "CREATE TABLE v (id INTEGER PRIMARY KEY, m DECIMAL(5,2), b BLOB)",
        "INSERT INTO v VALUES (1, 9.999, x'00'), (2, 1.25, x'01')",
    )
    rejects = tmp_path / "rejects.jsonl"
    job = job_for(source, target)
    try:
        tables = {t.table: t for t in copy(job, rejects_file=str(rejects)).tables}
    finally:
        job.close()
    assert (tables["d"].rows_written, tables["d"].rejected) == (2, 3)
    assert (tables["v"].rows_written, tables["v"].rejected) == (1, 1)
    assert target.query("SELECT id, m, t FROM d ORDER BY id") == [
        (4, Decimal("2.50"), Decimal("2.000")),
        (5, None, Decimal("0.125")),
    ]
    reasons = {
        (r["table"], int(r["row"]["id"])): r["reason"]
        for r in map(json.loads, rejects.read_text().splitlines())
    }
    assert set(reasons) == {("d", 1), ("d", 2), ("d", 3), ("v", 1)}
    if target_name != "mariadb":  # (MariaDB's own warning names it)
        assert reasons[("d", 2)] == "t: 2.0001 has more decimals than the target keeps (3)"
        assert reasons[("v", 1)] == "m: 9.999 has more decimals than the target keeps (2)"
    if target_name == "postgresql":  # (rows remapped go one by one, and are checked so too)
        fresh = make_db("postgresql")
        (remapped,) = copy_closed(
            job_for(source, fresh, tables=["d"]), remap_ids=True, rejects_file=str(rejects)
        ).tables
        assert (remapped.rows_written, remapped.rejected) == (2, 3)
        assert fresh.query("SELECT m, t FROM d ORDER BY t") == [
            (None, Decimal("0.125")),
            (Decimal("2.50"), Decimal("2.000")),
        ]
    if target_name == "duckdb":
        pg = make_db("postgresql")
        pg.sql("CREATE TABLE u (id INTEGER PRIMARY KEY, n NUMERIC)",
               "INSERT INTO u VALUES (1, 1.123456789012345678), (2, 1.5), (3, 12.0000000000000)")  # fmt: skip
        (table,) = copy_closed(job_for(pg, target), rejects_file=str(rejects)).tables
        assert (table.rows_written, table.rejected) == (2, 1)
        assert target.query("SELECT id FROM u ORDER BY id") == [(2,), (3,)]


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb", "mariadb"])
def test_a_source_value_its_kind_cannot_take_rejects_its_row_only(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite holds '2020-02-30' in a DATE column, 'abc' in a DECIMAL, 'maybe' in a BOOLEAN: one such value
    failed the whole table ("reading the source failed: day is out of range for month", naming no column
    or row). Now its row is rejected with the column and the value, and the other rows arrive (a chunk
    read as text is read again as values, where the rows are told apart)."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE b (id INTEGER PRIMARY KEY, d DATE, m DECIMAL(8,2), f BOOLEAN)",
        "INSERT INTO b VALUES (1, '2020-02-30', 1.5, 1), (2, '2021-01-01', 'abc', 0), (3, '2022-02-02', 2.5, 'maybe'),"
        " (4, '2023-03-03', 3.5, 1), (5, NULL, NULL, NULL)",
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(job_for(source, target), rejects_file=str(rejects)).tables
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 3)
    assert target.query("SELECT id, m FROM b ORDER BY id") == [(4, Decimal("3.50")), (5, None)]
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["row"]["id"]: r["reason"] for r in records} == {
        1: "d: '2020-02-30' is no date (day is out of range for month)",
        2: "m: 'abc' is no decimal ('abc' is not a number)",
        3: "f: 'maybe' is no boolean ('maybe' is not a number)",  # ('yes' is one: values.BOOLEAN_TEXT)
    }
    assert records[0]["row"]["d"] == "2020-02-30"  # (the value as the source holds it)


def test_a_target_keeping_fewer_digits_of_a_second_is_refused_before_any_row(
    make_db: Callable[[str], Database],
) -> None:
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP)",
        "INSERT INTO ev VALUES (1, '2000-01-01 00:00:00.123456')",
    )
    target.sql("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME)")
    with pytest.raises(DataError, match=r"ev\.at keeps 0 digits of a second in the target, the source 6"):
        copy(job_for(source, target))
    assert target.query("SELECT COUNT(*) FROM ev")[0][0] == 0
    target.sql("DROP TABLE ev", "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME(6))")
    copy_ok(job_for(source, target))
    assert target.query("SELECT at FROM ev")[0][0].microsecond == 123456


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_values_with_more_digits_of_a_second_than_the_target_keeps_are_rejected(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite's timestamps declare no digits of a second: into an existing column keeping none, MariaDB
    cut .987654 off and PostgreSQL rounded it to the next second, without a word. Such rows are now
    rejected, the others copied; a types: override of a PostgreSQL source's column (timestamp(0))
    is taken, its rows checked so too."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME)",
        "INSERT INTO ev VALUES (1, '2021-03-01 10:00:00.987654'), (2, '2021-03-01 10:00:00'),"
        " (3, '2021-03-01T10:00:05.000'), (4, NULL)",
    )
    kept = "DATETIME" if target_name == "mariadb" else "TIMESTAMP(0)"
    target.sql(f"CREATE TABLE ev (id INTEGER PRIMARY KEY, at {kept})")
    rejects = tmp_path / "rejects.jsonl"
    result = copy_ok(job_for(source, target), schema=False, rejects_file=str(rejects))
    assert any("ev.at keeps 0 digits of a second" in w for w in result.schema.warnings)
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (3, 1)
    assert [r[0] for r in target.query("SELECT id FROM ev ORDER BY id")] == [2, 3, 4]
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (
        record["reason"]
        == "at: 2021-03-01 10:00:00.987654 has more digits of a second than the target keeps (0)"
    )

    pg = make_db("postgresql")
    pg.sql(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP)",
        "INSERT INTO ev VALUES (1, '2021-01-01 10:00:00.5'), (2, '2021-01-01 10:00:00')",
    )
    target.sql("DELETE FROM ev")
    with pytest.raises(DataError, match=r"declare types: \{at: timestamp\(0\)\}"):
        copy_closed(job_for(pg, target), schema=False)
    overridden = build(
        pg.url, target.url, source_schema=pg.schema, target_schema=target.schema,
        table_options={"types": {"at": "timestamp(0)"}},
    )  # fmt: skip
    (table,) = copy_ok(overridden, schema=False, rejects_file=str(rejects)).tables
    assert (table.rows_written, table.rejected) == (1, 1)
    assert [r[0] for r in target.query("SELECT id FROM ev")] == [2]


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_rows_refused_on_the_text_path_are_recorded_with_their_numbers(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Rows that travel as text were recorded with their integers as strings ("id": "2")."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, n INTEGER, title TEXT)",
        "INSERT INTO p VALUES (2, -7, 'abcdef')",
    )
    target.sql("CREATE TABLE p (id BIGINT PRIMARY KEY, n BIGINT, title VARCHAR(3))")
    rejects = tmp_path / "rejects.jsonl"
    copy_ok(job_for(source, target), schema=False, rejects_file=str(rejects))
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert record["row"] == {"id": 2, "n": -7, "title": "abcdef"}


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql"])
def test_text_of_no_length_goes_into_an_existing_varchar_that_holds_it(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite's TEXT (and DuckDB's VARCHAR) has no length: a copy into an existing VARCHAR(255) was
    refused whole, though every value fit (sqlite-to-mariadb's users make the schema first). Now a
    warning, and the rows the column cannot hold are rejected; a UUID goes into a CHAR(36)."""
    source, target = make_db("duckdb"), make_db(target_name)
    source.sql(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, title VARCHAR, u UUID)",
        "INSERT INTO p VALUES (1, 'short', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),"
        f" (2, '{'x' * 300}', NULL)",
    )
    target.sql("CREATE TABLE p (id INTEGER PRIMARY KEY, title VARCHAR(255), u CHAR(36))")
    rejects = tmp_path / "rejects.jsonl"
    result = copy_ok(job_for(source, target), schema=False, rejects_file=str(rejects))
    assert any(
        "p.title is VARCHAR(255) in the target" in w and "rejected" in w for w in result.schema.warnings
    )
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (1, 1)
    assert target.query("SELECT id, title, u FROM p") == [
        (1, "short", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    ]


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [("postgresql", "postgresql"), ("postgresql", "mariadb"), ("postgresql", "sqlite"), ("mariadb", "postgresql"),
     ("duckdb", "postgresql"), ("postgresql", "duckdb")],
)  # fmt: skip
def test_json_arrives_as_its_text_null_and_long_numbers_included(
    make_db: Callable[[str], Database], source_name: str, target_name: str
) -> None:
    """JSON's null is not SQL's NULL, a number keeps all its digits, a JSON string stays a string."""
    from parity.diff import diff

    source, target = make_db(source_name), make_db(target_name)
    json_type = {"postgresql": "JSONB", "mariadb": "JSON", "duckdb": "JSON"}[source_name]
    source.sql(f"CREATE TABLE jn (id INTEGER PRIMARY KEY, j {json_type})")
    values = ["null", "123456789012345678901234567890.5", '"hello"', '"{}"', '{"a": [1, true, null]}']
    for i, v in enumerate(values):
        source.sql(f"INSERT INTO jn VALUES ({i}, '{v}')")
    source.sql(f"INSERT INTO jn VALUES ({len(values)}, NULL)")
    copy_ok(job_for(source, target))
    t = target.q("jn")
    cast = {"postgresql": "CAST(j AS TEXT)", "mariadb": "j", "sqlite": "j", "duckdb": "CAST(j AS VARCHAR)"}[
        target_name
    ]
    got = dict(target.query(f"SELECT id, {cast} FROM {t}"))
    assert got[len(values)] is None  # (SQL's NULL)
    parsed = {k: json.loads(v, parse_float=Decimal) for k, v in got.items() if k < len(values)}
    assert parsed == {
        0: None,
        1: Decimal("123456789012345678901234567890.5"),
        2: "hello",
        3: "{}",
        4: {"a": [1, True, None]},
    }
    assert diff(job_for(source, target)).identical
    target.sql(f"UPDATE {t} SET j = NULL WHERE id = 0")  # JSON null -> SQL NULL: a difference
    assert {(d.kind, d.key["id"]) for d in diff(job_for(source, target)).differences} == {("changed", 0)}


def test_a_failed_table_counts_the_rows_its_other_chunks_committed(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """Chunks run in parallel: when one fails the table (--max-rejects), what the others committed
    is in the summary (it counted only the chunks before the failed one)."""
    source, target = make_db("postgresql"), make_db("postgresql")
    source.sql(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO big SELECT g, 'n' || g FROM generate_series(1, 20000) g",
    )
    target.sql(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO big VALUES (10000, 'pre')"
    )
    job = job_for(source, target)
    try:
        result = copy(job, mode="append", batch_size=500, workers=4, max_rejects=0,
                      rejects_file=str(tmp_path / "rejects.jsonl")).tables[0]  # fmt: skip
    finally:
        job.close()
    assert result.status == "failed"
    assert result.rows_written == target.query("SELECT COUNT(*) FROM big")[0][0] - 1 > 0


def test_rows_duckdb_refuses_are_isolated_without_savepoints(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """DuckDB has no savepoints to isolate refused rows under: a refused batch failed its whole table.
    Now the chunk is written again, each batch tried first on another connection: the refused rows go
    to the rejects file, the others arrive. A refusal only the chunk's own rows cause (a key given twice
    in one chunk) still fails the table, in one line, the chunk rolled back, the other tables copied."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, note TEXT)", "INSERT INTO a VALUES (1, 'x'), (2, 'y')"
    )
    source.sql("CREATE TABLE b (id INTEGER PRIMARY KEY)", "INSERT INTO b VALUES (1)")
    copy_ok(job_for(source, target, tables=["a"]))
    source.sql("INSERT INTO a VALUES (3, 'z'), (4, NULL)")
    target.sql("DELETE FROM a WHERE id = 2", "ALTER TABLE a ALTER COLUMN note SET NOT NULL")
    rejects = tmp_path / "rejects.jsonl"
    job = job_for(source, target)
    try:
        result = {t.table: t for t in copy(job, mode="append", rejects_file=str(rejects)).tables}
    finally:
        job.close()
    assert (result["a"].status, result["a"].rows_written, result["a"].rejected) == ("ok", 2, 2)
    assert target.query("SELECT id FROM a ORDER BY id") == [(1,), (2,), (3,)]
    reasons = reasons_by_id(rejects)
    assert set(reasons) == {1, 4} and "NOT NULL" in reasons[4].upper()
    assert (result["b"].status, result["b"].rows_written) == ("ok", 1)
    # a table that references itself is written in generations (parents first), and a row whose
    # parent the target does not hold is found so, not tried apart on another connection, which
    # would not see the rows this chunk wrote that others reference
    source.sql(
        "CREATE TABLE e (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES e(id))",
        "INSERT INTO e VALUES (1, NULL), (2, 1), (3, 9)",
    )
    target.sql("CREATE TABLE e (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES e(id))")
    (table,) = copy_closed(job_for(source, target, tables=["e"]), mode="append", batch_size=1).tables
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 1)
    assert target.query("SELECT id, boss FROM e ORDER BY id") == [(1, None), (2, 1)]
    source.sql("CREATE TABLE c (id INTEGER, note TEXT)", "INSERT INTO c VALUES (1, 'a'), (1, 'b')")
    target.sql("CREATE TABLE c (id INTEGER PRIMARY KEY, note TEXT)")
    (table,) = copy_closed(job_for(source, target, tables=["c"]), mode="append").tables
    assert table.status == "failed" and "rolled back" in (table.error or "")
    assert target.query("SELECT COUNT(*) FROM c") == [(0,)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite", "duckdb"])
def test_merge_by_a_key_the_source_does_not_declare(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A table without a primary key merged by -k code: the table parity created had no constraint on
    code, and merge refused it ("needs a primary key or unique constraint on (code)"), every time. A
    table created for a merge is now made unique on its key; an existing one without is still refused."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE nopk (code VARCHAR(10) NOT NULL, v INTEGER)",
        "INSERT INTO nopk VALUES ('a', 1), ('b', 2)",
    )
    job = build(source.url, target.url, target_schema=target.schema, table_options={"key": ["code"]})
    try:
        copy_ok(job, mode="merge")
        source.sql("UPDATE nopk SET v = 20 WHERE code = 'b'", "INSERT INTO nopk VALUES ('c', 3)")
        copy_ok(job, mode="merge")
    finally:
        job.close()
    assert target.query("SELECT code, v FROM nopk ORDER BY code") == [("a", 1), ("b", 20), ("c", 3)]
    target.sql("CREATE TABLE other (code VARCHAR(10) NOT NULL, v INTEGER)")
    source.sql("CREATE TABLE other (code VARCHAR(10) NOT NULL, v INTEGER)")
    job = build(
        source.url, target.url, target_schema=target.schema, tables=["other"], table_options={"key": ["code"]}
    )
    with pytest.raises(DataError, match=r"needs a primary key or unique constraint on \(code\)"):
        copy_closed(job, mode="merge")


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite", "duckdb"])
def test_merge_by_a_key_the_source_holds_twice_is_refused_before_any_ddl(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """Two source rows with one -k key: PostgreSQL's upsert failed on them, but MariaDB, SQLite and
    DuckDB upserted them in turn and the last won, in an order chunks in parallel do not fix. Now a
    key the source does not declare unique is checked there first, and the run is refused with
    examples before anything is created or written."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE nopk (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL, v INTEGER)",
        "INSERT INTO nopk VALUES (1, 'a', 1), (2, 'b', 2), (3, 'a', 3), (4, 'c', 4)",
    )
    job = build(source.url, target.url, target_schema=target.schema, table_options={"key": ["code"]})
    with pytest.raises(DataError, match=r"source rows share a merge key \(code\), e\.g\. \('a'\)"):
        copy_closed(job, mode="merge")
    assert "nopk" not in target.tables()
    (table,) = copy_closed(
        build(
            source.url,
            target.url,
            target_schema=target.schema,
            table_options={"key": ["code"], "where": "v < 3"},
        ),
        mode="merge",
    ).tables  # (a --where that leaves each key once is merged)
    assert table.status == "ok" and sorted(target.query("SELECT code, v FROM nopk")) == [("a", 1), ("b", 2)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite", "duckdb"])
def test_rows_a_merge_target_refuses_are_isolated(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Merge stages a chunk's rows, then upserts them at once: a row the target refuses there (a CHECK,
    a NOT NULL the staging table does not have) failed the whole table. Now the chunk is written again,
    each batch upserted on its own, and the refused rows are isolated (under savepoints, or on another
    connection for DuckDB): they go to the rejects file, the other rows are inserted or updated, and
    rows of the target the source does not hold are left alone."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE m (id INTEGER PRIMARY KEY, v INTEGER, note TEXT)")
    rows = [(i, -i if i % 25 == 0 else i, None if i == 33 else f"n{i}") for i in range(1, 101)]
    with source.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO m VALUES (:i, :v, :n)"), [{"i": i, "v": v, "n": n} for i, v, n in rows]
        )
    target.sql(
        "CREATE TABLE m (id INTEGER PRIMARY KEY, v INTEGER CHECK (v >= 0), note TEXT NOT NULL)",
        "INSERT INTO m VALUES (10, 0, 'old'), (50, 0, 'kept'), (500, 5, 'alone')",
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(
        job_for(source, target), mode="merge", batch_size=10, rejects_file=str(rejects)
    ).tables
    assert (table.status, table.rows_read, table.rows_written, table.rejected) == ("ok", 100, 95, 5)
    refused = sorted(int(json.loads(line)["row"]["id"]) for line in rejects.read_text().splitlines())
    assert refused == [25, 33, 50, 75, 100]
    expected = [(i, v, n) for i, v, n in rows if v >= 0 and n is not None] + [
        (50, 0, "kept"),
        (500, 5, "alone"),
    ]
    assert target.query("SELECT id, v, note FROM m ORDER BY id") == sorted(expected)


@pytest.mark.parametrize("target_name", ["duckdb", "sqlite", "mariadb"])
def test_postgresql_types_taken_as_text_arrive_as_their_text(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """inet, interval, arrays, ranges have no canonical kind and are stored as text: DuckDB rejected
    every row (psycopg gives IPv4Interface, timedelta, list objects), and diff failed on octet_length(inet).
    Now they are read as PostgreSQL writes them (its output functions, '::1' not the cast's '::1/128',
    NULL kept), and diff compares that text."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE net (id INTEGER PRIMARY KEY, a INET, i INTERVAL, arr INTEGER[], r INT4RANGE)",
        "INSERT INTO net VALUES (1, '10.0.0.1/8', '1 day 2 hours', '{1,2}', '[1,5)'), (2, '::1', NULL, NULL, 'empty')",
    )
    copy_ok(job_for(source, target))
    assert target.query("SELECT id, a, i, arr, r FROM net ORDER BY id") == [
        (1, "10.0.0.1/8", "1 day 02:00:00", "{1,2}", "[1,5)"),
        (2, "::1", None, None, "empty"),
    ]
    job = job_for(source, target)
    try:
        same = diff(job)
        source.sql("UPDATE net SET a = '10.0.0.2/8' WHERE id = 1")
        changed = diff(job)
    finally:
        job.close()
    assert same.identical and same.tables[0].stats.rows_downloaded == 0
    assert [(d.key, list(d.columns)) for d in changed.differences] == [({"id": 1}, ["a"])]


def test_text_keys_into_mariadb(make_db: Callable[[str], Database], tmp_path: Path) -> None:
    """MariaDB keys hold no TEXT: a SQLite "name TEXT PRIMARY KEY" failed its CREATE TABLE (BLOB/TEXT
    column used in key specification without a key length). Such a key column, and a TEXT column of a
    foreign key, is a VARCHAR as long as InnoDB keys hold (768 characters, shared in a composite key);
    a longer value is rejected, and a run again (merge) takes the tables as they are."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE tags (name TEXT, lang TEXT, PRIMARY KEY (name, lang))",
        "CREATE TABLE uses (id INTEGER PRIMARY KEY, setting TEXT REFERENCES settings(name))",
        f"INSERT INTO settings VALUES ('a', '1'), ('{'é' * 768}', '2'), ('{'x' * 769}', '3')",
        "INSERT INTO tags VALUES ('x', 'en'), ('x', 'fr')",
        "INSERT INTO uses VALUES (1, 'a')",
        "CREATE TABLE pairs (n BIGINT, name TEXT, PRIMARY KEY (n, name))",  # (the BIGINT's 8 bytes first)
        "INSERT INTO pairs VALUES (1, 'x')",
    )
    rejects = tmp_path / "rejects.jsonl"
    done = copy_closed(job_for(source, target), rejects_file=str(rejects))
    assert any("settings.name text: a key column, VARCHAR(768)" in w for w in done.schema.warnings)
    result = {t.table: t for t in done.tables}
    assert (result["settings"].rows_written, result["settings"].rejected) == (2, 1)
    assert (result["tags"].rows_written, result["uses"].rows_written) == (2, 1)
    assert json.loads(rejects.read_text())["row"]["name"] == "x" * 769
    lengths = target.query(
        "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND data_type = 'varchar' AND table_name NOT LIKE '\\_parity%' ORDER BY 1, 2"
    )
    assert lengths == [
        ("pairs", "name", 766),
        ("settings", "name", 768),
        ("tags", "lang", 384),
        ("tags", "name", 384),
        ("uses", "setting", 768),
    ]
    source.sql(
        f"DELETE FROM settings WHERE name = '{'x' * 769}'", "UPDATE settings SET value = '9' WHERE name = 'a'"
    )
    copy_ok(job_for(source, target), mode="merge")
    job = job_for(source, target)
    try:
        assert diff(job).identical
    finally:
        job.close()


@pytest.mark.parametrize("source_name", ["sqlite", "postgresql"])
def test_columns_named_as_duckdb_keywords_are_quoted(
    make_db: Callable[[str], Database], source_name: str
) -> None:
    """duckdb_engine quotes DuckDB's reserved keywords only: a column named "by" or "at" (keywords of
    other categories) failed the CREATE TABLE, and every statement naming it."""
    source, target = make_db(source_name), make_db("duckdb")
    q = source.q
    names = ["by", "at", "columns", "values", "time", "row"]
    source.sql(
        f"CREATE TABLE kw (id INTEGER PRIMARY KEY, {', '.join(f'{q(n)} INTEGER' for n in names)})",
        "INSERT INTO kw VALUES (1, 2, 3, 4, 5, 6, 7), (2, NULL, 3, NULL, 5, NULL, 7)",
    )
    copy_ok(job_for(source, target))
    assert target.query("SELECT * FROM kw ORDER BY id") == [
        (1, 2, 3, 4, 5, 6, 7),
        (2, None, 3, None, 5, None, 7),
    ]
    source.sql(f"UPDATE kw SET {q('by')} = 9 WHERE id = 2")
    job = job_for(source, target)
    try:
        result = diff(job)
    finally:
        job.close()
    assert [(d.key, list(d.columns)) for d in result.differences] == [({"id": 2}, ["by"])]


@pytest.mark.parametrize("target_name", ["sqlite", "mariadb", "duckdb"])
def test_an_existing_table_is_matched_as_the_target_matches_names(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """'id' is the column 'ID' where column names ignore case (MariaDB, SQLite, DuckDB), and 'jn' the
    table 'JN' where table names do (SQLite, DuckDB): no column or table is added twice."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql("CREATE TABLE jn (id INTEGER PRIMARY KEY, note VARCHAR(10))", "INSERT INTO jn VALUES (1, 'a')")
    table = "jn" if target_name == "mariadb" else "JN"
    target.sql(f"CREATE TABLE {target.q(table)} (ID INTEGER PRIMARY KEY, NOTE VARCHAR(10))")
    copy_ok(job_for(source, target))
    assert target.query(f"SELECT ID, NOTE FROM {target.q(table)}") == [(1, "a")]


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb"])
def test_sqlite_keys_holding_null_or_text_are_rejected_not_lost(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite keeps NULL and text in a BIGINT PRIMARY KEY (the audit): chunks are key ranges, and
    the NULL row fell in none, lost without a word; text as the key's max() crashed the planning of
    chunks. Each is now copied in a chunk and rejected by the target, with its reason."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)",
        "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(1, 301)),
        "INSERT INTO t VALUES (NULL, 'no id')",
    )
    rejects = tmp_path / "rejects.jsonl"
    result = copy_closed(job_for(source, target), batch_size=20, rejects_file=str(rejects))
    table = result.tables[0]
    assert (table.rows_read, table.rows_written, table.rejected, table.status) == (301, 300, 1, "ok")
    assert "null" in reasons_by_id(rejects)[None].lower()
    source.sql("DELETE FROM t WHERE id IS NULL", "INSERT INTO t VALUES ('abc', 'text id')")
    again = copy_closed(job_for(source, target), mode="replace", rejects_file=str(rejects))
    assert (again.tables[0].rows_written, again.tables[0].rejected) == (300, 1)
    assert target.query("SELECT COUNT(*) FROM t")[0][0] == 300
    # (a real number as the least key: the first chunk began at int(-0.5), 0, and the row was lost)
    source.sql("DELETE FROM t WHERE v = 'text id'", "INSERT INTO t VALUES (-0.5, 'half')")
    last = copy_closed(job_for(source, target), mode="replace", batch_size=20, rejects_file=str(rejects))
    assert last.tables[0].rows_read == 301 and last.tables[0].rows_written + last.tables[0].rejected == 301


@pytest.mark.parametrize(
    ("target_name", "created"),
    [
        ("sqlite", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
        ("mariadb", "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)"),
    ],
)
def test_a_null_key_into_a_column_the_target_numbers_is_rejected_and_0_stays_0(
    make_db: Callable[[str], Database], target_name: str, created: str, tmp_path: Path
) -> None:
    """SQLite's rowid and MariaDB's AUTO_INCREMENT take a number of their own for a NULL written to
    them (MariaDB for 0 too): a legacy SQLite key holding NULL arrived as row 301, and the row whose
    key is 0 as another number, without a word. The NULL is rejected now, and 0 kept."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",  # (not the rowid: it holds NULL)
        "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(0, 300)),
        "INSERT INTO t VALUES (NULL, 'no id')",
    )
    target.sql(created)
    rejects = tmp_path / "rejects.jsonl"
    for workers in (1, 2):  # (the NULL key's rows a chunk of their own, or among the others)
        table = copy_closed(
            job_for(source, target), mode="replace", batch_size=400 // workers, workers=workers,
            rejects_file=str(rejects)
        ).tables[0]  # fmt: skip
        assert (table.rows_read, table.rows_written, table.rejected, table.status) == (301, 300, 1, "ok")
        assert "would number itself" in reasons_by_id(rejects)[None]
        assert target.query("SELECT MIN(id), MAX(id), COUNT(*) FROM t") == [(0, 299, 300)]
    made = make_db(target_name)  # (and in a table parity makes: INT PRIMARY KEY is no rowid to number)
    copy_closed(job_for(source, made), rejects_file=str(rejects))
    assert made.query("SELECT MIN(id), MAX(id), COUNT(*) FROM t") == [(0, 299, 300)]
    keyed = make_db("sqlite")
    keyed.sql(
        "CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO k VALUES (0, 'zero'), (5, 'five')"
    )
    copy_ok(job_for(keyed, made))
    assert made.query("SELECT id, v FROM k ORDER BY id") == [(0, "zero"), (5, "five")]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "duckdb", "sqlite"])
def test_sqlite_values_their_kind_cannot_take_are_rejected_not_changed(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite holds any value in any column: 2.7 in an INTEGER arrived as 3 (or 2), 2 in a BOOLEAN as
    1, a date with its time of day as the date, and nanoseconds cut to microseconds, each without a
    word (the audit). Each such row is rejected now, naming its value."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE odd (id INTEGER PRIMARY KEY, n INTEGER, b BOOLEAN, d DATE, ts TIMESTAMP)",
        "INSERT INTO odd VALUES (1, 1, 1, '2020-01-01', '2020-01-01 10:00:00.123456'),"
        " (2, 2.7, 0, '2020-01-01', NULL), (3, 3, 2, NULL, NULL), (4, 4, 0, '2020-01-02 10:00:00', NULL),"
        " (5, 5, 0, NULL, '2020-01-01 10:00:00.123456789'), (6, 6.0, 1, '2020-01-03 00:00:00', NULL),"
        " (7, 7, 0, NULL, '2020-01-01 10:00:00.123456000')",
    )
    rejects = tmp_path / "rejects.jsonl"
    table = copy_closed(job_for(source, target), rejects_file=str(rejects)).tables[0]
    # (SQLite holds 2.7 in an INTEGER; it and MariaDB hold 2 in a BOOLEAN, their booleans integers: kept)
    refused = {"sqlite": [4, 5], "mariadb": [2, 4, 5]}.get(target_name, [2, 3, 4, 5])
    assert (table.rows_written, table.rejected, table.status) == (7 - len(refused), len(refused), "ok")
    reasons = reasons_by_id(rejects)
    assert sorted(reasons) == refused
    assert 2 not in refused or ("2.7" in reasons[2] and "not a whole number" in reasons[2])
    assert 3 not in refused or "not a boolean" in reasons[3]
    assert "time of day" in reasons[4]
    assert "finer than a microsecond" in reasons[5]
    kept = target.query("SELECT id, n, b FROM odd ORDER BY id")
    assert [r[0] for r in kept] == [i for i in range(1, 8) if i not in refused]
    if target_name in ("sqlite", "mariadb"):
        assert next(r for r in kept if r[0] == 3)[2] == 2
    if target_name == "sqlite":
        assert next(r for r in kept if r[0] == 2)[1] == 2.7


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite"])
@pytest.mark.parametrize("rows", [2, 60_000])  # (60,000: read as lines of text)
def test_mysql_spatial_columns_are_copied_and_compared_as_their_wkt(
    make_db: Callable[[str], Database], target_name: str, rows: int
) -> None:
    """A MariaDB POINT or GEOMETRY column stopped copy and diff: "Illegal parameter data type point
    for operation 'cast_as_char'" (the audit). Its values go as their text (WKT), which diff compares."""
    source, target = make_db("mariadb"), make_db(target_name)
    source.sql(
        "CREATE TABLE shop (id INTEGER PRIMARY KEY, loc POINT, g GEOMETRY)",
        "INSERT INTO shop SELECT seq, POINT(seq, 2), NULL FROM seq_3_to_" + str(max(rows, 3)),
        "INSERT INTO shop VALUES (1, POINT(1, 2), ST_GeomFromText('LINESTRING(0 0,1 1)')), (2, NULL, NULL)",
    )
    assert copy_closed(job_for(source, target)).ok
    assert target.query("SELECT loc, g FROM shop WHERE id = 1") == [("POINT(1 2)", "LINESTRING(0 0,1 1)")]
    job = job_for(source, target)
    try:
        assert diff(job).identical
    finally:
        job.close()


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite"])  # (DuckDB has no identity columns)
def test_a_bigint_unsigned_auto_increment_id_stays_an_identity(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """MySQL's BIGINT UNSIGNED AUTO_INCREMENT (Laravel's id()) became a NUMERIC(20,0) with no identity,
    and the application's next insert failed on a NULL id (the audit). It is a BIGINT identity now,
    and the FK columns that reference it BIGINT too (PostgreSQL refuses an FK from NUMERIC to BIGINT)."""
    source, target = make_db("mariadb"), make_db(target_name)
    source.sql(
        "CREATE TABLE users (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(50))",
        "CREATE TABLE posts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_id BIGINT UNSIGNED,"
        " hits BIGINT UNSIGNED, FOREIGN KEY (user_id) REFERENCES users (id))",
        "INSERT INTO users (email) VALUES ('a'), ('b')",
        "INSERT INTO posts (user_id, hits) VALUES (1, 18446744073709551615), (2, 0)",
    )
    result = copy_closed(job_for(source, target))
    assert result.ok, result
    target.sql("INSERT INTO users (email) VALUES ('c')")
    assert target.query("SELECT id, email FROM users ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    assert [int(h) for (h,) in target.query("SELECT hits FROM posts ORDER BY id")] == [2**64 - 1, 0]
    assert diff(job_for(source, target, tables=["posts"])).identical


@pytest.mark.parametrize("target_name", ["sqlite", "mariadb"])
def test_partitions_and_child_tables_go_with_their_parent_once(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A partitioned PostgreSQL table and its partitions were each copied: the parent's read holds the
    partitions' rows, so the target had every row twice, and an INHERITS parent had its child's rows
    beside the child's own table (the audit). The parent goes alone now; named beside it, a partition
    is an error; named alone, it goes alone."""
    from parity.errors import ConfigError

    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE ev (id INTEGER, at DATE NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
        "CREATE TABLE ev_2023 PARTITION OF ev FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
        "CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "INSERT INTO ev VALUES (1, '2023-05-01'), (2, '2024-05-01')",
        "CREATE TABLE base (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE sub (extra INTEGER) INHERITS (base)",
        "INSERT INTO base VALUES (1, 'base')",
        "INSERT INTO sub VALUES (2, 'sub', 9)",
    )
    job = job_for(source, target)
    result = copy_closed(job)
    assert sorted(t.table for t in result.tables) == ["base", "ev"]
    assert sorted(job.folded) == [("ev_2023", "ev"), ("ev_2024", "ev"), ("sub", "base")]
    assert target.query("SELECT count(*) FROM ev") == [(2,)]
    assert target.query("SELECT id, v FROM base ORDER BY id") == [(1, "base"), (2, "sub")]
    with pytest.raises(ConfigError, match="'ev_2024' is a partition or child of 'ev'"):
        job_for(source, target, tables=["ev", "ev_2024"]).selected()
    assert [t.name for t in job_for(source, target, tables=["ev_2024"]).selected()] == ["ev_2024"]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "duckdb", "sqlite"])
@pytest.mark.parametrize("rows", [3, 60_000])  # (60,000: read as text by a reader process)
def test_a_sqlite_blob_in_a_text_column_is_rejected_not_changed(
    make_db: Callable[[str], Database], target_name: str, rows: int, tmp_path: Path
) -> None:
    """A BLOB in an SQLite TEXT or untyped column arrived in PostgreSQL as the text '\\x41', in MariaDB
    as "b'\\x00\\xff'" or decoded as UTF-8, each without a word, and diff then found the rows changed
    (the audit). Into any other database such a row is rejected now; SQLite keeps it as it is."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE bl (id INTEGER PRIMARY KEY, v VARCHAR(20), notes)",
        f"WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})"
        " INSERT INTO bl SELECT i, 'v' || i, 'n' || i FROM n",
        "INSERT INTO bl VALUES (1, x'41', 'fine'), (2, 'ok', x'00ff')",
    )
    rejects = tmp_path / "rejects.jsonl"
    table = copy_closed(job_for(source, target), rejects_file=str(rejects)).tables[0]
    refused = [] if target_name == "sqlite" else [1, 2]
    assert (table.rows_written, table.rejected) == (rows - len(refused), len(refused))
    reasons = reasons_by_id(rejects) if refused else {}
    assert sorted(reasons) == refused
    assert all("a BLOB, not text" in why for why in reasons.values())
    assert target.query("SELECT count(*) FROM bl WHERE id <= 2") == [(2 - len(refused),)]


def test_mysql_decimals_a_types_override_narrows_are_rejected_not_rounded_by_copy_from(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """MariaDB's DECIMAL(12,6) into ``types: {d: decimal(10,4)}`` in PostgreSQL: as its lines of text,
    COPY FROM would round 1.123456 to 1.1235 without a word; the narrowed scale sends the table as
    values (``_TablePlan.fractions``), and the row is rejected."""
    source, target = make_db("mariadb"), make_db("postgresql")
    source.sql("CREATE TABLE m (id INTEGER PRIMARY KEY, d DECIMAL(12,6))",
               "INSERT INTO m VALUES (1, 1.123456), (2, 2.5), (3, NULL)")  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    job = job_for(source, target, table_options={"types": {"d": "decimal(10,4)"}})
    table = copy_closed(job, rejects_file=str(rejects)).tables[0]
    assert (table.rows_written, table.rejected) == (2, 1), table
    assert "1.123456 has more decimals than the target keeps (4)" in reasons_by_id(rejects)[1]
    assert target.query("SELECT id, d FROM m ORDER BY id") == [(2, Decimal("2.5000")), (3, None)]


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [
        ("sqlite", "postgresql"),
        ("sqlite", "mariadb"),
        ("sqlite", "duckdb"),
        ("postgresql", "duckdb"),
        ("postgresql", "postgresql"),
    ],
)
def test_a_float_into_a_decimal_a_types_override_makes_is_rejected_where_it_has_more_decimals(
    make_db: Callable[[str], Database], source_name: str, target_name: str, tmp_path: Path
) -> None:
    """``types: {score: decimal(10,4)}`` on a REAL column: 14.428571428571429 arrived as 14.4286 in 86
    rows of 100, without a word, and diff then found them changed (the audit); 1e-05 as 0.0000."""
    source, target = make_db(source_name), make_db(target_name)
    real = "REAL" if source_name == "sqlite" else "DOUBLE PRECISION"
    source.sql(f"CREATE TABLE s (id INTEGER PRIMARY KEY, score {real})",
               "INSERT INTO s VALUES (1, 14.4286), (2, 14.428571428571429), (3, 0.00001), (4, 2.5), (5, NULL)")  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    job = job_for(source, target, table_options={"types": {"score": "decimal(10,4)"}})
    table = copy_closed(job, rejects_file=str(rejects)).tables[0]
    assert (table.rows_written, table.rejected, table.status) == (3, 2, "ok")
    reasons = reasons_by_id(rejects)
    assert sorted(reasons) == [2, 3]
    assert "0.00001 has more decimals than the target keeps (4)" in reasons[3]
    assert [(i, None if v is None else Decimal(str(v))) for i, v in target.query("SELECT id, score FROM s ORDER BY id")] == [
        (1, Decimal("14.4286")), (4, Decimal("2.5")), (5, None)
    ]  # fmt: skip
    # the decimals the target column keeps decide, not the override's: an unbounded decimal keeps all
    # (PostgreSQL, DuckDB's widest), an existing decimal(12,5) five (the review: both refused rows)
    wide = {"types": {"score": "decimal" if target_name == "postgresql" else "decimal(30,20)"}}
    target.sql("DROP TABLE s")
    assert copy_closed(job_for(source, target, table_options=wide)).tables[0].rows_written == 5
    target.sql("DELETE FROM s", "ALTER TABLE s MODIFY score DECIMAL(12,5)" if target_name == "mariadb"
               else "ALTER TABLE s ALTER COLUMN score TYPE DECIMAL(12,5)" if target_name == "postgresql"
               else "ALTER TABLE s ALTER score TYPE DECIMAL(12,5)")  # fmt: skip
    narrow = {"types": {"score": "decimal(8,1)"}}
    table = copy_closed(job_for(source, target, table_options=narrow), mode="append").tables[0]
    assert (table.rows_written, table.rejected) == (4, 1)  # (14.428571428571429 has more than five)


@pytest.mark.parametrize("target_name", ["sqlite", "duckdb"])
def test_a_postgresql_date_before_christ_is_rejected_by_sqlite_not_taken_for_one_after(
    make_db: Callable[[str], Database], tmp_path: Path, target_name: str
) -> None:
    """'0045-03-15 BC' arrived in SQLite as 0045-03-15, and diff called the tables identical. DuckDB
    holds such days, but refused PostgreSQL's spelling of them, and each such row was rejected: they
    arrive there, and diff finds the tables identical."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE bc (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ)",
        "INSERT INTO bc VALUES (1, '2020-01-01', NULL, NULL), (2, '0045-03-15 BC',"
        " '0001-12-31 23:59:59.999999 BC', '0100-01-01 01:02:03+00 BC')",
    )
    rejects = tmp_path / "rejects.jsonl"
    table = copy_closed(job_for(source, target), rejects_file=str(rejects)).tables[0]
    if target_name == "sqlite":
        assert (table.rows_written, table.rejected, table.status) == (1, 1, "ok")
        assert "BC" in reasons_by_id(rejects)[2]
        return
    assert (table.rows_written, table.rejected, table.status) == (2, 0, "ok")
    assert target.query("SELECT CAST(d AS VARCHAR), CAST(ts AS VARCHAR) FROM bc WHERE id = 2") == [
        ("0045-03-15 (BC)", "0001-12-31 (BC) 23:59:59.999999")
    ]
    assert diff(job_for(source, target)).identical


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb", "sqlite", "mariadb"])
def test_duckdb_infinities_are_kept_or_rejected_never_taken_for_9999(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's driver gives infinity as 9999-12-31 and -infinity as 0001-01-01: copy wrote those, into
    PostgreSQL too, which holds infinity (the audit). They are read as text now: kept where the target
    holds them, rejected elsewhere."""
    source, target = make_db("duckdb"), make_db(target_name)
    source.sql(
        "CREATE TABLE inf (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP)",
        "INSERT INTO inf VALUES (1, '2020-01-01', '2020-01-01 10:00:00'), (2, 'infinity', '2020-01-02'),"
        " (3, '2020-01-03', '-infinity'), (4, '9999-12-31', '9999-12-31 23:59:59.999999')",
        "CREATE TABLE fin (id INTEGER PRIMARY KEY, d DATE)",
        "INSERT INTO fin VALUES (1, '2020-01-01'), (2, NULL)",
    )
    # (a NULL is no infinity: its chunk was read again as text, every chunk of the table after it, and
    # DuckDB into DuckDB went 40 times slower; the review)
    again: list[str] = []
    lenient = type(source.endpoint().dialect).read_leniently
    monkeypatch.setattr(type(source.endpoint().dialect), "read_leniently",
                        lambda self, x, kind: again.append(x.name) or lenient(self, x, kind))  # fmt: skip
    copy_ok(job_for(source, target, tables=["fin"]))
    assert again == [] and target.query("SELECT id, d FROM fin ORDER BY id")[1] == (2, None)
    rejects = tmp_path / "rejects.jsonl"
    table = copy_closed(
        job_for(source, target, tables=["inf"]), batch_size=2, rejects_file=str(rejects)
    ).tables[0]
    holds = target_name in ("postgresql", "duckdb")
    assert (table.rows_written, table.rejected, table.status) == ((4, 0, "ok") if holds else (2, 2, "ok"))
    if holds:
        assert [r[0] for r in target.query("SELECT CAST(d AS VARCHAR(20)) FROM inf ORDER BY id")] == [
            "2020-01-01", "infinity", "2020-01-03", "9999-12-31"
        ]  # fmt: skip
    else:
        assert sorted(reasons_by_id(rejects)) == [2, 3] and "infinity" in reasons_by_id(rejects)[2]


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite", "mariadb"])
def test_sqlite_text_that_is_no_utf8_rejects_its_row_not_the_table(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """SQLite stores the bytes it is given as text; Python's driver cannot read them, and the whole
    table failed (with --mode replace, after its target was emptied: the audit). The row is
    rejected now, the others copied."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE u8 (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO u8 VALUES (1, 'ok'), (3, 'fine')"
    )
    with sqlite3.connect(source.url.removeprefix("sqlite:///")) as raw:
        raw.execute("INSERT INTO u8 VALUES (2, CAST(? AS TEXT))", (b"bad\xff\xfe",))
    rejects = tmp_path / "rejects.jsonl"
    for mode in ("append", "replace"):
        table = copy_closed(job_for(source, target), mode=mode, rejects_file=str(rejects)).tables[0]
        assert (table.rows_written, table.rejected, table.status) == (2, 1, "ok")
        assert "utf-8" in reasons_by_id(rejects)[2]
        assert target.query("SELECT id, v FROM u8 ORDER BY id") == [(1, "ok"), (3, "fine")]


@pytest.mark.parametrize("target_name", ["duckdb", "mariadb", "sqlite"])
def test_a_time_with_its_zone_keeps_its_offset_as_text(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """PostgreSQL's timetz became DuckDB's TIME, its offset dropped, and diff failed on to_char() of a
    timetz (the audit): it has no portable kind, so it goes as its text, offset kept."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql("CREATE TABLE tz (id INTEGER PRIMARY KEY, t TIMETZ)",
               "INSERT INTO tz VALUES (1, '12:00:00+05:45'), (2, '23:59:59.999999-09:30'), (3, NULL)")  # fmt: skip
    copy_ok(job_for(source, target))
    assert [r[0] for r in target.query("SELECT t FROM tz ORDER BY id")] == [
        "12:00:00+05:45", "23:59:59.999999-09:30", None
    ]  # fmt: skip
    found = diff(job_for(source, target))
    assert found.identical and found.tables[0].stats.rows_downloaded == 0


def test_a_postgresql_real_arrives_in_sqlite_as_its_exact_value(make_db: Callable[[str], Database]) -> None:
    """psycopg gives a real as the double of its shortest text: SQLite stored 0.1 for the real
    0.100000001490116..., and 3.4028235e38, past the largest 4-byte float, for it (the audit)."""
    import struct

    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql("CREATE TABLE r (id INTEGER PRIMARY KEY, f REAL)",
               "INSERT INTO r VALUES (1, 0.1), (2, '3.4028235e38'), (3, '1.4e-45'), (4, 'NaN'), (5, NULL)")  # fmt: skip
    copy_ok(job_for(source, target))

    def single(x: float) -> float:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])

    stored = [r[0] for r in target.query("SELECT f FROM r ORDER BY id")]
    assert stored == [single(0.1), single(3.4028235e38), single(1.4e-45), "NaN", None]


def test_a_name_longer_than_postgresql_takes_is_refused_before_any_ddl(
    make_db: Callable[[str], Database],
) -> None:
    """PostgreSQL cuts a name to 63 bytes without a word: a 70-character table took its row, then its key
    failed ('already exists'), each run again; a 70-character column was left out of the diff (the audit)."""
    from parity.errors import SchemaError

    source, target = make_db("sqlite"), make_db("postgresql")
    long_table, long_column = "t" * 70, "c" * 70
    source.sql(
        f"CREATE TABLE {long_table} (id INTEGER PRIMARY KEY)",
        f"CREATE TABLE ok (id INTEGER PRIMARY KEY, {long_column} TEXT)",
    )
    for table in (long_table, "ok"):
        with pytest.raises(SchemaError, match="is longer than postgresql takes"):
            copy_closed(job_for(source, target, tables=[table]))
    assert target.tables() == []
    copy_ok(job_for(source, target, tables=[f"{long_table}:short"]))  # (renamed, as the error says)
    target.sql("CREATE TABLE ok (id INTEGER PRIMARY KEY)")  # (a column to add to a table there: too)
    with pytest.raises(SchemaError, match="is longer than postgresql takes"):
        copy_closed(job_for(source, target, tables=["ok"]))
    duck = make_db("duckdb")  # (DuckDB takes such names, whatever SQLAlchemy says)
    copy_ok(job_for(source, duck, tables=[long_table]))


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_foreign_key_to_columns_that_are_no_key_is_skipped_with_a_warning(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """SQLite takes an FK to a column that is not unique: the rows were loaded, then adding the FK failed
    the run, and every run after (the audit). It is skipped now, saying so, and the copy ends well."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, code TEXT)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_code VARCHAR(10) REFERENCES a (code))",
        "INSERT INTO a VALUES (1, 'x'), (2, 'y')",
        "INSERT INTO b VALUES (1, 'x'), (2, 'y')",
    )
    result = copy_ok(job_for(source, target))
    assert any("foreign key a_code -> a (code) skipped" in w for w in result.all_warnings)
    assert target.query("SELECT COUNT(*) FROM b") == [(2,)] and _foreign_keys(target, "b") == []
    # (SQLite's REFERENCES a (ID) names the key id: kept, not skipped; the review)
    other, made = make_db("sqlite"), make_db(target_name)
    other.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY)",
        "CREATE TABLE c (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (ID))",
    )
    copy_ok(job_for(other, made))
    assert _foreign_keys(made, "c") == [(["a_id"], "a")]


def test_a_duckdb_date_sqlite_cannot_hold_is_rejected_saying_so(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """DuckDB's driver gives a BC date, a year past 9999 and 24:00 as text: the reason read "descriptor
    'isoformat' for 'datetime.date' objects doesn't apply to a 'str' object" (the audit)."""
    source, target = make_db("duckdb"), make_db("sqlite")
    source.sql("CREATE TABLE dd (id INTEGER PRIMARY KEY, d DATE, tm TIME)",
               "INSERT INTO dd VALUES (1, '0044-03-15 (BC)', '12:00:00'), (2, '2000-01-01', '24:00:00'),"
               " (3, '2000-01-02', '10:00:00')")  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    table = copy_closed(job_for(source, target), rejects_file=str(rejects)).tables[0]
    assert (table.rows_written, table.rejected) == (1, 2)
    reasons = reasons_by_id(rejects)
    assert "is no date of the years 1 to 9999" in reasons[1] and "is no time of day" in reasons[2]


def test_mysql_set_and_bit_columns(make_db: Callable[[str], Database]) -> None:
    """A SET holds any of its members joined by commas; a BIT's bits arrive as their bytes."""
    source, target = make_db("mariadb"), make_db("postgresql")
    source.sql(
        "CREATE TABLE sb (id INTEGER PRIMARY KEY, s SET('x', 'y', 'zz'), b BIT(8))",
        "INSERT INTO sb VALUES (1, 'x,y,zz', b'10101010'), (2, '', b'00000001'), (3, NULL, NULL)",
    )
    copy_ok(job_for(source, target))
    assert target.query("SELECT id, s, b FROM sb ORDER BY id") == [
        (1, "x,y,zz", b"\xaa"),
        (2, "", b"\x01"),
        (3, None, None),
    ]
    # diff hashes a BIT's bytes (its HEX() is its number's: every row was downloaded, the audit)
    source.sql("ALTER TABLE sb ADD COLUMN w BIT(10)", "UPDATE sb SET w = b'0000000001'")
    target.sql("ALTER TABLE sb ADD COLUMN w BYTEA", "UPDATE sb SET w = '\\x0001'")
    same = diff(job_for(source, target))
    assert same.identical and same.tables[0].stats.rows_downloaded == 0


def test_a_table_given_twice_and_an_id_map_without_remap_ids_are_refused(
    small: Database, make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    from parity.errors import ConfigError

    target = make_db("sqlite")
    with pytest.raises(ConfigError, match=r"table 'items' is given twice \(-t items and -t items:items2\)"):
        job_for(small, target, tables=["items", "items:items2"])
    job = job_for(small, target)
    with pytest.raises(ConfigError, match="give --remap-ids too"):
        copy_closed(job, export_id_map=str(tmp_path / "ids.json"))
    assert not (tmp_path / "ids.json").exists()


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "duckdb", "sqlite"])
def test_names_with_percent_signs(make_db: Callable[[str], Database], target_name: str) -> None:
    """``%`` in table and column names, through COPY and LOAD DATA (SQL sent with no parameters, where
    SQLAlchemy's doubled ``%%`` stays doubled) and through merge's staging table. LOAD DATA used to fail
    on the name, then wait 60 s for a reader of its pipe before the rows went in as INSERTs."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql('CREATE TABLE "t%1" (id INTEGER PRIMARY KEY, "pct%" INTEGER, "a%(x)s" TEXT)')
    source.sql(*(f"INSERT INTO \"t%1\" VALUES ({i}, {i * 2}, 'v{i}%')" for i in range(1, 4)))
    table = sa.table("t%1", sa.column("id"), sa.column("pct%"), sa.column("a%(x)s"), schema=target.schema)

    def rows() -> list[tuple[Any, ...]]:
        with target.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]

    started = time.monotonic()
    copy_ok(job_for(source, target), mode="replace")
    assert rows() == [(i, i * 2, f"v{i}%") for i in range(1, 4)]
    source.sql('UPDATE "t%1" SET "pct%" = 99 WHERE id = 2')
    copy_ok(job_for(source, target), mode="replace")  # (empties the table first)
    source.sql('UPDATE "t%1" SET "a%(x)s" = \'%s\' WHERE id = 3')
    copy_ok(job_for(source, target), mode="merge")
    assert rows() == [(1, 2, "v1%"), (2, 99, "v2%"), (3, 6, "%s")]
    assert time.monotonic() - started < 30


def test_into_generated_always_identity(small: Database, pg_db: Database, tmp_path: Path) -> None:
    """A live PostgreSQL table whose id is GENERATED ALWAYS: COPY writes the ids, and so must merge's
    upsert and the INSERTs that isolate a refused row (they were refused, every row of them); the
    sequence then numbers new rows past the copied ids, and a sequence further on stays where it is."""
    pg_db.sql(
        "CREATE TABLE items (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name VARCHAR(20) NOT NULL UNIQUE, price DECIMAL(8,2))",
        "INSERT INTO items (name, price) VALUES ('two', 0)",
    )
    copy_ok(job_for(small, pg_db), mode="merge")
    assert pg_db.query("SELECT id, name FROM items ORDER BY id") == [(1, "one"), (2, "two"), (3, "three")]
    pg_db.sql("DELETE FROM items", "INSERT INTO items OVERRIDING SYSTEM VALUE VALUES (10, 'two', 0)")
    rejects = tmp_path / "rejects.jsonl"
    table = copy(job_for(small, pg_db), mode="append", rejects_file=str(rejects)).tables[0]
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 1)  # ('two' is taken)
    assert pg_db.query("SELECT id, name FROM items ORDER BY id") == [(1, "one"), (3, "three"), (10, "two")]
    pg_db.sql("INSERT INTO items (name) VALUES ('new')")
    assert pg_db.query("SELECT id FROM items WHERE name = 'new'") == [(11,)]
    pg_db.sql("DELETE FROM items WHERE id = 10", "SELECT setval(pg_get_serial_sequence('items', 'id'), 100)")
    copy_ok(job_for(small, pg_db), mode="merge")
    pg_db.sql("INSERT INTO items (name) VALUES ('newer')")
    assert pg_db.query("SELECT id FROM items WHERE name = 'newer'") == [(101,)]


def test_merge_by_another_key_into_generated_always_identity(small: Database, pg_db: Database) -> None:
    """Merge by name into a table whose id is GENERATED ALWAYS: PostgreSQL refuses any UPDATE of that
    column (even to the value it holds), so a matched row keeps the target's id and takes the source's
    other columns; a new row comes with the source's id."""
    pg_db.sql(
        "CREATE TABLE items (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name VARCHAR(20) NOT NULL UNIQUE, price DECIMAL(8,2))",
        "INSERT INTO items OVERRIDING SYSTEM VALUE VALUES (7, 'two', 0)",
    )
    copy_ok(job_for(small, pg_db, table_options={"key": ["name"]}), mode="merge")
    rows = pg_db.query("SELECT id, name, price FROM items ORDER BY id")
    assert [(i, n, str(p)) for i, n, p in rows] == [
        (1, "one", "1.10"),
        (3, "three", "3.30"),
        (7, "two", "2.20"),
    ]


COMPUTED = {
    "postgresql": "CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(8,2), qty INT CHECK (qty > 0),"
    " total DECIMAL(12,2) GENERATED ALWAYS AS (price * qty) STORED)",
    "mariadb": "CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(8,2), qty INT,"
    " total DECIMAL(12,2) AS (price * qty) VIRTUAL, CONSTRAINT positive CHECK (qty > 0))",
    "duckdb": "CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(8,2), qty INT CHECK (qty > 0),"
    " total DECIMAL(12,2) GENERATED ALWAYS AS (price * qty) VIRTUAL)",
}


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [("postgresql", "postgresql"), ("mariadb", "mariadb"), ("duckdb", "duckdb"), ("postgresql", "mariadb")],
)
def test_computed_columns_and_checks(
    make_db: Callable[[str], Database], source_name: str, target_name: str
) -> None:
    """Between databases of one kind a computed column is created computed and a CHECK is kept (both
    are that database's SQL); across kinds the column is a plain one holding the source's values and a
    warning names what was not carried over. Computed target columns are never written to: merge
    twice, and a later copy into the table as it is, go through."""
    source, target = make_db(source_name), make_db(target_name)
    source.sql(COMPUTED[source_name], "INSERT INTO t (id, price, qty) VALUES (1, 2.50, 4), (2, 1.00, 1)")
    result = copy_ok(job_for(source, target))
    copy_ok(job_for(source, target), mode="merge")
    source.sql("UPDATE t SET qty = 3 WHERE id = 2")
    copy_ok(job_for(source, target), mode="merge")
    rows = target.query("SELECT id, total FROM t ORDER BY id")
    assert [(i, Decimal(str(v))) for i, v in rows] == [(1, Decimal("10.00")), (2, Decimal("3.00"))]
    warnings = " ".join(result.schema.warnings)
    if source_name == target_name:
        assert "computed" not in warnings and "CHECK" not in warnings
        target.sql("UPDATE t SET price = 2 WHERE id = 2")  # (computed by the target, so it follows)
        assert target.query("SELECT total FROM t WHERE id = 2") == [(Decimal("6.00"),)]
        with pytest.raises(sa.exc.DBAPIError):
            target.sql("INSERT INTO t (id, price, qty) VALUES (3, 1, 0)")
    else:
        assert "t.total is computed by the source as" in warnings
        assert "CHECK constraints written in postgresql's SQL not created: qty > 0" in warnings


@pytest.mark.parametrize("target_name", ["postgresql", "duckdb"])
def test_values_the_driver_cannot_make_are_copied_as_their_text(
    pg_db: Database, make_db: Callable[[str], Database], target_name: str
) -> None:
    """PostgreSQL's infinite dates and timestamps and its time 24:00 have no Python value: psycopg's
    loaders raised, and the whole table failed. The chunk is read again with such values as their text,
    which PostgreSQL and DuckDB read back as the same values; then the two sides diff identical."""
    target = make_db(target_name)
    pg_db.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP, tz TIMESTAMPTZ, d DATE, tm TIME)",
        "INSERT INTO t VALUES (1, 'infinity', '-infinity', 'infinity', '24:00:00'),"
        " (2, '2020-01-01 10:00:00.5', '2020-01-01 10:00:00+02', '1999-12-31', '12:00:00'), (3, NULL, NULL, NULL, NULL)",
    )
    result = copy_ok(job_for(pg_db, target))
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (3, 0)
    rows = target.query("SELECT id, CAST(ts AS VARCHAR), CAST(d AS VARCHAR) FROM t ORDER BY id")
    assert rows[0] == (1, "infinity", "infinity") and rows[1][2] == "1999-12-31"
    assert diff(job_for(pg_db, target)).identical


@pytest.mark.parametrize("target_name", ["mariadb", "sqlite"])
def test_times_the_driver_cannot_make_are_rejected_by_name_where_the_target_cannot_read_them(
    pg_db: Database, make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """Read as their text, PostgreSQL's infinities and years past 9999 met the writer of a target that
    cannot read that text, and were rejected with "'str' object has no attribute 'astimezone'"."""
    target = make_db(target_name)
    pg_db.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, tz TIMESTAMPTZ)",
        "INSERT INTO t VALUES (1, 'infinity'), (2, '2020-01-01 10:00:00+02'), (3, '15000-01-01 00:00:00+00')",
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_ok(job_for(pg_db, target), rejects_file=str(rejects)).tables
    assert (table.rows_written, table.rejected) == (1, 2)
    reasons = reasons_by_id(rejects)
    assert reasons[1].startswith("tz: 'infinity' is no timestamptz")
    assert reasons[3].startswith("tz: '15000-01-01 00:00:00+00' is no timestamptz")


def test_nan_into_mariadb_is_rejected_naming_the_column(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """MariaDB's floats hold no NaN or infinity: the reason was the driver's "nan can not be used
    with MySQL", which names no column."""
    source, target = make_db("duckdb"), make_db("mariadb")
    source.sql(
        "CREATE TABLE f (id INTEGER PRIMARY KEY, x DOUBLE, r REAL)",
        "INSERT INTO f VALUES (1, 'NaN', 1), (2, 1.5, '-Infinity'), (3, 2.5, 2)",
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_ok(job_for(source, target), rejects_file=str(rejects)).tables
    assert (table.rows_written, table.rejected) == (1, 2)
    reasons = reasons_by_id(rejects)
    assert reasons == {
        1: "x: nan is no number mariadb holds (no NaN, no infinity)",
        2: "r: -inf is no number mariadb holds (no NaN, no infinity)",
    }


def test_nan_survives_sqlite(pg_db: Database, make_db: Callable[[str], Database]) -> None:
    """SQLite stores a NaN bound as a REAL as NULL: parity writes it as the text 'NaN', which SQLite keeps
    in the REAL column and parity reads back as NaN, there and back again (read as values, and as COPY
    text: the second table has only kinds that travel so)."""
    sqlite = make_db("sqlite")
    pg_db.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT8, r REAL, at TIMESTAMPTZ)",
        "CREATE TABLE u (id INT PRIMARY KEY, f FLOAT8)",
        "INSERT INTO t VALUES (1, 'NaN', 'NaN', NULL), (2, 'Infinity', '-Infinity', NULL), (3, 1.5, NULL, NULL)",
        "INSERT INTO u VALUES (1, 'NaN'), (2, -0.5)",
    )
    copy_ok(job_for(pg_db, sqlite))
    assert sqlite.query("SELECT id, typeof(f) FROM t ORDER BY id") == [(1, "text"), (2, "real"), (3, "real")]
    assert sqlite.query("SELECT typeof(f) FROM u WHERE id = 1") == [("text",)]
    assert diff(job_for(pg_db, sqlite)).identical
    back = make_db("postgresql")
    copy_ok(job_for(sqlite, back))
    assert back.query("SELECT id, CAST(f AS TEXT), CAST(r AS TEXT) FROM t ORDER BY id") == [
        (1, "NaN", "NaN"),
        (2, "Infinity", "-Infinity"),
        (3, "1.5", None),
    ]


def test_a_target_column_computed_there_is_not_written(small: Database, pg_db: Database) -> None:
    """A live target whose column the database computes: the source's values for it are not written
    (PostgreSQL refuses them: every row was rejected), the target computes its own."""
    pg_db.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL,"
        " price DECIMAL(8,2) GENERATED ALWAYS AS (length(name) * 1.5) STORED)"
    )
    result = copy_ok(job_for(small, pg_db))
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (3, 0)
    assert pg_db.query("SELECT id, price FROM items ORDER BY id") == [
        (1, Decimal("4.50")), (2, Decimal("4.50")), (3, Decimal("7.50")),
    ]  # fmt: skip


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_orphans_in_a_self_referencing_table_do_not_stop_the_run(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """SQLite enforces no FK by default, so a source may hold rows whose parent is not there. A key
    added after the rows (a self-reference) failed on them and stopped the run; now every row arrives,
    the key is added without checking them, holds for later rows, and a warning says so."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES emp(id), name TEXT)",
        "INSERT INTO emp VALUES (1, NULL, 'a'), (2, 1, 'b'), (3, 99, 'orphan')",
    )
    result = copy_ok(job_for(source, target))
    assert result.tables[0].rows_written == 3
    assert any(w.startswith("emp: rows reference rows that are not there") for w in result.warnings)
    assert target.query("SELECT id, boss FROM emp ORDER BY id") == [(1, None), (2, 1), (3, 99)]
    with pytest.raises(sa.exc.IntegrityError):
        target.sql("INSERT INTO emp VALUES (4, 98, 'new orphan')")


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_orphans_of_a_parent_table_arrive_as_on_every_database(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A child whose rows reference parents the source does not hold: into MariaDB such rows were
    rejected (its FK was there during the load), into PostgreSQL they arrived (FKs come after the rows
    there). Now every row arrives on both, a warning names an example, and the key holds afterwards;
    with rows whose parents are all there, no warning."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE team (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE `m%mber` (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES team(id), name TEXT)",
        "INSERT INTO team VALUES (1, 'a')",
        "INSERT INTO `m%mber` VALUES (1, 1, 'x'), (2, 7, 'orphan'), (3, NULL, 'none')",
    )
    result = copy_ok(job_for(source, target))
    assert [t.rows_written for t in result.tables] == [1, 3]
    (warning,) = [w for w in result.warnings if "rows reference rows that are not there" in w]
    assert warning.startswith("m%mber:") and "7" in warning
    member = target.q("m%mber").replace("%%", "%")  # (as sa.text takes it)
    assert target.query(f"SELECT id, team_id FROM {member} ORDER BY id") == [(1, 1), (2, 7), (3, None)]
    with pytest.raises(sa.exc.IntegrityError), target.engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {member} VALUES (4, 8, 'new orphan')"))
    source.sql("DELETE FROM `m%mber` WHERE id = 2")
    clean = make_db(target_name)
    assert copy_ok(job_for(source, clean)).warnings == []


def test_a_mariadb_table_keyed_by_hash_declares_its_foreign_keys_and_checks_its_rows_after(
    make_db: Callable[[str], Database],
) -> None:
    """A unique key on TEXT MariaDB holds by a hash, and then copies the whole table for any ALTER
    TABLE: the FK added after 1M rows took 40 s. Such a table declares its FKs as it is made, its rows
    are loaded with the FK checks off (an orphan arrives, as into any other table), and a query after
    them warns of the orphan; no ALTER TABLE touches it. The key holds afterwards."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE team (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE member (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES team(id), email TEXT UNIQUE)",
        "INSERT INTO team VALUES (1, 'a')",
        "INSERT INTO member VALUES (1, 1, 'x@a'), (2, 7, 'orphan@a'), (3, NULL, 'none@a')",
    )
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = copy_ok(job_for(source, target))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert [t.rows_written for t in result.tables] == [1, 3]
    (warning,) = [w for w in result.warnings if "rows reference rows that are not there" in w]
    assert warning.startswith("member:") and "7" in warning
    assert [s for s in statements if s.lstrip().upper().startswith("ALTER TABLE")] == []
    made = target.query("SHOW CREATE TABLE member")[0][1]
    assert "USING HASH" in made and "FOREIGN KEY (`team_id`) REFERENCES `team` (`id`)" in made
    assert target.query("SELECT id, team_id FROM member ORDER BY id") == [(1, 1), (2, 7), (3, None)]
    with pytest.raises(sa.exc.IntegrityError):
        target.sql("INSERT INTO member VALUES (4, 8, 'new orphan')")


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_foreign_key_added_again_counts_as_added(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """MySQL commits each ALTER on its own: a run stopped after adding a waiting FK and before
    recording so adds it again when run again, which failed every later run (duplicate name)."""
    from parity.copy import _add_foreign_key

    target = make_db(target_name)
    target.sql("CREATE TABLE p (id INT PRIMARY KEY)", "CREATE TABLE c (id INT PRIMARY KEY, p INT)")
    endpoint = target.endpoint("target")
    sql = (
        f"ALTER TABLE {endpoint.qualified('c')} ADD CONSTRAINT fk_c_p FOREIGN KEY (p)"
        f" REFERENCES {endpoint.qualified('p')} (id)"
    )
    # again as checked, and on MySQL again after a check step (FK checks off)
    for checked in ([], [], *([[True]] if target_name == "mariadb" else [])):
        warnings: list[str] = []
        with endpoint.begin() as conn:
            _add_foreign_key(conn, endpoint.dialect, "c", warnings, list(checked), sql)
        assert warnings == []
    with pytest.raises(sa.exc.IntegrityError):
        target.sql("INSERT INTO c VALUES (1, 5)")


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite"])
def test_mariadb_names_with_backticks(make_db: Callable[[str], Database], target_name: str) -> None:
    """SQLAlchemy reflects MySQL's column b`q as b``q (SHOW CREATE TABLE's text): no statement found
    it, so copy and diff of such a table failed."""
    source, target = make_db("mariadb"), make_db(target_name)
    source.sql(
        "CREATE TABLE bq (id INT PRIMARY KEY, `b``q` INT, UNIQUE KEY `u``k` (`b``q`))",
        "INSERT INTO bq VALUES (1, 10), (2, 20)",
    )
    (table,) = source.reflect("bq")
    assert [c.name for c in table.columns] == ["id", "b`q"]
    assert [u.columns for u in table.uniques] == [("b`q",)]
    copy_ok(job_for(source, target), mode="merge")
    assert target.query(f"SELECT id, {target.q('b`q')} FROM bq ORDER BY id") == [(1, 10), (2, 20)]
    assert diff(job_for(source, target)).identical


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_merge_by_a_key_holding_null_is_refused(make_db: Callable[[str], Database], target_name: str) -> None:
    """A row whose merge key is NULL matches no row of the target (NULLs are distinct in a unique
    key): every merge would add it again. Such a key is refused, with the count, before rows move."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)",
        "INSERT INTO people VALUES (1, 'a@x', 'Ann'), (2, NULL, 'Bob'), (3, NULL, 'Cy')",
    )
    by_email = {"key": ["email"]}
    with pytest.raises(DataError, match=r"'people': 2 rows have a NULL key \(email\)"):
        copy(job_for(source, target, table_options=by_email), mode="merge")
    assert target.tables() == []  # (refused before any DDL)
    copy_ok(job_for(source, target))
    with pytest.raises(
        DataError, match=r"'people': 2 rows have a NULL key \(email\).*merge by a key without NULLs"
    ):
        copy(job_for(source, target, table_options=by_email), mode="merge")
    assert target.query("SELECT COUNT(*) FROM people") == [(3,)]
    # rows a --where leaves out are not counted; by the primary key (never NULL), merge runs
    source.sql("UPDATE people SET name = 'Ann B' WHERE id = 1")
    result = copy_ok(
        job_for(source, target, table_options={**by_email, "where": "email IS NOT NULL"}), mode="merge"
    )
    assert result.tables[0].rows_written == 1
    copy_ok(job_for(source, target), mode="merge")
    copy_ok(job_for(source, target), mode="merge")
    assert target.query("SELECT id, email, name FROM people ORDER BY id") == [
        (1, "a@x", "Ann B"), (2, None, "Bob"), (3, None, "Cy"),
    ]  # fmt: skip


def test_oracle_generated_always_takes_no_ids(small: Database, oracle_db: Database) -> None:
    """Oracle's GENERATED ALWAYS identity takes no value from any INSERT: a copy that would give it
    the source's ids (every row refused) is refused before a row moves; with --remap-ids the target
    numbers the rows. (Runs where PARITY_TEST_ORACLE_URL is set.)"""
    oracle_db.sql(
        "CREATE TABLE items (id NUMBER(10) GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name VARCHAR2(20) NOT NULL, price NUMBER(8,2))"
    )
    with pytest.raises(DataError, match=r"'items': oracle numbers column 'id' itself \(GENERATED ALWAYS\)"):
        copy(job_for(small, oracle_db), mode="append")
    assert oracle_db.query("SELECT COUNT(*) FROM items") == [(0,)]
    copy_ok(job_for(small, oracle_db), mode="append", remap_ids=True)
    assert [r[0] for r in oracle_db.query("SELECT name FROM items ORDER BY id")] == ["one", "two", "three"]


def test_a_column_the_target_never_takes_ids_for_refuses_the_copy(
    small: Database, pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal above, on a live PostgreSQL told to answer as Oracle does for its GENERATED ALWAYS
    identity (PostgreSQL's own takes ids with OVERRIDING SYSTEM VALUE): copy and sync refuse before
    writing, sync before another table's rows too; --remap-ids copies."""
    from parity.dialects.postgresql import PostgreSQL
    from parity.sync import sync

    pg_db.sql(
        "CREATE TABLE items (id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name VARCHAR(20), price NUMERIC(8,2))",
        "CREATE TABLE aa (id INTEGER PRIMARY KEY, v TEXT)",
    )
    small.sql("CREATE TABLE aa (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO aa VALUES (1, 'synced first')")
    monkeypatch.setattr(
        PostgreSQL,
        "ids_never_written",
        lambda self, conn, target, table: {"id"} if table == "items" else set(),
    )
    with pytest.raises(DataError, match=r"numbers column 'id' itself \(GENERATED ALWAYS\).*--remap-ids"):
        copy(job_for(small, pg_db, tables=["items"]), mode="append")
    with pytest.raises(DataError, match=r"'items': .* numbers column 'id' itself.*cannot be inserted"):
        sync(job_for(small, pg_db))
    assert pg_db.query("SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM aa)") == [(0, 0)]
    copy_ok(job_for(small, pg_db, tables=["items"]), mode="append", remap_ids=True)
    assert [r[0] for r in pg_db.query("SELECT name FROM items ORDER BY id")] == ["one", "two", "three"]


def test_only_values_the_driver_could_not_load_are_read_again_as_text(pg_db: Database) -> None:
    """A chunk is read again with lenient loaders only for a value psycopg could not make (no SQLSTATE:
    the server sent it fine); the server's own data errors (a --where's bad cast) fail at once."""
    from parity.endpoint import driver_could_not_load

    outcomes = {}
    for sql in ("SELECT 'infinity'::timestamp", "SELECT '24:00'::time", "SELECT 'x'::int", "SELECT 1 / 0"):
        with pytest.raises(sa.exc.DataError) as caught, pg_db.engine.connect() as conn:
            conn.exec_driver_sql(sql).all()
        outcomes[sql] = driver_could_not_load(caught.value)
    assert outcomes == {
        "SELECT 'infinity'::timestamp": True,
        "SELECT '24:00'::time": True,
        "SELECT 'x'::int": False,
        "SELECT 1 / 0": False,
    }


def test_integers_arrive_in_sqlite_as_integers(pg_db: Database, make_db: Callable[[str], Database]) -> None:
    """PostgreSQL's text of an integer is bound as it is (the column's INTEGER affinity makes it the
    integer, as SQLite's decimals are made numbers): each value is stored as an integer, exactly, at
    both ends of BIGINT too."""
    pg_db.sql(
        "CREATE TABLE n (id BIGINT PRIMARY KEY, i INTEGER, s SMALLINT)",
        "INSERT INTO n VALUES (9223372036854775807, -2147483648, -32768), (-9223372036854775808, NULL, 0),"
        " (7, 2147483647, 32767)",
    )
    lite = make_db("sqlite")
    copy_ok(job_for(pg_db, lite))
    rows = lite.query("SELECT id, typeof(id), i, typeof(i), s, typeof(s) FROM n ORDER BY id")
    assert rows == [
        (-9223372036854775808, "integer", None, "null", 0, "integer"),
        (7, "integer", 2147483647, "integer", 32767, "integer"),
        (9223372036854775807, "integer", -2147483648, "integer", -32768, "integer"),
    ]


def _lock_conflict(db: Database, backend: str) -> BaseException:
    """A real failure of a write for no row's fault: a row locked by another session (PostgreSQL's
    lock_timeout, MariaDB's lock wait timeout, SQLite's locked file, DuckDB's write conflict)."""
    db.sql("CREATE TABLE locked (id INTEGER PRIMARY KEY, v INTEGER)", "INSERT INTO locked VALUES (1, 0)")
    holder, other = db.engine.connect(), db.engine.connect()
    try:
        holder.exec_driver_sql("UPDATE locked SET v = 1 WHERE id = 1")  # (its transaction stays open)
        setup = {
            "postgresql": "SET lock_timeout = '100ms'",
            "mariadb": "SET SESSION innodb_lock_wait_timeout = 1",
            "sqlite": "PRAGMA busy_timeout = 0",
        }.get(backend)
        if setup:
            other.exec_driver_sql(setup)
            other.commit()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            other.exec_driver_sql("UPDATE locked SET v = 2 WHERE id = 1")
            other.commit()
        return caught.value
    finally:
        other.close()
        holder.close()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite", "duckdb"])
def test_server_failures_are_told_from_row_refusals(make_db: Callable[[str], Database], backend: str) -> None:
    """What the copy engine takes for a row's refusal (a key written twice, a NULL where none is taken) and what
    it takes for a failure of the server or session (here a lock held by another session), on each
    database's real errors."""
    from parity.endpoint import blames_no_row, server_error

    db = make_db(backend)
    conflict = _lock_conflict(db, backend)
    assert server_error(conflict) and blames_no_row(conflict), conflict
    with pytest.raises(sa.exc.DBAPIError) as caught, db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO locked VALUES (1, 5)")
    assert not server_error(caught.value) and not blames_no_row(caught.value), caught.value
    db.sql("CREATE TABLE required (v INTEGER NOT NULL)")
    with pytest.raises(sa.exc.DBAPIError) as caught, db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO required VALUES (NULL)")
    assert not blames_no_row(caught.value), caught.value


def _numbered(db: Database, rows: int) -> None:
    db.sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER)")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO nums VALUES (:id, :v)"), [{"id": i, "v": i} for i in range(1, rows + 1)]
        )


def test_refused_writes_past_the_lock_budget_fail_the_chunk_in_postgresql(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each write PostgreSQL refuses under a savepoint keeps a lock (the subtransaction's XID) until
    the chunk commits, from a lock table the server shares: isolating 10,000 refused rows of one chunk
    ran it out ("out of shared memory", for every session). Past ``FAILED_SAVEPOINTS`` refused writes
    the chunk is rolled back and the table fails, saying why; under it, the rows are isolated."""
    from parity.dialects.postgresql import PostgreSQL

    source, target = make_db("sqlite"), make_db("postgresql")
    _numbered(source, 200)
    target.sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER CHECK (mod(v, 20) <> 0))")
    rejects = tmp_path / "rejects.jsonl"
    monkeypatch.setattr(PostgreSQL, "FAILED_SAVEPOINTS", 8)
    (table,) = copy_closed(job_for(source, target), mode="append", rejects_file=str(rejects)).tables
    assert table.status == "failed" and "refused more than 8 writes in one chunk" in (table.error or "")
    assert target.query("SELECT COUNT(*) FROM nums") == [(0,)] and not rejects.exists()
    monkeypatch.setattr(PostgreSQL, "FAILED_SAVEPOINTS", 2000)
    (table,) = copy_closed(job_for(source, target), mode="append", rejects_file=str(rejects)).tables
    assert (table.status, table.rows_written, table.rejected) == ("ok", 190, 10)


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_an_append_run_again_rejects_rows_already_there_without_a_write_each(
    make_db: Callable[[str], Database], target_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An append run again: every row's key is in the target already. Such rows of a refused batch are
    found by one query and rejected, not by a refused write each (which in PostgreSQL holds a lock
    apiece: with a budget of 2 refused writes, the table still goes through). A row that is new is
    written; one refused for another reason is still isolated."""
    from parity.dialects.postgresql import PostgreSQL

    source, target = make_db("sqlite"), make_db(target_name)
    _numbered(source, 300)
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(job_for(source, target), mode="append").tables
    assert (table.status, table.rows_written) == ("ok", 300)
    source.sql("INSERT INTO nums VALUES (301, 301)")
    target.sql("DELETE FROM nums WHERE id = 150")
    monkeypatch.setattr(PostgreSQL, "FAILED_SAVEPOINTS", 2)
    (table,) = copy_closed(job_for(source, target), mode="append", rejects_file=str(rejects)).tables
    assert (table.status, table.rows_written, table.rejected) == ("ok", 2, 299)
    reasons = {json.loads(line)["reason"] for line in rejects.read_text().splitlines()}
    assert "duplicate key: id=1 is in the target already" in reasons and len(reasons) == 299
    assert target.query("SELECT COUNT(*), SUM(v) FROM nums") == [(301, sum(range(1, 302)))]


# ---- a run made again after one that stopped ------------------------------------------------------

_REFUSE_LINE_3 = {
    "sqlite": "CREATE TRIGGER no3 BEFORE INSERT ON lines WHEN NEW.id = 3 BEGIN SELECT RAISE(ABORT, 'no'); END",
    "mariadb": "CREATE TRIGGER no3 BEFORE INSERT ON `lines` FOR EACH ROW IF NEW.id = 3 THEN"
    " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no'; END IF",
}


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("target_name", ["sqlite", "mariadb"])
def test_a_run_made_again_copies_only_what_the_stopped_one_did_not_finish(
    make_db: Callable[[str], Database], target_name: str, mode: str
) -> None:
    """A run that stopped (here 'lines' failed; killed is the same) and is made again skipped none of
    the tables that run had finished: append added 'orders' a second time (every row refused, or a
    keyless table doubled), and replace emptied 'orders' again, which 'lines', resumed, references:
    "cannot empty orders: lines (not copied) references them", on every run after. Now the tables it
    finished are skipped, and once a run of them ends with every table copied, the next starts anew."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(*KEYED, "CREATE TABLE notes (body VARCHAR(20))", "INSERT INTO notes VALUES ('x'), ('y')")
    copy_ok(job_for(source, target), mode="replace")  # (the tables, and their keys, are in the target)
    q = target.q
    target.sql(
        f"DELETE FROM {q('lines')}", "DELETE FROM notes", "DELETE FROM orders", _REFUSE_LINE_3[target_name]
    )
    stopped = copy_closed(job_for(source, target), mode=mode, max_rejects=0)
    assert {t.target: t.status for t in stopped.tables} == {"orders": "ok", "notes": "ok", "lines": "failed"}
    target.sql("DROP TRIGGER no3")
    again = copy_ok(job_for(source, target), mode=mode)
    assert {t.target: (t.rows_written, t.skipped) for t in again.tables} == {
        "orders": (0, 3),
        "notes": (0, 2),
        "lines": (3, 0),
    }
    counts = [target.query(f"SELECT COUNT(*) FROM {q(t)}")[0][0] for t in ("orders", "notes", "lines")]
    assert counts == [3, 2, 3]
    anew = copy_closed(job_for(source, target), mode=mode)  # (the run before ended whole)
    expected = [3, 2, 3] if mode == "replace" else [3, 4, 3]  # (append adds the keyless rows again)
    assert [
        target.query(f"SELECT COUNT(*) FROM {q(t)}")[0][0] for t in ("orders", "notes", "lines")
    ] == expected
    assert all(t.skipped == 0 for t in anew.tables)


def test_replace_with_remap_ids_made_again_copies_every_row(make_db: Callable[[str], Database]) -> None:
    """Replace emptied the tables but kept their old -> new IDs in _parity_id_map: a second run took
    every row for copied already, skipped them all, and left the tables empty, saying ok."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(*KEYED)
    for _ in range(2):
        result = copy_ok(job_for(source, target), mode="replace", remap_ids=True)
        assert [(t.rows_written, t.skipped) for t in result.tables] == [(3, 0), (3, 0)]
        assert target.query("SELECT COUNT(*) FROM orders") == [(3,)]
        assert target.query("SELECT COUNT(*) FROM lines l JOIN orders o ON o.id = l.order_id") == [(3,)]
        assert target.query("SELECT COUNT(*) FROM _parity_id_map") == [(6,)]


def test_a_run_stopped_among_the_ddl_still_adds_the_keys_that_wait_for_the_rows(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB commits each DDL statement: the record of the FKs and keys to add after the rows was
    written after the last CREATE TABLE, so a run killed among them lost it, and the run made again
    ended without those FKs and keys, saying nothing. Now the record is committed first."""
    from parity.schema import apply as apply_module

    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(*KEYED)
    real_run = apply_module._run

    def killed_after_the_last_table(conn: Any, sql: str, table: str) -> None:
        real_run(conn, sql, table)
        if table == "lines":
            raise KeyboardInterrupt  # (as a kill: nothing of parity's own runs after it)

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(apply_module, "_run", killed_after_the_last_table)
        copy_closed(job_for(source, target))
    assert {"orders", "lines"} <= set(target.tables()) and _foreign_keys(target, "lines") == []
    copy_ok(job_for(source, target))
    assert _foreign_keys(target, "lines") == [(["order_id"], "orders")]
    with target.endpoint().connect() as conn:
        uniques = sa.inspect(conn).get_unique_constraints("orders", schema=target.schema)
        indexes = sa.inspect(conn).get_indexes("orders", schema=target.schema)
    assert [u["column_names"] for u in uniques] + [i["column_names"] for i in indexes if i["unique"]]


@pytest.mark.parametrize("target_name", ["postgresql", "sqlite", "duckdb"])
def test_a_mariadb_float_arrives_exactly(make_db: Callable[[str], Database], target_name: str) -> None:
    """MariaDB sends a FLOAT as 6 significant digits of text: 123456.8 arrived as 123457 and
    1.000004 as 1, on the text path and the values path alike. Read as a DOUBLE, the 4-byte value
    arrives whole."""
    source, target = make_db("mariadb"), make_db(target_name)
    source.sql(
        "CREATE TABLE ff (id INTEGER PRIMARY KEY, f FLOAT)",
        "INSERT INTO ff VALUES (1, 123456.8), (2, 1.000004)",
    )
    copy_ok(job_for(source, target))
    stored = dict(target.query("SELECT id, f FROM ff"))
    assert stored == {1: pytest.approx(123456.8, rel=1e-7), 2: pytest.approx(1.000004, rel=1e-7)}


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_chunk_the_target_rolls_back_for_a_deadlock_is_made_again(
    small: Database, pg_db: Database, mode: str, tmp_path: Path
) -> None:
    """A deadlock's victim (SQLSTATE 40P01; 40001, MySQL's 1213 and 1205 alike) has its transaction
    rolled back by the database: the chunk is made again, and the table goes through whole, with
    nothing rejected. (A trigger fails the first write with a serialization failure; a sequence, which
    no rollback takes back, counts the tries.)"""
    pg_db.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2))",
        "CREATE SEQUENCE tries",
        f"CREATE FUNCTION once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF nextval('{pg_db.schema}.tries') = 1 THEN"
        " RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER once BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION once()",
    )
    rejects = tmp_path / "rejects.jsonl"
    (table,) = copy_closed(job_for(small, pg_db), mode=mode, rejects_file=str(rejects)).tables
    assert (table.status, table.rows_written, table.rejected) == ("ok", 3, 0) and not rejects.exists()
    assert sorted(r[0] for r in pg_db.query("SELECT id FROM items")) == [1, 2, 3]


def test_a_run_stopped_before_its_tables_start_does_not_make_the_next_skip_them(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ended whole leaves its tables "done"; the next run, stopped after it marked itself
    running but before it started its tables (planning chunks), made the run after take those "done"
    for its own and skip them: replace emptied nothing and copied nothing, saying ok."""
    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(*KEYED)
    copy_ok(job_for(source, target), mode="replace")
    target.sql("UPDATE orders SET n = 0")

    def stopped(*args: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(copy_module, "_plan_chunks", stopped)
        copy_closed(job_for(source, target), mode="replace")
    again = copy_ok(job_for(source, target), mode="replace")
    assert [(t.rows_written, t.skipped) for t in again.tables] == [(3, 0), (3, 0)]
    assert target.query("SELECT SUM(n) FROM orders") == [(40,)]


@pytest.fixture
def views_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A view under a copied table's name makes its CREATE TABLE fail half-way through an apply, as
    these tests need; parity says so before any DDL (``_no_view_in_place``), which is switched off."""
    import parity.schema.apply as apply_module

    monkeypatch.setattr(apply_module, "_no_view_in_place", lambda job, missing: None)


def test_a_failed_schema_apply_on_mariadb_takes_back_the_columns_it_added(
    make_db: Callable[[str], Database], views_unchecked: None
) -> None:
    """MariaDB commits each DDL statement: a column added to an existing table stayed when a later
    statement of the apply failed (PostgreSQL rolled it back; the audit). The undo drops it too."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(*KEYED)
    target.sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)")  # (no n)
    target.sql("CREATE VIEW `lines` AS SELECT 1 AS id")
    with pytest.raises(ParityError, match="schema change for table 'lines' failed"):
        copy_closed(job_for(source, target))
    assert [c for (c,) in target.query("SELECT column_name FROM information_schema.columns WHERE"
                                       " table_schema = DATABASE() AND table_name = 'orders' ORDER BY 1")] == [
        "code", "id"
    ]  # fmt: skip


def test_a_failed_schema_apply_on_mariadb_leaves_no_record_of_keys_to_add(
    make_db: Callable[[str], Database], views_unchecked: None
) -> None:
    """Where DDL commits on its own, the keys and FKs that wait for the rows are recorded before the
    first CREATE TABLE; an apply that fails drops the tables it made, and now forgets that record too
    (a later run would otherwise add keys to a table it did not make)."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(*KEYED, "CREATE TABLE emp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES emp (id))")
    target.sql("CREATE VIEW `lines` AS SELECT 1 AS id")  # (not a table: its CREATE TABLE fails)
    with pytest.raises(ParityError, match="schema change for table 'lines' failed"):
        copy_closed(job_for(source, target))
    assert "orders" not in target.tables() and "emp" not in target.tables()
    assert _every_table(target) == []
    other = make_db("sqlite")
    other.sql("CREATE TABLE kept (id INTEGER PRIMARY KEY)")
    copy_ok(job_for(other, target))  # (parity's tables the target had before are kept)
    with pytest.raises(ParityError, match="schema change for table 'lines' failed"):
        copy_closed(job_for(source, target))
    assert "orders" not in target.tables() and "emp" not in target.tables()
    waiting = target.query("SELECT COUNT(*) FROM _parity_state WHERE task LIKE 'fks %' OR task LIKE 'keys %'")
    assert waiting == [(0,)]


def test_a_failed_schema_apply_on_postgresql_leaves_none_of_parity_s_tables(
    make_db: Callable[[str], Database], views_unchecked: None
) -> None:
    """Where DDL is transactional, the record of the keys waiting for the rows is made in the apply's
    transaction: a failed apply left ``_parity_state`` and ``_parity_id_map`` in a target it otherwise
    left as it was."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(*KEYED, "CREATE TABLE emp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES emp (id))")
    target.sql('CREATE VIEW "lines" AS SELECT 1 AS id')
    with pytest.raises(ParityError, match="schema change for table 'lines' failed"):
        copy_closed(job_for(source, target))
    assert _every_table(target) == []


def _every_table(db: Database) -> list[str]:
    """The database's tables, parity's own among them."""
    ep = db.endpoint()
    with ep.connect() as conn:
        return sorted(ep.dialect.table_names(conn, ep.schema))


def test_a_table_a_failed_apply_could_not_drop_keeps_its_record_of_keys_to_add(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch, views_unchecked: None
) -> None:
    """Where the undo of a failed apply cannot drop a table it made, the table stays, and the next run
    does not make it again: the record of its keys and FKs waiting for the rows must stay too."""
    from parity.schema import apply

    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(*KEYED, "CREATE TABLE emp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES emp (id))")
    target.sql("CREATE VIEW `lines` AS SELECT 1 AS id")
    with monkeypatch.context() as patched, pytest.raises(ParityError, match="table 'lines' failed"):
        patched.setattr(apply, "_undo", lambda job, created, added=(): None)  # (as a DROP the server refused)
        copy_closed(job_for(source, target))
    assert "emp" in target.tables()
    recorded = target.query("SELECT task FROM _parity_state WHERE task LIKE 'fks %' OR task LIKE 'keys %'")
    # (emp's FK to itself: it waits for the rows; orders' index: built again at its finish, as a run
    # killed between the table and its index left it without one)
    assert sorted(r[0].split()[0] for r in recorded) == ["fks", "keys"], recorded
    target.sql("DROP VIEW `lines`")
    copy_ok(job_for(source, target))
    assert _foreign_keys(target, "emp") == [(["boss"], "emp")]
    assert _foreign_keys(target, "lines") == [(["order_id"], "orders")]
    assert target.query(
        "SELECT COUNT(*) FROM _parity_state WHERE task LIKE 'fks %' OR task LIKE 'keys %'"
    ) == [(0,)]


def test_merge_keys_are_shared_by_their_exact_text_not_the_source_collation(
    make_db: Callable[[str], Database],
) -> None:
    """'a' and 'A' are one key to MariaDB's default collation but two to PostgreSQL: a merge of
    them into PostgreSQL by -k is no key held twice. 'b' and 'b' are."""
    source, target = make_db("mariadb"), make_db("postgresql")
    source.sql(
        "CREATE TABLE nopk (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL, v INTEGER)",
        "INSERT INTO nopk VALUES (1, 'a', 1), (2, 'A', 2)",
    )
    (table,) = copy_closed(job_for(source, target, table_options={"key": ["code"]}), mode="merge").tables
    assert table.status == "ok" and sorted(target.query("SELECT code FROM nopk")) == [("A",), ("a",)]
    source.sql("INSERT INTO nopk VALUES (3, 'b', 3), (4, 'b', 4)")
    job = job_for(source, target, table_options={"key": ["code"]})
    with pytest.raises(DataError, match=r"share a merge key \(code\), e\.g\. \('b'\)"):
        copy_closed(job, mode="merge")
    # (the other way: PostgreSQL keeps 'c' and 'C ' apart, a MariaDB key of its default collation not:
    # a table parity makes there compares its keys exactly, one that exists may not)
    back, made = make_db("mariadb"), make_db("mariadb")
    target.sql("CREATE TABLE other (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL)",
               "INSERT INTO other VALUES (1, 'c'), (2, 'C ')")  # fmt: skip
    back.sql("CREATE TABLE other (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)")
    job = job_for(target, back, tables=["other"], table_options={"key": ["code"]})
    folded = r"share a merge key \(code\) as the target compares text \(ignoring case and trailing spaces\)"
    with pytest.raises(DataError, match=folded + r", e\.g\. \('c'\)"):
        copy_closed(job, mode="merge")
    copy_ok(job_for(target, made, tables=["other"], table_options={"key": ["code"]}), mode="merge")
    assert sorted(made.query("SELECT code FROM other")) == [("C ",), ("c",)]
    # (a key the source holds unique by its exact text: into a table of the server's collation, merge
    # wrote 'go', 'Go' and 'GO' into one row and said all three written; the audit)
    target.sql("CREATE TABLE tags (slug VARCHAR(10) PRIMARY KEY, n INTEGER)",
               "INSERT INTO tags VALUES ('go', 1), ('Go', 2), ('GO', 3)")  # fmt: skip
    back.sql("CREATE TABLE tags (slug VARCHAR(10) PRIMARY KEY, n INTEGER)")
    job = job_for(target, back, tables=["tags"])
    with pytest.raises(DataError, match=folded.replace("code", "slug") + r", e\.g\. \('go'\)"):
        copy_closed(job, mode="merge")
    assert back.query("SELECT count(*) FROM tags") == [(0,)]


def test_mariadb_double_with_digits_stays_a_double(mariadb_db: Database, pg_db: Database) -> None:
    """MySQL's ``DOUBLE(M,D)`` gives the digits shown, not bits: ``DOUBLE(12,4)`` was read as a 4-byte
    float (``M <= 24``), created as ``real`` and copied rounded (99999999.9999 as 100000000), and diff
    called both sides identical (the audit). ``FLOAT(M,D)`` is a 4-byte float, as MySQL keeps it."""
    mariadb_db.sql(
        "CREATE TABLE nums (id INT PRIMARY KEY, dd DOUBLE(12,4), d2 DOUBLE(5,2), ff FLOAT(7,2))",
        "INSERT INTO nums VALUES (1, 99999999.9999, 123.45, 12345.67), (2, 1234.5678, -0.01, 0.5)",
    )
    (table,) = mariadb_db.reflect("nums")
    assert {c.name: str(c.type) for c in table.columns} == {
        "id": "integer", "dd": "double", "d2": "double", "ff": "float"
    }  # fmt: skip
    copy_ok(job_for(mariadb_db, pg_db))
    assert pg_db.query("SELECT id, dd, d2 FROM nums ORDER BY id") == [
        (1, 99999999.9999, 123.45),
        (2, 1234.5678, -0.01),
    ]
    # (MariaDB stores -0.01 in a DOUBLE(5,2) as -0.010000000000000009 and shows it as -0.01, which copy
    # reads: the hashes of the two doubles differ, the rows are downloaded and compare equal)
    assert diff(job_for(mariadb_db, pg_db)).identical


def test_tables_made_in_a_latin1_mariadb_database_hold_every_character(
    pg_db: Database, mariadb_db: Database
) -> None:
    """A MariaDB database whose default character set is latin1: the tables parity creates there (the
    copied ones, its state, a diff's discrepancies) are utf8mb4, so an emoji arrives (it was refused:
    'Incorrect string value', the audit)."""
    name = mariadb_db.url.rsplit("/", 1)[1]
    mariadb_db.sql(f"ALTER DATABASE `{name}` CHARACTER SET latin1 COLLATE latin1_swedish_ci")
    pg_db.sql("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)", "INSERT INTO notes VALUES (1, 'ok 🎉 ✓')")
    copy_ok(job_for(pg_db, mariadb_db))
    assert mariadb_db.query("SELECT body FROM notes") == [("ok 🎉 ✓",)]
    pg_db.sql("UPDATE notes SET body = 'now 🚀'")
    found = diff(job_for(pg_db, mariadb_db), output="_parity_discrepancies")
    assert [d.kind for d in found.differences] == ["changed"]
    stored = mariadb_db.query("SELECT source_value FROM _parity_discrepancies WHERE column_name = 'body'")
    assert [v for (v,) in stored] == ["now 🚀"]
    collations = mariadb_db.query(
        "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = :s",
        s=name,
    )
    assert {t: c.split("_")[0] for t, c in collations} == {
        t: "utf8mb4" for t in ("notes", "_parity_state", "_parity_id_map", "_parity_discrepancies")
    }


@pytest.mark.parametrize("target_name", ["mariadb", "sqlite"])
def test_a_partial_unique_index_is_made_without_its_condition_and_not_unique(
    pg_db: Database, make_db: Callable[[str], Database], target_name: str
) -> None:
    """A partial unique index (unique among the rows its WHERE takes) became a unique index on every
    row, which refused a row the source holds ('Duplicate entry', the audit): its condition is the
    source's SQL, so the index is made plain, with a warning."""
    target = make_db(target_name)
    pg_db.sql(
        "CREATE TABLE users (id INT PRIMARY KEY, nm TEXT, deleted BOOLEAN NOT NULL)",
        "CREATE UNIQUE INDEX users_nm_live ON users (nm) WHERE NOT deleted",
        "INSERT INTO users VALUES (1, 'bob', false), (2, 'bob', true)",
    )
    result = copy_ok(job_for(pg_db, target))
    assert any("partial index users_nm_live (WHERE (NOT deleted))" in w for w in result.schema.warnings)
    assert target.query("SELECT id FROM users ORDER BY id") == [(1,), (2,)]
    (users,) = target.reflect("users")
    assert [(ix.columns, ix.unique) for ix in users.indexes] == [(("nm",), False)]


def test_a_row_postgresql_refuses_is_rejected_naming_its_column(
    sqlite_db: Database, pg_db: Database, tmp_path: Path
) -> None:
    """A unique index names the key it found twice in the error's detail, which was cut off (the
    audit); PostgreSQL names no column of a value too long for it, but its COPY does (below)."""
    sqlite_db.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(3), n INTEGER)",
        "INSERT INTO t VALUES (1, 'abc', 1), (2, 'abcdef', 2), (3, 'x', 3)",
    )
    pg_db.sql(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s VARCHAR(3), n INTEGER UNIQUE)",
        "INSERT INTO t VALUES (9, 'y', 3)",
    )
    rejects = tmp_path / "rejects.jsonl"
    result = copy(job_for(sqlite_db, pg_db), mode="append", rejects_file=str(rejects))
    assert [(t.rows_written, t.rejected) for t in result.tables] == [(1, 2)]
    reasons = {r["row"]["id"]: r["reason"] for r in map(json.loads, rejects.read_text().splitlines())}
    assert reasons[2] == "value too long for type character varying(3)", reasons
    assert (
        reasons[3] == 'duplicate key value violates unique constraint "t_n_key": Key (n)=(3) already exists.'
    )
    refusal = pytest.raises(psycopg.errors.InvalidTextRepresentation)
    with refusal as refused, pg_db.engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy("COPY t (id, s, n) FROM STDIN") as feed:
            feed.write(b"7\tok\t7\n8\tok\tnot a number\n")
    assert driver_message(refused.value) == 'invalid input syntax for type integer: "not a number" (column n)'


def test_a_mariadb_time_beyond_a_day_is_named_as_mariadb_writes_it(
    mariadb_db: Database, pg_db: Database, tmp_path: Path
) -> None:
    """A TIME of 838:59:59 or -12:30:00 is no time of day elsewhere: rejected, its reason naming it as
    MariaDB writes it (it read '34 days, 22:59:59' and '-1 day, 11:30:00', Python's text; the audit)."""
    mariadb_db.sql(
        "CREATE TABLE shifts (id INT PRIMARY KEY, t TIME)",
        "INSERT INTO shifts VALUES (1, '838:59:59'), (2, '-12:30:00'), (3, '08:00:00')",
    )
    rejects = tmp_path / "rejects.jsonl"
    result = copy(job_for(mariadb_db, pg_db), rejects_file=str(rejects))
    assert [(t.rows_written, t.rejected) for t in result.tables] == [(1, 2)]
    reasons = sorted(json.loads(line)["reason"] for line in rejects.read_text().splitlines())
    assert [("838:59:59" in r, "-12:30:00" in r, "day" in r.replace("time of day", "")) for r in reasons] == [
        (False, True, False),
        (True, False, False),
    ], reasons


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_booleans_an_sqlite_file_holds_as_text_are_booleans(
    sqlite_db: Database, make_db: Callable[[str], Database], target_name: str
) -> None:
    """Old Rails wrote SQLite's booleans as 't' and 'f' (a DEFAULT 't' too): every row was rejected,
    "'t' is no boolean" (the audit). The texts PostgreSQL reads as booleans are those; diff agrees."""
    target = make_db(target_name)
    sqlite_db.sql(
        "CREATE TABLE flags (id INTEGER PRIMARY KEY, on_ BOOLEAN DEFAULT 't', b BOOLEAN)",
        "INSERT INTO flags (id, b) VALUES (1, 'f'), (2, 'TRUE'), (3, 1), (4, 0), (5, NULL)",
    )
    copy_ok(job_for(sqlite_db, target))
    assert target.query("SELECT id, on_, b FROM flags ORDER BY id") == [
        (1, True, False), (2, True, True), (3, True, True), (4, True, False), (5, True, None)
    ]  # fmt: skip
    found = diff(job_for(sqlite_db, target))
    assert found.identical and found.tables[0].stats.rows_downloaded == 0, found.tables[0].stats


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_a_copy_run_again_in_append_says_how_to_update(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A second copy in the default mode, append, refused every row as a key the target holds, with
    only the rejects file to say why (the audit): it says merge updates them."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql("CREATE TABLE ap (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO ap VALUES (1, 'a'), (2, 'b')")
    first = copy_ok(job_for(source, target))
    assert not [w for w in first.warnings if "--mode merge" in w]
    again = copy_closed(job_for(source, target))
    assert again.tables[0].rejected == 2
    assert [w for w in again.warnings if "--mode merge" in w] == [
        "ap: 2 rows refused as keys the target holds already (append adds rows): --mode merge updates them,"
        " --mode replace copies the table anew"
    ], again.warnings


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_since_copies_the_rows_changed_since_the_last_run(
    make_db: Callable[[str], Database], target_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oracle-cdc-spark's users keep a timestamp watermark for restarts: `--since updated_at` (merge)
    copies every row once, then only the rows whose updated_at is at or past the watermark the last
    whole run kept (the target's `_parity_state`); a run that fails keeps the old one."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, v TEXT, updated_at TIMESTAMP)",
        *(f"INSERT INTO acct VALUES ({n}, 'v{n}', '2024-01-01 00:00:{n:02d}')" for n in range(1, 41)),
    )
    first = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert first.tables[0].rows_read == 40 and first.notes == [
        "acct: every row; the next run copies those from 2024-01-01 00:00:40 on"
    ], first.notes
    source.sql(
        "UPDATE acct SET v = 'changed', updated_at = '2024-01-02 00:00:00' WHERE id = 3",
        "INSERT INTO acct VALUES (41, 'new', '2024-01-02 00:00:01')",
    )
    second = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert second.tables[0].rows_read == 3  # (id 40 at the watermark, again; 3 and 41)
    assert second.notes[0].startswith("acct: the rows whose updated_at is 2024-01-01 00:00:40 or later")
    assert target.query("SELECT v FROM acct WHERE id IN (3, 41) ORDER BY id") == [("changed",), ("new",)]
    assert target.query("SELECT COUNT(*) FROM acct") == [(41,)]
    third = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert third.tables[0].rows_read == 1  # (the row at the watermark only)
    source.sql("UPDATE acct SET v = 'later', updated_at = '2024-01-03 00:00:00' WHERE id = 5")

    def stopped(*args: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):  # (killed: no new watermark)
        patched.setattr(copy_module, "_plan_chunks", stopped)
        copy_closed(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    again = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert again.tables[0].rows_read == 2  # (41 at the watermark the third run kept, and 5)
    assert target.query("SELECT v FROM acct WHERE id = 5") == [("later",)]
    # a row with no time in it is copied by every run; a run that rejects a row keeps its watermark,
    # so the row is read again once its cause is mended (the audit: both were never copied again)
    source.sql(
        "INSERT INTO acct VALUES (42, 'no time', NULL)",
        "INSERT INTO acct VALUES (43, 'new', '2024-01-04 00:00:00')",
        "INSERT INTO acct VALUES (44, 'y', '2024-01-04 00:00:01')",
    )
    target.sql(
        "CREATE UNIQUE INDEX acct_v ON acct (v(20))"
        if target_name == "mariadb"
        else "CREATE UNIQUE INDEX acct_v ON acct (v)"
    )  # ('new' is 41's: 43 is refused)
    refused = copy_closed(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert refused.tables[0].rejected == 1 and "the next run copies the same rows again" in refused.notes[0]
    target.sql("DROP INDEX acct_v" + (" ON acct" if target_name == "mariadb" else ""))
    mended = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert mended.tables[0].rows_read == 4  # (5 at the old watermark, 42 without a time, 43 and 44)
    assert target.query("SELECT id FROM acct WHERE id >= 42 ORDER BY id") == [(42,), (43,), (44,)]
    job = job_for(source, target, table_options={"since": "updated_at"})
    try:
        with pytest.raises(ConfigError, match="it needs --mode merge"):
            copy(job, mode="append")
        job2 = job_for(source, target, table_options={"since": "updated"})
        with pytest.raises(NotFound, match="did you mean 'updated_at'"):
            copy(job2, mode="merge")
        job2.close()
    finally:
        job.close()


@pytest.mark.parametrize("source_name", ["postgresql", "sqlite"])
def test_lookback_copies_a_row_committed_late_with_an_older_time(
    make_db: Callable[[str], Database], source_name: str
) -> None:
    """A row a long transaction commits after a run began, with an updated_at older than that run's
    watermark, was never copied by `--since` (the README said so). `--lookback 10m` (lookback:) reads
    back that far from the watermark each run, and merge writes the rows it reads again as they are;
    a lookback needs a since column of a time or a number."""
    source, target = make_db(source_name), make_db("sqlite" if source_name == "postgresql" else "postgresql")
    source.sql(
        "CREATE TABLE ev (id int PRIMARY KEY, v text, updated_at timestamp, label text)",
        "INSERT INTO ev VALUES (1, 'a', '2024-01-01 10:00:00', 'x'), (2, 'b', '2024-01-01 10:30:00', 'y')",
    )
    options = {"since": "updated_at", "lookback": "10m"}
    first = copy_ok(job_for(source, target, table_options=options), mode="merge")
    assert first.tables[0].rows_read == 2
    # committed late: its time (10:25) is before the watermark the first run kept (10:30)
    source.sql("INSERT INTO ev VALUES (3, 'late', '2024-01-01 10:25:00', 'z')")
    plain = copy_ok(job_for(source, target, table_options={"since": "updated_at"}), mode="merge")
    assert plain.tables[0].rows_read == 1 and target.query("SELECT count(*) FROM ev") == [(2,)]
    second = copy_ok(job_for(source, target, table_options=options), mode="merge")
    assert second.tables[0].rows_read == 2, second.notes  # (3, and 2 at the watermark)
    assert second.notes[0].startswith("ev: the rows whose updated_at is 2024-01-01 10:20:00 or later")
    assert target.query("SELECT id, v FROM ev ORDER BY id") == [(1, "a"), (2, "b"), (3, "late")]
    for wrong, said in (
        (
            {"since": "label", "lookback": "10m"},
            "lookback goes back from a time or a number, and label is text",
        ),
        ({"lookback": "10m"}, "lookback goes back from a since column's watermark; give since"),
    ):
        job = job_for(source, target, table_options=wrong)
        try:
            with pytest.raises(ConfigError, match=re.escape(said)):
                copy(job, mode="merge")
        finally:
            job.close()
    with pytest.raises(ConfigError, match="'ten minutes' is no duration"):
        job_for(source, target, table_options={"since": "updated_at", "lookback": "ten minutes"})
    with pytest.raises(ConfigError, match="True is no duration"):
        job_for(source, target, table_options={"since": "updated_at", "lookback": True})
    job = job_for(source, target, table_options={"since": "updated_at", "lookback": "99999999d"})
    try:  # (it was "unexpected OverflowError")
        with pytest.raises(
            ConfigError, match=re.escape("lookback 8.64e+12 s goes back before the first day updated_at")
        ):
            copy(job, mode="merge")
    finally:
        job.close()


def test_since_orders_sqlite_times_held_in_both_spellings_as_moments(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite held '2024-05-01T12:30:00.5' beside '2024-05-01 12:00:00': as text, 'T' sorts after ' ',
    so the watermark was the 'T' one and a row at 13:00 written with a space was never copied (the
    audit). Times held as text are ordered as moments."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, ts DATETIME, v TEXT)",
        "INSERT INTO ev VALUES (1, '2024-05-01 12:00:00', 'a'), (2, '2024-05-01T12:30:00.5', 'b')",
    )
    options = {"since": "ts", "lookback": "10m"}
    assert copy_ok(job_for(source, target, table_options=options), mode="merge").tables[0].rows_read == 2
    source.sql(
        "INSERT INTO ev VALUES (4, '2024-05-01 12:22:00.000', 'late'), (6, '2024-05-01 13:00:00', 'new')"
    )
    again = copy_ok(job_for(source, target, table_options=options), mode="merge")
    assert again.tables[0].rows_read == 3, again.notes  # (2 at the watermark, 4 within the lookback, 6)
    assert [r[0] for r in target.query("SELECT id FROM ev ORDER BY id")] == [1, 2, 4, 6]


def test_sqlite_checks_no_foreign_key_after_a_table_that_references_itself(
    make_db: Callable[[str], Database],
) -> None:
    """SQLite keeps a row whose parent is not there (it checks no FK unless asked), and the docs say
    so; but after a table that references itself, loaded with FK checks switched off, the pooled
    connection was left with them on: the tables copied after it refused such rows (the audit)."""
    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(
        "CREATE TABLE aemp (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES aemp (id))",
        "CREATE TABLE p (id INTEGER PRIMARY KEY)",
        "CREATE TABLE zc (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id))",
        *(f"INSERT INTO aemp VALUES ({n}, {n - 1 if n > 1 else 'NULL'})" for n in range(1, 301)),
        "INSERT INTO p VALUES (1)",
        *(f"INSERT INTO zc VALUES ({n}, {n % 3 + 1})" for n in range(1, 61)),  # (2 and 3: no such parent)
    )
    result = copy_ok(job_for(source, target))
    assert {t.table: (t.rows_written, t.rejected) for t in result.tables} == {
        "aemp": (300, 0),
        "p": (1, 0),
        "zc": (60, 0),
    }


@pytest.mark.parametrize("target_name", ["mariadb", "postgresql", "sqlite"])
def test_merge_refuses_a_row_that_clashes_on_another_unique_key(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """MySQL's ON DUPLICATE KEY UPDATE takes a clash on any unique key for the merge key's: a new row
    whose other unique value another row holds was dropped without a word, counted as written (the
    audit), or its values went into that other row. It is a reject, as on every database."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE mm (id INTEGER PRIMARY KEY, v VARCHAR(20), n INTEGER)",
        "INSERT INTO mm VALUES (1, 'a', 1), (2, 'b', 2)",
    )
    copy_ok(job_for(source, target))
    target.sql("CREATE UNIQUE INDEX mm_v ON mm (v)")
    source.sql("INSERT INTO mm VALUES (3, 'a', 3)", "UPDATE mm SET n = 20 WHERE id = 2")
    result = copy_closed(job_for(source, target), mode="merge")
    assert (result.tables[0].rows_written, result.tables[0].rejected) == (2, 1), result.tables[0]
    assert target.query("SELECT id, v, n FROM mm ORDER BY id") == [(1, "a", 1), (2, "b", 20)]


def test_chunks_that_deadlock_on_a_mariadb_unique_key_are_written_one_at_a_time(
    pg_db: Database, mariadb_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Chunks loaded at once into a MariaDB table with a unique key on text (a hash InnoDB keys) whose
    values the chunks' key ranges interleave deadlocked one another, and a chunk retried three times
    failed the copy; once one deadlocks, the table's chunks are written one at a time. Every row
    arrives, once."""
    pg_db.sql(
        "CREATE TABLE tags (id BIGINT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, label TEXT)",
        "INSERT INTO tags SELECT i, md5(i::text), 'label ' || i FROM generate_series(1, 120000) AS i",
    )
    caplog.set_level(logging.INFO, logger="parity")
    result = copy_ok(job_for(pg_db, mariadb_db), workers=4, batch_size=2000)
    assert (result.tables[0].rows_read, result.tables[0].rows_written) == (120000, 120000)
    counts = mariadb_db.query("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM tags")
    assert tuple(counts[0]) == (120000, 120000, 1, 120000)
    assert mariadb_db.query("SELECT slug FROM tags WHERE id = 77") == [(hashlib.md5(b"77").hexdigest(),)]
    deadlocks = [r.getMessage() for r in caplog.records if "one at a time" in r.getMessage()]
    assert len(deadlocks) <= 1  # (said once, where a chunk deadlocked)


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "by-chunk"])
def test_atomic_tables_fail_whole_and_others_go_on(make_db: Callable[[str], Database], atomic: bool) -> None:
    """sqlite-to-mariadb-migration's per-table transactions: with ``atomic: true`` a table that fails
    (here a trigger refusing the statement for no row's fault, past 2,500 rows) leaves none of its
    rows in the live target, and the other tables go on; by chunk (the default, resumable), the
    chunks committed before the failure stay, for a run again to go on from."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE others (id INTEGER PRIMARY KEY, name TEXT)",
    )
    with source.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items VALUES (:i, 'x')"), [{"i": i} for i in range(1, 3001)])
        conn.execute(sa.text("INSERT INTO others VALUES (:i, 'y')"), [{"i": i} for i in range(1, 11)])
    target.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT)",
        "INSERT INTO items VALUES (900000, 'live')",
        "CREATE FUNCTION stop_past() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id > 2500 AND"
        " NEW.id < 900000 THEN RAISE EXCEPTION 'stopped' USING ERRCODE = '42501'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER stop_past BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stop_past()",
    )
    job = job_for(source, target, table_options={"atomic": True} if atomic else {})
    result = copy_closed(job, batch_size=100, workers=1)
    status = {t.table: t.status for t in result.tables}
    assert status == {"items": "failed", "others": "ok"}
    assert target.query("SELECT COUNT(*) FROM others") == [(10,)]
    kept = target.query("SELECT COUNT(*) FROM items WHERE id < 900000")[0][0]
    assert kept == (0 if atomic else 2000)  # (by chunk: two chunks of 1,000 rows committed)
    assert target.query("SELECT name FROM items WHERE id = 900000") == [("live",)]


@pytest.mark.parametrize(
    ("first", "again"),
    [(True, True), (True, False), (False, True)],
    ids=["atomic", "then-not", "then-atomic"],
)
def test_atomic_replace_fails_whole_then_a_run_again_replaces(
    make_db: Callable[[str], Database], first: bool, again: bool
) -> None:
    """--atomic with replace: the table is emptied in the transaction that loads it, so one that fails
    is left as it was, not empty; the run again replaces it whole. A run again that empties it
    otherwise than the stopped one (atomic after not, or not after atomic) does not resume it: it
    starts the table anew (resumed, a plain replace after an atomic one kept the old rows; an atomic
    one after a plain one emptied the table before each chunk, keeping the last chunk's rows)."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    with source.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items VALUES (:i, 'new')"), [{"i": i} for i in range(1, 3001)])
    target.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT)",
        "INSERT INTO items SELECT i, 'old' FROM generate_series(1, 10) AS i",
        "INSERT INTO items VALUES (900000, 'live')",
        "CREATE FUNCTION stop_past() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id > 2500 AND"
        " NEW.id < 900000 THEN RAISE EXCEPTION 'stopped' USING ERRCODE = '42501'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER stop_past BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stop_past()",
    )
    result = copy_closed(job_for(source, target), mode="replace", atomic=first, batch_size=100, workers=1)
    assert [t.status for t in result.tables] == ["failed"]
    kept = target.query("SELECT name, COUNT(*) FROM items GROUP BY name ORDER BY name")
    assert kept == ([("live", 1), ("old", 10)] if first else [("new", 2000)])
    target.sql("DROP TRIGGER stop_past ON items")
    copy_ok(job_for(source, target), mode="replace", atomic=again, batch_size=100, workers=1)
    assert target.query("SELECT name, COUNT(*), MIN(id), MAX(id) FROM items GROUP BY name") == [
        ("new", 3000, 1, 3000)
    ]


def job_of_tables(source: Database, target: Database, path: Path, tables: dict[str, dict[str, Any]]) -> Any:
    """A job from a job file naming each table with its own settings."""
    ends = {
        role: {"url": db.url, **({"schema": db.schema} if db.schema else {})}
        for role, db in (("source", source), ("target", target))
    }
    path.write_text(json.dumps({**ends, "tables": [{"name": n, **o} for n, o in tables.items()]}))
    return build(config_file=str(path))


@pytest.mark.parametrize("backend", ["sqlite", "duckdb", "postgresql", "mariadb"])
def test_atomic_replace_empties_and_loads_in_one_go(
    make_db: Callable[[str], Database], tmp_path: Path, backend: str
) -> None:
    """Into each target: a table replaced whole by --atomic (its old rows gone, the source's in), and a
    child appended to it whose rows reference the new ones; MariaDB's table referencing itself is
    emptied with its FK checks off (InnoDB checks each deleted row), its rows all going at once."""
    source, target = make_db("sqlite"), make_db(backend)
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id), body VARCHAR(20))",
        *(f"INSERT INTO items VALUES ({i}, 'new {i}')" for i in range(1, 51)),
        "INSERT INTO notes VALUES (1, 7, 'n')",
    )
    target.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20))",
        *(f"INSERT INTO items VALUES ({i}, 'old {i}')" for i in (3, 60, 61)),
    )
    tables = {"items": {"mode": "replace", "atomic": True}, "notes": {}}
    copy_ok(job_of_tables(source, target, tmp_path / "job.yaml", tables))
    assert target.query("SELECT COUNT(*), MIN(id), MAX(id) FROM items") == [(50, 1, 50)]
    assert target.query("SELECT name FROM items WHERE id = 3") == [("new 3",)]
    assert target.query("SELECT item_id FROM notes") == [(7,)]
    if backend == "mariadb":
        target.sql(
            "CREATE TABLE tree (id BIGINT PRIMARY KEY, up BIGINT, FOREIGN KEY (up) REFERENCES tree (id))",
            "INSERT INTO tree VALUES (5, NULL), (1, 5)",  # (a parent deleted before its child: refused)
        )
        source.sql(
            "CREATE TABLE tree (id INTEGER PRIMARY KEY, up INTEGER REFERENCES tree (id))",
            "INSERT INTO tree VALUES (1, NULL), (2, 1)",
        )
        copy_ok(job_for(source, target, tables=["tree"]), mode="replace", atomic=True)
        assert target.query("SELECT id, up FROM tree ORDER BY id") == [(1, None), (2, 1)]


def test_atomic_replace_is_refused_where_its_emptying_cannot_be_its_own(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """Refused before anything moves, one line each: another table's rows reference the table (its
    DELETE would fail on them, or orphan them with FK checks off), it references a table that replace
    empties as the copy starts, or DuckDB checks its reference to itself against its own deletes."""
    source, target = make_db("sqlite"), make_db("sqlite")
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY)",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id))",
        "INSERT INTO items VALUES (1)",
        "INSERT INTO notes VALUES (1, 1)",
    )
    target.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY)",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id))",
        "INSERT INTO items VALUES (7)",
        "INSERT INTO notes VALUES (7, 7)",
    )
    with pytest.raises(
        ConfigError, match=r"'items' cannot be emptied .*'notes' references it and holds rows"
    ):
        copy_closed(job_for(source, target, tables=["items"]), mode="replace", atomic=True)
    per_table = {"items": {"mode": "replace"}, "notes": {"mode": "replace", "atomic": True}}
    with pytest.raises(ConfigError, match=r"'notes' cannot be emptied .*references 'items', which replace"):
        copy_closed(job_of_tables(source, target, tmp_path / "job.yaml", per_table))
    assert target.query("SELECT id FROM items") == [(7,)]
    assert target.query("SELECT id, item_id FROM notes") == [(7, 7)]
    # every table atomic: the child's rows hold on to the parent's
    with pytest.raises(ConfigError, match="'notes' references it and holds rows"):
        copy_closed(job_for(source, target), mode="replace", atomic=True)
    # the child emptied as the copy starts, the parent in its own transaction: the rows referencing
    # the parent are gone before it is emptied
    per_table = {"items": {"mode": "replace", "atomic": True}, "notes": {"mode": "replace"}}
    copy_ok(job_of_tables(source, target, tmp_path / "job.yaml", per_table))
    assert target.query("SELECT id, item_id FROM notes") == [(1, 1)]
    duck = make_db("duckdb")
    duck.sql(
        "CREATE TABLE tree (id BIGINT PRIMARY KEY, up BIGINT REFERENCES tree (id))",
        "INSERT INTO tree VALUES (1, NULL)",
    )
    source.sql("CREATE TABLE tree (id INTEGER PRIMARY KEY, up INTEGER REFERENCES tree (id))")
    with pytest.raises(ConfigError, match=r"'tree' cannot be emptied .*references itself and duckdb"):
        copy_closed(job_for(source, duck, tables=["tree"]), mode="replace", atomic=True)
    assert duck.query("SELECT id FROM tree") == [(1,)]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_atomic_replace_with_new_ids_forgets_the_old_ones_with_its_rows(
    make_db: Callable[[str], Database], tmp_path: Path, backend: str
) -> None:
    """--remap-ids with an atomic replace, twice: the second run's transaction forgets the first run's
    old -> new IDs as it deletes their rows, so its rows are all written (under newer IDs), not skipped
    as copied; the child (replaced as the copy starts, as its rows hold on to the parent's) follows
    the parent's new IDs."""
    source, target = make_db("sqlite"), make_db(backend)
    source.sql(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id))",
        *(f"INSERT INTO items VALUES ({i}, 'n{i}')" for i in range(1, 21)),
        "INSERT INTO notes VALUES (1, 5)",
    )
    tables = {"items": {"atomic": True}, "notes": {}}
    for _ in range(2):
        job = job_of_tables(source, target, tmp_path / "job.yaml", tables)
        result = copy_ok(job, mode="replace", remap_ids=True)
        assert [(t.rows_written, t.skipped) for t in result.tables] == [(20, 0), (1, 0)]
    assert target.query("SELECT COUNT(*) FROM items") == [(20,)]
    assert target.query("SELECT COUNT(*) FROM _parity_id_map WHERE table_name = 'items'") == [(20,)]
    assert target.query("SELECT i.name FROM notes n JOIN items i ON i.id = n.item_id") == [("n5",)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_an_atomic_replace_killed_keeps_the_old_rows_and_a_run_again_replaces_them(
    make_db: Callable[[str], Database], target_name: str, tmp_path: Path
) -> None:
    """kill -9 while an atomic replace loads: its transaction never commits, so the target holds its
    old rows whole (none deleted, none of the new); the run again replaces them with the source's."""
    rows = 3 * ROWS  # (a MariaDB load of ROWS rows could end between the poll that saw it and the kill)
    source = make_db("sqlite")
    path = source.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO big VALUES (?, ?)", ((i, f"row {i}") for i in range(1, rows + 1)))
    target = make_db(target_name)
    target.sql(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(200) NOT NULL)",
        *(f"INSERT INTO big VALUES ({i}, 'old {i}')" for i in (5, 200000, 200001)),
    )
    args = [sys.executable, "-m", "parity", "copy", source.url, target.url, "--mode", "replace", "--atomic"]
    if target.schema:
        args += ["--target-schema", target.schema]
    in_flight = (  # (the copy's transaction has begun writing the table)
        "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n"
        f" ON n.oid = c.relnamespace WHERE c.relname = 'big' AND n.nspname = '{target.schema}'"
        " AND l.mode = 'RowExclusiveLock'"
        if target_name == "postgresql"
        else "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_rows_modified > 0"
        " AND trx_mysql_thread_id IN (SELECT id FROM information_schema.processlist WHERE db = DATABASE())"
    )
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not target.query(in_flight)[0][0]:
        time.sleep(0.15)  # (INNODB_TRX is a cache, made anew when read 0.1 s after its last read: read
        # more often, it stayed as it was before the copy began)
    assert proc.poll() is None, (
        f"copy finished before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30  # (the server rolls the dead session's transaction back)
    while target.query(in_flight)[0][0] and time.monotonic() < deadline:
        time.sleep(0.15)
    assert target.query("SELECT id, v FROM big ORDER BY id") == [
        (5, "old 5"),
        (200000, "old 200000"),
        (200001, "old 200001"),
    ]
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert target.query("SELECT COUNT(*), MIN(id), MAX(id) FROM big") == [(rows, 1, rows)]
    assert target.query("SELECT v FROM big WHERE id = 5") == [("row 5",)]


def test_postgresql_values_only_text_holds_go_to_postgresql_exactly(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL -> PostgreSQL travels as COPY text: values no Python object holds as they are
    (NaN and infinities, -0, a subnormal float, numeric NaN, dates and timestamps at infinity and
    before Christ, 24:00, JSON's own spelling) arrive as they were, with no row read as values. (JSON
    is compared as jsonb: the target's column is jsonb, which keeps one of a repeated key.)"""
    source, target = make_db("postgresql"), make_db("postgresql")
    source.sql(
        "CREATE TABLE odd (id INT PRIMARY KEY, f DOUBLE PRECISION, r REAL, n NUMERIC, d DATE, ts TIMESTAMP,"
        " tm TIME, j JSON, jb JSONB, b BYTEA, ok BOOLEAN, u UUID)",
        "INSERT INTO odd VALUES"
        " (1, 'NaN', 'Infinity', 'NaN', 'infinity', '-infinity', '24:00:00', '{\"a\": 1.50, \"a\": null}',"
        " '{\"z\": 1e400}', '', true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),"
        " (2, '-0', '1e-40', '-0.000', '0044-03-15 BC', '0001-01-01 00:00:00 BC', '00:00:00.000001',"
        " '\"\\\\u00e9\"', 'null', '\\x00ff5c0a', false, NULL),"
        " (3, '2.2250738585072014e-308', '-Infinity', '1e-20', '5874897-12-31', '294276-12-31 23:59:59.999999',"
        " NULL, '[]', '[1, \"\\\\t\"]', NULL, NULL, NULL)",
    )
    carried = count_text_batches(monkeypatch)
    copy_ok(job_for(source, target), mode="replace")
    assert sum(carried) == 3
    compare = (
        "SELECT id, f::text, r::text, n::text, d::text, ts::text, tm::text, j::jsonb::text, jb::text, b::text,"
        " ok::text, u::text FROM {schema}.odd ORDER BY id"
    )
    assert target.query(compare.format(schema=target.schema)) == source.query(
        compare.format(schema=source.schema)
    )


def test_postgresql_timestamps_with_a_zone_go_to_postgresql_as_text(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timestamps with a zone travel as COPY text too, with their offset: they name the same instants
    in the target, infinities, microseconds and a day before Christ included. parity's sessions are in
    UTC (``PostgreSQL.SESSION_SETUP``) whatever zone the user's URL gives them (Kathmandu, +05:45, and
    St. John's, -03:30), so a ``--where`` literal reads as UTC, as it does where rows go as values."""
    source, target = make_db("postgresql"), make_db("postgresql")
    source.sql(
        "CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMPTZ, day DATE)",
        "INSERT INTO ev VALUES (1, '2024-03-10 02:30:00.123456+00', '2024-03-10'),"
        " (2, '1900-01-01 00:00:00+05:41:16', NULL), (3, 'infinity', '2000-01-01'), (4, '-infinity', NULL),"
        " (5, '0044-03-15 12:00:00+00 BC', NULL), (6, '2024-11-03 05:59:59.999999+00', NULL), (7, NULL, NULL),"
        " (8, '2024-06-30 23:59:59+00', NULL), (9, '2024-07-01 00:00:00+00', NULL)",
    )

    def zoned(db: Database, zone: str) -> str:
        return f"{db.url}{'&' if '?' in db.url else '?'}options=-c%20TimeZone%3D{zone.replace('/', '%2F')}"

    def run(**kw: Any) -> None:  # (copy_ok closes the job)
        copy_ok(
            build(
                zoned(source, "Asia/Kathmandu"), zoned(target, "America/St_Johns"),
                source_schema=source.schema, target_schema=target.schema, **kw,
            ),
            mode="replace",
        )  # fmt: skip

    carried = count_text_batches(monkeypatch)
    run()
    assert sum(carried) == 9
    compare = "SELECT id, (at AT TIME ZONE 'UTC')::text, day::text FROM {schema}.ev ORDER BY id"
    assert target.query(compare.format(schema=target.schema)) == source.query(
        compare.format(schema=source.schema)
    )
    run(table_options={"where": "at >= '2024-07-01 00:00:00' AND at < 'infinity'"})
    assert target.query("SELECT id FROM ev ORDER BY id") == [(6,), (9,)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_a_where_date_literal_reads_as_the_sources_session_reads_it(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """Read as COPY text, PostgreSQL's dates come out in ISO, but a ``--where`` literal keeps the
    session's order of fields (MDY by default): '01/02/2024' is January 2 (with DateStyle 'ISO, YMD'
    the read failed: out of range)."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE days (id INT PRIMARY KEY, d DATE)",
        "INSERT INTO days VALUES (1, '2024-01-01'), (2, '2024-01-02'), (3, '2024-02-01')",
    )
    copy_ok(job_for(source, target, table_options={"where": "d >= '01/02/2024'"}))
    assert [r[0] for r in target.query("SELECT id FROM days ORDER BY id")] == [2, 3]


def test_an_atomic_replace_into_duckdb_that_refuses_a_row_is_left_as_it_was(
    make_db: Callable[[str], Database],
) -> None:
    """DuckDB has no savepoints: refused rows are found by trials on another connection, which still
    sees the rows the atomic replace deleted (and would refuse the new rows of their keys). So such a
    table fails whole, rolled back, with its old rows."""
    source, target = make_db("sqlite"), make_db("duckdb")
    source.sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    source.sql(*(f"INSERT INTO items VALUES ({i}, 'new')" for i in range(1, 51)))
    target.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20), CHECK (id <> 20))",
        *(f"INSERT INTO items VALUES ({i}, 'old')" for i in range(1, 11)),
    )
    result = copy_closed(job_for(source, target), mode="replace", atomic=True)
    assert [t.status for t in result.tables] == ["failed"]
    assert "table left as it was" in (result.tables[0].error or "")
    assert target.query("SELECT COUNT(*), MIN(name), MAX(name) FROM items") == [(10, "old", "old")]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_rows_of_another_schema_referencing_a_replaced_table_stop_its_emptying(
    make_db: Callable[[str], Database], backend: str
) -> None:
    """A table of another schema (another MariaDB database) whose FK references the table: an atomic
    replace is refused before anything moves (its DELETE would cascade to those rows, null their
    references, or orphan them with FK checks off), and so is a plain replace on MariaDB, which
    empties with FK checks off (PostgreSQL's TRUNCATE refuses it itself)."""
    source, target, other = make_db("sqlite"), make_db(backend), make_db(backend)
    source.sql("CREATE TABLE items (id INTEGER PRIMARY KEY)", "INSERT INTO items VALUES (1)")
    target.sql("CREATE TABLE items (id BIGINT PRIMARY KEY)", "INSERT INTO items VALUES (7)")
    where = target.schema or target.url.rsplit("/", 1)[-1].split("?")[0]
    elsewhere = other.schema or other.url.rsplit("/", 1)[-1].split("?")[0]
    fk = f"FOREIGN KEY (item) REFERENCES {where}.items (id) ON DELETE CASCADE"
    other.sql(
        f"CREATE TABLE orders (id BIGINT PRIMARY KEY, item BIGINT, {fk})", "INSERT INTO orders VALUES (1, 7)"
    )
    with pytest.raises(
        ConfigError, match=rf"'items' cannot be emptied .*'{elsewhere}\.orders' references it"
    ):
        copy_closed(job_for(source, target), mode="replace", atomic=True)
    if backend == "mariadb":
        with pytest.raises(ParityError, match=rf"cannot empty items: {elsewhere}\.orders"):
            copy_closed(job_for(source, target), mode="replace")
    assert other.query("SELECT id, item FROM orders") == [(1, 7)]
    assert target.query("SELECT id FROM items") == [(7,)]


def test_oracle_finds_the_tables_of_other_users_referencing_a_table(
    make_db: Callable[[str], Database],
) -> None:
    """Live on Oracle (skipped without PARITY_TEST_ORACLE_URL): another user's table whose FK
    references the table is found (``REFERENCES_ELSEWHERE``), as replace then refuses to empty it."""
    target, other = make_db("oracle"), make_db("oracle")
    target.sql(
        "CREATE TABLE items (id NUMBER(19) PRIMARY KEY)", f"GRANT REFERENCES ON items TO {other.schema}"
    )
    other.sql(
        f"CREATE TABLE orders (id NUMBER(19) PRIMARY KEY, item NUMBER(19) REFERENCES {target.schema}.items (id))"
    )
    endpoint = target.endpoint("target")
    with endpoint.connect() as conn:
        found = endpoint.dialect.referencing_elsewhere(conn, ["items"], target.schema)
    assert found == {f"{(other.schema or '').lower()}.orders"}


def test_sql_server_finds_the_tables_of_other_schemas_referencing_a_table(
    make_db: Callable[[str], Database],
) -> None:
    """Live on SQL Server (skipped without PARITY_TEST_MSSQL_URL): a table of another schema whose FK
    references the table is found (``REFERENCES_ELSEWHERE``)."""
    target = make_db("mssql")
    target.sql(
        "CREATE TABLE items (id BIGINT PRIMARY KEY)",
        "CREATE SCHEMA other",
        f"CREATE TABLE other.orders (id BIGINT PRIMARY KEY, item BIGINT REFERENCES {target.schema or 'dbo'}.items (id))",
    )
    endpoint = target.endpoint("target")
    with endpoint.connect() as conn:
        found = endpoint.dialect.referencing_elsewhere(conn, ["items"], target.schema)
    assert found == {"other.orders"}


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "sqlite"])
def test_a_char_arrives_without_its_padding_into_any_string_column(
    make_db: Callable[[str], Database], target_name: str
) -> None:
    """A PostgreSQL char(5) holding 'ab' is 'ab' as a value (its padding is no part of it): read as
    COPY text too, it arrives as 'ab' in a target column of another string type (it came as 'ab   ')."""
    source, target = make_db("postgresql"), make_db(target_name)
    source.sql(
        "CREATE TABLE codes (id INT PRIMARY KEY, c CHAR(5))", "INSERT INTO codes VALUES (1, 'ab'), (2, NULL)"
    )
    target.sql("CREATE TABLE codes (id INT PRIMARY KEY, c VARCHAR(10))")
    copy_ok(job_for(source, target))
    assert target.query("SELECT id, c FROM codes ORDER BY id") == [(1, "ab"), (2, None)]


@pytest.mark.parametrize("source_name", ["postgresql", "sqlite", "mariadb"])
def test_text_goes_into_postgresql_as_utf8_whatever_its_sessions_encoding(
    make_db: Callable[[str], Database], source_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPY text is UTF-8 from every source; a target session in another encoding (PGCLIENTENCODING,
    a role's or a database's setting) read 'café' as LATIN1 ('cafÃ©'): the load switches it to UTF-8."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    source, target = make_db(source_name), make_db("postgresql")
    source.sql(
        "CREATE TABLE words (id INT PRIMARY KEY, w VARCHAR(20))", "INSERT INTO words VALUES (1, 'café')"
    )
    copy_ok(job_for(source, target))
    assert target.query("SELECT w, length(w) FROM words") == [("café", 4)]
