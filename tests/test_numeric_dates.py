"""SQLite files that hold dates as numbers (``?numeric_dates=`` on the URL): Prisma's milliseconds, Unix
seconds and Julian days are read as the moments they are by copy, diff and sync; a number that is no
moment is rejected with its reason; parity refuses to write into such a file (it writes ISO text)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from parity import textread
from parity.copy import copy
from parity.diff import diff
from parity.job import build
from parity.schema.types import CanonicalType, Kind
from parity.sync import sync
from tests.conftest import Database
from tests.test_cli import Result, assert_one_line_error
from tests.test_cli import parity as parity  # noqa: PLC0414 - the fixture, used by name
from tests.test_copy import read_back

ISO = "2024-01-02 03:04:05.250000"
"""A row the application wrote as text: read as it is, whatever the option."""

CASES: dict[str, list[tuple[float | int, datetime]]] = {
    "unixepoch_ms": [
        (1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123_000)),
        (0, datetime(1970, 1, 1)),
        (-1, datetime(1969, 12, 31, 23, 59, 59, 999_000)),
        (-2_208_988_800_000, datetime(1900, 1, 1)),
        (253_402_300_799_999, datetime(9999, 12, 31, 23, 59, 59, 999_000)),
    ],
    "unixepoch": [
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20)),
        (1_700_000_000.5, datetime(2023, 11, 14, 22, 13, 20, 500_000)),
        (-86_400, datetime(1969, 12, 31)),
        (4_102_444_800, datetime(2100, 1, 1)),
    ],
    "julianday": [
        (2_460_000.5, datetime(2023, 2, 25)),
        (2_440_587.5, datetime(1970, 1, 1)),
        (2_460_000.25, datetime(2023, 2, 24, 18)),
        (2_415_020.5, datetime(1900, 1, 1)),
    ],
}
MIDNIGHT = {"unixepoch_ms": 1_699_920_000_000, "unixepoch": 1_699_920_000, "julianday": 2_460_262.5}
"""2023-11-14, as each unit holds it."""

TYPES = [CanonicalType(Kind.BIGINT), CanonicalType(Kind.TIMESTAMP), CanonicalType(Kind.DATE)]


def _source(tmp_path: Path, unit: str, extra: Sequence[tuple[int, Any, Any]] = ()) -> tuple[Database, str]:
    """A file as an application leaves it: DATETIME and DATE columns holding numbers, text and NULL;
    the Database (without the option) and its URL with ``?numeric_dates=unit``."""
    path = tmp_path / f"app_{unit}.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "Event" (id INTEGER PRIMARY KEY, "createdAt" DATETIME, "day" DATE)')
        rows = [(n, number, MIDNIGHT[unit]) for n, (number, _) in enumerate(CASES[unit], 1)]
        rows += [(100, ISO, "2024-01-02"), (101, None, None), *extra]
        conn.executemany('INSERT INTO "Event" VALUES (?, ?, ?)', rows)
    conn.close()
    url = f"sqlite:///{path}"
    return Database(path.stem, url), f"{url}?numeric_dates={unit}"


def _expected(unit: str) -> list[tuple[Any, ...]]:
    rows = [(n, moment, date(2023, 11, 14)) for n, (_, moment) in enumerate(CASES[unit], 1)]
    return [*rows, (100, datetime(2024, 1, 2, 3, 4, 5, 250_000), date(2024, 1, 2)), (101, None, None)]


@pytest.mark.parametrize("unit", sorted(CASES))
def test_copy_and_diff_read_numbers_as_the_moments_they_are(
    unit: str, backend: Database, tmp_path: Path
) -> None:
    plain, url = _source(tmp_path, unit)
    result = copy(build(url, backend.url, target_schema=backend.schema), mode="replace")
    assert [(t.status, t.rows_written, t.rejected) for t in result.tables] == [
        ("ok", len(CASES[unit]) + 2, 0)
    ]
    names = ["id", "createdAt", "day"]
    assert read_back(backend, "Event", names, TYPES) == _expected(unit)
    found = diff(build(url, backend.url, target_schema=backend.schema))
    assert found.identical and found.tables[0].stats.rows_downloaded == 0, found.tables[0].stats
    back = diff(build(backend.url, url, source_schema=backend.schema))  # (the file as the target)
    assert back.identical and back.tables[0].stats.rows_downloaded == 0, back.tables[0].stats
    # without the option the numbers are no dates: the rows that hold them differ
    unread = diff(build(plain.url, backend.url, target_schema=backend.schema))
    assert unread.tables[0].stats.changed == len(CASES[unit])
    # sync makes a drifted target equal again, reading the numbers as copy did
    backend.sql(
        f"DELETE FROM {backend.q('Event')} WHERE id = 2", f"UPDATE {backend.q('Event')} SET day = NULL"
    )
    synced = sync(build(url, backend.url, target_schema=backend.schema))
    assert synced.verified and [(t.inserted, t.updated) for t in synced.tables] == [(1, len(CASES[unit]))]
    assert read_back(backend, "Event", names, TYPES) == _expected(unit)


def test_a_large_table_is_read_the_same_in_reader_processes(
    pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text path of reader processes (SQLite into PostgreSQL) runs the same SQL."""
    monkeypatch.setattr(textread, "ROWS_FROM", 0)
    many = [(1000 + n, 1_600_000_000_000 + n * 1_001, 1_600_041_600_000) for n in range(3000)]
    _, url = _source(tmp_path, "unixepoch_ms", many)
    result = copy(
        build(url, pg_db.url, target_schema=pg_db.schema), mode="replace", batch_size=500, workers=2
    )
    assert [(t.status, t.rows_written) for t in result.tables] == [("ok", 3007)]
    rows = dict(pg_db.query('SELECT id, "createdAt" FROM "Event"'))
    assert rows[1000] == datetime(2020, 9, 13, 12, 26, 40)
    assert rows[3999] == datetime(2020, 9, 13, 13, 16, 41, 999_000)
    assert rows[1] == datetime(2023, 11, 14, 22, 13, 20, 123_000) and rows[101] is None
    assert diff(build(url, pg_db.url, target_schema=pg_db.schema)).identical


