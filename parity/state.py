"""parity's own tables in the target database. Every name starts with ``_parity_``.

``_parity_state`` holds one row per task (a table copy, a sync signature ...) with its status and plan,
and one row per finished chunk, written in the same transaction as the chunk's rows, so that a
killed run resumes exactly where its last commit left it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import TABLE_OPTIONS
from parity.endpoint import Endpoint
from parity.log import logger

TASK_ROW = ""
"""The chunk name of a task's own row (its status and plan)."""


def tables(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    metadata = sa.MetaData(schema=schema)
    state = sa.Table(
        "_parity_state",
        metadata,
        sa.Column("task", sa.String(64), primary_key=True),
        sa.Column("chunk", sa.String(200), primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False, default=0),
        sa.Column("info", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        **TABLE_OPTIONS,
    )
    id_map = sa.Table(
        "_parity_id_map",
        metadata,
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("old_id", sa.String(200), primary_key=True),
        sa.Column("new_id", sa.String(200), nullable=False),
        sa.Index("ix_parity_id_map_new_id", "table_name", "new_id"),  # (diff reads new IDs back as old)
        **TABLE_OPTIONS,
    )
    return metadata, state, id_map


COPY_WAITS = "late"
SYNC_WAITS = "sync late"
"""The references sync (and fix) wrote NULL, waiting for a row the same run inserts after them: set by
its own late phase, forgotten by the next sync, never set by a copy (a sync stopped before its late
phase, and a source changed since, would have copy set a reference the source took back)."""


class State:
    """Read and write parity's state in one target endpoint."""

    def __init__(self, endpoint: Endpoint, waits: str = COPY_WAITS) -> None:
        """``waits``: whose references waiting for a parent this state records and reads
        (``wait_reference``): copy's, or sync's (and fix's) through the ID map, which copy leaves alone."""
        self.endpoint = endpoint
        self.waits = waits
        self.metadata, self.state, self.id_map = tables(endpoint.schema)

    def mapped_tables(self, tables: list[str]) -> set[str]:
        """Those of the (target) tables with rows in ``_parity_id_map`` (none where it is not made yet)."""
        with self.endpoint.connect() as conn:
            if self.id_map.name not in self.endpoint.dialect.table_names(conn, self.endpoint.schema):
                return set()
            m = self.id_map
            found = conn.execute(sa.select(m.c.table_name).where(m.c.table_name.in_(tables)).distinct())
            return {name for (name,) in found}

    def analyze_id_map(self) -> None:
        """Have the database count ``_parity_id_map``'s values anew (``Dialect.ANALYZE``), after a copy
        wrote IDs into it; where the user may not, the plans stay as they were."""
        statement = self.endpoint.dialect.ANALYZE
        if statement is None:
            return
        try:
            with self.endpoint.begin() as conn:
                name = conn.dialect.identifier_preparer.format_table(self.id_map)
                conn.exec_driver_sql(statement.format(table=name)).close()
        except sa.exc.DBAPIError as exc:
            logger.info("_parity_id_map not analyzed: %s", exc)

    def ensure(self, conn: Connection | None = None) -> None:
        if conn is not None:
            self.metadata.create_all(conn, checkfirst=True)
            return
        with self.endpoint.begin() as own:
            self.metadata.create_all(own, checkfirst=True)

    def made(self) -> set[str]:
        """The names of parity's tables the target holds."""
        with self.endpoint.connect() as conn:
            held = set(self.endpoint.dialect.table_names(conn, self.endpoint.schema))
        return {t.name for t in self.metadata.sorted_tables if t.name in held}

    def unmake(self, conn: Connection, kept: set[str]) -> None:
        """Drop parity's tables but those in ``kept``: those this run made for a record it undid."""
        gone = [t for t in self.metadata.sorted_tables if t.name not in kept]
        self.metadata.drop_all(conn, tables=gone, checkfirst=True)

    def task(self, conn: Connection, task: str) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(self.state.c.info).where(self.state.c.task == task, self.state.c.chunk == TASK_ROW)
        ).first()
        return None if row is None else json.loads(row[0])

    def tasks_like(self, conn: Connection, prefix: str) -> dict[str, dict[str, Any]]:
        """Every task whose name begins with ``prefix``, with its info."""
        rows = conn.execute(
            sa.select(self.state.c.task, self.state.c.info).where(
                self.state.c.task.startswith(prefix, autoescape=True), self.state.c.chunk == TASK_ROW
            )
        ).all()
        return {task: json.loads(info) for task, info in rows if info}

    def forget_task(self, conn: Connection, task: str) -> None:
        conn.execute(sa.delete(self.state).where(self.state.c.task == task))

    def start_task(self, conn: Connection, task: str, info: dict[str, Any]) -> None:
        conn.execute(sa.delete(self.state).where(self.state.c.task == task))
        conn.execute(
            sa.insert(self.state).values(
                task=task, chunk=TASK_ROW, rows=0, info=json.dumps(info), updated_at=_now()
            )
        )

    def finish_task(self, conn: Connection, task: str, info: dict[str, Any]) -> None:
        conn.execute(
            sa.update(self.state)
            .where(self.state.c.task == task, self.state.c.chunk == TASK_ROW)
            .values(info=json.dumps(info), updated_at=_now())
        )

    def done_chunks(self, conn: Connection, task: str) -> dict[str, int]:
        rows = conn.execute(
            sa.select(self.state.c.chunk, self.state.c.rows).where(
                self.state.c.task == task, self.state.c.chunk != TASK_ROW
            )
        ).all()
        return {r[0]: int(r[1]) for r in rows}

    def mark_chunk(self, conn: Connection, task: str, chunk: str, rows: int) -> None:
        conn.execute(self._chunk_row(task, chunk, rows))

    def _chunk_row(self, task: str, chunk: str, rows: int) -> sa.Insert:
        return sa.insert(self.state).values(task=task, chunk=chunk, rows=rows, info=None, updated_at=_now())

    def mark_chunk_statement(self, dialect: sa.Dialect, task: str, chunk: str) -> tuple[str, list[Any], int]:
        """``mark_chunk``'s INSERT compiled for ``dialect``, with its positional parameters as the
        dialect's types bind them, and the position of the one that takes the chunk's rows: for a
        connection SQLAlchemy does not hold (a reader process's, through ADBC)."""
        compiled = self._chunk_row(task, chunk, 0).compile(dialect=dialect)
        values = compiled.construct_params()
        names = list(compiled.positiontup or ())
        params = []
        for name in names:
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            params.append(values[name] if process is None else process(values[name]))
        return compiled.string, params, names.index("rows")

    def defer_ddl(self, conn: Connection, when: str, table: str, steps: list[str]) -> None:
        """Record DDL of a table to run later (``when``: "keys", after its rows; "fks", after every
        table's rows), in the transaction that creates the table, so that a rerun still runs it."""
        task = _ddl_task(when, table)
        conn.execute(sa.delete(self.state).where(self.state.c.task == task))
        info = json.dumps({"table": table, "steps": steps})
        conn.execute(
            sa.insert(self.state).values(task=task, chunk=TASK_ROW, rows=0, info=info, updated_at=_now())
        )

    def deferred_ddl(self, conn: Connection, when: str, table: str) -> list[str]:
        info = self.task(conn, _ddl_task(when, table))
        return list(info["steps"]) if info else []

    def all_deferred_ddl(self, conn: Connection, when: str) -> dict[str, list[str]]:
        """``deferred_ddl`` of every table that has some, by table, in one query."""
        return {info["table"]: list(info["steps"]) for info in self.tasks_like(conn, f"{when} ").values()}

    def ran_ddl(self, conn: Connection, when: str, table: str) -> None:
        conn.execute(sa.delete(self.state).where(self.state.c.task == _ddl_task(when, table)))

    def wait_reference(self, conn: Connection, table: str, row: Any, column: str, parent: Any) -> None:
        """Record that a row written with NULL in ``column`` is to point to the new ID of ``parent``
        (an old ID) once that row is copied (``remap.fix_late_references``), with the row."""
        info = json.dumps({"row": row, "column": column, "parent": str(parent)}, default=str)
        chunk = hashlib.sha1(json.dumps([column, str(row)]).encode("utf-8")).hexdigest()
        conn.execute(
            sa.insert(self.state).values(
                task=_late_task(table, self.waits), chunk=chunk, rows=0, info=info, updated_at=_now()
            )
        )

    def waiting_references(self, conn: Connection, table: str) -> list[tuple[str, dict[str, Any]]]:
        rows = conn.execute(
            sa.select(self.state.c.chunk, self.state.c.info).where(
                self.state.c.task == _late_task(table, self.waits)
            )
        ).all()
        return [(r[0], json.loads(r[1])) for r in rows]

    def forget_waits(self, conn: Connection, table: str) -> None:
        """Forget the references of ``table`` waiting for a parent (``wait_reference``), copy's and
        sync's: a sync through the ID map finds them as changed rows, and sets them by the source as it
        is now (set later as recorded, one would undo the source's own change since)."""
        tasks = [_late_task(table, w) for w in (COPY_WAITS, SYNC_WAITS)]
        conn.execute(sa.delete(self.state).where(self.state.c.task.in_(tasks)))

    def forget_rows(self, conn: Connection, tables: list[str]) -> None:
        """Forget what is recorded of the rows of ``tables``, as they are emptied: their old -> new IDs
        (kept, they would make the rows "copied") and their references waiting for a parent."""
        conn.execute(sa.delete(self.id_map).where(self.id_map.c.table_name.in_(tables)))
        tasks = [_late_task(t, w) for t in tables for w in (COPY_WAITS, SYNC_WAITS)]
        conn.execute(sa.delete(self.state).where(self.state.c.task.in_(tasks)))

    def references_set(self, conn: Connection, table: str, chunks: list[str]) -> None:
        for start in range(0, len(chunks), 500):
            conn.execute(
                sa.delete(self.state).where(
                    self.state.c.task == _late_task(table, self.waits),
                    self.state.c.chunk.in_(chunks[start : start + 500]),
                )
            )


def _late_task(table: str, waits: str) -> str:
    return f"{waits} " + hashlib.sha1(table.encode("utf-8")).hexdigest()


def _ddl_task(when: str, table: str) -> str:
    return f"{when} " + hashlib.sha1(table.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
