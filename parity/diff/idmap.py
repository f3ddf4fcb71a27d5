"""Diff through the ID map: target tables whose IDs the target assigned (``parity copy --remap-ids``).

Such a table holds other IDs than the source's, and so do its children's references to it; parity's
copy recorded old -> new in the target's ``_parity_id_map``. Diff (given ``--remap-ids``, or a job
that sets ``remap_ids``) reads the target table through that map: its own IDs and its references to
remapped parents are read as the source's IDs, and only the rows the copy wrote or matched are
compared (a live target's other rows are counted and said, not compared). Without it, a target
table the map holds is said to be compared by IDs that cannot match.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from parity.dialects.base import Dialect
from parity.diff.plan import TablePlan
from parity.diff.result import TableDiff
from parity.endpoint import Endpoint
from parity.errors import ConfigError
from parity.job import Job, where_clause
from parity.schema import reflect as rf
from parity.schema.types import INTEGER_KINDS
from parity.state import State


@dataclass(frozen=True)
class ThroughMap:
    """How a target table's IDs meet the source's: which columns the map translates."""

    map_table: sa.Table
    dialect: Dialect
    """The target's dialect."""

    own: str | None = None
    """The target column of the table's own IDs, where the map holds them (rows not in the map are
    left out of the comparison)."""

    references: dict[str, str] = field(default_factory=dict)
    """Target column -> the parent's target table whose map translates it (a reference the map does
    not hold is read as it is: it differs from the source's)."""

    applied: bool = True
    """Whether diff reads the table through the map (else the map was found and not asked for)."""

    shared: dict[str, dict[int, int]] = field(default_factory=dict)
    """Reference column -> {source ID: the least source ID of its target row}, where source rows share
    one target row (their natural key matched one row): a reference to any of them names that row,
    which reads as the least (``_joins``), and compares equal to it (``compare.RowComparer``)."""

    unshared: frozenset[str] = frozenset()
    """Parent tables none of whose target rows several source rows share: a reference to one is joined
    to the map as it is, not to its entries grouped by target row (MariaDB looked each of 300,000
    references up in a grouped copy of the map: 17 s, where the map's own index took 1.3 s)."""

    shadowed: tuple[int, ...] = ()
    """Source IDs of the table's own rows whose target row a lesser source ID shares (their natural
    key matched one row): left out on both sides, the least ID's row standing for that target row (read
    once per source row it was, every sync wrote the next one's values into it)."""

    split: tuple[int, ...] = ()
    """Source IDs the map gives a shared target row whose natural key the source has changed since (not
    the standing row's any more): the target's row is not theirs (its join leaves their entries out), and
    the source's rows are compared as rows the target lacks, which sync inserts (the share broken up)."""

    @property
    def translates(self) -> bool:
        return self.applied and bool(self.own or self.references)

    @property
    def joined(self) -> list[str]:
        """The target columns the map translates."""
        return [*([self.own] if self.own else []), *self.references]

    def refusal(self, table: str, command: str) -> ConfigError:
        """The error of a ``command`` that would write the table's rows with the source's IDs."""
        how = (
            "give it --remap-ids"
            if command == "sync"
            else "fix a run of diff --remap-ids (this run compared the target's own IDs)"
        )
        return ConfigError(
            f"table '{table}': its IDs ({', '.join(self.joined)}) were assigned by the target (copy "
            f"--remap-ids; _parity_id_map holds them), and {command} would write the source's IDs beside "
            f"them: to write through that map, {how}"
        )

    def translated(self, table: str, columns: Sequence[str], schema: str | None, inner: bool = True) -> Any:
        """The target table as diff reads it: a subquery named as the table (a condition may name it,
        and any of its ``columns``), IDs as the source's, of the copy's rows only (``inner``; else every
        row, flagged ``NOT_IN_MAP`` where it is not the copy's). The copy's rows: of a table with IDs
        of its own, those the map holds; of a table of references only, those whose references the map
        holds (one to the live target's own row makes the row the live target's). In the first, a
        reference the map does not hold keeps its value, flagged (``flag``): it equals no source ID."""
        raw = sa.table(table, *(sa.column(c) for c in columns), schema=schema)
        joined, maps = self._joins(raw, table, inner)
        values: dict[str, Any] = {c: sa.cast(m.c.old_id, sa.BigInteger()) for c, m in maps.items()}
        values.update({c: sa.func.coalesce(values[c], raw.c[c]) for c in self.references})
        unmapped = [sa.and_(raw.c[c].is_not(None), maps[c].c.new_id.is_(None)) for c in self.references]
        flags = [_flag(u).label(UNMAPPED + str(i)) for i, u in enumerate(unmapped)]
        theirs = maps[self.own].c.new_id.is_(None) if self.own else sa.or_(*unmapped)
        if not inner:
            flags.append(_flag(theirs).label(NOT_IN_MAP))
        query = sa.select(*(values.get(c, raw.c[c]).label(c) for c in columns), *flags).select_from(joined)
        if inner and not self.own:
            query = query.where(sa.not_(theirs))
        return query.subquery(table)

    def flag(self, view: Any, column: str) -> Any | None:
        """1 where the reference in ``column`` of ``translated``'s view is not in the map, else 0; None
        for a column that is no translated reference."""
        if not self.translates or column not in self.references:
            return None
        return view.c[UNMAPPED + str(list(self.references).index(column))]

    def left_out(self, table: str, columns: Sequence[str], schema: str | None, where: str | None) -> Any:
        """How many of the target's rows are not the copy's (``translated``); ``where`` reads IDs as
        the source's, as diff's does."""
        view = self.translated(table, columns, schema, inner=False)
        query = sa.select(_count(view.c[NOT_IN_MAP] == 1)).select_from(view)
        return query.where(where_clause(where)) if where else query

    def _joins(self, raw: Any, table: str, inner: bool) -> tuple[Any, dict[str, Any]]:
        """The raw table joined to the map once per translated column (``inner``: its own IDs' rows
        only), and the map's alias of each such column."""
        joined: Any = raw
        maps: dict[str, Any] = {}
        for i, column in enumerate(self.joined):
            m: Any = self.map_table.alias(f"parity_ids_{i}")
            own = column == self.own
            if own:  # (an index on (table_name, new_id) serves)
                meets = sa.and_(
                    m.c.table_name == sa.literal(table, sa.String()), self._meets(m, raw.c[column])
                )
                if self.shadowed or self.split:  # (a row shared by source rows: read as the least of them)
                    meets = sa.and_(meets, m.c.old_id.not_in([str(i) for i in (*self.shadowed, *self.split)]))
                joined = joined.join(m, meets) if inner else joined.outerjoin(m, meets)
            elif self.references[column] in self.unshared:  # (one old ID a new one: the map as it is)
                of_parent = m.c.table_name == sa.literal(self.references[column], sa.String())
                joined = joined.outerjoin(m, sa.and_(of_parent, self._meets(m, raw.c[column])))
            else:  # (one old ID a new one: source rows sharing a natural key share their target row)
                parent = self.references[column]
                m = (
                    sa.select(m.c.new_id, sa.func.min(m.c.old_id).label("old_id"))
                    .where(m.c.table_name == sa.literal(parent, sa.String()))
                    .group_by(m.c.new_id)
                    .subquery(f"parity_ids_{i}")
                )
                joined = joined.outerjoin(m, self._meets(m, raw.c[column]))
            maps[column] = m
        return joined, maps

    def _meets(self, m: Any, x: Any) -> Any:
        return m.c.new_id == self.dialect.id_text(x)


