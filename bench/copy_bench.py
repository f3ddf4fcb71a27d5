#!/usr/bin/env python
"""Benchmark ``parity copy`` against each pair's native dump|load pipeline and against sling.

    eval "$(scripts/servers env)"
    .venv/bin/python bench/copy_bench.py                      # 1M rows, all pairs
    .venv/bin/python bench/copy_bench.py --rows 100000 --pairs pg-mariadb,mariadb-pg --keep

An ``orders`` table (id bigint PK, customer_id int, amount numeric(12,2), status varchar(20), note text,
created_at timestamp) is generated with the same N rows in PostgreSQL (schema ``bench``, by
generate_series), MariaDB (database ``bench``, LOAD DATA of PostgreSQL's export) and SQLite
(``<workdir>/src.sqlite``, executemany in one transaction). The rows include NULLs in every nullable
column, empty strings, tabs, newlines, backslashes, quotes, non-ASCII text and timestamps with and
without microseconds. Targets go to PostgreSQL schema / MariaDB database ``bench_out`` and to
``<workdir>/dst.sqlite``; each target table is dropped before every run, so each tool starts from the same
state (parity and sling create the table, the native path gets it created untimed).

Each parity run is ``parity copy SRC DST -t orders --mode replace --json`` as a user runs it (the console
script's entry point, with this checkout's parity first on the path; imports included in the wall time,
parity's bytecode compiled first, as an installed parity has it); its peak RSS comes from ``os.wait4``. After every parity run the target must
hold N rows with the source's checksum (sum of cents, distinct statuses, NULL/empty counts, text length,
timestamp seconds and microseconds) and a set of tricky rows must match exactly, or the script fails.
Native and sling results are checked the same way but only reported (a native path may be lossy).

sling runs from ``$SLING_BINARY`` or the binary of the ``sling-linux-amd64`` package in /tmp/sling-venv;
``--no-sling`` skips it.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proctree import TreeSampler

ROOT = Path(__file__).resolve().parents[1]
SRC_SCHEMA = "bench"
DST_SCHEMA = "bench_out"
TABLE = "orders"
COLUMNS = ["id", "customer_id", "amount", "status", "note", "created_at"]
STATUSES = ["new", "paid", "shipped", "cancelled", "refunded"]
TRICKY_NOTE = "tab\there\nnewline \\ back\r end \\N"
UNICODE_NOTE = "café ☕ \"quoted\", comma; 'single'"
EPOCH = datetime(2020, 1, 1)
STEP = timedelta(seconds=1, microseconds=123457)
MICRO_ZERO_ID = 1_000_000 // 1  # g * 123457 % 10**6 == 0 at g = 10**6 (and multiples)

PAIRS: dict[str, tuple[str, str]] = {
    "pg-mariadb": ("pg", "mariadb"),
    "mariadb-pg": ("mariadb", "pg"),
    "sqlite-pg": ("sqlite", "pg"),
    "pg-sqlite": ("pg", "sqlite"),
    "pg-pg": ("pg", "pg"),  # (another schema of the same database)
}
NAMES = {"pg": "PostgreSQL", "mariadb": "MariaDB", "sqlite": "SQLite"}

PG_DDL = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), "
    "status varchar(20), note text, created_at timestamp)"
)
MARIA_DDL = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, customer_id int, amount decimal(12,2), "
    "status varchar(20), note longtext, created_at datetime(6)) DEFAULT CHARSET=utf8mb4"
)
SQLITE_DDL = (
    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, customer_id INTEGER, amount NUMERIC(12,2), "
    "status VARCHAR(20), note TEXT, created_at TIMESTAMP)"
)


# ---- the rows ------------------------------------------------------------------------------------


def expected_row(g: int) -> tuple[Any, ...]:
    """Row ``g`` exactly as every source holds it (the SQL generator below is the same formula)."""
    customer = None if g % 97 == 0 else (g * 7919) % 100_000
    amount = None if g % 89 == 0 else Decimal((g * 104_729) % 10_000_000).scaleb(-2)
    status = None if g % 53 == 0 else STATUSES[g % 5]
    if g % 10 == 0:
        note: str | None = None
    elif g % 10 == 1:
        note = ""
    elif g % 1000 == 7:
        note = TRICKY_NOTE
    elif g % 1000 == 9:
        note = UNICODE_NOTE
    else:
        note = "note " + hashlib.md5(str(g).encode()).hexdigest()
    return (g, customer, amount, status, note, EPOCH + g * STEP)


def _pg_literal(text: str) -> str:
    return (
        "E'"
        + text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        + "'"
    )


PG_GENERATE = f"""
INSERT INTO {SRC_SCHEMA}.{TABLE}
SELECT g,
       CASE WHEN g % 97 = 0 THEN NULL ELSE (g * 7919) % 100000 END,
       CASE WHEN g % 89 = 0 THEN NULL ELSE ((g * 104729) % 10000000) / 100.0 END,
       CASE WHEN g % 53 = 0 THEN NULL ELSE (ARRAY{STATUSES!r})[(1 + g % 5)::int] END,
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN ''
            WHEN g % 1000 = 7 THEN {_pg_literal(TRICKY_NOTE)}
            WHEN g % 1000 = 9 THEN {_pg_literal(UNICODE_NOTE)}
            ELSE 'note ' || md5(g::text) END,
       timestamp '2020-01-01' + (g::bigint * 1123457) * interval '1 microsecond'
