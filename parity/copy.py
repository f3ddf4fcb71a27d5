"""``parity copy``: read -> batch -> write, in key-range chunks, pipelined, checkpointed, resumable.

Each table is split into chunks (ranges of a single integer key; one chunk otherwise). A chunk is
read with a streaming cursor and written with the target's bulk writer in one transaction that
also records the chunk as done in ``_parity_state``; a killed copy started again skips the chunks
that committed. Reading and writing overlap through a small bounded queue, so memory is bounded by
the batch size whatever the table size.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity import bulk, log, textread
from parity.collector import collected_less
from parity.config import Mode, TableConfig
from parity.dialects import REGISTRY, Dialect
from parity.endpoint import (
    Endpoint,
    cardinality_error,
    driver_could_not_load,
    driver_message,
    execute_raw,
    mysqlclient_args,
    mysqlclient_connect,
    mysqlclient_serves,
    raise_unless_refusal,
    refuse_given_ids,
    roll_back_to,
    same_database,
    switched,
    transient_error,
)
from parity.errors import ConfigError, DataError, ParityError, not_found
from parity.job import Job, aggregate_row, select_columns, where_clause
from parity.log import logger
from parity.remap import IdMaps, RemapSpec, RemapWriter, fix_late_references
from parity.schema.apply import existing_targets, taken_names
from parity.schema.model import ForeignKey, Index, Table
from parity.schema.order import fk_order
from parity.schema.plan import SchemaPlan, plan_schema
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind, parse
from parity.state import State
from parity.values import (
    DECODE_ERRORS,
    JsonText,
    boolean_text,
    decode_value,
    duration_text,
    jsonb_text,
    no_nan,
)

Progress = Callable[[str, int, int | None], None]
"""progress(table, rows_done, rows_total): called from worker threads as batches land."""

CHUNK_BATCHES = 10
"""A chunk holds about this many batches: the unit of parallel work and of checkpointing."""
TRANSIENT_RETRIES = 3
"""How many times a chunk the target rolled back for a deadlock or a lock wait is made again."""

ESTIMATED_FROM = 100_000
"""A table whose statistics say it holds at least this many rows is cut into chunks by that estimate
(also its progress bar's total, corrected as rows land) instead of counting its rows first: a
count(*) reads the whole table (MariaDB: 0.2 s per million rows) before any row moves."""

QUEUE_BATCHES = 1
"""Batches a chunk's reader may have ready ahead of its writer (besides the one it is reading and the
one being written): with the batch size and the workers, what bounds the memory a copy takes (a chunk
read in a reader process holds up to ``textread.AHEAD`` more there, and a reader a lane is started
ahead, where one table is being copied). One is enough for the reader (which also does the writer's
encoding, ``Writer.prepare``) and the target's load to overlap; a second one costs a batch of memory
per worker and measured no faster."""


@dataclass
class TableResult:
    table: str
    target: str
    rows_read: int = 0
    rows_written: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0
    status: str = "ok"
    error: str | None = None
    resumed_chunks: int = 0


@dataclass
class CopyResult:
    tables: list[TableResult] = field(default_factory=list)
    schema: SchemaPlan | None = None
    rejects_file: str | None = None
    run_id: str | None = None
    """The run's id in the rejects file's records (``run_id``)."""
    warnings: list[str] = field(default_factory=list)
    """What the copy did otherwise than asked, though every row arrived (a foreign key the rows break)."""
    notes: list[str] = field(default_factory=list)
    """What the copy did, beside its counts (the rows a ``since`` column chose)."""

    @property
    def ok(self) -> bool:
        return all(t.status == "ok" for t in self.tables)

    @property
    def all_warnings(self) -> list[str]:
        """The schema plan's warnings (a narrowed type ...), then the copy's."""
        return [*(self.schema.warnings if self.schema is not None else []), *self.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tables": [asdict(t) for t in self.tables],
            "rejects_file": self.rejects_file,
            "notes": self.notes,
            "run_id": self.run_id,
            "warnings": self.all_warnings,
        }


@dataclass(frozen=True)
class Chunk:
    """A key range [lo, hi) of one table, [lo, ...) for the last (hi = None: a bound past the key's
    largest value could be past BIGINT), or the whole table (lo = hi = None)."""

    name: str
    lo: int | None = None
    hi: int | None = None
    nulls: bool = False
    """The rows whose key is NULL (SQLite keeps NULL in a key other than its rowid)."""


@dataclass
class _TablePlan:
    spec: TableConfig
    source: Table
    """The source table as reflected (source column names)."""
    columns: list[str]
    """Source columns to read, in order."""
    target_columns: list[str]
    types: list[CanonicalType]
    target: str
    mode: Mode
    key: list[str]
    """Target-side key columns (merge)."""
    chunk_key: str | None
    batch_size: int
    where: str | None
    limit: int | None
    remap: RemapSpec = field(default_factory=RemapSpec)
    since: tuple[str, Any] | None = None
    """``since``: the source column, and the watermark (the least value read; None: every row)."""
    since_value: Callable[[Any], Any] = lambda x: x
    """The ``since`` column as it is ordered (``Dialect.since_value``)."""
    atomic: bool = False
    """The table is copied in one transaction, one chunk (``TableConfig.atomic``)."""
    in_cycle: bool = False
    """The table is in an FK cycle (or references itself): its loads run with FK checks off, where the
    database allows it, because the rows it references may not be there yet."""
    unchecked: bool = False
    """The table declares its FKs, but its rows are checked after them, every table copied (only a
    "check foreign key" step waits for it: ``plan._held_by_hash``): its loads run with FK checks off,
    as those of a table whose FKs are added after its rows."""

    @property
    def fk_checks_off(self) -> bool:
        """Whether its loads run with FK checks off (``in_cycle``, ``unchecked``)."""
        return self.in_cycle or self.unchecked

    @property
    def emptied_within(self) -> bool:
        """An ``atomic`` table in replace mode: its one transaction empties it (and forgets its recorded
        rows) before its rows go in, so that a table that fails is left as it was (``_empty_within``)."""
        return self.atomic and self.mode == "replace"

    fractions: dict[str, int] = field(default_factory=dict)
    """Target column -> the digits of a second it keeps, where the source's values may hold more
    (``SchemaPlan.fractions``): such rows are rejected (``_Guard``)."""
    numbered: tuple[int, ...] = ()
    """Positions in ``target_columns`` where the target numbers a NULL itself (``Dialect.numbers_nulls``)
    and the source may hold NULL: such rows are rejected (``_Guard``), not written under a new key."""
    self_reference: tuple[int, int] | None = None
    """Where the target checks an FK of the table to itself and has no FK checks to switch off (DuckDB,
    Oracle, SQL Server): the positions in ``target_columns`` of its column and of the column it
    references. The table is then one chunk, written in generations (``_Generations``)."""


@collected_less()
def copy(
    job: Job,
    *,
    mode: Mode | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    schema: bool = True,
    rejects_file: str | None = None,
    max_rejects: int | None = None,
    progress: Progress | None = None,
    remap_ids: bool = False,
    export_id_map: str | None = None,
    atomic: bool = False,
) -> CopyResult:
    """Copy the job's tables from source to target. Returns per-table counts; never raises for one
    table's failure (it is reported in the result), but raises ParityError for bad input."""
    defaults = job.config.defaults
    remap_ids = remap_ids or defaults.remap_ids
    if export_id_map and not (remap_ids or any(s.remap_ids for s in job.selected())):
        raise ConfigError(
            "--export-id-map writes the map of new IDs that --remap-ids makes: give --remap-ids too"
        )
    workers = workers or defaults.workers
    atomic = atomic or defaults.atomic
    result = CopyResult(rejects_file=rejects_file)
    state = State(job.target)
    if _may_read_in_processes(job):
        textread.warm()  # the fork server loads parity while the schema and the tables are planned
    keys_later = {  # tables loaded as they are (not merged, no ID lookups) may get their keys after
        spec.name
        for spec in job.selected()
        if _table_mode(job, spec, mode) != "merge" and not (remap_ids or spec.remap_ids or spec.natural_key)
    }
    merging = {spec.name: spec for spec in job.selected() if _table_mode(job, spec, mode) == "merge"}
    with _no_file_if_refused(job.target):
        job.target.check_writable()
        _refuse_copy_onto_itself(job)
        _check_wheres(job)
        _check_since(job, mode)
        _check_target_assigns_ids(job, remap_ids)
        _refuse_atomic_replace(job, mode, atomic)
        remapped = set()
        if remap_ids or any(spec.remap_ids for spec in job.selected()):
            remapped = _check_remaps(job, mode, remap_ids)
        assigned = {spec.name for spec in job.selected() if remap_ids or spec.remap_ids}
        plan = _prepare_schema(job, schema, state, keys_later, merging, assigned, remapped)
        result.schema = plan
        plans = _plan_tables(job, plan, mode, batch_size, limit)
        for tp in plans:
            tp.atomic = atomic or tp.spec.atomic
        _plan_remaps(plans, remap_ids, _mapped_elsewhere(job, state, plans, remap_ids))
        result.warnings += _one_chunk_where_natural_keys_repeat(job, plans)
        _check_ids_writable(job, plans)
        _mark_numbered(job, plans)
        _mark_unchecked(job, state, plans)
    state.ensure()
    if job.target.bulk_refused:
        result.warnings.append(job.target.bulk_refused)
    marks = _watermarks(job, state, plans)
    maps = IdMaps(state)
    rejects = _Rejects(rejects_file, max_rejects)
    result.run_id = rejects.run["run_id"]
    created = {step.table for step in plan.steps if step.action == "create table"}
    finished = _finished_at(job, state, plans)  # (before this run's start makes its record anew)
    starts = _start_all(job, state, plans, created, _lanes(job, workers, _reads_in_processes(job)))
    again = [tp for tp in plans if tp.target not in created]
    result.warnings += _appending_again(job, again, starts, finished)
    result.warnings += _unindexed_natural_keys(job, plans)
    lanes = _Lanes(_lanes(job, workers, _reads_in_processes(job)))
    try:
        result.tables += _copy_tables(job, state, plans, starts, workers, lanes, progress, rejects, maps)
    finally:
        rejects.close()
    result.warnings += _taken_keys(plans, rejects, created)
    result.notes += _save_watermarks(job, state, plans, marks, result)
    _fix_late_references(job, plans, result, maps)
    if any(tp.remap.active for tp in plans):  # (diff's join through the map plans by its counts)
        state.analyze_id_map()
    if result.ok:  # (a failed table may lack rows or its key: its FKs wait for a run that copies it)
        result.warnings += _add_deferred_foreign_keys(job, state, [tp.target for tp in plans])
        _finish_run(job, state, plans)
    else:
        logger.warning("foreign keys waiting for the rows are added by a run in which every table succeeds")
    if export_id_map:
        maps.export(export_id_map, [tp.target for tp in plans if tp.remap.identity], job.target)
    return result


@contextmanager
def _no_file_if_refused(target: Endpoint) -> Iterator[None]:
    """A copy refused before any row moves (bad input) into a database file that was not there leaves
    no file (it was made by connecting: an empty SQLite file, a DuckDB one with its catalog)."""
    path = target.url.database if target.backend in ("sqlite", "duckdb") else None
    fresh = bool(path) and path != ":memory:" and not os.path.exists(path or "")
    try:
        yield
    except BaseException:  # (bad input, a database's refusal, Ctrl-C)
        if fresh and path:
            target.dispose()
            for leftover in (path, f"{path}.wal", f"{path}-journal", f"{path}-wal", f"{path}-shm"):
                with suppress(OSError):
                    os.remove(leftover)
        raise


def _fix_late_references(job: Job, plans: list[_TablePlan], result: CopyResult, maps: IdMaps) -> None:
    """Point the rows written with a late reference (``RemapSpec.late``) to their parents' new IDs;
    what a stopped run left recorded is set by the next one."""
    for tp in plans:
        if not tp.remap.late:
            continue
        try:
            done, left = fix_late_references(job.target, tp.target, tp.remap, maps)
        except (ParityError, sa.exc.DBAPIError) as exc:
            message = str(exc) if isinstance(exc, ParityError) else driver_message(exc)
            for t in result.tables:
                if t.target == tp.target:
                    t.status, t.error = "failed", f"setting references to rows copied later: {message}"
            continue
        logger.info("%s: %d references set to rows copied after their own", tp.target, done)
        if left:
            logger.warning(
                "%s: %d references wait for parent rows not copied (refused, or not in this run)",
                tp.target,
                left,
            )


def _prepare_schema(
    job: Job,
    apply: bool,
    state: State,
    keys_later: set[str],
    merging: dict[str, TableConfig],
    assigned: set[str],
    remapped: set[str],
) -> SchemaPlan:
    """Make the target hold the source tables, except FKs inside cycles, which come after the data, and
    the keys of tables created here where the target builds them faster after the rows
    (``Dialect.DEFERS_KEYS``): recorded in the state in the creating transaction, built by ``_finish``.
    A merge without a key, or by a key some source rows hold as NULL, is refused first, before any DDL."""
    source = job.source_tables()
    _check_diff_settings(job, source)
    existing = existing_targets(job, parents_of=source)
    # (a table made here from a source that compares text exactly compares its keys so: ``exact_keys``)
    exact = not job.source.dialect.TEXT_KEYS_FOLD and job.target.dialect.exact_collation(
        job.target.engine.dialect
    )
    for n, table in enumerate(source):
        spec = merging.get(table.name)
        if spec is None:
            continue
        if not (spec.key or table.key()):
            raise DataError(
                f"table '{table.name}' has no primary key: merge needs a key (-k COLUMN[,COLUMN])"
            )
        # (the table is shaped: its columns go by their target names, the key by the source's)
        by_source = {target: name for name, target in spec.map.items()}
        key = spec.key or [by_source.get(c, c) for c in table.key()]
        _refuse_null_keys(job, spec, [k for k in key if table.column(spec.map.get(k, k)).nullable])
        shaped = tuple(spec.map.get(k, k) for k in key)
        declared = [table.primary_key, *(i.columns for i in (*table.uniques, *table.indexes) if i.unique)]
        kinds = [table.column(spec.map.get(k, k)).type.kind for k in key]
        folds = job.target.dialect.TEXT_KEYS_FOLD and not (exact and job.names()[table.name] not in existing)
        if set(shaped) not in [set(k) for k in declared]:  # (a table created here is made unique on -k)
            _refuse_shared_keys(job, spec, key, kinds, folds)
            source[n] = replace(table, uniques=(*table.uniques, Index(None, shaped, unique=True)))
        elif folds and not job.source.dialect.TEXT_KEYS_FOLD and any(k in STRING_KINDS for k in kinds):
            # (unique by its exact text in the source; the target's key may take 'go' and 'Go' for one,
            # and merge would write the one over the other, every row counted written)
            _refuse_shared_keys(job, spec, key, kinds, folds)
    target = job.target
    plan = plan_schema(
        source,
        target.dialect,
        target.engine.dialect,
        existing,
        target.schema,
        job.names(),
        defer_keys=keys_later if apply else (),
        assigned=assigned,
        remapped=remapped if apply else (),
        taken=taken_names(job),
        exact_keys=not job.source.dialect.TEXT_KEYS_FOLD,
        folded_keys=job.source.dialect.TEXT_KEYS_FOLD,
    )
    if plan.problems:
        raise DataError("the target cannot hold the source's values: " + "; ".join(plan.problems))
    steps = [s for s in plan.steps if s.action not in _LATER]
    later: dict[tuple[str, str], list[str]] = {}
    # where each DDL statement commits on its own, a run stopped between a table's CREATE TABLE and its
    # indexes left it without them, and the rerun found the table there: they are recorded to be built
    # again at the table's finish too, where one there already counts as built (``Dialect.index_there``)
    created = {s.table for s in plan.steps if s.action == "create table"}
    again = not job.target.dialect.TRANSACTIONAL_DDL and job.target.dialect.INDEXES_AGAIN
    for step in plan.steps:
        if step.action in _LATER:
            later.setdefault((_LATER[step.action], step.table), []).append(step.sql)
        elif step.action == "create index" and again and step.table in created:
            later.setdefault(("keys", step.table), []).append(step.sql)
    if not apply and steps:
        tables = sorted({s.table for s in steps if s.action == "create table"})
        columns = sorted({f"{s.table}.{s.column}" for s in steps if s.column and s.table not in tables})
        lacks = [f"tables {', '.join(tables)}"] if tables else []
        lacks += [f"columns {', '.join(columns)}"] if columns else []
        advice = " (where it names them otherwise, map: them to its names)" if columns else ""
        raise DataError(
            f"the target lacks {' and '.join(lacks) or 'parts of ' + ', '.join(sorted({s.table for s in steps}))}"
            f"{advice}; run without --no-schema to add them"
        )
    if apply and steps:
        from parity.schema.apply import schema_apply

        had = state.made() if later else set()

        def record(conn: Connection) -> None:
            if later:
                state.ensure(conn)  # (it takes the record of what waits: undone with the tables)
            for (when, table), sqls in later.items():
                state.defer_ddl(conn, when, table, sqls)

        try:
            schema_apply(
                job,
                SchemaPlan(steps=steps, warnings=plan.warnings, order=plan.order, names=plan.names),
                record,
            )
        except ParityError:
            if later and not job.target.dialect.TRANSACTIONAL_DDL:  # (recorded first: the tables are gone)
                made = {step.table for step in steps if step.action == "create table"}
                with job.target.begin() as conn:  # (but for those the undo could not drop: the next
                    left = made & set(target.dialect.table_names(conn, target.schema))  # run keeps them)
                    if not left:  # (nothing of this run is left: nor are parity's tables it made)
                        state.unmake(conn, had)
                    for when, name in later:
                        if name not in left and (left or state.state.name in had):
                            state.ran_ddl(conn, when, name)
            raise
    if apply and again:
        _build_indexes_left(job, state, [n for n in job.names().values() if n not in created])
    return plan


