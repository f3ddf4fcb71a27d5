"""Chunks read in reader processes (parity.textread) on real databases: the same rows as a reader thread
copies, one clear line when the read fails, and no reader left running after the copy, stopped or not."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from typing import Any

import pytest

from parity import bulk, textread
from parity.copy import copy
from parity.schema.model import Column, Table
from parity.schema.types import CanonicalType, Kind
from tests.conftest import Database
from tests.test_copy import (
    TRICKY_TEXT,
    copy_ok,
    create_canonical,
    insert_canonical,
    job_for,
    live_processes,
    read_back,
)

pytestmark = pytest.mark.skipif(not textread.READ_PROCESSES, reason="reader processes need POSIX fork")

COLUMNS: list[tuple[str, CanonicalType]] = [
    ("id", CanonicalType(Kind.INTEGER)),
    ("bi", CanonicalType(Kind.BIGINT)),
    ("m", CanonicalType(Kind.DECIMAL, precision=12, scale=2)),
    ("vc", CanonicalType(Kind.VARCHAR, length=40)),
    ("c", CanonicalType(Kind.CHAR, length=6)),
    ("t", CanonicalType(Kind.TEXT)),
    ("dt", CanonicalType(Kind.DATE)),
    ("tm", CanonicalType(Kind.TIME)),
    ("ts", CanonicalType(Kind.TIMESTAMP)),
]
ROWS = 2_500


@pytest.fixture(autouse=True)
def _small_tables_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables this small are read on threads unless told otherwise (``textread.ROWS_FROM``)."""
    monkeypatch.setattr(textread, "ROWS_FROM", 0)


