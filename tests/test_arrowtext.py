"""SQLite's rows made COPY text through Arrow (parity.arrowtext): the text the sqlite3 module's path
makes of the same rows, or a stop (``NotArrow``) where it could not be, before a row is sent when it
can, and a copy that gets every row exactly either way."""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import textread
from parity.dialects.sqlite import SQLite
from parity.schema.types import CanonicalType, Kind
from tests.conftest import Database
from tests.test_copy import copy_ok, job_for, read_back

pytestmark = pytest.mark.skipif(not textread.ARROW, reason="ADBC's SQLite driver is not installed")

arrowtext = pytest.importorskip("parity.arrowtext")

DECLARED = {
    Kind.BIGINT: "BIGINT",
    Kind.DECIMAL: "NUMERIC(14,2)",
    Kind.VARCHAR: "VARCHAR(40)",
    Kind.CHAR: "CHAR(6)",
    Kind.TEXT: "TEXT",
    Kind.DATE: "DATE",
    Kind.TIME: "TIME",
    Kind.TIMESTAMP: "TIMESTAMP",
}
KINDS = list(DECLARED)


def _table(
    path: Path, rows: Sequence[Sequence[Any]], declared: Sequence[str] = tuple(DECLARED.values())
) -> str:
    """A SQLite file holding ``rows`` in table t (an id first); its path."""
    columns = ", ".join(f"c{i} {d}" for i, d in enumerate(declared))
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS t")
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {columns})")
        marks = ", ".join("?" * (len(declared) + 1))
        conn.executemany(f"INSERT INTO t VALUES ({marks})", [(n, *row) for n, row in enumerate(rows)])
    conn.close()
    return str(path)


def _select(declared: Sequence[str]) -> str:
    return f"SELECT {', '.join(f'c{i}' for i in range(len(declared)))} FROM t ORDER BY id"


def _arrow_text(path: str, kinds: Sequence[Kind], size: int, scales: Sequence[int | None] = ()) -> bytes:
    sql = _select(kinds)
    uri = arrowtext.database_uri(path)
    return b"".join(
        text for text, _ in arrowtext.batches(uri, sql, (), kinds, size, scales or [None] * len(kinds))
    )


def _module_text(path: str, kinds: Sequence[Kind], size: int) -> bytes:
    with sqlite3.connect(path) as conn:
        parts = [t for t, _ in textread.sqlite_batches(conn.cursor(), _select(kinds), (), kinds, size)]
    conn.close()
    return b"".join(parts)


def _fields(text: bytes, kinds: Sequence[Kind]) -> list[list[Any]]:
    """The lines' fields; a decimal's as its number (Arrow writes 3.0 as 3, Python as 3.0)."""
    return [
        [
            Decimal(f) if k is Kind.DECIMAL and f != "\\N" else f
            for k, f in zip(kinds, line.split("\t"), strict=True)
        ]
        for line in text.decode().split("\n")[:-1]
    ]


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "\\N", "a\tb\nc\rd\\e", "😀 ü \u2028", "x\\", "\x00nul", "  ", "\\."]
)
_ROW = st.tuples(
    st.integers(-(2**63), 2**63 - 1),
    st.one_of(
        st.decimals(min_value=-(10**11), max_value=10**11, places=2, allow_nan=False).map(float),
        st.integers(-(10**11), 10**11),
    ),
    _TEXT,
    st.text("ab ", max_size=6),
    _TEXT,
    st.dates().map(str),
    st.times().map(str),
    st.datetimes().map(lambda d: d.isoformat(" ")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(st.one_of(st.none(), st.just(0)), min_size=8, max_size=8), min_size=1, max_size=40)
)
def test_null_patterns_make_the_same_text(tmp_path: Path, rows: list[list[Any]]) -> None:
    """A column all NULL in a batch (which ADBC types as it likes) is ``\\N`` as the module's path
    writes it."""
    filled = [[None if v is None else _sample(k) for v, k in zip(row, KINDS, strict=True)] for row in rows]
    path = _table(tmp_path / "nulls.sqlite", filled)
    try:
        arrow = _arrow_text(path, KINDS, 7)
    except textread.NotArrow as exc:
        # ADBC types a column by its first batch: one all NULL there and of another type later stops
        # Arrow (the copy then reads the chunk through the sqlite3 module); nothing else may
        first, later = filled[:7], filled[7:]
        typed_late = [
            i
            for i in range(len(KINDS))
            if all(r[i] is None for r in first) and any(r[i] is not None for r in later)
        ]
        assert typed_late and "Type mismatch" in str(exc), (exc, rows)
        return
    assert _fields(arrow, KINDS) == _fields(_module_text(path, KINDS, 7), KINDS)


