"""PostgreSQL: exact types for nearly everything; COPY for bulk paths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import Kind


class PostgreSQL(Dialect):
    names = ("postgresql",)
    schemes = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
    driver_hint = "pip install 'psycopg[binary]'"

    TRANSACTIONAL_DDL = True
    WRITER = "copy"
    ROW_WRITER = "postgresql_insert"
    TRUNCATE_TOGETHER = True
    FK_CHECKS = ("SET session_replication_role = replica", "SET session_replication_role = DEFAULT")
    BINARY_LITERAL = "'\\x{hex}'::bytea"
    NATIVE_KINDS = frozenset(k for k in Kind if k is not Kind.CHAR)
    SESSION_SETUP = ("SET TIME ZONE 'UTC'",)

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.DECIMAL: "NUMERIC({precision},{scale})",
        Kind.BINARY: "BYTEA",
        Kind.JSON: "JSONB",
    }
    MAX_DECIMAL_PRECISION = 1000
    MAX_DECIMAL_SCALE = 1000
    MAX_VARCHAR = 10485760
    MAX_CHAR = 10485760

    _CAST = re.compile(r"::[a-z_ ]+(\[\])?(\(\d+(,\d+)?\))?$", re.IGNORECASE)

    def estimated_rows(self, conn: Connection, table: str, schema: str | None) -> int | None:
        classes = sa.table(
            "pg_class", sa.column("relname"), sa.column("relnamespace"), sa.column("reltuples"),
            schema="pg_catalog",
        )  # fmt: skip
        spaces = sa.table("pg_namespace", sa.column("oid"), sa.column("nspname"), schema="pg_catalog")
        space = sa.literal(schema) if schema else sa.func.current_schema()
        query = (
            sa.select(classes.c.reltuples)
            .select_from(classes.join(spaces, spaces.c.oid == classes.c.relnamespace))
            .where(classes.c.relname == table, spaces.c.nspname == space)
        )
        rows = conn.execute(query).scalar()
        return None if rows is None or rows < 0 else int(rows)  # -1: never analysed

    def strip_default(self, text: str) -> str:
        while self._CAST.search(text):
            text = self._CAST.sub("", text).strip()
        return text

    # ---- diff ----------------------------------------------------------------------------------------

    JSON_FORM = "jsonb"
    DIFF_SETUP = ("SET LOCAL enable_sort = off",)
    DEFERS_KEYS = True
    COPY_TEXT_SETUP = (
        "SET LOCAL client_encoding = 'UTF8'",
        "SET LOCAL DateStyle = 'ISO, YMD'",
        "SET LOCAL extra_float_digits = 3",  # floats exact (shortest exact text from PostgreSQL 12 on)
    )
    """The planner cannot know that ``(id - lo) / width`` has few values: without this it sorts every
    row (spilling to disk) to group them, where a hash aggregate of a few hundred buckets is cheap."""
    DATE_FORMAT = "YYYY-MM-DD"
    TIME_FORMAT = "HH24:MI:SS.US"
    TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.US"

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        if scale is None and declared is None:
            return self.text(sa.func.trim_scale(x))
        return super().text_decimal(x, declared, scale)

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.encode(x, sa.literal("hex"))

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        return self.text(sa.cast(x, postgresql.JSONB()))

    DECODES = True
    DECODE_FENCE = True

    def located_sums(self, h: Any, offset: Any, bits: int) -> list[sa.ColumnElement[Any]]:
        # offset * h would overflow bigint: its high and low 30 bits apart (each product < 2**(bits+30))
        low = sa.literal(2**30 - 1, sa.BigInteger())
        high = h.op(">>")(sa.literal(30, sa.Integer()))
        return [sa.func.sum(h), sa.func.sum(offset * high), sa.func.sum(offset * h.op("&")(low))]

    def located_totals(self, values: Sequence[Any], bits: int) -> tuple[int, int]:
        total, high, low = (int(v or 0) for v in values)
        return total, (high << 30) + low

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(super().text_date(x), self.text(x))  # (to_char() of infinity is NULL)

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(super().text_timestamp(x, with_zone), self.text(x))

    LENIENT_LOADERS = True

    def lenient_loaders(self, conn: Connection) -> None:
        from psycopg.types import datetime as pgdatetime

        raw: Any = conn.connection.driver_connection
        adapters = raw.adapters
        for name in ("date", "timestamp", "timestamptz"):
            base = {"date": pgdatetime.DateLoader, "timestamp": pgdatetime.TimestampLoader}.get(
                name, pgdatetime.TimestamptzLoader
            )
            adapters.register_loader(name, _or_text(base))

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        # the first 8 bytes of the digest in hex, cast to BIT(60): its first 15 hex digits, as elsewhere
        # (hex of 8 bytes instead of 32 costs PostgreSQL a tenth less of a whole row checksum)
        digest = sa.func.sha256(sa.func.convert_to(text, sa.literal_column("'UTF8'")))
        hex16 = sa.func.encode(sa.func.substring(digest, 1, 8), sa.literal_column("'hex'"))
        return sa.cast(sa.cast(sa.literal("x").concat(hex16), postgresql.BIT(60)), sa.BigInteger())


def _or_text(loader: type[Any]) -> type[Any]:
    """A psycopg loader that gives the text of a value it cannot load (infinity, a year past 9999)."""
    from psycopg import DataError

    class OrText(loader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except DataError:
                return bytes(data).decode()

    return OrText
