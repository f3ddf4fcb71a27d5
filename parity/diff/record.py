"""``--record KEY``: one row, fetched by its key from both sides and compared."""

from __future__ import annotations

import csv
import uuid
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from parity.diff.compare import RowComparer
from parity.diff.plan import TablePlan
from parity.diff.result import RecordView, TableDiff, TableStats
from parity.diff.sql import Side, charsets
from parity.endpoint import Endpoint
from parity.errors import ConfigError, NotFound
from parity.schema.types import INTEGER_KINDS, Kind
from parity.values import hex_bytes, uuid_spellings

_PARSERS: dict[Kind, Any] = {
    **dict.fromkeys(INTEGER_KINDS, int),
    Kind.DECIMAL: Decimal,
    Kind.UUID: uuid.UUID,
    Kind.DATE: date.fromisoformat,
    Kind.TIMESTAMP: datetime.fromisoformat,
    Kind.TIMESTAMPTZ: datetime.fromisoformat,
    Kind.TIME: time.fromisoformat,
    Kind.BINARY: hex_bytes,  # (its hex digits, as diff shows it)
    Kind.BOOLEAN: lambda t: {"true": True, "false": False, "1": True, "0": False}[t.lower()],
}


def parse_key(plan: TablePlan, text: str) -> list[Any]:
    """Key values from ``--record`` text: one value, or comma-separated values for a composite key."""
    names = [p.name for p in plan.keys]
    parts = [text] if len(names) == 1 else next(csv.reader([text]))
    if len(parts) != len(names):
        raise ConfigError(
            f"--record needs {len(names)} comma-separated values for the key ({', '.join(names)})"
        )
    values = []
    for pair, part in zip(plan.keys, parts, strict=True):
        parse = _PARSERS.get(pair.source.type.kind)
        try:
            values.append(part if parse is None else parse(part.strip()))
        except (ValueError, KeyError, InvalidOperation) as exc:
            kind = pair.source.type.kind.value
            raise ConfigError(
                f"--record: '{part}' is not a valid {kind} for key column '{pair.name}'"
            ) from exc
    return values


def compare_record(plan: TablePlan, source: Endpoint, target: Endpoint, text: str) -> TableDiff:
    """Both versions of one row, and the difference between them if there is one."""
    values = parse_key(plan, text)
    comparer = RowComparer(plan, source.dialect, target.dialect)
    wanted = comparer.key_of(values, "source")
    stats = TableStats(plan.source.name, plan.target.name)
    rows: list[list[Any]] = []
    for endpoint, role in ((source, "source"), (target, "target")):
        table = plan.source if role == "source" else plan.target
        side = Side(endpoint, plan, role, charsets(endpoint, table.name))

        def bound(v: Any) -> Any:
            return sa.bindparam(None, v, type_=sa.types.NullType())

        conditions, loose, spelled = [], [], False
        for c, v in zip(side.key_columns, values, strict=True):
            column, kind = side.sa_table.c[c.name], c.type.kind
            spellings = endpoint.dialect.key_spellings(kind)
            if isinstance(v, uuid.UUID) and endpoint.dialect.holds_uuid_as_text(kind):
                # each spelling diff pairs with it, and any other by its hex digits
                conditions.append(column.in_([bound(t) for t in uuid_spellings(v)]))
                loose.append(endpoint.dialect.uuid_digits(column) == bound(v.hex))
                spelled = True
            elif spellings is not None and not isinstance(v, str):
                # SQLite's dates and times, held as text in more than one spelling ('T', an offset)
                conditions.append(column.in_([bound(t) for t in spellings(v)]))
                near = endpoint.dialect.key_loosely(column, kind, v)
                loose.append(conditions[-1] if near is None else near)
                spelled = near is not None
            else:
                conditions.append(column == bound(str(v) if isinstance(v, uuid.UUID) else v))
                loose.append(conditions[-1])
        found = side.run(side.rows(conditions))
        stats.queries += 1
        if not found and spelled:  # (a spelling of its own: one read of the table)
            found = side.run(side.rows(loose))
            stats.queries += 1
        stats.rows_downloaded += len(found)
        # a case-insensitive collation may match more rows than the exact key
        rows.append([r for r in found if comparer.key_of(r, role) == wanted])
    if not rows[0] and not rows[1]:
        raise NotFound(f"no row with key {text!r} in table '{plan.source.name}' or '{plan.target.name}'")
    result = TableDiff(stats, warnings=list(plan.warnings))
    for diff in comparer.compare(rows[0], rows[1]):
        stats.count(diff)
        result.differences.append(diff)
    stats.source_rows, stats.target_rows = len(rows[0]), len(rows[1])
    shown = [
        comparer.sides[role].shown(comparer.decode(r[0], role)) if r else None
        for r, role in zip(rows, ("source", "target"), strict=True)
    ]
    result.record = RecordView(
        key=dict(zip(comparer.source_names, values, strict=False)),
        source=shown[0],
        target=shown[1],
        columns=tuple(p.name for p in plan.columns),
        names={p.source.name: p.target.name for p in (*plan.keys, *plan.columns)},
    )
    return result