def _sample(kind: Kind) -> Any:
    return {
        Kind.BIGINT: 7,
        Kind.DECIMAL: 12.5,
        Kind.VARCHAR: "v\tx",
        Kind.CHAR: "ab  ",
        Kind.TEXT: "t",
        Kind.DATE: "2024-02-29",
        Kind.TIME: "23:59:59.5",
        Kind.TIMESTAMP: "1969-12-31 23:59:59.999999",
    }[kind]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=60), size=st.integers(1, 25))
def test_arrow_makes_the_text_the_sqlite3_module_makes(tmp_path: Path, rows: list[Any], size: int) -> None:
    """Every kind Arrow takes, with escapes, NUL, 4-byte characters, padding, NULLs and decimals held
    as REAL or INTEGER: the same fields, or a stop where Arrow cannot make them (a batch whose
    decimals are all whole, then one that is not: ADBC's typing of the column from its first batch;
    a double from 1e10 on, which Arrow writes with an exponent)."""
    path = _table(tmp_path / "rows.sqlite", rows)
    expected = _fields(_module_text(path, KINDS, size), KINDS)
    try:
        made = _arrow_text(path, KINDS, size)
    except textread.NotArrow as exc:
        decimals = [r[1] for r in rows]
        if "Type mismatch" in str(exc):  # (NUMERIC's affinity stores a whole REAL as an INTEGER)
            assert {float(d).is_integer() for d in decimals} == {True, False}
        else:
            assert "exponent" in str(exc)
            assert max(map(abs, decimals)) >= 1e10
        return
    assert _fields(made, KINDS) == expected


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True))
def test_a_double_in_a_decimal_is_its_shortest_digits_or_a_stop(x: float) -> None:
    """Arrow's shortest digits of a double are Python's (its ``repr``), where it writes no exponent:
    from 1e-5 to 1e10 at least (a DECIMAL(12,2)'s); past 2**53 (where an INTEGER may have been
    rounded to it), with an exponent, or no number: a stop."""
    import pyarrow as pa

    batch = pa.record_batch([pa.array([x], pa.float64())], names=["m"])
    try:
        text = arrowtext.batch_text(batch, [Kind.DECIMAL])
    except textread.NotArrow:
        assert not math.isfinite(x) or not (x == 0 or 1e-5 <= abs(x) < 1e10)
        return
    assert Decimal(text.decode().rstrip("\n")) == Decimal(repr(x))
    assert abs(x) < 2**53


@pytest.mark.parametrize(
    ("declared", "kind", "values", "why"),
    [
        ("NUMERIC(12,2)", Kind.DECIMAL, [1, 2, 2.5], "Type mismatch"),
        ("INTEGER", Kind.BIGINT, [1, 2, "three"], "Type mismatch"),
        ("INTEGER", Kind.BIGINT, ["one", "two"], "came as string"),
        ("NUMERIC(20,0)", Kind.DECIMAL, [0.5, 2**53 + 1], "past 2**53"),
        ("REAL", Kind.DECIMAL, [0.5, 1e-7], "exponent"),
        ("REAL", Kind.DECIMAL, [0.5, math.inf], "past 2**53"),
        ("TIMESTAMP", Kind.TIMESTAMP, ["2020-01-01 00:00:00", "2020-01-01T00:00:00"], "not ISO"),
        ("TIMESTAMP", Kind.TIMESTAMP, ["2020-01-01 00:00:00", "2020-00-01 00:00:00"], "zero"),
        ("DATE", Kind.DATE, ["0000-01-01"], "zero"),
        ("TIME", Kind.TIME, ["10:00:00", "10:00"], "not ISO"),
        ("TEXT", Kind.TEXT, ["ok", "fine", b"\xff\xfe"], "no UTF-8"),
        ("TEXT", Kind.TEXT, ["ok", b"\xff\xfe"], "came as binary"),
    ],
)
def test_values_arrow_would_give_otherwise_stop_it(
    tmp_path: Path, declared: str, kind: Kind, values: list[Any], why: str
) -> None:
    path = _table(tmp_path / "odd.sqlite", [[v] for v in values], [declared])
    with pytest.raises(textread.NotArrow, match=re.escape(why)):
        _arrow_text(path, [kind], 2)


