"""SQL text as the drivers take it: SQLAlchemy's doubling of ``%`` for drivers whose parameters are ``%s``.

Light on purpose (no SQLAlchemy import): the copy's reader processes load it with ``parity.bulk``.
"""

from __future__ import annotations

from typing import Any


def as_sent(text: str, dialect: Any) -> str:
    """SQL that SQLAlchemy compiled (or quoted) as it must read when sent with no parameters: for drivers
    whose parameters are ``%s`` SQLAlchemy doubles each ``%`` of a name or literal, which the driver
    undoes only when it formats parameters (a column ``pct%`` would be looked up as ``pct%%``)."""
    return text.replace("%%", "%") if dialect.paramstyle in ("format", "pyformat") else text


def with_parameters(text: str, dialect: Any) -> str:
    """The reverse of ``as_sent``: SQL text with names in it, made ready for ``%s`` parameters."""
    return text.replace("%", "%%") if dialect.paramstyle in ("format", "pyformat") else text
