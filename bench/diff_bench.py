#!/usr/bin/env python
"""Benchmark ``parity diff`` (PostgreSQL -> MariaDB) against reladiff 0.6.0 and against the floor.

    eval "$(scripts/servers env)"
    .venv/bin/python bench/diff_bench.py                   # 1M rows
    .venv/bin/python bench/diff_bench.py --rows 50000      # quick
    .venv/bin/python bench/diff_bench.py --no-reladiff --threads 8

An ``orders`` table (id bigint PK, customer_id int, amount numeric(12,2), status varchar(20), note text
with NULLs, created_at timestamp) is generated with the same N rows in PostgreSQL (schema ``bench_diff``,
generate_series) and MariaDB (database ``bench_diff``, seq_1_to_N), by the same integer arithmetic on
each side. Three variants are diffed in order, each on the MariaDB table as the previous one left it:

- ``identical``: no difference;
- ``14 planted``: 6 updates (each column but the key), 4 deletes, 4 inserts;
- ``1% changed``: the 14 plus an update of every 100th row (10,000 at 1M).

Each variant times ``parity.diff.diff(job)`` in this process (reflection included; best of ``--repeat``
runs, 2 by default, as for the floors), then reladiff's CLI (best of as many)
(``reladiff postgresql://... bench_diff.orders mysql://... orders -k id -c ... -j THREADS --json``) from
``$RELADIFF`` or /tmp/reladiff-venv, and checks that both found the expected number of differing rows
(reladiff 0.6.0 logs ``ERROR - '<' not supported between instances of 'str' and 'NoneType'`` on the NULL
notes and stops early, yet exits 0: its time is then that of an incomplete diff, marked ``!``).

Right before each variant the floors are measured on the tables as they are then (warm cache, best of
two runs each), all as one full-table aggregate ``SELECT count(*), sum(<60-bit row hash>) FROM orders``:

- ``floor``: the slower database's time, each database measured alone, for the row hash
  ``md5(concat_ws('|', every column))`` (the definition used since the first measurement). It is cheaper
  than any correct canonical text: concat_ws skips NULLs and formats values each database's own way
  (PostgreSQL's timestamps lose their trailing zeros), so the two sides never agree anyway;
- ``floor*``: parity's own row expression (``Side.row_hash``: the canonical text and hash parity's diff
  sums), both databases at once, as parity runs them. On a machine that hosts both servers (as here)
  this is the least a diff of these two tables can cost, with one query per side and no GROUP BY.

Last, ``parity copy`` of the PostgreSQL table into an empty MariaDB database ``bench_diff_copy`` is timed
the same way (``--no-copy`` skips it): a diff of a table that differs all over should cost no more.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parity import job as jobs  # noqa: E402
from parity.diff import diff  # noqa: E402

NAME = "bench_diff"
RELADIFF_KEY = re.compile(r'^\["[+-]", \["([^"]*)"', re.MULTILINE)
"""The key of a row in reladiff's --json output: ``["+", ["123", ...]]``."""
COLUMNS = ["id", "customer_id", "amount", "status", "note", "created_at"]

PG_DDL = f"""CREATE TABLE {NAME}.orders (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2),
    status varchar(20), note text, created_at timestamp)"""
PG_FILL = f"""INSERT INTO {NAME}.orders SELECT g, (g * 7919) % 100000, ((g * 31) % 100000) / 100.0,
    'status-' || (g % 7), CASE WHEN g % 11 = 0 THEN NULL ELSE 'note for order ' || g || repeat('x', (g % 40)::int) END,
    timestamp '2024-01-01 00:00:00' + g * interval '37 second' FROM generate_series(1::bigint, {{n}}) g"""
MY_DDL = """CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount decimal(12,2),
    status varchar(20), note text, created_at datetime(6)) CHARACTER SET utf8mb4"""
MY_FILL = """INSERT INTO orders SELECT seq, (seq * 7919) % 100000, ((seq * 31) % 100000) / 100.0,
    concat('status-', seq % 7), IF(seq % 11 = 0, NULL, concat('note for order ', seq, repeat('x', seq % 40))),
    timestamp '2024-01-01 00:00:00' + interval (seq * 37) second FROM seq_1_to_{n}"""

PG_FLOOR = f"""SELECT count(*), sum(('x' || substr(md5(concat_ws('|', {", ".join(COLUMNS)})), 1, 15))::bit(60)::bigint)
    FROM {NAME}.orders"""
