"""``parity schema plan`` and ``parity schema apply``: the library side of both commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa

from parity.endpoint import driver_message, execute_raw
from parity.errors import ParityError, SchemaError
from parity.job import Job
from parity.log import logger
from parity.schema.model import Table
from parity.schema.plan import SchemaPlan, plan_schema
from parity.schema.reflect import reflect, table_names, view_names


def existing_targets(
    job: Job, names: Iterable[str] | None = None, parents_of: Iterable[Table] = ()
) -> dict[str, Table]:
    """Reflect the target tables that already exist under the selected tables' target names (or under
    ``names``), and the tables not selected that ``parents_of`` reference (their FKs to a parent the
    target holds are made), matched as the target matches table names."""
    present = set(table_names(job.target))
    folded = {p.lower(): p for p in present} if job.target.dialect.TABLE_NAMES_IGNORE_CASE else {}
    selected = job.names()
    wanted_names = [*(selected.values() if names is None else names)]
    wanted_names += {
        fk.ref_table
        for table in parents_of
        for fk in table.foreign_keys
        if fk.ref_schema is None and fk.ref_table not in selected and fk.ref_table not in wanted_names
    }
    found = {name: name if name in present else folded.get(name.lower()) for name in wanted_names}
    _no_view_in_place(job, [n for n in selected.values() if found.get(n) is None])
    wanted = {actual: name for name, actual in found.items() if actual is not None}
    return {wanted[t.name]: t for t in reflect(job.target, list(wanted))}  # (by the name parity uses)


def schema_plan(job: Job) -> SchemaPlan:
    """The DDL that would make the target hold every selected source table and column."""
    source = job.source_tables()
    target = job.target
    return plan_schema(
        source,
        target.dialect,
        target.engine.dialect,
        existing_targets(job, parents_of=source),
        schema=target.schema,
        names=job.names(),
        missing_keys=True,
        taken=taken_names(job),
        exact_keys=not job.source.dialect.TEXT_KEYS_FOLD,
        folded_keys=job.source.dialect.TEXT_KEYS_FOLD,
    )


def taken_names(job: Job) -> set[str]:
    """The names in the target's schema a new index or constraint may not take (``Dialect.taken_names``)."""
    with job.target.connect() as conn:
        return job.target.dialect.taken_names(conn, job.target.schema)


def _no_view_in_place(job: Job, missing: Sequence[str]) -> None:
    """A target table to make under the name of a view of the target is an error that says so (the
    database said only that the relation exists, once the source had been read)."""
    if not missing:
        return
    fold = job.target.dialect.TABLE_NAMES_IGNORE_CASE
    views = {v.lower() if fold else v for v in view_names(job.target)}
    for name in missing:
        if (name.lower() if fold else name) in views:
            place = f" in schema '{job.target.schema}'" if job.target.schema else ""
            raise SchemaError(f"target '{name}'{place} is a view: parity writes into tables")


def schema_apply(
    job: Job, plan: SchemaPlan | None = None, then: Callable[[sa.Connection], None] | None = None
) -> SchemaPlan:
    """Plan, then run the plan's DDL. On PostgreSQL the whole plan is one transaction, which also runs
    ``then`` (copy records there what it will build after the rows); where DDL commits on its own,
    ``then`` runs and commits first."""
    plan = plan or schema_plan(job)
    if not plan.steps:
        return plan
    created: list[str] = []
    added: list[tuple[str, str]] = []  # (table, column) of the "add column" steps that ran
    transactional = job.target.dialect.TRANSACTIONAL_DDL
    if then is not None and not transactional:  # (each DDL statement commits: a run stopped among them
        with job.target.begin() as conn:  # must find the record of what waits for the rows)
            then(conn)
    try:
        with job.target.begin() as conn:
            for step in plan.steps:
                logger.info("schema: %s %s", step.action, step.table)
                _run(conn, step.sql, step.table)
                if step.action == "create table":
                    created.append(step.table)
                elif step.action == "add column" and step.column:
                    added.append((step.table, step.column))
            if then is not None and transactional:
                then(conn)
    except ParityError:
        if not job.target.dialect.TRANSACTIONAL_DDL:
            _undo(job, created, added)
        raise
    return plan


def _undo(job: Job, created: list[str], added: Sequence[tuple[str, str]] = ()) -> None:
    """Drop the tables and the columns this apply created (only those: empty, as no row came yet), so
    a failed apply leaves the target as it was (MariaDB commits each DDL statement on its own)."""
    fk_checks = job.target.dialect.FK_CHECKS
    with job.target.connect() as conn:
        if fk_checks:
            execute_raw(conn, fk_checks[0])
        for table, column in reversed(added):
            try:
                execute_raw(
                    conn, f"ALTER TABLE {job.target.qualified(table)} DROP COLUMN {job.target.quote(column)}"
                )
            except sa.exc.DBAPIError as exc:
                logger.warning("could not undo the column %s.%s: %s", table, column, driver_message(exc))
        for table in reversed(created):
            try:
                execute_raw(conn, f"DROP TABLE {job.target.qualified(table)}")
            except sa.exc.DBAPIError as exc:
                logger.warning("could not undo the creation of %s: %s", table, driver_message(exc))
        if fk_checks:
            execute_raw(conn, fk_checks[1])
        conn.commit()


def _run(conn: sa.Connection, sql: str, table: str) -> None:
    try:
        execute_raw(conn, sql)
    except sa.exc.DBAPIError as exc:
        raise ParityError(f"schema change for table '{table}' failed: {driver_message(exc)}") from exc