def _build_indexes_left(job: Job, state: State, tables: list[str]) -> None:
    """The indexes of tables a run stopped between creating them and their indexes, now: a merge into
    such a table needs its unique one before any row (``_check_merge_key``)."""
    if not tables or state.state.name not in state.made():
        return
    with job.target.begin() as conn:
        for table in tables:
            run = functools.partial(_unless_there, conn, job.target.dialect)
            _run_deferred(conn, state, "keys", table, f"building the indexes of '{table}'", run)


_LATER = {"add key": "keys", "check foreign key": "fks", "add foreign key": "fks"}
"""Plan steps that wait for rows: a table's keys (its finish), FKs (after every table)."""


def _add_deferred_foreign_keys(job: Job, state: State, tables: Sequence[str]) -> list[str]:
    """The FKs waiting for the rows of every table (recorded when their tables were created, by this
    run or by one that stopped before this point); returns warnings for keys the rows break."""
    warnings: list[str] = []
    with job.target.begin() as conn:
        for table in tables:
            checked: list[bool] = []
            add = functools.partial(_add_foreign_key, conn, job.target.dialect, table, warnings, checked)
            _run_deferred(conn, state, "fks", table, f"adding a foreign key to '{table}'", add)
    return warnings


def _orphans_warning(table: str, detail: str) -> str:
    return (
        f"{table}: rows reference rows that are not there (not in the source, or not copied: {detail}); the foreign"
        " key is added without checking the rows already there, and holds for rows written later"
    )


def _add_foreign_key(
    conn: Connection, dialect: Dialect, table: str, warnings: list[str], checked: list[bool], sql: str
) -> None:
    """``_add_or_check_foreign_key``; a key there already (where DDL commits on its own, a run stopped
    after adding it and before recording so) counts as added."""
    try:
        _add_or_check_foreign_key(conn, dialect, table, warnings, checked, sql)
    except sa.exc.DBAPIError as exc:
        if exc.orig is None or not dialect.already_there(exc.orig):
            raise
        logger.info("%s: foreign key there already (%s)", table, driver_message(exc))


def _add_or_check_foreign_key(
    conn: Connection, dialect: Dialect, table: str, warnings: list[str], checked: list[bool], sql: str
) -> None:
    """Add one FK after the rows. Rows that reference no row (a source that does not enforce its FKs,
    SQLite's default, keeps such orphans) do not stop the run, as they cannot be refused one by one
    here: the key is added without checking the rows already there (PostgreSQL ``NOT VALID``, MySQL
    with its FK checks off), it holds for rows written later, and a warning says so. A query (a plan's
    "check foreign key" step, ``Dialect.DEFERS_FOREIGN_KEYS``) looks for such a row first; the key
    after it is added unchecked straight away (``checked`` says one ran)."""
    if _is_check(sql):
        cursor = conn.connection.cursor()  # (no parameters: the text as sent, % and all)
        try:
            with log.timed_sql(sql, dialect.names[0]):
                cursor.execute(sql)
            found = cursor.fetchone()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()
        if found is not None:
            warnings.append(_orphans_warning(table, f"a row references ({', '.join(map(str, found))})"))
        checked.append(True)
        return
    if checked and dialect.FK_CHECKS:  # (MySQL adds a checked key by copying the table)
        checked.clear()
        with switched(conn, dialect.FK_CHECKS):
            execute_raw(conn, sql)
        return
    savepoint = conn.begin_nested() if dialect.TRANSACTIONAL_DDL else None
    try:
        execute_raw(conn, sql)
    except sa.exc.DBAPIError as exc:
        if savepoint is not None:
            savepoint.rollback()
        if exc.orig is None or not dialect.breaks_foreign_key(exc.orig):
            raise
        if dialect.UNCHECKED_FOREIGN_KEY:
            execute_raw(conn, dialect.UNCHECKED_FOREIGN_KEY.format(sql=sql))
        elif dialect.FK_CHECKS:
            with switched(conn, dialect.FK_CHECKS):
                execute_raw(conn, sql)
        else:
            raise
        detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or driver_message(exc)
        warnings.append(_orphans_warning(table, detail))
    else:
        if savepoint is not None:
            savepoint.commit()


def _is_check(sql: str) -> bool:
    """Whether a step waiting for every table's rows is a "check foreign key" query, not DDL."""
    return sql.lstrip()[:6].upper() == "SELECT"


def _mark_unchecked(job: Job, state: State, plans: list[_TablePlan]) -> None:
    """``_TablePlan.unchecked`` of the tables whose waiting FK steps (recorded as their tables were
    made, by this run or one that stopped) are checks alone."""
    if not job.target.dialect.FK_CHECKS or state.state.name not in state.made():
        return
    with job.target.connect() as conn:
        waiting = state.all_deferred_ddl(conn, "fks")
    for tp in plans:
        steps = waiting.get(tp.target, [])
        tp.unchecked = bool(steps) and all(map(_is_check, steps))


def _unless_there(conn: Connection, dialect: Dialect, sql: str) -> None:
    """Run DDL that a run stopped after it may have run already (an index): one there counts as made."""
    try:
        execute_raw(conn, sql)
    except sa.exc.DBAPIError as exc:
        if exc.orig is None or not dialect.index_there(exc.orig):
            raise


def _run_deferred(
    conn: Connection,
    state: State,
    when: str,
    table: str,
    doing: str,
    run: Callable[[str], None] | None = None,
) -> bool:
    """Run the DDL recorded for a table (``State.defer_ddl``), then forget it; whether there was any."""
    steps = state.deferred_ddl(conn, when, table)
    for sql in steps:
        try:
            (run or functools.partial(execute_raw, conn))(sql)
        except sa.exc.DBAPIError as exc:
            raise ParityError(f"{doing} failed: {driver_message(exc)}") from exc
    if steps:
        state.ran_ddl(conn, when, table)
    return bool(steps)


def _override_scales(
    job: Job, spec: TableConfig, source: Table, kept: dict[str, int | None]
) -> dict[str, int]:
    """Target column -> decimals, of the columns a ``types:`` override makes a DECIMAL whose target
    column (``kept``: as it exists, or is created) keeps fewer decimals than the source's values may
    hold (a float's, an unbounded decimal's, SQLite's): a row with more is rejected, not rounded by the
    target without a word."""
    out = {}
    for name in spec.types:
        native, target = source.column(name).type, spec.map.get(name, name)
        scale = kept.get(target)
        if parse(spec.types[name]).kind is not Kind.DECIMAL or native.kind in INTEGER_KINDS or scale is None:
            continue
        fits = native.kind is Kind.DECIMAL and native.scale is not None and native.scale <= scale
        if not fits or job.source.backend == "sqlite":
            out[target] = scale
    return out


def _check_diff_settings(job: Job, source: list[Table]) -> None:
    """The columns a job file's tables name for diff alone (tolerances, a partition's) are checked by
    copy too, before any DDL: a job file both run was taken by copy and refused by diff after."""
    specs = {spec.name: spec for spec in job.selected()}
    for table in source:
        spec = specs[table.name]
        named = [
            *spec.tolerance,
            *([spec.partition.column] if spec.partition and spec.partition.column else []),
        ]
        by_target = {t: s for s, t in spec.map.items()}
        names = [by_target.get(c, c) for c in table.column_names]
        for column in named:
            if column not in names:
                raise not_found("column", column, names, where=f"table '{table.name}'")


def _refuse_atomic_replace(job: Job, mode: Mode | None, atomic: bool) -> None:
    """An ``atomic`` table in replace mode is emptied in its own transaction, just before its rows go
    in; every other replace table is emptied as the copy starts. Refused before anything moves where
    that cannot hold: another table's rows reference it (its emptying would fail on them, or orphan
    them where FK checks are off), it references a table emptied as the copy starts (whose emptying
    would fail on its rows), or the database checks a table's reference to itself against the rows its
    own transaction deleted (DuckDB)."""
    names = job.names()
    within: set[str] = set()
    first: set[str] = set()
    for spec in job.selected():
        if _table_mode(job, spec, mode) == "replace":
            (within if atomic or spec.atomic else first).add(names[spec.name])
    if not within:
        return
    target, dialect = job.target, job.target.dialect
    with target.connect() as conn:
        refers = dialect.references(conn, target.schema)
        existing = list(refers)

        def holds_rows(name: str, schema: str | None = target.schema) -> bool:
            table = sa.table(name, schema=schema)
            return conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None

        for parent in sorted(within & set(existing)):  # (children in other schemas: never emptied here)
            for name in sorted(dialect.referencing_elsewhere(conn, [parent], target.schema)):
                owner, _, table = name.partition(".")
                if holds_rows(table, owner):
                    _refuse_within(parent, f"'{name}' references it and holds rows")
        for name in sorted(existing):
            for parent in sorted(refers[name] & within):
                if name == parent and dialect.FK_SEES_OWN_DELETES:
                    continue
                if name in first or not holds_rows(name):
                    continue
                why = (
                    f"'{name}' references it and holds rows (replace '{name}' in the run, not atomic)"
                    if name != parent
                    else f"it references itself and {target.backend} checks that against its own deletes"
                )
                _refuse_within(parent, why)
            if name in within and refers[name] & first:
                emptied = sorted(refers[name] & first)[0]
                _refuse_within(name, f"it references '{emptied}', which replace empties before any row moves")


def _refuse_within(table: str, why: str) -> None:
    raise ConfigError(
        f"--atomic (atomic: true) with --mode replace: '{table}' cannot be emptied in the transaction that"
        f" loads it: {why}; copy it without --atomic"
    )


def _table_mode(job: Job, spec: TableConfig, mode: Mode | None) -> Mode:
    """A table's mode: the one the command line gives (it wins over the job file), else the table's own
    in the job file, else the job's default."""
    return mode or spec.mode or job.config.defaults.mode


def _plan_tables(
    job: Job, plan: SchemaPlan, mode: Mode | None, batch_size: int | None, limit: int | None
) -> list[_TablePlan]:
    """``mode`` and ``batch_size``: the command line's, which win over the tables' own."""
    specs = {t.name: t for t in job.selected()}
    from parity.schema.reflect import reflect

    sources = {t.name: t for t in reflect(job.source, list(specs), None)}
    order = plan.order
    if _with_target_foreign_keys(job, sources, plan.names):
        planned = set(order)
        order = [plan.names[n] for n in fk_order(list(sources.values()))[0] if plan.names[n] in planned]
    cyclic = {name for name, _ in fk_order(list(sources.values()))[1]}
    by_target = {v: k for k, v in plan.names.items()}
    out = []
    for target in order:
        name = by_target[target]
        spec, source = specs[name], sources[name]
        columns = select_columns(source.column_names, spec.columns, spec.exclude_columns, name)
        computed = plan.generated.get(target, set())  # (the target fills them itself)
        columns = [c for c in columns if spec.map.get(c, c) not in computed]
        target_columns = [spec.map.get(c, c) for c in columns]
        key = list(spec.key or source.key())
        table_mode = _table_mode(job, spec, mode)
        if table_mode == "merge":
            _check_merge_key(job, name, target, [spec.map.get(k, k) for k in key])
        single = source.primary_key if len(source.primary_key) == 1 else ()
        chunk_key = single[0] if single and source.column(single[0]).type.kind in INTEGER_KINDS else None
        out.append(
            _TablePlan(
                spec=spec,
                source=source,
                columns=columns,
                target_columns=target_columns,
                types=[source.column(c).type for c in columns],
                target=target,
                mode=table_mode,
                key=[spec.map.get(k, k) for k in key],
                chunk_key=chunk_key,
                batch_size=batch_size or spec.batch_size or job.config.defaults.batch_size,
                where=spec.where,
                limit=limit,
                in_cycle=name in cyclic,
                fractions={
                    **plan.fractions.get(target, {}),
                    **_override_scales(job, spec, source, plan.decimals.get(target, {})),
                },
            )
        )
    if job.target.dialect.FK_CHECKS is None and out:  # (the source may declare no such FK)
        with job.target.connect() as conn:
            for tp in out:
                tp.self_reference = _self_reference(job, conn, tp)
    return out


def _with_target_foreign_keys(job: Job, sources: dict[str, Table], names: dict[str, str]) -> bool:
    """Add to the source tables the FKs their existing target tables declare and they do not (a legacy
    SQLite database often declares none), in the source's names; whether any was added. The load order
    (parents first), the FK checks of cycles and the rewriting of remapped IDs then follow the FKs the
    target checks: children loaded first were refused as orphans, and with ``--remap-ids`` kept their
    parents' old IDs, which pointed at other rows of the live target."""
    dialect, schema = job.target.dialect, job.target.schema
    table = str.lower if dialect.TABLE_NAMES_IGNORE_CASE else str
    column = str.lower if dialect.COLUMN_NAMES_IGNORE_CASE else str
    specs = {spec.name: spec for spec in job.selected()}
    source_of = {table(names[name]): name for name in sources}

    def source_columns(name: str, written: bool = False) -> dict[str, str]:  # target (folded) -> source
        spec, columns = specs[name], sources[name].column_names
        if written:  # (the columns the copy writes)
            columns = select_columns(columns, spec.columns, spec.exclude_columns, name)
        return {column(spec.map.get(c, c)): c for c in columns}

    added = False
    with job.target.connect() as conn:
        existing = {table(n): n for n in dialect.table_names(conn, schema)}  # (as the target spells it)
        here = {None, schema or conn.dialect.default_schema_name}  # (an FK into another schema: not ours)
        for name, source in list(sources.items()):
            if table(names[name]) not in existing:
                continue
            back = source_columns(name, written=True)
            declared = {
                tuple(column(specs[name].map.get(c, c)) for c in fk.columns) for fk in source.foreign_keys
            }
            extra = []
            for fk in dialect.foreign_keys(conn, existing[table(names[name])], schema):
                own = tuple(column(c) for c in fk["constrained_columns"])
                if own in declared or not own or not all(c in back for c in own):
                    continue
                if fk.get("referred_schema") not in here:
                    continue
                parent = source_of.get(table(fk["referred_table"]))
                referred = source_columns(parent) if parent is not None else {}
                extra.append(
                    ForeignKey(
                        fk.get("name"),
                        tuple(back[c] for c in own),
                        parent if parent is not None else fk["referred_table"],
                        tuple(referred.get(column(c), c) for c in fk["referred_columns"]),
                    )
                )
                declared.add(own)
            if extra:
                sources[name] = replace(source, foreign_keys=(*source.foreign_keys, *extra))
                added = True
    return added


def _self_reference(job: Job, conn: Connection, tp: _TablePlan) -> tuple[int, int] | None:
    """The target's FK of the table to itself, as positions in the written columns (see
    ``_TablePlan.self_reference``); None where there is none, or it is not one written column of an
    integer or text key (its rows are loaded as any other table's)."""
    dialect, schema = job.target.dialect, job.target.schema
    # (an FK clause may spell names otherwise where they ignore case: DuckDB keeps its spelling)
    table = str.lower if dialect.TABLE_NAMES_IGNORE_CASE else str
    column = str.lower if dialect.COLUMN_NAMES_IGNORE_CASE else str
    position = {column(c): i for i, c in enumerate(tp.target_columns)}
    for fk in dialect.foreign_keys(conn, tp.target, schema):
        own, referred = fk["constrained_columns"], fk["referred_columns"]
        if table(fk["referred_table"]) != table(tp.target) or len(own) != 1 or len(referred) != 1:
            continue
        at, key_at = position.get(column(own[0])), position.get(column(referred[0]))
        if at is not None and key_at is not None and tp.mode != "merge":
            kind = tp.types[key_at].kind
            if kind in INTEGER_KINDS or kind in (Kind.VARCHAR, Kind.TEXT, Kind.CHAR):
                return at, key_at
    return None


def _refuse_null_keys(job: Job, spec: TableConfig, nullable: list[str]) -> None:
    """Merge finds a row's match by its key: a row whose key is NULL matches none, so every run would
    add it again. Such rows (``nullable``: the key's source columns that may be NULL) are refused
    before any DDL."""
    if not nullable:
        return
    table = sa.table(spec.name, *(sa.column(c) for c in nullable), schema=job.source.schema)
    query = (
        sa.select(sa.func.count()).select_from(table).where(sa.or_(*(table.c[c].is_(None) for c in nullable)))
    )
    if spec.where:
        query = query.where(where_clause(spec.where))
    with job.source.connect() as conn:
        rows = conn.execute(query).scalar_one()
    if rows:
        raise DataError(
            f"table '{spec.name}': {rows} rows have a NULL key ({', '.join(nullable)}); merge"
            " matches rows by key and would add them again on every run: merge by a key without NULLs (-k)"
        )


def _refuse_shared_keys(job: Job, spec: TableConfig, key: list[str], kinds: list[Kind], folds: bool) -> None:
    """Merge by a key the source does not declare unique: source rows that share it would overwrite
    one another in an order no run fixes (chunks go in parallel), so they are refused before any DDL,
    with examples."""
    shared = _shared_keys(job, spec, key, kinds, folds=folds)
    if shared and folds:
        raise DataError(
            f"table '{spec.name}': source rows share a merge key ({', '.join(key)}) as the target compares"
            f" text (ignoring case and trailing spaces), e.g. {shared}: merge would write them into one row;"
            " give the target's key a binary collation, or merge by another key (-k)"
        )
    if shared:
        raise DataError(
            f"table '{spec.name}': source rows share a merge key ({', '.join(key)}), e.g. {shared};"
            " merge by a key unique in the source (-k)"
        )


