"""``parity fix``: apply the discrepancies a ``parity diff --output TABLE`` run stored, after review.

Without ``apply`` it prints the SQL. Each discrepancy is checked against the target as it is now: a row
whose target values changed since the diff is a conflict, reported and left alone. Values written come
from the source as it is now (read by key, exact types), never from the text stored for review.
Extra rows are deleted only with ``delete``. A table the diff read through the ID map (``diff
--remap-ids``) is checked in the source's IDs and written through the map, as ``sync --remap-ids``
writes it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from parity.collector import collected_less
from parity.config import TableConfig
from parity.dialects.base import Dialect
from parity.diff.compare import at_scale, column_equality
from parity.diff.idmap import UNMAPPED_TEXT, plan_through_map, refuse_through_map
from parity.diff.output import TARGET_TABLE, THROUGH_ID_MAP
from parity.diff.plan import TablePlan, plan_table, target_column
from parity.diff.result import RowDiff, TableDiff, TableStats, jsonable, value_text
from parity.endpoint import Endpoint, driver_could_not_load
from parity.errors import ConfigError, NotFound, not_found
from parity.job import Job
from parity.remap import IdMaps, id_number, id_order
from parity.schema.model import Table
from parity.schema.reflect import table_names
from parity.schema.types import STRING_KINDS, Kind
from parity.state import SYNC_WAITS, State
from parity.sync import Applier, run_batches, write_differences
from parity.values import JsonText, canonical_json, decode_value, hex_bytes

DEFAULT_TABLE = "_parity_discrepancies"


@dataclass
class FixResult:
    run_id: str
    applied: bool
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    already: int = 0
    """Discrepancies the target no longer has: it holds the source's values already (an earlier fix)."""
    conflicts: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "statements"}


@dataclass
class _Row:
    kind: str
    key: dict[str, Any]
    columns: dict[str, str | None] = field(default_factory=dict)
    """column -> target value as recorded (changed rows); the whole row as JSON for extra rows."""

    whole: str | None = None


@dataclass
class _Stored:
    """One table's stored discrepancies of a run."""

    compared: str | None
    """The table it was compared with (None in a discrepancy table of an earlier parity)."""
    through: bool
    """Whether the diff read the target through the ID map (keys and references are the source's IDs)."""
    rows: list[_Row]


LATEST = "latest"
"""``--run latest``: the run stored last in the discrepancy table."""


def latest_run(target: Endpoint, table: str) -> str:
    """The id of the run stored last in the discrepancy table (``diffed_at``)."""
    _check_table(target, table)
    t = sa.table(table, sa.column("run_id"), sa.column("diffed_at"), schema=target.schema)
    try:
        with target.connect() as conn:
            row = conn.execute(sa.select(t.c.run_id).order_by(t.c.diffed_at.desc()).limit(1)).first()
    except sa.exc.DBAPIError as exc:
        raise NotFound(f"cannot read discrepancy table '{table}' in {target.redacted()}") from exc
    if row is None:
        raise NotFound(f"no runs in discrepancy table '{table}'")
    return str(row[0])


def _check_table(target: Endpoint, table: str) -> None:
    if table not in table_names(target) and not table.startswith("_parity_"):
        raise not_found("discrepancy table", table, table_names(target), target.redacted())


