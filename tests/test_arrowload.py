"""COPY text loaded into SQLite through Arrow and ADBC (``arrowtext.load_table``, ``SQLiteLoad``):
the same values the sqlite3 module's path binds, or a stop that sends the chunk that way."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity import bulk, textread
from parity.schema.types import CanonicalType, Kind
from tests.conftest import Database
from tests.test_copy import copy_ok, job_for, read_back

pytestmark = pytest.mark.skipif(not textread.ARROW, reason="ADBC's SQLite driver is not installed")

arrowtext = pytest.importorskip("parity.arrowtext")
pa = pytest.importorskip("pyarrow")


def _escaped(text: str) -> str:
    """A value as PostgreSQL's COPY writes it."""
    for char, escape in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\b", "\\b")):
        text = text.replace(char, escape)
    return text


_FRACTION = st.integers(0, 6).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
_CLOCK = st.builds(
    lambda h, m, s, f: f"{h:02}:{m:02}:{s:02}" + (f".{f}" if f else ""),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    _FRACTION | st.just("000000"),
)
_DAY = st.dates().map(str)
_FIELD: dict[Kind, st.SearchStrategy[str]] = {
    Kind.BIGINT: st.integers(-(2**63), 2**63 - 1).map(str),
    Kind.INTEGER: st.integers(-(2**31), 2**31 - 1).map(str),
    Kind.DOUBLE: st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["Infinity", "-Infinity", "-0", "1e+100", "2.2250738585072014e-308"]),
    Kind.BOOLEAN: st.sampled_from(["t", "f"]),
    Kind.DECIMAL: st.decimals(-(10**12), 10**12, places=3, allow_nan=False).map(str),
    Kind.VARCHAR: st.text(st.characters(exclude_categories=("Cs",)), max_size=10).map(_escaped)
    | st.sampled_from(["", "\\\\N", "a\\tb\\nc\\rd\\\\e", "😀 ü", "x\\\\", "\\."]),
    Kind.CHAR: st.text("ab \t", max_size=6).map(_escaped),
    Kind.UUID: st.uuids().map(str),
    Kind.DATE: _DAY,
    Kind.TIME: _CLOCK,
    Kind.TIMESTAMP: st.builds(lambda d, c: f"{d} {c}", _DAY, _CLOCK),
}
KINDS = list(_FIELD)


def _module_columns(text: bytes, kinds: Sequence[Kind]) -> list[list[Any]]:
    """What the sqlite3 module's path binds (``SQLiteWriter.parse_text``), column by column."""
    flat = bulk._sqlite_binds(text, kinds)
    return [flat[i :: len(kinds)] for i in range(len(kinds))]


def _arrow_columns(text: bytes, lines: int, kinds: Sequence[Kind]) -> list[list[Any]]:
    table = arrowtext.load_table(text, lines, kinds)
    return [table.column(i).to_pylist() for i in range(len(kinds))]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(*(st.none() | _FIELD[k] for k in KINDS)), min_size=1, max_size=40))
def test_arrow_binds_what_the_sqlite3_module_binds(rows: list[tuple[str | None, ...]]) -> None:
    """Every kind COPY text reaches SQLite in, with escapes, 4-byte characters, CHAR's padding, NULLs,
    fractions of 0 to 6 digits and PostgreSQL's infinities: Arrow's values are the module's."""
    text = "".join("\t".join("\\N" if v is None else v for v in row) + "\n" for row in rows).encode()
    assert _arrow_columns(text, len(rows), KINDS) == _module_columns(text, KINDS)


@pytest.mark.parametrize(
    ("kind", "field", "reason"),
    [
        (Kind.DOUBLE, "NaN", "NaN"),  # (the module binds it as the text 'NaN')
        (Kind.BIGINT, str(2**63), "cannot parse"),  # (past 64 bits: the module binds its text)
        (Kind.BOOLEAN, "x", "cannot parse"),
        (Kind.DATE, "2020-01-01 BC", "not ISO"),
        (Kind.DATE, "10000-01-01", "not ISO"),
        (Kind.TIMESTAMP, "0000-00-00 00:00:00", "zero"),
        (Kind.TIME, "1:02:03", "not ISO"),
        (Kind.TEXT, "a\rb", "carriage return"),  # (a raw one: Arrow would end the line there)
        (Kind.TEXT, "\xff", "cannot parse"),  # (no UTF-8)
    ],
)
def test_what_arrow_would_bind_otherwise_stops_it(kind: Kind, field: str, reason: str) -> None:
    text = f"1\t{field}\n".encode("utf-8", "surrogateescape") if field != "\xff" else b"1\t\xff\n"
    with pytest.raises(textread.NotArrow, match=reason):
        arrowtext.load_table(text, 1, [Kind.BIGINT, kind])


