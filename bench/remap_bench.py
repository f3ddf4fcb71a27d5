#!/usr/bin/env python
"""Benchmark ``parity copy --remap-ids`` (a migration into a live database) against a plain copy.

    eval "$(scripts/servers env)"
    .venv/bin/python bench/remap_bench.py                     # 50,000 parents, 200,000 children
    .venv/bin/python bench/remap_bench.py --parents 200000 --targets mariadb

A SQLite file holds ``repositories`` (id, slug, stars, created; ``slug`` unique) and ``commits`` (id,
repository_id referencing repositories, sha, message, at; ``sha, repository_id`` unique), four commits
a repository. Each target (PostgreSQL schema /
MariaDB database ``bench_remap``, made anew before every run) gets the two tables copied by the ``parity``
command in a subprocess (imports included in the wall time), best of ``--repeat`` runs:

- ``plain``: the baseline, a copy that keeps the source's IDs;
- ``remap``: ``--remap-ids``, the target numbering every row, ``_parity_id_map`` recording old -> new and
  ``commits.repository_id`` rewritten through it;
- ``natural`` (with ``--natural-keys``): the same with a natural key per table (``slug``; ``sha`` and
  ``repository_id``), the rows' keys looked for in the target before they are written; then ``again``,
  the same job run a second time over that target (every row found in the map, nothing written);
- ``merge`` (with ``--merge``): both tables merged by those natural keys, keeping their IDs, into a new
  target (every row inserted), then again (every row matched and updated).

After each remapped run the script reads the target back and fails unless every row sits under the ID
the map gives its source row (each ``sha`` is its source ID in hex, each ``slug`` holds its source ID) and
every commit references its own repository's new ID.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from proctree import TreeSampler

ROOT = Path(__file__).resolve().parents[1]
NAME = "bench_remap"
ENV = {"postgresql": "PARITY_TEST_PG_URL", "mariadb": "PARITY_TEST_MYSQL_URL"}


def make_source(path: Path, parents: int) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE repositories (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE,
            stars INTEGER, created TEXT);
        CREATE TABLE commits (id INTEGER PRIMARY KEY AUTOINCREMENT,
            repository_id INTEGER NOT NULL REFERENCES repositories(id), sha TEXT, message TEXT, at TEXT,
            UNIQUE (sha, repository_id));
        """
    )
    conn.executemany(
        "INSERT INTO repositories VALUES (?, ?, ?, ?)",
        ((i, f"repo-{i}", i % 1000, "2024-01-01 10:00:00") for i in range(1, parents + 1)),
    )
    conn.executemany(
        "INSERT INTO commits VALUES (?, ?, ?, ?, ?)",
        (
            (i, i % parents + 1, f"{i:040x}", f"commit message {i}", "2024-02-01 12:00:00")
            for i in range(1, 4 * parents + 1)
        ),
    )
    conn.commit()
    conn.close()


def fresh_target(kind: str) -> tuple[str, list[str]]:
    """Make the target's schema (MariaDB: database) anew; its URL and the CLI's schema options."""
    engine = sa.create_engine(sqlalchemy_url(os.environ[ENV[kind]]))
    with engine.begin() as conn:
        word = "SCHEMA" if kind == "postgresql" else "DATABASE"
        conn.exec_driver_sql(f"DROP {word} IF EXISTS {NAME}{' CASCADE' if kind == 'postgresql' else ''}")
        conn.exec_driver_sql(f"CREATE {word} {NAME}")
    engine.dispose()
    return target_url(kind), ["--target-schema", NAME] if kind == "postgresql" else []


def target_url(kind: str) -> str:
    """The target's URL as parity takes it (MariaDB's names the benchmark's database)."""
    url = os.environ[ENV[kind]]
    return url if kind == "postgresql" else url.rsplit("/", 1)[0] + f"/{NAME}"


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://").replace("mariadb://", "mariadb+pymysql://")


def run(
    source: Path, kind: str, remap: bool, natural: Path | None = None, fresh: bool = True
) -> tuple[float, float]:
    """One ``parity copy`` into the target, made anew unless ``fresh`` is false; ``natural``: the job
    file (``natural_job``) that names the tables' natural keys (and remaps their IDs). Its seconds, and
    the greatest proportional set size of its processes together, sampled (``proctree``), in MB."""
    url, options = fresh_target(kind) if fresh else (target_url(kind), [])
    if natural is not None:
        command = [sys.executable, "-m", "parity", "copy", "-c", str(natural), "--json"]
    else:
        command = [sys.executable, "-m", "parity", "copy", f"sqlite:///{source}", url, *options, "--json"]
        command += ["--remap-ids"] if remap else []
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT)
        sampler = TreeSampler([process.pid])
        sampler.start()
        process.wait()
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"parity copy failed ({kind}):\n{errors.read().decode()[-2000:]}")
    return seconds, sampler.peak_kb / 1024


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest run's seconds, and the most memory any of them took."""
    return min(s for s, _ in runs), max(m for _, m in runs)


