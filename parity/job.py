"""A job: two endpoints and the tables to work on, from a job file, options, or both (options win)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from parity import config as cfg
from parity.endpoint import Endpoint
from parity.errors import ConfigError, not_found
from parity.schema import reflect as rf
from parity.schema.model import Column, ForeignKey, Index, Table
from parity.schema.types import CanonicalType, parse


@dataclass
class Job:
    """Resolved settings for one run of a command."""

    source: Endpoint
    target: Endpoint
    config: cfg.JobConfig
    table_options: dict[str, Any] = field(default_factory=dict)
    """Options given for every table (``-k``, ``--where`` ...) when no table is named."""

    target_names: dict[str, str] = field(default_factory=dict)
    """Source table -> target table, of every table the job file or the options name (selected or
    not: a table copied by an earlier run, whose ID map a child copied now is rewritten through)."""

    _selected: list[cfg.TableConfig] | None = field(default=None, repr=False)

    folded: list[tuple[str, str]] = field(default_factory=list)
    """Tables left out of the selection as a selected table's read holds their rows, each with it."""

    def selected(self) -> list[cfg.TableConfig]:
        """Per-table settings for every selected source table, in the order given or sorted."""
        if self._selected is None:
            available = rf.table_names(self.source)
            explicit = [t.name for t in self.config.tables]
            names = rf.select_tables(
                available,
                explicit,
                self.config.include,
                self.config.exclude,
                self.source.redacted(),
                views=lambda: rf.view_names(self.source),
            )
            names = self._outer(names, explicit)
            listed = {t.name for t in self.config.tables}
            self._selected = [
                self.config.table(n) if n in listed else cfg.TableConfig(name=n, **self.table_options)
                for n in names
            ]
        return self._selected

    def _outer(self, names: list[str], explicit: list[str]) -> list[str]:
        """The selected tables less those a selected table's read includes already (PostgreSQL's
        partitions and INHERITS children, whose rows their parent's read holds: each was copied and
        compared twice, once in its parent); named beside such a table, a table is an error."""
        inner = rf.inner_tables(self.source)
        if not inner:
            return names
        chosen, kept = set(names), []
        for name in names:
            outer, seen = inner.get(name), {name}
            while outer is not None and outer not in chosen and outer not in seen:
                seen.add(outer)
                outer = inner.get(outer)
            if outer is None or outer not in chosen:
                kept.append(name)
            elif name in explicit:
                raise ConfigError(
                    f"table '{name}' is a partition or child of '{outer}', whose rows include its:"
                    " select one of them"
                )
            else:
                self.folded.append((name, outer))
        return kept

    def left_out(self) -> list[tuple[str, str]]:
        """The tables named (``-t``, ``tables:``) that an exclude pattern leaves out, each with the
        first such pattern: said, not dropped without a word."""
        out = []
        for table in self.config.tables:
            pattern = next((p for p in self.config.exclude if fnmatch.fnmatchcase(table.name, p)), None)
            if pattern is not None:
                out.append((table.name, pattern))
        return out

    def names(self) -> dict[str, str]:
        return {t.name: t.target or t.name for t in self.selected()}

    def common_tables(self) -> list[str]:
        """Where no table is named (``-t``, ``tables:``), leave out of the selection the tables the
        target does not hold (sync's "all common tables", as scsc-mysql-sync.md's users know it), and
        return their names; a table named must be there (the run says which is not)."""
        if self.config.tables:
            return []
        self.target.require_file()  # (an SQLite target would be created empty)
        fold = str.lower if self.target.dialect.TABLE_NAMES_IGNORE_CASE else str
        held = {fold(name) for name in rf.table_names(self.target)}
        selected = self.selected()
        self._selected = [t for t in selected if fold(t.target or t.name) in held]
        if not self._selected:
            raise ConfigError(
                f"no table to sync: the target holds none of the source's {len(selected)} selected tables "
                "(parity copy makes them)"
            )
        return [t.name for t in selected if t not in self._selected]

    def source_tables(self) -> list[Table]:
        """Reflect the selected source tables, shaped by each table's column settings."""
        specs = self.selected()
        overrides = {t.name: {c: parse(s) for c, s in t.types.items()} for t in specs}
        tables = rf.reflect(self.source, [t.name for t in specs], overrides)
        maps = {t.name: t.map for t in specs}
        return [shape(table, spec, maps) for table, spec in zip(tables, specs, strict=True)]

    def close(self) -> None:
        self.source.dispose()
        self.target.dispose()


