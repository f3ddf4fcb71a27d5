"""diff's SQL per dialect, compiled without a server (SQL Server and Oracle have none here), and the
pure parts: how column types meet, how segments split, the SQLite functions, a Hypothesis round trip."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from parity import job as jobs
from parity.dialects import REGISTRY, Dialect
from parity.dialects.sqlite import DIFF_FUNCTIONS, _ExactSum
from parity.diff import diff
from parity.diff.hashdiff import Found
from parity.diff.plan import ColumnPair, Compare, TablePlan, compare_types
from parity.diff.segments import (
    Root,
    Segment,
    child_width,
    index_groups,
    root_segment,
    window_starts,
)
from parity.diff.sql import Side
from parity.errors import ConfigError, SchemaError
from parity.schema.model import Column, Table
from parity.schema.types import CanonicalType as T
from parity.schema.types import Kind

SA_DIALECTS = {
    "postgresql": postgresql.dialect(),
    "mariadb": mysql.dialect(is_mariadb=True),
    "sqlite": sqlite.dialect(),
    "mssql": mssql.dialect(),
    "oracle": oracle.dialect(),
}


@dataclass
class FakeEndpoint:
    """What Side needs of an Endpoint to build (not run) its SQL."""

    dialect: Dialect
    schema: str | None = None


KINDS = {
    "flag": T(Kind.BOOLEAN),
    "n": T(Kind.INTEGER),
    "price": T(Kind.DECIMAL, precision=12, scale=2),
    "ratio": T(Kind.DOUBLE),
    "select": T(Kind.VARCHAR, length=20),  # a reserved word: must be quoted
    "code": T(Kind.CHAR, length=4),
    "day": T(Kind.DATE),
    "at": T(Kind.TIME),
    "stamp": T(Kind.TIMESTAMP),
    "zoned": T(Kind.TIMESTAMPTZ),
    "blob": T(Kind.BINARY),
    "guid": T(Kind.UUID),
    "doc": T(Kind.JSON),
}


def plan(**compares: Compare) -> TablePlan:
    columns = [Column("Order Id", T(Kind.BIGINT)), *(Column(n, t) for n, t in KINDS.items())]
    table = Table("Order Items", tuple(columns), primary_key=("Order Id",))
    pairs = [
        ColumnPair(c, c, compares.get(c.name) or compare_types(c.type, c.type, None, c.name)) for c in columns
    ]
    return TablePlan(table, table, keys=(pairs[0],), columns=tuple(pairs[1:]))


def compiled(name: str, query: sa.ClauseElement) -> tuple[str, dict[str, Any]]:
    done = query.compile(dialect=SA_DIALECTS[name])
    return str(done), dict(done.params)


@pytest.mark.parametrize("name", sorted(SA_DIALECTS))
def test_checksum_sql_quotes_identifiers_and_binds_values(name: str) -> None:
    side = Side(FakeEndpoint(REGISTRY[name](), schema="Sales"), plan(), "source")  # type: ignore[arg-type]
    sql, params = compiled(
        name, side.checksums(side.range_bucket(1000, 4096), [side.key_range(987654321, 987658417)])
    )
    quote = SA_DIALECTS[name].identifier_preparer.quote
    assert f"{quote('Sales')}.{quote('Order Items')}" in sql
    assert quote("select") != "select" and quote("select") in sql
    assert "987654321" not in sql and 987654321 in params.values()
    assert "count(*)" in sql.lower() and "group by" in sql.lower()


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("mssql", ["HASHBYTES(", "COLLATE Latin1_General_100_CI_AS_SC_UTF8", "AS VARCHAR(max)", "sum(CAST(", "NUMERIC(38, 0)"]),
        ("oracle", ["standard_hash(", "rawtohex(", "to_number(", "to_binary_double(", "log(", "sys_extract_utc("]),
        ("postgresql", ["sha256(convert_to(", "AS BIT(60)", "encode(", "to_char(", "AS JSONB", "octet_length(", "coalesce("]),
        ("mariadb", ["sha2(", "conv(", "UNSIGNED", "concat(", "AS DATETIME(6)", "time_format("]),
        ("sqlite", ["parity_hash60(", "parity_sum(", "parity_decimal(", "parity_timestamp(", "parity_uuid("]),
    ],
)  # fmt: skip
def test_each_dialect_hashes_with_its_own_functions(name: str, fragments: list[str]) -> None:
    side = Side(FakeEndpoint(REGISTRY[name]()), plan(), "source")  # type: ignore[arg-type]
    sql, _ = compiled(name, side.checksums(side.hash_bucket(256), []))
    lowered = sql.lower()
    for fragment in fragments:
        assert fragment.lower() in lowered, (fragment, sql)
    assert "crc32" not in lowered and "checksum(" not in lowered


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("mssql", "AS VARCHAR(40))"),
        ("oracle", "AS VARCHAR2(40 CHAR))"),
        ("postgresql", "AS VARCHAR(40))"),
        ("mariadb", "concat("),
        ("sqlite", "AS VARCHAR(40))"),
    ],
)
def test_a_target_read_through_the_id_map_joins_it_per_id_column(name: str, spelled: str) -> None:
    """Its own IDs by an inner join, a reference by an outer one (an ID the map does not hold is read
    as it is), each on (table_name, new_id) with the ID in the map's text; the table names bound."""
    from parity.diff.idmap import ThroughMap
    from parity.state import tables

    dialect = REGISTRY[name]()
    through = ThroughMap(tables("Sales")[2], dialect, own="Order Id", references={"n": "Parent Table"})
    side = Side(FakeEndpoint(dialect, schema="Sales"), replace(plan(), through_map=through), "target")  # type: ignore[arg-type]
    sql, params = compiled(name, side.checksums(side.hash_bucket(256), []))
    quote = SA_DIALECTS[name].identifier_preparer.quote
    assert sql.count(f"{quote('Sales')}.{quote('_parity_id_map')}") == 2, sql
    assert " JOIN " in sql and " LEFT OUTER JOIN " in sql
    assert sql.count(spelled) >= 2, sql
    assert {"Order Items", "Parent Table"} <= set(params.values())
    assert "Parent Table" not in sql
    assert not replace(plan(), through_map=through).key_ranges  # (no index serves ranges of old IDs)