def fresh_and_again(source: Path, kind: str, job: Path, remap: bool, repeat: int) -> tuple[float, float]:
    """The best of ``repeat`` copies of the job file into a fresh target, and of as many run again
    over what the one before left (every row there already), interleaved."""
    fresh, again = [], []
    for _ in range(repeat):
        fresh.append(run(source, kind, remap=remap, natural=job))
        again.append(run(source, kind, remap=remap, natural=job, fresh=False))
    return best(fresh)[0], best(again)[0]


def natural_job(path: Path, source: Path, kind: str, how: str = "remap_ids: true") -> None:
    """A job file of both tables with their natural keys (``slug``; ``sha, repository_id``), each
    ``how`` too: new IDs (``remap_ids: true``), or ``mode: merge`` (their IDs kept: a first run inserts
    every row, a run again matches every row and updates it)."""
    schema = f", schema: {NAME}" if kind == "postgresql" else ""
    path.write_text(
        f"source: {{url: 'sqlite:///{source}'}}\n"
        f"target: {{url: '{target_url(kind)}'{schema}}}\n"
        "tables:\n"
        f"  - {{name: repositories, natural_key: [slug], {how}}}\n"
        f"  - {{name: commits, natural_key: [sha, repository_id], {how}}}\n"
    )


def check_merged(kind: str, parents: int) -> None:
    """Every row once, under its source ID, each commit with its repository."""
    engine = sa.create_engine(sqlalchemy_url(target_url(kind)))
    prefix = f"{NAME}." if kind == "postgresql" else ""
    with engine.connect() as conn:
        counts = conn.exec_driver_sql(
            f"SELECT (SELECT COUNT(*) FROM {prefix}repositories), (SELECT COUNT(*) FROM {prefix}commits c"
            f" JOIN {prefix}repositories r ON r.id = c.repository_id AND r.slug = CONCAT('repo-', r.id))"
        ).one()
    engine.dispose()
    if tuple(counts) != (parents, 4 * parents):
        raise SystemExit(f"{kind}: merged {tuple(counts)} rows, not {(parents, 4 * parents)}")


def check(kind: str, parents: int) -> None:
    """Every row under the ID the map gives its source row; every commit to its repository."""
    engine = sa.create_engine(sqlalchemy_url(target_url(kind)))
    prefix = f"{NAME}." if kind == "postgresql" else ""
    with engine.connect() as conn:
        mapped = {
            (t, int(new)): int(old)
            for t, old, new in conn.exec_driver_sql(
                f"SELECT table_name, old_id, new_id FROM {prefix}_parity_id_map"
            )
        }
        repositories = conn.exec_driver_sql(f"SELECT id, slug FROM {prefix}repositories").all()
        commits = conn.exec_driver_sql(f"SELECT id, repository_id, sha FROM {prefix}commits").all()
    engine.dispose()
    bad = sum(slug != f"repo-{mapped[('repositories', i)]}" for i, slug in repositories)
    bad += sum(
        int(sha, 16) != mapped[("commits", i)] or mapped[("repositories", r)] != int(sha, 16) % parents + 1
        for i, r, sha in commits
    )
    if bad or len(repositories) != parents or len(commits) != 4 * parents:
        raise SystemExit(f"{kind}: {bad} rows under the wrong ID ({len(repositories)}, {len(commits)} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parents", type=int, default=50_000)
    parser.add_argument("--targets", default="postgresql,mariadb")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--natural-keys", action="store_true", help="also time copies with natural keys")
    parser.add_argument("--merge", action="store_true", help="also time merges by natural key")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parity-remap-bench-") as folder:
        source = Path(folder) / "src.sqlite"
        make_source(source, args.parents)
        rows = 5 * args.parents
        print(f"{rows:,} rows ({args.parents:,} repositories, {4 * args.parents:,} commits), SQLite ->")
        for kind in args.targets.split(","):
            plain, plain_mb = best([run(source, kind, remap=False) for _ in range(args.repeat)])
            remap, remap_mb = best([run(source, kind, remap=True) for _ in range(args.repeat)])
            check(kind, args.parents)
            print(
                f"  {kind:<10} plain {plain:6.2f} s ({plain_mb:.0f} MB PSS)   --remap-ids {remap:6.2f} s"
                f" ({remap_mb:.0f} MB PSS, {rows / remap:,.0f} rows/s): {remap / plain:.2f}x the plain copy"
            )
            if args.natural_keys:
                job = Path(folder) / "natural.yaml"
                natural_job(job, source, kind)
                natural, again = fresh_and_again(source, kind, job, remap=True, repeat=args.repeat)
                check(kind, args.parents)
                print(
                    f"  {kind:<10} natural keys {natural:6.2f} s ({rows / natural:,.0f} rows/s,"
                    f" {natural / plain:.2f}x the plain copy); again {again:6.2f} s"
                )
            if args.merge:
                job = Path(folder) / "merge.yaml"
                natural_job(job, source, kind, how="mode: merge")
                new, updated = fresh_and_again(source, kind, job, remap=False, repeat=args.repeat)
                check_merged(kind, args.parents)
                print(
                    f"  {kind:<10} merge by natural key: every row new {new:6.2f} s ({rows / new:,.0f} rows/s),"
                    f" every row matched and updated {updated:6.2f} s ({rows / updated:,.0f} rows/s)"
                )


if __name__ == "__main__":
    main()
