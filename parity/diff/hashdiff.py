"""The hashed diff of one table pair: the databases checksum buckets; Python sees only differing rows.

For each root (the table, or each partition) a level is one query per side (several, run at once,
for a large key range): ``count(*)`` and the sum of row hashes per child bucket. Buckets that agree
are settled; a differing bucket with more than ``threshold`` rows is split again, a smaller one is
downloaded from both sides and compared in Python. Identical tables therefore download nothing.

The first level is one scan of each side, in buckets. With an integer key, and
where both databases can (``Dialect.located_sums``), each later level also sums offset * hash per
bucket: a bucket in which one row differs then names that row, which is fetched with its hash from
both sides; if it accounts for the bucket's whole difference the bucket is settled, else split. The
second level reads the first level's differing buckets in children of about ``locate_rows`` rows to
do just that. The first level of a large table looks at its first query before the others: where
differences lie all over it, the other queries locate rows in fine buckets already, so that a table
with a difference every hundred rows costs about one scan and downloads the differing rows only;
else they sum coarse buckets, which costs the databases less, and the next level reads a few.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from parity.diff.compare import RowComparer
from parity.diff.plan import ColumnPair, Compare, TablePlan, target_column
from parity.diff.result import Progress, RowDiff, TableDiff, TableStats
from parity.diff.segments import (
    MAX_WINDOWS,
    Root,
    Segment,
    check_partition,
    child_width,
    day_of,
    index_groups,
    root_segment,
    utc_naive,
    window_condition,
    window_count,
    windows,
)
from parity.diff.sql import Expr, Query, Side, charsets
from parity.endpoint import Endpoint
from parity.errors import ConfigError, DataError
from parity.log import logger
from parity.schema.types import Kind
from parity.values import DECODE_ERRORS, decode_value

Checksum = tuple[int, int]
"""(row count, sum of row hashes) of one bucket on one side."""

_EMPTY: Checksum = (0, 0)


MAX_LOCATED_BITS = 20
"""Buckets of at most ``2**20`` keys may locate their single differing row (the weighted sums stay
within every database's exact arithmetic)."""


@dataclass
class Found:
    """The checksums of one level: child buckets (by index) of one root, width and base, per side;
    with ``located``, also each bucket's sum of offset * hash (see ``Dialect.located_sums``)."""

    root: Root
    width: int
    base: int
    source: dict[int, Checksum]
    target: dict[int, Checksum]
    located: bool = False
    source_moments: dict[int, int] = field(default_factory=dict)
    target_moments: dict[int, int] = field(default_factory=dict)

    def rolled_up(self, shift: int) -> Found:
        """The same checksums in buckets ``2**shift`` times as wide (plain sums: no moments)."""
        wide = Found(self.root, self.width << shift, self.base, {}, {})
        for mine, theirs in ((self.source, wide.source), (self.target, wide.target)):
            for bucket, (count, total) in mine.items():
                c, t = theirs.get(bucket >> shift, _EMPTY)
                theirs[bucket >> shift] = (c + count, t + total)
        return wide

    def locate(self, bucket: int) -> int | None:
        """The key of the one row that makes the bucket differ, if one row can (else None).

        With ``d`` = source minus target: a single differing row at offset ``o`` gives
        ``d(sum of offset * h) = o * d(sum of h)``; with two or more, the quotient is an offset only by
        chance, which ``TableRun.verify`` catches.
        """
        a, b = self.source.get(bucket, _EMPTY), self.target.get(bucket, _EMPTY)
        d_sum = a[1] - b[1]
        if not self.located or d_sum == 0 or abs(a[0] - b[0]) > 1:
            return None
        if bucket not in self.source_moments and bucket not in self.target_moments:
            return None  # (its part of the level was not located)
        d_moment = self.source_moments.get(bucket, 0) - self.target_moments.get(bucket, 0)
        offset, rest = divmod(d_moment, d_sum)
        if rest or not 0 <= offset < self.width:
            return None
        key = self.base + bucket * self.width + offset
        lo, hi = Segment(self.root, self.width, bucket, self.base).key_range()
        return key if lo <= key < hi else None


@dataclass(frozen=True)
class Located:
    """A differing bucket and the key of the single row said to make it differ."""

    segment: Segment
    size: int
    key: int
    count: int
    """Source minus target: row count ..."""

    total: int
    """... and sum of row hashes."""


@dataclass(frozen=True)
class Options:
    threads: int = 4
    """Concurrent queries per side (partitions, or slices of a large key range)."""

    threshold: int = 8
    """A differing bucket with at most this many rows is downloaded rather than split."""

    download_rows: int = 20_000
    """Rows (estimated from bucket counts) fetched per download query."""

    max_terms: int = 20_000
    """Most buckets (or keys) one query names, where both databases take as many in one IN list
    (``Dialect.MAX_IN_LIST``: Oracle's take 1000). Where buckets are hashes of the key, each query
    reads the whole table: 48 queries a side, of 1000 buckets each, downloaded 80,000 rows that 4
    fetch (SQLite's hashes, in Python, took 44 s instead of 3)."""

    first_buckets: int = 65536
    """Most buckets of the first level (one full scan of each side). Returning them costs identical
    tables a few percent; finer buckets let the next level scan only the differing part of a table
    that differs all over (at 1% of rows changed, about a third of it instead of all of it)."""

    max_buckets: int = 262144
    """Most buckets of a deeper level, over all its differing parents: where many differ, children
    of two to four rows (a bucket row costs about a quarter of a downloaded row)."""

    sparse_buckets: int = 1024
    """Buckets of the first level where its first query finds few differences (see
    ``TableRun.first_level``): fewer groups cost the databases' GROUP BY less ..."""

    locate_first_at: float = 0.1
    """... unless at least this share of the first query's buckets (counted at that coarse width)
    differ: then the rest of the first level locates rows in fine buckets. Locating costs a scan a
    fifth more on MariaDB, and saves reading most of the table a second time."""

    locate_rows: int = 32
    """Where rows are located (see ``Dialect.located_sums``), the level after the first splits its
    buckets into children of about this many rows: few enough that a child seldom holds two differing
    rows (at 1% changed, one in seven), and not so many children that returning them costs more than
    locating saves."""

    pieces: int = 4
    """The first level's key range is cut into up to ``pieces * threads`` queries per side, so that
    the threads stay busy where rows crowd into part of the key range ..."""

    piece_keys: int = 65536
    """... each spanning at least this many keys (a query costs a few milliseconds of its own)."""

    max_ranges: int = 32
    """Up to this many separate key ranges a query lists them (index scans); beyond, it scans one
    covering range and tests bucket numbers."""


def _runs(group: Sequence[Segment]) -> list[tuple[Segment, Segment]]:
    """Consecutive segments (by index) merged: (first, last) of each run."""
    runs: list[tuple[Segment, Segment]] = []
    for segment in group:
        if runs and segment.index == runs[-1][1].index + 1:
            runs[-1] = (runs[-1][0], segment)
        else:
            runs.append((segment, segment))
    return runs


WINDOWS_SUMMED_FROM = 3
"""Partitions by a period from this many windows are summed all at once first (``unsettled_windows``)."""


def _whole_key(side: Side, value: Any) -> None:
    """An integer key's least or greatest value must be a number (SQLite holds text in any column: its
    max() of 'abc' beside numbers is 'abc', and int() of it stopped the diff naming nothing)."""
    if value is None or isinstance(value, int | float | Decimal):
        return
    raise DataError(
        f"table '{side.table_name}' ({side.role}): key {side.key.name} holds {value!r}, which is no integer;"
        " diff splits an integer key by its ranges (mend such rows, or leave them out with --where)"
    )


def window_index(side: Side, windows: Sequence[Any]) -> Expr:
    """The index in ``windows`` of the window each row of ``side`` falls in: a balanced CASE over the
    windows' lower bounds (a few comparisons a row, whatever their number); NULLs in their window."""
    column = windows[0].column.source if side.role == "source" else windows[0].column.target
    kind, dialect = column.type.kind, side.dialect
    x: sa.ColumnClause[Any] = sa.column(column.name)
    value = dialect.partition_value(x, kind)
    bounded = [(i, w.lo) for i, w in enumerate(windows) if w.lo is not None]

    def low(lo: Any) -> Any:
        return lo.date() if kind is Kind.DATE and isinstance(lo, datetime) else lo

    def bound(lo: Any) -> Any:
        return dialect.partition_bound(low(lo), kind)

    def tree(low: int, high: int) -> Any:
        if high - low == 1:
            return sa.literal_column(str(bounded[low][0]))
        middle = (low + high) // 2
        return sa.case((value < bound(bounded[middle][1]), tree(low, middle)), else_=tree(middle, high))

    nulls = [i for i, w in enumerate(windows) if w.lo is None]
    if not bounded:
        return sa.literal_column(str(nulls[0]))
    lookup = dialect.partition_window(value, [low(lo) for _, lo in bounded], [i for i, _ in bounded], kind)
    index = tree(0, len(bounded)) if lookup is None else lookup
    return sa.case((x.is_(None), sa.literal_column(str(nulls[0]))), else_=index) if nulls else index


def _leads_an_index(table: Any, column: str) -> bool:
    """Whether ``column`` is the first of the table's primary key or of one of its indexes."""
    leads = [table.primary_key, *(i.columns for i in (*table.uniques, *table.indexes))]
    return any(columns and columns[0] == column for columns in leads)


def _in_order(
    futures: Sequence[tuple[Future[list[Any]], Future[list[Any]]]],
) -> Iterator[tuple[list[Any], list[Any]]]:
    for source, target in futures:
        yield source.result(), target.result()


class Budget:
    """The difference limit, shared by every table and thread of a run."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self.exhausted = False
        """Whether a difference past the limit was found (then the run stops, "limited"): with exactly
        ``limit`` differences the run goes on to its end, and is not limited."""
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        """Whether ``limit`` differences are taken: a table not begun yet would find none it could keep."""
        return self.limit is not None and self.used >= self.limit

    def take(self, wanted: int) -> int:
        with self._lock:
            allowed = wanted if self.limit is None else max(0, min(wanted, self.limit - self.used))
            self.used += allowed
            self.exhausted = self.exhausted or allowed < wanted
            return allowed


_BIGINT_MAX = 2**63 - 1

MAX_KEY_PARTITIONS = 100_000
"""Partitions by key of a given size are refused past this many (keys 1..1000 and one of 4e18, by
100,000: 4e13 partitions, planned all at once, took every byte of memory)."""


class TableRun:
    """One table pair's diff; ``run()`` returns its TableDiff."""

    def __init__(
        self,
        plan: TablePlan,
        source: Endpoint,
        target: Endpoint,
        options: Options,
        budget: Budget,
        on_difference: Callable[[RowDiff], None] | None = None,
        progress: Callable[[Progress], None] | None = None,
        keep: bool = True,
    ) -> None:
        self.plan = plan
        self.sides = (
            Side(source, plan, "source", charsets(source, plan.source.name)),
            Side(target, plan, "target", charsets(target, plan.target.name)),
        )
        self.options = options
        self.max_terms = min(options.max_terms, *(side.dialect.MAX_IN_LIST for side in self.sides))
        self.budget = budget
        self.comparer = RowComparer(plan, source.dialect, target.dialect)
        self.stats = TableStats(plan.source.name, plan.target.name)
        self.result = TableDiff(self.stats, warnings=list(plan.warnings))
        self.on_difference = on_difference
        self.keep = keep
        self.progress = progress
        self.ranges = plan.key_ranges
        self.locates = self.ranges and all(side.dialect.DECODES for side in self.sides)
        self.lock = threading.Lock()
        self.failed = threading.Event()
        self.done = 0
        self.total = 0
        self.io: ThreadPoolExecutor | None = None
        self.unpaired: dict[tuple[Any, ...], RowDiff] | None = None
        """Missing and extra rows of a partitioned table, by key, until their twin or the table's end."""
        self.rows_io: ThreadPoolExecutor | None = None
        """Row fetches (verifications, downloads) have threads of their own: they run while the first
        level's checksum queries still wait for theirs."""

    def run(self) -> TableDiff:
        started = time.perf_counter()
        threads = max(1, self.options.threads)
        with (
            ThreadPoolExecutor(2 * threads, thread_name_prefix="parity-diff-io") as io,
            ThreadPoolExecutor(2 * threads, thread_name_prefix="parity-diff-rows") as rows_io,
        ):
            self.io, self.rows_io = io, rows_io
            self.check_keys()
            roots = self.roots()
            if len(roots) == 1:
                self.walk(roots[0], None, None, threads)
            else:
                self.unpaired = {}
                walked = self.unsettled_windows(roots)
                self.warn_unindexed(walked)
                self.walk_all(walked, threads)
                with self.lock:
                    left, self.unpaired = list(self.unpaired.values()), None
                self.emit(left)
        self.stats.seconds = time.perf_counter() - started
        self.report(finished=True)
        logger.info("diff %s: %s", self.plan.name, self.stats.to_json())
        return self.result

    # ---- the walk ------------------------------------------------------------------------------------

    def walk_all(self, roots: Sequence[Root], threads: int) -> None:
        """Partitions in a thread pool; with stagger, each one's first fetch waits for the previous one's."""
        stagger = self.plan.partition is not None and self.plan.partition.stagger
        gates = [threading.Event() for _ in roots]
        with ThreadPoolExecutor(threads, thread_name_prefix="parity-diff-part") as pool:
            futures = [
                pool.submit(self.walk, root, gates[i - 1] if stagger and i else None, gates[i], 1)
                for i, root in enumerate(roots)
            ]
            for future in futures:
                future.result()

    def walk(
        self, root: Root, wait: threading.Event | None, ready: threading.Event | None, split: int
    ) -> None:
        try:
            if wait is not None:
                wait.wait()
            first = None if self.halted() else self.first_segment(root)
            parents: list[tuple[Segment, int]] = [(first, -1)] if first is not None else []
            level = 0
            while parents and not self.halted():
                located = self.locates and level > 0 and parents[0][0].width <= 1 << MAX_LOCATED_BITS
                bits = self.locate_bits(parents) if located and level == 1 else None
                deeper: list[tuple[Segment, int]] = []
                for found in self.level(parents, split, located, bits, adaptive=self.locates and level == 0):
                    if level == 0:
                        self.count_rows(found)
                    deeper += self.settle(found)
                if level == 0 and ready is not None:
                    ready.set()
                parents = deeper
                level += 1
        except BaseException:
            self.failed.set()
            raise
        finally:
            if ready is not None:
                ready.set()

    def first_segment(self, root: Root) -> Segment | None:
        if not self.ranges:
            return Segment(root, 1, 0)
        if root.lo is None:
            bounds = self.both(lambda side: side.bounds(side.key.name, self.window(side, root)))
            for side, r in zip(self.sides, bounds, strict=True):
                for v in r[0] if r else ():
                    _whole_key(side, v)
            lows = [int(r[0][0]) for r in bounds if r and r[0][0] is not None]
            highs = [int(r[0][1]) for r in bounds if r and r[0][1] is not None]
            if not lows:
                return None
            lo, hi = min(lows), max(highs) + 1
            if (hi > _BIGINT_MAX or hi - lo > _BIGINT_MAX) and root.window is None:
                # a bound past BIGINT, or offsets from the lowest key that would overflow (a sentinel
                # key at either end): buckets of the key's hash instead of its ranges (decided for
                # the whole table, before any of its partitions is walked: ``roots``)
                self.ranges = self.locates = False
                return Segment(root, 1, 0)
            root = replace(root, lo=lo, hi=hi)
        return root_segment(root)

    def split_bits(self, parents: Sequence[tuple[Segment, int]]) -> int:
        """How finely to split this level: ``2**bits`` children per parent.

        About one row per child, within a budget of buckets per level: ``first_buckets`` for the first
        level (whose size is not known yet, marked -1), ``max_buckets`` over all parents deeper down.
        """
        first = parents[0][1] < 0
        budget = self.options.first_buckets if first else self.options.max_buckets
        bits = max(1, (budget // len(parents)).bit_length() - 1)
        if not first:
            rows = max(n for _, n in parents)
            bits = min(bits, max(1, (rows - 1).bit_length()))
        if self.ranges:
            bits = min(bits, max(1, parents[0][0].width.bit_length() - 1))
        return bits

    def locate_bits(self, parents: Sequence[tuple[Segment, int]]) -> int:
        """The level after the first, where it locates rows: children of about ``locate_rows`` rows
        (none, 0 bits, where the first level's buckets are that small already)."""
        rows = max(n for _, n in parents)
        bits = ((rows - 1) // self.options.locate_rows).bit_length()
        budget = max(0, (self.options.max_buckets // len(parents)).bit_length() - 1)
        return min(bits, budget, parents[0][0].width.bit_length() - 1)

    def level(
        self,
        parents: Sequence[tuple[Segment, int]],
        split: int,
        located: bool = False,
        bits: int | None = None,
        adaptive: bool = False,
    ) -> Iterator[Found]:
        """Checksums of every child bucket of ``parents`` (siblings of one root and width), both sides;
        ``2**bits`` children per parent (0: the parents themselves), by default ``split_bits``: the
        whole level, or (``adaptive``, see ``first_level``) its parts as their queries come in, each
        to be settled while the databases still work on the next ones.

        ``adaptive`` (the first level): the first ``split`` queries go plain; where at least
        ``locate_first_at`` of the first one's buckets differ, the queries after them are located,
        since the next level would read most of the table again (its differing buckets lie all
        over)."""
        first = parents[0][0]
        root, base, width = first.root, first.base, first.width
        bits = self.split_bits(parents) if bits is None else bits
        child = child_width(width, self.ranges, bits)
        segments = [s for s, _ in parents]
        parts = split
        if self.ranges and len(segments) < split:  # cut the few parents up, to query them in parallel
            span = sum(s.key_range()[1] - s.key_range()[0] for s in segments)
            parts = max(split, min(self.options.pieces * split, span // self.options.piece_keys))
            cut = min((parts - 1).bit_length(), bits, width.bit_length() - 1)
            parts = 2**cut
            pieces = (
                Segment(root, width >> cut, s.index * 2**cut + j, base)
                for s in segments
                for j in range(2**cut)
            )
            segments = [p for p in pieces if p.key_range()[0] < p.key_range()[1]]
        groups = index_groups(segments, parts, self.max_terms)
        found = Found(root, child, base, {}, {}, located)
        if adaptive and len(groups) > split and child <= 1 << MAX_LOCATED_BITS:
            yield from self.first_level(found, groups, width)
            return
        makers = [self.checksums_of(group, child, located) for group in groups]
        self.collect(found, self.many(makers), child, located)
        yield found

    def first_level(self, found: Found, groups: Sequence[Sequence[Segment]], width: int) -> Iterator[Found]:
        """The first level of a large key range, after a look at its first query (see ``level``).

        The first query sums fine buckets. Rolled up into coarse ones (``sparse_buckets`` for the
        level), they tell how much of the table the next level would read again: where at least
        ``locate_first_at`` of the coarse buckets differ, the other queries locate rows in the fine
        buckets; else they sum the coarse buckets, which costs the databases less (MariaDB's GROUP BY
        a fifth less than 4096 buckets per query) and leaves the next level only a few of them.
        Yields the first query's buckets (at the width the others use), then each other query's as
        it comes in."""
        child = found.width
        piece = min(s.width for s in groups[0])
        budget = max(1, self.options.sparse_buckets.bit_length() - 1)
        coarse = max(child, min(piece, width >> budget))
        head, rest = groups[0], list(groups[1:])
        if len(head) == 1 and piece >= 4 * coarse:  # a quarter of the first piece is enough to look at
            quarters = [
                Segment(head[0].root, piece >> 2, head[0].index * 4 + j, head[0].base) for j in range(4)
            ]
            quarters = [q for q in quarters if q.key_range()[0] < q.key_range()[1]]
            head, rest = quarters[:1], [quarters[1:], *rest] if len(quarters) > 1 else rest
        self.collect(found, self.many([self.checksums_of(head, child)]), child)
        rolled = found.rolled_up((coarse // child).bit_length() - 1)
        buckets = rolled.source.keys() | rolled.target.keys()
        differ = sum(rolled.source.get(b) != rolled.target.get(b) for b in buckets)
        located = differ >= self.options.locate_first_at * max(1, len(buckets))
        size = self.located_width(found, head, width) if located else coarse
        if located and size < child:  # (the level's buckets share one width: the head again, finer)
            rest = [head, *rest]
        else:
            yield found if located else rolled
        results = self.many([self.checksums_of(g, size, located) for g in rest])
        for result in results:
            part = Found(found.root, size, found.base, {}, {}, located)
            self.collect(part, [result], size, located)
            yield part

    def located_width(self, head: Found, segments: Sequence[Segment], width: int) -> int:
        """The bucket width for a first level that locates rows: about ``locate_rows`` rows a bucket
        at the head's density (one differing row each, mostly, where 1% of rows differ), within
        ``max_buckets`` for the level (of ``width`` keys), and no wider than the head's buckets."""
        rows = max(sum(c for c, _ in head.source.values()), sum(c for c, _ in head.target.values()))
        keys = sum(s.key_range()[1] - s.key_range()[0] for s in segments)
        wanted = max(1, self.options.locate_rows * keys // max(1, rows))
        fine = 1 << (wanted.bit_length() - 1)
        least = width >> max(0, self.options.max_buckets.bit_length() - 1)
        return min(head.width, max(fine, least, 1))

    def collect(
        self, found: Found, results: Iterable[tuple[list[Any], list[Any]]], child: int, located: bool = False
    ) -> None:
        """Checksum rows of both sides into ``found`` (with moments where ``located``)."""
        for source_rows, target_rows in results:
            # each bucket lies in one parent, so in one group's rows (plain ints: a level can hold
            # a hundred thousand buckets, and only the differing ones become Segments)
            if not located:
                found.source.update((int(b), (int(c), int(s or 0))) for b, c, s in source_rows)
                found.target.update((int(b), (int(c), int(s or 0))) for b, c, s in target_rows)
                continue
            for side, rows, sums, moments in (
                (self.sides[0], source_rows, found.source, found.source_moments),
                (self.sides[1], target_rows, found.target, found.target_moments),
            ):
                for b, c, *values in rows:
                    total, moment = side.dialect.located_totals(values, child.bit_length() - 1)
                    sums[int(b)] = (int(c), total)
                    moments[int(b)] = moment

    def checksums_of(
        self, group: Sequence[Segment], child: int, located: bool = False
    ) -> Callable[[Side], Query]:
        first = group[0]

        def make(side: Side) -> sa.Executable:
            bucket = side.range_bucket(first.base, child) if self.ranges else side.hash_bucket(child)
            conditions = self.within(side, group)
            if located:
                offset = side.range_offset(first.base, child)
                return side.located_checksums(bucket, offset, child.bit_length() - 1, conditions)
            return side.checksums(bucket, conditions)

        return make

    def within(self, side: Side, group: Sequence[Segment]) -> list[Expr]:
        """Conditions selecting exactly the rows of a group of sibling segments (sorted by index).

        Key ranges: a few runs of buckets become ``lo <= key < hi OR ...`` (index range scans); many
        become one covering range and the bucket numbers (one scan with a cheap test per row: hundreds
        of OR'ed ranges cost both planners more than that).
        """
        first, last = group[0], group[-1]
        conditions = self.window(side, first.root)
        if not self.ranges:
            if first.width > 1:
                conditions.append(side.hash_in(first.width, [s.index for s in group]))
            return conditions
        runs = _runs(group)
        if len(runs) <= self.options.max_ranges:
            conditions.append(sa.or_(*(side.key_range(a.key_range()[0], b.key_range()[1]) for a, b in runs)))
        else:
            conditions.append(side.key_range(first.key_range()[0], last.key_range()[1]))
            conditions.append(
                side.bucket_in(side.range_bucket(first.base, first.width), [s.index for s in group])
            )
        return conditions

    def settle(self, found: Found) -> list[tuple[Segment, int]]:
        """Settle equal buckets, download small differing ones; return the ones to split further."""
        limit = self.options.threshold
        source, target = found.source, found.target
        settled = 0
        differing: list[tuple[int, int]] = []
        for bucket, a in source.items():
            b = target.get(bucket, _EMPTY)
            if a == b:
                settled += a[0]
            else:
                differing.append((bucket, max(a[0], b[0])))
        differing.extend((bucket, b[0]) for bucket, b in target.items() if bucket not in source)
        differing.sort()
        splittable = Segment(found.root, found.width, 0, found.base).splittable(self.ranges)
        located: list[Located] = []
        unlocated: list[tuple[Segment, int]] = []
        for bucket, size in differing:
            segment = Segment(found.root, found.width, bucket, found.base)
            key = found.locate(bucket)
            if key is None:
                unlocated.append((segment, size))
            else:
                a, b = source.get(bucket, _EMPTY), target.get(bucket, _EMPTY)
                located.append(Located(segment, size, key, a[0] - b[0], a[1] - b[1]))
        self.advance(settled)
        unlocated.extend(self.verify(located))
        unlocated.sort(key=lambda item: item[0].index)
        leaves: list[tuple[Segment, int]] = []
        deeper: list[tuple[Segment, int]] = []
        for segment, size in unlocated:
            (leaves if size <= limit or not splittable else deeper).append((segment, size))
        self.download(leaves)
        return deeper

    def verify(self, located: Sequence[Located]) -> list[tuple[Segment, int]]:
        """Fetch the rows ``located`` names (with their hashes) from both sides. Where a row accounts
        for its bucket's whole difference in row count and hash sum, the rest of the bucket is equal:
        the bucket is settled and the row compared. The other buckets are returned, to be split."""
        failed: list[tuple[Segment, int]] = []
        if not located or self.halted():
            return failed
        step = self.max_terms
        chunks = [located[i : i + step] for i in range(0, len(located), step)]
        makers = [self.named_rows(chunk) for chunk in chunks]
        for chunk, (source_rows, target_rows) in zip(chunks, self.many(makers, rows=True), strict=True):
            if self.halted():
                break
            with self.lock:
                self.stats.rows_downloaded += len(source_rows) + len(target_rows)
            source = {int(row[0]): row for row in source_rows}
            target = {int(row[0]): row for row in target_rows}
            found_source, found_target, settled = [], [], 0
            for item in chunk:
                a, b = source.get(item.key), target.get(item.key)
                count = (a is not None) - (b is not None)
                total = (0 if a is None else int(a[-1])) - (0 if b is None else int(b[-1]))
                if (count, total) != (item.count, item.total):
                    failed.append((item.segment, item.size))
                    continue
                settled += item.size
                if a is not None:
                    found_source.append(a[:-1])
                if b is not None:
                    found_target.append(b[:-1])
            self.emit(self.comparer.compare(found_source, found_target))
            self.advance(settled)
        return failed

    def named_rows(self, chunk: Sequence[Located]) -> Callable[[Side], Query]:
        def make(side: Side) -> Query:
            keys = side.bucket_in(side.key, [x.key for x in chunk])
            return side.rows([*self.window(side, chunk[0].segment.root), keys], hashed=True)

        return make

    def download(self, leaves: Sequence[tuple[Segment, int]]) -> None:
        """Fetch the rows of the leaves from both sides, a chunk per query, and compare them."""
        if not leaves or self.halted():
            return
        sizes = dict(leaves)
        segments = [s for s, _ in leaves]
        groups = index_groups(
            segments, 1, self.max_terms, [sizes[s] for s in segments], self.options.download_rows
        )
        # a window of queries in flight: the next ones run while Python compares the first ones' rows
        window = max(1, self.options.threads)
        pending = iter(groups)
        flying: deque[tuple[list[Segment], tuple[Future[list[Any]], Future[list[Any]]]]] = deque()
        for group in itertools.islice(pending, window):
            flying.append((group, self.submit(self.rows_of(group), rows=True)))
        while flying:
            group, (source_future, target_future) = flying.popleft()
            source_rows, target_rows = source_future.result(), target_future.result()
            if self.halted():
                continue  # let the queries in flight finish, start no more
            nxt = next(pending, None)
            if nxt is not None:
                flying.append((nxt, self.submit(self.rows_of(nxt), rows=True)))
            with self.lock:
                self.stats.rows_downloaded += len(source_rows) + len(target_rows)
            self.emit(self.comparer.compare(source_rows, target_rows))
            self.advance(sum(sizes[s] for s in group))

    def rows_of(self, group: Sequence[Segment]) -> Callable[[Side], Query]:
        return lambda side: side.rows(self.within(side, group))

    # ---- roots: the table, or its partitions ----------------------------------------------------------

    def roots(self) -> list[Root]:
        part = self.plan.partition
        if part is None:
            return [Root()]
        column = self.partition_column(part.column) if part.column else None
        check_partition(part, column, self.plan.name, self.ranges)
        if part.by == "key":
            return self.key_roots(part.size)
        assert column is not None
        if self.ranges:  # (keys past BIGINT's range: hash buckets in every window, decided here)
            self.first_segment(Root())
        lo, hi = self.column_bounds(column)
        if lo is not None and hi is not None:
            count = window_count(day_of(lo), day_of(hi), part.by)
            if count > MAX_WINDOWS:
                raise ConfigError(
                    f"{self.plan.name}: partitions by {part.by} over {column.name}, from {day_of(lo)} to "
                    f"{day_of(hi)}, would be {count:,} (at most {MAX_WINDOWS:,}); partition by a longer "
                    "period, or leave far values (a sentinel such as 9999-12-31) out with where"
                )
        nullable = column.source.nullable or column.target.nullable
        return [Root(window=w) for w in windows(column, lo, hi, part.by, nullable)]

    def warn_unindexed(self, walked: Sequence[Root]) -> None:
        """A warning where the partitions walked one by one each read the whole table of a side on
        which no index begins with the partition column."""
        part, window = self.plan.partition, walked[0].window if walked else None
        if part is None or window is None or len(walked) < 2:
            return
        column = window.column
        unindexed = [
            role
            for role, table, name in (
                ("source", self.plan.source, column.source.name),
                ("target", self.plan.target, column.target.name),
            )
            if not _leads_an_index(table, name)
        ]
        if unindexed:
            self.result.warnings.append(
                f"{self.plan.name}: no index on the {' and '.join(unindexed)} begins with {column.source.name}:"
                f" each of the {len(walked)} partitions by {part.by} that differ reads the whole table there"
                " (index it, or partition by a longer period or by key)"
            )

    def unsettled_windows(self, roots: list[Root]) -> list[Root]:
        """Partitions by a period: one query a side sums every window at once (grouped by the window
        each row falls in), and only the windows that differ are walked; each window's own queries
        would read the whole table where no index serves the column."""
        windows = [root.window for root in roots]
        if len(roots) < WINDOWS_SUMMED_FROM or any(w is None for w in windows):
            return roots
        depth = (len(roots) - 1).bit_length() + 1  # (the balanced CASE, and the one for NULLs)
        if any(
            side.dialect.MAX_CASE_DEPTH is not None and depth > side.dialect.MAX_CASE_DEPTH
            for side in self.sides
        ):
            return roots
        # (with an integer key, each window's key range too: a window walked needs no query for it)
        ranges = self.ranges
        sums = self.both(lambda side: side.checksums(window_index(side, windows), [], key_bounds=ranges))
        source, target = ({int(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows} for rows in sums)
        keys: dict[int, list[int]] = {}
        for rows in sums if ranges else ():
            for r in rows:
                keys.setdefault(int(r[0]), []).extend(int(k) for k in r[3:] if k is not None)
        left = []
        for i, root in enumerate(roots):
            a, b = source.get(i, _EMPTY), target.get(i, _EMPTY)
            if a != b:
                known = keys.get(i)
                left.append(replace(root, lo=min(known), hi=max(known) + 1) if known else root)
                continue
            with self.lock:
                self.stats.source_rows += a[0]
                self.stats.target_rows += b[0]
                self.total += a[0]
            self.advance(a[0])
        return left

    def partition_column(self, name: str) -> ColumnPair:
        for pair in (*self.plan.keys, *self.plan.columns):
            if pair.source.name == name:
                return pair
        source = self.plan.source.column(name)
        target = target_column(self.plan.target, name)
        if target is None:
            target = self.plan.target.column(name)  # raises NotFound with a suggestion
        return ColumnPair(source, target, Compare(source.type.kind))

    def column_bounds(self, column: ColumnPair) -> tuple[Any, Any]:
        def bounds(side: Side) -> Any:
            own = column.source if side.role == "source" else column.target
            return side.bounds(own.name, [], own.type.kind)

        found = self.both(bounds)
        values: list[Any] = []
        for rows, col, side in zip(found, (column.source, column.target), self.sides, strict=True):
            slack = side.dialect.period_slack(col.type.kind)
            for found_value, toward in zip(rows[0] if rows else (), (-slack, slack), strict=False):
                if found_value is not None:
                    try:
                        value = utc_naive(decode_value(col.type.kind, found_value))
                    except DECODE_ERRORS as exc:  # (SQLite's text in a DATE column sorts past its dates)
                        raise DataError(
                            f"{self.plan.name}: cannot partition by {col.name}, which holds {found_value!r},"
                            f" no {col.type.kind.value} ({exc}): mend the value, or partition by another column"
                        ) from None
                    with suppress(OverflowError):  # (at year 1 or 9999: as it is)
                        value += toward
                    values.append(value)
        return (min(values), max(values)) if values else (None, None)

    def key_roots(self, size: int | None) -> list[Root]:
        first = self.first_segment(Root())
        if first is None or not self.ranges:  # (keys past BIGINT's range: hash buckets, one root)
            return [Root()]
        lo, hi = first.root.lo, first.root.hi
        assert lo is not None and hi is not None
        width = size or max(1, -(-(hi - lo) // (4 * max(1, self.options.threads))))
        count = -(-(hi - lo) // width)
        if count > MAX_KEY_PARTITIONS:
            raise ConfigError(
                f"{self.plan.name}: partitions by key of size {width:,} over its keys {lo}..{hi - 1} would be "
                f"{count:,}; give a size of at least {-(-(hi - lo) // MAX_KEY_PARTITIONS):,}, or none"
            )
        return [Root(lo=a, hi=min(a + width, hi)) for a in range(lo, hi, width)]

    def window(self, side: Side, root: Root) -> list[Expr]:
        w = root.window
        if w is None:
            return []
        column = w.column.source if side.role == "source" else w.column.target
        return [window_condition(w, side.dialect, column.name, column.type.kind)]

    # ---- keys ------------------------------------------------------------------------------------------

    def check_keys(self) -> None:
        """NULL and duplicate keys are errors with examples (checked where nothing declares them away)."""
        assert self.io is not None
        checks: list[tuple[Side, str, Future[list[Any]]]] = []
        for side, unique, table in zip(
            self.sides,
            (self.plan.source_unique, self.plan.target_unique),
            (self.plan.source, self.plan.target),
            strict=True,
        ):
            if any(table.column(c.name).nullable for c in side.key_columns):
                checks.append((side, "null", self.io.submit(side.run, side.null_keys())))
            if not unique:
                checks.append((side, "duplicate", self.io.submit(side.run, side.duplicate_keys())))
        for side, what, future in checks:
            rows = future.result()
            self.stats.queries += 1
            names = ", ".join(c.name for c in side.key_columns)
            where = f"table '{side.table_name}' ({side.role})"
            if what == "null" and rows and rows[0][0]:
                shown = ""
                if len(side.key_columns) > 1:  # (which of its columns, and the others' values)
                    for row in side.run(side.null_keys(example=True))[:1]:  # (none, if it went since)
                        pairs = zip(side.key_columns, row, strict=True)
                        values = ", ".join(f"{c.name}={'NULL' if v is None else v}" for c, v in pairs)
                        shown = f", e.g. ({values})"
                raise DataError(
                    f"{where}: {rows[0][0]} rows have a NULL key ({names}){shown}; diff needs a non-null key"
                )
            if what == "duplicate" and rows:
                shown = "; ".join(f"{', '.join(map(str, r[:-1]))} ({r[-1]} rows)" for r in rows)
                raise DataError(
                    f"{where} has duplicate keys ({names}), e.g. {shown}; name a unique key with -k"
                )

    # ---- plumbing --------------------------------------------------------------------------------------

    def both(self, make: Callable[[Side], Query]) -> tuple[list[Any], list[Any]]:
        return next(self.many([make]))

    def many(
        self, makers: Sequence[Callable[[Side], Query]], rows: bool = False
    ) -> Iterator[tuple[list[Any], list[Any]]]:
        """Run each maker's query on both sides, all at once; results in order, each as soon as it is in
        (the caller works on the first ones while the databases still run the others)."""
        return _in_order([self.submit(make, rows) for make in makers])

    def submit(
        self, make: Callable[[Side], Query], rows: bool = False
    ) -> tuple[Future[list[Any]], Future[list[Any]]]:
        """Start the maker's query on both sides (``rows``: a row fetch, on the row threads)."""
        pool = self.rows_io if rows else self.io
        assert pool is not None
        source, target = (pool.submit(side.run, make(side)) for side in self.sides)
        with self.lock:
            self.stats.queries += 2
        return source, target

    def halted(self) -> bool:
        return self.failed.is_set() or self.budget.exhausted

    def emit(self, diffs: list[RowDiff]) -> None:
        if not diffs:
            return
        with self.lock:
            if self.unpaired is not None:
                diffs = self.pair_moved(diffs)
            allowed = self.budget.take(len(diffs))
            if allowed < len(diffs):
                self.result.limited = self.stats.limited = True
            for diff in diffs[:allowed]:
                self.stats.count(diff)
                if self.on_difference is not None:
                    self.on_difference(diff)
                if self.keep:
                    self.result.differences.append(diff)

    def pair_moved(self, diffs: list[RowDiff]) -> list[RowDiff]:
        """Partitions' missing and extra rows are held until the table is done: a row whose partition
        column changed is missing from one partition and extra in another, which is one changed row."""
        assert self.unpaired is not None
        out = []
        for diff in diffs:
            if diff.kind == "changed" or diff.row is None:
                out.append(diff)
                continue
            key = self.comparer.comparable_key(diff.row, "source" if diff.kind == "missing" else "target")
            other = self.unpaired.get(key)
            if other is None or other.kind == diff.kind:
                self.unpaired[key] = diff
                continue
            del self.unpaired[key]
            missing, extra = (diff, other) if diff.kind == "missing" else (other, diff)
            if (changed := self.comparer.moved(missing, extra)) is not None:
                out.append(changed)
        return out

    def count_rows(self, found: Found) -> None:
        source, target = found.source, found.target
        with self.lock:
            self.stats.source_rows += sum(a[0] for a in source.values())
            self.stats.target_rows += sum(b[0] for b in target.values())
            self.total += sum(max(a[0], target.get(k, _EMPTY)[0]) for k, a in source.items())
            self.total += sum(b[0] for k, b in target.items() if k not in source)
        self.report()

    def advance(self, rows: int) -> None:
        with self.lock:
            self.done += rows
        self.report()

    def report(self, finished: bool = False) -> None:
        if self.progress is not None:
            total = max(self.total, self.done)
            self.progress(Progress(self.plan.name, total if finished else self.done, total, finished))