FROM generate_series(1::bigint, __N__::bigint) AS g
"""


def sample_ids(n: int) -> list[int]:
    ids = [1, 2, 7, 9, 10, 11, 53, 89, 97, 1007, 1009, 4657, n // 2, n - 1, n, MICRO_ZERO_ID]
    return sorted({i for i in ids if 1 <= i <= n})


# ---- endpoints -----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    host: str
    port: int
    user: str
    password: str
    database: str


def _server(var: str) -> Server:
    url = os.environ.get(var)
    if not url:
        exports = subprocess.run(
            [str(ROOT / "scripts" / "servers"), "env"], capture_output=True, text=True, check=True
        ).stdout
        for line in exports.splitlines():
            if f"{var}=" in line:
                url = line.split("=", 1)[1].strip().strip("'\"")
    if not url:
        sys.exit(f'copy_bench: {var} is not set; run: eval "$(scripts/servers env)"')
    parts = urlsplit(url)
    return Server(
        url,
        parts.hostname or "127.0.0.1",
        parts.port or 0,
        parts.username or "",
        parts.password or "",
        parts.path.lstrip("/"),
    )


BUSY = ("too many clients", "Too many connections")
"""Other users of the shared test servers (a test suite) can exhaust their connections for a while."""


def busy_retry(fn: Any, tries: int = 20) -> Any:
    """Call fn; while it fails only because the server is out of connections, wait and call it again."""
    for attempt in range(tries):
        try:
            return fn()
        except Exception as exc:
            if attempt == tries - 1 or not any(b in str(exc) for b in BUSY):
                raise
            print(" (server busy: retrying in 3s)", end="", flush=True)
            time.sleep(3)
    raise AssertionError("unreachable")


class Env:
    def __init__(self, workdir: Path) -> None:
        self.pg = _server("PARITY_TEST_PG_URL")
        self.maria = _server("PARITY_TEST_MYSQL_URL")
        self.workdir = workdir
        self.src_sqlite = workdir / "src.sqlite"
        self.dst_sqlite = workdir / "dst.sqlite"
        workdir.mkdir(parents=True, exist_ok=True)

    # connections for setup and checks (not timed)

    def pg_conn(self) -> Any:
        import psycopg

        return busy_retry(
            lambda: psycopg.connect(
                host=self.pg.host,
                port=self.pg.port,
                user=self.pg.user,
                password=self.pg.password,
                dbname=self.pg.database,
                autocommit=True,
            )
        )

    def maria_conn(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(
            host=self.maria.host,
            port=self.maria.port,
            user=self.maria.user,
            password=self.maria.password,
            database=database,
            autocommit=True,
            local_infile=True,
            charset="utf8mb4",
        )

    # command lines of the native clients

    def psql(self, command: str) -> list[str]:
        return ["psql", self.pg_libpq(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command]

    def pg_libpq(self) -> str:
        p = self.pg
        return f"postgresql://{p.user}:{p.password}@{p.host}:{p.port}/{p.database}"

    def mariadb(self, *args: str, database: str = SRC_SCHEMA) -> list[str]:
        m = self.maria
        return ["mariadb", "-h", m.host, "-P", str(m.port), "-u", m.user, *args, database]

    def maria_env(self) -> dict[str, str]:
        return {**os.environ, "MYSQL_PWD": self.maria.password}

    # what parity gets

    def parity_endpoint(self, kind: str, role: str) -> tuple[str, str | None]:
        if kind == "pg":
            return self.pg.url, SRC_SCHEMA if role == "source" else DST_SCHEMA
        if kind == "mariadb":
            return self.maria.url, SRC_SCHEMA if role == "source" else DST_SCHEMA
        path = self.src_sqlite if role == "source" else self.dst_sqlite
        return f"sqlite:///{path}", None


# ---- generating the sources -----------------------------------------------------------------------


def pg_count(env: Env, schema: str) -> int | None:
    with env.pg_conn() as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.{TABLE}",)).fetchone()[0]
        if found is None:
            return None
        return conn.execute(f"SELECT count(*) FROM {schema}.{TABLE}").fetchone()[0]


def generate_pg(env: Env, n: int) -> None:
    with env.pg_conn() as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SRC_SCHEMA}")
        conn.execute(f"DROP TABLE IF EXISTS {SRC_SCHEMA}.{TABLE}")
        conn.execute(PG_DDL.format(t=f"{SRC_SCHEMA}.{TABLE}"))
        conn.execute(PG_GENERATE.replace("__N__", str(int(n))))
        conn.execute(f"ANALYZE {SRC_SCHEMA}.{TABLE}")


def generate_mariadb(env: Env, n: int) -> None:
    dump = env.workdir / "orders.tsv"
    cols = ", ".join(COLUMNS)
    subprocess.run(
        env.psql(f"\\copy (SELECT {cols} FROM {SRC_SCHEMA}.{TABLE} ORDER BY id) TO '{dump}'"), check=True
    )
    with env.maria_conn() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {SRC_SCHEMA} CHARACTER SET utf8mb4")
        cur.execute(f"DROP TABLE IF EXISTS {SRC_SCHEMA}.{TABLE}")
        cur.execute(MARIA_DDL.format(t=f"{SRC_SCHEMA}.{TABLE}"))
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {SRC_SCHEMA}.{TABLE} CHARACTER SET utf8mb4 ({cols})",
            (str(dump),),
        )
        if cur.connection.show_warnings():
            sys.exit(f"copy_bench: loading MariaDB's source warned: {cur.connection.show_warnings()[:3]}")
    dump.unlink()


def generate_sqlite(env: Env, n: int) -> None:
    env.src_sqlite.unlink(missing_ok=True)
    conn = sqlite3.connect(env.src_sqlite)
    conn.execute(SQLITE_DDL.format(t=TABLE))

    def rows() -> Iterator[tuple[Any, ...]]:
        for g in range(1, n + 1):
            i, c, a, s, note, ts = expected_row(g)
            yield i, c, None if a is None else str(a), s, note, ts.isoformat(" ")

    with conn:
        conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)", rows())
    conn.close()


def ensure_sources(env: Env, n: int, kinds: set[str], keep: bool) -> dict[str, Any]:
    """Make every needed source hold the N rows; returns PostgreSQL's checksum (all must equal it)."""
    fresh = False
    if not (keep and pg_count(env, SRC_SCHEMA) == n):
        print(f"generating {n:,} rows in PostgreSQL ...", flush=True)
        started = time.perf_counter()
        generate_pg(env, n)
        fresh = True
        print(f"  {time.perf_counter() - started:.1f}s", flush=True)
    reference = checksum(env, "pg", SRC_SCHEMA)
    if reference["rows"] != n:
        sys.exit(f"copy_bench: PostgreSQL's source holds {reference['rows']} rows, not {n}")
    check_samples(env, "pg", SRC_SCHEMA, n, fail=True)
    if "mariadb" in kinds:
        have = None if fresh else _safe(lambda: checksum(env, "mariadb", SRC_SCHEMA))
        if not (keep and have == reference):
            print(f"loading {n:,} rows into MariaDB ...", flush=True)
            started = time.perf_counter()
            generate_mariadb(env, n)
            print(f"  {time.perf_counter() - started:.1f}s", flush=True)
        _same("MariaDB source", checksum(env, "mariadb", SRC_SCHEMA), reference)
        check_samples(env, "mariadb", SRC_SCHEMA, n, fail=True)
    if "sqlite" in kinds:
        have = None if fresh else _safe(lambda: checksum(env, "sqlite", "src"))
        if not (keep and have == reference):
            print(f"writing {n:,} rows into SQLite ...", flush=True)
            started = time.perf_counter()
            generate_sqlite(env, n)
            print(f"  {time.perf_counter() - started:.1f}s", flush=True)
        _same("SQLite source", checksum(env, "sqlite", "src"), reference)
        check_samples(env, "sqlite", "src", n, fail=True)
    return reference


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


