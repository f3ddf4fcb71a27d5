"""Plan one table pair: which columns meet which, as what comparison type, keyed by what.

Two columns compare through a ``Compare``: the kind both sides are rendered as (in SQL for the hash,
in Python for rows that come down), with the parameters that make equal values render equal, e.g. a
decimal(12,2) against a decimal(14,4) compares at scale 4, a CHAR against a VARCHAR without trailing
spaces, a timestamptz against a MySQL DATETIME in UTC.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from parity import config as cfg
from parity.endpoint import Endpoint
from parity.errors import ConfigError, DataError, SchemaError, not_found
from parity.job import select_columns
from parity.schema import reflect as rf
from parity.schema.model import Column, Table
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind, parse

if TYPE_CHECKING:
    from parity.diff.idmap import ThroughMap

NUMERIC_KINDS = (*INTEGER_KINDS, Kind.DECIMAL)
FLOAT_KINDS = (Kind.FLOAT, Kind.DOUBLE)
TIME_KINDS = (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)

FLOAT_DIGITS = {Kind.FLOAT: 6, Kind.DOUBLE: 12}
"""Significant digits floats are compared to where a column pair is not two doubles (compared exactly):
a 4-byte float holds about 7, and a double against a decimal or integer is compared to 12, as the
databases' conversions of a decimal to a double may differ in the last bit."""


@dataclass(frozen=True)
class Compare:
    """How one column pair is compared: the kind both sides become, and its parameters."""

    kind: Kind
    scale: int | None = None
    """Decimals: compare at this many decimals; None: with trailing zeros trimmed (an unbounded side)."""

    digits: int | None = None
    """Floats: significant digits; None: exactly (two doubles, or two 4-byte floats)."""

    single: bool = False
    """Floats: compared as 4-byte floats, exactly: a FLOAT against a FLOAT (a driver may give one as
    its shortest text's double), or against a DOUBLE rounded to the nearest (``Dialect.as_single``)."""

    tolerance: float | None = None
    """Numbers: largest absolute difference still equal; timestamps: in seconds."""

    strip: bool = False
    """Strings: trailing spaces do not count (a CHAR on either side)."""

    fraction: int | None = None
    """Times and timestamps: digits of a second compared (the fewer either column keeps), the rest
    cut off; None: all six."""


@dataclass(frozen=True)
class ColumnPair:
    source: Column
    target: Column
    compare: Compare

    @property
    def name(self) -> str:
        return self.source.name


@dataclass(frozen=True)
class TablePlan:
    """One table pair, resolved: columns met by name (or map), compared as ``Compare`` says."""

    source: Table
    target: Table
    keys: tuple[ColumnPair, ...]
    columns: tuple[ColumnPair, ...]
    where: str | None = None
    target_where: str | None = None
    """The target's condition where it has one of its own; else ``where``."""
    partition: cfg.PartitionConfig | None = None
    warnings: tuple[str, ...] = ()
    source_unique: bool = False
    """The source declares the key unique (primary key or unique constraint): no duplicate check."""

    target_unique: bool = False
    first_key: int | None = None
    """Only the rows whose key is at most this are compared (``diff --first``: a table's first rows)."""
    through_map: ThroughMap | None = None
    """How the target's IDs meet the source's where the target assigned them (``idmap``)."""

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def key_ranges(self) -> bool:
        """True when segments are key ranges (one integer key); otherwise they are hash buckets, as
        where the target's key is read through the ID map (no index serves a range of what it reads)."""
        through = self.through_map
        if through is not None and through.translates and self.keys[0].target.name in through.joined:
            return False
        return len(self.keys) == 1 and self.keys[0].compare.kind in INTEGER_KINDS


def plan_table(source: Endpoint, target: Endpoint, spec: cfg.TableConfig) -> TablePlan:
    """Reflect both tables and resolve keys, columns and comparison types; errors name what is wrong."""
    overrides = {c: parse(s) for c, s in spec.types.items()}
    with ThreadPoolExecutor(1, thread_name_prefix="parity-diff-reflect") as pool:  # both at once
        found = pool.submit(rf.reflect, target, [spec.target or spec.name])
        src = rf.reflect(source, [spec.name], {spec.name: overrides})[0]
        dst = found.result()[0]
    names = src.column_names
    for col in [*spec.map, *(spec.key or ()), *spec.tolerance]:
        if col not in names:
            raise not_found("column", col, names, where=f"table '{src.name}'")
    keys = list(spec.key or src.key() or _mapped_back(dst.key(), dst, spec))
    if not keys:
        raise DataError(
            f"table '{src.name}' has no primary key or unique NOT NULL columns: name the key with -k/--key"
        )
    chosen = select_columns(names, spec.columns, spec.exclude_columns, src.name)
    explicit = set(spec.columns or ()) | set(spec.map)
    warnings: list[str] = []
    pairs: list[ColumnPair] = []
    for name in [*keys, *(c for c in chosen if c not in keys)]:
        other = target_column(dst, spec.map.get(name, name))
        if other is None:
            if name in keys or name in explicit or name in spec.map:
                raise not_found("column", spec.map.get(name, name), dst.column_names, f"table '{dst.name}'")
            warnings.append(f"{src.name}.{name}: no such column in target table '{dst.name}'; not compared")
            continue
        column = src.column(name)
        compare = compare_types(
            column.type,
            other.type,
            spec.tolerance.get(name),
            f"{src.name}.{name}",
            single_floats=source.dialect.SINGLE_FLOATS and target.dialect.SINGLE_FLOATS,
        )
        if compare.kind in (*TIME_KINDS, Kind.TIME) and compare.tolerance is None:
            digits = min([6, *(c.fraction for c in (column, other) if c.fraction is not None)])
            if digits < 6:  # (DATETIME(3) against TIMESTAMP(6): milliseconds)
                compare = replace(compare, fraction=digits)
        pairs.append(ColumnPair(column, other, compare))
    matched = {p.target.name for p in pairs}
    excluded = select_columns(dst.column_names, None, spec.exclude_columns, dst.name)
    extra = [c for c in excluded if c not in matched]
    if extra and not spec.columns:
        warnings.append(f"{dst.name}: target columns not in the source are not compared: {', '.join(extra)}")
    key_pairs = tuple(pairs[: len(keys)])
    for pair in key_pairs:
        if pair.compare.kind in (*FLOAT_KINDS, Kind.JSON) or pair.compare.tolerance is not None:
            raise ConfigError(f"{src.name}.{pair.name}: a {pair.compare.kind.value} column cannot be a key")
    return TablePlan(
        source=src,
        target=dst,
        keys=key_pairs,
        columns=tuple(pairs[len(keys) :]),
        where=spec.where,
        target_where=spec.target_where,
        partition=spec.partition,
        warnings=tuple(warnings),
        source_unique=_declared_unique(src, [p.source.name for p in key_pairs]),
        target_unique=_declared_unique(dst, [p.target.name for p in key_pairs]),
    )


