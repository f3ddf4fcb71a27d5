"""Copies into a live database: new IDs assigned by the target, and rows matched by natural keys.

With ``remap_ids`` the target assigns the identity column; parity records old -> new in
``_parity_id_map`` (in the same transaction as the row) and rewrites child tables' FK columns through
it. With ``natural_key`` a row whose natural key already exists in the target is skipped and, when IDs
are remapped, mapped to the existing row's ID. Both make a re-run idempotent: a row already mapped or
already present is not written twice. In merge (a table whose own IDs are kept), a row updates the
target's row it matches, by its natural key or else the merge key, and is inserted where none does.

A batch goes under one savepoint: its rows by the table's bulk path or one INSERT of many rows where
it can (``RemapWriter._batch``), with its ID pairs together at its end. With a natural key, a batch
goes so where its rows' keys were looked for together: in one query joining them to the table where
the database gives key rows (``Dialect.key_rows``: PostgreSQL's arrays, a temporary table of
MySQL/MariaDB's or SQLite's), which also gives the rows of the keys it holds (those rows are mapped);
else a query per 180 keys, where it must hold none. A GROUP BY after the write finds keys its
collation takes as equal, unless its key columns compare exactly. Other batches' rows are looked for
one at a time. A batch the target refuses a row of is rolled back and written again a row at a time, each
under a savepoint of its own, so that the refused row is rejected alone.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity import bulk
from parity.dialects.base import Dialect, RawType
from parity.endpoint import Endpoint, driver_message, raise_unless_refusal, roll_back_to
from parity.errors import ParityError
from parity.schema.types import STRING_KINDS, CanonicalType, Kind
from parity.state import State

Reject = Callable[[tuple[Any, ...], str], None]


@dataclass(frozen=True)
class RemapSpec:
    """How one table's rows are matched and rewritten (target column names)."""

    identity: str | None = None
    """The column the target assigns (remap_ids), or None."""

    natural_key: tuple[str, ...] = ()
    references: dict[str, str] = field(default_factory=dict)
    """FK column -> parent target table whose ID map rewrites it."""

    late: frozenset[str] = frozenset()
    """The references whose parent rows may come after the row (a self-reference, a cycle): a row whose
    parent has no new ID yet is written with NULL there, set by ``fix_late_references`` at the end."""

    @property
    def active(self) -> bool:
        return bool(self.identity or self.natural_key or self.references)


BULK_PAIRS = 100
"""From this many ID pairs on, ``IdMaps.record_many`` writes them by the bulk path."""


HELD_BYTES = 64 * 2**20
"""The most memory the parent maps a copy holds take (``IdMaps.parent``), over all tables: 4M pairs of
whole numbers (``HeldIds``), or about 560,000 of other IDs (a dict)."""

PAIR_BYTES = 16
"""What a pair of whole numbers takes in a ``HeldIds``."""

TEXT_PAIR_BYTES = 120
"""What a pair takes in a dict of text -> number (measured: 119 bytes)."""


class HeldIds(Mapping[str, Any]):
    """A table's whole map of whole-number IDs, as two arrays (old IDs in order, and their new ones):
    16 bytes a pair, where a dict took 120. ``get`` bisects (2 us)."""

    def __init__(self, olds: array, news: array) -> None:
        self.olds, self.news = olds, news

    def get(self, old: str, default: Any = None) -> Any:
        try:
            key = int(old)
        except (TypeError, ValueError):
            return default
        at = bisect.bisect_left(self.olds, key)
        if at == len(self.olds) or self.olds[at] != key or str(key) != old:  # ("07" is no ID's text)
            return default
        return self.news[at]

    def __getitem__(self, old: str) -> Any:
        found = self.get(old)
        if found is None:
            raise KeyError(old)
        return found

    def __contains__(self, old: object) -> bool:
        return isinstance(old, str) and self.get(old) is not None

    def __iter__(self) -> Iterator[str]:
        return (str(old) for old in self.olds)

    def __len__(self) -> int:
        return len(self.olds)