# ---- verification --------------------------------------------------------------------------------

CHECKS = {
    "pg": """SELECT count(*), coalesce(sum((amount * 100)::bigint), 0), count(DISTINCT status),
        count(*) - count(amount), count(*) - count(customer_id), coalesce(sum(customer_id), 0),
        count(*) - count(note), count(*) FILTER (WHERE note = ''), coalesce(sum(length(note)), 0),
        coalesce(sum(floor(extract(epoch FROM created_at - timestamp '2020-01-01'))::bigint), 0),
        coalesce(sum((extract(microseconds FROM created_at))::bigint % 1000000), 0)
        FROM {t}""",
    "mariadb": """SELECT count(*), coalesce(sum(amount * 100), 0), count(DISTINCT status),
        count(*) - count(amount), count(*) - count(customer_id), coalesce(sum(customer_id), 0),
        count(*) - count(note), coalesce(sum(note = ''), 0), coalesce(sum(char_length(note)), 0),
        coalesce(sum(timestampdiff(SECOND, '2020-01-01', created_at)), 0),
        coalesce(sum(microsecond(created_at)), 0)
        FROM {t}""",
    "sqlite": """SELECT count(*), coalesce(sum(CAST(round(amount * 100) AS INTEGER)), 0),
        count(DISTINCT status),
        count(*) - count(amount), count(*) - count(customer_id), coalesce(sum(customer_id), 0),
        count(*) - count(note), coalesce(sum(note = ''), 0), coalesce(sum(length(note)), 0),
        coalesce(sum(CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) - 1577836800), 0),
        coalesce(sum(CAST(substr(created_at || '.000000', 21, 6) AS INTEGER)), 0)
        FROM {t}""",
}
CHECK_NAMES = [
    "rows",
    "cents",
    "statuses",
    "null_amount",
    "null_customer",
    "customer_sum",
    "null_note",
    "empty_note",
    "note_chars",
    "ts_seconds",
    "ts_micros",
]