def read_run(target: Endpoint, table: str, run_id: str) -> dict[str, _Stored]:
    """The stored discrepancies of one run, grouped per table and key."""
    _check_table(target, table)
    names = ["run_id", "table_name", "key", "kind", "column_name", "target_value"]
    try:
        with target.connect() as conn:
            have = {c["name"] for c in target.dialect.columns(conn, table, target.schema)}
            t = sa.table(
                table,
                *(sa.column(c) for c in (*names, TARGET_TABLE, THROUGH_ID_MAP) if c in have),
                schema=target.schema,
            )
            compared = t.c[TARGET_TABLE] if TARGET_TABLE in have else sa.null()
            through = t.c[THROUGH_ID_MAP] if THROUGH_ID_MAP in have else sa.null()
            query = sa.select(*(t.c[c] for c in names[1:]), compared, through).where(t.c.run_id == run_id)
            rows = conn.execute(query).all()
    except (sa.exc.DBAPIError, KeyError, sa.exc.NoSuchTableError) as exc:
        raise NotFound(f"cannot read discrepancy table '{table}' in {target.redacted()}") from exc
    if not rows:
        raise NotFound(f"no discrepancies for run '{run_id}' in table '{table}'")
    grouped: dict[str, dict[str, _Row]] = defaultdict(dict)
    targets: dict[str, tuple[str | None, bool]] = {}
    for row in rows:
        name, key, kind, column, target_value, target_table, through = tuple(row)
        targets[name] = (target_table, bool(through))
        entry = grouped[name].setdefault(key, _Row(kind, json.loads(key)))
        if kind == "changed" and column:
            entry.columns[column] = target_value
        elif kind == "extra":
            entry.whole = target_value
    return {name: _Stored(*targets[name], list(entries.values())) for name, entries in grouped.items()}


@collected_less()
def fix(
    job: Job, run_id: str, *, apply: bool = False, delete: bool = False, table: str = DEFAULT_TABLE
) -> FixResult:
    """Apply (or, without ``apply``, print) the discrepancies of one diff run (``latest``: the run
    stored last)."""
    job.target.require_file()
    job.target.check_writable()
    if run_id == LATEST:
        run_id = latest_run(job.target, table)
    result = FixResult(run_id, apply)
    stored = read_run(job.target, table, run_id)
    if job.config.tables or job.config.include or job.config.exclude:  # (-t, --include, --exclude: only
        wanted = {t.name for t in job.selected()}  # those tables' discrepancies, never all the run's)
        stored = {name: found for name, found in stored.items() if name in wanted}
    specs = {t.name: t for t in job.config.tables}
    planned: list[tuple[TableConfig, TablePlan, list[_Row]]] = []
    for name, found in stored.items():
        compared, rows = found.compared, found.rows
        spec = specs.get(name) or TableConfig(name=name, **job.table_options)
        if compared is not None and spec.target is None and compared != name:
            spec = spec.model_copy(update={"target": compared})  # (the table the diff compared)
        if compared is not None and (spec.target or spec.name) != compared:
            raise ConfigError(
                f"run {run_id} compared table '{name}' with '{compared}', not '{spec.target or spec.name}'"
            )
        plan = plan_table(job.source, job.target, spec)  # (as the diff matched them)
        if found.through:
            plan = plan_through_map(job, plan, asked=True)
            if plan.through_map is None or not plan.through_map.translates:
                raise ConfigError(
                    f"run {run_id} read table '{plan.target.name}' through the ID map (diff --remap-ids), "
                    "and the target's _parity_id_map holds none of its IDs now"
                )
        planned.append((spec, plan, rows))
    for _, plan, _ in planned:  # (before any write)
        if plan.through_map is None:
            refuse_through_map(job, plan, "fix")
    through: list[TableDiff] = []
    for spec, plan, rows in planned:
        found_through = _fix_table(job, spec, plan, rows, result, apply, delete)
        if found_through is not None:
            through.append(found_through)
    if through:  # (written as sync --remap-ids writes them: parents first, IDs by the target)
        done = write_differences(
            job,
            through,
            result.statements,
            dry_run=not apply,
            extra="delete" if delete else "keep",
            batch_size=1000,
        )
        for synced in done:
            if synced.extra_kept:
                result.conflicts.append(
                    f"{synced.table}: {synced.extra_kept} extra rows kept: a table of references only (nothing "
                    "records which of its rows the copy wrote; one may be the live target's)"
                )
            result.inserted += synced.inserted
            result.updated += synced.updated
            result.deleted += synced.deleted
            result.failed += synced.failed
            result.errors += synced.errors
    return result