def where_clause(sql: str) -> sa.TextClause:
    """A user's ``--where`` as SQL text, exactly as written: its colons are not bind parameters (a
    ``'x :y'`` literal would otherwise be bound to nothing: no rows on MySQL, an error elsewhere)."""
    return sa.text("(" + sql.replace(":", "\\:") + ")")


def aggregate_row(
    table: sa.TableClause, aggregates: Sequence[Any], conditions: Sequence[Any]
) -> sa.Select[Any]:
    """One row of aggregates over the table's rows meeting the conditions: over a whole table, each
    aggregate its own scalar subquery (SQLite finds a key's min() or max() alone in its b-tree, both at
    once only by a scan: a tenth of a second a million rows); under conditions, one query (one scan of
    the rows they keep)."""
    if conditions:
        return sa.select(*aggregates).select_from(table).where(*conditions)
    return sa.select(*(sa.select(a).select_from(table).scalar_subquery() for a in aggregates))


def shape(table: Table, spec: cfg.TableConfig, maps: dict[str, dict[str, str]]) -> Table:
    """Keep the selected columns and give them their target names."""
    names = table.column_names
    for col in [*spec.map, *(spec.key or ()), *(spec.natural_key or ())]:
        if col not in names:
            raise not_found("column", col, names, where=f"table '{table.name}'")
    for pattern in spec.exclude_columns:  # glob patterns, like columns: a pattern matching nothing is a typo
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise not_found("column", pattern, names, where=f"table '{table.name}'")
    keep = select_columns(names, spec.columns, spec.exclude_columns, table.name)
    rename = spec.map

    def cols(seq: Iterable[str]) -> tuple[str, ...]:
        return tuple(rename.get(c, c) for c in seq)

    def kept(seq: Sequence[str]) -> bool:
        return all(c in keep for c in seq)

    columns = tuple(replace(c, name=rename.get(c.name, c.name)) for c in table.columns if c.name in keep)
    fks = tuple(
        replace(
            fk,
            columns=cols(fk.columns),
            ref_columns=tuple(maps.get(fk.ref_table, {}).get(c, c) for c in fk.ref_columns),
        )
        for fk in table.foreign_keys
        if kept(fk.columns)
    )
    extra: dict[str, Any] = {}
    if (rename or len(keep) < len(names)) and (table.checks or any(c.generated for c in columns)):
        # their SQL may name the columns that were renamed or left out: not carried over
        extra["checks"] = ()
        columns = tuple(
            replace(c, generated=replace(c.generated, expression=None)) if c.generated else c for c in columns
        )
        if table.checks:  # (the computed columns say so themselves, where they are created)
            extra["notes"] = (
                *table.notes,
                f"{table.name}: columns renamed or left out, so its CHECK constraints are not carried over",
            )
    return replace(
        table,
        **extra,
        columns=columns,
        primary_key=cols(table.primary_key) if kept(table.primary_key) else (),
        uniques=tuple(replace(u, columns=cols(u.columns)) for u in table.uniques if kept(u.columns)),
        indexes=tuple(
            replace(i, columns=cols(i.columns), include=cols(c for c in i.include if c in keep))
            for i in table.indexes
            if kept(i.columns)
        ),
        foreign_keys=fks,
    )


def select_columns(
    names: Sequence[str], include: Sequence[str] | None, exclude: Sequence[str], table: str
) -> list[str]:
    """Columns matching the include patterns (all when none) and no exclude pattern."""
    chosen = list(names)
    if include:
        for pattern in include:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise not_found("column", pattern, names, where=f"table '{table}'")
        chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include)]
    return [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]


