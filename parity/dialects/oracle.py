"""Oracle: NUMBER for integers and decimals, DATE carries a time, no TIME type. Thin-mode oracledb."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.dialects import oracle
from sqlalchemy.engine import Connection

from parity.dialects.base import Dialect
from parity.schema.types import CanonicalType, Kind, from_sqlalchemy


class Oracle(Dialect):
    names = ("oracle",)
    schemes = {"oracle": "oracle+oracledb"}
    driver_hint = "pip install 'parity[oracle]'"

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.BOOLEAN: "NUMBER(1)",
        Kind.SMALLINT: "NUMBER(5)",
        Kind.INTEGER: "NUMBER(10)",
        Kind.BIGINT: "NUMBER(19)",
        Kind.DECIMAL: "NUMBER({precision},{scale})",
        Kind.FLOAT: "BINARY_FLOAT",
        Kind.DOUBLE: "BINARY_DOUBLE",
        Kind.VARCHAR: "VARCHAR2({length} CHAR)",
        Kind.CHAR: "CHAR({length} CHAR)",
        Kind.TEXT: "CLOB",
        Kind.TIME: "INTERVAL DAY(0) TO SECOND(6)",
        Kind.TIMESTAMP: "TIMESTAMP(6)",
        Kind.TIMESTAMPTZ: "TIMESTAMP(6) WITH TIME ZONE",
        Kind.UUID: "RAW(16)",
    }
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {
        Kind.SMALLINT: CanonicalType(Kind.INTEGER),
        Kind.INTEGER: CanonicalType(Kind.BIGINT),
        Kind.BIGINT: CanonicalType(Kind.DECIMAL, precision=19, scale=0),
        Kind.DATE: CanonicalType(Kind.TIMESTAMP),
    }
    """NUMBER(p) reads back as the smallest kind that holds every p-digit value; DATE carries a time."""

    UNBOUNDED_DECIMAL = "NUMBER"
    MAX_DECIMAL_SCALE = 127
    MAX_VARCHAR = 4000
    MAX_CHAR = 2000
    SIZED_BINARY = "RAW({length})"
    MAX_SIZED_BINARY = 2000
    MAX_IDENTIFIER = 128

    def boolean_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        t = column["type"]
        if isinstance(t, oracle.NUMBER) and t.scale == 0 and t.precision is not None:
            if t.precision == 1:
                return CanonicalType(Kind.BOOLEAN)
            for limit, kind in ((4, Kind.SMALLINT), (9, Kind.INTEGER), (18, Kind.BIGINT)):
                if t.precision <= limit:
                    return CanonicalType(kind)
        if isinstance(t, oracle.NUMBER):  # SQLAlchemy's NUMBER is also an Integer: never let it read as one
            if t.precision is None:
                return CanonicalType(Kind.DECIMAL)
            return CanonicalType(Kind.DECIMAL, precision=t.precision, scale=t.scale or 0)
        if isinstance(t, oracle.BINARY_FLOAT):
            return CanonicalType(Kind.FLOAT)
        if isinstance(t, oracle.DATE):
            return CanonicalType(Kind.TIMESTAMP)
        if isinstance(t, oracle.RAW) and t.length == 16:
            return CanonicalType(Kind.UUID)
        if isinstance(t, oracle.INTERVAL):
            return CanonicalType(Kind.TIME)
        return from_sqlalchemy(t)
