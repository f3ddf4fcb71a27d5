"""PostgreSQL: exact types for nearly everything; COPY for bulk paths."""

from __future__ import annotations

import re
from typing import ClassVar

from parity.dialects.base import Dialect
from parity.schema.types import Kind


class PostgreSQL(Dialect):
    names = ("postgresql",)
    schemes = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
    driver_hint = "pip install 'psycopg[binary]'"

    TRANSACTIONAL_DDL = True
    WRITER = "copy"
    TRUNCATE_TOGETHER = True
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

    def strip_default(self, text: str) -> str:
        while self._CAST.search(text):
            text = self._CAST.sub("", text).strip()
        return text