def _sqlite_path(env: Env, where: str) -> Path:
    return env.src_sqlite if where == "src" else env.dst_sqlite


def _query(env: Env, kind: str, where: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    if kind == "pg":
        with env.pg_conn() as conn:
            return [
                tuple(r) for r in conn.execute(sql.format(t=f"{where}.{TABLE}"), params or None).fetchall()
            ]
    if kind == "mariadb":
        with env.maria_conn() as conn, conn.cursor() as cur:
            cur.execute(sql.format(t=f"{where}.{TABLE}"), params or None)
            return [tuple(r) for r in cur.fetchall()]
    conn = sqlite3.connect(_sqlite_path(env, where))
    try:
        return [tuple(r) for r in conn.execute(sql.format(t=TABLE), params).fetchall()]
    finally:
        conn.close()


def checksum(env: Env, kind: str, where: str) -> dict[str, Any]:
    (row,) = _query(env, kind, where, CHECKS[kind])
    return {name: int(v) for name, v in zip(CHECK_NAMES, row, strict=True)}


def _normal(row: Sequence[Any]) -> tuple[Any, ...]:
    i, c, a, s, note, ts = row
    if isinstance(a, float):
        a = Decimal(repr(a))
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return (int(i), None if c is None else int(c), None if a is None else Decimal(a), s, note, ts)


def check_samples(env: Env, kind: str, where: str, n: int, fail: bool) -> list[str]:
    """Compare tricky rows value by value; returns the differences (or exits when fail)."""
    ids = sample_ids(n)
    mark = "?" if kind == "sqlite" else "%s"
    sql = f"SELECT {', '.join(COLUMNS)} FROM {{t}} WHERE id IN ({', '.join(mark for _ in ids)})"
    got = {int(r[0]): _normal(r) for r in _query(env, kind, where, sql, ids)}
    problems = []
    for g in ids:
        want = expected_row(g)
        if got.get(g) != want:
            problems.append(f"id {g}: got {got.get(g)!r}, want {want!r}")
    if problems and fail:
        sys.exit(f"copy_bench: {NAMES[kind]} {where}.{TABLE} differs:\n  " + "\n  ".join(problems[:5]))
    return problems


def _same(what: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    if got != want:
        diff = {k: (got.get(k), want[k]) for k in want if got.get(k) != want[k]}
        sys.exit(f"copy_bench: {what} differs from the reference (got, want): {diff}")


def verify(env: Env, kind: str, reference: dict[str, Any], n: int) -> str:
    """'ok', or what differs."""
    where = "dst" if kind == "sqlite" else DST_SCHEMA
    try:
        got = checksum(env, kind, where)
        diff = [k for k in reference if got.get(k) != reference[k]]
        problems = check_samples(env, kind, where, n, fail=False)
    except Exception as exc:
        return f"check failed: {str(exc).splitlines()[0]}"
    if not diff and not problems:
        return "ok"
    parts = []
    if diff:
        parts.append("differs in " + ",".join(f"{k}({got.get(k)}!={reference[k]})" for k in diff))
    if problems:
        parts.append(f"{len(problems)} sample rows differ, e.g. {problems[0]}")
    return "; ".join(parts)


# ---- targets -------------------------------------------------------------------------------------


def reset_target(env: Env, kind: str, create: bool) -> None:
    """Drop the target table (and create it empty when ``create``)."""
    if kind == "pg":
        with env.pg_conn() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {DST_SCHEMA}")
            conn.execute(f"DROP TABLE IF EXISTS {DST_SCHEMA}.{TABLE} CASCADE")
            # a killed run's state would make parity resume (skip chunks) into the new, empty table
            conn.execute(f"DROP TABLE IF EXISTS {DST_SCHEMA}._parity_state")
            if create:
                conn.execute(PG_DDL.format(t=f"{DST_SCHEMA}.{TABLE}"))
    elif kind == "mariadb":
        with env.maria_conn() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DST_SCHEMA} CHARACTER SET utf8mb4")
            cur.execute(f"DROP TABLE IF EXISTS {DST_SCHEMA}.{TABLE}")
            cur.execute(f"DROP TABLE IF EXISTS {DST_SCHEMA}._parity_state")
            if create:
                cur.execute(MARIA_DDL.format(t=f"{DST_SCHEMA}.{TABLE}"))
    else:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{env.dst_sqlite}{suffix}").unlink(missing_ok=True)
        if create:
            conn = sqlite3.connect(env.dst_sqlite)
            conn.execute(SQLITE_DDL.format(t=TABLE))
            conn.commit()
            conn.close()


# ---- running things ------------------------------------------------------------------------------


LAST_CPU = 0.0
"""CPU seconds (user + system) of the processes of the last run_pipeline."""

LAST_TREE_MB = 0.0
"""The greatest sum, sampled, of the proportional set sizes of every process of the last run_pipeline
and their descendants (parity's reader processes included), in MB; 0 where /proc has no smaps_rollup."""


@dataclass
class Run:
    seconds: float | None = None
    rss_mb: float | None = None
    status: str = "-"
    detail: dict[str, Any] = field(default_factory=dict)


def run_pipeline(
    commands: Sequence[list[str]], envs: Sequence[dict[str, str] | None], out: Path | None = None
) -> tuple[float, float]:
    """Run ``a | b | ...`` (the last one's output into ``out``, or nowhere); returns (wall seconds,
    largest peak RSS in MB); raises when one fails."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    previous = None
    errors = []
    for i, (cmd, penv) in enumerate(zip(commands, envs, strict=True)):
        last = i == len(commands) - 1
        err = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
        errors.append(err)
        sink = (out.open("wb") if out is not None else subprocess.DEVNULL) if last else subprocess.PIPE
        proc = subprocess.Popen(
            cmd,
            stdin=previous,
            stdout=sink,
            stderr=err,
            env=penv,
        )
        if previous is not None:
            previous.close()
        if not isinstance(sink, int):
            sink.close()
        previous = proc.stdout
        procs.append(proc)
    peak = 0
    failed = []
    global LAST_CPU, LAST_TREE_MB
    LAST_CPU = 0.0
    sampler = TreeSampler([proc.pid for proc in procs])
    sampler.start()
    for proc, err in zip(procs, errors, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak = max(peak, usage.ru_maxrss)
        LAST_CPU += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            err.seek(0)
            name = Path(str(proc.args[0])).name  # type: ignore[index]
            failed.append(f"{name} exited {proc.returncode}: {err.read().decode()[-600:]}")
        err.close()
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    LAST_TREE_MB = sampler.peak_kb / 1024
    if failed:
        raise RuntimeError("; ".join(failed))
    return seconds, peak / 1024


CLI = "import sys; sys.path.insert(0, sys.argv.pop(1)); from parity._entry import main; main()"
"""The ``parity`` console script's code, run with this very checkout's parity first on the path."""


def run_parity(env: Env, src: str, dst: str, args: argparse.Namespace) -> Run:
    """``parity copy ... --json`` as a user runs it (the console script's entry point, its
    output in a file); the result is its JSON summary."""
    src_url, src_schema = env.parity_endpoint(src, "source")
    dst_url, dst_schema = env.parity_endpoint(dst, "target")
    out = env.workdir / "parity-result.json"
    cmd = [sys.executable, "-c", CLI, str(ROOT), "copy", src_url, dst_url, "-t", TABLE, "--mode", "replace"]
    cmd += ["--source-schema", src_schema] if src_schema else []
    cmd += ["--target-schema", dst_schema] if dst_schema else []
    cmd += ["--workers", str(args.workers)] if args.workers else []
    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    cmd += ["--rejects", str(env.workdir / "parity-rejects.jsonl"), "--json"]
    if args.py_spy:
        stacks = Path(args.py_spy) / f"{src}-{dst}.txt"
        stacks.parent.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [spy, "record", "--format", "raw", "--rate", "250", "-o", str(stacks), "--", *cmd]

    def attempt() -> tuple[float, float]:
        out.unlink(missing_ok=True)
        reset_target(env, dst, create=False)
        return run_pipeline([cmd], [None], out=out)

    seconds, rss = busy_retry(attempt)
    result = json.loads(out.read_text())
    result["cpu_seconds"] = LAST_CPU
    result["tree_mb"] = LAST_TREE_MB
    if not result["ok"]:
        sys.exit(f"copy_bench: parity {src} -> {dst} failed: {result}")
    return Run(seconds, rss, "ok", result)


def _raise_busy(run: Run) -> Run:
    if any(b in run.status for b in BUSY):
        raise RuntimeError(run.status)
    return run


def run_native(env: Env, src: str, dst: str) -> Run:
    cols = ", ".join(COLUMNS)
    maria_env = env.maria_env()
    if (src, dst) == ("pg", "mariadb"):
        dump = env.psql(f"\\copy (SELECT {cols} FROM {SRC_SCHEMA}.{TABLE}) TO STDOUT")
        load = env.mariadb(
            "--local-infile=1",
            "-e",
            f"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE {TABLE} CHARACTER SET utf8mb4 ({cols})",
            database=DST_SCHEMA,
        )
        seconds, _ = run_pipeline([dump, load], [None, maria_env])
    elif (src, dst) == ("mariadb", "pg"):
        # --raw prints values as they are: escape for COPY's text format in SQL, NULL as \N
        def text(c: str) -> str:
            escaped = f"REPLACE(REPLACE(REPLACE(REPLACE({c}, '\\\\', '\\\\\\\\'), '\\t', '\\\\t'), '\\n', '\\\\n'), '\\r', '\\\\r')"
            return f"IFNULL({escaped}, '\\\\N')"

        exprs = [
            "id",
            "IFNULL(customer_id, '\\\\N')",
            "IFNULL(amount, '\\\\N')",
            text("status"),
            text("note"),
            "IFNULL(created_at, '\\\\N')",
        ]
        dump = env.mariadb(
            "--batch",
            "--raw",
            "--skip-column-names",
            "--quick",
            "-e",
            f"SELECT {', '.join(exprs)} FROM {TABLE}",
            database=SRC_SCHEMA,
        )
        load = env.psql(f"\\copy {DST_SCHEMA}.{TABLE} ({cols}) FROM STDIN")
        seconds, _ = run_pipeline([dump, load], [maria_env, None])
    elif (src, dst) == ("sqlite", "pg"):
        dump = ["sqlite3", "-csv", str(env.src_sqlite), f"SELECT {cols} FROM {TABLE}"]
        load = env.psql(f"\\copy {DST_SCHEMA}.{TABLE} ({cols}) FROM STDIN WITH (FORMAT csv)")
        seconds, _ = run_pipeline([dump, load], [None, None])
    elif (src, dst) == ("pg", "sqlite"):
        dump = env.psql(f"\\copy (SELECT {cols} FROM {SRC_SCHEMA}.{TABLE}) TO STDOUT WITH (FORMAT csv)")
        load = ["sqlite3", str(env.dst_sqlite), f".import --csv /dev/stdin {TABLE}"]
        seconds, _ = run_pipeline([dump, load], [None, None])
    elif (src, dst) == ("pg", "pg"):
        dump = env.psql(f"\\copy (SELECT {cols} FROM {SRC_SCHEMA}.{TABLE}) TO STDOUT")
        load = env.psql(f"\\copy {DST_SCHEMA}.{TABLE} ({cols}) FROM STDIN")
        seconds, _ = run_pipeline([dump, load], [None, None])
    else:
        raise ValueError((src, dst))
    return Run(seconds, None, "ok")


def sling_binary() -> str | None:
    found = os.environ.get("SLING_BINARY")
    if found:
        return found if os.access(found, os.X_OK) else None
    for candidate in sorted(
        Path("/tmp/sling-venv").glob("lib/python*/site-packages/sling_linux_amd64/bin/sling-linux-amd64")
    ):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("sling")


def run_sling(env: Env, src: str, dst: str, binary: str) -> Run:
    p, m = env.pg, env.maria
    conns = {
        "pg": (
            "BENCH_PG",
            f"postgresql://{p.user}:{p.password}@{p.host}:{p.port}/{p.database}?sslmode=disable",
        ),
        # (the database sling connects to must be there: the source's where MariaDB is read, else the
        # target's, which every run makes; with MariaDB only written, 'bench' may never have been made)
        "mariadb": (
            "BENCH_MARIADB",
            f"mariadb://{m.user}:{m.password}@{m.host}:{m.port}/{SRC_SCHEMA if src == 'mariadb' else DST_SCHEMA}",
        ),
    }
    sling_env = {
        **os.environ,
        "SLING_HOME_DIR": str(env.workdir / "sling-home"),
        "SLING_DISABLE_TELEMETRY": "true",
        "DISABLE_TELEMETRY": "true",
        "SLING_LOGGING": "NO_COLOR",
    }
    for name, url in conns.values():
        sling_env[name] = url

    def conn(kind: str, role: str) -> tuple[str, str]:
        if kind == "sqlite":
            path = env.src_sqlite if role == "source" else env.dst_sqlite
            sling_env[f"BENCH_SQLITE_{role.upper()}"] = f"sqlite://{path}"
            return f"BENCH_SQLITE_{role.upper()}", f"main.{TABLE}"
        schema = SRC_SCHEMA if role == "source" else DST_SCHEMA
        return conns[kind][0], f"{schema}.{TABLE}"

    src_conn, stream = conn(src, "source")
    dst_conn, obj = conn(dst, "target")
    cmd = [
        binary,
        "run",
        "--src-conn",
        src_conn,
        "--src-stream",
        stream,
        "--tgt-conn",
        dst_conn,
        "--tgt-object",
        obj,
        "--mode",
        "full-refresh",
    ]
    try:
        seconds, rss = run_pipeline([cmd], [sling_env])
    except RuntimeError as exc:
        return Run(None, None, f"failed: {str(exc)[-300:]}")
    return Run(seconds, rss, "ok")


# ---- the table -----------------------------------------------------------------------------------


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _short(status: str) -> str:
    return status if len(status) <= 36 else status[:33] + "..."


def print_table(rows: list[dict[str, Any]], n: int) -> None:
    head = [
        "pair",
        "parity s",
        "native s",
        "sling s",
        "parity/native",
        "sling/parity",
        "parity RSS MB",
        "parity all PSS MB",
        "parity rows/s",
        "native check",
        "sling check",
    ]
    lines = [head]
    for r in rows:
        par, nat, sl = r["parity"], r["native"], r["sling"]
        lines.append(
            [
                r["pair"],
                _fmt(par.seconds),
                _fmt(nat.seconds),
                _fmt(sl.seconds),
                _fmt(par.seconds / nat.seconds if par.seconds and nat.seconds else None),
                _fmt(sl.seconds / par.seconds if par.seconds and sl.seconds else None),
                _fmt(par.rss_mb, ".0f"),
                _fmt(par.detail.get("tree_mb"), ".0f"),
                _fmt(n / par.seconds if par.seconds else None, ",.0f"),
                _short(nat.status),
                _short(sl.status),
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    print()
    print(f"rows: {n:,}")
    for k, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()


# ---- main ----------------------------------------------------------------------------------------


def bench_pair(
    env: Env, src: str, dst: str, args: argparse.Namespace, reference: dict[str, Any], sling: str | None
) -> dict[str, Any]:
    """parity, native and sling for one pair, --repeat times interleaved; the fastest run of each counts."""
    n = args.rows
    label = f"{NAMES[src]} -> {NAMES[dst]}"
    best: dict[str, Run] = {}

    def keep(name: str, run: Run) -> None:
        if name not in best or (run.seconds is not None and (best[name].seconds or 1e18) > run.seconds):
            best[name] = run

    for _ in range(args.repeat):
        print(f"{label}: parity ...", end="", flush=True)
        par = run_parity(env, src, dst, args)
        check = verify(env, dst, reference, n)
        if check != "ok":
            sys.exit(f"\ncopy_bench: parity {label}: the target {check}")
        table = par.detail["tables"][0]
        if table["rows_written"] != n:
            sys.exit(f"\ncopy_bench: parity {label} wrote {table['rows_written']} rows, not {n}")
        print(
            f" {par.seconds:.2f}s (table {table['seconds']:.2f}s, CPU {par.detail['cpu_seconds']:.1f}s,"
            f" {par.rss_mb:.0f} MB largest RSS, {par.detail['tree_mb']:.0f} MB all processes' PSS,"
            f" {table['rows_written']:,} rows, verified)",
            flush=True,
        )
        keep("parity", par)
        if not args.no_native:
            print(f"{label}: native ...", end="", flush=True)
            try:

                def native() -> Run:
                    reset_target(env, dst, create=True)
                    return run_native(env, src, dst)

                nat = busy_retry(native)
                nat.status = verify(env, dst, reference, n)
                print(f" {nat.seconds:.2f}s ({nat.status})", flush=True)
            except RuntimeError as exc:
                nat = Run(None, None, f"failed: {exc}")
                print(f" {nat.status}", flush=True)
            keep("native", nat)
        if sling:
            print(f"{label}: sling ...", end="", flush=True)
            try:

                def sling_run() -> Run:
                    reset_target(env, dst, create=False)
                    return _raise_busy(run_sling(env, src, dst, sling))

                sl = busy_retry(sling_run)
            except RuntimeError as exc:
                sl = Run(None, None, f"failed: {exc}")
            if sl.seconds is not None:
                sl.status = verify(env, dst, reference, n)
                print(f" {sl.seconds:.2f}s ({sl.status})", flush=True)
            else:
                print(f" {sl.status}", flush=True)
            keep("sling", sl)
    return {
        "pair": label,
        "parity": best["parity"],
        "native": best.get("native", Run()),
        "sling": best.get("sling", Run(status="skipped")),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in orders (default 1,000,000)")
    parser.add_argument(
        "--pairs", default=",".join(PAIRS), help=f"comma-separated subset of {','.join(PAIRS)}"
    )
    parser.add_argument(
        "--keep", action="store_true", help="reuse the sources when they already hold --rows rows"
    )
    parser.add_argument("--workdir", default=os.environ.get("PARITY_BENCH_DIR", "/tmp/parity-bench"))
    parser.add_argument("--no-native", action="store_true", help="skip the native pipelines")
    parser.add_argument("--no-sling", action="store_true", help="skip sling")
    parser.add_argument("--workers", type=int, help="parity --workers (default: parity's)")
    parser.add_argument("--batch-size", type=int, help="parity --batch-size (default: parity's)")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record parity under py-spy into DIR/<src>-<dst>.txt (collapsed stacks)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each tool N times (interleaved); keep the fastest"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    for p in pairs:
        if p not in PAIRS:
            parser.error(f"unknown pair {p!r}; choose from {', '.join(PAIRS)}")
    n = args.rows
    # parity's bytecode, as an installed parity has it (pip compiles it; a checkout writes it on its first
    # run, unless PYTHONDONTWRITEBYTECODE is set, as on the development machine, where each run compiled
    # parity's modules again, about 0.2 s); the measured runs read it
    compileall.compile_dir(str(ROOT / "parity"), quiet=1)
    env = Env(Path(args.workdir))
    kinds = {PAIRS[p][0] for p in pairs}  # sources to generate (PostgreSQL's is the reference)
    reference = ensure_sources(env, n, kinds, args.keep)
    sling = None if args.no_sling else sling_binary()
    if not args.no_sling and sling is None:
        print("sling: no binary (set SLING_BINARY or install sling-linux-amd64 into /tmp/sling-venv)")

    rows = []
    for pair in pairs:
        src, dst = PAIRS[pair]
        rows.append(bench_pair(env, src, dst, args, reference, sling))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print_table(rows, n)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": n,
                    "results": [
                        {"pair": r["pair"], **{k: vars(r[k]) for k in ("parity", "native", "sling")}}
                        for r in rows
                    ],
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