def _value(name: str, n: int) -> Any:
    """Row n's value of a column: NULLs, escapes, whole and fractional seconds, dates before 1970."""
    if n % 11 == 3 and name != "id":
        return None
    return {
        "id": n,
        "bi": (n - ROWS // 2) * 3_000_000_019,
        "m": Decimal(n * 37 - 40_000).scaleb(-2),
        "vc": TRICKY_TEXT[n % len(TRICKY_TEXT)] + str(n),
        "c": f"c{n % 97}",
        "t": f"line {n}\nwith\ttab\\ and {TRICKY_TEXT[n % len(TRICKY_TEXT)]}" if n % 5 else "",
        "dt": date(1900 + n % 200, 1 + n % 12, 1 + n % 28),
        "tm": clock(n % 24, n % 60, n % 60, (n * 1_000) % 1_000_000 if n % 3 else 0),
        "ts": datetime(
            1960 + n % 90, 1 + n % 12, 1 + n % 28, n % 24, n % 60, n % 60, (n * 10_007) % 1_000_000
        ),
    }[name]


def _source_table(source: Database, kinds: frozenset[Kind]) -> tuple[str, list[str], list[CanonicalType]]:
    chosen = [(c, t) for c, t in COLUMNS if t.kind in kinds]
    columns, types = [c for c, _ in chosen], [t for _, t in chosen]
    model = Table("moved", tuple(Column(c, t, nullable=(c != "id")) for c, t in chosen), primary_key=("id",))
    create_canonical(source, model)
    rows = [tuple(_value(c, n) for c in columns) for n in range(1, ROWS + 1)]
    insert_canonical(source, "moved", columns, types, rows)
    return "moved", columns, types


class _Counted(textread.ProcessReader):
    started: list[str] = []

    def __init__(self, spec: textread.ReadSpec) -> None:
        super().__init__(spec)
        _Counted.started.append(spec.sql)


@pytest.mark.parametrize(
    ("source_name", "target_name", "writer"),
    [
        ("sqlite", "postgresql", bulk.PostgresCopyWriter),
        ("sqlite", "mariadb", bulk.MySQLLoadDataWriter),
        ("postgresql", "sqlite", bulk.SQLiteWriter),
        ("mariadb", "sqlite", bulk.SQLiteWriter),
    ],
    ids=["sqlite-to-pg", "sqlite-to-mariadb", "pg-to-sqlite", "mariadb-to-sqlite"],
)
def test_reader_processes_copy_what_a_reader_thread_copies(
    make_db: Callable[[str], Database],
    source_name: str,
    target_name: str,
    writer: type[bulk.Writer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many chunks of many batches, each read in a process of its own (with readers started ahead):
    every row arrives exactly, and the target holds what a copy read on threads gives it (SQLite: the
    same storage classes and text)."""
    source = make_db(source_name)
    name, columns, types = _source_table(source, writer.TEXT_FROM[source_name])
    by_processes, by_threads = make_db(target_name), make_db(target_name)
    _Counted.started = []
    monkeypatch.setattr(textread, "ProcessReader", _Counted)
    copy_ok(job_for(source, by_processes, tables=[name]), batch_size=200, workers=2)
    assert len(_Counted.started) == 2  # chunks of 10 batches: 2,500 rows in 2 chunks
    with monkeypatch.context() as threads:
        threads.setattr(textread, "READ_PROCESSES", False)
        copy_ok(job_for(source, by_threads, tables=[name]), batch_size=200, workers=2)
    assert len(_Counted.started) == 2  # (none more)
    expected = read_back(source, name, columns, types)
    assert len(expected) == ROWS
    assert read_back(by_processes, name, columns, types) == expected
    stored = f"SELECT {', '.join(columns)} FROM {name} ORDER BY id"
    if target_name == "sqlite":
        stored = f"SELECT {', '.join(f'typeof({c}), {c}' for c in columns)} FROM {name} ORDER BY id"
    assert by_processes.query(stored) == by_threads.query(stored)


class _Logged(textread.ProcessReader):
    """Notes when each reader is started, and when each has given its last batch."""

    events: list[tuple[str, int]] = []

    def __init__(self, spec: textread.ReadSpec) -> None:
        super().__init__(spec)
        self.number = sum(what == "started" for what, _ in _Logged.events)
        _Logged.events.append(("started", self.number))

    def batches(self, stop: threading.Event | None = None) -> Iterator[tuple[int, Any]]:
        yield from super().batches(stop)
        _Logged.events.append(("read", self.number))


def test_the_next_chunks_reader_starts_once_this_chunks_reader_has_read_all(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader started ahead for the next chunk begins when this chunk's reader has read its last
    batch: started with this chunk's first batch, it parsed beside this chunk's reader and its writer
    (3 processes on 2 cores) and slowed that writer's first batches threefold."""
    source = make_db("postgresql")
    name, _, _ = _source_table(source, bulk.SQLiteWriter.TEXT_FROM["postgresql"])
    target = make_db("sqlite")
    _Logged.events = []
    monkeypatch.setattr(textread, "ProcessReader", _Logged)
    copy_ok(job_for(source, target, tables=[name]), batch_size=100, workers=1)
    assert _Logged.events == [
        ("started", 0),
        ("read", 0),
        ("started", 1),
        ("read", 1),
        ("started", 2),
        ("read", 2),
    ]
    assert target.query(f"SELECT COUNT(*) FROM {name}") == [(ROWS,)]


@pytest.mark.parametrize(
    ("source_name", "bad"),
    [
        ("sqlite", "UPDATE moved SET ts = 'not a time' WHERE id = 1200"),
        ("postgresql", "UPDATE moved SET ts = 'infinity' WHERE id = 1200"),
    ],
)
def test_a_value_a_reader_process_cannot_read_rejects_its_row_only(
    make_db: Callable[[str], Database], source_name: str, bad: str
) -> None:
    """A value that is not of its column's kind (SQLite holds any text; PostgreSQL's infinity has no
    Python datetime), met after some batches have gone: its chunk is read again as values, where its
    row alone is rejected (the table failed for PostgreSQL's, with one line), and no reader is left
    running."""
    source = make_db(source_name)
    writer = bulk.PostgresCopyWriter if source_name == "sqlite" else bulk.SQLiteWriter
    name, _, _ = _source_table(source, writer.TEXT_FROM[source_name])
    source.sql(bad)
    target = make_db("postgresql" if source_name == "sqlite" else "sqlite")
    job = job_for(source, target, tables=[name])
    try:
        result = copy(job, batch_size=200, workers=1)
    finally:
        job.close()
    table = result.tables[0]
    ids = [r[0] for r in target.query(f"SELECT id FROM {name}")]
    assert (table.status, table.rejected) == ("ok", 1) and 1200 not in ids and len(ids) == ROWS - 1
    _assert_no_reader_left()
    _assert_no_reader_left()


def test_a_copy_stopped_by_its_writer_leaves_no_reader_running(make_db: Callable[[str], Database]) -> None:
    """The target refuses rows past --max-rejects: the table stops while its readers (and the one started
    ahead for the next chunk) still have rows to send; they stop too."""
    source = make_db("sqlite")
    name, _, _ = _source_table(source, bulk.PostgresCopyWriter.TEXT_FROM["sqlite"])
    target = make_db("postgresql")
    target.sql(
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY CHECK (id < 100), bi BIGINT, m NUMERIC(12,2),"
        " vc VARCHAR(40), c CHAR(6), t TEXT, dt DATE, tm TIME, ts TIMESTAMP)"
    )
    job = job_for(source, target, tables=[name])
    try:
        result = copy(job, mode="append", batch_size=100, workers=1, max_rejects=3, schema=False)
    finally:
        job.close()
    assert result.tables[0].status == "failed"
    assert result.tables[0].error and "more than 3 rows refused" in result.tables[0].error
    _assert_no_reader_left()


def _readers() -> list[int]:
    """The reader processes alive now: the fork server's children."""
    server = textread._server
    return [] if server is None else live_processes(lambda fields: int(fields[1]) == server.process.pid)


def _assert_no_reader_left() -> None:
    deadline = time.monotonic() + 10
    while _readers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _readers() == []


def test_where_no_reader_process_can_start_chunks_are_read_on_threads(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No fork server (here: no interpreter to run it): the copy reads on threads and copies every row."""
    source = make_db("sqlite")
    name, columns, types = _source_table(source, bulk.PostgresCopyWriter.TEXT_FROM["sqlite"])
    target = make_db("postgresql")
    monkeypatch.setattr(textread, "_server", None)
    monkeypatch.setattr(textread.sys, "executable", "/nonexistent/python")
    copy_ok(job_for(source, target, tables=[name]), batch_size=500)
    assert read_back(target, name, columns, types) == read_back(source, name, columns, types)


def test_a_where_with_regexp_runs_in_a_reader_process(make_db: Callable[[str], Database]) -> None:
    """SQLAlchemy gives SQLite connections a REGEXP function; a reader process's connection has it too."""
    source = make_db("sqlite")
    name, _, _ = _source_table(source, bulk.PostgresCopyWriter.TEXT_FROM["sqlite"])
    target = make_db("postgresql")
    copy_ok(job_for(source, target, tables=[name], table_options={"where": "c REGEXP '^c1[0-9]$'"}))
    expected = sum(1 for n in range(1, ROWS + 1) if n % 11 != 3 and 10 <= n % 97 <= 19)
    assert target.query(f"SELECT COUNT(*) FROM {name}")[0][0] == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["copy", "sqlite:///src.db", "postgresql://u:pw@db/x"], True),
        (["--debug", "high", "copy", "sqlite:////abs/src.db", "mariadb://u:pw@db/x", "-t", "a"], True),
        (["copy", "postgresql://u:pw@db/x", "sqlite:///out.db", "--workers", "2"], True),
        (["copy", "postgres://u:pw@db/x", "sqlite:///out.db"], True),
        (["copy", "mysql://u:pw@db/x", "sqlite:///out.db"], True),
        (["copy", "mariadb+pymysql://u:pw@db/x", "sqlite:///out.db"], True),
        (["copy", "sqlite://", "postgresql://u:pw@db/x"], False),
        (["copy", "sqlite:///:memory:", "postgresql://u:pw@db/x"], False),
        (["copy", "postgresql://u:pw@db/x", "mariadb://u:pw@db/x"], False),
        (["copy", "duckdb:///src.duckdb", "sqlite:///out.db"], False),
        (["copy", "-c", "job.yaml"], False),
        (["diff", "sqlite:///src.db", "postgresql://u:pw@db/x"], False),
    ],
)
def test_the_command_line_starts_the_fork_server_early_for_the_copies_that_may_use_it(
    args: list[str], expected: bool
) -> None:
    """The entry point's guess from the arguments agrees with what ``copy()`` decides from the same URLs
    before it connects (the server is then started before SQLAlchemy and Click are loaded)."""
    from parity import _entry
    from parity import job as jobs
    from parity.copy import _may_read_in_processes

    assert _entry.may_read_in_processes(args) is expected
    if "copy" in args and len(urls := [a for a in args if "://" in a]) == 2:
        assert _may_read_in_processes(jobs.build(*urls)) is expected


def test_the_fork_server_loads_no_sqlalchemy() -> None:
    """The fork server starts while the command line loads (``_entry``), and is ready the sooner for
    loading what a reader needs only: ``textread`` and the writers' parsing, without SQLAlchemy (a
    quarter of a second)."""
    code = "import sys, parity.textread, parity.pgcopy; print(sorted(m for m in sys.modules if 'sqlalchemy' in m))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_copy_batches_hold_the_batch_size_whatever_arrived_together(pg_db: Database) -> None:
    """COPY's rows arrive in groups the network makes (all 1,000 at once on a busy machine): batches
    are cut at the batch size all the same, so a batch's rows are the same from run to run."""
    import psycopg

    pg_db.sql(
        "CREATE TABLE n (id INTEGER PRIMARY KEY)", "INSERT INTO n SELECT g FROM generate_series(1, 1000) g"
    )
    table = f"{pg_db.q(pg_db.schema)}.n" if pg_db.schema else "n"
    with psycopg.connect(pg_db.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        batches = list(
            textread.copy_batches(conn, f"COPY (SELECT id FROM {table} ORDER BY id) TO STDOUT", {}, 64)
        )
    assert [rows for _, rows in batches] == [64] * 15 + [40]
    assert b"".join(text for text, _ in batches) == b"".join(b"%d\n" % i for i in range(1, 1001))
    assert all(text.count(b"\n") == rows for text, rows in batches)
