"""Segments: the slices of a table pair that diff checksums, splits and downloads.

A table pair is first cut into *roots*: the whole table, or its partitions (windows of a date or
timestamp column per month, week or day; or key ranges). Inside a root, segments are either

- **key ranges** (a single integer key): ``[base + index*width, base + (index+1)*width)``, widths are
  powers of two so that every level of splitting lines up, and one query checksums a whole level;
- **hash buckets** (any other key): ``mod(hash(key), modulus) = residue``. A bucket's members do not
  depend on collation (case, accents, trailing spaces), which key ranges over strings would.

A split makes up to ``2**SPLIT_BITS`` children: a range's width shrinks that much, a bucket's
modulus grows that much.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from parity.config import PartitionConfig
from parity.diff.plan import ColumnPair
from parity.errors import ConfigError
from parity.schema.types import Kind

SPLIT_BITS = 8
MAX_MODULUS = 1 << 56
"""Hashes have 60 bits: buckets stop splitting before their moduli run out of them."""


@dataclass(frozen=True)
class Window:
    """A partition of a table pair: rows whose partition column lies in ``[lo, hi)``, or is NULL."""

    column: ColumnPair
    lo: date | datetime | None = None
    hi: date | datetime | None = None

    @property
    def label(self) -> str:
        if self.lo is None:
            return f"{self.column.name} IS NULL"
        return (
            f"{self.column.name} >= {self.lo}"
            if self.hi is None
            else f"{self.column.name} [{self.lo}, {self.hi})"
        )


@dataclass(frozen=True)
class Root:
    """A root of the segment tree: a window (if partitioned) and, for integer keys, a key range."""

    window: Window | None = None
    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True)
class Segment:
    """Key range ``[base + index*width, ...)`` clipped to the root, or hash bucket ``index`` of ``width``."""

    root: Root
    width: int
    index: int
    base: int = 0

    def key_range(self) -> tuple[int, int]:
        lo = self.base + self.index * self.width
        hi = lo + self.width
        return max(lo, self.root.lo or lo), min(hi, self.root.hi if self.root.hi is not None else hi)

    def splittable(self, ranges: bool) -> bool:
        return self.width > 1 if ranges else self.width < MAX_MODULUS


def child_width(width: int, ranges: bool, bits: int = SPLIT_BITS) -> int:
    """The width (key span, or modulus) of the children when a segment splits ``2**bits`` ways."""
    return max(1, width >> bits) if ranges else min(width << bits, MAX_MODULUS)


def root_segment(root: Root) -> Segment:
    """The segment covering a key-range root: a power-of-two width from its low end."""
    assert root.lo is not None and root.hi is not None
    return Segment(root, 1 << max(0, (root.hi - root.lo - 1).bit_length()), 0, base=root.lo)


def index_groups(
    segments: Sequence[Segment],
    parts: int,
    max_items: int,
    sizes: Sequence[int] | None = None,
    max_rows: int | None = None,
) -> list[list[Segment]]:
    """Sibling segments in index order, cut into consecutive groups (one query each): about ``parts``
    groups of equal count, at most ``max_items`` segments and (given sizes) ``max_rows`` rows each."""
    order = sorted(range(len(segments)), key=lambda i: segments[i].index)
    per_group = min(max_items, max(1, -(-len(order) // max(1, parts))))
    groups: list[list[Segment]] = []
    rows = 0
    for i in order:
        size = sizes[i] if sizes is not None else 0
        full = groups and (len(groups[-1]) >= per_group or (max_rows is not None and rows + size > max_rows))
        if not groups or full:
            groups.append([])
            rows = 0
        groups[-1].append(segments[i])
        rows += size
    return groups


# ---- partitions --------------------------------------------------------------------------------------


MAX_WINDOWS = 20_000
"""The most windows one partitioned diff takes: each window's lower bound is a parameter of the query
summing them (PostgreSQL takes at most 65,535), and each is a segment in memory. A sentinel such as
9999-12-31 beside today's dates spans 96,000 months."""


def window_count(lo: date, hi: date, by: str) -> int:
    """How many windows of ``window_starts`` cover ``[lo, hi]`` (at most one more)."""
    if by == "month":
        return (hi.year - lo.year) * 12 + hi.month - lo.month + 1
    return (hi - lo).days // (7 if by == "week" else 1) + 2


def window_starts(lo: date, hi: date, by: str) -> list[date | None]:
    """The first day of every month, week (Monday) or day from the one holding ``lo`` to ``hi``, then
    the day after the last window; None for it where that is past the last date (9999-12-31): the
    last window is then open."""
    if by == "month":
        start = lo.replace(day=1)
    elif by == "week":
        start = lo - timedelta(days=lo.weekday())  # (0001-01-01 is a Monday)
    else:
        start = lo
    out: list[date | None] = [start]
    day = start
    while day <= hi:
        try:
            day = _next(day, by)
        except (OverflowError, ValueError):  # (past year 9999)
            out.append(None)
            break
        out.append(day)
    return out


def _next(day: date, by: str) -> date:
    if by == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day + timedelta(days=7 if by == "week" else 1)


def windows(column: ColumnPair, lo: Any, hi: Any, by: str, nullable: bool) -> list[Window]:
    """Windows covering ``[lo, hi]`` (dates or datetimes, UTC); one more for NULLs when there can be any."""
    out: list[Window] = []
    if lo is not None and hi is not None:
        kind = column.source.type.kind
        starts = window_starts(day_of(lo), day_of(hi), by)
        bounds: list[Any] = (
            starts
            if kind is Kind.DATE
            else [None if d is None else datetime(d.year, d.month, d.day) for d in starts]
        )
        out = [Window(column, a, b) for a, b in itertools.pairwise(bounds)]
    if nullable:
        out.append(Window(column))
    return out


def day_of(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def utc_naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def check_partition(partition: PartitionConfig, column: ColumnPair | None, table: str, ranges: bool) -> None:
    if partition.by == "key":
        if not ranges:
            raise ConfigError(
                f"table '{table}': partition by key needs a single integer key that is not read through the ID map"
            )
        return
    if column is None:
        raise ConfigError(
            f"table '{table}': partition by {partition.by} needs a column (partition: column: ...)"
        )
    kinds = {column.source.type.kind, column.target.type.kind}
    if not kinds <= {Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ} or len(kinds & {Kind.DATE}) not in (
        0,
        len(kinds),
    ):
        raise ConfigError(
            f"table '{table}': partition column '{column.name}' must be a date or timestamp on both sides"
        )


def window_condition(window: Window, dialect: Any, column: str, kind: Kind) -> sa.ColumnElement[Any]:
    """The window as a condition on one side (its column name, its type, its dialect)."""
    x: sa.ColumnClause[Any] = sa.column(column)
    if window.lo is None:
        return x.is_(None)
    value = dialect.partition_value(x, kind)
    lo, hi = window.lo, window.hi
    if kind is Kind.DATE and isinstance(lo, datetime):
        lo, hi = lo.date(), hi.date() if isinstance(hi, datetime) else hi
    if hi is None:  # (the last window, open past year 9999)
        return value >= dialect.partition_bound(lo, kind)
    return sa.and_(value >= dialect.partition_bound(lo, kind), value < dialect.partition_bound(hi, kind))