class IdMaps:
    """old -> new IDs per target table, as ``_parity_id_map`` holds them. A copy looks up a batch's IDs
    at a time (``IdLookup``), but for the maps of parent tables small enough to hold (``parent``), so
    that memory does not grow with the tables (1M parents' and 1M children's maps held whole took 240
    MB); ``of`` reads one whole, for an export or a diff."""

    def __init__(self, state: State, room: int | None = None) -> None:
        """``room``: the most bytes the maps held take (``HELD_BYTES`` by default)."""
        self.state = state
        self.room = HELD_BYTES if room is None else room
        self._held: dict[str, bool] = {}
        self._parents: dict[str, Mapping[str, Any] | None] = {}
        self._lock = threading.Lock()

    def parent(self, conn: Connection, table: str) -> Mapping[str, Any] | None:
        """A parent table's whole map, read once and held for every chunk of its children, where it
        fits in the room left (one query, not one a batch: 1M children of 250,000 parents were copied
        into PostgreSQL in 34 s, against 61-114 s with their parents looked up a batch at a time);
        None where it does not. Whole numbers are held as ``HeldIds``, other IDs in a dict. Read as
        the first child chunk begins: its parents are copied by then (those coming after, in a cycle,
        are set later, ``fix_late_references``)."""
        with self._lock:
            if table not in self._parents:
                held: Mapping[str, Any] | None = self._numbers(conn, table)
                if held is None:
                    held = self._texts(conn, table)
                self._parents[table] = held
            return self._parents[table]

    def _numbers(self, conn: Connection, table: str) -> HeldIds | None:
        """The table's map as ``HeldIds``, read in the order of the old IDs as numbers (by their text's
        length, then the text); None where it does not fit, or an ID is no whole number written as
        Python writes it, or the order is not theirs (a negative one)."""
        m, most = self.state.id_map, self.room // PAIR_BYTES
        if most == 0:
            return None
        query = (
            sa.select(m.c.old_id, m.c.new_id)
            .where(m.c.table_name == table)
            .order_by(sa.func.char_length(m.c.old_id), m.c.old_id)
            .limit(most + 1)
            .execution_options(yield_per=10_000)  # (streamed: not every row at once)
        )
        olds, news = array("q"), array("q")
        with closing(conn.execute(query)) as rows:
            for old, new in rows:
                try:
                    number, value = int(old), int(new)
                except ValueError:
                    return None
                if str(number) != old or (olds and number <= olds[-1]) or len(olds) == most:
                    return None
                olds.append(number)
                news.append(value)
        self.room -= len(olds) * PAIR_BYTES
        return HeldIds(olds, news)

    def _texts(self, conn: Connection, table: str) -> dict[str, Any] | None:
        """The table's map as a dict, where it fits; else None."""
        m, most = self.state.id_map, self.room // TEXT_PAIR_BYTES
        if most == 0:
            return None
        query = sa.select(m.c.old_id, m.c.new_id).where(m.c.table_name == table).limit(most + 1)
        rows = conn.execute(query.execution_options(yield_per=10_000))
        held: dict[str, Any] = {}
        with closing(rows):
            for old, new in rows:
                if len(held) == most:
                    return None
                held[old] = id_number(new)
        self.room -= len(held) * TEXT_PAIR_BYTES
        return held

    def held_before(self, conn: Connection, table: str) -> bool:
        """Whether the map held pairs of the table when this run first asked, before any of its
        chunks wrote a row (each asks as its writer is made). Where it held none, a chunk's own IDs
        were mapped by no other run, and by no other chunk of this one (their keys are apart): they
        are not looked up."""
        with self._lock:
            if table not in self._held:
                m = self.state.id_map
                found = conn.execute(sa.select(m.c.old_id).where(m.c.table_name == table).limit(1)).first()
                self._held[table] = found is not None
            return self._held[table]

    def of(self, conn: Connection, table: str) -> dict[str, Any]:
        m = self.state.id_map
        rows = conn.execute(sa.select(m.c.old_id, m.c.new_id).where(m.c.table_name == table))
        return {old: id_number(new) for old, new in rows}

    def lookup(self, conn: Connection) -> IdLookup:
        return IdLookup(self.state, conn)

    def record(self, conn: Connection, table: str, old: Any, new: Any) -> None:
        self.record_many(conn, table, {str(old): new})

    def record_many(self, conn: Connection, table: str, pairs: dict[str, Any]) -> None:
        """The pairs into ``_parity_id_map``: many by the target's bulk path (a fifth of a copy's time
        went into SQLAlchemy's INSERT of many rows), a few by INSERT."""
        m = self.state.id_map
        if len(pairs) < BULK_PAIRS:
            rows = [{"table_name": table, "old_id": old, "new_id": str(new)} for old, new in pairs.items()]
            conn.execute(sa.insert(m), rows)
            return
        bulk.WRITERS[self.state.endpoint.writer].write_once(
            conn,
            conn.dialect.identifier_preparer.format_table(m),
            [c.name for c in m.columns],
            [CanonicalType(Kind.VARCHAR, length=200)] * len(m.columns),
            [(table, old, str(new)) for old, new in pairs.items()],
        )

    def export(self, path: str, tables: Sequence[str], endpoint: Endpoint) -> None:
        """Write ``{"table": {"old": new, ...}, ...}`` for the given tables and every other table the
        target's map holds (copied by earlier runs: a child copied on its own is exported with its
        parents, as sqlite-to-mariadb-migration.md's ``id_mappings.json`` holds every mapping)."""
        with endpoint.connect() as conn:
            held = conn.execute(sa.select(self.state.id_map.c.table_name).distinct()).scalars().all()
            data = {
                t: dict(sorted(self.of(conn, t).items(), key=lambda kv: id_order(kv[0])))
                for t in dict.fromkeys([*tables, *sorted(held)])
            }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")


class IdLookup:
    """One connection's lookups in ``_parity_id_map``: the pairs of the IDs asked for, in one query
    joining them to the map where the database gives key rows (``Dialect.key_rows``: PostgreSQL's
    arrays, a temporary table of MySQL/MariaDB's or SQLite's), else a query per ``_IDS_A_QUERY``. On a
    chunk's connection it sees the pairs the chunk recorded, not committed yet, and those other
    chunks committed."""

    def __init__(self, state: State, conn: Connection) -> None:
        self.conn, self.map, self.dialect = conn, state.id_map, state.endpoint.dialect

    def new_ids(self, table: str, olds: Collection[str]) -> dict[str, Any]:
        """old -> new of those of ``olds`` the map holds for the table."""
        return {old: id_number(new) for old, new in self._pairs(table, self.map.c.old_id, olds)}

    def old_ids(self, table: str, news: Collection[str]) -> dict[str, str]:
        """new -> old of those of ``news`` (new IDs as text) the map holds for the table."""
        return {new: old for old, new in self._pairs(table, self.map.c.new_id, news)}

    def _pairs(self, table: str, by: sa.Column[Any], ids: Collection[str]) -> list[tuple[str, str]]:
        if not ids:
            return []
        m, wanted = self.map, sorted(ids)
        with self.dialect.planned_anew(self.conn, probes=True):  # (looked up while the map grows)
            keys = self._key_rows
            if keys is not None:
                params = self.dialect.bind_key_rows(self.conn, keys, [(i,) for i in wanted])
                on = sa.and_(m.c.table_name == sa.bindparam("map_table"), by == keys.c.k0)
                joined = _key_rows_join(self.dialect, keys, m, on, m.c.old_id, m.c.new_id)
                return [tuple(r) for r in self.conn.execute(joined, {**params, "map_table": table})]
            per = min(_IDS_A_QUERY, self.dialect.MAX_IN_LIST)
            select = sa.select(m.c.old_id, m.c.new_id).where(
                m.c.table_name == table, by.in_(sa.bindparam("ids", expanding=True))
            )
            return [
                tuple(r)
                for i in range(0, len(wanted), per)
                for r in self.conn.execute(select, {"ids": wanted[i : i + per]})
            ]

    @functools.cached_property
    def _key_rows(self) -> sa.FromClause | None:
        """Rows of one ID, k0 of the map's own ID type, made once for the connection (old and new IDs
        are both of it)."""
        return self.dialect.key_rows(self.conn, self.map, ["old_id"])


_IDS_A_QUERY = 500
"""The most IDs ``IdLookup`` binds in one IN list where the database gives no key rows."""


def _key_rows_join(
    dialect: Dialect,
    keys: sa.FromClause,
    table: sa.FromClause,
    on: sa.ColumnElement[bool],
    *wanted: sa.ColumnElement[Any],
) -> sa.Select[Any]:
    """``wanted`` of key rows (``Dialect.key_rows``) joined to a table ``on`` its columns, the key rows
    first (``Dialect.KEY_ROWS_FIRST``)."""
    select = sa.select(*wanted).select_from(keys.join(table, on))
    first = dialect.KEY_ROWS_FIRST
    return select.prefix_with(first) if first else select