UNMAPPED_TEXT = "unmapped:"
"""How a downloaded reference the map does not hold reads (its target value after it)."""

UNMAPPED = "parity_unmapped_"
"""The flag columns of references the map does not hold (``ThroughMap.flag``)."""

NOT_IN_MAP = "parity_not_in_map"


def _flag(condition: Any) -> Any:
    return sa.case((condition, 1), else_=0)


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(_flag(condition)), 0)


def id_map_made(job: Job) -> bool:
    """Whether the target holds ``_parity_id_map`` (a copy with --remap-ids made it)."""
    state = State(job.target)
    return state.id_map.name in state.made()


def plan_through_map(job: Job, plan: TablePlan, asked: bool) -> TablePlan:
    """The plan with how its target table meets the map (``TablePlan.through_map``), where the target's
    map holds the table's IDs or its parents'; ``asked``: diff reads it through the map (else it says
    that the IDs cannot match)."""
    target = plan.target
    by_target = {p.target.name: p for p in (*plan.keys, *plan.columns)}
    by_source = {p.source.name: p for p in (*plan.keys, *plan.columns)}
    # target column -> (the parent's possible target tables, the parent columns it references as
    # each names them); the source's FKs, and the target's (a SQLite source may declare none)
    parents: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    target_fks = {fk.columns: fk for fk in target.foreign_keys if len(fk.columns) == 1}
    for fk in target_fks.values():
        if fk.columns[0] in by_target:
            parents[fk.columns[0]] = [(fk.ref_table, fk.ref_columns)]
    specs = {t.name: t for t in job.config.tables}
    for fk in plan.source.foreign_keys:
        pair = by_source.get(fk.columns[0]) if len(fk.columns) == 1 else None
        if pair is None:
            continue
        named = specs.get(fk.ref_table)
        ref = tuple((named.map if named else {}).get(c, c) for c in fk.ref_columns)
        names = [job.target_names.get(fk.ref_table), fk.ref_table]
        parents.setdefault(pair.target.name, []).extend((n, ref) for n in dict.fromkeys(names) if n)
    parents = {c: ps for c, ps in parents.items() if by_target[c].target.type.kind in INTEGER_KINDS}
    own_column = target.primary_key[0] if len(target.primary_key) == 1 else None
    if own_column is not None and target.column(own_column).type.kind not in INTEGER_KINDS:
        own_column = None
    state = State(job.target)
    held = state.mapped_tables(sorted({target.name, *(n for ps in parents.values() for n, _ in ps)}))
    if not held:
        return plan
    own = own_column if target.name in held else None
    ids = _ids(job, {n for ps in parents.values() for n, _ in ps if n in held} - {target.name})
    ids[target.name] = (own_column,) if own_column else ()
    references = {}  # (a reference to a parent's column other than its ID is no ID: read as it is)
    for column, candidates in parents.items():
        parent = next((n for n, ref in candidates if n in held and (not ref or ids.get(n) == ref)), None)
        if parent is not None:
            references[column] = parent
    if not own and not references:
        return plan
    through = ThroughMap(state.id_map, job.target.dialect, own, references, applied=asked)
    if asked and references:
        unshared = frozenset(p for p in set(references.values()) if not _doubled(job, state, p))
        through = replace(through, shared=_shared(job, state, references), unshared=unshared)
    warnings = list(plan.warnings)
    if asked and own and any(p.target.name == own for p in plan.keys):
        shadowed, split = _shadowed(job, state, plan, own)
        if split:
            through = replace(through, split=split)
        if shadowed:
            through = replace(through, shadowed=shadowed)
            warnings.append(
                f"{target.name}: {len(shadowed)} source rows share their target row with a source row of a "
                f"lesser ID (their natural key matched one row; {_examples(shadowed)}): that row stands "
                "for them"
            )
    if not asked:
        verb = "holds" if len(through.joined) == 1 else "hold"
        warnings.append(
            f"{target.name}: {', '.join(through.joined)} {verb} IDs the target assigned (copy --remap-ids; "
            "_parity_id_map holds them): give --remap-ids to compare them as the source's IDs"
        )
    elif own and not any(p.target.name == own for p in plan.keys):
        keys = ", ".join(p.target.name for p in plan.keys)
        warnings.append(f"{target.name}: compared by {keys}, its IDs ({own}) read through the ID map")
    return replace(plan, through_map=through, warnings=tuple(warnings))