def test_a_byte_order_mark_at_the_start_stops_it() -> None:
    """Arrow's reader would skip it: the first value would lose its first character."""
    with pytest.raises(textread.NotArrow, match="byte order mark"):
        arrowtext.load_table("\ufeffabc\n".encode(), 1, [Kind.TEXT])
    assert _arrow_columns("x\n\ufeffabc\n".encode(), 2, [Kind.TEXT]) == [["x", "\ufeffabc"]]


def test_a_line_count_arrow_does_not_find_stops_it() -> None:
    with pytest.raises(textread.NotArrow, match="rows of 3 lines"):
        arrowtext.load_table(b"1\n2\n", 3, [Kind.BIGINT])


def test_one_column_of_empty_strings_keeps_its_rows() -> None:
    assert _arrow_columns(b"\n\\N\nx\n\n", 4, [Kind.TEXT]) == [["", None, "x", ""]]


# ---- copies --------------------------------------------------------------------------------------


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each batch a reader process loaded into SQLite itself, as the copy counted them
    (reader processes for tables this small too)."""
    monkeypatch.setattr(textread, "ROWS_FROM", 0)
    loaded: list[int] = []
    init = textread.Loaded.__init__

    def counted(self: Any, lines: int, commit: Any = None) -> None:
        init(self, lines, commit)
        if commit is None:
            loaded.append(lines)

    monkeypatch.setattr(textread.Loaded, "__init__", counted)
    return loaded


TYPES = [
    CanonicalType(Kind.INTEGER),
    CanonicalType(Kind.DOUBLE),
    CanonicalType(Kind.BOOLEAN),
    CanonicalType(Kind.TIMESTAMP),
    CanonicalType(Kind.TEXT),
]
NAMES = ["id", "x", "ok", "at", "note"]


def _pg_rows(pg: Database, rows: int, nan_at: int | None = None) -> None:
    nan = f"CASE WHEN i = {nan_at} THEN 'NaN'::float8 ELSE i / 8.0 END" if nan_at else "i / 8.0"
    pg.sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x DOUBLE PRECISION, ok BOOLEAN, at TIMESTAMP, note TEXT)",
        f"INSERT INTO t SELECT i, {nan}, mod(i, 3) = 0, TIMESTAMP '2024-01-01' + i * INTERVAL '1.5 second', "
        "CASE WHEN mod(i, 7) = 0 THEN NULL ELSE 'n' || chr(9) || i END FROM generate_series(1, "
        f"{rows}) AS i",
    )


def _expected(rows: int, nan_at: int | None = None) -> list[tuple[Any, ...]]:
    from datetime import datetime, timedelta

    return [
        (
            i,
            math.nan if i == nan_at else i / 8.0,
            i % 3 == 0,
            datetime(2024, 1, 1) + timedelta(seconds=1.5 * i),
            None if i % 7 == 0 else f"n\t{i}",
        )
        for i in range(1, rows + 1)
    ]


def _same(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    """Equal rows, NaN equal to NaN."""
    return len(got) == len(expected) and all(
        all(a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
            for a, b in zip(g, e, strict=True))
        for g, e in zip(got, expected, strict=True)
    )  # fmt: skip


def test_postgresql_rows_are_loaded_into_sqlite_by_adbc(
    make_db: Callable[[str], Database], loads: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """Every batch through ADBC, none again through the module; the rows, their storage classes and
    the chunks' state rows as the module's path writes them (a copy on threads)."""
    source, by_arrow, by_threads = make_db("postgresql"), make_db("sqlite"), make_db("sqlite")
    _pg_rows(source, 1_000)
    with caplog.at_level(logging.INFO, logger="parity"):
        copy_ok(job_for(source, by_arrow, tables=["t"]), batch_size=100, workers=2)
    assert sum(loads) == 1_000 and len(loads) > 1
    assert not [r for r in caplog.records if "sqlite3 module" in r.getMessage()]
    assert _same(read_back(by_arrow, "t", NAMES, TYPES), _expected(1_000))
    with pytest.MonkeyPatch.context() as threads:
        threads.setattr(textread, "READ_PROCESSES", False)
        copy_ok(job_for(source, by_threads, tables=["t"]), batch_size=100, workers=2)
    stored = f"SELECT {', '.join(f'typeof({c}), {c}' for c in NAMES)} FROM t ORDER BY id"
    assert by_arrow.query(stored) == by_threads.query(stored)
    marks = "SELECT chunk, rows, typeof(updated_at), length(updated_at) FROM _parity_state WHERE chunk <> ''"
    assert sorted(by_arrow.query(marks)) == sorted(by_threads.query(marks))


def test_a_chunk_arrow_cannot_finish_is_written_again_through_the_module(
    make_db: Callable[[str], Database], loads: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """A NaN in a later batch of a chunk (SQLite would make it NULL; the module keeps it as text):
    the batches loaded already are rolled back and the chunk written again through the module, every
    row once; the chunks after it too."""
    source, target = make_db("postgresql"), make_db("sqlite")
    _pg_rows(source, 1_000, nan_at=250)
    with caplog.at_level(logging.INFO, logger="parity"):
        result = copy_ok(job_for(source, target, tables=["t"]), batch_size=100, workers=1)
    assert result.tables[0].rows_written == 1_000
    again = [
        r.getMessage() for r in caplog.records if "written again through the sqlite3 module" in r.getMessage()
    ]
    assert len(again) == 1 and "NaN" in again[0], again
    assert sum(loads) < 1_000  # (the chunks after it went through the module)
    assert _same(read_back(target, "t", NAMES, TYPES), _expected(1_000, nan_at=250))
    assert target.query("SELECT typeof(x), x FROM t WHERE id = 250") == [("text", "NaN")]


def test_rows_the_target_refuses_are_rejected_one_by_one(
    make_db: Callable[[str], Database], loads: list[int], tmp_path: Path
) -> None:
    """An append into a table holding some of the keys: ADBC's batch is refused, the chunk rolled
    back and written through the module, which rejects those rows alone."""
    source, target = make_db("postgresql"), make_db("sqlite")
    _pg_rows(source, 300)
    copy_ok(job_for(source, target, tables=["t"]), batch_size=100, workers=1)
    target.sql("DELETE FROM t WHERE id % 50 <> 0")
    result = copy_ok(job_for(source, target, tables=["t"]), batch_size=100, workers=1, mode="append")
    table = result.tables[0]
    assert (table.rows_written, table.rejected + table.skipped) == (294, 6)
    assert target.query("SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM t") == [(300, 300, 45_150)]


def test_a_killed_copy_into_sqlite_through_adbc_resumes_to_the_same_result(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """kill -9 in the middle: each chunk's rows and its state row were committed together by ADBC,
    so the run made again copies exactly the chunks that are not there."""
    rows = 120_000  # (reader processes from textread.ROWS_FROM rows on)
    source, target = make_db("postgresql"), make_db("sqlite")
    source.sql(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n NUMERIC(12,2))",
        f"INSERT INTO big SELECT i, 'row ' || i, i + 0.25 FROM generate_series(1, {rows}) AS i",
    )
    args = [sys.executable, "-m", "parity", "copy", source.url, target.url, "--batch-size", "1000"]
    args += ["--workers", "1", "--mode", "append", "--rejects", str(tmp_path / "rejects.jsonl")]
    args += ["--source-schema", str(source.schema)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = target.url.removeprefix("sqlite:///")
    deadline, done = time.time() + 60, 0
    while time.time() < deadline and proc.poll() is None and done < 2:
        try:
            with sqlite3.connect(path, timeout=0.2) as conn:
                done = conn.execute("SELECT COUNT(*) FROM _parity_state WHERE chunk <> ''").fetchone()[0]
            conn.close()
        except sqlite3.Error:
            done = 0
        time.sleep(0.02)
    assert proc.poll() is None, (
        f"the copy ended before it was killed: {proc.stderr.read() if proc.stderr else ''}"
    )
    proc.kill()
    proc.wait()
    partial = target.query("SELECT COUNT(*) FROM big")[0][0]
    assert 0 < partial < rows
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)["tables"][0]
    assert summary["rejected"] == 0 and summary["rows_written"] + summary["skipped"] == rows
    count, distinct, total = target.query("SELECT COUNT(*), COUNT(DISTINCT id), SUM(n) FROM big")[0]
    assert (count, distinct) == (rows, rows)
    assert Decimal(str(total)) == Decimal(rows * (rows + 1) // 2) + Decimal("0.25") * rows


def _load_spec(source: Database, target: Database, rows: int) -> textread.ReadSpec:
    """A reader's spec that loads ``rows`` rows of PostgreSQL's t (id, note) into the SQLite file's t,
    in batches of 100, with a state row of task 'task', chunk 'c'."""
    from parity.dialects.postgresql import PostgreSQL
    from parity.state import State

    endpoint, file = source.endpoint(), target.endpoint()
    args, kwargs = endpoint.driver_connect_args()
    mark, params, rows_at = State(file).mark_chunk_statement(file.engine.dialect, "task", "c")
    return textread.ReadSpec(
        driver="psycopg",
        connect_args=tuple(args),
        connect_kwargs=kwargs,
        setup=PostgreSQL.SESSION_SETUP + PostgreSQL.COPY_TEXT_SETUP,
        sql=f"COPY (SELECT id, note FROM {source.schema}.t WHERE id <= {rows} ORDER BY id) TO STDOUT",
        params=None,
        kinds=(Kind.INTEGER, Kind.TEXT),
        batch_size=100,
        writer="sqlite",
        load=textread.LoadSpec(
            path=target.url.removeprefix("sqlite:///"),
            insert="INSERT INTO t (id, note) VALUES (?, ?)",
            mark=mark,
            mark_params=tuple(params),
            mark_rows=rows_at,
        ),
    )


def test_a_loading_reader_commits_only_on_the_copys_word(make_db: Callable[[str], Database]) -> None:
    """The reader loads its batches and the state row, then waits: closed before the word, it leaves
    nothing in the file (a copy that stopped); told to commit, all of it, and then ends."""
    source, target = make_db("postgresql"), make_db("sqlite")
    _pg_rows(source, 300)
    target.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    state = "CREATE TABLE _parity_state (task VARCHAR(64), chunk VARCHAR(200), rows BIGINT, info TEXT, "
    target.sql(state + "updated_at DATETIME, PRIMARY KEY (task, chunk))")
    reader = textread.ProcessReader(_load_spec(source, target, 250))
    seen = []
    try:
        for rows, loaded in reader:
            seen.append(rows)
            if loaded.commit is not None:
                break
    finally:
        reader.close()
    assert sum(seen) == 250 and seen[-1] == 0
    time.sleep(0.5)
    assert target.query("SELECT COUNT(*) FROM t") == [(0,)]
    assert target.query("SELECT COUNT(*) FROM _parity_state") == [(0,)]
    reader = textread.ProcessReader(_load_spec(source, target, 250))
    try:
        for _, loaded in reader:
            if loaded.commit is not None:
                loaded.commit()
    finally:
        reader.close()
    assert target.query("SELECT COUNT(*), SUM(id) FROM t") == [(250, 31_375)]
    assert target.query("SELECT task, chunk, rows FROM _parity_state") == [("task", "c", 250)]


def test_a_target_in_wal_mode_keeps_every_chunk(make_db: Callable[[str], Database], loads: list[int]) -> None:
    """SQLite in WAL mode, written by the readers' ADBC (its own SQLite library) and the copy's
    sqlite3 module (the table's keys, its state) in turn: every chunk stays, the file whole. (Both
    libraries in one process lost committed chunks and broke the file: they do not see each other's
    locks, and ADBC's last close removed the WAL the other still used.)"""
    source, target = make_db("postgresql"), make_db("sqlite")
    _pg_rows(source, 2_000)
    target.sql("PRAGMA journal_mode=WAL")
    copy_ok(job_for(source, target, tables=["t"]), batch_size=100, workers=2)
    assert sum(loads) == 2_000 and len(loads) > 1
    assert target.query("PRAGMA journal_mode") == [("wal",)]
    assert target.query("PRAGMA integrity_check") == [("ok",)]
    assert target.query("SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM t") == [(2_000, 2_000, 2_001_000)]
    assert _same(read_back(target, "t", NAMES, TYPES), _expected(2_000))


def test_a_copy_that_stops_after_the_reader_loaded_all_ends_and_commits_nothing(
    make_db: Callable[[str], Database], loads: list[int]
) -> None:
    """The copy fails (here its progress callback) while a reader that loaded its chunk waits for the
    word to commit: the reader is told nothing, its socket is closed, it rolls back, and the copy
    ends (it waited for that reader forever)."""
    import threading

    from parity.copy import copy

    source, target = make_db("postgresql"), make_db("sqlite")
    _pg_rows(source, 150)

    def refuse(table: str, done: int, total: int) -> None:
        if done:
            time.sleep(0.5)  # (the reader's word that all is in comes meanwhile)
            raise RuntimeError("progress refused")

    failed: list[BaseException] = []

    def run() -> None:
        try:
            copy(job_for(source, target, tables=["t"]), batch_size=1_000, progress=refuse)
        except BaseException as exc:
            failed.append(exc)

    copying = threading.Thread(target=run, daemon=True)
    copying.start()
    copying.join(60)
    assert not copying.is_alive(), "the copy waited for its reader forever"
    assert [str(e) for e in failed] == ["progress refused"]
    assert target.query("SELECT COUNT(*) FROM t") == [(0,)]
