"""Canonical types: the one vocabulary every database's types are mapped into and out of.

docs/types.md is the table of this module and of the dialects' ``TYPE_MAPPING``; keep them in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from parity.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from sqlalchemy import types as sat


class Kind(str, Enum):
    """The canonical kinds. Parameters (length, precision, scale) live on CanonicalType."""

    BOOLEAN = "boolean"
    SMALLINT = "smallint"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    FLOAT = "float"
    DOUBLE = "double"
    VARCHAR = "varchar"
    CHAR = "char"
    TEXT = "text"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    BINARY = "binary"
    UUID = "uuid"
    JSON = "json"


INTEGER_KINDS = (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT)
STRING_KINDS = (Kind.VARCHAR, Kind.CHAR, Kind.TEXT)
INTEGER_RANGE = {Kind.SMALLINT: 2**15, Kind.INTEGER: 2**31, Kind.BIGINT: 2**63}


@dataclass(frozen=True)
class CanonicalType:
    """A database-neutral column type. ``length`` for strings and binary; precision/scale for decimals."""

    kind: Kind
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL and self.precision is not None:
            return f"decimal({self.precision},{self.scale or 0})"
        if self.length is not None:
            return f"{self.kind.value}({self.length})"
        return self.kind.value

    def widened(self, **changes: int | Kind | None) -> CanonicalType:
        return replace(self, **changes)  # type: ignore[arg-type]


_SPEC = re.compile(r"^\s*([a-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$", re.IGNORECASE)


_ALIASES = {
    "int": "integer",
    "numeric": "decimal",
    "bool": "boolean",
    "datetime": "timestamp",
    "real": "float",
}
"""The SQL spellings of canonical kinds a job file may use too (``int``: 'bigint' was suggested)."""


def parse(spec: str) -> CanonicalType:
    """Parse a canonical type as written in a job file: ``text``, ``varchar(40)``, ``decimal(12,2)``."""
    match = _SPEC.match(spec)
    names = [k.value for k in Kind]
    word = match.group(1).lower() if match else spec.lower()
    word = _ALIASES.get(word, word)
    if not match or word not in names:
        raise ConfigError(f"unknown type '{spec}'{did_you_mean(word, names)}")
    kind = Kind(word)
    first = int(match.group(2)) if match.group(2) else None
    second = int(match.group(3)) if match.group(3) else None
    if kind is Kind.DECIMAL:
        return CanonicalType(kind, precision=first, scale=second if second is not None else 0)
    return CanonicalType(kind, length=first)


def from_sqlalchemy(t: sat.TypeEngine[Any]) -> CanonicalType | None:
    """Map a reflected SQLAlchemy type to its canonical type; None when there is no portable mapping."""
    from sqlalchemy import types as sat  # (here: reader processes use this module without SQLAlchemy)

    if isinstance(t, sat.Boolean):
        return CanonicalType(Kind.BOOLEAN)
    if isinstance(t, sat.BigInteger):
        return CanonicalType(Kind.BIGINT)
    if isinstance(t, sat.SmallInteger):
        return CanonicalType(Kind.SMALLINT)
    if isinstance(t, sat.Integer):
        return CanonicalType(Kind.INTEGER)
    if isinstance(t, sat.Double):  # (MySQL's DOUBLE(M,D): M is digits shown, not bits: a double still)
        return CanonicalType(Kind.DOUBLE)
    if isinstance(t, sat.Float):
        precision = getattr(t, "precision", None)
        single = isinstance(t, sat.REAL) or (precision is not None and precision <= 24)
        return CanonicalType(Kind.FLOAT if single else Kind.DOUBLE)
    if isinstance(t, sat.Numeric):
        if t.precision is None:
            return CanonicalType(Kind.DECIMAL)
        return CanonicalType(Kind.DECIMAL, precision=t.precision, scale=t.scale or 0)
    if isinstance(t, sat.Uuid):
        return CanonicalType(Kind.UUID)
    if isinstance(t, sat.JSON):
        return CanonicalType(Kind.JSON)
    if isinstance(t, sat.Enum):
        longest = max((len(e) for e in t.enums), default=1)
        return CanonicalType(Kind.VARCHAR, length=longest)
    if isinstance(t, (sat.Text, sat.CLOB)) or type(t).__name__.upper() in {
        "TINYTEXT",
        "MEDIUMTEXT",
        "LONGTEXT",
    }:
        return CanonicalType(Kind.TEXT)
    if isinstance(t, (sat.CHAR, sat.NCHAR)):
        return CanonicalType(Kind.CHAR, length=t.length or 1)
    if isinstance(t, sat.String):
        return CanonicalType(Kind.VARCHAR, length=t.length) if t.length else CanonicalType(Kind.TEXT)
    if isinstance(t, sat.DateTime):
        return CanonicalType(Kind.TIMESTAMPTZ if t.timezone else Kind.TIMESTAMP)
    if isinstance(t, sat.Date):
        return CanonicalType(Kind.DATE)
    if isinstance(t, sat.Time):  # (a time with its zone has no portable kind: its text, offset kept)
        return None if t.timezone else CanonicalType(Kind.TIME)
    if isinstance(t, (sat._Binary, sat.LargeBinary)):
        length = getattr(t, "length", None)
        return CanonicalType(
            Kind.BINARY, length=length if type(t).__name__ in {"VARBINARY", "BINARY"} else None
        )
    return None


def holds(target: CanonicalType, source: CanonicalType) -> bool:
    """True when every value of ``source`` fits in ``target`` without loss."""
    if target.kind == source.kind:
        if target.kind is Kind.DECIMAL:
            if target.precision is None:
                return True
            if source.precision is None:
                return False
            t_int = target.precision - (target.scale or 0)
            s_int = source.precision - (source.scale or 0)
            return t_int >= s_int and (target.scale or 0) >= (source.scale or 0)
        if target.length is None:
            return True
        return source.length is not None and source.length <= target.length
    if target.kind in INTEGER_KINDS and source.kind in INTEGER_KINDS:
        return INTEGER_RANGE[target.kind] >= INTEGER_RANGE[source.kind]
    if target.kind is Kind.DECIMAL and source.kind in INTEGER_KINDS:
        digits = {Kind.SMALLINT: 5, Kind.INTEGER: 10, Kind.BIGINT: 19}[source.kind]
        return target.precision is None or target.precision - (target.scale or 0) >= digits
    if target.kind in STRING_KINDS and source.kind in STRING_KINDS:
        return target.kind is Kind.TEXT or (
            target.length is not None and source.length is not None and source.length <= target.length
        )
    if target.kind is Kind.TEXT:
        return source.kind in (Kind.UUID, Kind.JSON)
    if target.kind is Kind.DOUBLE:
        return source.kind in (Kind.FLOAT, Kind.SMALLINT, Kind.INTEGER)
    if target.kind is Kind.BINARY:
        return target.length is None and source.kind is Kind.BINARY
    return target.kind is Kind.TIMESTAMPTZ and source.kind is Kind.TIMESTAMP