def _fix_table(
    job: Job,
    spec: TableConfig,
    plan: TablePlan,
    rows: list[_Row],
    result: FixResult,
    apply: bool,
    delete: bool,
) -> TableDiff | None:
    """Check each discrepancy against both sides as they are now, then apply those still to do; of a
    table read through the ID map, return them as differences, to be written through it."""
    source_table, target_table = plan.source, plan.target
    ids = _ThroughIds(job, plan, spec) if plan.through_map is not None else None
    rename = {p.source.name: p.target.name for p in (*plan.keys, *plan.columns)}
    source_names = {t: s for s, t in rename.items()}
    equal = {p.source.name: column_equality(p) for p in (*plan.keys, *plan.columns)}

    def same(src: dict[str, Any], dst: dict[str, Any], columns: Iterable[str]) -> bool:
        """Whether the target row holds the source row's values in these (source) columns, as the
        diff compares them (a numeric(12,2) against a (14,4), a boolean against a tinyint ...)."""
        return all(equal[c](src.get(c), dst.get(rename.get(c, c))) for c in columns)

    def target_name(column: str) -> str | None:
        """The target's column a source column goes into (compared or not), or None where it has none."""
        if column in rename:
            return rename[column]
        found = target_column(target_table, spec.map.get(column, column))
        return None if found is None else found.name

    uuid_keys = {  # (UUIDs held as text, compared as UUIDs: found in either case, as diff pairs them)
        role: {
            (p.source if role == "source" else p.target).name
            for p in plan.keys
            if p.compare.kind is Kind.UUID
            and (job.source if role == "source" else job.target).dialect.holds_uuid_as_text(
                (p.source if role == "source" else p.target).type.kind
            )
        }
        for role in ("source", "target")
    }
    padded_keys = {  # (text keys compared without trailing spaces, against a CHAR: 'b ' found for 'b')
        role: {
            (p.source if role == "source" else p.target).name
            for p in plan.keys
            if p.compare.strip and (p.source if role == "source" else p.target).type.kind in STRING_KINDS
        }
        for role in ("source", "target")
    }
    applier = Applier(job.target, target_table, 1000, dry_run=not apply)
    applier.uuid_keys = uuid_keys["target"]
    inserts: list[dict[str, Any]] = []
    updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    deletes: list[dict[str, Any]] = []
    key_source = list(rows[0].key)
    key_target = [rename.get(k, k) for k in key_source]
    spelled = {k for k in key_target if job.target.dialect.key_spellings(target_table.column(k).type.kind)}
    sources = _fetch_all(
        job.source,
        source_table,
        key_source,
        [row.key for row in rows],
        uuid_keys["source"],
        padded_keys["source"],
    )
    wanted = [{rename.get(k, k): v for k, v in row.key.items()} for row in rows]
    if ids is None:
        targets = _fetch_all(
            job.target, target_table, key_target, wanted, uuid_keys["target"], padded_keys["target"]
        )
    else:
        targets = ids.fetch(job.target, target_table, key_target, wanted)
    found: list[RowDiff] = []
    names = {c: n for c in source_table.column_names if (n := target_name(c)) is not None}

    def found_row(
        row: _Row, src: dict[str, Any] | None, dst: dict[str, Any] | None, left: Any = (), kind: Any = None
    ) -> None:
        """A discrepancy still to apply, as diff would find it (of a table read through the map)."""
        values = None if src is None else {c: v for c, v in src.items() if c in names}
        renamed = {c: n for c, n in names.items() if c != n}
        found.append(RowDiff(spec.name, row.key, kind or row.kind, tuple(left), values, dst, renamed))  # type: ignore[arg-type]

    holders = {} if ids is None else ids.natural_holders(rows, sources, targets)
    for at, (row, (src, _), (dst, dst_key)) in enumerate(zip(rows, sources, targets, strict=True)):
        label = f"{spec.name} {json.dumps(row.key, default=str, ensure_ascii=False)}"
        target_key = {rename.get(k, k): v for k, v in _typed(source_table, row.key).items()}
        if dst is not None and dst_key is not None:  # (a UUID held as text, a text with trailing spaces,
            held = uuid_keys["target"] | padded_keys["target"]  # SQLite's date held as text in a spelling
            target_key = {  # of its own: as the target holds it)
                k: dst_key[k]
                if k in uuid_keys["target"] and isinstance(dst_key[k], str)  # (its text, in any column type)
                else dst[k]
                if k in held
                else dst_key[k]
                if k in spelled and isinstance(dst_key[k], str)
                else v
                for k, v in target_key.items()
            }
        if row.kind == "missing":
            if dst is not None and src is not None and same(src, dst, rename):
                result.already += 1  # (inserted by an earlier fix, or by the application)
                continue
            if ids is not None and dst is not None and src is not None:
                left = [c for c in rename if not same(src, dst, [c])]
                if set(map(rename.get, left)) <= ids.unset(dst):  # (a stopped fix wrote it: the rest)
                    found_row(row, src, dst, left, kind="changed")
                    continue
            if (holder := holders.get(at)) is not None:
                result.conflicts.append(f"{label}: now in the target ({holder})")
                continue
            if dst is not None or src is None:
                result.conflicts.append(
                    f"{label}: {'now in the target' if dst is not None else 'gone from the source'}"
                )
                continue
            # (the target's columns only: a source column it lacks is not compared, nor written)
            inserts.append({n: v for c, v in src.items() if (n := target_name(c)) is not None})
            found_row(row, src, None)
        elif row.kind == "changed":
            if src is None or dst is None:
                result.conflicts.append(
                    f"{label}: the row is gone from the {'source' if src is None else 'target'}"
                )
                continue
            moved = [
                c
                for c, recorded in row.columns.items()
                if not _holds(target_table, rename.get(c, c), dst, recorded)
            ]
            if moved and not same(src, dst, moved):
                result.conflicts.append(f"{label}: changed in the target since the diff ({', '.join(moved)})")
                continue
            # (a column moved to the source's value since is done; the others are still to update)
            left = [c for c in row.columns if c not in moved and not same(src, dst, [c])]
            if not left:
                result.already += 1  # (the target has the source's values now)
                continue
            updates.append((target_key, {rename.get(c, c): src[c] for c in left}))
            found_row(row, src, dst, left)
        elif row.kind == "extra" and delete:
            if dst is None:
                result.already += 1
                continue
            if src is not None and same(src, dst, rename):  # (a row the source holds as the target does,
                result.conflicts.append(f"{label}: the source holds it as the target does")  # since the
                continue  # diff or under a key the diff took for another: never deleted)
            edited = _edited_since(target_table, dst, row.whole)
            if edited:  # (named as the source names them, as for a changed row)
                named = ", ".join(source_names.get(c, c) for c in edited)
                result.conflicts.append(f"{label}: changed in the target since the diff ({named})")
                continue
            deletes.append(target_key)
            found_row(row, None, dst)
    if ids is not None:
        return TableDiff(TableStats(spec.name, target_table.name), found, through_map=plan.through_map)
    # the deletes first: a row the target holds under a key its collation takes for a missing row's ('a '
    # for 'a') would refuse that row's insert; so the dry run's SQL runs as printed, in this order
    deleted = _run(job, applier.deletes(key_target, deletes), apply, result, applier.named)
    inserted = _run(job, applier.inserts(inserts), apply, result, applier.named)
    result.updated += _run(job, applier.updates(key_target, updates), apply, result, applier.named)
    result.inserted += inserted
    result.deleted += deleted
    result.failed += len(applier.failures)  # (values the target would change: refused, as sync's)
    result.errors += applier.failures
    if inserted and apply:
        applier.advance_sequences(list(inserts[0]))
    result.statements.extend(applier.statements)
    return None


