"""Where differences go besides the result: a JSONL or CSV file, or a discrepancy table in the target.

A discrepancy row is one differing column of one row: run id, time, table, key (JSON text), kind,
column, source value and target value (as text). A missing or extra row is one discrepancy row with
no column, the whole row (JSON text) as its value on the side that has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql

from parity.dialects.base import TABLE_OPTIONS
from parity.diff.result import RowDiff, jsonable, value_text
from parity.endpoint import Endpoint, driver_message
from parity.errors import ConfigError, ParityError

FIELDS = ("run_id", "diffed_at", "table_name", "key", "kind", "column_name", "source_value", "target_value")
FILE_SUFFIXES = (".jsonl", ".csv")
TARGET_TABLE = "target_table"
"""The discrepancy table's column naming the table the source table was compared with (``parity fix``
changes that one)."""
THROUGH_ID_MAP = "through_id_map"
"""The discrepancy table's column that is 1 where the target table was read through the ID map
(``diff --remap-ids``): the keys and references recorded are the source's IDs (``parity fix`` writes
them through the map)."""
ADDED_COLUMNS = (TARGET_TABLE, THROUGH_ID_MAP)
"""The columns a discrepancy table of an earlier parity lacks (added to it as it is written)."""


_LONG_TEXT = (
    sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb").with_variant(mssql.NVARCHAR(), "mssql")
)
"""Values of any length: MySQL's TEXT holds 64 KB; SQL Server's TEXT is no Unicode (NVARCHAR(max) is)."""


_RUN_TIMES: dict[str, datetime] = {}


def run_time(run_id: str) -> datetime:
    """A diff run's time (UTC), the same in each of its records: those stored, written and printed."""
    return _RUN_TIMES.setdefault(run_id, datetime.now(timezone.utc).replace(tzinfo=None))


class Sink(Protocol):
    def write(self, diff: RowDiff) -> None: ...

    def compared(self, source: str, target: str, through: bool = False) -> None:
        """The next rows' table is ``source`` compared with ``target`` (``through``: read through the
        ID map)."""

    def close(self) -> None: ...

    def abort(self) -> None:
        """The run failed or was stopped: what it wrote is taken back (a part of a run, which ``parity
        fix`` would apply as if it were all)."""


def discrepancies(run_id: str, at: datetime, diff: RowDiff) -> Iterator[dict[str, Any]]:
    """The discrepancy rows of one differing row."""
    head = {
        "run_id": run_id,
        "diffed_at": at,
        "table_name": diff.table,
        "key": json.dumps({k: jsonable(v) for k, v in diff.key.items()}, ensure_ascii=False),
        "kind": diff.kind,
    }
    if diff.kind != "changed":
        row = diff.source if diff.kind == "missing" else diff.target
        whole = json.dumps({k: jsonable(v) for k, v in (row or {}).items()}, ensure_ascii=False)
        yield {
            **head,
            "column_name": None,
            "source_value": whole if diff.kind == "missing" else None,
            "target_value": whole if diff.kind == "extra" else None,
        }
        return
    for column in diff.columns:
        yield {
            **head,
            "column_name": column,
            "source_value": value_text((diff.source or {}).get(column)),
            "target_value": value_text(diff.target_value(column)),
        }


def is_file(output: str) -> bool:
    return output.lower().endswith(FILE_SUFFIXES)


def open_sink(output: str, target: Endpoint, run_id: str) -> Sink:
    """A file sink for ``*.jsonl`` / ``*.csv``, otherwise a table of that name in the target database."""
    if output.lower().endswith(".jsonl"):
        return JsonlSink(Path(output))
    if output.lower().endswith(".csv"):
        return CsvSink(Path(output), run_id)
    return TableSink(target, output, run_id)


def _open(path: Path) -> TextIO:
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


class _FileSink:
    def __init__(self, path: Path) -> None:
        self.path, self.file = path, _open(path)

    def close(self) -> None:
        self.file.close()

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class JsonlSink(_FileSink):
    """One JSON object per differing row, as ``parity diff --format jsonl`` prints them."""

    def compared(self, source: str, target: str, through: bool = False) -> None:
        pass  # (a file's rows name the source table only, as the printed ones do)

    def write(self, diff: RowDiff) -> None:
        self.file.write(json.dumps(diff.to_json(), ensure_ascii=False) + "\n")


def csv_line(values: Iterable[Any]) -> str:
    """One CSV line as PostgreSQL's CSV reads it: NULL is an empty field, an empty string ``""`` (the
    csv module writes both as nothing, so a NULL and an empty value looked alike)."""
    return ",".join(_csv_field(v) for v in values) + "\n"


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat(" ") if isinstance(value, datetime) else str(value)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_lines(run_id: str, at: datetime, diff: RowDiff) -> str:
    """The discrepancy rows of one differing row (one per column), as CSV lines under ``FIELDS``."""
    return "".join(csv_line(row[f] for f in FIELDS) for row in discrepancies(run_id, at, diff))