def test_a_number_that_is_no_moment_is_rejected_with_its_reason(sqlite_db: Database, tmp_path: Path) -> None:
    """Out of SQLite's range, or a date column's number that holds a time of day: the row is
    rejected, never copied as NULL or cut to its day."""
    extra = [
        (200, 10**17, None),
        (201, None, MIDNIGHT["unixepoch_ms"] + 3_600_000),
        (202, 1.7e12 + 0.7, None),
    ]
    _, url = _source(tmp_path, "unixepoch_ms", extra)
    rejects = tmp_path / "rejects.jsonl"
    result = copy(build(url, sqlite_db.url), mode="replace", rejects_file=str(rejects))
    assert [(t.rows_written, t.rejected) for t in result.tables] == [(7, 3)]
    reasons = {r["row"]["id"]: r["reason"] for r in map(json.loads, rejects.read_text().splitlines())}
    assert reasons.keys() == {200, 201, 202}  # (202: a part of a millisecond, which strftime rounded)
    assert reasons[200].startswith("createdAt: 100000000000000000 is no timestamp"), reasons
    assert reasons[201].startswith("day: ") and "time of day" in reasons[201], reasons


def test_bad_options_and_writes_into_such_a_file_are_refused(
    parity: Callable[..., Result], pg_db: Database, tmp_path: Path
) -> None:
    _, url = _source(tmp_path, "unixepoch")
    other, _ = _source(tmp_path, "julianday")
    target = tmp_path / "out.sqlite"
    assert_one_line_error(
        parity("copy", url.replace("=unixepoch", "=seconds"), f"sqlite:///{target}"),
        "numeric_dates='seconds' is none of julianday, unixepoch, unixepoch_ms",
    )
    assert_one_line_error(
        parity("diff", f"{pg_db.url}?numeric_dates=unixepoch", url, "-t", "Event"),
        "numeric_dates is an option of SQLite URLs only",
    )
    file = Path(url.split("///", 1)[1].split("?")[0])
    before = file.read_bytes()
    for command in (
        ("copy", other.url, url),
        ("sync", other.url, url),
        ("fix", other.url, url, "--run", "x"),
    ):
        assert_one_line_error(parity(*command), "numeric_dates=unixepoch", "does not write them")
    assert file.read_bytes() == before  # (nothing written, not even parity's state)