class _ThroughIds:
    """A table read through the ID map: the stored keys (the source's IDs) as the target holds them,
    and the target's rows read back with the source's IDs, as diff read them (a reference the map
    does not hold as ``unmapped:N``)."""

    def __init__(self, job: Job, plan: TablePlan, spec: TableConfig) -> None:
        through = plan.through_map
        assert through is not None
        self.target, self.table, self.own = job.target, plan.target, through.own
        self.natural = {c: spec.map.get(c, c) for c in spec.natural_key or ()}
        """The natural key's columns, source name -> target name."""
        state = State(job.target, waits=SYNC_WAITS)  # (as sync writes them: a stopped fix's)
        maps = IdMaps(state)
        with job.target.connect() as conn:
            self.forward = {c: maps.of(conn, parent) for c, parent in through.references.items()}
            if through.own:
                self.forward[through.own] = maps.of(conn, plan.target.name)
            waits = state.waiting_references(conn, plan.target.name) if through.own else []
        self.waiting = {(str(info["row"]), info["column"]) for _, info in waits}
        """(new ID, column) of the references written NULL, waiting for a row inserted after theirs."""
        self.back: dict[str, dict[str, str]] = {}
        for column, pairs in self.forward.items():  # (new -> the least old ID, as diff joins them)
            back: dict[str, str] = {}
            for old, new in sorted(pairs.items(), key=lambda kv: id_order(kv[0]), reverse=True):
                back[str(new)] = old
            self.back[column] = back

    def fetch(
        self, endpoint: Endpoint, table: Table, key: list[str], keys: list[dict[str, Any]]
    ) -> list[_Fetched]:
        """The target's row of each key (target names, the source's IDs), or None twice."""
        held = [self.held(k) for k in keys]
        asked = [k for k in held if k is not None]
        read = iter(_fetch_all(endpoint, table, key, asked, set(), set()) if asked else [])
        out: list[_Fetched] = []
        for k in held:
            dst, dst_key = (None, None) if k is None else next(read)
            out.append((None, None) if dst is None else (self.as_source(dst), dst_key))  # type: ignore[arg-type]
        return out

    def unset(self, row: dict[str, Any]) -> set[str]:
        """The references of a row (read with the source's IDs) written NULL and waiting for their row
        (a fix or sync stopped before it set them)."""
        if self.own is None or (new := self.forward[self.own].get(str(row.get(self.own)))) is None:
            return set()
        return {c for n, c in self.waiting if n == str(new) and row.get(c) is None}

    def natural_holders(
        self, rows: list[_Row], sources: list[_Fetched], targets: list[_Fetched]
    ) -> dict[int, str]:
        """The target's rows holding the natural key of a missing row the target lacks, named, by the
        row's position (a fix writes no row the live target holds: sync --remap-ids maps such a row
        to it). One query for up to ``FETCHED_AT_ONCE`` rows, which finds none where none is held; else
        each row's own (the database's collation matches the key, not Python's equality)."""
        wanted = {
            at: src
            for at, (row, (src, _), (dst, _)) in enumerate(zip(rows, sources, targets, strict=True))
            if row.kind == "missing" and dst is None and src is not None
            and self.natural and all(src.get(c) is not None for c in self.natural)
        }  # fmt: skip
        found: dict[int, str] = {}
        positions = list(wanted)
        step = max(1, min(FETCHED_AT_ONCE, 2000 // max(1, len(self.natural))))  # (SQL Server: 2,100 binds)
        with self.target.connect() as conn:
            for start in range(0, len(positions), step):
                chunk = positions[start : start + step]
                if conn.execute(self._holding([wanted[at] for at in chunk])).first() is None:
                    continue
                for at in chunk:
                    held = conn.execute(self._holding([wanted[at]])).first()
                    if held is not None:
                        found[at] = self._named(wanted[at], held[0])
        return found

    def _holding(self, keys: list[dict[str, Any]]) -> Any:
        t = sa.table(
            self.table.name, *(sa.column(c) for c in self.table.column_names), schema=self.target.schema
        )
        shown = self.own or next(iter(self.natural.values()))
        matches = [sa.and_(*(t.c[n] == values[c] for c, n in self.natural.items())) for values in keys]
        return sa.select(t.c[shown]).where(sa.or_(*matches)).limit(1)

    def _named(self, values: dict[str, Any], found: Any) -> str:
        shown = self.own or next(iter(self.natural.values()))
        key = ", ".join(f"{n}={values[c]}" for c, n in self.natural.items())
        taken = self.back[self.own].get(str(found)) if self.own else None
        then = (
            "sync --remap-ids takes it"
            if taken is None
            else f"the ID map gives it to the source's {shown}={taken}"
        )
        return f"its natural key {key} is the target's row {shown}={found}; {then}"

    def held(self, key: dict[str, Any]) -> dict[str, Any] | None:
        out = dict(key)
        for column, value in key.items():
            pairs = self.forward.get(column)
            if pairs is None or value is None:
                continue
            if (new := pairs.get(str(value))) is None:
                return None  # (no row of the copy has that ID)
            out[column] = new
        return out

    def as_source(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for column, back in self.back.items():
            value = row.get(column)
            if value is not None:
                old = back.get(str(value))
                out[column] = f"{UNMAPPED_TEXT}{value}" if old is None else id_number(old)
        return out


def _run(
    job: Job, batches: Any, apply: bool, result: FixResult, named: Callable[[dict[str, Any], str], str]
) -> int:
    """Apply the batches (with ``apply``; else count their rows); each row the target refuses is
    reported, led by its table and key (``named``: ``Applier.named``)."""
    if not apply:
        return sum(len(params) for _, params in batches)

    def on_error(stmt: Any, params: list[dict[str, Any]], message: str) -> None:
        result.failed += len(params)
        result.errors += [named(row, message) for row in params] if params else [message]

    return run_batches(job.target, batches, True, on_error)


def _text(table: Table, column: str, row: dict[str, Any]) -> str | None:
    """A target value as the diff recorded it: decimals at the column's scale."""
    return value_text(at_scale(row.get(column), table.column(column).type))


def _holds(table: Table, column: str, row: dict[str, Any], recorded: str | None) -> bool:
    """Whether a target row holds the value the diff recorded for this column (JSON as the value it
    is: the diff recorded the text the target held, ``{"a": 0}``, read again as ``{"a":0}``)."""
    if table.column(column).type.kind is Kind.JSON:
        return _json_form(row.get(column)) == _json_form(recorded)
    return _text(table, column, row) == recorded


def _json_form(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return canonical_json(JsonText(value))
        except ValueError:
            return value
    return None if value is None else canonical_json(value)


def _edited_since(table: Table, row: dict[str, Any], whole: str | None) -> list[str]:
    """The columns of an extra row that no longer hold what the diff recorded of it (``whole``, the
    row as JSON): such a row is not deleted."""
    if whole is None:
        return []
    try:
        recorded = json.loads(whole)
    except ValueError:
        return []
    edited = []
    for column, value in recorded.items():
        if column not in row:
            continue
        ctype = table.column(column).type
        now = at_scale(row[column], ctype)  # (as the diff recorded it: "2.00")
        if ctype.kind is Kind.JSON:
            changed = _json_form(now) != _json_form(value)
        else:
            changed = json.dumps(jsonable(now), sort_keys=True) != json.dumps(value, sort_keys=True)
        if changed:
            edited.append(column)
    return edited


def _typed(table: Table, key: dict[str, Any]) -> dict[str, Any]:
    """The key's canonical values; one its kind cannot take (infinity, a day before Christ, as diff
    recorded its text) as it is."""
    typed = {}
    for k, v in key.items():
        kind = table.column(k).type.kind
        try:
            typed[k] = hex_bytes(v) if kind is Kind.BINARY and isinstance(v, str) else decode_value(kind, v)
        except (ValueError, TypeError, ArithmeticError):
            typed[k] = v
    return typed


FETCHED_AT_ONCE = 500
"""The rows fix reads again in one query (of their keys), on each side."""

_Fetched = tuple[dict[str, Any], dict[str, Any]] | tuple[None, None]
"""A row read again (``_fetch``): its canonical values and its key as held, or None twice."""


def _fetch_all(
    endpoint: Endpoint,
    table: Table,
    key: list[str],
    keys: list[dict[str, Any]],
    uuid_keys: set[str],
    padded_keys: set[str],
) -> list[_Fetched]:
    """``_fetch`` of each key, ``FETCHED_AT_ONCE`` keys a query (one query a row cost DuckDB 15 ms, 8,500
    rows two minutes): a row comes from its key's query where it holds that key as read. A key the query
    did not settle is read on its own (``_fetch``): one the table may hold in a spelling of its own (a
    UUID as text, padded text, SQLite's dates), or in a query that found a row no key asked for as read."""
    names = table.column_names
    at = [names.index(k) for k in key]
    spelled = bool((uuid_keys | padded_keys) & set(key)) or any(
        endpoint.dialect.key_spellings(table.column(k).type.kind) for k in key
    )
    encoders = Applier(endpoint, table, 1, dry_run=True)
    encoders.uuid_keys = uuid_keys
    t = sa.table(table.name, *(sa.column(c.name) for c in table.columns), schema=endpoint.schema)
    out: list[_Fetched] = []
    step = max(1, min(FETCHED_AT_ONCE, 2000 // (6 * len(key))))  # (SQL Server takes 2,100 parameters;
    for start in range(0, len(keys), step):  # a key column may bind 6: a UUID's spellings)
        given = keys[start : start + step]
        typed = [_typed(table, values) for values in given]
        clause = sa.or_(*(sa.and_(*(encoders.key_match(t.c[k], k, v[k]) for k in key)) for v in typed))
        read: dict[tuple[Any, ...], list[tuple[list[Any], Sequence[Any]]]] = defaultdict(list)
        for raw in _select_one(endpoint, table, t, clause):
            decoded = _decoded(endpoint.dialect, table, raw)
            read[tuple(decoded[i] for i in at)].append((decoded, raw))
        hits = [_one(read, tuple(v[k] for k in key)) for v in typed]
        every_row_taken = sum(hit is not None for hit in hits) == sum(map(len, read.values()))
        for values, hit in zip(given, hits, strict=True):
            if hit is not None:
                decoded, raw = hit
                out.append(
                    (
                        dict(zip(names, decoded, strict=True)),
                        {k: raw[i] for k, i in zip(key, at, strict=True)},
                    )
                )
            elif spelled or not every_row_taken:  # (its row may be there, as this query did not read it)
                out.append(_fetch(endpoint, table, key, values, uuid_keys, padded_keys))
            else:
                out.append((None, None))
    return out


def _one(read: dict[tuple[Any, ...], list[Any]], wanted: tuple[Any, ...]) -> Any:
    """The one row read of the wanted key, or None (none, several, or a key Python cannot hash)."""
    try:
        hits = read.get(wanted, [])
    except TypeError:
        return None
    return hits[0] if len(hits) == 1 else None


def _fetch(
    endpoint: Endpoint,
    table: Table,
    key: list[str],
    values: dict[str, Any],
    uuid_keys: set[str],
    padded_keys: set[str] = frozenset(),  # type: ignore[assignment]
) -> _Fetched:
    """The row with this key: its canonical values by column name, and its key as the table holds it
    (a date held as text in a spelling of its own), or None twice."""
    typed = _typed(table, values)
    encoders = Applier(endpoint, table, 1, dry_run=True)
    encoders.uuid_keys = uuid_keys
    t = sa.table(table.name, *(sa.column(c.name) for c in table.columns), schema=endpoint.schema)
    clause = sa.and_(*(encoders.key_match(t.c[k], k, typed[k]) for k in key))
    found = _select_one(endpoint, table, t, clause)
    loosely = {
        k: test
        for k in key
        if (test := endpoint.dialect.key_loosely(t.c[k], table.column(k).type.kind, typed[k])) is not None
    }
    if not found and (uuid_keys | padded_keys | set(loosely)) & set(key):  # (a spelling not tried)

        def loose(k: str) -> Any:
            if k in uuid_keys:
                return encoders.uuid_match(t.c[k], typed[k])
            if k in padded_keys:  # (and exactly, below: a collation may match other text)
                return endpoint.dialect.rtrim_chars(t.c[k], " ") == sa.literal(str(typed[k]).rstrip(" "))
            return loosely[k] if k in loosely else encoders.key_match(t.c[k], k, typed[k])

        at = {name: i for i, name in enumerate(table.column_names)}

        def same_key(row: Sequence[Any]) -> bool:
            """Whether a row the loose tests found holds the key as diff reads it (SQLite's function
            takes '...00.1234567' for a moment diff refused as a key of its own)."""
            if not all(
                str(row[at[k]]).rstrip(" ") == str(typed[k]).rstrip(" ") for k in padded_keys & set(key)
            ):
                return False
            decoded = _decoded(endpoint.dialect, table, row)
            return all(decoded[at[k]] == typed[k] for k in loosely)

        found = [r for r in _select_one(endpoint, table, t, sa.and_(*(loose(k) for k in key))) if same_key(r)]
    if not found:
        return None, None
    held = {k: v for k, v in zip(table.column_names, found[0], strict=True) if k in key}
    return dict(zip(table.column_names, _decoded(endpoint.dialect, table, found[0]), strict=True)), held


def _decoded(dialect: Dialect, table: Table, row: Sequence[Any]) -> list[Any]:
    """A row's canonical values, as diff decodes them (``compare._lenient``): a value read as its text
    (PostgreSQL's or DuckDB's infinity, a day before Christ) stays that text, in the spelling diff
    recorded (``Dialect.text_decoder``)."""
    out = []
    for c, v in zip(table.columns, row, strict=True):
        kind = c.type.kind
        try:
            decode = (
                dialect.text_decoder(kind) if isinstance(v, str) and kind in dialect.NATIVE_KINDS else None
            )
            out.append(decode(v) if decode is not None else decode_value(kind, v))
        except (ValueError, TypeError, ArithmeticError):
            out.append(v)
    return out


def _select_one(endpoint: Endpoint, table: Table, t: Any, clause: Any) -> list[Any]:
    """The rows ``clause`` selects (one, or none), each column read exactly (a MySQL FLOAT as its exact
    value, not 6 digits), or as its text where the driver cannot give it (``Side.run`` in diff)."""
    dialect = endpoint.dialect

    def select(read: Callable[[Any, Kind], Any]) -> sa.Select[Any]:
        # (JSON as its text: psycopg gives jsonb's "hello" as hello, which is no JSON text)
        columns = [
            sa.cast(t.c[c.name], sa.Text()) if c.type.kind is Kind.JSON else read(t.c[c.name], c.type.kind)
            for c in table.columns
        ]
        return sa.select(*columns).where(clause)

    def rows(query: sa.Select[Any], lenient: bool = False) -> list[Any]:
        with endpoint.reading(lenient) as conn:
            dialect.prepare_connection(conn)  # (SQLite's functions of diff: ``Dialect.key_loosely``)
            return list(conn.execute(query).all())

    try:
        return rows(select(dialect.read_checked))
    except sa.exc.DBAPIError as exc:
        if dialect.read_refused(exc):
            return rows(select(dialect.read_leniently))
        if dialect.LENIENT_LOADERS and driver_could_not_load(exc):
            return rows(select(dialect.read_checked), lenient=True)
        raise