class CsvSink(_FileSink):
    """Discrepancy rows (one per differing column) with a header line."""

    def __init__(self, path: Path, run_id: str) -> None:
        super().__init__(path)
        self.file.write(csv_line(FIELDS))
        self.run_id = run_id
        self.at = run_time(run_id)

    def compared(self, source: str, target: str, through: bool = False) -> None:
        pass  # (a file's rows name the source table only, as the printed ones do)

    def write(self, diff: RowDiff) -> None:
        self.file.write(csv_lines(self.run_id, self.at, diff))


def discrepancy_table(name: str, schema: str | None) -> sa.Table:
    """The table ``diff --output`` writes (one row per differing column, or per missing or extra row)
    and ``fix`` reads; names and values in Unicode on every database (SQL Server's VARCHAR and TEXT
    are in a code page)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("diffed_at", sa.DateTime(), nullable=False),
        sa.Column("table_name", sa.Unicode(255), nullable=False),
        sa.Column("key", _LONG_TEXT, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("column_name", sa.Unicode(255)),
        sa.Column("source_value", _LONG_TEXT),
        sa.Column("target_value", _LONG_TEXT),
        sa.Column(TARGET_TABLE, sa.Unicode(255)),
        sa.Column(THROUGH_ID_MAP, sa.Integer()),
        schema=schema,
        **TABLE_OPTIONS,
    )


class TableSink:
    """Discrepancy rows inserted into a table of the target database (created when missing)."""

    BATCH = 1000

    def __init__(self, target: Endpoint, name: str, run_id: str) -> None:
        self.target = target
        self.run_id = run_id
        self.at = run_time(run_id)
        self.table = discrepancy_table(name, target.schema)
        self.pending: list[dict[str, Any]] = []
        self.targets: dict[str, str] = {}
        self.through: dict[str, bool] = {}
        self.made = self.written = False
        self._do(self._check, "read")

    def _check(self, conn: sa.Connection) -> None:
        """Where the table exists: it must be a discrepancy table (refused before the diff runs)."""
        if self.table.name in self.target.dialect.table_names(conn, self.table.schema):
            self._create(conn)

    def _create(self, conn: sa.Connection) -> None:
        """The table, created when missing (once the diff has found its rows: a diff that fails makes
        none); one of an earlier parity gets the target table's column. A table of that name that is not
        a discrepancy table is refused, unchanged."""
        self.table.create(conn, checkfirst=True)
        self.made = True
        have = {
            c["name"].lower() for c in self.target.dialect.columns(conn, self.table.name, self.table.schema)
        }
        lacking = [field for field in FIELDS if field not in have]
        if lacking:
            raise ConfigError(
                f"--output {self.table.name}: that table exists and is not a discrepancy table (it has no "
                f"{', '.join(lacking)} column); name a new table, or one an earlier diff wrote"
            )
        quote = conn.dialect.identifier_preparer
        for name in ADDED_COLUMNS:
            if name not in have:
                kind = self.table.c[name].type.compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(f"ALTER TABLE {quote.format_table(self.table)} ADD {quote.quote(name)} {kind}")
                )

    def compared(self, source: str, target: str, through: bool = False) -> None:
        self.targets[source] = target
        self.through[source] = through

    def write(self, diff: RowDiff) -> None:
        added = {
            TARGET_TABLE: self.targets.get(diff.table, diff.table),
            THROUGH_ID_MAP: 1 if self.through.get(diff.table) else None,
        }
        self.pending.extend({**row, **added} for row in discrepancies(self.run_id, self.at, diff))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self.pending = self.pending, []
        if not self.made:
            self._do(self._create, "create")
        if rows:
            self.written = True
            self._do(lambda conn: conn.execute(self.table.insert(), rows), "write to")

    def close(self) -> None:
        self.flush()

    def abort(self) -> None:
        self.pending = []
        if self.written:  # (this run's rows only: parity's own, in a table of its own)
            self._do(lambda conn: conn.execute(self.table.delete().where(self.table.c.run_id == self.run_id)),
                     "take this run's rows back from")  # fmt: skip

    def _do(self, action: Any, what: str) -> None:
        try:
            with self.target.begin() as conn:
                action(conn)
        except sa.exc.DBAPIError as exc:
            raise ParityError(
                f"cannot {what} discrepancy table '{self.table.name}' in {self.target.redacted()}: "
                f"{driver_message(exc)}"
            ) from exc