MY_FLOOR = f"""SELECT count(*), sum(cast(conv(substring(md5(concat_ws('|', {", ".join(COLUMNS)})), 1, 15), 16, 10)
    AS unsigned)) FROM orders"""


@dataclass
class Floors:
    pg: float
    my: float
    both: float

    def __str__(self) -> str:
        return f"PostgreSQL {self.pg:.2f}s, MariaDB {self.my:.2f}s, both at once {self.both:.2f}s"


def planted(n: int) -> tuple[list[str], set[int]]:
    """14 changes spread over the table (6 updates, 4 deletes, 4 inserts) and the ids that then differ."""
    at = [max(1, n * k // 15) for k in range(1, 15)]
    null_note = at[4] - at[4] % 11 + 1  # a row whose note is not NULL yet
    statements = [
        f"UPDATE orders SET customer_id = customer_id + 1 WHERE id = {at[0]}",
        f"UPDATE orders SET amount = amount + 0.01 WHERE id = {at[1]}",
        f"UPDATE orders SET status = 'refunded' WHERE id = {at[2]}",
        f"UPDATE orders SET note = concat(coalesce(note, ''), '!') WHERE id = {at[3]}",
        f"UPDATE orders SET note = NULL WHERE id = {null_note}",
        f"UPDATE orders SET created_at = created_at + interval 1 microsecond WHERE id = {at[5]}",
        f"DELETE FROM orders WHERE id IN ({at[6]}, {at[7]}, {at[8]}, {at[9]})",
        f"INSERT INTO orders (id, status) VALUES ({n + 1}, 'new'), ({n + 2}, 'new'), ({n + 100}, 'new'), "
        f"({n + 10**6}, 'new')",
    ]
    return statements, {*at[:4], null_note, *at[5:10], n + 1, n + 2, n + 100, n + 10**6}


def one_percent(n: int) -> tuple[list[str], set[int]]:
    """On top of the 14: every 100th row's status changed."""
    _, ids = planted(n)
    return ["UPDATE orders SET status = 'audited' WHERE id % 100 = 0"], ids | set(range(100, n + 1, 100))


@dataclass
class Timing:
    variant: str
    parity: float
    parity_found: int
    downloaded: int
    reladiff: float | None
    reladiff_found: int | None
    expected: int
    floor: float = 0.0
    floor_parity: float = 0.0
    reladiff_error: str = ""


def main() -> None:
    args = parse_args()
    pg_url, my_url = os.environ.get("PARITY_TEST_PG_URL"), os.environ.get("PARITY_TEST_MYSQL_URL")
    if not pg_url or not my_url:
        sys.exit('set PARITY_TEST_PG_URL and PARITY_TEST_MYSQL_URL: eval "$(scripts/servers env)"')
    my_bench_url = my_url.rsplit("/", 1)[0] + f"/{NAME}"
    pg, my_admin = engine(pg_url), engine(my_url)
    print(f"generating {args.rows:,} rows in PostgreSQL ({NAME}.orders) and MariaDB ({NAME}.orders) ...")
    with pg.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {NAME} CASCADE")
        c.exec_driver_sql(f"CREATE SCHEMA {NAME}")
        c.exec_driver_sql(PG_DDL)
        c.exec_driver_sql(PG_FILL.format(n=args.rows).replace("%", "%%"))
        c.exec_driver_sql(f"ANALYZE {NAME}.orders")
    with my_admin.begin() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}")
        c.exec_driver_sql(f"CREATE DATABASE {NAME} CHARACTER SET utf8mb4")
    my = engine(my_bench_url)
    with my.begin() as c:
        c.exec_driver_sql(MY_DDL)
        c.exec_driver_sql(MY_FILL.format(n=args.rows).replace("%", "%%"))
        c.exec_driver_sql("ANALYZE TABLE orders")
    pg_parity, my_parity = parity_floor_sql(pg_url, my_bench_url)
    reladiff = None if args.no_reladiff else find_reladiff()
    timings = []
    for variant, change in (("identical", None), ("14 planted", planted), ("1% changed", one_percent)):
        expected = 0
        if change is not None:
            statements, ids = change(args.rows)
            expected = len(ids)
            with my.begin() as c:
                for statement in statements:
                    c.exec_driver_sql(statement.replace("%", "%%"))
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        plain, own = floors(pg, my, PG_FLOOR, MY_FLOOR), floors(pg, my, pg_parity, my_parity)
        print(f"{variant}: load average {load}")
        print(f"{variant}: floor  (md5 of concat_ws):         {plain}")
        print(f"{variant}: floor* (parity's row expression): {own}")
        timing = measure(variant, pg_url, my_bench_url, expected, args.threads, reladiff, args.repeat)
        timing.floor, timing.floor_parity = max(plain.pg, plain.my), own.both
        timings.append(timing)
    copy_seconds = None if args.no_copy else copy_table(pg_url, my_url, my_admin, args.threads)
    report(timings, args, copy_seconds)
    if not args.keep:
        with pg.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {NAME} CASCADE")
        with my_admin.begin() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}")
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}_copy")