def build(
    source_url: str | None = None,
    target_url: str | None = None,
    *,
    config_file: str | None = None,
    tables: Sequence[str] = (),
    source_schema: str | None = None,
    target_schema: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    table_options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    workers: int | None = None,
) -> Job:
    """Merge a job file with options. ``tables`` entries are ``SRC`` or ``SRC:DST``."""
    data: dict[str, Any] = {}
    if config_file:
        given = {"source": source_url, "target": target_url}
        data = cfg.load(config_file, given).model_dump(by_alias=True, exclude_none=True)
    for role, url, schema in (("source", source_url, source_schema), ("target", target_url, target_schema)):
        entry = dict(data.get(role) or {})
        if url:
            entry["url"] = url
        if schema:
            entry["schema"] = schema
        if "url" not in entry:
            raise ConfigError(f"no {role} database: give its URL or a job file with '{role}:'")
        data[role] = entry
    named = {t["name"]: t.get("target") or t["name"] for t in data.get("tables") or []}
    if tables:
        data["tables"] = _merge_tables(data.get("tables") or [], tables, table_options or {})
        if not include:  # (the tables named on the command line are the run's: the file's patterns too
            data.pop("include", None)  # would add to them)
    elif table_options and data.get("tables"):
        data["tables"] = [_with_options(t, table_options) for t in data["tables"]]
    if include:
        data["include"] = list(include)
    if exclude:  # (the file's patterns still hold: a table it keeps out stays out)
        data["exclude"] = list(dict.fromkeys([*(data.get("exclude") or []), *exclude]))
    if defaults:
        data["defaults"] = {
            **(data.get("defaults") or {}),
            **{k: v for k, v in defaults.items() if v is not None},
        }
    job_config = cfg.parse(data, config_file or "options")
    cfg.check_table_options({k: v for k, v in (table_options or {}).items() if v})
    pool = (workers or job_config.defaults.workers) + 4
    source = Endpoint.from_url(job_config.source.url, job_config.source.db_schema, "source", pool)
    target = Endpoint.from_url(job_config.target.url, job_config.target.db_schema, "target", pool)
    named.update({t.name: t.target or t.name for t in job_config.tables})
    return Job(
        source,
        target,
        job_config,
        table_options={k: v for k, v in (table_options or {}).items() if v},
        target_names=named,
    )


def _merge_tables(
    from_file: list[dict[str, Any]], tables: Sequence[str], options: dict[str, Any]
) -> list[dict[str, Any]]:
    known = {t["name"]: t for t in from_file}
    out = []
    given: dict[str, str] = {}
    for item in tables:
        src, _, dst = item.partition(":")
        if src in given:  # (one source table is read once: two targets would be a silent choice)
            raise ConfigError(f"table '{src}' is given twice (-t {given[src]} and -t {item})")
        given[src] = item
        entry = _with_options(dict(known.get(src, {"name": src})), options)
        if dst:
            entry["target"] = dst
        out.append(entry)
    return out


def _with_options(entry: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A job file's table with the command line's options, which win: a ``--map`` or ``--tolerance``
    of a column over the file's for that column (the file's others still hold), a ``--where`` for both
    sides over the file's ``where`` and ``target_where`` (one side filtered by the file's condition, the
    other by the command line's, made rows outside one of them differences), ``-c`` over the file's
    ``columns`` and ``exclude_columns``."""
    out = dict(entry)
    given = {k: v for k, v in options.items() if v}
    for name in ("map", "tolerance"):
        if name in given and out.get(name):
            given[name] = {**out[name], **given[name]}
    if "where" in given and "target_where" not in given:
        out.pop("target_where", None)
    if "columns" in given and "exclude_columns" not in given:  # (-c name, where the file leaves name
        out.pop("exclude_columns", None)  # out: nothing was compared, and the diff said identical)
    out.update(given)
    return out


__all__ = ["CanonicalType", "Column", "ForeignKey", "Index", "Job", "build", "select_columns", "shape"]