def _shared_keys(
    job: Job,
    spec: TableConfig,
    key: list[str],
    kinds: list[Kind],
    nulls_count: bool = True,
    folds: bool | None = None,
) -> str:
    """Examples of key values that source rows share, or "". Text is grouped as the target compares
    keys: by its exact characters ('a' and 'A' are two keys in PostgreSQL, whatever the source's
    collation), or, where the target folds case and trailing spaces (``Dialect.TEXT_KEYS_FOLD``; not
    in a table made here with exact keys: ``folds``), so folded."""
    table = sa.table(spec.name, *(sa.column(c) for c in key), schema=job.source.schema)
    dialect = job.source.dialect
    if folds is None:
        folds = job.target.dialect.TEXT_KEYS_FOLD  # (the target takes 'a' and 'A ' for one key)

    def grouped(x: Any) -> Any:
        return sa.func.lower(dialect.rtrim_chars(x, " ")) if folds else dialect.exact_text(x)

    columns = [
        grouped(table.c[c]) if kind in STRING_KINDS else table.c[c]
        for c, kind in zip(key, kinds, strict=True)
    ]
    query = sa.select(*columns).group_by(*columns).having(sa.func.count() > 1).limit(3)
    if not nulls_count:  # (a natural key holding NULL matches no row)
        query = query.where(*(table.c[c].is_not(None) for c in key))
    if spec.where:
        query = query.where(where_clause(spec.where))
    with job.source.connect() as conn:
        shared = conn.execute(query).all()
    shown = [[v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in row] for row in shared]
    return ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in shown)


def _one_chunk_where_natural_keys_repeat(job: Job, plans: list[_TablePlan]) -> list[str]:
    """A table whose source rows share a natural key is copied as one chunk: a later row maps to the
    row its first one wrote, which chunks in parallel would not see (each wrote its own: the audit);
    with a warning naming examples."""
    warnings = []
    for tp in plans:
        natural = list(tp.spec.natural_key or ())
        if not natural or tp.chunk_key is None:
            continue
        kinds = [tp.source.column(c).type.kind for c in natural]
        shared = _shared_keys(job, tp.spec, natural, kinds, nulls_count=False)
        if shared:
            tp.chunk_key = None
            warnings.append(
                f"{tp.source.name}: source rows share a natural key ({', '.join(natural)}), e.g. {shared}:"
                " each maps to the first one's row; the table is copied as one chunk"
            )
    return warnings


def _check_target_assigns_ids(job: Job, remap_all: bool) -> None:
    """Before any DDL: where the target database has no identity columns (DuckDB), a table whose IDs are
    remapped must exist there already with a key the database numbers (a sequence's nextval default)."""
    dialect = job.target.dialect
    wanted = [spec.name for spec in job.selected() if remap_all or spec.remap_ids]
    if dialect.HAS_IDENTITY or not wanted:
        return
    from parity.schema.apply import existing_targets

    existing, names = existing_targets(job), job.names()
    for name in wanted:
        table = existing.get(names[name])
        if table is None or not any(c.identity for c in table.columns):
            raise DataError(
                f"table '{name}': remap_ids needs the target to assign IDs, and {job.target.backend} has no"
                f" identity columns; create '{names[name]}' with a key that defaults to a sequence's nextval"
            )


def _check_ids_writable(job: Job, plans: list[_TablePlan]) -> None:
    """Before any row moves: a column the target always numbers itself (Oracle's GENERATED ALWAYS,
    ``Dialect.ids_never_written``) takes none of the source's values, so every row would be refused;
    such a copy is refused, unless the target numbers that column's rows (``--remap-ids``)."""
    target = job.target
    with target.connect() as conn:
        for tp in plans:
            never = target.dialect.ids_never_written(conn, target, tp.target)
            given = set(tp.target_columns) - {tp.remap.identity}
            remedy = "copy with --remap-ids (the target numbers the rows, the old IDs mapped to the new)"
            refuse_given_ids(
                target, tp.target, never, given, f"{remedy}, or make the column GENERATED BY DEFAULT"
            )


def _mark_numbered(job: Job, plans: list[_TablePlan]) -> None:
    """Set each table's ``numbered``: columns the target numbers where the row gives NULL, but the one
    the target numbers by design (``--remap-ids``: not written)."""
    target = job.target
    with target.connect() as conn:
        for tp in plans:
            numbered = target.dialect.numbers_nulls(conn, target, tp.target) - {tp.remap.identity}
            tp.numbered = tuple(
                i
                for i, (source, column) in enumerate(zip(tp.columns, tp.target_columns, strict=True))
                if column in numbered and tp.source.column(source).nullable
            )


def _unindexed_natural_keys(job: Job, plans: list[_TablePlan]) -> list[str]:
    """A warning per table whose natural key no index of the target begins with: each row's lookup
    reads the whole table (10k rows: 37 s against 8 s indexed, and it grows as the square)."""
    warnings = []
    dialect, schema = job.target.dialect, job.target.schema
    with job.target.connect() as conn:
        for tp in plans:
            natural = set(tp.remap.natural_key)
            if not natural:
                continue
            leads = [
                dialect.primary_key(conn, tp.target, schema),
                *(columns for _, columns in dialect.unique_constraints(conn, tp.target, schema)),
                *(ix["column_names"] for ix in dialect.indexes(conn, tp.target, schema)),
            ]
            if not any(columns and columns[0] in natural for columns in leads):
                key = ", ".join(tp.remap.natural_key)
                warnings.append(
                    f"{tp.target}: no index of the target begins with its natural key ({key}): each row's "
                    f"lookup reads the whole table (CREATE INDEX ... ON {tp.target} ({key}))"
                )
    return warnings


def _check_wheres(job: Job) -> None:
    """Before any DDL: each table's ``where`` runs on the source (no row read), else one clear error
    (a bad condition had the target's tables made, then failed each table)."""
    for spec in job.selected():
        if not spec.where:
            continue
        table = sa.table(spec.name, schema=job.source.schema)
        query = sa.select(sa.literal(1)).select_from(table).where(where_clause(spec.where)).limit(0)
        try:
            with job.source.connect() as conn:
                conn.execute(query).all()
        except sa.exc.DBAPIError as exc:
            raise ConfigError(
                f"table '{spec.name}': its where ({spec.where}) cannot run on the source: {driver_message(exc)}"
            ) from exc


def _refuse_copy_onto_itself(job: Job) -> None:
    """A table copied onto itself (the same database, schema and table) is refused before anything is
    written: replace would empty it, append double it."""
    if not same_database(job.source, job.target):
        return
    fold = job.target.dialect.TABLE_NAMES_IGNORE_CASE
    for spec in job.selected():
        target = spec.target or spec.name
        if spec.name == target or (fold and spec.name.lower() == target.lower()):
            raise ConfigError(
                f"table '{spec.name}' is both the source and the target ({job.target.redacted()}): "
                "copy it into another table (-t SRC:DST), schema (--target-schema) or database"
            )


def _remap_identity(
    table: Table, spec: TableConfig, mode: Mode, remap_all: bool, columns: Sequence[str]
) -> str | None:
    """The (target) column whose values the target assigns anew, or None. ``--remap-ids`` for every
    table passes over a table without a single auto-increment primary key (copied as it is, its
    references to remapped tables rewritten); a table's own ``remap_ids`` needs one."""
    if not (remap_all or spec.remap_ids):
        return None
    ids = [c for c in table.columns if c.identity and c.name in columns]
    if len(table.primary_key) != 1 or not ids or ids[0].name != table.primary_key[0]:
        if not spec.remap_ids:
            return None
        raise DataError(f"table '{table.name}': remap_ids needs a single auto-increment primary key")
    if mode == "merge":
        raise DataError(f"table '{table.name}': remap_ids and merge do not go together")
    return spec.map.get(ids[0].name, ids[0].name)


def _check_remaps(job: Job, mode: Mode | None, remap_all: bool) -> set[str]:
    """The refusals of ``_remap_identity``, before any DDL; the source tables that get new IDs."""
    specs = {spec.name: spec for spec in job.selected()}
    remapped = set()
    for table in job.source_tables():
        spec = specs[table.name]
        table_mode = _table_mode(job, spec, mode)
        if _remap_identity(table, spec, table_mode, remap_all, [c.name for c in table.columns]):
            remapped.add(table.name)
    return remapped