def test_mariadb_integer_division_is_div_and_grouped() -> None:
    side = Side(FakeEndpoint(REGISTRY["mariadb"]()), plan(), "source")  # type: ignore[arg-type]
    sql, _ = compiled("mariadb", side.range_bucket(5, 16))
    assert sql == "(`Order Items`.`Order Id` - %s) DIV %s"


def test_tolerance_and_unbounded_decimals_render_differently() -> None:
    exact = Side(FakeEndpoint(REGISTRY["postgresql"]()), plan(), "source")  # type: ignore[arg-type]
    rounded = Side(
        FakeEndpoint(REGISTRY["postgresql"]()),  # type: ignore[arg-type]
        plan(ratio=Compare(Kind.DOUBLE, digits=12, tolerance=0.5), price=Compare(Kind.DECIMAL, scale=None)),
        "source",
    )
    sql_exact, _ = compiled("postgresql", exact.checksums(exact.hash_bucket(256), []))
    sql_rounded, params = compiled("postgresql", rounded.checksums(rounded.hash_bucket(256), []))
    assert "ln(" in sql_exact and "log10(" not in sql_exact and 0.5 in params.values()  # (doubles: exactly)
    assert "rtrim(" in sql_rounded and "round(CAST(" in sql_rounded


# ---- how column types meet ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (T(Kind.SMALLINT), T(Kind.BIGINT), Compare(Kind.BIGINT)),
        (T(Kind.DECIMAL, precision=12, scale=2), T(Kind.DECIMAL, precision=14, scale=4), Compare(Kind.DECIMAL, 4)),
        (T(Kind.INTEGER), T(Kind.DECIMAL, precision=10, scale=0), Compare(Kind.DECIMAL, 0)),
        (T(Kind.DECIMAL), T(Kind.DECIMAL, precision=10, scale=3), Compare(Kind.DECIMAL, None)),
        (T(Kind.FLOAT), T(Kind.DOUBLE), Compare(Kind.DOUBLE, single=True)),
        (T(Kind.FLOAT), T(Kind.DECIMAL, precision=9, scale=2), Compare(Kind.DOUBLE, digits=6)),
        (T(Kind.DECIMAL, precision=9, scale=2), T(Kind.DOUBLE), Compare(Kind.DOUBLE, digits=12)),
        (T(Kind.BOOLEAN), T(Kind.SMALLINT), Compare(Kind.BOOLEAN)),
        (T(Kind.CHAR, length=3), T(Kind.TEXT), Compare(Kind.TEXT, strip=True)),
        (T(Kind.VARCHAR, length=3), T(Kind.TEXT), Compare(Kind.TEXT)),
        (T(Kind.UUID), T(Kind.CHAR, length=36), Compare(Kind.UUID)),
        (T(Kind.TIMESTAMPTZ), T(Kind.TIMESTAMP), Compare(Kind.TIMESTAMP)),
        (T(Kind.TIMESTAMPTZ), T(Kind.TIMESTAMPTZ), Compare(Kind.TIMESTAMPTZ)),
        (T(Kind.JSON), T(Kind.TEXT), Compare(Kind.JSON)),
    ],
)  # fmt: skip
def test_compatible_types_meet(source: T, target: T, expected: Compare) -> None:
    assert compare_types(source, target, None, "t.c") == expected