def copy_table(pg_url: str, my_url: str, my_admin: sa.Engine, threads: int) -> float:
    """``parity copy`` of the PostgreSQL table into an empty MariaDB database, timed like a diff
    (job built in this process, schema created): what "no slower than copying the table" is held to."""
    from parity.copy import copy

    with my_admin.begin() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}_copy")
        c.exec_driver_sql(f"CREATE DATABASE {NAME}_copy CHARACTER SET utf8mb4")
    started = time.perf_counter()
    job = jobs.build(
        pg_url, my_url.rsplit("/", 1)[0] + f"/{NAME}_copy", source_schema=NAME, tables=["orders"]
    )
    try:
        result = copy(job, mode="replace", workers=threads)
    finally:
        job.close()
    took = time.perf_counter() - started
    rows = sum(t.rows_written for t in result.tables)
    print(f"copy: parity copy {took:.2f}s ({rows:,} rows, PostgreSQL -> MariaDB)")
    return took


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1M)")
    parser.add_argument("--threads", type=int, default=4, help="threads for parity and reladiff (default 4)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of parity and of reladiff per variant, best kept (default 2)",
    )
    parser.add_argument("--no-reladiff", action="store_true", help="skip reladiff")
    parser.add_argument("--no-copy", action="store_true", help="skip timing parity copy of the table")
    parser.add_argument("--keep", action="store_true", help="keep the generated tables")
    return parser.parse_args()


def engine(url: str) -> sa.Engine:
    url = url.replace("postgresql://", "postgresql+psycopg://").replace("mariadb://", "mariadb+pymysql://")
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def floor(e: sa.Engine, sql: str, runs: int = 2) -> float:
    """Best of ``runs`` timings of the query, after one to warm the cache (every tool reads warm pages)."""
    with e.connect() as c:
        c.exec_driver_sql(sql.replace("%", "%%")).all()
        best = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            c.exec_driver_sql(sql.replace("%", "%%")).all()
            best = min(best, time.perf_counter() - started)
        return best


def floors(pg: sa.Engine, my: sa.Engine, pg_sql: str, my_sql: str) -> Floors:
    """Each database alone, then both at once (best of two, each)."""
    alone_pg, alone_my = floor(pg, pg_sql), floor(my, my_sql)
    both = float("inf")
    with pg.connect() as a, my.connect() as b, ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            started = time.perf_counter()
            runs = [pool.submit(run_sql, conn, sql) for conn, sql in ((a, pg_sql), (b, my_sql))]
            for done in runs:
                done.result()
            both = min(both, time.perf_counter() - started)
    return Floors(alone_pg, alone_my, both)


def run_sql(conn: sa.Connection, sql: str) -> None:
    conn.exec_driver_sql(sql.replace("%", "%%")).all()


def parity_floor_sql(pg_url: str, my_url: str) -> tuple[str, str]:
    """One full-table aggregate per side with parity's own row hash, as SQL text for each database."""
    from parity.diff.plan import plan_table
    from parity.diff.sql import Side

    job = jobs.build(pg_url, my_url, source_schema=NAME, tables=["orders"])
    try:
        plan = plan_table(job.source, job.target, job.selected()[0])
        out = []
        for endpoint, role in ((job.source, "source"), (job.target, "target")):
            side = Side(endpoint, plan, role)
            query = sa.select(sa.func.count(), endpoint.dialect.hash_sum(side.row_hash)).select_from(
                side.sa_table
            )
            compiled = query.compile(dialect=endpoint.engine.dialect, compile_kwargs={"literal_binds": True})
            out.append(str(compiled).replace("%%", "%"))
        return out[0], out[1]
    finally:
        job.close()