def _mapped_elsewhere(
    job: Job, state: State, plans: list[_TablePlan], remap_all: bool
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Source name -> (target name, source key) of the tables this run does not copy whose rows an
    earlier run remapped (their IDs in ``_parity_id_map``), where this run remaps IDs: a child copied on
    its own has its references to their keys rewritten through their map."""
    if not (remap_all or any(tp.spec.remap_ids for tp in plans)):
        return {}
    copied = {tp.source.name for tp in plans}
    parents = {fk.ref_table for tp in plans for fk in tp.source.foreign_keys} - copied
    if not parents:
        return {}
    # the parent's target: as the job names it, as the child's FK in the target references it, or
    # its own name; the first of those with IDs in the map
    candidates = {name: [job.target_names.get(name, name)] for name in parents}
    dialect, schema = job.target.dialect, job.target.schema
    with job.target.connect() as conn:
        existing = set(dialect.table_names(conn, schema))
        for tp in plans:
            if tp.target not in existing:
                continue
            there = {
                tuple(fk["constrained_columns"]): fk["referred_table"]
                for fk in dialect.foreign_keys(conn, tp.target, schema)
            }
            for fk in tp.source.foreign_keys:
                referred = there.get(tuple(tp.spec.map.get(c, c) for c in fk.columns))
                if fk.ref_table in candidates and referred:
                    candidates[fk.ref_table].append(referred)
    for name, names in candidates.items():
        names.append(name)
    held = state.mapped_tables(sorted({n for names in candidates.values() for n in names}))
    found = {
        name: next(n for n in names if n in held) for name, names in candidates.items() if held & set(names)
    }
    from parity.schema.reflect import reflect

    try:  # (the parent's key, which a reference must name to be an ID: not a column of its own)
        keys = {t.name: t.primary_key for t in reflect(job.source, sorted(found))}
    except ParityError:
        keys = {}
    return {name: (target, keys.get(name, ())) for name, target in found.items()}


def _plan_remaps(
    plans: list[_TablePlan], remap_all: bool, mapped: dict[str, tuple[str, tuple[str, ...]]] | None = None
) -> None:
    """Fill each table's RemapSpec: its own identity (remap_ids), natural key, and remapped parents
    (in this run, or ``mapped``: remapped by an earlier one).

    Tables load in FK order, so a parent's new IDs are known before its children's rows come, except
    where the parent comes later or is the table itself (a cycle, a self-reference): such a reference
    is late (``RemapSpec.late``), written NULL until the parent row has its new ID and set at the end
    of the copy (``fix_late_references``); it must be nullable, and its table remapped too."""
    identities = {
        tp.target: _remap_identity(tp.source, tp.spec, tp.mode, remap_all, tp.columns) for tp in plans
    }
    by_source = {tp.source.name: tp for tp in plans}
    if any(identities.values()):
        plans[:] = _not_null_parents_first(plans, by_source, identities)
    loaded: set[str] = set()
    for tp in plans:
        references, late = {}, set()
        for fk in tp.source.foreign_keys:
            parent = by_source.get(fk.ref_table)
            earlier, key = (mapped or {}).get(fk.ref_table, (None, ()))
            if earlier is not None and len(fk.columns) == 1 and fk.columns[0] in tp.columns:
                if fk.references_key(key):
                    references[tp.spec.map.get(fk.columns[0], fk.columns[0])] = earlier
                continue
            if parent is None or not identities[parent.target]:
                continue
            if not fk.references_key(parent.source.primary_key):
                continue  # (a reference to another column of the parent, a unique code: copied as it is)
            column = fk.columns[0]
            if len(fk.columns) != 1 or column not in tp.columns:
                raise DataError(
                    f"table '{tp.source.name}': its foreign key to '{fk.ref_table}' cannot be rewritten "
                    "through new IDs (a composite key); copy it without remap_ids"
                )
            if parent.target not in loaded:
                if not identities[tp.target] or not tp.source.column(column).nullable:
                    raise DataError(
                        f"table '{tp.source.name}': its foreign key {column} to '{fk.ref_table}' waits for "
                        "new IDs of rows copied after its own (a cycle); that needs a nullable column in a "
                        "table with remap_ids too; copy it without remap_ids"
                    )
                late.add(tp.spec.map.get(column, column))
            references[tp.spec.map.get(column, column)] = parent.target
        natural = tuple(tp.spec.map.get(c, c) for c in tp.spec.natural_key or ())
        if late and natural:  # (the end would set references in rows that were there before the copy)
            raise DataError(
                f"table '{tp.source.name}': a natural key and foreign keys that wait for later rows "
                f"({', '.join(sorted(late))}) do not go together; copy it without natural_key"
            )
        tp.remap = RemapSpec(identities[tp.target], natural, references, frozenset(late))
        loaded.add(tp.target)


def _not_null_parents_first(
    plans: list[_TablePlan], by_source: dict[str, _TablePlan], identities: dict[str, str | None]
) -> list[_TablePlan]:
    """The tables in FK order, with the tables of a cycle ordered so that a NOT NULL reference to a
    table with new IDs points to a table loaded before (a nullable one can wait, see ``_plan_remaps``):
    each time, the first table in FK order whose such parents are all placed."""

    def needs(tp: _TablePlan) -> set[str]:
        return {
            fk.ref_table
            for fk in tp.source.foreign_keys
            if fk.ref_table != tp.source.name
            and fk.ref_table in by_source
            and identities[by_source[fk.ref_table].target]
            and not all(tp.source.column(c).nullable for c in fk.columns if c in tp.source.column_names)
        }

    required = {tp.source.name: needs(tp) for tp in plans}
    waiting, order = list(plans), []
    placed: set[str] = set()
    while waiting:  # (none ready: a NOT NULL cycle, refused by _plan_remaps)
        ready = next((tp for tp in waiting if required[tp.source.name] <= placed), waiting[0])
        waiting.remove(ready)
        placed.add(ready.source.name)
        order.append(ready)
    return order


def _check_merge_key(job: Job, source: str, target: str, key: list[str]) -> None:
    if not key:
        raise DataError(f"table '{source}' has no primary key: merge needs a key (-k COLUMN[,COLUMN])")
    from parity.schema.reflect import reflect

    table = reflect(job.target, [target])[0]
    unique = [
        table.primary_key,
        *(u.columns for u in table.uniques),
        *(i.columns for i in table.indexes if i.unique),
    ]
    if not any(set(u) == set(key) for u in unique if u):
        raise DataError(
            f"merge into '{target}' needs a primary key or unique constraint on ({', '.join(key)}) in the target"
        )


def _check_since(job: Job, mode: Mode | None) -> None:
    """Before any DDL: a table copied by a ``since`` column is merged (appended, its changed rows would be
    refused as keys the target holds; replaced, it would hold only them), and has that column."""
    specs = [spec for spec in job.selected() if spec.since]
    for spec in specs:
        if _table_mode(job, spec, mode) != "merge":
            raise ConfigError(
                f"table '{spec.name}': since {spec.since} copies the rows changed since the last run into"
                " the target's: it needs --mode merge"
            )
    if specs:
        from parity.schema.reflect import reflect

        for table, spec in zip(reflect(job.source, [s.name for s in specs]), specs, strict=True):
            kind = table.column(spec.since or "").type.kind  # (not found: an error naming the closest)
            if spec.lookback and kind not in _LOOKS_BACK:
                raise ConfigError(
                    f"table '{spec.name}': lookback goes back from a time or a number, and {spec.since}"
                    f" is {kind.value}"
                )
    for spec in job.selected():
        if spec.lookback is not None and not spec.since:
            raise ConfigError(
                f"table '{spec.name}': lookback goes back from a since column's watermark; give since"
            )


_LOOKS_BACK = frozenset(
    {Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, *INTEGER_KINDS, Kind.DECIMAL, Kind.FLOAT, Kind.DOUBLE}
)
"""Kinds of ``since`` columns a ``lookback`` goes back from."""


def _looked_back(last: Any, lookback: float | None) -> Any:
    """The watermark ``lookback`` earlier: seconds before a time (whole days before a date), or that
    much less of a number."""
    if not lookback or last is None:
        return last
    if isinstance(last, str):  # (SQLite's time as text: as much earlier, in the same spelling)
        try:
            when = (date if len(last) == 10 else datetime).fromisoformat(last)
        except ValueError:
            return last
        earlier = _looked_back(when, lookback)
        return (
            earlier.isoformat("T" if "T" in last else " ")
            if isinstance(earlier, datetime)
            else earlier.isoformat()
        )
    if isinstance(last, datetime):
        return last - timedelta(seconds=lookback)
    if isinstance(last, date):
        return last - timedelta(days=math.ceil(lookback / 86400))
    if isinstance(last, int):
        return last - math.ceil(lookback)
    if isinstance(last, Decimal):
        return last - Decimal(repr(lookback))
    return last


_WATERMARK_KINDS: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "int": int,
    "Decimal": Decimal,
    "str": str,
}
"""How a watermark kept as text is read back, by the Python type it was read as."""


def _watermark_task(job: Job, tp: _TablePlan) -> str:
    """The ``_parity_state`` task that keeps a table's watermark: one per source table, target and column."""
    signature = [job.source.redacted(), job.source.schema, tp.source.name, tp.target, tp.spec.since, tp.where]
    return "since:" + hashlib.sha1(json.dumps(signature, default=str).encode()).hexdigest()[:24]


def _watermarks(job: Job, state: State, plans: list[_TablePlan]) -> dict[str, tuple[str, str] | None]:
    """For each table copied by a ``since`` column: its watermark from the last run that copied it whole
    (the rows from it on are copied; none kept: every row), and the column's greatest value now, kept
    as the next watermark once this run has copied the table (a row changed while it runs is at or
    past it: copied again next time, which merge makes harmless)."""
    marks: dict[str, tuple[str, str] | None] = {}
    for tp in plans:
        column = tp.spec.since
        if not column:
            continue
        with job.target.connect() as conn:
            kept = state.task(conn, _watermark_task(job, tp))
        last = None
        if kept and kept.get("type") in _WATERMARK_KINDS:
            last = _WATERMARK_KINDS[kept["type"]](kept["value"])
        table = _source_table(job, tp)
        filters = [where_clause(tp.where)] if tp.where else []
        tp.since_value = functools.partial(
            job.source.dialect.since_value, kind=tp.source.column(column).type.kind
        )
        with job.source.connect() as conn:
            greatest = conn.execute(
                aggregate_row(table, [sa.func.max(tp.since_value(table.c[column]))], filters)
            ).scalar()
        try:
            tp.since = (column, _looked_back(last, tp.spec.lookback))
        except OverflowError:  # (1000000d before a time of this millennium)
            raise ConfigError(
                f"table '{tp.source.name}': lookback {tp.spec.lookback:g} s goes back before the first day"
                f" {column} can hold"
            ) from None
        marks[tp.target] = None if greatest is None else (type(greatest).__name__, _mark_text(greatest))
    return marks


def _mark_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return value.isoformat() if isinstance(value, date) else str(value)


def _save_watermarks(
    job: Job,
    state: State,
    plans: list[_TablePlan],
    marks: dict[str, tuple[str, str] | None],
    result: CopyResult,
) -> list[str]:
    """Keep the next watermark of each table copied by a ``since`` column that this run copied whole,
    no row rejected (past a rejected row, the next run would not read it again); the notes that say
    which rows each run chose."""
    done = {t.target for t in result.tables if t.status == "ok" and not t.rejected}
    refused = {t.target for t in result.tables if t.rejected}
    notes = []
    for tp in plans:
        if tp.since is None:
            continue
        column, last = tp.since
        chosen = "every row" if last is None else f"the rows whose {column} is {_mark_text(last)} or later"
        mark = marks.get(tp.target)
        if tp.target in done and mark is not None and mark[0] in _WATERMARK_KINDS:
            with job.target.begin() as conn:
                state.start_task(conn, _watermark_task(job, tp), {"type": mark[0], "value": mark[1]})
            chosen += f"; the next run copies those from {mark[1]} on"
        elif tp.target in refused:  # (past them, the next run would not read them again)
            chosen += "; rows were rejected, so the next run copies the same rows again"
        notes.append(f"{tp.target}: {chosen}")
    return notes


def _task_id(job: Job, tp: _TablePlan) -> str:
    signature = [
        job.source.redacted(),
        job.source.schema,
        tp.source.name,
        job.target.schema,
        tp.target,
        tp.mode,
        tp.where,
        tp.limit,
        tp.columns,
        tp.target_columns,
        *([tp.since[0], str(tp.since[1])] if tp.since is not None else []),
    ]
    return "copy:" + hashlib.sha1(json.dumps(signature, default=str).encode()).hexdigest()[:24]


def _source_table(job: Job, tp: _TablePlan) -> Any:
    """The source table as copy reads it, ``--where`` included (``Dialect.readable``)."""
    return job.source.dialect.readable(tp.source, job.source.schema)


def _filtered(tp: _TablePlan, table: Any, stmt: Any) -> Any:
    conditions = _conditions(tp, table)
    return stmt.where(*conditions) if conditions else stmt


def _conditions(tp: _TablePlan, table: Any) -> list[Any]:
    """The rows to copy: ``--where``, and, with ``since``, those changed since the watermark (bound;
    the rows at it again, which merge writes as they are)."""
    conditions: list[Any] = [where_clause(tp.where)] if tp.where else []
    if tp.since is not None and tp.since[1] is not None:  # (a row with no time in it: every run)
        column = table.c[tp.since[0]]
        conditions.append(sa.or_(tp.since_value(column) >= tp.since[1], column.is_(None)))
    return conditions


def _plan_chunks(job: Job, tp: _TablePlan, lanes: int = 1) -> tuple[list[Chunk], int]:
    """Key-range chunks of about CHUNK_BATCHES batches each, as many as a multiple of ``lanes`` (the
    chunks copied at once, ``_lanes``), and the number of rows to copy."""
    table = _source_table(job, tp)
    with job.source.connect() as conn:
        if tp.chunk_key is None or tp.limit is not None or tp.self_reference is not None or tp.atomic:
            total = conn.execute(
                _filtered(tp, table, sa.select(sa.func.count()).select_from(table))
            ).scalar_one()
            total = min(total, tp.limit) if tp.limit is not None else total
            return [Chunk("all")], int(total)
        key: sa.ColumnClause[Any] = sa.column(tp.chunk_key)
        dialect, schema = job.source.dialect, job.source.schema
        filters = _conditions(tp, table)
        estimate = None if filters else dialect.estimated_rows(conn, tp.source.name, schema)
        low, high = sa.func.min(key), sa.func.max(key)
        if estimate is not None and estimate >= ESTIMATED_FROM:
            lo, hi = conn.execute(aggregate_row(table, [low, high], filters)).one()
            total = estimate
        else:
            lo, hi, total = conn.execute(aggregate_row(table, [low, high, sa.func.count()], filters)).one()
    if total == 0 or lo is None:
        return [Chunk("all")], int(total)
    lo, hi = _whole(lo), _whole(hi)
    if lo is None or hi is None:  # (SQLite's integer key may hold text, 'abc' its max(), or -0.5)
        return [Chunk("all")], int(total)
    pieces = max(1, math.ceil(total / (tp.batch_size * CHUNK_BATCHES)))
    # (5 chunks on 2 lanes: the last one alone, a core idle for a fifth of the table; 6 share them)
    pieces = math.ceil(pieces / lanes) * lanes if pieces > 1 else 1
    width = max(1, math.ceil((int(hi) - int(lo) + 1) / pieces))
    bounds = list(range(int(lo), int(hi) + 1, width))
    chunks = [Chunk(f"{b}:{b + width}", b, b + width) for b in bounds[:-1]]
    # (SQLite's key may hold NULL: those rows are a chunk of their own, an index finds them)
    nulls = [Chunk("null", nulls=True)] if tp.source.column(tp.chunk_key).nullable else []
    return [*chunks, Chunk(f"{bounds[-1]}:", bounds[-1]), *nulls], int(total)


def _whole(value: Any) -> int | None:
    """A key's least or greatest value as an int, where it is a whole number; else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, (Decimal, float)) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


_Start = tuple[list["Chunk"], dict[str, int], int] | ParityError


def _finished_at(job: Job, state: State, plans: list[_TablePlan]) -> str | None:
    """When the last run of this copy ended with every table copied (UTC), where one did."""
    with job.target.connect() as conn:
        info = state.task(conn, _run_task(job, plans)) or {}
    return info.get("finished") if info.get("status") == "done" else None


def _appending_again(
    job: Job, plans: list[_TablePlan], starts: dict[str, _Start], finished: str | None = None
) -> list[str]:
    """Warnings for target tables appended to that have no key (nothing refuses a row copied before)
    and hold rows already, none of them from this run's own committed chunks; ``finished``: when the
    same copy last ended (a run killed after it recorded so, and made again, appends again)."""
    from parity.schema.apply import existing_targets

    holding = []
    with job.target.connect() as conn:
        for tp in plans:
            start = starts.get(tp.target)
            if tp.mode != "append" or tp.remap.active or not isinstance(start, tuple) or start[1]:
                continue
            table = sa.table(tp.target, schema=job.target.schema)
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
                holding.append(tp.target)
    if not holding:
        return []
    tables = existing_targets(job, holding)
    return [
        f"{name} has no key and holds rows already: appended rows that were copied before are there"
        " again (--mode replace empties it first; merge needs a key, -k)"
        + (f"; this copy last ended with every table copied at {finished} UTC" if finished else "")
        for name in holding
        if not tables[name].key()
    ]


def _start_all(
    job: Job, state: State, plans: list[_TablePlan], created: set[str], lanes: int = 1
) -> dict[str, _Start]:
    """Resume running tasks; start the others in one transaction that also empties replace tables.

    Emptying every replace table in one statement or transaction lets tables that reference each
    other (cycles, self-references) be emptied together; a table outside the copy that references one
    of them makes the emptying fail with a clear error instead of leaving orphans.
    """
    starts: dict[str, _Start] = {}
    fresh: list[tuple[_TablePlan, str, list[Chunk], int]] = []
    run = _run_task(job, plans)
    with job.target.begin() as conn:
        ran = state.task(conn, run)
        resuming = ran is not None and ran.get("status") == "running"
        if not resuming:
            tasks = sorted(_task_id(job, tp) for tp in plans)
            state.start_task(
                conn, run, {"status": "running", "tables": [tp.target for tp in plans], "tasks": tasks}
            )
        for tp in plans:
            task = _task_id(job, tp)
            info = state.task(conn, task)
            status = info.get("status") if info else None
            if status == "done" and (not resuming or tp.target in created):
                # (a table done by a run that ended, or made anew since: this run copies it; forgotten
                # now, with the run's start, so that a run stopped before it starts it cannot skip it)
                conn.execute(sa.delete(state.state).where(state.state.c.task == task))
                status = None
            if (
                info
                and status == "running"
                and info.get("remap", _remap_signature(tp)) != _remap_signature(tp)
            ):
                # (resumed otherwise, its rows would be part new IDs, part the source's)
                starts[tp.target] = ParityError(
                    "a stopped run was copying it with other IDs (--remap-ids, remap_ids, natural_key:"
                    f" {info['remap'] or 'none'}); run that again, or --mode replace to start anew"
                )
            elif info and status == "running" and tp.mode == "replace" and _emptied_apart(tp, info):
                # (a stopped atomic replace emptied nothing, its transaction rolled back: the table is
                # emptied as the copy starts; a stopped replace that emptied it as it started is
                # copied anew in one transaction, not resumed a chunk at a time, each emptying it)
                fresh.append((tp, task, [], 0))
            elif info and status == "running":
                chunks = [Chunk(**c) for c in info["chunks"]]
                starts[tp.target] = (chunks, state.done_chunks(conn, task), int(info["total"]))
            elif status == "done" and resuming:  # (done by the run this one finishes: not again)
                done = state.done_chunks(conn, task)
                starts[tp.target] = ([], done, sum(done.values()))
            else:
                fresh.append((tp, task, [], 0))
    planned = []
    for tp, task, _, _ in fresh:
        try:
            chunks, total = _plan_chunks(job, tp, lanes)
        except sa.exc.DBAPIError as exc:  # (a --where the source cannot run): this table fails alone
            starts[tp.target] = ParityError(f"reading the source failed: {driver_message(exc)}")
            continue
        planned.append((tp, task, chunks, total))
    fresh = planned
    if not fresh:
        return starts
    replace = [tp.target for tp, *_ in fresh if tp.mode == "replace" and not tp.emptied_within]
    try:
        with job.target.begin() as conn:
            if replace:
                self_refs = {
                    tp.target: (
                        tp.target_columns[tp.self_reference[0]],
                        tp.target_columns[tp.self_reference[1]],
                    )
                    for tp, *_ in fresh
                    if tp.mode == "replace" and tp.self_reference is not None
                }
                _empty(job, conn, replace, self_refs)
                state.forget_rows(conn, replace)
            for tp, task, chunks, total in fresh:
                state.start_task(
                    conn,
                    task,
                    {
                        "status": "running",
                        "chunks": [asdict(c) for c in chunks],
                        "total": total,
                        "remap": _remap_signature(tp),
                        "emptied_within": tp.emptied_within,
                    },
                )
                starts[tp.target] = (chunks, {}, total)
    except sa.exc.DBAPIError as exc:
        error = ParityError(f"emptying {', '.join(replace)} failed: {driver_message(exc)}")
        starts.update({tp.target: error for tp, *_ in fresh})
    return starts


def _emptied_apart(tp: _TablePlan, info: dict[str, Any]) -> bool:
    """Whether a stopped run's replace of the table emptied it otherwise than this run does: in its
    one transaction (``emptied_within``), or as the copy started. Either way it is not resumed."""
    return tp.emptied_within or bool(info.get("emptied_within"))


def _parents(tp: _TablePlan) -> set[str]:
    """The source tables this one references, itself aside."""
    return {fk.ref_table for fk in tp.source.foreign_keys} - {tp.source.name}


def _remap_signature(tp: _TablePlan) -> str:
    """How the table's IDs are written (its own assigned by the target, rows matched by a natural key,
    references rewritten), as a stopped run's rerun must write them too."""
    remap = tp.remap
    parts = [
        f"ids: {remap.identity}" if remap.identity else "",
        f"natural_key: {', '.join(remap.natural_key)}" if remap.natural_key else "",
        f"references: {', '.join(sorted(remap.references))}" if remap.references else "",
    ]
    return "; ".join(p for p in parts if p)


def _run_task(job: Job, plans: list[_TablePlan]) -> str:
    """The task of a whole run of these tables: "running" until a run of them ends with every table
    copied, so that a run stopped (killed, or a table failed) and made again copies only what that
    one did not finish, not a table it finished (appended twice, or emptied and loaded again)."""
    tasks = sorted(_task_id(job, tp) for tp in plans)
    return "run:" + hashlib.sha1(json.dumps(tasks).encode()).hexdigest()[:24]


def _finish_run(job: Job, state: State, plans: list[_TablePlan]) -> None:
    """The run is done; so are the stopped runs that copied any of its tables the same way (the same
    table tasks): made again, such a run would skip what this one copied since, however old (the
    audit: a nightly run stopped, its last table copied alone, and the next night's run skipped every
    table). A run of the same target tables from elsewhere (another source) is left to be resumed."""
    ours = {_task_id(job, tp) for tp in plans}
    job.target.dialect.settle(job.target)  # (what closing would do after the run is done, before)
    with job.target.begin() as conn:
        finished = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        state.finish_task(conn, _run_task(job, plans), {"status": "done", "finished": finished})
        for other, stopped in state.tasks_like(conn, "run:").items():
            if stopped.get("status") == "running" and ours & set(stopped.get("tasks") or ()):
                state.forget_task(conn, other)


def _empty(job: Job, conn: Connection, tables: list[str], self_refs: dict[str, tuple[str, str]]) -> None:
    """Empty the tables (children first); the only delete parity does unasked-for is none: replace asks.
    ``self_refs``: per table that references itself, the FK's column and the column it references."""
    target, dialect = job.target, job.target.dialect
    qualified = [target.qualified(t) for t in tables]
    if dialect.TRUNCATE_TOGETHER:
        execute_raw(conn, f"TRUNCATE {', '.join(qualified)}")
        return
    outside = dialect.referencing_tables(conn, tables, target.schema)
    outside |= dialect.referencing_elsewhere(conn, tables, target.schema)
    if outside:
        raise ParityError(
            f"cannot empty {', '.join(tables)}: {', '.join(sorted(outside))} (not copied) references them"
        )
    if not dialect.FK_SEES_OWN_DELETES:  # (a run stopped between two goes on emptying when run again)
        for name, table in zip(reversed(tables), reversed(qualified), strict=True):
            if name in self_refs:
                _empty_in_generations(job, name, *self_refs[name])
            with target.begin() as own:
                execute_raw(own, f"DELETE FROM {table}")
        return
    with switched(conn, dialect.FK_CHECKS) if dialect.FK_CHECKS else nullcontext():
        for table in reversed(qualified):
            execute_raw(conn, f"DELETE FROM {table}")


def _empty_in_generations(job: Job, name: str, ref: str, key: str) -> None:
    """Delete the rows of a table referencing itself that no row references, one transaction a go,
    until none is left to delete: where FKs see no deletes of their own statement or transaction
    (DuckDB), a row and the row it references cannot go together."""
    refs: sa.ColumnClause[Any] = sa.column(ref)
    keys: sa.ColumnClause[Any] = sa.column(key)
    table = sa.table(name, refs, keys, schema=job.target.schema)
    inner = sa.table(name, sa.column(ref), schema=job.target.schema).alias("referencing")
    leaves = sa.delete(table).where(
        keys.not_in(sa.select(inner.c[ref]).where(inner.c[ref].is_not(None)).scalar_subquery())
    )
    while True:
        with job.target.begin() as conn:
            if not conn.execute(leaves).rowcount:
                return


class _Lanes:
    """The chunks copied at once, over every table copied at once: a chunk takes a lane for its copy,
    and none starts once the copy is halted (Ctrl-C, an error of parity's own)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.free = threading.BoundedSemaphore(count)
        self.halted = threading.Event()
        self.tables = 0
        """The tables being copied now."""
        self.lock = threading.Lock()

    def check(self, failed: threading.Event) -> None:
        """Raise where the copy was halted, or the chunk's table failed (its chunks not taken stay so)."""
        if self.halted.is_set():
            raise ParityError("not copied: the copy was stopped")
        if failed.is_set():
            raise ParityError("not copied: another chunk of the table failed")

    def run(
        self, work: Callable[[Chunk], tuple[int, int, int, int]], chunk: Chunk, failed: threading.Event
    ) -> tuple[int, int, int, int]:
        while not self.free.acquire(timeout=0.1):
            self.check(failed)
        try:
            self.check(failed)
            return work(chunk)
        finally:
            self.free.release()

    @contextmanager
    def table(self) -> Iterator[None]:
        with self.lock:
            self.tables += 1
        try:
            yield
        finally:
            with self.lock:
                self.tables -= 1


def _copy_tables(
    job: Job,
    state: State,
    plans: list[_TablePlan],
    starts: dict[str, _Start],
    workers: int,
    lanes: _Lanes,
    progress: Progress | None,
    rejects: _Rejects,
    maps: IdMaps,
) -> list[TableResult]:
    """Copy the tables, as many at once as there are lanes, each as soon as the tables before it in
    the plan that it references are copied: their rows are there for its FKs, their new IDs for its
    references, and one that failed fails it unread (its rows would be refused for want of their
    parents, and recorded as done). One lane: one table after the other, in the plan's order."""
    needs: list[set[int]] = []
    for i, tp in enumerate(plans):
        parents = _parents(tp)
        needs.append({j for j in range(i) if plans[j].source.name in parents})
    results: dict[int, TableResult] = {}
    waiting = list(range(len(plans)))

    def copy_one(tp: _TablePlan, start: _Start) -> TableResult:
        with lanes.table():
            return _copy_table(job, state, tp, start, workers, progress, rejects, maps, lanes)

    with ThreadPoolExecutor(max_workers=lanes.count, thread_name_prefix="parity-table") as pool:
        running: dict[Future[TableResult], int] = {}
        try:
            while waiting or running:
                for i in [i for i in waiting if needs[i] <= results.keys()][: lanes.count - len(running)]:
                    waiting.remove(i)
                    tp, start = plans[i], starts[plans[i].target]
                    parent = next(
                        (results[j].target for j in sorted(needs[i]) if results[j].status != "ok"), None
                    )
                    if parent is not None and not isinstance(start, ParityError) and start[0]:
                        start = ParityError(f"not copied: it references '{parent}', which failed in this run")
                    copying = pool.submit(copy_one, tp, start)
                    running[copying] = i
                for copied in wait(running, return_when=FIRST_COMPLETED).done:
                    results[running.pop(copied)] = copied.result()
        except BaseException:
            lanes.halted.set()  # (the tables being copied end with the chunks being copied)
            for future in running:
                future.cancel()
            raise
    return [results[i] for i in range(len(plans))]