@pytest.mark.parametrize(
    ("source", "target"),
    [(T(Kind.DATE), T(Kind.TIMESTAMP)), (T(Kind.INTEGER), T(Kind.TEXT)), (T(Kind.BINARY), T(Kind.UUID)),
     (T(Kind.BOOLEAN), T(Kind.TEXT)), (T(Kind.JSON), T(Kind.INTEGER))],
)  # fmt: skip
def test_incompatible_types_are_schema_errors(source: T, target: T) -> None:
    with pytest.raises(SchemaError, match=r"t\.c: .* cannot be compared"):
        compare_types(source, target, None, "t.c")


def test_tolerance_only_for_numbers_and_timestamps() -> None:
    assert compare_types(T(Kind.DOUBLE), T(Kind.DOUBLE), 0.1, "t.c").tolerance == 0.1
    with pytest.raises(ConfigError, match="tolerance applies to numbers and timestamps, not text"):
        compare_types(T(Kind.TEXT), T(Kind.TEXT), 1.0, "t.c")


# ---- segments -------------------------------------------------------------------------------------------


def test_range_segments_line_up_at_every_level() -> None:
    root = root_segment(Root(lo=10, hi=1_000_011))
    assert (root.width, root.base) == (1 << 20, 10)
    level1 = child_width(root.width, ranges=True, bits=12)
    assert level1 == 256 and child_width(16, ranges=True, bits=8) == 1
    assert [Segment(root.root, level1, i, 10).key_range() for i in (0, 3906)] == [
        (10, 266),
        (999946, 1_000_011),
    ]
    assert child_width(256, ranges=False, bits=8) == 65536 and not Segment(Root(), 1 << 56, 0).splittable(
        False
    )


def test_a_single_differing_row_locates_itself() -> None:
    """Bucket 3 of 16 keys from 100 (keys 148..163): sums of h and of offset * h name the one row."""
    rows = {148 + o: 1000 + 7 * o for o in range(16)}  # key -> row hash, as the source has them

    def found(target_rows: dict[int, int]) -> Found:
        def sums(r: dict[int, int]) -> tuple[tuple[int, int], int]:
            return (len(r), sum(r.values())), sum((k - 148) * h for k, h in r.items())

        (a, ma), (b, mb) = sums(rows), sums(target_rows)
        return Found(Root(lo=100, hi=1000), 16, 100, {3: a}, {3: b}, True, {3: ma}, {3: mb})

    changed = {**rows, 155: 5}
    assert found(changed).locate(3) == 155
    assert found({k: h for k, h in rows.items() if k != 160}).locate(3) == 160  # missing in the target
    assert found({**rows, 150: 1, 151: 2}).locate(3) is None  # two rows: no whole offset here
    assert found({k: h for k, h in rows.items() if k not in (150, 151)}).locate(3) is None  # two rows gone
    assert replace(found(changed), located=False).locate(3) is None


def test_index_groups_are_consecutive_and_bounded() -> None:
    segments = [Segment(Root(), 16, i) for i in (9, 3, 4, 5, 20, 21, 40, 41, 42, 43)]
    by_count = index_groups(segments, 3, max_items=1000)
    assert [[s.index for s in g] for g in by_count] == [[3, 4, 5, 9], [20, 21, 40, 41], [42, 43]]
    capped = index_groups(segments, 1, max_items=3)
    assert [len(g) for g in capped] == [3, 3, 3, 1]
    sizes = [5] * len(segments)
    by_rows = index_groups(segments, 1, max_items=1000, sizes=sizes, max_rows=12)
    assert [len(g) for g in by_rows] == [2, 2, 2, 2, 2]


def test_window_starts_by_month_week_and_day() -> None:
    from datetime import date

    assert window_starts(date(2024, 1, 15), date(2024, 3, 1), "month") == [
        date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1),
    ]  # fmt: skip
    assert window_starts(date(2024, 1, 3), date(2024, 1, 8), "week") == [
        date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15),
    ]  # fmt: skip
    assert len(window_starts(date(2023, 12, 31), date(2024, 1, 2), "day")) == 4


# ---- SQLite's registered functions -----------------------------------------------------------------------