def _mapped_back(keys: tuple[str, ...], dst: Table, spec: cfg.TableConfig) -> list[str]:
    back = {v: k for k, v in spec.map.items()}
    return [back.get(k, k) for k in keys]


def target_column(table: Table, name: str) -> Column | None:
    """The target's column by exact name, else by a unique case-insensitive match."""
    for col in table.columns:
        if col.name == name:
            return col
    folded = [c for c in table.columns if c.name.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _declared_unique(table: Table, columns: list[str]) -> bool:
    wanted = set(columns)
    if set(table.primary_key) == wanted:
        return True
    for index in (*table.uniques, *(i for i in table.indexes if i.unique)):
        if set(index.columns) == wanted and all(not table.column(c).nullable for c in columns):
            return True
    return False


def compare_types(
    source: CanonicalType,
    target: CanonicalType,
    tolerance: float | None,
    where: str,
    single_floats: bool = False,
) -> Compare:
    """The comparison of a source type against a target type; SchemaError when they cannot meet.
    ``single_floats``: both databases hold a FLOAT as a 4-byte float (``Dialect.SINGLE_FLOATS``)."""
    kinds = {source.kind, target.kind}
    if not tolerance and (kinds == {Kind.FLOAT, Kind.DOUBLE} or (kinds == {Kind.FLOAT} and single_floats)):
        return Compare(Kind.DOUBLE, single=True)  # (exactly: the same 32 bits, a double rounded to them)
    compare = _compare(source, target)
    if compare is None:
        hint = ""
        if Kind.DATE in kinds and kinds & {
            Kind.TIMESTAMP,
            Kind.TIMESTAMPTZ,
        }:  # (Oracle's DATE is a timestamp)
            column = where.rsplit(".", 1)[-1]
            hint = f"; to compare them as dates, give the column a type in the job file: types: {{{column}: date}}"
        raise SchemaError(
            f"{where}: {source} and {target} cannot be compared (incompatible column types){hint}"
        )
    if tolerance is not None:
        if tolerance < 0:
            raise ConfigError(f"{where}: tolerance must not be negative")
        if compare.kind not in (*NUMERIC_KINDS, *FLOAT_KINDS, *TIME_KINDS):
            raise ConfigError(
                f"{where}: tolerance applies to numbers and timestamps, not {compare.kind.value}"
            )
        if tolerance > 0:
            return Compare(compare.kind, compare.scale, compare.digits, tolerance=tolerance)
    return compare


def _compare(s: CanonicalType, t: CanonicalType) -> Compare | None:
    kinds = {s.kind, t.kind}
    if kinds <= set(INTEGER_KINDS):
        return Compare(Kind.BIGINT)
    if kinds <= set(NUMERIC_KINDS):
        scales = [_scale(x) for x in (s, t)]
        return Compare(Kind.DECIMAL, scale=None if None in scales else max(x or 0 for x in scales))
    if kinds == {Kind.DOUBLE}:
        return Compare(Kind.DOUBLE)  # (exactly: the same 64 bits)
    if kinds & set(FLOAT_KINDS) and kinds <= {*NUMERIC_KINDS, *FLOAT_KINDS}:
        digits = min(FLOAT_DIGITS.get(x, 12) for x in kinds)
        return Compare(Kind.DOUBLE, digits=digits)
    if kinds <= {Kind.BOOLEAN, *INTEGER_KINDS} and Kind.BOOLEAN in kinds:
        return Compare(Kind.BOOLEAN)
    if kinds <= set(STRING_KINDS):
        return Compare(Kind.TEXT, strip=Kind.CHAR in kinds)
    if Kind.UUID in kinds and kinds <= {Kind.UUID, *STRING_KINDS}:
        return Compare(Kind.UUID)
    if kinds <= set(TIME_KINDS):
        return Compare(Kind.TIMESTAMPTZ if kinds == {Kind.TIMESTAMPTZ} else Kind.TIMESTAMP)
    if Kind.JSON in kinds and kinds <= {Kind.JSON, *STRING_KINDS}:
        return Compare(Kind.JSON)
    if len(kinds) == 1 and s.kind in (Kind.DATE, Kind.TIME, Kind.BINARY):
        return Compare(s.kind)
    return None


def _scale(t: CanonicalType) -> int | None:
    if t.kind in INTEGER_KINDS:
        return 0
    return None if t.precision is None else (t.scale or 0)
