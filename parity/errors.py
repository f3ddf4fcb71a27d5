"""parity's errors: one base class; the CLI prints its message on one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ParityError(Exception):
    """Base of every error parity raises on purpose. Its message is one line, with secrets redacted."""

    exit_code = 2


class ConfigError(ParityError):
    """A job file or an option is malformed, unknown or incomplete."""


class UnsupportedURL(ParityError):
    """A URL names a database parity does not know."""


class ConnectionFailed(ParityError):
    """A database cannot be reached or refused the login."""


class NotFound(ParityError):
    """A table, column or run that was named does not exist."""


class SchemaError(ParityError):
    """The target's schema cannot hold the source's data, or a type has no safe mapping."""


class DataError(ParityError):
    """Rows cannot be moved or compared as asked (no key, duplicate keys, values out of range)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    pool = list(choices)
    match = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in pool}
        match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        match = [lowered[m] for m in match]
    return f"; did you mean '{match[0]}'?" if match else ""


def not_found(kind: str, name: str, choices: Iterable[str], where: str = "") -> NotFound:
    """Build a NotFound for a named thing, suggesting the closest existing name."""
    place = f" in {where}" if where else ""
    return NotFound(f"{kind} '{name}' not found{place}{did_you_mean(name, choices)}")
