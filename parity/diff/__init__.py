"""``parity diff``: prove two tables identical, or say exactly which rows differ.

The databases do the work: each checksums buckets of its rows in SQL (a count and a sum of SHA-256-based
row hashes over a canonical text of every column, the same text on every database for equal values);
only buckets that differ are split, and only small differing buckets come to Python, where their rows
are compared exactly (or within a column's tolerance). See ``hashdiff`` for the walk, ``sql`` for the
row text, ``plan`` for how two columns meet, ``segments`` for buckets and partitions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.collector import collected_less
from parity.diff.hashdiff import Budget, Options, TableRun
from parity.diff.idmap import id_map_made, plan_through_map, unmapped_warnings
from parity.diff.output import Sink, open_sink
from parity.diff.plan import Compare, TablePlan, plan_table
from parity.diff.record import compare_record
from parity.diff.result import DiffResult, Progress, RecordView, RowDiff, TableDiff, TableStats
from parity.endpoint import Endpoint
from parity.errors import ConfigError, DataError, NotFound, ParityError, SchemaError
from parity.job import Job

TABLE_ERRORS = (ConfigError, DataError, NotFound, SchemaError)
"""What fails one table of a run (a missing table or column, duplicate keys, types that do not meet):
in a run of several tables, the others are still compared."""


def _first_key(source: Endpoint, plan: TablePlan, first: int) -> int | None:
    """The key of the source's ``first``-th row by key (None: it holds no more rows than that)."""
    from parity.diff.sql import Side
    from parity.schema.types import INTEGER_KINDS

    if len(plan.keys) != 1 or plan.keys[0].compare.kind not in INTEGER_KINDS:
        raise ConfigError(
            f"--first {first}: table '{plan.name}' has no single integer key to take its first rows by"
            " (--where names the rows of any other table)"
        )
    side = Side(source, plan, "source")
    key = side.sa_table.c[side.key_columns[0].name]
    query = (
        sa.select(key).select_from(side.sa_table).where(*side.where).order_by(key).offset(first - 1).limit(1)
    )
    rows = side.run(query)
    return None if not rows else int(rows[0][0])