def _shadowed(job: Job, state: State, plan: TablePlan, own: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``ThroughMap.shadowed`` and ``split``: of each group of source IDs the map gives one target row,
    the least that the source still holds stands for it (the least of all where it holds none: that row
    is extra); the others are shadowed, unless the source holds them with another natural key than the
    standing row's now (split)."""
    groups = _groups(job, state, plan.target.name)
    if not groups:
        return (), ()
    column = next(p.source.name for p in plan.keys if p.target.name == own)
    spec = next((t for t in job.selected() if t.name == plan.source.name), None)
    natural = list(spec.natural_key or ()) if spec is not None else []
    table = sa.table(plan.source.name, *(sa.column(c) for c in (column, *natural)), schema=job.source.schema)
    ids = sorted({i for g in groups for i in g})
    held: dict[int, tuple[Any, ...]] = {}
    with job.source.connect() as conn:
        for at in range(0, len(ids), 1000):
            query = sa.select(*table.c).where(table.c[column].in_(ids[at : at + 1000]))
            held.update((int(row[0]), tuple(row[1:])) for row in conn.execute(query))
    shadowed: list[int] = []
    split: list[int] = []
    for group in groups:
        standing = min((i for i in group if i in held), default=min(group))
        for i in group:
            if i != standing:
                apart = i in held and standing in held and held[i] != held[standing]
                (split if apart else shadowed).append(i)
    return tuple(sorted(shadowed)), tuple(sorted(split))


def _doubled(job: Job, state: State, table: str) -> bool:
    """Whether several source rows share a target row of the table in the map (one query, served by
    its (table_name, new_id) index)."""
    m = state.id_map
    of_table = m.c.table_name == sa.literal(table, sa.String())
    query = sa.select(m.c.new_id).where(of_table).group_by(m.c.new_id).having(sa.func.count() > 1).limit(1)
    with job.target.connect() as conn:
        return conn.execute(query).first() is not None


def _groups(job: Job, state: State, table: str) -> list[list[int]]:
    """The source IDs the map gives one target row of the table, a list a row shared by several."""
    m = state.id_map
    of_table = m.c.table_name == sa.literal(table, sa.String())
    doubled = sa.select(m.c.new_id).where(of_table).group_by(m.c.new_id).having(sa.func.count() > 1)
    groups: dict[str, list[int]] = {}
    with job.target.connect() as conn:
        for old, new in conn.execute(
            sa.select(m.c.old_id, m.c.new_id).where(of_table, m.c.new_id.in_(doubled))
        ):
            with suppress(ValueError):
                groups.setdefault(new, []).append(int(old))
    return list(groups.values())


def _examples(ids: Sequence[int]) -> str:
    shown = ", ".join(map(str, ids[:5]))
    return f"IDs {shown}" + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _shared(job: Job, state: State, references: dict[str, str]) -> dict[str, dict[int, int]]:
    """``ThroughMap.shared`` of these references: the map's entries whose target row has several
    source rows (few: one grouped read of the map per parent, served by its (table_name, new_id) index)."""
    out: dict[str, dict[int, int]] = {}
    for parent in sorted(set(references.values())):
        least = {old: min(olds) for olds in _groups(job, state, parent) for old in olds}
        for column, named in references.items():
            if named == parent and least:
                out[column] = least
    return out


def _ids(job: Job, tables: set[str]) -> dict[str, tuple[str, ...]]:
    """The primary key of each of these target tables (the column the map's IDs are in)."""
    return {t.name: t.primary_key for t in rf.reflect(job.target, sorted(tables))} if tables else {}


def refuse_through_map(job: Job, plan: TablePlan, command: str) -> None:
    """One clear error, before any write, where the target's map holds IDs of the table or of its
    parents: writing the source's rows would put the source's IDs beside the ones the target assigned
    (``command`` does not write through the map; a copy with --remap-ids does)."""
    through = plan.through_map or plan_through_map(job, plan, asked=False).through_map
    if through is not None:
        raise through.refusal(plan.target.name, command)


def unmapped_warnings(target: Endpoint, plan: TablePlan, compared: TableDiff) -> list[str]:
    """The rows of the target the map leaves out of the comparison (not the copy's): said, not hidden.
    Counted as the table's rows less those compared, where those are all of them (no condition, no
    limit): a count served by an index, not a second join. (A compared reference the map does not hold
    is a difference of its own, shown as ``unmapped:N``.)"""
    through = plan.through_map
    if through is None or not through.translates or compared.stats.error:
        return []
    where = plan.target_where or plan.where
    with target.connect() as conn:
        if where or compared.limited:
            query = through.left_out(plan.target.name, plan.target.column_names, target.schema, where)
            left = int(conn.execute(query).scalar_one())
        else:
            table = sa.table(plan.target.name, schema=target.schema)
            left = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            left -= compared.stats.target_rows
    if not left:
        return []
    return [
        f"{plan.target.name}: {left:,} rows are not in the ID map (not written by parity's copy): not compared"
    ]


__all__ = ["ThroughMap", "id_map_made", "plan_through_map", "refuse_through_map", "unmapped_warnings"]