def find_reladiff() -> str | None:
    for candidate in (
        os.environ.get("RELADIFF"),
        "/tmp/reladiff-venv/bin/reladiff",
        shutil.which("reladiff"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    print("reladiff not found (set RELADIFF or pip install reladiff==0.6.0 into /tmp/reladiff-venv); skipped")
    return None


def measure(
    variant: str, pg_url: str, my_url: str, expected: int, threads: int, reladiff: str | None, repeat: int
) -> Timing:
    """Best of ``repeat`` runs of parity, then of reladiff (the floors are best of two too)."""
    took = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        job = jobs.build(pg_url, my_url, source_schema=NAME, tables=["orders"])
        try:
            result = diff(job, threads=threads, on_difference=lambda d: None)
        finally:
            job.close()
        took = min(took, time.perf_counter() - started)
        stats = result.tables[0].stats
        print(
            f"{variant}: parity {time.perf_counter() - started:.2f}s, {stats.differences:,} rows differ, "
            f"{stats.rows_downloaded:,} downloaded"
        )
    timing = Timing(variant, took, stats.differences, stats.rows_downloaded, None, None, expected)
    if reladiff:
        command = [reladiff, pg_url, f"{NAME}.orders", my_url.replace("mariadb://", "mysql://"), "orders",
                   "-k", "id", *(a for c in COLUMNS[1:] for a in ("-c", c)), "-j", str(threads), "--json"]  # fmt: skip
        for _ in range(repeat):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            took = time.perf_counter() - started
            timing.reladiff = min(timing.reladiff or took, took)
        if done.returncode != 0:
            print(f"reladiff failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        errors = [line for line in done.stderr.splitlines() if " ERROR - " in line]
        if errors:
            timing.reladiff_error = errors[0].split(" ERROR - ", 1)[1]
            print(f"{variant}: reladiff logged an error (exit {done.returncode}): {timing.reladiff_error}")
        keys = set(RELADIFF_KEY.findall(done.stdout))
        timing.reladiff_found = len(keys)
        print(f"{variant}: reladiff {timing.reladiff:.2f}s, {len(keys):,} rows differ")
    return timing


def report(timings: list[Timing], args: argparse.Namespace, copy_seconds: float | None) -> None:
    print()
    print(
        f"parity diff vs reladiff 0.6.0 vs floor: {args.rows:,} rows, PostgreSQL -> MariaDB, {args.threads} threads"
    )
    header = ("variant", "expected", "parity s", "found", "downloaded", "reladiff s", "found", "floor s",
              "floor* s", "parity/reladiff", "parity/floor", "parity/floor*")  # fmt: skip
    rows = []
    for t in timings:
        mark = "!" if t.reladiff_error else ""
        rows.append((
            t.variant, f"{t.expected:,}", f"{t.parity:.2f}", f"{t.parity_found:,}", f"{t.downloaded:,}",
            "-" if t.reladiff is None else f"{t.reladiff:.2f}{mark}",
            "-" if t.reladiff_found is None else f"{t.reladiff_found:,}{mark}",
            f"{t.floor:.2f}", f"{t.floor_parity:.2f}", "-" if not t.reladiff else f"{t.parity / t.reladiff:.2f}",
            f"{t.parity / t.floor:.2f}", f"{t.parity / t.floor_parity:.2f}",
        ))  # fmt: skip
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *rows):
        print(
            "  ".join(
                str(x).rjust(w) if i else str(x).ljust(w)
                for i, (x, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    print(
        "floor: the slower database alone, md5(concat_ws(...)); floor*: parity's row hash, both databases at once"
    )
    if any(t.reladiff_error for t in timings):
        print("!: reladiff logged an error and stopped early (exit status 0): an incomplete diff")
    if copy_seconds is not None:
        ratios = ", ".join(f"{t.variant} {t.parity / copy_seconds:.2f}" for t in timings)
        print(f"parity copy of the table: {copy_seconds:.2f}s; parity diff / copy: {ratios}")
    wrong = [t.variant for t in timings if t.parity_found != t.expected]
    if wrong:
        sys.exit(f"parity found the wrong number of differences in: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