def _copy_table(
    job: Job,
    state: State,
    tp: _TablePlan,
    start: _Start,
    workers: int,
    progress: Progress | None,
    rejects: _Rejects,
    maps: IdMaps,
    lanes: _Lanes,
) -> TableResult:
    started = time.perf_counter()
    result = TableResult(tp.source.name, tp.target)
    task = _task_id(job, tp)
    try:
        if isinstance(start, ParityError):
            raise start
        chunks, done, total = start
        result.resumed_chunks = len(done)
        already = sum(done.values())
        counter = _Counter(tp.target, total, already, progress)
        todo = [c for c in chunks if c.name not in done]
        runner = _ChunkRunner(job, state, task, tp, counter, rejects, maps)
        runner.in_process = runner.in_process and total - already >= textread.ROWS_FROM
        workers = _lanes(job, workers, runner.in_process)
        runner.upcoming = list(todo)
        runner.lanes = lanes
        runner.table_workers = max(1, min(workers, len(todo) or 1))
        failed = threading.Event()
        with (
            closing(runner),  # (after the pool's threads: none can start a reader after it)
            ThreadPoolExecutor(max_workers=runner.table_workers, thread_name_prefix="parity-copy") as pool,
        ):
            futures = [pool.submit(lanes.run, runner.run, chunk, failed) for chunk in todo]
            failure: BaseException | None = None
            for future in futures:  # (every chunk's counts, the committed ones of a failed table too)
                try:
                    read, written, rejected, skipped = future.result()
                except BaseException as exc:
                    if failure is None:
                        failure = exc
                        failed.set()  # (the chunks waiting for a lane do not start)
                        for waiting in futures:  # the chunks no worker has taken stay undone
                            waiting.cancel()
                    continue
                result.skipped += skipped
                result.rows_read += read
                result.rows_written += written
                result.rejected += rejected
            if failure is not None:
                raise failure
        result.skipped += already
        counter.close()
        if lanes.halted.is_set():  # (Ctrl-C: no keys built after the rows, the table resumed later)
            raise ParityError("not finished: the copy was stopped")
        _finish(job, state, task, tp)
    except ParityError as exc:
        result.status, result.error = "failed", str(exc)
    except sa.exc.DBAPIError as exc:
        result.status, result.error = "failed", driver_message(exc)
    result.seconds = round(time.perf_counter() - started, 3)
    logger.warning("copy %s -> %s: %s", tp.source.name, tp.target, result)
    return result


def _finish(job: Job, state: State, task: str, tp: _TablePlan) -> None:
    with job.target.begin() as conn:
        dialect = job.target.dialect
        if _run_deferred(
            conn,
            state,
            "keys",
            tp.target,
            f"building the keys of '{tp.target}' after its rows",
            functools.partial(_unless_there, conn, dialect),
        ):
            logger.info("%s: primary key, unique constraints and indexes built after the rows", tp.target)
        state.finish_task(conn, task, {"status": "done", "table": tp.target})
        job.target.dialect.advance_sequences(conn, job.target, tp.target, tp.target_columns)


class _Counter:
    def __init__(self, table: str, total: int, done: int, progress: Progress | None) -> None:
        self.table, self.total, self.done, self.progress = table, total, done, progress
        self.lock = threading.Lock()
        if progress:
            progress(table, done, total)

    def add(self, rows: int) -> None:
        with self.lock:
            self.done += rows
            done = self.done
            self.total = max(self.total, done)  # (an estimate may fall short)
        if self.progress:
            self.progress(self.table, done, self.total)

    def close(self) -> None:
        """The table is copied: its total is the rows there were (where it was an estimate)."""
        if self.progress and self.total != self.done:
            self.total = self.done
            self.progress(self.table, self.done, self.total)