@collected_less()
def diff(
    job: Job,
    *,
    limit: int | None = None,
    record: str | None = None,
    first: int | None = None,
    threads: int | None = None,
    output: str | None = None,
    on_difference: Callable[[RowDiff], None] | None = None,
    progress: Callable[[Progress], None] | None = None,
    threshold: int = Options.threshold,
    run_id: str | None = None,
    table_errors: bool | tuple[type[ParityError], ...] = True,
    remap_ids: bool = False,
) -> DiffResult:
    """Compare every selected table of the job's source with its target table.

    Args:
        job: The endpoints and tables (per-table key, columns, map, tolerance, where, partition).
        limit: Stop after this many differing rows (over all tables).
        record: Compare only the row with this key (comma-separated for a composite key); needs one table.
        first: Compare only each table's first rows by key, this many of the source's (a trial run on
            a large table); needs a single integer key.
        threads: Concurrent queries per side (default: the job's ``defaults.workers``).
        output: Also write the differences to ``*.jsonl`` / ``*.csv``, or to this table in the target.
        on_difference: Called with each differing row as it is found (serially); those rows are then
            not kept in the result.
        progress: Called with progress reports (rows settled per table).
        threshold: Differing buckets of at most this many rows are downloaded instead of split.
        run_id: The run's id (written with discrepancies); a new one by default.
        table_errors: Whether a table that cannot be compared fails alone, in a run of several
            (else its error ends the run); or the errors that do (``TABLE_ERRORS`` for True): sync
            lets a table's data fail it alone (``DataError``), but a table or column not found is the
            run's bad input.
        remap_ids: Read target tables whose IDs the target assigned (``parity copy --remap-ids``)
            through the target's ID map, as a job that sets ``remap_ids`` for a table does (``idmap``).

    Returns:
        A DiffResult: per table, its statistics and (unless ``on_difference`` took them) differences.

    Raises:
        NotFound: a table or column does not exist (the closest name is suggested).
        DataError: no key, NULL or duplicate keys (with examples).
        SchemaError: a mapped column pair has incompatible types.
        Where several tables are selected, these fail only their table (``TableStats.error``,
        ``DiffResult.failed``); the others are compared.
    """
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    run_id = run_id or uuid.uuid4().hex
    remap_ids = remap_ids or job.config.defaults.remap_ids
    for endpoint in (job.source, job.target):
        endpoint.require_file()  # (an SQLite target would be created empty)
    options = Options(threads=threads or job.config.defaults.workers, threshold=threshold)
    specs = job.selected()
    if record is not None and len(specs) != 1:
        raise ConfigError(
            f"--record compares one row of one table; {len(specs)} tables are selected (use -t)"
        )
    budget = Budget(limit)
    through_map = remap_ids or any(t.remap_ids for t in job.config.tables)
    has_map = id_map_made(job)  # (once a run: most targets have none, and their tables need no look)
    if record is None:
        for endpoint in (job.source, job.target):
            _warm(endpoint, options.threads)
    sink: Sink | None = open_sink(output, job.target, run_id) if output else None
    result = DiffResult(run_id)

    def deliver(row: RowDiff) -> None:
        if sink is not None:
            sink.write(row)
        if on_difference is not None:
            on_difference(row)

    try:
        for spec in specs:
            try:
                plan = plan_table(job.source, job.target, spec)
                if has_map:
                    plan = plan_through_map(job, plan, through_map)
                if first is not None:
                    plan = replace(plan, first_key=_first_key(job.source, plan, first))
                if sink is not None:
                    through = plan.through_map is not None and plan.through_map.translates
                    sink.compared(plan.source.name, plan.target.name, through)
                if record is not None:
                    table = compare_record(plan, job.source, job.target, record)
                    for row in table.differences:
                        deliver(row)
                else:
                    callback = deliver if sink is not None or on_difference is not None else None
                    run = TableRun(
                        plan,
                        job.source,
                        job.target,
                        options,
                        budget,
                        callback,
                        progress,
                        on_difference is None,
                    )
                    table = run.run()
                    table.warnings += unmapped_warnings(job.target, plan, table)
                table.through_map = plan.through_map
            except TABLE_ERRORS as exc:
                alone = TABLE_ERRORS if table_errors is True else table_errors or ()
                if len(specs) == 1 or not isinstance(exc, alone):
                    raise
                # (this table's problem, not the run's: the others are compared, and the run fails)
                table = TableDiff(TableStats(spec.name, spec.target or spec.name, error=str(exc)))
            result.tables.append(table)
            if budget.exhausted or (budget.full and spec is not specs[-1]):
                table.limited = table.stats.limited = True  # (the tables after it are not compared)
                break
        if sink is not None:
            sink.close()  # (its last rows: a failure there takes back the run's rows too)
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    return result


def _warm(endpoint: Endpoint, count: int) -> None:
    """Open ``count`` pooled connections to a database server in the background, while the tables are
    reflected: the first level's queries then start together instead of waiting, one after another,
    for connections opened while the other queries already keep the CPUs busy."""
    if endpoint.backend not in ("postgresql", "mysql", "mariadb"):
        return
    endpoint.engine  # noqa: B018 - made here, not raced for by two threads

    def open_all() -> None:
        opened: list[Connection] = []
        try:
            for _ in range(min(count, endpoint.pool_size)):
                opened.append(endpoint.connect())
        except ParityError:
            pass  # the diff itself reports the failure
        finally:
            for conn in opened:
                conn.close()

    threading.Thread(target=open_all, name="parity-diff-warm", daemon=True).start()


__all__ = [
    "Compare",
    "DiffResult",
    "Progress",
    "RecordView",
    "RowDiff",
    "TableDiff",
    "TablePlan",
    "TableStats",
    "diff",
]