def id_number(text: str) -> Any:
    """An ID held as text (``_parity_id_map``): its number, or the text where it is none."""
    try:
        return int(text)
    except ValueError:
        return text


def id_order(text: str) -> tuple[int, Any]:
    """How IDs held as text sort: numbers by value, before other text."""
    value = id_number(text)
    return (0, value) if isinstance(value, int) else (1, value)


class RemapWriter:
    """Writes rows one by one, assigning new IDs, skipping known rows and rewriting references."""

    def __init__(
        self,
        conn: Connection,
        endpoint: Endpoint,
        table: str,
        columns: Sequence[str],
        types: Sequence[CanonicalType],
        spec: RemapSpec,
        maps: IdMaps,
        workers: int = 1,
        merge_key: Sequence[str] = (),
        shared_natural: bool = True,
        shares: Callable[[str], bool] | None = None,
    ) -> None:
        """``shared_natural``: a row whose natural key matches a target row the map gives to another
        source row is mapped to it too (source rows sharing a natural key, as copy takes them); else it
        is rejected (sync: the other row's source row is gone, and one target row would be two), unless
        ``shares`` says of that other source row that it keeps that natural key (sync: it is neither
        gone nor changing it)."""
        self.conn, self.endpoint, self.table, self.spec, self.maps = conn, endpoint, table, spec, maps
        self.merge_on = tuple(spec.natural_key or merge_key) if merge_key else ()
        """Merge (a table whose own IDs are kept): the columns a row updates the target's row by, its
        natural key where it has one, else the merge key; empty where rows are only inserted."""
        self.key_columns = self.merge_on or spec.natural_key
        """The columns rows are matched to the target's by: the merge's, else the natural key."""
        self.kept = {*merge_key, *spec.natural_key}
        """Columns merge does not update: the key (a row matched by its natural key keeps the
        target's own key, which other rows may reference)."""
        self.workers = workers
        self.columns = list(columns)
        self.types = list(types)
        encoders = bulk.WRITERS[endpoint.dialect.ROW_WRITER].ENCODERS
        self.encoders = [encoders.get(t.kind) for t in types]
        self.sa_table = sa.table(table, *(sa.column(c) for c in self.columns), schema=endpoint.schema)
        self.position = {c: i for i, c in enumerate(self.columns)}
        self.ids = maps.lookup(conn)
        self.mapped_before = bool(spec.identity) and maps.held_before(conn, table)
        """Whether the table's own IDs are looked up in the map: where it held some of the table's
        before this run (rows copied by an earlier run are skipped)."""
        self.own: dict[str, Any] = {}
        """old -> new of the batch's own IDs the map held when the batch began (``_look_up``) ..."""
        self.new_pairs: dict[str, Any] = {}
        """... and of the batch's rows mapped since."""
        self.held: dict[str, Mapping[str, Any]] = {
            col: found
            for col, parent in spec.references.items()
            if parent != table and (found := maps.parent(conn, parent)) is not None
        }
        """FK column -> its parent table's whole map, where it is held (``IdMaps.parent``) ..."""
        self.parents: dict[str, Mapping[str, Any]] = {col: {} for col in spec.references}
        """... else old -> new of the parent IDs the batch's rows reference (``_look_up``)."""
        self.shared_natural = shared_natural
        self.shares = shares
        self._taken: dict[str, str | None] = {}
        """new -> old (None: no old) of the target IDs the batch's natural keys matched, looked up in
        the map (``_mapped_from``) ..."""
        self._taken_now: dict[str, str] = {}
        """... and of the batch's pairs."""
        self.matched: set[str] = set()
        """The source's IDs of rows mapped to a target row by their natural key (not written)."""
        self.taken_by: dict[str, str] = {}
        """Source ID of a row refused as its natural key is a row the map gives to another -> that one's."""
        self.returning = bool(conn.dialect.insert_returning)
        self.deferred: _Deferred | None = None
        """While a batch is written under one savepoint: its ID pairs and waiting references."""
        self.loads = bool(spec.identity and not self.merge_on)
        """Whether a batch's rows may go by the table's bulk path (``_load_numbered``): with IDs the
        database reserves (PostgreSQL's sequence), or numbered in their order by the load (MariaDB's
        LOAD DATA); set off where the database can do neither."""
        self.many = (
            self.returning or self.loads if spec.identity else bool(spec.natural_key and not self.merge_on)
        )
        """Whether a batch's rows may be put aside and written together at its end: by the bulk path,
        or in one INSERT ... RETURNING of many rows (SQLAlchemy's insertmanyvalues, the IDs in the
        rows' order); set off where the database can do neither. With a natural key, only a batch
        whose keys were looked for together (``_looked_up``)."""
        self._natural_selects: dict[tuple[int, bool], sa.Select[Any]] = {}
        self._bound: tuple[list[tuple[Any, ...]], dict[str, Any]] | None = None
        """The keys last made the key rows (``_bind``), and the parameters that give them."""
        self.failed = 0
        """Writes refused under savepoints in this chunk's transaction (``count_failed_savepoint``)."""

    def write(self, rows: Sequence[tuple[Any, ...]], reject: Reject) -> tuple[int, int]:
        """Returns (written, skipped); refused rows go to ``reject``. The batch is first written under
        one savepoint, its new IDs recorded together at its end; if the target refuses a row, the batch
        is rolled back to it and written again a row at a time, each under a savepoint of its own."""
        self._look_up(rows)
        if self.endpoint.dialect.SAVEPOINTS and len(rows) > 1:
            done = self._batch(rows, reject)
            if done is not None:
                return done
        return self._rows(rows, reject)

    def _look_up(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The map's pairs of the rows' own IDs and of the parent IDs they reference, in a query for
        each table (the batch's rows mapped since are added to ``new_pairs``)."""
        self.new_pairs, self._taken, self._taken_now = {}, {}, {}
        wanted: dict[str, set[str]] = {}
        identity = self.spec.identity
        if identity is not None and self.mapped_before:
            at = self.position[identity]
            wanted[self.table] = {str(row[at]) for row in rows}
        for column, parent in self.spec.references.items():
            if column not in self.held:
                at = self.position[column]
                wanted.setdefault(parent, set()).update(str(row[at]) for row in rows if row[at] is not None)
        found = {table: self.ids.new_ids(table, olds) for table, olds in wanted.items()}
        self.own = found.get(self.table, {}) if identity is not None else {}
        self.parents = {
            column: self.held[column] if column in self.held else found[parent]
            for column, parent in self.spec.references.items()
        }

    def mapped(self, olds: Collection[str]) -> set[str]:
        """Those of the table's own source IDs ``olds`` the map holds (none without remapped IDs)."""
        return set(self.ids.new_ids(self.table, olds)) if self.spec.identity else set()

    def _rows(self, rows: Sequence[tuple[Any, ...]], reject: Reject) -> tuple[int, int]:
        written = skipped = 0
        for row in rows:
            outcome = self._one(row, reject)
            written += outcome == "written"
            skipped += outcome == "skipped"
        return written, skipped

    def _batch(self, rows: Sequence[tuple[Any, ...]], reject: Reject) -> tuple[int, int] | None:
        """The rows under one savepoint, or None (rolled back) where the target refused one. Where no
        row references another of the batch, the rows go in one INSERT of many rows."""
        refused: list[tuple[tuple[Any, ...], str]] = []
        found = self._looked_up(rows) if self.spec.natural_key and not self.merge_on else None
        keys, held = found or (None, {})
        # (a merged table keeps its IDs: none to map; copy refuses remap_ids with merge)
        merging = bool(self.merge_on) and self.spec.identity is None and self._key_rows is not None
        many = (
            self.many
            and (found is not None or not self.spec.natural_key)
            and not self._references_within(rows)
        )
        self.deferred = _Deferred(many=many, looked_up=found is not None, held=held)
        savepoint = self.endpoint.dialect.savepoint(self.conn)
        try:
            refuse: Reject = lambda row, reason: refused.append((row, reason))  # noqa: E731
            merged = self._merged(rows, refuse) if merging else None
            if merged is None:
                done = self._rows(rows, refuse)
            else:
                done, keys = merged
            self._insert_pending(self.deferred)
            if keys and self._keys_fold and self._shared_natural_key(keys):
                raise _SharedNaturalKey
            self.deferred.flush(self)
        except Exception as exc:
            roll_back_to(savepoint, exc)
            for old, new in self.deferred.pairs.items():
                self.new_pairs.pop(old, None)
                self.matched.discard(old)
                self._taken_now.pop(str(new), None)
            if isinstance(exc, _RowAtATime):
                pass  # (rows the target takes as one, or matched otherwise: each in turn, a row at a time)
            elif isinstance(exc, (sa.exc.DBAPIError, self.conn.dialect.loaded_dbapi.Error)):
                # (the bulk path's own driver errors too: COPY's refusal of a row is psycopg's)
                raise_unless_refusal(exc)
                self.failed += 1
                self.endpoint.dialect.count_failed_savepoint(self.failed, self.workers)
            elif isinstance(exc, ValueError) and self.deferred.loaded:
                pass  # (the bulk load would alter a value, as LOAD DATA's warnings say: a row at a time)
            elif not self.deferred.many:
                raise
            else:
                self.many = False  # (the database cannot return the new IDs in order: a row at a time)
            return None
        finally:
            self.deferred = None
        savepoint.commit()
        for row, reason in refused:  # (rows refused before any write: no parent with a new ID)
            reject(row, reason)
        return done

    def _referencing(
        self, row: tuple[Any, ...], reject: Reject
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The row's values by column, its references rewritten to their parents' new IDs, and the
        references that wait for a later parent (NULL until then); None where a parent has no new ID
        (the row refused)."""
        values = dict(zip(self.columns, row, strict=True))
        waiting: dict[str, Any] = {}
        for column, parent_map in self.parents.items():
            old = values.get(column)
            if old is None:
                continue
            new = parent_map.get(str(old))
            if new is None and self.spec.references[column] == self.table:
                new = self.new_pairs.get(str(old))  # (a parent written earlier in this chunk)
            if new is None:
                if column in self.spec.late:  # its parent comes later: NULL until then
                    values[column] = None
                    waiting[column] = old
                    continue
                reject(
                    row, f"{column}={old}: no row with that ID was copied into {self.spec.references[column]}"
                )
                return None
            values[column] = new
        return values, waiting

    def _one(self, row: tuple[Any, ...], reject: Reject) -> str:
        referencing = self._referencing(row, reject)
        if referencing is None:
            return "rejected"
        values, waiting = referencing
        identity = self.spec.identity
        old_id = values.get(identity) if identity else None
        if identity and (str(old_id) in self.own or str(old_id) in self.new_pairs):
            return "skipped"
        if self.merge_on and self.spec.natural_key:  # (the merge key is unique in the target: checked)
            held = self._matches(values)
            if held > 1:
                reject(row, self._ambiguous(values, held))
                return "rejected"
        if self.merge_on:
            existing = None
        elif self.deferred is not None and self.deferred.looked_up:  # (its batch's keys looked for at once)
            existing = self.deferred.held.get(self._bound_key(values)) if self.deferred.held else None
        else:
            existing = self._find_natural(values)
        if existing is not None:
            if identity:
                taken = None if self.shared_natural else self._mapped_from(existing)
                shared_with = None
                if taken is not None and self.shares is not None and self.shares(taken):
                    shared_with, taken = taken, None  # (a source row that keeps its natural key: both's)
                if taken is not None and taken != str(old_id):
                    self.taken_by[str(old_id)] = taken
                    reject(
                        row,
                        f"its natural key matches the target's row {identity}={existing}, which the ID map "
                        f"gives to the source's {identity}={taken}",
                    )
                    return "rejected"
                self._map(old_id, existing)
                if shared_with is None or id_order(str(old_id)) < id_order(shared_with):
                    self.matched.add(str(old_id))  # (the row takes its values: it stands for the row)
            return "skipped"
        dialect = self.endpoint.dialect
        if self.deferred is not None:  # (under the batch's savepoint: a refusal rolls the batch back)
            if self.deferred.many:
                self.deferred.pending.append((values, old_id, waiting))
            else:
                self._write_row(values, old_id, waiting)
            return "written"
        if not dialect.SAVEPOINTS:  # (a refused row cannot be rolled back alone: the chunk fails)
            try:
                self._write_row(values, old_id, waiting)
            except sa.exc.DBAPIError as exc:
                raise ParityError(
                    f"the target refused a row ({driver_message(exc)}); {self.endpoint.backend} has no"
                    " savepoints to reject it alone, so the chunk was rolled back"
                ) from exc
            return "written"
        savepoint = dialect.savepoint(self.conn)
        try:
            self._write_row(values, old_id, waiting)
            savepoint.commit()
        except sa.exc.DBAPIError as exc:
            roll_back_to(savepoint, exc)
            raise_unless_refusal(exc)
            self.failed += 1
            dialect.count_failed_savepoint(self.failed, self.workers)
            reject(row, driver_message(exc))
            return "rejected"
        return "written"

    def _ambiguous(self, values: dict[str, Any], held: int) -> str:
        shown = ", ".join(f"{c}={values[c]}" for c in self.merge_on)
        return f"natural key {shown} matches {held} rows in the target: which to update?"

    def _merged(
        self, rows: Sequence[tuple[Any, ...]], reject: Reject
    ) -> tuple[tuple[int, int], list[tuple[Any, ...]]] | None:
        """A merge batch's rows matched to the target's together: their keys looked for in one query
        (``Dialect.key_rows``), the rows of keys the target holds updated together (``_update_many``),
        the others put aside to be inserted together (``_insert_pending``). A row at a time, each key
        looked for, updated, else inserted, took 0.6 ms a row into PostgreSQL. Returns (written,
        skipped) and the keys of the rows to insert (which ``_shared_natural_key`` checks after); None,
        with nothing written, where two rows have one key (the later one updates the row the earlier
        one writes: row by row, in order)."""
        deferred = self.deferred
        assert deferred is not None
        refused: list[tuple[tuple[Any, ...], str]] = []  # (passed on only if the batch goes so)
        ready = []
        for row in rows:
            referencing = self._referencing(row, lambda row, reason: refused.append((row, reason)))
            if referencing is not None:
                values, _ = referencing  # (nothing waits: a merged table keeps its IDs)
                ready.append((row, values, self._bound_key(values)))
        keys = [key for _, _, key in ready if key is not None]
        if len(set(keys)) != len(keys):
            return None
        matched = self._matched(keys)
        updates, inserted = [], []
        for row, values, key in ready:
            held = matched.get(key, 0) if key is not None else 0
            if held > 1 and self.spec.natural_key:
                refused.append((row, self._ambiguous(values, held)))
            elif held:
                updates.append(values)
            else:
                deferred.pending.append((values, None, {}))
                inserted += [] if key is None else [key]
        self._update_many(updates)
        for row, reason in refused:
            reject(row, reason)
        return (len(updates) + len(deferred.pending), 0), inserted

    def _matched(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
        """How many of the target's rows each key matches (the keys it holds), in one query."""
        return dict(Counter(keys[n - 1] for n, _ in self._held_rows(keys)))

    def _update_many(self, updates: list[dict[str, Any]]) -> None:
        """Each row's changes into the one target row its key matches: by the database's many-row
        update (``Dialect.update_rows``), else one statement run for each; where fewer rows are
        matched than the batch has (a row gone since it was looked for; two rows whose keys the target
        takes as one row's, which a many-row update matches once), the batch goes again a row at a
        time, the later row's values last."""
        changed = self._changed
        if not updates or not changed:
            return
        matched = self.endpoint.dialect.update_rows(
            self.conn,
            self.sa_table,
            self.merge_on,
            changed,
            [tuple(self._encode(c, values[c]) for c in (*self.merge_on, *changed)) for values in updates],
        )
        if matched is not None:
            if matched != len(updates):
                raise _RowAtATime
            return
        params = [
            {
                **{f"m{i}": self._encode(c, values[c]) for i, c in enumerate(self.merge_on)},
                **{f"v{i}": self._encode(c, values[c]) for i, c in enumerate(changed)},
            }
            for values in updates
        ]
        result = self.conn.execute(self._update_statement, params)
        if self.conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(updates):
            raise _RowAtATime

    @functools.cached_property
    def _changed(self) -> list[str]:
        """The columns a merge updates: all but the kept ones (``kept``)."""
        return [c for c in self.columns if c not in self.kept]

    @functools.cached_property
    def _update_statement(self) -> sa.Update:
        """The UPDATE of one row's changed columns (v0, v1 ...) where its key is the bound one's (m0 ...)."""
        changed = self._changed
        match = sa.and_(*(self.sa_table.c[c] == sa.bindparam(f"m{i}") for i, c in enumerate(self.merge_on)))
        return (
            sa.update(self.sa_table)
            .where(match)
            .values({c: sa.bindparam(f"v{i}") for i, c in enumerate(changed)})
        )

    def _write_row(self, values: dict[str, Any], old_id: Any, waiting: dict[str, Any]) -> None:
        """Insert the row and record its new ID (and the references it waits for)."""
        identity = self.spec.identity
        if self.merge_on and self._update(values):
            return
        new_id = self._insert(values)
        if identity:
            self._map(old_id, new_id)
            for column, parent in waiting.items():
                if self.deferred is not None:
                    self.deferred.waits.append((new_id, column, parent))
                else:
                    self.maps.state.wait_reference(self.conn, self.table, new_id, column, parent)

    def _mapped_from(self, new: Any) -> str | None:
        """The source's ID the map gives this target ID to, if any (the batch's pairs included). The
        map is asked once a batch for every target ID its looked-up natural keys matched."""
        new = str(new)
        if new in self._taken_now:
            return self._taken_now[new]
        if new not in self._taken:
            held = self.deferred.held.values() if self.deferred is not None else ()
            asked = {new, *(str(v) for v in held if v is not True and str(v) not in self._taken)}
            found = self.ids.old_ids(self.table, asked)
            self._taken.update({n: found.get(n) for n in asked})
        return self._taken[new]

    def _map(self, old: Any, new: Any) -> None:
        self._taken_now[str(new)] = str(old)
        if self.deferred is not None:
            self.deferred.pairs[str(old)] = new
        else:
            self.maps.record(self.conn, self.table, old, new)
        self.new_pairs[str(old)] = new

    def _map_many(self, olds: Sequence[str], news: Sequence[Any]) -> None:
        """``_map`` of a batch's rows written together, under its savepoint."""
        assert self.deferred is not None
        self._taken_now.update(zip(map(str, news), olds, strict=True))
        self.deferred.pairs.update(zip(olds, news, strict=True))
        self.new_pairs.update(zip(olds, news, strict=True))

    def _encode(self, column: str, value: Any) -> Any:
        encoder = self.encoders[self.position[column]]
        return value if value is None or encoder is None else encoder(value)

    def _looked_up(
        self, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], dict[Any, Any]] | None:
        """The natural keys of the rows the batch would write, and the target's rows (their IDs, or True)
        of those it holds, by key, looked for together: where the keys are bound as arrays
        (``Dialect.key_rows``), in one query; else a query per ``_KEYS_A_QUERY`` keys, which tells
        only whether one is held (None then). Then the batch is written with no row looked for, and
        ``_shared_natural_key`` checks it after. None too where two keys are equal in Python (the
        later rows are mapped to the first's), or a key is not known before the batch is written (a
        reference to a row without a new ID yet): its rows are then looked for one by one."""
        keys = self._natural_keys(rows)
        if keys is None or len(set(keys)) != len(keys):
            return None
        if self._key_rows is not None:
            return keys, self._held(keys)
        if any(self._natural_rows(part) for part in self._parts(keys)):
            return None
        return keys, {}

    def _held(self, keys: list[tuple[Any, ...]]) -> dict[Any, Any]:
        """The keys the target holds, each with its row's ID (True without one), in one query."""
        return {keys[n - 1]: wanted for n, wanted in self._held_rows(keys)}

    def _held_rows(self, keys: list[tuple[Any, ...]]) -> Sequence[Any]:
        """``_held_query``'s rows of the keys: (place from 1, the row's ID or True) for each target row
        that holds one, in one query."""
        if not keys:
            return []
        params = self._bind(keys)
        with self.endpoint.dialect.planned_anew(self.conn):  # (looked for while the table grows)
            return self.conn.execute(self._held_query, params).all()

    def _bind(self, keys: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The batch's keys made the key rows (``Dialect.bind_key_rows``), once for its lookup and its
        check after the write."""
        if self._bound is None or self._bound[0] is not keys:
            assert self._key_rows is not None
            self._bound = (keys, self.endpoint.dialect.bind_key_rows(self.conn, self._key_rows, keys))
        return self._bound[1]

    @functools.cached_property
    def _key_rows(self) -> sa.FromClause | None:
        return self.endpoint.dialect.key_rows(self.conn, self.sa_table, self.key_columns)

    def _joined(self, *wanted: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """``wanted`` of the key rows joined to the table by the key columns, the key rows first."""
        keys = self._key_rows
        assert keys is not None
        on = sa.and_(*(self.sa_table.c[c] == keys.c[f"k{i}"] for i, c in enumerate(self.key_columns)))
        return _key_rows_join(self.endpoint.dialect, keys, self.sa_table, on, *wanted)

    @functools.cached_property
    def _held_query(self) -> sa.Select[Any]:
        """Each held key's place in the batch's keys (from 1), and its row's ID (or True): with several
        rows of one key, any of them (as ``_natural_query``'s LIMIT 1)."""
        assert self._key_rows is not None
        wanted = self.sa_table.c[self.spec.identity] if self.spec.identity else sa.literal(True)
        return self._joined(self._key_rows.c.n, wanted)

    @functools.cached_property
    def _shared_query(self) -> sa.Select[Any]:
        """A row when two rows of the table have one of the key rows' keys (or two keys of them one row:
        then the batch is written again a row at a time, as where they were two)."""
        columns = [self.sa_table.c[c] for c in self.key_columns]
        return self._joined(sa.literal(1)).group_by(*columns).having(sa.func.count() > 1)

    def _shared_natural_key(self, keys: list[tuple[Any, ...]]) -> bool:
        """Whether two rows a ``_looked_up`` batch wrote (their ``keys``) have keys the target takes as
        equal though Python did not ('Ab' and 'ab' under a case-insensitive collation, 'a' and 'a '
        under PAD SPACE): its own GROUP BY says, by the key columns' collations."""
        if self._key_rows is not None:
            params = self._bind(keys)
            with self.endpoint.dialect.planned_anew(self.conn):
                return self.conn.execute(self._shared_query, params).first() is not None
        return any(self._natural_rows(part, shared=True) for part in self._parts(keys))

    def _natural_keys(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """The natural keys (bound as the lookup binds them) of the rows the batch would write: not of
        rows it skips as mapped already, nor keys holding NULL (never looked for); None where a key
        holds a reference whose new ID is not known yet."""
        identity = self.spec.identity
        keys = []
        for row in rows:
            if identity is not None:
                old_id = str(row[self.position[identity]])
                if old_id in self.own or old_id in self.new_pairs:
                    continue
            values = {}
            for column in self.spec.natural_key:
                value = row[self.position[column]]
                if value is not None and column in self.parents:
                    value = self.parents[column].get(str(value))
                    if value is None:
                        return None
                values[column] = value
            key = self._bound_key(values)
            if key is not None:
                keys.append(key)
        return keys

    def _bound_key(self, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """The row's key (``key_columns``) as its lookup binds it; None where a part is NULL (never
        looked for)."""
        if any(values.get(c) is None for c in self.key_columns):
            return None
        return tuple(self._encode(c, values[c]) for c in self.key_columns)

    def _parts(self, keys: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
        """The keys in the groups an IN list or an OR of equalities takes."""
        per = max(1, min(_KEYS_A_QUERY, self.endpoint.dialect.MAX_IN_LIST) // len(self.spec.natural_key))
        return [keys[i : i + per] for i in range(0, len(keys), per)]

    def _natural_rows(self, keys: list[tuple[Any, ...]], shared: bool = False) -> bool:
        """Whether the target has a row whose natural key is one of ``keys`` (``shared``: two rows of
        one such key, as the target compares them)."""
        params: dict[str, Any]
        if len(self.spec.natural_key) == 1:
            params = {"keys": [key[0] for key in keys]}
        else:
            params = {f"k{j}_{i}": value for j, key in enumerate(keys) for i, value in enumerate(key)}
        with self.endpoint.dialect.planned_anew(self.conn):  # (looked for while the table grows)
            return self.conn.execute(self._natural_select(len(keys), shared), params).first() is not None

    @functools.cached_property
    def _keys_fold(self) -> bool:
        """Whether the target may take keys Python tells apart as equal (a collation's case, trailing
        spaces): only of text, whose keys ``_shared_natural_key`` checks, unless the target says its
        key columns compare text by its exact characters (``Dialect.compares_exactly``)."""
        if not any(self.types[self.position[c]].kind in STRING_KINDS for c in self.key_columns):
            return False
        return not self.endpoint.dialect.compares_exactly(self.conn, self.sa_table, self.key_columns)

    def _natural_select(self, count: int, shared: bool) -> sa.Select[Any]:
        """``_natural_rows``'s query of ``count`` keys, made once for each count: one column's values in
        an IN list; several columns' as an OR of each key's equalities (PostgreSQL before 17 probes an
        index on two columns for every pair of values of two IN lists: 450 keys took 0.2 s)."""
        columns = [self.sa_table.c[c] for c in self.spec.natural_key]
        made = (1 if len(columns) == 1 else count, shared)
        select = self._natural_selects.get(made)
        if select is None:
            clause: sa.ColumnElement[bool]
            if len(columns) == 1:
                clause = columns[0].in_(sa.bindparam("keys", expanding=True))
            else:
                clause = sa.or_(
                    *(
                        sa.and_(*(c == sa.bindparam(f"k{j}_{i}") for i, c in enumerate(columns)))
                        for j in range(count)
                    )
                )
            select = sa.select(sa.literal(1)).select_from(self.sa_table).where(clause)
            if shared:
                select = select.group_by(*columns).having(sa.func.count() > 1)
            self._natural_selects[made] = select  # (no LIMIT: PostgreSQL would then scan the table,
            # expecting the ~1000 rows it guesses to come soon; into a table being loaded, scan after scan)
        return select

    def _find_natural(self, values: dict[str, Any]) -> Any | None:
        """The existing row's ID (or True without remap) when its natural key is already present."""
        key = self._bound_key(values) if self.spec.natural_key else None
        if key is None:
            return None
        found = self.conn.execute(self._natural_query, {f"k{i}": v for i, v in enumerate(key)}).first()
        return None if found is None else found[0]

    @functools.cached_property
    def _natural_query(self) -> sa.Select[Any]:
        """The row whose natural key is the bound one's (k0, k1 ...): made once, as SQLAlchemy's making
        and keying of a statement a row took more time than the database's answer."""
        wanted = self.sa_table.c[self.spec.identity] if self.spec.identity else sa.literal(1)
        clause = sa.and_(
            *(self.sa_table.c[c] == sa.bindparam(f"k{i}") for i, c in enumerate(self.spec.natural_key))
        )
        return sa.select(wanted).where(clause).limit(1)

    def _matching(self, values: dict[str, Any]) -> sa.ColumnElement[bool]:
        return sa.and_(*(self.sa_table.c[c] == self._encode(c, values[c]) for c in self.merge_on))

    def _matches(self, values: dict[str, Any]) -> int:
        """How many of the target's rows the row's ``merge_on`` values match (at most 2)."""
        if any(values.get(c) is None for c in self.merge_on):
            return 0
        keys = {f"m{i}": self._encode(c, values[c]) for i, c in enumerate(self.merge_on)}
        return len(self.conn.execute(self._matches_query, keys).all())

    @functools.cached_property
    def _matches_query(self) -> sa.Select[Any]:
        """The target's rows (two at most) whose ``merge_on`` values are the bound ones (m0, m1 ...):
        made once (``_natural_query``)."""
        clause = sa.and_(*(self.sa_table.c[c] == sa.bindparam(f"m{i}") for i, c in enumerate(self.merge_on)))
        return sa.select(sa.literal(1)).select_from(self.sa_table).where(clause).limit(2)

    def _update(self, values: dict[str, Any]) -> bool:
        """Merge: update the target's row the row matches (``merge_on``); whether there was one.
        (MySQL's drivers count the rows matched, not only those changed: SQLAlchemy's FOUND_ROWS.)"""
        if any(values.get(c) is None for c in self.merge_on):
            return False
        changes = {c: self._encode(c, v) for c, v in values.items() if c not in self.kept}
        if not changes:
            found = sa.select(sa.literal(1)).select_from(self.sa_table).where(self._matching(values))
            return self.conn.execute(found.limit(1)).first() is not None
        result = self.conn.execute(sa.update(self.sa_table).where(self._matching(values)).values(changes))
        return bool(result.rowcount)

    def _references_within(self, rows: Sequence[tuple[Any, ...]]) -> bool:
        """Whether a row references (the table itself) another row of ``rows``, whose new ID comes
        only once that one is inserted."""
        identity = self.spec.identity
        own = [c for c, parent in self.spec.references.items() if parent == self.table]
        if not own or identity is None:
            return False
        ids = {str(row[self.position[identity]]) for row in rows}
        return any(str(row[self.position[c]]) in ids for row in rows for c in own)

    def _insert_pending(self, deferred: _Deferred) -> None:
        """The rows a batch put aside, in one INSERT; their new IDs in the rows' order."""
        if not deferred.pending:
            return
        identity = self.spec.identity
        if identity is None:  # (rows of a natural key the target keeps its own IDs of: no IDs to map)
            deferred.loaded = True
            self._load(
                self.columns, self.types, [tuple(map(v.get, self.columns)) for v, _, _ in deferred.pending]
            )
            return
        loaded = self._load_numbered(deferred) if self.loads else None
        if loaded is None and not self.returning:  # (caught by _batch: a row at a time from now on)
            raise ParityError(f"{self.table}: the target returns no new IDs of many rows")
        ids: Sequence[Any] = loaded if loaded is not None else self._returned_ids(deferred)
        if len(ids) != len(deferred.pending):
            raise ParityError(f"{self.table}: {len(ids)} new IDs came back for {len(deferred.pending)} rows")
        self._map_many([str(old_id) for _, old_id, _ in deferred.pending], ids)
        for (_, _, waiting), new_id in zip(deferred.pending, ids, strict=True):
            if waiting:
                deferred.waits.extend((new_id, column, parent) for column, parent in waiting.items())

    def _returned_ids(self, deferred: _Deferred) -> Sequence[Any]:
        payloads = [self._payload(values) for values, _, _ in deferred.pending]
        return self.conn.execute(self._insert_many, payloads).scalars().all()

    def _load_numbered(self, deferred: _Deferred) -> list[Any] | None:
        """The batch's rows written by the table's bulk path (COPY, LOAD DATA), and their new IDs in
        the rows' order: IDs the database reserves, which the rows carry (``Dialect.reserve_ids``), or
        those a load gives its rows one after another (``Dialect.load_numbering``); None where the
        database can do neither (nothing written: ``loads`` is set off)."""
        identity = self.spec.identity
        assert identity is not None
        dialect, pending = self.endpoint.dialect, deferred.pending
        reserved = dialect.reserve_ids(self.conn, self.endpoint, self.table, identity, len(pending))
        if reserved is not None:
            deferred.loaded = True
            at = self.position[identity]
            rows = []
            for (values, _, _), new in zip(pending, reserved, strict=True):
                row = list(map(values.get, self.columns))
                row[at] = new
                rows.append(tuple(row))
            self._load(self.columns, self.types, rows)
            return reserved
        step = self._load_step
        if step is None:
            self.loads = False
            return None
        deferred.loaded = True
        others = [i for i, c in enumerate(self.columns) if c != identity]
        names = [self.columns[i] for i in others]
        self._load(
            names, [self.types[i] for i in others], [tuple(v.get(c) for c in names) for v, _, _ in pending]
        )
        first = dialect.first_loaded_id(self.conn)
        return [first + i * step for i in range(len(pending))]

    @functools.cached_property
    def _load_step(self) -> int | None:
        if self.endpoint.bulk_refused:  # (the row writer: rows in many statements)
            return None
        return self.endpoint.dialect.load_numbering(self.conn, self.endpoint, self.table)

    def _load(
        self, columns: Sequence[str], types: Sequence[CanonicalType], rows: list[tuple[Any, ...]]
    ) -> None:
        writer = bulk.WRITERS[self.endpoint.writer]
        writer.write_once(self.conn, self.endpoint.qualified(self.table), columns, types, rows)

    @functools.cached_property
    def _insert_many(self) -> sa.Insert:
        """The INSERT of many rows returning their new IDs in the rows' order: a Table with its key
        (SQLAlchemy's sentinel) and its columns' types (PostgreSQL casts each parameter to them)."""
        identity = self.spec.identity
        assert identity is not None
        spell = self.endpoint.dialect.ddl_type
        others = [(c, t) for c, t in zip(self.columns, self.types, strict=True) if c != identity]
        table = sa.Table(
            self.table,
            sa.MetaData(),
            sa.Column(identity, sa.BigInteger(), primary_key=True, autoincrement=True),
            *(sa.Column(c, RawType(spell(t)[0])) for c, t in others),
            schema=self.endpoint.schema,
        )
        return sa.insert(table).returning(table.c[identity], sort_by_parameter_order=True)

    def _payload(self, values: dict[str, Any]) -> dict[str, Any]:
        identity = self.spec.identity
        return {c: self._encode(c, v) for c, v in values.items() if c != identity}

    def _insert(self, values: dict[str, Any]) -> Any:
        identity = self.spec.identity
        payload = self._payload(values)
        if identity and self.returning:
            return self.conn.execute(self._insert_one, payload).scalar_one()
        result = self.conn.execute(self._insert_one, payload)
        return result.lastrowid if identity else None

    @functools.cached_property
    def _insert_one(self) -> sa.Insert:
        """The INSERT of one row (its columns those of the values it is given), returning its new ID
        where the database can: made once (``_natural_query``)."""
        identity = self.spec.identity
        stmt = sa.insert(self.sa_table)
        return stmt.returning(self.sa_table.c[identity]) if identity and self.returning else stmt


_KEYS_A_QUERY = 180
"""The most values ``RemapWriter._looked_up`` binds in one query where the database gives no key rows
(``Dialect.key_rows``; before them, these figures were MariaDB's and PostgreSQL's). MariaDB estimates the rows of more than
``eq_range_index_dive_limit`` (200) equalities from its index statistics, which lag behind a table being
loaded, and then scanned the table for each query (450 keys a query: 0.66 s each, at 60,000 rows);
PostgreSQL plans an OR of many keys' equalities for each query (its plan is not kept)."""


class _RowAtATime(Exception):
    """A batch to write again a row at a time (``RemapWriter._batch``)."""


class _SharedNaturalKey(_RowAtATime):
    """Rows of a batch written together have keys the target takes as equal (``_shared_natural_key``)."""


@dataclass
class _Deferred:
    """What a batch written under one savepoint records at its end (``RemapWriter._batch``)."""

    many: bool = False
    """The batch's rows are put aside (``pending``) and inserted together at its end."""
    looked_up: bool = False
    """The batch's natural keys were looked for together (``_looked_up``): no row is looked for."""
    held: dict[Any, Any] = field(default_factory=dict)
    """Of those keys, the ones the target holds, each with its row's ID (or True)."""
    loaded: bool = False
    """They went by the bulk path (``RemapWriter._load_numbered``), which refuses a value it would
    alter with a ValueError."""
    pending: list[tuple[dict[str, Any], Any, dict[str, Any]]] = field(default_factory=list)
    pairs: dict[str, Any] = field(default_factory=dict)
    waits: list[tuple[Any, str, Any]] = field(default_factory=list)

    def flush(self, writer: RemapWriter) -> None:
        if self.pairs:
            writer.maps.record_many(writer.conn, writer.table, self.pairs)
        for row, column, parent in self.waits:
            writer.maps.state.wait_reference(writer.conn, writer.table, row, column, parent)


def fix_late_references(target: Endpoint, table: str, spec: RemapSpec, maps: IdMaps) -> tuple[int, int]:
    """Point the rows written with a late reference (``RemapSpec.late``, recorded in the state with
    each row) to their parents' new IDs, where those rows are copied by now, and forget them: only
    rows parity wrote, and only while they still hold the NULL it wrote. A reference whose parent
    has no new ID (refused, or not copied yet) stays recorded for a later run. Returns (set, left)."""
    assert spec.identity is not None
    late = sorted(spec.late)
    sa_table = sa.table(table, sa.column(spec.identity), *(sa.column(c) for c in late), schema=target.schema)
    state = maps.state
    with target.begin() as conn:
        waits = state.waiting_references(conn, table)
        wanted: dict[str, set[str]] = {}
        for _, info in waits:
            if info["column"] in spec.late:
                wanted.setdefault(spec.references[info["column"]], set()).add(info["parent"])
        ids = maps.lookup(conn)
        found = {parent: ids.new_ids(parent, olds) for parent, olds in wanted.items()}
        parents = {c: found.get(spec.references[c], {}) for c in late}
        updates: dict[str, list[dict[str, Any]]] = {c: [] for c in late}
        resolved: list[str] = []
        left = 0
        for chunk, info in waits:
            column = info["column"]
            parent = parents[column].get(info["parent"]) if column in parents else None
            if parent is None:
                left += 1
                continue
            updates[column].append({"row_id": info["row"], "parent_id": parent})
            resolved.append(chunk)
        for column, params in updates.items():
            if params:
                stmt = (
                    sa.update(sa_table)
                    .where(sa_table.c[spec.identity] == sa.bindparam("row_id"), sa_table.c[column].is_(None))
                    .values({column: sa.bindparam("parent_id")})
                )
                conn.execute(stmt, params)
        state.references_set(conn, table, resolved)
    return len(resolved), left