class _Rejects:
    """Rows the target refused, one JSON object a line, with the reason and the run (its id and start:
    the file is appended to, run after run); past ``limit`` rows of one table, that table fails
    (``--max-rejects``)."""

    def __init__(self, path: str | None, limit: int | None = None) -> None:
        self.path, self.limit = path, limit
        self.run = {
            "run_id": uuid.uuid4().hex,
            "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.file: Any = None
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.taken: dict[str, int] = {}
        """Per table, the refused rows whose key the target holds already (``_TAKEN_KEY``)."""

    def hold(self, table: str, columns: Sequence[str], kinds: Sequence[Kind] = ()) -> _Held:
        """Where one attempt at a chunk of ``table`` puts the rows the target refuses."""
        return _Held(self, table, columns, kinds)

    def check(self, table: str, more: int, reason: str, count: bool = False) -> None:
        """Fail the table if ``more`` refused rows would take it past the limit; ``count``: else count
        them (in the same hold of the lock, so that chunks committing at once cannot both pass)."""
        with self.lock:
            total = self.counts.get(table, 0) + more
            if self.limit is not None and total > self.limit:
                raise DataError(
                    f"more than {self.limit} rows refused by the target (--max-rejects), the last: {reason}; "
                    "the chunk being loaded was rolled back"
                )
            if count:
                self.counts[table] = total

    def write(
        self,
        table: str,
        columns: Sequence[str],
        refused: Sequence[tuple[Sequence[Any], str]],
        kinds: Sequence[Kind] = (),
    ) -> None:
        """Count and record the rows a chunk that commits refused (an integer read as text, where rows
        travel as text, recorded as the number)."""
        if not refused:
            return
        self.check(table, len(refused), refused[-1][1], count=True)
        with self.lock:
            taken = sum(1 for _, reason in refused if _TAKEN_KEY.search(reason))
            self.taken[table] = self.taken.get(table, 0) + taken
            if not self.path:
                return
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            integers = [i for i, kind in enumerate(kinds) if kind in INTEGER_KINDS]
            for row, reason in refused:
                values = [x.value if type(x) is _Unreadable else x for x in row]
                for i in integers:
                    if type(values[i]) is str and _INTEGER_TEXT.fullmatch(values[i]):
                        values[i] = int(values[i])
                # (JSON has no NaN or infinity: such a float as its text, as Decimal's are)
                row_values = {
                    c: str(v) if isinstance(v, float) and not math.isfinite(v) else v
                    for c, v in zip(columns, values, strict=True)
                }
                record = {**self.run, "table": table, "reason": reason, "row": row_values}
                self.file.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")

_TAKEN_KEY = re.compile(
    r"duplicate key|Duplicate entry|UNIQUE constraint failed|unique constraint|Duplicate key"
    r"|Violation of (PRIMARY KEY|UNIQUE KEY) constraint",
    re.IGNORECASE,
)
"""A refusal for a key the target holds already, as each database words it."""


def _taken_keys(plans: list[_TablePlan], rejects: _Rejects, created: Container[str]) -> list[str]:
    """A hint for tables appended to whose rows the target refused as keys it holds already (a copy
    run again: every row a reject); in a table this run created, the source's own rows share a key as
    the target compares it."""
    hints = []
    for tp in plans:
        taken = rejects.taken.get(tp.target)
        if not taken or tp.remap.active:
            continue
        if tp.target in created:
            hints.append(
                f"{tp.target}: {taken:,} rows refused as keys of rows copied before them: the target"
                " takes two of the source's keys for one (a collation that ignores case or trailing"
                " spaces?); the rejects file names them"
            )
        elif tp.mode == "append":
            hints.append(
                f"{tp.target}: {taken:,} rows refused as keys the target holds already (append adds rows):"
                " --mode merge updates them, --mode replace copies the table anew"
            )
    return hints


class _Held:
    """The rows the target refused in one attempt at a chunk, recorded (``flush``) only as the chunk
    commits: an attempt rolled back, and made again, refuses them again."""

    def __init__(
        self, rejects: _Rejects, table: str, columns: Sequence[str], kinds: Sequence[Kind] = ()
    ) -> None:
        self.rejects, self.table, self.columns, self.kinds = rejects, table, columns, kinds
        self.rows: list[tuple[Sequence[Any], str]] = []
        self.flushed = False
        self.failed = 0
        """Writes refused under savepoints in this attempt's transaction (``count_failed_savepoint``)."""

    def add(self, row: Sequence[Any], reason: str) -> None:
        self.rows.append((row, reason))
        self.rejects.check(self.table, len(self.rows), reason)

    def flush(self) -> None:
        self.rejects.write(self.table, self.columns, self.rows, self.kinds)
        self.flushed = True


_DONE = object()


class _TryApart(Exception):
    """The target refused a batch and has no savepoint to find the refused rows under: the chunk is
    written again, each batch tried first on another connection (``_ChunkRunner._write_tried``)."""


class _MergeApart(Exception):
    """The target refused the upsert of a chunk's staged rows: the chunk is written again, each batch
    upserted on its own (``_Merging``), so that the refused rows can be isolated like any other's."""


class _CannotLoad(Exception):
    """A source value its driver cannot make (PostgreSQL's infinity, a year past 9999, a time of
    24:00): the chunk is read again with the driver giving such values as their text."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _ChunkRunner:
    """Copies one chunk: a reader thread streams batches into a bounded queue; this thread writes."""

    def __init__(
        self,
        job: Job,
        state: State,
        task: str,
        tp: _TablePlan,
        counter: _Counter,
        rejects: _Rejects,
        maps: IdMaps,
    ) -> None:
        self.job, self.state, self.task, self.tp = job, state, task, tp
        self.counter, self.rejects, self.maps = counter, rejects, maps
        source_dialect = job.source.dialect
        native = source_dialect.NATIVE_KINDS - {Kind.JSON}  # (JSON is read as its text: see _select)
        target_dialect = job.target.dialect
        self.decoders = [
            None
            if t.kind in native
            else Kind.SMALLINT
            if _held_as_integer(t.kind, target_dialect)
            else t.kind
            for t in tp.types
        ]  # (a boolean into MySQL's TINYINT(1) or SQLite: a whole number, 2 kept as 2)
        self.checked_types = (
            [(i, _HELD_TYPES[t.kind]) for i, t in enumerate(tp.types) if t.kind in _HELD_TYPES and t.kind in native]
            if source_dialect.ANY_VALUE_ANYWHERE and not target_dialect.ANY_VALUE_ANYWHERE
            else []
        )  # fmt: skip
        """Columns a native kind is read for where the source may hold a value of any type (SQLite's 2.7
        in an INTEGER column), with the Python types their values must be: a batch holding another is
        decoded (``_decode``), and such values are refused (``_Unreadable``)."""
        self.nan_checked = (
            []
            if job.target.dialect.HOLDS_NAN
            else [i for i, t in enumerate(tp.types) if t.kind in (Kind.FLOAT, Kind.DOUBLE)]
        )
        """The float columns checked for NaN and infinities, where the target holds none."""
        self.lenient = False
        """Whether a chunk of the table was read with the source's lenient loaders (values its driver
        cannot make, as their text): then dates and times are decoded too, those that stay text
        refused (``_Unreadable``, ``_Guard``)."""
        times = (
            ()
            if job.target.dialect.READS_TIME_TEXT
            else (Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
        )
        lenient = (*times, *source_dialect.LENIENT_KINDS)  # (read as text or bytes when lenient)
        self.lenient_decoders = [
            t.kind if t.kind in lenient else d for d, t in zip(self.decoders, tp.types, strict=True)
        ]
        self.target_dialect = job.target.dialect
        self.unreadable: frozenset[int] = frozenset()
        """Columns where a source value was found that its kind cannot take (``_Unreadable``); replaced,
        never changed in place, as reader threads add to it while writer threads read it."""
        self.scales = [
            tp.fractions.get(c, self._kept_scale(t)) for c, t in zip(tp.target_columns, tp.types, strict=True)
        ]
        """Per column, the decimals the target keeps of a decimal the source may hold more of (SQLite,
        or an unbounded decimal) and the target would round, or the digits of a second of a time
        (``_TablePlan.fractions``): such a row is refused (``_Guard``)."""
        self.jsonb = source_dialect.JSON_HASHED_AS_JSONB and not self.target_dialect.JSON_HASHED_AS_JSONB
        """JSON is written in jsonb's text (``values.jsonb_text``): diff hashes the source's so, and the
        target's as it holds it."""
        self.fixed: set[str] | None = None
        """The target's columns merge may not update (``Dialect.fixed_columns``), once asked."""
        self.trying = False
        """Whether batches are tried on another connection first (``_write_tried``): set for the rest of
        the table once the target refused one where it has no savepoints."""
        self.apart = False
        """Whether the table's chunks are written one at a time (``_turn``): set once the target rolled
        one back for meeting another, a deadlock (InnoDB's gap locks on a unique index whose keys the
        chunks' key ranges interleave deadlocked a table of 250,000 rows' chunks, one retried chunk
        three times over). The chunk made again, and every chunk after, waits until no other is
        written."""
        self.turns = threading.Condition()
        self.writing = 0
        """The table's chunks being written now."""
        self.merge_each = False
        """Whether each batch is upserted on its own (``_Merging``), not the chunk's staged rows at once:
        set for the rest of the table once the target refused a chunk's upsert."""
        self.changed_only: set[str] | None = None
        """Those it updates apart, where they differ (``Dialect.changed_only_columns``), once asked."""
        self.table_workers = 1
        """The table's chunks written at once."""
        self.attempt = threading.local()
        """This thread's attempt at a chunk: its ``_Held`` rows (``held``), once the writer has them."""
        self.target_key: str | None = None
        """The target's single-column primary key among the written columns ("" where none), read
        when a batch is first refused (``_already_there``)."""
        self.writer_class = bulk.WRITERS[job.target.writer]
        prepares = self.writer_class.PREPARES and not tp.remap.active
        self.prepare = self.writer_class.prepare if prepares else None
        source = job.source
        self.mysqlclient = mysqlclient_serves(source)
        """MySQL/MariaDB is read through the C driver (else PyMySQL's streaming cursor)."""
        text_kinds = self.writer_class.TEXT_FROM.get(source.backend, frozenset())
        self.as_text = (
            (self.mysqlclient or source.engine.dialect.driver in ("psycopg", "pysqlite"))
            and not tp.remap.active
            and all(t.kind in text_kinds for t in tp.types)
            and (source.backend == "sqlite" or not tp.fractions)  # (SQLite's text is checked: sqlite_text)
            and tp.self_reference is None  # (written in generations: rows as values)
        )
        """Rows travel as the source's text, never as Python values (see ``bulk.TextBatch``)."""
        self.kinds = [t.kind for t in tp.types]
        self.in_process = self.as_text and _reads_in_processes(job)
        """Chunks are read in reader processes (``textread``) where the reader's Python work is heavy."""
        self.arrow = (
            textread.ARROW and bool(self.kinds) and all(k in textread.ARROW_KINDS for k in self.kinds)
        )
        """SQLite's rows may be read through Arrow in the reader processes (``arrowtext``): cleared for
        the rest of the table once a chunk's could not."""
        self.arrow_load = (
            textread.ARROW
            and self.in_process
            and job.target.writer == "sqlite"
            and _sqlite_file(job.target)
            and job.target.schema in (None, "main")
            and tp.mode != "merge"
            and not tp.emptied_within  # (its emptying and rows must be one transaction: this one's)
            and bool(self.kinds)
            and all(k in textread.ARROW_LOAD_KINDS for k in self.kinds)
        )
        """Into an SQLite file: each chunk's reader process parses its text with Arrow and loads it through
        ADBC itself (``textread.LoadSpec``, ``_write_loaded``), no Python value made: cleared for the
        rest of the table once a chunk's could not be (a reader started ahead aside)."""
        self.lanes: _Lanes | None = None
        """The copy's lanes, shared with the other tables copied at once."""

        self.upcoming: list[Chunk] = []
        """The chunks to copy, in the order the workers take them."""
        self.readers: dict[str, textread.ProcessReader | None] = {}
        """Per chunk, its reader process started ahead (None: started, and taken)."""
        self.readers_lock = threading.Lock()
        self.closed = False
        self.charsets: dict[str, str | None] = {}
        if self.as_text and self.mysqlclient:
            with source.connect() as conn:
                self.charsets = source.dialect.column_charsets(conn, tp.source.name, source.schema)

    @property
    def workers(self) -> int:
        """The chunks written at once (``count_failed_savepoint``): the table's, or every lane's while
        other tables are copied too (their transactions draw on the same lock table)."""
        lanes = self.lanes
        return max(self.table_workers, lanes.count if lanes is not None and lanes.tables > 1 else 1)

    def _batch(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The batch for the queue, with the writer's work done ahead here on the reader's thread (so
        that it overlaps the target's load of the previous batch) where the writer has such work."""
        if self.prepare is None:
            return rows
        try:
            prepared = self.prepare(rows, self.tp.types)
        except Exception:  # the writer meets it again, where a refused batch is isolated
            prepared = None
        return bulk.Batch(rows, prepared, self.writer_class)

    def run(self, chunk: Chunk) -> tuple[int, int, int, int]:
        as_text, lenient, retries = self.as_text and not self._may_hold_numbered_nulls(chunk), False, 0
        while True:  # an attempt rolled back is made again, as the failure asks
            counted: list[int] = []
            self.attempt.held = None
            try:
                with self._turn():
                    return self._run(chunk, as_text, counted, lenient)
            except textread.AsValues as exc:
                if not as_text:
                    raise
                logger.info("%s: %s; chunk %s copied as values", self.tp.source.name, exc, chunk.name)
                as_text = False
            except textread.NotArrow as exc:
                logger.info(
                    "%s: %s; chunk %s read again through the sqlite3 module",
                    self.tp.source.name,
                    exc,
                    chunk.name,
                )
                self.arrow = False
            except textread.NotArrowLoad as exc:
                logger.info(
                    "%s: %s; chunk %s written again through the sqlite3 module",
                    self.tp.target,
                    exc,
                    chunk.name,
                )
                self.arrow_load = False
            except _TryApart as exc:
                logger.info(
                    "%s: %s; chunk %s written again, trying each batch first", self.tp.target, exc, chunk.name
                )
                self.trying = True
                self.merge_each = self.tp.mode == "merge"
            except _MergeApart as exc:
                logger.info(
                    "%s: %s; chunk %s written again, each batch upserted on its own",
                    self.tp.target,
                    exc,
                    chunk.name,
                )
                self.merge_each = True
            except _CannotLoad as exc:
                if lenient:
                    raise exc.error from None
                logger.info(
                    "%s: %s; chunk %s read again, such values as text", self.tp.source.name, exc, chunk.name
                )
                lenient = self.lenient = True
            except Exception as exc:  # (a driver's own error too: COPY's is psycopg's)
                held = getattr(self.attempt, "held", None)
                if isinstance(exc, ParityError) or not transient_error(exc) or retries >= TRANSIENT_RETRIES:
                    raise
                if (
                    held is not None and held.flushed and held.rows
                ):  # (its commit failed after its rejects were
                    raise  # recorded: made again, they would be recorded twice)
                retries += 1
                if not self.apart:
                    logger.warning(
                        "%s: %s; its chunks are written one at a time from now on",
                        self.tp.target,
                        _reason(exc),
                    )
                self.apart = True
                logger.info("%s: %s; chunk %s made again", self.tp.target, _reason(exc), chunk.name)
                time.sleep(0.1 * retries)
            self.counter.add(-sum(counted))  # the progress of the rolled-back attempt

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """A chunk's attempt: with the others, or, once the table's chunks go one at a time
        (``apart``), when none is written (those begun before still are)."""
        with self.turns:
            if self.apart:
                self.turns.wait_for(lambda: self.writing == 0)
            self.writing += 1
        try:
            yield
        finally:
            with self.turns:
                self.writing -= 1
                self.turns.notify_all()

    def _may_hold_numbered_nulls(self, chunk: Chunk) -> bool:
        """Whether the chunk's rows may hold NULL where the target numbers it: they are then read as
        values, which ``_Guard`` checks (a key range holds no NULL key)."""
        tp = self.tp
        if not tp.numbered:
            return False
        key_only = [tp.columns[i] for i in tp.numbered] == [tp.chunk_key]
        return not key_only or chunk.nulls or chunk.lo is None

    def _run(
        self, chunk: Chunk, as_text: bool, counted: list[int] | None = None, lenient: bool = False
    ) -> tuple[int, int, int, int]:
        """One attempt at the chunk; ``counted`` gets the size of each batch handed to the writer;
        ``lenient``: values the source's driver cannot make come as their text."""
        batches: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(chunk, batches, stop, as_text, lenient), name="parity-read", daemon=True
        )
        reader.start()
        try:
            return self._write(chunk, _drain(batches, counted))
        finally:
            stop.set()
            while reader.is_alive():
                try:
                    batches.get_nowait()
                except queue.Empty:
                    reader.join(0.05)

    def _select(self, chunk: Chunk, as_text: bool = False) -> Any:
        """The chunk's rows; ``as_text``: each as one line of COPY text (``Dialect.copy_line``)."""
        tp = self.tp
        table = _source_table(self.job, tp)
        natives = {c.name: c.native_type for c in tp.source.columns}
        dialect = self.job.source.dialect
        columns = [table.c[c] for c in tp.columns]
        texts = [
            x if (own := dialect.own_text(x, natives[x.name])) is None else own.label(x.name) for x in columns
        ]
        line = dialect.copy_line(texts, self.kinds, self.charsets) if as_text else None
        # JSON as its text: a driver's parsed value loses JSON's null (to SQL's NULL) and long numbers;
        # a type taken as text (inet, interval ...) as its text, not its driver's Python object
        as_text_too = {c.name for c in tp.source.columns if c.read_as_text}
        selected: list[Any] = [
            sa.cast(c, sa.Text()).label(c.name)
            if t.kind is Kind.JSON
            else dialect.output_text(c, natives[c.name]).label(c.name)
            if c.name in as_text_too
            else (dialect.read_leniently if self.lenient else dialect.read_checked)(c, t.kind)
            for c, t in zip(columns, tp.types, strict=True)
        ]
        stmt = _filtered(tp, table, sa.select(*selected) if line is None else sa.select(line))
        if chunk.nulls and tp.chunk_key:
            stmt = stmt.where(table.c[tp.chunk_key].is_(None))
        elif chunk.lo is not None and tp.chunk_key:
            key = table.c[tp.chunk_key]
            stmt = stmt.where(key >= chunk.lo, *([] if chunk.hi is None else [key < chunk.hi]))
        if tp.limit is not None:
            order = [table.c[k] for k in tp.source.key() if k in table.c]
            stmt = stmt.order_by(*order).limit(tp.limit)
        return stmt

    def _read(
        self, chunk: Chunk, out: queue.Queue[Any], stop: threading.Event, as_text: bool, lenient: bool = False
    ) -> None:
        source = self.job.source
        try:
            if as_text and self.in_process:
                try:
                    self._read_in_process(chunk, out, stop)
                    out.put(_DONE)
                    return
                except textread.Unavailable as exc:  # (before any batch): read on this thread
                    logger.info("%s: %s; chunks are read on threads", self.tp.source.name, exc)
                    self.in_process = False
            if self.mysqlclient:
                self._read_mysqlclient(chunk, out, stop, as_text)
                out.put(_DONE)
                return
            with source.reading(lenient) as conn:
                self._read_on(conn, chunk, out, stop, as_text)
            out.put(_DONE)
        except BaseException as exc:
            cannot_load = not lenient and (
                (source.dialect.LENIENT_LOADERS and driver_could_not_load(exc))
                or source.dialect.read_refused(exc)
            )
            out.put(_CannotLoad(exc) if cannot_load else exc)

    def _read_on(
        self, conn: Connection, chunk: Chunk, out: queue.Queue[Any], stop: threading.Event, as_text: bool
    ) -> None:
        if as_text and self.job.source.backend == "postgresql":
            self._read_copy_text(conn, chunk, out, stop)
        elif (cursor := _streaming_cursor(conn)) is not None:
            self._read_raw(conn, cursor, chunk, out, stop, as_text)
        else:
            result = conn.execution_options(stream_results=True, max_row_buffer=self.tp.batch_size).execute(
                self._select(chunk)
            )
            for part in result.partitions(self.tp.batch_size):
                if stop.is_set():
                    return
                out.put(self._batch(self._decode(part)))

    def _read_raw(
        self,
        conn: Connection,
        cursor: Any,
        chunk: Chunk,
        out: queue.Queue[Any],
        stop: threading.Event,
        as_text: bool = False,
    ) -> None:
        """Stream with the driver's own cursor: plain tuples, no SQLAlchemy Row per row (the columns are
        untyped, so SQLAlchemy would not process the values anyway); ``as_text``: SQLite's rows made
        COPY text (``bulk.sqlite_text``)."""
        sql, params = self._statement(chunk, conn.dialect)
        size = self.tp.batch_size
        try:
            if as_text:
                batches = textread.sqlite_batches(cursor, sql, params, self.kinds, size, self.scales)
                self._put_text(batches, out, stop)
                return
            _execute_streaming(conn, cursor, sql, params)
            while not stop.is_set() and (rows := cursor.fetchmany(size)):
                out.put(self._batch(self._decode(rows)))
        except conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()

    def _statement(self, chunk: Chunk, dialect: sa.Dialect, as_text: bool = False) -> tuple[str, Any]:
        """The chunk's SELECT as its driver takes it: the SQL text and the parameters (a tuple where the
        dialect's are positional)."""
        compiled = self._select(chunk, as_text).compile(dialect=dialect)
        params: Any = compiled.params
        if dialect.positional:
            params = tuple(params[name] for name in compiled.positiontup or ())
        return compiled.string, params

    def _put_text(
        self, batches: Iterator[tuple[bytes, int]], out: queue.Queue[Any], stop: threading.Event
    ) -> None:
        """Batches of a source's COPY text, taken by the writer (``Writer.take_text``), onto the queue."""
        for text, count in batches:
            if stop.is_set():
                return
            try:
                out.put(self.writer_class.take_text(text, count, self.kinds))
            except bulk.NotText as exc:  # (a value of the text its kind cannot take: rejected as values)
                raise textread.AsValues(str(exc)) from None

    def _read_mysqlclient(
        self, chunk: Chunk, out: queue.Queue[Any], stop: threading.Event, as_text: bool
    ) -> None:
        """Stream from MySQL/MariaDB through mysqlclient, unbuffered: as lines of COPY text made by the
        server for a writer that takes them (``as_text``), else as rows."""
        source = self.job.source
        raw = mysqlclient_connect(source, raw_text=as_text)
        from MySQLdb import Error
        from MySQLdb.cursors import SSCursor

        sql, params = self._statement(chunk, source.engine.dialect, as_text)
        size = self.tp.batch_size
        cursor = raw.cursor(SSCursor)
        try:
            if as_text:
                self._put_text(textread.mysql_line_batches(cursor, sql, params, size), out, stop)
                return
            cursor.execute(sql, params)
            while not stop.is_set() and (rows := cursor.fetchmany(size)):
                out.put(self._batch(self._decode(rows)))
        except Error as exc:
            raise sa.exc.DBAPIError(sql, params, exc) from exc
        finally:
            # a result left unread (a stop, a line too long) is freed while its connection is open
            # (it reads what is left): freed after the close, mysqlclient would touch freed memory
            with suppress(Error):
                cursor.close()
            raw.close()

    def _read_copy_text(
        self, conn: Connection, chunk: Chunk, out: queue.Queue[Any], stop: threading.Event
    ) -> None:
        """``COPY (SELECT ...) TO STDOUT`` from PostgreSQL, in batches of its text for a writer that loads
        that text as it is."""
        sql, params = self._copy_statement(conn.dialect, chunk)
        raw: Any = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor:
                for statement in self.job.source.dialect.COPY_TEXT_SETUP:
                    cursor.execute(statement)
            with log.timed_sql(sql, "postgresql"):
                self._put_text(textread.copy_batches(raw, sql, params, self.tp.batch_size), out, stop)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError(sql, params, exc) from exc

    def _copy_statement(self, dialect: sa.Dialect, chunk: Chunk) -> tuple[str, Any]:
        sql, params = self._statement(chunk, dialect)
        return f"COPY ({sql}) TO STDOUT", params

    def _read_in_process(self, chunk: Chunk, out: queue.Queue[Any], stop: threading.Event) -> None:
        """The chunk read, made text and parsed for the writer in a reader process (``textread``)."""
        reader = self._reader(chunk)
        try:
            with log.timed_sql(reader.sql, f"{self.job.source.backend} (reader process)"):
                for rows, parsed in reader.batches(stop):
                    if stop.is_set():
                        return
                    loaded = type(parsed) is textread.Loaded
                    out.put(parsed if loaded else self.writer_class.text_batch(rows, self.kinds, parsed))
            self._read_ahead()  # (its writer has a batch or two left: the next reader's time to start)
        finally:
            reader.close()

    def _reader(self, chunk: Chunk) -> textread.ProcessReader:
        with self.readers_lock:
            reader = self.readers.get(chunk.name)
            self.readers[chunk.name] = None
        return reader or textread.ProcessReader(self._read_spec(chunk))

    def _read_ahead(self) -> None:
        """Start the reader of the first chunk no worker has started, so that its first batches are
        ready when a worker takes it (else each chunk waits 0.1 s for its first); that reader then
        waits, holding up to ``textread.AHEAD`` batches, until then. Called when a chunk's reader has
        read its last batch, not sooner: a reader started with its chunk's first batch parsed beside
        both that chunk's reader and its writer, 3 processes on 2 cores, and slowed the writer's
        first batches threefold (PostgreSQL -> SQLite, 1M rows: 3.76 s against 3.47 s)."""
        if self.lanes is not None and self.lanes.tables > 1:
            return  # (its chunk might wait long for a lane other tables hold: MySQL ends a reader stalled 60 s)
        with self.readers_lock:
            waiting = sum(reader is not None for reader in self.readers.values())
            if self.closed or waiting >= (self.lanes.count if self.lanes else 1):
                return  # (as many wait as chunks can be taken next)
            chunk = next((c for c in self.upcoming if c.name not in self.readers), None)
            if chunk is not None:
                with suppress(textread.Unavailable):  # (its worker tries again, or reads on a thread)
                    self.readers[chunk.name] = textread.ProcessReader(self._read_spec(chunk))

    def close(self) -> None:
        """Stop the readers started ahead for chunks that were not copied (a failed table)."""
        with self.readers_lock:
            self.closed = True
            for reader in filter(None, self.readers.values()):
                reader.close()
            self.readers.clear()

    def _read_spec(self, chunk: Chunk) -> textread.ReadSpec:
        source = self.job.source
        dialect = source.engine.dialect
        setup = source.dialect.SESSION_SETUP
        if source.backend == "postgresql":
            sql, params = self._copy_statement(dialect, chunk)
            setup += source.dialect.COPY_TEXT_SETUP
        else:
            sql, params = self._statement(chunk, dialect, as_text=True)
        args: list[Any] = []
        if self.mysqlclient:
            driver, kwargs = "MySQLdb", mysqlclient_args(source)
        else:
            driver = dialect.driver if dialect.driver != "pysqlite" else "sqlite3"
            args, kwargs = source.driver_connect_args()
            if driver == "sqlite3" and not str(args[0]).startswith("file:"):
                args[0] = os.path.abspath(args[0])  # (the fork server's working directory may differ)
        arrow = driver == "sqlite3" and self.arrow and _plain(params) and "regexp" not in sql.lower()
        return textread.ReadSpec(
            driver=driver,
            connect_args=tuple(args),
            connect_kwargs=kwargs,
            setup=setup,
            sql=sql,
            params=params,
            kinds=tuple(self.kinds),
            batch_size=self.tp.batch_size,
            writer=self.job.target.writer,
            secrets=tuple(filter(None, [source.url.password])),
            scales=tuple(self.scales),
            arrow=arrow,
            guard=self._not_text(chunk, dialect) if arrow else None,
            load=self._load_spec(chunk) if self.arrow_load else None,
        )

    def _load_spec(self, chunk: Chunk) -> textread.LoadSpec:
        """How the chunk's reader loads it into the SQLite file itself."""
        tp, target = self.tp, self.job.target
        path = str(target.driver_connect_args()[0][0])
        columns = ", ".join(target.quote(c) for c in tp.target_columns)
        marks = ", ".join("?" * len(tp.target_columns))
        mark, params, rows_at = self.state.mark_chunk_statement(target.engine.dialect, self.task, chunk.name)
        return textread.LoadSpec(
            path=path if path.startswith("file:") else os.path.abspath(path),
            insert=f"INSERT INTO {target.qualified(tp.target)} ({columns}) VALUES ({marks})",
            mark=mark,
            mark_params=tuple(params),
            mark_rows=rows_at,
        )

    def _not_text(self, chunk: Chunk, dialect: sa.Dialect) -> tuple[str, Any] | None:
        """The query (SQL, parameters) of the chunk's first row that holds a value Arrow would give as
        text though it is not (``Dialect.not_text``); None where no column is text."""
        rows = self._select(chunk).subquery()
        texts = [c for c, kind in zip(rows.c, self.kinds, strict=True) if kind in textread.ARROW_TEXT_KINDS]
        condition = self.job.source.dialect.not_text(texts) if texts else None
        if condition is None:
            return None
        compiled = (
            sa.select(sa.literal(1)).select_from(rows).where(condition).limit(1).compile(dialect=dialect)
        )
        return compiled.string, tuple(compiled.params[name] for name in compiled.positiontup or ())

    def _decode(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        kinds = self.lenient_decoders if self.lenient else self.decoders
        if self.checked_types and rows:
            kinds = list(kinds)
            for i, held in self.checked_types:
                if not set(map(type, map(itemgetter(i), rows))) <= held:
                    kinds[i] = self.tp.types[i].kind
        if not any(kinds):
            if type(rows) is list and (not rows or type(rows[0]) is tuple):
                return rows  # a driver's own rows: tuples already
            return [tuple(r) for r in rows]
        if not rows:
            return []
        # column by column: only the columns that need decoding are touched
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, kind in enumerate(kinds):
            if kind is not None:
                try:
                    blobs = (
                        kind in _TEXT_KINDS and not self.lenient
                    )  # (a lenient read: SQLite's text as bytes)
                    if blobs and self.checked_types and bytes in set(map(type, columns[i])):
                        raise TypeError("a BLOB in a text column")  # (as _decoded_or_unreadable says)
                    columns[i] = list(map(decode_value, repeat(kind), columns[i]))
                except DECODE_ERRORS:  # (a value the kind cannot take: its row is refused, not the table)
                    column = self.tp.target_columns[i]
                    named = self.tp.types[i].kind  # (a boolean decoded as a whole number: a boolean still)
                    blobs = not self.lenient
                    columns[i] = [_decoded_or_unreadable(kind, v, column, named, blobs) for v in columns[i]]
                    self.unreadable = self.unreadable | {i}
                if kind is Kind.JSON and self.jsonb:
                    columns[i] = [v if v is None or type(v) is _Unreadable else JsonText(jsonb_text(v))
                                  for v in columns[i]]  # fmt: skip
        return list(zip(*columns, strict=True))

    def _write(self, chunk: Chunk, batches: Iterator[list[tuple[Any, ...]]]) -> tuple[int, int, int, int]:
        """Returns rows read, written, rejected and skipped (already in the target)."""
        if self.tp.remap.active:
            return self._write_remapped(chunk, batches)
        first = next(batches, None)
        if type(first) is textread.Loaded:
            return self._write_loaded(chain([first], batches))
        batches = chain([] if first is None else [first], batches)
        tp, target = self.tp, self.job.target
        read = written = rejected = 0
        held = self.attempt.held = self.rejects.hold(tp.target, tp.target_columns, self.kinds)
        with (
            target.connect() as conn,
            _fk_checks_off(conn, self.target_dialect, tp.fk_checks_off),
            conn.begin(),
            self.target_dialect.explicit_ids(conn, target, tp.target, tp.target_columns),
        ):
            self._empty_within(conn)
            destination = self._destination(conn)
            each = self.merge_each  # (once: another chunk of the table may set it meanwhile)
            writer = self._writer(self.writer_class, conn, destination, each)
            generations = (
                None if tp.self_reference is None else _Generations(self, conn, writer, destination, held)
            )
            try:
                for rows in batches:
                    read += len(rows)
                    if generations is None:
                        ok, bad = self._write_batch(conn, writer, destination, rows, held)
                    else:
                        ok, bad = generations.write(rows)
                    written += ok
                    rejected += bad
                    self.counter.add(len(rows))
                if generations is not None:
                    rejected += generations.finish()
            finally:
                writer.close()
            if tp.mode == "merge" and not each:
                try:
                    self._merge(conn, destination)
                except Exception as exc:
                    if isinstance(exc, ParityError):
                        raise
                    raise_unless_refusal(exc)
                    raise _MergeApart(f"the target refused the chunk's upsert ({_reason(exc)})") from exc
            self.state.mark_chunk(conn, self.task, chunk.name, read)
            held.flush()  # (just before the commit: a run killed in between records them twice, not never)
        return read, written, rejected, 0

    def _empty_within(self, conn: Connection) -> None:
        """An ``atomic`` replace table (``emptied_within``): empty it and forget what is recorded of its
        rows in the transaction its rows go in by, so that a failure leaves it as it was. Its FK checks
        are off already where it references itself (``in_cycle``) and the database checks each row."""
        if self.tp.emptied_within:
            execute_raw(conn, f"DELETE FROM {self.job.target.qualified(self.tp.target)}")
            self.state.forget_rows(conn, [self.tp.target])

    def _write_loaded(self, batches: Iterator[Any]) -> tuple[int, int, int, int]:
        """A chunk its reader process loads into SQLite itself (``textread.LoadSpec``): its batches
        counted as they are in; the last one's ``commit`` tells the reader to commit (its rows and state
        row at once), which the end of the batches confirms. Every row is written, or none: a batch the
        reader could not load rolls the chunk back (``NotArrowLoad``), and ``run`` writes it again."""
        read = 0
        for batch in batches:
            if type(batch) is not textread.Loaded:  # (not expected: the reader decides at its first)
                raise textread.NotArrowLoad("a batch of values came after loaded ones")
            if batch.commit is not None:
                batch.commit()
            read += len(batch)
            self.counter.add(len(batch))
        return read, read, 0, 0

    def _write_remapped(
        self, chunk: Chunk, batches: Iterator[list[tuple[Any, ...]]]
    ) -> tuple[int, int, int, int]:
        tp, target = self.tp, self.job.target
        read = written = skipped = 0
        held = self.attempt.held = self.rejects.hold(tp.target, tp.target_columns, self.kinds)

        given = [c for c in tp.target_columns if c != tp.remap.identity]  # (the target numbers that one)
        with (
            target.connect() as conn,
            _fk_checks_off(conn, self.target_dialect, tp.fk_checks_off),
            conn.begin(),
            self.target_dialect.explicit_ids(conn, target, tp.target, given),
        ):
            self._empty_within(conn)  # (first: the writer asks whether the map holds the table's IDs)
            writer = RemapWriter(
                conn,
                target,
                tp.target,
                tp.target_columns,
                tp.types,
                tp.remap,
                self.maps,
                self.workers,
                merge_key=tp.key if tp.mode == "merge" else (),
            )
            itself = None  # (rows referencing themselves, where the target's FK check cannot take them)
            if tp.self_reference is not None:  # (no FK checks to switch off: parents first, as a
                # reference set later cannot be set where DuckDB updates a referenced row)
                there = (
                    writer.mapped
                    if tp.remap.identity
                    else functools.partial(self._target_holds, conn, tp.target_columns[tp.self_reference[1]])
                )
                batches = _parents_first(batches, *tp.self_reference, there)
                if not self.target_dialect.FK_SEES_OWN_STATEMENT:
                    itself = tp.self_reference
            refused: set[str] = set()  # (keys of rows rejected here: their descendants are too)
            for rows in batches:
                read += len(rows)
                readable = self._readable(rows, held)
                if itself is not None:
                    if len(readable) < len(rows):
                        kept = set(map(id, readable))
                        refused.update(str(row[itself[1]]) for row in rows if id(row) not in kept)
                    readable = self._not_itself(readable, *itself, held, refused)
                ok, known = writer.write(readable, held.add)
                written += ok
                skipped += known
                self.counter.add(len(rows))
            self.state.mark_chunk(conn, self.task, chunk.name, read)
            held.flush()
        return read, written, len(held.rows), skipped

    def _not_itself(
        self, rows: Sequence[tuple[Any, ...]], at: int, key_at: int, held: _Held, refused: set[str]
    ) -> Sequence[tuple[Any, ...]]:
        """The rows that reference neither themselves nor a row rejected in this chunk (``refused``,
        their keys; the rows come parents first); the others are rejected, and their keys added (DuckDB
        checks an FK before the row is in, and refuses to set the reference afterwards)."""
        kept = []
        name, backend = self.tp.target_columns[at], self.job.target.backend
        for row in rows:
            ref = None if row[at] is None else str(row[at])
            if ref is None or (ref != str(row[key_at]) and ref not in refused):
                kept.append(row)
                continue
            if ref in refused:
                why = f"a row rejected in this copy ({self.tp.target_columns[key_at]}={row[at]})"
            else:
                why = f"the row itself, which {backend} checks before the row is in"
            held.add(row, f"{name}={row[at]} references {why}")
            refused.add(str(row[key_at]))
        return kept

    def _readable(self, rows: Sequence[tuple[Any, ...]], held: _Held) -> Sequence[tuple[Any, ...]]:
        """The rows ``_Guard`` lets through, where rows go one by one (remapped IDs); the others are
        rejected."""
        columns = self.tp.target_columns
        checked = [(i, scale) for i, scale in enumerate(self.scales) if scale is not None]
        if not (self.unreadable or checked or self.nan_checked):
            return rows
        kept = []
        for row in rows:
            bad = next((row[i].reason for i in self.unreadable if type(row[i]) is _Unreadable), None)
            for i in self.nan_checked if bad is None else ():
                value = row[i]
                if type(value) is float and not math.isfinite(value):
                    bad = no_nan(columns[i], value, self.job.target.backend)
                    break
            for i, scale in checked if bad is None else ():
                value = row[i]
                text = bulk.decimal_text(value)
                if value is not None and bulk.excess_decimals([text], scale) is not None:
                    bad = _excess(columns[i], text, scale, self.tp.types[i].kind)
                    break
            if bad is None:
                kept.append(row)
            else:
                held.add(row, bad)
        return kept

    def _kept_scale(self, ctype: CanonicalType) -> int | None:
        if ctype.kind is not Kind.DECIMAL or not self.target_dialect.ROUNDS_DECIMALS:
            return None
        kept = self.target_dialect.stored_as(ctype)
        if kept.precision is None:
            return None  # (unbounded: it keeps them all)
        if self.job.source.backend != "sqlite" and ctype.precision is not None:
            return None  # (the source holds no more than its type's decimals, which the target keeps)
        return kept.scale or 0

    def _writer(
        self, writer_class: type[bulk.Writer], conn: Connection, destination: str, merge_each: bool
    ) -> bulk.Writer:
        """A ``writer_class`` writer into ``destination``; for merge, once batches are upserted on their
        own (``merge_each``), one that upserts each batch it stages; where decimals may have more
        decimals than the target keeps, one that refuses them first."""
        writer = writer_class(conn, destination, self.tp.target_columns, self.tp.types)
        if merge_each:
            writer = _Merging(writer, self)
        checks = self.lenient or self.nan_checked or self.tp.numbered or self.checked_types
        if checks or any(self.decoders) or any(s is not None for s in self.scales):
            writer = _Guard(writer, self)
        return writer

    def _destination(self, conn: Connection) -> str:
        """Where the batches go: the target table, or for merge a staging table to upsert from."""
        target = self.job.target
        if self.tp.mode != "merge":
            return target.qualified(self.tp.target)
        staging = target.quote(self._staging_name())
        for statement in self._create_staging_sql(staging):
            execute_raw(conn, statement)
        return staging

    def _staging_name(self) -> str:
        """One a table and thread: a temporary table lives on with its pooled connection, and the next
        table's batches must not meet this one's columns."""
        table = hashlib.sha1(self.tp.target.encode("utf-8")).hexdigest()[:10]
        return f"{self.target_dialect.TEMPORARY_PREFIX}_parity_stage_{table}_{threading.get_ident()}"

    def _create_staging_sql(self, staging: str) -> list[str]:
        """The statements that make the (empty) staging table, with the target's columns."""
        target = self.job.target
        cols = ", ".join(target.quote(c) for c in self.tp.target_columns)
        return self.target_dialect.create_staging(staging, cols, target.qualified(self.tp.target))

    def _merge(self, conn: Connection, staging: str) -> None:
        try:
            self._upsert(conn, staging)
        except Exception as exc:
            if cardinality_error(exc):  # (no row's fault: merge cannot tell which of the two is meant)
                raise DataError(
                    f"table '{self.tp.source.name}': source rows share a merge key ({', '.join(self.tp.key)}): "
                    f"{_reason(exc)}; merge by a key unique in the source (-k)"
                ) from exc
            raise

    def _upsert(self, conn: Connection, staging: str) -> None:
        tp, target = self.tp, self.job.target
        columns = tp.target_columns
        dialect = self.target_dialect
        if self.fixed is None or self.changed_only is None:
            self.fixed = dialect.fixed_columns(conn, target, tp.target)
            self.changed_only = (
                dialect.changed_only_columns(conn, target, tp.target) - self.fixed - set(tp.key)
            )
        target_table = sa.table(tp.target, *(sa.column(c) for c in columns), schema=target.schema)
        staging_table = sa.table(self._staging_name(), *(sa.column(c) for c in columns))
        apart = self.changed_only & set(columns)
        upsert = dialect.upsert(target_table, staging_table, columns, tp.key, self.fixed | apart)
        for statement in upsert if isinstance(upsert, tuple) else (upsert,):
            conn.execute(statement)
        for column in sorted(apart):
            t, s = target_table.c, staging_table.c
            conn.execute(
                sa.update(target_table)
                .where(*(t[k] == s[k] for k in tp.key), t[column].is_distinct_from(s[column]))
                .values({column: s[column]})
            )
        execute_raw(conn, f"DELETE FROM {staging}")

    def _write_batch(
        self,
        conn: Connection,
        writer: bulk.Writer,
        destination: str,
        rows: list[tuple[Any, ...]],
        held: _Held,
    ) -> tuple[int, int]:
        """Write one batch; if the target refuses it, find the refused rows and keep the rest."""
        if not self.target_dialect.SAVEPOINTS:
            if self.trying:
                return self._write_tried(writer, destination, rows, held)
            try:
                writer.write(rows)
            except Exception as exc:  # (no savepoint to isolate the refused rows under: the chunk is
                if isinstance(exc, ParityError):  # rolled back, and written again trying each batch first)
                    raise
                raise_unless_refusal(exc)
                # (a table referencing itself: rows another connection would try may reference rows
                # only this one sees; an atomic replace: the rows this one deleted are there for it)
                if self.tp.in_cycle or self.tp.self_reference is not None or self.tp.emptied_within:
                    raise ParityError(
                        f"the target refused a batch ({_reason(exc)}); {self.job.target.backend} has no "
                        "savepoints to find the refused rows under, so the chunk was rolled back"
                        + (" and the table left as it was" if self.tp.emptied_within else "")
                    ) from exc
                raise _TryApart(exc) from exc
            return len(rows), 0
        refused = _under_savepoint(conn, self.target_dialect, writer, rows)
        if refused is None:
            return len(rows), 0
        raise_unless_refusal(refused)
        held.failed += 1
        logger.info("batch of %d rows refused (%s); isolating", len(rows), refused)
        # a TextBatch's rows are strings, which the target converts itself (no encoders)
        row_class: type[bulk.Writer] = bulk.WRITERS[self.target_dialect.ROW_WRITER]
        if isinstance(rows, bulk.TextBatch):
            row_class = bulk.TEXT_ROW_WRITERS.get(self.job.target.backend, bulk.ExecuteManyWriter)
        each = _inner(writer, _Merging) is not None
        there = self._already_there(conn, rows)
        for i, reason in there.items():
            held.add(rows[i], reason)
        rest = [row for i, row in enumerate(rows) if i not in there] if there else rows
        if not rest:
            return 0, len(there)
        written, rejected = self._isolate(conn, self._writer(row_class, conn, destination, each), rest, held)
        return written, rejected + len(there)

    def _already_there(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> dict[int, str]:
        """The rows of a refused batch whose primary key the target holds already (an append run
        again), by index, with the reason: rejected without a write each, which would cost a refused
        write apiece (``count_failed_savepoint``). A single-column key; not for merge, which updates
        such rows. A key written in another form (a UUID's case) is left to the writes to find."""
        if self.tp.mode == "merge":
            return {}
        if self.target_key is None:  # (on this connection: SQLite's writer may hold the file's lock)
            key = self.target_dialect.primary_key(conn, self.tp.target, self.job.target.schema)
            columns = self.tp.target_columns
            self.target_key = key[0] if len(key) == 1 and key[0] in columns else ""
        if not self.target_key:
            return {}
        position = self.tp.target_columns.index(self.target_key)
        kind = self.tp.types[position].kind
        if kind not in INTEGER_KINDS and kind not in (Kind.VARCHAR, Kind.TEXT):
            return {}
        try:  # (a TextBatch's rows hold text)
            keys = {
                (int(k) if kind in INTEGER_KINDS else str(k))
                for k in (r[position] for r in rows)
                if k is not None and type(k) is not _Unreadable
            }
        except (ValueError, TypeError):  # ('abc' in SQLite's key: the writes find it refused)
            return {}
        held = self._target_holds(conn, self.target_key, keys)
        return {
            i: f"duplicate key: {self.target_key}={row[position]} is in the target already"
            for i, row in enumerate(rows)
            if row[position] is not None and str(row[position]) in held
        }

    def _target_holds(self, conn: Connection, name: str, values: Iterable[Any]) -> set[str]:
        """Those of the values the target's column holds, as text (on the writing connection, which
        sees its own transaction's rows)."""
        column: sa.ColumnClause[Any] = sa.column(name)
        table = sa.table(self.tp.target, column, schema=self.job.target.schema)
        held: set[str] = set()
        pending = sorted(values, key=str)
        for start in range(0, len(pending), 1000):
            query = sa.select(column).select_from(table).where(column.in_(pending[start : start + 1000]))
            held.update(str(value) for (value,) in conn.execute(query))
        return held

    def _write_tried(
        self, writer: bulk.Writer, destination: str, rows: list[tuple[Any, ...]], held: _Held
    ) -> tuple[int, int]:
        """Where there are no savepoints (DuckDB): find the rows the target refuses by writing parts of
        the batch on another connection, each part in a transaction rolled back, then write the rest
        here. A refusal that only this transaction's own rows cause (a key written twice in the chunk)
        still fails the chunk. For merge, each part is staged and upserted on the trial connection."""
        each = _inner(writer, _Merging) is not None
        base = writer
        while isinstance(base, (_Merging, _Guard)):
            base = base.inner
        with self.job.target.connect() as trial:

            def attempt(part: Sequence[tuple[Any, ...]]) -> Exception | None:
                transaction = trial.begin()
                try:  # (a failure to set the trial up is no refusal of the rows: it is raised)
                    staged = self._destination(trial) if self.tp.mode == "merge" else destination
                    trial_writer = self._writer(type(base), trial, staged, each)
                except BaseException:
                    transaction.rollback()
                    raise
                try:
                    trial_writer.write(part)
                except Exception as exc:
                    return exc
                finally:
                    transaction.rollback()
                    trial_writer.close()
                return None

            # (rows whose key the target holds already, an append run again: found by one query, not
            # by trials of a few ms a row: 36,000 rows took 207 s, the audit)
            with trial.begin():
                refused = self._already_there(trial, rows)
            rest = [i for i in range(len(rows)) if i not in refused]
            if rest:
                found = _refused([rows[i] for i in rest], attempt)
                refused.update({rest[j]: reason for j, reason in found.items()})
        kept = [row for i, row in enumerate(rows) if i not in refused]
        if kept:
            try:
                writer.write(kept)
            except Exception as exc:
                raise ParityError(
                    f"the target refused a batch ({_reason(exc)}) its rows alone pass; "
                    f"{self.job.target.backend} has no savepoints, so the chunk was rolled back"
                ) from exc
        for i, reason in refused.items():
            held.add(rows[i], reason)
        return len(kept), len(refused)

    def _isolate(
        self, conn: Connection, writer: bulk.Writer, rows: list[tuple[Any, ...]], held: _Held
    ) -> tuple[int, int]:
        """Write the rows under savepoints, halving the parts the target refuses; reject the rows it
        refuses alone."""

        def attempt(part: Sequence[tuple[Any, ...]]) -> Exception | None:
            error = _under_savepoint(conn, self.target_dialect, writer, part)
            if error is not None:
                raise_unless_refusal(error)
                held.failed += 1
                self.target_dialect.count_failed_savepoint(held.failed, self.workers)
            return error

        refused = _refused(rows, attempt)
        for i, reason in refused.items():
            held.add(rows[i], reason)
        return len(rows) - len(refused), len(refused)


class _Generations:
    """Writes the rows of a table whose target checks its FK to itself with no checks to switch off
    (``_TablePlan.self_reference``; the table is one chunk): in generations, each one statement of
    rows whose referenced row the target holds, from this chunk's earlier statements or before (or
    that reference none, or, where its FK checks see their own statement's rows, themselves). The
    levels of a batch are worked out at once, with one query for the references outside it; a row
    whose parent has not come waits for it (in memory: a table whose children come before their
    parents holds them until then). At ``finish``, those still waiting reference rows the target does
    not hold (an orphan; on DuckDB, a row referencing itself, or its descendants) and are rejected."""

    def __init__(
        self, runner: _ChunkRunner, conn: Connection, writer: bulk.Writer, destination: str, held: _Held
    ) -> None:
        assert runner.tp.self_reference is not None
        self.runner, self.conn, self.writer, self.destination, self.held = (
            runner,
            conn,
            writer,
            destination,
            held,
        )
        self.at, self.key_at = runner.tp.self_reference
        self.children: dict[str, list[tuple[Any, ...]]] = {}
        """Rows waiting, by the key they reference."""
        self.absent: set[str] = set()
        """Referenced keys the target was found not to hold (not asked again, until such a row comes)."""
        self.sees_own = runner.target_dialect.FK_SEES_OWN_STATEMENT

    def write(self, rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
        runner, at, key_at = self.runner, self.at, self.key_at
        readable = runner._readable(rows, self.held)  # (a value refused in Python is rejected alone)
        rejected = len(rows) - len(readable)
        keys = {str(row[key_at]) for row in readable}
        asked = {str(row[at]) for row in readable if row[at] is not None} - keys - self.absent
        column = runner.tp.target_columns[key_at]
        there = runner._target_holds(self.conn, column, asked) if asked else set()
        self.absent |= asked - there
        level = []
        for row in readable:
            ref = row[at]
            if ref is None or str(ref) in there or (self.sees_own and str(ref) == str(row[key_at])):
                level.append(row)
            else:
                self.children.setdefault(str(ref), []).append(row)
        written = 0
        while level:
            ok, bad = self._write_level(level)
            written += ok
            rejected += bad
            came = [str(row[key_at]) for row in level]
            self.absent.difference_update(came)
            level = [child for key in came for child in self.children.pop(key, ())]
        return written, rejected

    def _write_level(self, level: list[tuple[Any, ...]]) -> tuple[int, int]:
        runner = self.runner
        doubles = runner._already_there(self.conn, level) if runner.tp.mode == "append" else {}
        for i, reason in doubles.items():  # (no savepoints to find them under: found first)
            self.held.add(level[i], reason)
        fresh = [row for i, row in enumerate(level) if i not in doubles] if doubles else level
        if not fresh:
            return 0, len(doubles)
        ok, bad = runner._write_batch(self.conn, self.writer, self.destination, fresh, self.held)
        return ok, bad + len(doubles)

    def finish(self) -> int:
        """Reject the rows still waiting; returns how many."""
        columns, backend = self.runner.tp.target_columns, self.runner.job.target.backend
        name, referenced = columns[self.at], columns[self.key_at]
        left = [row for rows in self.children.values() for row in rows]
        for row in left:
            if str(row[self.at]) == str(row[self.key_at]):
                why = f"the row itself, which {backend} checks before the row is in"
            else:
                why = f"a row the target does not hold ({referenced}={row[self.at]})"
            self.held.add(row, f"{name}={row[self.at]} references {why}")
        self.children.clear()
        return len(left)


class _Merging(bulk.Writer):
    """Stages each batch with ``inner`` and upserts it into the target at once (``_ChunkRunner._merge``),
    so that a row the target refuses fails its batch's write, where it is isolated."""

    def __init__(self, inner: bulk.Writer, runner: _ChunkRunner) -> None:
        super().__init__(inner.conn, inner.table, inner.columns, inner.types)
        self.inner, self.runner = inner, runner

    def write(self, rows: Sequence[Any]) -> None:
        self.inner.write(rows)
        self.runner._merge(self.conn, self.table)

    def close(self) -> None:
        self.inner.close()


class _Unreadable:
    """A source value its column's kind cannot take (SQLite's '2020-02-30' in a DATE column), in place
    of the value: ``_Guard`` refuses the batch holding it, and the copy engine rejects its row."""

    __slots__ = ("reason", "value")

    def __init__(self, value: Any, reason: str) -> None:
        self.value, self.reason = value, reason


def _held_as_integer(kind: Kind, target: Dialect) -> bool:
    """A boolean the target holds in an integer column (MySQL's TINYINT(1), SQLite): any whole number
    the source holds there arrives as it is, and only what is no whole number is refused."""
    return kind is Kind.BOOLEAN and target.INTEGER_BOOLEANS


_TEXT_KINDS = frozenset({Kind.VARCHAR, Kind.CHAR, Kind.TEXT})

_HELD_TYPES = {
    **dict.fromkeys(INTEGER_KINDS, frozenset({int, type(None)})),
    Kind.FLOAT: frozenset({float, int, type(None)}),
    Kind.DOUBLE: frozenset({float, int, type(None)}),
    **dict.fromkeys(_TEXT_KINDS, frozenset({str, int, float, type(None)})),  # (a BLOB is no text)
}
"""The Python types a native kind's values arrive as (``_ChunkRunner.checked_types``)."""


def _decoded_or_unreadable(
    kind: Kind, value: Any, column: str, named: Kind | None = None, blobs: bool = True
) -> Any:
    """A value as its kind, or unreadable with the reason; ``blobs``: bytes in a text column are a
    BLOB, refused (not where a lenient read gives each text of SQLite's as its bytes)."""
    if named is Kind.BOOLEAN and kind is not Kind.BOOLEAN and isinstance(value, str):
        spelled = boolean_text(value)  # ('t' into an integer boolean column: 1)
        value = value if spelled is None else int(spelled)
    try:
        if blobs and kind in _TEXT_KINDS and isinstance(value, bytes):  # (SQLite's BLOB: decoded
            raise TypeError("a BLOB, not text")  # as UTF-8, it would be another value, which diff finds)
        return decode_value(kind, value)
    except DECODE_ERRORS as exc:
        shown = repr(duration_text(value)) if isinstance(value, timedelta) else repr(value)
        said = str(exc)  # (the decoder's own words, where they say it already: "'x' is no JSON (...)")
        why = (
            said
            if said.startswith(shown[:20]) and " is no " in said
            else f"{shown} is no {(named or kind).value} ({said})"
        )
        return _Unreadable(value, f"{column}: {why}")


class _Guard(bulk.Writer):
    """Refuses a batch holding a source value its kind cannot take (``_Unreadable``), a decimal with
    more decimals than its target column keeps, which the target would round without a word
    (PostgreSQL, DuckDB ...), or a NULL the target would replace by a number (``_TablePlan.numbered``):
    the copy engine then isolates the rows and rejects those, with a reason naming the column and the
    value."""

    def __init__(self, inner: bulk.Writer, runner: _ChunkRunner) -> None:
        super().__init__(inner.conn, inner.table, inner.columns, inner.types)
        self.inner, self.runner = inner, runner
        columns = runner.tp.target_columns
        self.checked = [(i, scale, columns[i]) for i, scale in enumerate(runner.scales) if scale is not None]
        self.floats = runner.nan_checked

    def write(self, rows: Sequence[Any]) -> None:
        if not isinstance(rows, bulk.TextBatch):  # (text was checked as it was made: sqlite_text)
            for i in self.runner.unreadable:
                bad = next((v for v in map(itemgetter(i), rows) if type(v) is _Unreadable), None)
                if bad is not None:
                    raise ValueError(bad.reason)
            for i in self.floats:
                odd = next(
                    (v for v in map(itemgetter(i), rows) if type(v) is float and not math.isfinite(v)), None
                )
                if odd is not None:
                    raise ValueError(no_nan(self.columns[i], odd, self.runner.job.target.backend))
            for i in self.runner.tp.numbered:
                if any(v is None for v in map(itemgetter(i), rows)):
                    raise ValueError(
                        f"NULL in column '{self.columns[i]}', which {self.runner.job.target.backend} would"
                        " number itself: the row would arrive under another key"
                    )
            for i, scale, column in self.checked:
                texts = [bulk.decimal_text(v) for v in map(itemgetter(i), rows) if v is not None]
                value = bulk.excess_decimals(texts, scale)
                if value is not None:
                    raise bulk.TooManyDecimals(_excess(column, value, scale, self.runner.tp.types[i].kind))
        self.inner.write(rows)

    def close(self) -> None:
        self.inner.close()


def _parents_first(
    batches: Iterable[Sequence[tuple[Any, ...]]],
    at: int,
    key_at: int,
    written: Callable[[set[str]], set[str]],
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a table referencing itself (``row[at]`` the old ID of the row ``row[key_at]``
    references), each after the row it references where that comes in the chunk too: a row waits
    for its parent unless that has no reference, comes before it in its batch, or was written by an
    earlier batch or run (``written``: those of the IDs the target holds, asked once a batch, as a
    batch is only read once the one before is written); those still waiting at the end (their
    parent not copied, a cycle) come last, and are written with the reference set later
    (``RemapSpec.late``). Only the waiting rows are held, not the IDs that came."""
    waiting: dict[str, list[tuple[Any, ...]]] = {}
    for rows in batches:
        keys = {str(row[key_at]) for row in rows}
        there = written({str(row[at]) for row in rows if row[at] is not None} - keys)
        ready: deque[tuple[Any, ...]] = deque()
        for row in rows:
            parent = row[at]
            if parent is None or str(parent) in there or parent == row[key_at]:
                ready.append(row)
            else:
                waiting.setdefault(str(parent), []).append(row)
        out = []
        while ready:
            row = ready.popleft()
            out.append(row)
            ready.extend(waiting.pop(str(row[key_at]), ()))
        if out:
            yield out
    left = [row for rows in waiting.values() for row in rows]
    if left:
        yield left


def _excess(column: str, value: str, scale: int, kind: Kind) -> str:
    """Why a row is refused: a decimal or time with more digits than its target column keeps."""
    digits = "digits of a second" if kind in (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ) else "decimals"
    return f"{column}: {value} has more {digits} than the target keeps ({scale})"


def _inner(writer: bulk.Writer, kind: type[bulk.Writer]) -> bulk.Writer | None:
    """The writer of type ``kind`` in the chain of wrappers ``writer`` is (``_Guard``, ``_Merging``)."""
    while not isinstance(writer, kind):
        if not isinstance(writer, (_Merging, _Guard)):
            return None
        writer = writer.inner
    return writer


def _refused(
    rows: Sequence[tuple[Any, ...]], attempt: Callable[[Sequence[tuple[Any, ...]]], Exception | None]
) -> dict[int, str]:
    """The rows ``attempt`` refuses alone, by index, with the reason: a part it refuses is halved, a
    part it takes is done with."""
    refused: dict[int, str] = {}

    def find(low: int, high: int) -> None:
        if high <= low:
            return
        error = attempt(rows[low:high])
        if error is None:
            return
        if isinstance(error, ParityError):  # (the table's failure, not these rows' refusal)
            raise error
        raise_unless_refusal(error)
        if high - low == 1:
            refused[low] = _reason(error)
            return
        middle = (low + high) // 2
        find(low, middle)
        find(middle, high)

    find(0, len(rows))
    return refused


def _under_savepoint(
    conn: Connection, dialect: Any, writer: bulk.Writer, rows: Sequence[tuple[Any, ...]]
) -> Exception | None:
    """Write rows inside a savepoint; on refusal roll back to it and return why."""
    savepoint = dialect.savepoint(conn)
    try:
        writer.write(rows)
    except ParityError:  # (no refusal of these rows: the table's failure)
        savepoint.rollback()
        raise
    except Exception as exc:
        roll_back_to(savepoint, exc)
        return exc
    savepoint.commit()
    return None


@contextmanager
def _fk_checks_off(conn: Connection, dialect: Any, wanted: bool) -> Iterator[None]:
    """FK checks off for this session while a cycle's rows load (what mysqldump and pg_restore do)."""
    switch = dialect.FK_CHECKS if wanted else None
    if switch:
        try:
            execute_raw(conn, switch[0])
            conn.commit()
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            logger.warning("cannot switch FK checks off (%s); cycle rows may be refused", driver_message(exc))
            switch = None
    try:
        yield
    finally:
        if switch:
            execute_raw(conn, switch[1])
            conn.commit()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, sa.exc.DBAPIError) or hasattr(exc, "diag"):  # (psycopg's own: COPY's errors)
        return driver_message(exc)
    orig: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(orig) >= 2 and isinstance(orig[0], int):
        return f"{orig[1]} (error {orig[0]})"
    return textread.first_line(exc)


def _streaming_cursor(conn: Connection) -> Any:
    """A driver cursor that streams a SELECT's rows as tuples, for the drivers parity knows; else None
    (then SQLAlchemy's ``stream_results`` is used)."""
    driver = conn.dialect.driver
    if driver not in ("psycopg", "pymysql", "pysqlite"):
        return None
    raw: Any = conn.connection.driver_connection
    if driver == "psycopg":
        return raw.cursor(name="parity_read")  # server-side: FETCH FORWARD n per fetchmany
    if driver == "pymysql":
        import pymysql.cursors

        return raw.cursor(pymysql.cursors.SSCursor)  # unbuffered
    return raw.cursor()  # sqlite3 steps through the rows as they are fetched


def _execute_streaming(conn: Connection, cursor: Any, sql: str, params: Any) -> None:
    """Execute on a ``_streaming_cursor``. PyMySQL parses DATETIME and TIMESTAMP text with a regex in
    Python; for this result it uses the C ``datetime.fromisoformat``, falling back to PyMySQL's own
    converter for whatever that does not read (zero dates, other fraction widths on Python 3.10)."""
    if conn.dialect.driver != "pymysql":
        cursor.execute(sql, params)
        return
    from pymysql.constants import FIELD_TYPE

    raw = cursor.connection
    saved = raw.decoders
    faster = dict(saved)
    for field_type in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
        if field_type in saved:
            faster[field_type] = _iso_datetime(saved[field_type])
    raw.decoders = faster
    try:
        cursor.execute(sql, params)  # the result's converters are chosen here, from its columns
    finally:
        raw.decoders = saved


def _iso_datetime(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    parse = datetime.fromisoformat

    def convert(text: Any) -> Any:
        try:
            return parse(text)
        except (TypeError, ValueError):
            return fallback(text)

    return convert


def _drain(batches: queue.Queue[Any], counted: list[int] | None = None) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        item = batches.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            if isinstance(item, sa.exc.DBAPIError):
                raise ParityError(f"reading the source failed: {driver_message(item)}") from item
            if isinstance(item, ValueError | TypeError | ArithmeticError):  # (a value of no kind's form)
                raise ParityError(f"reading the source failed: {log.redact(str(item))}") from item
            raise item
        if counted is not None:
            counted.append(len(item))
        yield item


def _sqlite_file(endpoint: Any) -> bool:
    database = endpoint.url.database or ""
    memory = "mode=memory" in database or endpoint.url.query.get("mode") == "memory"
    return database not in ("", ":memory:") and not memory


def _plain(params: Sequence[Any]) -> bool:
    """Whether a statement's (positional: SQLite's) parameters are all of the types ADBC binds as the
    sqlite3 module does (a datetime it would bind otherwise)."""
    return all(type(v) in (int, float, str, type(None)) for v in params)


def _lanes(job: Job, workers: int, in_processes: bool) -> int:
    """How many chunks of a table are copied at once: one where either side takes chunks one at a time
    (SQLite's in-process reads and writes), else the workers, but no more than the cores where each
    chunk is read in a reader process (more only contend, and each holds its batches: 1M rows, 2
    cores, 4 workers: as fast as 2, 315 MB against 222-265 MB, all processes' proportional set size)."""
    if not (job.target.dialect.PARALLEL_CHUNKS and (job.source.dialect.PARALLEL_CHUNKS or in_processes)):
        return 1
    return min(workers, os.cpu_count() or 1) if in_processes else workers


def _may_read_in_processes(job: Job) -> bool:
    """``_reads_in_processes`` as the URLs alone tell it, before any engine is made or connected (a
    driver named in the URL, or mysqlclient missing, may still say no): the fork server then starts
    loading parity at once, and is ready when the first chunk is (a fork server not used costs one
    idle process)."""
    if not textread.READ_PROCESSES:
        return False
    source, target = job.source, job.target
    if source.backend == "sqlite":
        return _sqlite_file(source)
    writer = REGISTRY.get(target.backend, Dialect).WRITER
    return source.backend in ("postgresql", "mysql", "mariadb") and bulk.WRITERS[writer].PARSES_TEXT


def _reads_in_processes(job: Job) -> bool:
    """Whether text chunks are read in reader processes: from an SQLite file (its values are made
    text in Python), or from PostgreSQL or MySQL/MariaDB (through mysqlclient) into a writer that
    parses the text (``Writer.PARSES_TEXT``)."""
    if not textread.READ_PROCESSES:
        return False
    source, writer = job.source, bulk.WRITERS[job.target.writer]
    if source.backend == "sqlite":
        return _sqlite_file(source) and source.engine.dialect.driver == "pysqlite"
    if source.backend == "postgresql":
        return source.engine.dialect.driver == "psycopg" and writer.PARSES_TEXT
    return mysqlclient_serves(source) and writer.PARSES_TEXT
