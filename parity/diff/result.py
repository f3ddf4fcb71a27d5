"""What a diff finds: differing rows, per-table statistics, and the run's result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from parity.values import canonical_json, duration_text

if TYPE_CHECKING:
    from parity.diff.idmap import ThroughMap

DiffKind = Literal["missing", "extra", "changed"]


def jsonable(value: Any) -> Any:
    """A canonical value as JSON: decimals, times and UUIDs as text, bytes as hex, JSON as parsed; a
    float that JSON has no number for (NaN, the infinities) as its text, "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(Decimal(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, (date, time, UUID)):
        return value.isoformat() if isinstance(value, (date, time)) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, timedelta):  # (MySQL's TIME beyond a day, or negative)
        return duration_text(value)
    return str(value)


def value_text(value: Any) -> str | None:
    """A canonical value as one line of text (for CSV and the discrepancy table)."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return canonical_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    out = jsonable(value)
    return out if isinstance(out, str) else repr(out) if isinstance(out, float) else str(out)


@dataclass(frozen=True)
class RowDiff:
    """One differing row. ``missing``: in the source only; ``extra``: in the target only."""

    table: str
    key: dict[str, Any]
    kind: DiffKind
    columns: tuple[str, ...] = ()
    """Changed columns (source names); empty for missing and extra rows."""

    source: dict[str, Any] | None = None
    """The source row by source column name (None when extra)."""

    target: dict[str, Any] | None = None
    """The target row by target column name (None when missing)."""

    names: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Source column -> target column, where they differ."""

    row: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)
    """A missing or extra row's decoded values (``RowComparer.moved`` pairs them across partitions)."""

    held: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The target's key columns it holds as text in a spelling of their own, as it holds them (SQLite's
    '2020-06-02 10:00:00Z', which diff takes as 2020-06-02 10:00:00): what sync updates and deletes by."""

    def target_value(self, column: str) -> Any:
        """The target's value of a (source-named) column."""
        return None if self.target is None else self.target.get(self.names.get(column, column))

    def to_json(self) -> dict[str, Any]:
        def row(values: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if values is None else {k: jsonable(v) for k, v in values.items()}

        return {
            "table": self.table,
            "key": row(self.key),
            "kind": self.kind,
            "columns": list(self.columns),
            "source": row(self.source),
            "target": row(self.target),
        }


@dataclass
class TableStats:
    table: str
    target_table: str
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    column_changes: dict[str, int] = field(default_factory=dict)
    rows_downloaded: int = 0
    """Rows fetched into Python, both sides together: zero when the tables are identical."""

    queries: int = 0
    seconds: float = 0.0
    limited: bool = False
    """The diff stopped at --limit: the counts of differences are lower bounds."""

    error: str | None = None
    """Why the table could not be compared (in a run of several tables, the others go on)."""

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.changed

    @property
    def unchanged(self) -> int | None:
        """Source rows found in the target unchanged; None where --limit stopped the count."""
        return None if self.limited else max(0, self.source_rows - self.missing - self.changed)

    def count(self, diff: RowDiff) -> None:
        if diff.kind == "missing":
            self.missing += 1
        elif diff.kind == "extra":
            self.extra += 1
        else:
            self.changed += 1
            for column in diff.columns:
                self.column_changes[column] = self.column_changes.get(column, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "target_table": self.target_table,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing": self.missing,
            "extra": self.extra,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "column_changes": dict(sorted(self.column_changes.items())),
            "rows_downloaded": self.rows_downloaded,
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "limited": self.limited,
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class RecordView:
    """``--record``: one row as each side holds it (None where a side has no such row)."""

    key: dict[str, Any]
    source: dict[str, Any] | None
    target: dict[str, Any] | None
    columns: tuple[str, ...] = ()
    """Compared columns (source names); ``target`` is keyed by the mapped target names."""

    names: dict[str, str] = field(default_factory=dict)
    """Source column -> target column."""


@dataclass
class TableDiff:
    stats: TableStats
    differences: list[RowDiff] = field(default_factory=list)
    """The differing rows, unless they were handed to an ``on_difference`` callback instead."""

    warnings: list[str] = field(default_factory=list)
    limited: bool = False
    """The difference limit was reached: the table was not compared to the end."""

    through_map: ThroughMap | None = None
    """Where the target's ID map holds IDs of the table or of its parents (``idmap``): fix and sync
    refuse to write such a table."""

    record: RecordView | None = None

    @property
    def identical(self) -> bool:
        return self.stats.differences == 0 and self.stats.error is None


@dataclass(frozen=True)
class Progress:
    """A progress report: rows of ``table`` settled so far (equal, or compared), out of ``total``."""

    table: str
    done: int
    total: int
    finished: bool = False


@dataclass
class DiffResult:
    run_id: str
    tables: list[TableDiff] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(t.identical for t in self.tables)

    @property
    def limited(self) -> bool:
        return any(t.limited for t in self.tables)

    @property
    def failed(self) -> list[TableDiff]:
        """Tables that could not be compared (``TableStats.error``)."""
        return [t for t in self.tables if t.stats.error is not None]

    @property
    def differences(self) -> list[RowDiff]:
        return [d for t in self.tables for d in t.differences]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "identical": self.identical,
            "tables": [t.stats.to_json() for t in self.tables],
        }
