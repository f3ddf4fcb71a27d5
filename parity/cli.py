"""The command line. The only module that imports Click and renders with Rich; each command parses
its options, calls one library function of the same name, and renders the result."""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import click
import sqlalchemy as sa
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table as RichTable

from parity import __version__, log
from parity.endpoint import driver_message
from parity.errors import ConfigError, ConnectionFailed, ParityError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_DEBUG_LEVELS = click.Choice(["low", "medium", "high"])


class _State:
    debug: str | None = None
    log_file: str | None = None


def _job_options(fn: Callable[..., Any] | None = None, *, short_c: bool = True) -> Any:
    """Options every data command shares: URLs, tables, schemas, job file, include/exclude. The job file
    is ``-j``/``--config``, and ``-c`` too except where ``short_c`` is False (diff: there ``-c`` names
    columns, as in data-diff and reladiff)."""
    if fn is None:
        return functools.partial(_job_options, short_c=short_c)
    names = ["-c", "-j", "--config"] if short_c else ["-j", "--config"]
    decorators = [
        click.argument("source_url", required=False),
        click.argument("target_url", required=False),
        click.option(*names, "config_file", type=click.Path(dir_okay=False), help="Job file (YAML)."),
        click.option(
            "-t",
            "--table",
            "tables",
            multiple=True,
            help="SRC_TABLE[:DST_TABLE]; repeatable, or comma-separated. Default: all tables.",
        ),
        click.option("--source-schema", help="Schema (or MariaDB database) to read from."),
        click.option("--target-schema", help="Schema (or MariaDB database) to write to."),
        click.option("--include", multiple=True, help="Table name pattern to include (glob); repeatable."),
        click.option("--exclude", multiple=True, help="Table name pattern to exclude (glob); repeatable."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


DISCREPANCIES = "_parity_discrepancies"
"""The discrepancy table ``parity fix`` reads unless told another."""


def _writable(path: str | None, option: str) -> None:
    """A file parity will write, checked before any work: its folder must exist and take files (a
    rejects file that could not be opened failed the copy at its first reject, its rows written)."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{option} {path}: there is no folder {folder}")
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.W_OK):
        raise ConfigError(
            f"{option} {path}: {'the file' if target == path else 'its folder'} is not writable"
        )


def _table_item(given: str) -> str:
    """One ``-t`` table, ``SRC`` or ``SRC:DST``: an empty name would select every table (a sync
    --delete given an unset variable deleted in all of them)."""
    parts = [part.strip() for part in given.split(":")]
    if len(parts) > 2 or not all(parts):
        raise ConfigError(f"-t {given!r}: a table is given as SOURCE or SOURCE:TARGET, names not empty")
    return ":".join(parts)


def _build_job(kw: dict[str, Any], table_options: dict[str, Any] | None = None, **extra: Any) -> Any:
    from parity import job

    for name, value in (table_options or {}).items():
        if name == "key" and value is not None and not all(k.strip() for k in value.split(",")):
            raise ConfigError(f"-k {value!r}: a key is one or more column names, comma-separated")
    built = job.build(
        kw.pop("source_url"),
        kw.pop("target_url"),
        config_file=kw.pop("config_file"),
        tables=[_table_item(t) for given in kw.pop("tables") for t in given.split(",")],
        source_schema=kw.pop("source_schema"),
        target_schema=kw.pop("target_schema"),
        include=kw.pop("include"),
        exclude=kw.pop("exclude"),
        table_options=table_options,
        **extra,
    )
    if _State.debug is None and built.config.log_level:
        log.configure(built.config.log_level, _State.log_file or built.config.log_file)
    for name, pattern in built.left_out():
        _warn(f"table '{name}' is named, and the exclude pattern '{pattern}' leaves it out")
    built.selected()
    for name, outer in built.folded:
        _warn(f"table '{name}' is a partition or child of '{outer}': its rows go with that table's")
    return built


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="parity")
@click.option(
    "--debug",
    type=_DEBUG_LEVELS,
    is_flag=False,
    flag_value="medium",
    default=None,
    help="Write a debug log (low, medium or high; high logs every SQL statement) and show tracebacks.",
)
@click.option(
    "--log-file", type=click.Path(dir_okay=False), help="Where the debug log goes (default parity-debug.log)."
)
def cli(debug: str | None, log_file: str | None) -> None:
    """parity moves data between SQL databases and proves both sides identical."""
    if debug is not None:
        _writable(log_file or "parity-debug.log", "--log-file")
    _State.debug, _State.log_file = debug, log_file
    log.configure(debug, log_file)


@cli.command()
@click.option(
    "--dir", "directory", default="parity-demo", show_default=True, help="Where the demo databases go."
)
@click.option("--target", "target_url", help="Migrate into this database instead of a new SQLite file.")
def demo(directory: str, target_url: str | None) -> None:
    """Build a sample SQLite database, then migrate its schema and data into a new target."""
    from parity import demo as sample
    from parity import job as jobs
    from parity.copy import copy
    from parity.schema.apply import schema_plan

    source, target, counts = sample.prepare(directory, target_url)
    out.print(f"[bold]1. sample source[/] {source}: {len(counts)} tables, {sum(counts.values()):,} rows")
    job = jobs.build(f"sqlite:///{source}", target)
    try:
        out.print(f"[bold]2. schema[/] {job.source} -> {job.target}")
        plan = schema_plan(job)
        for warning in plan.warnings:
            out.print(f"   [yellow]warning:[/] {warning}")
        render_plan_summary(plan)
        out.print(f"   load order: {', '.join(plan.order)}")
        out.print("[bold]3. data[/]")
        with _Progress(True) as progress:
            result = copy(job, mode="replace", progress=progress)
        render_copy_summary(result)
        if not result.ok:
            sys.exit(2)
        _demo_diff_and_sync(job)
    finally:
        job.close()


def _demo_diff_and_sync(job: Any) -> None:
    from parity import demo as sample
    from parity.diff import diff
    from parity.sync import sync

    out.print("[bold]4. drift[/] planted in the target:")
    for line in sample.plant_differences(job.target):
        out.print(f"   {line}")
    out.print("[bold]5. diff[/] (checksums in each database; only differing buckets are downloaded)")
    found = diff(job)
    for table in found.tables:
        if not table.identical:
            render_differences(table)
    downloaded = sum(t.stats.rows_downloaded for t in found.tables)
    out.print(f"   {len(found.differences)} rows differ; {downloaded} rows downloaded in all")
    out.print(
        "[bold]6. sync[/] --delete: insert the missing row, update changed columns, delete the stray row"
    )
    synced = sync(job, extra="delete", detect_changes=False)
    render_sync_summary(synced, dry_run=False)
    again = diff(job)
    out.print(
        f"[bold]7. re-check[/] {'[green]identical[/]' if again.identical else '[red]still different[/]'}"
    )
    if not again.identical:
        sys.exit(1)


@cli.group()
def schema() -> None:
    """Plan or apply the DDL that makes a target hold the source's tables."""


def _warn(text: str, label: str = "[yellow]warning:[/]") -> None:
    """A warning on stderr, and in the debug log (``--debug low`` and up)."""
    err.print(f"{label} {text}")
    log.logger.warning(text)


def _print_plan(plan: Any) -> None:
    for warning in plan.warnings:
        _warn(warning)
    for problem in plan.problems:
        _warn(problem, "[red]problem:[/]")


@schema.command("plan")
@_job_options
def schema_plan_cmd(**kw: Any) -> None:
    """Print the DDL that would make the target hold every selected source table and column."""
    from parity.schema.apply import schema_plan

    job = _build_job(kw)
    plan = schema_plan(job)
    _print_plan(plan)
    sys.stdout.write("\n".join(f"{s.sql.strip()};" for s in plan.steps) + ("\n" if plan.steps else ""))
    if not plan.steps:
        err.print("nothing to do: the target already holds every selected table and column")


@schema.command("apply")
@_job_options
def schema_apply_cmd(**kw: Any) -> None:
    """Create missing tables (with their keys, indexes and FKs) and add missing columns to existing
    ones (their missing indexes and FKs are named, not added). Never drops."""
    from parity.schema.apply import schema_apply

    job = _build_job(kw)
    plan = schema_apply(job)
    _print_plan(plan)
    render_plan_summary(plan)


@cli.command("copy")
@_job_options
@click.option(
    "--mode",
    type=click.Choice(["replace", "append", "merge"]),
    help="replace: empty each target table first; append; merge: upsert by key.",
)
@click.option("-k", "--key", help="Key column(s), comma-separated (merge; tables without a primary key).")
@click.option("--workers", type=click.IntRange(1, 64), help="Parallel chunks (max workers).")
@click.option("--batch-size", type=click.IntRange(1), help="Rows per batch (page size).")
@click.option("--limit", type=click.IntRange(0), help="Copy at most N rows per table (trial runs).")
@click.option("--where", help="SQL condition on the source rows.")
@click.option(
    "--since",
    metavar="COLUMN",
    help="With --mode merge: copy the rows whose COLUMN (updated_at) changed since the last run began.",
)
@click.option(
    "--lookback",
    metavar="DURATION",
    help="With --since: also copy the rows up to DURATION (90, 30s, 10m, 2h, 1d) before the watermark, "
    "which a long transaction may commit late.",
)
@click.option("--no-schema", is_flag=True, help="Do not create or extend target tables.")
@click.option(
    "--rejects",
    "rejects_file",
    type=click.Path(dir_okay=False),
    default="parity-rejects.jsonl",
    show_default=True,
    help="Rows the target refused, with the reason (JSON lines; written only if there are any).",
)
@click.option(
    "--max-rejects",
    type=click.IntRange(0),
    help="Fail a table once more than N of its rows are refused (the chunk being loaded is rolled "
    "back); default: no limit.",
)
@click.option(
    "--remap-ids", is_flag=True, help="Let the target assign new IDs; rewrite child FKs through the map."
)
@click.option("--export-id-map", type=click.Path(dir_okay=False), help="Write the old -> new ID map as JSON.")
@click.option(
    "--atomic",
    is_flag=True,
    help="Copy each table in one transaction: a table that fails leaves none of its rows (its chunks "
    "are one); with --mode replace it is emptied in that transaction too, so it keeps its old rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def copy_cmd(
    mode: str | None,
    key: str | None,
    workers: int | None,
    batch_size: int | None,
    limit: int | None,
    where: str | None,
    since: str | None,
    lookback: str | None,
    no_schema: bool,
    rejects_file: str | None,
    max_rejects: int | None,
    remap_ids: bool,
    export_id_map: str | None,
    atomic: bool,
    as_json: bool,
    **kw: Any,
) -> None:
    """Copy tables from the source into the target: schema first, then rows, fast and resumable."""
    from parity.copy import copy

    given = click.get_current_context().get_parameter_source("rejects_file") != ParameterSource.DEFAULT
    _writable(rejects_file if given else None, "--rejects")  # (the default is written only if rows are)
    _writable(export_id_map, "--export-id-map")
    job = _build_job(kw, {"key": key, "where": where, "since": since, "lookback": lookback}, workers=workers)
    try:
        with _Progress(not as_json) as progress:
            result = copy(
                job,
                mode=mode,  # type: ignore[arg-type]
                workers=workers,
                batch_size=batch_size,
                limit=limit,
                schema=not no_schema,
                rejects_file=rejects_file,
                max_rejects=max_rejects,
                progress=progress,
                remap_ids=remap_ids,
                export_id_map=export_id_map,
                atomic=atomic,
            )
    finally:
        job.close()
    for warning in result.all_warnings:
        _warn(warning)
    if as_json:
        import json

        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render_copy_summary(result)
    if not result.ok:  # (each failed table's reason in one line on stderr, as every error's)
        for t in result.tables:
            if t.status != "ok":
                sys.stderr.write(
                    "parity: error: " + log.redact(f"table '{t.table}' {t.status}: {t.error}") + "\n"
                )
        sys.exit(2)
    if any(t.rejected for t in result.tables):  # (finished, yet not every row arrived)
        sys.exit(1)


class _Progress:
    """A Rich progress bar per table (rows, rows/s, ETA) on stderr, fed by the library's callback."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled and err.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def __enter__(self) -> Callable[[str, int, int | None], None] | None:
        if not self.enabled:
            return None
        self.bar.start()
        return self.update

    def update(self, table: str, done: int, total: int | None) -> None:
        import time

        if table not in self.tasks:
            self.tasks[table] = self.bar.add_task(table, total=total, rate="-")
            self.started[table] = time.perf_counter()
        elapsed = max(time.perf_counter() - self.started[table], 1e-6)
        self.bar.update(self.tasks[table], completed=done, total=total, rate=f"{done / elapsed:,.0f}")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()


def render_copy_summary(result: Any) -> None:
    table = RichTable(title="copy summary")
    for name in ("table", "read", "written", "skipped", "rejected", "seconds", "status"):
        table.add_column(
            name, justify="right" if name in ("read", "written", "skipped", "rejected", "seconds") else "left"
        )
    for t in result.tables:
        status = "[green]ok[/]" if t.status == "ok" else f"[red]{t.status}[/]: {t.error}"
        label = t.table if t.table == t.target else f"{t.table} -> {t.target}"
        table.add_row(
            label,
            f"{t.rows_read:,}",
            f"{t.rows_written:,}",
            f"{t.skipped:,}",
            f"{t.rejected:,}",
            f"{t.seconds:.2f}",
            status,
        )
    if len(result.tables) > 1:  # (a totals line, as sqlite-to-mariadb-migration printed one)
        tables = result.tables
        failed = sum(t.status != "ok" for t in tables)
        table.rows[-1].end_section = True
        table.add_row(
            f"total ({len(tables)} tables)",
            *(
                f"{sum(getattr(t, n) for t in tables):,}"
                for n in ("rows_read", "rows_written", "skipped", "rejected")
            ),
            f"{sum(t.seconds for t in tables):.2f}",
            f"[red]{failed} failed[/]" if failed else "[green]ok[/]",
        )
    out.print(table)
    if result.rejects_file and any(t.rejected for t in result.tables):
        out.print(f"rejected rows written to {result.rejects_file} (run_id {result.run_id})")
    for note in result.notes:
        out.print(_escaped(note))


@cli.command("sync")
@_job_options
@click.option("-k", "--key", help="Key column(s), comma-separated, for tables without a primary key.")
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run, and the counts; change nothing.")
@click.option("--delete", "delete", is_flag=True, help="Delete target rows the source does not have.")
@click.option(
    "--soft-delete", "soft_delete", metavar="COLUMN", help="Mark extra target rows in this column instead."
)
@click.option("--keep-extra", is_flag=True, help="Leave extra target rows alone (default).")
@click.option("--batch-size", type=click.IntRange(1), help="Rows per transaction when applying.")
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent queries per side while comparing.")
@click.option("--no-fk-checks", is_flag=True, help="Switch FK checks off while applying (MySQL, SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--remap-ids",
    is_flag=True,
    help="Write tables whose IDs the target assigned (copy --remap-ids) through the target's ID map.",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Sync again every SECONDS until stopped (Ctrl-C): continuous one-way sync, a line per run.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Compare every table even where the source's binary log has not moved since the last sync"
    " (changes made with sql_log_bin=0 never reach it).",
)
def sync_cmd(
    key: str | None,
    dry_run: bool,
    delete: bool,
    soft_delete: str | None,
    keep_extra: bool,
    batch_size: int | None,
    workers: int | None,
    no_fk_checks: bool,
    as_json: bool,
    remap_ids: bool,
    full: bool,
    watch: float | None,
    **kw: Any,
) -> None:
    """Make the target equal to the source: insert missing rows, update changed columns, then re-check."""
    from parity.sync import sync

    if soft_delete is not None and not soft_delete.strip():
        raise ConfigError("--soft-delete '': give the column that marks extra rows")
    chosen = [
        name
        for name, on in (("--delete", delete), ("--soft-delete", soft_delete), ("--keep-extra", keep_extra))
        if on
    ]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} say different things of extra target rows: give one")
    extra = "soft-delete" if soft_delete else "delete" if delete else "keep"
    if watch is not None and dry_run:
        raise click.UsageError("--watch syncs again and again; a --dry-run changes nothing to watch")
    job = _build_job(kw, {"key": key}, workers=workers)

    def once() -> Any:
        with _DiffProgress() as progress:  # (the diff's bar per table, where stderr is a terminal)
            return run_sync(progress)

    def run_sync(progress: Callable[[Any], None] | None) -> Any:
        return sync(
            job,
            dry_run=dry_run,
            extra=extra,  # type: ignore[arg-type]
            soft_delete_column=soft_delete,
            batch_size=batch_size,
            fk_checks=not no_fk_checks,
            threads=workers,
            remap_ids=remap_ids,
            detect_changes=not full,
            progress=progress,
        )

    try:
        if watch is not None:
            _watch(once, watch, as_json)
            return
        result = once()
    finally:
        job.close()
    if dry_run:
        sys.stdout.write("".join(f"{s}\n" for s in result.statements))
    if as_json:
        import json

        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    else:
        render_sync_summary(result, dry_run)
    if not result.ok:  # (rows the target refused: an error, 2, though the tables differ after it too)
        failed = any(t.failed or t.error for t in result.tables)
        sys.exit(2 if failed or result.verified is None else 1)
    if dry_run and any(t.inserted or t.updated or t.deleted or t.soft_deleted for t in result.tables):
        sys.exit(1)  # (the tables differ, as diff says: nothing was written)


def _watch(once: Callable[[], Any], seconds: float, as_json: bool = False) -> None:
    """Sync, then again every ``seconds`` (from the end of one run to the start of the next) until
    Ctrl-C, a line a run (with the reasons of refused rows; ``as_json``: a JSON object a line); a server out of reach is said and tried again at the next run, any other
    error ends it (exit 2). Stopped, the exit code is the last run's: 0 identical, 1 or 2 not."""
    code = 0
    try:
        while True:
            stamp = time.strftime("%H:%M:%S")
            try:
                result = once()
            except ConnectionFailed as exc:
                err.print(f"{stamp} [red]not synced:[/] {_escaped(log.redact(str(exc)))}")
                code = 2
            else:
                tables = result.tables
                counts = {
                    n: sum(getattr(t, n) for t in tables)
                    for n in ("inserted", "updated", "deleted", "failed")
                }
                counts["deleted"] += sum(t.soft_deleted for t in tables)
                said = ", ".join(f"{v:,} {n}" for n, v in counts.items())
                if all(t.skipped for t in tables):
                    state = "nothing changed"
                elif result.verified:
                    state = "identical"
                else:
                    state = f"[red]not identical[/] ({result.remaining:,} rows differ)"
                failed = [t for t in tables if t.error]
                state += "".join(f"; [red]{t.target} failed:[/] {_escaped(t.error)}" for t in failed)
                if as_json:  # (a JSON object a run, a line each)
                    import json

                    sys.stdout.write(json.dumps({"at": stamp, **result.to_dict()}, default=str) + "\n")
                    sys.stdout.flush()
                else:
                    out.print(f"{stamp} sync: {said}; {state}")
                    for t in tables:  # (the refused rows' reasons, as a single sync prints them)
                        for line in _refused_lines(t):
                            out.print(f"  {line}")
                code = 0 if result.ok else 2 if counts["failed"] or failed else 1
            time.sleep(seconds)
    except KeyboardInterrupt:
        err.print("stopped")
        sys.exit(code)


@cli.command("fix")
@_job_options
@click.option(
    "--run",
    "run_id",
    required=True,
    help="The run id printed by `parity diff --output TABLE`, or `latest`: the run stored last.",
)
@click.option("--apply", is_flag=True, help="Apply the fixes (without it, print the SQL and change nothing).")
@click.option(
    "--dry-run", is_flag=True, help="Print the SQL and change nothing (what fix does without --apply)."
)
@click.option("--delete", is_flag=True, help="Also delete the extra target rows the run found.")
@click.option(
    "--discrepancies",
    "table",
    default=None,
    help="The table in the target that `parity diff --output` wrote (default: the job file's `output:`,"
    f" else {DISCREPANCIES}).",
)
@click.option("-k", "--key", help="Key column(s), comma-separated, as the diff was given them.")
@click.option(
    "--map", "maps", multiple=True, metavar="SRC=DST", help="Column SRC is DST, as the diff was given."
)
def fix_cmd(
    run_id: str,
    apply: bool,
    dry_run: bool,
    delete: bool,
    table: str | None,
    key: str | None,
    maps: tuple[str, ...],
    **kw: Any,
) -> None:
    """Apply the differences a diff run stored: changed columns only; conflicts are reported, not applied.
    Without --apply, print the SQL and exit 1 when there is something to apply (as sync --dry-run)."""
    from parity.diff.output import FILE_SUFFIXES
    from parity.fix import fix

    if apply and dry_run:
        raise click.UsageError("--apply and --dry-run exclude each other")
    job = _build_job(kw, {"key": key, "map": _pairs(maps, "--map", str)})
    stored = job.config.output
    if table is None:  # (the job file's diff output, where it is a table)
        table = stored if stored and not stored.lower().endswith(FILE_SUFFIXES) else DISCREPANCIES
    try:
        result = fix(job, run_id, apply=apply, delete=delete, table=table)
    finally:
        job.close()
    if not apply:
        sys.stdout.write("".join(f"{s}\n" for s in result.statements))
    verb = "applied" if apply else "to apply (dry run; --apply to run)"
    already = f"; {result.already} already as the source has them" if result.already else ""
    which = f"run {result.run_id}: " if run_id != result.run_id else ""
    err.print(
        f"{which}{verb}: {result.inserted} inserts, {result.updated} updates, {result.deleted} deletes{already}"
    )
    for conflict in result.conflicts:
        err.print(f"[yellow]conflict, left alone:[/] {conflict}")
    for error in result.errors[:5]:
        err.print(f"[red]failed:[/] {_escaped(error)}")
    if len(result.errors) > 5:
        err.print(f"[red]failed:[/] {len(result.errors) - 5} more rows ({result.failed} in all)")
    if result.failed:
        sys.exit(2)
    if result.conflicts:  # (rows left differing, as diff's and sync's exit code 1 says)
        sys.exit(1)
    if not apply and result.inserted + result.updated + result.deleted:  # (as sync --dry-run)
        sys.exit(1)


def _refused_lines(t: Any) -> list[str]:
    """A synced table's first three refused rows, each with its reason, and how many more: an error
    names its table first (for --json), not twice here."""
    lines = [f"[red]{t.target}:[/] {_escaped(e.removeprefix(f'{t.target} '))}" for e in t.errors[:3]]
    if len(t.errors) > 3:
        lines.append(f"[red]{t.target}:[/] and {len(t.errors) - 3:,} more (--json lists every one)")
    return lines


def render_sync_summary(result: Any, dry_run: bool) -> None:
    console = err if dry_run else out
    title = "sync plan (dry run: nothing was changed)" if dry_run else "sync summary"
    table = RichTable(title=title)
    for name in ("table", "inserted", "updated", "deleted", "extra kept", "failed"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for t in result.tables:
        deleted = t.deleted + t.soft_deleted
        table.add_row(
            t.target,
            f"{t.inserted:,}",
            f"{t.updated:,}",
            f"{deleted:,}",
            f"{t.extra_kept:,}",
            "[red]not synced[/]" if t.error else f"{t.failed:,}",
        )
    console.print(table)
    for t in result.tables:
        if t.error:
            console.print(f"[red]{t.target}: failed:[/] {_escaped(t.error)}")
        for line in _refused_lines(t):
            console.print(line)
    for note in result.notes:
        console.print(note)
    unsynced = sum(1 for t in result.tables if t.error)
    besides = f" ({unsynced} not synced: see above)" if unsynced else ""
    if any(t.skipped for t in result.tables):
        console.print("[green]nothing to do[/]")
    elif result.verified is True:
        console.print(f"[green]verified:[/] a second diff finds the synced tables identical{besides}")
    elif result.verified is False:
        console.print(f"[red]not identical after sync:[/] {result.remaining} rows still differ")


@cli.command("diff")
@_job_options(short_c=False)
@click.option("-k", "--key", help="Key column(s), comma-separated (default: the primary key).")
@click.option(
    "-c",
    "-C",
    "--column",
    "columns",
    multiple=True,
    help="Column name or glob pattern to compare; repeatable.",
)
@click.option("--map", "maps", multiple=True, metavar="SRC=DST", help="Column SRC is DST in the target.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="COL=N", help="Values within N are equal.")
@click.option("--where", help="SQL condition applied on both sides.")
@click.option("--target-where", help="SQL condition for the target's rows instead (other column names).")
@click.option("--limit", type=click.IntRange(1), help="Stop after N differing rows.")
@click.option(
    "--first",
    type=click.IntRange(1),
    metavar="N",
    help="Compare only each table's first N rows by key (a trial run; a single integer key).",
)
@click.option("--record", metavar="KEY", help="Compare one row (KEY, or K1,K2) and show both versions.")
@click.option("--stats", is_flag=True, help="Print counts per table and column (JSON with --format jsonl).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True,
    help="How differences are printed.",
)  # fmt: skip
@click.option(
    "--output", metavar="TABLE|FILE", help="Write differences to a .jsonl/.csv file, or to this target table."
)
@click.option("--output-mismatches", is_flag=True, help="With --output, print the differences as well.")
@click.option("--threads", type=click.IntRange(1, 64), help="Concurrent queries per database.")
@click.option(
    "--remap-ids",
    is_flag=True,
    help="Read IDs the target assigned (copy --remap-ids) as the source's, through the target's ID map.",
)
def diff_cmd(
    key: str | None,
    columns: tuple[str, ...],
    maps: tuple[str, ...],
    tolerances: tuple[str, ...],
    where: str | None,
    target_where: str | None,
    limit: int | None,
    first: int | None,
    record: str | None,
    stats: bool,
    fmt: str,
    output: str | None,
    output_mismatches: bool,
    threads: int | None,
    remap_ids: bool,
    **kw: Any,
) -> None:
    """Compare tables in both databases: exit 0 when identical, 1 when rows differ, 2 on error."""
    import uuid

    from parity.diff import diff

    if any(c.lower().endswith((".yaml", ".yml")) for c in columns):
        raise click.UsageError(
            "-c names columns in diff (as in data-diff); give a job file with --config or -j"
        )
    options = {
        "key": key,
        "columns": list(columns) or None,
        "map": _pairs(maps, "--map", str),
        "tolerance": _pairs(tolerances, "--tolerance", float),
        "where": where,
        "target_where": target_where,
    }
    from parity.diff.output import FILE_SUFFIXES

    job_file = kw.get("config_file")  # (its natural keys, maps ...: the fix it names needs them as diff did)
    job = _build_job(kw, options, workers=threads)
    output = output or job.config.output
    try:
        if output_mismatches and output is None:
            raise ConfigError("--output-mismatches prints the rows --output writes: give --output too")
        if output is not None and output.lower().endswith(FILE_SUFFIXES):
            _writable(output, "--output")
    except ConfigError:
        job.close()
        raise
    show = output is None or output_mismatches
    run_id = uuid.uuid4().hex
    printer = _DiffPrinter(fmt, run_id) if show and fmt != "table" and not record else None
    shown = _FirstDifferences() if show and fmt == "table" and not record else None
    try:
        with _DiffProgress() as progress:
            result = diff(
                job,
                limit=limit,
                record=record,
                first=first,
                threads=threads,
                output=output,
                on_difference=printer.write if printer else shown.add if shown else None,
                progress=progress,
                run_id=run_id,
                remap_ids=remap_ids,
            )
    finally:
        job.close()
    for table in result.tables:
        for warning in table.warnings:
            _warn(warning)
        if table.record is not None:
            render_record(table, fmt)
        elif shown is not None:
            render_differences(table, shown.of(table.stats.table))
        _diff_summary(table)
    if stats:
        render_diff_stats(result, fmt)
    if output is not None and not result.identical:
        if output.lower().endswith(FILE_SUFFIXES):
            err.print(f"differences written to {output}, run id {run_id}")
        elif any(t.through_map is not None and not t.through_map.translates for t in result.tables):
            err.print(f"differences written to table {output}, run id {run_id} (IDs compared as the target "
                      "holds them: parity fix refuses tables whose IDs the target assigned; diff them with "
                      "--remap-ids)")  # fmt: skip
        else:
            named = "" if output == DISCREPANCIES else f" --discrepancies {output}"
            endpoints = f"-j {job_file}" if job_file else "SOURCE TARGET"
            err.print(f"differences written to table {output}, run id {run_id}: review and apply them with "
                      f"parity fix {endpoints} --run {run_id}{named}")  # fmt: skip
    if result.failed:
        names = ", ".join(t.stats.table for t in result.failed)
        err.print(f"parity: error: {len(result.failed)} of {len(result.tables)} tables not compared: {names}")
        sys.exit(2)
    if not result.identical:
        sys.exit(1)


def _pairs(items: tuple[str, ...], option: str, convert: Callable[[str], Any]) -> dict[str, Any] | None:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not (sep and name.strip() and value.strip()):
                raise ValueError
            out[name.strip()] = convert(value.strip())
        except ValueError:
            raise click.BadParameter(f"expected NAME=VALUE, got '{item}'", param_hint=option) from None
    return out or None


class _DiffPrinter:
    """Differences printed as they are found: JSON lines, or CSV discrepancy rows."""

    def __init__(self, fmt: str, run_id: str) -> None:
        import json

        from parity.diff import output

        self.fmt, self.run_id, self.json, self.output = fmt, run_id, json, output
        self.at = output.run_time(run_id)
        if fmt == "csv":
            sys.stdout.write(output.csv_line(output.FIELDS))

    def write(self, diff: Any) -> None:
        if self.fmt == "jsonl":
            sys.stdout.write(self.json.dumps(diff.to_json(), ensure_ascii=False) + "\n")
            return
        sys.stdout.write(self.output.csv_lines(self.run_id, self.at, diff))


class _DiffProgress:
    """A Rich progress bar per table on stderr (rows settled: equal, or compared)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.enabled = err.is_terminal
        label = TextColumn("diff {task.description}")
        self.bar = Progress(label, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Callable[[Any], None] | None:
        if not self.enabled:
            return None
        self.bar.start()
        return self.update

    def update(self, report: Any) -> None:
        if report.table not in self.tasks:
            self.tasks[report.table] = self.bar.add_task(report.table, total=report.total or None)
        self.bar.update(self.tasks[report.table], completed=report.done, total=report.total or None)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()


def _diff_summary(table: Any) -> None:
    s = table.stats
    label = s.table if s.table == s.target_table else f"{s.table} -> {s.target_table}"
    if s.error is not None:
        err.print(f"[red]{label}: not compared:[/] {_escaped(s.error)}")
        return
    timing = f"{s.rows_downloaded:,} rows downloaded, {s.seconds:.2f}s"
    if s.differences == 0:
        err.print(f"[green]{label}: identical[/] ({s.source_rows:,} rows; {timing})")
        return
    more = " (stopped at --limit)" if table.limited else ""
    err.print(
        f"[red]{label}: {s.differences:,} rows differ[/]{more}: {s.missing:,} missing, {s.extra:,} extra, "
        f"{s.changed:,} changed ({timing})"
    )


class _FirstDifferences:
    """The first ``SHOWN`` differing rows of each table, which the table format prints: a terminal
    shows no more usefully, and a table of 80,000 took Rich a minute and a half (the audit); the
    others are counted, and jsonl, csv or --output give them all."""

    SHOWN = 1000

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {}

    def add(self, diff: Any) -> None:
        kept = self.rows.setdefault(diff.table, [])
        if len(kept) < self.SHOWN:
            kept.append(diff)

    def of(self, table: str) -> list[Any]:
        return self.rows.get(table, [])


def render_differences(table: Any, rows: list[Any] | None = None) -> None:
    """The differences of a table (``rows``: the first of them, where the others were not kept)."""
    from rich.markup import escape

    from parity.diff.result import value_text

    differences = table.differences if rows is None else rows
    if not differences:
        return
    rich = RichTable(title=f"{table.stats.table}: differences", show_lines=False)
    for name in ("kind", "key", "column", "source", "target"):
        rich.add_column(name, overflow="fold")
    left = table.stats.differences - len(differences)
    if left > 0:
        rich.caption = (
            f"and {left:,} more differing rows: --format jsonl or csv prints them all, --output stores them"
        )
    for d in differences:
        key = ", ".join(f"{escape(k)}={_shown(value_text(v))}" for k, v in d.key.items())
        if d.kind != "changed":
            row = d.source if d.kind == "missing" else d.target
            whole = ", ".join(f"{k}={_shown(value_text(v))}" for k, v in (row or {}).items())
            cells = (whole, "") if d.kind == "missing" else ("", whole)
            rich.add_row(d.kind, key, "", *cells)
            continue
        for column in d.columns:
            source = value_text((d.source or {}).get(column))
            target = value_text(d.target_value(column))
            rich.add_row("changed", key, column, _shown(source), _shown(target))
    out.print(rich)


def _shown(text: str | None) -> str:
    from rich.markup import escape

    if text is None:
        return "[dim]NULL[/]"
    return escape(repr(text) if text != text.strip() or not text else text)


def render_record(table: Any, fmt: str) -> None:
    """``--record``: both versions of the row side by side; differing columns marked."""
    import json

    from parity.diff.result import jsonable, value_text

    view = table.record
    changed = {c for d in table.differences for c in d.columns}
    if fmt == "csv":  # a line per column: both values, and whether they differ
        from parity.diff.output import csv_line

        key = json.dumps({k: jsonable(v) for k, v in view.key.items()}, ensure_ascii=False)
        lines = [csv_line(("table", "key", "column", "target_column", "source", "target", "differs"))]
        for column in [*view.key, *view.columns]:
            target_name = view.names.get(column, column)
            values = [None if side is None else value_text(side.get(name))
                      for side, name in ((view.source, column), (view.target, target_name))]  # fmt: skip
            differs = "yes" if column in changed else "no"
            lines.append(csv_line((table.stats.table, key, column, target_name, *values, differs)))
        sys.stdout.write("".join(lines))
        return
    if fmt != "table":
        row = {"table": table.stats.table, "key": {k: jsonable(v) for k, v in view.key.items()}}
        for side in ("source", "target"):
            values = getattr(view, side)
            row[side] = None if values is None else {k: jsonable(v) for k, v in values.items()}
        row["columns"] = sorted(changed)
        kinds = {d.kind for d in table.differences}  # (at most one: the record's row)
        row["kind"] = kinds.pop() if kinds else ("identical" if view.source or view.target else "absent")
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    from rich.markup import escape

    shown = ", ".join(f"{escape(k)}={_shown(value_text(v))}" for k, v in view.key.items())
    rich = RichTable(title=f"{escape(table.stats.table)}: {shown}")
    for name in ("column", "source", "target", ""):
        rich.add_column(name, overflow="fold")

    def cell(values: dict[str, Any] | None, name: str) -> str:
        return "[dim](no row)[/]" if values is None else _shown(value_text(values.get(name)))

    for column in [*view.key, *view.columns]:
        target_name = view.names.get(column, column)
        source, target = cell(view.source, column), cell(view.target, target_name)
        label = column if target_name == column else f"{column} -> {target_name}"
        rich.add_row(label, source, target, "[red]differs[/]" if column in changed else "")
    out.print(rich)


def render_diff_stats(result: Any, fmt: str) -> None:
    import json

    if fmt == "jsonl":
        for table in result.tables:
            sys.stdout.write(json.dumps({"run_id": result.run_id, "stats": table.stats.to_json()}) + "\n")
        return
    rich = RichTable(title="diff statistics")
    names = ("source_rows", "target_rows", "missing", "extra", "changed", "unchanged", "rows_downloaded")
    rich.add_column("table")
    for name in (*names, "seconds"):
        rich.add_column(name.replace("_", " "), justify="right")
    for t in result.tables:
        if t.stats.error is not None:  # (not compared)
            rich.add_row(t.stats.table, *("-" for _ in names), "-")
            continue
        numbers = t.stats.to_json()
        cells = ("-" if numbers[n] is None else f"{numbers[n]:,}" for n in names)  # (unchanged, at --limit)
        rich.add_row(t.stats.table, *cells, f"{t.stats.seconds:.2f}")
    changes = [(t.stats.table, t.stats.column_changes) for t in result.tables]
    columns = [(table, c, n) for table, found in changes for c, n in sorted(found.items())]
    (err if fmt == "csv" else out).print(rich)
    if columns:
        per_column = RichTable(title="changed values per column")
        for name in ("table", "column", "rows"):
            per_column.add_column(name, justify="right" if name == "rows" else "left")
        for table_name, column, n in columns:
            per_column.add_row(table_name, column, f"{n:,}")
        (err if fmt == "csv" else out).print(per_column)


def render_plan_summary(plan: Any) -> None:
    if not plan.steps:
        out.print("nothing to do: the target already holds every selected table and column")
        return
    table = RichTable(title="schema changes", show_lines=False)
    table.add_column("table")
    table.add_column("changes")
    per_table: dict[str, list[str]] = {}
    for step in plan.steps:
        per_table.setdefault(step.table, []).append(step.action)
    for name, actions in per_table.items():
        summary = ", ".join(
            f"{a} x{actions.count(a)}" if actions.count(a) > 1 else a for a in dict.fromkeys(actions)
        )
        table.add_row(name, summary)
    out.print(table)


def _debug_level_given(args: list[str]) -> list[str]:
    """``--debug`` before a command without a level (``parity --debug diff ...``) means its default
    level: Click would take the command's name for the level."""
    levels = set(_DEBUG_LEVELS.choices)
    out = list(args)
    command = next((i for i, arg in enumerate(out) if arg in cli.commands), len(out))
    moved: list[str] = []  # (given after the command, as users do: they go before it)
    i = command + 1
    while i < len(out):
        if out[i] == "--debug":
            level = [out.pop(i + 1)] if i + 1 < len(out) and out[i + 1] in levels else []
            moved += [out.pop(i), *level]
        elif out[i] == "--log-file" and i + 1 < len(out):
            moved += [out.pop(i), out.pop(i)]
        else:
            i += 1
    out[command:command] = moved
    for i, arg in enumerate(out):
        if arg in cli.commands:  # (the command's own options follow)
            break
        if arg == "--debug" and (i + 1 == len(out) or out[i + 1] not in levels):
            out.insert(i + 1, "medium")
            break
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; a ParityError prints one line and exits 2."""
    argv = _debug_level_given(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="parity", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # (one line, as every error: the usage is a --help away)
        command = exc.ctx.command_path if exc.ctx is not None else "parity"
        _fail(f"{exc.format_message()} (see {command} --help)", 2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except ParityError as exc:
        _fail(str(exc), exc.exit_code)
    except sa.exc.DBAPIError as exc:
        _fail(f"database error: {driver_message(exc)}", 2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug in parity: still one line unless --debug
        _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", 2)


def _fail(message: str, code: int) -> None:
    if _State.debug:
        traceback.print_exc()
    sys.stderr.write(f"parity: error: {log.redact(message)}\n")
    log.logger.error(message)
    sys.exit(code)


def _escaped(text: str) -> str:
    """Text printed as it is, not read as Rich markup (a message may hold square brackets)."""
    from rich.markup import escape

    return escape(text)