def test_decimals_past_what_the_target_keeps_stop_it(tmp_path: Path) -> None:
    """As ``bulk.excess_decimals``: a decimal, or a time's fraction, with a digit past the scale."""
    path = _table(
        tmp_path / "scale.sqlite", [[1.25, "10:00:00.120"], [1.5, "10:00:00.1"]], ["NUMERIC", "TIME"]
    )
    kinds = [Kind.DECIMAL, Kind.TIME]
    assert _arrow_text(path, kinds, 10, [2, 2]) == b"1.25\t10:00:00.120\n1.5\t10:00:00.1\n"
    with pytest.raises(textread.NotArrow, match=r"keeps \(1\)"):
        _arrow_text(path, kinds, 10, [1, None])
    with pytest.raises(textread.NotArrow, match=r"keeps \(0\)"):
        _arrow_text(path, kinds, 10, [None, 0])


def test_not_text_finds_the_numbers_and_blobs_in_columns_of_text(tmp_path: Path) -> None:
    """The guard's query (``SQLite.not_text``) finds a row by its number or BLOB in a TEXT column or
    one of no type; text of any kind, the empty string and NULL are text to it."""
    path = tmp_path / "guard.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    texts = ["a", "", "\x00", "😀", "9", None]
    others = [5, 2.5, -1, 0, b"", b"A", b"\xff"]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE g (id INTEGER PRIMARY KEY, typed TEXT, untyped)")
        for n, value in enumerate(texts + others):
            conn.exec_driver_sql("INSERT INTO g VALUES (?, ?, ?)", (n, value if n % 2 else "x", value))
    table = sa.table("g", sa.column("id"), sa.column("typed"), sa.column("untyped"))
    rows = sa.select(table).subquery()
    condition = SQLite().not_text([rows.c.typed, rows.c.untyped])
    assert condition is not None
    with engine.connect() as conn:
        found = sorted(conn.execute(sa.select(rows.c.id).where(condition)).scalars())
    engine.dispose()
    assert found == list(range(len(texts), len(texts) + len(others)))


def _spec(path: str, kinds: Sequence[Kind], size: int, guard: tuple[str, Any] | None) -> textread.ReadSpec:
    return textread.ReadSpec(
        driver="sqlite3",
        connect_args=(path,),
        connect_kwargs={},
        setup=(),
        sql=_select(kinds),
        params=(),
        kinds=tuple(kinds),
        batch_size=size,
        writer="copy",
        arrow=True,
        guard=guard,
    )


@pytest.fixture
def module_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL of each read through the sqlite3 module's path."""
    reads: list[str] = []
    original = textread.sqlite_batches

    def counted(cursor: Any, sql: str, *args: Any) -> Iterator[tuple[bytes, int]]:
        reads.append(sql)
        return original(cursor, sql, *args)

    monkeypatch.setattr(textread, "sqlite_batches", counted)
    yield reads


def _read(spec: textread.ReadSpec) -> list[bytes]:
    with sqlite3.connect(spec.connect_args[0]) as conn:
        return [text for text, _ in textread.sqlite_spec_batches(conn.cursor(), spec)]