def test_sqlite_functions_match_the_other_databases_text() -> None:
    f = {name: fn for name, (_, fn) in DIFF_FUNCTIONS.items()}
    assert f["md5"]("é|1") == hashlib.md5("é|1".encode()).hexdigest()
    assert f["parity_hash60"]("abc") == int(hashlib.sha256(b"abc").hexdigest()[:15], 16)
    assert [f["parity_decimal"](v, 2) for v in (12.5, "12.50", 12, -0.0, "1.005")] == [
        "12.50",
        "12.50",
        "12.00",
        "0.00",
        "1.005",
    ]
    assert [f["parity_decimal"](v, -1) for v in ("12.50", 100, "0.000")] == ["12.5", "100", "0"]
    assert f["parity_float"](1 / 3, 12) == "333333333333e-1" and f["parity_float"](0.0, 12) == "0"
    assert f["parity_timestamp"]("2024-01-02T03:04:05+02:00", 1) == "2024-01-02 01:04:05.000000"
    assert f["parity_time"]("01:02:03.5") == "01:02:03.500000"
    assert f["parity_uuid"]("6F9619FF-8B86-D011-B42D-00CF4FC964FF") == "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    assert f["parity_json"]('{"bb": 1, "a": [1.50, 2e1]}') == '{"a": [1.50, 20], "bb": 1}'  # (jsonb's text)
    total = _ExactSum()
    for _ in range(100):
        total.step((1 << 60) - 1)
    assert int(total.finalize()) == 100 * ((1 << 60) - 1)  # beyond 64 bits, exactly  # fmt: skip


# ---- a property: mutate a copy, and diff finds exactly the mutations --------------------------------------

BASE_ROWS = 400


@pytest.fixture(scope="module")
def base_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diff") / "base.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2), note TEXT)"
        )
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(i, f"n{i}", str(Decimal(i) / 4), None if i % 5 else "") for i in range(BASE_ROWS)],
        )
    return path


mutation = st.one_of(
    st.tuples(st.just("update"), st.integers(0, BASE_ROWS - 1), st.sampled_from(["name", "amount", "note"])),
    st.tuples(st.just("delete"), st.integers(0, BASE_ROWS - 1), st.just("")),
    st.tuples(st.just("insert"), st.integers(BASE_ROWS, BASE_ROWS + 50), st.just("")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(mutation, max_size=12, unique_by=lambda m: m[1]))
def test_diff_finds_exactly_the_mutations(
    base_file: Path, tmp_path: Path, changes: list[tuple[str, int, str]]
) -> None:
    target = tmp_path / f"t{abs(hash(tuple(changes)))}.sqlite"
    shutil.copy(base_file, target)
    expected = set()
    with sqlite3.connect(target) as conn:
        for kind, key, column in changes:
            if kind == "update":
                new = {
                    "name": "'changed'",
                    "amount": "amount + 0.01",
                    "note": "CASE WHEN note IS NULL THEN '' ELSE NULL END",
                }
                conn.execute(f"UPDATE t SET {column} = {new[column]} WHERE id = ?", (key,))
                expected.add(("changed", key, (column,)))
            elif kind == "delete":
                conn.execute("DELETE FROM t WHERE id = ?", (key,))
                expected.add(("missing", key, ()))
            else:
                conn.execute("INSERT INTO t VALUES (?, 'x', 1, NULL)", (key,))
                expected.add(("extra", key, ()))
    job = jobs.build(f"sqlite:///{base_file}", f"sqlite:///{target}", tables=["t"])
    try:
        result = diff(job, threshold=8)
    finally:
        job.close()
    assert {(d.kind, d.key["id"], d.columns) for d in result.differences} == expected
    assert result.tables[0].stats.rows_downloaded <= 2 * 8 * max(1, len(changes))


def test_mysql_hashes_a_six_digit_datetime_as_its_own_text_only() -> None:
    """DATETIME(6)/TIMESTAMP(6) as strings are the canonical text already; a TIME(6) (a type the job
    file calls a timestamp) or a DATETIME(3) is still cast."""
    mysql_dialect = REGISTRY["mariadb"]()
    kind = T(Kind.TIMESTAMP)
    cases = {("DATETIME", 6): True, ("TIMESTAMP", 6): True, ("DATETIME", 3): False, ("TIME", 6): False}
    found = {
        (native, digits): mysql_dialect.timestamp_as_text(
            Column("t", kind, native_type=native, fraction=digits)
        )
        for native, digits in cases
    }
    assert found == cases
    assert not REGISTRY["postgresql"]().timestamp_as_text(
        Column("t", kind, native_type="TIMESTAMP", fraction=6)
    )
