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
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from parity.dialects.base import Dialect
from parity.diff.plan import TablePlan
from parity.endpoint import Endpoint
from parity.errors import ConfigError
from parity.job import Job, where_clause
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

    @property
    def translates(self) -> bool:
        return self.applied and bool(self.own or self.references)

    @property
    def joined(self) -> list[str]:
        """The target columns the map translates."""
        return [*([self.own] if self.own else []), *self.references]

    def refusal(self, table: str, command: str) -> ConfigError:
        """The error of a ``command`` that would write the table's rows with the source's IDs."""
        return ConfigError(
            f"table '{table}': its IDs ({', '.join(self.joined)}) were assigned by the target (copy "
            f"--remap-ids; _parity_id_map holds them), and {command} does not write through that map: "
            "copy the rows again with --remap-ids (and natural_key), or diff with --remap-ids to see them"
        )

    def translated(self, table: str, columns: Sequence[str], schema: str | None) -> Any:
        """The target table as diff reads it: a subquery of its ``columns`` (all of them: a condition
        may name any), IDs as the source's, of the rows in the map only."""
        raw = sa.table(table, *(sa.column(c) for c in columns), schema=schema)
        joined, maps = self._joins(raw, table, inner=True)
        values: dict[str, Any] = {c: sa.cast(m.c.old_id, sa.BigInteger()) for c, m in maps.items()}
        values.update({c: sa.func.coalesce(values[c], raw.c[c]) for c in self.references})
        query = sa.select(*(values.get(c, raw.c[c]).label(c) for c in columns)).select_from(joined)
        return query.subquery("parity_through_map")

    def left_out(self, table: str, schema: str | None, where: str | None) -> sa.Select[Any]:
        """One row: the target's rows not in the map (left out), and per reference the rows whose
        reference the map does not hold (compared as they are); ``where`` reads the target's own IDs."""
        raw = sa.table(table, *(sa.column(c) for c in self.joined), schema=schema)
        joined, maps = self._joins(raw, table, inner=False)
        held = {c: m.c.new_id.is_not(None) for c, m in maps.items()}
        counts = [
            _count(~held[c] if c == self.own else sa.and_(raw.c[c].is_not(None), ~held[c])) for c in maps
        ]
        query = sa.select(*counts).select_from(joined)
        return query.where(where_clause(where)) if where else query

    def _joins(self, raw: Any, table: str, inner: bool) -> tuple[Any, dict[str, Any]]:
        """The raw table joined to the map once per translated column (``inner``: its own IDs' rows
        only), and the map's alias of each such column."""
        joined: Any = raw
        maps: dict[str, Any] = {}
        for i, column in enumerate(self.joined):
            m = self.map_table.alias(f"parity_ids_{i}")
            own = column == self.own
            meets = sa.and_(
                m.c.table_name == sa.literal(table if own else self.references[column], sa.String()),
                m.c.new_id == self.dialect.id_text(raw.c[column]),  # (an index on (table_name, new_id))
            )
            joined = joined.join(m, meets) if own and inner else joined.outerjoin(m, meets)
            maps[column] = m
        return joined, maps


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def plan_through_map(job: Job, plan: TablePlan, asked: bool) -> TablePlan:
    """The plan with how its target table meets the map (``TablePlan.through_map``), where the target's
    map holds the table's IDs or its parents'; ``asked``: diff reads it through the map (else it says
    that the IDs cannot match)."""
    target = plan.target
    pairs = {p.source.name: p for p in (*plan.keys, *plan.columns)}
    parents: dict[str, list[str]] = {}  # target column -> the parent's possible target tables
    target_fks = {fk.columns: fk.ref_table for fk in target.foreign_keys}
    for fk in plan.source.foreign_keys:
        pair = pairs.get(fk.columns[0]) if len(fk.columns) == 1 else None
        if pair is None or pair.target.type.kind not in INTEGER_KINDS:
            continue
        names = [target_fks.get((pair.target.name,)), job.target_names.get(fk.ref_table), fk.ref_table]
        parents[pair.target.name] = [n for n in dict.fromkeys(names) if n]
    own_column = target.primary_key[0] if len(target.primary_key) == 1 else None
    if own_column is not None and target.column(own_column).type.kind not in INTEGER_KINDS:
        own_column = None
    state = State(job.target)
    held = state.mapped_tables(sorted({target.name, *(n for names in parents.values() for n in names)}))
    if not held:
        return plan
    own = own_column if target.name in held else None
    references = {
        column: next(n for n in names if n in held) for column, names in parents.items() if held & set(names)
    }
    if not own and not references:
        return plan
    through = ThroughMap(state.id_map, job.target.dialect, own, references, applied=asked)
    warnings = list(plan.warnings)
    if not asked:
        ids = [c for c in [own, *references] if c]
        verb = "holds" if len(ids) == 1 else "hold"
        warnings.append(
            f"{target.name}: {', '.join(ids)} {verb} IDs the target assigned (copy --remap-ids; "
            "_parity_id_map holds them): give --remap-ids to compare them as the source's IDs"
        )
    elif own and not any(p.target.name == own for p in plan.keys):
        keys = ", ".join(p.target.name for p in plan.keys)
        warnings.append(f"{target.name}: compared by {keys}, its IDs ({own}) read through the ID map")
    return replace(plan, through_map=through, warnings=tuple(warnings))


def refuse_through_map(job: Job, plan: TablePlan, command: str) -> None:
    """One clear error, before any write, where the target's map holds IDs of the table or of its
    parents: writing the source's rows would put the source's IDs beside the ones the target assigned
    (``command`` does not write through the map; a copy with --remap-ids does)."""
    through = plan.through_map or plan_through_map(job, plan, asked=False).through_map
    if through is not None:
        raise through.refusal(plan.target.name, command)


def unmapped_warnings(target: Endpoint, plan: TablePlan) -> list[str]:
    """What the map leaves out of the comparison of a table read through it: said, not hidden."""
    through = plan.through_map
    if through is None or not through.translates:
        return []
    query = through.left_out(plan.target.name, target.schema, plan.target_where or plan.where)
    with target.connect() as conn:
        counts = [int(n) for n in conn.execute(query).one()]
    out = []
    if through.own:
        if counts[0]:
            out.append(
                f"{plan.target.name}: {counts[0]:,} rows are not in the ID map (not written by parity's "
                "copy): not compared"
            )
        counts = counts[1:]
    for (column, parent), n in zip(through.references.items(), counts, strict=True):
        if n:
            out.append(
                f"{plan.target.name}.{column}: {n:,} rows reference {parent} rows not in the ID map: "
                "compared as they are"
            )
    return out


__all__ = ["ThroughMap", "plan_through_map", "refuse_through_map", "unmapped_warnings"]