def test_a_reader_goes_through_arrow_or_falls_back_before_its_first_batch(
    tmp_path: Path, module_reads: list[str]
) -> None:
    """Clean rows go through Arrow; a guard that finds a row, or a first batch Arrow cannot make,
    sends the chunk through the sqlite3 module from its start (nothing sent yet)."""
    kinds = [Kind.DECIMAL, Kind.TEXT]
    path = _table(tmp_path / "read.sqlite", [[3.0, "a"], [4.5, "b"]], ["REAL", "TEXT"])
    assert _read(_spec(path, kinds, 10, None)) == [b"3\ta\n4.5\tb\n"]  # (Arrow's 3)
    assert module_reads == []
    found = ("SELECT 1", ())
    assert _read(_spec(path, kinds, 10, found)) == [b"3.0\ta\n4.5\tb\n"]  # (Python's 3.0)
    path = _table(tmp_path / "first.sqlite", [["x", "a"], [4.5, "b"]], ["NUMERIC", "TEXT"])
    assert len(module_reads) == 1
    with pytest.raises(textread.AsValues):  # (the module's path: text in a decimal is no text)
        _read(_spec(path, kinds, 10, None))
    assert len(module_reads) == 2


def test_a_reader_that_cannot_go_on_after_a_batch_stops(tmp_path: Path, module_reads: list[str]) -> None:
    """Once Arrow has given a batch, a later one it cannot make stops the read (the copy writes the
    chunk again), not a switch that would send the first rows twice."""
    path = _table(tmp_path / "later.sqlite", [[1], [2], [2.5]], ["NUMERIC"])
    spec = _spec(path, [Kind.DECIMAL], 2, None)
    with sqlite3.connect(path) as conn:
        batches = textread.sqlite_spec_batches(conn.cursor(), spec)
        assert next(batches) == (b"1\n2\n", 2)
        with pytest.raises(textread.NotArrow, match="Type mismatch"):
            next(batches)
    assert module_reads == []


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_a_chunk_arrow_cannot_finish_is_copied_again_through_the_module(
    make_db: Callable[[str], Database],
    target_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Decimals whole in the first batches and not in a later one, in reader processes: the chunk
    Arrow stopped in is rolled back and read through the sqlite3 module, and every row arrives once,
    exactly; the clean chunk before it went through Arrow."""
    monkeypatch.setattr(textread, "ROWS_FROM", 0)
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE m (id INTEGER PRIMARY KEY, amount NUMERIC(12,2), note TEXT)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
        "INSERT INTO m SELECT i, CASE WHEN i = 2900 THEN i + 0.25 ELSE i END, 'n' || char(9) || i FROM n",
    )
    types = [CanonicalType(Kind.INTEGER), CanonicalType(Kind.DECIMAL, 12, 2), CanonicalType(Kind.TEXT)]
    with caplog.at_level(logging.INFO, logger="parity"):
        copy_ok(job_for(source, target, tables=["m"]), batch_size=100, workers=1)
    expected = [(i, Decimal(i) + (Decimal("0.25") if i == 2900 else 0), f"n\t{i}") for i in range(1, 3001)]
    assert read_back(target, "m", ["id", "amount", "note"], types) == expected
    again = [
        r.getMessage() for r in caplog.records if "read again through the sqlite3 module" in r.getMessage()
    ]
    assert len(again) == 1 and "Type mismatch" in again[0], again


def test_reader_processes_read_clean_sqlite_rows_through_arrow(
    make_db: Callable[[str], Database], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy whose rows Arrow can make reads none again (the sqlite3 module's path is the reader's
    only other way, which the copy's own guard of a chunk would log)."""
    monkeypatch.setattr(textread, "ROWS_FROM", 0)
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE c (id INTEGER PRIMARY KEY, amount NUMERIC(12,2), at TIMESTAMP)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
        "INSERT INTO c SELECT i, i / 4.0, '2024-01-01 00:00:00.' || (100000 + i) FROM n",
    )
    with caplog.at_level(logging.INFO, logger="parity"):
        copy_ok(job_for(source, target, tables=["c"]), batch_size=50)
    assert not [r for r in caplog.records if "sqlite3 module" in r.getMessage()]
    assert target.query("SELECT sum(amount), count(DISTINCT at) FROM c") == [(Decimal("31312.50"), 500)]