def test_partitions_by_month_read_the_numbers_as_moments(pg_db: Database, tmp_path: Path) -> None:
    """A diff partitioned by a date column finds that column's bounds as the moments it holds (it
    stopped: the least value, a number, was no timestamp)."""
    _, url = _source(tmp_path, "unixepoch_ms")
    assert copy(build(url, pg_db.url, target_schema=pg_db.schema), mode="replace").ok
    by_month = {"partition": {"column": "createdAt", "by": "month"}, "where": "id <> 5"}  # (not 9999)
    found = diff(build(url, pg_db.url, target_schema=pg_db.schema, table_options=by_month))
    assert found.identical and found.tables[0].stats.rows_downloaded == 0, found.tables[0].stats
    pg_db.sql('UPDATE "Event" SET "createdAt" = "createdAt" + interval \'1 ms\' WHERE id = 3')
    changed = diff(build(url, pg_db.url, target_schema=pg_db.schema, table_options=by_month))
    assert [(d.kind, d.key["id"], d.columns) for d in changed.differences] == [("changed", 3, ("createdAt",))]


def test_without_the_option_a_number_is_no_date(sqlite_db: Database, tmp_path: Path) -> None:
    """Python's ISO parser took the integer 20230101 in a DATE column for 2023-01-01 (the audit), where
    the docs say a number is no date: rejected, its reason naming the option."""
    plain, _ = _source(tmp_path, "unixepoch", [(300, None, 20230101)])
    rejects = tmp_path / "rejects.jsonl"
    result = copy(build(plain.url, sqlite_db.url), mode="replace", rejects_file=str(rejects))
    reasons = {r["row"]["id"]: r["reason"] for r in map(json.loads, rejects.read_text().splitlines())}
    assert result.tables[0].rows_written == 2  # the rows of text and NULL
    assert reasons[300] == (
        "day: 20230101 is no date (a number is no date; with ?numeric_dates= on an SQLite file's URL, a number"
        " of whole milliseconds within the years 0 to 9999 is)"
    ), reasons


def test_a_condition_reads_the_numbers_as_moments(pg_db: Database, tmp_path: Path) -> None:
    """``--where "createdAt >= '2023-11-14'"`` ran on the numbers, which SQLite takes for less than
    any text: no source row met it, a copy copied none, and a sync --delete would have deleted the
    target's rows that met it (the audit)."""
    _, url = _source(tmp_path, "unixepoch_ms")
    since = "\"createdAt\" >= '2023-11-14'"
    since_job = {"table_options": {"where": since}}
    copied = copy(build(url, pg_db.url, target_schema=pg_db.schema, **since_job), mode="replace")
    assert [t.rows_written for t in copied.tables] == [3]  # (2023-11-14 22:13:20.123, 9999, the text)
    assert copy(build(url, pg_db.url, target_schema=pg_db.schema), mode="replace").ok
    found = diff(build(url, pg_db.url, target_schema=pg_db.schema, **since_job))
    assert found.identical and found.tables[0].stats.source_rows == 3, found.tables[0].stats
    synced = sync(build(url, pg_db.url, target_schema=pg_db.schema, **since_job), extra="delete")
    assert synced.verified and [t.deleted for t in synced.tables] == [0]
    assert len(pg_db.query('SELECT id FROM "Event"')) == len(CASES["unixepoch_ms"]) + 2
